"""Which reference workload tracks this machine's drift? (An experiment, not a unit test.)

In one process, times each model's forward call interleaved with several candidate reference workloads
(model, ref1, ref2, ..., model, ref1, ...), and prints every sample as one JSON line. Run it many times as
separate processes (drift happens between runs) and analyse with `--analyse FILE`:

    for i in $(seq 20); do .venv/bin/python tests/benchmarks/reference_drift.py --models unet,pixel_stats >> drift.jsonl; sleep 20; done
    .venv/bin/python tests/benchmarks/reference_drift.py --analyse drift.jsonl

The analysis compares, over every pair of runs, the change of the model's median raw and after dividing by
each candidate's median (or sample by sample by the adjacent candidate call): the candidate whose
normalised change stays smallest is the one that cancels the drift.
"""
from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
import torch
from torch import nn


def candidates() -> dict:
    torch.manual_seed(0)
    a, b = torch.rand(192, 192), torch.rand(192, 192)
    conv = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU()).eval()
    x = torch.rand(1, 3, 64, 64)
    big_a, big_b = torch.rand(1 << 20), torch.rand(1 << 20)
    return {
        "matmul": lambda: [torch.mm(a, b) for _ in range(4)],
        "conv": lambda: conv(x),
        "memory": lambda: [torch.add(big_a, big_b) for _ in range(4)],
    }


def timed(fn, reps: int = 1) -> tuple[float, float]:
    """Wall-clock and this thread's CPU time of `reps` calls, in ms per call."""
    w0, c0 = time.perf_counter(), time.thread_time()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - w0) * 1e3 / reps, (time.thread_time() - c0) * 1e3 / reps


def run(models: list[str], size: int, batch: int, iters: int, threads: int) -> None:
    from models import create_detector

    torch.set_num_threads(threads)
    refs = candidates()
    for name in models:
        torch.manual_seed(0)
        module = create_detector(name, image_size=size).inference_module().eval()
        x = torch.rand(batch, 3, size, size)
        keys = ["samples"] + list(refs) + ["conv-long"]
        out = {"model": name, "t": time.time(), **{k: [] for k in keys}, **{f"cpu:{k}": [] for k in keys}}
        with torch.inference_mode():
            for _ in range(3):
                model_ms, _ = timed(lambda: module(x))
                for fn in refs.values():
                    fn()
            # a reference repeated to take about half the model's time, recorded per repetition
            long_reps = max(1, round(0.5 * model_ms / timed(refs["conv"])[0]))
            out["conv_long_reps"] = long_reps
            for _ in range(iters):
                for key, fn, reps in [("samples", lambda: module(x), 1), *[(k, f, 1) for k, f in refs.items()],
                                      ("conv-long", refs["conv"], long_reps)]:
                    wall, cpu = timed(fn, reps)
                    out[key].append(wall)
                    out[f"cpu:{key}"].append(cpu)
        print(json.dumps(out), flush=True)


def analyse(path: str, effect: float) -> None:
    from scipy.stats import mannwhitneyu

    runs = [json.loads(line) for line in open(path) if line.strip()]
    for model in sorted({r["model"] for r in runs}):
        mine = [r for r in runs if r["model"] == model]
        print(f"\n{model}: {len(mine)} runs, raw medians (ms): "
              + " ".join(f"{np.median(r['samples']):.2f}" for r in mine))
        refs = [k for k in mine[0] if isinstance(mine[0][k], list) and k != "samples" and not k.startswith("cpu:")]
        for ref in refs:
            print(f"  {ref:>9} medians (ms): " + " ".join(f"{np.median(r[ref]):.3f}" for r in mine))
        print("  cpu/wall of the model: " + " ".join(f"{np.median(r['cpu:samples']) / np.median(r['samples']):.2f}" for r in mine))
        rules = {"raw": lambda r: np.asarray(r["samples"]), "cpu": lambda r: np.asarray(r["cpu:samples"])}
        for ref in refs:
            rules[f"/{ref} median"] = lambda r, k=ref: np.asarray(r["samples"]) / np.median(r[k])
            rules[f"/{ref} paired"] = lambda r, k=ref: np.asarray(r["samples"]) / np.asarray(r[k])
            rules[f"cpu/{ref} cpu median"] = lambda r, k=ref: np.asarray(r["cpu:samples"]) / np.median(r[f"cpu:{k}"])
        for label, values in rules.items():
            changes, alarms, pairs = [], 0, 0
            for a, b in itertools.combinations(mine, 2):
                va, vb = values(a), values(b)
                change = np.median(vb) / np.median(va) - 1
                changes.append(abs(change))
                p = mannwhitneyu(va, vb, alternative="two-sided").pvalue
                alarms += int(p < 0.01 and abs(change) > effect)
                pairs += 1
            c = np.asarray(changes)
            print(f"  {label:>22}: |median change| p50 {np.median(c):.3f} p90 {np.percentile(c, 90):.3f} "
                  f"max {c.max():.3f}; flagged {alarms}/{pairs} pairs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="unet,pixel_stats")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--analyse", help="a JSON-lines file written by earlier runs")
    parser.add_argument("--effect", type=float, default=0.10)
    args = parser.parse_args()
    if args.analyse:
        analyse(args.analyse, args.effect)
    else:
        run(args.models.split(","), args.image_size, args.batch_size, args.iters, args.threads)


if __name__ == "__main__":
    main()
