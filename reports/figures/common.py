"""What every figure shares: the style, colours, the title block, label placement and small formatters."""
from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass, field

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import Bbox

from bench.formatting import fmt_sig
from reports.run_data import RunView, is_present, number

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
SKIPPED_COLOUR = "#8C8C8C"
FAILED_COLOUR = "#C44E52"
LOG_SPREAD = 20.0  # use a log axis when the largest value is this many times the smallest
DPI = {"gallery": 90}  # the gallery is the biggest picture; the others are saved at the report's default


@dataclass
class FigureResult:
    name: str
    title: str
    figure: Figure | None
    notes: list[str] = field(default_factory=list)


def model_colours(run: RunView) -> dict[str, tuple]:
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
    # Wrapped to the figure's width (a narrow figure, e.g. a gallery of one model, cut them off at the edge):
    # about 9.5 characters an inch at the title's 12 pt bold, 14.5 at the subtitle's 9 pt.
    title_lines = textwrap.wrap(title, max(20, int(width_in * 9.5))) or [""]
    subtitle_lines = [part for line in subtitle.split("\n") for part in (textwrap.wrap(line, max(30, int(width_in * 14.5))) or [""])]
    header_in = 0.24 + 0.2 * len(title_lines) + 0.18 * len(subtitle_lines)
    fig.set_layout_engine("constrained", rect=(0, 0, 1, 1 - header_in / height_in))
    fig.text(0.012, 1 - 0.12 / height_in, "\n".join(title_lines), ha="left", va="top", fontsize=12, fontweight="bold")
    fig.text(0.012, 1 - (0.18 + 0.2 * len(title_lines)) / height_in, "\n".join(subtitle_lines), ha="left", va="top",
             fontsize=9, color="#555555", linespacing=1.4)
    return fig


def wide_spread(values) -> bool:
    positive = [v for v in values if is_present(v) and v > 0]
    return bool(positive) and max(positive) / min(positive) > LOG_SPREAD


def fmt_ms(value: float) -> str:
    return f"{fmt_sig(value)} ms"  # written as in the tables and the terminal (bench/formatting.py)


def fmt_mb(value: float) -> str:
    return fmt_sig(value)



# Variants: PyTorch in blues and greens, ONNX Runtime in oranges and browns; the references in the colours
# the latency figure has always used.
VARIANT_COLOURS = {
    "torch-fp32": PYTORCH_COLOUR,
    "torch-bf16": "#7EA6E0",
    "torch-fp16": "#A9C4EB",
    "torch-channels-last": "#2B4C7E",
    "torch-compile": "#55A868",
    "torch-compile-cudagraphs": "#8CC79A",
    "ort-fp32": ORT_COLOUR,
    "ort-fp16": "#F2B27E",
    "ort-int8-dynamic": "#B5651D",
    "ort-int8-static": "#7F3F0F",
}


def variant_colour(variant: str) -> tuple:
    if variant in VARIANT_COLOURS:
        return to_rgb(VARIANT_COLOURS[variant])
    return to_rgb("#9AA5B8" if variant.startswith("torch") else "#D9B38C" if variant.startswith("ort") else "#AAAAAA")


def p10_p90(record: dict) -> tuple[float, float]:
    """The 10th and 90th percentile of a record's raw latency samples (NaN without samples)."""
    values = [v for v in (number(s) for s in record.get("latency_samples_ms") or []) if not math.isnan(v)]
    if not values:
        return (math.nan, math.nan)
    low, high = np.percentile(np.asarray(values), [10, 90])
    return (float(low), float(high))
