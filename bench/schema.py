"""The results schema: what a run's files hold, every column a record may carry, and the one reader of them.

    RUN/records/<job_id>.json   {"schema": 2, "provenance": {...}, "job": {...}, "complete": bool, "records": [...]}
    RUN/results.json            {"schema": 2, "provenance": {...}, "records": [...]}

A record is a flat dict, one measurement; a value that is None, NaN or "" means "not measured" (`number`).
The column families below are the only place that names them: the runner writes them, `bench compare`
judges them, the report shows them, and tests/test_schema.py fails when a record carries a column that no
family here knows. A new column is added here first, with what it means.

`read_run_file` and `read_results` are the one reader of these files for `bench`, `bench compare` and the
report; whatever is wrong with a file is a `ResultsError` whose message is one line naming the file. They give
a column renamed since a file was written under its new name (`RENAMED_COLUMNS`).

Plain Python only (no torch, no numpy, no models): `bench compare` and the report import it without them.
"""
from __future__ import annotations

import json
import math
import numbers
import re
from pathlib import Path
from typing import Any

SCHEMA = 2


class ResultsError(ValueError):
    """A run folder, results.json or job file that cannot be used; the message is one line naming the file."""


# -- identity ------------------------------------------------------------------------------------------------
# What makes two records the same measurement: everything else may differ between two runs of it.
IDENTITY_COLUMNS = ("suite", "model", "variant", "dataset", "category", "seed", "train_minutes", "image_size",
                    "batch_size", "device")
# The leading columns of every table, in this order; the rest follow as the jobs name them.
LEADING_COLUMNS = ("suite", "model", "family", "variant", "dataset", "category", "train_minutes", "seed", "device",
                   "image_size", "batch_size", "threads", "status", "error")
# What every job's records say about the job: its id and settings, where and when it ran, how it ended.
JOB_COLUMNS = ("job_id", "settings", "settings_hash", "host", "started_at", "seconds")
# Whose recipe a job ran (models/recipes.py): "authors" (the paper suite) or "project" (every other suite), and
# the list of what the job still did differently from the authors' recipe (empty for "project").
RECIPE_COLUMNS = ("recipe", "recipe_deviations")
STATUSES = ("ok", "skipped", "failed")
MEAN_CATEGORY = "mean"  # the category of a mean row (bench/aggregate.py)

# -- variants ------------------------------------------------------------------------------------------------
# Every deployment variant, in the order the runner runs them and every table lists them: the order of the
# variant table (bench/variants/table.py, which builds its table in this order; tests/test_schema.py checks).
VARIANT_ORDER = ("torch-fp32", "torch-tf32", "torch-bf16", "torch-fp16", "torch-channels-last", "torch-compile",
                 "torch-compile-cudagraphs", "ort-fp32", "ort-int8-dynamic", "ort-int8-static", "ort-fp16")
REFERENCE_VARIANT = "torch-fp32"  # what every accuracy delta and parity verdict is measured against
ORT_REFERENCE_VARIANT = "ort-fp32"  # the ONNX Runtime variant the report's summary shows beside it
DEFAULT_VARIANTS = ("torch-fp32", "ort-fp32")
# What a variant record says about how it ran.
VARIANT_COLUMNS = ("runtime", "provider", "precision", "math_mode", "quantisation", "prepare_seconds",
                   "compile_seconds", "onnx_export_seconds", "onnx_mb", "onnx_files", "latency_rounds", "notes")
# Its output against torch-fp32's on the same input (bench/variants/parity.py).
PARITY_COLUMNS = ("parity", "parity_max_abs_diff", "parity_rel_diff", "parity_p99_abs_diff", "parity_tolerance")

# -- accuracy ------------------------------------------------------------------------------------------------
ACCURACY_METRICS = {
    "image_auroc": "area under the ROC curve of the image scores (defective vs good)",
    "image_ap": "average precision of the image scores",
    "image_f1_max": "the best F1 over the thresholds of the image scores",
    "pixel_auroc": "area under the ROC curve of every test pixel's anomaly-map value",
    "pixel_ap": "average precision of the anomaly-map pixels",
    "aupro": "per-region overlap integrated over the pixel false-positive rate 0..0.3, divided by 0.3",
}
# The metrics that carry a bootstrap interval over the test images: <metric>_ci_low, <metric>_ci_high.
INTERVAL_METRICS = ("image_auroc", "image_ap", "pixel_auroc", "aupro")
INTERVAL_SUFFIXES = ("_ci_low", "_ci_high")
INTERVAL_COLUMNS = ("ci_level", "ci_resamples", "ci_method")  # how the intervals of a record were made
# A variant's accuracy minus torch-fp32's on the same test images with the same weights: <metric>_delta.
# An accuracy job records these for each variant, each with a paired bootstrap interval
# (<metric>_delta_ci_low/_ci_high; bench.intervals.paired_delta_intervals).
PAIRED_DELTA_METRICS = ("image_auroc", "pixel_auroc", "aupro")
# `bench.variants.accuracy_deltas` gives the point difference of every metric; the three beyond the paired
# ones have no interval, and no job of the runner writes them today.
POINT_DELTA_METRICS = ("image_auroc", "pixel_auroc", "aupro", "image_ap", "pixel_ap", "image_f1_max")


def delta_column(metric: str) -> str:
    return f"{metric}_delta"


PAIRED_DELTA_COLUMNS = tuple(delta_column(m) for m in PAIRED_DELTA_METRICS)
DELTA_COLUMNS = {
    "image_auroc_delta": "variant minus torch-fp32 image AUROC, with a paired interval",
    "pixel_auroc_delta": "variant minus torch-fp32 pixel AUROC, with a paired interval",
    "aupro_delta": "variant minus torch-fp32 AUPRO, with a paired interval",
    "image_ap_delta": "variant minus torch-fp32 image average precision (point value, no interval)",
    "pixel_ap_delta": "variant minus torch-fp32 pixel average precision (point value, no interval)",
    "image_f1_max_delta": "variant minus torch-fp32 best image F1 (point value, no interval)",
}
# What an accuracy record says about its data, its training and its evaluation (bench/jobs/accuracy.py).
ACCURACY_COLUMNS = ("undefined_metrics", "data_fingerprint", "n_test", "n_test_defective", "n_train", "scores",
                    "labels", "gallery_file", "checkpoint", "evaluated_from_checkpoint", "train_seconds", "epochs",
                    "steps", "final_loss", "stopped_by", "schedule", "train_losses", "folds", "labelled_defects")
# -- operating points (bench/operating_points.py): <metric>_<target>, the target rate in percent written
# identifier-safe (1pct = 0.01, 0p5pct = 0.005, 95pct = 0.95), each with <column>_ci_low/_ci_high; rates are
# fractions in [0, 1]. An image or pixel raises an alarm when its score is above the threshold.
OPERATING_POINT_METRICS = {
    "image_val_threshold": "image-score threshold set on the validation normals alone for the target false-alarm "
                           "rate (the model's score units)",
    "image_fpr_at_val_thr": "fraction of the test normals flagged at that validation threshold (realised false alarms)",
    "image_miss_rate_at_val_thr": "fraction of the test defects not flagged at that validation threshold (misses)",
    "image_recall_at_fpr": "threshold-free recall at the target false-alarm rate, interpolated on the test ROC curve",
    "image_fpr_at_recall": "threshold-free false-alarm rate at the target recall, interpolated on the test ROC curve",
    "pixel_val_threshold": "anomaly-map threshold set on the validation normals' pixels for the target pixel "
                           "false-alarm rate",
    "pixel_f1_at_val_thr": "segmentation F1 of the test set's pooled pixels at that validation pixel threshold",
}
# What a record says about its operating points: the validation normals behind the thresholds and the intervals.
OPERATING_POINT_COLUMNS = {
    "val_normal_images": "normal training images held out (not trained on) to set the thresholds",
    "val_normals_note": "why no validation normals were held out ('' when they were)",
    "val_scores": "the validation normals' image scores, in the split's order",
    "operating_points_ci_level": "the level of the operating points' intervals",
    "operating_points_ci_resamples": "bootstrap resamples behind the operating points' intervals",
    "operating_points_ci_method": "how the operating points' intervals were made",
    "operating_points_undefined": "the operating points left empty and why ('name, name: reason; ...')",
}
# A variant's operating points minus torch-fp32's, each with thresholds from ITS OWN validation scores:
# <metric>_<target>_delta; recall's with a paired interval (the same resampled test images), the realised rates'
# point values only.
OPERATING_POINT_DELTA_METRICS = ("image_recall_at_fpr", "image_fpr_at_val_thr", "image_miss_rate_at_val_thr")
OPERATING_POINT_COLUMN = re.compile(r"^(?P<metric>%s)_(?P<target>\d+(?:p\d+)?pct)(?P<suffix>\w*)$"
                                    % "|".join(sorted(OPERATING_POINT_METRICS, key=len, reverse=True)))
_OPERATING_POINT_SUFFIXES = ("", "_ci_low", "_ci_high", "_seed_std")
_OPERATING_POINT_DELTA_SUFFIXES = ("_delta", "_delta_ci_low", "_delta_ci_high", "_delta_seed_std")


def operating_point_parts(column: str) -> tuple[str, str, str] | None:
    """('image_recall_at_fpr', '1pct', '_ci_low') for 'image_recall_at_fpr_1pct_ci_low'; None for a column that
    is not an operating point (or its interval, delta or seed spread)."""
    match = OPERATING_POINT_COLUMN.match(column)
    if not match:
        return None
    metric, suffix = match["metric"], match["suffix"]
    if suffix in _OPERATING_POINT_SUFFIXES or (metric in OPERATING_POINT_DELTA_METRICS
                                               and suffix in _OPERATING_POINT_DELTA_SUFFIXES):
        return metric, match["target"], suffix
    return None


# A detector's own facts (`Detector.info()` of the built-in models); a plugin's detector may add its own.
MODEL_INFO_COLUMNS = ("pretrained", "train_images", "top_k", "n_gaussians", "mdn_objective", "anomaly_ratio",
                      "synthetic_anomalies", "lr", "grad_clip", "optimizer", "top_k_fraction", "anomaly_probability")
# A mean row (category "mean", bench/aggregate.py): which seeds and categories it averages, and per averaged
# metric its seed-to-seed standard deviation <metric>_seed_std (training noise; the interval is test-set noise).
MEAN_COLUMNS = ("seeds", "n_seeds", "n_categories")
SEED_STD_SUFFIX = "_seed_std"

# -- profile -------------------------------------------------------------------------------------------------
# The model's size and cost (bench/measure.py's probes) and its achieved rate (2 x MACs / p50) against the best
# calibration kernel measured in the same run (bench/variants/peaks.py): `best_kernel_ratio` is a ratio to that
# kernel's rate `best_kernel_gflops`, NOT a fraction of the hardware's peak, and can exceed 1; `best_kernel` names
# the kernel.
PROFILE_COLUMNS = ("params", "trainable_params", "gmacs", "mac_counter", "unsupported_ops", "model_mb",
                   "fwd_mb_est", "bwd_mb_est", "fwd_bwd_mb_est", "peak_infer_mb", "peak_train_mb",
                   "train_batch_size", "throughput_ips", "throughput_batch", "achieved_gflops", "best_kernel_ratio",
                   "best_kernel_gflops", "best_kernel")
# Columns renamed since files were written with the old name: old -> new. The reader (`check_payload`) renames
# them in every record it reads, so a file written before the rename (a committed baseline, measurement data)
# loads with the new names; nothing writes the old names any more. Records only: the `device_peak_gflops` that
# the provenance of older runs carries (an fp32 torch matmul peak, before the calibration kernels) keeps its name.
RENAMED_COLUMNS = {
    "peak_fraction": "best_kernel_ratio",  # not a fraction of a peak: a ratio to the best calibration kernel
    "device_peak_gflops": "best_kernel_gflops",
    "device_peak_kernel": "best_kernel",
}
# Timed calls: <timed>_ms_p<q> (percentile q of the calls), _ms_mean, _iqr_ratio, _n, the raw samples and
# their CPU time; the reference workload timed between them (reference_*) shows how busy the machine was.
TIMED_PREFIXES = ("latency", "reference", "train_step")
TIMING_SUFFIXES = ("ms_mean", "iqr_ratio", "n", "samples_ms", "cpu_samples_ms", "workload")
PERCENTILE_COLUMN = re.compile(r"^(?:%s)_ms_p\d+$" % "|".join(TIMED_PREFIXES))
# How long each probe of a profile job took: probe_seconds_<probe>.
PROBE_SECONDS_PREFIX = "probe_seconds_"
# The end-to-end pipeline of a variant (bench/pipeline.py), from an encoded camera frame to a decision, timed by
# stage: e2e_<stage>_ms_p<q>, _ms_mean, _iqr_ratio, _n, _samples_ms for each stage and the total, the total's
# CPU time per call, and what ran (libraries, sizes, frames).
E2E_STAGES = ("decode", "preprocess", "network", "postprocess", "threshold", "total")
E2E_TIMED_COLUMN = re.compile(r"^e2e_(?:%s)_(?:ms_p\d+|ms_mean|iqr_ratio|n|samples_ms)$" % "|".join(E2E_STAGES))
E2E_COLUMNS = ("e2e_total_cpu_samples_ms", "e2e_outside_network_share", "e2e_decoder", "e2e_resize",
               "e2e_postprocess", "e2e_encoding", "e2e_camera_size", "e2e_input_size", "e2e_encoded_kb_mean",
               "e2e_frames", "e2e_threshold")
# The line scenario on that pipeline (bench/line.py, line_probe): the load and the search's bounds, why it was
# not run, and per batching policy line_<policy>_<column>, the policy's key b1 or b<B>w<W> (dynamic batching),
# with the deadline-miss rate at multiples of the sustainable rate as miss_rate_x<factor> (x0p8, x1, x1p2).
LINE_COLUMNS = ("line_deadline_ms", "line_arrivals", "line_seconds", "line_max_trials", "line_tolerance",
                "line_service_ms", "line_note")
LINE_POLICY_COLUMN = re.compile(
    r"^line_b\d+(?:w\d+(?:p\d+)?)?_(?:policy|sustainable_rate_hz|failing_rate_hz|search_trials|search_decision|"
    r"trials|miss_rate_x\d+(?:p\d+)?|(?:line_latency_ms_p50|line_latency_ms_p99|throughput_ips|queue_len_mean|"
    r"queue_len_max|batch_size_mean)_x1)$")


def percentile_column(quantile: int, prefix: str = "latency") -> str:
    return f"{prefix}_ms_p{quantile}"


# Columns that hold whole numbers (counts and sizes), written as counts wherever they are shown.
COUNT_COLUMNS = frozenset(("seed", "image_size", "batch_size", "threads", "params", "trainable_params", "n_test",
                           "n_test_defective", "n_train", "n_seeds", "n_categories", "steps",
                           "throughput_batch", "train_batch_size", "onnx_files", "latency_n", "latency_rounds", "val_normal_images"))

_NAMED = frozenset((*IDENTITY_COLUMNS, *LEADING_COLUMNS, *JOB_COLUMNS, *RECIPE_COLUMNS, *VARIANT_COLUMNS,
                    *PARITY_COLUMNS,
                    *ACCURACY_METRICS, *INTERVAL_COLUMNS, *DELTA_COLUMNS, *ACCURACY_COLUMNS, *MEAN_COLUMNS,
                    *OPERATING_POINT_COLUMNS,
                    *MODEL_INFO_COLUMNS, *PROFILE_COLUMNS, *E2E_COLUMNS, *LINE_COLUMNS,
                    *(f"{p}_{s}" for p in TIMED_PREFIXES for s in TIMING_SUFFIXES)))
_WITH_INTERVAL = frozenset((*INTERVAL_METRICS, *PAIRED_DELTA_COLUMNS))
_WITH_SEED_STD = frozenset((*ACCURACY_METRICS, *DELTA_COLUMNS))


def is_known_column(name: str) -> bool:
    """Whether the schema names this column, directly or by one of its patterns."""
    if name in _NAMED or PERCENTILE_COLUMN.match(name) or name.startswith(PROBE_SECONDS_PREFIX):
        return True
    if E2E_TIMED_COLUMN.match(name) or LINE_POLICY_COLUMN.match(name):
        return True
    if operating_point_parts(name) is not None:
        return True
    for suffix in INTERVAL_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in _WITH_INTERVAL:
            return True
    return name.endswith(SEED_STD_SUFFIX) and name[: -len(SEED_STD_SUFFIX)] in _WITH_SEED_STD


def unknown_columns(record: dict) -> list[str]:
    """The columns of `record` that the schema does not know (a new column not added here)."""
    return [name for name in record if not is_known_column(name)]


# -- values ----------------------------------------------------------------------------------------------------
def number(value: Any) -> float:
    """A record value as a float; missing, empty, None and non-numeric values become NaN."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # a numpy scalar
        value = value.item()
    if isinstance(value, (bool, numbers.Real)):
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


def is_present(value: Any) -> bool:
    return not math.isnan(number(value))


# -- the reader ----------------------------------------------------------------------------------------------
def parse_json(path: Path, what: str = "results file") -> Any:
    """The JSON in `path` (any type), or a ResultsError naming the file and what is wrong with it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file (the {what} is missing)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read the {what} ({type(exc).__name__})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not a defectbench {what} (not JSON: {exc.msg} at line {exc.lineno} "
                           f"column {exc.colno})") from None


def renamed_columns(record: dict) -> dict:
    """`record` with each column of RENAMED_COLUMNS under its new name, in its place; the record itself when it
    carries none. Where a record carries both names, the new one's value is kept."""
    if not any(old in record for old in RENAMED_COLUMNS):
        return record
    out: dict = {}
    for name, value in record.items():
        new = RENAMED_COLUMNS.get(name)
        if new is None:
            out[name] = value
        elif new not in record:
            out[new] = value
    return out


def check_payload(path: Path, payload: Any, what: str = "results file") -> dict:
    """`payload` as a results or job file of this schema: an object with `schema` SCHEMA, a list of records
    (objects) and a provenance object (an absent one reads as empty); its records' renamed columns under their
    new names (`renamed_columns`). Raises ResultsError otherwise."""
    if not isinstance(payload, dict):
        raise ResultsError(f"{path}: not a defectbench {what} (a JSON {type(payload).__name__}, not an object)")
    if payload.get("schema") != SCHEMA:
        raise ResultsError(f"{path}: results schema {payload.get('schema')!r}; this defectbench reads schema {SCHEMA} "
                           f"(re-run the suite with this defectbench, or read it with the version that wrote it)")
    records = payload.get("records")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ResultsError(f"{path}: not a defectbench {what} (no list of records)")
    payload["records"] = [renamed_columns(r) for r in records]
    if payload.get("provenance") is None:
        payload["provenance"] = {}
    elif not isinstance(payload["provenance"], dict):
        raise ResultsError(f"{path}: not a defectbench {what} ('provenance' is not an object)")
    return payload


def read_run_file(path: Path, what: str = "results file") -> dict:
    """A results.json or job file, checked (`check_payload`); ResultsError naming the file otherwise."""
    return check_payload(Path(path), parse_json(path, what), what)


def results_file(path: Path) -> Path:
    """The results.json of a run folder, or `path` itself when it names a file."""
    path = Path(path)
    return path / "results.json" if path.is_dir() else path


def read_results(path: Path) -> tuple[Path, dict, list[dict]]:
    """(results.json's path, provenance, records) of a run folder or a results.json file."""
    results = results_file(path)
    if not results.exists():
        raise ResultsError(f"{results}: no such file (a run folder holds results.json; `bench run --out DIR` "
                           f"writes one)")
    payload = read_run_file(results)
    return results, payload["provenance"], payload["records"]
