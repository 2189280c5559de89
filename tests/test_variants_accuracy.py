"""Accuracy cost: a trained detector's checkpoint evaluated through its variants on one test set, and the
delta of each variant against torch-fp32 computed from those evaluations."""
import numpy as np
import pytest
import torch
from torch import nn

from bench.metrics import compute_all
from bench.measure import ProbeSettings
from bench.variants import accuracy_deltas, calibration_images_from, evaluate_variants
from models.base import Budget
from models.segmenter_adapter import SegmenterDetector

SIZE = 32


def tiny_net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))


def item(rng, defective):
    image = np.clip(0.5 + 0.05 * rng.standard_normal((3, SIZE, SIZE)), 0, 1).astype(np.float32)
    mask = np.zeros((SIZE, SIZE), np.float32)
    if defective:
        top, left = rng.integers(0, SIZE - 8, 2)
        image[:, top:top + 8, left:left + 8] = rng.uniform(0.85, 1.0)
        mask[top:top + 8, left:left + 8] = 1
    return {"image": torch.from_numpy(image), "mask": torch.from_numpy(mask), "label": int(defective),
            "defect": "square" if defective else "good", "path": f"{'bad' if defective else 'good'}.png"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny segmenter trained a few steps, saved, and loaded back into a fresh detector (a checkpoint)."""
    rng = np.random.default_rng(0)
    train = [item(rng, False) for _ in range(16)]
    test = [item(rng, i % 2 == 1) for i in range(12)]
    torch.manual_seed(0)
    detector = SegmenterDetector(tiny_net(), name="tiny", image_size=SIZE, seed=0)
    loader = torch.utils.data.DataLoader(train, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    detector.fit(loader, Budget(epochs=3))
    checkpoint = detector.save(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")
    restored = SegmenterDetector(tiny_net(), name="tiny", image_size=SIZE, seed=0).load(checkpoint)
    return restored, train, test


def test_each_variant_evaluates_the_checkpoint_and_gets_its_delta(trained, tmp_path):
    detector, train, test = trained
    settings = ProbeSettings(threads=1, workdir=tmp_path)
    evaluations = list(evaluate_variants(detector, test, "torch-fp32,torch-bf16,torch-fp16,ort-fp32,ort-int8-static",
                                         settings, batch_size=5, calibration_images=calibration_images_from(train)))
    by_name = {e.variant: e for e in evaluations}
    assert evaluations[0].variant == "torch-fp32"  # the base of every delta comes first
    assert by_name["torch-fp16"].status == "skipped" and "CUDA" in by_name["torch-fp16"].error
    base = by_name["torch-fp32"].evaluation
    scores, maps = detector.predict(torch.stack([t["image"] for t in test]))
    np.testing.assert_allclose(base["scores"], scores, rtol=1e-6)  # the runner's own evaluation path
    np.testing.assert_allclose(base["maps"], maps, rtol=1e-6)
    assert list(base["labels"]) == [t["label"] for t in test]
    assert base["masks"].shape == (12, SIZE, SIZE)  # 12 images in batches of 5: the last batch has 2
    for name in ("torch-bf16", "ort-fp32", "ort-int8-static"):
        run = by_name[name]
        assert run.status == "ok", (name, run.error)
        ev = run.evaluation
        assert ev["scores"].shape == (12,) and ev["maps"].shape == (12, SIZE, SIZE)
        got = accuracy_deltas(base, ev)
        mine = compute_all(ev["labels"], ev["scores"], ev["masks"], ev["maps"])
        fp32 = compute_all(base["labels"], base["scores"], base["masks"], base["maps"])
        for metric in ("image_auroc", "pixel_auroc", "aupro"):
            assert got[metric] == pytest.approx(mine[metric])
            assert got[f"{metric}_delta"] == pytest.approx(mine[metric] - fp32[metric])
    assert by_name["ort-int8-static"].facts["precision"] == "int8"
    assert by_name["ort-int8-static"].facts["provider"] == "CPUExecutionProvider"
    # ONNX Runtime in fp32 computes the same function: no verdict moves
    np.testing.assert_allclose(by_name["ort-fp32"].evaluation["maps"], base["maps"], atol=1e-4)
    assert accuracy_deltas(base, by_name["ort-fp32"].evaluation)["pixel_auroc_delta"] == pytest.approx(0, abs=1e-4)


def test_a_variant_that_breaks_the_verdicts_shows_in_the_delta():
    base = {"labels": np.array([0, 0, 1, 1]), "scores": np.array([0.1, 0.2, 0.8, 0.9], np.float32),
            "masks": np.zeros((4, 2, 2), np.uint8)}
    flipped = dict(base, scores=-base["scores"])
    assert accuracy_deltas(base, flipped)["image_auroc_delta"] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="not of the same test images"):
        accuracy_deltas(base, dict(flipped, labels=np.array([1, 0, 1, 0])))


def test_calibration_images_are_spread_over_the_training_set():
    data = [{"image": torch.full((3, 2, 2), float(i))} for i in range(10)]
    picked = calibration_images_from(data, count=4)
    assert picked.shape == (4, 3, 2, 2)
    assert [float(t[0, 0, 0]) for t in picked] == [0.0, 3.0, 6.0, 9.0]
