"""Reading the two sides of a comparison: a defectbench run (bench/schema.py) or a pytest-benchmark JSON file.

Whatever cannot be compared is refused here, before any judging, with one line naming the file:
a missing path, a file that is not JSON, another results schema, a run without records, a pytest-benchmark
file saved without its raw timings, two records that claim the same identity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from bench.schema import IDENTITY_COLUMNS, REFERENCE_VARIANT, ResultsError, check_payload, parse_json

# What makes two records the same measurement: everything else may differ between the runs.
MATCH_KEYS = IDENTITY_COLUMNS


class UnusableInput(ResultsError):
    """An input that cannot be compared; the message is one line naming the file and what is wrong.

    The reader of run files (bench.schema) raises its ResultsError; load_run passes it on as this, so that
    `bench compare` has one error to catch."""


@dataclass
class LoadedRun:
    """One side of a comparison as loaded: where it came from, its provenance and its records (plain dicts)."""

    source: Path
    kind: str  # "defectbench" | "pytest-benchmark"
    provenance: dict
    records: list[dict] = field(default_factory=list)

    def by_key(self) -> dict[tuple, dict]:
        """The records by their identity (MATCH_KEYS); two records with one identity make the run unusable."""
        out: dict[tuple, dict] = {}
        for record in self.records:
            key = record_key(record)
            if key in out:
                raise UnusableInput(f"{self.source}: two records share the identity {describe_key(key)}")
            out[key] = record
        return out


def _normal(name: str, value):
    """One spelling per value, so that 64, 64.0 and "64" match and absent, None, "" and NaN all read as empty."""
    if name == "variant" and value in (None, ""):
        return REFERENCE_VARIANT
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return None if math.isinf(value) else (int(value) if float(value).is_integer() else float(value))
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else number
    return str(value)


def record_key(record: dict) -> tuple:
    return tuple(_normal(k, record.get(k)) for k in MATCH_KEYS)


def describe_key(key: tuple) -> str:
    """A short readable identity: `profile unet torch-fp32 64px b2 cpu`, `accuracy unet synthetic/nut seed 0`."""
    parts = dict(zip(MATCH_KEYS, key))
    words = [str(parts["suite"] or ""), str(parts["model"] or "")]
    if parts["suite"] != "pytest-benchmark":
        words.append(str(parts["variant"]))
    if parts["dataset"] or parts["category"]:
        words.append(f"{parts['dataset'] or ''}/{parts['category'] or ''}")
    if parts["train_minutes"] is not None:
        words.append(f"{parts['train_minutes']}min")
    if parts["seed"] is not None and parts["suite"] == "accuracy":
        words.append(f"seed {parts['seed']}")
    if parts["image_size"] is not None:
        words.append(f"{parts['image_size']}px")
    if parts["batch_size"] is not None:
        words.append(f"b{parts['batch_size']}")
    if parts["device"]:
        words.append(str(parts["device"]))
    return " ".join(w for w in words if w)


def _read_json(path: Path):
    try:
        return parse_json(path, "results file")
    except ResultsError as exc:
        raise UnusableInput(str(exc)) from None


def _records_of(path: Path, payload) -> tuple[dict, list]:
    """Provenance and records of a schema-2 results file or job file."""
    if isinstance(payload, dict) and "schema" not in payload:
        raise UnusableInput(f"{path}: neither a defectbench results file (no 'schema') nor a pytest-benchmark "
                            f"file (no 'benchmarks')")
    try:
        payload = check_payload(path, payload)
    except ResultsError as exc:
        raise UnusableInput(str(exc)) from None
    return payload["provenance"], payload["records"]


# What tests/benchmarks/ keeps in each benchmark's extra_info, under the names a defectbench record uses
# (`device_peak_gflops` is the older name of `best_kernel_gflops`, as bench.schema.RENAMED_COLUMNS).
EXTRA_INFO = {"cpu_samples_ms": "latency_cpu_samples_ms", "reference_samples_ms": "reference_samples_ms",
              "reference_cpu_samples_ms": "reference_cpu_samples_ms", "reference_workload": "reference_workload",
              "best_kernel_gflops": "best_kernel_gflops", "device_peak_gflops": "best_kernel_gflops",
              "threads": "threads", "device": "device"}


def _from_pytest_benchmark(path: Path, payload: dict) -> LoadedRun:
    """pytest-benchmark's JSON (`--benchmark-json`, or `--benchmark-save` with `--benchmark-save-data`): one
    record per benchmark, its raw per-call times as latency samples; a reference workload timed between the
    rounds (tests/benchmarks/ puts it in `extra_info`) comes along."""
    benchmarks = payload.get("benchmarks")
    if not isinstance(benchmarks, list) or not benchmarks:
        raise UnusableInput(f"{path}: a pytest-benchmark file without benchmarks (empty run)")
    records = []
    for bench in benchmarks:
        stats = bench.get("stats") or {}
        data = stats.get("data")
        if not data:
            raise UnusableInput(f"{path}: pytest-benchmark saved {bench.get('fullname', '?')} without its raw timings; "
                                f"save with --benchmark-save-data or --benchmark-json")
        extra = bench.get("extra_info") or {}
        record = {"suite": "pytest-benchmark", "model": bench.get("fullname") or bench.get("name"), "variant": "",
                  "status": "ok", "error": "", "group": bench.get("group") or "",
                  "latency_samples_ms": [float(v) * 1e3 for v in data]}
        for name, key in EXTRA_INFO.items():
            if name in extra:
                record[key] = extra[name]
        records.append(record)
    info = payload.get("machine_info") or {}
    cpu = info.get("cpu") or {}
    provenance = {"hostname": info.get("node"), "cpu": cpu.get("brand_raw") or info.get("processor"),
                  "cpu_count": cpu.get("count"), "python": info.get("python_version"),
                  "platform": info.get("system"), "git_sha": (payload.get("commit_info") or {}).get("id"),
                  "timestamp": payload.get("datetime")}
    # tests/benchmarks/ keeps these in each benchmark's extra_info, as defectbench's provenance names them
    first = benchmarks[0].get("extra_info") or {}
    for name in ("torch", "onnx", "onnxruntime", "threads", "device", "device_peak_gflops"):
        if name in info or name in first:
            provenance[name] = info.get(name, first.get(name))
    return LoadedRun(path, "pytest-benchmark", provenance, records)


def load_run(path: str | Path) -> LoadedRun:
    """A run folder (its results.json; else its job files), a results.json, or a pytest-benchmark JSON file."""
    path = Path(path)
    if not path.exists():
        raise UnusableInput(f"{path}: no such file or directory")
    if path.is_dir():
        results = path / "results.json"
        if results.is_file():
            return load_run(results)
        jobs = sorted((path / "records").glob("*.json")) if (path / "records").is_dir() else []
        if not jobs:
            repeats = "; it holds repeated runs: give them to bench compare as one folder" if _run_folders(path) else ""
            raise UnusableInput(f"{path}: not a run folder (no results.json, no records/*.json){repeats}")
        provenance, records = {}, []
        for job in jobs:  # a run stopped before results.json was written: its job files hold every record
            job_provenance, job_records = _records_of(job, _read_json(job))
            provenance = provenance or job_provenance
            records.extend(job_records)
        run = LoadedRun(path, "defectbench", provenance, records)
    else:
        payload = _read_json(path)
        if isinstance(payload, dict) and "benchmarks" in payload and "schema" not in payload:
            run = _from_pytest_benchmark(path, payload)
        else:
            provenance, records = _records_of(path, payload)
            run = LoadedRun(path, "defectbench", provenance, records)
    if not run.records:
        raise UnusableInput(f"{run.source}: no records (an empty run)")
    run.by_key()  # refuse ambiguous identities now, not halfway through the judging
    return run


def _run_folders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and ((p / "results.json").is_file() or (p / "records").is_dir()))


def load_repeats(path: str | Path) -> list[LoadedRun]:
    """One side as one run, or as a folder of repeated runs of the same code (its run folders, in name order):
    BASE's spread tells `bench compare` how much this machine drifts between runs; NEW's repeats confirm a
    latency change (docs/design/compare.md)."""
    path = Path(path)
    if path.is_dir() and not (path / "results.json").is_file() and not (path / "records").is_dir():
        folders = _run_folders(path)
        if folders:
            runs = [load_run(f) for f in folders]
            shas = {r.provenance.get("git_sha") for r in runs}
            if len(shas) > 1:
                raise UnusableInput(f"{path}: its repeated runs come from different code ({', '.join(map(str, sorted(shas, key=str)))})")
            if len({r.kind for r in runs}) > 1:
                raise UnusableInput(f"{path}: its repeated runs are not all of one kind")
            return runs
    return [load_run(path)]
