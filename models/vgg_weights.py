"""ImageNet VGG16 weights from a local torchvision state-dict file, for the VGG16 encoders of FCN-32s and SegNet.

Nothing is downloaded: the user names a file saved from `torchvision.models.vgg16(...).state_dict()` or
`vgg16_bn(...)` (`.pth`/`.pt` or `.safetensors`). `read_vgg16` reads its 13 convolutions in order (with
their batch norms for VGG16-BN) and its two hidden fully connected layers (fc6, fc7); the loaders below copy
them into our modules:
- FCN-32s (`load_into_fcn32`): the 13 convolutions, and fc6/fc7 reshaped into the 7x7 and 1x1 convolutions
  they are in the fully convolutional net, as the FCN authors converted them; the score layer stays at zero.
  FCN-32s has no batch norm, so a VGG16-BN file's norms are folded into its convolutions (exact at inference).
- SegNet (`load_into_segnet`): the 13 encoder convolutions, and their batch norms when the file has them
  (SegNet's authors initialised the encoder from VGG16 and trained the norms from scratch: so do we when the
  file is plain VGG16). The decoder is not in VGG16 and keeps its initialisation.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from models.base import read_state_dict

N_CONVS = 13


@dataclass
class VGG16Weights:
    convs: list[tuple[torch.Tensor, torch.Tensor]]  # (weight [out,in,3,3], bias [out]) in network order
    norms: list[dict[str, torch.Tensor]] | None  # weight, bias, running_mean, running_var per conv (VGG16-BN)
    fc6: tuple[torch.Tensor, torch.Tensor] | None  # Linear 25088 -> 4096
    fc7: tuple[torch.Tensor, torch.Tensor] | None  # Linear 4096 -> 4096


def read_vgg16(path: str | Path) -> VGG16Weights:
    state = read_state_dict(path)
    by_index: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        match = re.fullmatch(r"features\.(\d+)\.(\w+)", key)
        if match:
            by_index.setdefault(int(match.group(1)), {})[match.group(2)] = tensor
    convs, norms = [], []
    for index in sorted(by_index):
        layer = by_index[index]
        if "weight" in layer and layer["weight"].dim() == 4:
            convs.append((layer["weight"], layer["bias"]))
        elif "running_mean" in layer:
            norms.append({k: layer[k] for k in ("weight", "bias", "running_mean", "running_var")})
    if len(convs) != N_CONVS or (norms and len(norms) != N_CONVS):
        raise ValueError(f"--weights {path}: not a torchvision VGG16 state dict: expected {N_CONVS} convolutions under "
                         f"features.* (and as many batch norms for VGG16-BN), found {len(convs)} and {len(norms)}")

    def linear(name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        return (state[f"{name}.weight"], state[f"{name}.bias"]) if f"{name}.weight" in state else None

    return VGG16Weights(convs, norms or None, linear("classifier.0"), linear("classifier.3"))


def _copy(target: torch.Tensor, source: torch.Tensor, what: str, path) -> None:
    if target.shape != source.shape:
        raise ValueError(f"--weights {path}: {what} is {tuple(source.shape)} in the file but {tuple(target.shape)} "
                         "in the model (VGG16 weights need 3 input channels)")
    with torch.no_grad():
        target.copy_(source)


def _fold(weight, bias, norm, eps=1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """A conv followed by an inference-mode batch norm, as one conv."""
    scale = norm["weight"] / torch.sqrt(norm["running_var"] + eps)
    return weight * scale[:, None, None, None], (bias - norm["running_mean"]) * scale + norm["bias"]


def load_into_fcn32(net: nn.Module, path: str | Path) -> str:
    """Copy VGG16 (or VGG16-BN, folded) weights into an `FCN32s`; returns the `pretrained` label."""
    vgg = read_vgg16(path)
    if vgg.fc6 is None or vgg.fc7 is None:
        raise ValueError(f"--weights {path}: FCN-32s needs VGG16's classifier.0 and classifier.3 (fc6, fc7); "
                         "the file has only the convolutions")
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    for i, (conv, (weight, bias)) in enumerate(zip(convs, vgg.convs)):
        if vgg.norms:
            weight, bias = _fold(weight, bias, vgg.norms[i])
        _copy(conv.weight, weight, f"convolution {i + 1}", path)
        _copy(conv.bias, bias, f"convolution {i + 1} bias", path)
    fc6, fc7 = net.classifier[0], net.classifier[3]
    _copy(fc6.weight, vgg.fc6[0].reshape(fc6.weight.shape), "fc6", path)
    _copy(fc6.bias, vgg.fc6[1], "fc6 bias", path)
    _copy(fc7.weight, vgg.fc7[0].reshape(fc7.weight.shape), "fc7", path)
    _copy(fc7.bias, vgg.fc7[1], "fc7 bias", path)
    return f"local:{path}"


def load_into_segnet(net: nn.Module, path: str | Path) -> str:
    """Copy VGG16 convolutions (and VGG16-BN norms) into a `SegNet` encoder; returns the `pretrained` label."""
    vgg = read_vgg16(path)
    blocks = [block for stage in net.encoder for block in stage]  # conv_bn_relu blocks in order
    for i, (block, (weight, bias)) in enumerate(zip(blocks, vgg.convs)):
        conv, norm = block[0], block[1]
        _copy(conv.weight, weight, f"encoder convolution {i + 1}", path)
        _copy(conv.bias, bias, f"encoder convolution {i + 1} bias", path)
        if vgg.norms:
            for name in ("weight", "bias", "running_mean", "running_var"):
                _copy(getattr(norm, name), vgg.norms[i][name], f"encoder batch norm {i + 1} {name}", path)
    return f"local:{path}"
