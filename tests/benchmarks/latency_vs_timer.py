"""Does the torch-fp32 variant's latency (as a profile run records it) agree with torch.utils.benchmark.Timer?
(A benchmark, not a unit test.)

Measures the same model, input and thread count in one process with both, alternating A B A B so that slow
drift of a shared machine hits both alike, and prints the medians and their relative difference.

    .venv/bin/python tests/benchmarks/latency_vs_timer.py --model unet --image-size 256 --batch-size 1
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from torch.utils import benchmark

from bench.measure import ProbeSettings
from bench.variants import profile_variants
from models import create_detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="timing per method per round")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    module = create_detector(args.model, image_size=args.image_size).inference_module().eval()
    x = torch.rand(args.batch_size, 3, args.image_size, args.image_size)
    settings = ProbeSettings(threads=args.threads, warmup=10, min_iters=30, max_iters=10_000,
                             min_seconds=args.seconds, max_seconds=args.seconds * 2, throughput_batch=args.batch_size)
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(profile_variants(module, x, ["torch-fp32"], settings)[0]["latency_ms_p50"])
        timer = benchmark.Timer(stmt="with torch.inference_mode(): module(x)", globals={"module": module, "x": x, "torch": torch},
                                num_threads=args.threads)
        theirs.append(timer.blocked_autorange(min_run_time=args.seconds).median * 1e3)
    a, b = float(np.median(ours)), float(np.median(theirs))
    print(json.dumps({"model": args.model, "image_size": args.image_size, "batch_size": args.batch_size,
                      "threads": args.threads, "probe_p50_ms": ours, "timer_median_ms": theirs,
                      "probe_ms": a, "timer_ms": b, "relative_difference": (a - b) / b}, indent=1))


if __name__ == "__main__":
    main()
