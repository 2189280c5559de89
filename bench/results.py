"""Run directories: one self-contained JSON file per job, written when the job ends, and the assembled
`results.json` / `results.csv`.

    RUN/records/<job_id>.json   {"schema": 1, "provenance": {...}, "record": {...}}  (raw samples included)
    RUN/results.json            {"schema": 1, "provenance": {...}, "records": [...]}
    RUN/results.csv             one row per record, scalar columns only (raw sample lists stay in the JSON)
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

SCHEMA = 1
# The leading columns of every table, in this order; the rest follow as the probes name them.
LEADING_COLUMNS = ["suite", "model", "family", "dataset", "category", "device", "image_size", "batch_size",
                   "threads", "status", "error"]


def job_id(*parts: Any) -> str:
    return "__".join(re.sub(r"[^A-Za-z0-9_.-]+", "-", str(p)) for p in parts if p not in (None, ""))


def _clean(value: Any) -> Any:
    # JSON has no NaN: store it as null, so the files stay valid for any reader.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return _clean(value.item())
    return value


def _write_json(path: Path, payload: dict) -> None:
    # Write then rename: a crash mid-write never leaves a half record that a resume would trust.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_clean(payload), indent=1, sort_keys=False))
    os.replace(tmp, path)


def write_record(run_dir: Path, record: dict, provenance: dict) -> Path:
    path = Path(run_dir) / "records" / f"{record['job_id']}.json"
    _write_json(path, {"schema": SCHEMA, "provenance": provenance, "record": record})
    return path


def read_record(path: Path) -> dict:
    payload = json.loads(Path(path).read_text())
    if payload.get("schema") != SCHEMA:
        raise ValueError(f"{path}: unknown results schema {payload.get('schema')!r} (this defectbench reads {SCHEMA})")
    return payload["record"]


def finished_jobs(run_dir: Path) -> dict[str, dict]:
    """Records already written in this run directory, by job id (for resuming a run)."""
    folder = Path(run_dir) / "records"
    return {p.stem: read_record(p) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


def is_scalar(value: Any) -> bool:
    return not isinstance(value, (list, tuple, dict))


def to_frame(records: list[dict]) -> pd.DataFrame:
    rows = [{k: v for k, v in r.items() if is_scalar(v)} for r in records]
    frame = pd.DataFrame(rows)
    lead = [c for c in LEADING_COLUMNS if c in frame.columns]
    return frame[lead + [c for c in frame.columns if c not in lead]]


def write_results(run_dir: Path, records: list[dict], provenance: dict) -> pd.DataFrame:
    run_dir = Path(run_dir)
    _write_json(run_dir / "results.json", {"schema": SCHEMA, "provenance": provenance, "records": records})
    frame = to_frame(records)
    frame.to_csv(run_dir / "results.csv", index=False)
    return frame


def load_results(run_dir: Path) -> tuple[dict, list[dict]]:
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results.json in this run directory")
    payload = json.loads(path.read_text())
    if payload.get("schema") != SCHEMA:
        raise ValueError(f"{path}: unknown results schema {payload.get('schema')!r} (this defectbench reads {SCHEMA})")
    return payload["provenance"], payload["records"]
