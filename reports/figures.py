"""The report's figures, drawn from a loaded run with matplotlib's Agg canvas (no pyplot, no global state).

Each builder returns a `FigureResult`: the figure (None when the run holds no data for it) and notes that
the report prints beside it (what was left out and why).
"""
from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import Bbox

from reports.results import MEAN_CATEGORY, Run, is_present, number, percentiles_from_samples

FIGURE_NAMES = ("latency", "sizes", "pareto", "per_category", "gallery")
HEADINGS = {
    "latency": "Latency (the seed's Fig. 5 view)",
    "sizes": "Sizes and memory (the seed's Fig. 6 view)",
    "pareto": "Accuracy against latency",
    "per_category": "Accuracy per category",
    "gallery": "Heat-map gallery (the seed's Fig. 1 and 4 view)",
}

# Style shared by every figure; svg.hashsalt makes the SVG ids, and so the files, the same on every render.
STYLE = {
    "font.size": 9.5,
    "axes.titlesize": 10.5,
    "axes.labelsize": 9.5,
    "legend.fontsize": 8.5,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "defectbench-report",
    "svg.fonttype": "path",
}
PYTORCH_COLOUR = "#4C72B0"
ORT_COLOUR = "#DD8452"
SIZE_COLOURS = {  # Fig. 6's stack, bottom to top
    "fwd_mb_est": "#8172B3",
    "bwd_mb_est": "#B3A8D9",
    "model_mb": "#4C72B0",
    "onnx_mb": "#DD8452",
}
SIZE_LABELS = {
    "fwd_mb_est": "forward pass (est.)",
    "bwd_mb_est": "backward pass (est.)",
    "model_mb": "full model (weights)",
    "onnx_mb": "ONNX file",
}
PEAK_COLOURS = {"peak_infer_mb": "#55A868", "peak_train_mb": "#C44E52"}
PEAK_LABELS = {"peak_infer_mb": "peak, inference (measured)", "peak_train_mb": "peak, training step (measured)"}
LOG_SPREAD = 20.0
MAX_GALLERY_ROWS = 24
DPI = {"gallery": 90}  # the gallery is the biggest picture; the others are saved at the default below  # use a log axis when the largest value is this many times the smallest


@dataclass
class FigureResult:
    name: str
    title: str
    figure: Figure | None
    notes: list[str] = field(default_factory=list)


def model_colours(run: Run) -> dict[str, tuple]:
    """One colour per model, the same in every figure."""
    palette = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD"]
    return {model: to_rgb(palette[i % len(palette)]) for i, model in enumerate(run.models)}


def wrap_label(name: str, width: int = 16) -> str:
    """A model name on lines of at most `width` characters, broken after underscores, hyphens or spaces."""
    pieces = re.findall(r"[^_\- ]*[_\- ]?", name)
    lines = [""]
    for piece in filter(None, pieces):
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines.append("")
        lines[-1] += piece
    return "\n".join(line.strip() for line in lines for line in textwrap.wrap(line, width) or [line])


def bottom_legend(fig: Figure, handles: list, ncol: int, handlelength: float = 2.0) -> None:
    """One legend under the plots; constrained layout makes room for it."""
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, frameon=False, columnspacing=1.6,
               handletextpad=0.6, handlelength=handlelength)


def plain_log_ticks(axis) -> None:
    """Log-axis ticks at 1, 2, 5 x 10^k written as plain numbers (10, 20, 50 ms rather than 10^1)."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def place_labels(fig: Figure, ax, labels: list[tuple[float, float, str, float]], obstacles: list[tuple[float, float, float]]) -> None:
    """Name the markers without overlaps: each label takes the first spot around its marker (right, then
    above, below, left; then the same further out, with a leader line) that clears the markers and the
    labels placed before it.

    labels: (x, y, text, marker radius in points); obstacles: (x, y, radius in points) of every marker.
    The layout is fixed first, so that display positions hold when the file is saved."""
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    to_pixels = fig.dpi / 72.0
    taken = []
    for x, y, radius in obstacles:
        cx, cy = ax.transData.transform((x, y))
        r = radius * to_pixels
        taken.append(Bbox.from_extents(cx - r, cy - r, cx + r, cy + r))
    frame = ax.get_window_extent(renderer)
    for x, y, text, radius in sorted(labels, key=lambda item: -item[1]):
        spots = []
        # Rings of growing distance; labels pushed off their marker get a thin leader line back to it.
        for ring in (0, 14, 30):
            gap = radius + 3 + ring
            spots += [(gap, gap * 0.6, "left", "bottom", ring), (gap, -gap * 0.6, "left", "top", ring),
                      (gap, 0, "left", "center", ring), (0, gap, "center", "bottom", ring),
                      (0, -gap, "center", "top", ring), (-gap, gap * 0.6, "right", "bottom", ring),
                      (-gap, -gap * 0.6, "right", "top", ring), (-gap, 0, "right", "center", ring)]
        chosen = None
        for dx, dy, ha, va, ring in spots:
            leader = {"arrowstyle": "-", "color": "#888888", "linewidth": 0.6, "shrinkA": 0, "shrinkB": radius} if ring else None
            label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=8.5,
                                arrowprops=leader)
            label.update_positions(renderer)
            box = Text.get_window_extent(label, renderer)  # the words only, not the leader line
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(other) for other in taken):
                chosen = box
                break
            label.remove()
        if chosen is None:  # crowded: the first spot, with a white halo so it stays legible
            dx, dy, ha, va, _ = spots[0]
            label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=8.5,
                                bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "alpha": 0.7, "linewidth": 0})
            chosen = label.get_window_extent(renderer)
        taken.append(chosen)


def new_figure(width_in: float, height_in: float, title: str, subtitle: str) -> Figure:
    """A figure with a bold title and a grey subtitle on top; constrained layout keeps the rest clear of them."""
    fig = Figure(figsize=(width_in, height_in))
    FigureCanvasAgg(fig)
    subtitle_lines = subtitle.count("\n") + 1
    header_in = 0.44 + 0.18 * subtitle_lines
    fig.set_layout_engine("constrained", rect=(0, 0, 1, 1 - header_in / height_in))
    fig.text(0.012, 1 - 0.12 / height_in, title, ha="left", va="top", fontsize=12, fontweight="bold")
    fig.text(0.012, 1 - 0.38 / height_in, subtitle, ha="left", va="top", fontsize=9, color="#555555", linespacing=1.4)
    return fig


def wide_spread(values) -> bool:
    positive = [v for v in values if is_present(v) and v > 0]
    return bool(positive) and max(positive) / min(positive) > LOG_SPREAD


def fmt_ms(value: float) -> str:
    return f"{value:.3g} ms" if value < 100 else f"{value:.0f} ms"


def fmt_mb(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


# ---------------------------------------------------------------------------------------------- latency
def latency_figure(run: Run) -> FigureResult:
    title = "Inference latency per model: p50 bar, p90 and p99 whiskers"
    result = FigureResult("latency", title, None)
    rows = []
    for record in run.profile:
        torch_p = percentiles_from_samples(record, "latency_ms")
        ort_p = percentiles_from_samples(record, "ort_latency_ms")
        if is_present(torch_p[0]) or is_present(ort_p[0]):
            rows.append((record["model"], torch_p, ort_p))
        else:
            result.notes.append(f"{record['model']}: no latency measured, left out.")
    if not rows:
        result.notes.append("No successful profile record with latency in this run: figure skipped.")
        return result
    height = 1.35 + 0.62 * len(rows)
    fig = new_figure(8.6, max(height, 3.0), title, run.subtitle("profile"))
    ax = fig.add_subplot()
    all_values = [v for _, t, o in rows for v in (*t, *o)]
    log_axis = wide_spread(all_values)
    bar_height = 0.36
    for i, (model, torch_p, ort_p) in enumerate(rows):
        for offset, (p50, p90, p99), colour in ((-0.19, torch_p, PYTORCH_COLOUR), (0.19, ort_p, ORT_COLOUR)):
            y = i + offset
            if not is_present(p50):
                ax.text(0.01, y, "n/a", transform=ax.get_yaxis_transform(), va="center", fontsize=8, color="#777777")
                continue
            ax.barh(y, p50, height=bar_height, color=colour, edgecolor="white")
            end = p99 if is_present(p99) else p90 if is_present(p90) else p50
            ax.plot([p50, end], [y, y], color="#222222", linewidth=1.0, zorder=3)
            if is_present(p90):
                ax.plot([p90], [y], marker="|", markersize=11, markeredgewidth=2.0, color="#222222", zorder=4)
            if is_present(p99):
                ax.plot([p99], [y], marker="D", markersize=3.5, color="#222222", zorder=4)
            ax.annotate("p50 " + fmt_ms(p50), (end, y), xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [wrap_label(m) for m, _, _ in rows])
    ax.invert_yaxis()
    ax.set_xlabel("latency per batch (ms)" + (", log scale" if log_axis else ""))
    if log_axis:
        ax.set_xscale("log")
        plain_log_ticks(ax.xaxis)
    else:
        ax.set_xlim(0, max(v for v in all_values if is_present(v)) * 1.22)
    if log_axis:
        ax.set_xlim(right=max(v for v in all_values if is_present(v)) * 2.6)
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    handles = [
        Patch(color=PYTORCH_COLOUR, label="PyTorch p50"),
        Patch(color=ORT_COLOUR, label="ONNX Runtime p50"),
        Line2D([], [], color="#222222", marker="|", markersize=11, markeredgewidth=2.0, linestyle="none", label="p90"),
        Line2D([], [], color="#222222", marker="D", markersize=3.5, linestyle="none", label="p99"),
    ]
    bottom_legend(fig, handles, ncol=4)
    result.figure = fig
    return result


# ---------------------------------------------------------------------------------------------- sizes
def sizes_figure(run: Run) -> FigureResult:
    title = "Memory per model: estimated sizes (stacked, as Fig. 6) beside measured peaks"
    result = FigureResult("sizes", title, None)
    keys = list(SIZE_COLOURS)
    rows = [r for r in run.profile if any(is_present(r.get(k)) for k in (*keys, *PEAK_COLOURS))]
    for record in run.profile:
        if record not in rows:
            result.notes.append(f"{record['model']}: no size or memory measured, left out.")
    if not rows:
        result.notes.append("No successful profile record with sizes in this run: figure skipped.")
        return result
    height = 1.5 + 0.55 * len(rows)
    fig = new_figure(10.5, max(height, 3.2), title, run.subtitle("profile"))
    ax_est, ax_peak = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1.35, 1]})
    labels = [wrap_label(r["model"]) for r in rows]
    totals = []
    for i, record in enumerate(rows):
        left = 0.0
        for key in keys:
            value = number(record.get(key))
            if is_present(value) and value > 0:
                ax_est.barh(i, value, left=left, height=0.6, color=SIZE_COLOURS[key], edgecolor="white", linewidth=0.6)
                left += value
        totals.append(left)
        missing = [SIZE_LABELS[k].split(" (")[0] for k in keys if not is_present(record.get(k))]
        text = f"{fmt_mb(left)} MB" + (f"  (no {', '.join(missing)})" if missing else "")
        ax_est.annotate(text, (left, i), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    ax_est.set_xlim(0, max(totals + [1e-9]) * 1.45)
    ax_est.set_yticks(range(len(rows)), labels)
    ax_est.invert_yaxis()
    ax_est.set_xlabel("size (MB), stacked")
    ax_est.set_title("estimated: activations, weights, ONNX file", loc="left")
    peaks = []
    for i, record in enumerate(rows):
        for offset, key in ((-0.17, "peak_infer_mb"), (0.17, "peak_train_mb")):
            value = number(record.get(key))
            if is_present(value):
                ax_peak.barh(i + offset, value, height=0.32, color=PEAK_COLOURS[key])
                ax_peak.annotate(fmt_mb(value), (value, i + offset), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7.5)
                peaks.append(value)
            else:
                ax_peak.text(0.01, i + offset, "n/a", transform=ax_peak.get_yaxis_transform(), va="center", fontsize=7.5, color="#777777")
    ax_peak.set_xlim(0, max(peaks + [1e-9]) * 1.25)
    ax_peak.set_xlabel("peak memory (MB)")
    ax_peak.set_title("measured peak memory", loc="left")
    bottom_legend(fig, [Patch(color=SIZE_COLOURS[k], label=SIZE_LABELS[k]) for k in keys]
                  + [Patch(color=PEAK_COLOURS[k], label=PEAK_LABELS[k]) for k in PEAK_COLOURS], ncol=3)
    for ax in (ax_est, ax_peak):
        ax.grid(axis="x", color="#e5e5e5", linewidth=0.8)
        ax.set_axisbelow(True)
    result.figure = fig
    return result


# ---------------------------------------------------------------------------------------------- pareto
def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both lower latency and higher score, by rising latency."""
    front: list[tuple[float, float]] = []
    for latency, score in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or score > front[-1][1]:
            front.append((latency, score))
    return front


def pareto_figure(run: Run) -> FigureResult:
    title = "Accuracy against cost: mean AUROC / AUPRO vs. PyTorch p50 latency"
    result = FigureResult("pareto", title, None)
    latency = {}
    params = {}
    for record in run.profile:
        p50 = percentiles_from_samples(record, "latency_ms")[0]
        if is_present(p50):
            latency[record["model"]] = p50
            params[record["model"]] = number(record.get("params"))
    points = []  # (model, dataset, latency, image_auroc, pixel_auroc, aupro, params)
    for row in run.mean_accuracy():
        model = row["model"]
        if model not in latency:
            result.notes.append(f"{model}: mean accuracy measured but no latency (profile job failed or missing), left out.")
            continue
        points.append((model, row.get("dataset", ""), latency[model], number(row.get("image_auroc")),
                       number(row.get("pixel_auroc")), number(row.get("aupro")), params[model]))
    if not any(is_present(p[3]) for p in points):
        result.notes.append("No model has both a latency and a mean image AUROC in this run: figure skipped.")
        return result
    pixel_present = any(is_present(p[4]) or is_present(p[5]) for p in points)
    if not pixel_present:
        result.notes.append("No pixel-level metrics in this run (image-level models only): second panel left out.")
    colours = model_colours(run)
    several_datasets = len({p[1] for p in points}) > 1
    finite_params = [p[6] for p in points if is_present(p[6]) and p[6] > 0]
    largest = max(finite_params) if finite_params else 1.0

    def marker_area(n_params: float) -> float:
        return 40 + 560 * math.sqrt(n_params / largest) if is_present(n_params) and n_params > 0 else 40

    fig = new_figure(12.0 if pixel_present else 7.0, 5.6, title, run.subtitle("profile") + " | marker area: parameters")
    axes = fig.subplots(1, 2 if pixel_present else 1, squeeze=False)[0]
    log_axis = wide_spread([p[2] for p in points])
    xs = [p[2] for p in points]
    x_limits = (min(xs) / 1.6, max(xs) * 2.2) if log_axis else (0, max(xs) * 1.3)
    front_end = x_limits[1]

    labels = {id(ax): [] for ax in axes}  # per panel: (x, y, text, radius in points) to place at the end
    obstacles = {id(ax): [] for ax in axes}

    def draw(ax, metric_index: int, marker: str, linestyle: str, annotate: bool) -> list:
        chosen = [p for p in points if is_present(p[metric_index])]
        for dataset in sorted({p[1] for p in chosen}):
            mine = [p for p in chosen if p[1] == dataset]
            front = pareto_front([(p[2], p[metric_index]) for p in mine])
            if front:
                # Staircase: the best score reachable within each latency, carried on to the right edge.
                xs, ys = zip(*(front + [(front_end, front[-1][1])]))
                ax.plot(xs, ys, drawstyle="steps-post", color="#444444", linestyle=linestyle, linewidth=1.1, zorder=1)
            for p in mine:
                on_front = (p[2], p[metric_index]) in front
                ax.scatter(p[2], p[metric_index], s=marker_area(p[6]), marker=marker, color=colours[p[0]], alpha=0.85,
                           edgecolors="black" if on_front else "white", linewidths=1.4 if on_front else 0.6, zorder=3)
                radius_pt = math.sqrt(marker_area(p[6])) / 2  # scatter sizes are areas in pt^2
                obstacles[id(ax)].append((p[2], p[metric_index], radius_pt))
                if annotate:
                    name = f"{p[0]} ({p[1]})" if several_datasets else p[0]
                    labels[id(ax)].append((p[2], p[metric_index], name, radius_pt))
        return chosen

    image_points = draw(axes[0], 3, "o", "-", True)
    axes[0].set_ylabel("mean image AUROC (higher is better)")
    axes[0].set_title("image level", loc="left")
    if pixel_present:
        pixel_points = draw(axes[1], 4, "o", "-", True)
        pro_points = draw(axes[1], 5, "s", "--", False)
        axes[1].set_ylabel("mean pixel AUROC / AUPRO@0.3 (higher is better)")
        axes[1].set_title("pixel level (localisation)", loc="left")
        scored = [p[4] for p in pixel_points] + [p[5] for p in pro_points]
        axes[1].set_ylim(max(0.0, min(scored) - 0.06), min(1.0, max(scored)) + 0.04)
    scored = [p[3] for p in image_points]
    axes[0].set_ylim(max(0.0, min(scored) - 0.06), min(1.0, max(scored)) + 0.04)
    for ax in axes:
        ax.set_xlabel("PyTorch p50 latency per batch (ms)" + (", log scale" if log_axis else ""))
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
    front_handles = [Line2D([], [], color="#444444", label="Pareto front (black edge: on it)")]
    if pixel_present:
        front_handles = [
            Line2D([], [], marker="o", color="#777777", linestyle="-", label="image / pixel AUROC, solid front"),
            Line2D([], [], marker="s", color="#777777", linestyle="--", label="AUPRO@0.3, dashed front"),
        ]
    bottom_legend(fig, size_handles + front_handles, ncol=len(size_handles) + len(front_handles), handlelength=3.0)
    for ax in axes:
        place_labels(fig, ax, labels[id(ax)], obstacles[id(ax)])
    result.figure = fig
    return result


# ---------------------------------------------------------------------------------------------- per category
def per_category_figure(run: Run) -> FigureResult:
    title = "Accuracy per category: image AUROC and AUPRO@0.3"
    result = FigureResult("per_category", title, None)
    categories = run.categories()
    if not categories:
        result.notes.append("No successful accuracy record in this run: figure skipped.")
        return result
    several_datasets = len({d for d, _ in categories}) > 1
    columns = categories + [(d, MEAN_CATEGORY) for d in run.datasets]
    models = [m for m in run.models if any(r["model"] == m for r in run.accuracy)]
    means = {(r["model"], r.get("dataset", "")): r for r in run.mean_accuracy()}
    failed = {(r.get("model"), r.get("dataset", ""), r.get("category")) for r in run.failed if r.get("suite") == "accuracy"}

    def table(metric: str) -> np.ndarray:
        values = np.full((len(models), len(columns)), np.nan)
        for i, model in enumerate(models):
            for j, (dataset, category) in enumerate(columns):
                if category == MEAN_CATEGORY:
                    row = means.get((model, dataset))
                else:
                    row = next((r for r in run.accuracy if r["model"] == model and r.get("dataset", "") == dataset and r.get("category") == category), None)
                if row is not None:
                    values[i, j] = number(row.get(metric))
        return values

    for model in models:
        for dataset in run.datasets:
            if (model, dataset) not in means and any(r["model"] == model and r.get("dataset", "") == dataset for r in run.accuracy):
                result.notes.append(f"{model}: no mean for {dataset}, as not every category finished.")
    panels = [("image_auroc", "image AUROC", 0.5)]
    aupro = table("aupro")
    if np.isfinite(aupro).any():
        panels.append(("aupro", "AUPRO@0.3 (pixel level, FPR up to 0.3)", 0.0))
    else:
        result.notes.append("No AUPRO in this run (image-level models only): AUPRO panel left out.")
    cell_w, cell_h = 0.78, 0.46
    panel_w = 2.8 + cell_w * len(columns)
    panel_h = 1.0 + cell_h * len(models)
    side_by_side = len(columns) <= 6  # many categories (MVTec has 15): panels one above the other
    if side_by_side:
        fig = new_figure(max(6.0, panel_w * len(panels)), max(panel_h + 1.1, 3.0), title, run.subtitle())
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
    else:
        fig = new_figure(max(6.0, panel_w), max(panel_h * len(panels) + 1.1, 3.0), title, run.subtitle())
        axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (metric, label, vmin) in zip(axes, panels):
        values = table(metric)
        shown = np.ma.masked_invalid(values)
        cmap = colormaps["viridis"].with_extremes(bad="#eeeeee")
        image = ax.imshow(shown, cmap=cmap, vmin=vmin, vmax=1.0, aspect="auto")
        for i, model in enumerate(models):
            for j, (dataset, category) in enumerate(columns):
                value = values[i, j]
                if np.isfinite(value):
                    r, g, b, _ = cmap((value - vmin) / (1.0 - vmin))
                    dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                    ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=8.5,
                            color="white" if dark else "black", fontweight="bold" if category == MEAN_CATEGORY else "normal")
                elif (model, dataset, category) in failed:
                    ax.text(j, i, "failed", ha="center", va="center", fontsize=8, color="#C44E52", fontweight="bold")
                else:
                    ax.text(j, i, "–", ha="center", va="center", fontsize=9, color="#888888")
        names = [f"{d}/{c}" if several_datasets else c for d, c in columns]
        ax.set_xticks(range(len(columns)), names, rotation=30 if len(columns) > 4 else 0, ha="right" if len(columns) > 4 else "center")
        ax.set_yticks(range(len(models)), [wrap_label(m, 18) for m in models])
        ax.set_xticks(np.arange(len(columns) + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(len(models) + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="minor", length=0)
        ax.axvline(len(categories) - 0.5, color="black", linewidth=1.2)  # the mean column(s) start here
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(label, loc="left")
        fig.colorbar(image, ax=ax, shrink=0.9, pad=0.02, aspect=15).set_label(label.split(" (")[0])
    result.figure = fig
    return result


# ---------------------------------------------------------------------------------------------- gallery
def load_gallery(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def pick_images(labels: np.ndarray, count: int) -> list[int]:
    """A few test images: one normal one first (the reference), then defective ones, in file order;
    a single image is a defective one."""
    normal = [i for i, label in enumerate(labels) if int(label) == 0]
    defective = [i for i, label in enumerate(labels) if int(label) != 0]
    reference = normal[:1] if count >= 2 else []
    picked = reference + defective[: count - len(reference)]
    if len(picked) < count:
        picked += [i for i in range(len(labels)) if i not in picked][: count - len(picked)]
    return picked


def gallery_figure(run: Run, images_per_category: int = 3) -> FigureResult:
    title = "Heat-map gallery: test image, ground truth and each model's anomaly map with its score"
    result = FigureResult("gallery", title, None)
    blocks = []  # (dataset, category, reference arrays, [(model, arrays | None)], picked indices)
    for dataset, category in run.categories():
        entries = []
        for model in run.models:
            record = next((r for r in run.accuracy if r["model"] == model and r.get("dataset", "") == dataset and r.get("category") == category), None)
            if record is None or not record.get("gallery_file"):
                continue
            path = run.run_dir / record["gallery_file"]
            if not path.is_file():
                result.notes.append(f"{model} / {category}: gallery file {record['gallery_file']} not found, left out.")
                continue
            try:
                entries.append((model, load_gallery(path)))
            except (OSError, ValueError) as error:
                result.notes.append(f"{model} / {category}: gallery file unreadable ({error}), left out.")
        if not entries:
            continue
        # The image and ground-truth columns come from the sharpest gallery (models run at different sizes;
        # all galleries hold the same test images).
        reference = max((arrays for _, arrays in entries), key=lambda a: a["images"].shape[1])
        labels = reference.get("labels", np.zeros(len(reference["images"]), dtype=np.int8))
        blocks.append((dataset, category, reference, entries, pick_images(labels, images_per_category)))
    if not blocks:
        result.notes.append("No gallery files in this run (no successful accuracy job kept one): figure skipped.")
        return result
    # Keep the figure a size a browser shows: at most about MAX_GALLERY_ROWS image rows in all.
    per_category = max(1, min(images_per_category, MAX_GALLERY_ROWS // len(blocks)))
    if per_category < images_per_category:
        result.notes.append(f"{len(blocks)} categories: {per_category} test image(s) per category shown.")
        blocks = [(d, c, ref, entries, pick_images(ref.get("labels", np.zeros(len(ref["images"]), dtype=np.int8)), per_category))
                  for d, c, ref, entries, _ in blocks]
    models = [m for m in run.models if any(m == e[0] for b in blocks for e in b[3])]
    failed = {(r.get("model"), r.get("dataset", ""), r.get("category")) for r in run.failed if r.get("suite") == "accuracy"}
    several_datasets = len({b[0] for b in blocks}) > 1
    n_rows = sum(len(b[4]) for b in blocks)
    n_cols = 2 + len(models)
    cell = 1.45
    fig = new_figure(1.0 + cell * n_cols, 0.95 + (cell + 0.28) * n_rows, title, run.subtitle()
                     + "\nmaps: each model scaled to its own range over the category's test images; cyan: ground-truth outline")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    row = 0
    for dataset, category, reference, entries, picked in blocks:
        by_model = dict(entries)
        ref_paths = [str(p) for p in reference.get("paths", [])]
        for index in picked:
            image = reference["images"][index]
            mask = reference["masks"][index] if "masks" in reference else np.zeros(image.shape[:2], dtype=np.uint8)
            label = int(reference.get("labels", np.zeros(len(reference["images"])))[index])
            height, width = image.shape[:2]
            extent = (0, width, height, 0)
            name = Path(ref_paths[index]).name if ref_paths else f"#{index}"
            head = f"{dataset}/{category}" if several_datasets else category
            ax = axes[row, 0]
            ax.imshow(image, extent=extent)
            ax.set_ylabel(f"{head}\n{'good' if label == 0 else 'defective'} {name}", fontsize=8)
            ax = axes[row, 1]
            ax.imshow(mask, cmap="gray", vmin=0, vmax=1, extent=extent)
            for col, model in enumerate(models, start=2):
                ax = axes[row, col]
                arrays = by_model.get(model)
                if arrays is None:
                    ax.imshow(np.full((height, width, 3), 0.97), extent=extent)  # keeps the cell the same shape as its row
                    if (model, dataset, category) in failed:
                        ax.text(0.5, 0.5, "job failed", ha="center", va="center", transform=ax.transAxes, color="#C44E52", fontweight="bold")
                    else:
                        ax.text(0.5, 0.5, "no gallery", ha="center", va="center", transform=ax.transAxes, color="#888888")
                    continue
                position = index
                paths = [str(p) for p in arrays.get("paths", [])]
                if ref_paths and paths and ref_paths[index] in paths:
                    position = paths.index(ref_paths[index])  # same image even if a model stored them in another order
                score = number(arrays["scores"][position]) if "scores" in arrays and position < len(arrays["scores"]) else math.nan
                score_text = f"score {score:.3g}" if is_present(score) else "no score"
                if "maps" in arrays and position < len(arrays["maps"]):
                    maps = arrays["maps"].astype(np.float32)
                    low, high = float(np.nanmin(maps)), float(np.nanmax(maps))
                    ax.imshow(maps[position], cmap="inferno", vmin=low, vmax=high if high > low else low + 1, extent=extent)
                    if mask.any():
                        ax.contour(np.arange(width) + 0.5, np.arange(height) + 0.5, mask, levels=[0.5], colors="cyan", linewidths=0.8)
                else:
                    ax.imshow(image.mean(axis=2), cmap="gray", vmin=0, vmax=255, alpha=0.35, extent=extent)
                    ax.text(0.5, 0.5, "image-level\nonly", ha="center", va="center", transform=ax.transAxes, fontsize=8)
                ax.set_xlabel(score_text, fontsize=8, labelpad=2)
            row += 1
    for col, heading in enumerate(["image", "ground truth"] + [wrap_label(m, 14) for m in models]):
        axes[0, col].set_title(heading, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    result.figure = fig
    return result


BUILDERS = {
    "latency": latency_figure,
    "sizes": sizes_figure,
    "pareto": pareto_figure,
    "per_category": per_category_figure,
    "gallery": gallery_figure,
}
