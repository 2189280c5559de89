"""PIADE: Pyramidal Image Anomaly DEtector (Mishra, Piciarelli, Foresti, Int. J. Neural Systems 2020).

Follows the authors' code (github pankajmishra000/PIADE: `capsmod.py`, `autoencoder.py`, `senet.py`,
`train.py`, `vgg_percep_loss.py`, `Testing_mvtech.py`):
- Backbone: torchvision ResNet-50 (its `fc` is dropped: unused in the forward pass) with squeeze-excitation
  blocks (reduction 16, bias-free linears) after the stem's max-pool and after layers 1, 2, 3 and 4.
- Pyramid: four branches on the 2048-channel layer4 output, each global average pool + bias-free 1x1 conv
  to 2048 / {1, 2, 4, 8} channels + BatchNorm (momentum 0.95, as the code) + ReLU; the 3840 values are
  read as 480 capsules of dimension 8.
- Dynamic routing (3 iterations, `models.capsules.DynamicRouting`) to two 64-d capsules; the longer is kept.
- Decoder 1: Linear 64->128->512->8192 (BatchNorm1d + ReLU between, ReLU last), read as 512x4x4 and
  concatenated on channels with the 2048x4x4 layer4 features; the 40,960 values are then *reshaped* (not
  resampled) to 640x8x8, as the code does. Decoder 2: ConvTranspose 640->16 (k3 s2 p1) -> 15,
  16->32 (k3 s2 p1) -> 29, 32->32 (k4 s2) -> 60, 32->3 (k4 s2 p1) -> 120, BatchNorm + ReLU between, Tanh.
  (Tanh spans [-1, 1] while the targets are [0, 1]: the authors' choice, kept.)
- Loss: MSE - SSIM + perceptual (frozen VGG11 `features[:4]`), Adam lr 1e-3, weight decay 1e-3; the
  authors' `train.py` trains 400 epochs at batch 60 and keeps the last weights. `ssim_padding="zero"` computes
  the SSIM as their vendored `pytorch_ssim` (zero-padded window); the default keeps valid windows only.
- Image score: the same three terms per image (`models.perceptual.ReconstructionScorer`). The pixel map
  is ours (the paper gives image scores only): see `models/perceptual.py`.
- Initialisation: the authors' `initialize_weights` (Kaiming) is guarded by `test == 'False'` (a string
  compared with a boolean), so it never runs in their code: every layer keeps PyTorch's default
  initialisation, and so does ours.

Input size. The authors' data pipeline resizes to 156x156 then centre-crops 120x120; here that crop is the
dataset's business: our datasets resize the whole image to `image_size` directly (default 120), so the
border that the authors' crop discards is kept. At 120 layer4 gives exactly 4x4 positions and the model is
the authors'. At other sizes layer4 gives about (S/32)^2 positions: they are adaptively average-pooled to
4x4 before the concatenation (so every weight shape stays the same), and the decoder's 120x120 output is
bilinearly resized to the input size. Neither step exists in the graph at 120.

Pretrained weights cannot be downloaded here: `weights=PATH` loads a local torchvision ResNet-50 state
dict, `vgg_weights=PATH` a local torchvision VGG11 one; without them both start from seeded random
initialisation, and the backbone trains in any case (the authors train it too).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from models.capsules import DynamicRouting, longest_capsule
from models.perceptual import ReconstructionDetector
from models.registry import register_model

PIADE_INPUT = 120  # the authors' crop size; layer4 is then 4x4
LAYER4_GRID = 4
PYRAMID_DIVISORS = (1, 2, 4, 8)
CAPSULE_DIM_IN = 8
CAPSULE_DIM_OUT = 64


class SqueezeExcitation(nn.Module):
    """Channel attention (Hu et al. 2018) as the authors' `senet.SELayer`: pool, bias-free MLP, sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False), nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels, bias=False), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc(x.mean(dim=(2, 3)))
        return x * gate[:, :, None, None]


class PyramidBranch(nn.Module):
    """Global average pool + bias-free 1x1 conv + BN + ReLU, as the authors' `PyramidPool`."""

    def __init__(self, in_channels: int, divisor: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels // divisor, 1, bias=False)
        self.bn = nn.BatchNorm2d(in_channels // divisor, momentum=0.95)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3), keepdim=True)
        return F.relu(self.bn(self.conv(pooled))).flatten(1)


class PIADENetwork(nn.Module):
    """images [B,3,S,S] -> (reconstructions [B,3,S,S], capsules [B,2,64])."""

    def __init__(self, image_size: int = PIADE_INPUT):
        super().__init__()
        self.image_size = image_size
        resnet = torchvision.models.resnet50(weights=None)
        resnet.fc = nn.Identity()  # unused by the forward pass; kept out of the parameter count
        self.resnet = resnet
        self.se_stem = SqueezeExcitation(64)
        self.se_layer1 = SqueezeExcitation(256)
        self.se_layer2 = SqueezeExcitation(512)
        self.se_layer3 = SqueezeExcitation(1024)
        self.se_layer4 = SqueezeExcitation(2048)
        self.pyramid = nn.ModuleList(PyramidBranch(2048, d) for d in PYRAMID_DIVISORS)
        in_caps = sum(2048 // d for d in PYRAMID_DIVISORS) // CAPSULE_DIM_IN  # 480
        self.routing = DynamicRouting(in_caps, CAPSULE_DIM_IN, 2, CAPSULE_DIM_OUT, iterations=3)
        self.decoder_linear = nn.Sequential(
            nn.Linear(CAPSULE_DIM_OUT, 128), nn.BatchNorm1d(128), nn.ReLU(inplace=True),
            nn.Linear(128, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
            nn.Linear(512, 512 * LAYER4_GRID * LAYER4_GRID), nn.ReLU(inplace=True),
        )
        self.decoder_conv = nn.Sequential(
            nn.ConvTranspose2d(640, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(32, 32, 4, stride=2), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(32, 3, 4, stride=2, padding=1), nn.Tanh(),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        r = self.resnet
        x = self.se_stem(r.maxpool(r.relu(r.bn1(r.conv1(x)))))
        x = self.se_layer1(r.layer1(x))
        x = self.se_layer2(r.layer2(x))
        x = self.se_layer3(r.layer3(x))
        return self.se_layer4(r.layer4(x))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = images.shape[0]
        features = self.encode(images)
        primary = torch.cat([branch(features) for branch in self.pyramid], dim=1).reshape(batch, -1, CAPSULE_DIM_IN)
        capsules = self.routing(primary)
        kept = longest_capsule(capsules)
        upsampled = self.decoder_linear(kept).reshape(batch, 512, LAYER4_GRID, LAYER4_GRID)
        if features.shape[-2:] != (LAYER4_GRID, LAYER4_GRID):  # only away from the authors' 120x120 input
            features = F.adaptive_avg_pool2d(features, LAYER4_GRID)
        joined = torch.cat([features, upsampled], dim=1).reshape(batch, 640, 8, 8)  # the authors' raw reshape
        reconstructions = self.decoder_conv(joined)
        if reconstructions.shape[-2:] != images.shape[-2:]:
            reconstructions = F.interpolate(reconstructions, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return reconstructions, capsules

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        return self(images)[0]


class PIADE(ReconstructionDetector):
    name = "piade"

    def __init__(self, image_size: int = PIADE_INPUT, weights: str | None = None, vgg_weights: str | None = None,
                 seed: int = 0, lr: float = 1e-3, weight_decay: float = 1e-3,
                 ssim_padding: str = "valid", checkpoint: str = "last"):
        super().__init__(image_size, lambda: PIADENetwork(image_size), weights, vgg_weights, seed, lr, weight_decay,
                         ssim_padding, checkpoint)


@register_model("piade", family="detector",
                paper="Mishra, Piciarelli, Foresti: Image anomaly detection by aggregating deep pyramidal "
                      "representations, Int. J. Neural Systems 2020 (PIADE)",
                input_size=PIADE_INPUT,
                description="SE-ResNet-50 + 4-branch pyramid + dynamic routing to 2x64-d capsules + decoder; "
                            "MSE - SSIM + VGG11 perceptual")
def piade(image_size: int = PIADE_INPUT, weights: str | None = None, vgg_weights: str | None = None, seed: int = 0,
          lr: float = 1e-3, weight_decay: float = 1e-3,
          ssim_padding: str = "valid", checkpoint: str = "last") -> PIADE:
    return PIADE(image_size=image_size, weights=weights, vgg_weights=vgg_weights, seed=seed, lr=lr,
                 weight_decay=weight_decay, ssim_padding=ssim_padding, checkpoint=checkpoint)
