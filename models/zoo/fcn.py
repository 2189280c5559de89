"""FCN-32s (Long, Shelhamer & Darrell, CVPR 2015; Shelhamer et al., TPAMI 2017), binary.

The reference net of the paper's `voc-fcn32s`: the 13 VGG16 convolutions without batch norm (the first padded
by 100 so that any input survives the five poolings and the 7x7 fc6), fc6 as a 7x7 convolution to 4096 channels,
fc7 as a 1x1 convolution to 4096, each followed by ReLU and dropout, a 1x1 class-score convolution, then one
64x64 transposed convolution of stride 32 without bias, initialised to bilinear upsampling, whose output is
cropped back to the input size (offset 19, as in the reference net). With 3 channels in and 1 class out this
has 134,268,737 parameters.

Training recipe (`train_defaults`, used by `SegmenterDetector`; `--model-arg lr=...` overrides it). The reference
trains FCN-32s only from ImageNet VGG16 (`weights=`, a local torchvision file: `models/vgg_weights.py`). From
random initialisation, Adam at the segmenters' 1e-3 destroys it in two steps: Adam moves every weight by about
the learning rate whatever its gradient, and with no batch norm anywhere, fc6's 25,088 inputs per unit turn a
1e-3 step of each weight into a change of the unit's input about 18 times its initial size (lr x fan-in /
sqrt(2) with Kaiming weights); through 15 such layers the logits reached 13,000 after the second step and the
loss 406 after the third (64 px, batch 4, synthetic fabric), after which every ReLU was dead: logits 0.01, loss
stuck at 1.65 for the rest of the run. At 1e-4, with the budget schedule's warm-up, the largest logit grows
0.02 -> 7.4 over 10 steps and then settles (about 6) while the loss falls 1.66 -> 1.16 (32 px, batch 2). The
score layer starts at zero, as in the reference.
"""
from __future__ import annotations

import torch
from torch import nn

from models.registry import register_model

# Channels of the five VGG16 stages (2, 2, 3, 3, 3 convolutions).
VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
# Where the reference net crops the upsampled scores: the padding of 100 and the fc6 kernel shift the grid
# by 19 pixels at input resolution.
CROP_OFFSET = 19


def bilinear_upsampling_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """A [channels, channels, k, k] transposed-convolution weight that upsamples each channel bilinearly."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    steps = torch.arange(kernel_size, dtype=torch.float32)
    profile = 1 - (steps - center).abs() / factor
    kernel_2d = profile[:, None] * profile[None, :]
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    for c in range(channels):
        weight[c, c] = kernel_2d
    return weight


class FCN32s(nn.Module):
    def __init__(self, in_channels: int = 3, classes: int = 1, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        channels_in = in_channels
        for stage_index, stage in enumerate(VGG16_STAGES):
            for conv_index, channels_out in enumerate(stage):
                padding = 100 if stage_index == 0 and conv_index == 0 else 1
                layers += [nn.Conv2d(channels_in, channels_out, 3, padding=padding), nn.ReLU(inplace=True)]
                channels_in = channels_out
            layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Conv2d(512, 4096, 7),  # fc6
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(4096, 4096, 1),  # fc7
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.score = nn.Conv2d(4096, classes, 1)
        self.upscore = nn.ConvTranspose2d(classes, classes, 64, stride=32, bias=False)
        self._init_weights(classes)

    def _init_weights(self, classes: int) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # fan-in: without batch norm, this keeps the activation scale through the 15 ReLU layers
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        # The paper starts the score layer at zero and the upsampling at fixed bilinear interpolation.
        nn.init.zeros_(self.score.weight)
        with torch.no_grad():
            self.upscore.weight.copy_(bilinear_upsampling_kernel(classes, 64))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        scores = self.score(self.classifier(self.features(images)))
        upsampled = self.upscore(scores)
        return upsampled[:, :, CROP_OFFSET : CROP_OFFSET + height, CROP_OFFSET : CROP_OFFSET + width]


@register_model(
    "fcn32",
    family="segmenter",
    paper="Shelhamer, Long & Darrell, Fully Convolutional Networks for Semantic Segmentation, TPAMI 2017 (FCN-32s)",
    input_size=256,
    description="VGG16 FCN-32s, fc6/fc7 as convolutions, one stride-32 transposed conv; 134.3M params",
    # The from-scratch recipe (module docstring): Adam at 1e-4, not the segmenters' 1e-3.
    train_defaults={"lr": 1e-4},
)
def fcn32(*, in_channels: int = 3, classes: int = 1, dropout: float = 0.5, weights: str | None = None) -> nn.Module:
    """`weights`: a local torchvision VGG16 (or VGG16-BN) state-dict file for the VGG16 part (never downloaded);
    the net then records `pretrained = "local:<path>"`."""
    net = FCN32s(in_channels=in_channels, classes=classes, dropout=dropout)
    if weights:
        from models.vgg_weights import load_into_fcn32

        net.pretrained = load_into_fcn32(net, weights)
    return net
