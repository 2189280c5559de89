"""pixel_stats honours the Detector contract: shapes, exact statistics, save/load, ONNX export."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models import create_detector, get_entry
from models.base import Budget

SIZE = 24


def batches(n_batches: int = 3, batch: int = 4, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [
        {"image": 0.5 + 0.05 * torch.randn(batch, 3, SIZE, SIZE, generator=g), "mask": torch.zeros(batch, SIZE, SIZE)}
        for _ in range(n_batches)
    ]


def test_registry_entry():
    entry = get_entry("pixel_stats")
    assert entry.family == "baseline" and entry.input_size == 128


def test_fit_predict_shapes_and_exact_statistics():
    det = create_detector("pixel_stats", image_size=SIZE, blur_sigma=0.0)
    data = batches()
    report = det.fit(data, Budget(epochs=5))
    assert report.epochs == 1 and report.steps == 3 and report.stopped_by == "epochs" and np.isfinite(report.final_loss)
    stacked = torch.cat([b["image"] for b in data]).double()
    torch.testing.assert_close(det.model.mean[0].double(), stacked.mean(0), rtol=0, atol=1e-6)
    torch.testing.assert_close(det.model.std[0].double(), stacked.std(0, unbiased=False), rtol=0, atol=1e-5)

    images = batches(1, 5, seed=1)[0]["image"]
    scores, maps = det.predict(images)
    assert scores.shape == (5,) and maps.shape == (5, SIZE, SIZE) and scores.dtype == np.float32
    # a bright spot raises both the map at the spot and the image score
    spotted = images.clone()
    spotted[0, :, 10:13, 10:13] = 1.0
    s2, m2 = det.predict(spotted)
    assert s2[0] > scores[0] and m2[0, 11, 11] > maps[0].max()


def test_training_step_updates_statistics_and_max_steps():
    det = create_detector("pixel_stats", image_size=SIZE)
    opt = det.make_optimizer()
    before = det.model.mean.clone()
    loss = det.training_step(batches(1)[0]["image"], batches(1)[0]["mask"], opt)
    assert isinstance(loss, float) and not torch.equal(before, det.model.mean)
    report = det.fit(batches(5), Budget(epochs=1, max_steps=2))
    assert report.steps == 2 and report.stopped_by == "max_steps"


def test_save_load_roundtrip(tmp_path: Path):
    det = create_detector("pixel_stats", image_size=SIZE)
    det.fit(batches(), Budget())
    det.save(tmp_path / "ps.safetensors")
    fresh = create_detector("pixel_stats", image_size=SIZE).load(tmp_path / "ps.safetensors")
    x = batches(1, 2, seed=3)[0]["image"]
    np.testing.assert_array_equal(det.predict(x)[0], fresh.predict(x)[0])


def test_onnx_export_matches(tmp_path: Path):
    ort = pytest.importorskip("onnxruntime")
    det = create_detector("pixel_stats", image_size=SIZE)
    det.fit(batches(), Budget())
    module = det.inference_module().eval()
    x = batches(1, 2, seed=4)[0]["image"]
    path = tmp_path / "ps.onnx"
    torch.onnx.export(module, (x,), str(path), dynamo=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    scores, maps = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    ref_scores, ref_maps = module(x)
    np.testing.assert_allclose(scores, ref_scores.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(maps, ref_maps.detach().numpy(), rtol=1e-4, atol=1e-5)
