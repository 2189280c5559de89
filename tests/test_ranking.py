"""bench/ranking.py: hand-worked cases (Holm, the bootstrap and permutation p-values, ranks, Friedman, the critical
difference, the sentences), and by simulation: equally good models are called different no more often than the
level allows (family-wise), a clearly better model is found."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.ranking import (
    average_ranks,
    category_verdict,
    critical_difference,
    critical_difference_data,
    describe_order,
    friedman_nemenyi,
    holm_adjust,
    paired_permutation_p,
    pairwise_comparisons,
)
from bench.operating_points import recall_at_fpr
from bench.stats import delong_test, equicorrelated_binormal_scores


def _upper(rate: float, trials: int) -> float:
    """Rate + 2 binomial standard deviations: what a simulated frequency of `rate` stays below."""
    return rate + 2.0 * math.sqrt(rate * (1 - rate) / trials)


# --- hand-worked ----------------------------------------------------------------------------------------

def test_holm_by_hand():
    # Sorted 0.01, 0.03, 0.04: 3 x 0.01 = 0.03; max(0.03, 2 x 0.03) = 0.06; max(0.06, 1 x 0.04) = 0.06.
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # 2 x 0.5, then never below the previous
    from statsmodels.stats.multitest import multipletests

    p_values = np.random.default_rng(1).random(15) ** 3
    assert holm_adjust(p_values) == pytest.approx(multipletests(p_values, method="holm")[1], abs=1e-15)


def test_paired_permutation_p_by_hand():
    """The p-value equals (1 + b)/(1 + B) counted from pseudo-models built explicitly: per image, the two
    models' mid-ranks / N, swapped where the coin says so."""
    rng = np.random.default_rng(8)
    labels, (a, b) = equicorrelated_binormal_scores(100, 30, [0.9, 0.8], 0.3, rng)
    observed = recall_at_fpr(labels, b, 0.01)[0] - recall_at_fpr(labels, a, 0.01)[0]
    p = paired_permutation_p(labels, a, b, 0.01, 50, np.random.default_rng(3))
    swap = np.random.default_rng(3).random((50, labels.size)) < 0.5
    rank_a = (np.argsort(np.argsort(a)) + 1.0) / labels.size  # no ties: the rank is the mid-rank
    rank_b = (np.argsort(np.argsort(b)) + 1.0) / labels.size
    at_least = 0
    for row in swap:
        pseudo_a, pseudo_b = np.where(row, rank_b, rank_a), np.where(row, rank_a, rank_b)
        d = recall_at_fpr(labels, pseudo_b, 0.01)[0] - recall_at_fpr(labels, pseudo_a, 0.01)[0]
        at_least += abs(d) >= abs(observed) - 1e-12
    assert p == pytest.approx((1 + at_least) / 51) and 0 < at_least < 50
    # Ranks only: an increasing transform of either model leaves p unchanged; a model against itself gives 1.
    assert paired_permutation_p(labels, np.exp(a), 3 * b - 7, 0.01, 50, np.random.default_rng(3)) == p
    assert paired_permutation_p(labels, a, np.exp(a), 0.01, 50, np.random.default_rng(3)) == 1.0


def test_ranks_friedman_and_critical_difference_by_hand():
    # c1: A 0.9 first, B and C tied (2.5 each); c2: B first, A second, C third. Averages 1.5, 1.75, 2.75.
    table = pd.DataFrame({"A": [0.9, 0.7], "B": [0.8, 0.9], "C": [0.8, 0.6]}, index=["c1", "c2"])
    assert average_ranks(table).to_dict() == {"A": 1.5, "B": 1.75, "C": 2.75}
    assert average_ranks(table, higher_is_better=False).to_dict() == {"C": 1.25, "B": 2.25, "A": 2.5}
    # Demšar (2006), Table 5: q_0.05 = 2.728 for 5 models, 2.569 for 4; CD = q sqrt(k(k+1)/(6N)).
    assert critical_difference(5, 4) == pytest.approx(2.728 * math.sqrt(30 / 24), abs=1e-3)
    assert critical_difference(4, 14) == pytest.approx(2.569 * math.sqrt(20 / 84), abs=1e-3)
    # Friedman without ties: chi2 = 12 N / (k (k+1)) sum_j (R_j - (k+1)/2)^2 with R_j the average ranks.
    table = pd.DataFrame({"A": [3.0, 2.0, 3.0, 1.0], "B": [2.0, 3.0, 1.0, 2.0], "C": [1.0, 1.0, 2.0, 3.0]})
    ranks = average_ranks(table)
    expected = 12 * 4 / (3 * 4) * sum((r - 2.0) ** 2 for r in ranks)
    result = friedman_nemenyi(table, metric="m")
    assert result.friedman_statistic == pytest.approx(expected)
    assert not result.pairwise["different"].any() and "no pair is compared" in result.verdict


def test_sentences():
    different = {frozenset(("U-Net++", "X")), frozenset(("U-Net", "X"))}
    assert describe_order(["U-Net++", "U-Net", "X"], different) == \
        "U-Net++ and U-Net are not distinguishable here; both beat X."
    assert describe_order(["A", "B", "C"], set()) == "No two of A, B and C are distinguishable here."
    assert describe_order(["A", "B", "C", "D"], {frozenset(("A", "C")), frozenset(("A", "D")), frozenset(("B", "D"))}) \
        == "A and B are not distinguishable here; both beat D; A beats C."
    assert describe_order(["A", "B", "C"], {frozenset(("A", "B")), frozenset(("A", "C"))}) == "A beats B and C."


# --- per category ---------------------------------------------------------------------------------------

def test_pairwise_rows_use_delong_and_holm_and_say_what_is_undefined():
    rng = np.random.default_rng(3)
    labels, scores = equicorrelated_binormal_scores(30, 40, [0.95, 0.94, 0.7], 0.5, rng)
    models = {"U-Net++": scores[0], "U-Net": scores[1], "X": scores[2]}
    table = pairwise_comparisons(labels, models, resamples=200)
    auroc = table[table["metric"] == "image_auroc"]
    assert list(zip(auroc["model_a"], auroc["model_b"])) == [("U-Net++", "U-Net"), ("U-Net++", "X"), ("U-Net", "X")]
    p_values = [delong_test(labels, models[a], models[b]).p_value for a, b in zip(auroc["model_a"], auroc["model_b"])]
    assert auroc["p_value"].tolist() == pytest.approx(p_values)
    assert auroc["p_holm"].tolist() == pytest.approx(holm_adjust(p_values).tolist())
    assert auroc["different"].tolist() == [False, True, True]
    assert category_verdict(table, "image_auroc") == "U-Net++ and U-Net are not distinguishable here; both beat X."
    # 30 test normals cannot locate 1% false alarms: no test, and the rows say why.
    recall = table[table["metric"] == "image_recall_at_fpr_1pct"]
    assert len(recall) == 3 and not recall["different"].any()
    assert recall["undefined"].iloc[0] == "30 test normal images but a 1% false-alarm operating point needs at least 100"
    assert category_verdict(table, "image_recall_at_fpr_1pct").startswith("image_recall_at_fpr_1pct not compared")
    with pytest.raises(ValueError, match="same test images"):
        pairwise_comparisons(labels, {"a": scores[0], "b": scores[1][:-1]})


@pytest.mark.parametrize("correlation", [0.0, 0.6])
def test_equally_good_models_are_rarely_called_different_on_auroc(correlation):
    """Four models with true AUROC 0.85 on the same 30 + 40 images: the chance that ANY of the six Holm-corrected
    DeLong verdicts says "different" stays at or below alpha = 0.05 (600 simulated test sets; measured over 2,000:
    0.042 independent, 0.033 at correlation 0.3, 0.030 at 0.6)."""
    rng = np.random.default_rng(40 + int(10 * correlation))
    any_different = 0
    for _ in range(600):
        labels, scores = equicorrelated_binormal_scores(30, 40, [0.85] * 4, correlation, rng)
        table = pairwise_comparisons(labels, {f"m{i}": s for i, s in enumerate(scores)}, resamples=10)
        any_different += table.loc[table["metric"] == "image_auroc", "different"].any()
    assert any_different / 600 <= _upper(0.05, 600)


def test_recall_at_one_percent_family_wise_rate_when_all_models_are_equal():
    """The same with recall at 1% false alarms (100 normals + 40 defects, needed for 1%; independent models), by the
    paired permutation test on ranks: at or below alpha = 0.05 within the simulation error over 500 sets (300
    swaps per pair). This test: 0.020; the paired bootstrap used before, on the same sets and 300 resamples:
    0.102, which fails the bound. Measured over 600 sets (400 swaps): 0.017 independent, 0.020 at correlation
    0.3, 0.023 at 0.6 (conservative: the ranks are estimated from the same images). The bootstrap was LIBERAL:
    0.077 independent (1,000 sets, 1,000 resamples), 0.068 / 0.050 / 0.067 over 600 sets at 0, 0.3, 0.6 (0.078
    and 0.055 over another 400): recall at 1% rests on the top normal scores, whose bootstrap distribution is
    too narrow (replicate SD of the difference 0.136 against its true SD 0.145)."""
    rng = np.random.default_rng(77)
    sets, any_different = 500, 0
    for _ in range(sets):
        labels, scores = equicorrelated_binormal_scores(100, 40, [0.85] * 4, 0.0, rng)
        table = pairwise_comparisons(labels, {f"m{i}": s for i, s in enumerate(scores)}, resamples=300,
                                     seed=int(rng.integers(2**31)))
        any_different += table.loc[table["metric"] == "image_recall_at_fpr_1pct", "different"].any()
    assert any_different / sets <= _upper(0.05, sets)


def test_a_clearly_better_model_is_found():
    """AUROC 0.97 against two of 0.8 (correlation 0.3, 100 + 40 images): the best model is called better than both
    in 100 of 100 sets by DeLong and in 76 by the permutation test of recall at 1% (over 200 other sets: 0.71;
    the liberal bootstrap before it: 0.77)."""
    rng = np.random.default_rng(5)
    found = {"image_auroc": 0, "image_recall_at_fpr_1pct": 0}
    for _ in range(100):
        labels, scores = equicorrelated_binormal_scores(100, 40, [0.97, 0.8, 0.8], 0.3, rng)
        table = pairwise_comparisons(labels, {"best": scores[0], "b": scores[1], "c": scores[2]}, resamples=400,
                                     seed=int(rng.integers(2**31)))
        for metric in found:
            rows = table[(table["metric"] == metric) & (table["model_a"] == "best")]
            found[metric] += bool((rows["better"] == "best").all())
    assert found["image_auroc"] >= 90 and found["image_recall_at_fpr_1pct"] >= 60


# --- across categories ----------------------------------------------------------------------------------

def test_friedman_nemenyi_family_wise_rate_when_all_models_are_equal():
    """Five equally good models over 8 categories (each category's values i.i.d.): any pair called different in
    at most alpha of 600 simulated tables (measured over 2,000: 0.031; over 4 categories 0.015: with 5
    models and 4 categories Nemenyi's CD is 3.05 ranks of the possible 4)."""
    rng = np.random.default_rng(9)
    any_different = sum(friedman_nemenyi(pd.DataFrame(rng.standard_normal((8, 5)), columns=list("ABCDE")))
                        .pairwise["different"].any() for _ in range(600))
    assert any_different / 600 <= _upper(0.05, 600)


def test_friedman_nemenyi_finds_a_clearly_better_model_and_draws_its_groups():
    rng = np.random.default_rng(10)
    # Ten categories with their own difficulty; model A is 1.5 sd better than the rest everywhere on average.
    values = rng.standard_normal((10, 5)) * 0.5 + rng.standard_normal((10, 1)) + np.array([1.5, 0, 0, 0, 0])
    table = pd.DataFrame(values, columns=["A", "B", "C", "D", "E"], index=[f"c{i}" for i in range(10)])
    assert friedman_nemenyi(pd.DataFrame(values)).average_ranks.index[0] == "0"  # any column names
    table.loc["c_missing", :] = [0.9, None, 0.1, 0.2, 0.3]  # an incomplete category is left out
    result = friedman_nemenyi(table, metric="image_auroc")
    assert result.dropped_categories == ["c_missing"] and result.n_categories == 10
    assert result.average_ranks.index[0] == "A" and result.friedman_p < 0.05
    beaten = result.pairwise[(result.pairwise["model_a"] == "A") & result.pairwise["different"]]["model_b"]
    assert len(beaten) >= 3
    for row in result.pairwise.itertuples():  # Nemenyi and the CD agree
        assert row.different == (abs(row.rank_difference) >= result.critical_difference - 1e-9)
    data = critical_difference_data(result)
    assert data["cd"] == pytest.approx(critical_difference(5, 10))
    assert list(data["average_ranks"]) == list(result.average_ranks.index)
    for group in data["groups"]:  # no pair inside a group is called different
        ranks = [data["average_ranks"][m] for m in group]
        assert max(ranks) - min(ranks) < data["cd"]
    assert result.verdict.startswith("Over 10 categories (image_auroc; Friedman p = ")
