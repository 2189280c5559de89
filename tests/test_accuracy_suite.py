"""The accuracy suite end to end on a small synthetic set: records, mean rows, gallery, determinism."""
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
