"""The `bench` command: a thin typer layer over the Python API in `bench.api`."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from bench.cli_compare import compare_cmd
from bench.cli_data import data_app

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="defectbench: accuracy and cost of anomaly detectors, side by side.")
list_app = typer.Typer(no_args_is_help=True, help="List what the suite knows.")
app.add_typer(list_app, name="list")
app.add_typer(data_app, name="data")
app.command("compare")(compare_cmd)


def _split(value: Optional[str]) -> Optional[list[str]]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _parse_model_args(pairs: list[str]) -> dict:
    """KEY=VALUE strings -> dict; values become int, float or bool where they read as one."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--model-arg {pair!r}: expected KEY=VALUE")
        value: object = raw
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                pass
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        out[key] = value
    return out


def _fail(exc: Exception) -> None:
    # Bad input gets one clear line, not a traceback.
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@list_app.command("models")
def list_models_cmd(family: Optional[str] = typer.Option(None, help="segmenter, detector or baseline")) -> None:
    """Print the model table."""
    from rich.console import Console
    from rich.table import Table

    from models import list_models

    table = Table("name", "family", "input", "module")
    table.add_column("paper", overflow="ellipsis", no_wrap=True, max_width=70)
    for e in list_models(family):
        table.add_row(e.name, e.family, str(e.input_size), e.module, e.paper)
    Console().print(table)


@app.command("run")
def run_cmd(
    suite: str = typer.Option("profile", help="profile | quick | accuracy | all | paper"),
    models: Optional[str] = typer.Option(None, help="comma-separated model names (default: all registered)"),
    image_size: Optional[int] = typer.Option(None, help="square input side (default: 256 profile, 64 quick, 128 accuracy)"),
    batch_size: Optional[int] = typer.Option(None, help="profile batch size (default 8; quick 2)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    threads: Optional[int] = typer.Option(None, help="intra-op threads for PyTorch and ONNX Runtime (default: all cores)"),
    out: Path = typer.Option(Path("runs/latest"), help="run directory"),
    seed: int = typer.Option(0),
    resume: bool = typer.Option(False, help="keep the finished jobs already recorded in --out"),
    dataset: str = typer.Option("synthetic", help="synthetic | mvtec | btad | folder"),
    data_root: Optional[Path] = typer.Option(None, help="dataset root (not needed for synthetic)"),
    categories: Optional[str] = typer.Option(None, help="comma-separated categories (default: all)"),
    epochs: Optional[int] = typer.Option(None, help="training epochs (accuracy)"),
    train_minutes: Optional[str] = typer.Option(None, help="training minutes per category; several (1,3,10) evaluate after each"),
    labelled_defects: Optional[int] = typer.Option(None, help="train on N labelled real defects, k-fold over the test set"),
    folds: int = typer.Option(5, help="folds for --labelled-defects"),
    weights: Optional[Path] = typer.Option(None, help="local torchvision backbone state dict (PIADE: ResNet-50; pyramid_ae: ResNet-18)"),
    vgg_weights: Optional[Path] = typer.Option(None, help="local torchvision VGG11 state dict for the perceptual loss"),
    model_arg: Optional[list[str]] = typer.Option(None, help="KEY=VALUE for the builders that take KEY (e.g. n_gaussians=150); repeatable"),
    eval_only: bool = typer.Option(False, help="re-evaluate the checkpoints stored in --out instead of training"),
) -> None:
    """Measure the models: cost (profile), accuracy, or both with a report (all)."""
    from bench import api

    try:
        minutes = [float(m) for m in _split(train_minutes)] if train_minutes else None
        frame = api.run(suite, _split(models), image_size=image_size, batch_size=batch_size, device=device,
                        threads=threads, out=out, seed=seed, resume=resume, dataset=dataset, data_root=data_root,
                        categories=_split(categories), epochs=epochs, train_minutes=minutes,
                        labelled_defects=labelled_defects, folds=folds, weights=str(weights) if weights else None,
                        vgg_weights=str(vgg_weights) if vgg_weights else None,
                        model_args=_parse_model_args(model_arg or []), eval_only=eval_only, argv=sys.argv)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        _fail(exc)
    if (frame["status"] != "ok").any():
        typer.echo(f"{int((frame['status'] != 'ok').sum())} job(s) failed; see {out / 'results.csv'}", err=True)


@app.command("report")
def report_cmd(run_dir: Path = typer.Argument(..., help="a run directory holding results.json"),
               out: Optional[Path] = typer.Option(None, help="where to write (default RUN_DIR/report)")) -> None:
    """Re-render the figures and the HTML/Markdown report from stored results, without measuring."""
    from bench import api

    try:
        written = api.report(run_dir, out)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    typer.echo(f"report: {written.get('report.html', run_dir / 'report' / 'report.html')}")


if __name__ == "__main__":
    app()
