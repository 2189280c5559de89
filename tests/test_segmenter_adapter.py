"""SegmenterDetector: trains on pasted synthetic anomalies, predicts (scores, maps), exports to ONNX."""
import numpy as np
import pytest
import torch
from torch import nn

import models
from models.base import Budget
from models.segmenter_adapter import IMAGENET_MEAN, IMAGENET_STD, SegmenterDetector, SegmenterInference


def tiny_loader(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        {"image": torch.rand(2, 3, 64, 64, generator=g), "mask": torch.zeros(2, 64, 64), "label": torch.zeros(2)}
        for _ in range(2)
    ]


def fitted_losses(name, seed=0):
    torch.manual_seed(0)
    detector = models.create_detector(name, image_size=64)
    losses = []
    report = detector.fit(tiny_loader(), Budget(epochs=1, max_steps=2), progress=lambda step, loss: losses.append(loss))
    return detector, report, losses


@pytest.fixture(scope="module")
def u2net_small_fit():
    return fitted_losses("u2net_small")


def test_fit_two_steps_then_predict(u2net_small_fit):
    detector, report, losses = u2net_small_fit
    assert isinstance(detector, SegmenterDetector)
    assert report.steps == 2 and report.stopped_by == "max_steps"
    assert len(losses) == 2 and all(np.isfinite(losses))
    scores, maps = detector.predict(torch.rand(3, 3, 64, 64))
    assert scores.shape == (3,) and maps.shape == (3, 64, 64)
    assert np.all(np.isfinite(maps)) and np.all(np.isfinite(scores))
    # the maps are the net's logits: sigmoid of them is its per-pixel probability
    with torch.no_grad():
        module = detector.inference_module().eval()
        x = torch.rand(1, 3, 64, 64)
        logits = module.net(module.normalise(x))[:, 0]
    np.testing.assert_allclose(detector.predict(x)[1], logits.numpy(), rtol=1e-6, atol=1e-6)


class ConstantLogits(nn.Module):
    """Logits = 20 + 10 x the image's first channel: every pixel above sigmoid's float32 ceiling (~17)."""

    def forward(self, x):
        return 20.0 + 10.0 * x[:, :1] * IMAGENET_STD[0] + 10.0 * IMAGENET_MEAN[0]


def test_high_logits_are_ranked_not_tied():
    # The defect issue 13 measured: sigmoid maps in float32 are exactly 1.0 above logit ~17, so a long-trained net
    # tied its most anomalous images and pixels. Ranked on logits, a brighter image must score higher.
    inference = SegmenterInference(ConstantLogits(), top_k_fraction=0.01).eval()
    images = torch.stack([torch.full((3, 8, 8), 0.2), torch.full((3, 8, 8), 0.8)])
    with torch.no_grad():
        scores, maps = inference(images)
    assert torch.all(torch.sigmoid(maps) == 1.0)  # what the old maps were: all tied
    assert scores[1] > scores[0] + 5.0
    assert maps[1].min() > maps[0].max()


def test_same_seed_same_losses(u2net_small_fit):
    _, _, first = u2net_small_fit
    _, _, second = fitted_losses("u2net_small")
    assert first == second


class TwoMapNet(nn.Module):
    """A stand-in for U^2-Net: a fused map plus one side output, exposed by `training_outputs`."""

    def __init__(self):
        super().__init__()
        self.side = nn.Conv2d(3, 1, 3, padding=1)
        self.fuse = nn.Conv2d(1, 1, 1)

    def training_outputs(self, x):
        side = self.side(x)
        return [self.fuse(side), side]

    def forward(self, x):
        return self.training_outputs(x)[0]


def test_loss_sums_bce_and_dice_over_every_training_output():
    from models.anomaly_synth import synthesize_anomalies
    from models.segmenter_adapter import soft_dice_loss

    torch.manual_seed(0)
    net = TwoMapNet()
    detector = SegmenterDetector(net, name="two_maps", image_size=64, seed=5, anomaly_probability=1.0)
    images = torch.rand(2, 3, 64, 64)
    # the same synthetic batch the step will draw, from a generator seeded alike
    synthetic, targets = synthesize_anomalies(images, torch.Generator().manual_seed(5), 1.0)
    with torch.no_grad():
        maps = [m[:, 0] for m in net.training_outputs(detector.inference_module().normalise(synthetic))]
        expected = sum(
            nn.functional.binary_cross_entropy_with_logits(m, targets) + soft_dice_loss(m, targets) for m in maps
        )
    loss = detector.training_step(images, torch.zeros(2, 64, 64), detector.make_optimizer())
    assert loss == pytest.approx(float(expected), rel=1e-5)


def test_score_is_mean_of_top_k_map_values():
    torch.manual_seed(0)
    net = nn.Conv2d(3, 1, 3, padding=1)
    inference = SegmenterInference(net, top_k_fraction=0.01).eval()
    with torch.no_grad():
        scores, maps = inference(torch.rand(2, 3, 64, 64))
    k = round(0.01 * 64 * 64)  # 41
    expected = maps.flatten(1).sort(dim=1, descending=True).values[:, :k].mean(dim=1)
    assert torch.allclose(scores, expected)
    # a fraction too small for one pixel still uses the maximum
    tiny = SegmenterInference(net, top_k_fraction=1e-9).eval()
    with torch.no_grad():
        tiny_scores, _ = tiny(torch.rand(2, 3, 64, 64))
    assert tiny_scores.shape == (2,)


def test_modules_to_save_and_state_round_trip(tmp_path):
    torch.manual_seed(0)
    detector = models.create_detector("u2net_small", image_size=64)
    assert set(detector.modules_to_save()) == {"net"}
    path = detector.save(tmp_path / "model.safetensors")
    torch.manual_seed(1)
    other = models.create_detector("u2net_small", image_size=64).load(path)
    x = torch.rand(1, 3, 64, 64)
    assert np.array_equal(detector.predict(x)[1], other.predict(x)[1])


def test_inference_module_exports_to_onnx(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))
    inference = SegmenterDetector(net, name="tiny", image_size=64).inference_module().eval()
    x = torch.rand(2, 3, 64, 64)
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(inference, (x,), str(path), dynamo=True, input_names=["images"], output_names=["scores", "maps"])
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_scores, onnx_maps = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        scores, maps = inference(x)
    np.testing.assert_allclose(onnx_scores, scores.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(onnx_maps, maps.numpy(), rtol=1e-4, atol=1e-5)


def test_fit_recalibrates_batch_norm_on_clean_training_images():
    from models.base import Budget
    from models.segmenter_adapter import IMAGENET_MEAN, IMAGENET_STD, SegmenterDetector

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 1, 1))
    detector = SegmenterDetector(net, name="bn", image_size=16, seed=0)
    images = torch.rand(4, 3, 16, 16)
    batches = [{"image": images[:2], "mask": torch.zeros(2, 16, 16)}, {"image": images[2:], "mask": torch.zeros(2, 16, 16)}]
    detector.fit(batches, Budget(epochs=1))
    normalised = (images - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    # running mean = the clean images' channel means (the training batches had anomalies pasted in)
    assert torch.allclose(net[0].running_mean, normalised.mean(dim=(0, 2, 3)), atol=1e-5)
    assert net[0].momentum == 0.1 and not net.training


class ClockedNet(nn.Module):
    """BN + 1x1 conv whose every forward pass advances a fake wall clock by one second."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock
        self.norm, self.conv = nn.BatchNorm2d(3), nn.Conv2d(3, 1, 1)

    def forward(self, x):
        self.clock.now += 1.0
        return self.conv(self.norm(x))


def test_recalibration_keeps_the_loaders_shuffle_and_counts_in_train_seconds():
    from models.base import Budget

    class Clock:
        now = 0.0

        def __call__(self):
            return self.now

    data = torch.utils.data.TensorDataset(torch.rand(8, 3, 16, 16))
    collate = lambda items: {"image": torch.stack([i[0] for i in items]), "mask": torch.zeros(len(items), 16, 16)}  # noqa: E731

    def loader():
        return torch.utils.data.DataLoader(data, batch_size=2, shuffle=True, collate_fn=collate,
                                           generator=torch.Generator().manual_seed(7))

    clock = Clock()
    torch.manual_seed(0)
    detector = SegmenterDetector(ClockedNet(clock), name="clocked", image_size=16, seed=0)
    detector.clock = clock
    trained = loader()
    report = detector.fit(trained, Budget(epochs=1))
    untouched = loader()
    for step, _ in enumerate(untouched, start=1):  # the fit's one pass, which stops at its 4th step
        if step == 4:
            break
    assert torch.equal(trained.generator.get_state(), untouched.generator.get_state())
    # 4 training steps + 4 recalibration batches, one (fake) second each: both are training time
    assert report.steps == 4 and report.train_seconds == pytest.approx(8.0)


def test_recalibration_reads_as_many_evenly_spaced_images_as_training_drew():
    from models.base import Budget
    from models.segmenter_adapter import IMAGENET_MEAN, IMAGENET_STD

    class Clock:
        now = 0.0

        def __call__(self):
            return self.now

    images = torch.rand(40, 3, 16, 16)
    data = torch.utils.data.TensorDataset(images)
    collate = lambda items: {"image": torch.stack([i[0] for i in items]), "mask": torch.zeros(len(items), 16, 16)}  # noqa: E731
    trained = torch.utils.data.DataLoader(data, batch_size=4, shuffle=True, collate_fn=collate,
                                          generator=torch.Generator().manual_seed(3))
    clock = Clock()
    torch.manual_seed(0)
    net = ClockedNet(clock)
    detector = SegmenterDetector(net, name="clocked", image_size=16, seed=0, bn_recalibration_min_images=4)
    detector.clock = clock
    report = detector.fit(trained, Budget(epochs=10, max_steps=2))  # 2 steps of 4: 8 images drawn
    # 2 training steps, then 8 images (2 batches) recalibrated, not the 40 of the dataset
    assert report.steps == 2 and report.train_seconds == pytest.approx(4.0)
    subset = images[[0, 5, 10, 15, 20, 25, 30, 35]]
    normalised = (subset - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(net.norm.running_mean, normalised.mean(dim=(0, 2, 3)), atol=1e-5)

    # a later stage counts the steps of the earlier ones: 2 + 3 steps = 20 images
    clock.now = 0.0
    report = detector.fit(trained, Budget(epochs=10, max_steps=3, steps_done=2))
    assert report.steps == 3 and report.train_seconds == pytest.approx(3.0 + 5.0)
