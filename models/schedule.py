"""Budget-aware learning-rate schedules: warm up, then decay linearly to zero exactly when the budget ends.

Li, Yumer & Ramanan ("Budgeted Training", ICLR 2020) train under a fixed budget and find that a schedule
which knows the budget and reaches zero at its end beats schedules that ignore it, most of all at small
budgets; among the budget-aware shapes they compare (step, exponential, cosine, linear, polynomial), linear
decay to zero is the one they recommend: as good as the best of the others at every budget they tried.
We take linear, after a short linear warm-up (Adam's first steps from random initialisation are the
unstable ones).

The schedule is a function of the *progress* `p` in [0, 1]: the elapsed fraction of the budget, measured
on the budget's own clock (`FitClock`):
- an epoch (or step) budget counts optimiser steps, so a run is bit-reproducible;
- a minute budget counts wall-clock seconds;
- when both are given, the larger fraction (the budget that ends first) drives the schedule.

    factor(p) = p / w                 for p < w     (warm-up, w = `warmup`)
              = (1 - p) / (1 - w)     for w <= p <= 1
              = 0                     for p > 1

Each optimiser update uses the mean of `factor` over the stretch of the budget its step consumed,
[p at the step's start, p when the update is applied], so the learning rate integrated over the steps
equals the integral of the continuous schedule: no step is wasted at lr 0 (the first step of a warm-up,
the last one of a decay), and the schedule is at 0 when the budget is spent.
"""
from __future__ import annotations

import math
import time
from typing import Callable

SCHEDULES = ("budget", "constant")
DEFAULT_WARMUP = 0.05  # fraction of the budget spent warming up


def check_schedule(name: str) -> str:
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got {name!r}")
    return name


def budget_factor(progress: float, warmup: float = DEFAULT_WARMUP) -> float:
    """The schedule's multiplier of the base learning rate at progress p (0 at p=0 and for p >= 1)."""
    p = max(0.0, float(progress))
    if p >= 1.0:
        return 0.0
    if p < warmup:
        return p / warmup
    return (1.0 - p) / (1.0 - warmup)


def _integral(progress: float, warmup: float) -> float:
    """Integral of budget_factor from 0 to p (the whole schedule integrates to 1/2)."""
    p = min(max(0.0, float(progress)), 1.0)
    if p < warmup:
        return p * p / (2 * warmup)
    return warmup / 2 + ((1 - warmup) ** 2 - (1 - p) ** 2) / (2 * (1 - warmup))


def mean_budget_factor(start: float, end: float, warmup: float = DEFAULT_WARMUP) -> float:
    """The mean of budget_factor over [start, end] (its value at `start` when the stretch is empty)."""
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warm-up must be a fraction in [0, 1); got {warmup}")
    if end <= start:
        return budget_factor(start, warmup)
    return (_integral(end, warmup) - _integral(start, warmup)) / (end - start)


class FitClock:
    """The progress of one fit through its budget, on the budget's own clock(s).

    `steps_allowed` (None: no step budget) and `seconds_allowed` (inf: no time budget) are this fit's
    shares of the budget; `now` is the wall clock (a fake one in tests).
    """

    def __init__(self, steps_allowed: float | None, seconds_allowed: float,
                 now: Callable[[], float] = time.perf_counter):
        self.steps_allowed = steps_allowed
        self.seconds_allowed = seconds_allowed
        self.now = now
        self.started = now()

    def elapsed(self) -> float:
        return self.now() - self.started

    def progress(self, steps: float, seconds: float | None = None) -> float:
        """The larger of the step fraction and the time fraction (0 when neither budget is finite)."""
        fractions = [0.0]
        if self.steps_allowed is not None and self.steps_allowed > 0:
            fractions.append(steps / self.steps_allowed)
        if math.isfinite(self.seconds_allowed) and self.seconds_allowed > 0:
            fractions.append((self.elapsed() if seconds is None else seconds) / self.seconds_allowed)
        return max(fractions)

    @property
    def bounded(self) -> bool:
        """Whether the budget has an end the schedule can decay to."""
        return self.steps_allowed is not None or math.isfinite(self.seconds_allowed)
