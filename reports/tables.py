"""The report's tables: which rows, which columns, their headers and how each cell is written.

The HTML and the Markdown report both render these Cells, so the two always show the same text; a number
and an interval are written one way everywhere, the terminal summary included (bench/formatting.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from bench.formatting import MISSING, fmt_fixed, fmt_int, fmt_interval, fmt_sig, fmt_text
from reports.run_data import (
    MEAN_CATEGORY, ORT_REFERENCE_VARIANT, REFERENCE_VARIANT, RunView, batch_of, interval, is_present, latency_percentiles,
    number, undefined_reasons, variant_of, variant_sort_key,
)
from reports.variants import AUROC_TOLERANCE, accuracy_delta, choice_text, fastest_within, speedup


# ---------------------------------------------------------------------------------------------- formats
# Numbers are written by bench/formatting.py, as in the terminal summary; these two are the report's own.
def fmt_parity(value: Any) -> str:
    if isinstance(value, bool):
        return "pass" if value else "FAIL"
    if isinstance(value, str) and value.strip().lower() in ("pass", "fail", "true", "false"):
        return "pass" if value.strip().lower() in ("pass", "true") else "FAIL"
    return fmt_text(value)


def fmt_speedup(value: Any) -> str:
    return f"x{number(value):.2f}" if is_present(value) else MISSING


# ---------------------------------------------------------------------------------------------- cells, columns
@dataclass(frozen=True)
class Cell:
    text: str
    sort: str = ""  # what the HTML table sorts on: a number's repr, else the text; empty sorts last
    note: str = ""  # why an empty cell is empty (an undefined metric): a tooltip in HTML, a footnote in both
    title: str = ""  # extra detail for a tooltip (HTML only)


@dataclass(frozen=True)
class Column:
    header: str
    render: Callable[[dict], Cell]
    numeric: bool = True
    key: str = ""  # the record key it shows, where it shows one


def undefined_cell(record: dict, metric: str) -> Cell | None:
    """An empty cell with its reason where the metric (or, for a delta, the metric it is a delta of) is
    undefined for the record's data."""
    reasons = undefined_reasons(record)
    reason = reasons.get(metric) or reasons.get(metric.removesuffix("_delta"))
    if reason is None or is_present(record.get(metric)):
        return None
    return Cell("", "", note=f"undefined: {reason}")


def value_column(key: str, header: str, fmt: Callable[[Any], str], numeric: bool = True) -> Column:
    def render(record: dict) -> Cell:
        undefined = undefined_cell(record, key)
        if undefined is not None:
            return undefined
        value = record.get(key)
        if numeric:
            return Cell(fmt(value), repr(number(value)) if is_present(value) else "")
        text = fmt(value)
        return Cell(text, "" if text == MISSING else text)

    return Column(header, render, numeric, key)


def text_column(key: str, header: str, fmt: Callable[[Any], str] = fmt_text) -> Column:
    return value_column(key, header, fmt, numeric=False)


def interval_column(metric: str, header: str, signed: bool = False) -> Column:
    """The value with its 95% interval; an undefined metric is an empty cell with its reason."""

    def render(record: dict) -> Cell:
        undefined = undefined_cell(record, metric)
        if undefined is not None:
            return undefined
        value, low, high = interval(record, metric)
        return Cell(fmt_interval(value, low, high, signed=signed), repr(value) if is_present(value) else "")

    return Column(header, render, True, metric)


def seed_std_column(metric: str, header: str) -> Column:
    """Seed-to-seed standard deviation (mean rows of several seeds); a different noise from the interval."""

    def render(record: dict) -> Cell:
        std = number(record.get(f"{metric}_seed_std"))
        if not is_present(std):
            return Cell(MISSING, "")
        return Cell(f"±{std:.3f}", repr(std))

    return Column(header, render, True, f"{metric}_seed_std")


def seeds_text(record: dict) -> str:
    if record.get("category") == MEAN_CATEGORY or not is_present(record.get("seed")):
        seeds = record.get("seeds")
        if isinstance(seeds, (list, tuple)):
            seeds = ",".join(str(s) for s in seeds)
        if seeds not in (None, ""):
            return str(seeds)
    return fmt_text(record.get("seed"))


def seed_column() -> Column:
    def render(record: dict) -> Cell:
        text = seeds_text(record)
        return Cell(text, "" if text == MISSING else text)

    return Column("seed(s)", render, False, "seed")


def note_column() -> Column:
    """The error of a failed row or the reason of a skipped one."""

    def render(record: dict) -> Cell:
        text = str(record.get("error") or "") if record.get("status") in ("failed", "skipped") else ""
        short = text if len(text) <= 70 else text[:67] + "..."
        return Cell(short or MISSING, short, title=text if short != text else "")

    return Column("reason (skipped / failed)", render, False, "error")


# ---------------------------------------------------------------------------------------------- rows
def profile_rows(run: RunView) -> list[dict]:
    """Every profile record (failed and skipped ones too): by model, variant, batch size."""
    variants = run.variants()
    records = [r for r in run.records if r.get("suite") == "profile"]
    return sorted(records, key=lambda r: (run.models.index(r.get("model", "?")), variant_sort_key(variant_of(r), variants),
                                          batch_of(r) if batch_of(r) is not None else -1))


def accuracy_rows(run: RunView, reference: bool = True) -> list[dict]:
    """The accuracy records of torch-fp32 (reference=True) or of the other variants: per model and dataset
    the categories in run order with their seeds, then the mean row."""
    records = [r for r in run.records if r.get("suite") == "accuracy" and (variant_of(r) == REFERENCE_VARIANT) == reference]
    variants = run.variants()
    categories = [c for _, c in run.categories()]

    def key(r: dict):
        category = r.get("category")
        return (run.models.index(r.get("model", "?")), r.get("dataset", ""), variant_sort_key(variant_of(r), variants),
                category == MEAN_CATEGORY, categories.index(category) if category in categories else len(categories),
                number(r.get("seed")) if is_present(r.get("seed")) else math.inf, number(r.get("train_minutes")))

    return sorted(records, key=key)


def summary_rows(run: RunView) -> list[dict]:
    """One row per model and dataset (per model when nothing was trained): its cost at the compared batch
    size, its mean accuracy with intervals, and the fastest variant that keeps its image AUROC."""
    rows = []
    datasets = run.datasets or [""]
    for model in run.models:
        facts = run.model_facts(model)
        torch_row = run.profile_record(model, REFERENCE_VARIANT) or {}
        ort_row = run.profile_record(model, ORT_REFERENCE_VARIANT) or {}
        for dataset in datasets:
            mean = run.mean_row(model, dataset) if dataset else None
            if dataset and mean is None and not any(r.get("model") == model and r.get("dataset", "") == dataset
                                                    for r in run.records if r.get("suite") == "accuracy"):
                continue  # the model was not trained on this dataset
            row = {key: facts.get(key) for key in ("model", "family", "params", "gmacs", "model_mb", "peak_train_mb", "train_step_ms_p50")}
            row["family"] = row.get("family") or next((r.get("family") for r in run.records if r.get("model") == model), "")
            row["model"] = model
            row["batch_size"] = run.model_batch(model)
            row["torch_p50_ms"] = latency_percentiles(torch_row)[0] if torch_row.get("status") == "ok" else math.nan
            row["ort_p50_ms"] = latency_percentiles(ort_row)[0] if ort_row.get("status") == "ok" else math.nan
            row["ort_parity"] = ort_row.get("parity") if ort_row.get("status") == "ok" else ""
            row["onnx_mb"] = ort_row.get("onnx_mb")
            row["peak_infer_mb"] = torch_row.get("peak_infer_mb")
            row["dataset"] = dataset
            row["status"] = torch_row.get("status", "ok")
            if mean is not None:
                for key, value in mean.items():
                    if key.startswith(("image_auroc", "pixel_auroc", "aupro", "n_seeds", "seeds", "undefined_metrics")):
                        row[key] = value
            elif dataset:
                # Trained, but a category did not finish: the runner writes no mean, and neither does the report.
                row["undefined_metrics"] = "image_auroc, pixel_auroc, aupro: no mean over categories, a category's job failed"
            choice, note = fastest_within(run, model, dataset) if dataset else (None, "no accuracy measured")
            row["fastest_within"] = choice
            row["fastest_note"] = note
            rows.append(row)
    return rows


def variant_rows(run: RunView) -> list[dict]:
    """One row per (model, variant[, dataset]) at the model's compared batch size: its p50, speed-up over
    torch-fp32, parity and accuracy delta."""
    rows = []
    datasets = run.datasets or [""]
    for model in run.models:
        for variant in run.variants():
            record = run.profile_record(model, variant)
            trained = [d for d in datasets if d and run.mean_row(model, d, variant) is not None]
            if record is None and not trained:
                continue
            for dataset in (trained or [datasets[0]]):
                row = dict(record or {"model": model, "variant": variant, "status": "not profiled"})
                row["dataset"] = dataset
                row["speedup"] = speedup(run, model, variant) if record and record.get("status") == "ok" else math.nan
                row["p50_ms"] = latency_percentiles(record)[0] if record and record.get("status") == "ok" else math.nan
                mean = run.mean_row(model, dataset, variant) if dataset else None
                for metric in ("image_auroc", "pixel_auroc", "aupro"):
                    delta = accuracy_delta(run, model, dataset, variant, metric) if dataset else (math.nan,) * 3
                    row[f"{metric}_delta"], row[f"{metric}_delta_ci_low"], row[f"{metric}_delta_ci_high"] = delta
                row["undefined_metrics"] = (mean or {}).get("undefined_metrics", "")
                rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------- the tables
def fastest_column() -> Column:
    header = f"fastest variant within {AUROC_TOLERANCE:g} AUROC of fp32 (speed-up)"

    def render(row: dict) -> Cell:
        choice = row.get("fastest_within")
        note = row.get("fastest_note", "")
        if choice is None:
            return Cell(MISSING, "", title=note)
        return Cell(choice_text(choice), repr(choice.speedup), title=f"image AUROC delta {choice.image_auroc_delta:+.3f}; {note}")

    return Column(header, render, True, "fastest_within")


def summary_columns(run: RunView) -> list[Column]:
    columns = [
        text_column("model", "model"),
        text_column("family", "family"),
        text_column("dataset", "dataset"),
        interval_column("image_auroc", "image AUROC [95% CI]"),
        seed_std_column("image_auroc", "image AUROC seed std"),
        value_column("n_seeds", "seeds", fmt_int),
        interval_column("pixel_auroc", "pixel AUROC [95% CI]"),
        interval_column("aupro", "AUPRO@0.3 [95% CI]"),
        value_column("torch_p50_ms", "torch-fp32 p50 ms", fmt_sig),
        value_column("ort_p50_ms", "ort-fp32 p50 ms", fmt_sig),
        fastest_column(),
        text_column("ort_parity", "ORT parity", fmt_parity),
        value_column("params", "params", fmt_int),
        value_column("gmacs", "GMACs", fmt_sig),
        value_column("model_mb", "model MB", fmt_sig),
        value_column("onnx_mb", "ONNX MB", fmt_sig),
        value_column("peak_infer_mb", "peak infer MB", fmt_sig),
        value_column("peak_train_mb", "peak train MB", fmt_sig),
    ]
    if not run.datasets:
        columns = [c for c in columns if c.key not in ("dataset", "image_auroc", "image_auroc_seed_std", "n_seeds", "pixel_auroc", "aupro")]
    return columns


def speedup_column() -> Column:
    return value_column("speedup", "speed-up vs torch-fp32", fmt_speedup)


PROFILE_COLUMNS = [
    text_column("model", "model"),
    text_column("variant", "variant"),
    value_column("batch_size", "batch", fmt_int),
    text_column("status", "status"),
    text_column("runtime", "runtime"),
    text_column("provider", "provider"),
    text_column("precision", "precision"),
    value_column("latency_ms_p50", "p50 ms", fmt_sig),
    value_column("latency_ms_p90", "p90 ms", fmt_sig),
    value_column("latency_ms_p99", "p99 ms", fmt_sig),
    value_column("latency_iqr_ratio", "IQR/p50", fmt_fixed(3)),
    value_column("throughput_ips", "img/s", fmt_sig),
    text_column("parity", "parity vs torch-fp32", fmt_parity),
    value_column("parity_max_abs_diff", "max abs diff", fmt_sig),
    value_column("onnx_mb", "ONNX MB", fmt_sig),
    value_column("compile_seconds", "compile s", fmt_sig),
    value_column("peak_infer_mb", "peak infer MB", fmt_sig),
    value_column("achieved_gflops", "GFLOP/s", fmt_sig),
    value_column("best_kernel_ratio", "vs best kernel", fmt_fixed(2)),
    note_column(),
]

VARIANT_COLUMNS = [
    text_column("model", "model"),
    text_column("variant", "variant"),
    text_column("dataset", "dataset"),
    text_column("status", "status"),
    value_column("p50_ms", "p50 ms", fmt_sig),
    speedup_column(),
    text_column("parity", "parity vs torch-fp32", fmt_parity),
    value_column("onnx_mb", "ONNX MB", fmt_sig),
    interval_column("image_auroc_delta", "image AUROC delta [95% CI]", signed=True),
    interval_column("pixel_auroc_delta", "pixel AUROC delta [95% CI]", signed=True),
    interval_column("aupro_delta", "AUPRO delta [95% CI]", signed=True),
    note_column(),
]

ACCURACY_COLUMNS = [
    text_column("model", "model"),
    text_column("family", "family"),
    text_column("dataset", "dataset"),
    text_column("category", "category"),
    seed_column(),
    text_column("status", "status"),
    interval_column("image_auroc", "image AUROC [95% CI]"),
    seed_std_column("image_auroc", "image AUROC seed std"),
    interval_column("pixel_auroc", "pixel AUROC [95% CI]"),
    seed_std_column("pixel_auroc", "pixel AUROC seed std"),
    interval_column("aupro", "AUPRO@0.3 [95% CI]"),
    seed_std_column("aupro", "AUPRO seed std"),
    interval_column("image_ap", "image AP [95% CI]"),
    value_column("image_f1_max", "image F1-max", fmt_fixed(3)),
    value_column("pixel_ap", "pixel AP", fmt_fixed(3)),
    value_column("n_test", "test images", fmt_int),
    value_column("train_seconds", "train s", fmt_sig),
    value_column("epochs", "epochs", fmt_int),
    value_column("steps", "steps", fmt_int),
    value_column("final_loss", "final loss", fmt_sig),
    text_column("pretrained", "pretrained"),
]

VARIANT_ACCURACY_COLUMNS = [
    text_column("model", "model"),
    text_column("variant", "variant"),
    text_column("dataset", "dataset"),
    text_column("category", "category"),
    seed_column(),
    text_column("status", "status"),
    interval_column("image_auroc", "image AUROC [95% CI]"),
    interval_column("image_auroc_delta", "image AUROC delta [95% CI]", signed=True),
    interval_column("pixel_auroc_delta", "pixel AUROC delta [95% CI]", signed=True),
    interval_column("aupro_delta", "AUPRO delta [95% CI]", signed=True),
]

# The short Markdown tables for a pull-request comment.
ACCURACY_SUMMARY_HEADERS = ["model", "dataset", "category", "seed(s)", "image AUROC [95% CI]", "image AUROC seed std",
                            "pixel AUROC [95% CI]", "AUPRO@0.3 [95% CI]"]
VARIANT_SUMMARY_HEADERS = ["model", "variant", "dataset", "status", "p50 ms", "speed-up vs torch-fp32", "parity vs torch-fp32",
                           "image AUROC delta [95% CI]", "reason (skipped / failed)"]


class Footnotes:
    """Numbers the reasons of a table's empty cells: one number per distinct reason, in order of use, and
    remembers which columns each one emptied."""

    def __init__(self) -> None:
        self.columns: dict[str, list[str]] = {}

    def mark(self, note: str, header: str) -> str:
        headers = self.columns.setdefault(note, [])
        if header not in headers:
            headers.append(header)
        return f"[{list(self.columns).index(note) + 1}]"

    def lines(self) -> list[str]:
        return [f"[{i}] {', '.join(headers)}: {note}" for i, (note, headers) in enumerate(self.columns.items(), start=1)]


def columns_by_header(columns: list[Column], headers: list[str]) -> list[Column]:
    lookup = {c.header: c for c in columns}
    return [lookup[h] for h in headers if h in lookup]


# Under the summary table, in the HTML and the Markdown report alike.
INTERVAL_NOTE = ("Numbers in brackets: 95% bootstrap interval over the test images (test-set noise only; the "
                 "seed-to-seed spread is the 'seed std' column). Overlapping intervals are not a test: `bench compare` "
                 "runs the paired one. The fastest-variant column counts only variants whose accuracy delta was "
                 "measured; its speed-up is over torch-fp32 at the same batch size.")

HOW_TO_READ = [
    ("[95% CI] after a number",
     "0.790 [0.712, 0.861] is the measured value and its 95% percentile-bootstrap interval: the test images were "
     "resampled with replacement, separately among the good and the defective ones (stratified by label), and the "
     "metric recomputed each time; the interval holds the middle 95% of those values. It says how much the number "
     "would move with another test set of the same size drawn from the same source. It does not include training "
     "noise: a model trained with another seed can land elsewhere; that seed-to-seed spread is reported separately "
     "('seed std', and each seed's own value in the per-category figure). The mean row's interval is combined from "
     "the per-category intervals (its ci_method says how)."),
    ("overlapping intervals",
     "Overlap is not a test: two models whose intervals overlap can still differ significantly on the same test "
     "images, and a non-overlap is only a rough hint of a real difference. `bench compare BASE NEW` runs the paired "
     "test (both models' scores on the same images)."),
    ("seed std",
     "With --seeds, each accuracy job is repeated per training seed: 'seed std' is the standard deviation over "
     "seeds of the mean over categories, and the mean row's value is the mean over seeds. Empty for one seed."),
    ("empty accuracy cells with a footnote",
     "A metric that is undefined for the data (pixel metrics on a test set without masks or for a model without "
     "an anomaly map; AUROC on a test set with one class) is left empty, never 0; the footnote and the cell's "
     "tooltip say why."),
    ("variants",
     "The same trained model deployed another way: torch-bf16/fp16 (autocast), channels-last, torch.compile "
     "(compile time in its own column; the timed calls are the steady state), ONNX Runtime in fp32 or int8 "
     "(dynamic, or static QDQ calibrated on training images). Parity compares each variant's output with "
     "torch-fp32 on the same input. 'skipped' means the device or runtime cannot do the variant (the reason is "
     "given), or a batch size past an out-of-memory in a sweep: not a failure, and never drawn as zero."),
    ("accuracy delta",
     "Variant minus torch-fp32 on the same test images with the same weights; its interval comes from a paired "
     "bootstrap (the same resampled images for both), so it is usually much narrower than the two models' "
     "intervals side by side: the test-set noise they share cancels."),
    (f"fastest variant within {AUROC_TOLERANCE:g} AUROC of fp32",
     f"Per model, the variant with the lowest p50 (at the compared batch size) whose mean image AUROC is at most "
     f"{AUROC_TOLERANCE:g} below torch-fp32's (point estimate of the delta), with its speed-up over torch-fp32. Only "
     "variants whose accuracy delta was measured count: a fast variant that was only timed is left out (the tooltip "
     "lists what was considered). torch-fp32 itself when nothing faster qualifies."),
    ("p50 / p90 / p99 ms",
     "Median, 90th and 99th percentile of the timed calls of one batch, after warm-up. p50 is the typical "
     "latency, p99 the slow tail. IQR/p50 is the spread of the samples; above 0.1 the timings were noisy. In the "
     "accuracy-against-latency figure the horizontal whiskers span the 10th to the 90th percentile of the samples; "
     "they show the spread within this run, not the drift between runs."),
    ("batch sweep",
     "With --batch-sizes, each batch size is timed on its own: throughput is images per second at that batch size; "
     "peak memory is the allocator's peak where the runtime exposes one (ONNX Runtime does not). An out-of-memory "
     "ends the sweep and is marked at the batch size where it happened."),
    ("estimated vs measured memory",
     "'model MB' is the parameter bytes and 'ONNX MB' the exported file. 'peak infer/train MB' are measured "
     "allocator peaks during inference and one training step; they are the numbers to plan memory with. The "
     "sizes figure also shows a torchinfo-style estimate of the activations."),
    ("params, GMACs, GFLOP/s, vs best kernel",
     "Parameter count; multiply-accumulates of one image counted by the run's MAC counter (operators it cannot "
     "count are listed in the CSV); achieved GFLOP/s = 2 x MACs / p50 time. 'vs best kernel' (the CSV's "
     "best_kernel_ratio) is that rate divided by the best rate measured in the same run, for the variant's precision, "
     "among a few large calibration kernels of the runtimes (torch matmul and 3x3 convolution, ONNX Runtime MatMul "
     "and Conv on CPU; best_kernel_gflops is that rate and best_kernel names the kernel). It is a ratio to a measured "
     "kernel, NOT a fraction of the hardware's peak, and it may exceed 1: a model whose own kernels outrun the "
     "calibration kernels reads above 1 (FCN-32s' large convolutions on ONNX Runtime read 1.06 in one make bench), and "
     "so can a busy machine or a MAC count of work a runtime skips. Use it to compare how well the models and variants "
     "of one run use the machine (the same denominator for all of them), not as an absolute efficiency."),
    ("image AUROC, pixel AUROC, AUPRO@0.3",
     "Area under the ROC curve of the image scores (defective vs good) and of every test pixel's heat-map value; "
     "0.5 is chance, 1 is perfect. AUPRO: per-region overlap (each connected defect counts equally) integrated over "
     "the pixel false-positive rate from 0 to 0.3 and divided by 0.3."),
    ("Pareto front",
     "The models that no other model beats on both lower p50 latency and higher accuracy: the sensible choices."),
    ("end to end on a line (stage bars)",
     "What a line runs per part, batch 1, timed stage by stage (bench/pipeline.py): decode the camera's encoded frame "
     "(1024x1024 PNG by default, Pillow), resize to the model's input and normalise, the variant's network (with "
     "whatever the model's own inference module does after it), upsample the map to the camera and bring it to the "
     "host, threshold the score. Bars stack each stage's mean time per frame (means add up, percentiles do not); "
     "'outside' is the share of the time not spent in the network: at these input sizes often most of it, and what a "
     "forward-pass benchmark leaves out."),
    ("sustainable rate and the deployer's frontier",
     "The line scenario (bench/line.py, docs/design/line.md) triggers parts periodically at a rate, serves them "
     "through that pipeline (batch 1, or dynamic batching up to B parts waiting at most W ms) and measures each "
     "part's latency from its scheduled arrival to its decision. The sustainable rate is the highest rate whose p99 "
     "latency stays within the deadline (100 ms in make bench: one camera period at 10 parts/s), found by "
     "bracketing and bisection over short trials; its whisker runs to the lowest failing rate. The frontier plots it "
     "against accuracy at the operating point (recall at 1% false alarms with its interval where the records have "
     "it, else image AUROC): points up and to the right are better; a model left of another and lower is dominated."),
]
