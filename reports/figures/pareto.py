"""Accuracy against cost: each model's mean accuracy (with its 95% test-set interval, and the seed-to-seed
spread where there are several seeds) against its torch-fp32 p50 latency (with the p10-p90 of the timed
calls), and the Pareto front."""
from __future__ import annotations

import math
from dataclasses import dataclass

from matplotlib.lines import Line2D
from matplotlib.transforms import offset_copy

from reports.figures.common import (
    FigureResult, bottom_legend, model_colours, new_figure, p10_p90, place_labels, plain_log_ticks, wide_spread,
)
from reports.run_data import REFERENCE_VARIANT, RunView, interval, is_present, latency_percentiles, number, undefined_reasons

SEED_BAR_WIDTH = 7.0  # points: the seed-spread bar is drawn wide and pale behind the thin interval whisker


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both lower latency and higher score, by rising latency."""
    front: list[tuple[float, float]] = []
    for latency, score in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or score > front[-1][1]:
            front.append((latency, score))
    return front


@dataclass
class Point:
    model: str
    dataset: str
    p50: float
    p10: float
    p90: float
    params: float
    n_seeds: int
    metrics: dict  # metric -> (value, ci_low, ci_high, seed_std)

    def value(self, metric: str) -> float:
        return self.metrics[metric][0]


def errorbars(ax, point: Point, metric: str, colour, panel: str, radius_pt: float) -> None:
    """The point's whiskers: the 95% test-set interval (vertical, capped), the p10-p90 of the latency samples
    (horizontal) and, with several seeds, +-1 seed std as a wide pale bar beside the marker. Each gets a gid, so the SVG names it."""
    y, low, high, std = point.metrics[metric]
    x = point.p50
    yerr = [[y - low], [high - y]] if is_present(low) and is_present(high) else None
    xerr = [[x - point.p10], [point.p90 - x]] if is_present(point.p10) and is_present(point.p90) else None
    if point.n_seeds > 1 and is_present(std):
        # Beside the marker (left of it), not behind it: a spread smaller than the marker would vanish.
        beside = offset_copy(ax.transData, fig=ax.figure, x=-(radius_pt + 5), y=0, units="points")
        seeds = ax.errorbar(x, y, yerr=std, fmt="none", ecolor=colour, elinewidth=SEED_BAR_WIDTH, alpha=0.45, capsize=0,
                            zorder=2.5, transform=beside)
        seeds[2][0].set_gid(f"seed-spread-{panel}-{metric}-{point.model}")
    if yerr is not None or xerr is not None:
        # Above the marker, a shade darker: an interval shorter than the marker must still show.
        dark = tuple(0.55 * c for c in colour[:3])
        bars = ax.errorbar(x, y, yerr=yerr, xerr=xerr, fmt="none", ecolor=dark, elinewidth=1.2, capsize=3, capthick=1.2, zorder=4)
        for collection in bars[2]:
            collection.set_gid(f"interval-{panel}-{metric}-{point.model}")


def pareto_figure(run: RunView) -> FigureResult:
    title = "Accuracy against cost: mean AUROC / AUPRO vs. torch-fp32 p50 latency"
    result = FigureResult("pareto", title, None)
    timed = {}
    for model in run.models:
        record = run.profile_record(model, REFERENCE_VARIANT)
        if record is not None and record.get("status") == "ok":
            p50 = latency_percentiles(record)[0]
            if is_present(p50):
                timed[model] = (p50, *p10_p90(record), number(run.model_facts(model).get("params")))
    points: list[Point] = []
    for row in run.mean_accuracy():
        model = row["model"]
        if model not in timed:
            result.notes.append(f"{model}: mean accuracy measured but no torch-fp32 latency (profile failed or missing), left out.")
            continue
        p50, p10, p90, n_params = timed[model]
        n_seeds = int(number(row.get("n_seeds"))) if is_present(row.get("n_seeds")) else 1
        metrics = {m: (*interval(row, m), number(row.get(f"{m}_seed_std"))) for m in ("image_auroc", "pixel_auroc", "aupro")}
        points.append(Point(model, row.get("dataset", ""), p50, p10, p90, n_params, n_seeds, metrics))
        reasons = undefined_reasons(row)
        left_out = [m for m in ("image_auroc", "pixel_auroc", "aupro") if m in reasons and not is_present(row.get(m))]
        if left_out:
            result.notes.append(f"{model}: {', '.join(left_out)} undefined ({reasons[left_out[0]]}), not drawn.")
    if not any(is_present(p.value("image_auroc")) for p in points):
        result.notes.append("No model has both a latency and a mean image AUROC in this run: figure skipped.")
        return result
    if any(not is_present(p.p10) for p in points):
        result.notes.append("Latency whiskers left out where the raw samples were not stored.")
    if any(not is_present(p.metrics["image_auroc"][1]) for p in points if is_present(p.value("image_auroc"))):
        result.notes.append("Accuracy whiskers left out where the run holds no interval.")
    pixel_present = any(is_present(p.value("pixel_auroc")) or is_present(p.value("aupro")) for p in points)
    if not pixel_present:
        result.notes.append("No pixel-level metrics in this run (image-level models only): second panel left out.")
    several_seeds = any(p.n_seeds > 1 for p in points)
    colours = model_colours(run)
    several_datasets = len({p.dataset for p in points}) > 1
    finite_params = [p.params for p in points if is_present(p.params) and p.params > 0]
    largest = max(finite_params) if finite_params else 1.0

    def marker_area(n_params: float) -> float:
        return 40 + 560 * math.sqrt(n_params / largest) if is_present(n_params) and n_params > 0 else 40

    subtitle = (run.subtitle("profile") + " | marker area: parameters\nvertical whiskers: 95% bootstrap interval over test images"
                + (", pale bar left of a marker: +-1 seed std (seed-to-seed spread)" if several_seeds else "")
                + " | horizontal whiskers: p10-p90 of the timed calls")
    fig = new_figure(12.0 if pixel_present else 7.4, 6.0, title, subtitle)
    axes = fig.subplots(1, 2 if pixel_present else 1, squeeze=False)[0]
    xs = [p.p50 for p in points]
    x_extent = xs + [v for p in points for v in (p.p10, p.p90) if is_present(v)]
    log_axis = wide_spread(xs)
    x_limits = (min(x_extent) / 1.6, max(x_extent) * 2.2) if log_axis else (0, max(x_extent) * 1.3)
    front_end = x_limits[1]
    labels = {id(ax): [] for ax in axes}  # per panel: (x, y, text, radius in points) to place at the end
    obstacles = {id(ax): [] for ax in axes}
    shown: dict[int, list[float]] = {id(ax): [] for ax in axes}  # every y drawn, whiskers included, for the limits

    def draw(ax, metric: str, marker: str, linestyle: str, annotate: bool, panel: str) -> None:
        chosen = [p for p in points if is_present(p.value(metric))]
        for dataset in sorted({p.dataset for p in chosen}):
            mine = [p for p in chosen if p.dataset == dataset]
            front = pareto_front([(p.p50, p.value(metric)) for p in mine])
            if front:
                # Staircase: the best score reachable within each latency, carried on to the right edge.
                fx, fy = zip(*(front + [(front_end, front[-1][1])]))
                ax.plot(fx, fy, drawstyle="steps-post", color="#444444", linestyle=linestyle, linewidth=1.1, zorder=1)
            for p in mine:
                y, low, high, std = p.metrics[metric]
                radius_pt = math.sqrt(marker_area(p.params)) / 2  # scatter sizes are areas in pt^2
                errorbars(ax, p, metric, colours[p.model], panel, radius_pt)
                on_front = (p.p50, y) in front
                ax.scatter(p.p50, y, s=marker_area(p.params), marker=marker, color=colours[p.model], alpha=0.85,
                           edgecolors="black" if on_front else "white", linewidths=1.4 if on_front else 0.6, zorder=3)
                obstacles[id(ax)].append((p.p50, y, radius_pt))
                shown[id(ax)] += [v for v in (y, low, high) if is_present(v)]
                if p.n_seeds > 1 and is_present(std):
                    shown[id(ax)] += [y - std, y + std]
                if annotate:
                    labels[id(ax)].append((p.p50, y, f"{p.model} ({p.dataset})" if several_datasets else p.model, radius_pt))

    draw(axes[0], "image_auroc", "o", "-", True, "image")
    axes[0].set_ylabel("mean image AUROC (higher is better)")
    axes[0].set_title("image level", loc="left")
    if pixel_present:
        draw(axes[1], "pixel_auroc", "o", "-", True, "pixel")
        draw(axes[1], "aupro", "s", "--", False, "pixel")
        axes[1].set_ylabel("mean pixel AUROC / AUPRO@0.3 (higher is better)")
        axes[1].set_title("pixel level (localisation)", loc="left")
    for ax in axes:
        ax.set_ylim(max(0.0, min(shown[id(ax)]) - 0.05), min(1.0, max(shown[id(ax)])) + 0.04)
        ax.set_xlabel("torch-fp32 p50 latency per batch (ms)" + (", log scale" if log_axis else ""))
        if log_axis:
            ax.set_xscale("log")
            plain_log_ticks(ax.xaxis)
        ax.set_xlim(*x_limits)
        ax.grid(color="#e5e5e5", linewidth=0.8)
        ax.set_axisbelow(True)
    # Marker-size key: the largest model and two fractions of it.
    size_handles = [
        Line2D([], [], marker="o", linestyle="none", color="#bbbbbb", markersize=math.sqrt(marker_area(largest * f)),
               label=f"{largest * f / 1e6:.3g} M params")
        for f in (0.05, 0.3, 1.0)
    ]
    whisker_handles = [Line2D([], [], color="#555555", marker="|", markersize=8, linewidth=1.2, label="95% test-set interval")]
    if several_seeds:
        whisker_handles.append(Line2D([], [], color="#555555", alpha=0.45, linewidth=SEED_BAR_WIDTH, label="+-1 seed std"))
    front_handles = [Line2D([], [], color="#444444", label="Pareto front (black edge: on it)")]
    if pixel_present:
        front_handles = [
            Line2D([], [], marker="o", color="#777777", linestyle="-", label="image / pixel AUROC, solid front"),
            Line2D([], [], marker="s", color="#777777", linestyle="--", label="AUPRO@0.3, dashed front"),
        ]
    # One row: the legend fills columns first, so several rows would pair the size key with the whiskers.
    handles = size_handles + front_handles + whisker_handles
    bottom_legend(fig, handles, ncol=len(handles), handlelength=2.4)
    for ax in axes:
        place_labels(fig, ax, labels[id(ax)], obstacles[id(ax)])
    result.figure = fig
    return result
