"""Accuracy metrics with bootstrap intervals over the test images, computed while the anomaly maps are in memory.

The bootstrap resamples test IMAGES with replacement, stratified by label (bench.stats), and summarises each
metric's replicates by a percentile interval. A resample is a vector of image multiplicities w; every replicate
is computed from per-image (or per image pair) sums precomputed once, instead of rebuilding the resampled data:

- image AUROC: U[i, j] = 1 if defective image i outscores normal image j (1/2 for a tie);
  AUROC(w) = w_pos^T U w_neg / (sum w_pos * sum w_neg), exactly the AUROC of the resampled scores.
- image AP: the precision-recall sums of sklearn's `average_precision_score`, with the images' tie groups
  (one threshold per distinct score) weighted by w, for all resamples at once.
- pixel AUROC: Q[p, j] = 2 x (normal pixels of image j below defect pixel p) + (those tied with it);
  U[i, j] = sum over the defect pixels p of image i of Q[p, j] / 2;
  pixel AUROC(w) = w^T U w / ((w . defect pixels)(w . normal pixels)), exact.
- AUPRO (bench.metrics' MVTec definition, to FPR 0.3): a normal pixel q of image j moves the PRO curve right
  by 1/N(w) at height (PRO before q + PRO after q)/2, and each defect pixel p of image i above q adds
  1/(size of p's region) to the region-overlap sums on both sides (1/2 on each side for a tie): the
  area under the curve up to any threshold t is again a quadratic form,
  area(w, t) = (w^T A_t w - 2 (w . B_t)(w . L_t)) / (2 N(w) R(w)),
  with A_t[i, j] = sum over defect pixels p of i scoring >= t of Q[p, j] / region size, B_t[i] = the overlap
  sum of image i at t, L_t[j] = normal pixels of j below t, N(w) and R(w) the resample's normal pixels and
  regions. Per resample the area is taken at the last grid threshold whose FPR is <= 0.3 (the grid: about
  120 pooled normal-score quantiles between FPR 0.15 and 0.6, each with the next higher pixel score), exact
  there; the piece from there to FPR 0.3, inside one grid cell, is interpolated linearly, as MVTec
  interpolates at the limit. Its error is at most (0.3 - FPR at that grid point) x (PRO rise over the cell)
  / 0.3, 0 when the cell is one straight segment of the exact curve (heavy ties); `pixel_replicates`
  returns that bound per replicate. Measured on pixel_stats' maps of the four synthetic categories, 10,000
  resamples each: bound median 5e-6 to 2e-5, max 3.2e-4; actual errors <= 4e-5 (tests/test_intervals.py
  compares with the metric of the explicitly resampled maps). The interval bounds' own Monte Carlo spread is
  about 1e-3.

Cost: one sort of each image's pixels, one `searchsorted` of the defect pixels per image
(O(images x defect pixels x log pixels)), then matrix products O(resamples x images x (images + grid)).
Memory: the (images x images) sums, one block of pair counts, and (resamples x grid) FPR and PRO values.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from bench.metrics import REGION_STRUCTURE, compute_all, undefined_reasons
from bench.schema import INTERVAL_METRICS, PAIRED_DELTA_METRICS
from bench.stats import percentile_interval, stratified_bootstrap_counts

# Chosen by measurement: on the default synthetic set (128 px, 70 test images per category, one thread, CPU
# time) 10,000 resamples add 19% to the evaluation (inference + compute_all) of the cheapest model,
# pixel_stats (22% on its worst category), and 2.4% to an untrained U-Net's; the budget is 30%.
DEFAULT_RESAMPLES = 10_000
CI_METHOD = ("percentile bootstrap over test images, stratified by label; replicates exact "
             "(AUPRO: linear inside one threshold-grid cell at FPR 0.3)")
AUPRO_FPR_LIMIT = 0.3
# Thresholds of the AUPRO grid: pooled normal-pixel FPR levels from limit/2 to 2 x limit, where resamples'
# FPRs cross the limit (a resample's FPR is a weighted mean of the images' FPRs). A resample crossing outside
# that range would get one wide interpolated cell, and a correspondingly large reported error bound.
AUPRO_GRID_POINTS = 120
# Largest block of the (defect pixels x images) pair-count matrix held at once, in entries.
_PAIR_BLOCK = 4_000_000


# -- image metrics ------------------------------------------------------------------------------------------

def image_auroc_replicates(labels: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Image AUROC of each resample (rows of `counts`, image multiplicities); NaN where a class is empty."""
    positive = labels == 1
    pos_scores, neg_scores = scores[positive], scores[~positive]
    wins = (pos_scores[:, None] > neg_scores[None, :]) + 0.5 * (pos_scores[:, None] == neg_scores[None, :])
    w_pos, w_neg = counts[:, positive].astype(np.float64), counts[:, ~positive].astype(np.float64)
    pairs = w_pos.sum(axis=1) * w_neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("ri,ri->r", w_pos @ wins, w_neg) / pairs


def image_ap_replicates(labels: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Average precision (sklearn's step sum: sum over thresholds of recall gain x precision) per resample.

    Images with equal scores form one threshold, as in sklearn; an image drawn k times weighs k.
    """
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    group_starts = np.flatnonzero(np.concatenate(([True], sorted_scores[1:] != sorted_scores[:-1])))
    weights = counts[:, order].astype(np.float64)
    positive = (labels[order] == 1).astype(np.float64)
    true_gain = np.add.reduceat(weights * positive, group_starts, axis=1)
    all_gain = np.add.reduceat(weights, group_starts, axis=1)
    true_positives, predicted = np.cumsum(true_gain, axis=1), np.cumsum(all_gain, axis=1)
    precision = np.divide(true_positives, predicted, out=np.zeros_like(predicted), where=predicted > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("rg,rg->r", true_gain, precision) / true_positives[:, -1]


# -- pixel metrics ------------------------------------------------------------------------------------------

def _grid_thresholds(normal_sorted: np.ndarray, normal_counts: np.ndarray, defect_sorted: np.ndarray,
                     fpr_limit: float) -> np.ndarray:
    """Descending thresholds: roughly evenly spaced pooled FPR levels in [limit / 2, min(1, 2 x limit)], each
    with the next higher pixel score beside it.

    Any thresholds keep the replicates valid (the area is exact at every grid threshold); even spacing in
    FPR keeps the interpolated piece at the limit small. The next higher score makes the cell that ends at a
    grid threshold one straight segment of the exact curve: a tie group that spans the limit (e.g. a map that
    is exactly 0 on most pixels) is then interpolated exactly as MVTec does. Each image's own quantiles,
    pooled, stand in for the pooled quantiles (no sort of all pixels).
    """
    levels = np.linspace(0.5 * fpr_limit, min(1.0, 2.0 * fpr_limit), AUPRO_GRID_POINTS)
    has_normals = normal_counts > 0
    if not has_normals.any():
        return np.empty(0, dtype=np.float32)
    counts = normal_counts[has_normals, None]
    ranks = np.clip(np.ceil((1.0 - levels[None, :]) * counts).astype(np.int64), 0, counts - 1)
    pooled = np.sort(np.take_along_axis(normal_sorted[has_normals], ranks, axis=1).ravel())[::-1]
    # The candidates spread over the levels' FPR range; evenly spaced ranks among them step evenly through it.
    quantiles = np.unique(pooled[np.linspace(0, pooled.size - 1, levels.size).round().astype(np.int64)])
    next_higher = _next_higher_scores(normal_sorted, normal_counts, defect_sorted, quantiles)
    return np.unique(np.concatenate([quantiles, next_higher[np.isfinite(next_higher)]]))[::-1]


def _next_higher_scores(normal_sorted: np.ndarray, normal_counts: np.ndarray, defect_sorted: np.ndarray,
                        thresholds: np.ndarray) -> np.ndarray:
    """For each threshold, the smallest pixel score above it (+inf where none is)."""
    next_higher = np.full(thresholds.size, np.inf, dtype=np.float32)
    for values in [row[:count] for row, count in zip(normal_sorted, normal_counts)] + [defect_sorted]:
        above = np.searchsorted(values, thresholds, side="right")
        found = above < values.size
        next_higher[found] = np.minimum(next_higher[found], values[above[found]])
    return next_higher


def _defect_pixels(masks: np.ndarray, flat_maps: np.ndarray):
    """Image index, score and 1/(region size) of every defect pixel, and the number of regions per image.

    Regions are bench.metrics' (8-connected inside an image), so a repeated image repeats its regions.
    """
    regions, region_count = ndimage.label(masks, structure=REGION_STRUCTURE)
    defect_index = np.flatnonzero(masks.reshape(len(masks), -1))  # image-major order
    image = defect_index // flat_maps.shape[1]
    region = regions.ravel()[defect_index]
    region_sizes = np.bincount(region, minlength=region_count + 1)
    region_image = np.zeros(region_count + 1, dtype=np.int64)
    region_image[region] = image
    regions_per_image = np.bincount(region_image[1:], minlength=len(masks)).astype(np.float64)
    return image, flat_maps.ravel()[defect_index], 1.0 / region_sizes[region], regions_per_image


def pixel_replicates(masks: np.ndarray, maps: np.ndarray, counts: np.ndarray,
                     fpr_limit: float = AUPRO_FPR_LIMIT) -> dict[str, np.ndarray]:
    """Pixel AUROC and AUPRO of each resample, for bool masks and float32 maps (N,H,W) as bench.metrics
    checks them; `counts` [R, N] image multiplicities. Returns {"pixel_auroc", "aupro", "aupro_error_bound"}
    ([R] each; NaN where a resample has no defect pixel or no normal pixel). The error bound is that of the
    linear piece at the FPR limit (module docstring); the rest of each replicate is exact."""
    n = len(masks)
    flat_masks, flat_maps = masks.reshape(n, -1), maps.reshape(n, -1)
    normal_counts = (~flat_masks).sum(axis=1)
    defect_counts = flat_masks.sum(axis=1)
    # Each image's normal scores, ascending; defect pixels become +inf and sort past every finite score.
    normal_sorted = np.sort(np.where(flat_masks, np.float32(np.inf), flat_maps), axis=1)
    defect_image, defect_scores, overlap_weight, regions_per_image = _defect_pixels(masks, flat_maps)
    # Defect pixels sorted by score: the grid, the order in which they reach the vertices and fast binary search.
    by_score = np.argsort(defect_scores, kind="stable")
    defect_image, defect_scores, overlap_weight = defect_image[by_score], defect_scores[by_score], overlap_weight[by_score]

    # Vertices of the PRO curve: 0 = nothing above (+inf), 1..G the grid thresholds, G+1 = every pixel.
    thresholds = _grid_thresholds(normal_sorted, normal_counts, defect_scores, fpr_limit)
    vertices = thresholds.size + 2
    normals_below = np.empty((n, vertices))  # L_t[j]: normal pixels of image j scoring below the vertex
    normals_below[:, 0], normals_below[:, -1] = normal_counts, 0
    for j in range(n):
        normals_below[j, 1:-1] = np.searchsorted(normal_sorted[j], thresholds, side="left")
    # The first vertex at which each defect pixel counts (its score >= the vertex's threshold).
    first_vertex = thresholds.size + 1 - np.searchsorted(thresholds[::-1], defect_scores, side="right")
    # Cells (vertex v to v+1) without a pixel score strictly inside are one straight segment of the exact curve.
    lowest = min(defect_scores[0], *(row[0] for row, count in zip(normal_sorted, normal_counts) if count))
    single_segment = np.concatenate((
        _next_higher_scores(normal_sorted, normal_counts, defect_scores, thresholds) == np.append(np.inf, thresholds[:-1]),
        [thresholds.size == 0 or thresholds[-1] == lowest]))

    defective = np.flatnonzero(defect_counts)
    row_of = np.full(n, -1, dtype=np.int64)
    row_of[defective] = np.arange(defective.size)
    defect_rows = row_of[defect_image]
    overlap = np.zeros((defective.size, vertices))  # B_t: region-overlap sum of each defective image
    np.add.at(overlap, (defect_rows, first_vertex), overlap_weight)
    overlap = np.cumsum(overlap, axis=1)

    weights = counts.astype(np.float64)
    defect_weights = weights[:, defective]
    normals = weights @ normal_counts.astype(np.float64)
    defects = defect_weights @ defect_counts[defective].astype(np.float64)
    region_total = defect_weights @ regions_per_image[defective]
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = (weights @ (normal_counts[:, None] - normals_below)) / normals[:, None]
        pro = (defect_weights @ overlap) / region_total[:, None]
    last = np.maximum(np.sum(fpr <= fpr_limit, axis=1) - 1, 0)  # each resample's last vertex with FPR <= limit
    needed = np.unique(last)
    # A_t is needed at those vertices only. Defect pixels in descending score order reach the vertices in
    # ascending order, so one running sum serves every vertex: when the pixels pass a needed vertex, the
    # quadratic forms of the resamples that stop there are taken from it.
    bucket = np.searchsorted(needed, first_vertex, side="left")  # == needed.size: past every needed vertex
    pairs_won = np.zeros((defective.size, n))      # U
    area_terms = np.zeros((defective.size, n))     # A_t, running
    quadratic = np.empty(len(weights))
    done = 0                                       # needed vertices evaluated so far

    def evaluate_up_to(stop: int) -> None:
        nonlocal done
        for k in range(done, stop):
            picked = np.flatnonzero(last == needed[k])
            quadratic[picked] = np.einsum("ri,ri->r", defect_weights[picked] @ area_terms, weights[picked])
        done = max(done, stop)

    descending = defect_scores.size - 1 - np.arange(defect_scores.size)
    block = max(1, _PAIR_BLOCK // max(n, 1))
    for start in range(0, defect_scores.size, block):
        pixels = descending[start:start + block]
        scores = defect_scores[pixels[::-1]]  # ascending queries: numpy's binary search starts from its last answer
        pair_counts = np.empty((pixels.size, n))   # Q, rows back in descending order below
        for j in range(n):
            pair_counts[:, j] = (np.searchsorted(normal_sorted[j], scores, side="left")
                                 + np.searchsorted(normal_sorted[j], scores, side="right"))
        pair_counts = pair_counts[::-1]
        np.add.at(pairs_won, defect_rows[pixels], 0.5 * pair_counts)
        weighted = pair_counts * overlap_weight[pixels, None]
        block_buckets = bucket[pixels]            # ascending within the block
        for b in np.unique(block_buckets):
            if b == needed.size:
                break
            evaluate_up_to(b)
            inside = slice(*np.searchsorted(block_buckets, [b, b + 1]))
            np.add.at(area_terms, defect_rows[pixels[inside]], weighted[inside])
    evaluate_up_to(needed.size)

    rows = np.arange(len(weights))
    with np.errstate(invalid="ignore", divide="ignore"):
        pixel_auroc = np.einsum("ri,ri->r", defect_weights @ pairs_won, weights) / (defects * normals)
        following = np.minimum(last + 1, vertices - 1)
        x0, x1, y0, y1 = fpr[rows, last], fpr[rows, following], pro[rows, last], pro[rows, following]
        # The exact area up to the last vertex; 2 (w . B_t)(w . L_t) / (2 N R) is PRO x (1 - FPR) there.
        area = quadratic / (2.0 * normals * region_total) - y0 * (1.0 - x0)
        # From the last vertex to the limit: linear inside the grid cell, as MVTec interpolates at the limit.
        width = fpr_limit - x0
        slope = np.divide(y1 - y0, x1 - x0, out=np.zeros_like(x0), where=x1 > x0)
        area += 0.5 * (2.0 * y0 + slope * width) * width
        error_bound = np.where(single_segment[np.minimum(last, vertices - 2)], 0.0, width * (y1 - y0) / fpr_limit)
    return {"pixel_auroc": pixel_auroc, "aupro": area / fpr_limit, "aupro_error_bound": error_bound}


def bootstrap_replicates(labels, scores, masks, maps, counts: np.ndarray, metrics=INTERVAL_METRICS
                         ) -> dict[str, np.ndarray]:
    """Replicates [R] of each requested metric for the resamples `counts` [R, N]; arrays as `undefined_reasons`
    returns them (labels int8, scores float64, masks bool, maps float32)."""
    replicates = {}
    if "image_auroc" in metrics:
        replicates["image_auroc"] = image_auroc_replicates(labels, scores, counts)
    if "image_ap" in metrics:
        replicates["image_ap"] = image_ap_replicates(labels, scores, counts)
    if "pixel_auroc" in metrics or "aupro" in metrics:
        pixel = pixel_replicates(masks, maps, counts)
        replicates.update({name: pixel[name] for name in ("pixel_auroc", "aupro") if name in metrics})
    return replicates


def _interval(replicates: np.ndarray, level: float) -> tuple[float | None, float | None]:
    low, high = percentile_interval(replicates, level)
    return (None, None) if math.isnan(low) else (low, high)


def _check_resampling(resamples: int, level: float) -> None:
    if int(resamples) != resamples or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")


def accuracy_with_intervals(labels, scores, masks=None, maps=None, *, resamples: int = DEFAULT_RESAMPLES,
                            level: float = 0.95, seed: int = 0) -> dict:
    """`bench.metrics.compute_all` (same values, None + reason for undefined metrics) plus percentile bootstrap
    intervals for image AUROC, image AP, pixel AUROC and AUPRO: keys `<metric>_ci_low`, `<metric>_ci_high`
    (None when the metric is undefined), `ci_level`, `ci_resamples`, `ci_method`, `undefined_metrics`.

    The same `seed` draws the same resamples for the same labels (paired comparisons rely on it).
    Raises ValueError for malformed input only (shapes, NaN scores or maps, labels not 0/1).
    """
    _check_resampling(resamples, level)
    point = compute_all(labels, scores, masks, maps)
    undefined, (labels, scores, masks, maps) = undefined_reasons(labels, scores, masks, maps)
    counts = stratified_bootstrap_counts(labels, int(resamples), np.random.default_rng(seed))
    defined = [name for name in INTERVAL_METRICS if name not in undefined]
    replicates = bootstrap_replicates(labels, scores, masks, maps, counts, defined)
    out = dict(point)
    for name in INTERVAL_METRICS:
        low, high = _interval(replicates[name], level) if name in replicates else (None, None)
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = low, high
    out.update(ci_level=float(level), ci_resamples=int(resamples), ci_method=CI_METHOD)
    return out


def paired_delta_intervals(labels, masks, base_scores, base_maps, other_scores, other_maps, *,
                           resamples: int = DEFAULT_RESAMPLES, level: float = 0.95, seed: int = 0) -> dict:
    """Differences other - base of image AUROC, pixel AUROC and AUPRO on the same test set, with paired
    percentile bootstrap intervals: both are evaluated on the SAME resampled images, so what the two share
    (the test set's difficulty) cancels. Keys `<metric>_delta`, `<metric>_delta_ci_low`,
    `<metric>_delta_ci_high`; None where the metric is undefined for either side (e.g. no maps, one class).
    The point differences are those of `bench.metrics.compute_all`.
    """
    _check_resampling(resamples, level)
    base = compute_all(labels, base_scores, masks, base_maps)
    other = compute_all(labels, other_scores, masks, other_maps)
    base_undefined, base_arrays = undefined_reasons(labels, base_scores, masks, base_maps)
    other_undefined, other_arrays = undefined_reasons(labels, other_scores, masks, other_maps)
    defined = [m for m in PAIRED_DELTA_METRICS if m not in base_undefined and m not in other_undefined]
    counts = stratified_bootstrap_counts(base_arrays[0], int(resamples), np.random.default_rng(seed))
    base_replicates = bootstrap_replicates(*base_arrays, counts, defined)
    other_replicates = bootstrap_replicates(*other_arrays, counts, defined)
    out: dict = {}
    for name in PAIRED_DELTA_METRICS:
        delta, low, high = None, None, None
        if name in defined:
            delta = other[name] - base[name]
            low, high = _interval(other_replicates[name] - base_replicates[name], level)
        out.update({f"{name}_delta": delta, f"{name}_delta_ci_low": low, f"{name}_delta_ci_high": high})
    return out


__all__ = ["AUPRO_FPR_LIMIT", "CI_METHOD", "DEFAULT_RESAMPLES", "PAIRED_DELTA_METRICS", "INTERVAL_METRICS",
           "accuracy_with_intervals", "bootstrap_replicates", "image_ap_replicates", "image_auroc_replicates",
           "paired_delta_intervals", "pixel_replicates"]
