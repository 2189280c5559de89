"""The profile job: one model's cost, one record per deployment variant (and per batch size of a sweep).

Model-level facts (parameters, MACs, sizes, the training step) are measured once and copied into every
variant row; each variant adds its own latency, throughput, peak memory, files and parity against
torch-fp32 (bench/variants/). A failing probe fails its rows with the probe's name and cause; what was
measured stays, and a variant the device or runtime cannot do is `skipped` with the reason.
"""
from __future__ import annotations

import gc
import os
import time
import traceback
from pathlib import Path
from typing import Callable, Iterator

import torch

from bench import measure
from bench.failures import describe_failure
from bench.jobs.common import build_detector, host, now, probe_settings
from bench.jobs.spec import JobSpec

# the model-level probes in config.MODEL_PROBE_NAMES's order (the training step is added per job: it needs a twin)
MODEL_PROBES = [("params", measure.params_probe), ("size", measure.size_probe), ("macs", measure.macs_probe),
                ("activation_estimate", measure.activation_estimate_probe)]

_PEAKS: dict[tuple, dict] = {}


def device_peaks(device: torch.device, threads: int, precisions: set[str], seconds: float,
                 cache_dir: Path | None = None) -> tuple[dict[str, float], dict[str, str]]:
    """Each precision's peak (GFLOP/s; GOP/s for int8: the best of its kernels, bench/variants/peaks.py) and the
    kernel that set it. Measured once per device and thread count: kept in this worker and, with `cache_dir`
    (the run's scratch folder), in a file the run's other workers read, so that every model of a run is held
    against the same peak and the cost is paid once."""
    import json

    from bench.variants.peaks import best_kernel, measure_kernel_rates

    key = (str(device), threads, seconds)
    found = _PEAKS.setdefault(key, {})
    cache = Path(cache_dir) / f"peaks-{device.type}-{threads}t-{seconds:g}s.json" if cache_dir else None
    if cache is not None and cache.is_file():
        try:
            found.update({p: v for p, v in json.loads(cache.read_text()).items() if p not in found})
        except (OSError, ValueError):
            pass  # a half-written file from a killed worker: measure again
    for precision in sorted(precisions | {"fp32"}):
        if precision not in found:
            best = best_kernel(measure_kernel_rates(device, precision, threads=threads, seconds=seconds))
            found[precision] = list(best) if best else None
            if cache is not None:
                cache.write_text(json.dumps(found))
    chosen = {p: v for p, v in found.items() if v}
    return {p: float(v[1]) for p, v in chosen.items()}, {p: str(v[0]) for p, v in chosen.items()}


def example_inputs(spec: JobSpec, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    size = spec.image_size
    gen = torch.Generator().manual_seed(spec.seed)
    x = torch.rand(batch, 3, size, size, generator=gen)
    masks = torch.zeros(batch, size, size)
    masks[:, size // 4: size // 2, size // 4: size // 2] = 1.0  # a defect in every image, for supervised losses
    return x.to(spec.device), masks.to(spec.device)


def calibration_images(spec: JobSpec) -> torch.Tensor | None:
    """Training images of the run's dataset, for the static int8 quantiser (None when no variant needs them)."""
    source = spec.settings.get("calibration")
    if not source:
        return None
    import datasets
    from bench.variants import calibration_images_from

    train = datasets.open_dataset(source["dataset"], Path(source["root"]), source["category"] or None, "train",
                                  spec.image_size)
    return calibration_images_from(train)


def run_profile(spec: JobSpec, progress: Callable[[str], None] | None = None) -> Iterator[dict]:
    from bench.line import pipeline_probe
    from bench.variants import VARIANTS, profile_variants

    settings = probe_settings(spec)
    started = time.perf_counter()
    base = dict(spec.base_record(), started_at=now(), host=host())
    variants = spec.settings.get("variants") or ["torch-fp32"]
    shared: dict = {}
    shared_errors: list[str] = []
    try:
        detector = build_detector(spec.model, spec.image_size, spec.seed, spec.settings).to(settings.device)
        shared["pretrained"] = detector.pretrained
        module = detector.inference_module().eval()
        x, masks = example_inputs(spec, spec.batch_size)
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
            return measure.train_step_probe(twin, xx, masks, s)
        finally:
            del twin

    skipped = set(spec.settings.get("skip_probes") or [])
    for name, probe in MODEL_PROBES + [("train_step", train_step)]:
        if name in skipped:
            continue
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
    if progress:
        progress("variants: " + ", ".join(variants))
    t0 = time.perf_counter()
    try:
        calibration = calibration_images(spec) if "ort-int8-static" in variants else None
        peaks, peak_kernels = device_peaks(settings.device, spec.threads, {VARIANTS[v].precision for v in variants},
                                           seconds=spec.settings.get("peak_seconds", 1.0), cache_dir=settings.workdir)
        rows = profile_variants(module, x, variants, settings, batch_sizes=spec.settings.get("batch_sizes"),
                                calibration_images=calibration, gmacs=shared.get("gmacs"), peaks=peaks,
                                peak_kernels=peak_kernels, rounds=spec.settings.get("variant_rounds", 1),
                                e2e=spec.settings.get("e2e"), e2e_probe=pipeline_probe, progress=progress)
    except Exception as exc:  # the variants' shared preparation broke: every variant row says why
        error = describe_failure(exc, "variants", spec.batch_size)
        rows = [{"variant": v, "status": "failed", "error": error} for v in variants]
    shared["probe_seconds_variants"] = time.perf_counter() - t0
    for row in rows:
        own_error = row.pop("error", "") or ""
        status = row.pop("status", "ok")
        errors = shared_errors + ([own_error] if own_error else [])
        if shared_errors and status != "skipped":
            status = "failed"  # a shared probe broke: the row is incomplete (a capability skip stays skipped)
        yield {**base, **shared, **row, "status": status, "error": " | ".join(errors),
               "seconds": time.perf_counter() - started}
    del detector, module
    gc.collect()
