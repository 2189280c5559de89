"""Naming what went wrong, in one line: the root cause of an exception, and whether an allocator ran out.

Used by every job and every variant probe, so a failure reads the same wherever it happened.
"""
from __future__ import annotations

import re

import torch

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_OUT_OF_MEMORY = (
    "out of memory",               # CUDA: "CUDA out of memory. Tried to allocate ..."
    "can't allocate memory",       # PyTorch CPU: "DefaultCPUAllocator: can't allocate memory: ..."
    "cannot allocate memory",      # errno 12, e.g. under --job-memory-mb (RLIMIT_AS)
    "not enough memory",           # PyTorch CPU on Windows, oneDNN
    "failed to allocate memory",   # ONNX Runtime: "... BFCArena ... Failed to allocate memory for ..."
    "bad_alloc", "bad allocation",  # C++ std::bad_alloc surfaced by ONNX Runtime
)


def first_line(exc: BaseException) -> str:
    """The exception type and, for wrapped errors, the root cause's first line (ANSI colours removed)."""
    root = exc
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    text = _ANSI.sub("", str(root)).strip().splitlines()
    via = f"{type(exc).__name__} <- " if root is not exc else ""
    return f"{via}{type(root).__name__}: {text[0][:300] if text else ''}"


def is_out_of_memory(exc: BaseException | None) -> bool:
    """True for the allocators' out-of-memory errors, wherever they were raised from (causes followed)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
            return True
        text = str(exc).lower()
        if any(m in text for m in _OUT_OF_MEMORY):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def describe_failure(exc: BaseException, where: str, batch: int | None = None) -> str:
    """`where: out of memory at batch B (...)` for allocation failures, else `where: <first line>`."""
    if is_out_of_memory(exc):
        at = f" at batch {batch}" if batch is not None else ""
        return f"{where}: out of memory{at} ({first_line(exc)[:200]})"
    return f"{where}: {first_line(exc)}"
