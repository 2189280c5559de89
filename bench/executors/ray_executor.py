"""The Ray executor: the same job specs as Ray tasks, on a local Ray instance or an existing cluster.

- One task per job. The task is a streaming generator: it runs `bench.jobs.run_job` in a thread of its worker
  and yields each record (and throttled progress) the moment it exists, so records reach the driver's run
  folder in completion order while the job is still running.
- Resources: a CPU job asks for `threads` CPUs (its intra-op pool; capped at the largest node), so Ray never
  packs more threads onto a node than it has cores; a CUDA job asks for one GPU and one CPU. Every job that
  measures time (all but accuracy jobs) also takes one `defectbench_timing` slot: a node has one per device,
  so two timing jobs never share a device. Accuracy jobs take no slot and run side by side.
- Retries: none (`max_retries=0`). A job that crashes its worker would crash it again, and a rerun streams a
  second copy of records the driver has already written. A crash, a lost node or a lost result becomes
  `failed` records naming the cause, and the run goes on.
- Time limit: `JobSpec.timeout`, counted from when the job starts on its worker (time queued for a free
  slot does not count); past it the task is cancelled with its worker killed.
- Memory limit (`--job-memory-mb`, CPU): Ray reserves that much memory for the job when it places it, and
  the worker's address space may grow by that much while the job runs (as in the process executor).
- Without an address: a local instance (this machine's cores, one timing slot per device, no dashboard,
  usage statistics off, worker output kept in Ray's session logs), shut down at the end. With an address:
  connect, check the cluster can run the plan, leave the cluster running. A driver that is already connected
  (`ray.is_initialized()`) is reused as it is.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.executors import OnDone, OnProgress, OnRecord, failure_records
from bench.jobs.spec import JobSpec
from bench.validate import UsageError

TIMING_RESOURCE = "defectbench_timing"
POLL_SECONDS = 0.5
PROGRESS_EVERY = 2.0  # seconds between progress messages from a worker (hundreds of jobs talk to one driver)
DRAIN_LIMIT = 64  # items taken from one job before the driver looks at the others
NODE_HINT = (f"""start each node with `ray start ... --resources '{{"{TIMING_RESOURCE}": N}}'` """
             f"(N = its GPUs, 1 on a CPU node)")


# -- on the worker -----------------------------------------------------------------------------------------
def _worker_facts() -> dict:
    """Where the job runs, and where its worker's crash report would be written (Ray sends fd 2 to a file)."""
    import ray

    facts = {"pid": os.getpid(), "node": ray.util.get_node_ip_address(), "log": None, "log_offset": 0}
    try:
        log = os.readlink("/proc/self/fd/2")
        if log.startswith("/"):
            facts.update(log=log, log_offset=os.path.getsize(log))
    except OSError:
        pass
    return facts


def job_stream(spec_data: dict, memory_mb: float | None):
    """The Ray task: yields ("started", facts), then ("record", r) / ("progress", text) as the job goes, then
    ("done", None) or ("error", one line). The job runs in a thread so records leave as soon as they exist."""
    import queue
    import threading

    from bench.jobs import run_job
    from bench.failures import first_line

    spec = JobSpec.from_dict(spec_data)
    yield "started", _worker_facts()
    events: queue.SimpleQueue = queue.SimpleQueue()
    last = [0.0]

    def progress(text: str) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY:
            last[0] = time.monotonic()
            events.put(("progress", text))

    def work() -> None:
        restore = _limit_memory(memory_mb) if memory_mb else None
        try:
            run_job(spec, lambda record: events.put(("record", record)), progress)
            events.put(("done", None))
        except BaseException as exc:  # a broken spec or plugin: the job fails, the worker stays
            events.put(("error", first_line(exc)))
        finally:
            if restore:
                restore()

    thread = threading.Thread(target=work, name=f"defectbench-{spec.model}", daemon=True)
    thread.start()
    while True:
        kind, payload = events.get()
        yield kind, payload
        if kind in ("done", "error"):
            break
    thread.join()


def _limit_memory(memory_mb: float):
    """The process executor's limit (address space may grow by memory_mb), undone after the job: Ray reuses
    the worker for later jobs."""
    import importlib
    import resource
    import warnings

    from bench.executors.process import limit_memory, preload_for

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module in preload_for("", memory_mb):  # imported before the limit: their libraries are not the job's
            try:
                importlib.import_module(module)
            except ImportError:
                pass
    before = resource.getrlimit(resource.RLIMIT_AS)
    limit_memory(memory_mb)
    return lambda: resource.setrlimit(resource.RLIMIT_AS, before)


# -- on the driver: what went wrong --------------------------------------------------------------------------
_CRASH_REPORT = re.compile(r"\*\*\* (SIG[A-Z]+) received")


def _signal_from_log(facts: dict) -> str | None:
    """The signal a dead worker reported in its log (Ray's handler writes `*** SIGSEGV received ...`), when
    the driver can read that log (a local instance, or logs on a shared filesystem)."""
    if not facts.get("log"):
        return None
    try:
        with open(facts["log"], "rb") as handle:
            handle.seek(facts.get("log_offset", 0))
            found = _CRASH_REPORT.findall(handle.read().decode(errors="replace"))
    except OSError:
        return None
    if not found:
        return None
    name = found[-1]
    try:
        return f"signal {signal.Signals[name].value} ({name})"
    except KeyError:
        return name


def describe_failure(exc: BaseException, facts: dict | None) -> str:
    """One line naming why a task ended without finishing its job."""
    import ray.exceptions as rex

    from bench.failures import first_line

    where = f" (pid {facts['pid']} on {facts['node']})" if facts else ""
    if isinstance(exc, rex.OutOfMemoryError):
        return f"out of memory: Ray's memory monitor killed the worker{where}: {first_line(exc).split(': ', 1)[-1]}"
    if isinstance(exc, rex.WorkerCrashedError):
        reported = _signal_from_log(facts) if facts else None
        if reported:
            return f"Ray worker killed by {reported}{where}"
        return (f"Ray worker died mid-task{where} without a crash report: a SIGKILL (the kernel's out-of-memory "
                f"killer or another process) or an exit from native code")
    if isinstance(exc, (rex.NodeDiedError, rex.LocalRayletDiedError)):
        return f"the Ray node running the job died{where}: {first_line(exc)}"
    if isinstance(exc, rex.ObjectLostError):
        return f"a result of the job was lost (its node or owner died): {type(exc).__name__}"
    if isinstance(exc, rex.RuntimeEnvSetupError):
        return f"Ray could not set up the worker's environment: {first_line(exc)}"
    if isinstance(exc, rex.TaskUnschedulableError):
        return f"Ray could not place the job: {first_line(exc)}"
    if isinstance(exc, rex.RayTaskError):
        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
        return f"the Ray task raised {first_line(cause)}"
    return first_line(exc)


# -- on the driver: the run ------------------------------------------------------------------------------------
def _project_root() -> Path | None:
    """The source checkout the driver runs from, if any: local workers must import the same code."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def _runtime_env() -> dict:
    root = _project_root()
    if root is None:  # an installed defectbench: every node needs the same version installed
        return {}
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


def _local_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def start_local(num_cpus: int | None = None, timing_slots: int = 1) -> None:
    """A new Ray instance on this machine for one run (not a cluster `ray start` left running here): quiet, no
    dashboard, no usage statistics sent anywhere."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=num_cpus or _local_cpus(), resources={TIMING_RESOURCE: timing_slots},
             include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             runtime_env=_runtime_env())


@dataclass
class Running:
    """A submitted job, as the driver follows it."""

    spec: JobSpec
    submitted: float
    started: float | None = None
    facts: dict | None = None
    produced: list = field(default_factory=list)


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, memory_mb: float | None = None, num_cpus: int | None = None):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UsageError("--executor ray needs Ray: pip install 'defectbench[ray]'") from None
        address = address or os.environ.get("RAY_ADDRESS") or None  # `ray job submit` sets RAY_ADDRESS
        if address and address.startswith("ray://"):
            raise UsageError(f"--ray-address {address}: Ray Client addresses cannot stream results back; run the "
                             f"driver on a node of the cluster with its GCS address (HOST:6379), or submit it there "
                             f"with `ray job submit -- bench run ... --executor ray`")
        self.address = address
        self.memory_mb = memory_mb
        self.num_cpus = num_cpus
        self.started_here = False  # a local instance this executor started, and so shuts down
        self.connected_here = False
        self.largest_node_cpus = 1.0

    # -- before any job -------------------------------------------------------------------------------------
    def prepare(self, specs: list[JobSpec]) -> None:
        """Start or join Ray and check that the cluster can run every job: fails with one line (exit 2) rather
        than leaving jobs waiting forever for resources that no node has."""
        import ray

        if not ray.is_initialized():
            if self.address:
                self._connect()
            else:
                cuda = any(s.device == "cuda" for s in specs)
                start_local(self.num_cpus, timing_slots=max(1, _cuda_count()) if cuda else 1)
                self.started_here = True
        self._check_cluster(specs)

    def _connect(self) -> None:
        import ray

        _check_reachable(self.address)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR,
                     runtime_env=_runtime_env())
        except (ConnectionError, ValueError, RuntimeError, ray.exceptions.RayError) as exc:
            text = str(exc).strip().splitlines()
            raise UsageError(f"--ray-address {self.address}: cannot connect to a Ray cluster there "
                             f"({text[0] if text else type(exc).__name__})") from None
        self.connected_here = True

    def _check_cluster(self, specs: list[JobSpec]) -> None:
        import ray

        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        where = f"the Ray cluster at --ray-address {self.address}" if self.address else "this driver's Ray instance"
        self.largest_node_cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
        if any(takes_timing_slot(s) for s in specs) and not any(n.get(TIMING_RESOURCE) for n in nodes):
            self.close()
            raise UsageError(f"{where} has no '{TIMING_RESOURCE}' resource, which keeps two timing "
                             f"jobs off one device; {NODE_HINT}")
        if any(s.device == "cuda" for s in specs) and not any(n.get("GPU") for n in nodes):
            self.close()
            raise UsageError(f"--device cuda: {where} has no GPU (the driver resolves the device; the nodes run it)")
        if self.largest_node_cpus < 1:
            self.close()
            raise UsageError(f"{where} has no node with a CPU to run jobs on")

    # -- the run --------------------------------------------------------------------------------------------
    def task_options(self, spec: JobSpec) -> dict:
        options: dict = {"max_retries": 0, "name": f"defectbench:{spec.job_id}"}
        if spec.device == "cuda":
            options.update(num_gpus=1, num_cpus=1)
        else:
            options["num_cpus"] = min(float(spec.threads), self.largest_node_cpus)
        if takes_timing_slot(spec):
            options["resources"] = {TIMING_RESOURCE: 1}
        if self.memory_mb and spec.device == "cpu":
            options["memory"] = int(self.memory_mb * 2**20)
        return options

    def run(self, specs: list[JobSpec], on_record: OnRecord, on_done: OnDone, on_progress: OnProgress) -> None:
        if not specs:
            return
        import ray

        self.prepare(specs)
        # Ray's driver prints the raylet's notices (e.g. "A worker died ...") on stdout, which carries the run's
        # summary: while Ray runs they go to stderr, beside the progress lines.
        with contextlib.redirect_stdout(sys.stderr):
            try:
                self._follow(specs, ray.remote(job_stream), on_record, on_done, on_progress)
            finally:
                self.close()

    def _follow(self, specs: list[JobSpec], task, on_record: OnRecord, on_done: OnDone,
                on_progress: OnProgress) -> None:
        """Submit every job, then hand on each item as it arrives, in completion order."""
        import ray

        running: dict = {}
        try:
            for spec in specs:
                memory_mb = self.memory_mb if spec.device == "cpu" else None
                stream = task.options(**self.task_options(spec)).remote(_for_workers(spec).to_dict(), memory_mb)
                running[stream] = Running(spec, time.monotonic())
            while running:
                self._expire(running, on_record, on_done)
                streams = list(running)
                if not streams:
                    break
                ready, _ = ray.wait(streams, num_returns=1, timeout=POLL_SECONDS)
                if ready and len(streams) > 1:  # every stream with something waiting, not just the first
                    ready, _ = ray.wait(streams, num_returns=len(streams), timeout=0)
                for stream in ready:
                    self._drain(stream, running, on_record, on_done, on_progress)
        finally:
            for stream in running:  # interrupted: nothing keeps running on the cluster for a run that ended
                ray.cancel(stream, force=True)

    def _drain(self, stream, running: dict, on_record: OnRecord, on_done: OnDone, on_progress: OnProgress) -> None:
        """Hand on everything a job has sent so far, in order; of its progress messages only the latest."""
        import ray

        job, latest = running[stream], None
        for _ in range(DRAIN_LIMIT):
            try:
                kind, payload = ray.get(next(stream))
            except StopIteration:
                self._finish(stream, running, "the Ray task ended before its job did", on_record, on_done)
                return
            except ray.exceptions.RayError as exc:
                self._finish(stream, running, describe_failure(exc, job.facts), on_record, on_done)
                return
            if kind == "started":
                job.started, job.facts = time.monotonic(), payload
                latest = f"running on {payload['node']} (pid {payload['pid']})"
            elif kind == "progress":
                latest = payload
            elif kind == "record":
                job.produced.append(payload)
                on_record(job.spec, payload)
            elif kind in ("done", "error"):
                self._finish(stream, running, payload if kind == "error" else None, on_record, on_done)
                return
            if not ray.wait([stream], timeout=0)[0]:
                break
        if latest is not None:
            on_progress(job.spec, latest)

    def _expire(self, running: dict, on_record: OnRecord, on_done: OnDone) -> None:
        import ray

        clock = time.monotonic()
        for stream, job in list(running.items()):
            if job.started is not None and clock - job.started > job.spec.timeout:
                ray.cancel(stream, force=True)
                self._finish(stream, running, f"timed out after {job.spec.timeout:g} s", on_record, on_done)

    def _finish(self, stream, running: dict, error: str | None, on_record: OnRecord, on_done: OnDone) -> None:
        job = running.pop(stream)
        if error is not None:
            seconds = time.monotonic() - (job.started if job.started is not None else job.submitted)
            for record in failure_records(job.spec, job.produced, error, seconds):
                on_record(job.spec, record)
        on_done(job.spec)

    def close(self) -> None:
        """Shut down the instance this executor started, or disconnect from the cluster it joined (which keeps
        running); a driver connection made by someone else is left alone."""
        if self.started_here or self.connected_here:
            import ray

            ray.shutdown()
            self.started_here = self.connected_here = False


def _check_reachable(address: str, seconds: float = 5.0) -> None:
    """Ray retries an unreachable address for minutes; a HOST:PORT nobody answers on fails here at once."""
    import socket

    if address == "auto":  # Ray finds the cluster started on this machine by `ray start`
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray-address {address}: expected HOST:PORT, the cluster's GCS address "
                         f"(e.g. 10.0.0.1:6379), or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except OSError as exc:
        raise UsageError(f"--ray-address {address}: no Ray cluster answers there ({exc.strerror or exc})") from None


def takes_timing_slot(spec: JobSpec) -> bool:
    """Jobs that time things must not share a device; training for accuracy may."""
    return spec.kind != "accuracy"


def _for_workers(spec: JobSpec) -> JobSpec:
    """Paths a worker can use whatever its working directory (one on another node does not start in the driver's)."""
    data_root = str(Path(spec.data_root).resolve()) if spec.data_root else ""
    return dataclasses.replace(spec, run_dir=str(Path(spec.run_dir).resolve()), data_root=data_root)


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count()
