"""U^2-Net and its light variant U^2-Net-p (Qin et al., Pattern Recognition 2020), binary.

A two-level nested U: six encoder and five decoder stages, each a residual U-block (RSU-L: a small U-Net of
height L whose output is added to its input convolution; RSU-4F replaces pooling by dilations 1, 2, 4, 8 for the
low-resolution stages). Every decoder stage and the last encoder stage give a side output (3x3 convolution to
one logit map, bilinearly upsampled to the input size); a 1x1 convolution fuses the six into the final map.

`forward(images)` returns the fused logit map only (no sigmoid), the map used for inference.
`training_outputs(images)` returns all seven logit maps, fused first: U^2-Net trains with a loss on each.

Parameters (3 in, 1 out): U^2-Net 44,009,869; U^2-Net-p 1,131,181.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.registry import register_model

PAPER = "Qin et al., U^2-Net: Going Deeper with Nested U-Structure for Salient Object Detection, Pattern Recognition 2020"

# One stage: (RSU height, or 0 for the dilated RSU-4F; in channels; middle channels; out channels).
StageSpec = tuple[int, int, int, int]

U2NET_ENCODER: tuple[StageSpec, ...] = (
    (7, 3, 32, 64), (6, 64, 32, 128), (5, 128, 64, 256), (4, 256, 128, 512), (0, 512, 256, 512), (0, 512, 256, 512),
)
# Decoder stages from the deepest (5d) to the shallowest (1d); each takes [upsampled deeper, skip].
U2NET_DECODER: tuple[StageSpec, ...] = (
    (0, 1024, 256, 512), (4, 1024, 128, 256), (5, 512, 64, 128), (6, 256, 32, 64), (7, 128, 16, 64),
)
U2NETP_ENCODER: tuple[StageSpec, ...] = (
    (7, 3, 16, 64), (6, 64, 16, 64), (5, 64, 16, 64), (4, 64, 16, 64), (0, 64, 16, 64), (0, 64, 16, 64),
)
U2NETP_DECODER: tuple[StageSpec, ...] = (
    (0, 128, 16, 64), (4, 128, 16, 64), (5, 128, 16, 64), (6, 128, 16, 64), (7, 128, 16, 64),
)


def upsample_like(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if source.shape[-2:] == target.shape[-2:]:
        return source
    return F.interpolate(source, size=target.shape[-2:], mode="bilinear", align_corners=False)


class ConvBNReLU(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class ResidualUBlock(nn.Module):
    """RSU-L: input conv, a U of height L (L-1 encoder convs, L-2 poolings, a dilated bottom), residual add."""

    def __init__(self, height: int, in_channels: int, mid_channels: int, out_channels: int):
        super().__init__()
        self.input_conv = ConvBNReLU(in_channels, out_channels)
        self.encoder = nn.ModuleList(
            [ConvBNReLU(out_channels, mid_channels)] + [ConvBNReLU(mid_channels, mid_channels) for _ in range(height - 2)]
        )
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.bottom = ConvBNReLU(mid_channels, mid_channels, dilation=2)
        # Decoder convs from the deepest to the shallowest; the last one returns to out_channels.
        self.decoder = nn.ModuleList(
            [ConvBNReLU(2 * mid_channels, mid_channels) for _ in range(height - 2)]
            + [ConvBNReLU(2 * mid_channels, out_channels)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_in = self.input_conv(x)
        skips = []
        h = x_in
        for index, conv in enumerate(self.encoder):
            if index > 0:
                h = self.pool(h)
            h = conv(h)
            skips.append(h)
        h = self.bottom(h)
        for index, conv in enumerate(self.decoder):
            skip = skips[-1 - index]
            if index > 0:
                h = upsample_like(h, skip)
            h = conv(torch.cat([h, skip], dim=1))
        return h + x_in


class DilatedResidualUBlock(nn.Module):
    """RSU-4F: the U of height 4 with dilations 1, 2, 4, 8 instead of pooling, so the resolution is kept."""

    DILATIONS = (1, 2, 4)

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int):
        super().__init__()
        self.input_conv = ConvBNReLU(in_channels, out_channels)
        self.encoder = nn.ModuleList(
            [ConvBNReLU(out_channels, mid_channels, dilation=1)]
            + [ConvBNReLU(mid_channels, mid_channels, dilation=d) for d in self.DILATIONS[1:]]
        )
        self.bottom = ConvBNReLU(mid_channels, mid_channels, dilation=8)
        self.decoder = nn.ModuleList(
            [ConvBNReLU(2 * mid_channels, mid_channels, dilation=d) for d in (4, 2)]
            + [ConvBNReLU(2 * mid_channels, out_channels, dilation=1)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_in = self.input_conv(x)
        skips = []
        h = x_in
        for conv in self.encoder:
            h = conv(h)
            skips.append(h)
        h = self.bottom(h)
        for index, conv in enumerate(self.decoder):
            h = conv(torch.cat([h, skips[-1 - index]], dim=1))
        return h + x_in


def make_stage(spec: StageSpec) -> nn.Module:
    height, in_channels, mid_channels, out_channels = spec
    if height == 0:
        return DilatedResidualUBlock(in_channels, mid_channels, out_channels)
    return ResidualUBlock(height, in_channels, mid_channels, out_channels)


class U2Net(nn.Module):
    def __init__(self, encoder: tuple[StageSpec, ...], decoder: tuple[StageSpec, ...], in_channels: int = 3, classes: int = 1):
        super().__init__()
        if len(encoder) != 6 or len(decoder) != 5:
            raise ValueError("U^2-Net has six encoder and five decoder stages")
        encoder = ((encoder[0][0], in_channels, *encoder[0][2:]),) + tuple(encoder[1:])
        self.encoder = nn.ModuleList(make_stage(spec) for spec in encoder)
        self.decoder = nn.ModuleList(make_stage(spec) for spec in decoder)
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        # Side outputs, shallowest first: decoder stages 1d..5d, then encoder stage 6.
        side_channels = [spec[3] for spec in reversed(decoder)] + [encoder[-1][3]]
        self.sides = nn.ModuleList(nn.Conv2d(c, classes, 3, padding=1) for c in side_channels)
        self.fuse = nn.Conv2d(len(side_channels) * classes, classes, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        # Kaiming for the conv + BN + ReLU layers; the side and fuse convolutions (one output channel, no BN)
        # keep PyTorch's default fan-in init, which starts the logits near unit scale.
        heads = {id(m) for m in self.sides.modules()} | {id(self.fuse)}
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and id(m) not in heads:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def training_outputs(self, images: torch.Tensor) -> list[torch.Tensor]:
        """All seven logit maps at input size: [fused, side 1 (shallowest), ..., side 6 (deepest)]."""
        skips = []
        h = images
        for index, stage in enumerate(self.encoder):
            if index > 0:
                h = self.pool(h)
            h = stage(h)
            skips.append(h)
        decoded = [h]  # deepest first: stage 6, then 5d, 4d, ..., 1d
        for index, stage in enumerate(self.decoder):
            skip = skips[-2 - index]
            h = stage(torch.cat([upsample_like(h, skip), skip], dim=1))
            decoded.append(h)
        features_shallow_first = decoded[::-1]
        sides = [upsample_like(side(f), images) for side, f in zip(self.sides, features_shallow_first)]
        fused = self.fuse(torch.cat(sides, dim=1))
        return [fused] + sides

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.training_outputs(images)[0]


@register_model(
    "u2net", family="segmenter", paper=PAPER, input_size=256,
    description="U^2-Net: nested RSU blocks, 6 side outputs fused; 44.0M params",
)
def u2net(*, in_channels: int = 3, classes: int = 1) -> nn.Module:
    return U2Net(U2NET_ENCODER, U2NET_DECODER, in_channels=in_channels, classes=classes)


@register_model(
    "u2net_small", family="segmenter", paper=PAPER + " (U^2-Net-p)", input_size=256,
    description="U^2-Net-p, the light variant (16 middle channels); 1.13M params",
)
def u2net_small(*, in_channels: int = 3, classes: int = 1) -> nn.Module:
    return U2Net(U2NETP_ENCODER, U2NETP_DECODER, in_channels=in_channels, classes=classes)
