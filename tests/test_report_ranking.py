"""The report's decision sections, from runs built here with per-image scores and operating points (the fixture
tests/fixtures/small_run has made-up operating points but no per-image scores): the deployment table, the
operating-point figure, the ranking section and the critical-difference diagram. No model is run."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from bench.operating_points import operating_points_with_intervals
from reports import render_report
from reports.deployment import deployment_columns, deployment_rows, has_operating_points
from reports.figures.critical_difference import critical_difference_figure
from reports.figures.operating_points import miss_false_alarm_curve, operating_points_figure
from reports.html import records_table
from reports.ranking import across_categories, category_comparisons, ranking_html
from reports.run_data import RunView, load_run

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "small_run"


def accuracy_records(separations: dict[str, float], categories=("brushed_metal", "wood", "tiles"), n_normal=120,
                     n_defect=60, n_val=100, seed=0, twins: dict[str, str] | None = None) -> list[dict]:
    """torch-fp32 accuracy records of made-up models on the same test images: normal scores N(0, 1), defect
    scores N(separation, 1), validation normals N(0, 1); twins[name] = other: `name` scores like `other` up to
    noise of 1e-3 (an equally good model). Operating points from bench.operating_points (200 resamples)."""
    rng = np.random.default_rng(seed)
    twins = twins or {}
    out = []
    for category in categories:
        labels = np.r_[np.zeros(n_normal, int), np.ones(n_defect, int)]
        made: dict[str, np.ndarray] = {}
        for model in [*separations, *twins]:
            if model in twins:
                scores = made[twins[model]] + 1e-3 * rng.standard_normal(labels.size)
            else:
                scores = rng.standard_normal(labels.size) + separations[model] * labels
            made[model] = scores
            points = operating_points_with_intervals(rng.standard_normal(n_val), labels, scores, resamples=200, seed=1)
            out.append({"suite": "accuracy", "status": "ok", "model": model, "variant": "torch-fp32",
                        "dataset": "synthetic", "category": category, "seed": 0,
                        "image_auroc": float(roc_auc_score(labels, scores)), "scores": [float(s) for s in scores],
                        "labels": [int(v) for v in labels], "n_test": int(labels.size), **points})
    return out


def profile_records(models) -> list[dict]:
    return [{"suite": "profile", "status": "ok", "model": m, "variant": "torch-fp32", "batch_size": 1,
             "latency_ms_p50": 2.0 + i, "latency_ms_p90": 2.5 + i, "latency_ms_p99": 3.0 + i} for i, m in enumerate(models)]


def make_run(tmp_path: Path, records: list[dict]) -> RunView:
    models = list(dict.fromkeys(r["model"] for r in records))
    return RunView(run_dir=tmp_path, provenance={"device": "cpu"}, records=records, models=models)


def write_run(tmp_path: Path, records: list[dict]) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps({"schema": 2, "provenance": {"device": "cpu"}, "records": records}))
    return run_dir


def render_cells(run: RunView) -> tuple[list[str], list[dict]]:
    """Headers and, per row, header -> Cell of the deployment table."""
    columns = deployment_columns(run)
    return [c.header for c in columns], [{c.header: c.render(r) for c in columns} for r in deployment_rows(run)]


@pytest.fixture(scope="module")
def three_models() -> list[dict]:
    """strong and its twin (equally good), weak (clearly worse), on three categories of 120 + 60 test images."""
    return accuracy_records({"strong": 3.0, "weak": 0.4}, twins={"twin": "strong"}) + profile_records(["strong", "weak", "twin"])


# -- the deployment table ----------------------------------------------------------------------------------------

def test_deployment_table_shows_each_rate_in_percent_with_its_interval_and_the_latency(tmp_path, three_models):
    run = make_run(tmp_path, three_models)
    headers, rows = render_cells(run)
    assert "false alarms % at the 1% threshold [95% CI]" in headers and "misses % at the 5% threshold [95% CI]" in headers
    assert "recall % at 1% false alarms [95% CI]" in headers and "torch-fp32 p50 ms" in headers
    record = next(r for r in three_models if r.get("model") == "weak" and r.get("category") == "wood")
    row = next(c for r, c in zip(deployment_rows(run), rows) if r["model"] == "weak" and r["category"] == "wood")
    for key, header in (("image_fpr_at_val_thr_1pct", "false alarms % at the 1% threshold [95% CI]"),
                        ("image_miss_rate_at_val_thr_5pct", "misses % at the 5% threshold [95% CI]"),
                        ("image_recall_at_fpr_1pct", "recall % at 1% false alarms [95% CI]")):
        value, low, high = (100 * record[key], 100 * record[f"{key}_ci_low"], 100 * record[f"{key}_ci_high"])
        assert row[header].text == f"{value:.1f} [{low:.1f}, {high:.1f}]", header
        assert low <= value <= high
    assert row["threshold from"].text == "validation normals: 100 images, target 1%/5%"
    assert row["torch-fp32 p50 ms"].text == "3"
    # one row per category and a mean row per model, the mean without an interval
    assert [r["category"] for r in deployment_rows(run) if r["model"] == "weak"] == ["brushed_metal", "wood", "tiles", "mean"]
    html = records_table(deployment_rows(run), deployment_columns(run), "deployment-table")
    assert "[" in html and "the model gives no anomaly maps" in html  # pixel F1: no maps in these records


def test_deployment_cells_that_are_undefined_are_empty_with_the_records_reason(tmp_path):
    # 30 validation normals cannot locate 1% (needs 100); 40 test normals cannot give recall at 1% false alarms.
    records = accuracy_records({"m": 2.0}, categories=("wood",), n_normal=40, n_defect=30, n_val=30)
    run = make_run(tmp_path, records + profile_records(["m"]))
    _, rows = render_cells(run)
    (row,) = rows
    miss = row["misses % at the 1% threshold [95% CI]"]
    assert miss.text == "" and "30 validation normal images but a 1% operating point needs at least 100" in miss.note
    recall = row["recall % at 1% false alarms [95% CI]"]
    assert recall.text == "" and "40 test normal images but a 1% false-alarm operating point needs at least 100" in recall.note
    assert row["false alarms % at the 5% threshold [95% CI]"].text not in ("", "–")  # 5% needs only 20
    html = records_table(deployment_rows(run), deployment_columns(run), "deployment-table")
    assert "30 validation normal images but a 1% operating point needs at least 100" in html
    assert not re.search(r">0\.0 \[", html.split("misses % at the 1% threshold")[0])  # never a zero for undefined


def without_operating_points(run_dir: Path, target: Path) -> Path:
    """A copy of a run's results.json with every operating-point column taken out (records written before them)."""
    from bench.schema import OPERATING_POINT_COLUMNS, operating_point_parts

    results = json.loads((run_dir / "results.json").read_text())
    results["records"] = [{k: v for k, v in r.items() if k not in OPERATING_POINT_COLUMNS
                           and operating_point_parts(k) is None} for r in results["records"]]
    target.mkdir()
    (target / "results.json").write_text(json.dumps(results))
    return target


def test_records_without_operating_points_get_no_deployment_table_and_say_why_per_cell(tmp_path):
    assert has_operating_points(load_run(FIXTURE))  # the fixture has them (made up): a deployment table
    assert "deployment-table" in render_report(FIXTURE, tmp_path / "with")["report.html"].read_text()
    older = without_operating_points(FIXTURE, tmp_path / "older")
    assert not has_operating_points(load_run(older))
    out = render_report(older, tmp_path / "out")
    assert "deployment-table" not in out["report.html"].read_text()
    # a run where one model has them and another (older record) has not: the older one's cells say so
    records = accuracy_records({"new": 2.0}, categories=("wood",))
    old = {k: v for k, v in records[0].items() if not k.startswith(("image_", "pixel_", "val_", "operating_"))}
    old.update(model="old", image_auroc=0.8)
    run = make_run(tmp_path, records + [old])
    _, rows = render_cells(run)
    old_cells = next(c for r, c in zip(deployment_rows(run), rows) if r["model"] == "old")
    assert "not in this record" in old_cells["false alarms % at the 1% threshold [95% CI]"].note


# -- the operating-point figure ------------------------------------------------------------------------------

def test_the_curve_is_misses_against_false_alarms_with_alarm_above_the_threshold():
    labels = np.array([0, 0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.5, 1.0])
    false_alarms, misses = miss_false_alarm_curve(labels, scores)
    points = set(zip(false_alarms.round(3), misses.round(3)))
    # threshold below everything: all flagged; at 0.3: only the 0.9 normal flagged, both defects caught;
    # at 0.5: one defect missed; at 1.0: nothing flagged
    assert {(1.0, 0.0), (0.25, 0.0), (0.25, 0.5), (0.0, 0.5), (0.0, 1.0)} <= points
    assert np.all(np.diff(false_alarms) >= 0)


def test_operating_point_figure_draws_a_curve_and_interval_crosses_per_model_and_category(tmp_path, three_models):
    run = make_run(tmp_path, three_models)
    result = operating_points_figure(run)
    assert result.figure is not None, result.notes
    gids = [a.get_gid() or "" for ax in result.figure.axes for a in [*ax.lines, *ax.collections]]
    assert sum(g.startswith("curve-") for g in gids) == 3 * 3
    # each threshold point has a horizontal and a vertical interval: two line collections per target and panel
    assert sum(g.startswith("interval-1pct-") for g in gids) == 2 * 9
    assert sum(g.startswith("interval-5pct-") for g in gids) == 2 * 9
    # without per-image scores, the points are still drawn, and the figure says so
    stripped = [{k: v for k, v in r.items() if k not in ("scores", "labels")} for r in three_models]
    result = operating_points_figure(make_run(tmp_path, stripped))
    assert result.figure is not None and any("operating points only" in n for n in result.notes)
    gids = [a.get_gid() or "" for ax in result.figure.axes for a in [*ax.lines, *ax.collections]]
    assert not any(g.startswith("curve-") for g in gids) and any(g.startswith("interval-1pct-") for g in gids)


# -- the ranking -----------------------------------------------------------------------------------------------

def test_ranking_says_a_clearly_better_model_beats_and_equal_ones_are_not_distinguishable(tmp_path, three_models):
    run = make_run(tmp_path, three_models)
    comparisons = category_comparisons(run)
    assert len(comparisons) == 3
    for comparison in comparisons:
        assert comparison.pairwise is not None
        for metric in ("image_auroc", "image_recall_at_fpr_1pct"):
            verdict = comparison.verdict(metric)
            assert "are not distinguishable here; both beat weak." in verdict, verdict
            assert "strong" in verdict and "twin" in verdict
    html = ranking_html(run)
    assert "Holm" in html and "Nemenyi" in html and "Friedman" in html  # the corrections are named
    assert html.count("both beat weak") == 6
    across = {a.metric: a for a in across_categories(run)}
    assert across["image_auroc"].result is not None
    assert across["image_auroc"].result.average_ranks["weak"] == 3.0


def test_ranking_says_why_it_is_empty_with_too_few_models_or_categories(tmp_path):
    one = make_run(tmp_path, accuracy_records({"m": 2.0}, categories=("wood", "tiles")))
    assert "No ranking: this run has 1 model" in ranking_html(one)
    two = make_run(tmp_path, accuracy_records({"a": 2.0, "b": 0.5}, categories=("wood", "tiles")))
    html = ranking_html(two)
    assert "Friedman&#x27;s test needs at least 3 models" in html
    assert "a beats b" in html  # the per-category test still runs
    result = critical_difference_figure(two)
    assert result.figure is None and any("at least 3 models" in n for n in result.notes)
    one_category = make_run(tmp_path, accuracy_records({"a": 2.0, "b": 0.5, "c": 1.0}, categories=("wood",)))
    assert "needs at least 2 categories" in ranking_html(one_category)


def test_models_scored_on_other_test_images_are_left_out_of_the_paired_tests(tmp_path):
    records = accuracy_records({"a": 2.0, "b": 1.0}, categories=("wood",))
    other = accuracy_records({"c": 2.0}, categories=("wood",), n_normal=50)
    (comparison,) = category_comparisons(make_run(tmp_path, records + other))
    assert comparison.models == ["a", "b"] and any("c left out: scored on other test images" in n for n in comparison.notes)


def test_critical_difference_figure_draws_the_cd_bar_the_groups_and_every_model(tmp_path, three_models):
    result = critical_difference_figure(make_run(tmp_path, three_models))
    assert result.figure is not None, result.notes
    axes = result.figure.axes
    assert len(axes) == 2  # image AUROC, recall at 1% false alarms
    for ax in axes:
        gids = [line.get_gid() or "" for line in ax.lines]
        assert "cd-bar" in gids or any("wider than the rank axis" in t.get_text() for t in ax.texts)
        assert {"rank-strong", "rank-twin", "rank-weak"} <= set(gids)
        assert any(g.startswith("group-") for g in gids)
        assert any(t.get_text().startswith("weak") or t.get_text().endswith("weak") for t in ax.texts)


def test_report_of_a_run_with_operating_points_has_both_figures_the_table_and_the_verdicts(tmp_path, three_models):
    written = render_report(write_run(tmp_path, three_models), tmp_path / "out")
    for name in ("operating_points", "critical_difference"):
        with Image.open(written[f"{name}.png"]) as image:
            assert image.width >= 500 and image.height >= 250
    html = written["report.html"].read_text()
    assert 'id="deployment-table"' in html and 'id="ranking"' in html
    assert "validation threshold (deployment table)" in html  # how to read it
    markdown = written["report.md"].read_text()
    assert "### Deployment" in markdown and "both beat weak" in markdown
