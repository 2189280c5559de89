"""VT-ADL (models/zoo/vtadl.py): shapes, train-only noise, MDN objectives, fitting, seeding, sizes, export."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models import create_detector
from models.base import Budget
from models.zoo.vtadl import (AUTHORS_DECODER, AUTHORS_DECODER_SIZES, GaussianBlur, MixtureDensityHead, VTADL,
                              decoder_geometry, mixture_nll, paper_nll, ssim_per_image)

SIZE = 64


def _images(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def detector() -> VTADL:
    torch.set_num_threads(1)
    return create_detector("vtadl", image_size=SIZE)


def test_registry_builds_the_detector_with_info(detector):
    assert isinstance(detector, VTADL)
    assert set(detector.modules_to_save()) == {"autoencoder", "mdn"}
    assert detector.info() == {"pretrained": "none", "n_gaussians": 10, "mdn_objective": "mixture"}


def test_predict_gives_scores_and_maps_of_the_input_size(detector):
    scores, maps = detector.predict(_images())
    assert scores.shape == (2,) and maps.shape == (2, SIZE, SIZE)
    assert np.isfinite(scores).all() and np.isfinite(maps).all()
    _, reconstruction = detector.autoencoder.eval()(_images())
    assert reconstruction.shape == (2, 3, SIZE, SIZE)


def test_noise_is_added_in_train_mode_only(detector):
    ae = detector.autoencoder
    x = _images()
    with torch.no_grad():
        ae.eval()
        tokens_a, recon_a = ae(x)
        tokens_b, recon_b = ae(x)
        ae.train()
        noisy_1, _ = ae(x)
        noisy_2, _ = ae(x)
        ae.eval()
    assert torch.equal(tokens_a, tokens_b) and torch.equal(recon_a, recon_b)  # eval forward is deterministic
    assert not torch.equal(noisy_1, noisy_2)  # fresh noise on every train forward
    # the ViT has no dropout or batch norm: the train-eval difference is the noise itself, std 0.2
    assert abs(float((noisy_1 - tokens_a).std()) - 0.2) < 0.01
    first, second = detector.predict(x)[0], detector.predict(x)[0]
    np.testing.assert_array_equal(first, second)


def test_mixture_nll_equals_torch_distributions_and_paper_nll_is_the_codes_formula():
    torch.manual_seed(0)
    b, n, d, k = 2, 5, 6, 3
    head = MixtureDensityHead(dim=d, n_gaussians=k)
    tokens = torch.randn(b, n, d)
    log_pi, mu, log_var = head(tokens)
    components = torch.distributions.Independent(
        torch.distributions.Normal(mu.movedim(-1, -2), torch.exp(0.5 * log_var).movedim(-1, -2)), 1)
    mixture = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(logits=log_pi), components)
    torch.testing.assert_close(mixture_nll(tokens, log_pi, mu, log_var), -mixture.log_prob(tokens))
    # mdn1.log_gmm: sum_k pi_k * 0.5 * (log 2pi + sum_d (logvar + (x - mu)^2 / exp(logvar))): log 2pi once
    component_nll = -components.log_prob(tokens[:, :, None, :])  # [B,N,K], with the full D log 2pi
    expected = (log_pi.exp() * (component_nll - 0.5 * (d - 1) * math.log(2 * math.pi))).sum(-1)
    torch.testing.assert_close(paper_nll(tokens, log_pi, mu, log_var), expected)
    # Jensen: the pi-weighted sum of component NLLs bounds the mixture NLL from above (same constants)
    assert (expected + 0.5 * (d - 1) * math.log(2 * math.pi) >= mixture_nll(tokens, log_pi, mu, log_var) - 1e-4).all()


@pytest.mark.parametrize("objective", ["mixture", "paper"])
def test_both_mdn_objectives_give_finite_losses(objective):
    model = create_detector("vtadl", image_size=SIZE, mdn_objective=objective)
    model.train_mode(True)
    loss = model.loss(_images())
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.mdn.parameters())


def _fit_losses(seed: int) -> list[float]:
    model = create_detector("vtadl", image_size=SIZE, seed=seed)
    batches = [{"image": _images(seed=i), "mask": torch.zeros(2, SIZE, SIZE)} for i in range(2)]
    losses: list[float] = []
    report = model.fit(batches, Budget(epochs=1, max_steps=2), progress=lambda step, loss: losses.append(loss))
    assert report.steps == 2 and report.stopped_by == "max_steps" and math.isfinite(report.final_loss)
    return losses


def test_fit_runs_and_the_same_seed_gives_identical_losses():
    first, again, other = _fit_losses(0), _fit_losses(0), _fit_losses(1)
    assert len(first) == 2 and all(math.isfinite(v) for v in first)
    assert first == again
    assert first != other


def test_parameter_count_at_512_matches_the_authors_code_by_part():
    with torch.device("meta"):
        model = VTADL(image_size=512)
    def count(m):
        return sum(p.numel() for p in m.parameters())
    ae = model.autoencoder
    assert count(ae.vit) == 18_933_248  # 12288->512 embedding, CLS, 65x512 positions, 6 blocks, no final LN
    assert count(ae.routing) == 16_777_216  # W: 1 x 4096 x 512 x 8
    assert count(ae.decoder) == 142_099
    assert count(model.mdn) == 5_248_000  # bias-free: 512*10 + 2 * 512*5120
    assert count(ae) + count(model.mdn) == 41_100_563
    layers = [m for m in ae.decoder if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0]) for m in layers] == \
        list(AUTHORS_DECODER)


def test_decoder_geometry_is_the_authors_at_512_and_exact_at_every_multiple_of_8():
    assert decoder_geometry(512) == tuple((s, p) for *_, s, p in AUTHORS_DECODER)
    for size in range(64, 513, 8):
        h, sizes = 8, []
        for (_, _, kernel, _, _), (stride, padding) in zip(AUTHORS_DECODER, decoder_geometry(size)):
            h = (h - 1) * stride - 2 * padding + kernel
            sizes.append(h)
        assert h == size
        if size == 512:
            assert tuple(sizes) == AUTHORS_DECODER_SIZES


def test_blur_matches_scipy_gaussian_filter():
    from scipy.ndimage import gaussian_filter

    maps = torch.rand(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    ours = GaussianBlur(SIZE, sigma=4.0)(maps)
    reference = gaussian_filter(maps.double().numpy(), sigma=(0, 0, 4, 4))
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-6)


def test_score_ssim_matches_pytorch_msssim():
    from pytorch_msssim import ssim

    x = _images(seed=4)
    y = torch.tanh(torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5)))
    expected = ssim(x, y, data_range=1.0, size_average=False, win_size=11, win_sigma=1.5)
    torch.testing.assert_close(ssim_per_image(x, y), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_inference_module_exports_to_onnx_and_matches_onnxruntime(detector, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    x = _images(seed=6)
    module = detector.inference_module()
    with torch.no_grad():
        scores, maps = module(x)
    path = tmp_path / "vtadl.onnx"
    torch.onnx.export(module, (x,), str(path), dynamo=True, opset_version=18)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ort_scores, ort_maps = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    for ours, theirs in ((scores.numpy(), ort_scores), (maps.numpy(), ort_maps)):
        assert theirs.shape == ours.shape
        assert np.abs(ours - theirs).max() <= 1e-3 * np.abs(ours).max()


def _tiny_vtadl(**kwargs) -> VTADL:
    return VTADL(image_size=SIZE, depth=1, heads=2, mlp_dim=32, noise_std=0.0, lr=0.0, weight_decay=0.0, **kwargs)


@pytest.mark.parametrize("accumulate", [False, True])
def test_mdn_gradient_accumulation_as_the_authors_train_py(accumulate):
    # train.py l.65 zeroes only the autoencoder's gradients, so the MDN's add up over the steps. With a zero
    # learning rate nothing moves: the same batch gives the same gradient at each step, so after two steps the
    # MDN's gradient is twice the first step's when accumulated and equal to it otherwise; the autoencoder's
    # is the step's own either way.
    model = _tiny_vtadl(mdn_grad_accumulation=accumulate)
    optimizer = model.make_optimizer()
    images = _images()
    masks = torch.zeros(2, SIZE, SIZE)
    model.training_step(images, masks, optimizer)
    first_mdn = model.mdn.mu.weight.grad.clone()
    first_ae = model.autoencoder.vit.patch_to_embedding.weight.grad.clone()
    model.training_step(images, masks, optimizer)
    assert torch.allclose(model.mdn.mu.weight.grad, first_mdn * (2 if accumulate else 1), rtol=1e-4, atol=1e-6)
    assert torch.allclose(model.autoencoder.vit.patch_to_embedding.weight.grad, first_ae, rtol=1e-4, atol=1e-6)


def test_zero_padded_ssim_reaches_the_score_and_the_loss():
    images = _images()
    valid, zero = _tiny_vtadl(), _tiny_vtadl(ssim_padding="zero")
    zero.load_state_dict(valid.state_dict())
    assert not np.allclose(valid.predict(images)[0], zero.predict(images)[0], rtol=0, atol=1e-7)
    valid.train_mode(True)
    zero.train_mode(True)
    assert float(valid.loss(images).detach()) != float(zero.loss(images).detach())
    with pytest.raises(ValueError, match="ssim_padding"):
        _tiny_vtadl(ssim_padding="same")
    with pytest.raises(ValueError, match="checkpoint"):
        _tiny_vtadl(checkpoint="best")
