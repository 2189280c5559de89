"""What every prepared variant is: a callable `images -> outputs` plus the facts that describe it.

A variant is prepared once per model (export, quantisation, compilation happen there) and then serves both
the timing probes and the accuracy evaluation, so the graph that is timed is the graph that is scored.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import torch

Outputs = tuple[torch.Tensor, ...]


class VariantUnavailable(Exception):
    """The device or runtime cannot run this variant (e.g. fp16 on a CPU): the row is `skipped`, not failed."""

    def __init__(self, variant: str, reason: str):
        super().__init__(f"{variant}: {reason}")
        self.variant = variant
        self.reason = reason


def as_outputs(out: Any) -> Outputs:
    """A module's result (one tensor, or a tuple/list holding tensors) as a tuple of tensors."""
    if isinstance(out, torch.Tensor):
        return (out,)
    return tuple(t for t in out if isinstance(t, torch.Tensor))


class PreparedVariant(ABC):
    """One deployment variant of one module, ready to run.

    - `bind(images)` stages a batch once (device copy, memory layout, ONNX Runtime binding) and returns a
      zero-argument call that runs only the inference: what the timing routine calls over and over. The
      tensors it returns may be reused by the next call.
    - `variant(images)` runs one batch and returns outputs that stay valid (the evaluation path).
    - `peak_bytes(images)`: the runtime's measured allocation peak for one call, or None where the runtime
      exposes none (ONNX Runtime).
    - `facts`: runtime, provider, precision, math_mode and the variant's own numbers (compile_seconds, onnx_mb,
      onnx_files, quantisation, prepare_seconds), merged into every record of the variant.
    - `timing_device`: the device `measure_latency` synchronises on (CPU for ONNX Runtime, whose run returns
      only once the device work is done).
    """

    def __init__(self, name: str, device: torch.device, facts: dict):
        self.name = name
        self.device = torch.device(device)
        self.facts = dict(facts)

    @property
    def precision(self) -> str:
        return self.facts["precision"]

    @property
    def timing_device(self) -> torch.device:
        return self.device

    @abstractmethod
    def bind(self, images: torch.Tensor) -> Callable[[], Outputs]:
        ...

    def __call__(self, images: torch.Tensor) -> Outputs:
        return self.bind(images)()

    @abstractmethod
    def peak_bytes(self, images: torch.Tensor) -> int | None:
        ...

    def close(self) -> None:
        """Release sessions, compiled graphs and files; the variant is unusable afterwards."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} on {self.device}>"
