"""The profile job: one model's cost, one record per deployment variant (and per batch size of a sweep).

Model-level facts (parameters, MACs, sizes, the training step) are measured once and copied into every
variant row; each variant adds its own latency, throughput, peak memory, files and parity against
torch-fp32. A failing probe fails its rows with the probe's name and cause; what was measured stays.
"""
from __future__ import annotations

import gc
import os
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import torch

from bench import probes
from bench.jobs.common import build_detector, describe_failure, host, now
from bench.plan import JobSpec

MODEL_PROBES = [("params", probes.params_probe), ("size", probes.size_probe), ("macs", probes.macs_probe),
                ("activation_estimate", probes.activation_estimate_probe)]

_PEAK_CACHE: dict[tuple, float] = {}


def device_peak_gflops(device: torch.device, seconds: float) -> float:
    """The fp32 matmul peak, calibrated once per worker process and thread setting."""
    key = (str(device), torch.get_num_threads())
    if key not in _PEAK_CACHE:
        _PEAK_CACHE[key] = probes.calibrate_peak_gflops(device, seconds=seconds)
    return _PEAK_CACHE[key]


def probe_settings(spec: JobSpec) -> probes.ProbeSettings:
    workdir = Path(spec.run_dir) / "tmp"
    workdir.mkdir(parents=True, exist_ok=True)
    settings = probes.ProbeSettings(device=torch.device(spec.device), threads=spec.threads, workdir=workdir,
                                    throughput_batch=spec.settings["throughput_batch"])
    return replace(settings, **spec.settings.get("probe", {}))


def _example_inputs(spec: JobSpec, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    size = spec.image_size
    gen = torch.Generator().manual_seed(spec.seed)
    x = torch.rand(batch, 3, size, size, generator=gen)
    masks = torch.zeros(batch, size, size)
    masks[:, size // 4: size // 2, size // 4: size // 2] = 1.0  # a defect in every image, for supervised losses
    return x.to(spec.device), masks.to(spec.device)


def run_profile(spec: JobSpec, progress: Callable[[str], None] | None = None) -> Iterator[dict]:
    from bench.variants_interim import variant_rows

    settings = probe_settings(spec)
    started = time.perf_counter()
    base = dict(spec.base_record(), started_at=now(), host=host())
    shared: dict = {}
    shared_errors: list[str] = []
    try:
        detector = build_detector(spec.model, spec.image_size, spec.seed, spec.settings).to(settings.device)
        shared["pretrained"] = detector.pretrained
        module = detector.inference_module().eval()
        x, masks = _example_inputs(spec, spec.batch_size)
    except Exception as exc:  # the model cannot even be built: nothing to measure
        error = describe_failure(exc, "build", spec.batch_size)
        for stub in spec.outputs():
            yield dict(base, **stub, status="failed", error=error, seconds=time.perf_counter() - started)
        return
    def train_step(m, xx, s) -> dict:
        # On a twin built from the same seed: training changes the weights (pixel_stats even fits its statistics),
        # and the variants must time and export the model as it was built.
        twin = build_detector(spec.model, spec.image_size, spec.seed, spec.settings).to(settings.device)
        try:
            return probes.train_step_probe(twin, xx, masks, s)
        finally:
            del twin

    for name, probe in MODEL_PROBES + [("train_step", train_step)]:
        if progress:
            progress(name)
        t0 = time.perf_counter()
        try:
            shared.update(probe(module, x, settings))
        except Exception as exc:
            shared_errors.append(describe_failure(exc, name, spec.batch_size))
            if os.environ.get("DEFECTBENCH_TRACEBACK"):
                traceback.print_exc()
        shared[f"probe_seconds_{name}"] = time.perf_counter() - t0
    peak = device_peak_gflops(settings.device, seconds=0.3 if spec.suite == "quick" else 1.0)
    for row in variant_rows(spec, module, x, settings, progress):
        own_error = row.pop("error", "")
        errors = shared_errors + ([own_error] if own_error else [])
        status = row.pop("status", "ok")
        if shared_errors and status != "skipped":
            status = "failed"
        record = dict(base, **shared, **row, status=status, error=" | ".join(errors))
        record.update(probes.roofline(record, spec.batch_size, peak))
        record["seconds"] = time.perf_counter() - started
        yield record
    del detector, module
    gc.collect()
