"""Accuracy per category as dot-and-whisker rows: per category one row per model with its 95% test-set
interval, so that a reader sees at once whether two models' intervals overlap; with several training seeds
each seed's own value is drawn too (the seed-to-seed spread, a different noise from the interval)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from matplotlib.lines import Line2D

from reports.figures.common import FAILED_COLOUR, FigureResult, bottom_legend, model_colours, new_figure
from reports.run_data import MEAN_CATEGORY, RunView, interval, is_present, number, undefined_reasons

ROW_HEIGHT_IN = 0.24


@dataclass
class Row:
    """One model in one category block, for one metric."""

    model: str
    value: float = math.nan
    low: float = math.nan
    high: float = math.nan
    seeds: list[float] = field(default_factory=list)  # each seed's own value, when there are several
    state: str = ""  # '' when drawn; else what to write instead: 'failed', 'undefined: ...', 'not run'


def category_row(run: RunView, model: str, dataset: str, category: str, metric: str, failed: set) -> Row:
    records = run.category_rows(model, dataset, category)
    row = Row(model)
    if not records:
        row.state = "failed" if (model, dataset, category) in failed else "not run"
        return row
    values = [interval(r, metric) for r in records]
    defined = [v for v in values if is_present(v[0])]
    if not defined:
        reasons = [undefined_reasons(r).get(metric) for r in records]
        row.state = "undefined: " + next((r for r in reasons if r), "not measured")
        return row
    # Several seeds: the mean over seeds, with the seeds' test-set interval bounds averaged (the typical width
    # of one trained model's interval, centred where the seeds land on average); one seed: its own interval.
    row.value = float(np.mean([v[0] for v in defined]))
    if all(is_present(v[1]) and is_present(v[2]) for v in defined):
        row.low = float(np.mean([v[1] for v in defined]))
        row.high = float(np.mean([v[2] for v in defined]))
    if len(defined) > 1:
        row.seeds = [v[0] for v in defined]
    return row


def mean_block_row(run: RunView, model: str, dataset: str, metric: str, categories: list[str]) -> Row:
    """The stored mean row with its combined interval; the seeds' own category means where there are several."""
    mean = run.mean_row(model, dataset)
    row = Row(model)
    if mean is None:
        row.state = "no mean (a category did not finish)"
        return row
    row.value, row.low, row.high = interval(mean, metric)
    if not is_present(row.value):
        reason = undefined_reasons(mean).get(metric)
        row.state = f"undefined: {reason}" if reason else "not measured"
        return row
    per_seed: dict[str, list[float]] = {}
    for category in categories:
        for record in run.category_rows(model, dataset, category):
            per_seed.setdefault(str(record.get("seed", "")), []).append(number(record.get(metric)))
    complete = [np.mean(v) for v in per_seed.values() if len(v) == len(categories) and all(is_present(x) for x in v)]
    if len(complete) > 1:
        row.seeds = [float(v) for v in complete]
    return row


def per_category_figure(run: RunView) -> FigureResult:
    title = "Accuracy per category: value and 95% test-set interval per model"
    result = FigureResult("per_category", title, None)
    categories = run.categories()
    if not categories:
        result.notes.append("No successful accuracy record in this run: figure skipped.")
        return result
    several_datasets = len({d for d, _ in categories}) > 1
    models = [m for m in run.models if any(r["model"] == m for r in run.reference_accuracy())]
    failed = {(r.get("model"), r.get("dataset", ""), r.get("category")) for r in run.failed if r.get("suite") == "accuracy"}
    blocks = [(d, c) for d, c in categories] + [(d, MEAN_CATEGORY) for d in run.datasets]
    metrics = [("image_auroc", "image AUROC")]
    if any(is_present(r.get("aupro")) for r in run.reference_accuracy()):
        metrics.append(("aupro", "AUPRO@0.3 (FPR up to 0.3)"))
    else:
        result.notes.append("No AUPRO in this run (image-level models only): AUPRO panel left out.")

    def rows_for(metric: str) -> list[list[Row]]:
        out = []
        for dataset, category in blocks:
            names = [c for d, c in categories if d == dataset]
            if category == MEAN_CATEGORY:
                out.append([mean_block_row(run, m, dataset, metric, names) for m in models])
            else:
                out.append([category_row(run, m, dataset, category, metric, failed) for m in models])
        return out

    # y positions: per block a heading row, then one row per model, top to bottom.
    positions, tick_labels, headings = [], [], []
    y = 0.0
    for dataset, category in blocks:
        label = ("mean over categories" if category == MEAN_CATEGORY else category)
        headings.append(y)
        tick_labels.append(f"{dataset}: {label}" if several_datasets else label)
        y += 1
        rows_y = []
        for model in models:
            rows_y.append(y)
            tick_labels.append(model)
            y += 1
        positions.append(rows_y)
        y += 0.4
    several_seeds = any(len(r.seeds) > 1 for metric, _ in metrics for block in rows_for(metric) for r in block)
    colours = model_colours(run)
    height = 1.9 + ROW_HEIGHT_IN * y
    subtitle = (run.subtitle() + "\ndot and whisker: value and 95% bootstrap interval over the test images"
                + (" (several seeds: mean over seeds, interval bounds averaged); diamonds: each seed's own value" if several_seeds else ""))
    fig = new_figure(5.2 + 4.2 * len(metrics), max(height, 3.4), title, subtitle)
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    missing_interval = False
    for ax, (metric, label) in zip(axes, metrics):
        drawn: list[float] = []
        for block_rows, block_y in zip(rows_for(metric), positions):
            for row, row_y in zip(block_rows, block_y):
                colour = colours[row.model]
                if row.state:
                    ax.text(0.01, row_y, row.state, transform=ax.get_yaxis_transform(), va="center", fontsize=7.5,
                            color=FAILED_COLOUR if row.state == "failed" else "#777777", style="italic", clip_on=True)
                    continue
                has_interval = is_present(row.low) and is_present(row.high)
                missing_interval |= not has_interval
                xerr = [[row.value - row.low], [row.high - row.value]] if has_interval else None
                bars = ax.errorbar(row.value, row_y, xerr=xerr, fmt="o", color=colour, markersize=5.5, elinewidth=1.6,
                                   capsize=3, capthick=1.4, zorder=3)
                for collection in bars[2]:
                    collection.set_gid(f"interval-{metric}-{row.model}")
                drawn += [row.value] + ([row.low, row.high] if has_interval else [])
                for seed_value in row.seeds:
                    ax.plot(seed_value, row_y, marker="D", markersize=4.5, markerfacecolor="white", markeredgecolor=colour,
                            markeredgewidth=1.1, linestyle="none", zorder=4)
                    drawn.append(seed_value)
        for heading_y in headings:
            ax.axhspan(heading_y - 0.5, heading_y + 0.5, color="#f0f2f5", zorder=0, linewidth=0)
        low = min(drawn) if drawn else 0.5
        ax.set_xlim(max(0.0, min(low - 0.03, 0.95)), 1.005)
        if ax.get_xlim()[0] < 0.5:
            ax.axvline(0.5, color="#bbbbbb", linewidth=0.8, linestyle=":", zorder=1)  # chance level for AUROC
        ax.set_title(label, loc="left")
        ax.set_xlabel(label.split(" (")[0] + " (higher is better)")
        ax.grid(axis="x", color="#e5e5e5", linewidth=0.8)
        ax.set_axisbelow(True)
    ticks = sorted(headings + [v for block in positions for v in block])
    axes[0].set_yticks(ticks, tick_labels)
    for tick_label, tick in zip(axes[0].get_yticklabels(), ticks):
        if tick in headings:
            tick_label.set_fontweight("bold")
        else:
            tick_label.set_color(colours[tick_label.get_text()])
    axes[0].set_ylim(y - 0.4, -0.6)
    for ax in axes:
        ax.tick_params(axis="y", length=0)
    if missing_interval:
        result.notes.append("Rows without a whisker have no interval in the run (e.g. a mean computed by the report).")
    handles = [Line2D([], [], color="#555555", marker="o", markersize=5.5, linewidth=1.6, label="value, 95% test-set interval")]
    if several_seeds:
        handles.append(Line2D([], [], color="#555555", marker="D", markersize=4.5, markerfacecolor="white", linestyle="none",
                              label="each training seed's value (seed-to-seed spread)"))
    bottom_legend(fig, handles, ncol=len(handles))
    result.figure = fig
    return result
