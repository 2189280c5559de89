"""Mean rows: one `category="mean"` row per (model, dataset, stage, variant) over every category and seed.

Two sources of noise are kept apart and named: `<metric>_seed_std` is the seed-to-seed spread of the
category mean (training noise); `<metric>_ci_low/_ci_high` is the test-set interval of the mean, combined
from the per-category bootstrap intervals (test-set noise). A mean over categories of which some failed is
`failed` and carries no averaged metric: a mean of the survivors would flatter the model.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd

from bench import run_folder
from bench.schema import (INTERVAL_METRICS, MEAN_CATEGORY, PAIRED_DELTA_COLUMNS, POINT_DELTA_METRICS, REFERENCE_VARIANT,
                          delta_column, operating_point_parts)

# What a mean row averages (in this order): every accuracy metric and every delta a variant row may carry.
MEAN_METRICS = ["image_auroc", "pixel_auroc", "aupro", "image_f1_max", "image_ap", "pixel_ap",
                *(delta_column(m) for m in POINT_DELTA_METRICS)]
MEAN_FACTS = ["train_seconds", "steps", "epochs"]
# Thresholds are in each category's own score units: a mean of them means nothing (the rates they give do).
UNAVERAGED_OPERATING_POINTS = ("image_val_threshold", "pixel_val_threshold")


def operating_point_metrics(columns) -> list[str]:
    """The operating points (bench/operating_points.py) and their variant deltas among `columns` that a mean
    row averages: every rate, recall and F1 at every target, not the thresholds."""
    chosen = []
    for column in columns:
        parts = operating_point_parts(column)
        if parts and parts[2] in ("", "_delta") and parts[0] not in UNAVERAGED_OPERATING_POINTS:
            chosen.append(column)
    return chosen


def _numbers(values) -> np.ndarray:
    return pd.to_numeric(pd.Series(list(values)), errors="coerce").to_numpy(dtype=float)


def _category_mean_interval(group: pd.DataFrame, metric: str, level: float) -> tuple[float, float]:
    """The interval of the mean over categories for one seed, from the per-category intervals."""
    if f"{metric}_ci_low" not in group or f"{metric}_ci_high" not in group:
        return math.nan, math.nan
    from bench.stats import combine_intervals_normal

    lows, highs = _numbers(group.get(f"{metric}_ci_low", [])), _numbers(group.get(f"{metric}_ci_high", []))
    values = _numbers(group[metric])
    if len(lows) != len(values) or np.isnan(values).any() or np.isnan(lows).any() or np.isnan(highs).any():
        return math.nan, math.nan
    if len(values) == 1:  # one category: its own percentile interval, not a symmetric approximation of it
        return float(lows[0]), float(highs[0])
    return combine_intervals_normal(values, lows, highs, level)


def data_fingerprint_of_mean(group: pd.DataFrame) -> str:
    """The data a mean row averages over: a digest of its categories' fingerprints (empty when one lacks it), so
    that `bench compare` compares two mean rows only when they average over the same test sets."""
    if "data_fingerprint" not in group or group["data_fingerprint"].isna().any():
        return ""
    pairs = sorted({f"{c}={f}" for c, f in zip(group["category"], group["data_fingerprint"])})
    return "mean:" + hashlib.sha256("\n".join(pairs).encode()).hexdigest()[:16]


def mean_rows(records: list[dict]) -> list[dict]:
    frame = pd.DataFrame([r for r in records if r.get("suite") == "accuracy" and r.get("category") != MEAN_CATEGORY])
    if frame.empty:
        return []
    for column in ("train_minutes", "variant"):
        if column not in frame:
            frame[column] = None
    frame["variant"] = frame["variant"].fillna(REFERENCE_VARIANT)
    stage = frame["train_minutes"].astype(object).where(frame["train_minutes"].notna(), -1.0)
    rows = []
    for (model, dataset, minutes, variant), group in frame.groupby(["model", "dataset", stage, "variant"], sort=False):
        first = group.iloc[0]
        seeds = sorted({int(s) for s in group["seed"]})
        ok = group["status"] == "ok"
        row = {"job_id": run_folder.job_id("mean", model, dataset, variant, f"{minutes}min" if minutes != -1 else ""),
               "suite": "accuracy", "model": model, "family": first["family"], "variant": variant, "dataset": dataset,
               "category": MEAN_CATEGORY, "device": first["device"], "image_size": int(first["image_size"]),
               "batch_size": int(first["batch_size"]), "threads": int(first["threads"]), "seed": None,
               "seeds": ",".join(str(s) for s in seeds), "n_seeds": len(seeds),
               "train_minutes": None if minutes == -1 else minutes,
               "n_categories": int(group["category"].nunique())}
        if (group["status"] == "skipped").all():  # the variant cannot run here: the mean is skipped alike
            reasons = sorted({str(e) for e in group.get("error", pd.Series(dtype=object)).dropna() if str(e)})
            row.update(status="skipped", error="; ".join(reasons))
            rows.append(row)
            continue
        if not ok.all():
            failed = group[~ok]
            row.update(status="failed", error=f"{len(failed)} of {len(group)} category jobs failed "
                       f"({', '.join(sorted(set(failed['category'])))}): no mean over the rest")
            rows.append(row)
            continue
        row.update(status="ok", error="")
        level = float(pd.to_numeric(group.get("ci_level", pd.Series([0.95])), errors="coerce").dropna().iloc[0]) \
            if "ci_level" in group and group["ci_level"].notna().any() else 0.95
        by_seed = group.groupby("seed")
        undefined = []
        points = operating_point_metrics(group.columns)
        averaged = MEAN_METRICS + points
        for metric in averaged + MEAN_FACTS:
            if metric not in group or group[metric].isna().all():
                continue
            if group[metric].isna().any():  # undefined for some categories: a mean over the others would mislead
                missing = sorted(set(group.loc[group[metric].isna(), "category"]))
                undefined.append(f"{metric}: undefined for {', '.join(missing)}")
                continue
            per_seed = by_seed[metric].apply(lambda v: _numbers(v).mean()).to_numpy(dtype=float)
            row[metric] = float(np.mean(per_seed))
            if metric in averaged:
                row[f"{metric}_seed_std"] = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None
        for metric in (*INTERVAL_METRICS, *PAIRED_DELTA_COLUMNS, *points):
            if metric not in row:
                continue
            bounds = np.array([_category_mean_interval(g, metric, level) for _, g in by_seed])
            if np.isnan(bounds).any():
                continue
            # Every seed saw the same test images: the test-set interval of the seed mean is the mean interval
            # half-width around it (not narrower for more seeds: they share the test set's luck).
            per_seed = by_seed[metric].apply(lambda v: _numbers(v).mean()).to_numpy(dtype=float)
            below, above = float(np.mean(per_seed - bounds[:, 0])), float(np.mean(bounds[:, 1] - per_seed))
            low, high = row[metric] - below, row[metric] + above
            if metric in INTERVAL_METRICS or (metric in points and not metric.endswith("_delta")):
                low, high = max(low, 0.0), min(high, 1.0)  # a metric (a rate) lives in [0, 1]; a delta in [-1, 1]
            elif metric in points:
                low, high = max(low, -1.0), min(high, 1.0)
            row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = low, high
        if any(f"{m}_ci_low" in row for m in INTERVAL_METRICS):
            row.update(ci_level=level, ci_method="normal approximation from the per-category percentile-bootstrap "
                       "intervals (categories independent); with several seeds, their mean half-widths")
        reasons = {str(r) for r in group.get("undefined_metrics", pd.Series(dtype=object)).dropna() if str(r)}
        row["undefined_metrics"] = "; ".join(undefined + sorted(reasons))
        if "pretrained" in group:
            row["pretrained"] = group["pretrained"].iloc[0]
        fingerprint = data_fingerprint_of_mean(group)
        if fingerprint:
            row["data_fingerprint"] = fingerprint
        rows.append(row)
    return rows
