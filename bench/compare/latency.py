"""Latency: is NEW slower than BASE, beyond what this machine's drift does to the same code?

A change counts when the Mann-Whitney U test finds it significant (p < alpha) AND the median moved by more
than the effect size (--latency-effect), as asv and benchstat decide. Both look at per-call samples; what
those samples are depends on what the two records carry (docs/measurements/latency-gate.md has the measurements behind this):

- `cpu/reference`: each call's process CPU time divided by the run's median CPU time of the reference
  workload timed between the calls. CPU time leaves out the time other processes held the core; the
  reference cancels what is left of the machine's state (caches shared with neighbours, clock). CPU runs on
  one machine.
- `wall/reference`: wall time over the reference's median wall time (a GPU, or records without CPU times).
- `wall`: the raw samples, when there is no reference on one side (pytest-benchmark files of other tools).
- `wall x peak`: across machines (or thread counts), each run's samples times its calibrated rate: the
  record's `best_kernel_gflops` (the best calibration kernel of the run, bench/variants/peaks.py), else the
  provenance's `device_peak_gflops` (an fp32 matmul peak, in runs made before the calibration kernels): work
  in units of the machine's own speed. A rough scale, labelled as such.

What the normalisation leaves of the drift between runs is not in one run's samples. When BASE is several
repeated runs of the same code, their spread is that drift, measured: NEW must then be slower than the
SLOWEST repeat by more than the effect size (and the rank test runs against all repeats' samples pooled).
NEW may be repeated runs too (a confirmation run of the rows that failed, as `make regress` makes): then
EVERY NEW run must be slower than the slowest BASE repeat by more than the effect size, so a drift that
struck one run does not fail the gate while a change in the code, which slows every run, still does.

Rounds of an A/B run (`bench ab --rounds R`: round k's BASE and NEW run of a job timed back to back) are
judged pair by pair instead: the change is the MEDIAN over the rounds of NEW's median over BASE's in that
round. The slowest-repeat rule lets one slow process veto a real slowdown: beside a CPU burner one of BASE's
two confirmation repeats of U-Net ran 28% slower than the other (43.2 against 33.6 ms of CPU time) and a +23%
slowdown went unconfirmed (docs/measurements/latency-gate.md). With three rounds one such process moves one
ratio, and the median passes it by; the code's slowdown moves all three.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench import stats
from bench.compare.findings import (IMPROVEMENT, NO_SAMPLES, NOT_COMPARABLE, NOT_JUDGED, REGRESSION, WITHIN_NOISE,
                                    Finding, option_note)

CPU = "cpu"
CPU_OVER_REFERENCE = "cpu/reference"
WALL_OVER_REFERENCE = "wall/reference"
WALL = "wall"
WALL_TIMES_PEAK = "wall x peak"

BASIS_LABELS = {
    CPU: "CPU time (A/B: both sides timed back to back on this machine)",
    CPU_OVER_REFERENCE: "CPU time / reference CPU time (same machine)",
    WALL_OVER_REFERENCE: "wall time / reference wall time (same machine)",
    WALL: "raw wall time (no reference workload on one side)",
    WALL_TIMES_PEAK: "wall time x matmul peak (different machines: normalised by each run's calibrated peak)",
}


@dataclass(frozen=True)
class LatencySides:
    """What one record carries for the latency test (lists in ms; empty when absent)."""

    wall: np.ndarray
    cpu: np.ndarray
    reference: np.ndarray
    reference_cpu: np.ndarray
    workload: str | None
    device: str | None
    peak_gflops: float | None

    @classmethod
    def of(cls, record: dict, provenance: dict) -> "LatencySides":
        def array(key: str) -> np.ndarray:
            values = record.get(key)
            if not isinstance(values, list):
                return np.empty(0)
            a = np.asarray([v for v in values if v is not None], dtype=np.float64)
            return a[np.isfinite(a)]

        peak = record.get("best_kernel_gflops") or provenance.get("device_peak_gflops")
        return cls(array("latency_samples_ms"), array("latency_cpu_samples_ms"), array("reference_samples_ms"),
                   array("reference_cpu_samples_ms"), record.get("reference_workload"),
                   record.get("device") or provenance.get("device"), float(peak) if peak else None)


BASIS_STRENGTH = (CPU_OVER_REFERENCE, CPU, WALL_OVER_REFERENCE, WALL)


def choose_basis(a: LatencySides, b: LatencySides, same_machine: bool, paired: bool = False) -> str:
    """CPU time over the reference's where both carry the same reference workload. Paired (an A/B run: BASE's
    and NEW's job timed back to back) on a CPU without a common reference (e.g. BASE recorded the first
    version, timed on its first call after the model's, which the model's own extra work slowed along:
    U-Net +31% CPU time read +1.7%): each call's CPU time as it is."""
    if not same_machine:
        return WALL_TIMES_PEAK if a.peak_gflops and b.peak_gflops else WALL
    same_workload = a.workload is not None and a.workload == b.workload
    on_cpu = str(a.device).startswith("cpu") and str(b.device).startswith("cpu")
    if same_workload and on_cpu and all(s.cpu.size == s.wall.size and s.reference_cpu.size > 0 for s in (a, b)):
        return CPU_OVER_REFERENCE
    if paired and on_cpu and all(s.cpu.size == s.wall.size and s.cpu.size > 0 for s in (a, b)):
        return CPU
    if same_workload and a.reference.size > 0 and b.reference.size > 0:
        return WALL_OVER_REFERENCE
    return WALL


def common_basis(bases: list[LatencySides], news: list[LatencySides], same_machine: bool,
                 paired: bool = False) -> str:
    """The strongest basis that every BASE repeat shares with every NEW run."""
    chosen = [choose_basis(a, b, same_machine, paired) for a in bases for b in news]
    if WALL_TIMES_PEAK in chosen:
        return WALL_TIMES_PEAK if all(c == WALL_TIMES_PEAK for c in chosen) else WALL
    return max(chosen, key=BASIS_STRENGTH.index)


def normalised(s: LatencySides, basis: str) -> np.ndarray:
    if basis == CPU:
        return s.cpu
    if basis == CPU_OVER_REFERENCE:
        return s.cpu / float(np.median(s.reference_cpu))
    if basis == WALL_OVER_REFERENCE:
        return s.wall / float(np.median(s.reference))
    if basis == WALL_TIMES_PEAK:
        return s.wall * s.peak_gflops / 1e3  # ms x GFLOP/s = MFLOP of peak-rate work; scaled for reading
    return s.wall


@dataclass(frozen=True)
class LatencyDecision:
    verdict: str
    change: float | None  # relative change of the median of the judged quantity (+0.3 = 30% slower)
    p_value: float | None
    reason: str


def decide(repeats: list[np.ndarray], new: np.ndarray | list[np.ndarray], *, alpha: float,
           effect: float, paired: bool = False) -> LatencyDecision:
    """The rule on per-call samples of BASE (one array per repeated run) and of NEW (one array, or one per
    repeated run): significant (Mann-Whitney U of all BASE samples pooled against all of NEW's, p < alpha) AND
    the median changed by more than `effect` beyond what the repeats spread over: slower when even NEW's
    fastest run is slower than BASE's slowest (new / slowest repeat - 1 > effect), faster when even NEW's
    slowest run is faster than BASE's fastest. With one run on each side that is new / base - 1. The change
    reported is between the pooled medians. `paired` with as many BASE as NEW runs (rounds of an A/B run, in
    order): slower when the median over the rounds of NEW's median / BASE's median - 1 exceeds `effect`, faster
    likewise with BASE over NEW. Sample counts with which the rank test, as it will run on them, can
    never reach p < alpha are `not judged (n too small)`, never `not significant`."""
    repeats = [a for a in repeats if a.size]
    news = [b for b in ([new] if isinstance(new, np.ndarray) else new) if b.size]
    if not repeats or not news:
        return LatencyDecision(NOT_COMPARABLE, None, None, "no samples on one side")
    pooled, pooled_new = np.concatenate(repeats), np.concatenate(news)
    medians = [float(np.median(a)) for a in repeats]
    new_medians = [float(np.median(b)) for b in news]
    if min(medians) <= 0 or min(new_medians) <= 0:
        return LatencyDecision(NOT_JUDGED, None, None, "a median of zero: below the clock's resolution")
    change = stats.relative_median_change(pooled, pooled_new)
    # The guard asks the test as it will run: pooled repeats can exceed 8 samples a side, and ties (a coarse
    # clock) switch small samples to the normal approximation, whose best p is larger than the exact test's.
    exact = stats.uses_exact_method(pooled, pooled_new)
    floor = stats.smallest_attainable_p(pooled.size, pooled_new.size, exact=exact)
    if floor >= alpha:
        method = "exact" if exact else ("normal approximation, tied values" if pooled.size <= stats.EXACT_LIMIT and
                                        pooled_new.size <= stats.EXACT_LIMIT else "normal approximation")
        return LatencyDecision(NOT_JUDGED, change, None,
                               f"{NOT_JUDGED} (n too small): {pooled.size} and {pooled_new.size} samples: the rank "
                               f"test ({method}) cannot reach p < {alpha:g} (at best p = {floor:.3g}); time more calls")
    p = stats.mann_whitney_u(pooled, pooled_new).p_value
    if paired and len(repeats) == len(news) > 1:
        return _decide_rounds(medians, new_medians, change, p, alpha=alpha, effect=effect)
    slower = min(new_medians) / max(medians) - 1.0
    faster = min(medians) / max(new_medians) - 1.0
    spread = f" (beyond the {len(repeats)} BASE repeats' spread of {max(medians) / min(medians) - 1:.1%})" \
        if len(repeats) > 1 else ""
    every = f" in each of NEW's {len(news)} runs" if len(news) > 1 else ""
    if p < alpha and slower > effect:
        return LatencyDecision(REGRESSION, change, p,
                               f"slower by {slower:+.1%}{every}{spread} > {effect:.0%}, p = {p:.2g}")
    if p < alpha and faster > effect:
        return LatencyDecision(IMPROVEMENT, change, p,
                               f"faster by {faster:.1%}{every}{spread} > {effect:.0%}, p = {p:.2g}")
    if len(news) > 1 and p < alpha and max(new_medians) / max(medians) - 1.0 > effect:
        return LatencyDecision(WITHIN_NOISE, change, p,
                               f"not confirmed: one of NEW's {len(news)} runs was slower by "
                               f"{max(new_medians) / max(medians) - 1:+.1%}, another by {slower:+.1%}{spread}, "
                               f"within --latency-effect {effect:.0%}")
    if p < alpha:
        return LatencyDecision(WITHIN_NOISE, change, p,
                               f"significant, but within --latency-effect {effect:.0%}" +
                               (f" of the {len(repeats)} BASE repeats' range" if len(repeats) > 1 else ""))
    return LatencyDecision(WITHIN_NOISE, change, p, f"not significant (p = {p:.2g})")


def _decide_rounds(medians: list[float], new_medians: list[float], change: float, p: float, *, alpha: float,
                   effect: float) -> LatencyDecision:
    """The rule for R paired rounds: the median over the rounds of each round's NEW / BASE median."""
    ratios = [b / a for a, b in zip(medians, new_medians)]
    slower = float(np.median(ratios)) - 1.0
    faster = float(np.median([1.0 / r for r in ratios])) - 1.0
    each = ", ".join(f"{r - 1:+.1%}" for r in ratios)
    rounds = f"the median of {len(ratios)} rounds' NEW/BASE ratios ({each})"
    if p < alpha and slower > effect:
        return LatencyDecision(REGRESSION, change, p, f"slower by {slower:+.1%}, {rounds} > {effect:.0%}, p = {p:.2g}")
    if p < alpha and faster > effect:
        return LatencyDecision(IMPROVEMENT, change, p, f"faster by {faster:.1%}, {rounds} > {effect:.0%}, p = {p:.2g}")
    if p < alpha and max(ratios) - 1.0 > effect:
        return LatencyDecision(WITHIN_NOISE, change, p, f"not confirmed: {rounds} is {slower:+.1%}, within "
                                                        f"--latency-effect {effect:.0%}")
    if p < alpha:
        return LatencyDecision(WITHIN_NOISE, change, p, f"significant, but {rounds} is within --latency-effect "
                                                        f"{effect:.0%}")
    return LatencyDecision(WITHIN_NOISE, change, p, f"not significant (p = {p:.2g}); {rounds}")


def outlasts_reference(bases: list[LatencySides], basis: str) -> bool:
    """Whether BASE's calls take longer than the reference workload (on the judged basis)."""
    if basis not in (CPU_OVER_REFERENCE, WALL_OVER_REFERENCE):
        return False
    return float(np.median(np.concatenate([normalised(a, basis) for a in bases]))) >= 1.0


def shorter_than_reference(bases: list[LatencySides]) -> bool:
    """Whether BASE's calls take less time than the reference workload timed beside them (False without one)."""
    pairs = [(a.cpu, a.reference_cpu) if a.cpu.size and a.reference_cpu.size else (a.wall, a.reference)
             for a in bases]
    pairs = [(m, r) for m, r in pairs if m.size and r.size]
    if not pairs:
        return False
    return float(np.median(np.concatenate([m for m, _ in pairs]))) < float(np.median(np.concatenate([r for _, r in pairs])))


def compare_latency(job: str, bases: list[tuple[dict, dict]], news: list[tuple[dict, dict]], *,
                    same_machine: bool, gate: bool, alpha: float, effect: float,
                    busier_than_base: str = "", allow_missing: bool = False, paired: bool = False) -> list[Finding]:
    """One finding for a record that carries latency samples in BASE and in NEW, each one or more repeated runs
    ((record, provenance) pairs); [] when neither side has any. Samples in BASE and none in NEW fail unless
    `allow_missing` (a latency that stopped being measured is not a pass); samples in NEW only are listed."""
    a_all = [LatencySides.of(record, provenance) for record, provenance in bases]
    a_all = [a for a in a_all if a.wall.size] or a_all[:1]
    b_all = [LatencySides.of(record, provenance) for record, provenance in news]
    b_all = [b for b in b_all if b.wall.size] or b_all[:1]
    if a_all[0].wall.size == 0 and b_all[0].wall.size == 0:
        return []
    p50_a = float(np.median(np.concatenate([a.wall for a in a_all]))) if a_all[0].wall.size else None
    p50_b = float(np.median(np.concatenate([b.wall for b in b_all]))) if b_all[0].wall.size else None
    if p50_b is None:
        return [Finding(job, "latency", "latency p50 ms", p50_a, p50_b, None, None, NOT_COMPARABLE, not allow_missing,
                        f"no latency samples in NEW (BASE has them); {option_note('--allow-missing', allow_missing)}",
                        NO_SAMPLES)]
    if p50_a is None:
        return [Finding(job, "latency", "latency p50 ms", p50_a, p50_b, None, None, NOT_COMPARABLE, False,
                        "no latency samples in BASE: a new measurement, nothing to compare it with")]
    basis = common_basis(a_all, b_all, same_machine, paired)
    decision = decide([normalised(a, basis) for a in a_all], [normalised(b, basis) for b in b_all],
                      alpha=alpha, effect=effect, paired=paired)
    raw = p50_b / p50_a - 1.0
    notes = [decision.reason, f"judged on {BASIS_LABELS[basis]}"]
    if len(a_all) > 1:
        notes.append(f"BASE: {len(a_all)} repeated runs")
    elif decision.verdict in (REGRESSION, IMPROVEMENT) and not paired:
        notes.append("one BASE run: this machine's drift between runs is unknown; give BASE as a folder of "
                     "repeated runs to allow for it")
    if len(b_all) > 1:
        notes.append(f"NEW: {len(b_all)} repeated runs")
    if basis != WALL:
        notes.append(f"raw p50 change {raw:+.1%}")
    why_not = "" if gate else "the runs come from different machines or thread counts"
    if gate and busier_than_base and not outlasts_reference(a_all, basis):
        # Calls shorter than the reference slow down with a busier machine's cold caches where the reference
        # does not (pixel_stats' normalised time moved 9-15% between runs, U-Net's 6%: docs/measurements/latency-gate.md).
        why_not = busier_than_base + ("" if basis != WALL else ", and there is no reference to normalise by") + \
            ("; this call is shorter than the reference workload" if basis != WALL else "")
    if gate and paired and shorter_than_reference(a_all):
        # Measured in an A/B run of identical code beside a CPU burner: pixel_stats' 0.4 ms calls read +28.6%
        # (torch) and +18.7% (ONNX Runtime) while every longer call stayed within 7.5%: what the other core does
        # to the shared caches moves a call shorter than the reference more than code does
        why_not = "a call shorter than the reference workload: in an A/B run its CPU time follows the caches " \
                  "the other core leaves it more than the code"
    fails = decision.verdict == REGRESSION and not why_not
    if decision.verdict == REGRESSION and why_not:
        notes.append(f"not gated: {why_not}")
    return [Finding(job, "latency", "latency p50 ms", p50_a, p50_b, decision.change, decision.p_value,
                    decision.verdict, fails, "; ".join(notes))]

