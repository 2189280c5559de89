"""Latency by deployment variant per model, at the model's compared batch size, with each variant's speed-up
over torch-fp32 and its accuracy delta written beside its bar. A skipped or failed variant gets no bar (it was
not measured, it is not zero): its row says so."""
from __future__ import annotations

from reports.figures.common import (
    FAILED_COLOUR, FigureResult, fmt_ms, new_figure, plain_log_ticks, variant_colour, wide_spread,
)
from reports.run_data import REFERENCE_VARIANT, RunView, is_present, latency_percentiles
from reports.tables import fmt_interval
from reports.variants import AUROC_TOLERANCE, accuracy_delta, fastest_within, speedup

ROW_HEIGHT_IN = 0.3
STAR = "\u2605"


def delta_text(run: RunView, model: str, variant: str) -> str:
    if variant == REFERENCE_VARIANT:
        return "reference"
    parts = []
    several = len(run.datasets) > 1
    for dataset in run.datasets:
        delta, low, high = accuracy_delta(run, model, dataset, variant)
        if is_present(delta):
            parts.append((f"{dataset} " if several else "") + fmt_interval(delta, low, high, signed=True))
    if parts:
        return "; ".join(parts)
    if any(r.get("model") == model and r.get("variant") == variant for r in run.accuracy):
        return "no mean: a category did not finish"
    return "not measured"


def short(text: str, width: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def variants_figure(run: RunView) -> FigureResult:
    title = "Latency by deployment variant, with each variant's accuracy cost"
    result = FigureResult("variants", title, None)
    groups = []  # (model, [(variant, record)])
    for model in run.models:
        entries = [(v, run.profile_record(model, v)) for v in run.variants()]
        entries = [(v, r) for v, r in entries if r is not None]
        if any(r.get("status") == "ok" for _, r in entries):
            groups.append((model, entries))
        elif entries:
            result.notes.append(f"{model}: no variant finished, left out.")
    if not groups:
        result.notes.append("No profile record with a variant latency in this run: figure skipped.")
        return result
    if len(run.variants()) < 2:
        result.notes.append("Only one variant in this run (--variants names more).")
    positions, tick_labels, headings = [], [], []
    y = 0.0
    for model, entries in groups:
        headings.append(y)
        tick_labels.append(model)
        y += 1
        ys = []
        for variant, _ in entries:
            ys.append(y)
            tick_labels.append(variant)
            y += 1
        positions.append(ys)
        y += 0.3
    fig = new_figure(12.0, max(2.2 + ROW_HEIGHT_IN * y, 3.4), title,
                     run.subtitle("profile") + " | bar: p50, whisker: p90 (log scale where the spread is wide)\n"
                     "accuracy delta: variant minus torch-fp32 on the mean image AUROC, with its 95% paired-bootstrap "
                     f"interval | {STAR} fastest variant within {AUROC_TOLERANCE:g} AUROC of fp32 (delta measured)")
    ax, text_ax = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1.0, 1.05]})
    values = []
    # The fastest-within-tolerance choice per model (on every dataset where there is one), starred.
    chosen = {model: {c.variant for c in (fastest_within(run, model, d)[0] for d in run.datasets) if c is not None}
              for model, _ in groups}
    for (model, entries), ys in zip(groups, positions):
        for (variant, record), row_y in zip(entries, ys):
            colour = variant_colour(variant)
            status = record.get("status")
            if status != "ok":
                label = "skipped" if status == "skipped" else "failed"
                ax.text(0.005, row_y, f"{label}: {short(record.get('error') or 'no reason recorded', 48)}", va="center",
                        transform=ax.get_yaxis_transform(), fontsize=7.5, style="italic",
                        color=FAILED_COLOUR if label == "failed" else "#6e6e6e")
                text_ax.text(0.0, row_y, "not measured", va="center", fontsize=8, color="#6e6e6e", style="italic")
                continue
            p50, p90 = latency_percentiles(record, (50, 90))
            if not is_present(p50):
                ax.text(0.005, row_y, "no latency recorded", va="center", transform=ax.get_yaxis_transform(), fontsize=7.5,
                        style="italic", color="#6e6e6e")
                continue
            ax.barh(row_y, p50, height=0.72, color=colour, edgecolor="white", gid=f"bar-{model}-{variant}")
            values.append(p50)
            if is_present(p90):
                ax.plot([p50, p90], [row_y, row_y], color="#222222", linewidth=1.0, zorder=3)
                ax.plot([p90], [row_y], marker="|", markersize=8, markeredgewidth=1.6, color="#222222", zorder=4)
                values.append(p90)
            ratio = speedup(run, model, variant)
            ratio_text = f"x{ratio:.2f}" if is_present(ratio) else "–"
            text_ax.text(0.0, row_y, fmt_ms(p50), va="center", fontsize=8)
            text_ax.text(0.2, row_y, ratio_text, va="center", fontsize=8,
                         fontweight="bold" if is_present(ratio) and ratio > 1 and variant != REFERENCE_VARIANT else "normal")
            delta = delta_text(run, model, variant)
            if variant in chosen.get(model, ()):
                delta += f"  {STAR}"
            text_ax.text(0.38, row_y, delta, va="center", fontsize=8, color="black" if delta[:1] in "+-r" else "#6e6e6e")
    for heading_y in headings:
        for axis in (ax, text_ax):
            axis.axhspan(heading_y - 0.5, heading_y + 0.5, color="#f0f2f5", zorder=0, linewidth=0)
    ticks = sorted(headings + [v for block in positions for v in block])
    ax.set_yticks(ticks, tick_labels)
    for tick_label, tick in zip(ax.get_yticklabels(), ticks):
        if tick in headings:
            tick_label.set_fontweight("bold")
    ax.tick_params(axis="y", length=0)
    ax.set_ylim(y - 0.3, -0.6)
    log_axis = wide_spread(values)
    ax.set_xlabel("latency per batch (ms)" + (", log scale" if log_axis else ""))
    if log_axis:
        ax.set_xscale("log")
        plain_log_ticks(ax.xaxis)
        ax.set_xlim(min(values) / 2, max(values) * 1.3)
    else:
        ax.set_xlim(0, max(values) * 1.08)
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    text_ax.set_xlim(0, 1)
    text_ax.axis("off")
    for x, heading in ((0.0, "p50"), (0.2, "speed-up vs\ntorch-fp32"), (0.38, "image AUROC delta [95% CI]")):
        text_ax.text(x, -0.7, heading, va="bottom", fontsize=8.5, fontweight="bold")
    result.figure = fig
    return result
