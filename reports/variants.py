"""Deployment variants side by side: a variant's speed-up over torch-fp32 and its accuracy cost, and the
fastest variant that stays within a tolerance of torch-fp32's image AUROC."""
from __future__ import annotations

import math
from dataclasses import dataclass

from reports.run_data import REFERENCE_VARIANT, RunView, interval, is_present, latency_percentiles

AUROC_TOLERANCE = 0.01


@dataclass(frozen=True)
class VariantChoice:
    variant: str
    batch_size: int | None
    p50_ms: float
    speedup: float  # torch-fp32 p50 / this variant's p50, at the same batch size
    image_auroc_delta: float  # variant minus torch-fp32 on the mean row (0 for torch-fp32 itself)


def p50_of(run: RunView, model: str, variant: str) -> float:
    """A variant's p50 latency (ms) at the model's compared batch size; NaN unless that record finished."""
    record = run.profile_record(model, variant)
    if record is None or record.get("status") != "ok":
        return math.nan
    return latency_percentiles(record)[0]


def speedup(run: RunView, model: str, variant: str) -> float:
    """torch-fp32 p50 / variant p50 at the same batch size (above 1: the variant is faster)."""
    reference, mine = p50_of(run, model, REFERENCE_VARIANT), p50_of(run, model, variant)
    if not (is_present(reference) and is_present(mine)) or mine <= 0:
        return math.nan
    return reference / mine


def accuracy_delta(run: RunView, model: str, dataset: str, variant: str, metric: str = "image_auroc") -> tuple[float, float, float]:
    """(delta, ci_low, ci_high) of a variant against torch-fp32 on the (model, dataset) mean row; NaN where
    the variant's accuracy was not measured."""
    row = run.mean_row(model, dataset, variant)
    if row is None:
        return (math.nan, math.nan, math.nan)
    return interval(row, f"{metric}_delta")


def fastest_within(run: RunView, model: str, dataset: str, tolerance: float = AUROC_TOLERANCE) -> tuple[VariantChoice | None, str]:
    """The fastest variant (lowest p50 at the model's compared batch size) whose mean image AUROC is at most
    `tolerance` below torch-fp32's, and why not when there is none.

    Only variants whose accuracy delta was measured count (a fast variant nobody evaluated is not a safe
    choice); torch-fp32 itself always counts, as the reference. The point estimate of the delta decides, not
    its interval. Returns (choice, note); choice is None when the question cannot be answered."""
    reference_p50 = p50_of(run, model, REFERENCE_VARIANT)
    if not is_present(reference_p50):
        return None, "no torch-fp32 latency for this model"
    batch = run.model_batch(model)
    candidates = [VariantChoice(REFERENCE_VARIANT, batch, reference_p50, 1.0, 0.0)]
    measured, unmeasured = [], []
    for variant in run.variants():
        if variant == REFERENCE_VARIANT:
            continue
        p50 = p50_of(run, model, variant)
        delta = accuracy_delta(run, model, dataset, variant)[0]
        if not is_present(delta):
            if is_present(p50):
                unmeasured.append(variant)
            continue
        measured.append(variant)
        if is_present(p50) and delta >= -tolerance - 1e-12:
            candidates.append(VariantChoice(variant, batch, p50, reference_p50 / p50, delta))
    if not measured:
        return None, "no variant's accuracy delta was measured (run a training suite with --variants)"
    best = min(candidates, key=lambda c: c.p50_ms)
    note = f"considered (accuracy delta measured): {', '.join([REFERENCE_VARIANT] + measured)}"
    if unmeasured:
        note += f"; left out (timed, accuracy not measured): {', '.join(unmeasured)}"
    return best, note


def choice_text(choice: VariantChoice | None) -> str:
    if choice is None:
        return ""
    return f"{choice.variant} (x{choice.speedup:.2f})"
