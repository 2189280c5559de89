"""Batch sweep: latency, throughput and measured peak memory of one prepared variant per batch size.

Batch sizes run in increasing order. An out-of-memory error (CUDA's OutOfMemoryError, the CPU allocator's
"can't allocate memory" / "not enough memory", numpy's MemoryError, ONNX Runtime's allocation failure)
is recorded as a `skipped` row "out of memory at batch B" and ends the sweep: a larger batch cannot fit
either (timm's benchmark backs off the same way). Any other error is a `failed` row for that batch size,
and the sweep goes on.
"""
from __future__ import annotations

import gc
from typing import Sequence

import torch

from bench.failures import first_line as _first_line, is_out_of_memory
from bench.measure import ProbeSettings, measure_latency
from bench.variants.base import PreparedVariant
from bench.variants.peaks import roofline_for



def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure_batch(variant: PreparedVariant, images: torch.Tensor, settings: ProbeSettings, *,
                  gmacs: float | None = None, peaks: dict | None = None) -> dict:
    """Latency (+ raw samples), throughput = batch / p50, measured peak and roofline at the batch of `images`."""
    batch = int(images.shape[0])
    call = variant.bind(images)
    record = measure_latency(call, settings, device=variant.timing_device)
    p50 = record["latency_ms_p50"]
    record.update(throughput_ips=batch / (p50 / 1e3), throughput_batch=batch)
    peak = variant.peak_bytes(images)
    record["peak_infer_mb"] = peak / 1e6 if peak is not None else None
    record.update(roofline_for(p50, gmacs, batch, peaks, variant.precision))
    return record


def batch_sweep(variant: PreparedVariant, example_image: torch.Tensor, batch_sizes: Sequence[int],
                settings: ProbeSettings, *, gmacs: float | None = None, peaks: dict | None = None) -> list[dict]:
    """One row per batch size: `variant`, `batch_size`, `status`, `error`, the latency columns and samples,
    `throughput_ips`, `throughput_batch`, `peak_infer_mb`, roofline columns and the variant's facts."""
    rows = []
    one = example_image[:1] if example_image.dim() == 4 else example_image.unsqueeze(0)
    for batch in sorted(set(int(b) for b in batch_sizes)):
        if batch < 1:
            raise ValueError(f"--batch-sizes: batch sizes must be >= 1, got {batch}")
        row = {"variant": variant.name, "batch_size": batch, **variant.facts, "status": "ok", "error": ""}
        try:
            images = one.expand(batch, *one.shape[1:]).contiguous()
            row.update(measure_batch(variant, images, settings, gmacs=gmacs, peaks=peaks))
        except Exception as exc:
            images = None
            _free(variant.device)
            if is_out_of_memory(exc):
                row.update(status="skipped", error=f"out of memory at batch {batch} ({_first_line(exc)[:200]})")
                rows.append(row)
                break
            row.update(status="failed", error=f"batch {batch}: {_first_line(exc)}")
        rows.append(row)
    return rows
