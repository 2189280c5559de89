"""The variant probe: one record per (variant, batch size) for one model.

`variant_probe` measures one prepared variant at the example batch: latency (the suite's timing routine,
raw samples kept), throughput at `settings.throughput_batch`, measured peak memory where the runtime has
one, parity against torch-fp32's outputs on the same input, and the roofline against the variant's
precision peak. `profile_variants` is what a profile job calls: it prepares every requested variant of a
module, times them in `rounds` interleaved rounds (A B C A B C ... in one process, so that drift of a shared
machine hits every variant alike and ratios between them stay fair), probes each, optionally times the
end-to-end pipeline around each (`e2e`: `e2e_probe`, bench.line.pipeline_probe, the same prepared variant from encoded
camera bytes to a decision, and the line scenario where asked), optionally sweeps batch sizes, and releases
everything.
"""
from __future__ import annotations

import contextlib
import os
import traceback
from typing import Sequence

import torch
from torch import nn

from bench.measure import ProbeSettings, measure_latency, measure_throughput, summarise_latency
from bench.variants.base import Outputs, PreparedVariant, VariantUnavailable
from bench.variants.peaks import roofline_for
from bench.variants.parity import parity, reference_outputs
from bench.failures import first_line as _first_line, is_out_of_memory
from bench.variants.sweep import batch_sweep
from bench.variants.table import REFERENCE_VARIANT, VARIANTS, parse_variants, prepare_variant


def merge_latency(parts: list[dict]) -> dict:
    """Pool the raw samples of several `measure_latency` results and recompute their summaries."""
    if len(parts) == 1:
        return dict(parts[0])
    merged = dict(parts[0])
    for key in [k for k in parts[0] if k.endswith("_samples_ms")]:
        samples = [v for part in parts for v in part[key]]
        prefix = key[: -len("_samples_ms")]
        merged[key] = samples
        merged.update({k: v for k, v in summarise_latency(samples, prefix).items() if k in parts[0]})
    return merged


THROUGHPUT_SECONDS_LIMIT = 120.0  # a throughput measurement projected to take longer is not made (the row says so)


class _StageFailed(Exception):
    """A step of the variant probe broke: which step (the record's error names it), and why."""

    def __init__(self, stage: str, cause: Exception):
        super().__init__(f"{stage}: {cause}")
        self.stage, self.cause = stage, cause


@contextlib.contextmanager
def _step(stage: str):
    try:
        yield
    except Exception as exc:
        raise _StageFailed(stage, exc) from exc


def variant_probe(variant: PreparedVariant, example: torch.Tensor, settings: ProbeSettings, *,
                  reference: Outputs | None, gmacs: float | None = None, peaks: dict | None = None,
                  latency: dict | None = None, peak_kernels: dict | None = None) -> dict:
    """Record of one variant at the batch of `example` (see the package docstring for the keys).

    `reference`: torch-fp32's outputs on `example` (None on the torch-fp32 row: its parity columns stay
    empty). `latency`: an earlier `measure_latency` result to use instead of timing again."""
    batch = int(example.shape[0])
    record = {"variant": variant.name, "batch_size": batch, **variant.facts, "status": "ok", "error": ""}
    with _step("latency"):
        record.update(latency if latency is not None else
                      measure_latency(variant.bind(example), settings, device=variant.timing_device))
    big = None
    projected = 5 * record["latency_ms_p50"] / 1e3 * settings.throughput_batch / batch
    if not settings.throughput:
        pass  # left out (--skip-probes throughput): the columns stay empty
    elif settings.throughput_batch == batch:  # at the latency batch: the latency calls are the measurement
        record.update(throughput_ips=batch / (record["latency_ms_p50"] / 1e3), throughput_batch=batch)
    elif projected > THROUGHPUT_SECONDS_LIMIT:
        # The throughput loop makes at least five calls at the larger batch; for a variant this slow (bf16 emulated
        # on a CPU without bf16 instructions: seconds per image) that would take many minutes for one number.
        record.update(throughput_ips=None, throughput_batch=settings.throughput_batch,
                      notes=f"throughput not measured: five calls at batch {settings.throughput_batch} would take "
                            f"about {projected:.0f} s (from this variant's latency)")
    else:
        big = example[:1].expand(settings.throughput_batch, *example.shape[1:]).contiguous()
    try:
        if big is not None:
            record.update(measure_throughput(variant.bind(big), settings.throughput_batch, settings,
                                             device=variant.timing_device))
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise _StageFailed("throughput", exc) from exc
        record.update(throughput_ips=None, throughput_batch=settings.throughput_batch,
                      notes=f"throughput: out of memory at batch {settings.throughput_batch}")
    del big
    with _step("peak memory"):
        peak = variant.peak_bytes(example)
    record["peak_infer_mb"] = peak / 1e6 if peak is not None else None
    if reference is not None:
        with _step("parity"):
            record.update(parity(reference, variant(example), variant.precision))
    else:
        record.update(parity_max_abs_diff=None, parity_rel_diff=None, parity_p99_abs_diff=None, parity=None,
                      parity_tolerance=None)
    record.update(roofline_for(record["latency_ms_p50"], gmacs, batch, peaks, variant.precision, peak_kernels))
    return record


def _unmeasured(name: str, batch: int, status: str, error: str) -> dict:
    spec = VARIANTS[name]
    return {"variant": name, "batch_size": batch, "runtime": spec.runtime, "precision": spec.precision,
            "status": status, "error": error}


def _broken(name: str, batch: int, stage: str, exc: Exception) -> dict:
    """The row of a variant that raised, `failed` with its cause. Out of memory at the job's own batch is a
    failure (the run asked for this batch), named as such; in a batch sweep it only ends the sweep."""
    _trace()
    if isinstance(exc, _StageFailed):
        stage, exc = exc.stage, exc.cause
    if is_out_of_memory(exc):
        return _unmeasured(name, batch, "failed", f"out of memory at batch {batch} ({_first_line(exc)[:200]})")
    return _unmeasured(name, batch, "failed", f"{stage}: {_first_line(exc)}")


def profile_variants(module: nn.Module, example: torch.Tensor, variants: str | Sequence[str], settings: ProbeSettings,
                     *, batch_sizes: Sequence[int] | None = None, calibration_images: torch.Tensor | None = None,
                     gmacs: float | None = None, peaks: dict | None = None, rounds: int = 1,
                     peak_kernels: dict | None = None, e2e: dict | None = None, e2e_probe=None,
                     progress=None) -> list[dict]:
    """Every requested variant of `module` at the batch of `example`, then (with `batch_sizes`) its batch
    sweep at the other sizes. Returns the records in table order, sweep rows after; a variant that cannot
    run here is `skipped` with the reason, one that breaks is `failed` with the cause.

    `e2e` ({"variants": [...], "pipeline": {...}, "line": {...} or None}, `e2e_probe`, bench.line.pipeline_probe): the
    end-to-end columns (`e2e_*`, `line_*`) added to those variants' rows; a failure there fails the row with
    the step's name ("e2e: ..."), its other columns kept."""
    from bench.variants.ort_variants import OnnxExports
    from bench.variants.torch_variants import prepare_torch_variant

    names = parse_variants(variants)
    batch = int(example.shape[0])
    rows: dict[str, dict] = {}
    prepared: dict[str, PreparedVariant] = {}
    exports = OnnxExports(module, example, settings)
    try:
        try:
            fp32 = prepare_torch_variant(REFERENCE_VARIANT, module, example, settings)
            reference = reference_outputs(fp32(example))
        except Exception as exc:  # without the reference nothing can be compared: every row says why
            return [_broken(name, batch, "torch-fp32 reference", exc) for name in names]
        for name in names:
            if name == REFERENCE_VARIANT:
                prepared[name] = fp32
                continue
            try:
                prepared[name] = prepare_variant(name, module, example, settings, exports=exports,
                                                 calibration_images=calibration_images)
            except VariantUnavailable as exc:
                rows[name] = _unmeasured(name, batch, "skipped", exc.reason)
            except Exception as exc:
                export_failed = VARIANTS[name].runtime == "onnxruntime" and exports.export_failed
                rows[name] = _broken(name, batch, "onnx export" if export_failed else "prepare", exc)
        timings: dict[str, list[dict]] = {name: [] for name in prepared}
        for _ in range(max(1, rounds)):
            for name, variant in prepared.items():
                if name in rows:
                    continue
                try:
                    timings[name].append(measure_latency(variant.bind(example), settings, device=variant.timing_device))
                except Exception as exc:
                    rows[name] = {**_broken(name, batch, "latency", exc), **variant.facts}
        for name, variant in prepared.items():
            if name in rows:
                continue
            try:
                rows[name] = variant_probe(variant, example, settings, reference=None if name == REFERENCE_VARIANT else reference,
                                           gmacs=gmacs, peaks=peaks, latency=merge_latency(timings[name]),
                                           peak_kernels=peak_kernels)
                rows[name]["latency_rounds"] = max(1, rounds)
            except Exception as exc:
                rows[name] = {**_broken(name, batch, "probe", exc), **variant.facts, **merge_latency(timings[name])}
        for name, variant in prepared.items():
            if e2e and e2e_probe and name in e2e.get("variants", ()) and rows[name]["status"] == "ok":
                rows[name].update(_pipeline_columns(name, variant, example, e2e, e2e_probe, progress, settings.workdir))
        sweep_rows: list[dict] = []
        others = [b for b in (batch_sizes or []) if int(b) != batch]
        for name, variant in prepared.items():
            if others and rows[name]["status"] == "ok":
                sweep_rows.extend(batch_sweep(variant, example[:1], others, settings, gmacs=gmacs, peaks=peaks))
        return [rows[n] for n in names] + sweep_rows
    finally:
        compiled = any(getattr(v, "compiled", False) for v in prepared.values())
        for variant in prepared.values():
            variant.close()
        exports.cleanup()
        if compiled:
            torch._dynamo.reset()  # drop the compiled graphs and their guards with the module


def _pipeline_columns(name: str, variant: PreparedVariant, example: torch.Tensor, e2e: dict, e2e_probe, progress,
                      frames_dir) -> dict:
    if progress:
        progress(f"end to end: {name}" + (" + line" if e2e.get("line") else ""))
    try:
        return e2e_probe(variant, example, e2e, frames_dir=frames_dir)
    except Exception as exc:
        _trace()
        return {"status": "failed", "error": f"e2e: {_first_line(exc)}"}


def _trace() -> None:
    if os.environ.get("DEFECTBENCH_TRACEBACK"):
        traceback.print_exc()

