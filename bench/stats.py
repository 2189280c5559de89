"""Statistics for judging measurements, each named after its textbook name and checked by simulation
(tests/test_stats.py). No defectbench types here: numpy arrays in, numbers out.
"""
from __future__ import annotations

import numpy as np

# -- accuracy: bootstrap intervals and DeLong's test ------------------------------------------------------
# (imports of this section here, so the two sections' edits stay apart)
import math  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from scipy.stats import norm  # noqa: E402


def _check_level(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got {level}")
    return float(level)


def stratified_bootstrap_counts(labels, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicity of each item in each bootstrap resample, drawn with replacement within each label class.

    Returns int64 [resamples, n]: row r says how often each of the n items appears in resample r. Every row
    keeps the class sizes (stratified bootstrap), so an AUROC is defined in every resample.
    """
    labels = np.asarray(labels).ravel()
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    _, inverse = np.unique(labels, return_inverse=True)
    order = np.argsort(inverse, kind="stable")          # items grouped by class
    class_sizes = np.bincount(inverse)
    class_starts = np.concatenate(([0], np.cumsum(class_sizes)[:-1]))
    # Draw n_c positions within each item's class, for every resample: an item's class start plus an offset.
    per_item_start = np.repeat(class_starts, class_sizes)
    per_item_size = np.repeat(class_sizes, class_sizes)
    drawn = per_item_start + (rng.random((resamples, labels.size)) * per_item_size).astype(np.int64)
    drawn += labels.size * np.arange(resamples)[:, None]
    grouped = np.bincount(drawn.ravel(), minlength=resamples * labels.size).reshape(resamples, labels.size)
    counts = np.empty_like(grouped)
    counts[:, order] = grouped
    return counts


def percentile_interval(replicates, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval: the (1-level)/2 and (1+level)/2 quantiles of the replicates.

    NaN replicates (resamples where the statistic is undefined) are left out, so the interval is conditional
    on the statistic being defined; when every replicate is NaN the interval is (nan, nan).
    """
    level = _check_level(level)
    values = np.asarray(replicates, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan
    low, high = np.quantile(values, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)


@dataclass(frozen=True)
class DeLongResult:
    """DeLong's test of two correlated AUROCs on the same images; difference = auc_b - auc_a."""
    auc_a: float
    auc_b: float
    difference: float
    se: float
    z: float
    p_value: float


def _two_classes(labels) -> tuple[np.ndarray, int, int]:
    labels = np.asarray(labels).ravel()
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (negative) or 1 (positive)")
    positives, negatives = int(np.count_nonzero(labels == 1)), int(np.count_nonzero(labels == 0))
    if positives < 2 or negatives < 2:
        raise ValueError(f"DeLong's variance needs at least 2 images of each class, got {positives} positive "
                         f"and {negatives} negative")
    return labels == 1, positives, negatives


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks (Sun & Xu's midranks)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    ends = np.append(starts[1:], values.size)
    ranks = np.empty(values.size)
    ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    return ranks


def _structural_components(is_positive: np.ndarray, scores) -> tuple[float, np.ndarray, np.ndarray]:
    """AUROC and DeLong's structural components V10 (one per positive) and V01 (one per negative).

    V10_i = P(negative < x_i) + P(tie)/2 over the negatives, V01_j = P(positive > y_j) + P(tie)/2 over the
    positives. Sun & Xu (2014): both follow from midranks, O(n log n) instead of O(m n) comparisons: a
    positive's midrank among all scores minus its midrank among the positives counts the negatives below it
    (ties as half).
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.shape != is_positive.shape:
        raise ValueError(f"labels and scores differ in length: {is_positive.size} vs {scores.size}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    positives, negatives = scores[is_positive], scores[~is_positive]
    m, n = positives.size, negatives.size
    combined = midranks(np.concatenate([positives, negatives]))
    v10 = (combined[:m] - midranks(positives)) / n
    v01 = 1.0 - (combined[m:] - midranks(negatives)) / m
    return float(v10.mean()), v10, v01


_ROUNDING = 1e-12


def delong_test(labels, scores_a, scores_b) -> DeLongResult:
    """DeLong, DeLong & Clarke-Pearson (1988): are two correlated AUROCs on the same images different?

    z = (AUC_b - AUC_a) / se, se^2 = var(V10_a - V10_b) / m + var(V01_a - V01_b) / n over the m positives
    and n negatives (structural components, Sun & Xu's midrank algorithm); p two-sided from the normal law.
    Ties count one half (midranks). Degenerate case se == 0 (the component differences do not vary):
    identical scores, or scores that differ only by a monotone transform, give difference 0 and p = 1 (z = 0);
    a non-zero difference with se == 0 (e.g. one perfect and one perfectly inverted classifier, where every
    image ranks the same way under both) has nothing to weigh it against: z = +-inf, p = 0.
    Raises ValueError for fewer than 2 images of a class, mismatched lengths or non-finite scores.
    """
    is_positive, m, n = _two_classes(labels)
    auc_a, v10_a, v01_a = _structural_components(is_positive, scores_a)
    auc_b, v10_b, v01_b = _structural_components(is_positive, scores_b)
    difference = auc_b - auc_a
    variance = np.var(v10_a - v10_b, ddof=1) / m + np.var(v01_a - v01_b, ddof=1) / n
    se = math.sqrt(max(float(variance), 0.0))
    # Components are multiples of 1/(2 m n): anything below 1e-12 is rounding, not spread or difference.
    if se < _ROUNDING:
        if abs(difference) < _ROUNDING:
            return DeLongResult(auc_a, auc_b, 0.0, 0.0, 0.0, 1.0)
        return DeLongResult(auc_a, auc_b, difference, 0.0, math.copysign(math.inf, difference), 0.0)
    z = difference / se
    return DeLongResult(auc_a, auc_b, difference, se, z, math.erfc(abs(z) / math.sqrt(2.0)))  # 2 x normal tail


def delong_interval(labels, scores, level: float = 0.95) -> tuple[float, float]:
    """Wald interval AUC +- z se for one AUROC, se from DeLong's variance (var(V10)/m + var(V01)/n),
    clipped to [0, 1]. A cross-check of the bootstrap; it is (AUC, AUC) when the components do not vary
    (e.g. perfect separation)."""
    z = float(norm.ppf(0.5 + _check_level(level) / 2.0))
    is_positive, m, n = _two_classes(labels)
    auc, v10, v01 = _structural_components(is_positive, scores)
    se = math.sqrt(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)
    return max(0.0, float(auc - z * se)), min(1.0, float(auc + z * se))


def binormal_separation(auroc: float) -> float:
    """Distance between the class means, in units of their common standard deviation, that gives `auroc`
    under the equal-variance binormal model: AUROC = Phi(d / sqrt(2))."""
    if not 0.0 < auroc < 1.0:
        raise ValueError(f"a binormal AUROC lies in (0, 1), got {auroc}")
    return math.sqrt(2.0) * float(norm.ppf(auroc))


def binormal_scores(n_negative: int, n_positive: int, auroc: float, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) from the equal-variance binormal model with true AUROC `auroc`: negatives N(0, 1),
    positives N(d, 1), d = sqrt(2) Phi^-1(auroc). Labels are the negatives (0) first, then the positives (1)."""
    separation = binormal_separation(auroc)
    labels = np.repeat(np.array([0, 1], dtype=np.int8), [n_negative, n_positive])
    scores = rng.standard_normal(n_negative + n_positive) + separation * labels
    return labels, scores


def correlated_binormal_scores(n_negative: int, n_positive: int, auroc_a: float, auroc_b: float,
                               correlation: float, rng: np.random.Generator
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, scores_a, scores_b): two binormal score sets on the same images, true AUROCs `auroc_a` and
    `auroc_b`, within-class correlation `correlation` between a and b (two models judging the same images)."""
    if not -1.0 <= correlation <= 1.0:
        raise ValueError(f"correlation must lie in [-1, 1], got {correlation}")
    labels = np.repeat(np.array([0, 1], dtype=np.int8), [n_negative, n_positive])
    first = rng.standard_normal(labels.size)
    second = correlation * first + math.sqrt(1.0 - correlation**2) * rng.standard_normal(labels.size)
    return (labels, first + binormal_separation(auroc_a) * labels,
            second + binormal_separation(auroc_b) * labels)



def equicorrelated_binormal_scores(n_negative: int, n_positive: int, aurocs, correlation: float,
                                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores [k, N]): k binormal score sets on the same images (k models judging one test set),
    model m with true AUROC `aurocs[m]`, every pair correlated `correlation` (>= 0) within a class through one
    shared factor: score = sqrt(c) shared + sqrt(1 - c) own + d_m label. Labels as `binormal_scores`."""
    if not 0.0 <= correlation <= 1.0:
        raise ValueError(f"an equicorrelation here lies in [0, 1], got {correlation}")
    separations = np.array([binormal_separation(a) for a in aurocs])
    labels = np.repeat(np.array([0, 1], dtype=np.int8), [n_negative, n_positive])
    shared = rng.standard_normal(labels.size)
    own = rng.standard_normal((separations.size, labels.size))
    scores = math.sqrt(correlation) * shared + math.sqrt(1.0 - correlation) * own + separations[:, None] * labels
    return labels, scores

def combine_intervals_normal(estimates, lows, highs, level: float = 0.95) -> tuple[float, float]:
    """Interval of the MEAN of k independent estimates, from each one's interval, by the normal approximation.

    Each interval is read as estimate +- z se_i, so se_i = (high_i - low_i) / (2 z); the mean's standard error
    is sqrt(sum se_i^2) / k and its interval mean +- z se. The intervals must have the same `level`.
    Approximate: an asymmetric (e.g. percentile bootstrap) interval is replaced by a symmetric one of the
    same width, and the result is not clipped to the metric's range. For per-category accuracy rows of
    one model (each category's test set is independent of the others').
    """
    z = float(norm.ppf(0.5 + _check_level(level) / 2.0))
    estimates, lows, highs = (np.asarray(v, dtype=np.float64).ravel() for v in (estimates, lows, highs))
    if not (estimates.size == lows.size == highs.size) or estimates.size == 0:
        raise ValueError(f"need one low and one high per estimate, got {estimates.size}, {lows.size}, {highs.size}")
    if not (np.isfinite(estimates).all() and np.isfinite(lows).all() and np.isfinite(highs).all()):
        raise ValueError("estimates and interval bounds must be finite (an undefined metric has no mean)")
    if np.any(highs < lows):
        raise ValueError("an interval has high < low")
    mean = float(estimates.mean())
    se = math.sqrt(float(np.sum(((highs - lows) / (2.0 * z)) ** 2))) / estimates.size
    return float(mean - z * se), float(mean + z * se)


# -- latency: rank tests and effect sizes ----------------------------------------------------------------
# (Imported here rather than at the top so that the two sections of this module can be written apart.)
from dataclasses import dataclass as _dataclass  # noqa: E402
from functools import lru_cache as _lru_cache  # noqa: E402
from math import comb as _comb  # noqa: E402


@_dataclass(frozen=True)
class MannWhitneyU:
    """Two-sided Mann-Whitney U test of samples `a` against `b`: `u` is the statistic of `a`, `p_value` the
    probability of a rank separation at least this strong when both are draws of one distribution."""

    u: float
    p_value: float
    n_a: int
    n_b: int
    method: str  # "exact" (small samples without ties) or "asymptotic" (normal approximation, tie-corrected)


EXACT_LIMIT = 8  # mann_whitney_u's exact distribution up to this many values a side (and no ties)


def uses_exact_method(a, b) -> bool:
    """Whether `mann_whitney_u(a, b)` uses the exact distribution: both samples of at most 8 values and no tied
    values (scipy's exact method has no tie correction); otherwise the tie-corrected normal approximation."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    return a.size <= EXACT_LIMIT and b.size <= EXACT_LIMIT and np.unique(np.concatenate([a, b])).size == a.size + b.size


def mann_whitney_u(a, b) -> MannWhitneyU:
    """Mann-Whitney U (Wilcoxon rank-sum) test, two-sided, through scipy: exact for small samples without ties,
    the tie-corrected normal approximation (with continuity correction) otherwise (`uses_exact_method`)."""
    from scipy.stats import mannwhitneyu

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError("mann_whitney_u: both samples need at least one value")
    exact = uses_exact_method(a, b)
    result = mannwhitneyu(a, b, alternative="two-sided", method="exact" if exact else "asymptotic")
    return MannWhitneyU(float(result.statistic), float(result.pvalue), int(a.size), int(b.size),
                        "exact" if exact else "asymptotic")


@_lru_cache(maxsize=4096)
def _separated_p_asymptotic(n_a: int, n_b: int) -> float:
    # The same scipy routine mann_whitney_u calls, on two samples that do not overlap and have no ties: U at its
    # extreme, so the normal approximation's smallest p (continuity-corrected, as scipy computes it).
    from scipy.stats import mannwhitneyu

    separated = mannwhitneyu(np.arange(n_a, dtype=np.float64), n_a + np.arange(n_b, dtype=np.float64),
                             alternative="two-sided", method="asymptotic")
    return min(1.0, float(separated.pvalue))


def smallest_attainable_p(n_a: int, n_b: int, exact: bool | None = None) -> float:
    """The smallest two-sided p-value `mann_whitney_u` can give for sample sizes `n_a`, `n_b`, with the method it
    uses for them: every value of one sample below every value of the other. Below `alpha` or the test can never
    call a change significant, however large.

    `exact`: which method; None means the one `mann_whitney_u` picks for untied samples of these sizes (exact
    up to 8 values a side). Exact: 2 / C(n_a + n_b, n_a). Normal approximation: the p of complete separation
    without ties (larger than the exact one: 2 against 20 gives 0.0087 exact but 0.026 approximated, 1 against
    any n never below 0.08); ties only shrink the variance, so tied data can do a little better."""
    if n_a < 1 or n_b < 1:
        return 1.0
    if exact is None:
        exact = n_a <= EXACT_LIMIT and n_b <= EXACT_LIMIT
    if exact:
        return min(1.0, 2.0 / _comb(n_a + n_b, n_a))
    return _separated_p_asymptotic(int(n_a), int(n_b))


def relative_median_change(a, b) -> float:
    """median(b) / median(a) - 1: the effect size of a latency change (+0.10 = 10% slower)."""
    med_a, med_b = float(np.median(a)), float(np.median(b))
    if med_a <= 0:
        raise ValueError("relative_median_change: the median of `a` must be positive")
    return med_b / med_a - 1.0
