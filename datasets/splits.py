"""Splits: the validation normals held out of a training split (thresholds set without seeing a defect), and
the folds of a labelled test set for supervised training on real defects (`--labelled-defects N`)."""
from __future__ import annotations

import math

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


# -- validation normals: held out of the training split to set thresholds (issue 23) ----------------------------
DEFAULT_VAL_FRACTION = 0.1
# A fraction holds out at least this many: the 5% false-alarm target needs ceil(1 / 0.05) = 20 normal images
# (bench.operating_points.min_normals); the 1% target needs 100, which only a large training split gives.
MIN_VAL_NORMALS = 20
MIN_TRAIN_LEFT = 8  # images a split must leave to train on: fewer and nothing is held out
_VAL_SPLIT_STREAM = 23  # the split's own random stream of the job's seed, apart from training's


def check_val_normals(value) -> None:
    """`--val-normals`: a whole number of images >= 0 (0: none held out) or a fraction in (0, 1); ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"--val-normals must be a whole number of images >= 0 or a fraction in (0, 1), got {value!r}")
    if isinstance(value, int) and value < 0:
        raise ValueError(f"--val-normals must be a whole number of images >= 0 or a fraction in (0, 1), got {value}")
    if isinstance(value, float) and not 0.0 < value < 1.0:
        raise ValueError(f"--val-normals must be a whole number of images >= 0 or a fraction in (0, 1), got {value}")


def validation_count(n_train: int, val_normals) -> tuple[int, str]:
    """How many of `n_train` normal training images to hold out for validation, and why none when 0.

    `val_normals`: an int is that many images; a float in (0, 1) is that fraction, rounded up, but at least
    MIN_VAL_NORMALS; 0 holds none out. A split that would leave fewer than MIN_TRAIN_LEFT images to train on
    holds none out either. Returns (count, "") or (0, reason); reasons hold no ':' or ';' (they go into a
    record's `undefined_metrics`).
    """
    check_val_normals(val_normals)
    if val_normals == 0:
        return 0, "no validation normals held out (--val-normals 0)"
    wanted = int(val_normals) if isinstance(val_normals, int) else max(MIN_VAL_NORMALS, math.ceil(val_normals * n_train))
    if n_train - wanted < MIN_TRAIN_LEFT:
        return 0, (f"no validation normals held out, the training split has {n_train} normal images, too few to hold "
                   f"out {wanted} and keep {MIN_TRAIN_LEFT} to train on")
    return wanted, ""


def validation_split(n_train: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): `count` of the `n_train` training images held out for validation, chosen by a
    permutation seeded with the job's seed (its own stream), so the same data and seed give the same split
    whatever the model; both sorted, disjoint, together every index."""
    if not 0 <= count <= n_train:
        raise ValueError(f"cannot hold out {count} of {n_train} training images")
    order = np.random.default_rng((_VAL_SPLIT_STREAM, int(seed))).permutation(n_train)
    return np.sort(order[count:]), np.sort(order[:count])
