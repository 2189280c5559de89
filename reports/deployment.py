"""The deployment table: what each model does at a threshold set from validation normals, next to its latency.

A line deploys a threshold, not an AUROC. Per model and category (and seed) this table shows where the
threshold came from (how many validation normal images, which target false-alarm rates), the false-alarm and
miss rates it realised on the test set at each target, the threshold-free recall at the target false-alarm
rates and the false-alarm rate at 95% recall, the pixel F1 at the validation pixel threshold, each with its
95% interval, and the model's torch-fp32 p50 latency. The columns are the record keys of
bench/operating_points.py (rates are fractions there; written here in percent). An empty cell carries the
record's reason, never a guess.
"""
from __future__ import annotations

import math
import re

import numpy as np

from bench.formatting import MISSING, fmt_interval, fmt_sig
from bench.operating_points import rate_suffix
from reports.run_data import (
    MEAN_CATEGORY, REFERENCE_VARIANT, RunView, interval, is_present, latency_percentiles, number, undefined_reasons,
)
from reports.tables import Cell, Column, seed_column, text_column, undefined_cell, value_column

_SUFFIX = re.compile(r"^image_fpr_at_val_thr_(\d+(?:p\d+)?)pct$")
_RECALL_TARGETS = (0.95,)  # the false-alarm rate at this recall gets a column (0.99 needs 100 test defects)
NOT_RECORDED = "not in this record (the job held out no validation normals, or ran before operating points were measured)"


def suffix_rate(suffix: str) -> float:
    """'1pct' -> 0.01, '0p5pct' -> 0.005: the inverse of bench.operating_points.rate_suffix."""
    return float(suffix.removesuffix("pct").replace("p", ".")) / 100.0


def percent(rate: float) -> str:
    return f"{100.0 * rate:g}%"


def target_fprs(run: RunView) -> list[float]:
    """The target false-alarm rates the run's accuracy records hold operating points for, smallest first."""
    found = {suffix_rate(m.group(1)) for r in run.reference_accuracy() for key in r
             if (m := _SUFFIX.match(key)) is not None}
    return sorted(found)


def has_operating_points(run: RunView) -> bool:
    return bool(target_fprs(run)) or any("val_normal_images" in r for r in run.reference_accuracy())


def operating_point_keys(targets: list[float]) -> list[str]:
    keys = []
    for target in targets:
        s = rate_suffix(target)
        keys += [f"image_val_threshold_{s}", f"image_fpr_at_val_thr_{s}", f"image_miss_rate_at_val_thr_{s}",
                 f"image_recall_at_fpr_{s}", f"pixel_val_threshold_{s}", f"pixel_f1_at_val_thr_{s}"]
    keys += [f"image_fpr_at_recall_{rate_suffix(r)}" for r in _RECALL_TARGETS]
    return keys


def _joined_reasons(reasons: dict[str, str]) -> str:
    """{metric: reason} as the record's 'name, name: reason; ...' text (bench.metrics.describe_undefined)."""
    by_reason: dict[str, list[str]] = {}
    for metric, reason in reasons.items():
        by_reason.setdefault(reason, []).append(metric)
    return "; ".join(f"{', '.join(metrics)}: {reason}" for reason, metrics in by_reason.items())


def threshold_source(record: dict, targets: list[float]) -> str:
    n = number(record.get("val_normal_images"))
    note = str(record.get("val_normals_note") or "").strip()
    if math.isnan(n) or n == 0:
        if note:  # the job's own words, e.g. 'no validation normals held out (--val-normals 0)'
            return note if note.startswith("no validation normals") else f"no validation normals held out: {note}"
        return "no validation normals held out" if n == 0 else MISSING
    return f"validation normals: {int(n)} images, target {'/'.join(percent(t) for t in targets)}"


NOT_PROFILED = "no torch-fp32 profile record of this model in this run (run the profile suite for latency)"


def _row(record: dict, targets: list[float], keys: list[str], p50: float) -> dict:
    row = dict(record)
    reasons = undefined_reasons(record)
    reasons.update(undefined_reasons(record, "operating_points_undefined"))
    for key in keys:  # a column the record does not carry at all says so, rather than a bare dash
        if key not in record and key not in reasons:
            reasons[key] = NOT_RECORDED
    if not is_present(p50):
        reasons["torch_p50_ms"] = NOT_PROFILED
    row["undefined_metrics"] = _joined_reasons(reasons)
    row["threshold_source"] = threshold_source(record, targets)
    row["torch_p50_ms"] = p50
    return row


def _sizes_text(rows: list[dict]) -> str:
    sizes = {int(number(r.get("val_normal_images"))) for r in rows if is_present(r.get("val_normal_images"))}
    return ("validation normals: " + "/".join(str(s) for s in sorted(sizes)) + " images per category") if sizes else MISSING


def _mean_row(model: str, dataset: str, rows: list[dict], keys: list[str], targets: list[float], p50: float) -> dict:
    """A plain mean over the categories (seeds averaged first) of each point value; no interval. Empty, with
    why, where a category has no value."""
    by_category: dict[str, list[dict]] = {}
    for row in rows:
        by_category.setdefault(str(row.get("category")), []).append(row)
    mean = {"model": model, "dataset": dataset, "category": MEAN_CATEGORY, "suite": "accuracy", "status": "ok",
            "variant": REFERENCE_VARIANT, "seeds": ",".join(sorted({str(r.get("seed")) for r in rows
                                                                   if is_present(r.get("seed"))}))}
    reasons = {}
    for key in keys:
        per_category = []
        missing = []
        why = set()
        for category, mine in by_category.items():
            values = [number(r.get(key)) for r in mine if is_present(r.get(key))]
            if values:
                per_category.append(float(np.mean(values)))
            else:
                missing.append(category)
                why |= {undefined_reasons(r).get(key, "") for r in mine}
        if missing and len(missing) == len(by_category) and len(why) == 1 and "" not in why:
            reasons[key] = why.pop()  # the same reason everywhere: say it rather than list the categories
        elif missing:
            reasons[key] = f"no mean, undefined in {', '.join(missing)}"
        else:
            mean[key] = float(np.mean(per_category))
    mean["threshold_source"] = _sizes_text(rows)
    if not is_present(p50):
        reasons["torch_p50_ms"] = NOT_PROFILED
    mean["undefined_metrics"] = _joined_reasons(reasons)
    mean["torch_p50_ms"] = p50
    mean["mean_of_points"] = True
    return mean


def deployment_rows(run: RunView) -> list[dict]:
    """Per model and dataset: one row per category and seed (torch-fp32), then a mean row (the stored mean
    where it carries operating points, else the plain mean of the category values, without an interval)."""
    targets = target_fprs(run)
    keys = operating_point_keys(targets)
    categories = run.categories()
    rows = []
    for model in run.models:
        profile = run.profile_record(model, REFERENCE_VARIANT) or {}
        p50 = latency_percentiles(profile)[0] if profile.get("status") == "ok" else math.nan
        for dataset in run.datasets:
            mine = []
            for data, category in categories:
                if data != dataset:
                    continue
                records = sorted(run.category_rows(model, dataset, category),
                                 key=lambda r: number(r.get("seed")) if is_present(r.get("seed")) else math.inf)
                mine += [_row(r, targets, keys, p50) for r in records]
            if not mine:
                continue
            rows += mine
            stored = run.mean_row(model, dataset)
            if stored is not None and any(k in stored for k in keys):
                mean = _row(stored, targets, keys, p50)
                if mean["threshold_source"] == MISSING:
                    mean["threshold_source"] = _sizes_text(mine)
                rows.append(mean)
            elif len({r.get("category") for r in mine}) > 1:
                rows.append(_mean_row(model, dataset, mine, keys, targets, p50))
    return rows


def percent_interval_column(key: str, header: str) -> Column:
    """A rate in percent with its 95% interval (`1.3 [0.2, 3.1]`); an undefined one is empty with its reason."""

    def render(row: dict) -> Cell:
        undefined = undefined_cell(row, key)
        if undefined is not None:
            return undefined
        value, low, high = interval(row, key)
        text = fmt_interval(100.0 * value, 100.0 * low, 100.0 * high, digits=1)
        title = "plain mean over the categories: no interval" if row.get("mean_of_points") and text != MISSING else ""
        return Cell(text, repr(value) if is_present(value) else "", title=title)

    return Column(header, render, True, key)


def fraction_interval_column(key: str, header: str) -> Column:
    def render(row: dict) -> Cell:
        undefined = undefined_cell(row, key)
        if undefined is not None:
            return undefined
        value, low, high = interval(row, key)
        return Cell(fmt_interval(value, low, high), repr(value) if is_present(value) else "")

    return Column(header, render, True, key)


def deployment_columns(run: RunView) -> list[Column]:
    targets = target_fprs(run)
    columns = [text_column("model", "model"), text_column("dataset", "dataset"), text_column("category", "category"),
               seed_column(), text_column("threshold_source", "threshold from")]
    for target in targets:
        s, p = rate_suffix(target), percent(target)
        columns += [percent_interval_column(f"image_fpr_at_val_thr_{s}", f"false alarms % at the {p} threshold [95% CI]"),
                    percent_interval_column(f"image_miss_rate_at_val_thr_{s}", f"misses % at the {p} threshold [95% CI]")]
    columns += [percent_interval_column(f"image_recall_at_fpr_{rate_suffix(t)}", f"recall % at {percent(t)} false alarms [95% CI]")
                for t in targets]
    columns += [percent_interval_column(f"image_fpr_at_recall_{rate_suffix(r)}", f"false alarms % at {percent(r)} recall [95% CI]")
                for r in _RECALL_TARGETS]
    if targets:
        s = rate_suffix(targets[0])
        columns.append(fraction_interval_column(f"pixel_f1_at_val_thr_{s}",
                                                f"pixel F1 at the {percent(targets[0])} pixel threshold [95% CI]"))
    columns.append(value_column("torch_p50_ms", "torch-fp32 p50 ms", fmt_sig))
    return columns


# Under the table, in the HTML and the Markdown report alike.
DEPLOYMENT_NOTE = ("The thresholds come from held-out normal training images only (no defect seen): the score a "
                   "target share of them exceed. 'false alarms' and 'misses' are what that threshold did on the "
                   "test set; their interval is for the rate this threshold gives on all images of the kind (false "
                   "alarms: the validation normals' order statistics pooled with the test normals, exact; misses: "
                   "Clopper-Pearson on the test defects). 'recall at 1% false alarms' needs no threshold: it is read "
                   "off the test ROC curve. Rates in percent; the mean row averages the categories' rates.")

HOW_TO_READ = [
    ("validation threshold (deployment table)",
     "Before testing, a number of normal training images are held out and never trained on (--val-normals). "
     "The image threshold for a target false-alarm rate a is the score that at most a share a of them exceed "
     "(the ceil((n + 1)(1 - a))-th smallest of the n validation scores); an image is flagged when its score is "
     "above it. This is the threshold a line can actually set: it uses no defect and no test image. Its "
     "realised false-alarm rate on the test normals differs from the target for two reasons: the threshold is "
     "estimated from a finite set of normals (with n of them it scatters around the target: for a 1% target "
     "with 100 normals, 90% of validation sets give a rate between 0.05% and 2.9%; with 300, between 0.27% and "
     "2.1%; a 1% target needs at least 100 normals and a 5% target at least 20, otherwise the cell is empty), "
     "and the test set itself has few normals (with 30, the realised rate moves in steps of 3.3 points). The "
     "false-alarm interval is for the rate this threshold gives on all normal images: exact whatever the "
     "scores' distribution (with the threshold the k-th of n validation scores, that rate follows "
     "Beta(n+1-k, k); the test normals above it update it), assuming test normals are like the held-out ones. See docs/design/running.md for the table by number of validation normals."),
    ("recall at 1% false alarms, false alarms at 95% recall",
     "Threshold-free operating points of the test ROC curve: the threshold is put where 1% of the test normals "
     "score above it (or where 95% of the test defects do), interpolating between ROC vertices. They say what "
     "the model can do at the best possible threshold for that rate; the validation-threshold columns say what a "
     "line gets with a threshold set without seeing a defect. 1% needs at least 100 test normals, 95% recall at "
     "least 20 test defects."),
    ("operating-point figure",
     "Each model's test ROC curve drawn as misses against false alarms (both in percent, a linear scale below "
     "1% and a log scale above, so the 1-5% region is readable), the dotted lines at the target rates, and the "
     "point each validation threshold realised with a cross of its two 95% intervals. A point right of its "
     "dotted line: the threshold raised more false alarms on the test set than targeted."),
]
