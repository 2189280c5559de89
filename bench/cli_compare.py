"""`bench compare BASE NEW`: the regression gate (bench/compare/, docs/design/compare.md)."""
from __future__ import annotations

from pathlib import Path

import typer


def compare_cmd(
    base: Path = typer.Argument(..., help="BASE: a run folder, a results.json, a pytest-benchmark JSON file, or a "
                                "folder of repeated runs of the same code (their spread is the drift allowed for)"),
    new: Path = typer.Argument(..., help="NEW: the same kind of input as BASE; as a folder of repeated runs, a "
                               "latency regression must hold in every one of them (a confirmation run)"),
    latency_effect: float = typer.Option(0.10, help="a latency change counts only above this relative median change"),
    alpha: float = typer.Option(0.01, help="significance level of the rank test (latency) and DeLong's test (AUROC)"),
    accuracy_tol: float = typer.Option(0.02, help="an accuracy drop counts only above this absolute change"),
    allow_size_change: bool = typer.Option(False, help="list changed MACs and model/ONNX file sizes without failing "
                                           "(not parameter counts: --allow-param-change)"),
    allow_param_change: bool = typer.Option(False, help="list changed parameter counts (params, trainable_params) "
                                            "without failing"),
    allow_missing: bool = typer.Option(False, help="list records of BASE missing in NEW, and latency samples NEW "
                                       "no longer has, without failing"),
    allow_data_change: bool = typer.Option(False, help="list accuracy on another (or an unknown) data fingerprint, "
                                           "not comparable, without failing"),
    allow_skipped: bool = typer.Option(False, help="list variants ok in BASE and skipped in NEW without failing"),
    latency_gate: str = typer.Option("same-machine", help="when a latency regression fails: same-machine | always | never | skip (latency not compared)"),
    format: str = typer.Option("table", "--format", help="table | markdown | json"),
) -> None:
    """Compare two runs: exit 0 (no regression), 1 (regression), 2 (unusable input)."""
    from bench.compare import UnusableInput, compare_runs
    from bench.compare.render import FORMATS, print_comparison

    if format not in FORMATS:
        typer.echo(f"error: --format must be one of {', '.join(FORMATS)}, got {format!r}", err=True)
        raise typer.Exit(2)
    try:
        result = compare_runs(base, new, latency_effect=latency_effect, alpha=alpha, accuracy_tol=accuracy_tol,
                              allow_size_change=allow_size_change, latency_gate=latency_gate,
                              allow_missing=allow_missing, allow_data_change=allow_data_change,
                              allow_skipped=allow_skipped, allow_param_change=allow_param_change)
    except UnusableInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    print_comparison(result, format)
    raise typer.Exit(result.exit_code)
