"""The deployer's frontier: per model x variant x batching policy, accuracy at the operating point against the
highest camera rate the end-to-end pipeline sustains within its deadline (bench/line.py's search, run by the
profile job). Accuracy is the mean image recall at 1% false alarms with its interval where the accuracy records
carry it (bench/operating_points.py), else the mean image AUROC with its interval. The rate's whisker runs from
the highest passing to the lowest failing rate of the search: the sustainable rate lies between them, as far as
trials of that length can tell."""
from __future__ import annotations

import re

from matplotlib.lines import Line2D

from reports.figures.common import FigureResult, bottom_legend, model_colours, new_figure, place_labels
from reports.run_data import REFERENCE_VARIANT, RunView, interval, is_present, number, variant_of

RECALL = "image_recall_at_fpr_1pct"
AUROC = "image_auroc"
METRIC_LABELS = {RECALL: "mean image recall at 1% false alarms", AUROC: "mean image AUROC"}
POLICY_RATE = re.compile(r"^line_(b\d+(?:w\d+(?:p\d+)?)?)_sustainable_rate_hz$")
VARIANT_MARKERS = {"torch-fp32": "o", "ort-fp32": "s"}
NOT_MEASURED = ("No line scenario in this run (sustainable rate not measured: the profile job of `bench run --suite "
                "all` runs it for its line models): figure skipped.")


def line_points(run: RunView) -> list[dict]:
    """One entry per (model, variant, policy) with a measured sustainable rate: rate, failing rate, policy label."""
    points = []
    for record in run.profile:
        for column in record:
            match = POLICY_RATE.match(column)
            if not match or not is_present(record.get(column)):
                continue
            key = f"line_{match.group(1)}_"
            points.append({"model": record["model"], "variant": variant_of(record), "policy": match.group(1),
                           "label": str(record.get(key + "policy") or match.group(1)), "rate": number(record[column]),
                           "failing": number(record.get(key + "failing_rate_hz")),
                           "deadline": number(record.get("line_deadline_ms"))})
    return points


def accuracy_for(run: RunView, model: str, variant: str) -> tuple[dict | None, str]:
    """The mean accuracy row for the point: the variant's own where the run evaluated it, else torch-fp32's (the
    same weights; the variant's parity with torch-fp32 is in the profile table)."""
    for candidate in (variant, REFERENCE_VARIANT):
        row = next((r for r in run.mean_accuracy(candidate) if r["model"] == model), None)
        if row is not None:
            return row, candidate
    return None, ""


def frontier_figure(run: RunView) -> FigureResult:
    result = FigureResult("frontier", "The deployer's frontier", None)
    points = line_points(run)
    if not points:
        result.notes.append(NOT_MEASURED)
        return result
    rows = {}
    borrowed = set()
    for p in points:
        row, source = accuracy_for(run, p["model"], p["variant"])
        if row is None:
            continue
        rows[(p["model"], p["variant"])] = row
        if source != p["variant"]:
            borrowed.add(p["variant"])
    with_recall = [k for k, r in rows.items() if is_present(r.get(RECALL))]
    metric = RECALL if rows and len(with_recall) == len(rows) else AUROC
    drawn = [p for p in points if (p["model"], p["variant"]) in rows and is_present(rows[(p["model"], p["variant"])].get(metric))]
    for p in points:
        if p not in drawn:
            result.notes.append(f"{p['model']} {p['variant']} ({p['label']}): sustainable rate measured, no mean "
                                f"{METRIC_LABELS[metric]} in this run, left out.")
    if not drawn:
        result.notes.append("No model has both a sustainable rate and a mean accuracy in this run: figure skipped.")
        return result
    unbounded = [f"{p['model']} {p['variant']} ({p['label']})" for p in drawn if not is_present(p["failing"])]
    if unbounded:
        result.notes.append("No trial of the search failed for " + ", ".join(unbounded) + " (it ran out of trials "
                            "first): the rate drawn is a lower bound, marked ≥ and without a whisker.")
    if metric == AUROC:
        result.notes.append("Accuracy is the mean image AUROC: the accuracy records hold no recall at 1% false alarms"
                            + (" for every model" if with_recall else "") + ".")
    if borrowed:
        result.notes.append(f"{', '.join(sorted(borrowed))} points carry torch-fp32's accuracy (the same weights; the "
                            "run did not evaluate that variant's accuracy).")
    deadlines = sorted({p["deadline"] for p in drawn if is_present(p["deadline"])})
    deadline = " / ".join(f"{d:g} ms" for d in deadlines) or "the deadline"
    title = f"The deployer's frontier: {METRIC_LABELS[metric]} against the camera rate sustained within {deadline}"
    subtitle = (run.subtitle("profile") + " | one point per model x variant x batching policy (marker: variant, fill: "
                "batch 1 solid, dynamic batching hollow)\nhorizontal whisker: highest passing to lowest failing rate "
                "of the search; vertical: 95% interval over test images; upper right is better")
    fig = new_figure(9.6, 6.2, title, subtitle)
    ax = fig.add_subplot()
    colours = model_colours(run)
    labels, obstacles = [], []
    for p in drawn:
        y, low, high = interval(rows[(p["model"], p["variant"])], metric)
        x, fail = p["rate"], p["failing"]
        colour = colours.get(p["model"], (0.3, 0.3, 0.3))
        xerr = [[0.0], [fail - x]] if is_present(fail) and fail > x else None
        yerr = [[y - low], [high - y]] if is_present(low) and is_present(high) else None
        if xerr is not None or yerr is not None:
            bars = ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor=tuple(0.55 * c for c in colour),
                               elinewidth=1.1, capsize=3, zorder=2)
            for collection in bars[2]:
                collection.set_gid(f"frontier-interval-{p['model']}-{p['variant']}-{p['policy']}")
        batch1 = p["policy"] == "b1"
        ax.scatter(x, y, s=70, marker=VARIANT_MARKERS.get(p["variant"], "D"), color=colour if batch1 else "white",
                   edgecolors=colour, linewidths=1.6, zorder=3, gid=f"frontier-point-{p['model']}-{p['variant']}-{p['policy']}")
        obstacles.append((x, y, 5.0))
        open_ended = "" if is_present(fail) else "≥ "  # no trial failed: the rate is a lower bound
        labels.append((x, y, open_ended + f"{p['model']} {p['variant'].replace('-fp32', '')}" + ("" if batch1 else " dyn"),
                       5.0))
    xs = [v for p in drawn for v in (p["rate"], p["failing"]) if is_present(v)]
    ax.set_xlim(0, max(xs) * 1.2)
    ys = [v for p in drawn for v in interval(rows[(p["model"], p["variant"])], metric) if is_present(v)]
    ax.set_ylim(max(0.0, min(ys) - 0.05), min(1.0, max(ys)) + 0.05)
    ax.set_xlabel(f"sustainable rate (parts/s): the highest periodic rate whose p99 latency stays within {deadline}")
    ax.set_ylabel(METRIC_LABELS[metric] + " (higher is better)")
    ax.grid(color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    policies = {p["policy"]: p["label"] for p in drawn}
    handles = [Line2D([], [], marker=m, linestyle="none", color="#666666", markersize=7, label=v)
               for v, m in VARIANT_MARKERS.items() if any(p["variant"] == v for p in drawn)]
    handles += [Line2D([], [], marker="o", linestyle="none", markersize=7, color="#666666" if key == "b1" else "white",
                       markeredgecolor="#666666", label=label) for key, label in policies.items()]
    bottom_legend(fig, handles, ncol=len(handles))
    place_labels(fig, ax, labels, obstacles)
    result.figure = fig
    return result
