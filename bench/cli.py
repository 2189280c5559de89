"""The `bench` command: a thin typer layer over the Python API in `bench.api`.

Exit status: 0 when every job is ok (a `skipped` variant counts as ok), 1 when a job failed (the results are
still written), 2 for bad input (one line naming the option or file; nothing was measured).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Optional

import typer

from bench.cli_ab import ab_cmd
from bench.cli_compare import compare_cmd
from bench.cli_data import data_app
from bench.cli_line import line_cmd
from bench.validate import parse_model_args

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="defectbench: accuracy and cost of anomaly detectors, side by side.")
list_app = typer.Typer(no_args_is_help=True, help="List what the suite knows.")
app.add_typer(list_app, name="list")
app.add_typer(data_app, name="data")
app.command("compare")(compare_cmd)
app.command("ab", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(ab_cmd)
app.command("line")(line_cmd)


def _split(value: Optional[str]) -> Optional[list[str]]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _numbers(option: str, value: Optional[str], cast) -> Optional[list]:
    if not value:
        return None
    out = []
    for part in _split(value) or []:
        try:
            number = cast(part)
        except ValueError:
            raise ValueError(f"{option}: {part!r} is not a {'whole ' if cast is int else ''}number") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError(f"{option}: {part!r} is not a finite number")
        out.append(number)
    return out


def _val_normals(value: Optional[str]):
    """--val-normals N|fraction: '20' -> 20 images, '0.1' -> a tenth, None -> the default (bench.config)."""
    if value is None:
        return None
    text = value.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"--val-normals must be a whole number of images >= 0 or a fraction in (0, 1), "
                         f"got {value!r}") from None
    return number


def fail(exc: Exception | str) -> None:
    """Bad input: one clear line, exit status 2, no traceback."""
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@list_app.command("models")
def list_models_cmd(family: Optional[str] = typer.Option(None, help="segmenter, detector or baseline"),
                    plugin: Optional[list[Path]] = typer.Option(None, help="a plugin file to load first; repeatable")) -> None:
    """Print the model table."""
    from rich.console import Console
    from rich.table import Table

    from bench.plugins import PluginError, load_plugins
    from models import list_models

    try:
        load_plugins([str(p) for p in plugin or []])
    except PluginError as exc:
        fail(exc)
    table = Table("name", "family", "input", "module")
    table.add_column("paper", overflow="ellipsis", no_wrap=True, max_width=70)
    for e in list_models(family):
        table.add_row(e.name, e.family, str(e.input_size), e.module, e.paper)
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@list_app.command("variants")
def list_variants_cmd() -> None:
    """Print the deployment variants `--variants` takes."""
    from bench.variants import VARIANTS

    for spec in VARIANTS.values():
        typer.echo(f"{spec.name:26} {spec.runtime:12} {spec.precision:5} {'CUDA only' if spec.cuda_only else ''}".rstrip())


def run_config(*, suite, models, image_size, batch_size, batch_sizes, variants, device, threads, out, seed, seeds,
               resume, retry_failed, dry_run, executor, job_timeout, job_memory_mb, ray_address, plugin, dataset,
               data_root, categories, epochs, train_minutes, schedule, labelled_defects, folds, weights, vgg_weights,
               model_arg, eval_only, checkpoints, val_normals=None, target_fpr=None, train_batch_size=None,
               test_subset=None, skip_probes=None, argv=None):
    """`bench run`'s options, as typed on the command line, -> a RunConfig (raises ValueError on bad values).
    Also what `bench ab`'s side processes use to read the same options with their own code."""
    from bench import api

    return api.make_config(
        suite, _split(models), image_size=image_size, batch_size=batch_size, device=device, threads=threads,
        out=out, seed=seed, seeds=_numbers("--seeds", seeds, int), resume=resume, retry_failed=retry_failed,
        dry_run=dry_run,
        executor=executor, job_timeout=job_timeout, job_memory_mb=job_memory_mb, ray_address=ray_address,
        plugins=[str(p) for p in plugin or []], variants=_split(variants),
        batch_sizes=_numbers("--batch-sizes", batch_sizes, int), skip_probes=_split(skip_probes) or [], dataset=dataset, data_root=data_root,
        categories=_split(categories), epochs=epochs, train_minutes=_numbers("--train-minutes", train_minutes, float),
        schedule=schedule, labelled_defects=labelled_defects, folds=folds,
        weights=str(weights) if weights else None, vgg_weights=str(vgg_weights) if vgg_weights else None,
        model_args=parse_model_args(model_arg or []), eval_only=eval_only, checkpoints=checkpoints,
        val_normals=_val_normals(val_normals), target_fprs=_numbers("--target-fpr", target_fpr, float),
        train_batch_size=train_batch_size, test_subset=test_subset,
        argv=argv if argv is not None else sys.argv)


@app.command("run")
def run_cmd(
    suite: str = typer.Option("profile", help="profile | quick | accuracy | all | paper | deploy"),
    models: Optional[str] = typer.Option(None, help="comma-separated model names (default: all registered)"),
    image_size: Optional[int] = typer.Option(None, help="square input side (default: 256 profile, 64 quick, 128 accuracy)"),
    batch_size: Optional[int] = typer.Option(None, help="profile batch size (default 8; quick 2; all 1)"),
    batch_sizes: Optional[str] = typer.Option(None, help="a batch sweep, e.g. 1,2,4,8,16,32: one row per batch size"),
    variants: Optional[str] = typer.Option(None, help="deployment variants (default torch-fp32,ort-fp32); `bench list variants`"),
    skip_probes: Optional[str] = typer.Option(None, help="profile probes to leave out, comma-separated: params, size, "
                                              "macs, activation_estimate, train_step, throughput (their columns stay "
                                              "empty)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    threads: Optional[int] = typer.Option(None, help="intra-op threads for PyTorch and ONNX Runtime (default: all cores)"),
    out: Path = typer.Option(Path("runs/latest"), help="run directory"),
    seed: int = typer.Option(0, help="the seed of every job"),
    seeds: Optional[str] = typer.Option(None, help="repeat each accuracy job per training seed, e.g. 0,1,2"),
    resume: bool = typer.Option(False, help="keep the finished jobs already recorded in --out with the same settings"),
    retry_failed: bool = typer.Option(False, help="with --resume: run the jobs that failed before again"),
    dry_run: bool = typer.Option(False, help="print the plan (jobs, what is done, a time estimate) and stop"),
    executor: str = typer.Option("process", help="process (each job in a child process) | inline | ray"),
    job_timeout: Optional[float] = typer.Option(None, help="seconds a job may run before it is killed (default per suite)"),
    job_memory_mb: Optional[float] = typer.Option(None, help="CPU memory a job may add, in MB (process and ray executors)"),
    ray_address: Optional[str] = typer.Option(None, help="an existing Ray cluster's GCS address HOST:6379 (default: $RAY_ADDRESS, else a new local instance); see docs/design/ray.md"),
    plugin: Optional[list[Path]] = typer.Option(None, help="a Python file registering models; repeatable"),
    dataset: str = typer.Option("synthetic", help="synthetic | mvtec | btad | folder"),
    data_root: Optional[Path] = typer.Option(None, help="dataset root (not needed for synthetic)"),
    categories: Optional[str] = typer.Option(None, help="comma-separated categories (default: all)"),
    epochs: Optional[int] = typer.Option(None, help="training epochs (accuracy; caps a --train-minutes budget too)"),
    train_minutes: Optional[str] = typer.Option(None, help="training minutes per category; several (1,3,10) evaluate after each"),
    schedule: Optional[str] = typer.Option(None, help="learning rate: budget (decays to zero at the budget's end) | constant"),
    labelled_defects: Optional[int] = typer.Option(None, help="train on N labelled real defects, k-fold over the test set"),
    folds: int = typer.Option(5, help="folds for --labelled-defects"),
    weights: Optional[Path] = typer.Option(None, help="local torchvision backbone state dict (PIADE: ResNet-50; pyramid_ae: ResNet-18; fcn32, segnet: VGG16)"),
    vgg_weights: Optional[Path] = typer.Option(None, help="local torchvision VGG11 state dict for the perceptual loss"),
    model_arg: Optional[list[str]] = typer.Option(None, help="KEY=VALUE for the builders that take KEY (e.g. n_gaussians=150); repeatable"),
    eval_only: bool = typer.Option(False, help="re-evaluate the checkpoints stored in --out instead of training"),
    checkpoints: Optional[Path] = typer.Option(None, help="--suite deploy: the run whose checkpoints to evaluate"),
    val_normals: Optional[str] = typer.Option(None, help="normal training images held out (not trained on) to set "
                                              "the alarm thresholds: N images, or a fraction such as 0.1 (at least 20 "
                                              "images: the 5% target needs ceil(1/0.05) = 20; 1% needs 100); 0: none. "
                                              "Default 0.1. Nothing is held out when fewer than 8 would be left to "
                                              "train on"),
    target_fpr: Optional[str] = typer.Option(None, help="false-alarm rates to set validation thresholds for, "
                                             "e.g. 0.01,0.05 (the default)"),
    train_batch_size: Optional[int] = typer.Option(None, help="training (and evaluation) batch size (default 8; "
                                                   "--suite paper: the authors', e.g. PIADE 60)"),
    test_subset: Optional[int] = typer.Option(None, help="evaluate only the first N normal and N defective test "
                                              "images per category, as PIADE's authors (N=15); default: all"),
) -> None:
    """Measure the models: cost (profile), accuracy, or both with a report (all)."""
    from bench import api
    from bench.validate import UsageError

    try:
        cfg = run_config(**{k: v for k, v in locals().items() if k not in ("api", "UsageError")})
        frame = api.Run(cfg).execute()
    except (UsageError, ValueError, KeyError, FileNotFoundError) as exc:
        fail(exc)
    if dry_run:
        return
    status = api.exit_status(frame)
    if status:
        typer.echo(f"{int((frame['status'] == 'failed').sum())} record(s) failed; see {out / 'results.csv'}", err=True)
    raise typer.Exit(status)


@app.command("report")
def report_cmd(run_dir: Path = typer.Argument(..., help="a run directory holding results.json"),
               out: Optional[Path] = typer.Option(None, help="where to write (default RUN_DIR/report)")) -> None:
    """Re-render the figures and the HTML/Markdown report from stored results, without measuring."""
    from bench import api

    try:
        written = api.report(run_dir, out)
    except (ValueError, FileNotFoundError) as exc:
        fail(exc)
    typer.echo(f"report: {written.get('report.html', run_dir / 'report' / 'report.html')}")


if __name__ == "__main__":
    app()
