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

# Kinds of finding that used to pass silently (issue 21). Each fails unless the option its note names accepts it,
# and the summaries list the failing ones first.
MISSING = "missing"  # a record of BASE that NEW does not have (--allow-missing)
DATA_CHANGE = "data change"  # accuracy on another (or an unknown) data fingerprint (--allow-data-change)
SKIPPED = "skipped"  # ok in BASE, skipped in NEW (--allow-skipped)
NO_SAMPLES = "no samples"  # latency samples in BASE, none in NEW (--allow-missing)
SILENT_KINDS = (MISSING, DATA_CHANGE, SKIPPED, NO_SAMPLES)


def option_note(option: str, allowed: bool) -> str:
    """The part of a note that names the option accepting a finding."""
    return f"accepted by {option}" if allowed else f"{option} accepts it"


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
    kind: str = ""  # one of SILENT_KINDS, or ""

    def as_dict(self) -> dict:
        return asdict(self)
