"""bench/stats.py: each statistic checked by simulation (seeded) or against its brute-force definition.

The latency section's tests live in tests/test_stats_latency.py.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm, rankdata
from sklearn.metrics import roc_auc_score

from bench.intervals import image_auroc_replicates
from bench.stats import (
    DeLongResult,
    binormal_scores,
    combine_intervals_normal,
    correlated_binormal_scores,
    equicorrelated_binormal_scores,
    delong_interval,
    delong_test,
    midranks,
    percentile_interval,
    stratified_bootstrap_counts,
)

# =====================================================================================================
# accuracy: bootstrap intervals and DeLong's test
# =====================================================================================================


def _binomial_band(rate: float, trials: int, sds: float = 3.0) -> tuple[float, float]:
    """Where an observed frequency of an event with probability `rate` falls, `sds` standard deviations."""
    half = sds * math.sqrt(rate * (1 - rate) / trials)
    return rate - half, rate + half


# --- the stratified bootstrap ------------------------------------------------------------------------

def test_stratified_bootstrap_keeps_class_sizes_and_draws_with_replacement():
    labels = np.array([1, 0, 1, 1, 0, 2, 0, 1] * 5)
    counts = stratified_bootstrap_counts(labels, 20_000, np.random.default_rng(0))
    assert counts.shape == (20_000, labels.size) and counts.dtype.kind == "i"
    for cls in (0, 1, 2):
        members = labels == cls
        size = int(members.sum())
        assert np.all(counts[:, members].sum(axis=1) == size)  # every resample keeps the class size
        # Drawing `size` times with replacement: each item appears Binomial(size, 1/size) times.
        assert counts[:, members].mean() == pytest.approx(1.0, abs=0.01)
        assert counts[:, members].var() == pytest.approx(1 - 1 / size, rel=0.03)
        assert np.mean(counts[:, members] == 0) == pytest.approx((1 - 1 / size) ** size, abs=0.01)


def test_stratified_bootstrap_is_reproducible_from_the_seed():
    labels = np.array([0, 1] * 10)
    first = stratified_bootstrap_counts(labels, 50, np.random.default_rng(7))
    assert np.array_equal(first, stratified_bootstrap_counts(labels, 50, np.random.default_rng(7)))
    assert not np.array_equal(first, stratified_bootstrap_counts(labels, 50, np.random.default_rng(8)))
    with pytest.raises(ValueError, match="resamples"):
        stratified_bootstrap_counts(labels, 0, np.random.default_rng(0))


# --- the percentile interval -------------------------------------------------------------------------

def test_percentile_interval_is_the_pair_of_quantiles_and_ignores_nan():
    replicates = np.arange(1001) / 1000.0  # quantile q is exactly q
    assert percentile_interval(replicates, 0.90) == pytest.approx((0.05, 0.95), abs=1e-12)
    assert percentile_interval(np.append(replicates, [np.nan] * 500), 0.90) == pytest.approx((0.05, 0.95), abs=1e-12)
    low, high = percentile_interval([np.nan, np.nan])
    assert math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="level"):
        percentile_interval(replicates, 1.0)


def test_bootstrap_interval_covers_the_true_auroc_at_its_level():
    """Interval honesty: binormal scores with AUROC 0.8 on 30 normal + 40 defective images (one synthetic
    category); the 95% percentile interval of 2,000 stratified resamples must cover 0.8 in 92-98% of 600 test
    sets (measured: 0.948 over 1,000 sets; 0.935 at AUROC 0.9, 0.914 at 0.95, 0.937 at 15 + 20 images)."""
    rng = np.random.default_rng(2026)
    covered, widths = 0, []
    for _ in range(600):
        labels, scores = binormal_scores(30, 40, 0.8, rng)
        counts = stratified_bootstrap_counts(labels, 2000, rng)
        low, high = percentile_interval(image_auroc_replicates(labels, scores, counts), 0.95)
        covered += low <= 0.8 <= high
        widths.append(high - low)
    assert 0.92 <= covered / 600 <= 0.98
    # A real interval, not [0, 1]: about 2 x 1.96 x the AUROC's standard error (~0.05 here).
    assert 0.15 < np.mean(widths) < 0.25


def test_delong_interval_covers_the_true_auroc_at_its_level():
    rng = np.random.default_rng(11)
    covered = sum(low <= 0.8 <= high for low, high in
                  (delong_interval(*binormal_scores(30, 40, 0.8, rng)) for _ in range(1000)))
    assert 0.93 <= covered / 1000 <= 0.97  # measured 0.950


# --- DeLong's test -----------------------------------------------------------------------------------

def _delong_brute_force(labels, scores_a, scores_b) -> tuple[float, float, float]:
    """DeLong et al. (1988) written from the definition: O(m n) kernel psi(x, y) = 1, 1/2, 0."""
    labels = np.asarray(labels)
    components = []
    for scores in (scores_a, scores_b):
        x, y = scores[labels == 1], scores[labels == 0]
        psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
        components.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))  # AUC, V10 per positive, V01 per negative
    (auc_a, v10_a, v01_a), (auc_b, v10_b, v01_b) = components
    s10 = np.cov(np.vstack([v10_a, v10_b]))
    s01 = np.cov(np.vstack([v01_a, v01_b]))
    s = s10 / v10_a.size + s01 / v01_a.size
    return auc_a, auc_b, math.sqrt(s[0, 0] + s[1, 1] - 2 * s[0, 1])


def test_midranks_average_the_ranks_of_ties():
    assert midranks(np.array([0.5, 0.2, 0.5, 0.9, 0.2, 0.5])).tolist() == [4.0, 1.5, 4.0, 6.0, 1.5, 4.0]
    values = np.round(np.random.default_rng(4).standard_normal(300), 1)
    assert np.array_equal(midranks(values), rankdata(values))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_matches_the_brute_force_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat([0, 1], [23, 31]))
    scores_a = np.round(rng.standard_normal(labels.size) + labels, 1)  # rounding makes ties, within and across classes
    scores_b = np.round(0.6 * scores_a + rng.standard_normal(labels.size) * 0.8 + 0.5 * labels, 1)
    auc_a, auc_b, se = _delong_brute_force(labels, scores_a, scores_b)
    result = delong_test(labels, scores_a, scores_b)
    assert isinstance(result, DeLongResult)
    assert result.auc_a == pytest.approx(auc_a, abs=1e-12)
    assert result.auc_a == pytest.approx(roc_auc_score(labels, scores_a), abs=1e-12)
    assert result.auc_b == pytest.approx(auc_b, abs=1e-12)
    assert result.difference == pytest.approx(auc_b - auc_a, abs=1e-12)
    assert result.se == pytest.approx(se, rel=1e-9)
    assert result.z == pytest.approx((auc_b - auc_a) / se, rel=1e-9)
    assert result.p_value == pytest.approx(2 * norm.sf(abs(auc_b - auc_a) / se), rel=1e-9)


def test_delong_false_alarm_rate_is_alpha_on_equally_good_correlated_scores():
    """Two models with the same true AUROC (0.8) judging the same 70 images, scores correlated 0.5:
    "different" at alpha 0.05 / 0.01 in about 5% / 1% of 3,000 simulated test sets (measured over 4,000:
    0.047 / 0.009 at correlation 0.3, 0.047 / 0.0075 at 0.6, 0.034 / 0.005 at 0.9: conservative when the
    two models nearly agree)."""
    rng = np.random.default_rng(5)
    p_values = np.array([delong_test(*correlated_binormal_scores(30, 40, 0.8, 0.8, 0.5, rng)).p_value
                         for _ in range(3000)])
    low, high = _binomial_band(0.05, 3000)
    assert low <= np.mean(p_values < 0.05) <= high
    low, high = _binomial_band(0.01, 3000)
    assert low <= np.mean(p_values < 0.01) <= high


def test_delong_detects_a_real_auroc_difference():
    rng = np.random.default_rng(6)
    results = [delong_test(*correlated_binormal_scores(30, 40, 0.7, 0.9, 0.6, rng)) for _ in range(300)]
    assert np.mean([r.p_value < 0.05 for r in results]) > 0.9  # measured 0.98 over 1,000
    assert np.mean([r.difference for r in results]) == pytest.approx(0.2, abs=0.02)


def test_delong_degenerate_cases():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.5])
    same = delong_test(labels, scores, scores)
    assert (same.difference, same.se, same.z, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    monotone = delong_test(labels, scores, np.exp(3 * scores))  # same ranks: the same ROC curve
    assert (monotone.difference, monotone.p_value) == (0.0, 1.0)
    opposite = delong_test([0, 0, 1, 1], [0, 1, 2, 3], [3, 2, 1, 0])  # perfect vs perfectly inverted
    assert (opposite.auc_a, opposite.auc_b, opposite.se, opposite.z, opposite.p_value) == (1.0, 0.0, 0.0, -math.inf, 0.0)
    with pytest.raises(ValueError, match="at least 2"):
        delong_test([0, 1, 1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])
    with pytest.raises(ValueError, match="NaN"):
        delong_test([0, 0, 1, 1], [0.1, 0.2, np.nan, 0.3], [0.1, 0.2, 0.3, 0.4])


def test_delong_interval_agrees_with_the_bootstrap():
    rng = np.random.default_rng(9)
    labels, scores = binormal_scores(300, 400, 0.8, rng)
    counts = stratified_bootstrap_counts(labels, 4000, rng)
    boot_low, boot_high = percentile_interval(image_auroc_replicates(labels, scores, counts))
    low, high = delong_interval(labels, scores)
    assert low == pytest.approx(boot_low, abs=0.005) and high == pytest.approx(boot_high, abs=0.005)
    assert delong_interval([0, 0, 1, 1], [0, 1, 2, 3]) == (1.0, 1.0)  # no spread in the components


# --- simulators --------------------------------------------------------------------------------------

def test_binormal_scores_have_the_asked_auroc():
    rng = np.random.default_rng(3)
    labels, scores = binormal_scores(20_000, 20_000, 0.8, rng)
    assert np.bincount(labels).tolist() == [20_000, 20_000]
    assert roc_auc_score(labels, scores) == pytest.approx(0.8, abs=0.005)
    labels, a, b = correlated_binormal_scores(20_000, 20_000, 0.7, 0.9, 0.6, rng)
    assert roc_auc_score(labels, a) == pytest.approx(0.7, abs=0.005)
    assert roc_auc_score(labels, b) == pytest.approx(0.9, abs=0.005)
    for cls in (0, 1):
        assert np.corrcoef(a[labels == cls], b[labels == cls])[0, 1] == pytest.approx(0.6, abs=0.02)
    with pytest.raises(ValueError, match="AUROC"):
        binormal_scores(3, 3, 1.0, rng)



def test_equicorrelated_binormal_scores_have_the_asked_aurocs_and_correlation():
    rng = np.random.default_rng(13)
    labels, scores = equicorrelated_binormal_scores(20_000, 20_000, [0.7, 0.8, 0.9], 0.5, rng)
    assert scores.shape == (3, 40_000) and np.bincount(labels).tolist() == [20_000, 20_000]
    for model, auroc in enumerate([0.7, 0.8, 0.9]):
        assert roc_auc_score(labels, scores[model]) == pytest.approx(auroc, abs=0.005)
    for cls in (0, 1):
        correlations = np.corrcoef(scores[:, labels == cls])
        assert correlations[np.triu_indices(3, 1)] == pytest.approx([0.5] * 3, abs=0.02)
    with pytest.raises(ValueError, match="equicorrelation"):
        equicorrelated_binormal_scores(3, 3, [0.8, 0.8], -0.2, rng)

# --- the interval of a mean over categories ----------------------------------------------------------

def test_combine_intervals_normal_hand_worked():
    # Two estimates with +-0.1 intervals: se_i = 0.1/z, se of the mean = sqrt(2) x 0.1/z / 2, half width 0.0707.
    low, high = combine_intervals_normal([0.8, 0.6], [0.7, 0.5], [0.9, 0.7], level=0.95)
    assert (low, high) == pytest.approx((0.7 - 0.1 / math.sqrt(2), 0.7 + 0.1 / math.sqrt(2)), abs=1e-12)
    with pytest.raises(ValueError, match="finite"):
        combine_intervals_normal([0.8, math.nan], [0.7, 0.5], [0.9, 0.7])
    with pytest.raises(ValueError, match="one low and one high"):
        combine_intervals_normal([0.8, 0.6], [0.7], [0.9, 0.7])


def test_combined_bootstrap_intervals_cover_the_mean_auroc_over_categories():
    """Four independent categories (true AUROCs 0.65-0.9, 30 + 40 images each), each with its own 95%
    bootstrap interval; the combined interval covers the mean of the true AUROCs at about its level."""
    rng = np.random.default_rng(12)
    true_aurocs = np.array([0.65, 0.75, 0.8, 0.9])
    covered = 0
    for _ in range(400):
        estimates, lows, highs = [], [], []
        for auroc in true_aurocs:
            labels, scores = binormal_scores(30, 40, auroc, rng)
            counts = stratified_bootstrap_counts(labels, 1000, rng)
            low, high = percentile_interval(image_auroc_replicates(labels, scores, counts))
            estimates.append(roc_auc_score(labels, scores))
            lows.append(low)
            highs.append(high)
        low, high = combine_intervals_normal(estimates, lows, highs)
        covered += low <= true_aurocs.mean() <= high
    assert 0.92 <= covered / 400 <= 0.98


# =====================================================================================================
# latency: the smallest p-value the rank test can give (the rest of the section: tests/test_stats_latency.py)
# =====================================================================================================

def test_smallest_attainable_p_is_what_the_test_gives_on_perfectly_separated_samples():
    """For every pair of sample sizes, the floor is the p-value mann_whitney_u returns when one sample lies
    wholly below the other, with the method the test uses for those sizes (exact up to 8 a side)."""
    from bench.stats import mann_whitney_u, smallest_attainable_p

    for n in range(3, 31):
        separated = mann_whitney_u(np.arange(n), 1000.0 + np.arange(n))
        assert smallest_attainable_p(n, n) == pytest.approx(separated.p_value, rel=1e-12, abs=0)
        assert separated.method == ("exact" if n <= 8 else "asymptotic")
    for n_a in range(1, 21):
        for n_b in range(1, 21):
            p = mann_whitney_u(np.arange(n_a), 1000.0 + np.arange(n_b)).p_value
            floor = smallest_attainable_p(n_a, n_b)
            assert floor == pytest.approx(p, rel=1e-12, abs=0), (n_a, n_b)
            for alpha in (0.001, 0.01, 0.05):
                assert (floor < alpha) == (p < alpha), (n_a, n_b, alpha)


def test_smallest_attainable_p_of_the_normal_approximation_by_hand():
    """Complete separation: U = n_a n_b, z = (n_a n_b / 2 - 1/2) / sqrt(n_a n_b (n_a + n_b + 1) / 12), p = 2 (1 -
    Phi(z)). 2 against 20 reaches 0.0087 exactly but only 0.026 approximated; 1 against n never below 2(1 -
    Phi(sqrt(3))) = 0.083."""
    from bench.stats import smallest_attainable_p

    def by_hand(n_a, n_b):
        z = (n_a * n_b / 2 - 0.5) / math.sqrt(n_a * n_b * (n_a + n_b + 1) / 12)
        return min(1.0, 2 * norm.sf(z))

    for n_a, n_b in ((2, 20), (9, 9), (1, 50), (12, 30), (3, 9)):
        assert smallest_attainable_p(n_a, n_b) == pytest.approx(by_hand(n_a, n_b), rel=1e-12)
    assert smallest_attainable_p(2, 20) == pytest.approx(0.0259, abs=1e-4)
    assert smallest_attainable_p(2, 20, exact=True) == pytest.approx(2 / math.comb(22, 2))
    assert smallest_attainable_p(5, 5, exact=False) > 0.01 > smallest_attainable_p(5, 5)  # ties: approximated
    assert all(smallest_attainable_p(1, n) > 0.083 for n in (9, 100, 10_000))
    assert smallest_attainable_p(0, 30) == 1.0


def test_uses_exact_method_matches_the_test():
    from bench.stats import mann_whitney_u, uses_exact_method

    for a, b in (([1, 2, 3], [4, 5, 6]), ([1, 1, 3], [4, 5, 6]), (list(range(9)), [20, 21]), ([1, 2], [2, 3])):
        assert (mann_whitney_u(a, b).method == "exact") == uses_exact_method(a, b)
