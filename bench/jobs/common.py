"""What every kind of job shares: building the detector, naming a failure in one line, the clock."""
from __future__ import annotations

import re
import socket
from datetime import datetime, timezone

import torch

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_OUT_OF_MEMORY = re.compile(r"out of memory|can't allocate memory|not enough memory|failed to allocate memory|"
                            r"cannot allocate memory|std::bad_alloc", re.IGNORECASE)


def first_line(exc: BaseException) -> str:
    """One line for the results table: the exception type and, for wrapped errors, the root cause's message."""
    root = exc
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    text = _ANSI.sub("", str(root)).strip().splitlines()
    via = f"{type(exc).__name__} <- " if root is not exc else ""
    return f"{via}{type(root).__name__}: {text[0][:300] if text else ''}"


def is_out_of_memory(exc: BaseException) -> bool:
    """The allocator ran out: CUDA's OutOfMemoryError, Python's MemoryError, the CPU allocator's or ONNX
    Runtime's allocation failure (under `--job-memory-mb` these come from the address-space limit)."""
    while exc is not None:
        if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)) or _OUT_OF_MEMORY.search(str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def describe_failure(exc: BaseException, where: str, batch: int | None = None) -> str:
    """`where: out of memory at batch B (...)` for allocation failures, else `where: <first line>`."""
    if is_out_of_memory(exc):
        at = f" at batch {batch}" if batch is not None else ""
        return f"{where}: out of memory{at} ({first_line(exc)[:200]})"
    return f"{where}: {first_line(exc)}"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def host() -> str:
    return socket.gethostname()


def build_detector(name: str, size: int, seed: int, settings: dict, **extra):
    """The detector with the job's seed, weight files and --model-arg values, where its builder takes them.
    Built after `torch.manual_seed(seed)`: the same seed gives the same initial weights."""
    from models import create_detector
    from models.registry import detector_arguments

    weights = {k: v["path"] for k, v in settings.items() if k in ("weights", "vgg_weights") and v}
    wanted = {"seed": seed, **weights, **settings.get("model_args", {}), **extra}
    accepted = detector_arguments(name)
    torch.manual_seed(seed)
    return create_detector(name, image_size=size, **{k: v for k, v in wanted.items() if v is not None and k in accepted})
