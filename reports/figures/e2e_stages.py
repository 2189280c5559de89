"""Where the time goes on a line: per model, the end-to-end pipeline of torch-fp32 and ort-fp32 (decode, resize +
normalise, network, post-processing, threshold; bench/pipeline.py) as stacked bars of each stage's mean time per
frame (means add up to the mean total; percentiles do not), with the total's p50 and p99 and the share of the
time outside the network."""
from __future__ import annotations

from matplotlib.patches import Patch

from reports.figures.common import FigureResult, bottom_legend, fmt_ms, new_figure, wrap_label
from reports.run_data import ORT_REFERENCE_VARIANT, REFERENCE_VARIANT, RunView, is_present, number

STAGES = ("decode", "preprocess", "network", "postprocess", "threshold")
STAGE_LABELS = {"decode": "decode (PNG/JPEG bytes to pixels)", "preprocess": "resize + normalise",
                "network": "network (the variant's call)", "postprocess": "map upsampled to the camera, to host",
                "threshold": "threshold"}
STAGE_COLOURS = {"decode": "#8C8C8C", "preprocess": "#CCB974", "network": "#4C72B0", "postprocess": "#55A868",
                 "threshold": "#C44E52"}
VARIANTS = (REFERENCE_VARIANT, ORT_REFERENCE_VARIANT)
NOT_MEASURED = ("No end-to-end stage latency in this run (not measured: the profile job of `bench run --suite all` "
                "times it, or `bench line`): figure skipped.")


def has_stages(record: dict | None) -> bool:
    return bool(record) and record.get("status") == "ok" and all(
        is_present(record.get(f"e2e_{stage}_ms_mean")) for stage in STAGES)


def e2e_record(run: RunView, model: str, variant: str) -> dict | None:
    """The model's profile row of that variant that carries the end-to-end columns (the job's own batch)."""
    return next((r for r in run.profile if r.get("model") == model and (r.get("variant") or REFERENCE_VARIANT) == variant
                 and has_stages(r)), None)


def e2e_stages_figure(run: RunView) -> FigureResult:
    title = "End to end on a line: where the time goes, from encoded camera frame to decision"
    result = FigureResult("e2e_stages", title, None)
    rows = []  # (model, variant, record)
    for model in run.models:
        for variant in VARIANTS:
            record = e2e_record(run, model, variant)
            if record is not None:
                rows.append((model, variant, record))
    if not rows:
        result.notes.append(NOT_MEASURED)
        return result
    first = rows[0][2]
    camera = f"{first.get('e2e_camera_size', '?')} {first.get('e2e_encoding', '')} frames".strip()
    decoder = str(first.get("e2e_decoder", "")).split(" (")[0]
    subtitle = (run.subtitle("profile") + f" | {camera}, decoded by {decoder}, batch 1\nbars: mean ms per frame by "
                "stage (left) and the same as shares (right); labels: total p50 / p99 and the share outside the network")
    height = 1.6 + 0.42 * len(rows)
    fig = new_figure(12.0, max(height, 3.2), title, subtitle)
    absolute, shares = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1.0]})
    labels = []
    totals = []
    for i, (model, variant, record) in enumerate(rows):
        means = [number(record.get(f"e2e_{stage}_ms_mean")) for stage in STAGES]
        total = sum(means)
        totals.append(total)
        left = 0.0
        for stage, value in zip(STAGES, means):
            absolute.barh(i, value, left=left, height=0.7, color=STAGE_COLOURS[stage], edgecolor="white",
                          linewidth=0.5, gid=f"e2e-{model}-{variant}-{stage}")
            shares.barh(i, value / total * 100 if total > 0 else 0, left=left / total * 100 if total > 0 else 0,
                        height=0.7, color=STAGE_COLOURS[stage], edgecolor="white", linewidth=0.5)
            left += value
        outside = number(record.get("e2e_outside_network_share"))
        p50, p99 = number(record.get("e2e_total_ms_p50")), number(record.get("e2e_total_ms_p99"))
        text = f"p50 {fmt_ms(p50)} / p99 {fmt_ms(p99)}" + (f", {outside:.0%} outside" if is_present(outside) else "")
        absolute.annotate(text, (total, i), xytext=(4, 0), textcoords="offset points", va="center", fontsize=7.5)
        labels.append(f"{wrap_label(model, 14)} · {variant}")
    for ax in (absolute, shares):
        ax.set_yticks(range(len(rows)), labels if ax is absolute else [""] * len(rows))
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.grid(axis="x", color="#e5e5e5", linewidth=0.8)
        ax.set_axisbelow(True)
    absolute.set_xlim(0, max(totals) * 1.55)
    absolute.set_xlabel("mean time per frame (ms), stacked by stage")
    shares.set_xlim(0, 100)
    shares.set_xlabel("share of the frame's time (%)")
    missing = [f"{m} {v}" for m in run.models for v in VARIANTS
               if run.profile_record(m, v) is not None and not any(r[0] == m and r[1] == v for r in rows)]
    if missing:
        result.notes.append("No end-to-end stages for " + ", ".join(missing) + " (not measured or failed).")
    bottom_legend(fig, [Patch(color=STAGE_COLOURS[s], label=STAGE_LABELS[s]) for s in STAGES], ncol=5)
    result.figure = fig
    return result
