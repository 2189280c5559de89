"""The pyramidal autoencoder (ICPR 2020 workshop variant), on tiny inputs."""
import numpy as np
import torch

from models import create_detector, get_entry
from models.base import Budget
from models.zoo.pyramid_ae import PyramidAutoencoder, pyramid_ae

torch.set_num_threads(1)  # the machine is shared; these tests are small
TINY = 32


def batches(n_batches=2, batch=2, size=TINY, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"image": torch.rand(batch, 3, size, size, generator=g), "mask": torch.zeros(batch, size, size)}
            for _ in range(n_batches)]


def test_registered_as_detector():
    entry = get_entry("pyramid_ae")
    assert entry.family == "detector" and entry.input_size == 120


def test_levels_and_reconstruction_shapes():
    net = PyramidAutoencoder().eval()
    x = torch.rand(2, 3, 120, 120)
    assert [tuple(t.shape[1:]) for t in net.levels(x)] == [(64, 30, 30), (128, 15, 15), (256, 8, 8)]
    assert net(x).shape == (2, 3, 120, 120)
    assert net(torch.rand(1, 3, 50, 50)).shape == (1, 3, 50, 50)  # not a multiple of 4: resized back


def test_score_and_map_contract_on_tiny_input():
    d = pyramid_ae(image_size=TINY)
    scores, maps = d.predict(torch.rand(3, 3, TINY, TINY))
    assert scores.shape == (3,) and maps.shape == (3, TINY, TINY)
    assert np.isfinite(scores).all() and (maps >= 0).all()
    assert d.pretrained == "none" and d.image_level_only is False


def test_fit_two_steps_and_same_seed_same_loss():
    reports = [create_detector("pyramid_ae", image_size=TINY, seed=5).fit(batches(), Budget(max_steps=2))
               for _ in range(2)]
    assert reports[0].steps == 2 and np.isfinite(reports[0].final_loss)
    assert reports[0].loss_history == reports[1].loss_history


def test_vgg_stays_frozen_while_the_network_trains():
    d = pyramid_ae(image_size=TINY)
    vgg_before = d.perceptual.features[0].weight.clone()
    net_before = d.network.encoders[0][0].weight.clone()
    d.fit(batches(), Budget(max_steps=1))
    assert torch.equal(d.perceptual.features[0].weight, vgg_before)
    assert not torch.equal(d.network.encoders[0][0].weight, net_before)


def test_save_load_round_trip(tmp_path):
    d = pyramid_ae(image_size=TINY, seed=1)
    d.fit(batches(), Budget(max_steps=1))
    x = torch.rand(2, 3, TINY, TINY)
    before = d.predict(x)
    path = d.save(tmp_path / "pyramid_ae.safetensors")
    e = pyramid_ae(image_size=TINY, seed=2).load(path)
    after = e.predict(x)
    assert np.allclose(before[0], after[0], atol=1e-6) and np.allclose(before[1], after[1], atol=1e-6)
