"""The best arithmetic rate per precision among a few large calibration kernels, measured on the device, and
each variant's rate against it (`best_kernel_ratio`).

What the ratio is: a model variant's achieved rate (`achieved_gflops` = 2 x MACs / p50) divided by the best rate
that one of the calibration kernels below reached in the same run (`best_kernel_gflops`, set by `best_kernel`).
It is NOT a fraction of the hardware's peak, and it can exceed 1: the calibration kernels are a measured lower
bound of what the machine can do, not its theoretical peak, and a model whose own kernels run faster than all of
them reads above 1 (FCN-32s on ONNX Runtime read 1.06 in `make bench` on this project's 2-core AMD EPYC VM: its
own large convolutions outran every calibration kernel). A busy machine (the best call of a second missed the
kernels' real rate) or a MAC counter that counts work a runtime skips pushes it up too. What it is good for:
comparing how well the variants and models of ONE run use the machine, since every record of a run and precision
has the same denominator; not an absolute efficiency, and not comparable across machines without care. (It was
called `peak_fraction`, with `device_peak_gflops` and `device_peak_kernel`, before it was renamed for what it is;
bench/schema.py's reader maps the old names of older files to these.)

The calibration kernels (`PEAK_KERNELS`), per precision, are large kernels of the runtimes the variants use, so
that the denominator is at least what a plain matmul gives (a 2048 torch fp32 matmul alone ran 1.3-1.4x slower
here than a 3x3 convolution of torch's oneDNN or ONNX Runtime's MLAS, or ONNX Runtime's 1024 MatMul, which is
how SegNet and FCN-32s on ONNX Runtime once read 1.36 and 1.8 against it):
- fp32 on CPU: a square torch matmul, a torch 3x3 convolution, an ONNX Runtime MatMul and an ONNX Runtime 3x3
  Conv (64 channels at 128x128: the shapes at which MLAS and oneDNN reach their best here);
- fp32, tf32, bf16, fp16 on CUDA: a torch matmul and a torch 3x3 convolution in that dtype (fp32 with TF32 off,
  tf32 with it on);
- bf16 on CPU: a torch matmul (emulated on AVX2 at well under 1 GFLOP/s, so the side only grows while one
  call stays short);
- int8: ONNX Runtime's integer GEMM (a one-node MatMulInteger graph, uint8 x int8 -> int32, the MLAS kernels
  behind the quantised convolutions) on CPU; `torch._int_mm` on CUDA.
Each kernel is timed for `seconds` and its best call counts (the least disturbed one). The torch matmul's side
doubles from 256 until one call takes a tenth of `seconds`, up to 2048 on CPU and 8192 on CUDA
with 10 matmuls per timed call (so launch overhead does not hide the kernel's rate).

A precision the device cannot run (fp16 and tf32 on a CPU) has no entry. A variant's denominator is the larger
of fp32's best and its own precision's (autocast and QDQ graphs run some ops in fp32). The profile job measures
the kernels once per run and device (bench/jobs/profile.py keeps them in the run's scratch folder), so every
model's ratio has the same denominator, and the record names the kernel that set it (`best_kernel`).
"""
from __future__ import annotations

import time
from typing import Callable

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


def _torch_matmul_peak(device: torch.device, precision: str, seconds: float, threads: int) -> float:
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


def _torch_conv_peak(device: torch.device, precision: str, seconds: float, threads: int) -> float:
    cuda = device.type == "cuda"
    channels, side, batch = (256, 64, 16) if cuda else (64, 128, 1)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device, _DTYPES[precision]).eval()
    x = torch.rand(batch, channels, side, side, device=device, dtype=_DTYPES[precision])

    def call():
        with torch.inference_mode(), fp32_math("tf32" if precision == "tf32" else "ieee", device):
            conv(x)

    return _best_rate(call, 2.0 * batch * channels * channels * 9 * side * side, device, seconds)


def _ort_session(nodes, inputs, outputs, initialisers, threads: int):
    import onnxruntime as ort
    from onnx import helper

    graph = helper.make_graph(nodes, "peak", inputs, outputs, initialisers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = threads, 1, 3
    return ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])


def _ort_matmul_peak(device: torch.device, precision: str, seconds: float, threads: int, n: int = 1024) -> float:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "B")
    session = _ort_session([helper.make_node("MatMul", ["A", "B"], ["Y"])],
                           [helper.make_tensor_value_info("A", TensorProto.FLOAT, [n, n])],
                           [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, n])], [weights], threads)
    feed = {"A": rng.standard_normal((n, n)).astype(np.float32)}
    return _best_rate(lambda: session.run(None, feed), 2.0 * n**3, device, seconds)


def _ort_conv_peak(device: torch.device, precision: str, seconds: float, threads: int, channels: int = 64,
                   side: int = 128) -> float:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array((rng.standard_normal((channels, channels, 3, 3)) * 0.05).astype(np.float32), "W")
    shape = [1, channels, side, side]
    session = _ort_session([helper.make_node("Conv", ["X", "W"], ["Y"], pads=[1, 1, 1, 1])],
                           [helper.make_tensor_value_info("X", TensorProto.FLOAT, shape)],
                           [helper.make_tensor_value_info("Y", TensorProto.FLOAT, shape)], [weights], threads)
    feed = {"X": rng.standard_normal(shape).astype(np.float32)}
    return _best_rate(lambda: session.run(None, feed), 2.0 * channels * channels * 9 * side * side, device, seconds)


def _ort_int8_peak(device: torch.device, precision: str, seconds: float, threads: int, n: int = 1024) -> float:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.integers(-64, 64, (n, n), dtype=np.int8), "B")
    session = _ort_session([helper.make_node("MatMulInteger", ["A", "B"], ["Y"])],
                           [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
                           [helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])], [weights], threads)
    feed = {"A": rng.integers(0, 256, (n, n), dtype=np.uint8)}
    return _best_rate(lambda: session.run(None, feed), 2.0 * n**3, device, seconds)


def _cuda_int8_peak(device: torch.device, precision: str, seconds: float, threads: int, n: int = 8192) -> float:
    a = torch.randint(-64, 64, (n, n), device=device, dtype=torch.int8)
    b = torch.randint(-64, 64, (n, n), device=device, dtype=torch.int8)
    return _best_rate(lambda: [torch._int_mm(a, b) for _ in range(10)], 2.0 * n**3 * 10, device, seconds)


Kernel = Callable[[torch.device, str, float, int], float]
# (device type, precision) -> the kernels whose best rate is the peak, by the name the record gives it
PEAK_KERNELS: dict[tuple[str, str], dict[str, Kernel]] = {
    ("cpu", "fp32"): {"torch matmul": _torch_matmul_peak, "torch conv3x3": _torch_conv_peak,
                      "onnxruntime MatMul": _ort_matmul_peak, "onnxruntime Conv3x3": _ort_conv_peak},
    ("cpu", "bf16"): {"torch matmul": _torch_matmul_peak},
    ("cpu", "int8"): {"onnxruntime MatMulInteger": _ort_int8_peak},
    **{("cuda", p): {"torch matmul": _torch_matmul_peak, "torch conv3x3": _torch_conv_peak}
       for p in ("fp32", "tf32", "bf16", "fp16")},
    ("cuda", "int8"): {"torch._int_mm": _cuda_int8_peak},
}


def measure_kernel_rates(device: torch.device, precision: str, *, threads: int | None = None,
                         seconds: float = 1.0) -> dict[str, float]:
    """{kernel name: best rate in GFLOP/s (GOP/s for int8)} of the precision's `PEAK_KERNELS` on `device`, each
    timed for `seconds`; empty where the precision cannot run there."""
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    kernels = PEAK_KERNELS.get((device.type, precision), {})
    threads = threads or torch.get_num_threads()
    return {name: kernel(device, precision, seconds, threads) for name, kernel in kernels.items()}


def best_kernel(rates: dict[str, float]) -> tuple[str, float] | None:
    """(kernel, rate) of the fastest kernel; None without any."""
    return max(rates.items(), key=lambda item: item[1]) if rates else None


def measure_peak(device: torch.device, precision: str, *, threads: int | None = None,
                 seconds: float = 1.0) -> float | None:
    """Best rate in GFLOP/s (GOP/s for int8) for `precision` on `device` over its kernels; None where it cannot
    run there."""
    best = best_kernel(measure_kernel_rates(device, precision, threads=threads, seconds=seconds))
    return best[1] if best else None


def measure_peaks(device: torch.device, precisions=PRECISIONS, *, threads: int | None = None,
                  seconds: float = 1.0) -> dict[str, float]:
    """{precision: GFLOP/s} of the best calibration kernel, for the precisions the device runs
    (`best_kernel_gflops` of a record is the one of its variant's precision, `roofline_for`)."""
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
                 precision: str, kernels: dict[str, str] | None = None) -> dict:
    """`achieved_gflops` = 2 x MACs of the batch / p50; `best_kernel_ratio` = that over `best_kernel_gflops`, the
    best calibration kernel's rate for the variant (the larger of fp32's and its precision's; not the hardware's
    peak, so the ratio may exceed 1), and `best_kernel` the kernel that set it where `kernels` ({precision:
    kernel name}) says."""
    if not latency_ms_p50 or gmacs is None:
        return {}
    achieved = 2 * gmacs * batch / (latency_ms_p50 / 1e3)
    record = {"achieved_gflops": achieved}
    peaks = peaks or {}
    peak = variant_peak(peaks, precision)
    if peak:
        record.update(best_kernel_ratio=achieved / peak, best_kernel_gflops=peak)
        chosen = next((p for p in (precision, "fp32") if peaks.get(p) == peak), None)
        if kernels and chosen in kernels:
            record["best_kernel"] = f"{kernels[chosen]} ({chosen})"
    return record
