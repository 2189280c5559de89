"""The report layer, rendered from the small fixed run in tests/fixtures/small_run (schema 2; its numbers are
made up, see make_fixture.py) and from runs built here. No model is run."""
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
from html import escape
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reports import render_report
from reports.figures import FIGURE_NAMES, pareto_front, place_labels
from reports.figures.pareto import pareto_figure
from reports.figures.per_category import per_category_figure
from reports.figures.sweep import sweep_figure
from reports.figures.variants import variants_figure
from reports.figures.latency import latency_figure
from bench.schema import ResultsError
from reports.run_data import RunView, latency_percentiles, load_run, number
from reports.tables import fmt_interval
from reports.variants import fastest_within

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "small_run"
DATA_PNG = re.compile(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
# The fixture carries operating points (made up, see its make_fixture.py) but no end-to-end or line columns: the
# stage bars and the frontier have nothing to draw from it (tested on constructed runs below).
FIXTURE_FIGURES = tuple(name for name in FIGURE_NAMES if name not in ("e2e_stages", "frontier"))


def fixture_results() -> dict:
    return json.loads((FIXTURE / "results.json").read_text())


def fixture_records() -> list[dict]:
    return fixture_results()["records"]


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


def record(records, **match) -> dict:
    (found,) = [r for r in records if all(r.get(k) == v for k, v in match.items())]
    return found


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


def gid_collections(figure, prefix: str) -> list:
    """The artists (error-bar line collections, bars, lines) whose gid starts with prefix, over all axes."""
    found = []
    for ax in figure.axes:
        for artist in [*ax.collections, *ax.patches, *ax.lines]:
            if (artist.get_gid() or "").startswith(prefix):
                found.append(artist)
    return found


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    out_dir = tmp_path_factory.mktemp("report")
    return out_dir, render_report(FIXTURE, out_dir)


@pytest.fixture(scope="module")
def profile_only(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """The fixture without its accuracy records and without results.csv, rendered to the default place."""
    run_dir = copy_run(tmp_path_factory.mktemp("profile_only"), keep_profile_only)
    return run_dir, render_report(run_dir)


@pytest.fixture(scope="module")
def fixture_run() -> RunView:
    return load_run(FIXTURE)


# ---------------------------------------------------------------------------------------------- files
def test_every_figure_written_as_valid_png_and_svg(rendered):
    out_dir, written = rendered
    assert set(FIGURE_NAMES) == {"latency", "variants", "sweep", "sizes", "pareto", "per_category", "gallery",
                                 "operating_points", "critical_difference", "e2e_stages", "frontier"}
    for name in FIXTURE_FIGURES:
        assert written[f"{name}.png"] == out_dir / f"{name}.png"
        assert_valid_png(out_dir / f"{name}.png")
        assert_valid_svg(out_dir / f"{name}.svg")
    assert {"report.html", "report.md", "results.csv"} <= set(written)
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(written)
    assert "Drawing failed" not in written["report.html"].read_text()


def test_default_out_dir_is_run_report(profile_only):
    run_dir, written = profile_only
    assert written["report.html"] == run_dir / "report" / "report.html"
    assert (run_dir / "report" / "latency.png").is_file()


def test_html_is_self_contained_with_one_embedded_png_per_figure(rendered):
    out_dir, _ = rendered
    html = (out_dir / "report.html").read_text()
    embedded = DATA_PNG.findall(html)
    assert len(embedded) == len(FIXTURE_FIGURES)
    for payload, name in zip(embedded, FIXTURE_FIGURES):
        assert base64.b64decode(payload) == (out_dir / f"{name}.png").read_bytes()
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<(link|iframe|object|embed)\b", html)
    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert not re.search(r"url\(", html)  # no CSS fetch either
    for section in ("provenance", "results", "figures", "failed", "skipped", "how-to-read"):
        assert f'id="{section}"' in html
    tables = ("summary-table", "deployment-table", "variant-table", "profile-table", "accuracy-table",
              "variant-accuracy-table")  # the deployment table: the fixture has operating points
    for table in tables:
        assert f'class="sortable" id="{table}"' in html
    assert html.count('class="sortable"') == len(tables)


def test_report_lists_failed_and_skipped_records_with_their_reasons(rendered):
    out_dir, _ = rendered
    html = (out_dir / "report.html").read_text()
    markdown = (out_dir / "report.md").read_text()
    records = fixture_records()
    failed = [r for r in records if r["status"] == "failed"]
    skipped = [r for r in records if r["status"] == "skipped"]
    assert len(failed) == 2 and len(skipped) == 6
    failed_section = html.split('id="failed"')[1].split('id="skipped"')[0]
    for r in failed:
        assert r["job_id"] in failed_section
        assert escape(r["error"]) in failed_section
        assert f"`{r['job_id']}` ({r['model']}): {r['error']}" in markdown
    skipped_section = html.split('id="skipped"')[1].split('id="how-to-read"')[0]
    for r in skipped:
        assert escape(r["error"]) in skipped_section
        assert f"- {r['model']} {r['variant']} batch {r['batch_size']}: {r['error']}" in markdown
    assert "Failed jobs (2)" in html and "Skipped (6): not failures" in html
    # A skipped record is not a failure: it is not in the failed list.
    assert "torch-fp16 needs CUDA" not in failed_section


# ---------------------------------------------------------------------------------------------- tables
def test_profile_table_shows_every_record_and_its_latency(rendered):
    out_dir, _ = rendered
    html = (out_dir / "report.html").read_text()
    profile_table = html.split('id="profile-table"')[1].split("</table>")[0]
    profile = [r for r in fixture_records() if r["suite"] == "profile"]
    assert profile_table.count("<tr class=") == len(profile)
    for r in profile:
        if r["status"] == "ok":
            assert f'data-sort="{float(r["latency_ms_p50"])!r}"' in profile_table
            assert f">{number(r['latency_ms_p50']):.3g}<" in profile_table or f">{r['latency_ms_p50']:.0f}<" in profile_table
    summary = html.split('id="summary-table"')[1].split("</table>")[0]
    for model in ("vt_adl", "unet", "capsnet_sup", "fcn32s"):
        params = next(r["params"] for r in profile if r["model"] == model)
        assert f">{params:,}<" in summary  # e.g. 24,436,369 for the U-Net


def test_the_rate_is_shown_against_the_best_kernel_as_a_ratio_that_may_exceed_1(rendered):
    out_dir, _ = rendered
    html = (out_dir / "report.html").read_text()
    profile_table = html.split('id="profile-table"')[1].split("</table>")[0]
    assert ">vs best kernel<" in profile_table and "peak" not in profile_table.split("</thead>")[0].replace(
        "peak infer MB", "")
    above = [r for r in fixture_records() if (r.get("best_kernel_ratio") or 0) > 1]
    assert above  # the fixture's unet ort-fp32 at batch 32: faster than the best calibration kernel
    for r in above:
        assert f">{r['best_kernel_ratio']:.2f}<" in profile_table  # x.xx, not capped at 1
    how_to_read = html.split('id="how-to-read"')[1]
    assert "best_kernel_ratio" in how_to_read and "NOT a fraction of the hardware&#x27;s peak" in how_to_read
    assert "may exceed 1" in how_to_read


def test_intervals_are_written_the_same_way_in_html_and_markdown(rendered):
    out_dir, _ = rendered
    html = (out_dir / "report.html").read_text()
    markdown = (out_dir / "report.md").read_text()
    records = fixture_records()
    unet_mean = record(records, model="unet", category="mean", variant="torch-fp32")
    text = f"{unet_mean['image_auroc']:.3f} [{unet_mean['image_auroc_ci_low']:.3f}, {unet_mean['image_auroc_ci_high']:.3f}]"
    assert fmt_interval(unet_mean["image_auroc"], unet_mean["image_auroc_ci_low"], unet_mean["image_auroc_ci_high"]) == text
    assert f">{text}<" in html.split('id="summary-table"')[1].split("</table>")[0]
    assert f">{text}<" in html.split('id="accuracy-table"')[1].split("</table>")[0]
    assert f"| {text} |" in markdown
    # Every per-category row's interval, in both.
    for r in records:
        if r["suite"] == "accuracy" and r["status"] == "ok" and r["variant"] == "torch-fp32" and r["category"] != "mean":
            cell = f"{r['image_auroc']:.3f} [{r['image_auroc_ci_low']:.3f}, {r['image_auroc_ci_high']:.3f}]"
            assert f">{cell}<" in html and f"| {cell} |" in markdown
    # Deltas are signed, with their paired interval.
    static = record(records, model="unet", category="mean", variant="ort-int8-static")
    delta = f"{static['image_auroc_delta']:+.3f} [{static['image_auroc_delta_ci_low']:+.3f}, {static['image_auroc_delta_ci_high']:+.3f}]"
    assert delta.startswith("-0.03")
    assert f">{delta}<" in html and f"| {delta} |" in markdown
    # The seed-to-seed spread is its own column, not folded into the interval.
    assert f">±{unet_mean['image_auroc_seed_std']:.3f}<" in html
    assert f"| ±{unet_mean['image_auroc_seed_std']:.3f} |" in markdown
    assert unet_mean["n_seeds"] == 2


def test_fmt_interval_rule():
    assert fmt_interval(0.7912, 0.7071, 0.8634) == "0.791 [0.707, 0.863]"
    assert fmt_interval(0.79, None, None) == "0.790"
    assert fmt_interval(-0.0041, -0.0112, 0.0031, signed=True) == "-0.004 [-0.011, +0.003]"
    assert fmt_interval(None) == fmt_interval(float("nan")) == "–"


def test_undefined_metrics_are_empty_with_their_reason_never_zero(rendered):
    out_dir, _ = rendered
    html = (out_dir / "report.html").read_text()
    markdown = (out_dir / "report.md").read_text()
    capsnet_mean = record(fixture_records(), model="capsnet_sup", category="mean", variant="torch-fp32")
    # the first of its reasons is the pixel metrics' (the operating points' follow, after '; ')
    assert capsnet_mean["undefined_metrics"].startswith("pixel_auroc, pixel_ap, aupro: ")
    reason = capsnet_mean["undefined_metrics"].split("; ")[0].split(":", 1)[1].strip()
    summary = html.split('id="summary-table"')[1].split("</ul>")[0]
    row = next(line for line in summary.split("<tr") if ">capsnet_sup<" in line)
    cells = re.findall(r"<td([^>]*)>(.*?)</td>", row)
    undefined = [(attrs, body) for attrs, body in cells if "undefined" in attrs]
    assert len(undefined) == 2  # pixel AUROC and AUPRO
    for attrs, body in undefined:
        assert f'title="undefined: {escape(reason)}"' in attrs
        assert re.fullmatch(r"<sup>\[\d\]</sup>", body)  # a footnote mark, no number
    assert f"pixel AUROC [95% CI], AUPRO@0.3 [95% CI]: undefined: {escape(reason)}" in summary
    assert f"pixel AUROC [95% CI], AUPRO@0.3 [95% CI]: undefined: {reason}" in markdown
    md_row = next(line for line in markdown.splitlines() if line.startswith("| capsnet_sup | detector | synthetic |"))
    assert "0.000" not in md_row and md_row.count("[1]") == 2


def test_fastest_variant_column_on_the_fixture(rendered, fixture_run):
    """The fixture is built so that the fastest variant must not be chosen for unet (outside 0.01) nor for
    vt_adl (its delta was not measured)."""
    out_dir, _ = rendered
    records = fixture_records()

    def p50(model, variant):
        return record(records, model=model, variant=variant, batch_size=1, suite="profile")["latency_ms_p50"]

    expected = {"unet": "ort-int8-dynamic", "vt_adl": "ort-fp32", "capsnet_sup": "ort-fp32"}
    summary = (out_dir / "report.html").read_text().split('id="summary-table"')[1].split("</table>")[0]
    markdown = (out_dir / "report.md").read_text()
    for model, variant in expected.items():
        choice, _ = fastest_within(fixture_run, model, "synthetic")
        assert choice.variant == variant
        assert choice.speedup == pytest.approx(p50(model, "torch-fp32") / p50(model, variant))
        text = f"{variant} (x{choice.speedup:.2f})"
        assert f">{text}<" in summary and f" {text} |" in markdown
    # The ones that were faster but not allowed:
    assert p50("unet", "ort-int8-static") < p50("unet", "ort-int8-dynamic")
    assert p50("vt_adl", "torch-compile") < p50("vt_adl", "ort-fp32")
    choice, note = fastest_within(fixture_run, "fcn32s", "synthetic")
    assert choice is None and "no variant's accuracy delta was measured" in note


def constructed_run(tmp_path: Path, deltas: dict[str, float | None], p50s: dict[str, float]) -> RunView:
    """One model on one dataset with one category; deltas[variant] None: timed but accuracy not evaluated."""
    records = []
    for variant, p50 in p50s.items():
        records.append({"suite": "profile", "status": "ok", "model": "m", "variant": variant, "batch_size": 1, "latency_ms_p50": p50,
                        "latency_ms_p90": p50 * 1.1, "latency_ms_p99": p50 * 1.2})
    for variant, delta in {"torch-fp32": 0.0, **deltas}.items():
        if delta is None:
            continue
        row = {"suite": "accuracy", "status": "ok", "model": "m", "variant": variant, "dataset": "d", "category": "mean",
               "image_auroc": 0.9 + delta}
        if variant != "torch-fp32":
            row["image_auroc_delta"] = delta
        records.append(row)
    return RunView(run_dir=tmp_path, provenance={}, records=records, models=["m"])


def test_fastest_within_picks_the_fastest_measured_variant_inside_the_tolerance(tmp_path):
    p50s = {"torch-fp32": 10.0, "ort-fp32": 8.0, "ort-int8-dynamic": 7.0, "ort-int8-static": 5.0, "torch-compile": 4.0}
    deltas = {"ort-fp32": 0.0, "ort-int8-dynamic": -0.005, "ort-int8-static": -0.02, "torch-compile": None}
    choice, note = fastest_within(constructed_run(tmp_path, deltas, p50s), "m", "d")
    # ort-int8-static is faster but 0.02 below; torch-compile is fastest but its accuracy was not evaluated.
    assert choice.variant == "ort-int8-dynamic"
    assert choice.speedup == pytest.approx(10.0 / 7.0)
    assert "torch-compile" in note.split("left out")[1]
    # The tolerance is inclusive and applies to the point estimate; an improvement always qualifies.
    deltas["ort-int8-static"] = -0.01
    assert fastest_within(constructed_run(tmp_path, deltas, p50s), "m", "d")[0].variant == "ort-int8-static"
    deltas["ort-int8-static"] = 0.03
    assert fastest_within(constructed_run(tmp_path, deltas, p50s), "m", "d")[0].variant == "ort-int8-static"
    # Nothing faster inside the tolerance: torch-fp32 itself, x1.00.
    slow = {"torch-fp32": 10.0, "ort-fp32": 12.0, "ort-int8-static": 5.0}
    choice, _ = fastest_within(constructed_run(tmp_path, {"ort-fp32": 0.0, "ort-int8-static": -0.05}, slow), "m", "d")
    assert (choice.variant, choice.speedup) == ("torch-fp32", 1.0)
    # No variant evaluated for accuracy at all: no answer rather than a guess.
    choice, note = fastest_within(constructed_run(tmp_path, {"ort-fp32": None}, {"torch-fp32": 10.0, "ort-fp32": 2.0}), "m", "d")
    assert choice is None and "no variant's accuracy delta" in note


# ---------------------------------------------------------------------------------------------- figures
def test_pareto_figure_draws_intervals_and_the_seed_spread(fixture_run, rendered):
    figure = pareto_figure(fixture_run).figure
    records = fixture_records()
    image_panel = figure.axes[0]
    means = {r["model"]: r for r in records if r["suite"] == "accuracy" and r["category"] == "mean" and r["variant"] == "torch-fp32"}
    assert set(means) == {"vt_adl", "unet", "capsnet_sup"}
    for model, mean in means.items():
        whiskers = [c for c in image_panel.collections if c.get_gid() == f"interval-image-image_auroc-{model}"]
        assert len(whiskers) == 2
        (vertical,) = [c for c in whiskers if c.get_segments()[0][0][0] == c.get_segments()[0][1][0]]
        (horizontal,) = [c for c in whiskers if c is not vertical]
        # The vertical whisker spans the stored 95% interval, at the torch-fp32 p50.
        (segment,) = vertical.get_segments()
        torch_row = record(records, model=model, variant="torch-fp32", batch_size=1, suite="profile")
        assert segment[0][0] == pytest.approx(torch_row["latency_ms_p50"])
        assert sorted(p[1] for p in segment) == pytest.approx([mean["image_auroc_ci_low"], mean["image_auroc_ci_high"]])
        # The horizontal one spans p10-p90 of the raw latency samples.
        (segment,) = horizontal.get_segments()
        assert sorted(p[0] for p in segment) == pytest.approx(list(np.percentile(torch_row["latency_samples_ms"], [10, 90])))
    # Pixel panel: pixel AUROC and AUPRO of the two models with maps.
    assert len(gid_collections(figure, "interval-pixel-pixel_auroc-")) == 2 * 2
    assert len(gid_collections(figure, "interval-pixel-aupro-")) == 2 * 2
    # Seed spread: only unet has two seeds; drawn as its own bar, +-1 std.
    (spread,) = gid_collections(figure, "seed-spread-image-image_auroc-")
    assert spread.get_gid().endswith("-unet")
    ys = sorted(p[1] for p in spread.get_segments()[0])
    std = means["unet"]["image_auroc_seed_std"]
    assert ys == pytest.approx([means["unet"]["image_auroc"] - std, means["unet"]["image_auroc"] + std])
    # The saved SVG names them too.
    svg = (rendered[0] / "pareto.svg").read_text()
    assert svg.count('id="interval-image-image_auroc-') == 2 * 3
    assert 'id="seed-spread-image-image_auroc-unet"' in svg


def test_per_category_view_draws_one_interval_per_model_and_category(fixture_run):
    figure = per_category_figure(fixture_run).figure
    records = fixture_records()
    image_panel, aupro_panel = figure.axes[:2]
    reference = [r for r in records if r["suite"] == "accuracy" and r["status"] == "ok" and r["variant"] == "torch-fp32"]
    for panel, metric in ((image_panel, "image_auroc"), (aupro_panel, "aupro")):
        drawn = [c for c in panel.collections if (c.get_gid() or "").startswith(f"interval-{metric}-")]
        expected = {(r["model"], r["category"]) for r in reference if r.get(metric) is not None}
        assert len(drawn) == len(expected)  # one whisker per (model, category), the mean block included
        spans = sorted(tuple(sorted(p[0] for p in c.get_segments()[0])) for c in drawn)
        # A single-seed row's whisker is its stored interval.
        for r in reference:
            if r["model"] != "unet" and r.get(metric) is not None:
                assert (pytest.approx(r[f"{metric}_ci_low"]), pytest.approx(r[f"{metric}_ci_high"])) in spans
    # capsnet_sup has no AUPRO: its rows say why instead of a zero.
    texts = [t.get_text() for t in aupro_panel.texts]
    assert sum(t.startswith("undefined: capsnet_sup scores whole images") for t in texts) == 3
    assert "failed" in [t.get_text() for t in image_panel.texts]  # fcn32s texture
    # unet's two seeds: each seed's own value drawn (open diamonds), in texture, object and the mean block;
    # its whisker is the seeds' intervals averaged, centred on the mean over seeds.
    diamonds = [line for line in image_panel.lines if line.get_marker() == "D"]
    assert len(diamonds) == 2 * 3
    seeds = [r for r in reference if r["model"] == "unet" and r["category"] == "texture"]
    assert sorted(r["seed"] for r in seeds) == [0, 1]
    diamond_x = sorted(float(line.get_xdata()[0]) for line in diamonds)
    assert all(any(x == pytest.approx(r["image_auroc"]) for x in diamond_x) for r in seeds)
    spans = [sorted(p[0] for p in c.get_segments()[0]) for c in image_panel.collections if c.get_gid() == "interval-image_auroc-unet"]
    expected = [sum(r["image_auroc_ci_low"] for r in seeds) / 2, sum(r["image_auroc_ci_high"] for r in seeds) / 2]
    assert any(span == pytest.approx(expected) for span in spans)


def test_skipped_or_failed_variant_is_not_drawn_as_a_zero_bar(fixture_run):
    figure = variants_figure(fixture_run).figure
    bars = gid_collections(figure, "bar-")
    ok_variants = [r for r in fixture_records() if r["suite"] == "profile" and r["status"] == "ok" and r["batch_size"] == 1]
    assert len(bars) == len(ok_variants)
    assert all(bar.get_width() > 0 for bar in bars)
    assert not gid_collections(figure, "bar-unet-torch-fp16") and not gid_collections(figure, "bar-fcn32s-ort-fp32")
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert sum(t.startswith("skipped: ") for t in texts) == 5 and sum(t.startswith("failed: ") for t in texts) == 1
    # The accuracy delta is written beside each evaluated variant; the fastest-within choice is starred.
    beside = [t.get_text() for t in figure.axes[1].texts]
    static = record(fixture_records(), model="unet", category="mean", variant="ort-int8-static")
    assert fmt_interval(static["image_auroc_delta"], static["image_auroc_delta_ci_low"], static["image_auroc_delta_ci_high"], signed=True) in beside
    assert sum(t.endswith("\u2605") for t in beside) == 3
    # The seed's Fig. 5 view: no ORT bar for fcn32s (failed), said in words.
    latency = latency_figure(fixture_run).figure
    assert "ort-fp32: failed" in [t.get_text() for t in latency.axes[0].texts]
    assert len(latency.axes[0].patches) == 4 + 3  # torch-fp32 for all four models, ort-fp32 for three


def test_sweep_marks_the_out_of_memory_end(fixture_run):
    figure = sweep_figure(fixture_run).figure
    throughput, memory = figure.axes[:2]
    records = fixture_records()
    swept = [r for r in records if r["model"] == "unet" and r["variant"] == "torch-fp32" and r["suite"] == "profile"]
    ok = [r for r in swept if r["status"] == "ok"]
    (line,) = [line for line in memory.lines if line.get_gid() == "sweep-unet-torch-fp32"]
    assert list(line.get_xdata()) == [r["batch_size"] for r in ok] == [1, 2, 4, 8, 16]
    assert list(line.get_ydata()) == pytest.approx([r["peak_infer_mb"] for r in ok])
    for ax in (throughput, memory):
        (oom,) = [line for line in ax.lines if line.get_gid() == "oom-unet-torch-fp32"]
        assert list(oom.get_xdata()) == [32]
    assert any("out of memory\nat batch 32" == t.get_text() for t in throughput.texts)
    # ONNX Runtime exposes no peak: no line in the memory panel (not a line at zero), one in throughput.
    assert not [line for line in memory.lines if line.get_gid() == "sweep-unet-ort-fp32"]
    (ort,) = [line for line in throughput.lines if line.get_gid() == "sweep-unet-ort-fp32"]
    assert list(ort.get_xdata()) == [1, 2, 4, 8, 16, 32]


# ---------------------------------------------------------------------------------------------- robustness
def test_csv_copy_matches_the_records(rendered):
    out_dir, _ = rendered
    with (out_dir / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    records = fixture_records()
    assert [row["job_id"] for row in rows] == [r["job_id"] for r in records]
    for row, r in zip(rows, records):
        if r["suite"] == "profile" and r["status"] == "ok":
            assert float(row["latency_ms_p50"]) == r["latency_ms_p50"]
            assert int(row["params"]) == r["params"]
        assert "latency_samples_ms" not in row  # raw sample lists stay in the JSON


def test_csv_rebuilt_from_records_when_run_has_none(profile_only):
    _, written = profile_only  # copy_run leaves results.csv behind
    with written["results.csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["job_id"] for row in rows] == [r["job_id"] for r in fixture_records() if r["suite"] == "profile"]
    assert "latency_samples_ms" not in rows[0]
    assert rows[0]["params"] == str(fixture_records()[0]["params"])


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
    # of bench, only the results schema, the number formatter and the statistics behind the ranking and the
    # operating points (numpy, scipy, scikit-learn): no torch behind them
    assert set(json.loads(completed.stdout.strip().splitlines()[-1])) <= {
        "bench", "bench.schema", "bench.formatting", "bench.ranking", "bench.operating_points", "bench.metrics",
        "bench.stats"}
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in out_dir.iterdir())
    for path in out_dir.iterdir():  # no dates or random ids in the files: the same run gives the same bytes
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name


def test_run_with_more_failures_still_draws_every_figure(tmp_path):
    def fail_more(records):
        for r in records:
            if r["model"] == "vt_adl" and r["suite"] == "profile" and r["status"] == "ok":
                r.update(status="failed", error="ValueError: ONNX export failed at op aten::unflatten")
                for key in [k for k in r if k.startswith(("latency", "peak_infer", "onnx_", "throughput"))]:
                    r[key] = None  # the probe died before measuring these
            if r["model"] == "unet" and r.get("category") == "object" and r.get("seed") == 1 and r["variant"] == "torch-fp32":
                r.update(status="failed", error="RuntimeError: loss is NaN at step 12")

    run_dir = copy_run(tmp_path, fail_more)
    written = render_report(run_dir, tmp_path / "out")
    for name in FIXTURE_FIGURES:
        assert_valid_png(written[f"{name}.png"])
    html = written["report.html"].read_text()
    assert len(DATA_PNG.findall(html)) == len(FIXTURE_FIGURES)
    assert "ValueError: ONNX export failed at op aten::unflatten" in html
    assert "RuntimeError: loss is NaN at step 12" in html
    n_failed = sum(r["status"] == "failed" for r in json.loads((run_dir / "results.json").read_text())["records"])
    assert f"Failed jobs ({n_failed})" in html and n_failed == 2 + 5 + 1
    assert "Drawing failed" not in html


def test_run_without_accuracy_skips_those_figures_with_a_note(profile_only):
    run_dir, written = profile_only
    out_dir = run_dir / "report"
    for name in ("latency", "variants", "sweep", "sizes"):
        assert {f"{name}.png", f"{name}.svg"} <= set(written)
    not_drawn = ("pareto", "e2e_stages", "frontier", "per_category", "gallery", "operating_points",
                 "critical_difference")
    for name in not_drawn:
        assert f"{name}.png" not in written and not (out_dir / f"{name}.png").exists()
    html = written["report.html"].read_text()
    assert len(DATA_PNG.findall(html)) == 4
    assert html.count("Figure not drawn.") == len(not_drawn)
    assert "No successful accuracy record in this run" in html
    assert "not drawn" in written["report.md"].read_text()
    # No accuracy: the fastest-variant column cannot answer, and says so instead of guessing.
    assert "no variant&#x27;s accuracy delta was measured" in html or "no accuracy measured" in html


def test_run_without_a_sweep_or_variants_still_renders(tmp_path):
    def plain(records):
        records[:] = [r for r in records if r.get("batch_size") == 1 and r["variant"] in ("torch-fp32", "ort-fp32")]

    written = render_report(copy_run(tmp_path, plain), tmp_path / "out")
    html = written["report.html"].read_text()
    assert "sweep.png" not in written and "No model was measured at more than one batch size" in html
    assert {"latency.png", "variants.png", "pareto.png", "per_category.png"} <= set(written)


def test_rerender_removes_figures_that_are_no_longer_drawn(tmp_path):
    run_dir = copy_run(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "gallery.png").write_bytes(b"stale")
    results = json.loads((run_dir / "results.json").read_text())
    for r in results["records"]:
        r["gallery_file"] = ""
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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.text import Text

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
    r = {"latency_samples_ms": [float(v) for v in range(1, 101)], "latency_ms_p50": None}
    p50, p90, p99 = latency_percentiles(r)
    assert p50 == pytest.approx(50.5) and p90 == pytest.approx(90.1) and p99 == pytest.approx(99.01)
    assert latency_percentiles(r, (10,)) == (pytest.approx(10.9),)
    stored = {"latency_ms_p50": 1.0, "latency_ms_p90": 2.0, "latency_ms_p99": 3.0, "latency_samples_ms": [9.0]}
    assert latency_percentiles(stored) == (1.0, 2.0, 3.0)
    assert all(math.isnan(v) for v in latency_percentiles({}))


def test_load_run_takes_the_directory_or_the_file():
    assert load_run(FIXTURE / "results.json").run_dir == load_run(FIXTURE).run_dir == FIXTURE
    with pytest.raises(ResultsError, match="results.json: no such file"):
        load_run(FIXTURE / "gallery")


def test_incomplete_model_gets_no_mean(fixture_run):
    means = {(r["model"], r["dataset"]): r for r in fixture_run.mean_accuracy()}
    assert ("fcn32s", "synthetic") not in means  # its texture job failed: a mean of the rest would flatter it
    unet = [r for r in fixture_records() if r["model"] == "unet" and r["variant"] == "torch-fp32" and r["suite"] == "accuracy"
            and r["category"] != "mean"]
    assert len(unet) == 4  # two categories x two seeds
    assert means[("unet", "synthetic")]["image_auroc"] == pytest.approx(sum(r["image_auroc"] for r in unet) / 4, abs=1e-4)


@pytest.mark.parametrize("content, says", [
    ({"schema": 1, "provenance": {}, "records": []}, "results schema 1; this defectbench reads schema 2"),
    ({"schema": 3, "provenance": {}, "records": []}, "results schema 3; this defectbench reads schema 2"),
    ({"provenance": {}, "records": []}, "results schema None"),
    ({"schema": 2}, "not a defectbench results file"),
    ("{ not json", "not a defectbench results file (not JSON"),
])
def test_other_schema_or_garbage_is_refused_in_one_line(tmp_path, content, says):
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ResultsError) as caught:
        load_run(run_dir)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(run_dir / "results.json") + ": ") and says in message
    if "schema" in says and "None" not in says:
        assert "re-run the suite" in message
    with pytest.raises(ResultsError):
        render_report(run_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before writing anything


def test_bench_report_exits_2_on_another_schema(tmp_path):
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps({"schema": 1, "provenance": {}, "records": []}))
    completed = subprocess.run([sys.executable, "-m", "bench.cli", "report", str(run_dir)], cwd=REPO, capture_output=True,
                               text=True, timeout=300)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and str(run_dir / "results.json") in lines[0] and "schema 2" in lines[0]


def test_learning_curve_rows_report_the_last_stage_per_seed_and_variant(tmp_path):
    rows = [{"suite": "accuracy", "status": "ok", "model": "m", "dataset": "d", "category": "c", "seed": seed, "variant": variant,
             "train_minutes": minutes, "image_auroc": auroc}
            for seed in (0, 1) for variant in ("torch-fp32", "ort-fp32")
            for minutes, auroc in ((1.0, 0.5), (10.0, 0.9 + seed / 100), (3.0, 0.7))]
    run = RunView(run_dir=tmp_path, provenance={}, records=rows, models=["m"])
    kept = run.accuracy
    assert len(kept) == 4
    assert all(r["train_minutes"] == 10.0 for r in kept)
    assert sorted(r["image_auroc"] for r in run.category_rows("m", "d", "c")) == [0.9, 0.91]


def test_gallery_colour_scale_ignores_one_extreme_logit():
    """Logit maps: one pixel at 10,000 must not draw every other map black; the defects stay at the top."""
    from reports.figures.gallery import map_colour_range

    rng = np.random.default_rng(0)
    maps = rng.normal(0.0, 1.0, size=(10, 32, 32)).astype(np.float32)
    maps[1:4, 10:14, 10:14] = 5.0  # three small defects, 0.5% of the pixels
    maps[0, 0, 0] = 1e4
    low, high = map_colour_range(maps)
    assert high < 10.0 and low > -5.0
    assert (5.0 - low) / (high - low) > 0.9  # a defect pixel is near the top of the scale (min-max put it at 0.0007)
    assert (np.percentile(maps, 50) - low) / (high - low) < 0.6
    constant = np.full((2, 4, 4), 3.0, dtype=np.float32)
    assert map_colour_range(constant) == (3.0, 4.0)
    assert map_colour_range(np.full((1, 2, 2), np.nan, dtype=np.float32)) == (0.0, 1.0)


def test_a_narrow_figure_wraps_its_title_and_subtitle_inside_its_width():
    from reports.figures.common import new_figure

    title = "Heat-map gallery: test image, ground truth and each model's anomaly map with its score"
    subtitle = "cpu, AMD EPYC, 1 thread | 128x128 px\nmaps: each model scaled to the 1st-99.5th percentile of its values"
    fig = new_figure(3.5, 4.0, title, subtitle)
    renderer = fig.canvas.get_renderer()
    width_px = fig.get_figwidth() * fig.dpi
    texts = [t for t in fig.texts if t.get_text()]
    assert len(texts) == 2 and texts[0].get_text().count("\n") >= 1  # the title took more than one line
    for text in texts:
        box = text.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= width_px, text.get_text()
    title_box, subtitle_box = (t.get_window_extent(renderer) for t in texts)
    assert subtitle_box.y1 <= title_box.y0 + 1  # the subtitle starts below the wrapped title, not over it


# ---------------------------------------------------------------------------------------------- end to end, line
def add_e2e_and_line(records: list[dict], recall: bool = False) -> None:
    """The fixture's torch-fp32 and ort-fp32 rows at batch 1 get end-to-end stage columns and a line result for two
    policies; with `recall`, every mean accuracy row gets a recall at 1% false alarms with an interval."""
    from bench.schema import unknown_columns

    for i, r in enumerate(records):
        if r["suite"] == "profile" and r["status"] == "ok" and r["variant"] in ("torch-fp32", "ort-fp32") \
                and r.get("batch_size") == 1:
            means = {"decode": 14.0, "preprocess": 3.5, "network": 5.0 + 10 * (i % 3), "postprocess": 1.0,
                     "threshold": 0.01}
            for stage, value in means.items():
                r.update({f"e2e_{stage}_ms_mean": value, f"e2e_{stage}_ms_p50": value, f"e2e_{stage}_ms_p99": 1.2 * value})
            total = sum(means.values())
            r.update(e2e_total_ms_mean=total, e2e_total_ms_p50=total, e2e_total_ms_p99=1.3 * total,
                     e2e_outside_network_share=1 - means["network"] / total, e2e_camera_size="1024x1024",
                     e2e_encoding="png", e2e_decoder="PIL.Image.open + convert('RGB') (Pillow 11)", line_deadline_ms=100.0)
            rate = 1e3 / total
            r.update(line_b1_policy="batch 1", line_b1_sustainable_rate_hz=rate, line_b1_failing_rate_hz=1.04 * rate,
                     line_b4w20_policy="dynamic B=4 W=20ms", line_b4w20_sustainable_rate_hz=1.3 * rate,
                     line_b4w20_failing_rate_hz=1.36 * rate, line_b1_miss_rate_x1p2=0.6)
            assert unknown_columns(r) == []
        if recall and r["suite"] == "accuracy" and r.get("category") == "mean":
            r.update(image_recall_at_fpr_1pct=0.5, image_recall_at_fpr_1pct_ci_low=0.4,
                     image_recall_at_fpr_1pct_ci_high=0.6)


def test_e2e_stage_bars_and_the_frontier_are_drawn_from_records_that_have_the_columns(tmp_path):
    from reports.figures.e2e_stages import e2e_stages_figure
    from reports.figures.frontier import frontier_figure

    run = load_run(copy_run(tmp_path, add_e2e_and_line))
    stages = e2e_stages_figure(run)
    assert stages.figure is not None, stages.notes
    bars = gid_collections(stages.figure, "e2e-")
    models = {r["model"] for r in run.profile if "e2e_total_ms_mean" in r}
    assert len(bars) == 5 * sum(1 for r in run.profile if "e2e_total_ms_mean" in r) and models
    frontier = frontier_figure(run)
    assert frontier.figure is not None, frontier.notes
    # one point per model x variant x policy that has a mean accuracy, each with its rate whisker
    with_accuracy = {r["model"] for r in run.mean_accuracy()}
    expected = sum(2 for r in run.profile if "line_b1_sustainable_rate_hz" in r and r["model"] in with_accuracy)
    assert expected and len(gid_collections(frontier.figure, "frontier-point-")) == expected
    assert len({a.get_gid() for a in gid_collections(frontier.figure, "frontier-interval-")}) == expected
    assert any("image AUROC" in n for n in frontier.notes)  # the fixture has no recall at 1% false alarms
    assert "recall" not in frontier.figure.axes[0].get_ylabel()


def test_the_frontier_uses_recall_at_1pct_false_alarms_where_every_point_has_it(tmp_path):
    from reports.figures.frontier import frontier_figure

    run = load_run(copy_run(tmp_path, lambda records: add_e2e_and_line(records, recall=True)))
    result = frontier_figure(run)
    assert result.figure is not None
    assert "recall at 1% false alarms" in result.figure.axes[0].get_ylabel()
    assert not any("image AUROC" in n for n in result.notes)


def test_without_e2e_columns_both_sections_say_not_measured(rendered):
    out_dir, written = rendered
    html = written["report.html"].read_text()
    for name in ("e2e_stages", "frontier"):
        assert f"{name}.png" not in written
    assert "No end-to-end stage latency in this run (not measured" in html
    assert "No line scenario in this run (sustainable rate not measured" in html
    assert "sustainable rate and the deployer" in html  # the how-to-read entry


def test_the_report_embeds_both_figures_when_the_run_has_them(tmp_path):
    written = render_report(copy_run(tmp_path, add_e2e_and_line), tmp_path / "out")
    assert {"e2e_stages.png", "frontier.png"} <= set(written)
    for name in ("e2e_stages", "frontier"):
        assert_valid_png(written[f"{name}.png"])
    assert "Drawing failed" not in written["report.html"].read_text()
