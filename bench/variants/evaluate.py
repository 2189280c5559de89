"""Accuracy cost: a trained detector's inference graph evaluated through each variant on the same test set.

`evaluate_variant` returns what bench/jobs/accuracy.py's evaluation returns for the metrics (scores, maps, labels,
masks; numpy, in the dataset's order), so the accuracy deltas (variant minus torch-fp32, paired over the
same images) can be computed with `accuracy_deltas` or bench.intervals.paired_delta_intervals, and those of the
operating points (each side's thresholds from its own validation scores) with `operating_point_deltas`.
`evaluate_variants` prepares each requested variant of the detector's inference module (static int8
calibrated on the caller's training images), evaluates it, and yields one `VariantEvaluation` per variant,
torch-fp32 first: the base of every delta.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch

from bench.measure import ProbeSettings
from bench.variants.base import PreparedVariant, VariantUnavailable
from bench.failures import first_line as _first_line
from bench.schema import OPERATING_POINT_DELTA_METRICS, POINT_DELTA_METRICS, delta_column
from bench.variants.table import REFERENCE_VARIANT, VARIANTS, parse_variants, prepare_variant


def evaluate_variant(variant: PreparedVariant, test_set, batch_size: int, *, image_level_only: bool = False
                     ) -> dict[str, np.ndarray]:
    """`scores` [N], `maps` [N,H,W] (unless image-level only), `labels` [N], `masks` [N,H,W] of `test_set`
    through `variant`, in the dataset's order."""
    loader = torch.utils.data.DataLoader(test_set, batch_size=batch_size, shuffle=False, num_workers=0)
    scores, maps, labels, masks = [], [], [], []
    for batch in loader:
        outputs = variant(batch["image"])
        scores.append(outputs[0].detach().float().cpu().numpy())
        if not image_level_only:
            if len(outputs) < 2:
                raise RuntimeError(f"{variant.name} gave {len(outputs)} output(s); a localising detector gives (scores, maps)")
            maps.append(outputs[1].detach().float().cpu().numpy())
        labels.append(batch["label"].numpy())
        masks.append(batch["mask"].numpy().astype(np.uint8))
    out = {"scores": np.concatenate(scores).astype(np.float32), "labels": np.concatenate(labels).astype(np.int8),
           "masks": np.concatenate(masks)}
    if maps:
        out["maps"] = np.concatenate(maps).astype(np.float32)
    return out


def accuracy_deltas(base: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> dict[str, float]:
    """The variant's metrics and `<metric>_delta` = variant minus base for every metric of
    bench.schema.POINT_DELTA_METRICS (point values; the paired intervals of the runner's deltas come from
    bench.intervals). Both evaluations must be of the same images in the same order."""
    from bench.metrics import compute_all

    if not np.array_equal(base["labels"], other["labels"]):
        raise ValueError("the two evaluations are not of the same test images")
    has_maps = "maps" in base and "maps" in other
    ours = compute_all(other["labels"], other["scores"], other["masks"] if has_maps else None, other.get("maps"))
    theirs = compute_all(base["labels"], base["scores"], base["masks"] if has_maps else None, base.get("maps"))
    record = dict(ours)
    # a metric undefined on this test set (None: e.g. no defect pixel) has no delta either
    record.update({delta_column(k): None if ours.get(k) is None or theirs.get(k) is None else ours[k] - theirs[k]
                   for k in POINT_DELTA_METRICS if k in ours and k in theirs})
    return record


def operating_point_deltas(base_points: dict, other_points: dict, labels, base_scores, other_scores, *,
                           target_fprs, resamples: int, level: float, seed: int) -> dict:
    """A variant's operating points minus the reference's, per target false-alarm rate (suffix s):
    `image_recall_at_fpr_{s}_delta` with a paired percentile-bootstrap interval (both sides' recall on the SAME
    stratified resamples of the test images: bench.stats.stratified_bootstrap_counts from default_rng(seed)),
    and the point deltas of the realised rates `image_fpr_at_val_thr_{s}_delta`,
    `image_miss_rate_at_val_thr_{s}_delta` (each side at ITS OWN validation threshold: a variant that moves the
    scores moves its threshold with them). `*_points`: the records' operating points
    (bench.operating_points.operating_points_with_intervals); None where either side's point is undefined."""
    from bench.operating_points import rate_suffix, recall_at_fpr_replicates
    from bench.stats import percentile_interval, stratified_bootstrap_counts

    labels = np.asarray(labels).ravel()
    counts = None
    out: dict = {}
    for target in target_fprs:
        suffix = rate_suffix(target)
        for metric in OPERATING_POINT_DELTA_METRICS:
            key = f"{metric}_{suffix}"
            a, b = base_points.get(key), other_points.get(key)
            delta = None if a is None or b is None else float(b) - float(a)
            out[f"{key}_delta"] = delta
            if metric != "image_recall_at_fpr":
                continue
            low = high = None
            if delta is not None:
                if counts is None:
                    counts = stratified_bootstrap_counts(labels, int(resamples), np.random.default_rng(seed))
                differences = (recall_at_fpr_replicates(labels, other_scores, counts, target)
                               - recall_at_fpr_replicates(labels, base_scores, counts, target))
                low, high = percentile_interval(differences, level)
                low, high = (None, None) if np.isnan(low) else (float(low), float(high))
            out[f"{key}_delta_ci_low"], out[f"{key}_delta_ci_high"] = low, high
    return out


@dataclass
class VariantEvaluation:
    variant: str
    status: str  # ok | skipped | failed
    error: str = ""
    facts: dict = field(default_factory=dict)  # runtime, provider, precision, math_mode, quantisation ...
    evaluation: dict | None = None  # evaluate_variant's arrays when status is ok


def evaluate_variants(detector, test_set, variants: str | Sequence[str], settings: ProbeSettings, *, batch_size: int,
                      calibration_images: torch.Tensor | None = None, reference: bool = True
                      ) -> Iterator[VariantEvaluation]:
    """Each variant of `detector.inference_module()` evaluated on `test_set`; torch-fp32 first unless
    `reference=False` (the caller already has the fp32 evaluation it will compare against)."""
    from bench.variants.ort_variants import OnnxExports

    others = [n for n in parse_variants(variants) if n != REFERENCE_VARIANT]
    names = ([REFERENCE_VARIANT] if reference else []) + others
    detector.train_mode(False)
    module = detector.inference_module().eval()
    first = test_set[0]["image"].unsqueeze(0)
    example = first.expand(min(batch_size, len(test_set)), *first.shape[1:]).contiguous().to(settings.device)
    image_level_only = bool(getattr(detector, "image_level_only", False))
    exports = OnnxExports(module, example, settings)
    try:
        for name in names:
            variant = None
            try:
                variant = prepare_variant(name, module, example, settings, exports=exports,
                                          calibration_images=calibration_images)
                ev = evaluate_variant(variant, test_set, batch_size, image_level_only=image_level_only)
                yield VariantEvaluation(name, "ok", facts=dict(variant.facts), evaluation=ev)
            except VariantUnavailable as exc:
                yield VariantEvaluation(name, "skipped", exc.reason, facts=_spec_facts(name))
            except Exception as exc:
                facts = dict(variant.facts) if variant is not None else _spec_facts(name)
                yield VariantEvaluation(name, "failed", _first_line(exc), facts=facts)
            finally:
                if variant is not None:
                    variant.close()
    finally:
        exports.cleanup()
        if any(n.startswith("torch-compile") for n in names):
            torch._dynamo.reset()  # drop the compiled graphs of this module


def _spec_facts(name: str) -> dict:
    spec = VARIANTS[name]
    return {"runtime": spec.runtime, "precision": spec.precision}
