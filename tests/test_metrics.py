"""Accuracy metrics: hand-worked values, limiting cases, and AUPRO against the MVTec AD evaluation code.

The MVTec reference numbers live in fixtures/aupro_reference.json with the recipe of each input; the
inputs are rebuilt here from the recipe (`build_case`), the reference code itself is not in the project.
"""
from __future__ import annotations

import json
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bench.metrics import (
    aupro,
    compute_all,
    image_ap,
    image_auroc,
    image_f1_max,
    pixel_ap,
    pixel_auroc,
    pro_curve,
)

FIXTURE = Path(__file__).parent / "fixtures" / "aupro_reference.json"


# --- inputs from a recipe (shared with the script that produced the fixture) -------------------------

def _paint(mask: np.ndarray, kind: str, row: int, col: int, height: int, width: int) -> None:
    """Set a rectangle, or the ellipse inscribed in it, to 1; a "hole" clears a rectangle back to 0."""
    if kind in ("rect", "hole"):
        mask[row:row + height, col:col + width] = 1 if kind == "rect" else 0
        return
    rows, cols = np.ogrid[: mask.shape[0], : mask.shape[1]]
    centre_r, centre_c = row + (height - 1) / 2, col + (width - 1) / 2
    inside = ((rows - centre_r) / (height / 2)) ** 2 + ((cols - centre_c) / (width / 2)) ** 2 <= 1.0
    mask[inside] = 1


def build_case(recipe: dict) -> tuple[np.ndarray, np.ndarray]:
    """masks uint8 (N,H,W) and maps float32 (N,H,W) from a recipe.

    recipe: seed; shape [N,H,W]; regions: [[image, "rect"|"ellipse"|"hole", row, col, height, width], ...]
    painted in order;
    random_regions: {"images": [...], "per_image": k, "max_size": s} (ellipses placed by the seeded rng);
    map: {"signal": a, "noise": b, "levels": L or null}: map = a*mask + b*N(0,1), then rounded to 1/L steps
    when L is given (that is what makes ties).
    """
    rng = np.random.default_rng(recipe["seed"])
    n, h, w = recipe["shape"]
    masks = np.zeros((n, h, w), dtype=np.uint8)
    for image, kind, row, col, height, width in recipe.get("regions", []):
        _paint(masks[image], kind, row, col, height, width)
    placement = recipe.get("random_regions")
    if placement:
        for image in placement["images"]:
            for _ in range(placement["per_image"]):
                height, width = rng.integers(1, placement["max_size"] + 1, size=2)
                row = int(rng.integers(0, h - height + 1))
                col = int(rng.integers(0, w - width + 1))
                _paint(masks[image], "ellipse", row, col, int(height), int(width))
    spec = recipe["map"]
    maps = spec["signal"] * masks + spec["noise"] * rng.standard_normal((n, h, w))
    if spec.get("levels"):
        maps = np.round(maps * spec["levels"]) / spec["levels"]
    return masks, maps.astype(np.float32)


def fingerprint(masks: np.ndarray, maps: np.ndarray) -> dict:
    """Enough to tell 'the rebuilt inputs differ' from 'the metric differs' when a reference check fails."""
    return {
        "defect_pixels": int(masks.sum()),
        "map_sum": round(float(maps.astype(np.float64).sum()), 3),
        "distinct_scores": int(np.unique(maps).size),
    }


def _reference_cases() -> list[dict]:
    return json.loads(FIXTURE.read_text())["cases"]


# --- AUPRO against the MVTec AD evaluation code -------------------------------------------------------

@pytest.mark.parametrize("case", _reference_cases(), ids=lambda case: case["name"])
def test_aupro_matches_mvtec_reference(case):
    masks, maps = build_case(case["recipe"])
    rebuilt, expected_inputs = fingerprint(masks, maps), case["fingerprint"]
    assert rebuilt == pytest.approx(expected_inputs, abs=0.01), "rebuilt inputs differ from the ones the reference saw"
    for limit, expected in case["reference_aupro"].items():
        assert aupro(masks, maps, fpr_limit=float(limit)) == pytest.approx(expected, abs=1e-4), f"fpr_limit={limit}"


def test_reference_fixture_covers_the_required_situations():
    cases = _reference_cases()
    assert len(cases) >= 4
    assert any(case["fingerprint"]["distinct_scores"] < 0.1 * np.prod(case["recipe"]["shape"]) for case in cases)
    assert any(case["defect_free_images"] > 0 for case in cases)
    assert any(case["regions_per_image_max"] >= 3 for case in cases)
    # In at least one case the PRO curve jumps over FPR 0.3, so the value there is interpolated.
    assert any(low < 0.3 < high and high - low > 0.05 for low, high in (case["fpr_bracket_0.3"] for case in cases))


def test_pro_curve_has_one_point_per_distinct_score():
    masks, maps = build_case(_reference_cases()[1]["recipe"])
    fprs, pros, thresholds = pro_curve(masks, maps)
    assert len(fprs) == np.unique(maps).size + 2  # plus the (0,0) start and (1,1) end
    assert np.all(np.diff(fprs) >= 0) and np.all(np.diff(pros) >= -1e-12)
    assert np.all(np.diff(thresholds) < 0)
    assert (fprs[0], pros[0], fprs[-1], pros[-1]) == (0.0, 0.0, 1.0, 1.0)


@pytest.mark.parametrize("limit", [0.01, 0.1, 0.2225, 0.3, 0.5, 1.0])
def test_aupro_sorting_only_pixels_above_the_limit_matches_the_full_curve(limit):
    masks, maps = build_case(_reference_cases()[1]["recipe"])  # heavy ties: limits fall on and between points
    fprs, pros, _ = pro_curve(masks, maps)
    keep = fprs <= limit
    upper = np.searchsorted(fprs, limit, side="right")
    x = np.append(fprs[keep], limit)
    y = np.append(pros[keep], np.interp(limit, fprs[upper - 1: upper + 1], pros[upper - 1: upper + 1]))
    full_curve_area = np.trapezoid(y, x) / limit
    assert aupro(masks, maps, fpr_limit=limit) == pytest.approx(full_curve_area, abs=1e-9)


def test_aupro_regions_are_8_connected_and_weighted_per_region():
    # A 2x2 block and a single pixel touching it diagonally: one region of 5 pixels with 8-connectivity.
    masks = np.zeros((1, 4, 4), dtype=np.uint8)
    masks[0, :2, :2] = 1
    masks[0, 2, 2] = 1
    maps = np.zeros((1, 4, 4), dtype=np.float32)
    maps[0, 2, 2] = 1.0  # the lone pixel first: PRO 1/5 (it would be 1/2 with 4-connectivity)
    maps[0, 3, 3] = 0.8  # then one of the 11 normal pixels: FPR 1/11
    maps[0, :2, :2] = 0.5  # then the rest of the region: PRO 1
    # Curve (0,0) (0,.2) (1/11,.2) (1/11,1) (1,1): area to 0.3 = 0.2/11 + (0.3 - 1/11).
    assert aupro(masks, maps) == pytest.approx(1 - 0.8 / 3.3, abs=1e-9)


def test_aupro_counts_defect_free_images_in_the_false_positive_rate():
    masks = np.zeros((2, 4, 4), dtype=np.uint8)
    masks[0, 0, 0] = 1
    maps = np.zeros((2, 4, 4), dtype=np.float32)
    maps[0, 0, 0] = 0.5
    maps[1, :2, :] = 1.0  # 8 of the 31 normal pixels, all in the defect-free image, score above the defect
    # Curve (0,0) (8/31,0) (8/31,1) (1,1): PRO is 1 from FPR 8/31 on.
    assert aupro(masks, maps) == pytest.approx((0.3 - 8 / 31) / 0.3, abs=1e-9)


# --- limiting cases -----------------------------------------------------------------------------------

def _random_segmentation_case(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    return build_case({
        "seed": seed, "shape": [10, 64, 64],
        "random_regions": {"images": [0, 1, 2, 3, 4, 5, 6], "per_image": 3, "max_size": 20},
        "map": {"signal": 0.0, "noise": 1.0, "levels": None},
    })


def test_pixel_metrics_perfect_inverted_random():
    masks, noise = _random_segmentation_case()
    perfect = masks.astype(np.float32)
    assert pixel_auroc(masks, perfect) == pytest.approx(1.0)
    assert pixel_ap(masks, perfect) == pytest.approx(1.0)
    assert aupro(masks, perfect) == pytest.approx(1.0)
    assert pixel_auroc(masks, 1 - perfect) == pytest.approx(0.0)
    assert aupro(masks, 1 - perfect) == pytest.approx(0.0)
    assert pixel_auroc(masks, noise) == pytest.approx(0.5, abs=0.03)
    assert pixel_auroc(masks, noise) == pytest.approx(roc_auc_score(masks.ravel(), noise.ravel()), abs=1e-12)
    # Random scores: every region's overlap grows like the FPR, so the area to 0.3 is 0.3^2/2 -> 0.15.
    assert aupro(masks, noise) == pytest.approx(0.15, abs=0.02)


def test_image_metrics_perfect_inverted_random():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 1000)
    assert image_auroc(labels, labels * 2.0 + 1) == pytest.approx(1.0)
    assert image_ap(labels, labels * 2.0 + 1) == pytest.approx(1.0)
    assert image_f1_max(labels, labels * 2.0 + 1) == pytest.approx(1.0)
    assert image_auroc(labels, -labels) == pytest.approx(0.0)
    random_scores = rng.random(labels.size)
    assert image_auroc(labels, random_scores) == pytest.approx(0.5, abs=0.05)
    assert image_ap(labels, random_scores) == pytest.approx(0.5, abs=0.05)


def test_all_equal_scores_are_chance():
    labels = np.array([0, 1, 0, 1, 1])
    assert image_auroc(labels, np.full(5, 0.7)) == 0.5
    # One threshold: everything positive, precision 3/5, recall 1.
    assert image_ap(labels, np.full(5, 0.7)) == pytest.approx(0.6)
    assert image_f1_max(labels, np.full(5, 0.7)) == pytest.approx(2 * 0.6 / 1.6)
    masks, _ = _random_segmentation_case()
    flat = np.full(masks.shape, 0.25, dtype=np.float32)
    assert pixel_auroc(masks, flat) == 0.5
    # Curve (0,0) (1,1): PRO equals FPR, area to 0.3 over 0.3 is 0.15 (MVTec code gives the same).
    assert aupro(masks, flat) == pytest.approx(0.15, abs=1e-9)


# --- hand-worked image metrics ------------------------------------------------------------------------

# Descending: 0.8(+) 0.5(+) 0.4(-) 0.35(+) 0.2(-) 0.1(-); 3 defective images.
HAND_LABELS = np.array([0, 0, 1, 1, 0, 1])
HAND_SCORES = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.5])


def test_f1_max_hand_worked():
    # Thresholds 0.8 .. 0.1 give (precision, recall): (1,1/3) (1,2/3) (2/3,2/3) (3/4,1) (3/5,1) (1/2,1)
    # F1 = 0.5, 0.8, 0.667, 6/7, 0.75, 0.667 -> max 6/7 at threshold 0.35.
    assert image_f1_max(HAND_LABELS, HAND_SCORES) == pytest.approx(6 / 7)


def test_ap_hand_worked():
    # AP = sum over thresholds of (recall gain) x precision = 1/3*1 + 1/3*1 + 0*(2/3) + 1/3*(3/4) = 11/12.
    assert image_ap(HAND_LABELS, HAND_SCORES) == pytest.approx(11 / 12)


def test_auroc_hand_worked():
    # Defective scores beat 3, 3 and 2 of the 3 normal scores: 8 of 9 pairs.
    assert image_auroc(HAND_LABELS, HAND_SCORES) == pytest.approx(8 / 9)


def test_ap_with_tied_scores_hand_worked():
    # Groups 0.9: (+,-) then 0.3: (+,-,-). Precision 1/2 at recall 1/2, 2/5 at recall 1: AP = .25 + .2.
    assert image_ap([1, 0, 1, 0, 0], [0.9, 0.9, 0.3, 0.3, 0.3]) == pytest.approx(0.45)


def test_pixel_auroc_and_ap_hand_worked():
    # One 2x2 image, defects on the diagonal. Descending: 0.9(+) 0.8(-) 0.5(+) 0.1(-).
    masks = np.array([[[1, 0], [0, 1]]])
    maps = np.array([[[0.9, 0.8], [0.1, 0.5]]], dtype=np.float32)
    # Pairs: 0.9 beats both normals, 0.5 beats 0.1 only: 3 of 4.
    assert pixel_auroc(masks, maps) == pytest.approx(3 / 4)
    # Recall 1/2 at precision 1, then 1 at precision 2/3: AP = 1/2 + 1/3.
    assert pixel_ap(masks, maps) == pytest.approx(5 / 6)


# --- compute_all and errors ---------------------------------------------------------------------------

def test_compute_all_gives_each_metric_as_its_own_function_does():
    masks, noise = _random_segmentation_case()
    labels = (masks.reshape(len(masks), -1).max(axis=1) > 0).astype(int)
    scores = noise.reshape(len(noise), -1).max(axis=1)
    maps = noise + masks
    everything = compute_all(labels, scores, masks=masks, maps=maps)
    assert everything == {
        "image_auroc": image_auroc(labels, scores), "image_ap": image_ap(labels, scores),
        "image_f1_max": image_f1_max(labels, scores), "pixel_auroc": pixel_auroc(masks, maps),
        "pixel_ap": pixel_ap(masks, maps), "aupro": aupro(masks, maps), "undefined_metrics": "",
    }
    image_only = compute_all(labels, scores)
    assert image_only["image_auroc"] == everything["image_auroc"]
    assert (image_only["pixel_auroc"], image_only["pixel_ap"], image_only["aupro"]) == (None, None, None)
    assert image_only["undefined_metrics"] == "pixel_auroc, pixel_ap, aupro: the model gives no anomaly maps"


def test_compute_all_hand_worked_with_a_folder_dataset_without_masks():
    # A folder dataset without mask/ loads all-zero masks: the image metrics stay (8/9 as in the hand-worked
    # AUROC above), the pixel metrics are empty with the reason.
    result = compute_all(HAND_LABELS, HAND_SCORES, masks=np.zeros((6, 4, 4)), maps=np.ones((6, 4, 4)))
    assert result["image_auroc"] == pytest.approx(8 / 9)
    assert result["image_ap"] == pytest.approx(11 / 12)
    assert result["image_f1_max"] == pytest.approx(6 / 7)
    assert (result["pixel_auroc"], result["pixel_ap"], result["aupro"]) == (None, None, None)
    assert result["undefined_metrics"] == "pixel_auroc, pixel_ap, aupro: the masks have no defect pixel"


def test_compute_all_with_one_class_keeps_the_pixel_metrics():
    # Three defective images only: no image metric, but their masks hold normal pixels.
    masks = np.zeros((3, 2, 2))
    masks[:, 0, 0] = 1
    maps = np.zeros((3, 2, 2))
    maps[:, 0, 0] = [0.9, 0.2, 0.6]
    maps[1] = 0.2  # normals: six 0.0 and three 0.2
    result = compute_all([1, 1, 1], [0.9, 0.2, 0.6], masks=masks, maps=maps)
    assert (result["image_auroc"], result["image_ap"], result["image_f1_max"]) == (None, None, None)
    # Defect pixel 0.9 beats 9 normals (3 of them 0.2), 0.6 beats 9, 0.2 beats 6 (0) and ties 3 (0.2): 25.5/27.
    assert result["pixel_auroc"] == pytest.approx(25.5 / 27)
    assert result["undefined_metrics"] == "image_auroc, image_ap, image_f1_max: the test set has one class only (all defective)"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: image_auroc([1, 1, 1], [0.1, 0.2, 0.3]), "one class"),
        (lambda: image_ap([0, 2, 1], [0.1, 0.2, 0.3]), "labels must be 0"),
        (lambda: image_auroc([0, 1], [0.1, float("nan")]), "NaN"),
        (lambda: aupro(np.zeros((2, 8, 8)), np.ones((2, 8, 8))), "no defect pixel"),
        (lambda: pixel_auroc(np.zeros((2, 8, 8)), np.ones((2, 8, 8))), "no defect pixel"),
        (lambda: aupro(np.ones((1, 8, 8)), np.ones((1, 8, 8))), "no normal pixel"),
        (lambda: aupro(np.eye(8)[None], np.ones((1, 8, 9))), "same shape"),
        (lambda: aupro(np.eye(8)[None], np.ones((1, 8, 8)), fpr_limit=0.0), "fpr_limit"),
        # compute_all raises for malformed input only.
        (lambda: compute_all([0, 1], [0.1, float("nan")]), "NaN"),
        (lambda: compute_all([0, 1, 1], [0.1, 0.2]), "differ in length"),
        (lambda: compute_all([0, 1], [0.1, 0.2], masks=np.eye(8)[None].repeat(3, 0), maps=np.ones((3, 8, 8))), "3 masks for 2 labels"),
        (lambda: compute_all([0, 1], [0.1, 0.2], masks=np.zeros((2, 8, 8)), maps=np.full((2, 8, 8), np.inf)), "NaN or infinite"),
    ],
)
def test_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def _full_category_case() -> tuple[np.ndarray, np.ndarray]:
    """~ one MVTec category at 256x256: 130 images, 8.5M pixels, 80 of them with two defects, 50 defect-free.

    Scores: uniform noise U(0,1), +0.5 on defect pixels. Pixel AUROC = P(U + 0.5 > U') = 1 - 0.5^2/2 = 0.875.
    PRO curve: at threshold t in [0.7, 1], FPR = 1 - t and every region's overlap is 1.5 - t = 0.5 + FPR
    (below FPR 0 nothing; the overlap jumps from 0 to 0.5 at FPR 0), so AUPRO to 0.3 = (0.15 + 0.045) / 0.3 = 0.65.
    """
    rng = np.random.default_rng(1)
    masks = np.zeros((130, 256, 256), dtype=np.uint8)
    masks[:80, 100:140, 60:90] = 1
    masks[:80:3, 10:14, 200:250] = 1
    maps = rng.random(masks.shape, dtype=np.float32) + 0.5 * masks
    return masks, maps


def test_full_category_aupro_runs_in_bounded_memory():
    masks, maps = _full_category_case()
    tracemalloc.start()
    try:
        value = aupro(masks, maps)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert value == pytest.approx(0.65, abs=0.006)  # 107 regions: sampling error ~0.002 (0.6477 here)
    # Linear in pixels (labels, the pixels above the limit sorted with their index: ~19 B/pixel measured),
    # nowhere near pixels x thresholds.
    assert peak_bytes < 32 * masks.size


@pytest.mark.slow
def test_full_category_pixel_auroc_runs():
    masks, maps = _full_category_case()
    assert pixel_auroc(masks, maps) == pytest.approx(0.875, abs=0.003)
