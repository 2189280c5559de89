"""ONNX graph transformations behind the ort variants: int8 quantisation (dynamic, static QDQ) and fp16.

Settings, recorded in each record's `quantisation` column:
- Both quantisers start from the fp32 export after `quant_pre_process` (symbolic shape inference and ONNX
  Runtime's graph optimisations: batch norm folded into convolutions), as ONNX Runtime's guide advises,
  run on a self-contained copy of the export (its steps re-save the model in temporary folders, where an
  external weights file is not found). Where ONNX Runtime's symbolic shape inference fails on a graph
  (VT-ADL's export: a node whose output type has no shape), pre-processing runs without it, and the
  `quantisation` column says so.
- Activations uint8, weights int8 (U8S8), weights per output channel for the static model. On an x86 CPU
  without VNNI the int8 kernels multiply with AVX2's VPMADDUBSW, whose 16-bit intermediate sums can
  saturate; `reduce_range` (7-bit weights) avoids that, and is set exactly when the CPU has no VNNI.
- Static: QDQ format, MinMax calibration over the caller's images (the training images of the run's
  dataset, never test images), fed through a CalibrationDataReader in batches.
- fp16: every float initializer and op converted (onnxruntime.transformers.float16), inputs and outputs
  kept fp32 (`keep_io_types`) so the variant takes the same images and gives fp32 maps.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
import numpy as np
import torch

from bench.variants.mathmode import cpu_flags

CALIBRATION_BATCH = 8
CALIBRATION_IMAGES = 32  # what `calibration_images_from` takes by default: enough for MinMax ranges


def has_vnni(flags: str | None = None) -> bool:
    return any("vnni" in f for f in (cpu_flags() if flags is None else flags).split(","))


class ImageCalibrationReader:
    """ONNX Runtime's CalibrationDataReader protocol over a tensor of images [N,3,H,W] (float32 in [0,1])."""

    def __init__(self, input_name: str, images: torch.Tensor | np.ndarray, batch_size: int = CALIBRATION_BATCH):
        array = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        if array.ndim != 4 or len(array) == 0:
            raise ValueError(f"calibration images must be a non-empty [N,3,H,W] batch, got shape {array.shape}")
        self.input_name = input_name
        self.array = np.ascontiguousarray(array, dtype=np.float32)
        self.batch_size = batch_size
        self.position = 0

    def get_next(self) -> dict | None:
        if self.position >= len(self.array):
            return None
        batch = self.array[self.position: self.position + self.batch_size]
        self.position += self.batch_size
        return {self.input_name: batch}

    def rewind(self) -> None:
        self.position = 0


def calibration_images_from(dataset, count: int = CALIBRATION_IMAGES) -> torch.Tensor:
    """`count` images spread evenly over a dataset of item dicts (`image` [3,H,W]): the static quantiser's
    calibration set. Pass the run's TRAINING split."""
    n = len(dataset)
    if n == 0:
        raise ValueError("the calibration dataset is empty")
    picks = np.linspace(0, n - 1, min(count, n)).round().astype(int)
    return torch.stack([dataset[int(i)]["image"] for i in picks])


@contextlib.contextmanager
def _quiet_root_logger():
    """The quantiser warns through the root logger once per tensor (e.g. per-channel axes of LayerNorm
    weights, which it quantises per tensor instead); keep those out of the run's output."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def preprocess(src: Path, dst: Path) -> tuple[Path, str]:
    """`quant_pre_process` on a self-contained copy of `src`. Returns the path and what was done."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    dst.parent.mkdir(parents=True, exist_ok=True)
    whole = dst.parent / "input.onnx"
    onnx.save(onnx.load(str(src)), str(whole))  # weights inline: fine below ONNX's 2 GB protobuf limit
    with _quiet_root_logger():
        try:
            quant_pre_process(str(whole), str(dst))
            return dst, "pre-processed"
        except Exception as exc:
            quant_pre_process(str(whole), str(dst), skip_symbolic_shape=True)
            return dst, f"pre-processed without symbolic shape inference (it failed: {type(exc).__name__})"


def quantise_dynamic(src: Path, dst: Path) -> tuple[Path, str]:
    """Dynamic int8 (weights quantised offline, activations at run time). Returns the path and a description."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    reduce = not has_vnni()
    dst.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_root_logger():
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, reduce_range=reduce)
    return dst, f"dynamic, weights int8 per-tensor, activations uint8 at run time, reduce_range={reduce}"


def quantise_static(src: Path, dst: Path, input_name: str, images: torch.Tensor | np.ndarray) -> tuple[Path, str]:
    """Static int8 in QDQ format, calibrated with MinMax over `images`. Returns the path and a description."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    reduce = not has_vnni()
    reader = ImageCalibrationReader(input_name, images)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_root_logger():
        quantize_static(str(src), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=reduce, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    return dst, (f"static QDQ, weights int8 per-channel, activations uint8, MinMax over {len(reader.array)} "
                 f"calibration images, reduce_range={reduce}")


def convert_fp16(src: Path, dst: Path) -> tuple[Path, str]:
    """Every float tensor and op in fp16, fp32 inputs and outputs kept."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))  # loads the external weights file too
    half = convert_float_to_float16(model, keep_io_types=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(half, str(dst))
    return dst, "fp16 weights and ops, fp32 inputs and outputs"
