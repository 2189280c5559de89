"""Run directories: one JSON file per job, rewritten as the job's records arrive, and the assembled
`results.json` / `results.csv` (results schema 2, docs/design.md).

    RUN/records/<job_id>.json   {"schema": 2, "provenance": {...}, "job": {...}, "complete": bool, "records": [...]}
    RUN/results.json            {"schema": 2, "provenance": {...}, "records": [...]}
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

SCHEMA = 2
# The leading columns of every table, in this order; the rest follow as the probes name them.
LEADING_COLUMNS = ["suite", "model", "family", "variant", "dataset", "category", "train_minutes", "seed", "device",
                   "image_size", "batch_size", "threads", "status", "error"]


class RunFolderError(ValueError):
    """A run folder or results file that cannot be used; the message is one line naming the file."""


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


def read_json(path: Path, what: str = "results file") -> dict:
    """A JSON object from `path`, or a RunFolderError naming the file and what is wrong with it."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunFolderError(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunFolderError(f"{path}: unreadable {what} ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(payload, dict):
        raise RunFolderError(f"{path}: not a defectbench {what} (a JSON {type(payload).__name__}, not an object)")
    if payload.get("schema") != SCHEMA:
        found = payload.get("schema")
        raise RunFolderError(f"{path}: written by results schema {found!r}; this defectbench reads schema {SCHEMA} "
                             f"(re-run it, or use the defectbench version that wrote it)")
    return payload


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
    payload = read_json(path, "job record")
    if not isinstance(payload.get("records"), list) or "job" not in payload:
        raise RunFolderError(f"{path}: not a defectbench job record (no 'job' or 'records')")
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
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    payload = read_json(path)
    records = payload.get("records")
    if not isinstance(records, list):
        raise RunFolderError(f"{path}: not a defectbench results file (no list of records)")
    return dict(payload.get("provenance") or {}), records


def check_run_folder(run_dir: Path) -> None:
    """Refuse, before any work, an --out that is a file or a run folder written by another schema."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"--out {run_dir}: exists and is not a folder")
    results = run_dir / "results.json"
    if results.is_file():
        try:
            schema = json.loads(results.read_text()).get("schema")
        except (OSError, ValueError, AttributeError):
            return  # unreadable results are rewritten by the run; the job files are what resume reads
        if schema != SCHEMA:
            raise RunFolderError(f"--out {run_dir}: a run folder written by results schema {schema!r}; this "
                                 f"defectbench writes schema {SCHEMA}: choose another --out")
