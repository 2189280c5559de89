"""Executors turn job specs into records. Each takes the planned specs and calls back as records arrive:

    executor.prepare(specs)   # before the run folder changes: refuse what cannot run (exit 2)
    executor.run(specs, on_record(spec, record), on_done(spec), on_progress(spec, text))

- `inline`: every job in this process, one after the other (debugging; the tests of single probes).
- `process` (default): each job in a spawned child process with a time limit and, on CPU, an optional memory
  limit; a crash, signal, out-of-memory or timeout becomes a `failed` record naming the cause.
- `ray`: the same specs as Ray tasks on a local or existing cluster (`bench/executors/ray_executor.py`).

Every executor runs jobs through `bench.jobs.run_job`, so a record is the same whichever made it; and every
executor turns a job that ended without all its records into `failed` records (`failure_records`).
"""
from __future__ import annotations

from typing import Callable, Protocol

from bench.jobs.common import now
from bench.jobs.spec import JobSpec

OnRecord = Callable[[JobSpec, dict], None]
OnDone = Callable[[JobSpec], None]
OnProgress = Callable[[JobSpec, str], None]


class Executor(Protocol):
    name: str

    def prepare(self, specs: list[JobSpec]) -> None: ...

    def run(self, specs: list[JobSpec], on_record: OnRecord, on_done: OnDone, on_progress: OnProgress) -> None: ...


def _key(record: dict) -> tuple:
    return record.get("variant", "torch-fp32"), record.get("train_minutes")


def failure_records(spec: JobSpec, produced: list[dict], error: str, seconds: float | None = None) -> list[dict]:
    """A `failed` record for every output of `spec` that `produced` lacks (a crash, a timeout, a lost task)."""
    have = {_key(r) for r in produced}
    out = []
    for stub in spec.outputs():
        record = dict(spec.base_record(), **stub)
        if _key(record) in have:
            continue
        record.update(status="failed", error=error, started_at=now())
        if seconds is not None:
            record["seconds"] = seconds
        out.append(record)
    return out


def make_executor(name: str, *, memory_mb: float | None = None, ray_address: str | None = None) -> Executor:
    if name == "inline":
        from bench.executors.inline import InlineExecutor

        return InlineExecutor()
    if name == "process":
        from bench.executors.process import ProcessExecutor

        return ProcessExecutor(memory_mb=memory_mb)
    if name == "ray":
        from bench.executors.ray_executor import RayExecutor

        return RayExecutor(address=ray_address, memory_mb=memory_mb)
    raise ValueError(f"--executor must be one of inline, process, ray; got {name!r}")
