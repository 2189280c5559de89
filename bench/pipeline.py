"""The end-to-end pipeline of one detector on a line, from encoded camera bytes to a decision, timed by stage.

A line does not run a forward pass: it receives an encoded frame and must answer "reject or pass". The stages:
- `decode`: PNG or JPEG bytes -> uint8 RGB pixels at the camera resolution. `pillow` (default):
  `PIL.Image.open(...).convert("RGB")`, the library the datasets read the training images with; `torchvision`:
  `torchvision.io.decode_image` (libpng / libjpeg-turbo) straight into a uint8 [3,H,W] tensor, about as fast for
  PNG and ~20% faster for JPEG here, but deprecated since torchvision 0.29 in favour of TorchCodec (its warning is
  silenced here, once).
- `preprocess` (resize + normalise): to the model's input side S and to float32 in [0,1], the input every
  model's `inference_module` takes (the segmenters' ImageNet normalisation is inside their graph).
  `pillow`: `PIL.Image.resize(BILINEAR)` (antialiased when shrinking) then / 255, exactly what
  `datasets.common.load_image` did to the training images; `torchvision`:
  `torchvision.transforms.v2.functional.resize(bilinear, antialias=True)` on the uint8 batch, then / 255. The
  two agree to within a grey level on average (tests/test_pipeline.py).
- `network`: the deployment variant's call (`bench.variants`: torch-fp32, ort-fp32, ...; the same prepared
  callables the variant probes time, so ort-* reuses their one ONNX export). It includes what each model's
  own `inference_module` does after its network: VT-ADL's bilinear upsampling of the 8x8 NLL grid and its
  sigma-4 Gaussian filter, pixel_stats' blur and z-score, the segmenters' top-k image score. Those steps are
  inside the exported graph, so they are timed here and cannot be split from the network without changing
  the models; what is left after the graph is the next stage.
- `postprocess`: what the model's map and score need to reach the camera: the map [B,S,S] upsampled to the
  camera resolution (`torch.nn.functional.interpolate`, bilinear, align_corners=False) so that a defect can be
  located on the part, and the scores brought to the host as numpy. Image-level-only models have no map.
- `threshold`: the decision, score > t (`threshold`; the default 0 is arbitrary: its cost does not depend on it).

`stage_latency(detector_or_variant, settings) -> dict` times the pipeline one frame at a time (batch 1) and
returns a flat record, units in the names, in the style of `bench.measure.measure_latency`:
`e2e_<stage>_ms_p50/p90/p99/mean`, `e2e_<stage>_iqr_ratio`, `e2e_<stage>_n` and the raw per-call
`e2e_<stage>_samples_ms` for each stage in `STAGES`; the same for `e2e_total` (one clock read per stage
boundary, so the stages of a call sum exactly to its total), plus `e2e_total_cpu_samples_ms` (process CPU time
per call); `e2e_outside_network_share` (1 - network time / total time, summed over the calls); and what was
run: `e2e_decoder`, `e2e_resize` (library, function and version), `e2e_postprocess`, `e2e_encoding`,
`e2e_camera_size` ("WxH"), `e2e_input_size`, `e2e_encoded_kb_mean`, `e2e_frames` (their source),
`e2e_threshold`, `variant` and the variant's facts (runtime, provider, precision, math_mode, ...).

Frames (`camera_frames`): rendered once per process by the embedded synthetic renderer
(`datasets.synthetic.render_sample`: a nut on a table by default, one good frame then defective ones, with the
renderer's sensor noise) at the camera resolution, encoded in memory: PNG with Pillow's compress_level 6 (as the
dataset writer does), JPEG quality 90 (4:2:0). At 1024x1024 a frame is about 1.8 MB as PNG and 180 kB as JPEG;
pure noise would compress far worse than a camera image and make decoding look slower than it is.

Other code uses `Pipeline` directly (`bench.line` serves batches through `Pipeline.process`) and
`open_pipeline(detector_or_variant, settings)`, a context manager that prepares the variant and releases it.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

STAGES = ("decode", "preprocess", "network", "postprocess", "threshold")
DECODERS = ("pillow", "torchvision")
ENCODINGS = ("png", "jpeg")


def parse_camera_size(text: str | int | Sequence[int]) -> tuple[int, int]:
    """`--camera-size` as (width, height): "1024x768" (width x height, as cameras are named), "1024" (square),
    an int, or a pair. ValueError naming the option otherwise."""
    if isinstance(text, int):
        parts = [text, text]
    elif isinstance(text, str):
        pieces = text.lower().replace(" ", "").split("x")
        try:
            parts = [int(p) for p in pieces]
        except ValueError:
            raise ValueError(f"--camera-size: expected WIDTHxHEIGHT (e.g. 1024x1024) or one side, got {text!r}") from None
        if len(parts) == 1:
            parts = parts * 2
    else:
        parts = [int(p) for p in text]
    if len(parts) != 2 or min(parts) < 8 or max(parts) > 16384:
        raise ValueError(f"--camera-size: expected two sides between 8 and 16384 pixels, got {text!r}")
    return parts[0], parts[1]


@dataclass(frozen=True)
class PipelineSettings:
    """What the pipeline runs and how `stage_latency` times it (validated on construction; messages name the
    command-line option)."""

    camera_size: tuple[int, int] = (1024, 1024)  # (width, height) of the camera frames
    encoding: str = "png"  # png | jpeg
    jpeg_quality: int = 90
    decoder: str = "pillow"  # pillow | torchvision: the library that decodes and resizes
    threshold: float = 0.0  # decision: score > threshold
    frames: int = 3  # distinct frames, cycled
    frames_dir: str | None = None  # a folder where the encoded frames are kept for other processes (not a setting of the result)
    category: str = "nut"  # datasets.synthetic category the frames are rendered from
    seed: int = 0
    variant: str = "torch-fp32"  # the deployment variant prepared when a Detector is given
    device: str = "cpu"
    threads: int = 1  # the variant's intra-op threads (ONNX Runtime); torch's are the caller's
    input_size: int | None = None  # the model's input side; None: the detector's own (required for a bare variant)
    # timing (stage_latency), as bench.measure.ProbeSettings: at least min_iters calls and min_seconds
    warmup: int = 5
    min_iters: int = 20
    max_iters: int = 300
    min_seconds: float = 2.0
    max_seconds: float = 30.0  # stop after this long once there are 5 samples

    def __post_init__(self):
        object.__setattr__(self, "camera_size", parse_camera_size(self.camera_size))
        if self.encoding not in ENCODINGS:
            raise ValueError(f"--encoding must be one of {', '.join(ENCODINGS)}; got {self.encoding!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"--decoder must be one of {', '.join(DECODERS)}; got {self.decoder!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"--jpeg-quality must be in 1..100; got {self.jpeg_quality}")
        if self.frames < 1:
            raise ValueError(f"--frames must be at least 1; got {self.frames}")
        from datasets.synthetic import CATEGORIES

        if self.category not in CATEGORIES:
            raise ValueError(f"--category must be one of {', '.join(CATEGORIES)}; got {self.category!r}")
        if self.input_size is not None and self.input_size < 8:
            raise ValueError(f"--size must be at least 8 pixels; got {self.input_size}")
        if self.threads < 1:
            raise ValueError(f"--threads must be at least 1; got {self.threads}")
        if self.min_iters < 1 or self.max_iters < self.min_iters or self.warmup < 0:
            raise ValueError(f"timing: need warmup >= 0 and 1 <= min_iters <= max_iters; got {self.warmup}, "
                             f"{self.min_iters}, {self.max_iters}")

    @property
    def camera_label(self) -> str:
        return f"{self.camera_size[0]}x{self.camera_size[1]}"


# -- frames -------------------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _rendered(width: int, height: int, count: int, category: str, seed: int) -> tuple[np.ndarray, ...]:
    from datasets.synthetic import DEFECTS, _image_rng, render_sample

    side = max(width, height)  # the renderer draws squares; a wide camera gets the square's top-left crop
    kinds = ["good", *DEFECTS[category]]
    out = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        pixels, _ = render_sample(category, kind, _image_rng(seed, category, "line", kind, i), side)
        out.append(np.ascontiguousarray(pixels[:height, :width]))
    return tuple(out)


@lru_cache(maxsize=16)
def camera_frames(width: int, height: int, encoding: str, count: int = 3, category: str = "nut", seed: int = 0,
                  jpeg_quality: int = 90) -> tuple[bytes, ...]:
    """`count` synthetic frames (uint8 RGB, width x height) encoded as PNG or JPEG bytes; rendered once per
    process (a 1024x1024 nut frame takes about half a second to render)."""
    from PIL import Image

    encoded = []
    for pixels in _rendered(width, height, count, category, seed):
        buffer = io.BytesIO()
        if encoding == "png":
            Image.fromarray(pixels).save(buffer, format="PNG", compress_level=6)
        else:
            Image.fromarray(pixels).save(buffer, format="JPEG", quality=jpeg_quality)
        encoded.append(buffer.getvalue())
    return tuple(encoded)


def frames_for(settings: PipelineSettings) -> tuple[bytes, ...]:
    """The settings' encoded frames; with `frames_dir`, read from (or written to) a file there, so that the
    workers of a run render them once (three 1024x1024 frames take ~2 s to render, ~1 ms to read)."""
    width, height = settings.camera_size
    key = (width, height, settings.encoding, settings.frames, settings.category, settings.seed, settings.jpeg_quality)
    if settings.frames_dir is None:
        return camera_frames(*key)
    import pickle

    path = Path(settings.frames_dir) / ("frames-" + "-".join(map(str, key)) + ".pickle")
    try:
        frames = pickle.loads(path.read_bytes())
        if isinstance(frames, tuple) and len(frames) == settings.frames and all(isinstance(f, bytes) for f in frames):
            return frames
    except (OSError, pickle.UnpicklingError, EOFError, ValueError):
        pass
    frames = camera_frames(*key)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_bytes(pickle.dumps(frames))
    partial.replace(path)  # atomic: another worker never reads half a file
    return frames


def library_labels(decoder: str) -> dict[str, str]:
    """`e2e_decoder` and `e2e_resize`: the function and library version each stage ran."""
    if decoder == "torchvision":
        import torchvision

        version = torchvision.__version__.split("+")[0]
        return {"e2e_decoder": f"torchvision.io.decode_image (torchvision {version})",
                "e2e_resize": f"torchvision.transforms.v2.functional.resize bilinear antialias on uint8, then /255 "
                              f"(torchvision {version})"}
    import PIL

    return {"e2e_decoder": f"PIL.Image.open + convert('RGB') (Pillow {PIL.__version__})",
            "e2e_resize": f"PIL.Image.resize BILINEAR, then /255 (Pillow {PIL.__version__})"}


# -- the pipeline ---------------------------------------------------------------------------------------------
@dataclass
class Decisions:
    """One batch's answer: `scores` [B] (numpy), `decisions` [B] (bool, score > threshold), `maps` [B,H,W] at
    the camera resolution (a CPU tensor; None for image-level-only models), and the stage times of the call in
    milliseconds (`stage_ms`, keys `STAGES`)."""

    scores: np.ndarray
    decisions: np.ndarray
    maps: torch.Tensor | None
    stage_ms: dict[str, float] = field(default_factory=dict)


class Pipeline:
    """Encoded frames -> decisions through one prepared network callable (`images [B,3,S,S] in [0,1] ->
    (scores, maps)` or `(scores,)`), with each stage a method so that callers can time or replace one."""

    def __init__(self, network: Callable[[torch.Tensor], Any], input_size: int, settings: PipelineSettings,
                 *, variant: str = "", facts: dict | None = None):
        self.network = network
        self.input_size = int(input_size)
        self.settings = settings
        self.device = torch.device(settings.device)
        self.variant = variant
        self.facts = dict(facts or {})
        width, height = settings.camera_size
        self.camera_hw = (height, width)
        self._pillow = settings.decoder == "pillow"
        if not self._pillow:  # deprecated, not broken: the record names the library, a warning per frame adds nothing
            warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                                    category=DeprecationWarning)

    def _mark(self) -> float:
        if self.device.type == "cuda":  # a stage's GPU work belongs to that stage
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def decode(self, data: bytes):
        """uint8 [3,H,W] (torchvision) or a decoded RGB PIL image (pillow)."""
        if self._pillow:
            from PIL import Image

            with Image.open(io.BytesIO(data)) as image:
                return image.convert("RGB")  # convert() forces the decode (open() only reads the header)
        from torchvision.io import ImageReadMode, decode_image

        # bytearray: a writable copy of the received bytes (torch warns on read-only buffers)
        return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)

    def preprocess(self, frames: Sequence[Any]) -> torch.Tensor:
        """Decoded frames -> float32 [B,3,S,S] in [0,1] on the pipeline's device."""
        side = self.input_size
        if self._pillow:
            from PIL import Image

            arrays = [np.asarray(f.resize((side, side), Image.Resampling.BILINEAR)) for f in frames]
            batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        else:
            from torchvision.transforms.v2 import functional as TF

            batch = TF.resize(torch.stack(list(frames)), [side, side], antialias=True)
        return batch.to(self.device).float().div_(255.0).contiguous()

    def infer(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        from bench.variants.base import as_outputs

        outputs = as_outputs(self.network(images))
        return outputs[0], (outputs[1] if len(outputs) > 1 else None)

    def postprocess(self, scores: torch.Tensor, maps: torch.Tensor | None) -> tuple[np.ndarray, torch.Tensor | None]:
        """Scores to the host; the map upsampled to the camera resolution (bilinear) and to the host."""
        host_scores = scores.detach().float().reshape(-1).cpu().numpy()
        if maps is None:
            return host_scores, None
        full = F.interpolate(maps.detach().float().reshape(-1, 1, *maps.shape[-2:]), size=self.camera_hw,
                             mode="bilinear", align_corners=False)[:, 0]
        return host_scores, full.cpu()

    def decide(self, scores: np.ndarray) -> np.ndarray:
        return scores > self.settings.threshold

    def process(self, encoded: Sequence[bytes]) -> Decisions:
        """Run every stage on a batch of encoded frames; the stage times are in the result."""
        with torch.inference_mode():
            t0 = self._mark()
            frames = [self.decode(data) for data in encoded]
            t1 = self._mark()
            images = self.preprocess(frames)
            t2 = self._mark()
            scores, maps = self.infer(images)
            t3 = self._mark()
            host_scores, full_maps = self.postprocess(scores, maps)
            t4 = self._mark()
            decisions = self.decide(host_scores)
            t5 = self._mark()
        marks = (t0, t1, t2, t3, t4, t5)
        stage_ms = {stage: (marks[i + 1] - marks[i]) * 1e3 for i, stage in enumerate(STAGES)}
        return Decisions(host_scores, decisions, full_maps, stage_ms)

    def warm_up(self, batch_sizes: Sequence[int] = (1,), calls: int = 2) -> None:
        """Run every batch size a few times (first-call allocations, ONNX Runtime's shape-dependent setup,
        torch.compile's one compilation per shape) so that none of it lands in a timed call."""
        frames = frames_for(self.settings)
        for size in batch_sizes:
            batch = [frames[i % len(frames)] for i in range(size)]
            for _ in range(calls):
                self.process(batch)


@contextlib.contextmanager
def open_pipeline(detector_or_variant, settings: PipelineSettings) -> Iterator[Pipeline]:
    """A `Pipeline` around a `Detector` (its `settings.variant` prepared from `inference_module()`, released on
    exit) or around an already prepared `bench.variants.PreparedVariant` (then `settings.input_size` is needed,
    and the caller keeps ownership of the variant)."""
    from bench.variants.base import PreparedVariant
    from models.base import Detector

    if isinstance(detector_or_variant, PreparedVariant):
        if settings.input_size is None:
            raise ValueError("a prepared variant does not know its input size: set PipelineSettings.input_size")
        variant = detector_or_variant
        yield Pipeline(variant, settings.input_size, settings, variant=variant.name, facts=variant.facts)
        return
    if not isinstance(detector_or_variant, Detector):
        raise TypeError(f"expected a models.base.Detector or a bench.variants.PreparedVariant, got "
                        f"{type(detector_or_variant).__name__}")
    from bench.measure import ProbeSettings
    from bench.variants.table import prepare_variant

    detector = detector_or_variant
    side = settings.input_size or detector.image_size
    device = torch.device(settings.device)
    detector.to(device)
    module = detector.inference_module().eval()
    with torch.random.fork_rng(devices=[]):  # the export example, drawn without touching the caller's generator
        torch.manual_seed(settings.seed)
        example = torch.rand(1, 3, side, side).to(device)
    probe = ProbeSettings(device=device, threads=settings.threads)
    variant = None
    try:
        variant = prepare_variant(settings.variant, module, example, probe)
        yield Pipeline(variant, side, replace(settings, input_size=side), variant=variant.name, facts=variant.facts)
    finally:
        if variant is not None:
            variant.close()
        shutil.rmtree(probe.workdir, ignore_errors=True)


# -- stage latency --------------------------------------------------------------------------------------------
def _summary(samples: list[float], prefix: str) -> dict:
    from bench.measure import summarise_latency

    record = summarise_latency(samples, prefix)
    record[f"{prefix}_samples_ms"] = [round(v, 4) for v in samples]
    return record


def time_stages(pipeline: Pipeline, settings: PipelineSettings | None = None) -> dict[str, list[float]]:
    """Per-call stage times in milliseconds (keys `STAGES`, `total`, `total_cpu`), one frame per call, frames
    cycled; warm-up first, then at least `min_iters` calls and `min_seconds`, at most `max_iters` (or
    `max_seconds` once there are 5)."""
    s = settings or pipeline.settings
    frames = frames_for(s)
    for i in range(s.warmup):
        pipeline.process([frames[i % len(frames)]])
    samples: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "total", "total_cpu")}
    started = time.perf_counter()
    i = 0
    while True:
        n, elapsed = len(samples["total"]), time.perf_counter() - started
        if n >= s.max_iters or (n >= 5 and elapsed > s.max_seconds) or (n >= s.min_iters and elapsed >= s.min_seconds):
            break
        cpu0 = time.process_time()
        result = pipeline.process([frames[i % len(frames)]])
        samples["total_cpu"].append((time.process_time() - cpu0) * 1e3)
        for stage in STAGES:
            samples[stage].append(result.stage_ms[stage])
        samples["total"].append(sum(result.stage_ms.values()))
        i += 1
    return samples


def stage_record(pipeline: Pipeline, samples: dict[str, list[float]]) -> dict:
    """The flat record of `stage_latency` from `time_stages`' samples."""
    s = pipeline.settings
    record: dict[str, Any] = {"variant": pipeline.variant, **pipeline.facts}
    for stage in (*STAGES, "total"):
        record.update(_summary(samples[stage], f"e2e_{stage}"))
    record["e2e_total_cpu_samples_ms"] = [round(v, 4) for v in samples["total_cpu"]]
    total = float(np.sum(samples["total"]))
    record["e2e_outside_network_share"] = 1.0 - float(np.sum(samples["network"])) / total if total > 0 else None
    frames = frames_for(s)
    record.update(library_labels(s.decoder))
    record.update(
        e2e_postprocess=("map bilinear-upsampled (torch.nn.functional.interpolate, align_corners=False) from "
                         f"{pipeline.input_size}x{pipeline.input_size} to the camera size; scores and map to host"),
        e2e_encoding=s.encoding if s.encoding == "png" else f"jpeg q{s.jpeg_quality}",
        e2e_camera_size=s.camera_label,
        e2e_input_size=pipeline.input_size,
        e2e_encoded_kb_mean=float(np.mean([len(f) for f in frames])) / 1e3,
        e2e_frames=f"{len(frames)} synthetic '{s.category}' frames (datasets.synthetic.render_sample, seed {s.seed}), "
                   "cycled",
        e2e_threshold=s.threshold,
    )
    return record


def stage_latency(detector_or_variant, settings: PipelineSettings | None = None) -> dict:
    """Time the end-to-end pipeline of a `Detector` (the settings' variant) or of a `PreparedVariant`, stage by
    stage; returns the flat record described in the module docstring."""
    settings = settings or PipelineSettings()
    with open_pipeline(detector_or_variant, settings) as pipeline:
        return stage_record(pipeline, time_stages(pipeline))
