"""Operating points: what a detector does at a threshold chosen before any defect is seen, with intervals.

A line engineer deploys a threshold, not an AUROC. This module computes, from numpy arrays (no defectbench
types, no torch):

- thresholds from validation NORMAL images only (`image_threshold`, `pixel_threshold`);
- the rates that threshold realises on the test set (`false_alarm_rate`, `miss_rate`), and the segmentation F1
  of the pixel threshold (`pixel_f1_at_threshold`);
- threshold-free operating points on the test set: recall at a false-alarm rate, false-alarm rate at a recall
  (`recall_at_fpr`, `fpr_at_recall`; anomalib's PGn/PBn idea);
- all of them with 95% intervals (`operating_points_with_intervals`): the two realised rates by exact,
  distribution-free intervals for the true rate at the chosen threshold (`false_alarm_rate_interval`: the
  threshold's own law as an order statistic of the validation normals combined with the test normals' count;
  `miss_rate_interval`: Clopper-Pearson on the test defects), the rest by percentile bootstrap resampling the
  validation normals and the test images together;
- `realised_fpr_spread`: by simulation, how far the realised false-alarm rate lands from its target for a
  given number of validation normals (a table for the README).

Conventions, everywhere in this module:
- An image (or pixel) raises an alarm when its score is STRICTLY ABOVE the threshold: `score > t`.
- Rates are fractions in [0, 1]. In key names the suffix is the TARGET in percent (`_1pct` = target 0.01,
  `_0p5pct` = 0.005), not the unit of the value: `image_fpr_at_val_thr_1pct` = 0.013 means 1.3% of the test
  normals were flagged at the threshold set for 1%.
- Undefined quantities are None with a reason, never a guess. Reasons hold no ':' or ';' (they are joined
  into the record's `undefined_metrics` text, 'name, name: reason; ...', bench.metrics.describe_undefined).
- A rate of `a` cannot be located with fewer than ceil(1/a) normal images (at 1%, 100): below that the
  threshold would have to be the largest normal score, whose false-alarm rate is about 1/(n+1), not `a`.
  The same rule holds for recall at a false-alarm rate (test normals) and, mirrored, for the false-alarm rate
  at a recall `r` (ceil(1/(1-r)) test defects: 95% needs 20, 99% needs 100).

Record keys of `operating_points_with_intervals` (s = `rate_suffix(target)`), each with `<key>_ci_low` and
`<key>_ci_high`:
  image_val_threshold_{s}          score threshold from the validation normals (units of the model's score)
  image_fpr_at_val_thr_{s}         false-alarm rate on the test normals at that threshold
  image_miss_rate_at_val_thr_{s}   miss rate on the test defects at that threshold (1 - recall)
  image_recall_at_fpr_{s}          threshold-free recall at false-alarm rate `target`
  image_fpr_at_recall_{s}          threshold-free false-alarm rate at recall `target` (targets 0.95, 0.99)
  pixel_val_threshold_{s}          map-value threshold from the validation normals' pixels
  pixel_f1_at_val_thr_{s}          segmentation F1 of the test set's pooled pixels at that threshold
and `val_normal_images`, `operating_points_ci_level`, `operating_points_ci_resamples`,
`operating_points_ci_method`, `operating_points_undefined` ('' or 'name, name: reason; ...').
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import beta, norm

from bench.metrics import describe_undefined, image_arrays, pixel_arrays
from bench.stats import percentile_interval, stratified_bootstrap_counts

DEFAULT_TARGET_FPRS = (0.01, 0.05)
DEFAULT_TARGET_RECALLS = (0.95, 0.99)
DEFAULT_RESAMPLES = 10_000  # as bench.intervals
CI_METHOD = ("realised rates at the validation threshold: intervals for the true rate at that threshold, false "
             "alarms from the threshold's order-statistic law Beta(n+1-k, k) combined with the test normals' count "
             "(exact, distribution-free), misses Clopper-Pearson on the test defects; thresholds, recall at a "
             "false-alarm rate, false-alarm rate at a recall and pixel F1: percentile bootstrap resampling the "
             "validation normals and the test images (stratified by label) together")
# Hyndman & Fan (1996) type 8 plotting position: the i-th smallest of n draws sits at the MEDIAN of its
# population CDF value, about (i - 1/3) / (n + 1/3). Used by recall_at_fpr and fpr_at_recall (see there).
_MEDIAN_POSITION = 1.0 / 3.0
_EPS = 1e-9  # guards the floor/ceil of rank arithmetic against 0.99 * 100 = 98.99999...


# -- names and sizes -----------------------------------------------------------------------------------------

def rate_suffix(rate: float) -> str:
    """0.01 -> '1pct', 0.05 -> '5pct', 0.95 -> '95pct', 0.005 -> '0p5pct' (identifier-safe)."""
    _check_rate(rate)
    text = f"{100.0 * rate:.6f}".rstrip("0").rstrip(".")
    return text.replace(".", "p") + "pct"


def min_normals(target_fpr: float) -> int:
    """Normal images needed to locate a false-alarm rate of `target_fpr`: ceil(1 / target_fpr) (1% -> 100)."""
    _check_rate(target_fpr)
    return int(math.ceil(1.0 / target_fpr - _EPS))


def _check_rate(rate: float) -> None:
    if not 0.0 < rate < 1.0:
        raise ValueError(f"a target rate lies in (0, 1), got {rate}")


def _percent(rate: float) -> str:
    return f"{100.0 * rate:g}%"


def _too_few(what: str, have: int, need: int, target: str) -> str:
    return f"{have} {what} but a {target} operating point needs at least {need}"


# -- weighted order statistics: one code path for the point values (weights 1) and every bootstrap resample --

def _conformal_rank(total: np.ndarray, target_fpr: float) -> np.ndarray:
    """1-based rank k = ceil((n + 1)(1 - a)) of the threshold among n normal scores (split-conformal)."""
    return np.ceil((total + 1.0) * (1.0 - target_fpr) - _EPS)


def _kth_smallest(sorted_values: np.ndarray, weights: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Index into `sorted_values` of the rank-th smallest element (1-based; rank may differ per row) of each
    resampled multiset: row r holds `weights[r, i]` copies of sorted_values[i]."""
    cumulative = np.cumsum(weights, axis=1)
    index = np.sum(cumulative < rank[:, None], axis=1)
    return np.minimum(index, sorted_values.size - 1)


def _weight_above(sorted_values: np.ndarray, weights: np.ndarray, thresholds: np.ndarray,
                  strict: bool = True) -> np.ndarray:
    """Per row, the total weight of the values above the row's threshold (> t, or >= t when not strict)."""
    position = np.searchsorted(sorted_values, thresholds, side="right" if strict else "left")
    suffix = np.concatenate([np.cumsum(weights[:, ::-1], axis=1)[:, ::-1],
                             np.zeros((len(weights), 1))], axis=1)
    return suffix[np.arange(len(weights)), position]


def _sorted_with_weights(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(values, kind="stable")
    return values[order], weights[:, order].astype(np.float64)


# -- thresholds from validation normals ------------------------------------------------------------------------

def _image_threshold_rows(sorted_scores: np.ndarray, weights: np.ndarray, target_fpr: float) -> np.ndarray:
    rank = _conformal_rank(weights.sum(axis=1), target_fpr)
    return sorted_scores[_kth_smallest(sorted_scores, weights, rank)]


def image_threshold(val_normal_scores, target_fpr: float) -> tuple[float | None, str]:
    """The image-score threshold for a target false-alarm rate `a`, from validation normal images only.

    t = the k-th smallest of the n validation normals' scores, k = ceil((n + 1)(1 - a)); alarm when score > t.
    At most (n + 1) a - 1 of the validation normals score above t (for n = 100, a = 1%: none above, t is the
    largest; for a = 5%: 4 above). This is the split-conformal choice: a new normal image (exchangeable with
    the validation ones) scores above t with probability at most a, and (n + 1 - k)/(n + 1), which is a or
    just below it, on average over validation sets: the expected false-alarm rate is the target, not above it.
    (The smallest order statistic with at most a n normals above it would have expected rate
    (floor(a n) + 1)/(n + 1): 2/101 at 1% with 100 normals, twice the target.)
    Ties only lower the rate. Returns (t, "") or (None, reason) with fewer than ceil(1/a) normals.
    """
    _check_rate(target_fpr)
    scores = np.asarray(val_normal_scores, dtype=np.float64).ravel()
    if not np.isfinite(scores).all():
        raise ValueError("validation scores contain NaN or infinite values")
    need = min_normals(target_fpr)
    if scores.size < need:
        return None, _too_few("validation normal images", scores.size, need, _percent(target_fpr))
    sorted_scores = np.sort(scores)
    return float(_image_threshold_rows(sorted_scores, np.ones((1, scores.size)), target_fpr)[0]), ""


def _pixel_threshold_rows(val_sorted: list[np.ndarray], weights: np.ndarray, target_fpr: float) -> np.ndarray:
    """Per row of image multiplicities, the conformal pixel threshold of the pooled resampled pixels: the
    smallest pooled value v with (weighted pixels above v) <= N - k, found by bisection over the pooled sorted
    values (exact: the count above changes only at pooled values)."""
    pooled = np.unique(np.concatenate(val_sorted))
    sizes = np.array([v.size for v in val_sorted], dtype=np.float64)
    total = weights @ sizes
    allowed_above = total - _conformal_rank(total, target_fpr)
    low = np.zeros(len(weights), dtype=np.int64)                # invariant: answer index in [low, high]
    high = np.full(len(weights), pooled.size - 1, dtype=np.int64)
    while np.any(low < high):
        middle = (low + high) // 2
        values = pooled[middle]
        above = np.zeros(len(weights))
        for j, image in enumerate(val_sorted):
            above += weights[:, j] * (image.size - np.searchsorted(image, values, side="right"))
        fits = above <= allowed_above
        high = np.where(fits, middle, high)
        low = np.where(fits, low, middle + 1)
    return pooled[low].astype(np.float64)


def pixel_threshold(val_normal_maps, target_fpr: float) -> tuple[float | None, str]:
    """The map-value threshold for a target pixel false-alarm rate `a`, from the validation normals' maps.

    The same rule as `image_threshold` on the validation normals' pixels pooled: the k-th smallest pixel
    value, k = ceil((N + 1)(1 - a)) for N pooled pixels; a pixel is flagged when its value > t. Pixels of one
    image are not independent, so the interval of `operating_points_with_intervals` resamples whole images.
    (None, reason) without maps or with fewer than ceil(1/a) pixels.
    """
    _check_rate(target_fpr)
    if val_normal_maps is None or len(val_normal_maps) == 0:
        return None, "no anomaly maps of validation normal images"
    maps = np.asarray(val_normal_maps, dtype=np.float32)
    if not np.isfinite(maps).all():
        raise ValueError("validation anomaly maps contain NaN or infinite values")
    need = min_normals(target_fpr)
    if maps.size < need:
        return None, _too_few("validation normal pixels", maps.size, need, _percent(target_fpr))
    k = int(_conformal_rank(np.array([maps.size], dtype=np.float64), target_fpr)[0])
    return float(np.partition(maps.ravel(), k - 1)[k - 1]), ""


# -- rates at a threshold ------------------------------------------------------------------------------------

def false_alarm_rate(labels, scores, threshold: float) -> tuple[float | None, str]:
    """Fraction of the test normals (label 0) with score > threshold; (None, reason) without test normals."""
    labels, scores = image_arrays(labels, scores)
    normals = scores[labels == 0]
    if normals.size == 0:
        return None, "the test set has no normal image"
    return float(np.mean(normals > threshold)), ""


def miss_rate(labels, scores, threshold: float) -> tuple[float | None, str]:
    """Fraction of the test defects (label 1) with score <= threshold (not flagged); (None, reason) without."""
    labels, scores = image_arrays(labels, scores)
    defects = scores[labels == 1]
    if defects.size == 0:
        return None, "the test set has no defective image"
    return float(np.mean(defects <= threshold)), ""


def _beta_interval_holding(a: float, b: float, point: float, level: float) -> tuple[float, float]:
    """An interval of Beta(a, b) probability `level`: the equal-tailed one, unless `point` lies outside it; then
    the one of the same probability that starts (or ends) at `point`."""
    tail = (1.0 - level) / 2.0
    at_point = float(beta.cdf(point, a, b))
    if at_point < tail:
        return float(point), float(beta.ppf(at_point + level, a, b))
    if at_point > 1.0 - tail:
        return float(beta.ppf(at_point - level, a, b)), float(point)
    return float(beta.ppf(tail, a, b)), float(beta.ppf(1.0 - tail, a, b))


def false_alarm_rate_interval(val_normal_scores, threshold: float, flagged: int, test_normals: int,
                              level: float = 0.95) -> tuple[float, float]:
    """Interval for the TRUE false-alarm rate F(t) = P(normal score > t) of a threshold t chosen from the n
    validation normals, given that `flagged` of `test_normals` test normals scored above it.

    Why it is exact: t is the k-th smallest of n validation normals, so for continuous scores F(t) is
    distributed as one minus the k-th of n uniforms, Beta(n + 1 - k, k), whatever the score distribution
    (this is the threshold's own uncertainty: where the k-th normal happened to land). The test normals are
    independent of t: given F(t), `flagged` is Binomial(m, F(t)). So, given `flagged` = x, F(t) is distributed
    Beta(n + 1 - k + x, k + m - x) (a conditional law, not a prior), and any interval holding `level` of it
    covers F(t) in exactly `level` of data sets. The interval is the equal-tailed one, moved (with the same
    probability) to start or end at the realised rate x/m when that lies outside it (x = 0 gives [0, upper]);
    this depends on x only, so the coverage stays exact. With ties at t, k is read as the number of
    validation normals at or below t (approximate then: ties only lower F(t)). Assumes the test normals are
    exchangeable with the validation normals, as the split-conformal threshold itself does.
    """
    val = np.asarray(val_normal_scores, dtype=np.float64).ravel()
    above = int(np.sum(val > threshold))
    at_or_below = val.size - above
    if test_normals < 1 or not 0 <= flagged <= test_normals or at_or_below < 1:
        raise ValueError(f"need 0 <= flagged ({flagged}) <= test normals ({test_normals}) and the threshold at or "
                         "above a validation normal")
    return _beta_interval_holding(above + 1.0 + flagged, at_or_below + test_normals - flagged,
                                  flagged / test_normals, level)


def miss_rate_interval(missed: int, defects: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval for the TRUE miss rate M(t) = P(defect score <= t) at a threshold t, from
    `missed` of `defects` test defects at or below it. Exact (coverage at least `level`): the test defects are
    independent of the validation normals that set t, so given t, `missed` is Binomial(defects, M(t)). No
    other data speaks about defects' scores, so nothing narrower is honest."""
    if defects < 1 or not 0 <= missed <= defects:
        raise ValueError(f"need 0 <= missed ({missed}) <= defects ({defects})")
    tail = (1.0 - level) / 2.0
    low = 0.0 if missed == 0 else float(beta.ppf(tail, missed, defects - missed + 1))
    high = 1.0 if missed == defects else float(beta.ppf(1.0 - tail, missed + 1, defects - missed))
    return low, high


# -- threshold-free operating points ---------------------------------------------------------------------------

def _interpolated_rate(reference_sorted: np.ndarray, reference_weights: np.ndarray, other_sorted: np.ndarray,
                       other_weights: np.ndarray, cdf_target: float, strict: bool) -> np.ndarray:
    """Rate of the `other` class beyond a threshold placed in the `reference` class at CDF value `cdf_target`.

    The i-th smallest reference score is put at its median plotting position (i - 1/3)/(n + 1/3); the
    fractional rank i + f with position cdf_target lies between two order statistics, and the other class's
    rate (weight above the threshold / total) is interpolated linearly between the two (a line between two
    neighbouring ROC vertices). Rows are resamples.
    """
    n = reference_weights.sum(axis=1)
    rank = cdf_target * (n + 1.0 - 2.0 * _MEDIAN_POSITION) + _MEDIAN_POSITION
    lower = np.floor(rank + _EPS)
    fraction = np.clip(rank - lower, 0.0, 1.0)
    lower = np.maximum(lower, 1.0)
    upper = np.minimum(lower + 1.0, n)
    other_total = other_weights.sum(axis=1)
    rates = []
    for k in (lower, upper):
        t = reference_sorted[_kth_smallest(reference_sorted, reference_weights, k)]
        if strict:   # threshold AT a normal's score: defects strictly above are flagged
            rates.append(_weight_above(other_sorted, other_weights, t, strict=True) / other_total)
        else:        # threshold just BELOW a defect's score: normals at or above it are flagged
            rates.append(_weight_above(other_sorted, other_weights, t, strict=False) / other_total)
    return rates[0] + fraction * (rates[1] - rates[0])


def _recall_at_fpr_rows(normal_sorted, normal_weights, defect_sorted, defect_weights, target_fpr):
    return _interpolated_rate(normal_sorted, normal_weights, defect_sorted, defect_weights, 1.0 - target_fpr, True)


def _fpr_at_recall_rows(normal_sorted, normal_weights, defect_sorted, defect_weights, target_recall):
    # The threshold sits just below the defect at the defects' (1 - recall) quantile; normals at or above it are
    # false alarms.
    return _interpolated_rate(defect_sorted, defect_weights, normal_sorted, normal_weights, 1.0 - target_recall, False)


def _split(labels, scores):
    labels, scores = image_arrays(labels, scores)
    return np.sort(scores[labels == 0]), np.sort(scores[labels == 1])


def recall_at_fpr(labels, scores, target_fpr: float) -> tuple[float | None, str]:
    """Threshold-free recall (fraction of test defects flagged) at false-alarm rate `target_fpr`.

    How: the threshold is put at the test normals' (1 - a) quantile and the recall read there, by linear
    interpolation between ROC vertices. With m test normals sorted ascending, y_(1) <= ... <= y_(m), the
    vertex with threshold y_(i) (defects with score > y_(i) flagged) is placed at false-alarm rate
    1 - (i - 1/3)/(m + 1/3), the MEDIAN of the population false-alarm rate of that threshold (Hyndman & Fan
    type 8), not at the empirical (m - i)/m: the empirical ROC curve puts the threshold just above the top
    normal at FPR 0, although that threshold's population FPR is about 1/(m+1), which makes interpolated
    recall at a small FPR optimistic (binormal AUROC 0.8, 30 normals + 40 defects, 5%: 0.347 on average,
    truth 0.325; at 1% with 100 normals 0.177 against 0.128). Vertex positions at the mean, i/(m+1),
    are pessimistic by Jensen's inequality (the ROC curve is concave: 0.291 and 0.113); the median position
    is within about 0.01 of the truth in tests/test_operating_points.py's simulations. Ties: tied normals
    are distinct order statistics with the same threshold; a defect tied with the threshold is not flagged.
    Returns (None, reason) when the test set has fewer than ceil(1/a) normals or no defect.
    """
    _check_rate(target_fpr)
    normals, defects = _split(labels, scores)
    need = min_normals(target_fpr)
    if defects.size == 0:
        return None, "the test set has no defective image"
    if normals.size < need:
        return None, _too_few("test normal images", normals.size, need, _percent(target_fpr) + " false-alarm")
    value = _recall_at_fpr_rows(normals, np.ones((1, normals.size)), defects, np.ones((1, defects.size)), target_fpr)
    return float(value[0]), ""


def fpr_at_recall(labels, scores, target_recall: float) -> tuple[float | None, str]:
    """Threshold-free false-alarm rate at recall `target_recall` (PBn-like: the workload a miss rate costs).

    The mirror of `recall_at_fpr`: with p test defects sorted ascending x_(1) <= ... <= x_(p), the vertex whose
    threshold lies just below x_(i) (x_(i) and every defect above it flagged, so are normals scoring >= x_(i))
    is placed at recall 1 - (i - 1/3)/(p + 1/3), and the false-alarm rate is interpolated linearly between the
    two vertices around `target_recall`. Returns (None, reason) with fewer than ceil(1/(1 - r)) test defects
    (95% needs 20, 99% needs 100) or no test normal.
    """
    _check_rate(target_recall)
    normals, defects = _split(labels, scores)
    need = min_normals(1.0 - target_recall)
    if normals.size == 0:
        return None, "the test set has no normal image"
    if defects.size == 0:
        return None, "the test set has no defective image"
    if defects.size < need:
        return None, _too_few("test defective images", defects.size, need, _percent(target_recall) + " recall")
    value = _fpr_at_recall_rows(normals, np.ones((1, normals.size)), defects, np.ones((1, defects.size)),
                                target_recall)
    return float(value[0]), ""


# -- pixel level -------------------------------------------------------------------------------------------

def _test_pixels(masks: np.ndarray, maps: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per test image, its defect pixels' and its normal pixels' map values, each sorted."""
    flat_masks, flat_maps = masks.reshape(len(masks), -1), maps.reshape(len(maps), -1)
    return ([np.sort(m[k]) for m, k in zip(flat_maps, flat_masks)],
            [np.sort(m[~k]) for m, k in zip(flat_maps, flat_masks)])


def _pixel_f1_rows(defect_pixels, normal_pixels, weights: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """F1 = 2 TP / (2 TP + FP + FN) of the resampled test set's pooled pixels at each row's threshold."""
    true_positive = np.zeros(len(weights))
    false_positive = np.zeros(len(weights))
    defect_total = weights @ np.array([d.size for d in defect_pixels], dtype=np.float64)
    for i, (defect, normal) in enumerate(zip(defect_pixels, normal_pixels)):
        if defect.size:
            true_positive += weights[:, i] * (defect.size - np.searchsorted(defect, thresholds, side="right"))
        if normal.size:
            false_positive += weights[:, i] * (normal.size - np.searchsorted(normal, thresholds, side="right"))
    denominator = true_positive + defect_total + false_positive  # 2 TP + FP + FN, FN = defects - TP
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2.0 * true_positive / denominator, np.nan)


def _pixel_reason(masks, maps) -> str:
    if maps is None:
        return "the model gives no anomaly maps"
    if masks is None:
        return "the test set has no ground-truth masks"
    if not np.any(masks):
        return "the masks have no defect pixel"
    return ""


def pixel_f1_at_threshold(masks, maps, threshold: float) -> tuple[float | None, str]:
    """Segmentation F1 at a fixed map threshold (the SegF1 idea): every pixel of the test set POOLED (normal
    images' pixels included: their false alarms count), flagged when value > threshold;
    F1 = 2 TP / (2 TP + FP + FN). (None, reason) without maps, masks, or a defect pixel."""
    reason = _pixel_reason(masks, maps)
    if reason:
        return None, reason
    masks, maps = pixel_arrays(masks, maps)
    defect_pixels, normal_pixels = _test_pixels(masks, maps)
    value = _pixel_f1_rows(defect_pixels, normal_pixels, np.ones((1, len(masks))), np.array([threshold]))
    return float(value[0]), ""


# -- everything with intervals ------------------------------------------------------------------------------

def _interval(replicates: np.ndarray, level: float) -> tuple[float | None, float | None]:
    low, high = percentile_interval(replicates, level)
    return (None, None) if math.isnan(low) else (low, high)


def operating_points_with_intervals(val_normal_scores, labels, scores, val_normal_maps=None, masks=None,
                                    maps=None, *, target_fprs=DEFAULT_TARGET_FPRS,
                                    target_recalls=DEFAULT_TARGET_RECALLS, resamples: int = DEFAULT_RESAMPLES,
                                    level: float = 0.95, seed: int = 0) -> dict:
    """Every operating point of one model on one category, with intervals; keys in the module docstring.
    Arguments: the validation normals' image scores [n] (and maps [n,H,W]), the test
    labels [N] (0 normal, 1 defective), scores [N], masks and maps [N,H,W] (optional).

    The two realised rates at the validation threshold, image_fpr_at_val_thr_{s} and
    image_miss_rate_at_val_thr_{s}: the point is the rate on the test set; the interval is for the TRUE rate at
    the threshold this validation set gave, the rate a line running that threshold gets in the long run
    (`false_alarm_rate_interval`, `miss_rate_interval`: exact and distribution-free; the false-alarm one holds
    the threshold's own uncertainty through the order-statistic law of the k-th validation normal, so it
    pools what the validation and the test normals say). tests/test_operating_points.py checks by simulation
    that they cover the true rates in 92-98% of data sets, also for the 1% threshold of 100 normals (their
    maximum), where the earlier bootstrap interval covered only 0.875 (false alarms) and 0.742 (misses): the
    bootstrap of a sample maximum cannot reach above it.

    The other intervals, by bootstrap: each of `resamples` resamples draws the test images with replacement
    within each label (bench.stats.stratified_bootstrap_counts, drawn first from default_rng(seed): the same
    test resamples as bench.intervals.accuracy_with_intervals with that seed) and, independently, the
    validation normals with replacement (the same validation draw for the image and the pixel threshold).
    The thresholds are chosen again in every resample, so the pixel F1 interval holds the pixel threshold's
    noise as well as the test set's. Threshold-free points (recall at FPR, FPR at recall) resample the test
    images only. Replicates where a quantity is undefined (NaN) are left out, as in
    bench.stats.percentile_interval; an undefined point value has no interval.
    """
    if int(resamples) != resamples or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    labels, scores = image_arrays(labels, scores)
    val_scores = np.asarray(val_normal_scores, dtype=np.float64).ravel()
    if not np.isfinite(val_scores).all():
        raise ValueError("validation scores contain NaN or infinite values")
    rng = np.random.default_rng(seed)
    test_counts = stratified_bootstrap_counts(labels, int(resamples), rng).astype(np.float64)
    val_counts = (stratified_bootstrap_counts(np.zeros(val_scores.size), int(resamples), rng).astype(np.float64)
                  if val_scores.size else np.zeros((int(resamples), 0)))

    normal, defect = labels == 0, labels == 1
    normal_sorted, normal_weights = _sorted_with_weights(scores[normal], test_counts[:, normal])
    defect_sorted, defect_weights = _sorted_with_weights(scores[defect], test_counts[:, defect])
    val_sorted, val_weights = _sorted_with_weights(val_scores, val_counts)

    out: dict = {}
    undefined: dict[str, str] = {}

    def put(key: str, point: float | None, reason: str, replicates=None) -> None:
        out[key] = point
        low = high = None
        if point is None:
            undefined[key] = reason
        elif replicates is not None:
            low, high = _interval(replicates, level)
        out[f"{key}_ci_low"], out[f"{key}_ci_high"] = low, high

    pixel_reason = _pixel_reason(masks, maps)
    if not pixel_reason:
        masks, maps = pixel_arrays(masks, maps)
        if len(masks) != labels.size:
            raise ValueError(f"{len(masks)} masks for {labels.size} labels")
        defect_pixels, normal_pixels = _test_pixels(masks, maps)
        if val_normal_maps is None or len(val_normal_maps) == 0:
            pixel_reason = "no anomaly maps of validation normal images"
        else:
            val_maps = np.asarray(val_normal_maps, dtype=np.float32)
            if len(val_maps) != val_scores.size:
                raise ValueError(f"{len(val_maps)} validation maps for {val_scores.size} validation scores")
            if not np.isfinite(val_maps).all():
                raise ValueError("validation anomaly maps contain NaN or infinite values")
            val_pixels = [np.sort(m.ravel()) for m in val_maps]

    for target in target_fprs:
        s = rate_suffix(target)
        # image threshold and the rates it realises
        threshold, reason = image_threshold(val_scores, target)
        replicates = _image_threshold_rows(val_sorted, val_weights, target) if threshold is not None else None
        put(f"image_val_threshold_{s}", threshold, reason, replicates)
        for key, point_fn in ((f"image_fpr_at_val_thr_{s}", false_alarm_rate),
                              (f"image_miss_rate_at_val_thr_{s}", miss_rate)):
            if threshold is None:
                put(key, None, reason)
                continue
            point, why = point_fn(labels, scores, threshold)
            put(key, point, why)
            if point is None:
                continue
            if point_fn is false_alarm_rate:
                flagged = int(np.sum(scores[normal] > threshold))
                low, high = false_alarm_rate_interval(val_scores, threshold, flagged, int(normal.sum()), level)
            else:
                low, high = miss_rate_interval(int(np.sum(scores[defect] <= threshold)), int(defect.sum()), level)
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = low, high
        # threshold-free recall at this false-alarm rate
        point, why = recall_at_fpr(labels, scores, target)
        put(f"image_recall_at_fpr_{s}", point, why,
            None if point is None else _recall_at_fpr_rows(normal_sorted, normal_weights, defect_sorted,
                                                           defect_weights, target))
        # pixel threshold and the segmentation F1 it gives
        key_thr, key_f1 = f"pixel_val_threshold_{s}", f"pixel_f1_at_val_thr_{s}"
        if pixel_reason:
            put(key_thr, None, pixel_reason)
            put(key_f1, None, pixel_reason)
            continue
        pixel_thr, why = pixel_threshold(val_maps, target)
        if pixel_thr is None:
            put(key_thr, None, why)
            put(key_f1, None, why)
            continue
        thresholds = _pixel_threshold_rows(val_pixels, val_counts, target)
        put(key_thr, pixel_thr, "", thresholds)
        f1 = _pixel_f1_rows(defect_pixels, normal_pixels, np.ones((1, labels.size)), np.array([pixel_thr]))[0]
        put(key_f1, float(f1), "", _pixel_f1_rows(defect_pixels, normal_pixels, test_counts, thresholds))

    for target in target_recalls:
        point, why = fpr_at_recall(labels, scores, target)
        put(f"image_fpr_at_recall_{rate_suffix(target)}", point, why,
            None if point is None else _fpr_at_recall_rows(normal_sorted, normal_weights, defect_sorted,
                                                           defect_weights, target))

    out.update(val_normal_images=int(val_scores.size), operating_points_ci_level=float(level),
               operating_points_ci_resamples=int(resamples), operating_points_ci_method=CI_METHOD,
               operating_points_undefined=describe_undefined(undefined))
    return out


def recall_at_fpr_replicates(labels, scores, counts: np.ndarray, target_fpr: float) -> np.ndarray:
    """`recall_at_fpr` of each bootstrap resample (rows of `counts`, image multiplicities [R, N]); for paired
    comparisons of two models on the same resamples (bench.ranking). The caller checks definedness."""
    labels, scores = image_arrays(labels, scores)
    counts = np.asarray(counts, dtype=np.float64)
    normal, defect = labels == 0, labels == 1
    normal_sorted, normal_weights = _sorted_with_weights(scores[normal], counts[:, normal])
    defect_sorted, defect_weights = _sorted_with_weights(scores[defect], counts[:, defect])
    return _recall_at_fpr_rows(normal_sorted, normal_weights, defect_sorted, defect_weights, target_fpr)


# -- how many validation normals: the spread of the realised false-alarm rate -----------------------------------

def realised_fpr_spread(val_sizes=(10, 30, 100, 300), target_fprs=(0.01, 0.05, 0.10), simulations: int = 20_000,
                        seed: int = 0) -> list[dict]:
    """How far the false-alarm rate a line really gets lands from its target, by simulation.

    Normal scores are N(0, 1) (any continuous distribution gives the same table: the rule uses ranks only).
    For each n and target a, `simulations` validation sets of n normals each give a threshold t by
    `image_threshold`; the realised rate is the population rate 1 - Phi(t) (an infinite test set). Rows:
    {val_normals, target_fpr, defined, mean_fpr, median_abs_deviation (median |rate - a|), p05, p95 (the
    90% range of the rate)}; a row with defined False has None figures (fewer than ceil(1/a) normals).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for n in val_sizes:
        draws = np.sort(rng.standard_normal((simulations, n)), axis=1)
        for target in target_fprs:
            row = {"val_normals": int(n), "target_fpr": float(target), "defined": n >= min_normals(target)}
            if row["defined"]:
                k = int(_conformal_rank(np.array([float(n)]), target)[0])
                rates = norm.sf(draws[:, k - 1])
                p05, p95 = np.quantile(rates, [0.05, 0.95])
                row.update(mean_fpr=float(rates.mean()), median_abs_deviation=float(np.median(np.abs(rates - target))),
                           p05=float(p05), p95=float(p95))
            else:
                row.update(mean_fpr=None, median_abs_deviation=None, p05=None, p95=None)
            rows.append(row)
    return rows


def format_fpr_spread(rows: list[dict]) -> str:
    """`realised_fpr_spread`'s rows as a markdown table (percentages)."""
    lines = ["| validation normals | target | mean realised | median abs. deviation | 90% range |",
             "| ---: | ---: | ---: | ---: | :---: |"]
    for row in rows:
        if not row["defined"]:
            lines.append(f"| {row['val_normals']} | {_percent(row['target_fpr'])} | undefined (needs "
                         f"{min_normals(row['target_fpr'])}) | | |")
            continue
        lines.append(f"| {row['val_normals']} | {_percent(row['target_fpr'])} | {100 * row['mean_fpr']:.2f}% | "
                     f"{100 * row['median_abs_deviation']:.2f} pts | {100 * row['p05']:.2f}%-{100 * row['p95']:.2f}% |")
    return "\n".join(lines)


__all__ = ["CI_METHOD", "DEFAULT_RESAMPLES", "DEFAULT_TARGET_FPRS", "DEFAULT_TARGET_RECALLS", "false_alarm_rate",
           "false_alarm_rate_interval", "format_fpr_spread", "fpr_at_recall", "image_threshold", "min_normals",
           "miss_rate", "miss_rate_interval", "operating_points_with_intervals", "pixel_f1_at_threshold",
           "pixel_threshold", "rate_suffix", "realised_fpr_spread", "recall_at_fpr", "recall_at_fpr_replicates"]
