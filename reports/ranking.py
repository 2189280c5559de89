"""The report's ranking section: which model to pick, with significance (bench/ranking.py does the tests).

Per category, every pair of models is compared on the same test images from the per-image scores the accuracy
records keep: image AUROC by DeLong's test, recall at 1% false alarms by a paired permutation test where it is defined;
Holm's correction over the pairs of one metric in one category. Across categories, Friedman's test on the
models' ranks with Nemenyi's post-hoc test (Demšar 2006), drawn as a critical-difference diagram
(reports/figures/critical_difference.py). The section prints the verdicts as sentences and says why a part is
empty (fewer than two models, fewer than two categories, no per-image scores).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from html import escape

import numpy as np
import pandas as pd

from bench.ranking import (
    ACROSS_METHOD, CORRECTION, DEFAULT_ALPHA, AcrossCategories, category_verdict, friedman_nemenyi, pairwise_comparisons,
)
from reports.run_data import RunView, image_scores, is_present, number, undefined_reasons

# (record key, what the section calls it); the recall key is bench.ranking's name for the 1% target.
RANKED_METRICS = (("image_auroc", "image AUROC"), ("image_recall_at_fpr_1pct", "recall at 1% false alarms"))
METRIC_NAMES = dict(RANKED_METRICS)


@dataclass
class CategoryComparison:
    """The pairwise tests of one category: rows of bench.ranking.pairwise_comparisons, or why there are none."""

    dataset: str
    category: str
    models: list[str]
    pairwise: pd.DataFrame | None = None
    reason: str = ""  # why no test ran
    notes: list[str] = field(default_factory=list)  # models left out and why; the seed used

    def verdict(self, metric: str) -> str:
        if self.pairwise is None:
            return self.reason
        text = category_verdict(self.pairwise, metric)
        if text.startswith(f"{metric} not compared"):  # the metric is named before the verdict already
            text = "N" + text.removeprefix(f"{metric} n")
        return _named(text)


@dataclass
class AcrossResult:
    """Friedman + Nemenyi of one metric over the categories, or why it could not run."""

    metric: str
    result: AcrossCategories | None = None
    reason: str = ""
    notes: list[str] = field(default_factory=list)  # categories and models left out and why


_NO_TWO = re.compile(r"^No two of (?P<a>\S+) and (?P<b>\S+) are distinguishable here\.$")


def _named(text: str) -> str:
    """The metric keys as the section names them; 'No two of A and B' for just two models as 'A and B are not'."""
    for key, name in RANKED_METRICS:
        text = text.replace(key, name)
    return _NO_TWO.sub(r"\g<a> and \g<b> are not distinguishable here.", text)


def _lowest_seed(records: list[dict]) -> dict | None:
    return min(records, key=lambda r: number(r.get("seed")) if is_present(r.get("seed")) else math.inf) if records else None


def _label(run: RunView, dataset: str, category: str) -> str:
    return f"{dataset}/{category}" if len(run.datasets) > 1 else category


def fmt_p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3g}"


def keeps_scores(run: RunView) -> bool:
    """Whether any per-category accuracy record of the run keeps its per-image scores."""
    return any(image_scores(r) is not None for r in run.reference_accuracy() if r.get("category") != "mean")


NO_SCORES = ("Not compared per category: the accuracy records keep no per-image scores (written before defectbench "
             "stored them); re-run the accuracy suite for the paired tests.")


def compared_models(run: RunView) -> list[str]:
    return [m for m in run.models if any(r.get("model") == m for r in run.reference_accuracy())]


def category_comparisons(run: RunView, alpha: float = DEFAULT_ALPHA) -> list[CategoryComparison]:
    """One comparison per category of the run (torch-fp32 records; with several seeds, each model's lowest)."""
    out = []
    for dataset, category in run.categories():
        comparison = CategoryComparison(dataset, category, [])
        scores, labels = {}, None
        several_seeds = False
        for model in compared_models(run):
            records = run.category_rows(model, dataset, category)
            several_seeds |= len(records) > 1
            record = _lowest_seed(records)
            if record is None:
                comparison.notes.append(f"{model} left out: no finished record in this category")
                continue
            scored = image_scores(record)
            if scored is None:
                comparison.notes.append(f"{model} left out: its record keeps no per-image scores")
                continue
            if labels is None:
                labels = scored[0]
            elif scored[0].shape != labels.shape or not np.array_equal(scored[0], labels):
                comparison.notes.append(f"{model} left out: scored on other test images than {next(iter(scores))}")
                continue
            scores[model] = scored[1]
        if several_seeds:
            comparison.notes.append("several training seeds: each model's lowest seed is compared")
        comparison.models = list(scores)
        if len(scores) < 2:
            comparison.reason = (f"Not compared: {len(scores)} model{'s' if len(scores) != 1 else ''} with per-image "
                                 "scores on this category's test images; a comparison needs two.")
        else:
            comparison.pairwise = pairwise_comparisons(labels, scores, alpha=alpha)
        out.append(comparison)
    return out


def _category_table(run: RunView, metric: str) -> pd.DataFrame:
    """Categories (rows) x models (columns) of a metric's value, the mean over seeds; NaN where missing."""
    models = compared_models(run)
    table = {}
    for dataset, category in run.categories():
        row = {}
        for model in models:
            values = [number(r.get(metric)) for r in run.category_rows(model, dataset, category)]
            values = [v for v in values if not math.isnan(v)]
            row[model] = float(np.mean(values)) if values else math.nan
        table[_label(run, dataset, category)] = row
    return pd.DataFrame.from_dict(table, orient="index", columns=models, dtype=float)


def across_categories(run: RunView, alpha: float = DEFAULT_ALPHA) -> list[AcrossResult]:
    """Friedman + Nemenyi for each ranked metric. A category where no model has the metric is left out; then a
    model missing a remaining category (a failed job) is left out, so the test sees complete blocks."""
    out = []
    for metric, name in RANKED_METRICS:
        entry = AcrossResult(metric)
        table = _category_table(run, metric)
        empty = [str(c) for c in table.index if table.loc[c].isna().all()]
        table = table.drop(index=empty)
        if empty and not table.empty:
            entry.notes.append(f"left out, {name} undefined for every model: {', '.join(empty)}")
        incomplete = [m for m in table.columns if table[m].isna().any()]
        if incomplete and not table.empty:
            entry.notes.append("left out, no value in every category: " + ", ".join(
                f"{m} ({', '.join(str(c) for c in table.index[table[m].isna()])})" for m in incomplete))
        table = table.drop(columns=incomplete)
        n_models, n_categories = table.shape[1], table.shape[0]
        if table.empty or n_categories == 0:
            why = sorted({reason for r in run.reference_accuracy()
                          if (reason := undefined_reasons(r, "operating_points_undefined").get(metric)
                              or undefined_reasons(r).get(metric))})
            entry.reason = f"{name} is not defined in any category of this run" + (f" ({'; '.join(why)})." if why else ".")
        elif n_models < 3:
            entry.reason = (f"Friedman's test needs at least 3 models with {name} in every category; this run has "
                            f"{n_models}. The per-category paired tests above are the comparison.")
        elif n_categories < 2:
            entry.reason = (f"Friedman's test needs at least 2 categories with every model's {name}; this run has "
                            f"{n_categories}. The per-category paired tests above are the comparison.")
        else:
            entry.result = friedman_nemenyi(table, metric=name, alpha=alpha)
        out.append(entry)
    return out


# -- the section ---------------------------------------------------------------------------------------------

INTRO = ("Models are compared on the same test images, not by eye. Per category, every pair "
         "by DeLong's test on image AUROC and by a paired permutation test on recall at 1% false alarms (where the test "
         f"set has the 100 normal images that needs), corrected for multiple comparisons by {CORRECTION} "
         f"(alpha {DEFAULT_ALPHA:g}). Across categories: {ACROSS_METHOD}, which controls the error over all pairs "
         "at once (no further correction). 'Not distinguishable' means the test cannot tell them apart on this "
         "data, not that they are equal.")


def _pairs_table_html(pairwise: pd.DataFrame) -> str:
    rows = []
    for row in pairwise.itertuples():
        if row.undefined:
            continue
        rows.append(f"<tr><td class=\"text\">{escape(METRIC_NAMES.get(row.metric, row.metric))}</td>"
                    f"<td class=\"text\">{escape(row.model_a)}</td><td class=\"text\">{escape(row.model_b)}</td>"
                    f"<td>{row.value_a:.3f}</td><td>{row.value_b:.3f}</td><td>{row.p_value:.3g}</td>"
                    f"<td>{row.p_holm:.3g}</td><td class=\"text\">{escape(row.better or 'not distinguishable')}</td></tr>")
    if not rows:
        return ""
    head = "".join(f'<th class="{"text" if i in (0, 1, 2, 7) else ""}">{h}</th>' for i, h in enumerate(
        ["metric", "model A", "model B", "A", "B", "p", "p (Holm)", "better"]))
    return (f'<details><summary>every pair, with p-values</summary><div class="scroll"><table><thead><tr>{head}</tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table></div></details>')


def ranking_html(run: RunView) -> str:
    parts = ['<h2 id="ranking">Which model to pick</h2>', f"<p>{escape(INTRO)}</p>"]
    models = compared_models(run)
    if len(models) < 2:
        parts.append(f"<p>No ranking: this run has {len(models)} model{'s' if len(models) != 1 else ''} with finished "
                     "accuracy records; a comparison needs two.</p>")
        return "".join(parts)
    parts.append("<h3>Per category (paired tests, Holm-corrected)</h3>")
    parts.append("<dl class=\"read\">" if keeps_scores(run) else f"<p>{escape(NO_SCORES)}</p><dl>")
    for comparison in category_comparisons(run) if keeps_scores(run) else []:
        label = _label(run, comparison.dataset, comparison.category)
        lines = ([comparison.reason] if comparison.pairwise is None else
                 [f"{name}: {comparison.verdict(metric)}" for metric, name in RANKED_METRICS])
        notes = "".join(f"<li>{escape(n)}</li>" for n in comparison.notes)
        parts.append(f"<dt>{escape(label)}</dt><dd>{'<br>'.join(escape(line) for line in lines)}"
                     + (f'<ul class="footnotes">{notes}</ul>' if notes else "")
                     + (_pairs_table_html(comparison.pairwise) if comparison.pairwise is not None else "") + "</dd>")
    parts.append("</dl><h3>Across categories (Friedman, then Nemenyi)</h3>")
    for entry in across_categories(run):
        name = METRIC_NAMES[entry.metric]
        text = entry.reason if entry.result is None else entry.result.verdict
        notes = "".join(f"<li>{escape(n)}</li>" for n in entry.notes)
        parts.append(f"<p><b>{escape(name)}</b>: {escape(text)}</p>" + (f'<ul class="footnotes">{notes}</ul>' if notes else ""))
        if entry.result is not None:
            ranks = ", ".join(f"{m} {r:.2f}" for m, r in entry.result.average_ranks.items())
            parts.append(f'<p class="subtitle">Average ranks (1 = best): {escape(ranks)}. Iman-Davenport F p = '
                         f'{fmt_p(entry.result.iman_davenport_p)}. Diagram: <a href="#fig-critical_difference">'
                         "critical difference</a>.</p>")
    return "".join(parts)


def ranking_markdown(run: RunView) -> list[str]:
    lines = ["### Which model to pick", "", INTRO, ""]
    models = compared_models(run)
    if len(models) < 2:
        return lines + [f"No ranking: this run has {len(models)} model(s) with finished accuracy records; a comparison "
                        "needs two.", ""]
    if not keeps_scores(run):
        lines.append(f"- {NO_SCORES}")
    for comparison in category_comparisons(run) if keeps_scores(run) else []:
        label = _label(run, comparison.dataset, comparison.category)
        if comparison.pairwise is None:
            lines.append(f"- **{label}**: {comparison.reason}")
        else:
            lines.append(f"- **{label}**: " + " ".join(f"{name}: {comparison.verdict(metric)}"
                                                       for metric, name in RANKED_METRICS))
        lines += [f"  ({note})" for note in comparison.notes]
    lines.append("")
    for entry in across_categories(run):
        text = entry.reason if entry.result is None else entry.result.verdict
        lines.append(f"- across categories, **{METRIC_NAMES[entry.metric]}**: {text}"
                     + (" (" + "; ".join(entry.notes) + ")" if entry.notes else ""))
    return lines + [""]


HOW_TO_READ = [
    ("which model to pick",
     "A verdict 'A beats B' means the paired test on the same test images found a difference after the correction "
     f"for the number of pairs ({CORRECTION}; Nemenyi across categories); 'not distinguishable' means it did not, "
     "which with small test sets is common and is not evidence that the two are equal. Recall at 1% false alarms "
     "is only compared where the test set has at least 100 normal images."),
    ("critical-difference diagram",
     "Demšar's diagram: each model at its average rank over the categories (1 = best, on the left), the bar above "
     "the axis is the critical difference (two models whose average ranks differ by less are not distinguishable "
     "by Nemenyi's test), and a thick line joins models that are not distinguishable. With few categories the "
     "critical difference is large: 5 models over 4 categories need a rank difference above 3 of the possible 4."),
]
