"""Run folder I/O: one JSON file per job, rewritten as the job's records arrive, and the assembled
`results.json` / `results.csv` (what they hold: bench/schema.py).

    RUN/records/<job_id>.json   one job's records, `complete` once the job has ended
    RUN/results.json            every record of the run
    RUN/results.csv             one row per record, scalar columns only (raw sample lists stay in the JSON)

Every file is written to a temporary name and renamed into place: a crash mid-write never leaves a half
file that a resume or a report would read.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from bench.schema import LEADING_COLUMNS, SCHEMA, ResultsError, read_results, read_run_file


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


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, payload: dict) -> None:
    _atomic_write(Path(path), json.dumps(_clean(payload), indent=1, sort_keys=False))


# -- job files -------------------------------------------------------------------------------------------
def job_file(run_dir: Path, job: str) -> Path:
    return Path(run_dir) / "records" / f"{job}.json"


def write_job(run_dir: Path, job: str, spec: dict, records: list[dict], provenance: dict, complete: bool) -> Path:
    """The job's file with the records it has written so far; `complete` once the job has ended."""
    path = job_file(run_dir, job)
    write_json(path, {"schema": SCHEMA, "provenance": provenance, "job": spec, "job_id": job, "complete": complete,
                      "records": records})
    return path


def read_job(path: Path) -> dict:
    payload = read_run_file(path, "job record")
    if "job" not in payload:
        raise ResultsError(f"{path}: not a defectbench job record (no 'job')")
    return payload


def job_files(run_dir: Path) -> list[Path]:
    folder = Path(run_dir) / "records"
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


# -- assembled results -------------------------------------------------------------------------------------
def is_scalar(value: Any) -> bool:
    return not isinstance(value, (list, tuple, dict))


def to_frame(records: list[dict]) -> pd.DataFrame:
    rows = [{k: v for k, v in r.items() if is_scalar(v)} for r in records]
    frame = pd.DataFrame(rows)
    lead = [c for c in LEADING_COLUMNS if c in frame.columns]
    return frame[lead + [c for c in frame.columns if c not in lead]]


def write_results(run_dir: Path, records: list[dict], provenance: dict) -> pd.DataFrame:
    run_dir = Path(run_dir)
    write_json(run_dir / "results.json", {"schema": SCHEMA, "provenance": provenance, "records": records})
    frame = to_frame(records)
    _atomic_write(run_dir / "results.csv", frame.to_csv(index=False))
    return frame


def load_results(path: Path) -> tuple[dict, list[dict]]:
    """(provenance, records) of a run folder or a results.json file."""
    _, provenance, records = read_results(path)
    return dict(provenance), records


def check_run_folder(run_dir: Path) -> None:
    """Refuse, before any work, an --out that is a file or a run folder written by another schema."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ResultsError(f"--out {run_dir}: exists and is not a folder")
    results = run_dir / "results.json"
    if results.is_file():
        try:
            schema = json.loads(results.read_text()).get("schema")
        except (OSError, ValueError, AttributeError):
            return  # unreadable results are rewritten by the run; the job files are what resume reads
        if schema != SCHEMA:
            raise ResultsError(f"--out {run_dir}: a run folder written by results schema {schema!r}; this "
                               f"defectbench writes schema {SCHEMA}: choose another --out")
