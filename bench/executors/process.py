"""The process executor: each job in a spawned child process, so a crash, a hang or an out-of-memory kill
costs one job, not the run.

- Spawned, not forked: no CUDA context or thread pool is inherited from the driver. And started without the
  caller's main module (`_without_main`): a worker runs this package's `worker_main`, never the user's script,
  so the API works from a script without an `if __name__ == "__main__":` guard and from `python -` (stdin).
- One worker is reused for consecutive jobs of the same model (torch's import is paid once per model, not
  per job); a new model, or a worker that died, gets a fresh one. While a job that times nothing (accuracy)
  runs, the next model's worker is started beside it and imports its libraries, so the next job (often a
  timing job) starts without waiting for them (`make bench`: at each model change but the one after
  pixel_stats, whose 2-second accuracy job is shorter than the imports). Never beside
  a profile job: its timings would share the CPU with the imports.
- Time limit per job (`JobSpec.timeout`): past it the worker is killed and the job's missing records become
  `failed` with "timed out after N s".
- Memory limit (CPU, `--job-memory-mb`): the worker's address space may grow by that much beyond what it
  had after its imports (RLIMIT_AS); an allocation past it fails inside the job, which records "out of
  memory at batch B" and goes on. A worker the kernel kills (its OOM killer) reports the signal.
- Jobs run one at a time: timing jobs never share the device with another job.
"""
from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
import types
import warnings
from dataclasses import dataclass

from bench.executors import OnDone, OnProgress, OnRecord, failure_records
from bench.jobs.spec import JobSpec

POLL_SECONDS = 0.5
STARTUP_SECONDS = 600.0  # a worker that has not taken its job by then (imports hung) fails the job
PROGRESS_EVERY = 0.5  # seconds between progress messages from a worker
# What a worker imports before its first job: what that job's kind needs (a spare worker pays for it while
# the previous job runs), or all of it under a memory limit, which is set after them so that their libraries'
# address space is not charged to the job.
PRELOAD = {
    "profile": ("torch", "torchvision", "onnx", "onnxruntime", "onnxscript", "fvcore.nn", "models.zoo",
                "bench.jobs.profile"),
    "accuracy": ("torch", "torchvision", "scipy.stats", "sklearn.metrics", "models.zoo", "bench.jobs.accuracy"),
}


def preload_for(kind: str, memory_mb: float | None) -> tuple[str, ...]:
    if memory_mb:
        return tuple(dict.fromkeys(m for modules in PRELOAD.values() for m in modules))
    return PRELOAD.get(kind, ())


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker ended without an exit status"
    if exitcode < 0:
        number = -exitcode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown signal"
        hint = " (the kernel's out-of-memory killer, or another process)" if number == signal.SIGKILL else ""
        return f"worker killed by signal {number} ({name}){hint}"
    return f"worker exited with status {exitcode}"


def _vm_size_bytes() -> int | None:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def limit_memory(memory_mb: float) -> None:
    import resource

    current = _vm_size_bytes()
    if current is not None:
        limit = current + int(memory_mb * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def _thread_lock_for_tqdm() -> None:
    """torch.fx shows a tqdm bar while the ONNX exporter traces; tqdm's default lock is a multiprocessing RLock,
    a named semaphore that only an orderly exit unlinks. A worker leaves by os._exit, so the driver's resource
    tracker warned of "leaked semaphore objects" at the end of every run that exported. A worker is one
    process: a thread lock is all tqdm needs there."""
    try:
        from tqdm import tqdm
    except ImportError:
        return
    tqdm.set_lock(threading.RLock())


def worker_main(conn, memory_mb: float | None, preload: tuple[str, ...] = ()) -> None:
    """A worker: import `preload`, then run the specs it is sent until it is sent None."""
    import importlib

    from bench.quiet import install_stderr_filter

    os.dup2(2, 1)  # the driver's stdout carries the summary; anything a job prints goes to stderr
    install_stderr_filter()
    _thread_lock_for_tqdm()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore's import warns that torch.jit is deprecated
        for module in preload:
            try:
                importlib.import_module(module)
            except ImportError:
                pass
    if memory_mb:
        limit_memory(memory_mb)
    from bench.jobs import run_job

    last = [0.0]

    def progress(text: str) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY:
            last[0] = time.monotonic()
            conn.send(("progress", text))

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the driver is gone
            break
        if message is None:
            break
        spec = JobSpec.from_dict(message)
        conn.send(("started", None))
        try:
            run_job(spec, lambda record: conn.send(("record", record)), progress)
            conn.send(("done", None))
        except Exception as exc:
            from bench.failures import first_line

            conn.send(("error", first_line(exc)))
    # Leave without the interpreter's teardown of torch and the rest (about a second, measured on an idle
    # worker): the driver waits for this exit before the next model's job starts. Nothing is left to flush but
    # the standard streams: records went to the driver as they were made.
    conn.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


_MAIN_LOCK = threading.Lock()  # two executors in two threads must not interleave the swap below


@contextlib.contextmanager
def _without_main():
    """While a worker is started, `sys.modules["__main__"]` is a bare module naming no file and no module.

    multiprocessing's spawn re-runs the parent's main module in every child (as `__mp_main__`, before the
    target runs) when that module names a module (`__spec__.name`) or a file (`__file__`): that is how
    `multiprocessing.spawn.get_preparation_data` decides, called by `process.start()`. A worker needs nothing
    from it (its target and arguments are pickled by reference to this package), and re-running it breaks
    ordinary scripts: one without an `if __name__ == "__main__":` guard calls `bench.run` again inside the
    child (which wipes the run folder, then is refused: "An attempt has been made to start a new process before
    the current process has finished its bootstrapping phase"), and a script piped to `python -` has no file to
    re-run (FileNotFoundError: '<stdin>'); either way every job failed with "worker exited with status 1".
    The real main module is put back however the start ends."""
    with _MAIN_LOCK:
        missing = object()
        main = sys.modules.get("__main__", missing)
        sys.modules["__main__"] = types.ModuleType("__main__")  # __spec__ None, no __file__: nothing to re-run
        try:
            yield
        finally:
            if main is missing:
                sys.modules.pop("__main__", None)
            else:
                sys.modules["__main__"] = main


@dataclass
class Worker:
    model: str
    process: multiprocessing.process.BaseProcess
    conn: object

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self, kill: bool = False) -> None:
        if self.process.is_alive() and not kill:
            try:
                self.conn.send(None)
                self.process.join(timeout=10)
            except (OSError, EOFError, BrokenPipeError):
                pass
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=10)
        self.conn.close()


class ProcessExecutor:
    name = "process"

    def __init__(self, memory_mb: float | None = None):
        self.memory_mb = memory_mb
        self.context = multiprocessing.get_context("spawn")
        self.worker: Worker | None = None
        self.spare: Worker | None = None  # the next model's worker, started while a non-timing job runs

    def _start_worker(self, spec: JobSpec) -> Worker:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=worker_main, daemon=True, name=f"defectbench-{spec.model}",
                                       args=(child, self.memory_mb, preload_for(spec.kind, self.memory_mb)))
        try:
            with _without_main():
                process.start()
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        return Worker(spec.model, process, parent)

    def _worker_for(self, spec: JobSpec) -> Worker:
        model = spec.model
        if self.worker is not None and (self.worker.model != model or not self.worker.alive()):
            self.worker.stop()
            self.worker = None
        if self.worker is None:
            if self.spare is not None and self.spare.model == model and self.spare.alive():
                self.worker, self.spare = self.spare, None
            else:
                self._stop_spare()
                self.worker = self._start_worker(spec)
        return self.worker

    def _stop_spare(self) -> None:
        if self.spare is not None:
            self.spare.stop()
            self.spare = None

    def _start_spare_for(self, spec: JobSpec, following: JobSpec | None) -> None:
        """Start `following`'s worker now if it needs a new one and `spec` (running) times nothing."""
        if following is None or following.model == spec.model or spec.kind == "profile" or self.spare is not None:
            return
        self.spare = self._start_worker(following)

    def prepare(self, specs: list[JobSpec]) -> None:
        """Nothing to set up before the first job: workers start as jobs need them."""

    def run(self, specs: list[JobSpec], on_record: OnRecord, on_done: OnDone, on_progress: OnProgress) -> None:
        try:
            for i, spec in enumerate(specs):
                self._run_one(spec, on_record, on_progress, specs[i + 1] if i + 1 < len(specs) else None)
                on_done(spec)
        finally:
            if self.worker is not None:
                self.worker.stop()
                self.worker = None
            self._stop_spare()

    def _run_one(self, spec: JobSpec, on_record: OnRecord, on_progress: OnProgress,
                 following: JobSpec | None = None) -> None:
        worker = self._worker_for(spec)
        produced: list[dict] = []
        started = time.perf_counter()
        # The job's clock starts when its worker takes it: a fresh worker's imports are not the job's time.
        deadline, running = started + STARTUP_SECONDS, False
        error = None
        try:
            worker.conn.send(spec.to_dict())
        except (OSError, BrokenPipeError) as exc:
            error = f"could not start the job in its worker: {exc}"
        while error is None:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                error = f"timed out after {spec.timeout:g} s" if running else \
                    f"its worker did not start within {STARTUP_SECONDS:g} s"
                worker.stop(kill=True)
                break
            try:
                ready = worker.conn.poll(min(POLL_SECONDS, remaining))
                message = worker.conn.recv() if ready else None
            except (EOFError, OSError):
                worker.process.join(timeout=5)
                error = describe_exit(worker.process.exitcode)
                break
            if message is None:
                if not worker.alive():
                    error = describe_exit(worker.process.exitcode)
                    break
                continue
            kind, payload = message
            if kind == "started":
                running = True
                deadline = time.perf_counter() + spec.timeout if math.isfinite(spec.timeout) else math.inf
                self._start_spare_for(spec, following)
            elif kind == "record":
                produced.append(payload)
                on_record(spec, payload)
            elif kind == "progress":
                on_progress(spec, payload)
            elif kind == "done":
                return
            elif kind == "error":
                error = payload
        for record in failure_records(spec, produced, error, time.perf_counter() - started):
            on_record(spec, record)
