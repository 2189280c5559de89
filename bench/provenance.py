"""Where and how a run was made: enough to reproduce it and to refuse comparing unlike runs."""
from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The instruction-set extensions that decide how fast bf16 and int8 run on a CPU (emulated without them).
CPU_FLAGS_OF_INTEREST = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                         "avx_vnni", "amx_bf16", "amx_int8", "amx_tile", "neon", "asimd", "sve")


def cpu_flags() -> str:
    """The CPU flags of interest this machine has, space-separated (empty where /proc/cpuinfo is missing)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                have = set(line.split(":", 1)[1].split())
                return " ".join(f for f in CPU_FLAGS_OF_INTEREST if f in have)
    except OSError:
        pass
    return ""


def math_mode(device: torch.device) -> dict:
    """The settings that change the arithmetic of fp32 models: TF32 and cuDNN on CUDA, matmul precision."""
    mode = {"float32_matmul_precision": torch.get_float32_matmul_precision()}
    if device.type == "cuda":
        mode.update(cuda_matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                    cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                    cudnn_benchmark=torch.backends.cudnn.benchmark,
                    cudnn_deterministic=torch.backends.cudnn.deterministic,
                    cudnn_version=torch.backends.cudnn.version())
    return mode


def git_sha(cwd: Path | None = None) -> str:
    root = cwd or Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                               text=True, timeout=5).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def collect(device: torch.device, threads: int, seed: int, argv: list[str] | None = None,
            executor: str = "inline") -> dict:
    import onnx
    import onnxruntime

    local_gpu = device.type == "cuda" and torch.cuda.is_available()  # else the cluster's nodes have the GPUs
    gpu = torch.cuda.get_device_name(device) if local_gpu else ""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu,
        "cuda": torch.version.cuda if local_gpu else "",
        "device": str(device),
        "threads": threads,
        "executor": executor,
        "math_mode": math_mode(device) if device.type == "cpu" or local_gpu else {},
        "git_sha": git_sha(),
        "seed": seed,
        "command": " ".join(argv if argv is not None else sys.argv),
        "hostname": socket.gethostname(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
