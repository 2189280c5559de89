"""How often does `bench compare` call the same code a regression on this machine? (The acceptance measurement
of issue 10; a benchmark script, not a unit test.)

Runs the quick suite N times, one process after the other, then compares run 1 with run 2, 3 with 4, ...
(the same code measured twice: every "regression" is a false alarm) with `bench compare`'s rule, and with
the naive rule (Mann-Whitney U + median change on the raw wall-clock samples) on the same pairs.

    python tests/benchmarks/false_alarms.py run --runs 40 --models unet,pixel_stats --out runs/false-alarms
    python tests/benchmarks/false_alarms.py analyse runs/false-alarms               # pairs 1-2, 3-4, ...
    python tests/benchmarks/false_alarms.py analyse runs/false-alarms --repeats 5   # runs 1-5 as BASE repeats

`--min-iters` raises the quick suite's minimum number of timed calls (3; and its 2 s cap to 30 s) for this
measurement only, so that the rank test has enough samples to call anything at all (with 3 against 3
samples the smallest attainable p-value is 0.1, and nothing is ever significant at alpha 0.01).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # this checkout's bench, not an installed one
RUNNER = ("import sys, bench.config as r; "
          "r.SUITE_PROBE_SETTINGS['quick'].update(min_iters=int(sys.argv.pop(1)), max_seconds=30.0); "
          "from bench.cli import app; app()")


def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DEFECTBENCH_CACHE=os.environ.get("DEFECTBENCH_CACHE", str(ROOT / ".cache")))
    for i in range(args.first, args.first + args.runs):
        target = out / f"run{i:02d}"
        if (target / "results.json").is_file():
            continue
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", RUNNER, str(args.min_iters), "run", "--suite", "quick", "--models",
                        args.models, "--threads", str(args.threads), "--out", str(target)], cwd=ROOT, env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        load = os.getloadavg()[0]
        print(f"run {i}: {time.perf_counter() - t0:.0f} s, load average {load:.1f}", flush=True)


def naive_regressions(base: Path, new: Path, alpha: float, effect: float) -> int:
    """The rule on the raw samples: Mann-Whitney U p < alpha and a median change above `effect`."""
    import numpy as np

    from bench import stats
    from bench.compare.load import load_run

    a, b = load_run(base).by_key(), load_run(new).by_key()
    count = 0
    for key in a.keys() & b.keys():
        sa, sb = a[key].get("latency_samples_ms"), b[key].get("latency_samples_ms")
        if not sa or not sb or stats.smallest_attainable_p(len(sa), len(sb)) >= alpha:
            continue
        change = float(np.median(sb)) / float(np.median(sa)) - 1
        if stats.mann_whitney_u(sa, sb).p_value < alpha and change > effect:
            count += 1
    return count


def adjust(run, args):
    """--without-reference: drop the CPU and reference samples, so that the same code judges the raw samples."""
    if args.without_reference:
        for record in run.records:
            for key in [k for k in record if k.startswith("reference") or k == "latency_cpu_samples_ms"]:
                del record[key]
    return run


def slowed(run, args):
    """--slowdown F: NEW's model times (wall and CPU, not the reference's) times F: a model F times slower,
    measured with this machine's real noise."""
    run = adjust(run, args)
    for record in run.records:
        for key in ("latency_samples_ms", "latency_cpu_samples_ms"):
            if isinstance(record.get(key), list):
                record[key] = [v * args.slowdown for v in record[key]]
    return run


def analyse(args: argparse.Namespace) -> None:
    """Pairs 1-2, 3-4, ... (one run against one run); with --repeats K, also the first K runs as BASE repeats
    against each later run, as `make regress` compares a run with the committed baseline."""
    from bench.compare import compare_runs, load_run

    runs = sorted(p for p in Path(args.dir).glob("run*") if (p / "results.json").is_file())[:args.limit]
    loaded = {r: adjust(load_run(r), args) for r in runs}
    comparisons = [(base, new) for base, new in zip(runs[0::2], runs[1::2])]
    if args.repeats:
        comparisons = [(runs[:args.repeats], new) for new in runs[args.repeats:]]
    ours = naive = judged = rows = flagged = 0
    by_job: dict[str, int] = {}
    for base, new in comparisons:
        # Loaded runs, not a folder of repeats: the worktree's commit moved while these runs were made (the
        # measuring code did not), and a folder of repeats must carry one commit.
        base_runs = [loaded[b] for b in base] if isinstance(base, list) else [loaded[base]]
        result = compare_runs(base_runs, slowed(load_run(new), args), latency_effect=args.effect, alpha=args.alpha)
        latency = result.rows[result.rows["check"] == "latency"]
        rows += len(latency)
        judged += int((latency["p_value"].notna()).sum())
        flagged += int((latency["verdict"] == "regression").sum())
        for job, verdict in zip(latency["job"], latency["verdict"]):
            by_job[job] = by_job.get(job, 0) + int(verdict == "regression")
        first = runs[0] if args.repeats else base
        if args.slowdown != 1.0 or args.without_reference:
            bad = -1  # the naive rule is reported on the runs as measured only
        else:
            bad = naive_regressions(first, new, args.alpha, args.effect)
        ours += int(result.exit_code != 0)
        naive += int(bad != 0)
        worst = latency.loc[latency["change"].abs().idxmax()] if len(latency) else None
        label = f"runs 1-{args.repeats} (repeats)" if args.repeats else base.name
        print(f"{label} vs {new.name}: bench compare exit {result.exit_code}; naive rule ({first.name} vs {new.name}) "
              f"flags {bad} row(s)" + (f"; largest change {worst['change']:+.1%} ({worst['job']})" if worst is not None else ""))
    print(json.dumps({"comparisons": len(comparisons), "bench_compare_exit_0": len(comparisons) - ours,
                      "slowdown": args.slowdown, "without_reference": args.without_reference,
                      "naive_rule_no_flag": len(comparisons) - naive, "latency_rows": rows,
                      "latency_rows_judged": judged, "latency_rows_flagged": flagged, "flagged_by_job": by_job, "effect": args.effect, "alpha": args.alpha,
                      "base_repeats": args.repeats or 1}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--runs", type=int, default=40)
    r.add_argument("--first", type=int, default=1)
    r.add_argument("--models", default="unet,pixel_stats")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--min-iters", type=int, default=15)
    r.add_argument("--out", default="runs/false-alarms")
    a = sub.add_parser("analyse")
    a.add_argument("dir")
    a.add_argument("--effect", type=float, default=0.10)
    a.add_argument("--alpha", type=float, default=0.01)
    a.add_argument("--repeats", type=int, default=0, help="the first K runs as BASE repeats against each later run")
    a.add_argument("--limit", type=int, default=None, help="use the first N runs only")
    a.add_argument("--slowdown", type=float, default=1.0, help="make NEW's model this much slower (sensitivity)")
    a.add_argument("--without-reference", action="store_true", help="judge the raw samples (ablation)")
    args = parser.parse_args()
    run(args) if args.command == "run" else analyse(args)


if __name__ == "__main__":
    main()
