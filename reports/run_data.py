"""The report's data: a run's results.json (read by bench/schema.py) split into the views the figures and
tables need.

No model and no torch here. A record is a plain dict; NaN, null and empty strings all mean "not measured".
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# ORT_REFERENCE_VARIANT, is_present and number are imported from here by the report's modules.
from bench.schema import (MEAN_CATEGORY, ORT_REFERENCE_VARIANT, PAIRED_DELTA_COLUMNS, REFERENCE_VARIANT, VARIANT_ORDER,
                          is_present, number, read_results)


def unique(items) -> list:
    seen: list = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def variant_of(record: dict) -> str:
    return str(record.get("variant") or REFERENCE_VARIANT)


def batch_of(record: dict) -> int | None:
    value = number(record.get("batch_size"))
    return None if math.isnan(value) else int(value)


def variant_sort_key(variant: str, seen: list[str]) -> tuple[int, int]:
    if variant in VARIANT_ORDER:
        return (0, VARIANT_ORDER.index(variant))
    return (1, seen.index(variant) if variant in seen else len(seen))


def interval(record: dict, metric: str) -> tuple[float, float, float]:
    """(value, ci_low, ci_high) of a metric; the bounds are NaN where the record has no interval."""
    return (number(record.get(metric)), number(record.get(f"{metric}_ci_low")), number(record.get(f"{metric}_ci_high")))


def undefined_reasons(record: dict, key: str = "undefined_metrics") -> dict[str, str]:
    """metric -> why it is empty, from the record's `undefined_metrics` text (or another column of that form,
    e.g. `operating_points_undefined`).

    The runner writes clauses like 'pixel_auroc, pixel_ap, aupro: the test set has no defect mask', several
    joined by '; '."""
    text = record.get(key)
    if isinstance(text, dict):  # tolerated: {metric: reason}
        return {str(k): str(v) for k, v in text.items()}
    if not isinstance(text, str) or not text.strip():
        return {}
    reasons: dict[str, str] = {}
    for clause in text.split(";"):
        names, _, reason = clause.partition(":")
        reason = reason.strip() or "undefined for this test set"
        for name in names.split(","):
            if name.strip():
                reasons[name.strip()] = reason
    return reasons


def image_scores(record: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(labels [N] 0 good / 1 defective, scores [N]) of every test image of an accuracy record (its `labels`
    and `scores` lists), or None where the record does not keep them or they do not match."""
    labels, scores = record.get("labels"), record.get("scores")
    if not isinstance(labels, (list, tuple)) or not isinstance(scores, (list, tuple)) or not labels:
        return None
    if len(labels) != len(scores):
        return None
    values = np.array([number(s) for s in scores], dtype=np.float64)
    if not np.isfinite(values).all():
        return None
    return np.asarray(labels, dtype=np.int64), values


def latency_percentiles(record: dict, quantiles=(50, 90, 99)) -> tuple[float, ...]:
    """Latency percentiles (ms) of one record: the stored latency_ms_p50/p90/p99 where present, otherwise (and
    for any other quantile, e.g. 10) computed from the raw latency_samples_ms."""
    stored = [number(record.get(f"latency_ms_p{q}")) for q in quantiles]
    if not any(math.isnan(v) for v in stored):
        return tuple(stored)
    values = [number(s) for s in record.get("latency_samples_ms") or []]
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return tuple(stored)
    computed = np.percentile(np.asarray(values), list(quantiles))
    return tuple(s if not math.isnan(s) else float(c) for s, c in zip(stored, computed))


@dataclass
class RunView:
    """One run's provenance and records, split the ways the report looks at them."""

    run_dir: Path
    provenance: dict
    records: list[dict]
    models: list[str] = field(default_factory=list)  # every model named in the run, in record order

    # -- statuses ---------------------------------------------------------------------------------------
    @property
    def failed(self) -> list[dict]:
        """Records that did not finish: `failed`, and any status this report does not know."""
        return [r for r in self.records if r.get("status") not in ("ok", "skipped")]

    @property
    def skipped(self) -> list[dict]:
        """Variants the device or runtime cannot do, and batch sizes past an out-of-memory: not failures."""
        return [r for r in self.records if r.get("status") == "skipped"]

    # -- profile ----------------------------------------------------------------------------------------
    @property
    def profile(self) -> list[dict]:
        """The profile records that finished (every variant and batch size)."""
        return [r for r in self.records if r.get("suite") == "profile" and r.get("status") == "ok"]

    def variants(self) -> list[str]:
        """Every variant named in the run, in the runner's order."""
        seen = unique(variant_of(r) for r in self.records)
        return sorted(seen, key=lambda v: variant_sort_key(v, seen))

    def headline_batch(self) -> int | None:
        """The batch size the per-model views compare at: the one most models were measured at (the smallest
        on a tie), so that a sweep over one model does not move the others' numbers."""
        per_model = {(r.get("model"), batch_of(r)) for r in self.profile if batch_of(r) is not None}
        counts = Counter(batch for _, batch in per_model)
        if not counts:
            return None
        return min(counts, key=lambda b: (-counts[b], b))

    def model_batch(self, model: str) -> int | None:
        """The batch size a model's variants are compared at: the headline one, else the model's smallest."""
        batches = sorted({batch_of(r) for r in self.profile if r.get("model") == model and batch_of(r) is not None})
        if not batches:
            return None
        headline = self.headline_batch()
        return headline if headline in batches else batches[0]

    def profile_record(self, model: str, variant: str = REFERENCE_VARIANT, batch: int | None = None) -> dict | None:
        """The profile record (any status) of a model's variant at `batch` (default: model_batch)."""
        batch = self.model_batch(model) if batch is None else batch
        mine = [r for r in self.records if r.get("suite") == "profile" and r.get("model") == model and variant_of(r) == variant]
        exact = [r for r in mine if batch_of(r) == batch]
        if exact:
            return exact[0]
        if batch is None or not any(batch_of(r) is not None for r in mine):
            # A variant recorded without a batch size (e.g. skipped before anything ran) still answers.
            loose = [r for r in mine if batch_of(r) is None] or mine
            return loose[0] if loose else None
        return None

    def model_facts(self, model: str) -> dict:
        """The model-level profile facts (params, MACs, sizes, training step): the same in every variant row,
        so from the first row that has each."""
        facts: dict = {}
        for record in self.records:
            if record.get("suite") != "profile" or record.get("model") != model:
                continue
            for key, value in record.items():
                if key not in facts or (not is_present(facts[key]) and is_present(value)):
                    facts[key] = value
        return facts

    def sweeps(self) -> dict[tuple[str, str], list[dict]]:
        """(model, variant) -> its records over batch sizes (any status, by rising batch size), for every
        model measured at more than one batch size."""
        swept: dict[tuple[str, str], list[dict]] = {}
        for model in self.models:
            mine = [r for r in self.records if r.get("suite") == "profile" and r.get("model") == model and batch_of(r) is not None]
            if len({batch_of(r) for r in mine}) < 2:
                continue
            for variant in unique(variant_of(r) for r in mine):
                rows = sorted((r for r in mine if variant_of(r) == variant), key=batch_of)
                if len(rows) > 1:
                    swept[(model, variant)] = rows
        order = self.variants()
        return dict(sorted(swept.items(), key=lambda kv: (self.models.index(kv[0][0]), order.index(kv[0][1]))))

    # -- accuracy ---------------------------------------------------------------------------------------
    @property
    def accuracy(self) -> list[dict]:
        """The finished accuracy rows (every variant and seed); of a learning curve (one row per
        --train-minutes stage) only the last stage, i.e. each model as it was trained in the end."""
        ok = [r for r in self.records if r.get("suite") == "accuracy" and r.get("status") == "ok"]
        last: dict[tuple, dict] = {}
        for r in ok:
            key = (r.get("model"), r.get("dataset", ""), r.get("category", ""), str(r.get("seed", "")), variant_of(r))
            if key not in last or _stage(r) >= _stage(last[key]):
                last[key] = r
        keep = {id(r) for r in last.values()}
        return [r for r in ok if id(r) in keep]

    def reference_accuracy(self) -> list[dict]:
        """The accuracy rows of the models as trained (torch-fp32), per category and seed, and mean rows."""
        return [r for r in self.accuracy if variant_of(r) == REFERENCE_VARIANT]

    @property
    def datasets(self) -> list[str]:
        return unique(r.get("dataset", "") for r in self.accuracy)

    def categories(self) -> list[tuple[str, str]]:
        """(dataset, category) pairs of the per-category rows, in record order; the mean rows excluded."""
        return unique((r.get("dataset", ""), r.get("category", "")) for r in self.accuracy if r.get("category") != MEAN_CATEGORY)

    def category_rows(self, model: str, dataset: str, category: str, variant: str = REFERENCE_VARIANT) -> list[dict]:
        """One model's finished rows of one category and variant: one per seed."""
        return [r for r in self.accuracy if r.get("model") == model and r.get("dataset", "") == dataset
                and r.get("category") == category and variant_of(r) == variant]

    def mean_accuracy(self, variant: str = REFERENCE_VARIANT) -> list[dict]:
        """One row per (model, dataset) for a variant: the stored mean row, else, when every category of the
        dataset finished, the plain mean of its category rows (over seeds too; no interval)."""
        rows = []
        for model in self.models:
            for dataset in self.datasets:
                mine = [r for r in self.accuracy if r["model"] == model and r.get("dataset", "") == dataset and variant_of(r) == variant]
                stored = [r for r in mine if r.get("category") == MEAN_CATEGORY]
                if stored:
                    rows.append(stored[0])
                elif mine and {r.get("category") for r in mine} >= {c for d, c in self.categories() if d == dataset}:
                    # Only a mean over every category of the dataset: a mean over the ones that did not fail would flatter.
                    row = {"model": model, "family": mine[0].get("family", ""), "dataset": dataset, "category": MEAN_CATEGORY,
                           "variant": variant, "suite": "accuracy", "status": "ok"}
                    for key in ("image_auroc", "pixel_auroc", "aupro", *PAIRED_DELTA_COLUMNS):
                        values = [number(r.get(key)) for r in mine]
                        row[key] = float(np.nanmean(values)) if any(not math.isnan(v) for v in values) else math.nan
                    rows.append(row)
        return rows

    def mean_row(self, model: str, dataset: str, variant: str = REFERENCE_VARIANT) -> dict | None:
        return next((r for r in self.mean_accuracy(variant) if r["model"] == model and r.get("dataset", "") == dataset), None)

    # -- labels -----------------------------------------------------------------------------------------
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
        """Device and image size (and the compared batch size for timings) for a figure's subtitle."""
        parts = [self.device_label(), self.image_size_label()]
        if suite == "profile":
            headline = self.headline_batch()
            if headline is not None:
                parts.append(f"batch {headline}")
        return " | ".join(parts)


def _stage(record: dict) -> float:
    minutes = number(record.get("train_minutes"))
    return math.inf if math.isnan(minutes) else minutes


def load_run(path: Path) -> RunView:
    """Read a run: RUN_DIR/results.json (or the path of a results.json itself).

    Raises ResultsError (a ValueError) with one line naming the file and what is wrong when there is no
    results.json or it is not a defectbench results file of this schema."""
    results, provenance, records = read_results(path)
    records = [dict(r) for r in records]
    for record in records:
        record.setdefault("status", "ok")
        record.setdefault("error", "")
    run = RunView(run_dir=results.parent, provenance=dict(provenance), records=records)
    run.models = unique(r.get("model", "?") for r in records)
    return run
