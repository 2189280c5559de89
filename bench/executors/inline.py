"""The inline executor: every job in this process, one after the other, no isolation."""
from __future__ import annotations

import time

from bench.executors import OnDone, OnProgress, OnRecord, failure_records
from bench.jobs import run_job
from bench.failures import first_line
from bench.jobs.spec import JobSpec
from bench.quiet import filtered_stderr


class InlineExecutor:
    name = "inline"

    def prepare(self, specs: list[JobSpec]) -> None:
        """Nothing to set up before the first job: workers start as jobs need them."""

    def run(self, specs: list[JobSpec], on_record: OnRecord, on_done: OnDone, on_progress: OnProgress) -> None:
        with filtered_stderr():
            for spec in specs:
                produced: list[dict] = []
                started = time.perf_counter()

                def emit(record: dict, spec: JobSpec = spec) -> None:
                    produced.append(record)
                    on_record(spec, record)

                try:
                    run_job(spec, emit, lambda text, spec=spec: on_progress(spec, text))
                except Exception as exc:  # a job must not take the run down (a broken plugin, a bug)
                    for record in failure_records(spec, produced, first_line(exc), time.perf_counter() - started):
                        on_record(spec, record)
                on_done(spec)
