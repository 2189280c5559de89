"""torch-fp32 and ort-fp32 rows from the existing probes (replaced by bench/variants/ when it lands)."""
from __future__ import annotations

import time
from typing import Callable, Iterator

import torch

from bench import probes
from bench.jobs.common import describe_failure


def variant_rows(spec, module, x, settings, progress: Callable[[str], None] | None = None) -> Iterator[dict]:
    for variant in spec.settings.get("variants") or ["torch-fp32"]:
        if progress:
            progress(variant)
        t0 = time.perf_counter()
        row: dict = {"variant": variant}
        errors = []
        if variant == "torch-fp32":
            row.update(runtime="torch", provider=f"torch-{settings.device.type}", precision="fp32")
            big = x[:1].expand(settings.throughput_batch, *x.shape[1:]).contiguous()
            steps = (("peak_infer", x.shape[0], lambda: probes.peak_infer_probe(module, x, settings)),
                     ("latency", x.shape[0], lambda: probes.measure_latency(lambda: module(x), settings)),
                     ("throughput", big.shape[0],
                      lambda: probes.measure_throughput(lambda: module(big), big.shape[0], settings)))
            for name, batch, measure in steps:  # each on its own: a failure keeps what the others measured
                try:
                    with torch.inference_mode():
                        row.update(measure())
                except Exception as exc:
                    errors.append(describe_failure(exc, name, batch))
        elif variant == "ort-fp32":
            row.update(runtime="onnxruntime", precision="fp32")
            try:
                got = probes.onnx_probe(module, x, settings)
                row.update(provider=got.pop("ort_provider"), onnx_mb=got.pop("onnx_mb"), onnx_files=got.pop("onnx_files"),
                           parity_max_abs_diff=got.pop("onnx_max_abs_diff"), parity_rel_diff=got.pop("onnx_rel_diff"),
                           parity=got.pop("onnx_parity"))
                row.update({k.replace("ort_latency", "latency", 1): v for k, v in got.items()})
            except Exception as exc:
                errors.append(describe_failure(exc, "onnx", x.shape[0]))
        else:
            yield dict(row, status="skipped", error=f"{variant}: not available in this build")
            continue
        row[f"probe_seconds_{variant}"] = time.perf_counter() - t0
        yield dict(row, status="failed" if errors else "ok", error=" | ".join(errors))
