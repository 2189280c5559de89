"""`bench run --dry-run`: the plan, what the run folder already holds, and an estimate of the time left."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bench.jobs.spec import JobSpec


def _earlier_seconds(existing: dict[str, dict]) -> dict[tuple, list[float]]:
    """Seconds of earlier jobs by (kind, model, image size), whatever their settings: the basis of estimates."""
    seen: dict[tuple, list[float]] = {}
    for payload in existing.values():
        job = payload.get("job") or {}
        records = payload.get("records") or []
        if not records or not payload.get("complete"):
            continue
        seconds = max(float(r.get("seconds") or 0.0) for r in records)
        seen.setdefault((job.get("kind"), job.get("model"), job.get("image_size")), []).append(seconds)
    return seen


def estimate_seconds(spec: JobSpec, earlier: dict[tuple, list[float]]) -> float:
    """The median of earlier jobs of the same model, kind and size; a minute budget is a floor for training."""
    past = earlier.get((spec.kind, spec.model, spec.image_size))
    guess = float(np.median(past)) if past else math.nan
    timed = [m for m in spec.stages if m is not None]
    if spec.kind == "accuracy" and timed and len(timed) == len(spec.stages):
        floor = max(timed) * 60.0
        guess = floor if math.isnan(guess) else max(guess, floor)
    return guess


def describe_plan(specs: list[JobSpec], existing: dict[str, dict], out: Path, quiet: bool = False) -> pd.DataFrame:
    earlier = _earlier_seconds(existing)
    prefixes = {job.rsplit("__", 1)[0]: job for job in existing}
    rows = []
    for spec in specs:
        payload = existing.get(spec.job_id)
        if payload and payload.get("complete"):
            state = "done"
        elif payload:
            state = "interrupted: reruns"
        elif spec.prefix in prefixes:
            state = "other settings: reruns"
        else:
            state = "to run"
        rows.append({"job_id": spec.job_id, "kind": spec.kind, "model": spec.model, "category": spec.category,
                     "seed": spec.seed, "stages": ",".join("final" if m is None else f"{m:g}min" for m in spec.stages),
                     "state": state, "estimate_s": 0.0 if state == "done" else estimate_seconds(spec, earlier),
                     "timeout_s": spec.timeout})
    frame = pd.DataFrame(rows)
    if not quiet:
        left = frame[frame["state"] != "done"]
        known = left["estimate_s"].dropna()
        print(frame.drop(columns=["job_id"]).to_string(index=False, na_rep="?"))
        total = f"about {known.sum() / 60:.1f} min" if len(known) == len(left) else (
            f"at least {known.sum() / 60:.1f} min ({len(left) - len(known)} job(s) without an earlier record to go by)")
        print(f"\n{len(frame)} jobs in {out}: {int((frame['state'] == 'done').sum())} done, {len(left)} to run, {total}",
              file=sys.stdout)
    return frame
