"""The accuracy job: fit one model on one category with one seed, evaluate it after each training stage, and
yield one record per stage as soon as that stage ends (so it is on disk before the next stage trains).

Before training, the job holds its validation normals out of the training split (`validation_split_of`,
datasets/splits.py: never trained on); after each stage it scores them too, and the record carries the operating
points set on them (bench/operating_points.py: thresholds, the rates they realise on the test set, recall at a
false-alarm rate, with intervals). Where none are held out, the threshold-based points are empty with the reason.

With --labelled-defects, one stage: k fold models, each trained for the budget (`fit_on_labelled_folds`); no
validation normals (one threshold cannot serve k models).
"""
from __future__ import annotations

import gc
import math
import os
import time
import traceback
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from bench.failures import first_line
from bench.jobs.common import build_detector, host, now, probe_settings
from bench.jobs.spec import JobSpec

TRAINING_FACTS = ("train_seconds", "epochs", "steps", "final_loss", "stopped_by", "schedule")
NO_EPOCH_CAP = 10**9


def gallery_indices(labels: np.ndarray, count: int) -> np.ndarray:
    """The same test images for every model: a third normal, the rest defective, evenly spaced."""
    normal, defective = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    n_normal = min(len(normal), max(1, count // 3))
    n_def = min(len(defective), count - n_normal)
    pick = lambda idx, n: idx[np.linspace(0, len(idx) - 1, n).round().astype(int)] if n > 0 else idx[:0]  # noqa: E731
    return np.concatenate([pick(normal, n_normal), pick(defective, n_def)])


def evaluate(detector, test_set, batch_size: int) -> dict[str, np.ndarray]:
    loader = torch.utils.data.DataLoader(test_set, batch_size=batch_size, shuffle=False, num_workers=0)
    scores, maps, labels, masks, images, paths = [], [], [], [], [], []
    for batch in loader:
        s, m = detector.predict(batch["image"])
        scores.append(s)
        if m is not None:
            maps.append(m.astype(np.float32))
        labels.append(batch["label"].numpy())
        masks.append(batch["mask"].numpy().astype(np.uint8))
        images.append((batch["image"].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8))
        paths.extend(batch["path"])
    out = {"scores": np.concatenate(scores).astype(np.float32), "labels": np.concatenate(labels).astype(np.int8),
           "masks": np.concatenate(masks), "images": np.concatenate(images), "paths": np.asarray(paths)}
    if maps:
        out["maps"] = np.concatenate(maps)
    return out


def accuracy_metrics(ev: dict, intervals: dict) -> dict:
    """Every metric with its test-set interval, each metric on its own (an undefined one is empty, with why)."""
    from bench.intervals import accuracy_with_intervals

    has_maps = "maps" in ev
    return accuracy_with_intervals(ev["labels"], ev["scores"], ev["masks"] if has_maps else None, ev.get("maps"),
                                   resamples=intervals["resamples"], level=intervals["level"], seed=intervals["seed"])


# The operating points that need the validation normals' threshold: empty, with the split's reason, without them.
THRESHOLD_METRICS = ("image_val_threshold", "image_fpr_at_val_thr", "image_miss_rate_at_val_thr", "pixel_val_threshold",
                     "pixel_f1_at_val_thr")


def _undefined_parts(text: str) -> dict[str, str]:
    """'a, b: why; c: other' -> {a: why, b: why, c: other} (bench.metrics.describe_undefined, read back)."""
    parts: dict[str, str] = {}
    for clause in filter(None, (c.strip() for c in str(text or "").split(";"))):
        names, _, why = clause.partition(": ")
        parts.update({name.strip(): why for name in names.split(",")})
    return parts


def operating_points(ev: dict, val_ev: dict | None, settings: dict, val_note: str = "") -> dict:
    """The stage's operating points (bench.operating_points) with the job's interval settings: thresholds from
    the validation normals' scores and maps (`val_ev`), rates on the test set (`ev`). Without validation normals
    (`val_ev` None) the threshold-free points are still computed and every threshold-based one is empty with
    `val_note` as its reason. Keys: the kernel's, `val_normals_note` and `val_scores`."""
    from bench.metrics import describe_undefined
    from bench.operating_points import DEFAULT_TARGET_FPRS, operating_points_with_intervals
    from bench.schema import operating_point_parts

    intervals = settings["intervals"]
    has_maps = "maps" in ev
    val_scores = val_ev["scores"] if val_ev is not None else np.zeros(0, dtype=np.float32)
    out = operating_points_with_intervals(
        val_scores, ev["labels"], ev["scores"], val_ev.get("maps") if val_ev is not None else None,
        ev["masks"] if has_maps else None, ev.get("maps"),
        target_fprs=tuple(settings.get("target_fprs") or DEFAULT_TARGET_FPRS), resamples=intervals["resamples"],
        level=intervals["level"], seed=intervals["seed"])
    if val_ev is None:
        undefined = _undefined_parts(out["operating_points_undefined"])
        for key in list(out):
            parts = operating_point_parts(key)
            if parts and parts[0] in THRESHOLD_METRICS and parts[2] == "":
                out.update({key: None, f"{key}_ci_low": None, f"{key}_ci_high": None})
                undefined[key] = val_note or "no validation normals held out"
        out["operating_points_undefined"] = describe_undefined(undefined)
    out.update(val_normals_note=val_note, val_scores=[round(float(s), 7) for s in val_scores])
    return out


def merge_operating_points(record: dict, points: dict) -> None:
    """The operating points into `record`; their reasons appended to its `undefined_metrics` with '; '."""
    record.update(points)
    reasons = [text for text in (record.get("undefined_metrics"), points.get("operating_points_undefined")) if text]
    record["undefined_metrics"] = "; ".join(reasons)


def validation_split_of(spec: JobSpec, train_set) -> tuple:
    """(training images, validation normals or None, why none): the job's validation normals held out of the
    training split (datasets/splits.py: seeded by the job's seed, the same for every model)."""
    from datasets.splits import validation_count, validation_split

    settings = spec.settings
    if settings.get("labelled_defects") is not None:
        return train_set, None, ("no validation normals held out, --labelled-defects trains one model per fold "
                                 "and no single threshold serves them")
    if "val_normals" not in settings:  # a deploy job of a run made before the split: its models saw every image
        return train_set, None, "no validation normals held out, the run that trained this model held none out"
    count, note = validation_count(len(train_set), settings["val_normals"])
    if not count:
        return train_set, None, note
    train_idx, val_idx = validation_split(len(train_set), count, spec.seed)
    return (torch.utils.data.Subset(train_set, train_idx.tolist()),
            torch.utils.data.Subset(train_set, val_idx.tolist()), "")


def _train_loader(data, batch_size: int, seed: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, num_workers=0,
                                       generator=torch.Generator().manual_seed(seed),
                                       drop_last=len(data) > batch_size)


def _save_gallery(ev: dict, path: Path, count: int) -> None:
    pick = gallery_indices(ev["labels"], count)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: ev[k][pick] for k in ("images", "masks", "scores", "labels", "paths")}
    if "maps" in ev:
        arrays["maps"] = ev["maps"][pick].astype(np.float16)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def fit_on_labelled_folds(spec: JobSpec, device, train_set, test_set, budget, progress) -> tuple[dict, dict]:
    """--labelled-defects N: k folds over the test set; each fold's model trains on the normal training images
    plus up to N labelled defects from the OTHER folds (no synthetic anomalies) and scores its own fold only.
    Returns the merged evaluation (every test image scored exactly once) and the summed training facts."""
    from datasets.splits import labelled_folds

    settings = spec.settings
    labels = np.array([int(s.label) for s in test_set.samples])
    parts, facts = [], {"train_seconds": 0.0, "steps": 0, "epochs": 0, "final_loss": float("nan"), "stopped_by": ""}
    folds = labelled_folds(labels, settings["labelled_defects"], k=settings["folds"], seed=spec.seed)
    detector = None
    for fold, (train_idx, eval_idx) in enumerate(folds):
        torch.manual_seed(spec.seed + fold)
        detector = build_detector(spec.model, spec.image_size, spec.seed, settings, synthetic_anomalies=False,
                                  anomaly_probability=0.0).to(device)
        data = torch.utils.data.ConcatDataset([train_set, torch.utils.data.Subset(test_set, train_idx.tolist())])
        report = detector.fit(_train_loader(data, settings["train_batch_size"], spec.seed), budget, progress=progress)
        facts.update(train_seconds=facts["train_seconds"] + report.train_seconds, steps=facts["steps"] + report.steps,
                     epochs=facts["epochs"] + report.epochs, final_loss=report.final_loss, stopped_by=report.stopped_by)
        ev = evaluate(detector, torch.utils.data.Subset(test_set, eval_idx.tolist()), settings["train_batch_size"])
        ev["index"] = eval_idx
        parts.append(ev)
    order = np.argsort(np.concatenate([p["index"] for p in parts]))
    merged = {k: np.concatenate([p[k] for p in parts])[order] for k in parts[0] if k != "index"}
    facts.update(detector.info(), folds=settings["folds"], labelled_defects=settings["labelled_defects"])
    return merged, facts


def stage_name(minutes: float | None) -> str:
    return f"{minutes:g}min" if minutes is not None else "final"


def stage_checkpoint(spec: JobSpec, minutes: float | None) -> Path:
    """Where this stage's weights are: written by training, read by --eval-only; --suite deploy reads the
    checkpoint the earlier run recorded (`spec.previous`)."""
    if spec.mode == "deploy":
        return Path(spec.previous[stage_name(minutes)]["checkpoint_path"])
    return Path(spec.run_dir) / "checkpoints" / f"{spec.job_id}__{stage_name(minutes)}.safetensors"


def variant_records(spec: JobSpec, detector, test_set, train_set, fp32: dict, ev: dict,
                    progress: Callable[[str], None] | None, val_set=None, val_note: str = "") -> Iterator[dict]:
    """The stage's accuracy through each deployment variant of the trained graph (--variants on a training suite,
    or --suite deploy): the variant's metrics with their intervals, and its deltas against torch-fp32 with a
    paired interval (the same resampled test images for both). Each variant scores the validation normals too
    and its operating points use ITS OWN thresholds (an int8 graph that keeps AUROC may move them)."""
    from bench.intervals import paired_delta_intervals
    from bench.variants import calibration_images_from, evaluate_variants
    from bench.operating_points import DEFAULT_TARGET_FPRS
    from bench.variants.evaluate import operating_point_deltas

    settings = spec.settings
    others = [v for v in settings.get("accuracy_variants", []) if v != "torch-fp32"]
    if not others:
        return
    keep = {k: fp32[k] for k in (*TRAINING_FACTS, "train_minutes", "checkpoint", "data_fingerprint", "n_test",
                                 "n_test_defective", "n_train", "pretrained", "started_at") if k in fp32}
    calibration = calibration_images_from(train_set) if "ort-int8-static" in others else None
    intervals = settings["intervals"]
    n_test = len(test_set)
    # one pass over the test images and the validation normals after them, split again below
    images = test_set if val_set is None else torch.utils.data.ConcatDataset([test_set, val_set])
    evaluations = evaluate_variants(detector, images, others, probe_settings(spec), reference=False,
                                    batch_size=settings["train_batch_size"], calibration_images=calibration)
    for result in evaluations:
        if progress:
            progress(f"variant {result.variant}")
        record = {**spec.base_record(), "host": fp32.get("host"), **keep, **result.facts, "variant": result.variant,
                  "status": result.status, "error": result.error}
        if result.status == "ok":
            other = {k: v[:n_test] for k, v in result.evaluation.items()}
            other_val = {k: v[n_test:] for k, v in result.evaluation.items()} if val_set is not None else None
            record.update(accuracy_metrics(other, intervals))
            record.update(paired_delta_intervals(ev["labels"], ev["masks"] if "maps" in ev else None, ev["scores"],
                                                 ev.get("maps"), other["scores"], other.get("maps"),
                                                 resamples=intervals["resamples"], level=intervals["level"],
                                                 seed=intervals["seed"]))
            points = operating_points(other, other_val, settings, val_note)
            merge_operating_points(record, points)
            record.update(operating_point_deltas(fp32, points, ev["labels"], ev["scores"], other["scores"],
                                                 target_fprs=settings.get("target_fprs") or DEFAULT_TARGET_FPRS,
                                                 resamples=intervals["resamples"], level=intervals["level"],
                                                 seed=intervals["seed"]))
            record.update(scores=[round(float(s), 7) for s in other["scores"]], labels=fp32["labels"])
        yield record


def run_accuracy(spec: JobSpec, progress: Callable[[str], None] | None = None) -> Iterator[dict]:
    """One record per stage of `spec.stages` (minutes after which to evaluate; None = until the epoch cap), and
    per deployment variant when the job has several."""
    import datasets
    from bench.fingerprint import test_set_fingerprint
    from datasets.in_memory import InMemory
    from models.base import Budget

    settings = spec.settings
    device = torch.device(spec.device)
    run_dir = Path(spec.run_dir)
    base = dict(spec.base_record(), host=host())
    cap = settings["epochs"] if settings["epochs"] is not None else NO_EPOCH_CAP
    last_stage = spec.stages[-1] if spec.stages and spec.stages[-1] is not None else None
    stage_losses: list[float] = []  # the training loss of each step of the current stage, for `train_losses`

    def report_step(step, loss):
        stage_losses.append(loss)
        if progress:
            progress(f"step {step} loss {loss:.4g}")
    produced: set = set()
    started = time.perf_counter()
    trained_seconds, steps, epochs_done = 0.0, 0, 0
    final_loss, stopped_by = float("nan"), ""
    try:
        torch.manual_seed(spec.seed)
        np.random.seed(spec.seed)
        root = Path(spec.data_root) if spec.data_root else None
        # decoded once for the job: every epoch and every stage's evaluation read them again; `data_pipeline`: a
        # recipe's resize-then-crop and test subset (bench/plan.py, the paper suite), absent elsewhere
        pipeline = settings.get("data_pipeline") or {}
        train_set = InMemory(datasets.open_dataset(spec.dataset, root, spec.category or None, "train", spec.image_size,
                                                   **pipeline))
        test_set = InMemory(datasets.open_dataset(spec.dataset, root, spec.category or None, "test", spec.image_size,
                                                  **pipeline))
        train_set, val_set, val_note = validation_split_of(spec, train_set)  # the held-out normals are not trained on
        if val_note and progress:
            progress(val_note)
        fingerprint = test_set_fingerprint(spec.dataset, root, spec.category, test_set)
        labelled = settings.get("labelled_defects") is not None
        detector = None if labelled else build_detector(spec.model, spec.image_size, spec.seed, settings).to(device)
        previous = 0.0
        for minutes in spec.stages:
            record = dict(base, status="ok", error="", started_at=now(), train_minutes=minutes)
            stage_minutes = math.inf if minutes is None else minutes - previous
            # One run: the epoch cap counts every stage's steps (a stage past it trains 0 steps), and one schedule
            # spans all stages, reaching zero at the last stage's end (models/schedule.py, "Stages").
            budget = Budget(epochs=cap, minutes=stage_minutes, steps_done=steps, run_minutes=last_stage,
                            seconds_done=previous * 60.0, schedule=settings["schedule"])
            previous = minutes if minutes is not None else previous
            ckpt = stage_checkpoint(spec, minutes)
            if labelled:
                ev, facts = fit_on_labelled_folds(spec, device, train_set, test_set, budget, report_step)
            elif spec.mode in ("eval_only", "deploy"):
                if not ckpt.is_file():
                    raise FileNotFoundError(f"--{spec.mode.replace('_', '-')}: no checkpoint {ckpt}"
                                            + (" (train first, without --eval-only)" if spec.mode == "eval_only" else ""))
                detector.load(ckpt)
                ev = evaluate(detector, test_set, settings["train_batch_size"])
                facts = {k: v for k, v in (spec.previous.get(stage_name(minutes)) or {}).items() if k in TRAINING_FACTS}
                facts.update(checkpoint=str(ckpt.relative_to(run_dir)) if ckpt.is_relative_to(run_dir) else str(ckpt),
                             evaluated_from_checkpoint=True, **detector.info())
            else:
                stage_losses.clear()
                report = detector.fit(_train_loader(train_set, settings["train_batch_size"], spec.seed), budget,
                                      progress=report_step)  # past the run's epoch cap it trains 0 steps
                trained_seconds += report.train_seconds
                steps += report.steps
                epochs_done = round(steps / report.batches_per_epoch, 3)
                if report.steps:
                    final_loss = report.final_loss
                stopped_by = report.stopped_by
                detector.save(ckpt)
                ev = evaluate(detector, test_set, settings["train_batch_size"])
                # this stage's part of the loss curve; its first step is step `steps - len(train_losses) + 1` of the run
                facts = dict(train_seconds=trained_seconds, epochs=epochs_done, steps=steps, final_loss=final_loss,
                             train_losses=[float(f"{v:.5g}") for v in stage_losses],
                             stopped_by=stopped_by, schedule=settings["schedule"],
                             checkpoint=str(ckpt.relative_to(run_dir)), **detector.info())
            record.update(accuracy_metrics(ev, settings["intervals"]))
            val_ev = evaluate(detector, val_set, settings["train_batch_size"]) if val_set is not None else None
            merge_operating_points(record, operating_points(ev, val_ev, settings, val_note))
            gallery = run_dir / "gallery" / f"{spec.job_id}__{stage_name(minutes)}.npz"
            _save_gallery(ev, gallery, settings["gallery_size"])
            record.update(facts, gallery_file=str(gallery.relative_to(run_dir)), data_fingerprint=fingerprint,
                          n_test=int(len(ev["labels"])), n_test_defective=int(ev["labels"].sum()),
                          n_train=len(train_set), scores=[round(float(s), 7) for s in ev["scores"]],
                          labels=[int(v) for v in ev["labels"]], seconds=time.perf_counter() - started)
            produced.add((minutes, "torch-fp32"))
            yield record
            if detector is not None:
                for row in variant_records(spec, detector, test_set, train_set, record, ev, progress, val_set,
                                           val_note):
                    row["seconds"] = time.perf_counter() - started
                    produced.add((minutes, row["variant"]))
                    yield row
    except Exception as exc:
        if os.environ.get("DEFECTBENCH_TRACEBACK"):
            traceback.print_exc()
        for stub in spec.outputs():
            if (stub["train_minutes"], stub["variant"]) not in produced:
                yield dict(base, **stub, status="failed", error=first_line(exc), started_at=now(),
                           seconds=time.perf_counter() - started)
    gc.collect()
