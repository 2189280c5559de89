"""Exact fields: counts and sizes that a deterministic program reproduces to the byte. Any change is listed.
A changed parameter count fails unless --allow-param-change (a size change never excuses it: the model itself
changed); changed MACs or file sizes fail unless --allow-size-change; a parity verdict turned to fail always
fails. Next to a change the note names the dependency versions that differ between the runs."""
from __future__ import annotations

import math

from bench.compare.findings import CHANGED, IMPROVEMENT, REGRESSION, SAME, Finding, option_note

PARAM_FIELDS = ("params", "trainable_params")  # the model's own size: --allow-param-change
SIZE_FIELDS = PARAM_FIELDS + ("gmacs", "model_mb", "onnx_mb")  # the rest: --allow-size-change
PARITY_FIELD = "parity"


def _empty(value) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _equal(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)  # floats read back from JSON: equal up to printing
    return a == b


def compare_exact(job: str, base: dict, new: dict, allow_size_change: bool, version_note: str, *,
                  allow_param_change: bool = False, recorded_by_both: bool = False) -> list[Finding]:
    """The exact fields of two records. `recorded_by_both`: judge only the sizes both records carry, and no parity
    (a skipped variant's record keeps the model's sizes but measured nothing of its own)."""
    found = []
    for name in SIZE_FIELDS:
        a, b = base.get(name), new.get(name)
        if (_empty(a) and _empty(b)) or (recorded_by_both and (_empty(a) or _empty(b))):
            continue
        if not _empty(a) and not _empty(b) and _equal(a, b):
            found.append(Finding(job, "exact", name, a, b, 0.0, None, SAME, False))
            continue
        change = (b / a - 1.0) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a else None
        allowed = allow_param_change if name in PARAM_FIELDS else allow_size_change
        notes = [option_note("--allow-param-change" if name in PARAM_FIELDS else "--allow-size-change", allowed)]
        if version_note:
            notes.insert(0, f"versions differ: {version_note}")
        if _empty(a) or _empty(b):
            notes.insert(0, f"absent in {'BASE' if _empty(a) else 'NEW'}")
        found.append(Finding(job, "exact", name, a, b, change, None, CHANGED, not allowed, "; ".join(notes)))
    if recorded_by_both:
        return found
    a, b = base.get(PARITY_FIELD), new.get(PARITY_FIELD)
    if not (_empty(a) and _empty(b)):
        detail = f"max abs diff {new.get('parity_max_abs_diff')}" if new.get("parity_max_abs_diff") is not None else ""
        if a == b:
            found.append(Finding(job, "exact", PARITY_FIELD, a, b, None, None, SAME, False))
        elif b == "fail" or _empty(b):
            # a parity that stops passing is a broken export, whatever the sizes may do
            note = "; ".join(x for x in (detail, f"versions differ: {version_note}" if version_note else "") if x)
            found.append(Finding(job, "exact", PARITY_FIELD, a, b, None, None, REGRESSION, True, note))
        else:
            found.append(Finding(job, "exact", PARITY_FIELD, a, b, None, None, IMPROVEMENT, False, detail))
    return found
