"""Peak arithmetic rate per precision, measured on the device, and the roofline of a variant against its own
precision's peak.

The run's `device_peak_gflops` is a plain fp32 matmul. A bf16/fp16/int8 variant can beat that rate, so its
`peak_fraction` would exceed 1 against it: each precision's peak is measured on its own, with the kernel family
the variants use:
- fp32, tf32, bf16, fp16: a square torch matmul in that dtype (fp32 with TF32 off, tf32 with it on), the
  best rate over `seconds` of repeated calls. The side doubles from 256 until one call takes a tenth of
  `seconds`, up to 2048 on CPU and 8192 on CUDA with 10 matmuls per timed call (so launch overhead does not
  hide the peak). Emulated bf16 on an AVX2 CPU runs at well under
  1 GFLOP/s: a fixed 2048 would take about a minute per call;
- int8: ONNX Runtime's own integer GEMM (a one-node MatMulInteger graph, uint8 x int8 -> int32, the MLAS
  kernels behind the quantised convolutions) on CPU; `torch._int_mm` on CUDA.
A precision the device cannot run (fp16 and tf32 on a CPU) has no entry. A variant's peak is the larger of
fp32's and its own (autocast and QDQ graphs run some ops in fp32), so `peak_fraction` <= 1 holds as long as
the measured matmuls reach the device's real peak.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from bench.variants.mathmode import fp32_math

PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "int8")
_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _best_rate(call, flops: float, device: torch.device, seconds: float) -> float:
    call()  # first call: kernel selection, lazy init
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    best, started = 0.0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        t0 = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = max(best, flops / (time.perf_counter() - t0) / 1e9)
    return best


def _torch_matmul_peak(device: torch.device, precision: str, seconds: float) -> float:
    cuda = device.type == "cuda"
    n_max, repeats = (8192, 10) if cuda else (2048, 1)
    n = 256
    while True:  # grow the matmul until one call takes a tenth of the budget (bf16 emulated on a CPU: 256)
        a = torch.rand(n, n, device=device, dtype=_DTYPES[precision])
        b = torch.rand(n, n, device=device, dtype=_DTYPES[precision])

        def call(a=a, b=b):
            with fp32_math("tf32" if precision == "tf32" else "ieee", device):
                for _ in range(repeats):
                    torch.mm(a, b)

        call()
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        call()
        if cuda:
            torch.cuda.synchronize(device)
        if n >= n_max or time.perf_counter() - t0 > seconds / 10:
            break
        n *= 2
    return _best_rate(call, 2.0 * n**3 * repeats, device, seconds)


def _ort_int8_peak(threads: int, seconds: float, n: int = 1024) -> float:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.integers(-64, 64, (n, n), dtype=np.int8), "B")
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "int8_peak",
                              [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
                              [helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = threads, 1, 3
    session = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    feed = {"A": rng.integers(0, 256, (n, n), dtype=np.uint8)}
    onnx.checker.check_model(model)
    return _best_rate(lambda: session.run(None, feed), 2.0 * n**3, torch.device("cpu"), seconds)


def _cuda_int8_peak(device: torch.device, seconds: float, n: int = 8192) -> float:
    a = torch.randint(-64, 64, (n, n), device=device, dtype=torch.int8)
    b = torch.randint(-64, 64, (n, n), device=device, dtype=torch.int8)
    return _best_rate(lambda: [torch._int_mm(a, b) for _ in range(10)], 2.0 * n**3 * 10, device, seconds)


def measure_peak(device: torch.device, precision: str, *, threads: int | None = None,
                   seconds: float = 1.0) -> float | None:
    """Best rate in GFLOP/s (GOP/s for int8) for `precision` on `device`; None where it cannot run there."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if precision in ("tf32", "fp16") and not cuda:
        return None
    if precision == "int8":
        return _cuda_int8_peak(device, seconds) if cuda else _ort_int8_peak(threads or torch.get_num_threads(), seconds)
    return _torch_matmul_peak(device, precision, seconds)


def measure_peaks(device: torch.device, precisions=PRECISIONS, *, threads: int | None = None,
                    seconds: float = 1.0) -> dict[str, float]:
    """{precision: GFLOP/s} for the precisions the device runs; the lead records them in the provenance as
    `device_peak_gflops` (fp32) and `device_peak_gflops_<precision>`."""
    peaks = {}
    for precision in precisions:
        peak = measure_peak(device, precision, threads=threads, seconds=seconds)
        if peak is not None:
            peaks[precision] = peak
    return peaks


def variant_peak(peaks: dict[str, float], precision: str) -> float | None:
    candidates = [peaks[p] for p in ("fp32", precision) if p in peaks]
    return max(candidates) if candidates else None


def roofline_for(latency_ms_p50: float | None, gmacs: float | None, batch: int, peaks: dict[str, float] | None,
                 precision: str) -> dict:
    """`achieved_gflops` = 2 x MACs of the batch / p50; `peak_fraction` against the variant's peak."""
    if not latency_ms_p50 or gmacs is None:
        return {}
    achieved = 2 * gmacs * batch / (latency_ms_p50 / 1e3)
    record = {"achieved_gflops": achieved}
    peak = variant_peak(peaks or {}, precision)
    if peak:
        record.update(peak_fraction=achieved / peak, device_peak_gflops=peak)
    return record
