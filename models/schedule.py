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

Stages. A learning curve (`--train-minutes 1,3,10`) is ONE run fitted in stages: the schedule spans the whole
run, warming up at its start and reaching 0 at the last stage's end, and each earlier stage is evaluated on the
weights as they are at that point (`Budget.run_minutes`, `steps_done`, `seconds_done` say where a stage sits).
So the last stage is the model a run with that whole budget gives (`1,3,10` and `10` agree at 10), and the
earlier points show how that run got there, not the best a run of their own size could do (`--train-minutes 1`
answers that). Measured before choosing (U-Net, synthetic fabric at 64 px, 48 and 144 steps standing for 1
and 3 minutes, one seed; image / pixel AUROC): restarting the schedule per stage (warm-up and decay to 0 at
each stage's end) gave 0.800 / 0.864 after stage 1 and 0.828 / 0.973 after stage 2; one schedule gave
0.829 / 0.967 at the first point and 0.857 / 0.961 at the end, and an exponential moving average of its
weights did no better at the first point (0.821 / 0.957). The constant rate gave 0.853 / 0.933, then 0.734 /
0.903 at 144 steps: it got worse with training, which the decaying schedule does not.
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
    """The progress of a training run through its budget, on the budget's own clock(s), during one fit.

    `steps_allowed` (None: no step budget) and `seconds_allowed` (inf: no time budget) are the run's whole
    budget (the schedule's horizon); `steps_done` and `seconds_done` what earlier fits of the same run used of
    it; `now` is the wall clock (a fake one in tests), started when the fit starts.
    """

    def __init__(self, steps_allowed: float | None, seconds_allowed: float, *, steps_done: int = 0,
                 seconds_done: float = 0.0, now: Callable[[], float] = time.perf_counter):
        self.steps_allowed = steps_allowed
        self.seconds_allowed = seconds_allowed
        self.steps_done, self.seconds_done = steps_done, seconds_done
        self.now = now
        self.started = now()

    def elapsed(self) -> float:
        """Seconds since this fit started."""
        return self.now() - self.started

    def progress(self, steps: float) -> float:
        """After `steps` steps of this fit, now: the larger of the run's step fraction and its time fraction."""
        fractions = [0.0]
        if self.steps_allowed is not None and self.steps_allowed > 0:
            fractions.append((self.steps_done + steps) / self.steps_allowed)
        if math.isfinite(self.seconds_allowed) and self.seconds_allowed > 0:
            fractions.append((self.seconds_done + self.elapsed()) / self.seconds_allowed)
        return max(fractions)
