"""Does `bench compare` flag a model made 30% slower, and leave one made 2% slower alone, when both sides are
measured as a run measures them (separate processes, `bench.measure.measure_latency`, the reference workload
between the calls) on this shared machine? (A benchmark script, not a unit test.)

The model is a test double: 50 identical convolution blocks; its slowed versions repeat the first 15 blocks
(+30% work) or the first one (+2%) at the end of their forward pass.

    python tests/benchmarks/sensitivity.py --out runs/sensitivity --base-repeats 5 --trials 5

Per trial, one process each for the +30%, +2% and unchanged double; each is compared with the BASE repeats
(the gate's design) and with the first BASE run alone (one run against one run).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # this checkout's bench, not an installed one
BLOCKS = 50
EXTRA = {"base": 0, "slower-2pct": 1, "slower-30pct": 15}


def measure(out: Path, extra: int, min_iters: int) -> None:
    """In this process: time the double with `extra` repeated blocks; write a schema-2 run into `out`."""
    import torch
    from torch import nn

    from bench import provenance
    from bench.measure import ProbeSettings, measure_latency

    torch.set_num_threads(1)

    class Blocks(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU()) for _ in range(BLOCKS))

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            for block in self.blocks[:extra]:  # the slowed double: part of the forward pass again
                x = block(x)
            return x

    model, x = Blocks().eval(), torch.rand(1, 16, 32, 32)
    settings = ProbeSettings(threads=1, warmup=3, min_iters=min_iters, max_iters=200, min_seconds=0.5,
                             max_seconds=30.0)
    with torch.inference_mode():
        record = measure_latency(lambda: model(x), settings)
    record.update(suite="profile", model="blocks-double", variant="torch-fp32", device="cpu", image_size=32,
                  batch_size=1, threads=1, seed=0, status="ok", error="", params=sum(p.numel() for p in model.parameters()))
    prov = provenance.collect(torch.device("cpu"), 1, 0, sys.argv)
    prov["git_sha"] = "sensitivity-double"  # every process runs the same code; only `extra` differs
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"schema": 2, "provenance": prov, "records": [record]}))


def spawn(out: Path, extra: int, min_iters: int) -> None:
    subprocess.run([sys.executable, __file__, "--measure", str(out), "--extra", str(extra), "--min-iters",
                    str(min_iters)], check=True, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/sensitivity")
    parser.add_argument("--base-repeats", type=int, default=5)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--min-iters", type=int, default=15)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--extra", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(Path(args.measure), args.extra, args.min_iters)
        return
    from bench.compare import compare_runs

    out = Path(args.out)
    for i in range(1, args.base_repeats + 1):
        if not (out / "base" / f"r{i}" / "results.json").is_file():
            spawn(out / "base" / f"r{i}", 0, args.min_iters)
    counts = {(name, rule): 0 for name in EXTRA for rule in ("repeats", "single")}
    for t in range(1, args.trials + 1):
        for name, extra in EXTRA.items():
            target = out / f"trial{t}" / name
            if not (target / "results.json").is_file():
                spawn(target, extra, args.min_iters)
            for rule, base in (("repeats", out / "base"), ("single", out / "base" / "r1")):
                result = compare_runs(base, target)
                row = result.rows[result.rows["check"] == "latency"].iloc[0]
                counts[(name, rule)] += int(result.exit_code == 1)
                print(f"trial {t} {name:>12} vs {rule:>7}: exit {result.exit_code}, {row['verdict']}, "
                      f"change {row['change']:+.1%}; {row['note'].split(';')[0]}", flush=True)
    print(json.dumps({f"{name} flagged ({rule})": f"{n}/{args.trials}" for (name, rule), n in counts.items()},
                     indent=1))


if __name__ == "__main__":
    main()
