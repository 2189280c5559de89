"""ONNX Runtime variants: fp32, int8 dynamic, int8 static (QDQ) and fp16 (CUDA execution provider only).

One fp32 export per module, shared by the variants (`OnnxExports`): the torch.export-based exporter with
the settings of measure.export_onnx (dynamo=True, opset from the settings, weights in an external data
file) plus a dynamic batch dimension, so that one graph serves the latency batch, the throughput batch,
the batch sweep and the evaluation's last, smaller batch.

Calls go through ONNX Runtime's IOBinding: the input is bound where the torch tensor already lives (no
host copy inside the timed call on CUDA, no numpy conversion on CPU) and the outputs are written into
torch tensors allocated once per batch shape on the same device.

Provider rule: on a CUDA run every ort variant needs the CUDAExecutionProvider; where the installed
onnxruntime lacks it (the CPU build) the variant is skipped with that reason, never run on the CPU next to
CUDA torch rows. The provider a session actually got is recorded (`provider`). ONNX Runtime exposes no
allocation peak, so `peak_infer_mb` stays empty for these rows.
"""
from __future__ import annotations

import copy
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from bench.measure import ProbeSettings, export_onnx, ort_session
from bench.variants import quantise
from bench.variants.base import Outputs, PreparedVariant, VariantUnavailable

ORT_VARIANTS = ("ort-fp32", "ort-int8-dynamic", "ort-int8-static", "ort-fp16")
_ORT_TYPES = {  # ONNX tensor type -> (torch dtype, numpy dtype)
    "tensor(float)": (torch.float32, np.float32),
    "tensor(float16)": (torch.float16, np.float16),
    "tensor(double)": (torch.float64, np.float64),
    "tensor(int64)": (torch.int64, np.int64),
    "tensor(int32)": (torch.int32, np.int32),
    "tensor(bool)": (torch.bool, np.bool_),
}


def export_dynamic_batch(module: nn.Module, example: torch.Tensor, out_dir: Path, opset: int) -> Path:
    """measure.export_onnx with the batch dimension left dynamic (exported at batch >= 2: torch.export
    specialises a dimension whose example size is 1)."""
    x = example if example.shape[0] >= 2 else example[:1].expand(2, *example.shape[1:]).contiguous()
    return export_onnx(module, x, out_dir, opset, dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))


class OnnxExports:
    """The fp32 export of one module and the pre-processed copy the quantisers start from, each made once."""

    def __init__(self, module: nn.Module, example: torch.Tensor, settings: ProbeSettings):
        self.module, self.example, self.settings = module, example, settings
        self.root = Path(tempfile.mkdtemp(prefix="variants-", dir=settings.workdir))
        self._fp32: Path | None = None
        self._pre: Path | None = None
        self.preprocess_note = ""
        self.export_seconds: float | None = None
        self.input_name = ""
        self._error: Exception | None = None  # an export that failed fails every ort variant, once

    @property
    def export_failed(self) -> bool:
        return self._error is not None

    def fp32(self) -> Path:
        if self._error is not None:
            raise RuntimeError(f"the fp32 ONNX export failed: {type(self._error).__name__}") from self._error
        if self._fp32 is None:
            import onnx

            started = time.perf_counter()
            module, x = self.module, self.example
            if x.device.type != "cpu":  # export a CPU copy: the graph must not depend on where torch ran
                module, x = copy.deepcopy(module).cpu(), x.cpu()
            try:
                path = export_dynamic_batch(module, x, self.root / "ort-fp32", self.settings.opset)
                onnx.checker.check_model(str(path))  # by path, so the external data is checked too
            except Exception as exc:
                self._error = exc
                raise
            self.input_name = onnx.load(str(path), load_external_data=False).graph.input[0].name
            self._fp32, self.export_seconds = path, time.perf_counter() - started
        return self._fp32

    def preprocessed(self) -> Path:
        if self._pre is None:
            self._pre, self.preprocess_note = quantise.preprocess(self.fp32(), self.root / "preprocessed" / "model.onnx")
        return self._pre

    def cleanup(self) -> None:
        if not self.settings.keep_onnx:
            shutil.rmtree(self.root, ignore_errors=True)


class OrtVariant(PreparedVariant):
    def __init__(self, name: str, session, device: torch.device, facts: dict):
        super().__init__(name, device, facts)
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_meta = [(o.name, *_ORT_TYPES[o.type]) for o in session.get_outputs()]
        self._shapes: dict[tuple[int, ...], list[list[int]]] = {}
        cuda = self.device.type == "cuda"
        self._where = ("cuda", self.device.index or 0) if cuda else ("cpu", 0)
        self.owned_exports: OnnxExports | None = None  # set when the variant made its own export

    @property
    def timing_device(self) -> torch.device:
        return torch.device("cpu")  # run_with_iobinding returns after the device work is done

    def _binding(self, x: torch.Tensor):
        binding = self.session.io_binding()
        binding.bind_input(self.input_name, *self._where, np.float32, list(x.shape), x.data_ptr())
        return binding

    def _output_shapes(self, x: torch.Tensor) -> list[list[int]]:
        key = tuple(x.shape)
        if key not in self._shapes:  # one run with outputs allocated by ONNX Runtime tells their shapes
            binding = self._binding(x)
            for name, _, _ in self.output_meta:
                binding.bind_output(name, self._where[0], self._where[1])
            self.session.run_with_iobinding(binding)
            self._shapes[key] = [list(v.shape()) for v in binding.get_outputs()]
        return self._shapes[key]

    def bind(self, images: torch.Tensor) -> Callable[[], Outputs]:
        x = images.to(self.device, dtype=torch.float32).contiguous()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # ONNX Runtime reads the input on its own stream
        shapes = self._output_shapes(x)
        binding = self._binding(x)
        outputs = []
        for (name, torch_dtype, np_dtype), shape in zip(self.output_meta, shapes):
            out = torch.empty(shape, dtype=torch_dtype, device=self.device)
            binding.bind_output(name, *self._where, np_dtype, shape, out.data_ptr())
            outputs.append(out)
        result = tuple(outputs)
        session = self.session

        def call(x=x) -> Outputs:  # x is bound by address: the closure keeps it alive
            session.run_with_iobinding(binding)
            return result

        return call

    def peak_bytes(self, images: torch.Tensor) -> int | None:
        return None  # ONNX Runtime has no allocation-peak API (see the module docstring)

    def close(self) -> None:
        self.session = None
        if self.owned_exports is not None:
            self.owned_exports.cleanup()


def _check_provider(name: str, device: torch.device) -> None:
    import onnxruntime as ort

    if device.type == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise VariantUnavailable(name, f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (the CPU build "
                                       "is installed; onnxruntime-gpu has it): not run on the CPU next to CUDA rows")
    if name == "ort-fp16" and device.type != "cuda":
        raise VariantUnavailable(name, "fp16 ONNX runs on the CUDA execution provider only (on x86 the CPU "
                                       "provider computes fp16 nodes in fp32 behind inserted casts)")


def _session(name: str, path: Path, settings: ProbeSettings):
    """A session on the run's device; ONNX Runtime's missing kernels are a limitation (skipped), not a bug."""
    try:
        session = ort_session(path, settings)
    except Exception as exc:
        text = str(exc)
        if "NOT_IMPLEMENTED" in text or "Could not find an implementation" in text:
            raise VariantUnavailable(name, f"onnxruntime has no kernel for a node of this graph: "
                                           f"{text.strip().splitlines()[-1][:200]}") from exc
        raise
    provider = session.get_providers()[0]
    if settings.device.type == "cuda" and provider != "CUDAExecutionProvider":
        raise VariantUnavailable(name, f"the session fell back to {provider}: not run next to CUDA rows")
    return session


def prepare_ort_variant(name: str, exports: OnnxExports, settings: ProbeSettings,
                        calibration_images: torch.Tensor | None = None) -> OrtVariant:
    """Build the ONNX Runtime variant `name` from the module's shared export."""
    _check_provider(name, settings.device)
    if name == "ort-int8-static" and calibration_images is None:
        raise VariantUnavailable(name, "no calibration images were given (static int8 needs training images of "
                                       "the run's dataset)")
    fp32 = exports.fp32()  # shared: its time is `onnx_export_seconds`, not this variant's
    started = time.perf_counter()
    out_dir = exports.root / name
    if name == "ort-fp32":
        path, precision, how = fp32, "fp32", ""
    elif name == "ort-int8-dynamic":
        path, how = quantise.quantise_dynamic(exports.preprocessed(), out_dir / "model.onnx")
        precision = "int8"
    elif name == "ort-int8-static":
        path, how = quantise.quantise_static(exports.preprocessed(), out_dir / "model.onnx", exports.input_name,
                                             calibration_images)
        precision = "int8"
    elif name == "ort-fp16":
        path, how = quantise.convert_fp16(fp32, out_dir / "model.onnx")
        precision = "fp16"
    else:
        raise KeyError(f"not an ONNX Runtime variant: {name!r}")
    session = _session(name, path, settings)
    if precision == "int8":
        how = f"{how}; {exports.preprocess_note}"
    files = [f for f in path.parent.iterdir() if f.is_file()]
    facts = {"runtime": "onnxruntime", "provider": session.get_providers()[0], "precision": precision,
             "math_mode": how or "fp32", "quantisation": how if precision == "int8" else "",
             "onnx_mb": sum(f.stat().st_size for f in files) / 1e6, "onnx_files": len(files),
             "onnx_export_seconds": exports.export_seconds, "prepare_seconds": time.perf_counter() - started}
    return OrtVariant(name, session, settings.device, facts)
