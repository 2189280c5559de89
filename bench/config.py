"""A run's options (`RunConfig`) and each suite's defaults: the only place that knows what a suite means.

Suites:
- `profile`: the cost probes for each model at `image_size` (default 256), batch `batch_size` (default 8).
- `quick`: every probe at 64x64, batch 2, few iterations: a smoke test of the whole pipeline.
- `accuracy`: train (fit) and evaluate each model on each category of a dataset (default: synthetic).
- `all`: profile + accuracy + report, with CPU-sized defaults.
- `paper`: each method's authors' recipe (models/recipes.py: sizes, input crop, batch, optimiser, 400 epochs,
  constant rate, checkpoint, objective), every remaining deviation printed and recorded: meant for a GPU.
- `deploy`: the deployment variants of the checkpoints of an earlier run, evaluated without retraining.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench.schema import DEFAULT_VARIANTS

SUITES = ("profile", "quick", "accuracy", "all", "paper", "deploy")
PROFILE_SUITES = ("profile", "quick", "all", "paper")
ACCURACY_SUITES = ("accuracy", "all", "paper", "deploy")
EXECUTORS = ("process", "inline", "ray")
# The probes a profile job runs on the model before its variants (bench/jobs/profile.py runs them in this order),
# and the one inside each variant's row that `--skip-probes` can leave out as well. A skipped probe's columns stay
# empty and the record's settings name it.
MODEL_PROBE_NAMES = ("params", "size", "macs", "activation_estimate", "train_step")
SKIPPABLE_PROBES = MODEL_PROBE_NAMES + ("throughput",)
SCHEDULES = ("budget", "constant")


@dataclass
class RunConfig:
    suite: str = "profile"
    models: list[str] | None = None  # None: every registered model
    image_size: int | None = None  # None: the suite's default
    batch_size: int | None = None
    device: str = "auto"
    threads: int | None = None  # None: all cores
    out: Path = Path("runs/latest")
    seeds: list[int] = field(default_factory=lambda: [0])  # accuracy jobs repeat per seed; profile uses the first
    resume: bool = False
    retry_failed: bool = False  # with resume: run jobs that failed before again
    dry_run: bool = False
    # execution
    executor: str = "process"
    job_timeout: float | None = None  # seconds; None: each job's default (see job_timeout_for)
    job_memory_mb: float | None = None  # CPU only: address space a job may add beyond its worker's start
    ray_address: str | None = None
    plugins: list[str] = field(default_factory=list)
    # profile
    variants: list[str] = field(default_factory=lambda: list(DEFAULT_VARIANTS))
    batch_sizes: list[int] | None = None  # a sweep: one row per batch size
    skip_probes: list[str] = field(default_factory=list)  # SKIPPABLE_PROBES left out (make regress: what it does not judge)
    # accuracy
    dataset: str = "synthetic"
    data_root: Path | None = None
    categories: list[str] | None = None
    epochs: int | None = None
    train_minutes: list[float] | None = None  # several values: evaluate after each (a learning curve)
    schedule: str | None = None  # None: the suite's default
    train_batch_size: int | None = None  # None: the recipe's in the paper suite, else DEFAULT_TRAIN_BATCH
    test_subset: int | None = None  # evaluate the first N normal and N defective test images (PIADE's protocol)
    gallery_size: int = 6
    eval_only: bool = False  # evaluate the checkpoints of an earlier run in `out` instead of training
    checkpoints: Path | None = None  # --suite deploy: the run whose checkpoints are evaluated
    labelled_defects: int | None = None  # train on N real labelled defects, k-fold over the test set
    folds: int = 5
    # operating points: normal training images held out to set thresholds (datasets/splits.py: an int is that
    # many, a float in (0, 1) that fraction but at least 20, 0 none), and the false-alarm rates to set them for
    val_normals: int | float = 0.1
    target_fprs: list[float] = field(default_factory=lambda: [0.01, 0.05])
    # model construction
    weights: str | None = None  # a local torchvision backbone state dict, for builders that take `weights`
    vgg_weights: str | None = None
    model_args: dict = field(default_factory=dict)  # --model-arg key=value, for builders that take `key`
    argv: list[str] | None = None

    @property
    def seed(self) -> int:
        return self.seeds[0]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available on this machine")
    return torch.device(name)


def remote_cluster(cfg: RunConfig) -> bool:
    """Jobs run on an existing Ray cluster's nodes, not on this machine."""
    return cfg.executor == "ray" and bool(cfg.ray_address or os.environ.get("RAY_ADDRESS"))


def run_device(cfg: RunConfig) -> torch.device:
    """The device the jobs run on; on a remote cluster `cuda` is the nodes' to have (the executor checks)."""
    if cfg.device == "cuda" and remote_cluster(cfg):
        return torch.device("cuda")
    return resolve_device(cfg.device)


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
    # quick is also the regression gate's suite: at least 10 calls per latency row (FCN-32s' 1.3 s calls too), so
    # that the rank test can call a 30% slowdown significant between two sides (3 against 3 never can), and a
    # second of calls where they are short (U-Net: 25): with the other core busy a call's CPU time spreads by
    # 15-20%, and 10 against 10 found a 30% slowdown at p = 0.026 only (a fresh-clone make test)
    "quick": dict(warmup=1, min_iters=10, max_iters=30, min_seconds=1.0, max_seconds=15.0, warmup_seconds=1.0,
                  train_iters=1),
}
SUITE_BATCH_SIZE = {"quick": 2, "all": 1}  # others: 8
# Variants are timed in interleaved rounds (A B C A B C ...) so that a drifting machine hits each alike and the
# ratios between them stay fair; the quick and all suites keep one round for time.
SUITE_VARIANT_ROUNDS = {"profile": 3, "paper": 3}
SUITE_PEAK_SECONDS = {"quick": 0.3}  # measuring each precision's matmul peak; others: 1 s
# The end-to-end pipeline (bench/pipeline.py) and the line scenario (bench/line.py) measured by the profile job of
# these suites, for the default variants: a 1024x1024 camera frame as PNG, decoded and resized with Pillow, at
# most ~4 s of timed calls per variant. The line runs where it is affordable (about 30 s a model on 2 cores):
# the four models of the acceptance, batch 1 and dynamic batching (up to 4 parts, waiting at most 20 ms),
# a 100 ms deadline (one camera period at 10 parts/s: the answer must be out before the next part), 1 s trials,
# a 5-trial search to 5%, and checks at 0.8x and 1.2x of the rate found (1x is the search's own trial); not where
# the variant's batch-1 end-to-end p99 already exceeds the deadline (no rate could pass). See docs/design/line.md.
SUITE_E2E = {"all": {"pipeline": dict(camera_size=[1024, 1024], encoding="png", decoder="pillow", warmup=2,
                                      min_iters=10, max_iters=60, min_seconds=0.5, max_seconds=4.0)}}
SUITE_LINE = {"all": {"models": ("unet", "unetpp", "pixel_stats", "vtadl"),
                      "line": dict(deadline_ms=100.0, arrivals="periodic", seconds=1.0, max_trials=5, tolerance=0.05,
                                   checks=[0.8, 1.2], policies=[[1, 0.0], [4, 20.0]])}}


def e2e_settings_for(cfg: RunConfig, model: str) -> dict | None:
    """The profile job's end-to-end settings (None: not measured in this suite): which variants, the pipeline,
    and the line scenario for the suite's line models."""
    if cfg.suite not in SUITE_E2E:
        return None
    variants = [v for v in cfg.variants if v in DEFAULT_VARIANTS]
    if not variants:
        return None
    line = SUITE_LINE.get(cfg.suite)
    return {"variants": variants, "pipeline": dict(SUITE_E2E[cfg.suite]["pipeline"]),
            "line": dict(line["line"]) if line and model in line["models"] else None}
SUITE_IMAGE_SIZE = {"quick": 64, "profile": 256, "accuracy": 128, "all": 128, "deploy": 128}
# `all` must finish in about 20 minutes on a 2-core CPU for 11 models: a smoke-sized training budget per
# category. The learning curves (--train-minutes 1,3,10) show what more training buys.
SUITE_TRAIN_MINUTES = {"all": [0.3]}
# ... and on the synthetic set one texture and one object instead of all four: evaluating 11 models costs
# more than training them for 18 s (FCN-32s alone needs ~1 minute per category on 2 cores).
SUITE_SYNTHETIC_CATEGORIES = {"all": ["fabric", "nut"]}
# The authors' protocol keeps its constant learning rate; the CPU suites decay it to zero at the budget's end.
SUITE_SCHEDULE = {"paper": "constant"}
# The test-set intervals every accuracy record carries (bench/intervals.py); part of an accuracy job's identity.
# The resampling seed is fixed: the same test set gets the same resamples, so variants' deltas are paired.
CI_SETTINGS = {"level": 0.95, "resamples": 10_000, "seed": 0}


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


def throughput_batch_for(cfg: RunConfig) -> int:
    """The batch throughput is measured at: twice the job's batch (at least 4); in `quick`, the job's own batch,
    so that throughput comes from the latency calls themselves (bench/variants/probe.py) and costs no extra calls:
    quick is the gate's run, and FCN-32s' five extra calls at batch 4 took 16 s a side there."""
    if cfg.suite == "quick":
        return batch_size_for(cfg)
    return max(4, 2 * batch_size_for(cfg))


def _recipe(cfg: RunConfig, model: str | None):
    """The authors' recipe of `model` in the paper suite (models/recipes.py), else None: the project's choices."""
    if cfg.suite != "paper" or model is None:
        return None
    from models.recipes import recipe_for

    return recipe_for(model)


def schedule_for(cfg: RunConfig, model: str | None = None) -> str:
    recipe = _recipe(cfg, model)
    return cfg.schedule or (recipe.schedule.value if recipe else SUITE_SCHEDULE.get(cfg.suite, "budget"))


DEFAULT_TRAIN_BATCH = 8


def train_batch_size_for(cfg: RunConfig, model: str | None = None) -> int:
    """--train-batch-size if given; else the authors' batch in the paper suite (PIADE: 60), else 8."""
    recipe = _recipe(cfg, model)
    return cfg.train_batch_size or (recipe.batch_size.value if recipe else DEFAULT_TRAIN_BATCH)


def suite_categories(cfg: RunConfig) -> list[str] | None:
    """The suite's default categories (None: every category of the dataset)."""
    return SUITE_SYNTHETIC_CATEGORIES.get(cfg.suite) if cfg.dataset == "synthetic" else None


def training_stages(cfg: RunConfig) -> list[float]:
    """Minutes of training after which to evaluate; [inf] = train until --epochs (or the suite's default)."""
    if cfg.train_minutes:
        return list(cfg.train_minutes)
    if cfg.epochs is None and cfg.suite in SUITE_TRAIN_MINUTES:
        return SUITE_TRAIN_MINUTES[cfg.suite]
    return [math.inf]


def default_epochs(cfg: RunConfig, stages: list[float], model: str | None = None) -> int | None:
    """Without --epochs: the authors' (400) for `paper`; no epoch cap (None) when a time budget is set; else 10."""
    if cfg.epochs is not None:
        return cfg.epochs
    if cfg.suite == "paper":
        recipe = _recipe(cfg, model)
        return recipe.epochs.value if recipe else 400
    return None if math.isfinite(stages[-1]) else 10
