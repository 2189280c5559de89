"""The one Gaussian kernel and the one SSIM the models build on (PIADE, the pyramidal autoencoder, VT-ADL,
pixel_stats), written with plain (depthwise, separable) convolutions so that every scoring graph exports to
ONNX as Conv nodes.

- `gaussian_kernel_1d(size, sigma, dtype)`: the normalised samples exp(-x^2 / (2 sigma^2)) at the integer
  offsets -size//2 .. size//2, computed in `dtype` (VT-ADL's heat-map blur computes it in float64 and rounds
  once to float32, as scipy does).
- `separable_filter(x, kernel_1d, padding)`: a depthwise filter along H, then W; "valid", "replicate" or
  "zero" (same size, zeros beyond the border).
- `ssim_per_image(x, y, window, padding)`: SSIM with an 11-tap Gaussian window (sigma 1.5), constants
  K=(0.01, 0.03), data range 1, averaged over channels and pixels. `padding="valid"` (the default) computes it
  over the valid region: the definition of `pytorch_msssim.ssim(..., data_range=1, size_average=False)` (the
  tests check they agree). `padding="zero"` zero-pads the window to a same-size map, as the `pytorch_ssim`
  package that VT-ADL's and PIADE's authors vendored (`pytorch_ssim/__init__.py`, `_ssim`: conv2d with
  padding window_size // 2): the border pixels then see a darkened neighbourhood.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_PADDINGS = ("valid", "zero")  # the project's default first; "zero" is the authors' pytorch_ssim


def gaussian_kernel_1d(size: int, sigma: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A normalised 1-D Gaussian of `size` taps (odd: centred on the middle one), computed in `dtype`."""
    coords = torch.arange(size, dtype=dtype) - (size // 2)
    g = torch.exp(-(coords**2) / (2.0 * sigma**2))
    return g / g.sum()


def separable_filter(x: torch.Tensor, kernel_1d: torch.Tensor, padding: str) -> torch.Tensor:
    """Depthwise filtering of [B,C,H,W] with a 1-D kernel along H then W; `padding` is "valid" (the output
    shrinks by size - 1), "replicate" (same size, the border pixels repeated) or "zero" (same size, zeros)."""
    if padding not in SSIM_PADDINGS + ("replicate",):
        raise ValueError(f"padding must be valid, zero or replicate, got {padding!r}")
    channels = x.shape[1]
    k = kernel_1d.to(dtype=x.dtype)
    size = k.numel()
    if padding in ("replicate", "zero"):
        half = size // 2
        x = F.pad(x, (half, half, half, half), mode="replicate" if padding == "replicate" else "constant")
    vertical = k.view(1, 1, size, 1).expand(channels, 1, size, 1)
    horizontal = k.view(1, 1, 1, size).expand(channels, 1, 1, size)
    x = F.conv2d(x, vertical, groups=channels)
    return F.conv2d(x, horizontal, groups=channels)


def ssim_per_image(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor | None = None,
                   padding: str = "valid") -> torch.Tensor:
    """SSIM of each image pair, [B,C,H,W] x2 -> [B]; images in [0,1] (needs H, W >= the window size).
    `window`: the 1-D Gaussian (default: SSIM_WINDOW taps, SSIM_SIGMA), e.g. a module's buffer.
    `padding`: "valid" (only windows inside the image) or "zero" (the authors' zero-padded same-size map)."""
    if padding not in SSIM_PADDINGS:
        raise ValueError(f"SSIM padding must be one of {SSIM_PADDINGS}, got {padding!r}")
    if window is None:
        window = gaussian_kernel_1d(SSIM_WINDOW, SSIM_SIGMA).to(x.device)
    c1, c2 = 0.01**2, 0.03**2
    mu_x = separable_filter(x, window, padding)
    mu_y = separable_filter(y, window, padding)
    var_x = separable_filter(x * x, window, padding) - mu_x * mu_x
    var_y = separable_filter(y * y, window, padding) - mu_y * mu_y
    cov = separable_filter(x * y, window, padding) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)) * ((2 * cov + c2) / (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1)
