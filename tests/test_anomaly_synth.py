"""The DRAEM-style synthetic anomaly generator: binary masks, exact locality, determinism."""
import torch

from models.anomaly_synth import perlin_noise, synthesize_anomalies


def batch(b=4, size=64, seed=0):
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_shapes_ranges_and_binary_masks():
    images = batch()
    out, masks = synthesize_anomalies(images, torch.Generator().manual_seed(1), probability=0.5)
    assert out.shape == images.shape and masks.shape == (4, 64, 64)
    assert masks.dtype == torch.float32
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert out.min() >= 0 and out.max() <= 1


def test_pixels_outside_the_mask_are_unchanged_and_input_untouched():
    images = batch()
    before = images.clone()
    out, masks = synthesize_anomalies(images, torch.Generator().manual_seed(2), probability=1.0)
    outside = (masks == 0)[:, None].expand_as(images)
    assert torch.equal(out[outside], images[outside])
    assert torch.equal(images, before)
    # and the pasted region does change the image
    assert not torch.equal(out, images)


def test_probability_one_gives_anomalies_and_zero_gives_none():
    images = batch(b=6)
    _, masks = synthesize_anomalies(images, torch.Generator().manual_seed(3), probability=1.0)
    assert (masks.flatten(1).sum(1) > 0).all()
    assert (masks.mean(dim=(1, 2)) < 0.9).all()  # blobs, not the whole image
    out, masks = synthesize_anomalies(images, torch.Generator().manual_seed(3), probability=0.0)
    assert masks.sum() == 0 and torch.equal(out, images)


def test_deterministic_for_a_seed_and_different_for_another():
    images = batch()
    out_a, masks_a = synthesize_anomalies(images, torch.Generator().manual_seed(7), probability=1.0)
    out_b, masks_b = synthesize_anomalies(images, torch.Generator().manual_seed(7), probability=1.0)
    out_c, masks_c = synthesize_anomalies(images, torch.Generator().manual_seed(8), probability=1.0)
    assert torch.equal(out_a, out_b) and torch.equal(masks_a, masks_b)
    assert not torch.equal(masks_a, masks_c)
    assert not torch.equal(out_a, out_c)


def test_single_image_batch_uses_itself():
    image = batch(b=1)
    out, masks = synthesize_anomalies(image, torch.Generator().manual_seed(4), probability=1.0)
    assert masks.sum() > 0
    assert not torch.equal(out, image)


def test_perlin_noise_is_smooth_and_bounded():
    noise = perlin_noise(64, 64, 4, 4, torch.Generator().manual_seed(0))
    assert noise.shape == (64, 64)
    assert noise.abs().max() <= 1.5
    # gradient noise vanishes on the lattice points
    assert noise[::16, ::16].abs().max() < 1e-6
    # neighbouring pixels differ far less than the noise's range
    assert (noise[:, 1:] - noise[:, :-1]).abs().max() < 0.25 * (noise.max() - noise.min())
