"""What every kind of job shares: building the detector, the probe settings, the clock, the host; failures are
named by bench.failures."""
from __future__ import annotations

import socket
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import torch

from bench.jobs.spec import JobSpec
from bench.measure import ProbeSettings


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def host() -> str:
    return socket.gethostname()


def build_detector(name: str, size: int, seed: int, settings: dict, **extra):
    """The detector with the job's seed, weight files and --model-arg values, where its builder takes them.
    Built after `torch.manual_seed(seed)`: the same seed gives the same initial weights."""
    from models import create_detector
    from models.registry import detector_arguments

    weights = {k: v["path"] for k, v in settings.items() if k in ("weights", "vgg_weights") and v}
    wanted = {"seed": seed, **weights, **settings.get("model_args", {}), **extra}
    accepted = detector_arguments(name)
    torch.manual_seed(seed)
    return create_detector(name, image_size=size, **{k: v for k, v in wanted.items() if v is not None and k in accepted})


def probe_settings(spec: JobSpec) -> ProbeSettings:
    """How the job measures (bench/measure.py): its device and threads, a scratch folder in the run folder, and
    the suite's overrides (`spec.settings["probe"]`)."""
    workdir = Path(spec.run_dir) / "tmp"
    workdir.mkdir(parents=True, exist_ok=True)
    settings = ProbeSettings(device=torch.device(spec.device), threads=spec.threads, workdir=workdir,
                             throughput_batch=spec.settings.get("throughput_batch", 16),
                             throughput="throughput" not in (spec.settings.get("skip_probes") or []))
    return replace(settings, **spec.settings.get("probe", {}))
