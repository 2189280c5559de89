"""PyTorch variants: fp32, TF32, autocast bf16/fp16, channels-last, torch.compile (and its CUDA-graph mode).

Every call runs under `torch.inference_mode()` with the variant's fp32 math mode set explicitly (see
mathmode.py): `ieee` everywhere except `torch-tf32`, so that "fp32" on a GPU means fp32.
- Autocast variants keep the fp32 weights and cast per op (PyTorch's autocast op lists); their
  `precision` is the autocast dtype although some ops (reductions, softmax) stay in fp32.
- `torch-channels-last` runs a copy of the module converted to channels-last, fed channels-last input
  (converted when the batch is staged, outside the timed call, as timm's benchmark does).
- `torch-compile` is `torch.compile(module, dynamic=False)` (inductor): each batch shape is compiled once,
  when it is first staged; `compile_seconds` is the wall time of the first call (tracing + compilation + one
  run), the timed calls are the steady state after it. `torch-compile-cudagraphs` is mode="reduce-overhead":
  the first calls also record the CUDA graph (three calls to the steady state, all in `compile_seconds`).
  The recompile limit is raised and hitting it is an error, so a compiled row can never silently run eager.
  Each compiled variant compiles into an inductor cache of its own (a scratch folder of the job, removed with
  the variant): `compile_seconds` is a cold compile in every run, not a hit in an earlier run's cache, and a
  run killed while the C++ compiler wrote a kernel cannot leave an empty `.so` in the shared cache
  (/tmp/torchinductor_<user>) that fails every later compile of that graph with an ImportError.
"""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from bench.measure import ProbeSettings, measure_peak_bytes, resident_bytes
from bench.variants.base import Outputs, PreparedVariant, VariantUnavailable, as_outputs
from bench.variants.mathmode import cpu_flags, fp32_math

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
RECOMPILE_LIMIT = 64  # one compiled graph per batch shape: the sweep's sizes, the evaluation's last batch ...


class TorchVariant(PreparedVariant):
    def __init__(self, name: str, module: nn.Module, device: torch.device, facts: dict, *, resident: int,
                 autocast: torch.dtype | None = None, channels_last: bool = False, fp32_mode: str | None = "ieee",
                 compiled: bool = False, cudagraphs: bool = False, cache_dir: Path | None = None):
        super().__init__(name, device, facts)
        self.cache_dir = cache_dir
        self.module = module
        self.resident = resident
        self.autocast = autocast
        self.channels_last = channels_last
        self.fp32_mode = fp32_mode
        self.compiled = compiled
        self.cudagraphs = cudagraphs
        self._warm_shapes: set[tuple[int, ...]] = set()

    def _run(self, x: torch.Tensor) -> Outputs:
        cast = (torch.autocast(self.device.type, dtype=self.autocast) if self.autocast is not None
                else contextlib.nullcontext())
        with torch.inference_mode(), fp32_math(self.fp32_mode, self.device), cast:
            if self.cudagraphs:  # the previous call's outputs may be overwritten from here on
                torch.compiler.cudagraph_mark_step_begin()
            return as_outputs(self.module(x))

    def _stage(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def warm_up(self, x: torch.Tensor) -> None:
        """Compile (and record the CUDA graph) for this batch shape, once: never inside a timed call."""
        shape = tuple(x.shape)
        if self.compiled and shape not in self._warm_shapes:
            with inductor_cache(self.cache_dir):
                for _ in range(3 if self.cudagraphs else 1):
                    self._run(x)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self._warm_shapes.add(shape)

    def bind(self, images: torch.Tensor) -> Callable[[], Outputs]:
        x = self._stage(images)
        self.warm_up(x)
        return lambda: self._run(x)

    def __call__(self, images: torch.Tensor) -> Outputs:
        out = self.bind(images)()
        # CUDA-graph outputs live in the graph's memory pool and are overwritten by the next replay.
        return tuple(t.clone() for t in out) if self.cudagraphs else out

    def peak_bytes(self, images: torch.Tensor) -> int | None:
        call = self.bind(images)
        if self.cudagraphs:
            # A replay allocates nothing: the graph's memory is its private pool, reserved at recording.
            pool = cudagraph_pool_bytes(self.device)
            return None if pool is None else self.resident + pool
        return self.resident + measure_peak_bytes(call, self.device)

    def close(self) -> None:
        self.module = None
        if self.cache_dir is not None:
            shutil.rmtree(self.cache_dir, ignore_errors=True)


@contextlib.contextmanager
def inductor_cache(directory: Path | None):
    """Inductor's on-disk cache in `directory` while compiling (None: wherever it is now)."""
    if directory is None:
        yield
        return
    from torch._inductor.utils import clear_caches

    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(directory)
    clear_caches()  # the in-memory caches remember paths in the previous folder
    try:
        yield
    finally:
        clear_caches()
        if before is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = before


def cudagraph_pool_bytes(device: torch.device) -> int | None:
    """Bytes the caching allocator holds in CUDA-graph private pools (segments not in the default pool)."""
    try:
        segments = torch.cuda.memory_snapshot()
    except Exception:
        return None
    total = 0
    for seg in segments:
        pool = tuple(seg.get("segment_pool_id", (0, 0)) or (0, 0))
        if seg.get("device", device.index or 0) == (device.index or 0) and pool != (0, 0):
            total += int(seg.get("total_size", 0))
    return total


# -- availability -------------------------------------------------------------------------------------------
def _require_cuda(name: str, device: torch.device, what: str) -> None:
    if device.type != "cuda":
        raise VariantUnavailable(name, f"{what} needs a CUDA device (this run is on {device.type})")


def _require_compiler(name: str, device: torch.device) -> None:
    if device.type == "cuda":
        if importlib.util.find_spec("triton") is None:
            raise VariantUnavailable(name, "torch.compile on CUDA needs Triton, which is not installed")
        return
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception as exc:
        raise VariantUnavailable(name, f"torch.compile on CPU needs a C++ compiler: {exc}") from exc


def _never_fall_back_to_eager() -> None:
    """Raise the recompile limit and make hitting it an error (the names changed across PyTorch releases)."""
    config = torch._dynamo.config
    for limit in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, limit):
            setattr(config, limit, max(getattr(config, limit), RECOMPILE_LIMIT))
            break
    for strict in ("fail_on_recompile_limit_hit", "fail_on_cache_limit_hit"):
        if hasattr(config, strict):
            setattr(config, strict, True)
            break


def _cpu_bf16_note() -> str:
    flags = cpu_flags().split(",")
    native = [f for f in flags if f in ("avx512_bf16", "amx_bf16")]
    return f"native ({'+'.join(native)})" if native else "emulated (no avx512_bf16/amx_bf16 on this CPU)"


# -- preparation --------------------------------------------------------------------------------------------
def prepare_torch_variant(name: str, module: nn.Module, example: torch.Tensor, settings: ProbeSettings) -> TorchVariant:
    """Build the torch variant `name` of `module` (already on the run's device, in eval mode)."""
    device = settings.device
    started = time.perf_counter()
    cuda = device.type == "cuda"
    fp32_label = "fp32 (TF32 off)" if cuda else "fp32"
    facts = {"runtime": "torch", "provider": f"torch-{device.type}", "precision": "fp32", "math_mode": fp32_label}
    kwargs: dict = {}
    target = module
    if name == "torch-fp32":
        pass
    elif name == "torch-tf32":
        _require_cuda(name, device, "TF32")
        if torch.cuda.get_device_capability(device) < (8, 0):
            raise VariantUnavailable(name, f"TF32 needs compute capability 8.0+, this GPU has "
                                           f"{'.'.join(map(str, torch.cuda.get_device_capability(device)))}")
        kwargs["fp32_mode"] = "tf32"
        facts.update(precision="tf32", math_mode="fp32 with TF32 matmuls and convolutions")
    elif name in ("torch-bf16", "torch-fp16"):
        precision = name.split("-")[1]
        if precision == "fp16" and not cuda:
            raise VariantUnavailable(name, "float16 autocast runs on CUDA only (this CPU has no fp16 arithmetic: "
                                           "F16C converts, it does not compute)")
        if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported(including_emulation=False):
            raise VariantUnavailable(name, "this GPU has no native bfloat16")
        kwargs["autocast"] = AUTOCAST_DTYPES[precision]
        note = "" if cuda or precision != "bf16" else f", {_cpu_bf16_note()}"
        facts.update(precision=precision, math_mode=f"autocast {precision}{note}; fp32 ops {fp32_label}")
    elif name == "torch-channels-last":
        target = copy.deepcopy(module).to(memory_format=torch.channels_last)
        kwargs["channels_last"] = True
        facts.update(math_mode=f"{fp32_label}, channels-last")
    elif name in ("torch-compile", "torch-compile-cudagraphs"):
        graphs = name.endswith("cudagraphs")
        if graphs:
            _require_cuda(name, device, "CUDA graphs")
        _require_compiler(name, device)
        _never_fall_back_to_eager()
        if device.type == "cpu":  # inductor's C++ build looks for CUDA and warns when a CPU run has none
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        target = torch.compile(module, mode="reduce-overhead" if graphs else None, dynamic=False)
        Path(settings.workdir).mkdir(parents=True, exist_ok=True)
        kwargs.update(compiled=True, cudagraphs=graphs,
                      cache_dir=Path(tempfile.mkdtemp(prefix="inductor-", dir=settings.workdir)))
        facts.update(math_mode=f"{fp32_label}, inductor" + (", CUDA graphs" if graphs else ""))
    else:
        raise KeyError(f"not a torch variant: {name!r}")
    variant = TorchVariant(name, target, device, facts, resident=resident_bytes(module), **kwargs)
    if variant.compiled:
        t0 = time.perf_counter()
        try:
            variant.warm_up(variant._stage(example))
        except BaseException:
            variant.close()
            raise
        variant.facts["compile_seconds"] = time.perf_counter() - t0
    variant.facts["prepare_seconds"] = time.perf_counter() - started
    return variant
