"""The validation normals (issue 23, item 1): held out of the training split by a seeded rule, never trained on,
part of the job's identity; too few images or --val-normals 0 leave the threshold-based metrics empty, with why."""
import json

import numpy as np
import pytest

from bench import api
from datasets.splits import (MIN_TRAIN_LEFT, MIN_VAL_NORMALS, check_val_normals, validation_count,
                             validation_split)
from datasets.synthetic import generate_synthetic


@pytest.fixture(scope="module")
def thirty_normals(tmp_path_factory):
    """30 training normals: the default 10% (at least 20) holds out 20 and trains on 10."""
    return generate_synthetic(tmp_path_factory.mktemp("val"), size=32, seed=1, categories=["nut"], n_train=30,
                              n_test_good=6, n_test_defective=6)


def records_of(out) -> list[dict]:
    return [r for r in json.loads((out / "results.json").read_text())["records"] if r["category"] != "mean"]


def run(root, out, **kw):
    return api.run("accuracy", ["pixel_stats"], dataset="synthetic", data_root=root, image_size=32, threads=1,
                   out=out, quiet=True, executor="inline", **kw)


def test_the_split_is_seeded_disjoint_and_covers_the_training_split():
    train, val = validation_split(50, 20, seed=3)
    again_train, again_val = validation_split(50, 20, seed=3)
    assert np.array_equal(train, again_train) and np.array_equal(val, again_val)  # deterministic
    assert len(val) == 20 and not set(train) & set(val) and sorted({*train, *val}) == list(range(50))
    assert not np.array_equal(val, validation_split(50, 20, seed=4)[1])  # another seed, another split
    assert list(val) != list(range(20)) and list(val) != list(range(30, 50))  # not a block at either end


@pytest.mark.parametrize("n_train, setting, count", [
    (120, 0.1, MIN_VAL_NORMALS),  # 12 wanted, raised to the 20 the 5% target needs
    (400, 0.1, 40),
    (30, 0.1, 20),
    (60, 5, 5),  # a whole number is taken as it is
    (MIN_VAL_NORMALS + MIN_TRAIN_LEFT, 0.1, MIN_VAL_NORMALS),
])
def test_how_many_are_held_out(n_train, setting, count):
    assert validation_count(n_train, setting) == (count, "")


def test_too_small_a_training_split_holds_none_out_and_says_why():
    count, reason = validation_count(MIN_VAL_NORMALS + MIN_TRAIN_LEFT - 1, 0.1)
    assert count == 0 and "too few to hold out 20 and keep 8 to train on" in reason
    assert ":" not in reason and ";" not in reason  # it goes into undefined_metrics' 'name: reason; ...'
    assert validation_count(100, 0) == (0, "no validation normals held out (--val-normals 0)")


@pytest.mark.parametrize("bad", [-1, 1.0, 1.5, 0.0, "10", True, None])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError, match="--val-normals"):
        check_val_normals(bad)


def test_the_setting_is_part_of_the_job_id(tmp_path):
    from bench.plan import plan_run

    def job_id(**options):
        cfg = api.make_config("accuracy", ["pixel_stats"], out=tmp_path, **options)
        return plan_run(cfg, ["pixel_stats"], "cpu", 1, tmp_path, ["nut"])[0].job_id

    assert job_id() == job_id(val_normals=0.1)
    assert len({job_id(), job_id(val_normals=0.2), job_id(val_normals=20), job_id(val_normals=0),
                job_id(target_fprs=[0.05])}) == 5


def test_the_held_out_images_are_not_trained_on_and_set_the_thresholds(thirty_normals, tmp_path):
    from bench.operating_points import image_threshold

    run(thirty_normals, tmp_path)
    (record,) = records_of(tmp_path)
    assert record["status"] == "ok", record["error"]
    assert record["val_normal_images"] == 20 and record["n_train"] == 10 and record["val_normals_note"] == ""
    assert len(record["val_scores"]) == 20
    threshold, _ = image_threshold(record["val_scores"], 0.05)
    assert record["image_val_threshold_5pct"] == pytest.approx(threshold, rel=1e-6)
    # the 1% target needs 100 validation normals: empty, with the kernel's reason
    assert record["image_val_threshold_1pct"] is None
    assert "image_val_threshold_1pct" in record["undefined_metrics"] and "needs at least 100" in record["undefined_metrics"]


def test_the_held_out_images_are_those_of_the_split(thirty_normals):
    """The job trains on exactly the split's training indices and scores exactly its validation indices."""
    import datasets
    from bench.jobs.accuracy import validation_split_of
    from bench.jobs.spec import JobSpec

    spec = JobSpec(kind="accuracy", suite="accuracy", model="pixel_stats", family="baseline", device="cpu", threads=1,
                   seed=0, image_size=32, batch_size=8, run_dir="", dataset="synthetic", category="nut",
                   settings={"val_normals": 0.1})
    full = datasets.open_dataset("synthetic", thirty_normals, "nut", "train", 32)
    train, val, note = validation_split_of(spec, full)
    expected_train, expected_val = validation_split(30, 20, seed=0)
    assert note == "" and list(train.indices) == list(expected_train) and list(val.indices) == list(expected_val)
    assert not {full.samples[i].image for i in train.indices} & {full.samples[i].image for i in val.indices}


def test_val_normals_0_leaves_every_threshold_metric_empty_with_its_reason(thirty_normals, tmp_path):
    run(thirty_normals, tmp_path, val_normals=0)
    (record,) = records_of(tmp_path)
    assert record["status"] == "ok" and record["n_train"] == 30 and record["val_normal_images"] == 0
    for key in ("image_val_threshold_5pct", "image_fpr_at_val_thr_5pct", "image_miss_rate_at_val_thr_5pct",
                "pixel_val_threshold_5pct", "pixel_f1_at_val_thr_5pct"):
        assert record[key] is None and record[f"{key}_ci_low"] is None, key
    reasons = record["operating_points_undefined"]
    assert "image_val_threshold_5pct" in reasons and "no validation normals held out (--val-normals 0)" in reasons
    assert record["val_normals_note"] in record["undefined_metrics"]
    assert "image_auroc" in record and record["image_auroc"] is not None  # the threshold-free metrics stay


def test_a_too_small_training_split_is_said_in_the_record_and_the_run_output(tmp_path, capsys):
    root = generate_synthetic(tmp_path / "data", size=32, seed=1, categories=["nut"], n_train=10, n_test_good=4,
                              n_test_defective=4)
    api.run("accuracy", ["pixel_stats"], dataset="synthetic", data_root=root, image_size=32, threads=1,
            out=tmp_path / "run", executor="inline")
    (record,) = records_of(tmp_path / "run")
    assert record["n_train"] == 10 and record["val_normal_images"] == 0
    assert "too few to hold out 20" in record["val_normals_note"]
    assert "pixel_f1_at_val_thr_5pct" in record["undefined_metrics"]
    assert "too few to hold out 20" in capsys.readouterr().err  # the run's per-record line says it too
