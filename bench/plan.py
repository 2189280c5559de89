"""Planning: a run becomes a list of job specs (plain, serialisable data, bench/jobs/spec.py) before anything
is measured. Each suite's settings go into the spec of each of its jobs, so that a job's identity (its
`settings_hash`) covers every setting that changes its result: sizes, seed, threads, device, epochs, schedule,
stages, probe settings, variants, `--model-arg`, the bytes of weight and plugin files ...
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from bench import config
from bench.config import RunConfig
from bench.jobs.spec import JobSpec


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (weights, plugins): a changed file is a changed job."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _stage_value(minutes: float) -> float | None:
    return minutes if math.isfinite(minutes) else None


# -- time limits -------------------------------------------------------------------------------------------
PROFILE_TIMEOUT = {"quick": 900.0, "profile": 3600.0, "all": 1800.0, "paper": 3 * 3600.0}
EVALUATION_ALLOWANCE = 1800.0  # evaluation, checkpoints and gallery after the training budget
EPOCH_BUDGET_TIMEOUT = 24 * 3600.0  # a run on an epoch budget: no clock to derive a limit from


def job_timeout_for(cfg: RunConfig, kind: str, stages: tuple) -> float:
    """--job-timeout if given, else a generous limit per suite: a hang is caught, a slow job is not killed."""
    if cfg.job_timeout is not None:
        return float(cfg.job_timeout)
    if kind == "profile":
        return PROFILE_TIMEOUT.get(cfg.suite, 3600.0)
    timed = [m for m in stages if m is not None]
    if len(timed) == len(stages) and timed:
        folds = cfg.folds if cfg.labelled_defects is not None else 1
        return 2.0 * max(timed) * 60.0 * folds + EVALUATION_ALLOWANCE * len(stages)
    return EPOCH_BUDGET_TIMEOUT * (3 if cfg.suite == "paper" else 1)


# -- settings ------------------------------------------------------------------------------------------------
def _weight_settings(cfg: RunConfig) -> dict:
    out = {}
    for key in ("weights", "vgg_weights"):
        path = getattr(cfg, key)
        if path:
            out[key] = {"path": str(Path(path).resolve()), "sha256": file_digest(path)}
    return out


def model_source(name: str) -> dict:
    """A plugin model's identity includes its file's bytes; the project's own models are the checkout's."""
    from bench.plugins import plugin_file_of

    path = plugin_file_of(name)
    return {"plugin": str(path), "sha256": file_digest(path)} if path else {}


# -- recipes: the paper suite runs each method's authors' recipe (models/recipes.py) -----------------------------
def model_args_for(cfg: RunConfig, name: str, accepted: set[str]) -> dict:
    """The builder arguments of a model's jobs: in the paper suite the authors' recipe's, under --model-arg's."""
    from models.recipes import recipe_for

    recipe = recipe_for(name) if cfg.suite == "paper" else None
    wanted = {**(recipe.model_args if recipe else {}), **cfg.model_args}
    return {k: v for k, v in wanted.items() if k in accepted}


def _weights_deviation(cfg: RunConfig, option: str, architecture: str) -> str | None:
    from models.weights import check_weights_file

    path = getattr(cfg, option)
    flag = "--" + option.replace("_", "-")
    if not path:
        return (f"WARNING: {architecture} starts from random weights, not the authors' torchvision ImageNet file "
                f"(no {flag} file; nothing is downloaded; `bench data check-weights FILE` checks one)")
    check = check_weights_file(path)
    if not check.expected(architecture):
        return f"WARNING: {flag} is not the {architecture} file the authors loaded: {check.describe()}"
    return None


def recipe_deviations(cfg: RunConfig, name: str, image_size: int) -> list[str]:
    """What a paper-suite job does differently from the authors' recipe: the options that override it, the
    pretrained files it lacks, and what the project cannot or will not follow (the recipe's notes)."""
    from models.recipes import recipe_for

    recipe = recipe_for(name)
    if recipe is None:
        return ["no authors' recipe is recorded for this model (models/recipes.py): the project's settings"]
    out = []
    crop = recipe.input_pipeline.value["crop"]
    if image_size != crop:
        resize = recipe.resize_for(image_size)
        pipeline = f" (resize {resize}, centre crop)" if resize else ""
        out.append(f"input {image_size} px{pipeline} instead of the authors' {crop} px (--image-size)")
    if cfg.epochs is not None and cfg.epochs != recipe.epochs.value:
        out.append(f"{cfg.epochs} epochs instead of the authors' {recipe.epochs.value} (--epochs)")
    if cfg.train_minutes:
        out.append("a training time budget (--train-minutes) instead of the authors' epochs")
    if cfg.train_batch_size and cfg.train_batch_size != recipe.batch_size.value:
        out.append(f"batch {cfg.train_batch_size} instead of the authors' {recipe.batch_size.value} (--train-batch-size)")
    if cfg.schedule and cfg.schedule != recipe.schedule.value:
        out.append(f"schedule {cfg.schedule} instead of the authors' {recipe.schedule.value} (--schedule)")
    for key, value in recipe.model_args.items():
        if key in cfg.model_args and cfg.model_args[key] != value:
            out.append(f"{key}={cfg.model_args[key]} instead of the authors' {value} (--model-arg)")
    for option, architecture in recipe.pretrained.value.items():
        line = _weights_deviation(cfg, option, architecture)
        if line:
            out.append(line)
    authors_subset = recipe.test_set.value.get("first") if isinstance(recipe.test_set.value, dict) else None
    if cfg.test_subset != authors_subset:
        out.append(f"evaluated on the first {cfg.test_subset} normal and defective test images (--test-subset)"
                   if cfg.test_subset else
                   f"every test image is evaluated, not the authors' first {authors_subset} normal and "
                   f"{authors_subset} defective ones (`--test-subset {authors_subset}` reproduces theirs)")
    out.extend(recipe.notes)
    return out


def recipe_settings(cfg: RunConfig, name: str, image_size: int) -> dict:
    """The paper suite's recipe facts for a model's jobs: `recipe`, `recipe_deviations`, and the input crop
    (`data_pipeline.resize`); nothing for the other suites (their records say `recipe: project`)."""
    from models.recipes import AUTHORS, PROJECT, recipe_for

    if cfg.suite != "paper":
        return {}
    recipe = recipe_for(name)
    out = {"recipe": AUTHORS if recipe else PROJECT, "recipe_deviations": recipe_deviations(cfg, name, image_size)}
    resize = recipe.resize_for(image_size) if recipe else None
    if resize:
        out["data_pipeline"] = {"resize": resize}
    return out


def recipe_notice(specs: list[JobSpec]) -> list[str]:
    """The lines a paper-suite run prints first: per model, whose recipe it runs and every deviation from it."""
    from models.recipes import recipe_for

    lines, seen = [], set()
    for spec in specs:
        if spec.suite != "paper" or spec.model in seen:
            continue
        seen.add(spec.model)
        recipe = recipe_for(spec.model)
        whose = f"the authors' recipe ({recipe.code}; docs/design/recipes.md)" if recipe else "the project's settings"
        deviations = spec.settings.get("recipe_deviations") or []
        lines.append(f"recipe: {spec.model}: {whose}" + ("; deviations:" if deviations else "; no deviation"))
        lines.extend(f"  - {line}" for line in deviations)
    return lines


def profile_settings(cfg: RunConfig, name: str, accepted: set[str]) -> dict:
    probe = dict(config.SUITE_PROBE_SETTINGS.get(cfg.suite, {}))
    settings = {"probe": probe, "throughput_batch": config.throughput_batch_for(cfg), "variants": list(cfg.variants),
                "variant_rounds": config.SUITE_VARIANT_ROUNDS.get(cfg.suite, 1),
                "peak_seconds": config.SUITE_PEAK_SECONDS.get(cfg.suite, 1.0),
                "batch_sizes": list(cfg.batch_sizes) if cfg.batch_sizes else None,
                "model_args": model_args_for(cfg, name, accepted)}
    if cfg.skip_probes:  # only when asked: the jobs of a run without it keep their ids
        settings["skip_probes"] = sorted(set(cfg.skip_probes))
    settings.update({k: v for k, v in _weight_settings(cfg).items() if k in accepted})
    source = model_source(name)
    if source:
        settings["model_source"] = source
    e2e = config.e2e_settings_for(cfg, name)
    if e2e:
        settings["e2e"] = e2e
    return settings


def accuracy_settings(cfg: RunConfig, name: str, accepted: set[str], stages: list[float]) -> dict:
    # The default variants are the profile's; variants given on a training suite are evaluated after training
    # too (not with --labelled-defects: each fold is its own model, and the deltas would mix them).
    chosen = list(cfg.variants) != list(config.DEFAULT_VARIANTS) and cfg.labelled_defects is None
    accuracy_variants = ["torch-fp32"] + [v for v in cfg.variants if v != "torch-fp32"] if chosen else ["torch-fp32"]
    settings = {"epochs": config.default_epochs(cfg, stages, name), "schedule": config.schedule_for(cfg, name),
                "train_batch_size": config.train_batch_size_for(cfg, name), "gallery_size": cfg.gallery_size,
                "labelled_defects": cfg.labelled_defects,
                "folds": cfg.folds if cfg.labelled_defects is not None else None,
                "accuracy_variants": accuracy_variants, "intervals": dict(config.CI_SETTINGS),
                "val_normals": cfg.val_normals, "target_fprs": [float(t) for t in cfg.target_fprs],
                "model_args": model_args_for(cfg, name, accepted)}
    settings.update({k: v for k, v in _weight_settings(cfg).items() if k in accepted})
    if cfg.test_subset:  # only when asked: the other suites' settings (and job ids) stay as they were
        settings["data_pipeline"] = {"test_subset": cfg.test_subset}
    source = model_source(name)
    if source:
        settings["model_source"] = source
    return settings


def data_identity(dataset: str, root: Path | None) -> dict:
    """The data an accuracy job depends on: the synthetic set by its generator parameters (wherever it is
    cached), any other dataset by its root folder (the records add a fingerprint of the test files' bytes)."""
    if dataset == "synthetic" and root is not None:
        from datasets.synthetic import read_marker

        marker = read_marker(root)
        if marker:
            return {"synthetic": marker}
    return {"root": str(Path(root).resolve()) if root else ""}


def calibration_source(cfg: RunConfig, data_root: Path | None, categories: list[str]) -> dict | None:
    """Where the static int8 quantiser's calibration images come from: the run's dataset, training split."""
    if "ort-int8-static" not in cfg.variants or data_root is None:
        return None
    return {"dataset": cfg.dataset, "root": str(Path(data_root).resolve()), "category": categories[0] if categories else "",
            "data": data_identity(cfg.dataset, data_root)}


def plan_run(cfg: RunConfig, names: list[str], device: str, threads: int, data_root: Path | None,
             categories: list[str]) -> list[JobSpec]:
    """Every job of the run, in the order they will run: per model its profile job, then its accuracy jobs."""
    from models import get_entry
    from models.registry import detector_arguments

    specs: list[JobSpec] = []
    plugins = tuple(str(Path(p).resolve()) for p in cfg.plugins)
    common = dict(suite=cfg.suite, device=device, threads=threads, run_dir=str(cfg.out), plugins=plugins)
    stages = config.training_stages(cfg)
    stage_values = tuple(_stage_value(m) for m in stages)
    for name in names:  # model by model: one worker process serves all of a model's jobs
        family, accepted, size = get_entry(name).family, detector_arguments(name), config.image_size_for(cfg, name)
        if cfg.suite in config.PROFILE_SUITES:
            settings = profile_settings(cfg, name, accepted)
            settings["calibration"] = calibration_source(cfg, data_root, categories)
            settings.update({k: v for k, v in recipe_settings(cfg, name, size).items() if k != "data_pipeline"})
            specs.append(JobSpec(kind="profile", model=name, family=family, seed=cfg.seed, image_size=size,
                                 batch_size=config.batch_size_for(cfg), settings=settings,
                                 timeout=job_timeout_for(cfg, "profile", ()), **common))
        if cfg.suite in config.ACCURACY_SUITES and cfg.suite != "deploy":
            settings = accuracy_settings(cfg, name, accepted, stages)
            settings["data"] = data_identity(cfg.dataset, data_root)
            recipe = recipe_settings(cfg, name, size)
            pipeline = {**recipe.pop("data_pipeline", {}), **settings.get("data_pipeline", {})}
            settings.update(recipe, **({"data_pipeline": pipeline} if pipeline else {}))
            for category in categories:
                for seed in cfg.seeds:
                    specs.append(JobSpec(kind="accuracy", model=name, family=family, seed=seed, image_size=size,
                                         batch_size=settings["train_batch_size"], dataset=cfg.dataset,
                                         data_root=str(data_root or ""), category=category, stages=stage_values,
                                         settings=settings, timeout=job_timeout_for(cfg, "accuracy", stage_values),
                                         **common))
    return specs


def settings_difference(old: dict, new: dict, limit: int = 3) -> str:
    """'epochs 10 -> 5, seed 0 -> 1': what changed between two identities, for the one-line resume notice."""
    changes = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key), b.get(key), f"{path}.{key}" if path else key)
        elif a != b:
            changes.append(f"{path} {a!r} -> {b!r}")

    walk(old, new, "")
    shown = changes[:limit]
    return ", ".join(shown) + (f" (+{len(changes) - limit} more)" if len(changes) > limit else "")
