"""The six baseline segmenters: exact parameter counts of the reference architectures, and shapes at 64x64."""
import pytest
import torch

import models

# Reference counts (3 channels in, 1 logit map out), docs: /work/shared/reference/methods.md.
EXPECTED_PARAMS = {
    "fcn32": 134_268_737,
    "unet": 24_436_369,
    "unetpp": 26_078_609,
    "u2net": 44_009_869,
    "u2net_small": 1_131_181,
    "segnet": 29_443_585,
}


@pytest.fixture(scope="module", params=sorted(EXPECTED_PARAMS))
def built(request):
    torch.manual_seed(0)
    net = models.create_model(request.param, in_channels=3, classes=1)
    yield request.param, net
    del net


def test_registered_as_segmenters():
    names = {e.name for e in models.list_models("segmenter")}
    assert set(EXPECTED_PARAMS) <= names


def test_parameter_count_is_exact(built):
    name, net = built
    assert sum(p.numel() for p in net.parameters()) == EXPECTED_PARAMS[name]


def test_one_logit_map_of_the_input_size(built):
    name, net = built
    net.eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 1, 64, 64)
    assert torch.isfinite(out).all()


def test_u2net_exposes_fused_and_six_side_outputs():
    torch.manual_seed(0)
    net = models.create_model("u2net_small").eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        maps = net.training_outputs(x)
        fused = net(x)
    assert len(maps) == 7
    assert all(m.shape == (1, 1, 64, 64) for m in maps)
    assert torch.equal(maps[0], fused)


def test_fcn_upsampling_starts_bilinear():
    from models.zoo.fcn import bilinear_upsampling_kernel

    kernel = bilinear_upsampling_kernel(1, 64)[0, 0]
    # the stride-32 bilinear kernel is symmetric and its taps sum to stride**2 (each input spreads over 32x32)
    assert torch.allclose(kernel, kernel.flip(0)) and torch.allclose(kernel, kernel.T)
    assert kernel.sum().item() == pytest.approx(32 * 32)


def fcn_first_steps(**recipe):
    """Loss and largest |logit| (eval mode, on the training batch) after each of FCN-32s' first 2 steps at 32 px."""
    from models.base import Budget

    torch.manual_seed(0)
    detector = models.create_detector("fcn32", image_size=32, seed=0, **recipe)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 32, 32, generator=g)
    data = [{"image": images, "mask": torch.zeros(2, 32, 32)}] * 2  # 2 steps: the blow-up showed at the second
    record = []

    def after_step(step, loss):
        detector.net.eval()
        with torch.no_grad():
            logits = detector.net(detector.inference_module().normalise(images))
        detector.net.train()
        record.append((loss, float(logits.abs().max())))

    detector.fit(data, Budget(epochs=1), progress=after_step)
    return record


def test_fcn32_from_scratch_first_steps_stay_bounded():
    """Random init, the registry's recipe: the first steps neither blow the logits up (Adam at 1e-3 took them
    to 13,000 after 2 steps and the loss to 406 after 3, then every ReLU died) nor leave the loss at its start."""
    record = fcn_first_steps()
    assert len(record) == 2 and all(loss < 5.0 and logit < 50.0 for loss, logit in record), record
