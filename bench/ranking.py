"""Which model to pick, with significance: paired tests per category, Friedman + Nemenyi across categories.

Per category (`pairwise_comparisons`): every pair of models is compared on the SAME test images
- image AUROC by DeLong's test (bench.stats.delong_test);
- recall at a false-alarm rate (default 1%, bench.operating_points.recall_at_fpr) by a paired permutation
  test (`paired_permutation_p`): each model's scores are put on a common scale, their mid-rank among all test
  images of that model divided by the number of images (Venkatraman & Begg 1996; recall at a false-alarm rate
  depends on a model's ranking only, so this changes neither model's value), then for each image a fair coin
  decides whether the two models' values swap, and the two-sided p-value is (1 + b)/(1 + B), b of B swaps
  giving an absolute difference at least the observed one. Only where the metric is defined (at 1%: at least
  100 test normals); otherwise the rows say why. Why not a paired bootstrap (used
  before): recall at 1% rests on the top one or two normal scores, and the bootstrap of such
  an extreme order statistic is too narrow (replicate SD 0.136 against the true SD of the difference 0.145
  for independent models with AUROC 0.85, 100 + 40 images), so with Holm over six pairs it called equally
  good models different in 0.077 of 1,000 sets (0.065-0.078 in other runs) where 0.05 was asked.
Multiple comparisons: Holm's step-down correction over the k(k-1)/2 pairs of one metric in one category (the
family); a pair is called different when its Holm-adjusted p is below `alpha`. This keeps the chance of calling
ANY pair of that family different, when all models are equally good, at or below `alpha`.

Across categories (`friedman_nemenyi`), Demšar (2006): the categories are the data sets. Each category ranks the
models (1 = best, ties share the mean rank); Friedman's test asks whether the average ranks differ more than
chance allows (scipy.stats.friedmanchisquare, with Iman & Davenport's F version reported beside it). Only when it
rejects at `alpha` are pairs compared, by the Nemenyi post-hoc test (scikit_posthocs.posthoc_nemenyi_friedman:
all pairs at once through the studentized range, so the family-wise error is controlled without a further
correction); two models differ when their average ranks differ by at least the critical difference
CD = q_alpha sqrt(k (k + 1) / (6 N)), q_alpha the studentized range quantile / sqrt(2), for k models and N
categories. With few categories CD is large: 5 models over 4 categories need a rank difference of 3.05 of the
possible 4, so only a model that is first everywhere against one that is last everywhere can be told apart.

Results are pandas DataFrames and plain sentences a report can print ("U-Net++ and U-Net are not
distinguishable here; both beat X."). `critical_difference_data` gives what a critical-difference diagram
draws (reports/figures/critical_difference.py).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import friedmanchisquare, f as f_distribution, rankdata, studentized_range

from bench.operating_points import rate_suffix, recall_at_fpr, recall_at_fpr_replicates
from bench.stats import delong_test

DEFAULT_ALPHA = 0.05
PAIRED_RESAMPLES = 2000
CORRECTION = "Holm over the pairs of one metric in one category"
PERMUTATION_TEST = "paired permutation (per-image swaps of the two models' ranks)"
ACROSS_METHOD = "Friedman's test, then Nemenyi's post-hoc test (Demšar 2006) when Friedman rejects"


def holm_adjust(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values: the i-th smallest p times (m - i + 1), made non-decreasing in that
    order, capped at 1; reject where adjusted < alpha. (Written here: statsmodels' multipletests gives the same
    numbers, tests/test_ranking.py checks it, but runs a full garbage collection on every call.)"""
    p_values = np.asarray(p_values, dtype=np.float64)
    if p_values.size == 0:
        return p_values
    order = np.argsort(p_values, kind="stable")
    scaled = p_values[order] * (p_values.size - np.arange(p_values.size))
    adjusted = np.empty_like(p_values)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def paired_permutation_p(labels, scores_a, scores_b, target_fpr: float = 0.01, permutations: int = 2000,
                         rng: np.random.Generator | None = None) -> float:
    """Two-sided p-value of a paired permutation test of recall at false-alarm rate `target_fpr` (b - a) on the
    same test images (the module docstring says why and how). Each model's scores become mid-ranks among all
    its test images / N (scipy.stats.rankdata), invariant to any increasing transform of either model's
    scores; each of `permutations` rows swaps the two models' values on the images where a fair coin says so;
    p = (1 + #{|d*| >= |d|}) / (1 + B). The caller checks that the metric is defined.
    Measured over 600 simulated test sets (4 models with AUROC 0.85, 100 normal + 40 defective images, 400
    swaps, Holm over the 6 pairs), family-wise rate of calling any pair different at alpha 0.05: 0.017
    (independent models), 0.020 (correlation 0.3), 0.023 (0.6): conservative, the price of ranks estimated
    from the same images. Power (0.97 against two of 0.8, correlation 0.3, 200 sets): the best model beats
    both in 0.71 of sets, against about 0.77 for the (liberal) bootstrap."""
    labels = np.asarray(labels).ravel()
    rng = np.random.default_rng(0) if rng is None else rng
    values = [rankdata(np.asarray(s, dtype=np.float64).ravel()) / labels.size for s in (scores_a, scores_b)]
    both_labels = np.concatenate([labels, labels])
    both_values = np.concatenate(values)
    identity = np.concatenate([np.ones((1, labels.size)), np.zeros((1, labels.size))], axis=1)
    observed = (recall_at_fpr_replicates(both_labels, both_values, 1.0 - identity, target_fpr)
                - recall_at_fpr_replicates(both_labels, both_values, identity, target_fpr))[0]
    swap = rng.random((int(permutations), labels.size)) < 0.5
    weights_a = np.concatenate([~swap, swap], axis=1).astype(np.float64)  # pseudo-model a: a's value unless swapped
    differences = (recall_at_fpr_replicates(both_labels, both_values, 1.0 - weights_a, target_fpr)
                   - recall_at_fpr_replicates(both_labels, both_values, weights_a, target_fpr))
    at_least = int(np.sum(np.abs(differences) >= abs(observed) - 1e-12))
    return (1.0 + at_least) / (1.0 + int(permutations))


# -- sentences ---------------------------------------------------------------------------------------------

def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def describe_order(ordered: list[str], different: set[frozenset]) -> str:
    """Sentences for models ordered best first, given the pairs called different (`frozenset({a, b})`; the
    earlier one in `ordered` is the better). "A and B are not distinguishable here; both beat C."."""
    if len(ordered) < 2:
        return f"Only {ordered[0]} was compared." if ordered else "No model was compared."
    if not different:
        return f"No two of {_join(ordered)} are distinguishable here."
    best = ordered[0]
    top = [best] + [m for m in ordered[1:] if frozenset((best, m)) not in different]
    rest = [m for m in ordered if m not in top]
    beaten = [m for m in rest if all(frozenset((t, m)) in different for t in top)]
    if len(top) == 1:
        sentence = f"{best} beats {_join(beaten)}" if beaten else f"{best} ranks first"
    else:
        sentence = f"{_join(top)} are not distinguishable here"
        if beaten:
            sentence += f"; {'both' if len(top) == 2 else f'all {len(top)}'} beat {_join(beaten)}"
    said = {frozenset((t, m)) for t in top for m in beaten}
    losers: dict[str, list[str]] = {}
    for a, b in itertools.combinations(ordered, 2):
        if frozenset((a, b)) in different and frozenset((a, b)) not in said:
            losers.setdefault(a, []).append(b)
    others = [f"{winner} beats {_join(beaten_ones)}" for winner, beaten_ones in losers.items()]
    return "; ".join([sentence] + others) + "."


# -- per category --------------------------------------------------------------------------------------------

def _check_models(labels, scores_by_model: dict) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    labels = np.asarray(labels).ravel()
    if len(scores_by_model) < 2:
        raise ValueError(f"need at least two models to compare, got {len(scores_by_model)}")
    scores = {str(m): np.asarray(s, dtype=np.float64).ravel() for m, s in scores_by_model.items()}
    for model, values in scores.items():
        if values.shape != labels.shape:
            raise ValueError(f"{model}: {values.size} scores for {labels.size} labels (same test images needed)")
    return labels, scores


def pairwise_comparisons(labels, scores_by_model: dict, *, alpha: float = DEFAULT_ALPHA, target_fpr: float = 0.01,
                         resamples: int = PAIRED_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Paired comparisons of every pair of models on one category's test images.

    `scores_by_model`: {model: image scores [N]} on the same images, in the same order as `labels`. One row per
    metric and pair (model_a before model_b in the given order): metric, model_a, model_b, value_a, value_b,
    difference (b - a), test, p_value, p_holm, different (Holm-adjusted p < alpha), better (the better model
    where different, else ''), verdict (a sentence), correction, alpha, undefined (why a metric has no test, else
    ''). Metrics: 'image_auroc' (DeLong) and f'image_recall_at_fpr_{pct}' (paired permutation test,
    `resamples` random swaps per pair from one default_rng(seed), the pairs in order).
    """
    labels, scores = _check_models(labels, scores_by_model)
    models = list(scores)
    pairs = list(itertools.combinations(models, 2))
    rows: list[dict] = []

    def add_family(metric: str, test: str, values: dict, p_values: list[float], reason: str = "") -> None:
        adjusted = holm_adjust(p_values) if not reason else [math.nan] * len(pairs)
        for (a, b), p, p_adj in zip(pairs, p_values, adjusted):
            different = bool(p_adj < alpha) if not reason else False
            better = (b if values[b] > values[a] else a) if different else ""
            if reason:
                verdict = f"{metric} not compared: {reason}"
            elif different:
                worse = a if better == b else b
                verdict = (f"{better} beats {worse} on {metric} ({values[better]:.3f} vs {values[worse]:.3f}, "
                           f"Holm-adjusted p = {p_adj:.3g})")
            else:
                verdict = (f"{a} and {b} are not distinguishable on {metric} ({values[a]:.3f} vs {values[b]:.3f}, "
                           f"Holm-adjusted p = {p_adj:.3g})")
            rows.append({"metric": metric, "model_a": a, "model_b": b,
                         "value_a": values.get(a), "value_b": values.get(b),
                         "difference": None if reason else values[b] - values[a], "test": test,
                         "p_value": None if reason else float(p), "p_holm": None if reason else float(p_adj),
                         "different": different, "better": better, "verdict": verdict, "correction": CORRECTION,
                         "alpha": float(alpha), "undefined": reason})

    # image AUROC: DeLong
    auroc_reason = ""
    try:
        tests = {pair: delong_test(labels, scores[pair[0]], scores[pair[1]]) for pair in pairs}
    except ValueError as error:  # one class, or fewer than 2 images of a class
        auroc_reason, tests = str(error).replace(":", ","), {}
    aurocs = {}
    for (a, b), result in tests.items():
        aurocs[a], aurocs[b] = result.auc_a, result.auc_b
    add_family("image_auroc", "DeLong", aurocs, [tests[p].p_value for p in pairs] if tests else [math.nan] * len(pairs),
               auroc_reason)

    # recall at the target false-alarm rate: paired permutation test on each model's ranks
    metric = f"image_recall_at_fpr_{rate_suffix(target_fpr)}"
    points = {m: recall_at_fpr(labels, s, target_fpr) for m, s in scores.items()}
    reason = next((why for value, why in points.values() if value is None), "")
    p_values = [math.nan] * len(pairs)
    if not reason:
        rng = np.random.default_rng(seed)
        p_values = [paired_permutation_p(labels, scores[a], scores[b], target_fpr, int(resamples), rng)
                    for a, b in pairs]
    add_family(metric, PERMUTATION_TEST, {m: v for m, (v, _) in points.items()}, p_values, reason)
    return pd.DataFrame(rows)


def category_verdict(pairwise: pd.DataFrame, metric: str) -> str:
    """The sentences of one metric's pairwise rows: models ordered by their value, best first."""
    rows = pairwise[pairwise["metric"] == metric]
    if rows.empty:
        return f"{metric}: no comparison."
    if rows["undefined"].iloc[0]:
        return f"{metric} not compared: {rows['undefined'].iloc[0]}."
    values: dict[str, float] = {}
    for row in rows.itertuples():
        values[row.model_a], values[row.model_b] = row.value_a, row.value_b
    ordered = sorted(values, key=lambda m: -values[m])
    different = {frozenset((r.model_a, r.model_b)) for r in rows.itertuples() if r.different}
    return describe_order(ordered, different)


# -- across categories ---------------------------------------------------------------------------------------

@dataclass
class AcrossCategories:
    """Friedman + Nemenyi over categories for one metric (see the module docstring)."""

    metric: str
    alpha: float
    average_ranks: pd.Series             # model -> average rank, 1 = best, ascending
    n_categories: int
    friedman_statistic: float
    friedman_p: float
    iman_davenport_f: float
    iman_davenport_p: float
    critical_difference: float           # in ranks
    nemenyi_p: pd.DataFrame              # model x model
    pairwise: pd.DataFrame               # one row per pair: rank difference, p, different, verdict
    verdict: str
    dropped_categories: list[str] = field(default_factory=list)  # left out for a missing value
    method: str = ACROSS_METHOD


def critical_difference(n_models: int, n_categories: int, alpha: float = DEFAULT_ALPHA) -> float:
    """Nemenyi's critical difference of average ranks (Demšar 2006, eq. 5): q_alpha sqrt(k(k+1)/(6N)), q_alpha
    = the studentized range's upper-alpha quantile for k groups and infinite degrees of freedom / sqrt(2)."""
    q_alpha = float(studentized_range.isf(alpha, n_models, np.inf)) / math.sqrt(2.0)
    return q_alpha * math.sqrt(n_models * (n_models + 1) / (6.0 * n_categories))


def average_ranks(table: pd.DataFrame, higher_is_better: bool = True) -> pd.Series:
    """Rank the models (columns) within each category (row), 1 = best, ties share the mean rank; average."""
    ranks = (-table if higher_is_better else table).rank(axis=1, method="average")
    return ranks.mean(axis=0).sort_values()


def friedman_nemenyi(table: pd.DataFrame, *, metric: str = "", alpha: float = DEFAULT_ALPHA,
                     higher_is_better: bool = True) -> AcrossCategories:
    """Compare the models (columns) over the categories (rows) of `table` (one metric's values; NaN or None
    where a model has no value in a category, and such a category is left out: Friedman needs complete
    blocks). Needs at least 3 models and 2 complete categories (ValueError otherwise)."""
    numeric = table.apply(pd.to_numeric, errors="coerce").astype(np.float64)
    numeric.columns = [str(c) for c in numeric.columns]
    complete = numeric.dropna(axis=0, how="any")
    dropped = [str(c) for c in numeric.index if c not in complete.index]
    n, k = complete.shape
    if k < 3:
        raise ValueError(f"Friedman's test needs at least 3 models, got {k}")
    if n < 2:
        raise ValueError(f"Friedman's test needs at least 2 categories with every model's value, got {n}")
    ranks = average_ranks(complete, higher_is_better)
    statistic, p_value = friedmanchisquare(*(complete[c].to_numpy() for c in complete.columns))
    statistic, p_value = float(statistic), float(p_value)
    # Iman & Davenport's F: less conservative than the chi-square (Demšar's recommendation); reported beside it.
    denominator = n * (k - 1) - statistic
    f_value = (n - 1) * statistic / denominator if denominator > 0 else math.inf
    f_p = float(f_distribution.sf(f_value, k - 1, (k - 1) * (n - 1))) if math.isfinite(f_value) else 0.0
    import scikit_posthocs

    oriented = -complete if higher_is_better else complete  # rank direction does not change |rank difference|
    nemenyi = scikit_posthocs.posthoc_nemenyi_friedman(oriented.to_numpy())
    nemenyi.index = nemenyi.columns = list(complete.columns)
    cd = critical_difference(k, n, alpha)
    friedman_rejects = p_value < alpha
    rows, different = [], set()
    ordered = list(ranks.index)
    for a, b in itertools.combinations(ordered, 2):
        p_pair = float(nemenyi.loc[a, b])
        is_different = bool(friedman_rejects and p_pair < alpha)
        if is_different:
            different.add(frozenset((a, b)))
        gap = float(ranks[b] - ranks[a])
        rows.append({"model_a": a, "model_b": b, "rank_a": float(ranks[a]), "rank_b": float(ranks[b]),
                     "rank_difference": gap, "nemenyi_p": p_pair, "different": is_different,
                     "verdict": (f"{a} beats {b} (average rank {ranks[a]:.2f} vs {ranks[b]:.2f}, CD {cd:.2f})"
                                 if is_different else
                                 f"{a} and {b} are not distinguishable (average rank {ranks[a]:.2f} vs "
                                 f"{ranks[b]:.2f}, CD {cd:.2f})")})
    head = (f"Over {n} categories ({metric or 'the metric'}; Friedman p = {p_value:.3g}, Nemenyi CD = {cd:.2f} "
            f"ranks at alpha {alpha:g}): ")
    if not friedman_rejects:
        head += "Friedman's test finds no difference between the models, so no pair is compared. "
    verdict = head + describe_order(ordered, different)
    return AcrossCategories(metric, float(alpha), ranks, n, statistic, p_value, float(f_value), f_p, cd, nemenyi,
                            pd.DataFrame(rows), verdict, dropped)


def critical_difference_data(result: AcrossCategories) -> dict:
    """What a critical-difference diagram draws: {'average_ranks': {model: rank} best first, 'cd': float,
    'groups': [[model, ...], ...] (maximal runs of models adjacent in rank with no pair called different: a bar
    joins each), 'n_categories', 'alpha', 'friedman_p', 'metric'}. When Friedman's test does not reject, all
    models form one group."""
    ordered = list(result.average_ranks.index)
    different = {frozenset((r.model_a, r.model_b)) for r in result.pairwise.itertuples() if r.different}
    groups: list[list[str]] = []
    for start in range(len(ordered)):
        end = start
        while end + 1 < len(ordered) and all(frozenset((ordered[i], ordered[end + 1])) not in different
                                             for i in range(start, end + 1)):
            end += 1
        if end > start and not any(start >= s and end <= e for s, e in
                                   ((ordered.index(g[0]), ordered.index(g[-1])) for g in groups)):
            groups.append(ordered[start:end + 1])
    return {"average_ranks": {m: float(r) for m, r in result.average_ranks.items()}, "cd": result.critical_difference,
            "groups": groups, "n_categories": result.n_categories, "alpha": result.alpha,
            "friedman_p": result.friedman_p, "metric": result.metric}


__all__ = ["ACROSS_METHOD", "AcrossCategories", "CORRECTION", "DEFAULT_ALPHA", "average_ranks", "category_verdict",
           "critical_difference", "critical_difference_data", "describe_order", "friedman_nemenyi", "holm_adjust",
           "paired_permutation_p", "pairwise_comparisons",
           "PERMUTATION_TEST"]
