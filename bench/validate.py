"""Every option is checked before any work starts: one line naming the option (or file), exit status 2.

`check_run(cfg)` raises `UsageError`; the CLI prints it as `error: ...` and exits 2. Nothing is measured,
written or deleted before it returns.
"""
from __future__ import annotations

import math
from pathlib import Path

from bench import config
from bench.config import RunConfig

MIN_IMAGE_SIZE = 16
MAX_SEED = 2**32 - 1


class UsageError(ValueError):
    """Bad input: the message is one line and names the option or file."""


def _positive_int(option: str, value, minimum: int = 1) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{option} must be a whole number, got {value!r}")
    if value < minimum:
        raise UsageError(f"{option} must be >= {minimum}, got {value}")


def _positive_number(option: str, value) -> None:
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise UsageError(f"{option} must be a finite number > 0, got {value!r}")


def check_numbers(cfg: RunConfig) -> None:
    _positive_int("--image-size", cfg.image_size, MIN_IMAGE_SIZE)
    _positive_int("--batch-size", cfg.batch_size)
    _positive_int("--threads", cfg.threads)
    _positive_int("--epochs", cfg.epochs)
    _positive_int("--folds", cfg.folds, 2)
    _positive_int("--labelled-defects", cfg.labelled_defects, 1)
    _positive_int("--train-batch-size", cfg.train_batch_size)
    _positive_int("--test-subset", cfg.test_subset)
    _positive_number("--job-timeout", cfg.job_timeout)
    _positive_number("--job-memory-mb", cfg.job_memory_mb)
    for minutes in cfg.train_minutes or []:
        _positive_number("--train-minutes", minutes)
    for size in cfg.batch_sizes or []:
        _positive_int("--batch-sizes", size)
    if not cfg.seeds:
        raise UsageError("--seeds needs at least one seed")
    for seed in cfg.seeds:
        _positive_int("--seed", seed, 0)
        if seed > MAX_SEED:
            raise UsageError(f"--seed must be <= {MAX_SEED}, got {seed}")
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise UsageError(f"--seeds repeats a seed: {','.join(map(str, cfg.seeds))}")
    from datasets.splits import check_val_normals

    try:
        check_val_normals(cfg.val_normals)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not cfg.target_fprs:
        raise UsageError("--target-fpr needs at least one rate")
    for rate in cfg.target_fprs:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 < rate < 1.0:
            raise UsageError(f"--target-fpr: each rate must lie in (0, 1), got {rate!r}")
    if len(set(cfg.target_fprs)) != len(cfg.target_fprs):
        raise UsageError(f"--target-fpr repeats a rate: {','.join(f'{r:g}' for r in cfg.target_fprs)}")


def check_choices(cfg: RunConfig) -> None:
    if cfg.suite not in config.SUITES:
        raise UsageError(f"--suite must be one of {', '.join(config.SUITES)}, got {cfg.suite!r}")
    if cfg.executor not in config.EXECUTORS:
        raise UsageError(f"--executor must be one of {', '.join(config.EXECUTORS)}, got {cfg.executor!r}")
    if cfg.ray_address and cfg.executor != "ray":
        raise UsageError("--ray-address goes with --executor ray")
    if cfg.schedule is not None and cfg.schedule not in config.SCHEDULES:
        raise UsageError(f"--schedule must be one of {', '.join(config.SCHEDULES)}, got {cfg.schedule!r}")
    if cfg.eval_only and cfg.suite != "accuracy":
        raise UsageError("--eval-only goes with --suite accuracy")
    if cfg.suite == "deploy" and cfg.checkpoints is None:
        raise UsageError("--suite deploy needs --checkpoints RUN_DIR (a run whose accuracy jobs saved checkpoints)")
    if cfg.checkpoints is not None and cfg.suite != "deploy":
        raise UsageError("--checkpoints goes with --suite deploy")
    if cfg.job_memory_mb and cfg.device == "cuda":
        raise UsageError("--job-memory-mb limits CPU memory only; it cannot limit a CUDA device")
    if cfg.retry_failed and not cfg.resume:
        raise UsageError("--retry-failed goes with --resume")
    unknown = [p for p in cfg.skip_probes if p not in config.SKIPPABLE_PROBES]
    if unknown:
        raise UsageError(f"--skip-probes: unknown probe {unknown[0]!r}; one of {', '.join(config.SKIPPABLE_PROBES)}")
    if cfg.skip_probes and cfg.suite not in config.PROFILE_SUITES:
        raise UsageError(f"--skip-probes goes with a suite that profiles ({', '.join(config.PROFILE_SUITES)})")
    # On a Ray cluster the nodes run the jobs: a CPU-only driver may send CUDA jobs (the executor checks the GPUs).
    try:
        config.run_device(cfg)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    from bench.variants import parse_variants

    if len(set(cfg.variants)) != len(cfg.variants):
        raise UsageError("--variants names a variant twice")
    try:
        cfg.variants = parse_variants(cfg.variants)  # `all` and `cpu` expand here, in the table's order
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def check_models(cfg: RunConfig) -> list[str]:
    """The selected model names (every registered model by default), plugins loaded first."""
    from bench.plugins import PluginError, load_plugins
    from models import get_entry, list_models

    try:
        load_plugins(cfg.plugins)
    except PluginError as exc:
        raise UsageError(str(exc)) from None
    if not cfg.models:
        return [e.name for e in list_models()]
    for name in cfg.models:
        try:
            get_entry(name)
        except KeyError as exc:
            raise UsageError(f"--models: {exc.args[0]}") from None
    if len(set(cfg.models)) != len(cfg.models):
        raise UsageError("--models names a model twice")
    return list(cfg.models)


def check_model_options(cfg: RunConfig, names: list[str]) -> None:
    """Options that no selected model can use, and files that are not there."""
    from models.registry import detector_arguments

    accepted = set().union(*(detector_arguments(n) for n in names))
    for option, path in (("--weights", cfg.weights), ("--vgg-weights", cfg.vgg_weights)):
        if path and not Path(path).is_file():
            raise UsageError(f"{option}: no such file: {path}")
        if path and option.lstrip("-").replace("-", "_") not in accepted:
            raise UsageError(f"{option}: none of the selected models ({', '.join(names)}) takes pretrained weights")
    for key in cfg.model_args:
        if key not in accepted:
            raise UsageError(f"--model-arg {key}: none of the selected models ({', '.join(names)}) takes {key!r}")
    if cfg.labelled_defects is not None and cfg.suite in config.ACCURACY_SUITES:
        from models import uses_labels

        refusing = [n for n in names if not uses_labels(n)]
        if refusing:
            raise UsageError(f"--labelled-defects: {', '.join(refusing)} cannot learn from labels (trained on normal "
                             f"images only, it would fit the defects as normal); choose models that use labels")


def resolve_data(cfg: RunConfig) -> tuple[Path | None, list[str]]:
    """The dataset root (the synthetic set is generated on first use) and the categories to evaluate."""
    import datasets
    from datasets.common import DatasetError

    needs_data = cfg.suite in config.ACCURACY_SUITES or "ort-int8-static" in cfg.variants  # its calibration images
    if not needs_data or cfg.suite == "deploy":
        return None, []
    root = cfg.data_root
    try:
        if cfg.dataset not in datasets.DATASET_NAMES:
            raise UsageError(f"--dataset must be one of {', '.join(datasets.DATASET_NAMES)}, got {cfg.dataset!r}")
        if cfg.dataset == "synthetic" and root is None:
            from datasets.synthetic import default_cache_dir, ensure_synthetic

            root = ensure_synthetic(default_cache_dir(), seed=0)
        elif root is None:
            raise UsageError(f"--data-root is required for --dataset {cfg.dataset}")
        elif not Path(root).is_dir():
            raise UsageError(f"--data-root {root}: no such folder")
        available = datasets.list_categories(cfg.dataset, root)
    except DatasetError as exc:
        raise UsageError(str(exc)) from None
    cats = cfg.categories or config.suite_categories(cfg) or available
    unknown = [c for c in cats if c not in available]
    if unknown:
        raise UsageError(f"--categories: {unknown[0]!r} is not in {root}; available: {', '.join(available)}")
    return Path(root), list(cats)


def check_run(cfg: RunConfig) -> tuple[list[str], Path | None, list[str]]:
    """Everything, in the order a user would fix it; returns (models, data root, categories)."""
    from bench.run_folder import check_run_folder
    from bench.schema import ResultsError

    check_choices(cfg)
    check_numbers(cfg)
    try:
        check_run_folder(cfg.out)
        if cfg.checkpoints is not None:
            if not (Path(cfg.checkpoints) / "results.json").is_file():
                raise UsageError(f"--checkpoints {cfg.checkpoints}: no results.json there (not a defectbench run)")
            check_run_folder(cfg.checkpoints)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    names = check_models(cfg)
    check_model_options(cfg, names)
    root, categories = resolve_data(cfg)
    return names, root, categories


def parse_model_args(pairs: list[str]) -> dict:
    """KEY=VALUE strings -> dict; values become int, float or bool where they read as one."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--model-arg {pair!r}: expected KEY=VALUE")
        value: object = raw
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                pass
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        out[key] = value
    return out
