"""PIADE and the shared reconstruction scoring (models/perceptual.py), on tiny inputs."""
import numpy as np
import pytest
import torch
from pytorch_msssim import ssim as reference_ssim

from models import create_detector, get_entry
from models.base import Budget
from models.perceptual import ReconstructionScorer, VGGPerceptual, ssim_per_image
from models.zoo.piade import PIADENetwork, piade

torch.set_num_threads(1)  # the machine is shared; these tests are small
TINY = 32


def batches(n_batches=2, batch=2, size=TINY, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"image": torch.rand(batch, 3, size, size, generator=g), "mask": torch.zeros(batch, size, size)}
            for _ in range(n_batches)]


def test_registered_as_detector_at_120():
    entry = get_entry("piade")
    assert entry.family == "detector" and entry.input_size == 120


def test_authors_shapes_at_120():
    net = PIADENetwork(120).eval()
    x = torch.rand(2, 3, 120, 120)
    assert net.encode(x).shape == (2, 2048, 4, 4)  # the authors' 4x4 layer4 grid
    recon, capsules = net(x)
    assert recon.shape == (2, 3, 120, 120)
    assert capsules.shape == (2, 2, 64)
    assert net.routing.W.shape == (2, 480, 64, 8)


def test_parameter_count_by_part():
    d = piade()
    n = d.network
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(n.resnet) == 23_508_032  # torchvision ResNet-50 without fc
    assert count(n.routing) == 2 * 480 * 64 * 8
    assert count(d.perceptual) == 75_648 and not any(p.requires_grad for p in d.perceptual.parameters())


def test_score_and_map_contract_on_tiny_input():
    d = piade(image_size=TINY)
    x = torch.rand(3, 3, TINY, TINY)
    scores, maps = d.predict(x)
    assert scores.shape == (3,) and maps.shape == (3, TINY, TINY)
    assert np.isfinite(scores).all() and np.isfinite(maps).all()
    assert (maps >= 0).all()  # squared errors, blurred with a positive kernel


def test_fit_two_steps_and_same_seed_same_loss():
    # ResNet-50's Adam steps are the slow part: one 2-step fit, then one step of a second model for the seed
    step_losses = {"first": [], "again": []}
    first = create_detector("piade", image_size=TINY, seed=3)
    report = first.fit(batches(), Budget(max_steps=2), progress=lambda step, loss: step_losses["first"].append(loss))
    assert report.steps == 2 and report.stopped_by == "max_steps"
    assert np.isfinite(report.final_loss) and len(step_losses["first"]) == 2
    again = create_detector("piade", image_size=TINY, seed=3)
    again.fit(batches(), Budget(max_steps=1), progress=lambda step, loss: step_losses["again"].append(loss))
    assert step_losses["again"][0] == step_losses["first"][0]


def test_pretrained_label_and_local_weights(tmp_path):
    # a torchvision-format VGG11 file: features.{0,3}.* as torchvision names them, plus keys the block ignores
    g = torch.Generator().manual_seed(1)
    state = {"features.0.weight": torch.randn(64, 3, 3, 3, generator=g), "features.0.bias": torch.randn(64, generator=g),
             "features.3.weight": torch.randn(128, 64, 3, 3, generator=g), "features.3.bias": torch.randn(128, generator=g),
             "classifier.6.bias": torch.zeros(1000)}
    vgg_path = tmp_path / "vgg11.pth"
    torch.save(state, vgg_path)
    d = piade(image_size=TINY, vgg_weights=str(vgg_path))
    assert d.pretrained == f"local:{vgg_path}"
    assert piade(image_size=TINY).pretrained == "none"
    assert torch.equal(d.perceptual.features[3].weight, state["features.3.weight"])
    with pytest.raises(FileNotFoundError):
        piade(image_size=TINY, weights=str(tmp_path / "missing.pth"))


def test_own_ssim_matches_pytorch_msssim():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 40, 40, generator=g)
    y = (x + 0.1 * torch.randn(2, 3, 40, 40, generator=g)).clamp(0, 1)
    ours = ssim_per_image(x, y)
    theirs = reference_ssim(x, y, data_range=1.0, size_average=False)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert torch.allclose(ssim_per_image(x, x), torch.ones(2), atol=1e-5)


def test_scorer_is_zero_map_for_perfect_reconstruction_and_higher_for_damage():
    scorer = ReconstructionScorer(VGGPerceptual()).eval()
    x = torch.rand(2, 3, TINY, TINY)
    damaged = x.clone()
    damaged[1, :, 8:16, 8:16] = 1.0 - damaged[1, :, 8:16, 8:16]
    scores, maps = scorer(x, damaged)
    assert torch.allclose(maps[0], torch.zeros(TINY, TINY), atol=1e-6)
    assert scores[1] > scores[0]
    assert pytest.approx(float(scores[0]), abs=1e-5) == -1.0  # MSE 0 - SSIM 1 + perceptual 0
    # the blurred map peaks inside the damaged square
    peak = torch.nonzero(maps[1] == maps[1].max())[0]
    assert 6 <= peak[0] <= 18 and 6 <= peak[1] <= 18


def test_zero_padded_ssim_option_reaches_the_score_and_the_training_loss():
    from models.perceptual import reconstruction_loss

    x = torch.rand(2, 3, TINY, TINY, generator=torch.Generator().manual_seed(4))
    valid, zero = piade(image_size=TINY, seed=1), piade(image_size=TINY, seed=1, ssim_padding="zero")
    assert valid.scorer.ssim_padding == "valid" and zero.scorer.ssim_padding == "zero"
    assert not np.allclose(valid.predict(x)[0], zero.predict(x)[0], rtol=0, atol=1e-7)
    recon = (x + 0.1).clamp(0, 1)
    loss_valid = reconstruction_loss(x, recon, valid.perceptual)
    loss_zero = reconstruction_loss(x, recon, valid.perceptual, "zero")
    assert float(loss_zero) == pytest.approx(float(loss_valid) + float(ssim_per_image(x, recon).mean())
                                             - float(ssim_per_image(x, recon, padding="zero").mean()), abs=1e-5)
    with pytest.raises(ValueError, match="ssim_padding"):
        piade(image_size=TINY, ssim_padding="same")
