"""Which jobs ran on each side and how they ended: records only in one run, and failures or skips in NEW.

Nothing that BASE measured disappears silently: a record missing in NEW fails unless --allow-missing, a variant
ok in BASE and skipped in NEW fails unless --allow-skipped, and one that failed in NEW always fails."""
from __future__ import annotations

from bench.compare.findings import (FAILED, IMPROVEMENT, MISSING, NOT_JUDGED, ONLY_IN_BASE, ONLY_IN_NEW, SKIPPED,
                                    Finding, option_note)


def only_in_one(job: str, record: dict, side: str, allow_missing: bool = False) -> Finding:
    """A record present in one run only. Missing in NEW: fails unless `allow_missing` (the gate would otherwise
    pass a run that dropped a model or variant); only in NEW: listed, not judged (a new measurement)."""
    status = record.get("status", "ok")
    if side == "new" and status == "failed":
        return Finding(job, "status", "status", None, status, None, None, FAILED, True,
                       f"only in NEW, and failed: {record.get('error') or '?'}")
    if side == "base":
        return Finding(job, "status", "status", status, None, None, None, ONLY_IN_BASE, not allow_missing,
                       f"missing in NEW (BASE: {status}); {option_note('--allow-missing', allow_missing)}", MISSING)
    return Finding(job, "status", "status", None, status, None, None, ONLY_IN_NEW, False,
                   "new in NEW: not compared")


def compare_status(job: str, base: dict, new: dict, allow_skipped: bool = False) -> list[Finding]:
    """[] when both ended ok; else one finding. A job that failed in NEW fails the comparison unless it failed
    in BASE too (then it is listed: nothing got worse). One ok in BASE and skipped in NEW fails unless
    `allow_skipped` (a variant that stopped running here is not a pass)."""
    a, b = base.get("status", "ok"), new.get("status", "ok")
    if a == "ok" and b == "ok":
        return []
    if b == "failed":
        both = a == "failed"
        return [Finding(job, "status", "status", a, b, None, None, FAILED, not both,
                        ("failed in both; " if both else "") + f"NEW: {new.get('error') or '?'}")]
    if a == "failed" and b == "ok":
        return [Finding(job, "status", "status", a, b, None, None, IMPROVEMENT, False, "failed in BASE, ok in NEW")]
    if a == "ok":  # skipped (or any other status that is neither ok nor failed) in NEW
        reason = new.get("error") or "no reason given"
        return [Finding(job, "status", "status", a, b, None, None, NOT_JUDGED, not allow_skipped,
                        f"ok in BASE, {b} in NEW: {reason}; {option_note('--allow-skipped', allow_skipped)}",
                        SKIPPED)]
    return [Finding(job, "status", "status", a, b, None, None, NOT_JUDGED, False,
                    f"{'BASE' if a != 'ok' else 'NEW'} {a if a != 'ok' else b}: "
                    f"{(base if a != 'ok' else new).get('error') or ''}".strip())]
