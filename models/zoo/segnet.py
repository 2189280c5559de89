"""SegNet (Badrinarayanan, Kendall & Cipolla, TPAMI 2017), binary.

Encoder: the 13 convolutions of VGG16 with batch norm (3x3 conv + BN + ReLU), in five stages, each ending in a
2x2 max-pool that keeps its argmax indices. Decoder: the mirror image; each stage first un-pools with
`nn.MaxUnpool2d` at the indices of the matching encoder pool (a sparse upsampling, no learned weights), then
conv + BN + ReLU layers whose widths retrace the encoder's; the last layer is a plain 3x3 convolution to one
class. With 3 channels in and 1 class out this has 29,443,585 parameters.

Export note: `MaxUnpool2d` defeats TorchScript tracing (legacy ONNX exporter, fvcore); the torch.export-based
ONNX exporter (`dynamo=True`) handles it.
"""
from __future__ import annotations

import torch
from torch import nn

from models.registry import register_model

# Output channels of the convolutions of each encoder stage (VGG16).
ENCODER_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
# Output channels of each decoder stage's conv + BN + ReLU layers, deepest stage first; the final 3x3
# classifier (64 -> classes) follows the last stage.
DECODER_STAGES = ((512, 512, 512), (512, 512, 256), (256, 256, 128), (128, 64), (64,))


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def conv_stack(in_channels: int, widths: tuple[int, ...]) -> nn.Sequential:
    layers = []
    for width in widths:
        layers.append(conv_bn_relu(in_channels, width))
        in_channels = width
    return nn.Sequential(*layers)


class SegNet(nn.Module):
    def __init__(self, in_channels: int = 3, classes: int = 1):
        super().__init__()
        self.encoder = nn.ModuleList()
        channels = in_channels
        for widths in ENCODER_STAGES:
            self.encoder.append(conv_stack(channels, widths))
            channels = widths[-1]
        self.decoder = nn.ModuleList()
        for widths in DECODER_STAGES:
            self.decoder.append(conv_stack(channels, widths))
            channels = widths[-1]
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, stride=2)
        self.classifier = nn.Conv2d(channels, classes, 3, padding=1)
        self._init_weights()

    def _init_weights(self) -> None:
        # Kaiming for the conv + BN + ReLU layers; the one-class classifier (no BN) keeps PyTorch's default
        # fan-in init, which starts the logits near unit scale.
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.classifier:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = images
        pooled = []  # (indices, size before pooling) per encoder stage
        for stage in self.encoder:
            h = stage(h)
            size = h.shape[-2:]
            h, indices = self.pool(h)
            pooled.append((indices, size))
        for stage, (indices, size) in zip(self.decoder, reversed(pooled)):
            h = self.unpool(h, indices, output_size=size)
            h = stage(h)
        return self.classifier(h)


@register_model(
    "segnet",
    family="segmenter",
    paper="Badrinarayanan, Kendall & Cipolla, SegNet: A Deep Convolutional Encoder-Decoder Architecture for Image Segmentation, TPAMI 2017",
    input_size=256,
    description="VGG16-BN encoder, max-unpooling decoder by the pooling indices; 29.4M params",
)
def segnet(*, in_channels: int = 3, classes: int = 1, weights: str | None = None) -> nn.Module:
    """`weights`: a local torchvision VGG16 or VGG16-BN state-dict file for the encoder (never downloaded); the
    net then records `pretrained = "local:<path>"`."""
    net = SegNet(in_channels=in_channels, classes=classes)
    if weights:
        from models.vgg_weights import load_into_segnet

        net.pretrained = load_into_segnet(net, weights)
    return net
