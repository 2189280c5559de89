"""`bench line --model M [--variant V] [--rate HZ | search]`: the line scenario (bench/line.py) from the command line.

Every option is checked before any work; bad input is one line naming the option and exit status 2. The table
printed is one row per trial; `--out DIR` writes DIR/line.json (provenance and every record, raw latency
samples included; non-finite numbers as null) and DIR/line.csv (scalar columns).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from bench.validate import parse_model_args

SHOWN = ("policy", "kind", "rate_factor", "rate_hz", "throughput_ips", "line_latency_ms_p50", "line_latency_ms_p99",
         "line_latency_ms_p999", "deadline_miss_rate", "queue_len_mean", "queue_len_max", "batch_size_mean", "passed")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def write_line_results(out: Path, frame, provenance: dict) -> None:
    from bench.run_folder import write_json

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "line.json", {"kind": "line", "provenance": provenance,
                                   "records": frame.to_dict(orient="records")})
    scalar = [c for c in frame.columns if not frame[c].map(lambda v: isinstance(v, (list, tuple, dict))).any()]
    frame[scalar].to_csv(out / "line.csv", index=False)


def line_cmd(
    model: str = typer.Option(..., "--model", help="a registered model (see `bench list models`)"),
    variant: str = typer.Option("torch-fp32", "--variant", help="deployment variant (see `bench list variants`)"),
    rate: str = typer.Option("search", "--rate", help="arrival rate in Hz, or 'search' for the sustainable rate"),
    arrivals: str = typer.Option("periodic", "--arrivals", help="periodic (camera trigger) | poisson"),
    deadline_ms: float = typer.Option(100.0, "--deadline-ms", help="per-part deadline, arrival to decision"),
    batch: int = typer.Option(1, "--batch", help="1, or the largest dynamic batch B"),
    max_wait_ms: float = typer.Option(0.0, "--max-wait-ms", help="dynamic batching: wait at most this long for B parts"),
    seconds: float = typer.Option(5.0, "--seconds", help="each trial's arrivals span this long"),
    max_trials: int = typer.Option(12, "--max-trials", help="the search's cap on trials (the check trials come after)"),
    camera_size: str = typer.Option("1024x1024", "--camera-size", help="WIDTHxHEIGHT of the encoded frames"),
    encoding: str = typer.Option("png", "--encoding", help="png | jpeg"),
    decoder: str = typer.Option("pillow", "--decoder", help="pillow | torchvision (decode and resize)"),
    size: Optional[int] = typer.Option(None, "--size", help="the model's input side (default: the model's own)"),
    threshold: float = typer.Option(0.0, "--threshold", help="decision: score > threshold"),
    threads: int = typer.Option(1, "--threads", help="torch and ONNX Runtime intra-op threads"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda"),
    seed: int = typer.Option(0, "--seed", help="weights, frames and Poisson arrivals"),
    model_arg: Optional[list[str]] = typer.Option(None, "--model-arg", help="KEY=VALUE for the model's builder; repeatable"),
    plugin: Optional[list[Path]] = typer.Option(None, "--plugin", "--plugins", help="a plugin file registering models; repeatable"),
    out: Optional[Path] = typer.Option(None, "--out", help="write line.json and line.csv into this folder"),
) -> None:
    """Serve a camera line with one model's end-to-end pipeline: at a given rate, or search for the highest rate
    whose p99 latency stays within the deadline (then trials at 0.8x, 1x and 1.2x of it)."""
    import torch

    from bench.line import BatchPolicy, LineSettings, line_scenario
    from bench.pipeline import PipelineSettings
    from bench.plugins import PluginError, load_plugins
    from bench.variants import VARIANTS

    # -- every option checked before any work
    try:
        rate_hz = None
        if rate != "search":
            try:
                rate_hz = float(rate)
            except ValueError:
                raise ValueError(f"--rate must be a number of Hz or 'search'; got {rate!r}") from None
            if not (rate_hz > 0 and math.isfinite(rate_hz)):
                raise ValueError(f"--rate must be a finite number > 0; got {rate}")
        policy = BatchPolicy(batch, max_wait_ms)
        line = LineSettings(deadline_ms=deadline_ms, arrivals=arrivals, seconds=seconds, max_trials=max_trials, seed=seed)
        pipeline = PipelineSettings(camera_size=camera_size, encoding=encoding, decoder=decoder, threshold=threshold,
                                    seed=seed, variant=variant, device=device, threads=threads, input_size=size)
        if seed < 0:
            raise ValueError(f"--seed must be >= 0; got {seed}")
        if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
            raise ValueError(f"--device must be cpu or cuda; got {device!r}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is available here")
        if out is not None and out.exists() and not out.is_dir():
            raise ValueError(f"--out {out}: is a file, not a folder")
        if variant not in VARIANTS:
            raise ValueError(f"--variant: unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
        if VARIANTS[variant].cuda_only and not device.startswith("cuda"):
            raise ValueError(f"--variant {variant} runs on CUDA only (this run is on {device})")
        args = parse_model_args(model_arg or [])
        load_plugins(plugin or [])
        from models import get_entry
        from models.registry import detector_arguments

        try:
            get_entry(model)
        except KeyError as exc:
            raise ValueError(f"--model: {exc.args[0]}") from None
        unknown = sorted(set(args) - detector_arguments(model))
        if unknown:
            raise ValueError(f"--model-arg: {model} takes no {', '.join(unknown)}")
    except (ValueError, PluginError) as exc:
        _fail(str(exc))

    torch.set_num_threads(threads)
    typer.echo(f"line: {model} / {variant} / {policy.label}, {arrivals} arrivals, deadline {deadline_ms:g} ms, "
               f"{pipeline.camera_label} {encoding} frames")
    frame = line_scenario(model, variant=variant, policies=[policy], line=line, pipeline_settings=pipeline,
                          rate_hz=rate_hz, size=size, model_args=args, say=typer.echo)
    shown = frame[[c for c in SHOWN if c in frame.columns]]
    typer.echo(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if rate_hz is None:
        found = frame["sustainable_rate_hz"].iloc[0]
        typer.echo(f"sustainable rate: {'none' if found is None or found != found else f'{found:.4g} Hz'}")
        typer.echo(f"search: {frame['search_decision'].iloc[0]}")
    if out is not None:
        from bench.provenance import collect

        provenance = collect(torch.device(device), threads, seed)
        write_line_results(out, frame, provenance)
        typer.echo(f"wrote {out / 'line.json'} and {out / 'line.csv'}")
