#!/usr/bin/env python3
"""`make gpu-check`: the suite's CUDA paths in one time-boxed run, for a session lent a GPU.

Steps (each a child process with its own time box, so a hang or a slow compile costs only its step):
  env       GPU, torch/CUDA/cuDNN versions, math mode (TF32, cuDNN flags), CPU flags, ONNX Runtime providers,
            the peak of each precision (fp32, tf32, bf16, fp16, int8 matmuls)
  quick     `bench run --suite quick --device cuda`: every model, every probe, on CUDA
  variants  the CUDA variants (TF32, bf16, fp16, channels-last, compile, CUDA graphs, and ONNX Runtime's
            CUDA provider where the installed onnxruntime has it) of the six segmenters and VT-ADL at
            256x256, batch 8; each group timed together with torch-fp32, so `latency_ratio_to_fp32` compares
            calls interleaved in one process
  paper     a short `paper`-suite VT-ADL run on one synthetic category (512x512, 0.5 min of training)
What comes back under $OUT (8 files at most): summary.json (environment, peaks, every step's status and
time, every variant row with its raw samples), variants.csv, log.txt, quick_results.{json,csv},
paper_results.{json,csv}. Everything else (records, checkpoints, galleries) stays in a scratch folder.

Usage on the GPU machine (see ../shared/device/README.md; in the project's root, here: `bash
../shared/device/gpu-wheels.sh termcolor`), two device calls carrying `.whl`, timeout_s=600 each:
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD && make gpu-check ARGS=--steps=quick,paper
and the same with ARGS=--steps=variants. The time boxes come from the first run on an H200 (2026-11-29: torch
2.11, 16 cores): a child process pays 10-12 s to start before its first row; the quick suite took 14 s a model
(130 s covered 9 of 11); U-Net's compile and CUDA-graph groups 28 s and 21 s, SegNet's and VT-ADL's compile 33 s
and 37 s; the paper step 74 s. All steps in one call (`--steps all`) do not fit the tool's 600 s.
Here, on a CPU, `make gpu-check ARGS=--dry-run GPU_PYTHON=.venv/bin/python` prints the plan and runs every
step at a tiny size (one model, 32x32, on the CPU: the CUDA-only variants come back skipped with the reason).
Without CUDA and without --dry-run it refuses with one line and exit status 2.

The variants step calls the bench.variants API directly (`_variants_child` below) rather than `bench run
--suite profile --variants ... --device cuda` (which gives the same rows per model): that way each group of
variants is timed with torch-fp32 in one process and the summary carries their ratios, within the time box.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SEGMENTERS = ("fcn32", "unet", "unetpp", "u2net", "u2net_small", "segnet")
VARIANT_MODELS = SEGMENTERS + ("vtadl",)
# Each group is timed with torch-fp32 in the same call, so its ratios are interleaved measurements.
VARIANT_GROUPS = (
    "torch-fp32,torch-tf32,torch-bf16,torch-fp16,torch-channels-last,ort-fp32,ort-int8-dynamic,ort-int8-static,ort-fp16",
    "torch-fp32,torch-compile",
    "torch-fp32,torch-compile-cudagraphs",
)
COMPILED_MODELS = ("unet", "segnet", "vtadl")  # compiling every model twice would not fit the time box
TOTAL_BUDGET_S = 540  # per call: the device tool stops a command at 600 s; installing the wheels comes first
STEPS = ("quick", "variants", "paper")  # `env` always runs: the other steps need its peaks
ENV_BUDGET_S = 30


@dataclass
class Plan:
    device: str
    quick_args: list[str]
    quick_budget_s: int
    variant_models: tuple[str, ...]
    image_size: int
    batch_size: int
    model_budget_s: int  # group 0 only
    compiled_budget_s: int  # all three groups
    paper_args: list[str]
    paper_budget_s: int
    timing: dict = field(default_factory=dict)

    def groups(self, model: str) -> int:
        return len(VARIANT_GROUPS) if model in COMPILED_MODELS else 1

    def budget(self, model: str) -> int:
        return self.compiled_budget_s if model in COMPILED_MODELS else self.model_budget_s

    def step_s(self, step: str) -> int:
        if step == "variants":
            return sum(self.budget(m) for m in self.variant_models)
        return {"quick": self.quick_budget_s, "paper": self.paper_budget_s}[step]

    def total_s(self, steps: tuple[str, ...] = STEPS) -> int:
        return ENV_BUDGET_S + sum(self.step_s(step) for step in steps)


def gpu_plan() -> Plan:
    return Plan(device="cuda", quick_args=[], quick_budget_s=220, variant_models=VARIANT_MODELS, image_size=256,
                batch_size=8, model_budget_s=35, compiled_budget_s=95,
                paper_args=["--models", "vtadl", "--categories", "fabric", "--train-minutes", "0.3"],
                paper_budget_s=100,
                timing=dict(warmup=5, min_iters=20, max_iters=200, min_seconds=0.3, max_seconds=2.0, warmup_seconds=2.0,
                            throughput_batch=32))


def dry_run_plan() -> Plan:
    return Plan(device="cpu", quick_args=["--models", "unet", "--image-size", "32", "--threads", "1"],
                quick_budget_s=240, variant_models=("unet",), image_size=32, batch_size=2, model_budget_s=120,
                compiled_budget_s=400,
                paper_args=["--models", "vtadl", "--categories", "fabric", "--train-minutes", "0.05",
                            "--image-size", "32", "--threads", "1"],
                paper_budget_s=300,
                timing=dict(warmup=1, min_iters=3, max_iters=10, min_seconds=0.0, max_seconds=1.0, warmup_seconds=1.0,
                            throughput_batch=4, threads=1))


# -- the parent: steps, time boxes, files ------------------------------------------------------------------
class Log:
    def __init__(self, path: Path):
        self.file = path.open("a", buffering=1)

    def line(self, text: str) -> None:
        print(text, flush=True)
        self.file.write(text + "\n")


def run_boxed(name: str, command: list[str], budget_s: float, log: Log, env: dict | None = None) -> dict:
    """Run `command` in its own process group, streaming its output to the log; kill the group at the budget."""
    log.line(f"== {name} (time box {budget_s:.0f} s): {' '.join(command)}")
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, start_new_session=True)
    status = "ok"

    def pump() -> None:
        assert proc.stdout is not None
        for text in proc.stdout:
            log.line(f"  {text.rstrip()}")

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=budget_s)
    except subprocess.TimeoutExpired:
        status = "timed_out"
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: inductor's compile workers too
        proc.wait()
    reader.join(timeout=5)
    if status == "ok" and proc.returncode != 0:
        status = "failed"
    seconds = time.perf_counter() - started
    log.line(f"== {name}: {status} after {seconds:.1f} s (exit {proc.returncode})")
    return {"step": name, "command": " ".join(command), "budget_s": budget_s, "seconds": round(seconds, 1),
            "status": status, "returncode": proc.returncode}


def environment(device: str, threads: int | None) -> dict:
    import onnxruntime as ort
    import torch

    from bench.variants import cpu_flags, math_mode, measure_peaks

    dev = torch.device(device)
    env = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda or "",
           "cudnn": torch.backends.cudnn.version() if dev.type == "cuda" else None,
           "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "",
           "onnxruntime": ort.__version__, "ort_providers": ort.get_available_providers(),
           "cpu_flags": cpu_flags(), "math_mode": math_mode(dev)}
    env["peaks_gflops"] = measure_peaks(dev, threads=threads, seconds=0.5)
    return env


def copy_results(run_dir: Path, out: Path, prefix: str) -> list[str]:
    """The run's results.json/csv; a run cut by its time box has none, so its finished job records are
    bundled into `<prefix>_results.json` instead (marked partial)."""
    copied = []
    for name in ("results.json", "results.csv"):
        if (run_dir / name).is_file():
            shutil.copy(run_dir / name, out / f"{prefix}_{name}")
            copied.append(f"{prefix}_{name}")
    records = sorted((run_dir / "records").glob("*.json")) if (run_dir / "records").is_dir() else []
    if "results.json" not in " ".join(copied) and records:
        bundle = {"partial": True, "records": [json.loads(p.read_text()) for p in records]}
        (out / f"{prefix}_results.json").write_text(json.dumps(bundle, default=str))
        copied.append(f"{prefix}_results.json")
    return copied


def add_ratios(rows: list[dict]) -> None:
    """`latency_ratio_to_fp32`: p50 over the torch-fp32 p50 of the same model and group (same process)."""
    base = {(r["model"], r["group"]): r["latency_ms_p50"] for r in rows
            if r["variant"] == "torch-fp32" and r.get("status") == "ok" and r.get("batch_size") == r.get("job_batch")}
    for r in rows:
        ref = base.get((r["model"], r["group"]))
        r["latency_ratio_to_fp32"] = (r["latency_ms_p50"] / ref) if ref and r.get("latency_ms_p50") else None


def write_table(rows: list[dict], path: Path) -> None:
    scalar = [k for k in dict.fromkeys(k for r in rows for k in r) if not k.endswith("_samples_ms")]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=scalar, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def parent(args: argparse.Namespace) -> int:
    import torch

    out_text = args.out or os.environ.get("OUT")
    if not out_text:
        print("gpu-check: no output folder: pass --out DIR or set OUT", file=sys.stderr)
        return 2
    steps = parse_steps(args.steps)
    if steps is None:
        print(f"gpu-check: --steps {args.steps!r}: choose from {', '.join(STEPS)} (comma-separated) or all",
              file=sys.stderr)
        return 2
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu-check: no CUDA device here (torch.cuda.is_available() is False); run it on the GPU machine, "
              "or pass --dry-run to rehearse on this CPU", file=sys.stderr)
        return 2
    plan = dry_run_plan() if args.dry_run else gpu_plan()
    if not args.dry_run and plan.total_s(steps) > TOTAL_BUDGET_S:
        print(f"gpu-check: --steps {','.join(steps)}: the time boxes add up to {plan.total_s(steps)} s, more than one "
              f"device call's {TOTAL_BUDGET_S} s; run --steps quick,paper and --steps variants as two calls",
              file=sys.stderr)
        return 2
    out = Path(out_text)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    log = Log(out / "log.txt")
    py = sys.executable
    cache_env = {"DEFECTBENCH_CACHE": os.environ.get("DEFECTBENCH_CACHE", str(scratch / "cache"))}
    log.line(f"gpu-check{' --dry-run' if args.dry_run else ''}: device {plan.device}, out {out}, scratch {scratch}, "
             f"steps env,{','.join(steps)}, time boxes {plan.total_s(steps)} s in all")
    for line in (f"  1 env      measure the precisions' peaks, record math mode and versions",
                 f"  2 quick    bench run --suite quick --device {plan.device} {' '.join(plan.quick_args)} "
                 f"({plan.quick_budget_s} s)",
                 f"  3 variants {', '.join(plan.variant_models)} at {plan.image_size}px batch {plan.batch_size}: groups "
                 f"{' | '.join(VARIANT_GROUPS)}; the compile groups for "
                 f"{', '.join(m for m in plan.variant_models if m in COMPILED_MODELS)} only "
                 f"({plan.model_budget_s} s per model, {plan.compiled_budget_s} s with the compile groups)",
                 f"  4 paper    bench run --suite paper --device {plan.device} {' '.join(plan.paper_args)} "
                 f"({plan.paper_budget_s} s)"):
        if line.split()[1] in ("env", *steps):
            log.line(line)
    summary: dict = {"dry_run": args.dry_run, "device": plan.device, "steps": []}
    started = time.perf_counter()

    t0 = time.perf_counter()
    try:
        summary["environment"] = environment(plan.device, plan.timing.get("threads"))
        summary["steps"].append({"step": "env", "status": "ok", "seconds": round(time.perf_counter() - t0, 1)})
    except Exception as exc:
        summary["steps"].append({"step": "env", "status": "failed", "error": f"{type(exc).__name__}: {exc}"})
    log.line(f"== env: {json.dumps(summary.get('environment', {}), default=str)}")
    peaks_file = scratch / "peaks.json"
    peaks_file.write_text(json.dumps(summary.get("environment", {}).get("peaks_gflops", {})))

    if "quick" in steps:
        run_quick(plan, py, scratch, out, log, cache_env, summary)
    if "variants" in steps:
        run_variants(plan, py, scratch, out, log, cache_env, peaks_file, summary)
    if "paper" in steps:
        run_paper(plan, py, scratch, out, log, cache_env, summary)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    failed = [s["step"] for s in summary["steps"] if s["status"] != "ok"]
    log.line(f"gpu-check: done in {summary['seconds']} s; steps not ok: {', '.join(failed) or 'none'}; files in {out}: "
             f"{', '.join(sorted(p.name for p in out.iterdir()))}")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


def parse_steps(text: str) -> tuple[str, ...] | None:
    """'all' or a comma-separated subset of STEPS -> the steps in their fixed order; None if a name is unknown."""
    names = STEPS if text.strip() == "all" else tuple(n.strip() for n in text.split(",") if n.strip())
    if not names or any(n not in STEPS for n in names):
        return None
    return tuple(n for n in STEPS if n in names)


def run_quick(plan, py, scratch, out, log, cache_env, summary) -> None:
    quick_dir = scratch / "quick"
    summary["steps"].append(run_boxed("quick", [py, "-m", "bench.cli", "run", "--suite", "quick", "--device", plan.device,
                                                "--out", str(quick_dir), *plan.quick_args],
                                      plan.quick_budget_s, log, cache_env))
    summary["steps"][-1]["files"] = copy_results(quick_dir, out, "quick")


def run_variants(plan, py, scratch, out, log, cache_env, peaks_file, summary) -> None:
    rows_file = scratch / "variants.jsonl"
    for model in plan.variant_models:
        step = run_boxed(f"variants {model}",
                         [py, str(Path(__file__).resolve()), "--child-model", model, "--device", plan.device,
                          "--image-size", str(plan.image_size), "--batch-size", str(plan.batch_size),
                          "--groups", str(plan.groups(model)), "--rows", str(rows_file), "--peaks", str(peaks_file),
                          "--timing", json.dumps(plan.timing)],
                         plan.budget(model), log, cache_env)
        summary["steps"].append(step)
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()] if rows_file.exists() else []
    add_ratios(rows)
    summary["variants"] = rows
    write_table(rows, out / "variants.csv")
    for r in rows:
        log.line(f"  {r['model']:12s} {r['group']:2d} {r['variant']:26s} {r['status']:8s} "
                 f"p50 {r.get('latency_ms_p50') or float('nan'):9.3f} ms  ratio {r.get('latency_ratio_to_fp32') or float('nan'):6.3f}  "
                 f"parity {r.get('parity')}  {r.get('error', '')[:90]}")


def run_paper(plan, py, scratch, out, log, cache_env, summary) -> None:
    paper_dir = scratch / "paper"
    summary["steps"].append(run_boxed("paper", [py, "-m", "bench.cli", "run", "--suite", "paper", "--device", plan.device,
                                                "--out", str(paper_dir), *plan.paper_args],
                                      plan.paper_budget_s, log, cache_env))
    summary["steps"][-1]["files"] = copy_results(paper_dir, out, "paper")


# -- the child: one model's variant groups -----------------------------------------------------------------
def _variants_child(args: argparse.Namespace) -> int:
    """Profile every variant group of one model, appending each group's rows to the JSONL file as it ends
    (so a time box that cuts the compile groups keeps the rows already measured)."""
    import torch

    from bench.measure import ProbeSettings, macs_probe
    from bench.quiet import install_stderr_filter
    from bench.variants import profile_variants
    from models import create_detector, get_entry

    install_stderr_filter()  # the profiler's USDT lines, as in a bench worker
    device = torch.device(args.device)
    timing = json.loads(args.timing)
    threads = timing.pop("threads", None) or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    settings = ProbeSettings(device=device, threads=threads, workdir=Path(tempfile.mkdtemp(prefix="variants-")),
                             **timing)
    torch.manual_seed(0)
    detector = create_detector(args.child_model, image_size=args.image_size).to(device)
    detector.train_mode(False)
    module = detector.inference_module().eval()
    gen = torch.Generator().manual_seed(0)
    example = torch.rand(args.batch_size, 3, args.image_size, args.image_size, generator=gen).to(device)
    gmacs = macs_probe(module, example, settings)["gmacs"]
    peaks = json.loads(Path(args.peaks).read_text()) if args.peaks else {}
    calibration = _calibration_images(args.image_size, device)
    for group, names in enumerate(VARIANT_GROUPS[: args.groups]):
        t0 = time.perf_counter()
        rows = profile_variants(module, example, names, settings, calibration_images=calibration, gmacs=gmacs,
                                peaks=peaks)
        with open(args.rows, "a") as f:
            for row in rows:
                row.update(model=args.child_model, family=get_entry(args.child_model).family, group=group,
                           image_size=args.image_size, job_batch=args.batch_size, device=device.type)
                f.write(json.dumps(row, default=str) + "\n")
        print(f"{args.child_model} group {group}: {len(rows)} rows in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


def _calibration_images(size: int, device):
    """Static int8 calibration images (synthetic `fabric` training split), where an ort variant can run."""
    import onnxruntime as ort

    if device.type == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        return None  # every ort variant is skipped on this machine: no dataset needed
    import datasets
    from bench.variants import calibration_images_from
    from datasets.synthetic import default_cache_dir, ensure_synthetic

    root = ensure_synthetic(default_cache_dir(), seed=0)
    return calibration_images_from(datasets.open_dataset("synthetic", root, "fabric", "train", size))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="where the files that come back go (default: $OUT)")
    parser.add_argument("--dry-run", action="store_true", help="rehearse every step on the CPU at a tiny size")
    parser.add_argument("--steps", default="all", help=f"comma-separated, of {', '.join(STEPS)} (env always runs); "
                        "on the GPU: quick,paper in one device call and variants in another")
    parser.add_argument("--child-model", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    parser.add_argument("--image-size", type=int, default=256, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--groups", type=int, default=len(VARIANT_GROUPS), help=argparse.SUPPRESS)
    parser.add_argument("--rows", help=argparse.SUPPRESS)
    parser.add_argument("--peaks", help=argparse.SUPPRESS)
    parser.add_argument("--timing", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return _variants_child(args) if args.child_model else parent(args)


if __name__ == "__main__":
    sys.exit(main())
