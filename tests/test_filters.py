"""models/filters.py: the one Gaussian kernel and the one SSIM, and that every model uses them."""
import numpy as np
import pytest
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


def test_zero_padded_ssim_is_the_authors_same_size_ssim_and_valid_stays_the_default():
    # The authors' vendored pytorch_ssim (VT-ADL and PIADE: pytorch_ssim/__init__.py, _ssim): a 2-D Gaussian
    # window (outer product of the 11-tap, sigma 1.5 kernel) convolved with zero padding window // 2, the SSIM
    # map averaged over every pixel. Written here as that 2-D convolution, independently of separable_filter.
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 24, 24, generator=g)
    y = (x + 0.2 * torch.rand(2, 3, 24, 24, generator=g)).clamp(0, 1)
    k1 = filters.gaussian_kernel_1d(11, 1.5)
    window = (k1[:, None] * k1[None, :]).expand(3, 1, 11, 11)
    conv = lambda t: torch.nn.functional.conv2d(t, window, padding=5, groups=3)  # noqa: E731
    mu_x, mu_y = conv(x), conv(y)
    var_x, var_y, cov = conv(x * x) - mu_x ** 2, conv(y * y) - mu_y ** 2, conv(x * y) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    authors = (((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2)))
    zero = filters.ssim_per_image(x, y, padding="zero")
    assert torch.allclose(zero, authors.flatten(1).mean(1), atol=1e-5)
    valid = filters.ssim_per_image(x, y)
    assert torch.equal(valid, filters.ssim_per_image(x, y, padding="valid"))  # the default is unchanged
    assert (zero - valid).abs().max() > 1e-3  # a measurable difference at this size
    with pytest.raises(ValueError, match="padding"):
        filters.ssim_per_image(x, y, padding="reflect")
