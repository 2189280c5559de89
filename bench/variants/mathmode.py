"""The arithmetic a run actually used: CPU instruction-set flags and the CUDA math settings.

On CUDA, cuDNN convolutions use TF32 by default while cuBLAS matmuls do not (PyTorch's defaults), so an
"fp32" number depends on flags nobody set. Variants therefore set the fp32 math mode explicitly around each
call (`fp32_math`): `ieee` for every torch variant except `torch-tf32`. `math_mode()` records the process
defaults for the provenance; each record's own `math_mode` column says what that variant ran with.

The flags are set and read through the legacy `allow_tf32` attributes only: in this PyTorch, once the newer
`fp32_precision` attributes are set, reading the legacy ones raises, and other code (and inductor) reads them.
"""
from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Iterator

import torch

# The instruction sets that decide which kernels a CPU runtime picks: vectors, fused multiply-add, half and
# bfloat16 conversion/arithmetic, int8 dot products (VNNI) and matrix tiles (AMX).
_CPU_FLAG_PATTERN = re.compile(r"^(avx\w*|amx\w*|\w*vnni\w*|fma|f16c|sse4_2)$")


def cpu_flags(cpuinfo: str | None = None) -> str:
    """The CPU's vector, fp16/bf16, VNNI and AMX flags, sorted and comma-separated ("" where unknown)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return ""
    for line in cpuinfo.splitlines():
        if line.startswith("flags") or line.startswith("Features"):
            flags = line.split(":", 1)[1].split()
            return ",".join(sorted(f for f in set(flags) if _CPU_FLAG_PATTERN.match(f)))
    return ""


def _read(getter) -> object:
    try:
        return getter()
    except Exception as exc:  # an inconsistent mix of legacy and new flag APIs raises on read
        return f"unreadable: {type(exc).__name__}"


def math_mode(device: torch.device | str | None = None) -> dict:
    """The process's math settings, for the provenance: TF32, cuDNN and determinism flags, CPU capability."""
    mode = {
        "cpu_capability": _read(torch.backends.cpu.get_cpu_capability),
        "mkldnn_enabled": torch.backends.mkldnn.enabled,
        "float32_matmul_precision": _read(torch.get_float32_matmul_precision),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }
    if device is not None and torch.device(device).type == "cuda":
        mode.update(
            cuda_matmul_allow_tf32=_read(lambda: torch.backends.cuda.matmul.allow_tf32),
            cudnn_allow_tf32=_read(lambda: torch.backends.cudnn.allow_tf32),
            cuda_matmul_allow_fp16_reduced_precision_reduction=_read(
                lambda: torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction),
            cuda_matmul_allow_bf16_reduced_precision_reduction=_read(
                lambda: torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction),
            cudnn_enabled=torch.backends.cudnn.enabled,
            cudnn_benchmark=torch.backends.cudnn.benchmark,
            cudnn_deterministic=torch.backends.cudnn.deterministic,
            cudnn_version=_read(torch.backends.cudnn.version),
        )
    return mode


@contextlib.contextmanager
def fp32_math(mode: str | None, device: torch.device) -> Iterator[None]:
    """Run the block with fp32 matmuls and convolutions in `mode` ("ieee" or "tf32") on CUDA; restore after.

    A no-op on CPU (the flags only steer cuBLAS and cuDNN) and for mode None."""
    if mode is None or device.type != "cuda":
        yield
        return
    allow = mode == "tf32"
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
