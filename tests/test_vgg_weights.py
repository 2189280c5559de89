"""Local ImageNet VGG16 weights for FCN-32s and SegNet (`weights=`): what lands where, and clear refusals."""
import pytest
import torch
import torchvision

import models
from models.registry import detector_arguments


def vgg16_bn_state(seed=0):
    """A torchvision VGG16-BN state dict of the real names and shapes, with random values (and random BN
    statistics, so that folding them is visible)."""
    with torch.device("meta"):  # names and shapes only: no time spent initialising 138M parameters
        shapes = {k: (t.shape, t.dtype) for k, t in torchvision.models.vgg16_bn(weights=None).state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, (shape, dtype) in shapes.items():
        if not dtype.is_floating_point:
            state[key] = torch.zeros(shape, dtype=dtype)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.01
    return state


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "vgg16_bn.pth"
    state = vgg16_bn_state()
    torch.save(state, path)
    return path, state


def test_segnet_encoder_takes_vgg16_bn_convolutions_and_norms(vgg_file):
    path, state = vgg_file
    detector = models.create_detector("segnet", image_size=32, weights=str(path))
    assert detector.pretrained == f"local:{path}"
    net = detector.net
    first_conv, first_norm = net.encoder[0][0][0], net.encoder[0][0][1]
    assert torch.equal(first_conv.weight, state["features.0.weight"])
    assert torch.equal(first_norm.running_var, state["features.1.running_var"])
    last_conv = net.encoder[4][2][0]
    assert torch.equal(last_conv.weight, state["features.40.weight"])  # the 13th convolution of VGG16-BN


def test_fcn32_takes_vgg16_with_norms_folded_and_fc_layers_as_convolutions(vgg_file):
    path, state = vgg_file
    net = models.create_model("fcn32", weights=str(path))
    assert net.pretrained == f"local:{path}"
    # first convolution + its batch norm (inference mode) as one convolution
    scale = state["features.1.weight"] / torch.sqrt(state["features.1.running_var"] + 1e-5)
    assert torch.allclose(net.features[0].weight, state["features.0.weight"] * scale[:, None, None, None])
    expected_bias = (state["features.0.bias"] - state["features.1.running_mean"]) * scale + state["features.1.bias"]
    assert torch.allclose(net.features[0].bias, expected_bias)
    # fc6 (Linear 25088 -> 4096) is the 7x7 convolution over 512 channels; fc7 the 1x1 one
    assert torch.equal(net.classifier[0].weight.flatten(1), state["classifier.0.weight"])
    assert torch.equal(net.classifier[3].weight.flatten(1), state["classifier.3.weight"])
    assert torch.count_nonzero(net.score.weight) == 0  # the class score layer still starts at zero


def test_a_file_that_is_not_vgg16_is_refused_with_its_name(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match=r"resnet\.pth.*not a torchvision VGG16"):
        models.create_model("segnet", weights=str(path))
    with pytest.raises(FileNotFoundError, match="--weights: no such file"):
        models.create_model("segnet", weights=str(tmp_path / "missing.pth"))


def test_weights_is_an_argument_of_the_vgg_segmenters_only():
    assert "weights" in detector_arguments("fcn32") and "weights" in detector_arguments("segnet")
    assert "weights" not in detector_arguments("unet")
    assert models.create_detector("segnet", image_size=32).pretrained == "none"
