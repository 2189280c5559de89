"""pytest-benchmark support for `make bench-pytest` (tests/benchmarks/bench_*.py; not part of `make test`).

Each benchmark is timed by pytest-benchmark's own loop; between its rounds, the reference workload of
`bench.probes` is timed (B A B A), and each round's process CPU time is kept, so that `bench compare` can
apply to two pytest-benchmark JSON files the same latency test as to two defectbench runs.
"""
from __future__ import annotations

import os
import time

import pytest

THREADS = int(os.environ.get("DEFECTBENCH_BENCH_THREADS", "1"))


def pytest_benchmark_update_machine_info(config, machine_info):
    # the provenance bench compare reads (bench/compare/load.py), under defectbench's names
    import onnxruntime
    import torch

    machine_info.update(torch=torch.__version__, onnxruntime=onnxruntime.__version__, threads=THREADS, device="cpu")


@pytest.fixture
def timed_with_reference(benchmark):
    """`timed_with_reference(fn, rounds, warmup_rounds)`: pytest-benchmark times `fn` round by round; the
    reference workload runs (and is timed) before each round, and each round's CPU time is recorded."""
    import torch

    from bench import probes

    torch.set_num_threads(THREADS)
    reference = probes.reference_workload(torch.device("cpu"))
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
        benchmark.extra_info.update(cpu_samples_ms=cpu_ms[keep], reference_samples_ms=reference_ms[keep],
                                    reference_cpu_samples_ms=reference_cpu_ms[keep],
                                    reference_workload=probes.REFERENCE_WORKLOAD, threads=THREADS, device="cpu")

    return run
