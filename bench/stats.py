"""Statistics for judging measurements, each named after its textbook name and checked by simulation
(tests/test_stats.py). No defectbench types here: numpy arrays in, numbers out.
"""
from __future__ import annotations

import numpy as np

# -- accuracy: bootstrap intervals and DeLong's test ------------------------------------------------------


# -- latency: rank tests and effect sizes ----------------------------------------------------------------
# (Imported here rather than at the top so that the two sections of this module can be written apart.)
from dataclasses import dataclass as _dataclass  # noqa: E402
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


def mann_whitney_u(a, b) -> MannWhitneyU:
    """Mann-Whitney U (Wilcoxon rank-sum) test, two-sided, through scipy: exact for small samples without ties,
    the tie-corrected normal approximation otherwise."""
    from scipy.stats import mannwhitneyu

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError("mann_whitney_u: both samples need at least one value")
    exact = a.size <= 8 and b.size <= 8 and np.unique(np.concatenate([a, b])).size == a.size + b.size
    result = mannwhitneyu(a, b, alternative="two-sided", method="exact" if exact else "asymptotic")
    return MannWhitneyU(float(result.statistic), float(result.pvalue), int(a.size), int(b.size),
                        "exact" if exact else "asymptotic")


def smallest_attainable_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value the exact Mann-Whitney U test can give for sample sizes `n_a`, `n_b`
    (every value of one sample below every value of the other): 2 / C(n_a + n_b, n_a). Below `alpha` or the
    test can never call a change significant, however large."""
    if n_a < 1 or n_b < 1:
        return 1.0
    return min(1.0, 2.0 / _comb(n_a + n_b, n_a))


def relative_median_change(a, b) -> float:
    """median(b) / median(a) - 1: the effect size of a latency change (+0.10 = 10% slower)."""
    med_a, med_b = float(np.median(a)), float(np.median(b))
    if med_a <= 0:
        raise ValueError("relative_median_change: the median of `a` must be positive")
    return med_b / med_a - 1.0
