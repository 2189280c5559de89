"""The seed's Fig. 5 view: per model, PyTorch (torch-fp32) beside ONNX Runtime (ort-fp32), p50 bars with p90
and p99 whiskers, at the run's compared batch size."""
from __future__ import annotations

from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from reports.figures.common import (
    ORT_COLOUR, PYTORCH_COLOUR, FigureResult, bottom_legend, fmt_ms, new_figure, plain_log_ticks, wide_spread, wrap_label,
)
from reports.run_data import ORT_REFERENCE_VARIANT, REFERENCE_VARIANT, RunView, is_present, latency_percentiles

NOT_MEASURED = (float("nan"),) * 3


def status_text(record: dict | None) -> str:
    """What to write where a bar is missing: why there is no latency."""
    if record is None:
        return "not run"
    if record.get("status") == "skipped":
        return "skipped"
    if record.get("status") == "failed":
        return "failed"
    return "n/a"


def latency_figure(run: RunView) -> FigureResult:
    title = "Inference latency per model: PyTorch vs ONNX Runtime, p50 bar, p90 and p99 whiskers"
    result = FigureResult("latency", title, None)
    rows = []
    for model in run.models:
        torch_row = run.profile_record(model, REFERENCE_VARIANT)
        ort_row = run.profile_record(model, ORT_REFERENCE_VARIANT)
        if torch_row is None and ort_row is None:
            continue
        torch_p = latency_percentiles(torch_row) if torch_row and torch_row.get("status") == "ok" else NOT_MEASURED
        ort_p = latency_percentiles(ort_row) if ort_row and ort_row.get("status") == "ok" else NOT_MEASURED
        if is_present(torch_p[0]) or is_present(ort_p[0]):
            rows.append((model, (torch_p, torch_row), (ort_p, ort_row)))
        else:
            result.notes.append(f"{model}: no torch-fp32 or ort-fp32 latency measured, left out.")
    if not rows:
        result.notes.append("No successful torch-fp32 or ort-fp32 profile record with latency in this run: figure skipped.")
        return result
    height = 1.35 + 0.62 * len(rows)
    fig = new_figure(8.6, max(height, 3.0), title, run.subtitle("profile") + " | from the torch-fp32 and ort-fp32 rows")
    ax = fig.add_subplot()
    all_values = [v for _, (t, _), (o, _) in rows for v in (*t, *o) if is_present(v)]
    log_axis = wide_spread(all_values)
    bar_height = 0.36
    for i, (model, torch_side, ort_side) in enumerate(rows):
        for offset, ((p50, p90, p99), record), colour in ((-0.19, torch_side, PYTORCH_COLOUR), (0.19, ort_side, ORT_COLOUR)):
            y = i + offset
            if not is_present(p50):
                name = REFERENCE_VARIANT if colour == PYTORCH_COLOUR else ORT_REFERENCE_VARIANT
                ax.text(0.01, y, f"{name}: {status_text(record)}", transform=ax.get_yaxis_transform(), va="center", fontsize=8, color="#777777")
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
    ax.set_ylim(len(rows) - 0.5, -0.5)  # top to bottom; fixed, so that a row without bars keeps its room
    ax.set_xlabel("latency per batch (ms)" + (", log scale" if log_axis else ""))
    if log_axis:
        ax.set_xscale("log")
        plain_log_ticks(ax.xaxis)
        ax.set_xlim(right=max(all_values) * 2.6)
    else:
        ax.set_xlim(0, max(all_values) * 1.22)
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    handles = [
        Patch(color=PYTORCH_COLOUR, label="PyTorch p50 (torch-fp32)"),
        Patch(color=ORT_COLOUR, label="ONNX Runtime p50 (ort-fp32)"),
        Line2D([], [], color="#222222", marker="|", markersize=11, markeredgewidth=2.0, linestyle="none", label="p90"),
        Line2D([], [], color="#222222", marker="D", markersize=3.5, linestyle="none", label="p99"),
    ]
    bottom_legend(fig, handles, ncol=4)
    result.figure = fig
    return result
