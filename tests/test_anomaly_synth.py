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


def stripes(size=64, period=8, phase=0):
    x = torch.arange(size).float()
    row = (((x + phase) % period) < period / 2).float() * 0.6 + 0.2  # 0.2 / 0.8 bars, period 8 px
    return row.expand(1, 3, size, size).clone()


def test_a_faint_same_texture_paste_is_no_anomaly_but_a_colour_change_is():
    from models.anomaly_synth import visible_change

    image = stripes()
    # the texture shifted by a quarter period, blended at opacity 0.3: pixels at the bars' edges move by 0.18,
    # far above the threshold, yet the local colour, contrast and orientation are those of the normal texture
    shifted = 0.7 * image + 0.3 * stripes(phase=2)
    assert (shifted - image).abs().amax() > 0.1
    assert not visible_change(image, shifted).any()
    # the same stripes darkened inside a square: visible there, not far from it
    stained = image.clone()
    stained[..., 24:40, 24:40] *= 0.7
    visible = visible_change(image, stained)[0]
    assert visible[28:36, 28:36].all() and not visible[:12].any() and not visible[:, 52:].any()
    # plain background pasted onto plain background changes nothing
    plain = torch.full((1, 3, 64, 64), 0.3)
    assert not visible_change(plain, plain.clone()).any()
