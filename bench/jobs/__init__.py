"""Executing one job spec: what every executor (inline, process, Ray) calls, in whatever process it runs.

`run_job(spec, emit, progress)` calls `emit(record)` for each record as soon as it exists; it never raises
for a failure inside the job (that becomes a `failed` record), only for a broken spec.
"""
from __future__ import annotations

from typing import Callable

from bench.jobs.spec import JobSpec


def prepare_worker(spec: JobSpec) -> None:
    """Per-process state a job needs: its thread count (torch's and the BLAS/OpenMP pools numpy and the
    interval computations use) and the user's plugin models."""
    import torch
    from threadpoolctl import threadpool_limits

    from bench.plugins import load_plugins

    torch.set_num_threads(spec.threads)
    threadpool_limits(spec.threads)
    load_plugins(spec.plugins)


def run_job(spec: JobSpec, emit: Callable[[dict], None], progress: Callable[[str], None] | None = None) -> None:
    from bench.jobs.accuracy import run_accuracy
    from bench.jobs.profile import run_profile

    prepare_worker(spec)
    runner = {"profile": run_profile, "accuracy": run_accuracy}[spec.kind]
    for record in runner(spec, progress):
        emit(record)
