"""`bench data ...`: check, fetch, synth and preview datasets."""
from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

data_app = typer.Typer(no_args_is_help=True, help="Check, fetch, generate and preview datasets.")
console = Console()


def _fail(error: Exception | str) -> None:
    """Bad input, as for `bench run`: one line naming the option or file, exit status 2."""
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(2)


def _failed(error: Exception | str) -> None:
    """Work that started and failed (a download, a checksum, an archive): exit status 1."""
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(1)


def _at_least(option: str, value: int, minimum: int) -> None:
    if value < minimum:
        _fail(f"{option} must be >= {minimum}, got {value}")


def _print_check(result) -> None:
    from rich.table import Table

    table = Table("category", "split", "defect", "images", "official", title=f"{result.dataset}: {result.root}")
    for row in result.rows:
        official = "" if row.official is None else str(row.official)
        style = "yellow" if row.differs else None
        table.add_row(row.category or "(root)", row.split, row.defect, str(row.count), official, style=style)
    console.print(table)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    if not result.warnings:
        console.print("[green]ok[/green]: every file reads, every defect image has a mask of its size", highlight=False)


@data_app.command("check")
def check_cmd(
    dataset: str = typer.Option(..., "--dataset", help="mvtec, btad, folder or synthetic"),
    data_root: Path = typer.Option(..., "--data-root", help="the dataset's root folder"),
    category: str = typer.Option(None, "--category", help="one category (product); all if omitted"),
) -> None:
    """Validate a tree and print image counts per split and defect type next to the official counts."""
    from datasets.check import check_dataset
    from datasets.common import DatasetError

    try:
        result = check_dataset(dataset, data_root, category)
    except DatasetError as e:
        _fail(e)
    _print_check(result)


@data_app.command("fetch")
def fetch_cmd(
    dataset: str = typer.Argument(..., help="mvtec or btad"),
    root: Path = typer.Option(..., "--root", help="where the dataset goes"),
    url: str = typer.Option(None, "--url", help="download from here instead of the official source"),
    sha256: str = typer.Option(None, "--sha256", help="expected sha256 of the archive (default: the official one)"),
) -> None:
    """Download with a progress bar, verify the sha256, extract (all or nothing), then check."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from datasets.check import check_dataset
    from datasets.common import DatasetError
    from datasets.fetch import SOURCES, fetch

    if dataset not in SOURCES:
        _fail(f"cannot fetch {dataset!r}; fetchable: {', '.join(SOURCES)}")
    with Progress(TextColumn(f"{dataset}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task("download", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        try:
            fetch(dataset, root, url=url, sha256=sha256, progress=progress)
        except DatasetError as e:
            bar.stop()
            _failed(e)
    console.print(f"extracted into {root}; checking")
    try:
        result = check_dataset(dataset, root)
    except DatasetError as e:
        _fail(e)
    _print_check(result)


@data_app.command("synth")
def synth_cmd(
    out: Path = typer.Option(..., "--out", help="folder to write the MVTec-layout tree into"),
    categories: str = typer.Option(None, "--categories", help="comma-separated; default: fabric,brushed_metal,nut,screw"),
    size: int = typer.Option(128, "--size", help="image side in pixels"),
    seed: int = typer.Option(0, "--seed"),
    n_train: int = typer.Option(120, "--n-train", help="normal training images per category"),
    n_test_good: int = typer.Option(30, "--n-test-good", help="normal test images per category"),
    n_test_defective: int = typer.Option(40, "--n-test-defective", help="defective test images per category"),
) -> None:
    """Generate the synthetic industrial dataset (deterministic: same seed, byte-identical files)."""
    from datasets.common import DatasetError
    from datasets.synthetic import generate_synthetic

    chosen = [c.strip() for c in categories.split(",") if c.strip()] if categories else None
    for option, value in (("--n-train", n_train), ("--n-test-good", n_test_good), ("--n-test-defective", n_test_defective)):
        _at_least(option, value, 1)
    _at_least("--seed", seed, 0)
    started = time.perf_counter()
    try:
        root = generate_synthetic(out, size, seed, chosen, n_train, n_test_good, n_test_defective)
    except DatasetError as e:
        _fail(e)
    console.print(f"wrote {root} in {time.perf_counter() - started:.1f} s")


@data_app.command("preview")
def preview_cmd(
    out: Path = typer.Option(Path("preview.png"), "--out", help="PNG file to write"),
    dataset: str = typer.Option("synthetic", "--dataset"),
    data_root: Path = typer.Option(None, "--data-root", help="default for synthetic: the cache `bench run` uses ($DEFECTBENCH_CACHE/synthetic, .cache/synthetic)"),
    categories: str = typer.Option(None, "--categories", help="comma-separated; default: all"),
    image_size: int = typer.Option(128, "--image-size"),
    n_normal: int = typer.Option(2, "--n-normal"),
    n_defect: int = typer.Option(4, "--n-defect"),
    scale: int = typer.Option(2, "--scale", help="pixel zoom of each tile"),
) -> None:
    """A PNG grid per category: normal test images, then defective ones raw and with the mask overlaid."""
    from datasets import list_categories, open_dataset
    from datasets.common import DatasetError
    from datasets.preview import preview_grid
    from datasets.synthetic import default_cache_dir

    for option, value, minimum in (("--n-normal", n_normal, 0), ("--n-defect", n_defect, 0), ("--scale", scale, 1),
                                   ("--image-size", image_size, 16)):
        _at_least(option, value, minimum)
    if n_normal + n_defect == 0:
        _fail("--n-normal and --n-defect are both 0: nothing to preview")
    if data_root is None and dataset != "synthetic":
        _fail(DatasetError(f"--data-root is required for --dataset {dataset}"))
    root = data_root if data_root is not None else default_cache_dir()
    try:
        chosen = [c.strip() for c in categories.split(",")] if categories else list_categories(dataset, root if data_root is not None else None)
        sets = {c or dataset: open_dataset(dataset, root, c, "test", image_size) for c in chosen}
        path = preview_grid(sets, out, n_normal=n_normal, n_defect=n_defect, scale=scale)
    except DatasetError as e:
        _fail(e)
    console.print(f"wrote {path}")


@data_app.command("check-weights")
def check_weights_cmd(path: Path = typer.Argument(..., help="a local torchvision weight file (.pth)")) -> None:
    """Say whether a file is one of torchvision's published ImageNet files (by its sha256's published prefix),
    and whether it is the one PIADE's authors started from (models/weights.py). Nothing is downloaded."""
    from models.weights import check_weights_file

    try:
        result = check_weights_file(path)
    except FileNotFoundError as e:
        _fail(e)
    typer.echo(result.describe())
    typer.echo(f"sha256 {result.sha256}")
    if result.match is None:
        raise typer.Exit(1)
