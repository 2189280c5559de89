"""models/filters.py: the one Gaussian kernel and the one SSIM, and that every model uses them."""
import numpy as np
import torch

from models import filters, perceptual
from models.zoo import pixel_stats, vtadl


def test_gaussian_kernel_is_the_normalised_gaussian_at_integer_offsets():
    offsets = np.arange(-5, 6, dtype=np.float64)
    expected = np.exp(-offsets**2 / (2 * 1.5**2))
    got = filters.gaussian_kernel_1d(11, 1.5, torch.float64).numpy()
    np.testing.assert_allclose(got, expected / expected.sum(), rtol=1e-15)
    assert filters.gaussian_kernel_1d(11, 1.5).dtype == torch.float32


def test_separable_filter_keeps_a_constant_image_and_shrinks_only_when_valid():
    x = torch.full((1, 2, 20, 20), 0.25)
    k = filters.gaussian_kernel_1d(5, 1.0)
    assert filters.separable_filter(x, k, "valid").shape == (1, 2, 16, 16)
    torch.testing.assert_close(filters.separable_filter(x, k, "replicate"), x)


def test_ssim_is_one_for_equal_images_and_lower_for_noisy_ones():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(filters.ssim_per_image(x, x), torch.ones(2), atol=1e-5, rtol=0)
    assert (filters.ssim_per_image(x, (x + 0.2 * torch.randn_like(x)).clamp(0, 1)) < 0.9).all()


def test_every_model_builds_on_the_one_kernel_and_the_one_ssim():
    assert perceptual.ssim_per_image is filters.ssim_per_image is vtadl.ssim_per_image
    kernel = pixel_stats.gaussian_kernel(1.0, channels=1)[0, 0]
    g = filters.gaussian_kernel_1d(5, 1.0)
    assert torch.equal(kernel, g[:, None] * g[None, :])
    blur = vtadl.GaussianBlur(32, 4.0)
    assert torch.equal(blur.kernel_h.flatten(), filters.gaussian_kernel_1d(33, 4.0, torch.float64).float())
