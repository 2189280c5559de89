"""The accuracy suite end to end on a small synthetic set: records, mean rows, gallery, determinism."""
import json

import numpy as np
import pytest

from bench import api
from datasets.synthetic import generate_synthetic


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return generate_synthetic(root, size=32, seed=1, categories=["fabric", "nut"], n_train=8, n_test_good=4,
                              n_test_defective=6)


def run(root, out, models=("pixel_stats",), **kw):
    kw.setdefault("executor", "inline")  # the accuracy protocol under test; tests/test_isolation.py covers `process`
    return api.run("accuracy", list(models), dataset="synthetic", data_root=root, image_size=32, threads=1,
                   out=out, quiet=True, **kw)


def test_accuracy_records_and_mean_row(small_set, tmp_path):
    frame = run(small_set, tmp_path)
    rows = frame.set_index("category")
    assert set(rows.index) == {"fabric", "nut", "mean"}
    assert (frame["status"] == "ok").all()
    for col in ("image_auroc", "pixel_auroc", "aupro", "image_f1_max", "image_ap", "pixel_ap"):
        values = rows[col].astype(float)
        assert values.between(0, 1).all(), col
        assert values["mean"] == pytest.approx((values["fabric"] + values["nut"]) / 2)
    gallery = np.load(tmp_path / rows.loc["nut", "gallery_file"])
    assert gallery["images"].shape[1:] == (32, 32, 3) and gallery["maps"].shape[1:] == (32, 32)
    assert set(gallery["labels"].tolist()) == {0, 1}  # normal and defective images both shown
    assert (tmp_path / rows.loc["nut", "checkpoint"]).is_file()


def test_same_seed_same_metrics(small_set, tmp_path):
    # a trained segmenter on a tiny budget: bit-identical metrics from the same seed
    kw = dict(models=("u2net_small",), epochs=1, seed=5, categories=["nut"])
    a = run(small_set, tmp_path / "a", **kw).set_index("category")
    b = run(small_set, tmp_path / "b", **kw).set_index("category")
    for col in ("image_auroc", "pixel_auroc", "aupro", "final_loss"):
        assert a.loc["nut", col] == b.loc["nut", col], col


def test_learning_curve_stages(small_set, tmp_path):
    frame = run(small_set, tmp_path, models=("u2net_small",), categories=["fabric"], train_minutes=[0.02, 0.05])
    stages = frame[frame["category"] == "fabric"].sort_values("train_minutes")
    assert stages["train_minutes"].tolist() == [0.02, 0.05]
    assert stages["steps"].is_monotonic_increasing and stages["steps"].iloc[1] > stages["steps"].iloc[0]
    assert (stages["status"] == "ok").all()
    # each stage's record carries the loss of every step it trained: its part of the run's loss curve
    records = sorted((r for r in json.loads((tmp_path / "results.json").read_text())["records"]
                      if r.get("category") == "fabric"), key=lambda r: r["train_minutes"])
    first, second = records
    assert len(first["train_losses"]) == first["steps"]
    assert len(second["train_losses"]) == second["steps"] - first["steps"]
    assert second["train_losses"][-1] == pytest.approx(second["final_loss"], rel=1e-4)
    assert all(np.isfinite(first["train_losses"] + second["train_losses"]))


def test_labelled_defects_k_fold(small_set, tmp_path):
    frame = run(small_set, tmp_path, models=("capsnet_ad",), categories=["nut"], epochs=1, labelled_defects=2, folds=2)
    row = frame.set_index("category").loc["nut"]
    assert row["status"] == "ok", row["error"]
    assert row["n_test"] == 10 and row["folds"] == 2 and row["labelled_defects"] == 2
    assert 0 <= row["image_auroc"] <= 1
    assert "pixel_auroc" not in frame or frame["pixel_auroc"].isna().all()  # image-level only: empty, not zero


def test_model_options_are_checked_before_measuring(tmp_path):
    with pytest.raises(ValueError, match="--model-arg n_gaussians"):
        api.run("quick", ["unet"], model_args={"n_gaussians": 3}, out=tmp_path, quiet=True)
    with pytest.raises(ValueError, match="--weights: no such file"):
        api.run("quick", ["piade"], weights=str(tmp_path / "missing.pth"), out=tmp_path, quiet=True)
    assert not (tmp_path / "results.json").exists()


def test_eval_only_reproduces_metrics_from_checkpoints(small_set, tmp_path):
    kw = dict(models=("u2net_small",), epochs=1, categories=["nut"])
    trained = run(small_set, tmp_path, **kw).set_index("category")
    again = run(small_set, tmp_path, eval_only=True, **kw).set_index("category")
    assert bool(again.loc["nut", "evaluated_from_checkpoint"])
    for col in ("image_auroc", "pixel_auroc", "aupro", "steps"):
        assert again.loc["nut", col] == trained.loc["nut", col], col


def test_eval_only_without_checkpoint_fails_cleanly(small_set, tmp_path):
    frame = run(small_set, tmp_path, categories=["nut"], eval_only=True)
    row = frame.set_index("category").loc["nut"]
    assert row["status"] == "failed" and "--eval-only: no checkpoint" in row["error"]


def test_suite_all_measures_and_reports(small_set, tmp_path, monkeypatch):
    from bench import config

    # the line scenario as the all suite plans it, with shorter trials (its 1 s trials took ~40 s here; the
    # scenario's own behaviour is tests/test_line.py's)
    line = dict(config.SUITE_LINE["all"]["line"], seconds=0.25, max_trials=2, checks=[1.2])
    monkeypatch.setitem(config.SUITE_LINE, "all", dict(config.SUITE_LINE["all"], line=line))
    frame = api.run("all", ["pixel_stats"], dataset="synthetic", data_root=small_set, image_size=32, threads=1,
                    out=tmp_path, quiet=True, categories=["nut"], epochs=1, executor="inline")
    assert set(frame["suite"]) == {"profile", "accuracy"}
    assert (frame["status"] == "ok").all(), frame["error"].tolist()
    profile = frame[(frame["suite"] == "profile") & (frame["variant"] == "torch-fp32")].iloc[0]
    assert profile["e2e_total_ms_p50"] > 0 and profile["line_b1_sustainable_rate_hz"] > 0  # measured end to end
    html = (tmp_path / "report" / "report.html").read_text()
    assert "pixel_stats" in html and html.count("data:image/png;base64,") >= 3


def test_bad_category_fails_before_measuring(small_set, tmp_path):
    with pytest.raises(ValueError, match="--categories: 'carpet' is not in"):
        api.run("all", ["pixel_stats"], dataset="synthetic", data_root=small_set, categories=["carpet"],
                out=tmp_path, quiet=True)
    assert not (tmp_path / "records").exists()


def test_deploy_evaluates_an_earlier_runs_checkpoints_per_variant(small_set, tmp_path):
    """--suite deploy: the variants of an earlier run's trained model, on the same test set, without training;
    each delta is the variant's metric minus torch-fp32's."""
    kw = dict(models=("u2net_small",), epochs=1, categories=["nut"])
    trained = run(small_set, tmp_path / "trained", **kw).set_index("category").loc["nut"]
    frame = api.run("deploy", ["u2net_small"], checkpoints=tmp_path / "trained", out=tmp_path / "deployed",
                    variants=["ort-fp32", "ort-int8-dynamic", "torch-fp16"], image_size=32, threads=1, quiet=True,
                    executor="inline")
    rows = frame[frame["category"] == "nut"].set_index("variant")
    assert set(rows.index) == {"torch-fp32", "ort-fp32", "ort-int8-dynamic", "torch-fp16"}
    base = rows.loc["torch-fp32"]
    assert base["status"] == "ok" and bool(base["evaluated_from_checkpoint"])
    assert base["steps"] == trained["steps"]  # not retrained: the training facts come from the earlier run
    assert base["image_auroc"] == trained["image_auroc"] and base["aupro"] == trained["aupro"]
    assert rows.loc["torch-fp16", "status"] == "skipped" and "CUDA" in rows.loc["torch-fp16", "error"]
    for variant in ("ort-fp32", "ort-int8-dynamic"):
        row = rows.loc[variant]
        assert row["status"] == "ok", row["error"]
        for metric in ("image_auroc", "pixel_auroc", "aupro"):
            assert row[f"{metric}_delta"] == pytest.approx(row[metric] - base[metric], abs=1e-9), (variant, metric)
            assert row[f"{metric}_delta_ci_low"] <= row[f"{metric}_delta"] <= row[f"{metric}_delta_ci_high"]


def test_variants_on_a_training_suite_are_evaluated_after_training(small_set, tmp_path):
    frame = run(small_set, tmp_path, models=("u2net_small",), epochs=1, categories=["nut"],
                variants=["torch-fp32", "torch-channels-last"])
    rows = frame[frame["category"] == "nut"].set_index("variant")
    assert set(rows.index) == {"torch-fp32", "torch-channels-last"}
    other = rows.loc["torch-channels-last"]
    assert other["status"] == "ok" and other["checkpoint"] == rows.loc["torch-fp32", "checkpoint"]
    assert other["image_auroc_delta"] == pytest.approx(other["image_auroc"] - rows.loc["torch-fp32", "image_auroc"])


# -- operating points (issue 23) --------------------------------------------------------------------------
def test_a_variant_sets_its_threshold_on_its_own_validation_scores(tmp_path, monkeypatch):
    """A variant whose scores all moved (as an int8 graph's may, keeping the ranking and so the AUROC) gets a
    threshold moved with them from its own validation scores: the rates it realises stay those of torch-fp32.
    The fp32 threshold applied to its scores would flag every image."""
    import bench.variants
    from bench.jobs.accuracy import operating_points, variant_records
    from bench.jobs.spec import JobSpec
    from bench.variants.evaluate import VariantEvaluation

    rng = np.random.default_rng(0)
    labels = np.array([0] * 40 + [1] * 40, dtype=np.int8)
    ev = {"scores": (rng.normal(0, 1, 80) + 2.0 * labels).astype(np.float32), "labels": labels,
          "masks": np.zeros((80, 4, 4), np.uint8)}
    val_ev = {"scores": rng.normal(0, 1, 25).astype(np.float32), "labels": np.zeros(25, np.int8),
              "masks": np.zeros((25, 4, 4), np.uint8)}
    settings = {"accuracy_variants": ["torch-fp32", "ort-int8-dynamic"], "train_batch_size": 8,
                "intervals": {"level": 0.95, "resamples": 500, "seed": 0}, "target_fprs": [0.05], "val_normals": 0.1}
    spec = JobSpec(kind="accuracy", suite="accuracy", model="pixel_stats", family="baseline", device="cpu", threads=1,
                   seed=0, image_size=4, batch_size=8, run_dir=str(tmp_path), dataset="synthetic", category="nut",
                   settings=settings)
    fp32 = {"labels": labels.tolist(), "status": "ok", **operating_points(ev, val_ev, settings)}
    moved = {k: np.concatenate([ev[k], val_ev[k]]) for k in ev}
    moved["scores"] = 10.0 + 3.0 * moved["scores"]  # monotone: the same ranking, other units

    def fake_variants(detector, images, variants, probe, **kw):
        assert len(images) == 80 + 25  # the test images, then the validation normals
        yield VariantEvaluation("ort-int8-dynamic", "ok", evaluation=moved)

    monkeypatch.setattr(bench.variants, "evaluate_variants", fake_variants)
    (row,) = variant_records(spec, None, list(range(80)), [], fp32, ev, None, val_set=list(range(25)))
    assert row["status"] == "ok"
    assert row["image_val_threshold_5pct"] == pytest.approx(10.0 + 3.0 * fp32["image_val_threshold_5pct"], rel=1e-5)
    for metric in ("image_fpr_at_val_thr_5pct", "image_miss_rate_at_val_thr_5pct", "image_recall_at_fpr_5pct"):
        assert row[metric] == pytest.approx(fp32[metric]) and row[f"{metric}_delta"] == pytest.approx(0.0), metric
    assert row["image_recall_at_fpr_5pct_delta_ci_low"] == pytest.approx(0.0)  # same ranking on every resample
    assert np.mean(moved["scores"][:80][labels == 0] > fp32["image_val_threshold_5pct"]) == 1.0


def test_a_variant_that_loses_recall_shows_it_in_its_delta(tmp_path):
    from bench.jobs.accuracy import operating_points
    from bench.variants.evaluate import operating_point_deltas

    rng = np.random.default_rng(1)
    labels = np.array([0] * 60 + [1] * 60, dtype=np.int8)
    base = {"scores": rng.normal(0, 1, 120) + 3.0 * labels, "labels": labels, "masks": np.zeros((120, 2, 2))}
    noisy = dict(base, scores=base["scores"] + rng.normal(0, 2.0, 120))
    val = {"scores": rng.normal(0, 1, 40), "labels": np.zeros(40), "masks": np.zeros((40, 2, 2))}
    settings = {"intervals": {"level": 0.95, "resamples": 1000, "seed": 0}, "target_fprs": [0.05]}
    a, b = operating_points(base, val, settings), operating_points(noisy, val, settings)
    deltas = operating_point_deltas(a, b, labels, base["scores"], noisy["scores"], target_fprs=[0.05],
                                    resamples=1000, level=0.95, seed=0)
    delta = deltas["image_recall_at_fpr_5pct_delta"]
    assert delta == pytest.approx(b["image_recall_at_fpr_5pct"] - a["image_recall_at_fpr_5pct"]) and delta < -0.2
    assert deltas["image_recall_at_fpr_5pct_delta_ci_low"] <= delta <= deltas["image_recall_at_fpr_5pct_delta_ci_high"] < 0
    assert deltas["image_fpr_at_val_thr_5pct_delta"] == pytest.approx(b["image_fpr_at_val_thr_5pct"]
                                                                      - a["image_fpr_at_val_thr_5pct"])


def test_every_accuracy_record_carries_the_operating_points(small_set, tmp_path):
    """Even where the training split is too small to hold normals out (8 images here): the keys are there, empty
    with their reasons, and the schema knows every one."""
    from bench import schema

    run(small_set, tmp_path, categories=["nut"])
    records = schema.read_results(tmp_path)[2]
    row = next(r for r in records if r["category"] == "nut")
    for key in ("image_val_threshold_1pct", "image_fpr_at_val_thr_1pct", "image_miss_rate_at_val_thr_1pct",
                "image_recall_at_fpr_1pct", "image_fpr_at_recall_95pct", "pixel_val_threshold_5pct",
                "pixel_f1_at_val_thr_5pct", "image_recall_at_fpr_5pct_ci_low", "val_normal_images",
                "operating_points_ci_resamples", "operating_points_undefined"):
        assert key in row, key
    assert row["operating_points_ci_resamples"] == row["ci_resamples"]
    assert "too few to hold out" in row["operating_points_undefined"]
    assert all(not schema.unknown_columns(r) for r in records)


def test_mean_rows_average_the_operating_points_but_not_the_thresholds():
    from bench.aggregate import mean_rows

    def record(category, recall, threshold):
        return {"suite": "accuracy", "model": "m", "family": "segmenter", "variant": "torch-fp32", "dataset": "d",
                "category": category, "seed": 0, "device": "cpu", "image_size": 64, "batch_size": 8, "threads": 1,
                "train_minutes": None, "status": "ok", "ci_level": 0.95, "image_recall_at_fpr_1pct": recall,
                "image_recall_at_fpr_1pct_ci_low": recall - 0.1, "image_recall_at_fpr_1pct_ci_high": recall + 0.1,
                "image_val_threshold_1pct": threshold}

    (mean,) = mean_rows([record("a", 0.5, 3.0), record("b", 0.7, 300.0)])
    assert mean["image_recall_at_fpr_1pct"] == pytest.approx(0.6)
    assert mean["image_recall_at_fpr_1pct_ci_low"] < 0.6 < mean["image_recall_at_fpr_1pct_ci_high"]
    assert "image_val_threshold_1pct" not in mean  # two categories' score units: no mean
