"""Where and how a run was made: enough to reproduce it and to refuse comparing unlike runs."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch


# The distributions whose version can move a measured field (accuracy, latency, MACs, sizes, ONNX parity): the
# runtimes, the exporters, the model zoo's sources, the counters and the metrics' numerics. onnxruntime-gpu is the
# same runtime under another name. `bench compare` reads provenance["packages"].
MEASURED_PACKAGES = ("torch", "torchvision", "onnx", "onnxruntime", "onnxruntime-gpu", "onnxscript",
                     "segmentation-models-pytorch", "fvcore", "numpy", "scipy", "scikit-learn")


def package_versions(names: tuple[str, ...] = MEASURED_PACKAGES) -> dict[str, str]:
    """{name: installed version} of each distribution in `names` that is installed (importlib.metadata; a missing one
    is left out). The version is the distribution's own: torch's wheel from PyPI says 2.14.1 where torch.__version__
    says 2.14.1+cu130 (the top-level `torch` key of the provenance keeps that one)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def boot_id() -> str:
    """The kernel's id of this boot (Linux; "" elsewhere): with the hostname, what says two runs were timed on the
    same running machine (VMs cloned from one image share hostname and CPU string)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


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

    from bench.variants.mathmode import cpu_flags, math_mode

    local_gpu = device.type == "cuda" and torch.cuda.is_available()  # else the cluster's nodes have the GPUs
    gpu = torch.cuda.get_device_name(device) if local_gpu else ""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "packages": package_versions(),
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
        "boot_id": boot_id(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
