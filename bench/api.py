"""The Python API under the CLI: `run(...)` and `report(...)` return pandas DataFrames / paths."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import provenance as prov
from bench import results
from bench.probes import calibrate_peak_gflops
from bench.runner import (SUITES, RunConfig, suite_categories, accuracy_job_ids, accuracy_jobs, default_threads, mean_rows,
                          probe_settings, profile_job, profile_job_id, resolve_device)

console = Console(stderr=True)


def _check_models(names: Sequence[str] | None, suite: str) -> list[str]:
    from models import get_entry, list_models

    if not names:
        return [e.name for e in list_models()]
    for name in names:
        get_entry(name)  # raises with the list of known names
    return list(names)


def _check_model_options(cfg: RunConfig, names: list[str]) -> None:
    """Refuse, before measuring anything, options that no selected model can use or files that are not there."""
    from models.registry import detector_arguments

    accepted = set().union(*(detector_arguments(n) for n in names))
    for option, path in (("--weights", cfg.weights), ("--vgg-weights", cfg.vgg_weights)):
        if path and not Path(path).is_file():
            raise FileNotFoundError(f"{option}: no such file: {path}")
        if path and option.lstrip("-").replace("-", "_") not in accepted:
            raise ValueError(f"{option}: none of the selected models ({', '.join(names)}) takes pretrained weights")
    for key in cfg.model_args:
        if key not in accepted:
            raise ValueError(f"--model-arg {key}: none of the selected models ({', '.join(names)}) takes {key!r}")
    if cfg.labelled_defects is not None and cfg.labelled_defects < 0:
        raise ValueError("--labelled-defects must be >= 0")
    if cfg.labelled_defects is not None:
        from models.registry import uses_labels

        unsupervised = [n for n in names if not uses_labels(n)]
        if unsupervised:
            raise ValueError(f"--labelled-defects: {', '.join(unsupervised)} cannot learn from labels (they would "
                             "train on the defects as normal images); select models that can, e.g. segmenters")
    if cfg.schedule is not None and cfg.schedule not in ("budget", "constant"):
        raise ValueError(f"--schedule must be budget or constant, got {cfg.schedule!r}")
    if cfg.folds < 2:
        raise ValueError("--folds must be >= 2")


def _resolve_data(cfg: RunConfig) -> tuple[Path, list[str]]:
    """The dataset root (the synthetic set is generated on first use) and the categories to evaluate."""
    import datasets

    root = cfg.data_root
    if cfg.dataset == "synthetic" and root is None:
        from datasets.synthetic import default_cache_dir, ensure_synthetic

        root = ensure_synthetic(default_cache_dir(), seed=0)
    elif root is None:
        raise ValueError(f"--data-root is required for --dataset {cfg.dataset}")
    available = datasets.list_categories(cfg.dataset, root)
    cats = cfg.categories or suite_categories(cfg) or available
    unknown = [c for c in cats if c not in available]
    if unknown:
        raise ValueError(f"--categories: {unknown[0]!r} is not in {root}; available: {', '.join(available)}")
    return root, cats


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[detail]}"), console=console, transient=False)


def run(suite: str = "profile", models: Sequence[str] | None = None, *, image_size: int | None = None,
        batch_size: int | None = None, device: str = "auto", threads: int | None = None,
        out: str | Path = "runs/latest", seed: int = 0, resume: bool = False, dataset: str = "synthetic",
        data_root: str | Path | None = None, categories: Sequence[str] | None = None, epochs: int | None = None,
        train_minutes: Sequence[float] | float | None = None, labelled_defects: int | None = None, folds: int = 5,
        weights: str | None = None, vgg_weights: str | None = None, model_args: dict | None = None,
        eval_only: bool = False, argv: list[str] | None = None, quiet: bool = False,
        schedule: str | None = None) -> pd.DataFrame:
    """Run a suite; write RUN/records/*.json, RUN/results.json and RUN/results.csv; return the table."""
    if suite not in SUITES:
        raise ValueError(f"--suite must be one of {', '.join(SUITES)}, got {suite!r}")
    if isinstance(train_minutes, (int, float)):
        train_minutes = [float(train_minutes)]
    cfg = RunConfig(suite=suite, models=list(models) if models else None, image_size=image_size,
                    batch_size=batch_size, device=device, threads=threads, out=Path(out), seed=seed, resume=resume,
                    dataset=dataset, data_root=Path(data_root) if data_root else None,
                    categories=list(categories) if categories else None, epochs=epochs,
                    train_minutes=sorted(float(m) for m in train_minutes) if train_minutes else None,
                    labelled_defects=labelled_defects, folds=folds, weights=weights, vgg_weights=vgg_weights,
                    model_args=dict(model_args or {}), eval_only=eval_only, argv=argv, schedule=schedule)
    dev = resolve_device(device)
    n_threads = threads or default_threads()
    torch.set_num_threads(n_threads)
    names = _check_models(cfg.models, suite)
    _check_model_options(cfg, names)
    if eval_only and suite != "accuracy":
        raise ValueError("--eval-only goes with --suite accuracy")
    measures_accuracy = suite in ("accuracy", "all", "paper")
    root, cats = _resolve_data(cfg) if measures_accuracy else (None, [])  # bad data fails before measuring
    cfg.out.mkdir(parents=True, exist_ok=True)
    provenance = prov.collect(dev, n_threads, seed, argv)
    done = results.finished_jobs(cfg.out) if resume else {}
    if not resume and not eval_only:
        for stale in (cfg.out / "records").glob("*.json") if (cfg.out / "records").is_dir() else []:
            stale.unlink()  # a fresh run never mixes in another run's records
    records: list[dict] = []
    stage_seconds: dict[str, float] = {}
    show = not quiet

    def keep(record: dict) -> None:
        records.append(record)
        results.write_record(cfg.out, record, provenance)

    if suite in ("profile", "quick", "all", "paper"):
        t0 = time.perf_counter()
        settings = probe_settings(cfg, dev, n_threads)
        peak = calibrate_peak_gflops(dev, seconds=0.3 if suite == "quick" else 1.0)
        provenance["device_peak_gflops"] = peak
        with _progress() as bar:
            task = bar.add_task("profile", total=len(names), detail="", visible=show)
            for name in names:
                bar.update(task, detail=name)
                jid = profile_job_id(name, cfg, dev)
                if jid in done and done[jid].get("status") == "ok":
                    records.append(done[jid])
                else:
                    keep(profile_job(name, cfg, settings, peak,
                                     on_probe=lambda p, n=name: bar.update(task, detail=f"{n}: {p}")))
                bar.advance(task)
        stage_seconds["profile"] = time.perf_counter() - t0

    if measures_accuracy:
        t0 = time.perf_counter()
        with _progress() as bar:
            task = bar.add_task("accuracy", total=len(names) * len(cats), detail="", visible=show)
            for name in names:
                for cat in cats:
                    bar.update(task, detail=f"{name} / {cat}")
                    ids = accuracy_job_ids(name, cat, cfg)
                    if all(done.get(j, {}).get("status") == "ok" for j in ids):
                        records.extend(done[j] for j in ids)
                    else:
                        on_step = lambda c, step, loss, n=name: bar.update(task, detail=f"{n} / {c}: step {step} loss {loss:.4g}")  # noqa: E731
                        for record in accuracy_jobs(name, cat, cfg, dev, n_threads, root, progress=on_step):
                            keep(record)
                    bar.advance(task)
        for record in mean_rows(records):
            keep(record)
        stage_seconds["accuracy"] = time.perf_counter() - t0

    provenance["stage_seconds"] = stage_seconds
    frame = results.write_results(cfg.out, records, provenance)
    report_path = None
    if suite in ("all", "paper"):
        t0 = time.perf_counter()
        try:
            report_path = report(cfg.out).get("report.html")
        except Exception as exc:  # the measurements are already on disk; say what broke and keep them
            console.print(f"[red]report failed[/red]: {type(exc).__name__}: {exc} (re-render with `bench report {cfg.out}`)")
        stage_seconds["report"] = time.perf_counter() - t0
        provenance["stage_seconds"] = stage_seconds
        results.write_results(cfg.out, records, provenance)
    if show:
        print_summary(frame, stage_seconds, cfg.out)
        if report_path:
            console.print(f"report: {report_path}")
    return frame


def report(run_dir: str | Path, out_dir: str | Path | None = None) -> dict:
    """Re-render figures and the HTML/Markdown report from RUN/results.json, measuring nothing."""
    from reports import render_report

    run_dir = Path(run_dir)
    if not (run_dir / "results.json").is_file():
        raise FileNotFoundError(f"{run_dir}: no results.json here (not a defectbench run directory)")
    return render_report(run_dir, Path(out_dir) if out_dir else None)


SUMMARY_PROFILE = ["model", "status", "params", "gmacs", "model_mb", "peak_infer_mb", "onnx_mb", "onnx_parity",
                   "latency_ms_p50", "latency_ms_p99", "ort_latency_ms_p50", "train_step_ms_p50"]
SUMMARY_ACCURACY = ["model", "category", "train_minutes", "status", "image_auroc", "pixel_auroc", "aupro", "train_seconds"]


def _fmt(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def print_summary(frame: pd.DataFrame, stage_seconds: dict, out: Path) -> None:
    from rich.table import Table

    for suite, cols in (("profile", SUMMARY_PROFILE), ("accuracy", SUMMARY_ACCURACY)):
        part = frame[frame["suite"] == suite] if "suite" in frame else frame.iloc[0:0]
        if part.empty:
            continue
        table = Table(title=suite, title_justify="left")
        cols = [c for c in cols if c in part.columns]
        for c in cols:
            table.add_column(c, justify="left" if c in ("model", "status", "category", "onnx_parity") else "right")
        for _, row in part.iterrows():
            table.add_row(*[_fmt(row[c]) if not (isinstance(row[c], float) and math.isnan(row[c])) else "-" for c in cols])
        console.print(table)
    failed = frame[frame["status"] != "ok"] if "status" in frame else frame.iloc[0:0]
    for _, row in failed.iterrows():
        console.print(f"[red]failed[/red] {row['model']} {row.get('category', '') or ''}: {row['error']}")
    for stage, sec in stage_seconds.items():
        console.print(f"{stage}: {sec:.1f} s")
    console.print(f"results: {out / 'results.csv'} and {out / 'results.json'}")
