"""`bench ab BASE_REF [--new REF] [bench run options]`: an A/B run on this machine (bench/ab/, docs/design/compare.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def ab_cmd(
    ctx: typer.Context,
    base_ref: str = typer.Argument(..., help="BASE: a git commit, branch or tag of this repository"),
    new: Optional[str] = typer.Option(None, "--new", help="NEW: a commit (default: the working tree as it is, uncommitted changes included)"),
    out: Path = typer.Option(Path("runs/ab"), help="where both sides' runs and the verdict go"),
    rounds: int = typer.Option(1, help="run every job this many times per side (each side's runs are then repeats)"),
    latency_effect: float = typer.Option(0.10, help="a latency change counts only above this relative median change"),
    alpha: float = typer.Option(0.01, help="significance level of the rank test (latency) and DeLong's test (AUROC)"),
    accuracy_tol: float = typer.Option(0.02, help="an accuracy drop counts only above this absolute change"),
    allow_size_change: bool = typer.Option(False, help="list changed MACs and file sizes without failing"),
    allow_missing: bool = typer.Option(False, help="list jobs and variants BASE ran and NEW did not, without failing"),
    allow_skipped: bool = typer.Option(False, help="list variants ok in BASE and skipped in NEW without failing"),
    allow_data_change: bool = typer.Option(False, help="list accuracy on other data, not comparable, without failing"),
    format: str = typer.Option("table", "--format", help="table | markdown | json"),
) -> None:
    """Measure BASE and NEW here, job by job (A B, B A, ...), with every other option as `bench run` takes it;
    judge them as `bench compare` does. Exit 0 (no regression), 1 (regression), 2 (unusable input)."""
    from bench.ab import ABError, run_ab
    from bench.compare import UnusableInput
    from bench.compare.render import FORMATS, print_comparison, to_json, to_markdown

    if format not in FORMATS:
        typer.echo(f"error: --format must be one of {', '.join(FORMATS)}, got {format!r}", err=True)
        raise typer.Exit(2)
    say = (lambda line: typer.echo(line, err=True)) if format == "json" else typer.echo
    try:
        ab, result = run_ab(base_ref, new, list(ctx.args), out, rounds=rounds, say=say,
                            latency_effect=latency_effect, alpha=alpha, accuracy_tol=accuracy_tol,
                            allow_size_change=allow_size_change, allow_missing=allow_missing,
                            allow_skipped=allow_skipped, allow_data_change=allow_data_change)
    except (ABError, UnusableInput) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    (ab.out / "compare.md").write_text(to_markdown(result))
    (ab.out / "compare.json").write_text(to_json(result))
    print_comparison(result, format)
    raise typer.Exit(result.exit_code)
