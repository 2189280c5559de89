"""The line scenario: a camera triggering at a rate, one model's end-to-end pipeline serving it, a deadline per part.

A load generator issues parts (encoded frames) at scheduled arrival times; one worker thread serves them through
`bench.pipeline.Pipeline` (decode, resize, network, post-processing, threshold) under a batching policy; each
part's latency runs from its *scheduled* arrival to its decision, so a generator that issues late (a busy core,
the GIL) cannot hide queueing. Everything runs in this process, and each trial stops by itself.

Arrivals (`arrival_schedule`): `periodic` (a camera trigger: part k at k / rate) or `poisson` (a Poisson process
conditioned on its count: the n = floor(rate * seconds) arrival times are the sorted draws of n uniforms over the
trial, which is what a Poisson process looks like given that it had n arrivals; the inter-arrival times tend to
exponential, coefficient of variation 1, and every trial carries exactly the load asked for, so short trials of
a search are not jittered by the count's own +-sqrt(n) noise). Seeded: the same seed gives the same schedule.

Batching (`BatchPolicy`): `max_batch` 1 serves parts one by one, in arrival order. With `max_batch` B > 1 the
worker, once a part is waiting, takes up to B waiting parts, and waits for more until B are waiting or
`max_wait_ms` has passed since the first of them arrived (dynamic batching as inference servers do it).

A trial's record (`run_trial`, `trial_record`): `rate_hz` (offered), `arrivals`, `parts_served`,
`parts_unserved` (still waiting when the trial was cut off, one deadline after the last arrival: certainly
late, counted as misses with an infinite latency), `throughput_ips` (parts served / time from the first
arrival to the last decision), `line_latency_ms_p50/p99/p999/mean/max` (arrival to decision),
`deadline_miss_rate` (latency > deadline, unserved included), `queue_len_mean/max` (parts an arriving part
finds waiting ahead of it, the one in service not counted), `batch_size_mean`, `issue_late_ms_p99` (how late
the generator issued parts behind the schedule: its own accuracy), `passed` (p99 <= deadline) and the raw
`line_latency_samples_ms` (None for unserved parts).

Sustainable rate (`find_sustainable_rate`): the highest arrival rate whose p99 latency stays within the
deadline, as MLPerf's Server scenario defines its result. Bracketing from a start rate (1 / the pipeline's
measured batch-1 service time unless given): x `growth` while trials pass, / `growth` while they fail; then
bisection (geometric) between the highest passing and the lowest failing rate until they are within
`tolerance` of each other. At most `max_trials` trials, each `seconds` long (plus at most one deadline of
draining). The answer is the highest passing rate; `search_decision` says how it was reached and why it stopped.
A finite trial cannot tell a rate slightly above capacity from a sustainable one: with deterministic service
time S and periodic arrivals, part k of a trial at rate r > 1/S waits k (S - 1/r), so the p99 part of a
T-second trial waits about 0.99 T (rS - 1) and rates up to (1 + (deadline - S) / (0.99 T)) / S pass: 1.3% above
1/S for S = 20 ms, a 40 ms deadline and T = 1.5 s. Longer `seconds` narrow that; a line runs for hours.

Why not MLCommons LoadGen (`mlcommons-loadgen`, evaluated for this): its Server scenario is Poisson arrivals
judged by one latency percentile, and its peak finder is a bisection over such runs, which is what the
sustainable rate here means too. But a camera line does not fit its scenarios: (1) periodic open-loop arrivals
(a trigger every 1/rate seconds whether or not the last part is done) are none of them: SingleStream and
MultiStream issue the next query only when the previous one completed, which hides queueing; (2) per-part
deadline misses and queue lengths need each part's scheduled arrival, which LoadGen keeps to itself (the SUT
sees a sample id and index) and writes only to its detail log; (3) its run lengths follow its own validity
rules (minimum duration and query count, early stopping), and its peak finder has no cap on the number of runs,
while a benchmark suite needs runs bounded by `seconds` and `max_trials`. The generator here is ~100 lines, and
its arrival process is checked against what was asked in tests/test_line.py.

Python API: `line_scenario(model, ...) -> pandas.DataFrame` (one row per trial; what `bench line` runs),
`run_line(pipeline, ...)` for a pipeline already open, `line_probe(pipeline, options, service_ms)` for the profile
job (one flat record: `line_*` columns, per policy `line_<key>_*` with `policy_key`'s key, e.g. `line_b1_...`,
`line_b4w20_...`), and the parts above for other callers.
"""
from __future__ import annotations

import collections
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

ARRIVALS = ("periodic", "poisson")


# -- arrivals --------------------------------------------------------------------------------------------------
def arrival_schedule(rate_hz: float, seconds: float, process: str = "periodic", seed: int = 0) -> np.ndarray:
    """Arrival times in seconds from the trial's start (sorted; at least one arrival)."""
    if not rate_hz > 0 or not seconds > 0:
        raise ValueError(f"rate and seconds must be > 0; got {rate_hz}, {seconds}")
    count = max(1, int(math.floor(rate_hz * seconds + 1e-9)))
    span = count / rate_hz
    if process == "periodic":
        return np.arange(count, dtype=np.float64) / rate_hz
    if process == "poisson":
        rng = np.random.default_rng(seed)
        return np.sort(rng.uniform(0.0, span, count))
    raise ValueError(f"--arrivals must be one of {', '.join(ARRIVALS)}; got {process!r}")


@dataclass(frozen=True)
class BatchPolicy:
    max_batch: int = 1
    max_wait_ms: float = 0.0

    def __post_init__(self):
        if self.max_batch < 1:
            raise ValueError(f"--batch must be at least 1; got {self.max_batch}")
        if not (self.max_wait_ms >= 0 and math.isfinite(self.max_wait_ms)):
            raise ValueError(f"--max-wait-ms must be a finite number >= 0; got {self.max_wait_ms}")
        if self.max_batch == 1 and self.max_wait_ms > 0:
            raise ValueError("--max-wait-ms needs --batch above 1 (batch 1 never waits for a second part)")

    @property
    def label(self) -> str:
        return "batch 1" if self.max_batch == 1 else f"dynamic B={self.max_batch} W={self.max_wait_ms:g}ms"


@dataclass(frozen=True)
class LineSettings:
    """One line's load and its bounds (validated on construction; messages name the command-line option)."""

    deadline_ms: float = 100.0
    arrivals: str = "periodic"
    seconds: float = 5.0  # each trial's arrivals span this long
    max_trials: int = 12
    seed: int = 0
    tolerance: float = 0.02  # the search stops when the failing and passing rates are within this ratio
    growth: float = 1.25  # bracketing step
    checks: tuple[float, ...] = (0.8, 1.0, 1.2)  # after a search, trials at these multiples of the rate found

    def __post_init__(self):
        if not (self.deadline_ms > 0 and math.isfinite(self.deadline_ms)):
            raise ValueError(f"--deadline-ms must be a finite number > 0; got {self.deadline_ms}")
        if self.arrivals not in ARRIVALS:
            raise ValueError(f"--arrivals must be one of {', '.join(ARRIVALS)}; got {self.arrivals!r}")
        if not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise ValueError(f"--seconds must be a finite number > 0; got {self.seconds}")
        if self.max_trials < 2:
            raise ValueError(f"--max-trials must be at least 2 (one to bracket, one to bisect); got {self.max_trials}")
        if not (0 < self.tolerance < 1) or not self.growth > 1:
            raise ValueError(f"need 0 < tolerance < 1 and growth > 1; got {self.tolerance}, {self.growth}")
        if any(not c > 0 for c in self.checks):
            raise ValueError(f"check multiples must be > 0; got {self.checks}")


# -- one trial -------------------------------------------------------------------------------------------------
@dataclass
class Trial:
    """What one trial measured, part by part (times in seconds on `time.perf_counter`'s clock)."""

    deadline_ms: float
    scheduled: np.ndarray  # absolute scheduled arrival times
    issued: np.ndarray  # when the generator actually queued each part
    finished: np.ndarray  # decision times (nan: unserved)
    queue_seen: np.ndarray  # parts waiting ahead of each arrival
    batch_sizes: list[int] = field(default_factory=list)

    @property
    def latencies_ms(self) -> np.ndarray:
        """Arrival to decision; inf for unserved parts."""
        latency = (self.finished - self.scheduled) * 1e3
        return np.where(np.isnan(latency), np.inf, latency)


_Part = collections.namedtuple("_Part", "index scheduled")


def run_trial(serve: Callable[[Sequence[int]], Any], schedule: np.ndarray, policy: BatchPolicy, deadline_ms: float,
              *, lead_seconds: float = 0.05, clock: Callable[[], float] = time.perf_counter) -> Trial:
    """Issue parts at `schedule` (seconds from the start) from this thread; one worker thread calls
    `serve(part_indices)` on each batch the policy forms. Parts still waiting one deadline after the last
    arrival are dropped (unserved); the batch in service then is finished."""
    n = len(schedule)
    start = clock() + lead_seconds  # the worker is waiting before the first arrival
    scheduled = start + np.asarray(schedule, dtype=np.float64)
    issued = np.full(n, np.nan)
    finished = np.full(n, np.nan)
    queue_seen = np.zeros(n, dtype=np.int64)
    waiting: collections.deque[_Part] = collections.deque()
    lock = threading.Condition()
    state = {"closed": False, "abandon": False}
    batch_sizes: list[int] = []
    failure: list[BaseException] = []
    max_wait = policy.max_wait_ms / 1e3

    def worker() -> None:
        try:
            while True:
                with lock:
                    while not waiting and not state["closed"] and not state["abandon"]:
                        lock.wait()
                    if state["abandon"] or (not waiting and state["closed"]):
                        return
                    if policy.max_batch > 1:
                        until = waiting[0].scheduled + max_wait
                        while len(waiting) < policy.max_batch and not state["closed"]:
                            remaining = until - clock()
                            if remaining <= 0:
                                break
                            lock.wait(remaining)
                    batch = [waiting.popleft() for _ in range(min(policy.max_batch, len(waiting)))]
                serve([p.index for p in batch])
                done = clock()
                for p in batch:
                    finished[p.index] = done
                batch_sizes.append(len(batch))
        except BaseException as exc:  # surfaced in the caller's thread
            failure.append(exc)
            with lock:
                state["abandon"] = True

    thread = threading.Thread(target=worker, name="line-worker", daemon=True)
    switch = sys.getswitchinterval()
    # The generator needs the GIL on time while the worker runs Python between native calls; CPython's default
    # 5 ms switch interval would make it issue late by up to that much.
    sys.setswitchinterval(min(switch, 0.0005))
    thread.start()
    try:
        for i in range(n):
            while True:
                remaining = scheduled[i] - clock()
                if remaining <= 0:
                    break
                time.sleep(remaining)
            with lock:
                if state["abandon"]:
                    break
                queue_seen[i] = len(waiting)
                waiting.append(_Part(i, scheduled[i]))
                issued[i] = clock()
                lock.notify()
        with lock:
            state["closed"] = True
            lock.notify()
        thread.join(timeout=max(0.0, scheduled[-1] + deadline_ms / 1e3 - clock()))
        with lock:
            state["abandon"] = True
            lock.notify()
        thread.join()
    finally:
        sys.setswitchinterval(switch)
    if failure:
        raise failure[0]
    return Trial(deadline_ms, scheduled, issued, finished, queue_seen, batch_sizes)


def _percentile(values: np.ndarray, q: float) -> float:
    # "higher": an actual sample, and inf as soon as more than (100 - q)% of the parts were unserved
    return float(np.percentile(values, q, method="higher"))


def trial_record(trial: Trial, rate_hz: float) -> dict:
    """The flat record of one trial (see the module docstring)."""
    latency = trial.latencies_ms
    served = ~np.isnan(trial.finished)
    n = len(latency)
    first, last = float(trial.scheduled[0]), float(np.nanmax(trial.finished)) if served.any() else float("nan")
    span = last - first
    late = (trial.issued - trial.scheduled)[~np.isnan(trial.issued)] * 1e3
    return {
        "rate_hz": float(rate_hz),
        "arrivals": int(n),
        "parts_served": int(served.sum()),
        "parts_unserved": int(n - served.sum()),
        "throughput_ips": float(served.sum() / span) if span > 0 else None,
        "line_latency_ms_p50": _percentile(latency, 50),
        "line_latency_ms_p99": _percentile(latency, 99),
        "line_latency_ms_p999": _percentile(latency, 99.9),
        "line_latency_ms_mean": float(latency.mean()),
        "line_latency_ms_max": float(latency.max()),
        "deadline_ms": trial.deadline_ms,
        "deadline_miss_rate": float(np.mean(latency > trial.deadline_ms)),
        "queue_len_mean": float(trial.queue_seen.mean()),
        "queue_len_max": int(trial.queue_seen.max()),
        "batch_size_mean": float(np.mean(trial.batch_sizes)) if trial.batch_sizes else None,
        "issue_late_ms_p99": float(np.percentile(late, 99)) if late.size else None,
        "passed": bool(_percentile(latency, 99) <= trial.deadline_ms),
        "line_latency_samples_ms": [round(float(v), 4) if math.isfinite(v) else None for v in latency],
    }


# -- the search ------------------------------------------------------------------------------------------------
@dataclass
class Search:
    """The sustainable rate (None when no trial passed), every trial's record in order, and how it was decided."""

    rate_hz: float | None
    trials: list[dict]
    decision: str


def find_sustainable_rate(trial_at: Callable[[float], dict], start_rate: float, settings: LineSettings) -> Search:
    """Bracket, then bisect, the highest rate whose trial passes (`trial_at(rate)['passed']`)."""
    if not start_rate > 0:
        raise ValueError(f"the start rate must be > 0; got {start_rate}")
    trials: list[dict] = []
    passing, failing = None, None  # the highest passing, the lowest failing rate

    def trial(rate: float) -> bool:
        nonlocal passing, failing
        record = trial_at(rate)
        trials.append(record)
        if record["passed"]:
            passing = rate if passing is None else max(passing, rate)
        else:
            failing = rate if failing is None else min(failing, rate)
        return record["passed"]

    rate = start_rate
    while len(trials) < settings.max_trials and (passing is None or failing is None):
        rate = rate * settings.growth if trial(rate) else rate / settings.growth
    bracketing = len(trials)
    while (len(trials) < settings.max_trials and passing is not None and failing is not None
           and failing / passing > 1 + settings.tolerance):
        trial(math.sqrt(passing * failing))
    bisecting = len(trials) - bracketing
    if passing is not None and failing is not None and failing / passing <= 1 + settings.tolerance:
        why = f"the passing and failing rates are within {settings.tolerance:.0%}"
    else:
        why = f"--max-trials {settings.max_trials} reached"
    bounds = (f"highest passing {passing:.4g} Hz" if passing is not None else "no rate passed") + ", " + \
             (f"lowest failing {failing:.4g} Hz" if failing is not None else "no rate failed")
    decision = (f"pass = p99 latency <= {settings.deadline_ms:g} ms over {settings.seconds:g} s of "
                f"{settings.arrivals} arrivals; bracketed from {start_rate:.4g} Hz in steps of x{settings.growth:g} "
                f"({bracketing} trials), then {bisecting} bisection trials; {bounds}; stopped: {why}")
    return Search(passing, trials, decision)


# -- serving a pipeline ----------------------------------------------------------------------------------------
def service_estimate_ms(pipeline, calls: int = 5) -> float:
    """Median batch-1 end-to-end time of the pipeline (the search's start rate is its inverse)."""
    from bench.pipeline import frames_for

    frames = frames_for(pipeline.settings)
    pipeline.process([frames[0]])
    times = []
    for i in range(calls):
        started = time.perf_counter()
        pipeline.process([frames[i % len(frames)]])
        times.append((time.perf_counter() - started) * 1e3)
    return float(np.median(times))


def run_line(pipeline, policies: Sequence[BatchPolicy], settings: LineSettings, *, rate_hz: float | None = None,
             start_rate: float | None = None, say: Callable[[str], None] | None = None) -> list[dict]:
    """Every policy on one open `bench.pipeline.Pipeline`: a trial at `rate_hz` if given, else the search for the
    sustainable rate and the check trials at `settings.checks` times it. Returns one record per trial with
    `policy`, `max_batch`, `max_wait_ms`, `arrivals_process`, `kind` (fixed | search | check), `rate_factor`
    (check trials), `sustainable_rate_hz`, `search_trials`, `search_decision`, `service_ms_estimate`."""
    from bench.pipeline import frames_for

    frames = frames_for(pipeline.settings)
    pipeline.warm_up(sorted({1, *(p.max_batch for p in policies)}))
    service_ms = service_estimate_ms(pipeline)
    rows: list[dict] = []
    for policy in policies:
        def serve(indices: Sequence[int]) -> None:
            pipeline.process([frames[i % len(frames)] for i in indices])

        def trial_at(rate: float) -> dict:
            schedule = arrival_schedule(rate, settings.seconds, settings.arrivals, settings.seed)
            record = trial_record(run_trial(serve, schedule, policy, settings.deadline_ms), rate)
            if say:
                say(f"  {policy.label}: {rate:8.3f} Hz -> p99 {record['line_latency_ms_p99']:.1f} ms, "
                    f"misses {record['deadline_miss_rate']:.1%} ({'pass' if record['passed'] else 'fail'})")
            return record

        common = {"policy": policy.label, "max_batch": policy.max_batch, "max_wait_ms": policy.max_wait_ms,
                  "arrivals_process": settings.arrivals, "service_ms_estimate": service_ms}
        if rate_hz is not None:
            rows.append({**common, "kind": "fixed", "rate_factor": None, **trial_at(rate_hz),
                         "sustainable_rate_hz": None, "search_trials": None, "search_decision": None})
            continue
        search = find_sustainable_rate(trial_at, start_rate or 1e3 / service_ms, settings)
        found = {"sustainable_rate_hz": search.rate_hz, "search_trials": len(search.trials),
                 "search_decision": search.decision}
        rows.extend({**common, "kind": "search", "rate_factor": None, **t, **found} for t in search.trials)
        if search.rate_hz is not None:
            for factor in settings.checks:
                rows.append({**common, "kind": "check", "rate_factor": factor, **trial_at(search.rate_hz * factor),
                             **found})
    return rows


def build_detector(model: str, size: int | None = None, seed: int = 0, model_args: dict | None = None):
    """The registered model with the given seed and the `--model-arg` values its builder takes (as the runner
    builds it: `torch.manual_seed(seed)` first, so the same seed gives the same initial weights)."""
    import torch

    from models import create_detector
    from models.registry import detector_arguments

    accepted = detector_arguments(model)
    wanted = {"seed": seed, **(model_args or {})}
    unknown = sorted(set(model_args or {}) - accepted)
    if unknown:
        raise ValueError(f"--model-arg: {model} takes no {', '.join(unknown)}; it takes {', '.join(sorted(accepted))}")
    torch.manual_seed(seed)
    return create_detector(model, image_size=size, **{k: v for k, v in wanted.items() if k in accepted})


def line_scenario(model: str, *, variant: str = "torch-fp32", policies: Sequence[BatchPolicy] = (BatchPolicy(),),
                  line: LineSettings | None = None, pipeline_settings=None, rate_hz: float | None = None,
                  size: int | None = None, model_args: dict | None = None, plugins: Sequence[str] = (),
                  say: Callable[[str], None] | None = None):
    """The line scenario for one model and variant under each policy, as a pandas DataFrame (one row per trial;
    `model`, `variant`, the pipeline's `e2e_*` description columns and the variant's facts on every row)."""
    import pandas as pd

    from bench.pipeline import PipelineSettings, library_labels, open_pipeline
    from bench.plugins import load_plugins

    line = line or LineSettings()
    pipeline_settings = pipeline_settings or PipelineSettings()
    load_plugins(plugins)
    detector = build_detector(model, size, pipeline_settings.seed, model_args)
    settings = PipelineSettings(**{**pipeline_settings.__dict__, "variant": variant})
    with open_pipeline(detector, settings) as pipeline:
        rows = run_line(pipeline, policies, line, rate_hz=rate_hz, say=say)
        described = {"model": model, "variant": variant, **library_labels(settings.decoder),
                     "e2e_encoding": settings.encoding, "e2e_camera_size": settings.camera_label,
                     "e2e_input_size": pipeline.input_size, "seconds": line.seconds, "seed": line.seed,
                     **{k: v for k, v in pipeline.facts.items() if k in ("runtime", "provider", "precision")}}
    return pd.DataFrame([{**described, **row} for row in rows])


# -- the profile job's probe ---------------------------------------------------------------------------------
def policy_key(policy: BatchPolicy) -> str:
    """A policy's part of a column name: `b1`, or `b<B>w<W>` for dynamic batching (`b4w20`; `b4w2p5` for 2.5 ms)."""
    if policy.max_batch == 1:
        return "b1"
    return f"b{policy.max_batch}w{policy.max_wait_ms:g}".replace(".", "p")


def factor_key(factor: float) -> str:
    """`x1`, `x0p8`, `x1p2`: a multiple of the sustainable rate in a column name."""
    return "x" + f"{factor:g}".replace(".", "p")


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


AT_RATE = ("line_latency_ms_p50", "line_latency_ms_p99", "throughput_ips", "queue_len_mean", "queue_len_max",
           "batch_size_mean")


def line_summary(rows: list[dict], policies: Sequence[BatchPolicy], settings: LineSettings) -> dict:
    """`run_line`'s trial rows as one flat record, per policy (`line_<key>_`): `policy`, `sustainable_rate_hz`,
    `failing_rate_hz` (the lowest failing rate of the search: the sustainable rate lies between the two, as far
    as trials of this length can tell), `search_trials`, `search_decision`, `miss_rate_<x>` at each multiple of
    the sustainable rate (x1 from the search's own passing trial when 1 is not among the checks), the trial at
    the sustainable rate's p50/p99 latency, throughput, queue length and mean batch, and `trials` (every trial's
    kind, rate, p99, miss rate and verdict, in order)."""
    out: dict[str, Any] = {}
    for policy in policies:
        key = f"line_{policy_key(policy)}_"
        mine = [r for r in rows if r["policy"] == policy.label]
        if not mine:
            continue
        found = mine[0]["sustainable_rate_hz"]
        search = [r for r in mine if r["kind"] == "search"]
        failing = [r["rate_hz"] for r in search if not r["passed"]]
        out.update({key + "policy": policy.label, key + "sustainable_rate_hz": found,
                    key + "failing_rate_hz": min(failing) if failing else None,
                    key + "search_trials": mine[0]["search_trials"], key + "search_decision": mine[0]["search_decision"]})
        at_rate: dict[float, dict] = {}
        if found is not None:
            at_rate[1.0] = next(r for r in search if r["rate_hz"] == found)
        at_rate.update({float(r["rate_factor"]): r for r in mine if r["kind"] == "check"})
        for factor, trial in sorted(at_rate.items()):
            out[key + "miss_rate_" + factor_key(factor)] = trial["deadline_miss_rate"]
        if 1.0 in at_rate:
            out.update({key + column + "_x1": _finite(at_rate[1.0][column]) for column in AT_RATE})
        out[key + "trials"] = [{"kind": r["kind"], "rate_factor": r["rate_factor"], "rate_hz": round(r["rate_hz"], 4),
                                "p99_ms": _finite(r["line_latency_ms_p99"]), "miss_rate": r["deadline_miss_rate"],
                                "passed": r["passed"]} for r in mine]
    return out


def line_probe(pipeline, options: dict, service_ms: float | None = None, service_p99_ms: float | None = None) -> dict:
    """The line scenario on an open pipeline as the profile job records it. `options`: LineSettings fields,
    `policies` ([[max_batch, max_wait_ms], ...]) and optionally `max_service_ms`. `service_ms` and
    `service_p99_ms`: the batch-1 end-to-end p50 and p99 of the stage probe. The scenario is skipped, saying why,
    when the p99 is above the deadline (a part's latency is at least its own service time, so no rate, and no
    batching, could keep the p99 within it) or the p50 above `max_service_ms`."""
    fields = {k: (tuple(v) if k == "checks" else v) for k, v in options.items()
              if k in LineSettings.__dataclass_fields__}
    settings = LineSettings(**fields)
    policies = [BatchPolicy(int(b), float(w)) for b, w in options.get("policies", [[1, 0.0]])]
    record: dict[str, Any] = {"line_deadline_ms": settings.deadline_ms, "line_arrivals": settings.arrivals,
                              "line_seconds": settings.seconds, "line_max_trials": settings.max_trials,
                              "line_tolerance": settings.tolerance}
    if service_p99_ms is not None and service_p99_ms > settings.deadline_ms:
        record["line_note"] = (f"line scenario not run: the batch-1 end-to-end p99 ({service_p99_ms:.0f} ms) is above "
                               f"the {settings.deadline_ms:g} ms deadline, so no arrival rate could keep the p99 "
                               "within it")
        return record
    limit = options.get("max_service_ms")
    if limit is not None and service_ms is not None and service_ms > limit:
        record["line_note"] = (f"line scenario not run: the batch-1 end-to-end p50 ({service_ms:.0f} ms) is above "
                               f"{limit:g} ms, where trials of {settings.seconds:g} s hold too few parts to judge a "
                               f"p99 against the {settings.deadline_ms:g} ms deadline")
        return record
    # The search starts at 1 / the stage probe's batch-1 p50 (10+ calls) where the caller has one: a steadier
    # estimate than run_line's own 5 calls, which a busy moment can double, leaving 5 trials short of capacity.
    rows = run_line(pipeline, policies, settings, start_rate=1e3 / service_ms if service_ms else None)
    record["line_service_ms"] = service_ms or (rows[0]["service_ms_estimate"] if rows else None)
    record.update(line_summary(rows, policies, settings))
    return record


def pipeline_probe(variant, example, settings: dict, frames_dir: str | None = None) -> dict:
    """The end-to-end probe of a profile job (handed to bench.variants.profile_variants as `e2e_probe`): one
    prepared variant (`bench.variants.PreparedVariant`, its input side that of `example`, on `example`'s device)
    inside the pipeline, timed stage by stage (bench.pipeline.stage_latency's `e2e_*` columns), and with
    `settings["line"]` the line scenario on the same pipeline (`line_probe`'s `line_*` columns).
    `settings["pipeline"]`: PipelineSettings fields (camera size, encoding, decoder, timing). It lives here, not
    in bench.pipeline or bench.variants, because it joins the two: no import circle."""
    from bench.pipeline import PipelineSettings, open_pipeline, stage_record, time_stages

    options = {k: v for k, v in (settings.get("pipeline") or {}).items() if k not in ("input_size", "device", "variant")}
    pipeline_settings = PipelineSettings(**options, input_size=int(example.shape[-1]), device=str(example.device),
                                         variant=variant.name,
                                         frames_dir=str(frames_dir) if frames_dir is not None else None)
    with open_pipeline(variant, pipeline_settings) as pipeline:
        record = stage_record(pipeline, time_stages(pipeline))
        if settings.get("line"):
            record.update(line_probe(pipeline, settings["line"], service_ms=record["e2e_total_ms_p50"],
                                     service_p99_ms=record["e2e_total_ms_p99"]))
    return {k: v for k, v in record.items() if k.startswith(("e2e_", "line_"))}
