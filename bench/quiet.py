"""Keeping native libraries' noise out of the user's terminal and CI log.

The PyTorch profiler (used by the CPU memory probe) makes Kineto print `USDT: ... profiler_start/stop` lines
straight to file descriptor 2, below Python. `filtered_stderr` routes fd 2 through a pipe and forwards every
line except those, so genuine errors from native code still reach the user.
"""
from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager

NOISE = (b"USDT:",)


def _forward(read_fd: int, target_fd: int, drop: tuple[bytes, ...], close_target: bool = False) -> None:
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not line.lstrip().startswith(drop):
                    os.write(target_fd, line + b"\n")
        if pending and not pending.lstrip().startswith(drop):
            os.write(target_fd, pending)
    if close_target:
        os.close(target_fd)


def install_stderr_filter(drop: tuple[bytes, ...] = NOISE) -> None:
    """For the rest of this process (a worker): fd 2 goes through the filter."""
    sys.stderr.flush()
    target = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    threading.Thread(target=_forward, args=(read_fd, target, drop), daemon=True, name="stderr-filter").start()


@contextmanager
def filtered_stderr(drop: tuple[bytes, ...] = NOISE):
    """fd 2 goes through the filter inside the block (the inline executor)."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    thread = threading.Thread(target=_forward, args=(read_fd, os.dup(saved), drop, True), daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the forwarder drains and ends
        os.close(saved)
        thread.join(timeout=5)
