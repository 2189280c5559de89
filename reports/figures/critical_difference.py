"""The critical-difference diagram (Demšar 2006): the models' average ranks over the categories on one axis,
the critical difference of Nemenyi's test drawn above it, and a thick line under each group of models that
are not distinguishable. One panel per ranked metric (image AUROC; recall at 1% false alarms where defined);
the numbers come from bench.ranking via reports/ranking.py."""
from __future__ import annotations

from bench.ranking import critical_difference_data
from reports.figures.common import FigureResult, model_colours, new_figure
from reports.ranking import METRIC_NAMES, across_categories
from reports.run_data import RunView

PANEL_HEIGHT_IN = 0.45  # per model label line, both sides together


def critical_difference_figure(run: RunView) -> FigureResult:
    title = "Average rank over categories, with Nemenyi's critical difference"
    result = FigureResult("critical_difference", title, None)
    drawable = []
    for entry in across_categories(run):
        name = METRIC_NAMES[entry.metric]
        if entry.result is None:
            result.notes.append(f"{name}: {entry.reason}")
        else:
            drawable.append((name, critical_difference_data(entry.result)))
            result.notes += [f"{name}: {note}" for note in entry.notes]
    if not drawable:
        return result
    colours = model_colours(run)
    k_max = max(len(d["average_ranks"]) for _, d in drawable)
    panel_in = 1.0 + PANEL_HEIGHT_IN * ((k_max + 1) // 2) + 0.2 * max(len(d["groups"]) for _, d in drawable)
    subtitle = (f"{run.subtitle()}\nrank 1 = best in a category; models joined by a thick line are not "
                f"distinguishable (alpha {drawable[0][1]['alpha']:g}); CD: the smallest rank difference Nemenyi's "
                "test calls significant")
    fig = new_figure(8.0, 1.0 + panel_in * len(drawable), title, subtitle)
    axes = fig.subplots(len(drawable), 1, squeeze=False)[:, 0]
    for ax, (name, data) in zip(axes, drawable):
        _draw(ax, name, data, colours)
    result.figure = fig
    return result


def _draw(ax, name: str, data: dict, colours: dict) -> None:
    ranks = data["average_ranks"]  # best first
    models = list(ranks)
    k = len(models)
    margin = 0.5 + 0.45 * (k - 1)  # room for the names beside the axis, in ranks
    ax.set_xlim(1 - margin, k + margin)
    half = (k + 1) // 2
    group_space = 0.35 * len(data["groups"])
    ax.set_ylim(-(0.9 + group_space + 0.8 * half), 1.7)
    ax.axis("off")
    # the rank axis, ticks at every whole rank
    ax.plot([1, k], [0, 0], color="black", linewidth=1.0)
    for r in range(1, k + 1):
        ax.plot([r, r], [0, 0.12], color="black", linewidth=1.0)
        ax.text(r, 0.2, str(r), ha="center", va="bottom", fontsize=8.5)
    for r in range(1, k):
        ax.plot([r + 0.5, r + 0.5], [0, 0.06], color="black", linewidth=0.7)
    # the critical difference, from rank 1, above the axis
    cd = data["cd"]
    if cd <= k - 1 + 1e-9:
        ax.plot([1, 1 + cd], [1.1, 1.1], color="#333333", linewidth=1.6, gid="cd-bar")
        for x in (1, 1 + cd):
            ax.plot([x, x], [1.0, 1.2], color="#333333", linewidth=1.2)
        ax.text(1 + cd / 2, 1.25, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=8.5)
    else:  # wider than the whole axis: no two models can differ
        ax.text(1, 1.15, f"CD = {cd:.2f}, wider than the rank axis: no pair can be told apart", ha="left", va="bottom",
                fontsize=8.5)
    ax.set_title(f"{name} over {data['n_categories']} categories (Friedman p = {data['friedman_p']:.3g})",
                 loc="left", fontsize=9.5)
    # the models: the better half labelled on the left, the rest on the right, each with an elbow line
    for i, model in enumerate(models):
        rank = ranks[model]
        left = i < half
        row = (i if left else k - 1 - i)
        y = -(0.7 + group_space + 0.8 * row)
        end = 1 - 0.2 if left else k + 0.2
        colour = colours.get(model, (0.2, 0.2, 0.2))
        ax.plot([rank, rank, end], [0, y, y], color=colour, linewidth=1.0, gid=f"rank-{model}")
        ax.text(end - 0.05 if left else end + 0.05, y, f"{model} ({rank:.2f})" if left else f"({rank:.2f}) {model}",
                ha="right" if left else "left", va="center", fontsize=8.5, color=colour)
    # groups not distinguishable: thick lines just under the axis, stacked
    for g, group in enumerate(data["groups"]):
        low, high = ranks[group[0]], ranks[group[-1]]
        y = -(0.25 + 0.35 * g)
        ax.plot([low - 0.04, high + 0.04], [y, y], color="black", linewidth=3.0, solid_capstyle="round",
                gid=f"group-{g}")
