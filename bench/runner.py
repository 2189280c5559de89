"""The runner: turns a suite into jobs, runs the probes or the accuracy protocol for each, and writes one
record per job the moment it ends (bench/results.py), so nothing measured is lost when a later job fails.

Suites:
- `profile`: the cost probes for each model at `image_size` (default 256), batch `batch_size` (default 8).
- `quick`: every probe at 64x64, batch 2, few iterations: a smoke test of the whole pipeline.
- `accuracy`: train (fit) and evaluate each model on each category of a dataset (default: synthetic).
- `all`: profile + accuracy + report, with CPU-sized defaults.
- `paper`: the authors' budgets (400 epochs, full sizes): meant for a GPU.
"""
from __future__ import annotations

import gc
import math
import os
import re
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch

from bench import results
from bench.probes import PROFILE_PROBES, ProbeSettings, roofline, train_step_probe

SUITES = ("profile", "quick", "accuracy", "all", "paper")
DEFAULT_PROFILE_MODELS = None  # None = every registered model


@dataclass
class RunConfig:
    suite: str = "profile"
    models: list[str] | None = None
    image_size: int | None = None  # None: the suite's default
    batch_size: int | None = None
    device: str = "auto"
    threads: int | None = None  # None: all cores
    out: Path = Path("runs/latest")
    seed: int = 0
    resume: bool = False
    # accuracy
    dataset: str = "synthetic"
    data_root: Path | None = None
    categories: list[str] | None = None
    epochs: int | None = None
    train_minutes: list[float] | None = None  # several values: evaluate after each (a learning curve)
    train_batch_size: int = 8
    gallery_size: int = 6
    eval_only: bool = False  # evaluate the checkpoints of an earlier run in `out` instead of training
    labelled_defects: int | None = None  # train on N real labelled defects, k-fold over the test set
    folds: int = 5
    schedule: str | None = None  # learning-rate schedule: "budget" | "constant"; None: the suite's default
    # model construction
    weights: str | None = None  # a local torchvision backbone state dict, for builders that take `weights`
    vgg_weights: str | None = None
    model_args: dict = field(default_factory=dict)  # --model-arg key=value, for builders that take `key`
    argv: list[str] | None = None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available on this machine")
    return torch.device(name)


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# How long each suite measures. `profile` aims at stable medians; `all` at a CPU-sized whole run (batch 1:
# single-image latency, as MLPerf's SingleStream); `quick` at a smoke test of every probe.
SUITE_PROBE_SETTINGS = {
    "profile": {},
    "paper": {},
    "all": dict(warmup=3, min_iters=10, min_seconds=1.0, max_seconds=8.0, warmup_seconds=2.0, train_iters=3),
    "quick": dict(warmup=1, min_iters=3, max_iters=20, min_seconds=0.2, max_seconds=2.0, warmup_seconds=1.0,
                  train_iters=1),
}
SUITE_BATCH_SIZE = {"quick": 2, "all": 1}  # others: 8


def probe_settings(cfg: RunConfig, device: torch.device, threads: int) -> ProbeSettings:
    s = ProbeSettings(device=device, threads=threads, workdir=Path(cfg.out) / "tmp",
                      throughput_batch=max(4, 2 * batch_size_for(cfg)))
    s = replace(s, **SUITE_PROBE_SETTINGS.get(cfg.suite, {}))
    s.workdir.mkdir(parents=True, exist_ok=True)
    return s


SUITE_IMAGE_SIZE = {"quick": 64, "profile": 256, "accuracy": 128, "all": 128}


def image_size_for(cfg: RunConfig, model: str) -> int:
    """--image-size if given. Otherwise `paper` uses each model's own input size, and the other suites their
    common size, or the model's own where that is smaller (capsnet_ad's 28, PIADE's 120)."""
    from models import get_entry

    if cfg.image_size:
        return cfg.image_size
    own = get_entry(model).input_size
    return own if cfg.suite == "paper" else min(SUITE_IMAGE_SIZE[cfg.suite], own)


def batch_size_for(cfg: RunConfig) -> int:
    return cfg.batch_size or SUITE_BATCH_SIZE.get(cfg.suite, 8)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(exc: BaseException) -> str:
    """One line for the results table: the exception type and, for wrapped errors, the root cause's message."""
    root = exc
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    text = _ANSI.sub("", str(root)).strip().splitlines()
    via = f"{type(exc).__name__} <- " if root is not exc else ""
    return f"{via}{type(root).__name__}: {text[0][:300] if text else ''}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- profile ----------------------------------------------------------------------------------------------
def profile_job_id(name: str, cfg: RunConfig, device: torch.device) -> str:
    return results.job_id("profile", name, image_size_for(cfg, name), batch_size_for(cfg), device.type)


def profile_job(name: str, cfg: RunConfig, settings: ProbeSettings, peak_gflops: float,
                on_probe: Callable[[str], None] | None = None) -> dict:
    from models import get_entry

    size, batch = image_size_for(cfg, name), batch_size_for(cfg)
    entry = get_entry(name)
    record: dict = {"job_id": profile_job_id(name, cfg, settings.device), "suite": "profile",
                    "model": name, "family": entry.family, "dataset": "", "category": "",
                    "device": settings.device.type, "image_size": size, "batch_size": batch,
                    "threads": settings.threads, "seed": cfg.seed, "status": "ok", "error": "",
                    "started_at": _now()}
    started = time.perf_counter()
    errors: list[str] = []
    try:
        torch.manual_seed(cfg.seed)
        detector = build_detector(name, cfg, size).to(settings.device)
        record["pretrained"] = detector.pretrained
        module = detector.inference_module().eval()
        gen = torch.Generator().manual_seed(cfg.seed)
        x = torch.rand(batch, 3, size, size, generator=gen).to(settings.device)
        masks = torch.zeros(batch, size, size)
        masks[:, size // 4: size // 2, size // 4: size // 2] = 1.0  # a defect in every image, for supervised losses
        masks = masks.to(settings.device)
    except Exception as exc:  # the model cannot even be built: nothing to measure
        record.update(status="failed", error=f"build: {_first_line(exc)}", seconds=time.perf_counter() - started)
        return record
    probes = PROFILE_PROBES + [("train_step", lambda m, xx, s: train_step_probe(detector, xx, masks, s))]
    for probe_name, probe in probes:
        if on_probe:
            on_probe(probe_name)
        probe_started = time.perf_counter()
        try:
            record.update(probe(module, x, settings))
        except Exception as exc:
            errors.append(f"{probe_name}: {_first_line(exc)}")
            if os.environ.get("DEFECTBENCH_TRACEBACK"):
                traceback.print_exc()
        record[f"probe_seconds_{probe_name}"] = time.perf_counter() - probe_started
    record.update(roofline(record, batch, peak_gflops))
    if errors:
        record.update(status="failed", error=" | ".join(errors))
    record["seconds"] = time.perf_counter() - started
    del detector, module
    gc.collect()
    return record


# -- accuracy ---------------------------------------------------------------------------------------------
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


# `all` must finish in about 20 minutes on a 2-core CPU for 11 models x 4 categories: a smoke-sized training
# budget per category. The learning curves (--train-minutes 1,3,10) show what more training buys.
SUITE_TRAIN_MINUTES = {"all": [0.3]}
# ... and on the synthetic set one texture and one object instead of all four: evaluating 11 models costs
# more than training them for 18 s (FCN-32s alone needs ~1 minute per category on 2 cores).
SUITE_SYNTHETIC_CATEGORIES = {"all": ["fabric", "nut"]}


def suite_categories(cfg: RunConfig) -> list[str] | None:
    """The suite's default categories (None: every category of the dataset)."""
    return SUITE_SYNTHETIC_CATEGORIES.get(cfg.suite) if cfg.dataset == "synthetic" else None


def training_stages(cfg: RunConfig) -> list[float]:
    """Minutes of training after which to evaluate; [inf] = train until --epochs (or the suite's default)."""
    if cfg.train_minutes:
        return cfg.train_minutes
    if cfg.epochs is None and cfg.suite in SUITE_TRAIN_MINUTES:
        return SUITE_TRAIN_MINUTES[cfg.suite]
    return [math.inf]


def default_epochs(cfg: RunConfig, stages: list[float]) -> int:
    """Without --epochs: the authors' 400 for `paper`; no epoch cap when a time budget is set; else 10."""
    if cfg.suite == "paper":
        return 400
    return 10**9 if math.isfinite(stages[-1]) else 10


def schedule_for(cfg: RunConfig) -> str:
    """--schedule if given; else `constant` for `paper` (the authors' protocols) and `budget` for the CPU suites."""
    return cfg.schedule or ("constant" if cfg.suite == "paper" else "budget")


def accuracy_job_ids(name: str, category: str, cfg: RunConfig) -> list[str]:
    """One job id per training-time stage of (model, category)."""
    size = image_size_for(cfg, name)
    return [results.job_id("accuracy", name, cfg.dataset, category, size, f"{m}min" if math.isfinite(m) else "")
            for m in training_stages(cfg)]


TRAINING_FACTS = ("train_seconds", "epochs", "steps", "final_loss", "stopped_by")


def build_detector(name: str, cfg: RunConfig, size: int, **extra):
    """The detector with the run's seed, weight files and --model-arg values, where its builder takes them."""
    from models import create_detector
    from models.registry import detector_arguments

    wanted = {"seed": cfg.seed, "weights": cfg.weights, "vgg_weights": cfg.vgg_weights, **cfg.model_args, **extra}
    accepted = detector_arguments(name)
    return create_detector(name, image_size=size, **{k: v for k, v in wanted.items() if v is not None and k in accepted})


def _train_loader(data, cfg: RunConfig) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(data, batch_size=cfg.train_batch_size, shuffle=True, num_workers=0,
                                       generator=torch.Generator().manual_seed(cfg.seed),
                                       drop_last=len(data) > cfg.train_batch_size)


def _save_gallery(ev: dict, name: str, category: str, cfg: RunConfig) -> Path:
    pick = gallery_indices(ev["labels"], cfg.gallery_size)
    path = Path(cfg.out) / "gallery" / f"{name}__{cfg.dataset}__{category}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: ev[k][pick] for k in ("images", "masks", "scores", "labels", "paths")}
    if "maps" in ev:
        arrays["maps"] = ev["maps"][pick].astype(np.float16)
    np.savez_compressed(path, **arrays)
    return path


def _fit_on_labelled_folds(name: str, cfg: RunConfig, size: int, device: torch.device, train_set, test_set,
                           budget, progress) -> tuple[dict, dict]:
    """--labelled-defects N: k folds over the test set; each fold's model trains on the normal training images
    plus up to N labelled defects from the OTHER folds (no synthetic anomalies) and scores its own fold only.
    Returns the merged evaluation (every test image scored exactly once) and the summed training facts."""
    from datasets.splits import labelled_folds

    labels = np.array([int(s.label) for s in test_set.samples])
    parts, facts = [], {"train_seconds": 0.0, "steps": 0, "epochs": 0, "final_loss": float("nan"), "stopped_by": ""}
    for fold, (train_idx, eval_idx) in enumerate(labelled_folds(labels, cfg.labelled_defects, k=cfg.folds, seed=cfg.seed)):
        torch.manual_seed(cfg.seed + fold)
        detector = build_detector(name, cfg, size, synthetic_anomalies=False, anomaly_probability=0.0).to(device)
        data = torch.utils.data.ConcatDataset([train_set, torch.utils.data.Subset(test_set, train_idx.tolist())])
        report = detector.fit(_train_loader(data, cfg), budget, progress=progress)
        facts.update(train_seconds=facts["train_seconds"] + report.train_seconds, steps=facts["steps"] + report.steps,
                     epochs=facts["epochs"] + report.epochs, final_loss=report.final_loss, stopped_by=report.stopped_by)
        ev = evaluate(detector, torch.utils.data.Subset(test_set, eval_idx.tolist()), cfg.train_batch_size)
        ev["index"] = eval_idx
        parts.append(ev)
    order = np.argsort(np.concatenate([p["index"] for p in parts]))
    merged = {k: np.concatenate([p[k] for p in parts])[order] for k in parts[0] if k != "index"}
    facts.update(detector.info(), folds=cfg.folds, labelled_defects=cfg.labelled_defects)
    return merged, facts


def accuracy_jobs(name: str, category: str, cfg: RunConfig, device: torch.device, threads: int,
                  data_root: Path, progress: Callable[[str, int, float], None] | None = None) -> Iterator[dict]:
    """Fit `name` on one category and evaluate it after each training-time stage; yields one record per stage
    as soon as that stage ends (so the caller writes it before the next stage starts).

    With --labelled-defects, one stage: k fold models, each trained for the budget (see _fit_on_labelled_folds).
    """
    import datasets
    from bench.metrics import compute_all
    from datasets.in_memory import InMemory
    from models import get_entry
    from models.base import Budget

    size = image_size_for(cfg, name)
    entry = get_entry(name)
    stages = training_stages(cfg)
    ids = dict(zip(stages, accuracy_job_ids(name, category, cfg)))
    epochs = cfg.epochs if cfg.epochs is not None else default_epochs(cfg, stages)
    base = {"suite": "accuracy", "model": name, "family": entry.family, "dataset": cfg.dataset, "category": category,
            "device": device.type, "image_size": size, "batch_size": cfg.train_batch_size, "threads": threads,
            "seed": cfg.seed}
    report_step = (lambda st, loss: progress(category, st, loss)) if progress else None
    finished: set = set()
    started = time.perf_counter()
    trained_seconds, steps, epochs_done = 0.0, 0, 0
    try:
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        # decoded once for the run: every epoch and every stage's evaluation read them again
        train_set = InMemory(datasets.open_dataset(cfg.dataset, data_root, category, "train", size))
        test_set = InMemory(datasets.open_dataset(cfg.dataset, data_root, category, "test", size))
        detector = None if cfg.labelled_defects is not None else build_detector(name, cfg, size).to(device)
        previous = 0.0
        for minutes in stages:
            record = dict(base, job_id=ids[minutes], status="ok", error="", started_at=_now(),
                          train_minutes=minutes if math.isfinite(minutes) else None)
            # One run: the epoch cap counts every stage's steps (a stage past it trains 0 steps), and one schedule
            # spans all stages, reaching 0 at the last stage's end (models.schedule, "Stages").
            budget = Budget(epochs=epochs, minutes=minutes - previous, steps_done=steps,
                            run_minutes=stages[-1] if math.isfinite(stages[-1]) else None, seconds_done=previous * 60.0,
                            schedule=schedule_for(cfg))
            previous = minutes
            if detector is None:
                ev, facts = _fit_on_labelled_folds(name, cfg, size, device, train_set, test_set, budget, report_step)
            elif cfg.eval_only:
                ckpt = Path(cfg.out) / "checkpoints" / f"{record['job_id']}.safetensors"
                if not ckpt.is_file():
                    raise FileNotFoundError(f"--eval-only: no checkpoint {ckpt} (train first, without --eval-only)")
                detector.load(ckpt)
                ev = evaluate(detector, test_set, cfg.train_batch_size)
                trained = results.finished_jobs(cfg.out).get(record["job_id"], {})  # the training facts, if recorded
                facts = {k: trained[k] for k in TRAINING_FACTS if k in trained}
                facts.update(checkpoint=str(ckpt.relative_to(cfg.out)), evaluated_from_checkpoint=True, **detector.info())
            else:
                report = detector.fit(_train_loader(train_set, cfg), budget, progress=report_step)
                trained_seconds += report.train_seconds
                steps += report.steps
                epochs_done = round(steps / report.batches_per_epoch, 3)
                ckpt = Path(cfg.out) / "checkpoints" / f"{record['job_id']}.safetensors"
                detector.save(ckpt)
                ev = evaluate(detector, test_set, cfg.train_batch_size)
                facts = dict(train_seconds=trained_seconds, epochs=epochs_done, steps=steps, final_loss=report.final_loss,
                             stopped_by=report.stopped_by, schedule=report.schedule,
                             checkpoint=str(ckpt.relative_to(cfg.out)), **detector.info())
            has_maps = "maps" in ev
            record.update(compute_all(ev["labels"], ev["scores"], ev["masks"] if has_maps else None, ev.get("maps")))
            record.update(facts, gallery_file=str(_save_gallery(ev, name, category, cfg).relative_to(cfg.out)),
                          n_test=int(len(ev["labels"])), n_train=len(train_set), seconds=time.perf_counter() - started)
            finished.add(minutes)
            yield record
    except Exception as exc:
        if os.environ.get("DEFECTBENCH_TRACEBACK"):
            traceback.print_exc()
        for minutes in stages:
            if minutes not in finished:
                yield dict(base, job_id=ids[minutes], status="failed", error=_first_line(exc), started_at=_now(),
                           train_minutes=minutes if math.isfinite(minutes) else None,
                           seconds=time.perf_counter() - started)
    gc.collect()


METRIC_COLUMNS = ["image_auroc", "pixel_auroc", "aupro", "image_f1_max", "image_ap", "pixel_ap", "train_seconds"]


def mean_rows(records: list[dict]) -> list[dict]:
    """One `category="mean"` row per (model, dataset, stage) over the categories that finished."""
    frame = pd.DataFrame([r for r in records if r.get("suite") == "accuracy" and r.get("category") != "mean"])
    if frame.empty:
        return []
    frame["train_minutes"] = frame.get("train_minutes", pd.Series([None] * len(frame))).astype(object)
    rows = []
    for (model, dataset, minutes), group in frame.groupby(["model", "dataset", frame["train_minutes"].fillna(-1)], sort=False):
        ok = group[group["status"] == "ok"]
        first = group.iloc[0]
        row = {"job_id": results.job_id("accuracy", model, dataset, "mean", first["image_size"],
                                        f"{minutes}min" if minutes != -1 else ""),
               "suite": "accuracy", "model": model, "family": first["family"], "dataset": dataset, "category": "mean",
               "device": first["device"], "image_size": int(first["image_size"]), "batch_size": int(first["batch_size"]),
               "threads": int(first["threads"]), "seed": int(first["seed"]),
               "train_minutes": None if minutes == -1 else minutes,
               "status": "ok" if len(ok) == len(group) else "failed",
               "error": "" if len(ok) == len(group) else f"{len(group) - len(ok)} of {len(group)} categories failed",
               "n_categories": int(len(ok))}
        for col in METRIC_COLUMNS:
            if col in ok:
                values = pd.to_numeric(ok[col], errors="coerce").dropna()
                row[col] = float(values.mean()) if len(values) else None
        if "pretrained" in ok and len(ok):
            row["pretrained"] = ok["pretrained"].iloc[0]
        rows.append(row)
    return rows
