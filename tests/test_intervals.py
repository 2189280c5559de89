"""bench/intervals.py: the fast bootstrap replicates against the slow truth (the metrics of the explicitly
resampled test set), interval honesty by simulation, undefined metrics, paired deltas.

Evaluation-time overhead of the intervals on the default synthetic set is a measurement, not a test: see
the report of issue 10 (DEFAULT_RESAMPLES was chosen from it).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from bench import metrics
from bench.intervals import (
    CI_METHOD,
    DEFAULT_RESAMPLES,
    accuracy_with_intervals,
    bootstrap_replicates,
    image_ap_replicates,
    image_auroc_replicates,
    paired_delta_intervals,
    pixel_replicates,
)
from bench.metrics import compute_all
from bench.stats import delong_interval, percentile_interval, stratified_bootstrap_counts

METRIC_KEYS = {"image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "aupro"}
INTERVAL_KEYS = {f"{m}_ci_{side}" for m in ("image_auroc", "image_ap", "pixel_auroc", "aupro") for side in ("low", "high")}


def _test_set(seed: int, n_normal: int = 8, n_defective: int = 10, size: int = 32, signal: float = 1.2,
              image_effect: float = 0.3, kind: str = "continuous"):
    """labels, image scores, masks (bool) and maps (float32) of a small segmentation test set.

    Defective images carry 1-3 rectangles (some touching: regions of several shapes); every image gets its
    own offset (`image_effect`), so images differ as they do in real data. `kind`: "continuous" maps,
    "quantised" (steps of 1/8: heavy ties), "mostly_zero" (a ReLU: ~90% of the pixels exactly 0).
    Image scores are the maps' maxima rounded to 0.1 (ties between images).
    """
    rng = np.random.default_rng(seed)
    n = n_normal + n_defective
    labels = np.repeat(np.array([0, 1], dtype=np.int8), [n_normal, n_defective])
    masks = np.zeros((n, size, size), dtype=bool)
    for image in range(n_normal, n):
        for _ in range(rng.integers(1, 4)):
            h, w = rng.integers(2, size // 3, size=2)
            r, c = rng.integers(0, size - h), rng.integers(0, size - w)
            masks[image, r:r + h, c:c + w] = True
    maps = (rng.standard_normal((n, size, size)) + signal * masks
            + image_effect * rng.standard_normal(n)[:, None, None])
    if kind == "quantised":
        maps = np.round(maps * 8) / 8
    elif kind == "mostly_zero":
        maps = np.maximum(maps - 1.3, 0.0)
    maps = maps.astype(np.float32)
    scores = np.round(maps.reshape(n, -1).max(axis=1).astype(np.float64), 1)
    return labels, scores, masks, maps


def _resampled(counts_row: np.ndarray, *arrays):
    index = np.repeat(np.arange(len(counts_row)), counts_row)
    return [a[index] for a in arrays]


# --- the fast replicates equal the slow truth --------------------------------------------------------

@pytest.mark.parametrize("kind", ["continuous", "quantised", "mostly_zero"])
def test_replicates_equal_the_metrics_of_the_explicitly_resampled_test_set(kind):
    labels, scores, masks, maps = _test_set(seed=1, kind=kind)
    counts = stratified_bootstrap_counts(labels, 6, np.random.default_rng(0))
    counts = np.vstack([np.ones(len(labels), dtype=np.int64), counts])  # row 0: the test set itself
    image_auroc = image_auroc_replicates(labels, scores, counts)
    image_ap = image_ap_replicates(labels, scores, counts)
    pixel = pixel_replicates(masks, maps, counts)
    for r, row in enumerate(counts):
        l, s, m, p = _resampled(row, labels, scores, masks, maps)
        assert image_auroc[r] == pytest.approx(roc_auc_score(l, s), abs=1e-12)
        assert image_ap[r] == pytest.approx(average_precision_score(l, s), abs=1e-12)
        assert pixel["pixel_auroc"][r] == pytest.approx(metrics.pixel_auroc(m, p), abs=1e-12)
        # AUPRO: exact but for the linear piece inside one grid cell at FPR 0.3, within its reported bound.
        error = abs(pixel["aupro"][r] - metrics.aupro(m, p))
        assert error <= pixel["aupro_error_bound"][r] + 1e-12
        assert error < 1e-4
    if kind != "continuous":
        # Ties put every score that matters in the grid (or make the cell one straight segment): exact.
        assert np.all(pixel["aupro_error_bound"] == 0.0)


def test_aupro_grid_error_is_tiny_at_the_size_of_a_synthetic_category():
    # 30 normal + 40 defective 128 x 128 images (~0.5% defect pixels, as in the synthetic set), 2,000 resamples.
    labels, scores, masks, maps = _test_set(seed=2, n_normal=30, n_defective=40, size=128, signal=1.5)
    counts = stratified_bootstrap_counts(labels, 2000, np.random.default_rng(1))
    pixel = pixel_replicates(masks, maps, counts)
    # Max over the resamples: 7e-5 here; 3.2e-4 on pixel_stats' synthetic screw maps (10,000 resamples).
    assert np.nanmax(pixel["aupro_error_bound"]) < 1e-3
    assert np.nanmedian(pixel["aupro_error_bound"]) < 1e-4
    for r in (0, 1):
        m, p = _resampled(counts[r], masks, maps)
        assert abs(pixel["aupro"][r] - metrics.aupro(m, p)) <= pixel["aupro_error_bound"][r] + 1e-12


def test_a_resample_without_defect_pixels_is_nan_and_left_out():
    # Of three images labelled defective only one has a mask: about 30% of the resamples miss it.
    labels, scores, masks, maps = _test_set(seed=3, n_normal=5, n_defective=3)
    masks[-2:] = False
    counts = stratified_bootstrap_counts(labels, 400, np.random.default_rng(2))
    pixel = pixel_replicates(masks, maps, counts)
    missing = counts[:, -3] == 0
    assert 0.2 < missing.mean() < 0.4
    assert np.all(np.isnan(pixel["pixel_auroc"][missing])) and np.all(np.isnan(pixel["aupro"][missing]))
    assert np.all(np.isfinite(pixel["pixel_auroc"][~missing]))
    result = accuracy_with_intervals(labels, scores, masks, maps, resamples=400, seed=2)
    assert result["pixel_auroc_ci_low"] == pytest.approx(percentile_interval(pixel["pixel_auroc"])[0])


# --- interval honesty --------------------------------------------------------------------------------

def test_pixel_auroc_interval_covers_the_true_value_when_images_differ():
    """Pixels of one image are not independent (each image has its own offset), so the bootstrap must resample
    images. Model: pixel score = image offset N(0, 0.5^2) + noise N(0, 1) + 1 on a 4 x 4 defect; the pixel
    AUROC of many images tends to P(defect pixel > normal pixel of another image) = Phi(1 / sqrt(2.5)).
    30 normal + 40 defective 16 x 16 images; 95% interval from 1,000 resamples, 400 simulated test sets.
    Measured: 0.935; an interval that takes the pixels as independent (DeLong's on the pooled pixels) 0.828."""
    true_auroc = norm.cdf(1.0 / math.sqrt(2.5))
    rng = np.random.default_rng(21)
    labels = np.repeat(np.array([0, 1], dtype=np.int8), [30, 40])
    masks = np.zeros((70, 16, 16), dtype=bool)
    masks[30:, 6:10, 6:10] = True
    covered = covered_if_pixels_were_independent = 0
    for _ in range(400):
        maps = (0.5 * rng.standard_normal(70)[:, None, None] + rng.standard_normal((70, 16, 16)) + masks)
        counts = stratified_bootstrap_counts(labels, 1000, rng)
        low, high = percentile_interval(pixel_replicates(masks, maps.astype(np.float32), counts)["pixel_auroc"])
        covered += low <= true_auroc <= high
        low, high = delong_interval(masks.ravel().astype(np.int8), maps.ravel())
        covered_if_pixels_were_independent += low <= true_auroc <= high
    assert 0.92 <= covered / 400 <= 0.98
    assert covered_if_pixels_were_independent / 400 < 0.9  # the test tells the right resampling unit from the wrong one


# --- the record: point values, interval keys, undefined metrics --------------------------------------

def test_point_values_are_those_of_compute_all_and_intervals_bracket_them():
    labels, scores, masks, maps = _test_set(seed=4, n_normal=12, n_defective=15)
    result = accuracy_with_intervals(labels, scores, masks, maps, resamples=500)
    assert set(result) == METRIC_KEYS | INTERVAL_KEYS | {"ci_level", "ci_resamples", "ci_method", "undefined_metrics"}
    point = compute_all(labels, scores, masks, maps)
    for key in METRIC_KEYS:
        assert result[key] == point[key]  # the same number, bit for bit
    for name in ("image_auroc", "image_ap", "pixel_auroc", "aupro"):
        low, high = result[f"{name}_ci_low"], result[f"{name}_ci_high"]
        assert 0.0 <= low < high <= 1.0
        assert low <= result[name] <= high
    assert (result["ci_level"], result["ci_resamples"], result["ci_method"], result["undefined_metrics"]) == \
        (0.95, 500, CI_METHOD, "")
    assert "percentile bootstrap over test images, stratified by label" in CI_METHOD
    assert DEFAULT_RESAMPLES >= 2000  # the issue asks for 2,000+ where fast methods allow


def test_intervals_follow_seed_and_level():
    labels, scores, masks, maps = _test_set(seed=5)
    first = accuracy_with_intervals(labels, scores, masks, maps, resamples=300, seed=3)
    assert first == accuracy_with_intervals(labels, scores, masks, maps, resamples=300, seed=3)
    other_seed = accuracy_with_intervals(labels, scores, masks, maps, resamples=300, seed=4)
    assert other_seed["image_auroc_ci_low"] != first["image_auroc_ci_low"] or \
        other_seed["aupro_ci_low"] != first["aupro_ci_low"]
    narrow = accuracy_with_intervals(labels, scores, masks, maps, resamples=300, seed=3, level=0.5)
    for name in ("image_auroc", "pixel_auroc", "aupro"):
        assert narrow[f"{name}_ci_high"] - narrow[f"{name}_ci_low"] < first[f"{name}_ci_high"] - first[f"{name}_ci_low"]


def test_without_maps_the_image_metrics_and_their_intervals_stay():
    labels, scores, masks, _ = _test_set(seed=6)
    result = accuracy_with_intervals(labels, scores, resamples=200)
    assert result["image_auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert result["image_auroc_ci_low"] < result["image_auroc"] < result["image_auroc_ci_high"]
    assert all(result[k] is None for k in ("pixel_auroc", "pixel_ap", "aupro", "pixel_auroc_ci_low", "aupro_ci_high"))
    assert result["undefined_metrics"] == "pixel_auroc, pixel_ap, aupro: the model gives no anomaly maps"
    no_masks = accuracy_with_intervals(labels, scores, None, np.zeros(masks.shape, np.float32), resamples=200)
    assert no_masks["undefined_metrics"] == "pixel_auroc, pixel_ap, aupro: the test set has no ground-truth masks"


def test_masks_without_a_defect_pixel_leave_only_the_pixel_metrics_undefined():
    # A folder dataset without mask/: the loader gives all-zero masks for every image, defective ones too.
    labels, scores, masks, maps = _test_set(seed=7)
    result = accuracy_with_intervals(labels, scores, np.zeros_like(masks), maps, resamples=200)
    assert result["image_auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert result["image_ap_ci_low"] is not None and result["image_f1_max"] is not None
    assert result["pixel_auroc"] is None and result["aupro"] is None and result["aupro_ci_low"] is None
    assert result["undefined_metrics"] == "pixel_auroc, pixel_ap, aupro: the masks have no defect pixel"


def test_one_class_keeps_nothing_image_level_and_says_why():
    labels, scores, masks, maps = _test_set(seed=8)
    normal_only = accuracy_with_intervals(labels[:8], scores[:8], masks[:8], maps[:8], resamples=200)
    assert all(normal_only[k] is None for k in METRIC_KEYS | INTERVAL_KEYS)
    assert normal_only["undefined_metrics"] == (
        "image_auroc, image_ap, image_f1_max: the test set has one class only (all normal); "
        "pixel_auroc, pixel_ap, aupro: the masks have no defect pixel")
    # Defective images only: no image metric, but their masks hold normal pixels, so the pixel metrics stay.
    defective_only = accuracy_with_intervals(labels[8:], scores[8:], masks[8:], maps[8:], resamples=200)
    assert defective_only["image_auroc"] is None and defective_only["image_auroc_ci_low"] is None
    assert defective_only["pixel_auroc"] == metrics.pixel_auroc(masks[8:], maps[8:])
    assert defective_only["aupro_ci_low"] <= defective_only["aupro"] <= defective_only["aupro_ci_high"]
    assert defective_only["undefined_metrics"] == \
        "image_auroc, image_ap, image_f1_max: the test set has one class only (all defective)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda l, s, m, p: (l, s[:-1], m, p), "differ in length"),
        (lambda l, s, m, p: (l, np.where(np.arange(s.size) == 2, np.nan, s), m, p), "NaN"),
        (lambda l, s, m, p: (l, s, m, np.where(m, np.nan, p)), "NaN"),
        (lambda l, s, m, p: (l, s, m[:, :-1], p), "same shape"),
        (lambda l, s, m, p: (l, s, m[:-1], p[:-1]), "masks for"),
        (lambda l, s, m, p: (l + 1, s, m, p), "labels must be 0"),
    ],
)
def test_malformed_input_raises(change, message):
    with pytest.raises(ValueError, match=message):
        accuracy_with_intervals(*change(*_test_set(seed=9)), resamples=50)


def test_resamples_and_level_are_checked():
    labels, scores, masks, maps = _test_set(seed=9)
    with pytest.raises(ValueError, match="resamples"):
        accuracy_with_intervals(labels, scores, masks, maps, resamples=0)
    with pytest.raises(ValueError, match="level"):
        accuracy_with_intervals(labels, scores, masks, maps, level=95)


# --- paired deltas -----------------------------------------------------------------------------------

def test_paired_deltas_of_identical_outputs_are_exactly_zero():
    labels, scores, masks, maps = _test_set(seed=10)
    result = paired_delta_intervals(labels, masks, scores, maps, scores.copy(), maps.copy(), resamples=300)
    assert result == {f"{m}_delta{suffix}": 0.0 for m in ("image_auroc", "pixel_auroc", "aupro")
                      for suffix in ("", "_ci_low", "_ci_high")}


def test_paired_deltas_resample_the_same_images_for_both_sides():
    labels, scores, masks, maps = _test_set(seed=11, n_normal=20, n_defective=25)
    noise = np.random.default_rng(0)
    degraded_maps = (maps + noise.normal(0.0, 0.8, maps.shape)).astype(np.float32)  # a worse variant
    degraded_scores = scores + noise.normal(0.0, 0.3, scores.shape)
    result = paired_delta_intervals(labels, masks, scores, maps, degraded_scores, degraded_maps, resamples=400, seed=5)
    base, other = compute_all(labels, scores, masks, maps), compute_all(labels, degraded_scores, masks, degraded_maps)
    for name in ("image_auroc", "pixel_auroc", "aupro"):
        assert result[f"{name}_delta"] == other[name] - base[name]
    # The interval is the percentile interval of (other - base) over the same resamples (seed 5).
    counts = stratified_bootstrap_counts(labels, 400, np.random.default_rng(5))
    base_reps = bootstrap_replicates(labels, scores, masks, maps, counts)
    other_reps = bootstrap_replicates(labels, degraded_scores, masks, degraded_maps, counts)
    for name in ("image_auroc", "pixel_auroc", "aupro"):
        expected = percentile_interval(other_reps[name] - base_reps[name])
        assert (result[f"{name}_delta_ci_low"], result[f"{name}_delta_ci_high"]) == pytest.approx(expected, abs=1e-12)
    # Pixel noise of that size is a clear loss, and pairing makes the interval say so.
    assert result["pixel_auroc_delta_ci_high"] < 0 and result["aupro_delta_ci_high"] < 0
    # Pairing: much narrower than the difference of two independent intervals would suggest.
    separate = percentile_interval(base_reps["pixel_auroc"])
    paired_width = result["pixel_auroc_delta_ci_high"] - result["pixel_auroc_delta_ci_low"]
    assert paired_width < 0.5 * (separate[1] - separate[0])


def test_paired_deltas_are_none_where_a_side_is_undefined():
    labels, scores, masks, maps = _test_set(seed=12)
    result = paired_delta_intervals(labels, masks, scores, maps, scores + 0.01, None, resamples=100)
    assert result["image_auroc_delta"] == pytest.approx(0.0, abs=1e-12)
    assert result["image_auroc_delta_ci_low"] is not None
    assert result["pixel_auroc_delta"] is None and result["aupro_delta_ci_high"] is None
