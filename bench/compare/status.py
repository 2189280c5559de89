"""Which jobs ran on each side and how they ended: records only in one run, and failures in NEW."""
from __future__ import annotations

from bench.compare.findings import FAILED, IMPROVEMENT, NOT_JUDGED, ONLY_IN_BASE, ONLY_IN_NEW, Finding


def only_in_one(job: str, record: dict, side: str) -> Finding:
    """A record present in one run only: listed, not judged (the runs measured different sets)."""
    status = record.get("status", "ok")
    if side == "new" and status == "failed":
        return Finding(job, "status", "status", None, status, None, None, FAILED, True,
                       f"only in NEW, and failed: {record.get('error') or '?'}")
    verdict = ONLY_IN_BASE if side == "base" else ONLY_IN_NEW
    return Finding(job, "status", "status", status if side == "base" else None, status if side == "new" else None,
                   None, None, verdict, False, "not compared")


def compare_status(job: str, base: dict, new: dict) -> list[Finding]:
    """[] when both ended ok; else one finding. A job that failed in NEW fails the comparison unless it failed
    in BASE too (then it is listed: nothing got worse)."""
    a, b = base.get("status", "ok"), new.get("status", "ok")
    if a == "ok" and b == "ok":
        return []
    if b == "failed":
        both = a == "failed"
        return [Finding(job, "status", "status", a, b, None, None, FAILED, not both,
                        ("failed in both; " if both else "") + f"NEW: {new.get('error') or '?'}")]
    if a == "failed" and b == "ok":
        return [Finding(job, "status", "status", a, b, None, None, IMPROVEMENT, False, "failed in BASE, ok in NEW")]
    return [Finding(job, "status", "status", a, b, None, None, NOT_JUDGED, False,
                    f"{'BASE' if a != 'ok' else 'NEW'} {a if a != 'ok' else b}: "
                    f"{(base if a != 'ok' else new).get('error') or ''}".strip())]
