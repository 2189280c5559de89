"""Inference time of every registered model with pytest-benchmark's `benchmark` fixture (`make bench-pytest`;
this file is outside `make test`'s collection, which only takes test_*.py).

One image of 64x64 (or the model's own input size where that is smaller), batch 1, on the CPU with
DEFECTBENCH_BENCH_THREADS threads (default 1). pytest-benchmark times the rounds; before each round the
reference workload of `bench.measure` is timed (B A B A), and each round's process CPU time is kept, in the
benchmark's `extra_info`, so that `bench compare OLD.json NEW.json` (files saved with --benchmark-json or
--benchmark-save-data) applies the same latency test as to two defectbench runs.
"""
from __future__ import annotations

import os
import time

import pytest
import torch

from models import create_detector, get_entry, list_models

SIZE = 64
THREADS = int(os.environ.get("DEFECTBENCH_BENCH_THREADS", "1"))


@pytest.fixture
def timed_with_reference(benchmark):
    """`timed_with_reference(fn, rounds, warmup_rounds)`: pytest-benchmark times `fn` round by round; the
    reference workload runs (and is timed) before each round, and each round's CPU time is recorded."""
    import onnxruntime

    from bench import measure

    torch.set_num_threads(THREADS)
    reference = measure.reference_workload(torch.device("cpu"))
    cpu_ms, reference_ms, reference_cpu_ms = [], [], []

    def setup():
        c0, t0 = time.process_time(), time.perf_counter()
        reference()
        t1, c1 = time.perf_counter(), time.process_time()
        reference_ms.append((t1 - t0) * 1e3)
        reference_cpu_ms.append((c1 - c0) * 1e3)

    def run(fn, rounds: int = 20, warmup_rounds: int = 3):
        def target():
            c0 = time.process_time()
            fn()
            cpu_ms.append((time.process_time() - c0) * 1e3)

        with torch.inference_mode():
            benchmark.pedantic(target, setup=setup, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)
        keep = slice(warmup_rounds, None)  # the warm-up rounds are not in pytest-benchmark's data either
        # bench compare reads these (bench/compare/load.py): the samples, and the provenance it needs
        benchmark.extra_info.update(cpu_samples_ms=cpu_ms[keep], reference_samples_ms=reference_ms[keep],
                                    reference_cpu_samples_ms=reference_cpu_ms[keep],
                                    reference_workload=measure.REFERENCE_WORKLOAD, threads=THREADS, device="cpu",
                                    torch=torch.__version__, onnxruntime=onnxruntime.__version__)

    return run


@pytest.mark.parametrize("name", [e.name for e in list_models()])
def test_inference(name, timed_with_reference):
    size = min(SIZE, get_entry(name).input_size)
    torch.manual_seed(0)
    module = create_detector(name, image_size=size).inference_module().eval()
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    timed_with_reference(lambda: module(x))
