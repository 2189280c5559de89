"""Reading a run's results.json into the tables the figures and the report need (no model, no torch)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MEAN_CATEGORY = "mean"


def number(value: Any) -> float:
    """A record value as a float; missing, empty, None and non-numeric values become NaN."""
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


def is_present(value: Any) -> bool:
    return not math.isnan(number(value))


@dataclass
class Run:
    """One run's provenance and records, split the ways the report looks at them."""

    run_dir: Path
    provenance: dict
    records: list[dict]
    models: list[str] = field(default_factory=list)  # every model named in the run, in record order

    @property
    def profile(self) -> list[dict]:
        return [r for r in self.records if r.get("suite") == "profile" and r.get("status") == "ok"]

    @property
    def accuracy(self) -> list[dict]:
        """The finished accuracy rows; of a learning curve (one row per --train-minutes stage) only the last
        stage of each (model, dataset, category), i.e. each model as it was trained in the end."""
        ok = [r for r in self.records if r.get("suite") == "accuracy" and r.get("status") == "ok"]
        last: dict[tuple, dict] = {}
        for r in ok:
            key = (r.get("model"), r.get("dataset", ""), r.get("category", ""))
            if key not in last or _stage(r) >= _stage(last[key]):
                last[key] = r
        keep = {id(r) for r in last.values()}
        return [r for r in ok if id(r) in keep]

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records if r.get("status") != "ok"]

    @property
    def datasets(self) -> list[str]:
        return unique(r.get("dataset", "") for r in self.accuracy)

    def categories(self) -> list[tuple[str, str]]:
        """(dataset, category) pairs of the per-category rows, in record order; the mean rows excluded."""
        return unique((r.get("dataset", ""), r.get("category", "")) for r in self.accuracy if r.get("category") != MEAN_CATEGORY)

    def mean_accuracy(self) -> list[dict]:
        """One row per (model, dataset): the stored mean row, else the mean of the category rows."""
        rows = []
        for model in self.models:
            for dataset in self.datasets:
                mine = [r for r in self.accuracy if r["model"] == model and r.get("dataset", "") == dataset]
                stored = [r for r in mine if r.get("category") == MEAN_CATEGORY]
                if stored:
                    rows.append(stored[0])
                elif mine and {r.get("category") for r in mine} >= {c for d, c in self.categories() if d == dataset}:
                    # Only a mean over every category of the dataset: a mean over the ones that did not fail would flatter.
                    row = {"model": model, "family": mine[0].get("family", ""), "dataset": dataset, "category": MEAN_CATEGORY}
                    for key in ("image_auroc", "pixel_auroc", "aupro"):
                        values = [number(r.get(key)) for r in mine]
                        row[key] = float(np.nanmean(values)) if any(not math.isnan(v) for v in values) else math.nan
                    rows.append(row)
        return rows

    def device_label(self) -> str:
        device = self.provenance.get("device") or ", ".join(unique(str(r.get("device")) for r in self.records if r.get("device")))
        hardware = self.provenance.get("gpu") if str(device).startswith("cuda") else self.provenance.get("cpu")
        threads = self.provenance.get("threads")
        parts = [str(device or "unknown device")]
        if hardware:
            parts.append(str(hardware))
        if threads not in (None, ""):
            parts.append(f"{threads} thread{'s' if str(threads) != '1' else ''}")
        return ", ".join(parts)

    def image_size_label(self) -> str:
        sizes = sorted({int(number(r.get("image_size"))) for r in self.records if is_present(r.get("image_size"))})
        if not sizes:
            return "image size unknown"
        if len(sizes) == 1:
            return f"{sizes[0]}x{sizes[0]} px"
        return "images " + ", ".join(f"{s}" for s in sizes) + " px"

    def subtitle(self, suite: str | None = None) -> str:
        """Device and image size (and batch size for timings) for a figure's subtitle."""
        parts = [self.device_label(), self.image_size_label()]
        if suite == "profile":
            batches = sorted({int(number(r.get("batch_size"))) for r in self.profile if is_present(r.get("batch_size"))})
            if batches:
                parts.append("batch " + ", ".join(str(b) for b in batches))
        return " | ".join(parts)


def _stage(record: dict) -> float:
    minutes = number(record.get("train_minutes"))
    return math.inf if math.isnan(minutes) else minutes


def unique(items) -> list:
    seen: list = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def load_run(run_dir: Path) -> Run:
    """Read RUN/results.json. NaN, null and empty strings all count as 'not measured'."""
    run_dir = Path(run_dir)
    data = json.loads((run_dir / "results.json").read_text())
    schema = data.get("schema")
    if schema != 1:
        raise ValueError(f"{run_dir / 'results.json'}: schema {schema!r}, this report reads schema 1")
    records = [dict(r) for r in data.get("records", [])]
    for record in records:
        record.setdefault("status", "ok")
        record.setdefault("error", "")
    run = Run(run_dir=run_dir, provenance=dict(data.get("provenance") or {}), records=records)
    run.models = unique(r.get("model", "?") for r in records)
    return run


def percentiles_from_samples(record: dict, prefix: str) -> tuple[float, float, float]:
    """(p50, p90, p99) of one latency series, from the stored fields or else from the raw samples.

    prefix is 'latency_ms' (PyTorch) or 'ort_latency_ms' (ONNX Runtime)."""
    stored = tuple(number(record.get(f"{prefix}_p{q}")) for q in (50, 90, 99))
    if not any(math.isnan(v) for v in stored):
        return stored  # type: ignore[return-value]
    samples = record.get({"latency_ms": "latency_samples_ms", "ort_latency_ms": "ort_latency_samples_ms"}[prefix])
    values = [number(s) for s in samples or []]
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return stored  # type: ignore[return-value]
    computed = np.percentile(np.asarray(values), [50, 90, 99])
    return tuple(s if not math.isnan(s) else float(c) for s, c in zip(stored, computed))  # type: ignore[return-value]
