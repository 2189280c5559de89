"""What a run says while it works, on stderr: a live bar in a terminal, plain lines in a CI log."""
from __future__ import annotations

import sys
import time

from bench.jobs.spec import JobSpec


def _label(spec: JobSpec) -> str:
    if spec.kind == "profile":
        return f"profile {spec.model} ({spec.image_size}px, batch {spec.batch_size})"
    return f"accuracy {spec.model} {spec.dataset}/{spec.category or '-'} seed {spec.seed}"


class RunProgress:
    def __init__(self, todo: list[JobSpec], reused: int = 0, quiet: bool = False):
        self.total = len(todo)
        self.position = {s.job_id: i + 1 for i, s in enumerate(todo)}
        self.reused = reused
        self.quiet = quiet
        self.live = not quiet and sys.stderr.isatty()
        self.started: dict[str, float] = {}
        self.bar = None

    def __enter__(self) -> "RunProgress":
        if self.quiet:
            return self
        if self.reused:
            print(f"{self.reused} job(s) already done in this run folder: reused", file=sys.stderr)
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("[bold]jobs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("{task.fields[detail]}"), console=Console(stderr=True), transient=False)
            self.bar.__enter__()
            self.task = self.bar.add_task("jobs", total=self.total, detail="")
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def _prefix(self, spec: JobSpec) -> str:
        return f"[{self.position.get(spec.job_id, '?')}/{self.total}] {_label(spec)}"

    def update(self, spec: JobSpec, text: str) -> None:
        self.started.setdefault(spec.job_id, time.perf_counter())
        if self.bar is not None:
            self.bar.update(self.task, detail=f"{_label(spec)}: {text}")

    def record(self, spec: JobSpec, record: dict) -> None:
        self.started.setdefault(spec.job_id, time.perf_counter())
        if self.quiet:
            return
        what = record.get("variant", "")
        if spec.kind == "accuracy" and record.get("train_minutes") is not None:
            what = f"{record['train_minutes']:g} min" + (f" {what}" if what != "torch-fp32" else "")
        status = record.get("status", "?")
        detail = ""
        if status == "ok" and record.get("image_auroc") is not None:
            detail = f" image AUROC {record['image_auroc']:.3f}"
        elif status == "ok" and record.get("latency_ms_p50") is not None:
            detail = f" p50 {record['latency_ms_p50']:.4g} ms"
        elif status != "ok":
            detail = f": {record.get('error', '')}"
        if status == "ok" and record.get("val_normals_note") and record.get("variant") == "torch-fp32":
            detail += f"; {record['val_normals_note']}: the threshold-based operating points are empty"
        line = f"{self._prefix(spec)}: {what} {status}{detail}"
        if self.bar is not None:
            self.bar.console.print(line, highlight=False, markup=False)
        else:
            print(line, file=sys.stderr, flush=True)

    def done(self, spec: JobSpec) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)
