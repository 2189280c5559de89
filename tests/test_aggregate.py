"""Mean rows: over categories and seeds, with the two kinds of noise named apart; no mean over survivors."""
import math

import pytest

from bench.aggregate import mean_rows


def record(category, seed, auroc, status="ok", **extra):
    return {"suite": "accuracy", "model": "m", "family": "segmenter", "variant": "torch-fp32", "dataset": "synthetic",
            "category": category, "seed": seed, "device": "cpu", "image_size": 64, "batch_size": 8, "threads": 1,
            "train_minutes": 3.0, "status": status, "image_auroc": auroc if status == "ok" else None, **extra}


def test_mean_over_categories_and_seeds_with_seed_spread():
    rows = mean_rows([record("a", 0, 0.80), record("b", 0, 0.60), record("a", 1, 0.90), record("b", 1, 0.70)])
    (mean,) = rows
    assert mean["category"] == "mean" and mean["seeds"] == "0,1" and mean["n_seeds"] == 2
    assert mean["image_auroc"] == pytest.approx(0.75)
    # the category means per seed are 0.70 and 0.80: their standard deviation (ddof 1)
    assert mean["image_auroc_seed_std"] == pytest.approx(math.sqrt(0.005))


def test_one_seed_has_no_seed_spread():
    (mean,) = mean_rows([record("a", 0, 0.8), record("b", 0, 0.6)])
    assert mean["image_auroc"] == pytest.approx(0.7) and mean["image_auroc_seed_std"] is None


def test_a_failed_category_leaves_the_mean_without_metrics():
    (mean,) = mean_rows([record("a", 0, 0.9), record("b", 0, None, status="failed")])
    assert mean["status"] == "failed" and "1 of 2 category jobs failed (b)" in mean["error"]
    assert "image_auroc" not in mean


def test_stages_and_variants_get_their_own_mean():
    records = [record("a", 0, 0.8), record("a", 0, 0.6, train_minutes=1.0),
               record("a", 0, 0.7, variant="ort-int8-static")]
    means = {(r["train_minutes"], r["variant"]): r["image_auroc"] for r in mean_rows(records)}
    assert means == {(3.0, "torch-fp32"): 0.8, (1.0, "torch-fp32"): 0.6, (3.0, "ort-int8-static"): 0.7}


def test_intervals_of_the_mean_combine_the_categories():
    from bench.stats import combine_intervals_normal

    a = record("a", 0, 0.80, image_auroc_ci_low=0.70, image_auroc_ci_high=0.90, ci_level=0.95)
    b = record("b", 0, 0.60, image_auroc_ci_low=0.44, image_auroc_ci_high=0.76, ci_level=0.95)
    (mean,) = mean_rows([a, b])
    low, high = combine_intervals_normal([0.8, 0.6], [0.7, 0.44], [0.9, 0.76], 0.95)
    assert (mean["image_auroc_ci_low"], mean["image_auroc_ci_high"]) == pytest.approx((low, high))
    assert low < 0.7 < high and high - low < 0.2  # narrower than either category's alone
    assert "normal approximation" in mean["ci_method"]


def test_undefined_in_one_category_leaves_the_mean_empty_with_why():
    a = record("a", 0, 0.8, pixel_auroc=0.9)
    b = record("b", 0, 0.6, pixel_auroc=None, undefined_metrics="pixel_auroc, pixel_ap, aupro: the test set has no ground-truth masks")
    (mean,) = mean_rows([a, b])
    assert mean["image_auroc"] == pytest.approx(0.7) and "pixel_auroc" not in mean
    assert "pixel_auroc: undefined for b" in mean["undefined_metrics"]
    assert "no ground-truth masks" in mean["undefined_metrics"]


def test_a_mean_row_carries_the_fingerprint_of_the_data_it_averages():
    def mean_of(prints):
        return mean_rows([record(c, 0, 0.8, data_fingerprint=f) for c, f in prints])[0].get("data_fingerprint")

    same = mean_of([("a", "synthetic:1"), ("b", "synthetic:2")])
    assert same and same == mean_of([("b", "synthetic:2"), ("a", "synthetic:1")])  # order does not matter
    assert same != mean_of([("a", "synthetic:1"), ("b", "synthetic:3")])  # one test set changed
    assert mean_of([("a", "synthetic:1"), ("b", None)]) is None  # unknown data: no fingerprint, not comparable


def test_a_variant_skipped_in_every_category_gives_a_skipped_mean_not_a_failed_one():
    reason = "float16 autocast runs on CUDA only"
    rows = mean_rows([record(c, 0, None, status="skipped", error=reason, variant="torch-fp16") for c in "ab"])
    assert rows[0]["status"] == "skipped" and rows[0]["error"] == reason and "image_auroc" not in rows[0]
