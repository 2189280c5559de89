"""The latency section of bench/stats.py, checked against known answers and by simulation (seeded)."""
from math import comb

import numpy as np
import pytest

from bench import stats


def test_smallest_attainable_p_is_the_exact_p_of_fully_separated_samples():
    for n_a, n_b in ((3, 3), (4, 4), (5, 5), (3, 7)):
        separated = stats.mann_whitney_u(np.arange(n_a), 100 + np.arange(n_b))
        assert separated.method == "exact"
        assert separated.p_value == pytest.approx(stats.smallest_attainable_p(n_a, n_b))
        assert stats.smallest_attainable_p(n_a, n_b) == pytest.approx(2 / comb(n_a + n_b, n_a))
    assert stats.smallest_attainable_p(3, 3) == pytest.approx(0.1)  # 3 against 3 can never reach 0.01
    assert stats.smallest_attainable_p(5, 5) < 0.01 < stats.smallest_attainable_p(4, 4)
    assert stats.smallest_attainable_p(0, 5) == 1.0


def test_u_statistic_counts_the_pairs_where_a_is_larger():
    # a = [1, 5], b = [2, 3, 4]: a beats b in 0 + 3 pairs
    assert stats.mann_whitney_u([1, 5], [2, 3, 4]).u == 3.0


def test_rank_test_false_alarm_rate_is_alpha_by_simulation():
    rng = np.random.default_rng(0)
    alpha, trials = 0.05, 800
    hits = sum(stats.mann_whitney_u(rng.lognormal(0, 0.2, 20), rng.lognormal(0, 0.2, 20)).p_value < alpha
               for _ in range(trials))
    rate = hits / trials
    # binomial standard error at 800 trials: 0.0077; three of them either side
    assert 0.027 < rate < 0.073, rate


def test_rank_test_finds_a_30_percent_slowdown_by_simulation():
    rng = np.random.default_rng(1)
    found = sum(stats.mann_whitney_u(rng.lognormal(0, 0.1, 20), 1.3 * rng.lognormal(0, 0.1, 20)).p_value < 0.01
                for _ in range(200))
    assert found / 200 > 0.98


def test_relative_median_change():
    assert stats.relative_median_change([10, 10, 10], [12, 13, 11]) == pytest.approx(0.2)
    assert stats.relative_median_change([4, 2, 6], [2, 2]) == pytest.approx(-0.5)
    with pytest.raises(ValueError):
        stats.relative_median_change([0, 0], [1])


def test_mann_whitney_refuses_empty_samples():
    with pytest.raises(ValueError):
        stats.mann_whitney_u([], [1.0])
