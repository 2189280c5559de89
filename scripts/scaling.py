#!/usr/bin/env python
"""Scale on paper: what the paper-sized benchmark costs, from measured per-step times, and how long it takes on
1, 8 or 64 GPUs when its jobs are Ray tasks (docs/design/scaling.md).

    python scripts/scaling.py table RUN [RUN ...] [--io IO.json] [--gpus 1,8,64] [--efficiency 0.1,0.25,0.5]
    python scripts/scaling.py measure-io --records RUN [RUN ...] --accuracy-template RUN --out IO.json

`table` reads the profile records of the run folders (one `bench run --suite profile` per model, each at the
model's own input size and batch 8), prices every job of the paper matrix (11 models x 15 MVTec AD + 3 BTAD
categories, 400 epochs, batch 8) in core-hours of the measuring CPU, derives GPU times from the measured CPU
matmul peak against a published GPU peak and an assumed efficiency, and simulates the run's makespan. Its output
depends only on its inputs and options (no clock, no randomness).

`measure-io` measures what the driver and the hosts pay outside the training step: record sizes, rewriting
results.json for the whole matrix, decoding the dataset's images, computing the metrics. It writes IO.json,
which `table --io` adds to every job.
"""
from __future__ import annotations

import argparse
import heapq
import json
import math
import statistics
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: the checkout's packages

# The datasets' own counts (train images, test images) per category: /work/shared/reference/methods.md.
MVTEC_AD = {"bottle": (209, 83), "cable": (224, 150), "capsule": (219, 132), "carpet": (280, 117), "grid": (264, 78),
            "hazelnut": (391, 110), "leather": (245, 124), "metal_nut": (220, 115), "pill": (267, 167),
            "screw": (320, 160), "tile": (230, 117), "toothbrush": (60, 42), "transistor": (213, 100),
            "wood": (247, 79), "zipper": (240, 151)}
BTAD = {"01": (400, 70), "02": (399, 230), "03": (1000, 441)}
PAPER_DATASETS = {"mvtec": MVTEC_AD, "btad": BTAD}
# Source images the loader decodes (then resizes): MVTec AD's are 700-1024 px squares, priced here as 1024 px PNG
# (an upper bound); BTAD's sizes and formats are in methods.md.
SOURCE_IMAGES = {"mvtec": {c: "png_rgb_1024" for c in MVTEC_AD},
                 "btad": {"01": "bmp_rgb_1600", "02": "png_rgb_600", "03": "bmp_rgb_800x600"}}
PAPER_EPOCHS = 400
PAPER_BATCH = 8
# NVIDIA H200 SXM, published dense peaks in TFLOP/s: FP32 on the CUDA cores; TF32 on the tensor cores (the
# datasheet's 989 is with 2:4 sparsity). cuDNN convolutions use TF32 by default, matmuls do not.
H200_FP32_TFLOPS = 66.9
H200_TF32_DENSE_TFLOPS = 494.7


# -- measured costs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelCost:
    """One model's measured cost at the paper's settings (medians over the records given for it)."""

    model: str
    image_size: int
    batch_size: int
    threads: int
    train_step_ms: float  # p50 of the timed training steps (or their minimum, --statistic min)
    eval_batch_ms: float  # p50 latency of one inference batch of `batch_size`
    train_step_min_ms: float
    eval_batch_min_ms: float
    peak_train_mb: float
    model_mb: float
    cpu_peak_gflops: float  # the record's best_kernel_gflops: the best calibration kernel of its run (in the
    # scaling-data runs, made before the calibration kernels, the fp32 torch matmul peak)
    profile_seconds: float  # what the profile job took on the measuring CPU
    gmacs: float
    records: int
    cpu_best_kernel_ratio: float = math.nan  # inference: 2 x MACs / p50 latency over that rate (may exceed 1)
    train_step_p50_ms: float = math.nan
    eval_batch_p50_ms: float = math.nan


def _median(values: list[float]) -> float:
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return statistics.median(values) if values else math.nan


def _records_of(path: Path) -> list[dict]:
    """The records of a run folder (results.json, else its job files) or of a results.json file."""
    from bench import run_folder

    path = Path(path)
    if path.is_file() or (path / "results.json").is_file():
        return run_folder.load_results(path)[1]
    found = []
    for job in run_folder.job_files(path):
        found.extend(run_folder.read_job(job)["records"])
    if not found:
        raise SystemExit(f"{path}: no results.json and no records/*.json: not a run folder")
    return found


def read_model_costs(paths: list[Path], statistic: str = "p50") -> tuple[list[ModelCost], list[str]]:
    """Per model, its torch-fp32 profile records at batch 8; (costs sorted by model, notes on what was left out)."""
    by_model: dict[str, list[dict]] = {}
    notes = []
    for path in paths:
        for record in _records_of(path):
            if record.get("suite") != "profile" or record.get("variant", "torch-fp32") != "torch-fp32":
                continue
            if record.get("status") != "ok" or record.get("train_step_ms_p50") is None:
                notes.append(f"{record.get('model')}: record {record.get('job_id')} not used ({record.get('status')}: "
                             f"{record.get('error') or 'no training-step time'})")
                continue
            by_model.setdefault(record["model"], []).append(record)
    costs = []
    for model in sorted(by_model):
        rows = by_model[model]
        sizes = {(r["image_size"], r["batch_size"]) for r in rows}
        if len(sizes) > 1:
            raise SystemExit(f"{model}: records at several sizes {sorted(sizes)}; give one size per model")
        train_min = _median([min(r["train_step_samples_ms"]) for r in rows if r.get("train_step_samples_ms")])
        eval_min = _median([min(r["latency_samples_ms"]) for r in rows if r.get("latency_samples_ms")])
        train_p50 = _median([r["train_step_ms_p50"] for r in rows])
        eval_p50 = _median([r.get("latency_ms_p50") for r in rows])
        costs.append(ModelCost(
            model=model, image_size=int(rows[0]["image_size"]), batch_size=int(rows[0]["batch_size"]),
            threads=int(rows[0]["threads"]),
            train_step_ms=train_min if statistic == "min" else train_p50,
            eval_batch_ms=eval_min if statistic == "min" else eval_p50,
            train_step_min_ms=train_min, eval_batch_min_ms=eval_min,
            peak_train_mb=_median([r.get("peak_train_mb") for r in rows]),
            model_mb=_median([r.get("model_mb") for r in rows]),
            cpu_peak_gflops=_median([r.get("best_kernel_gflops") for r in rows]),
            profile_seconds=_median([r.get("seconds") for r in rows]),
            gmacs=_median([r.get("gmacs") for r in rows]), records=len(rows),
            cpu_best_kernel_ratio=_median([r.get("best_kernel_ratio") for r in rows]),
            train_step_p50_ms=train_p50, eval_batch_p50_ms=eval_p50))
    return costs, notes


# -- the paper matrix ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One job of the simulation: what it is, how long it runs, and whether it holds its node's timing slot."""

    job_id: str
    model: str
    kind: str  # profile | accuracy
    seconds: float
    timing: bool = False
    dataset: str = ""
    category: str = ""
    run: int = 0  # which `bench run` submits it (0: mvtec, 1: btad), for the two-runs variant


def steps_per_epoch(n_train: int, batch: int = PAPER_BATCH) -> int:
    """The training loader drops the last partial batch when there is more than one batch (bench/jobs/accuracy.py)."""
    return n_train // batch if n_train > batch else 1


def eval_batches(n_test: int, batch: int = PAPER_BATCH) -> int:
    return math.ceil(n_test / batch)


@dataclass(frozen=True)
class Assumptions:
    """Everything the per-job price depends on beyond the measurements; printed with every table."""

    epochs: int = PAPER_EPOCHS
    batch: int = PAPER_BATCH
    gpu_peak_tflops: float = H200_FP32_TFLOPS
    min_gpu_step_ms: float = 5.0  # Python and kernel-launch overhead of one eager training step
    min_gpu_eval_ms: float = 2.0
    profile_fixed_seconds: float = 120.0  # ONNX export, time-capped timing loops: do not shrink on a GPU
    decode: str = "every-epoch"  # today's loader decodes every image every epoch; "once" with an in-memory set
    cpu_peak_gflops: float | None = None  # one peak for every model (the session's median); None: each run's own
    io: dict = field(default_factory=dict)  # measure-io's output: host-side costs per image and per pixel


def host_seconds(a: Assumptions, dataset: str, category: str, n_train: int, n_test: int, size: int) -> float:
    """Decoding the images and computing the metrics: host CPU work, the same on a CPU or a GPU node."""
    if not a.io:
        return 0.0
    decode = a.io["decode_ms"][SOURCE_IMAGES[dataset][category]] / 1e3
    decoded = n_train * (a.epochs if a.decode == "every-epoch" else 1) + n_test
    metrics = a.io["metrics_s_per_megapixel"] * n_test * size * size / 1e6
    return decoded * decode + metrics


def accuracy_seconds(cost: ModelCost, dataset: str, category: str, a: Assumptions,
                     gpu_efficiency: float | None = None) -> float:
    """One (model, category) job: epochs x steps of training + one evaluation of the test set (+ host work).
    `gpu_efficiency` None: on the measuring CPU; else derived for the GPU (see gpu_scale)."""
    n_train, n_test = PAPER_DATASETS[dataset][category]
    step, batch = cost.train_step_ms / 1e3, cost.eval_batch_ms / 1e3
    if gpu_efficiency is not None:
        scale = gpu_scale(cost, a, gpu_efficiency)
        step = max(step * scale, a.min_gpu_step_ms / 1e3)
        batch = max(batch * scale, a.min_gpu_eval_ms / 1e3)
    train = steps_per_epoch(n_train, a.batch) * a.epochs * step
    return train + eval_batches(n_test, a.batch) * batch + host_seconds(a, dataset, category, n_train, n_test,
                                                                        cost.image_size)


def gpu_scale(cost: ModelCost, a: Assumptions, efficiency: float) -> float:
    """GPU time / CPU time: the measured CPU matmul peak over the GPU's published peak, divided by how much
    better (efficiency > 1) or worse (< 1) the model uses the GPU's peak than the CPU's."""
    peak = a.cpu_peak_gflops if a.cpu_peak_gflops is not None else cost.cpu_peak_gflops
    return peak / (a.gpu_peak_tflops * 1e3 * efficiency)


def profile_seconds(cost: ModelCost, a: Assumptions, gpu_efficiency: float | None = None) -> float:
    if gpu_efficiency is None:
        return cost.profile_seconds
    return a.profile_fixed_seconds + cost.profile_seconds * gpu_scale(cost, a, gpu_efficiency)


def paper_plan(models: list[str]) -> list[tuple[str, str, str, str, int]]:
    """(kind, model, dataset, category, run) in the order the runner plans them: `bench run --suite paper` once per
    dataset (bench.plan.plan_run: per model its profile job, then its categories in the dataset's order); the
    second run reuses the profile jobs (same settings) with --resume."""
    from bench.config import RunConfig
    from bench.plan import plan_run

    order, seen_profiles = [], set()
    for run, dataset in enumerate(PAPER_DATASETS):
        cfg = RunConfig(suite="paper", models=list(models), dataset=dataset, data_root=Path(f"/data/{dataset}"),
                        out=Path("runs/paper"))
        specs = plan_run(cfg, list(models), "cuda", 1, cfg.data_root, sorted(PAPER_DATASETS[dataset]))
        for spec in specs:
            if spec.kind == "profile":
                if spec.model in seen_profiles:
                    continue
                seen_profiles.add(spec.model)
            order.append((spec.kind, spec.model, spec.dataset, spec.category, run))
    return order


def registry_order(models: list[str]) -> list[str]:
    """The measured models in the registry's order (the planner's default order)."""
    from models import list_models

    known = [e.name for e in list_models()]
    return [m for m in known if m in models] + sorted(m for m in models if m not in known)


def price_jobs(plan: list[tuple], costs: dict[str, ModelCost], a: Assumptions,
               gpu_efficiency: float | None = None) -> list[Job]:
    jobs = []
    for kind, model, dataset, category, run in plan:
        cost = costs[model]
        if kind == "profile":
            jobs.append(Job(f"profile/{model}", model, "profile", profile_seconds(cost, a, gpu_efficiency),
                            timing=True, run=run))
        else:
            jobs.append(Job(f"accuracy/{model}/{dataset}/{category}", model, "accuracy",
                            accuracy_seconds(cost, dataset, category, a, gpu_efficiency), dataset=dataset,
                            category=category, run=run))
    return jobs


# -- the scheduler ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cluster:
    workers: int  # GPUs (or CPU workers); each job takes one
    per_node: int = 8  # workers per node
    timing_slots: int = 1  # per node: a profile job holds one for its whole run

    def nodes(self) -> list[int]:
        """Workers on each node: full nodes, the last one with the remainder."""
        full, rest = divmod(self.workers, self.per_node)
        return [self.per_node] * full + ([rest] if rest else [])


@dataclass
class Schedule:
    makespan: float
    starts: dict[str, float]  # job id -> start time
    nodes: dict[str, int]  # job id -> node index


def simulate(jobs: list[Job], cluster: Cluster) -> Schedule:
    """Ray's handling of these tasks, as modelled here: every job is submitted at time 0 in list order, each
    needs one worker (and a profile job one timing slot on the same node). Jobs with the same demands wait in one
    FIFO queue; whenever resources free up, every waiting job that fits now starts, in submission order (a
    profile job waiting for a timing slot does not hold back the accuracy jobs behind it, which are another
    scheduling class). A job goes to the node with the most free workers (then the lowest index): the
    least-utilised feasible node, as Ray's default strategy does once nodes are past its packing threshold."""
    free = cluster.nodes()
    if not free:
        raise ValueError("a cluster needs at least one worker")
    slots = [cluster.timing_slots] * len(free)
    pending = list(jobs)
    running: list[tuple[float, int, str, int, bool]] = []  # (end, order, id, node, timing) as a heap
    starts, placed = {}, {}
    now, makespan, order = 0.0, 0.0, 0
    if any(j.timing for j in jobs) and cluster.timing_slots < 1:
        raise ValueError("profile jobs need at least one timing slot per node")
    while pending or running:
        still = []
        for job in pending:
            fits = [n for n in range(len(free)) if free[n] > 0 and (not job.timing or slots[n] > 0)]
            if not fits:
                still.append(job)
                continue
            node = min(fits, key=lambda n: (-free[n], n))
            free[node] -= 1
            if job.timing:
                slots[node] -= 1
            starts[job.job_id], placed[job.job_id] = now, node
            heapq.heappush(running, (now + job.seconds, order, job.job_id, node, job.timing))
            order += 1
        pending = still
        if not running:
            raise RuntimeError("jobs wait but nothing runs: a job no node can ever hold")
        end, _, _, node, timing = heapq.heappop(running)
        finished = [(node, timing)]
        while running and running[0][0] == end:  # every job that ends at the same moment frees its worker now
            _, _, _, n, t = heapq.heappop(running)
            finished.append((n, t))
        for n, t in finished:
            free[n] += 1
            if t:
                slots[n] += 1
        now = makespan = end
    return Schedule(makespan=makespan, starts=starts, nodes=placed)


def peak_completions(schedule: Schedule, jobs: list[Job], window: float = 60.0) -> int:
    """The most jobs that end within any `window` seconds: the burst of records the driver must absorb."""
    ends = sorted(schedule.starts[j.job_id] + j.seconds for j in jobs)
    best, first = 0, 0
    for last, end in enumerate(ends):
        while end - ends[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best


def longest_first(jobs: list[Job]) -> list[Job]:
    """The same jobs, longest first (ties keep plan order)."""
    return sorted(jobs, key=lambda j: -j.seconds)


def two_runs_makespan(jobs: list[Job], cluster: Cluster) -> float:
    """`bench run` once per dataset, the second after the first has ended: the makespans add up."""
    runs = sorted({j.run for j in jobs})
    return sum(simulate([j for j in jobs if j.run == r], cluster).makespan for r in runs)


def lower_bound(jobs: list[Job], cluster: Cluster) -> float:
    """No schedule beats the longest job, the total over the workers, or the timing jobs over the timing slots."""
    total = sum(j.seconds for j in jobs)
    timing = sum(j.seconds for j in jobs if j.timing)
    slots = len(cluster.nodes()) * cluster.timing_slots
    return max(max((j.seconds for j in jobs), default=0.0), total / cluster.workers, timing / slots if timing else 0.0)


def upper_bound(jobs: list[Job], cluster: Cluster) -> float:
    """What the greedy schedule above can never exceed: total/workers + the longest job (Graham's bound for list
    scheduling), + the timing jobs' total when a timing slot can hold a job back while a worker is idle."""
    total = sum(j.seconds for j in jobs)
    timing = sum(j.seconds for j in jobs if j.timing)
    return total / cluster.workers + max((j.seconds for j in jobs), default=0.0) + timing


# -- printing ---------------------------------------------------------------------------------------------
def _hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f}" if seconds >= 360 else f"{seconds / 3600:,.2f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def measured_table(costs: list[ModelCost]) -> str:
    rows = [[c.model, str(c.image_size), str(c.batch_size), str(c.threads), f"{c.train_step_p50_ms:,.0f}",
             f"{c.train_step_min_ms:,.0f}", f"{c.eval_batch_p50_ms:,.0f}", f"{c.eval_batch_min_ms:,.0f}",
             f"{c.peak_train_mb:,.0f}", f"{c.model_mb:,.1f}", f"{c.gmacs:,.2f}", f"{c.cpu_peak_gflops:,.1f}",
             f"{c.cpu_best_kernel_ratio:.2f}", f"{c.profile_seconds:,.0f}"] for c in costs]
    return _table(["model", "size", "batch", "threads", "train step p50 ms", "min ms", "eval batch p50 ms", "min ms",
                   "peak train MB", "model MB", "GMACs/img", "CPU peak GFLOP/s", "eval vs best kernel",
                   "profile job s"], rows)


def mac_step_seconds(cost: ModelCost, a: Assumptions, efficiency: float) -> float:
    """A cross-check that needs no CPU timing: a training step as 3 forward passes' worth of MACs (forward +
    backward), 2 FLOPs each, for the batch, at `efficiency` x the GPU's peak. MAC counters skip elementwise work
    (routing, SSIM, the optimiser), so this is a floor for models rich in it."""
    return 3 * 2 * cost.gmacs * 1e9 * a.batch / (a.gpu_peak_tflops * 1e12 * efficiency)


def gpu_step_table(costs: list[ModelCost], a: Assumptions, efficiencies: list[float]) -> str:
    rows = []
    for c in costs:
        scaled = [max(c.train_step_ms * gpu_scale(c, a, e), a.min_gpu_step_ms) for e in efficiencies]
        macs = [mac_step_seconds(c, a, e) * 1e3 for e in efficiencies]
        rows.append([c.model, f"{c.train_step_ms:,.0f}"] + [f"{v:,.1f}" for v in scaled] + [f"{v:,.2f}" for v in macs])
    return _table(["model", "CPU step ms"] + [f"GPU step ms, CPU-scaled, eff {e:g}" for e in efficiencies] +
                  [f"GPU step ms from MACs, {e:g} of peak" for e in efficiencies], rows)


def steps_table(a: Assumptions) -> str:
    rows = []
    for dataset, cats in PAPER_DATASETS.items():
        for cat in sorted(cats):
            n_train, n_test = cats[cat]
            rows.append([dataset, cat, str(n_train), str(n_test), str(steps_per_epoch(n_train, a.batch)),
                         f"{steps_per_epoch(n_train, a.batch) * a.epochs:,}", str(eval_batches(n_test, a.batch))])
    return _table(["dataset", "category", "train", "test", "steps/epoch", f"steps ({a.epochs} epochs)",
                   "eval batches"], rows)


def cost_table(costs: list[ModelCost], a: Assumptions, efficiencies: list[float]) -> str:
    rows, totals = [], [0.0, 0.0, 0.0] + [0.0] * len(efficiencies)
    for c in costs:
        per = {d: [accuracy_seconds(c, d, cat, a) for cat in sorted(PAPER_DATASETS[d])] for d in PAPER_DATASETS}
        jobs = per["mvtec"] + per["btad"]
        gpu = [sum(accuracy_seconds(c, d, cat, a, e) for d in PAPER_DATASETS for cat in PAPER_DATASETS[d])
               for e in efficiencies]
        values = [sum(per["mvtec"]), sum(per["btad"]), sum(jobs)] + gpu
        totals = [t + v for t, v in zip(totals, values)]
        rows.append([c.model, f"{_hours(min(jobs))} - {_hours(max(jobs))}"] + [_hours(v) for v in values])
    rows.append(["**all 11 x 18 jobs**" if len(costs) == 11 else f"**all {len(costs)} models**", ""] +
                [f"**{_hours(v)}**" for v in totals])
    return _table(["model", "one job, core-h (min - max)", "MVTec AD core-h", "BTAD core-h", "total core-h"] +
                  [f"GPU-h derived, eff {e:g}" for e in efficiencies], rows)


def makespan_table(plan: list[tuple], costs: dict[str, ModelCost], a: Assumptions, workers: list[int],
                   per_node: int, timing_slots: int, efficiency: float | None) -> str:
    jobs = price_jobs(plan, costs, a, efficiency)
    rows = []
    for n in workers:
        cluster = Cluster(n, per_node=min(per_node, n), timing_slots=timing_slots)
        schedule = simulate(jobs, cluster)
        lpt = simulate(longest_first(jobs), cluster).makespan
        rows.append([str(n), f"{len(cluster.nodes())}", _hours(schedule.makespan), _hours(lpt),
                     _hours(two_runs_makespan(jobs, cluster)), _hours(lower_bound(jobs, cluster)),
                     f"{schedule.makespan / lpt:.2f}", str(peak_completions(schedule, jobs))])
    what = "CPU workers (1 core of the measuring CPU each)" if efficiency is None else "GPUs"
    return _table([what, "nodes", "plan order, h", "longest first, h", "two runs (mvtec, then btad), h",
                   "lower bound, h", "plan / longest-first", "most jobs ending in one minute"], rows)


def job_list(plan: list[tuple], costs: dict[str, ModelCost], a: Assumptions, efficiencies: list[float]) -> str:
    cpu = price_jobs(plan, costs, a)
    gpu = [price_jobs(plan, costs, a, e) for e in efficiencies]
    rows = [[j.job_id, f"{j.seconds / 3600:,.2f}"] + [f"{g[i].seconds / 3600:,.3f}" for g in gpu]
            for i, j in enumerate(cpu)]
    return _table(["job (plan order)", "core-h"] + [f"GPU-h, eff {e:g}" for e in efficiencies], rows)


def assumptions_text(a: Assumptions, costs: list[ModelCost], statistic: str, efficiencies: list[float],
                     cpu_peak: str = "max") -> str:
    lines = [
        f"- Training: {a.epochs} epochs x floor(train images / {a.batch}) steps per epoch (the loader drops the "
        f"last partial batch), each at the measured training-step time ({statistic} of the probe's timed steps, "
        "forward + backward + optimiser step, batch 8, the model's own input size and loss).",
        f"- Evaluation: ceil(test images / {a.batch}) inference batches at the measured {statistic} latency of one "
        "batch of 8, once per job (the paper suite trains to its epoch budget and evaluates once).",
        "- Profile jobs: the measured duration of the profile job (torch-fp32 only; the paper suite also exports "
        f"and times ONNX); on a GPU: {a.profile_fixed_seconds:g} s (export and time-capped loops, assumed) + the "
        "measured duration scaled like a training step. Each holds its node's timing slot.",
    ]
    if a.io:
        lines.append(f"- Host work (from --io): decoding every image the loader reads ({a.decode}: "
                     f"{'400 x the training set + the test set' if a.decode == 'every-epoch' else 'each image once'}"
                     ", MVTec AD as 1024 px PNG, BTAD at its own sizes) and the accuracy metrics over the test "
                     "set's pixels, at this CPU's measured rates, unscaled on GPU nodes.")
    else:
        lines.append("- Host work (decoding images, metrics) is not included: pass --io from `measure-io`.")
    peak = (f"{a.cpu_peak_gflops:.1f} GFLOP/s, the {cpu_peak} of the {len(costs)} runs' calibrations"
            if a.cpu_peak_gflops is not None else
            "each run's own calibration, GFLOP/s: " + ", ".join(f"{c.model} {c.cpu_peak_gflops:.1f}" for c in costs))
    lines.append(f"- GPU columns are DERIVED, not measured: GPU time = CPU time x measured CPU fp32 matmul peak "
                 f"({peak}) / ({a.gpu_peak_tflops:g} TFLOP/s x efficiency), efficiency in "
                 f"{{{', '.join(f'{e:g}' for e in efficiencies)}}}; at least {a.min_gpu_step_ms:g} ms per training "
                 f"step and {a.min_gpu_eval_ms:g} ms per evaluation batch (Python and kernel-launch overhead, "
                 "assumed).")
    return "\n".join(textwrap.fill(line, width=115, subsequent_indent="  ", break_on_hyphens=False) for line in lines)


def table_main(args: argparse.Namespace) -> int:
    costs, notes = read_model_costs(args.runs, args.statistic)
    if not costs:
        raise SystemExit("no usable profile records (suite profile, variant torch-fp32, status ok) in the runs given")
    io = json.loads(Path(args.io).read_text()) if args.io else {}
    peaks = [c.cpu_peak_gflops for c in costs]
    session_peak = {"max": max(peaks), "median": _median(peaks), "own": None}[args.cpu_peak]
    a = Assumptions(gpu_peak_tflops=args.gpu_peak_tflops, min_gpu_step_ms=args.min_gpu_step_ms,
                    profile_fixed_seconds=args.profile_fixed_seconds, decode=args.decode, io=io,
                    cpu_peak_gflops=session_peak)
    by_model = {c.model: c for c in costs}
    plan = paper_plan(registry_order(list(by_model)))
    out = [f"## Measured on this CPU ({len(costs)} models; {statistic_words(args.statistic)})", "",
           measured_table(costs), ""]
    out += [f"- {n}" for n in notes] + ([""] if notes else [])
    out += ["## Steps per job (the same for every model)", "", steps_table(a), "",
            "## Derived GPU training steps (not measured)", "", gpu_step_table(costs, a, args.efficiency), "",
            "## The paper matrix per model", "", cost_table(costs, a, args.efficiency), "",
            assumptions_text(a, costs, args.statistic, args.efficiency, args.cpu_peak), "",
            f"## Makespan ({len(plan)} jobs; {args.per_node} per node, {args.timing_slots} timing slot(s) per node)",
            "", "On the measuring CPU's cores (from the core-hours above):", "",
            makespan_table(plan, by_model, a, args.gpus, args.per_node, args.timing_slots, None), ""]
    for e in args.efficiency:
        out += [f"On H200 GPUs, DERIVED with efficiency {e:g}:", "",
                makespan_table(plan, by_model, a, args.gpus, args.per_node, args.timing_slots, e), ""]
    if args.jobs:
        out += ["## Every job", "", job_list(plan, by_model, a, args.efficiency), ""]
    print("\n".join(out).rstrip())
    return 0


def statistic_words(statistic: str) -> str:
    return "priced at the p50 of each probe's samples" if statistic == "p50" else \
        "priced at the fastest sample of each probe"


# -- host-side measurements --------------------------------------------------------------------------------
def _time(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls."""
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def _stand_in_image(path: Path, width: int, height: int, mode: str) -> None:
    """A photo-like image (smooth shading + sensor noise) of the given size: what the loader decodes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 128 + 60 * np.sin(x / 97.0) * np.cos(y / 61.0)
    channels = 1 if mode == "L" else 3
    pixels = base[..., None] + rng.normal(0, 6, size=(height, width, channels))
    array = np.clip(pixels, 0, 255).astype(np.uint8)
    Image.fromarray(array[..., 0] if channels == 1 else array, mode=mode).save(path)


def measure_decode(workdir: Path, repeats: int, size: int = 256) -> dict:
    """ms to read one image with the project's loader (decode + convert + bilinear resize to `size`)."""
    from datasets.common import load_image

    shapes = {"png_rgb_1024": (1024, 1024, "RGB", "png"), "png_grey_1024": (1024, 1024, "L", "png"),
              "png_rgb_600": (600, 600, "RGB", "png"), "bmp_rgb_1600": (1600, 1600, "RGB", "bmp"),
              "bmp_rgb_800x600": (800, 600, "RGB", "bmp")}
    out, sizes = {}, {}
    for name, (w, h, mode, ext) in shapes.items():
        path = workdir / f"{name}.{ext}"
        _stand_in_image(path, w, h, mode)
        load_image(path, size)
        out[name] = _time(lambda: load_image(path, size), repeats) * 1e3
        sizes[name] = path.stat().st_size
    return {"decode_ms": out, "decode_file_bytes": sizes, "decode_resize_to": size}


def measure_metrics(repeats: int, n_test: int = 83, size: int = 256) -> dict:
    """Seconds per megapixel of test maps for bench.metrics.compute_all (image + pixel metrics + AUPRO)."""
    import numpy as np

    from bench.metrics import compute_all

    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(n_test // 4, int), np.ones(n_test - n_test // 4, int)]
    masks = np.zeros((n_test, size, size), np.uint8)
    for i in np.flatnonzero(labels):  # one rectangular defect per defective image
        r, c = rng.integers(0, size - 40, 2)
        masks[i, r:r + rng.integers(8, 40), c:c + rng.integers(8, 40)] = 1
    maps = (rng.random((n_test, size, size)) + masks * 0.5).astype(np.float32)
    scores = maps.reshape(n_test, -1).max(1)
    seconds = _time(lambda: compute_all(labels, scores, masks, maps), repeats)
    return {"metrics_seconds": seconds, "metrics_images": n_test, "metrics_size": size,
            "metrics_s_per_megapixel": seconds / (n_test * size * size / 1e6)}


def synthetic_matrix(profile: list[dict], accuracy: dict, models: list[str]) -> list[dict]:
    """The paper matrix's records, made from real records: a profile record per model, and per (model, category)
    the accuracy template with that category's test-set length of scores and labels."""
    records = []
    by_model = {r["model"]: r for r in profile}
    for model in models:
        records.append(dict(by_model.get(model, profile[0]), model=model))
    for model in models:
        for dataset, cats in PAPER_DATASETS.items():
            for cat, (n_train, n_test) in sorted(cats.items()):
                record = dict(accuracy, model=model, dataset=dataset, category=cat, n_train=n_train, n_test=n_test,
                              job_id=f"accuracy__{model}__{dataset}__{cat}__x", status="ok")
                record["scores"] = [round(0.1234567 + i * 1e-3, 7) for i in range(n_test)]
                record["labels"] = [int(i % 3 != 0) for i in range(n_test)]
                records.append(record)
    return records


def measure_results_writing(profile: list[dict], accuracy: dict, repeats: int, workdir: Path) -> dict:
    """results.json/.csv for the whole paper matrix: their size, one rewrite's time, and what rewriting them after
    every job costs over the run (a rewrite after job k writes k jobs' records: the sum over k)."""
    from bench.aggregate import mean_rows
    from bench.run_folder import write_job, write_results

    models = sorted({r["model"] for r in profile}) or ["model"]
    while len(models) < 11:  # the paper's 11 models, whatever was measured
        models.append(f"{models[len(models) % max(1, len(profile))]}_{len(models)}")
    records = synthetic_matrix(profile, accuracy, models)
    provenance = {"note": "synthetic paper matrix for scripts/scaling.py measure-io"}
    full = records + mean_rows(records)
    run = workdir / "matrix"
    write_results(run, full, provenance)
    # what the runner does after every job: the mean rows over everything so far, then both files rewritten
    one = _time(lambda: write_results(run, records + mean_rows(records), provenance), repeats)
    means_only = _time(lambda: mean_rows(records), repeats)
    half = records[: len(records) // 2]
    half_time = _time(lambda: write_results(run, half + mean_rows(half), provenance), repeats)
    job = _time(lambda: write_job(run, "accuracy__x", {"kind": "accuracy"}, [records[-1]], provenance, True), repeats)
    jobs = len(models) * (1 + sum(len(c) for c in PAPER_DATASETS.values()))
    return {"matrix_records": len(full), "matrix_jobs": jobs,
            "results_json_bytes": (run / "results.json").stat().st_size,
            "results_csv_bytes": (run / "results.csv").stat().st_size, "rewrite_seconds_full": one,
            "mean_rows_seconds_full": means_only,
            "rewrite_seconds_half": half_time, "job_file_write_seconds": job,
            # linear in the records written so far: sum over k of (k / K) x the full rewrite
            "rewrite_seconds_over_run": one * (jobs + 1) / 2,
            "rewrite_bytes_over_run": (run / "results.json").stat().st_size * (jobs + 1) / 2}


def measure_io_main(args: argparse.Namespace) -> int:
    import tempfile

    profile = [r for path in args.records for r in _records_of(path)
               if r.get("suite") == "profile" and r.get("status") == "ok"]
    accuracy = [r for r in _records_of(args.accuracy_template) if r.get("suite") == "accuracy"
                and r.get("category") != "mean" and r.get("status") == "ok"]
    if not profile or not accuracy:
        raise SystemExit("measure-io needs profile records (--records) and an accuracy record (--accuracy-template)")
    job_files = [p for path in args.records for p in sorted((Path(path) / "records").glob("*.json"))]
    template_files = sorted((Path(args.accuracy_template) / "records").glob("*.json"))
    out = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load_average": _load_average(),
           "profile_job_file_bytes": {p.stem: p.stat().st_size for p in job_files},
           "accuracy_job_file_bytes": {p.stem: p.stat().st_size for p in template_files},
           "accuracy_template_n_test": accuracy[0].get("n_test")}
    with tempfile.TemporaryDirectory(prefix="scaling-io-") as tmp:
        out.update(measure_results_writing(profile, accuracy[0], args.repeats, Path(tmp)))
        out.update(measure_decode(Path(tmp), args.repeats))
    out.update(measure_metrics(args.repeats))
    out["load_average_after"] = _load_average()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, sort_keys=True))
    print(json.dumps(out, indent=1, sort_keys=True))
    return 0


def _load_average() -> list[float]:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


# -- command line ---------------------------------------------------------------------------------------
def _numbers(text: str, cast, what: str) -> list:
    try:
        values = [cast(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: {text!r} is not a comma-separated list of numbers") from None
    if not values or any(not (v > 0) or (isinstance(v, float) and not math.isfinite(v)) for v in values):
        raise argparse.ArgumentTypeError(f"{what}: every value must be a positive number, got {text!r}")
    return values


def _positive(cast, what: str):
    def parse(text: str):
        return _numbers(text, cast, what)[0]
    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scaling.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    table = sub.add_parser("table", help="cost and makespan tables from profile records")
    table.add_argument("runs", nargs="+", type=Path, help="run folders (or results.json files) of profile runs")
    table.add_argument("--gpus", type=lambda t: _numbers(t, int, "--gpus"), default=[1, 8, 64],
                       help="worker counts to simulate (default 1,8,64)")
    table.add_argument("--efficiency", type=lambda t: _numbers(t, float, "--efficiency"), default=[0.25],
                       help="GPU efficiency relative to the CPU's use of its peak; a list prints one column each")
    table.add_argument("--gpu-peak-tflops", type=_positive(float, "--gpu-peak-tflops"), default=H200_FP32_TFLOPS,
                       help=f"the GPU's published dense peak (H200 SXM: FP32 {H200_FP32_TFLOPS}, "
                            f"TF32 tensor {H200_TF32_DENSE_TFLOPS})")
    table.add_argument("--per-node", type=_positive(int, "--per-node"), default=8, help="GPUs per node (default 8)")
    table.add_argument("--timing-slots", type=_positive(int, "--timing-slots"), default=1,
                       help="timing slots per node (default 1)")
    table.add_argument("--cpu-peak", choices=("max", "median", "own"), default="max",
                       help="CPU matmul peak for the GPU derivation: the highest calibration over the runs (default: "
                            "a loaded machine only lowers it, so this is the closest to the quiet CPU and pairs with "
                            "--statistic min), their median, or each run's own")
    table.add_argument("--statistic", choices=("min", "p50"), default="min",
                       help="per-step time: the fastest of the probe's samples (default: on a shared machine the "
                            "stable one), or their median")
    table.add_argument("--min-gpu-step-ms", type=_positive(float, "--min-gpu-step-ms"), default=5.0)
    table.add_argument("--profile-fixed-seconds", type=_positive(float, "--profile-fixed-seconds"), default=120.0)
    table.add_argument("--io", type=Path, help="measure-io's output: adds decoding and metrics to every job")
    table.add_argument("--decode", choices=("every-epoch", "once"), default="every-epoch",
                       help="with --io: the loader decodes every image every epoch (today) or once")
    table.add_argument("--jobs", action="store_true", help="also list every job's price")
    io = sub.add_parser("measure-io", help="measure record sizes, result writing, image decoding, metrics")
    io.add_argument("--records", nargs="+", type=Path, required=True, help="profile run folders")
    io.add_argument("--accuracy-template", type=Path, required=True, help="a run folder with an accuracy record")
    io.add_argument("--out", type=Path, required=True)
    io.add_argument("--repeats", type=_positive(int, "--repeats"), default=5)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    for path in getattr(args, "runs", []) + getattr(args, "records", []):
        if not path.exists():
            print(f"scaling.py: {path}: no such run folder or file", file=sys.stderr)
            return 2
    if args.command == "table" and args.io and not args.io.is_file():
        print(f"scaling.py: --io {args.io}: no such file", file=sys.stderr)
        return 2
    from bench.schema import ResultsError

    try:
        return table_main(args) if args.command == "table" else measure_io_main(args)
    except ResultsError as exc:
        print(f"scaling.py: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
