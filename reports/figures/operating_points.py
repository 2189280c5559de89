"""Misses against false alarms around the operating point: the view a line engineer decides with.

One panel per model (columns) and category (rows): the model's test ROC curve drawn as the miss rate (test
defects not flagged) against the false-alarm rate (test normals flagged), from the record's per-image scores,
and at each target false-alarm rate the point the validation threshold realised on the test set, with a cross of
its two 95% intervals (bench/operating_points.py: exact intervals for the rates this threshold gives). Both
axes are linear below 1% and logarithmic above, so that the 1-5% region is readable and a rate of 0 still shows.
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from reports.deployment import percent, rate_suffix, target_fprs
from reports.figures.common import FigureResult, bottom_legend, model_colours, new_figure
from reports.run_data import RunView, image_scores, interval, is_present, number

PANEL_IN = 2.55
LINEAR_BELOW = 0.01  # symlog: linear from 0 to 1%, logarithmic above
TICKS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
MARKERS = ("o", "s", "^", "D")


def miss_false_alarm_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-alarm rates, miss rates) at every threshold t = each distinct score and below the lowest (alarm
    when score > t, as bench.operating_points), ordered by rising false-alarm rate."""
    normals, defects = np.sort(scores[labels == 0]), np.sort(scores[labels == 1])
    thresholds = np.concatenate([[-np.inf], np.unique(scores)])
    false_alarms = (normals.size - np.searchsorted(normals, thresholds, side="right")) / max(normals.size, 1)
    misses = np.searchsorted(defects, thresholds, side="right") / max(defects.size, 1)
    order = np.lexsort((-misses, false_alarms))
    return false_alarms[order], misses[order]


def _percent_tick(value: float, _=None) -> str:
    return "0" if value == 0 else f"{100 * value:g}%"


def _rate_axis(axis) -> None:
    axis.set_major_locator(FixedLocator(TICKS))
    axis.set_major_formatter(FuncFormatter(_percent_tick))
    axis.set_minor_locator(NullLocator())


def _first_seed(records: list[dict]) -> dict | None:
    if not records:
        return None
    return min(records, key=lambda r: number(r.get("seed")) if is_present(r.get("seed")) else math.inf)


def operating_points_figure(run: RunView) -> FigureResult:
    title = "Misses against false alarms at the validation thresholds (test set)"
    result = FigureResult("operating_points", title, None)
    categories = run.categories()
    targets = target_fprs(run)
    models = [m for m in run.models if any(r["model"] == m for r in run.reference_accuracy())]
    panels = {}
    for dataset, category in categories:
        for model in models:
            record = _first_seed(run.category_rows(model, dataset, category))
            if record is not None:
                panels[(dataset, category, model)] = record
    with_scores = {k for k, r in panels.items() if image_scores(r) is not None}
    if not panels or (not targets and not with_scores):
        result.notes.append("No accuracy record with per-image scores or operating points in this run: figure skipped.")
        return result
    if not targets:
        result.notes.append("The records hold no validation-threshold operating points (no validation normals held "
                            "out, or recorded before they were measured): only the test curves are drawn.")
    if len(with_scores) < len(panels):
        result.notes.append("Some records keep no per-image scores: their panels show the operating points only.")
    if any(len(run.category_rows(m, d, c)) > 1 for d, c, m in panels):
        result.notes.append("Several training seeds: each panel shows the lowest seed.")

    colours = model_colours(run)
    several_datasets = len({d for d, _ in categories}) > 1
    rows = [(d, c) for d, c in categories if any((d, c, m) in panels for m in models)]
    subtitle = (run.subtitle() + "\nline: the test ROC curve as misses vs false alarms; marker: the rate the validation "
                "threshold realised on the test set, cross: its 95% intervals; dotted: the target rates")
    fig = new_figure(max(6.0, 0.6 + PANEL_IN * len(models)), 1.9 + PANEL_IN * len(rows), title, subtitle)
    axes = fig.subplots(len(rows), len(models), squeeze=False, sharex=True, sharey=True)
    drawn_targets: set[float] = set()
    for i, (dataset, category) in enumerate(rows):
        for j, model in enumerate(models):
            ax = axes[i][j]
            ax.set_xscale("symlog", linthresh=LINEAR_BELOW, linscale=0.6)
            ax.set_yscale("symlog", linthresh=LINEAR_BELOW, linscale=0.6)
            _rate_axis(ax.xaxis)
            _rate_axis(ax.yaxis)
            ax.set_xlim(-0.0012, 1.08)  # a little room around 0 and 100%: a point at a rate of 0 stays whole
            ax.set_ylim(-0.0012, 1.08)
            ax.grid(color="#ececec", linewidth=0.7)
            ax.set_axisbelow(True)
            ax.tick_params(axis="x", labelrotation=90)
            if i == 0:
                ax.set_title(model, color=colours[model], fontweight="bold")
            if j == 0:
                ax.set_ylabel((f"{dataset}: " if several_datasets else "") + f"{category}\nmisses (test defects)")
            if i == len(rows) - 1:
                ax.set_xlabel("false alarms (test normals)")
            record = panels.get((dataset, category, model))
            if record is None:
                ax.text(0.5, 0.5, "not run / failed", transform=ax.transAxes, ha="center", color="#888888", style="italic")
                continue
            for target in targets:
                ax.axvline(target, color="#999999", linestyle=":", linewidth=1.0, zorder=1)
            scored = image_scores(record)
            if scored is not None and len(set(scored[0].tolist())) == 2:
                false_alarms, misses = miss_false_alarm_curve(*scored)
                line, = ax.plot(false_alarms, misses, color=colours[model], linewidth=1.3, alpha=0.8, zorder=2)
                line.set_gid(f"curve-{category}-{model}")
            drawn_targets |= _draw_points(ax, record, targets, colours[model], f"{category}-{model}")
    handles = [Line2D([], [], color="#555555", linewidth=1.3, label="test ROC curve")]
    handles += [Line2D([], [], color="#555555", marker=MARKERS[k % len(MARKERS)], linestyle="none", markersize=6,
                       markerfacecolor="white", label=f"{percent(t)} validation threshold")
                for k, t in enumerate(targets) if t in drawn_targets]
    bottom_legend(fig, handles, ncol=len(handles) if len(models) > 1 else 1)
    result.figure = fig
    return result


def _draw_points(ax, record: dict, targets: list[float], colour, panel: str) -> set[float]:
    """The realised point of each target's validation threshold with its interval cross; the targets drawn."""
    undefined, drawn = [], set()
    for k, target in enumerate(targets):
        s = rate_suffix(target)
        x, x_low, x_high = interval(record, f"image_fpr_at_val_thr_{s}")
        y, y_low, y_high = interval(record, f"image_miss_rate_at_val_thr_{s}")
        if not (is_present(x) and is_present(y)):
            undefined.append(percent(target))
            continue
        xerr = [[x - x_low], [x_high - x]] if is_present(x_low) and is_present(x_high) else None
        yerr = [[y - y_low], [y_high - y]] if is_present(y_low) and is_present(y_high) else None
        dark = tuple(0.6 * c for c in colour[:3])
        bars = ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt=MARKERS[k % len(MARKERS)], color=dark, markersize=6,
                           markerfacecolor="white", markeredgewidth=1.4, elinewidth=1.1, capsize=2.5, zorder=4)
        for collection in bars[2]:
            collection.set_gid(f"interval-{s}-{panel}")
        drawn.add(target)
    if undefined:  # bottom left: low false alarms and few misses, where no real model's curve runs
        ax.text(0.04, 0.04, f"no {' or '.join(undefined)} threshold:\nsee the deployment table", transform=ax.transAxes,
                ha="left", va="bottom", fontsize=7, color="#666666", style="italic",
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.8, "linewidth": 0})
    return drawn
