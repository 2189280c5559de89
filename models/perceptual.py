"""Reconstruction scoring shared by PIADE and the pyramidal autoencoder (Mishra, Piciarelli, Foresti 2020).

- `VGGPerceptual`: the authors' perceptual term, the frozen first block of VGG11 (`features[:4]`: conv 3->64,
  ReLU, max-pool, conv 64->128, no ReLU after it), fed [0,1] images without ImageNet normalisation, as in
  their `vgg_percep_loss.py`. The loss is the MSE between the block's activations of the reconstruction
  and of the input. Pretrained VGG11 weights come only from a local file (`load_local_weights`); without
  one the block keeps its seeded random initialisation (still frozen: a fixed random feature projection).
- SSIM: `models.filters.ssim_per_image` (11-tap Gaussian window, sigma 1.5, valid region, the definition of
  `pytorch_msssim.ssim(..., data_range=1, size_average=False)`), so that the scoring graph exports to ONNX.
  The authors used `pytorch_ssim`, which zero-pads the window instead ("same" size); the valid-region form
  differs only at the borders. `ssim_padding="zero"` reproduces theirs, in the training loss and the score
  alike (docs/design/recipes.md).
- `ReconstructionScorer`: (input, reconstruction) -> (scores [B], maps [B,H,W]).
  Image score, as the authors' `Testing_mvtech.py`: MSE - SSIM + perceptual, each per image.
  Pixel map (the authors give image scores only; this is ours): the squared reconstruction error averaged
  over colour channels, plus its perceptual counterpart (the squared VGG-feature difference averaged over
  the 128 feature channels, at half resolution, bilinearly upsampled), the sum blurred by a fixed Gaussian
  (sigma 4, as VT-ADL's heat map; replicate padding so borders are not darkened). The blur is a fixed
  depthwise convolution held as a buffer: it exports to ONNX as a Conv.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.base import Detector, check_checkpoint, load_local_weights
from models.filters import SSIM_PADDINGS, SSIM_SIGMA, SSIM_WINDOW, gaussian_kernel_1d, separable_filter, ssim_per_image

MAP_BLUR_SIGMA = 4.0


class VGGPerceptual(nn.Module):
    """Frozen VGG11 `features[:4]`; parameter names match torchvision's `vgg11` state dict (`features.0.*`,
    `features.3.*`), so a local torchvision file loads into it directly."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(inplace=False), nn.MaxPool2d(2, 2), nn.Conv2d(64, 128, 3, padding=1)
        )
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> "VGGPerceptual":
        return super().train(False)  # frozen: never in training mode (it has no BN, but be explicit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def loss(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar MSE between the block's activations, as the authors' training loss."""
        return F.mse_loss(self(reconstruction), self(target))


class ReconstructionScorer(nn.Module):
    """(images, reconstructions) -> (scores [B], maps [B,H,W]); see the module docstring."""

    def __init__(self, perceptual: VGGPerceptual, blur_sigma: float = MAP_BLUR_SIGMA, ssim_padding: str = "valid"):
        super().__init__()
        self.perceptual = perceptual
        self.ssim_padding = ssim_padding
        blur_size = 2 * int(math.ceil(4 * blur_sigma)) + 1
        self.register_buffer("blur_kernel", gaussian_kernel_1d(blur_size, blur_sigma), persistent=False)
        self.register_buffer("ssim_window", gaussian_kernel_1d(SSIM_WINDOW, SSIM_SIGMA), persistent=False)

    def forward(self, images: torch.Tensor, reconstructions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        squared_error = (reconstructions - images) ** 2
        mse = squared_error.flatten(1).mean(1)
        ssim = ssim_per_image(images, reconstructions, self.ssim_window, self.ssim_padding)
        feature_error = (self.perceptual(reconstructions) - self.perceptual(images)) ** 2
        perceptual = feature_error.flatten(1).mean(1)
        scores = mse - ssim + perceptual

        feature_map = F.interpolate(feature_error.mean(1, keepdim=True), size=images.shape[-2:], mode="bilinear",
                                    align_corners=False)
        pixel_map = squared_error.mean(1, keepdim=True) + feature_map
        maps = separable_filter(pixel_map, self.blur_kernel, "replicate")
        return scores, maps[:, 0]


def reconstruction_loss(images: torch.Tensor, reconstructions: torch.Tensor, perceptual: VGGPerceptual,
                        ssim_padding: str = "valid") -> torch.Tensor:
    """The authors' training loss: MSE - SSIM + perceptual (weights 1, 1, 1). SSIM by `pytorch_msssim` over
    valid windows, or zero-padded as the authors' `pytorch_ssim` with `ssim_padding="zero"`."""
    if ssim_padding == "valid":
        from pytorch_msssim import ssim

        similarity = ssim(images, reconstructions, data_range=1.0, size_average=True)
    else:
        similarity = ssim_per_image(images, reconstructions, padding=ssim_padding).mean()
    return F.mse_loss(reconstructions, images) - similarity + perceptual.loss(reconstructions, images)


class ReconstructionInference(nn.Module):
    """images -> (scores [B], maps [B,H,W]): reconstruct with the network, score with MSE - SSIM + perceptual."""

    def __init__(self, network: nn.Module, scorer: ReconstructionScorer):
        super().__init__()
        self.network = network
        self.scorer = scorer

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scorer(images, self.network.reconstruct(images))


class ReconstructionDetector(Detector):
    """PIADE and pyramid_ae: a network with a `.resnet` backbone and `reconstruct(images)`, trained and scored
    with MSE - SSIM + perceptual against a frozen VGG11 block (Adam, the authors' lr and weight decay)."""

    def __init__(self, image_size: int, network_factory, weights: str | None, vgg_weights: str | None, seed: int,
                 lr: float, weight_decay: float, ssim_padding: str = "valid", checkpoint: str = "last"):
        super().__init__(image_size)
        if ssim_padding not in SSIM_PADDINGS:
            raise ValueError(f"ssim_padding must be one of {SSIM_PADDINGS}, got {ssim_padding!r}")
        self.seed, self.lr, self.weight_decay = seed, lr, weight_decay
        self.ssim_padding = ssim_padding
        self.checkpoint = check_checkpoint(checkpoint)
        torch.manual_seed(seed)
        self.network = network_factory()
        self.perceptual = VGGPerceptual()
        labels = [load_local_weights(self.network.resnet, weights), load_local_weights(self.perceptual, vgg_weights)]
        # "none", or the local file(s) used, e.g. "local:r50.pth+local:vgg11.pth" (the paths say which is which)
        self.pretrained = "+".join(label for label in labels if label != "none") or "none"
        self.scorer = ReconstructionScorer(self.perceptual, ssim_padding=ssim_padding)  # holds the frozen VGG block and the fixed kernels
        self._inference = ReconstructionInference(self.network, self.scorer)

    def modules_to_save(self) -> dict[str, nn.Module]:
        # the scorer (frozen VGG block + fixed blur/SSIM kernels) is listed so that `to(device)` moves it too
        return {"network": self.network, "scorer": self.scorer}

    def inference_module(self) -> nn.Module:
        return self._inference

    def make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam([p for p in self.network.parameters() if p.requires_grad], lr=self.lr,
                                weight_decay=self.weight_decay)

    def training_step(self, images: torch.Tensor, masks: torch.Tensor, optimizer: torch.optim.Optimizer) -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = reconstruction_loss(images, self.network.reconstruct(images), self.perceptual, self.ssim_padding)
        loss.backward()
        optimizer.step()
        return float(loss.detach())
