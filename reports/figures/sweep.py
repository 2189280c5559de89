"""The batch sweep: throughput and peak memory against batch size per (model, variant), with the batch size
where an out-of-memory ended a sweep marked."""
from __future__ import annotations

from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator

from reports.figures.common import FAILED_COLOUR, FigureResult, bottom_legend, model_colours, new_figure, variant_colour
from reports.run_data import RunView, batch_of, is_present, latency_percentiles, number

LINESTYLES = ["-", "--", ":", "-."]


def throughput(record: dict) -> tuple[float, bool]:
    """Images per second at the record's batch size: the measured throughput_ips where it was measured at this
    batch size, else batch size / p50 (True when derived that way)."""
    value = number(record.get("throughput_ips"))
    measured_at = number(record.get("throughput_batch"))
    if is_present(value) and (not is_present(measured_at) or int(measured_at) == batch_of(record)):
        return value, False
    p50 = latency_percentiles(record)[0]
    if is_present(p50) and p50 > 0 and batch_of(record):
        return batch_of(record) * 1000.0 / p50, True
    return float("nan"), False


def is_out_of_memory(record: dict) -> bool:
    text = str(record.get("error") or "").lower()
    return record.get("status") in ("skipped", "failed") and ("out of memory" in text or "not enough memory" in text or "oom" in text.split())


def sweep_figure(run: RunView) -> FigureResult:
    title = "Batch sweep: throughput and peak memory against batch size"
    result = FigureResult("sweep", title, None)
    sweeps = run.sweeps()
    if not sweeps:
        result.notes.append("No model was measured at more than one batch size (--batch-sizes 1,2,4,...): figure skipped.")
        return result
    swept_models = list(dict.fromkeys(model for model, _ in sweeps))
    by_model = len(swept_models) > 1
    colours = model_colours(run)
    variants_seen = list(dict.fromkeys(variant for _, variant in sweeps))
    fig = new_figure(11.5, 5.4, title, run.subtitle() + " | x: batch size (log scale); red cross: out of memory, sweep ended")
    ax_tp, ax_mem = fig.subplots(1, 2)
    all_batches: set[int] = set()
    handles = []
    derived = False
    no_peak: list[str] = []
    for (model, variant), records in sweeps.items():
        colour = colours[model] if by_model else variant_colour(variant)
        style = LINESTYLES[variants_seen.index(variant) % len(LINESTYLES)] if by_model else "-"
        handles.append(Line2D([], [], color=colour, linestyle=style, marker="o", markersize=4, label=f"{model} {variant}"))
        ok = [r for r in records if r.get("status") == "ok"]
        ended = next((r for r in records if r.get("status") != "ok" and (not ok or batch_of(r) > batch_of(ok[-1]))), None)
        all_batches.update(batch_of(r) for r in records)
        memory_missing = True
        for ax, values in (
            (ax_tp, [throughput(r) for r in ok]),
            (ax_mem, [(number(r.get("peak_infer_mb")), False) for r in ok]),
        ):
            points = [(batch_of(r), v) for r, (v, _) in zip(ok, values) if is_present(v)]
            derived |= any(flag for _, flag in values) and ax is ax_tp
            if not points:
                continue
            if ax is ax_mem:
                memory_missing = False
            xs, ys = zip(*points)
            ax.plot(xs, ys, color=colour, linestyle=style, marker="o", markersize=4, linewidth=1.5, gid=f"sweep-{model}-{variant}")
            if ended is not None and is_out_of_memory(ended):
                ax.plot([xs[-1], batch_of(ended)], [ys[-1], ys[-1]], color=colour, linestyle=":", linewidth=1.0)
                ax.plot([batch_of(ended)], [ys[-1]], marker="X", markersize=9, color=FAILED_COLOUR, markeredgecolor="white",
                        linestyle="none", zorder=5, gid=f"oom-{model}-{variant}")
                ax.annotate(f"out of memory\nat batch {batch_of(ended)}", (batch_of(ended), ys[-1]), xytext=(0, -10),
                            textcoords="offset points", ha="center", va="top", fontsize=7.5, color=FAILED_COLOUR)
        if memory_missing and ok:
            no_peak.append(f"{model} {variant}")
        if ended is not None and not is_out_of_memory(ended):
            result.notes.append(f"{model} {variant}: sweep ended at batch {batch_of(ended)} ({ended.get('status')}: "
                                f"{ended.get('error') or 'no reason recorded'}).")
    if no_peak:
        result.notes.append(f"No peak memory recorded (the runtime exposes none), not drawn: {', '.join(no_peak)}.")
        ax_mem.text(0.02, 0.97, "no peak recorded (not drawn):\n" + "\n".join(no_peak), transform=ax_mem.transAxes,
                    va="top", ha="left", fontsize=8, color="#6e6e6e", style="italic")
    if derived:
        result.notes.append("Throughput derived as batch size / p50 where the record holds none at that batch size.")
    batches = sorted(b for b in all_batches if b)
    for ax, label in ((ax_tp, "throughput (images/s, higher is better)"), (ax_mem, "peak inference memory (MB, measured)")):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(batches))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_xlim(batches[0] / 1.4, batches[-1] * 1.4)
        ax.set_xlabel("batch size")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.1)
        ax.grid(color="#e5e5e5", linewidth=0.8)
        ax.set_axisbelow(True)
    ax_tp.set_title("throughput", loc="left")
    ax_mem.set_title("peak memory", loc="left")
    bottom_legend(fig, handles, ncol=min(len(handles), 4))
    result.figure = fig
    return result
