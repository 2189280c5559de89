"""One-off check of bench.pipeline.stage_latency against a plain loop timed by torch.utils.benchmark (issue 24):
the same pipeline (same frames, cycled; same prepared variant), our per-stage clock's total p50 against the Timer's
median per call. Prints one line per model x variant and, with --table, the stage breakdown.

    .venv/bin/python tests/benchmarks/pipeline_vs_timer.py --models pixel_stats,unet --variants torch-fp32,ort-fp32
"""
import argparse
import itertools
import json

import torch
import torch.utils.benchmark as benchmark

from bench.line import build_detector
from bench.pipeline import STAGES, PipelineSettings, frames_for, open_pipeline, stage_record, time_stages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="pixel_stats,unet")
    parser.add_argument("--variants", default="torch-fp32,ort-fp32")
    parser.add_argument("--camera-size", default="1024x1024")
    parser.add_argument("--encoding", default="png")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--no-timer", action="store_true", help="the stage breakdown only")
    parser.add_argument("--json", default="", help="append each record (samples dropped) to this JSON-lines file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for model in args.models.split(","):
        for variant in args.variants.split(","):
            settings = PipelineSettings(camera_size=args.camera_size, encoding=args.encoding, variant=variant,
                                        min_seconds=args.seconds, min_iters=10)
            try:
                with open_pipeline(build_detector(model), settings) as pipeline:
                    record = stage_record(pipeline, time_stages(pipeline))
                    timer_ms = None
                    if not args.no_timer:
                        frames = itertools.cycle(frames_for(settings))
                        timer = benchmark.Timer(stmt="pipeline.process([next(frames)])",
                                                globals={"pipeline": pipeline, "frames": frames}, num_threads=1)
                        timer_ms = timer.blocked_autorange(min_run_time=args.seconds).median * 1e3
            except Exception as exc:  # one model's failure (an export) does not end the table
                print(f"{model:12s} {variant:10s} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:150]}")
                continue
            ours = record["e2e_total_ms_p50"]
            stages = " ".join(f"{s} {record[f'e2e_{s}_ms_p50']:7.2f}" for s in STAGES)
            check = f" | Timer {timer_ms:7.2f} ms, ours/Timer {ours / timer_ms:.3f}" if timer_ms else ""
            print(f"{model:12s} {variant:10s} total {ours:7.2f} ms = {stages} | outside network "
                  f"{record['e2e_outside_network_share']:.0%}{check}", flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    kept = {k: v for k, v in record.items() if not isinstance(v, list)}
                    f.write(json.dumps({"model": model, "timer_ms": timer_ms, **kept}) + "\n")


if __name__ == "__main__":
    main()
