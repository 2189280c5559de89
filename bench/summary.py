"""The end-of-run summary on stdout: rich tables in a terminal, whole plain-text tables in a pipe or CI log.

Every number is written as the report writes it (bench/formatting.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from bench.formatting import fmt_interval, fmt_value
from bench.schema import INTERVAL_METRICS

PROFILE = ["model", "variant", "batch_size", "status", "params", "gmacs", "model_mb", "peak_infer_mb", "onnx_mb",
           "parity", "latency_ms_p50", "latency_ms_p99", "throughput_ips", "train_step_ms_p50"]
ACCURACY = ["model", "variant", "category", "seed", "train_minutes", "status", "image_auroc", "pixel_auroc", "aupro",
            "train_seconds"]
TEXT = ("model", "variant", "status", "category", "parity", "seed")


def _cell(row, column: str) -> str:
    """A cell as the report writes it (bench/formatting.py); an accuracy metric with its interval."""
    if column in INTERVAL_METRICS:
        return fmt_interval(row[column], row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high"))
    return fmt_value(row[column], column)


def tables(frame: pd.DataFrame) -> list[tuple[str, list[str], list[list[str]]]]:
    out = []
    for suite, columns in (("profile", PROFILE), ("accuracy", ACCURACY)):
        part = frame[frame["suite"] == suite] if "suite" in frame else frame.iloc[0:0]
        if part.empty:
            continue
        columns = [c for c in columns if c in part.columns]
        rows = []
        for _, row in part.iterrows():
            rows.append([_cell(row, c) for c in columns])
        out.append((suite, columns, rows))
    return out


def plain_table(title: str, columns: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    align = lambda text, i: text.ljust(widths[i]) if columns[i] in TEXT else text.rjust(widths[i])  # noqa: E731
    lines = [title, "  ".join(align(c, i) for i, c in enumerate(columns))]
    lines += ["  ".join(align(v, i) for i, v in enumerate(r)) for r in rows]
    return "\n".join(lines)


def print_summary(frame: pd.DataFrame, provenance: dict, out: Path, report_path=None, stream=None) -> None:
    stream = stream or sys.stdout
    terminal = stream.isatty()
    for title, columns, rows in tables(frame):
        if terminal:
            from rich.console import Console
            from rich.table import Table

            table = Table(title=title, title_justify="left")
            for c in columns:
                table.add_column(c, justify="left" if c in TEXT else "right")
            for r in rows:
                table.add_row(*r)
            Console(file=stream).print(table)
        else:
            print(plain_table(title, columns, rows) + "\n", file=stream)
    failed = frame[frame["status"] == "failed"] if "status" in frame else frame.iloc[0:0]
    for _, row in failed.iterrows():
        where = " ".join(str(row.get(k)) for k in ("model", "variant", "category") if row.get(k) not in (None, "") and not pd.isna(row.get(k)))
        print(f"failed {where}: {row.get('error', '')}", file=stream)
    seconds = provenance.get("run_seconds")
    if seconds is not None:
        print(f"run: {seconds:.1f} s", file=stream)
    print(f"results: {out / 'results.csv'} and {out / 'results.json'}", file=stream)
    if report_path:
        print(f"report: {report_path}", file=stream)
