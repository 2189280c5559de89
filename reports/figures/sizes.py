"""The seed's Fig. 6 view: per model, the estimated sizes stacked (activations, weights, ONNX file) beside
the measured peaks of inference (torch-fp32 at the compared batch size) and of one training step."""
from __future__ import annotations

from matplotlib.patches import Patch

from reports.figures.common import FigureResult, bottom_legend, fmt_mb, new_figure, wrap_label
from reports.run_data import ORT_REFERENCE_VARIANT, REFERENCE_VARIANT, RunView, is_present, number

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


def size_row(run: RunView, model: str) -> dict:
    """A model's sizes gathered from its rows: model-level facts from any row, the ONNX file from ort-fp32 and
    the inference peak from torch-fp32 (a row that did not finish contributes nothing measured)."""
    facts = run.model_facts(model)
    row = {"model": model}
    for key in ("fwd_mb_est", "bwd_mb_est", "model_mb", "peak_train_mb"):
        row[key] = facts.get(key)
    ort_row = run.profile_record(model, ORT_REFERENCE_VARIANT) or {}
    torch_row = run.profile_record(model, REFERENCE_VARIANT) or {}
    row["onnx_mb"] = ort_row.get("onnx_mb") if ort_row.get("status") == "ok" else None
    row["peak_infer_mb"] = torch_row.get("peak_infer_mb") if torch_row.get("status") == "ok" else None
    return row


def sizes_figure(run: RunView) -> FigureResult:
    title = "Memory per model: estimated sizes (stacked, as Fig. 6) beside measured peaks"
    result = FigureResult("sizes", title, None)
    keys = list(SIZE_COLOURS)
    profiled = [m for m in run.models if any(r.get("suite") == "profile" and r.get("model") == m for r in run.records)]
    rows = []
    for model in profiled:
        row = size_row(run, model)
        if any(is_present(row.get(k)) for k in (*keys, *PEAK_COLOURS)):
            rows.append(row)
        else:
            result.notes.append(f"{model}: no size or memory measured, left out.")
    if not rows:
        result.notes.append("No profile record with sizes in this run: figure skipped.")
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


