"""One finding per thing judged: the rows of a comparison."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Verdicts, from the reader's side. A finding `fails` when it makes `bench compare` exit 1.
SAME = "same"  # an exact field, unchanged
CHANGED = "changed"  # an exact field that differs
REGRESSION = "regression"  # worse, significantly and by more than the tolerance
IMPROVEMENT = "improvement"  # better, significantly and by more than the tolerance
WITHIN_NOISE = "within noise"  # a statistical check that found no change that counts
NOT_JUDGED = "not judged"  # measured on both sides, but nothing to judge it by (no interval, too few samples)
NOT_COMPARABLE = "not comparable"  # the two sides did not measure the same thing: never a pass
REPRODUCED = "reproduced"  # same settings, code and machine: identical numbers, as promised
NON_DETERMINISTIC = "non-deterministic"  # same settings, code and machine, different numbers
FAILED = "failed"  # the job failed in NEW
ONLY_IN_BASE = "only in BASE"
ONLY_IN_NEW = "only in NEW"


@dataclass
class Finding:
    job: str  # the records' identity, readable (load.describe_key)
    check: str  # "status" | "exact" | "accuracy" | "determinism" | "latency"
    field: str  # what was compared: "params", "image_auroc", "latency p50", ...
    base: Any  # BASE's value (a number, a verdict string, or None)
    new: Any
    change: float | None  # latency and sizes: relative (new/base - 1); accuracy: absolute (new - base)
    p_value: float | None
    verdict: str
    fails: bool  # counts toward exit status 1
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)
