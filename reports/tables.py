"""The report's tables: which record keys become columns, their headers and how numbers are printed.

The HTML and the Markdown report both use these, so the two always show the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from reports.results import MEAN_CATEGORY, Run, is_present, number

MISSING = "–"


def fmt_int(value: Any) -> str:
    return f"{int(round(number(value))):,}" if is_present(value) else MISSING


def fmt_fixed(digits: int) -> Callable[[Any], str]:
    def fmt(value: Any) -> str:
        return f"{number(value):.{digits}f}" if is_present(value) else MISSING

    return fmt


def fmt_sig(value: Any) -> str:
    """Three significant digits, no exponent for everyday magnitudes."""
    if not is_present(value):
        return MISSING
    x = number(value)
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e6):
        return f"{x:.2e}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def fmt_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def fmt_parity(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return "yes" if value.strip().lower() == "true" else "NO"
    return fmt_text(value)


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    fmt: Callable[[Any], str]
    numeric: bool = True

    def text(self, record: dict) -> str:
        return self.fmt(record.get(self.key))

    def sort_value(self, record: dict) -> str:
        """What the HTML table sorts on: the raw number, or the text; empty for missing (sorted last)."""
        value = record.get(self.key)
        if self.numeric:
            return repr(number(value)) if is_present(value) else ""
        return "" if fmt_text(value) == MISSING else fmt_text(value)


PROFILE_COLUMNS = [
    Column("model", "model", fmt_text, numeric=False),
    Column("family", "family", fmt_text, numeric=False),
    Column("status", "status", fmt_text, numeric=False),
    Column("params", "params", fmt_int),
    Column("gmacs", "GMACs", fmt_sig),
    Column("latency_ms_p50", "p50 ms", fmt_sig),
    Column("latency_ms_p90", "p90 ms", fmt_sig),
    Column("latency_ms_p99", "p99 ms", fmt_sig),
    Column("latency_iqr_ratio", "IQR/p50", fmt_fixed(3)),
    Column("ort_latency_ms_p50", "ORT p50 ms", fmt_sig),
    Column("ort_latency_ms_p90", "ORT p90 ms", fmt_sig),
    Column("ort_latency_ms_p99", "ORT p99 ms", fmt_sig),
    Column("onnx_parity", "ONNX parity", fmt_parity, numeric=False),
    Column("onnx_max_abs_diff", "ONNX max abs diff", fmt_sig),
    Column("throughput_ips", "img/s", fmt_sig),
    Column("train_step_ms_p50", "train step p50 ms", fmt_sig),
    Column("model_mb", "model MB", fmt_sig),
    Column("onnx_mb", "ONNX MB", fmt_sig),
    Column("fwd_mb_est", "fwd est MB", fmt_sig),
    Column("bwd_mb_est", "bwd est MB", fmt_sig),
    Column("peak_infer_mb", "peak infer MB", fmt_sig),
    Column("peak_train_mb", "peak train MB", fmt_sig),
    Column("achieved_gflops", "GFLOP/s", fmt_sig),
]

ACCURACY_COLUMNS = [
    Column("model", "model", fmt_text, numeric=False),
    Column("family", "family", fmt_text, numeric=False),
    Column("dataset", "dataset", fmt_text, numeric=False),
    Column("category", "category", fmt_text, numeric=False),
    Column("status", "status", fmt_text, numeric=False),
    Column("image_auroc", "image AUROC", fmt_fixed(3)),
    Column("pixel_auroc", "pixel AUROC", fmt_fixed(3)),
    Column("aupro", "AUPRO@0.3", fmt_fixed(3)),
    Column("image_f1_max", "image F1-max", fmt_fixed(3)),
    Column("image_ap", "image AP", fmt_fixed(3)),
    Column("pixel_ap", "pixel AP", fmt_fixed(3)),
    Column("train_seconds", "train s", fmt_sig),
    Column("epochs", "epochs", fmt_int),
    Column("steps", "steps", fmt_int),
    Column("final_loss", "final loss", fmt_sig),
    Column("pretrained", "pretrained", fmt_text, numeric=False),
]

# The short Markdown tables for a pull-request comment.
PROFILE_SUMMARY_KEYS = ["model", "params", "gmacs", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99",
                        "ort_latency_ms_p50", "onnx_parity", "model_mb", "onnx_mb", "peak_infer_mb", "peak_train_mb"]
ACCURACY_SUMMARY_KEYS = ["model", "dataset", "category", "image_auroc", "pixel_auroc", "aupro", "image_f1_max", "train_seconds"]


def columns_by_key(columns: list[Column], keys: list[str]) -> list[Column]:
    lookup = {c.key: c for c in columns}
    return [lookup[k] for k in keys]


def profile_rows(run: Run) -> list[dict]:
    """Every profile record, failed ones too (they keep what was measured before the failure)."""
    return [r for r in run.records if r.get("suite") == "profile"]


def accuracy_rows(run: Run) -> list[dict]:
    """Every accuracy record; per model and dataset the categories in run order, then the mean row."""
    records = [r for r in run.records if r.get("suite") == "accuracy"]
    return sorted(records, key=lambda r: (run.models.index(r.get("model", "?")), r.get("dataset", ""), r.get("category") == MEAN_CATEGORY))


HOW_TO_READ = [
    ("p50 / p90 / p99 ms",
     "Median, 90th and 99th percentile of the timed forward passes of one batch, after warm-up. p50 is the "
     "typical latency, p99 the slow tail. IQR/p50 is the spread of the samples; above 0.1 the timings were noisy."),
    ("ORT",
     "The same model exported to ONNX and run in ONNX Runtime on the same device with the same threads."),
    ("ONNX parity",
     "ONNX Runtime's output compared with PyTorch's on the same input, relative to the output's scale: "
     "'yes' when within tolerance; 'ONNX max abs diff' is the largest absolute difference."),
    ("estimated vs measured memory",
     "'fwd/bwd est MB' is a torchinfo-style estimate (output bytes of the layers that have parameters: it leaves "
     "out parameter-free layers and allocator overhead); 'model MB' is the parameter bytes and 'ONNX MB' the "
     "exported file. 'peak infer/train MB' are measured allocator peaks during inference and one training step; "
     "they are the numbers to plan memory with."),
    ("params, GMACs, GFLOP/s",
     "Parameter count; multiply-accumulates per batch counted by the named MAC counter (operators it cannot count "
     "are listed in the CSV and left out); achieved GFLOP/s = 2 x GMACs / p50."),
    ("image AUROC, pixel AUROC",
     "Area under the ROC curve of the image scores (defective vs good) and of every test pixel's heat-map value. "
     "0.5 is chance, 1 is perfect. The 'mean' row averages the categories."),
    ("AUPRO@0.3",
     "Per-region overlap (each connected defect counts equally, whatever its size) integrated over the pixel "
     "false-positive rate from 0 to 0.3 and divided by 0.3. Empty for image-level-only models."),
    ("F1-max, AP",
     "Best F1 over all image-score thresholds; average precision of the image scores and of the pixels."),
    ("Pareto front",
     "The models that no other model beats on both lower p50 latency and higher accuracy: the sensible choices."),
]
