"""render_report: every figure and report file of a run, from its stored results only (no model is run)."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import matplotlib

from reports.figures import BUILDERS, DPI, STYLE, FigureResult
from reports.html import write_html
from reports.markdown import write_markdown
from reports.run_data import RunView, load_run

PNG_DPI = 110


def save_figure(result: FigureResult, out_dir: Path) -> dict[str, Path]:
    png = out_dir / f"{result.name}.png"
    svg = out_dir / f"{result.name}.svg"
    # Without dates or version strings in the metadata, re-rendering the same run gives the same bytes.
    result.figure.savefig(png, dpi=DPI.get(result.name, PNG_DPI), metadata={"Software": None})
    result.figure.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    return {png.name: png, svg.name: svg}


def write_csv(run: RunView, out_dir: Path) -> Path:
    """A copy of RUN/results.csv; rebuilt from the records (scalar columns only) when the run has none."""
    target = out_dir / "results.csv"
    source = run.run_dir / "results.csv"
    if source.is_file():
        shutil.copyfile(source, target)
        return target
    columns: list[str] = []
    for record in run.records:
        columns += [k for k, v in record.items() if not isinstance(v, (list, dict)) and k not in columns]
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for record in run.records:
            writer.writerow({k: ("" if record.get(k) is None else record.get(k, "")) for k in columns})
    return target


def render_report(run_dir: Path, out_dir: Path | None = None, images_per_category: int = 3) -> dict[str, Path]:
    """Render RUN_DIR/results.json (run_dir may also be the results.json itself) into out_dir (default RUN_DIR/report/).

    Writes latency, variants, sweep, sizes, pareto, per_category and gallery as PNG and SVG (a figure without
    data is left out and the report says why), report.html (self-contained), report.md and results.csv. Returns
    the written files by name. Raises bench.schema.ResultsError (a ValueError, one line naming the file)
    without a results.json or for another schema, before writing anything."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run.run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    figures: list[FigureResult] = []
    for name, builder in BUILDERS.items():
        with matplotlib.rc_context(STYLE):
            try:
                result = builder(run, images_per_category) if name == "gallery" else builder(run)
            except Exception as error:  # a figure's bug must not cost the user the rest of the report
                result = FigureResult(name, name, None, [f"Drawing failed: {type(error).__name__}: {error}"])
            for stale in (out_dir / f"{name}.png", out_dir / f"{name}.svg"):
                stale.unlink(missing_ok=True)  # a figure skipped now must not leave an old file behind
            if result.figure is not None:
                written.update(save_figure(result, out_dir))
        figures.append(result)
    written["results.csv"] = write_csv(run, out_dir)
    written["report.html"] = write_html(run, figures, out_dir)
    written["report.md"] = write_markdown(run, figures, out_dir)
    return written
