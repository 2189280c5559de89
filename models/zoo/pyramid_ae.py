"""Pyramidal autoencoder: the ICPR 2020 workshop variant of PIADE (Mishra, Piciarelli, Foresti, "Image
Anomaly Detection by Aggregating Deep Pyramidal Representations", ICPR Workshops 2020/2021).

The paper describes a multi-scale pyramid of stacked convolutional autoencoders trained on normal images
with the same high-level perceptual loss as PIADE, and no routing layer. Its code is not public; the parts
below are the authors' where their PIADE repository has them, and ours (marked) where it does not:
- Trunk (ours, from the PIADE paper's figure, which names a ResNet-18): torchvision ResNet-18 up to layer3,
  giving features at three resolutions: layer1 64 ch at S/4, layer2 128 ch at S/8, layer3 256 ch at S/16.
- Per level, a stacked encoder: the authors' `autoencoder.encoder` block (conv3x3 C->16, BN, ReLU,
  conv3x3 16->8, BN, ReLU, conv1x1 8->8), giving an 8-channel latent map at that level's resolution.
- Decoder (ours): the three latent maps bilinearly upsampled to S/4 and concatenated (24 channels), then
  ConvTranspose 24->32 (k4 s2 p1), BN, ReLU, ConvTranspose 32->16 (k4 s2 p1), BN, ReLU, conv3x3 16->3, Tanh
  (Tanh as the authors' decoders). Output bilinearly resized to the input when S is not a multiple of 4.
- Loss and scoring as PIADE (`models/perceptual.py`): reconstruction compared at pixel level (MSE, SSIM) and
  at feature level (frozen VGG11 `features[:4]`); image score MSE - SSIM + perceptual; pixel map = blurred
  per-pixel squared error + upsampled perceptual error. Adam lr 1e-3, weight decay 1e-3 (as PIADE's code).
- Default input 120: the authors' MVTec pipeline (resize 156, centre-crop 120) shared with PIADE; our
  datasets resize straight to `image_size`.
`weights=PATH` loads a local torchvision ResNet-18 state dict, `vgg_weights=PATH` a VGG11 one; otherwise
seeded random initialisation, and the trunk trains either way. `ssim_padding` and `checkpoint` as PIADE's
(docs/design/recipes.md).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from models.perceptual import ReconstructionDetector
from models.registry import register_model

PYRAMID_AE_INPUT = 120
LEVEL_CHANNELS = (64, 128, 256)  # ResNet-18 layer1..layer3
LATENT_CHANNELS = 8


def latent_encoder(in_channels: int) -> nn.Sequential:
    """The authors' stacked encoder block (`autoencoder.encoder`): C -> 16 -> 8 -> 8 channels."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        nn.Conv2d(16, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.Conv2d(8, LATENT_CHANNELS, 1),
    )


class PyramidAutoencoder(nn.Module):
    """images [B,3,S,S] -> reconstructions [B,3,S,S]."""

    def __init__(self):
        super().__init__()
        resnet = torchvision.models.resnet18(weights=None)
        resnet.layer4, resnet.fc = nn.Identity(), nn.Identity()  # unused: the pyramid stops at layer3
        self.resnet = resnet
        self.encoders = nn.ModuleList(latent_encoder(c) for c in LEVEL_CHANNELS)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(LATENT_CHANNELS * len(LEVEL_CHANNELS), 32, 4, stride=2, padding=1), nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.Conv2d(16, 3, 3, padding=1), nn.Tanh(),
        )

    def levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        r = self.resnet
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        level1 = r.layer1(x)
        level2 = r.layer2(level1)
        return [level1, level2, r.layer3(level2)]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        latents = [encoder(level) for encoder, level in zip(self.encoders, self.levels(images))]
        finest = latents[0].shape[-2:]
        latents = [latents[0]] + [F.interpolate(z, size=finest, mode="bilinear", align_corners=False) for z in latents[1:]]
        reconstructions = self.decoder(torch.cat(latents, dim=1))
        if reconstructions.shape[-2:] != images.shape[-2:]:
            reconstructions = F.interpolate(reconstructions, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return reconstructions

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        return self(images)


class PyramidAE(ReconstructionDetector):
    name = "pyramid_ae"

    def __init__(self, image_size: int = PYRAMID_AE_INPUT, weights: str | None = None, vgg_weights: str | None = None,
                 seed: int = 0, lr: float = 1e-3, weight_decay: float = 1e-3,
                 ssim_padding: str = "valid", checkpoint: str = "last"):
        super().__init__(image_size, PyramidAutoencoder, weights, vgg_weights, seed, lr, weight_decay,
                         ssim_padding, checkpoint)


@register_model("pyramid_ae", family="detector",
                paper="Mishra, Piciarelli, Foresti: Image anomaly detection by aggregating deep pyramidal "
                      "representations, ICPR 2020 workshops (pyramid of stacked autoencoders)",
                input_size=PYRAMID_AE_INPUT,
                description="ResNet-18 3-level pyramid, per-level stacked conv encoders, fused decoder; "
                            "MSE - SSIM + VGG11 perceptual; no routing")
def pyramid_ae(image_size: int = PYRAMID_AE_INPUT, weights: str | None = None, vgg_weights: str | None = None,
               seed: int = 0, lr: float = 1e-3, weight_decay: float = 1e-3,
               ssim_padding: str = "valid", checkpoint: str = "last") -> PyramidAE:
    return PyramidAE(image_size=image_size, weights=weights, vgg_weights=vgg_weights, seed=seed, lr=lr,
                     weight_decay=weight_decay, ssim_padding=ssim_padding, checkpoint=checkpoint)
