"""The report layer, rendered from the small fixed run in tests/fixtures/small_run (no model is run)."""
from __future__ import annotations

import base64
import csv
import json
import math
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from PIL import Image

from reports import render_report
from reports.figures import FIGURE_NAMES, pareto_front, place_labels
from reports.results import load_run, number, percentiles_from_samples

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "small_run"
DATA_PNG = re.compile(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def fixture_results() -> dict:
    return json.loads((FIXTURE / "results.json").read_text())


def copy_run(tmp_path: Path, change=None) -> Path:
    """A copy of the fixture run, its records optionally changed by change(records)."""
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir, ignore=shutil.ignore_patterns("*.py", "results.csv"))
    if change is not None:
        results = fixture_results()
        change(results["records"])
        (run_dir / "results.json").write_text(json.dumps(results))
    return run_dir


def keep_profile_only(records: list[dict]) -> None:
    records[:] = [r for r in records if r["suite"] == "profile"]


def assert_valid_png(path: Path) -> None:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= 500 and image.height >= 250, (path.name, image.size)
        # Not a blank canvas: a figure has many distinct colours.
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 20


def assert_valid_svg(path: Path) -> None:
    root = ElementTree.parse(path).getroot()
    assert root.tag.endswith("svg")
    assert float(root.get("width").removesuffix("pt")) > 300
    assert len(list(root.iter())) > 50  # drawn content, not an empty document


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    out_dir = tmp_path_factory.mktemp("report")
    return out_dir, render_report(FIXTURE, out_dir)


def test_every_figure_written_as_valid_png_and_svg(rendered):
    out_dir, written = rendered
    for name in FIGURE_NAMES:
        assert written[f"{name}.png"] == out_dir / f"{name}.png"
        assert_valid_png(out_dir / f"{name}.png")
        assert_valid_svg(out_dir / f"{name}.svg")
    assert {"report.html", "report.md", "results.csv"} <= set(written)
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(written)


def test_default_out_dir_is_run_report(tmp_path):
    run_dir = copy_run(tmp_path, keep_profile_only)
    written = render_report(run_dir)
    assert written["report.html"] == run_dir / "report" / "report.html"
    assert (run_dir / "report" / "latency.png").is_file()


def test_html_is_self_contained_with_one_embedded_png_per_figure(rendered):
    out_dir, _ = rendered
    html = (out_dir / "report.html").read_text()
    embedded = DATA_PNG.findall(html)
    assert len(embedded) == len(FIGURE_NAMES)
    for payload, name in zip(embedded, FIGURE_NAMES):
        assert base64.b64decode(payload) == (out_dir / f"{name}.png").read_bytes()
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<(link|iframe|object|embed)\b", html)
    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert not re.search(r"url\(", html)  # no CSS fetch either
    for section in ("provenance", "results", "figures", "failed", "how-to-read"):
        assert f'id="{section}"' in html
    assert html.count('class="sortable"') == 2  # the profile and the accuracy table


def test_report_lists_failed_jobs_with_their_errors(rendered):
    out_dir, _ = rendered
    html = (out_dir / "report.html").read_text()
    markdown = (out_dir / "report.md").read_text()
    failed = [r for r in fixture_results()["records"] if r["status"] == "failed"]
    assert failed
    failed_section = html.split('id="failed"')[1]
    for record in failed:
        assert record["job_id"] in failed_section
        assert record["error"] in failed_section  # the errors hold no characters that HTML escaping changes
        assert f"`{record['job_id']}` ({record['model']}): {record['error']}" in markdown
    assert "Failed jobs (2)" in html


def test_tables_show_the_fixture_numbers(rendered):
    out_dir, _ = rendered
    html = (out_dir / "report.html").read_text()
    markdown = (out_dir / "report.md").read_text()
    records = fixture_results()["records"]
    for record in records:
        if record["suite"] == "profile":
            assert f">{record['params']:,}<" in html  # e.g. 24,436,369 for the U-Net
            assert f"| {record['params']:,} |" in markdown
            if record["status"] == "ok":
                assert f'data-sort="{float(record["latency_ms_p50"])!r}"' in html
                assert f">{record['latency_ms_p50']:.3g}<" in html
        elif record["status"] == "ok" and not math.isnan(number(record["image_auroc"])):
            assert f">{record['image_auroc']:.3f}<" in html
    unet_mean = next(r for r in records if r["model"] == "unet" and r.get("category") == "mean")
    assert f"| unet | synthetic | mean | {unet_mean['image_auroc']:.3f} | {unet_mean['pixel_auroc']:.3f} | {unet_mean['aupro']:.3f} |" in markdown


def test_csv_copy_matches_the_records(rendered):
    out_dir, _ = rendered
    with (out_dir / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    records = fixture_results()["records"]
    assert [row["job_id"] for row in rows] == [r["job_id"] for r in records]
    for row, record in zip(rows, records):
        if record["suite"] == "profile" and record["status"] == "ok":
            assert float(row["latency_ms_p50"]) == record["latency_ms_p50"]
            assert int(row["params"]) == record["params"]
        assert "latency_samples_ms" not in row  # raw sample lists stay in the JSON


def test_csv_rebuilt_from_records_when_run_has_none(tmp_path):
    run_dir = copy_run(tmp_path, keep_profile_only)  # copy_run leaves results.csv behind
    written = render_report(run_dir, tmp_path / "out")
    with written["results.csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["job_id"] for row in rows] == [r["job_id"] for r in fixture_results()["records"] if r["suite"] == "profile"]
    assert "latency_samples_ms" not in rows[0]
    assert rows[0]["params"] == str(fixture_results()["records"][0]["params"])


def test_rerender_in_a_fresh_process_gives_the_same_files_without_torch_or_models(rendered, tmp_path):
    out_dir, _ = rendered
    again = tmp_path / "again"
    script = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from reports import render_report\n"
        f"render_report(Path({str(FIXTURE)!r}), Path({str(again)!r}))\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnxruntime', 'models', 'bench', 'datasets')]\n"
        "print(json.dumps(loaded))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == []
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in out_dir.iterdir())
    for path in out_dir.iterdir():  # no dates or random ids in the files: the same run gives the same bytes
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name


def test_run_with_more_failures_still_draws_every_figure(tmp_path):
    def fail_more(records):
        for record in records:
            if record["model"] == "vt_adl" and record["suite"] == "profile":
                record.update(status="failed", error="ValueError: ONNX export failed at op aten::unflatten")
                for key in [k for k in record if k.startswith(("latency", "ort_", "peak_", "onnx_"))]:
                    record[key] = None  # the probe died before measuring these
            if record["model"] == "unet" and record.get("category") == "object":
                record.update(status="failed", error="RuntimeError: loss is NaN at step 12")

    run_dir = copy_run(tmp_path, fail_more)
    out_dir = tmp_path / "out"
    written = render_report(run_dir, out_dir)
    for name in FIGURE_NAMES:
        assert_valid_png(written[f"{name}.png"])
    html = written["report.html"].read_text()
    assert len(DATA_PNG.findall(html)) == len(FIGURE_NAMES)
    assert "ValueError: ONNX export failed at op aten::unflatten" in html
    assert "RuntimeError: loss is NaN at step 12" in html
    assert "Failed jobs (4)" in html


def test_run_without_accuracy_skips_those_figures_with_a_note(tmp_path):
    run_dir = copy_run(tmp_path, keep_profile_only)
    out_dir = tmp_path / "out"
    written = render_report(run_dir, out_dir)
    assert {"latency.png", "latency.svg", "sizes.png", "sizes.svg"} <= set(written)
    for name in ("pareto", "per_category", "gallery"):
        assert f"{name}.png" not in written and not (out_dir / f"{name}.png").exists()
    html = written["report.html"].read_text()
    assert len(DATA_PNG.findall(html)) == 2
    assert html.count("Figure not drawn.") == 3
    assert "No successful accuracy record in this run" in html
    assert "not drawn" in written["report.md"].read_text()


def test_rerender_removes_figures_that_are_no_longer_drawn(tmp_path):
    run_dir = copy_run(tmp_path)
    out_dir = tmp_path / "out"
    (out_dir).mkdir()
    (out_dir / "gallery.png").write_bytes(b"stale")
    results = json.loads((run_dir / "results.json").read_text())
    for record in results["records"]:
        record["gallery_file"] = ""
    (run_dir / "results.json").write_text(json.dumps(results))
    written = render_report(run_dir, out_dir)
    assert "gallery.png" not in written and not (out_dir / "gallery.png").exists()
    assert "No gallery files in this run" in written["report.html"].read_text()


def test_pareto_front_keeps_only_undominated_points():
    points = [(10.0, 0.80), (20.0, 0.95), (15.0, 0.70), (40.0, 0.90), (30.0, 0.97), (20.0, 0.60)]
    assert pareto_front(points) == [(10.0, 0.80), (20.0, 0.95), (30.0, 0.97)]
    assert pareto_front([]) == []


def test_crowded_labels_clear_every_marker_and_each_other():
    """Five models a hair apart: each name must land where it covers no marker and no other name."""
    from matplotlib.figure import Figure
    from matplotlib.text import Text
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    points = [(10.0, 0.80), (10.4, 0.805), (10.8, 0.79), (11.0, 0.80), (10.2, 0.81)]
    radius = 8.0
    ax.scatter(*zip(*points), s=(2 * radius) ** 2)
    ax.set_xlim(0, 30)
    ax.set_ylim(0.5, 1.0)
    place_labels(fig, ax, [(x, y, f"model_{i}", radius) for i, (x, y) in enumerate(points)],
                 [(x, y, radius) for x, y in points])
    renderer = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(text, renderer) for text in ax.texts]
    assert len(boxes) == len(points)
    r = radius * fig.dpi / 72.0
    for i, box in enumerate(boxes):
        for j, other in enumerate(boxes):
            assert i == j or not box.overlaps(other), (ax.texts[i].get_text(), ax.texts[j].get_text())
        for x, y in points:
            cx, cy = ax.transData.transform((x, y))
            # the box must not reach into any marker's disc (closest box point farther than the radius)
            nearest_x, nearest_y = min(max(cx, box.x0), box.x1), min(max(cy, box.y0), box.y1)
            assert math.hypot(nearest_x - cx, nearest_y - cy) >= r * 0.99


def test_missing_values_and_percentiles_from_raw_samples():
    assert math.isnan(number(None)) and math.isnan(number("")) and math.isnan(number(float("nan")))
    assert number("2.5") == 2.5 and number(3) == 3.0
    record = {"latency_samples_ms": [float(v) for v in range(1, 101)], "latency_ms_p50": None}
    p50, p90, p99 = percentiles_from_samples(record, "latency_ms")
    assert p50 == pytest.approx(50.5) and p90 == pytest.approx(90.1) and p99 == pytest.approx(99.01)
    stored = {"ort_latency_ms_p50": 1.0, "ort_latency_ms_p90": 2.0, "ort_latency_ms_p99": 3.0, "ort_latency_samples_ms": [9.0]}
    assert percentiles_from_samples(stored, "ort_latency_ms") == (1.0, 2.0, 3.0)
    assert all(math.isnan(v) for v in percentiles_from_samples({}, "latency_ms"))


def test_incomplete_model_gets_no_mean_and_schema_is_checked(tmp_path):
    run = load_run(FIXTURE)
    means = {(r["model"], r["dataset"]): r for r in run.mean_accuracy()}
    assert ("fcn32s", "synthetic") not in means  # its texture job failed: a mean of the rest would flatter it
    assert means[("unet", "synthetic")]["image_auroc"] == pytest.approx((0.968 + 0.905) / 2, abs=1e-4)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.json").write_text(json.dumps({"schema": 2, "provenance": {}, "records": []}))
    with pytest.raises(ValueError, match="schema 2"):
        load_run(bad)


def test_learning_curve_rows_report_the_last_stage(tmp_path):
    from reports.results import Run

    rows = [{"suite": "accuracy", "status": "ok", "model": "m", "dataset": "d", "category": "c",
             "train_minutes": minutes, "image_auroc": auroc} for minutes, auroc in ((1.0, 0.5), (10.0, 0.9), (3.0, 0.7))]
    run = Run(run_dir=tmp_path, provenance={}, records=rows, models=["m"])
    (kept,) = run.accuracy
    assert kept["train_minutes"] == 10.0 and kept["image_auroc"] == 0.9
