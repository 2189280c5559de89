"""How one thing is measured: the model-level cost probes, measured memory, the timing routine with its
reference workload, and the ONNX export. The profile job runs the model-level probes once per model
(bench/jobs/profile.py); the deployment variants (bench/variants/) time, measure and export each variant
through the rest, so every latency and memory column of a record comes from the routines here.

A probe is `probe(module, example_input, settings) -> dict`: a flat dict of named numbers, units in the names;
`train_step_probe` takes the Detector, since a training step needs the model's own loss and optimiser.
Definitions (also in docs/design/architecture.md's column table):
- `params`, `trainable_params`: parameter counts.
- `model_mb`: bytes of parameters + buffers / 1e6.
- `gmacs`: multiply-accumulates of one forward pass of ONE image, in units of 1e9, counted by fvcore
  (a fused multiply-add = 1); where fvcore cannot trace the model, `torch.utils.flop_counter.FlopCounterMode`
  (flops / 2). `mac_counter` names the counter, `unsupported_ops` lists what fvcore skipped.
- `fwd_mb_est`, `bwd_mb_est`, `fwd_bwd_mb_est`: torchinfo's estimate: output bytes of every leaf module
  that has parameters, for the example batch; torchinfo counts them twice ("x2 for gradients"), so
  `fwd_bwd_mb_est` = 2 x `fwd_mb_est`. Modules without parameters (activations, pooling) are left out: an
  estimate, not a measurement.
- `peak_train_mb` (and the variants' `peak_infer_mb`): measured. Resident bytes (parameters + buffers, plus
  optimiser state for training) + the allocator's peak above the pre-step baseline (`measure_peak_bytes`)
  during one steady-state training step (forward + backward + optimiser step) or one forward pass. On CUDA the
  delta is `max_memory_allocated - memory_allocated`; on CPU it is the running maximum of the allocation and
  free events that the PyTorch profiler records (`profile_memory=True`).
- Latency (`measure_latency`): `warmup` untimed calls, then single calls timed one by one (CUDA events on GPU,
  after a synchronise) until at least `min_iters` samples and `min_seconds` of timing, at most `max_iters`.
  Percentiles over the samples; `latency_iqr_ratio` = IQR / median (timm and torch.utils.benchmark warn
  above 0.1). `measure_throughput`: images per second at a batch, from the median batch time.
- Reference workload (what `bench compare` cancels machine drift with, docs/design/compare.md): after every timed
  call, a fixed small convolution stack (`reference_workload`, ~1.5 ms on one core of this VM) is timed
  too, A B A B, so both see the same machine at the same moment: `reference_ms_p50`,
  `reference_samples_ms`. On a CPU device each call's process CPU time is kept beside its wall time
  (`latency_cpu_samples_ms`, `reference_cpu_samples_ms`): time the process spent descheduled (other
  processes on a shared machine) is in the wall time and not in the CPU time.
- ONNX: `export_onnx` writes a graph with the torch.export-based exporter (`dynamo=True`, the settings' opset,
  weights in an external data file); `ort_session` opens it with the run's thread count. The ONNX Runtime
  variants' files, parity and roofline columns are theirs (bench/variants/ort_variants.py, parity.py, peaks.py).
"""
from __future__ import annotations

import logging
import math
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn


@dataclass
class ProbeSettings:
    """How a measurement is made: device and threads, the timing loop's limits, the training-step count, the
    ONNX opset and where exports go. A suite overrides fields through its probe settings (bench/config.py)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    threads: int = 1
    warmup: int = 10
    min_iters: int = 30
    max_iters: int = 300
    min_seconds: float = 2.0
    max_seconds: float = 30.0  # a slow model stops after this much timing once it has 5 samples
    warmup_seconds: float = 5.0
    throughput_batch: int = 16  # at the latency batch itself: computed from the latency calls (no extra calls)
    throughput: bool = True  # False: not measured (`--skip-probes throughput`)
    train_iters: int = 5
    opset: int = 18
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="defectbench-")))
    keep_onnx: bool = False
    reference: bool = True  # time the reference workload between the calls of every latency measurement


def _outputs(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for t in out if isinstance(t, torch.Tensor)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- size and count ------------------------------------------------------------------------------
def params_probe(module: nn.Module, x: torch.Tensor, s: ProbeSettings) -> dict:
    return {
        "params": sum(p.numel() for p in module.parameters()),
        "trainable_params": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }


def resident_bytes(module: nn.Module) -> int:
    tensors = {id(t): t for t in list(module.parameters()) + list(module.buffers())}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def size_probe(module: nn.Module, x: torch.Tensor, s: ProbeSettings) -> dict:
    return {"model_mb": resident_bytes(module) / 1e6}


def macs_probe(module: nn.Module, x: torch.Tensor, s: ProbeSettings) -> dict:
    one = x[:1]
    try:
        logging.getLogger("fvcore").setLevel(logging.ERROR)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fvcore (import and tracer) warns that torch.jit is deprecated
            from fvcore.nn import FlopCountAnalysis

            analysis = FlopCountAnalysis(module, (one,))
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
            total = analysis.total()
        unsupported = analysis.unsupported_ops()
        return {
            "gmacs": total / 1e9,
            "mac_counter": "fvcore",
            "unsupported_ops": ";".join(f"{k}:{v}" for k, v in sorted(unsupported.items())),
        }
    except Exception as exc:  # tracing failed (e.g. MaxUnpool2d): count at the dispatcher instead
        from torch.utils.flop_counter import FlopCounterMode

        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(one)
        return {
            "gmacs": counter.get_total_flops() / 2 / 1e9,
            "mac_counter": "torch.flop_counter",
            "unsupported_ops": f"fvcore failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}",
        }


def activation_estimate_probe(module: nn.Module, x: torch.Tensor, s: ProbeSettings) -> dict:
    total = 0

    def hook(mod: nn.Module, inputs: Any, out: Any) -> None:
        nonlocal total
        total += sum(t.numel() * t.element_size() for t in _outputs(out))

    leaves = [m for m in module.modules() if not list(m.children()) and any(True for _ in m.parameters(recurse=False))]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in handles:
            h.remove()
    return {"fwd_mb_est": total / 1e6, "bwd_mb_est": total / 1e6, "fwd_bwd_mb_est": 2 * total / 1e6}


# -- measured memory ---------------------------------------------------------------------------------
def measure_peak_bytes(step: Callable[[], Any], device: torch.device) -> int:
    """Allocator peak above the baseline while `step()` runs (see the module docstring)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")]
    events.sort(key=lambda e: e.start_ns())
    running = np.cumsum([e.nbytes() for e in events]) if events else np.zeros(1)
    return int(max(running.max(), 0))


def _optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    return sum(t.numel() * t.element_size() for st in optimizer.state.values() for t in st.values() if torch.is_tensor(t))


def train_step_probe(detector, images: torch.Tensor, masks: torch.Tensor, s: ProbeSettings) -> dict:
    """Median time and measured peak memory of one training step (forward + backward + optimiser step).

    Trains on at least 2 images (the batch repeated): batch norm cannot train on one image per channel."""
    if images.shape[0] == 1:
        images, masks = images.repeat(2, 1, 1, 1), masks.repeat(2, 1, 1)
    optimizer = detector.make_optimizer()
    detector.train_mode(True)
    try:
        step = lambda: detector.training_step(images, masks, optimizer)  # noqa: E731
        step()  # creates the optimiser state: the steady state starts after it
        resident = sum(resident_bytes(m) for m in detector.modules_to_save().values()) + _optimizer_state_bytes(optimizer)
        peak = measure_peak_bytes(step, s.device)
        samples = _time_calls(step, s.device, warmup=0, min_iters=s.train_iters, max_iters=s.train_iters,  # warm: 2 steps ran
                              min_seconds=0.0, max_seconds=s.max_seconds).wall_ms
    finally:
        detector.train_mode(False)
    return {
        "peak_train_mb": (resident + peak) / 1e6,
        "train_step_ms_p50": float(np.median(samples)),
        "train_batch_size": int(images.shape[0]),
        "train_step_samples_ms": [round(v, 4) for v in samples],
    }


# -- latency --------------------------------------------------------------------------------------
@dataclass
class Timings:
    """Per-call times in milliseconds, in call order. `cpu_ms`: the process's CPU time over each call (CPU
    devices only); `reference_*`: the reference workload timed after each call (empty without one)."""

    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    reference_ms: list[float] = field(default_factory=list)
    reference_cpu_ms: list[float] = field(default_factory=list)


def _timed_call(fn: Callable[[], Any], device: torch.device, clock: Callable[[], float],
                cpu_clock: Callable[[], float]) -> tuple[float, float | None]:
    """(wall ms, CPU ms) of one call; on CUDA, CUDA events and no CPU time (the work is not on the CPU)."""
    if device.type == "cuda":
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        fn()
        end.record()
        end.synchronize()
        return begin.elapsed_time(end), None
    c0, t0 = cpu_clock(), clock()
    fn()
    t1, c1 = clock(), cpu_clock()
    return (t1 - t0) * 1e3, (c1 - c0) * 1e3


def _time_calls(fn: Callable[[], Any], device: torch.device, *, warmup: int, min_iters: int, max_iters: int,
                min_seconds: float, max_seconds: float = 30.0, warmup_seconds: float = 5.0,
                reference: Callable[[], Any] | None = None, clock: Callable[[], float] = time.perf_counter,
                cpu_clock: Callable[[], float] = time.process_time) -> Timings:
    """Warm up, then time `fn()` call by call until at least `min_iters` samples and `min_seconds` of the
    model's own time (at most `max_iters`; a slow callable stops after `max_seconds` once it has 5). With a
    `reference`, it is called and timed after each call (A B A B); its time does not count toward the
    model's seconds. `clock` and `cpu_clock` (seconds) are injectable so that tests can use a fake clock."""
    started = clock()
    for i in range(warmup):  # at least two warm-up calls, then stop early if warm-up alone runs long
        fn()
        if reference is not None:
            reference()
        if i >= 1 and clock() - started > warmup_seconds:
            break
    if reference is not None and warmup == 0:
        reference()  # its first call (lazy initialisation) is never a sample
    _sync(device)
    out = Timings()
    started = clock()
    reference_seconds = 0.0

    def more() -> bool:
        elapsed = clock() - started - reference_seconds
        if len(out.wall_ms) >= max_iters or (len(out.wall_ms) >= 5 and elapsed > max_seconds):
            return False
        return len(out.wall_ms) < min_iters or elapsed < min_seconds

    while more():
        wall, cpu = _timed_call(fn, device, clock, cpu_clock)
        out.wall_ms.append(wall)
        if cpu is not None:
            out.cpu_ms.append(cpu)
        if reference is not None:
            begin = clock()
            # Called twice, the second timed: the first call after the model's runs in whatever caches and branch
            # predictors the model's work left (after 12 ms of Python work a 1.1 ms reference took 1.9 ms; the
            # second 1.14), so a model slowed by extra work would drag the first along and hide in the ratio.
            reference()
            wall, cpu = _timed_call(reference, device, clock, cpu_clock)
            reference_seconds += clock() - begin
            out.reference_ms.append(wall)
            if cpu is not None:
                out.reference_cpu_ms.append(cpu)
    return out


# The reference workload's identity: a ratio to it means the same thing only between equal workloads, so
# change the name whenever the workload changes.
REFERENCE_WORKLOAD = "conv-stack-64px-v2-second-call"  # v2: timed on its second call after each model call
_REFERENCES: dict[str, Callable[[], Any]] = {}


def reference_workload(device: torch.device) -> Callable[[], Any]:
    """A fixed reference workload on `device`: three 3x3 convolutions (3->16->16, pool, 16->32 channels)
    with ReLUs on one 64x64 image, 16 million multiply-accumulates; about 1.5 ms on one core of this VM.
    Convolutions because the measured models are mostly convolutions: a workload of the same kind slows
    down with them when a neighbour competes for the core's units and caches (docs/measurements/latency-gate.md)."""
    key = str(device)
    if key not in _REFERENCES:
        with torch.random.fork_rng(devices=[]):  # built without touching the run's random state
            torch.manual_seed(0)
            net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                                nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU()).eval().to(device)
            x = torch.rand(1, 3, 64, 64).to(device)

        def run() -> torch.Tensor:
            with torch.inference_mode():
                return net(x)

        _REFERENCES[key] = run
    return _REFERENCES[key]


def summarise_latency(samples: list[float], prefix: str) -> dict:
    """`prefix`_ms_p50/p90/p99/mean, `prefix`_iqr_ratio and `prefix`_n from samples in milliseconds."""
    a = np.asarray(samples, dtype=np.float64)
    q25, p50, q75, p90, p99 = np.percentile(a, [25, 50, 75, 90, 99])
    return {
        f"{prefix}_ms_p50": float(p50),
        f"{prefix}_ms_p90": float(p90),
        f"{prefix}_ms_p99": float(p99),
        f"{prefix}_ms_mean": float(a.mean()),
        f"{prefix}_iqr_ratio": float((q75 - q25) / p50) if p50 > 0 else math.nan,
        f"{prefix}_n": int(a.size),
    }


def reference_prefix(prefix: str) -> str:
    """Where the reference samples of a latency column go: `latency` -> `reference`, `ort_latency` ->
    `ort_reference`, anything else -> `<prefix>_reference`."""
    return prefix.replace("latency", "reference") if "latency" in prefix else f"{prefix}_reference"


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]


def measure_latency(fn: Callable[[], Any], s: ProbeSettings, prefix: str = "latency",
                    device: torch.device | None = None) -> dict:
    """Time `fn()` call by call with the suite's settings: `prefix`_ms_p50/p90/p99/mean, `prefix`_iqr_ratio,
    `prefix`_n, the raw `prefix`_samples_ms (and `prefix`_cpu_samples_ms on a CPU device), and the reference
    workload timed between the calls (`reference_prefix(prefix)`_ms_p50, _samples_ms, _cpu_samples_ms,
    _workload). The one timing routine every latency column goes through."""
    device = device or s.device
    reference = reference_workload(device) if s.reference else None
    t = _time_calls(fn, device, warmup=s.warmup, min_iters=s.min_iters, max_iters=s.max_iters,
                    min_seconds=s.min_seconds, max_seconds=s.max_seconds, warmup_seconds=s.warmup_seconds,
                    reference=reference)
    record = summarise_latency(t.wall_ms, prefix)
    record[f"{prefix}_samples_ms"] = _rounded(t.wall_ms)
    if t.cpu_ms:
        record[f"{prefix}_cpu_samples_ms"] = _rounded(t.cpu_ms)
    if reference is not None:
        ref = reference_prefix(prefix)
        record[f"{ref}_ms_p50"] = float(np.median(t.reference_ms))
        record[f"{ref}_samples_ms"] = _rounded(t.reference_ms)
        if t.reference_cpu_ms:
            record[f"{ref}_cpu_samples_ms"] = _rounded(t.reference_cpu_ms)
        record[f"{ref}_workload"] = REFERENCE_WORKLOAD
    return record


def measure_throughput(fn: Callable[[], Any], batch: int, s: ProbeSettings, device: torch.device | None = None) -> dict:
    """Images per second of `fn()` processing `batch` images, from the median of a few timed calls."""
    samples = _time_calls(fn, device or s.device, warmup=1, min_iters=3, max_iters=20,
                          min_seconds=min(s.min_seconds, 1.0), max_seconds=s.max_seconds / 2).wall_ms
    return {"throughput_ips": batch / (float(np.median(samples)) / 1e3), "throughput_batch": batch}


# -- ONNX -----------------------------------------------------------------------------------------------
def export_onnx(module: nn.Module, x: torch.Tensor, out_dir: Path, opset: int, dynamic_shapes=None) -> Path:
    """`module` exported with torch.export's ONNX exporter into out_dir/model.onnx (+ its external weights).

    The exporter writes each node's Python stack trace into the graph (`pkg.torch.onnx.stack_trace`): absolute
    paths of the checkout and the venv, so the same model exported from two folders had different file sizes
    (`onnx_mb` changed by up to 0.1% between a clone in /tmp and one in /work). The traces are removed before
    saving; the other node metadata (module names, class hierarchy) does not depend on where the code lives."""
    import onnx_ir

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.onnx"
    # The exporter's helper libraries log harmless notes ("Attribute type is ambiguous ...") per node.
    logging.getLogger("onnx_ir").setLevel(logging.ERROR)
    logging.getLogger("onnxscript").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (x,), None, dynamo=True, opset_version=opset, verbose=False, report=False,
                                    dynamic_shapes=dynamic_shapes)
        for node in onnx_ir.traversal.RecursiveGraphIterator(program.model.graph):
            node.metadata_props.pop("pkg.torch.onnx.stack_trace", None)
        program.save(str(path), external_data=True)
    return path


def ort_session(path: Path, s: ProbeSettings):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = s.threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if s.device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
