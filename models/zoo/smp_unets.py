"""U-Net and U-Net++ with a ResNet-34 encoder, from segmentation-models-pytorch, binary.

No weights are downloaded (`encoder_weights=None`): the encoders start from smp's random initialisation. The
smp encoders expect ImageNet-normalised input; `SegmenterDetector` normalises inside its inference module.
Parameters (3 in, 1 out, smp 0.6): U-Net 24,436,369; U-Net++ 26,078,609.
"""
from __future__ import annotations

from torch import nn

from models.registry import register_model


@register_model(
    "unet",
    family="segmenter",
    paper="Ronneberger, Fischer & Brox, U-Net, MICCAI 2015 (smp Unet, ResNet-34 encoder)",
    input_size=256,
    description='segmentation_models_pytorch.Unet("resnet34", encoder_weights=None); 24.4M params',
)
def unet(*, encoder_name: str = "resnet34", in_channels: int = 3, classes: int = 1) -> nn.Module:
    import segmentation_models_pytorch as smp

    return smp.Unet(encoder_name, encoder_weights=None, in_channels=in_channels, classes=classes)


@register_model(
    "unetpp",
    family="segmenter",
    paper="Zhou et al., UNet++: A Nested U-Net Architecture for Medical Image Segmentation, DLMIA 2018 (smp UnetPlusPlus, ResNet-34 encoder)",
    input_size=256,
    description='segmentation_models_pytorch.UnetPlusPlus("resnet34", encoder_weights=None); 26.1M params',
)
def unetpp(*, encoder_name: str = "resnet34", in_channels: int = 3, classes: int = 1) -> nn.Module:
    import segmentation_models_pytorch as smp

    return smp.UnetPlusPlus(encoder_name, encoder_weights=None, in_channels=in_channels, classes=classes)
