"""Accuracy metrics for anomaly detection (image level) and localisation (pixel level).

Image metrics take `labels` [N] (0 normal, 1 defective) and `scores` [N] (higher = more anomalous).
Pixel metrics take `masks` [N,H,W] (non-zero = defect) and `maps` [N,H,W] anomaly maps.
AUROC and AP come from scikit-learn; AUPRO is written here and follows the MVTec AD authors' evaluation
code (`pro_curve_util.compute_pro` + `generic_util.trapezoid`) point for point, vectorised.
The single-metric functions raise ValueError when their metric is undefined for the data (one class, masks
without a defect pixel); `compute_all` keeps every defined metric and names the undefined ones with the reason.
Intervals for these metrics: bench/intervals.py.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

# 8-connectivity inside an image, no connection between images: the middle plane of a 3x3x3 stencil.
REGION_STRUCTURE = np.zeros((3, 3, 3), dtype=bool)
REGION_STRUCTURE[1] = True


IMAGE_METRICS = ("image_auroc", "image_ap", "image_f1_max")
PIXEL_METRICS = ("pixel_auroc", "pixel_ap", "aupro")


def image_arrays(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """labels as int8 and scores as float64, both [N]; ValueError for malformed input (not for one class)."""
    labels = np.asarray(labels).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels and scores differ in length: {labels.size} vs {scores.size}")
    if labels.size == 0:
        raise ValueError("no images: labels and scores are empty")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 (normal) or 1 (defective), got values {np.unique(labels)[:10]}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    return labels.astype(np.int8), scores


def image_metrics_undefined(labels: np.ndarray) -> str:
    """Why the image metrics are undefined for these labels ("" when they are defined)."""
    if labels.min() == labels.max():
        return f"the test set has one class only (all {'defective' if labels[0] == 1 else 'normal'})"
    return ""


def _image_inputs(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels, scores = image_arrays(labels, scores)
    reason = image_metrics_undefined(labels)
    if reason:
        raise ValueError(f"{reason}: image AUROC/AP/F1 need both classes")
    return labels, scores


def pixel_arrays(masks, maps) -> tuple[np.ndarray, np.ndarray]:
    """Masks as bool and maps as float32, both (N,H,W); float32 keeps an MVTec category (~8.5M pixels) small.

    float64 maps are thus ranked at float32 precision: scores closer than that become ties.
    ValueError for malformed input (shapes, NaN), not for masks without a defect pixel.
    """
    masks = np.asarray(masks)
    maps = np.asarray(maps)
    if masks.ndim == 2:
        masks = masks[None]
    if maps.ndim == 2:
        maps = maps[None]
    if masks.ndim != 3 or masks.shape != maps.shape:
        raise ValueError(f"masks and maps must both be (N,H,W) of the same shape, got {masks.shape} and {maps.shape}")
    masks = masks != 0 if masks.dtype != bool else masks
    maps = maps.astype(np.float32, copy=False)
    if not np.isfinite(maps).all():
        raise ValueError("anomaly maps contain NaN or infinite values")
    return masks, maps


def pixel_metrics_undefined(masks: np.ndarray) -> str:
    """Why the pixel metrics are undefined for these masks ("" when they are defined)."""
    defect_pixels = int(np.count_nonzero(masks))
    if defect_pixels == 0:
        return "the masks have no defect pixel"
    if defect_pixels == masks.size:
        return "the masks have no normal pixel"
    return ""


def _pixel_inputs(masks, maps) -> tuple[np.ndarray, np.ndarray]:
    masks, maps = pixel_arrays(masks, maps)
    reason = pixel_metrics_undefined(masks)
    if reason:
        raise ValueError(f"{reason}: pixel AUROC/AP and AUPRO need at least one")
    return masks, maps


def image_auroc(labels, scores) -> float:
    labels, scores = _image_inputs(labels, scores)
    return float(roc_auc_score(labels, scores))


def image_ap(labels, scores) -> float:
    labels, scores = _image_inputs(labels, scores)
    return float(average_precision_score(labels, scores))


def image_f1_max(labels, scores) -> float:
    """Best F1 over every threshold of the precision-recall curve."""
    labels, scores = _image_inputs(labels, scores)
    precision, recall, _ = precision_recall_curve(labels, scores)
    denominator = precision + recall
    # The curve's end point (precision 1, recall 0) and empty predictions have F1 0, not 0/0.
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    return float(f1.max())


def pixel_auroc(masks, maps) -> float:
    masks, maps = _pixel_inputs(masks, maps)
    # roc_curve + auc is what roc_auc_score does for two classes, minus its label binarisation of every pixel.
    false_positive_rates, true_positive_rates, _ = roc_curve(masks.ravel(), maps.ravel())
    return float(auc(false_positive_rates, true_positive_rates))


def pixel_ap(masks, maps) -> float:
    masks, maps = _pixel_inputs(masks, maps)
    return float(average_precision_score(masks.ravel(), maps.ravel()))


def pro_curve(masks, maps) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The full per-region-overlap curve: (fprs, pros, thresholds), fpr ascending.

    One point per distinct score t (pixels with score >= t count as positive), plus the (0,0) start and
    (1,1) end that the MVTec code adds (their threshold is +inf and -inf). Same points as `compute_pro`.
    """
    masks, maps = _pixel_inputs(masks, maps)
    return _pro_curve(masks, maps, fpr_limit=None)


def _lowest_needed_score(scores: np.ndarray, regions: np.ndarray, normal_count: int, fpr_limit: float) -> float:
    """Score of the first curve point past `fpr_limit`; no pixel below it changes the area up to the limit.

    That point is reached when the (m+1)-th highest normal score joins, m being the most false positives
    with FPR <= limit; np.partition finds that score without a full sort.
    """
    max_false_positives = math.floor(fpr_limit * normal_count)
    while (max_false_positives + 1) / normal_count <= fpr_limit:
        max_false_positives += 1
    while max_false_positives / normal_count > fpr_limit:
        max_false_positives -= 1
    if max_false_positives >= normal_count:
        return -np.inf
    normal_scores = scores[regions == 0]
    rank = normal_count - 1 - max_false_positives
    return float(np.partition(normal_scores, rank)[rank])


def _pro_curve(masks: np.ndarray, maps: np.ndarray, fpr_limit: float | None):
    regions, region_count = ndimage.label(masks, structure=REGION_STRUCTURE)
    regions = regions.ravel()
    region_sizes = np.bincount(regions, minlength=region_count + 1)
    normal_count = int(region_sizes[0])
    scores = maps.ravel()

    if fpr_limit is not None:
        # Sort only the pixels that can matter up to the limit (about fpr_limit of them, plus the defects).
        lowest = _lowest_needed_score(scores, regions, normal_count, fpr_limit)
        if lowest > -np.inf:
            needed = np.flatnonzero(scores >= lowest)
            scores, regions = scores[needed], regions[needed]
            del needed

    # Sort once, descending; tie order inside a group does not matter because only a group's last point is kept.
    order = np.argsort(scores)[::-1]
    sorted_scores = scores[order]
    sorted_regions = regions[order]
    del order, regions, scores

    is_normal = sorted_regions == 0
    false_positives = np.cumsum(is_normal, dtype=np.int32 if is_normal.size < 2**31 else np.int64)
    # Last pixel of every run of equal scores: the point that has seen the whole tie group (MVTec's keep_mask).
    group_ends = np.flatnonzero(np.append(sorted_scores[1:] != sorted_scores[:-1], True))
    thresholds = sorted_scores[group_ends]
    del sorted_scores
    fprs = false_positives[group_ends] / normal_count
    if fpr_limit is not None:
        # Only the points up to the first one past the limit are needed for the integral.
        last = min(int(np.searchsorted(fprs, fpr_limit, side="right")), len(fprs) - 1)
        group_ends, fprs, thresholds = group_ends[: last + 1], fprs[: last + 1], thresholds[: last + 1]

    # PRO gains 1/(region size)/(region count) for each defect pixel passed; accumulate over defect pixels only.
    defect_regions = sorted_regions[~is_normal]
    del sorted_regions, is_normal
    overlap_steps = 1.0 / region_sizes[defect_regions].astype(np.float64)
    overlap_cumulative = np.concatenate(([0.0], np.cumsum(overlap_steps)))
    defects_passed = group_ends + 1 - false_positives[group_ends]
    pros = overlap_cumulative[defects_passed] / region_count

    fprs = np.clip(fprs, None, 1.0)
    pros = np.clip(pros, None, 1.0)
    fprs = np.concatenate(([0.0], fprs, [1.0]))
    pros = np.concatenate(([0.0], pros, [1.0]))
    thresholds = np.concatenate(([np.inf], thresholds.astype(np.float64), [-np.inf]))
    return fprs, pros, thresholds


def _area_up_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area of y(x) on [0, x_max], x ascending; y at x_max interpolated between its neighbours.

    Same rule as MVTec's `trapezoid(x, y, x_max)`: repeated x values are kept in order.
    """
    correction = 0.0
    if not np.any(x == x_max):
        after = int(np.searchsorted(x, x_max, side="right"))
        dx = x[after] - x[after - 1]
        y_at_limit = y[after - 1] + (y[after] - y[after - 1]) * (x_max - x[after - 1]) / dx
        correction = 0.5 * (y_at_limit + y[after - 1]) * (x_max - x[after - 1])
    keep = x <= x_max
    x, y = x[keep], y[keep]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction)


def aupro(masks, maps, fpr_limit: float = 0.3) -> float:
    """Area under the per-region-overlap curve from FPR 0 to `fpr_limit`, divided by `fpr_limit` (Bergmann et al.)."""
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must lie in (0, 1], got {fpr_limit}")
    masks, maps = _pixel_inputs(masks, maps)
    fprs, pros, _ = _pro_curve(masks, maps, fpr_limit=fpr_limit)
    return _area_up_to(fprs, pros, fpr_limit) / fpr_limit


def undefined_reasons(labels, scores, masks=None, maps=None) -> tuple[dict[str, str], tuple]:
    """Check the inputs of `compute_all`; returns ({metric: why it is undefined}, (labels, scores, masks, maps))
    with the arrays converted. Raises ValueError only for malformed input (shapes, NaN, labels not 0/1)."""
    labels, scores = image_arrays(labels, scores)
    undefined = dict.fromkeys(IMAGE_METRICS, image_metrics_undefined(labels))
    if maps is None:
        pixel_reason = "the model gives no anomaly maps"
    elif masks is None:
        pixel_reason = "the test set has no ground-truth masks"
    else:
        masks, maps = pixel_arrays(masks, maps)
        if len(masks) != len(labels):
            raise ValueError(f"{len(masks)} masks for {len(labels)} labels")
        pixel_reason = pixel_metrics_undefined(masks)
    undefined.update(dict.fromkeys(PIXEL_METRICS, pixel_reason))
    return {name: why for name, why in undefined.items() if why}, (labels, scores, masks, maps)


def describe_undefined(undefined: dict[str, str]) -> str:
    """`{"pixel_auroc": why, "aupro": why}` -> "pixel_auroc, aupro: why" (one clause per reason, "; " between)."""
    by_reason: dict[str, list[str]] = {}
    for name, why in undefined.items():
        by_reason.setdefault(why, []).append(name)
    return "; ".join(f"{', '.join(names)}: {why}" for why, names in by_reason.items())


def compute_all(labels, scores, masks=None, maps=None) -> dict:
    """Every metric on its own: {image_auroc, image_ap, image_f1_max, pixel_auroc, pixel_ap, aupro: float or
    None, undefined_metrics: str}.

    A metric that is undefined for the data is None and `undefined_metrics` says why (e.g. "pixel_auroc,
    pixel_ap, aupro: the masks have no defect pixel"; "" when all are defined): one class only leaves the image
    metrics undefined; no maps, no masks, or masks without a defect (or without a normal) pixel leave the pixel
    metrics undefined. Malformed input (shape mismatch, NaN scores or maps, labels not 0/1) raises ValueError.
    """
    undefined, (labels, scores, masks, maps) = undefined_reasons(labels, scores, masks, maps)
    functions = {"image_auroc": lambda: image_auroc(labels, scores), "image_ap": lambda: image_ap(labels, scores),
                 "image_f1_max": lambda: image_f1_max(labels, scores), "pixel_auroc": lambda: pixel_auroc(masks, maps),
                 "pixel_ap": lambda: pixel_ap(masks, maps), "aupro": lambda: aupro(masks, maps)}
    results: dict = {name: None if name in undefined else compute() for name, compute in functions.items()}
    for name, value in results.items():
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{name} came out as {value}")
    results["undefined_metrics"] = describe_undefined(undefined)
    return results
