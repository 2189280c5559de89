"""The variant table: every deployment variant by name, and the one entry point that prepares any of them.

| name | runtime | precision | where |
|---|---|---|---|
| torch-fp32 | torch | fp32 | any (on CUDA with TF32 off: the reference of every parity and accuracy delta) |
| torch-tf32 | torch | tf32 | CUDA, compute capability 8.0+ |
| torch-bf16 | torch | bf16 | any (autocast; emulated on CPUs without avx512_bf16/amx_bf16) |
| torch-fp16 | torch | fp16 | CUDA (autocast) |
| torch-channels-last | torch | fp32 | any |
| torch-compile | torch | fp32 | any with a C++ compiler (CPU) or Triton (CUDA) |
| torch-compile-cudagraphs | torch | fp32 | CUDA with Triton (mode="reduce-overhead") |
| ort-fp32 | onnxruntime | fp32 | CPU, or CUDA with the CUDAExecutionProvider |
| ort-int8-dynamic | onnxruntime | int8 | as ort-fp32 |
| ort-int8-static | onnxruntime | int8 | as ort-fp32, given calibration images |
| ort-fp16 | onnxruntime | fp16 | CUDA with the CUDAExecutionProvider |

What is `skipped` (VariantUnavailable, with the reason) rather than `failed`: the device lacks the feature
(fp16 or CUDA graphs or TF32 on a CPU, bf16 on a GPU without it), a runtime piece is absent (no C++ compiler,
no Triton, onnxruntime without the CUDA provider), ONNX Runtime has no kernel for a node of the graph on
that provider, no calibration images for static int8, and out-of-memory in a batch sweep. These are facts
about the machine or the runtime, the same for every model. Everything else (the exporter, the quantiser or
torch.compile raising on a model) is `failed` with the cause: a defect to fix, in the model or the toolchain.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from bench.measure import ProbeSettings
from bench.schema import DEFAULT_VARIANTS, REFERENCE_VARIANT, VARIANT_ORDER  # noqa: F401 (re-exported)
from bench.variants.base import PreparedVariant


@dataclass(frozen=True)
class VariantSpec:
    name: str
    runtime: str  # torch | onnxruntime
    precision: str  # fp32 | tf32 | bf16 | fp16 | int8
    cuda_only: bool = False


# In the schema's order (bench/schema.py VARIANT_ORDER, which every table follows): a variant added here and
# not there fails at import.
VARIANTS: dict[str, VariantSpec] = {s.name: s for s in sorted((
    VariantSpec("torch-fp32", "torch", "fp32"),
    VariantSpec("torch-tf32", "torch", "tf32", cuda_only=True),
    VariantSpec("torch-bf16", "torch", "bf16"),
    VariantSpec("torch-fp16", "torch", "fp16", cuda_only=True),
    VariantSpec("torch-channels-last", "torch", "fp32"),
    VariantSpec("torch-compile", "torch", "fp32"),
    VariantSpec("torch-compile-cudagraphs", "torch", "fp32", cuda_only=True),
    VariantSpec("ort-fp32", "onnxruntime", "fp32"),
    VariantSpec("ort-int8-dynamic", "onnxruntime", "int8"),
    VariantSpec("ort-int8-static", "onnxruntime", "int8"),
    VariantSpec("ort-fp16", "onnxruntime", "fp16", cuda_only=True),
), key=lambda spec: VARIANT_ORDER.index(spec.name))}
CPU_VARIANTS = tuple(n for n, s in VARIANTS.items() if not s.cuda_only)
CUDA_VARIANTS = tuple(VARIANTS)


def parse_variants(text: str | Sequence[str] | None) -> list[str]:
    """`--variants` as a list of names, in table order. Accepts a comma-separated string or a list; `all`
    (every variant), `cpu` (those that can run on a CPU); None or "" gives the default. Unknown names raise
    ValueError naming the option and the known names."""
    if text is None or text == "" or text == []:
        return list(DEFAULT_VARIANTS)
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    chosen: set[str] = set()
    for item in items:
        if item == "all":
            chosen.update(VARIANTS)
        elif item == "cpu":
            chosen.update(CPU_VARIANTS)
        elif item in VARIANTS:
            chosen.add(item)
        else:
            raise ValueError(f"--variants: unknown variant {item!r}; known: all, cpu, {', '.join(VARIANTS)}")
    return [n for n in VARIANTS if n in chosen]


def prepare_variant(name: str, module: nn.Module, example: torch.Tensor, settings: ProbeSettings, *,
                    exports=None, calibration_images: torch.Tensor | None = None) -> PreparedVariant:
    """Prepare variant `name` of `module` (eval mode, on settings.device) for inputs shaped like `example`.

    ONNX Runtime variants share `exports` (an `OnnxExports` of the same module, cleaned up by its
    creator); when None, the variant makes its own and removes it on `close()`.
    Raises VariantUnavailable (skip, with the reason) or the preparation's own error (fail)."""
    from bench.variants.ort_variants import OnnxExports, prepare_ort_variant
    from bench.variants.torch_variants import prepare_torch_variant

    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    if VARIANTS[name].runtime == "torch":
        return prepare_torch_variant(name, module, example, settings)
    if exports is not None:
        return prepare_ort_variant(name, exports, settings, calibration_images)
    own = OnnxExports(module, example, settings)
    try:
        variant = prepare_ort_variant(name, own, settings, calibration_images)
    except BaseException:
        own.cleanup()
        raise
    variant.owned_exports = own
    return variant
