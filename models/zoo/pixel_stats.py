"""pixel_stats: the floor baseline. A Gaussian per pixel and channel, fitted to the training images.

After a light Gaussian blur (sigma 1 px, so one noisy pixel does not dominate), each pixel and channel of
the normal images gets a mean and a standard deviation (floored at 0.01); a test image's map is the
largest absolute z-score over the channels, and its image score is the mean of the top 0.1% of the map
(16 pixels at 128x128, about the area of a small defect). It knows nothing of texture or pose, which is
the point: it calibrates the synthetic set (a set on which it scores near 1.0 is too easy to rank
detectors; one where it scores 0.5 everywhere has no pixel-aligned signal at all).

Training is one pass of sufficient statistics (count, sum, sum of squares, in float64). `training_step`
adds one batch to them and refreshes the mean/std buffers, so a timed train step measures exactly that
update; it takes the optimiser only to match the contract (there is nothing to descend on; see
`make_optimizer`) and returns the batch's mean |z| under the refreshed statistics as its "loss".
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Iterable

import torch
from torch import nn
from torch.nn import functional as F

from models.base import Budget, Detector, FitReport, ProgressFn
from models.filters import gaussian_kernel_1d
from models.registry import register_model


def gaussian_kernel(sigma: float, channels: int = 3) -> torch.Tensor:
    """A depthwise [C,1,k,k] Gaussian kernel, k = 2*ceil(2 sigma)+1 (sigma 0 gives the identity)."""
    if sigma <= 0:
        return torch.ones(channels, 1, 1, 1)
    radius = int(math.ceil(2 * sigma))
    g = gaussian_kernel_1d(2 * radius + 1, sigma)
    return (g[:, None] * g[None, :]).expand(channels, 1, -1, -1).contiguous()


class PixelGaussian(nn.Module):
    """images [B,3,S,S] -> (scores [B], maps [B,S,S]); mean and std are buffers (saved, exported)."""

    def __init__(self, image_size: int, blur_sigma: float = 1.0, top_k_fraction: float = 0.001, min_std: float = 0.01):
        super().__init__()
        self.image_size = image_size
        self.top_k = max(1, int(round(top_k_fraction * image_size * image_size)))
        self.min_std = min_std
        self.register_buffer("mean", torch.zeros(1, 3, image_size, image_size))
        self.register_buffer("std", torch.ones(1, 3, image_size, image_size))
        self.register_buffer("kernel", gaussian_kernel(blur_sigma), persistent=False)

    def blur(self, images: torch.Tensor) -> torch.Tensor:
        pad = self.kernel.shape[-1] // 2
        if pad == 0:
            return images
        return F.conv2d(F.pad(images, (pad, pad, pad, pad), mode="replicate"), self.kernel, groups=3)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = (self.blur(images) - self.mean).abs() / self.std.clamp_min(self.min_std)
        maps = z.amax(dim=1)
        scores = maps.flatten(1).topk(self.top_k, dim=1).values.mean(dim=1)
        return scores, maps


class PixelStatsDetector(Detector):
    name = "pixel_stats"

    def __init__(self, image_size: int, blur_sigma: float = 1.0, top_k_fraction: float = 0.001, min_std: float = 0.01):
        super().__init__(image_size)
        self.model = PixelGaussian(self.image_size, blur_sigma, top_k_fraction, min_std)
        self.reset()

    def reset(self) -> None:
        shape = (1, 3, self.image_size, self.image_size)
        self._count = 0
        self._sum = torch.zeros(shape, dtype=torch.float64, device=self.device)
        self._sum_sq = torch.zeros(shape, dtype=torch.float64, device=self.device)

    def modules_to_save(self) -> dict[str, nn.Module]:
        return {"stats": self.model}

    def inference_module(self) -> nn.Module:
        return self.model

    def make_optimizer(self) -> torch.optim.Optimizer:
        # no parameters to descend on; a no-op optimiser keeps the contract's call sequence working
        return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)

    def to(self, device) -> "PixelStatsDetector":
        super().to(device)
        self._sum, self._sum_sq = self._sum.to(self.device), self._sum_sq.to(self.device)
        return self

    @torch.no_grad()
    def training_step(self, images: torch.Tensor, masks: torch.Tensor, optimizer: torch.optim.Optimizer) -> float:
        """Add the batch to the running sums and refresh mean/std; returns the batch's mean |z|."""
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"pixel_stats was built for {self.image_size}x{self.image_size} images; got {tuple(images.shape[-2:])}")
        blurred = self.model.blur(images.to(self.device).float()).double()
        self._count += blurred.shape[0]
        self._sum += blurred.sum(dim=0, keepdim=True)
        self._sum_sq += (blurred**2).sum(dim=0, keepdim=True)
        mean = self._sum / self._count
        var = (self._sum_sq / self._count - mean**2).clamp_min(0.0)
        self.model.mean.copy_(mean.float())
        self.model.std.copy_(var.sqrt().float())
        z = (blurred.float() - self.model.mean).abs() / self.model.std.clamp_min(self.model.min_std)
        return float(z.mean())

    def fit(self, train_data: Iterable[dict], budget: Budget, progress: ProgressFn | None = None) -> FitReport:
        """One pass over the data, through the shared loop (the statistics are exact after it; more passes
        would add nothing). Each fit starts the statistics afresh, so a later stage refits them on a full pass.
        The shared loop's schedule scales a learning rate of 0: nothing here descends."""
        self.reset()
        return super().fit(train_data, replace(budget, epochs=min(budget.epochs, 1), steps_done=0), progress)

    def info(self) -> dict:
        return {**super().info(), "train_images": self._count, "top_k": self.model.top_k}


@register_model(
    "pixel_stats",
    family="baseline",
    paper="floor baseline: per-pixel Gaussian z-score (no learned features)",
    input_size=128,
    description="per-pixel mean/std of blurred training images; map = max-channel |z|; score = top-0.1% mean",
)
def pixel_stats(image_size: int = 128, blur_sigma: float = 1.0, top_k_fraction: float = 0.001, min_std: float = 0.01) -> PixelStatsDetector:
    return PixelStatsDetector(image_size, blur_sigma=blur_sigma, top_k_fraction=top_k_fraction, min_std=min_std)
