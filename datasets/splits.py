"""Splits of a labelled test set for supervised training on real defects (`--labelled-defects N`)."""
from __future__ import annotations

import numpy as np


def labelled_folds(labels, n_labelled: int, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k-fold over a labelled test set for supervised training on real defects (`--labelled-defects N`).

    The images are split into k disjoint evaluation folds, stratified by label (each fold gets its share of
    normal and defective images); together the folds cover the test set, each image evaluated exactly once.
    Fold f trains on up to `n_labelled` defective images drawn at random from the OTHER folds, plus every
    normal image of the other folds; so nothing a fold evaluates is in its training set.
    Returns [(train_idx, eval_idx)] * k, sorted index arrays into `labels` (0 normal, 1 defective).
    """
    labels = np.asarray(labels).astype(int).ravel()
    if k < 2:
        raise ValueError("labelled_folds needs k >= 2")
    if len(labels) < k:
        raise ValueError(f"{len(labels)} images cannot make {k} folds")
    if n_labelled < 0:
        raise ValueError("n_labelled must be >= 0")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=int)
    offset = 0
    for cls in (0, 1):
        members = rng.permutation(np.flatnonzero(labels == cls))
        fold_of[members] = (np.arange(len(members)) + offset) % k  # round robin, continuing across classes
        offset += len(members)
    folds = []
    for f in range(k):
        eval_idx = np.flatnonzero(fold_of == f)
        elsewhere = fold_of != f
        defects = rng.permutation(np.flatnonzero(elsewhere & (labels == 1)))[:n_labelled]
        normals = np.flatnonzero(elsewhere & (labels == 0))
        folds.append((np.sort(np.concatenate([defects, normals])), eval_idx))
    return folds
