"""models/capsules.py: squash, routing coupling coefficients, shapes, longest capsule."""
import torch

from models.capsules import DynamicRouting, capsule_lengths, longest_capsule, squash


def test_squash_keeps_direction_and_maps_length_below_one():
    # |v| = |s|^2 / (1 + |s|^2) < 1 holds in exact arithmetic; float32 holds it only for moderate norms. Once |s|^2
    # passes ~1e7 (the 1000x row: |s| ~ 3000), 1 - 1/|s|^2 is within an ulp of 1 and the computed length is 1.0 or
    # one ulp above it (about 1 in 5 unseeded draws of this test used to fail on exactly 1.0).
    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([0.01, 0.5, 1.0, 10.0, 1000.0])
    s = torch.randn(4, 5, 8, generator=g) * scales[None, :, None]
    v = squash(s)
    lengths = capsule_lengths(v)
    moderate = scales <= 10.0  # |s| below ~100: 1 - |v| >= 1e-4, far above float32's resolution at 1
    assert torch.all(lengths[:, moderate] < 1.0)
    assert torch.all(lengths <= 1.0 + torch.finfo(torch.float32).eps)  # huge norms: saturated, at most 1 + 1 ulp
    assert torch.all(lengths > 0.0)
    # direction kept, for every norm (exact norms here: capsule_lengths' +1e-12 would bias the shortest vectors)
    cosine = (v * s).sum(-1) / (torch.linalg.vector_norm(v, dim=-1) * torch.linalg.vector_norm(s, dim=-1))
    assert torch.allclose(cosine, torch.ones_like(cosine), atol=1e-4)
    # |v| = |s|^2 / (1 + |s|^2): long vectors saturate towards 1, short ones shrink quadratically
    expected = capsule_lengths(s) ** 2 / (1 + capsule_lengths(s) ** 2)
    assert torch.allclose(lengths, expected, rtol=1e-4)


def test_routing_shapes_and_coupling_sums_to_one_over_output_capsules():
    torch.manual_seed(0)
    routing = DynamicRouting(in_caps=30, in_dim=8, out_caps=3, out_dim=16, iterations=3)
    u = squash(torch.randn(2, 30, 8))
    v, c = routing(u, return_coupling=True)
    assert v.shape == (2, 3, 16)
    assert c.shape == (2, 3, 30)
    assert torch.allclose(c.sum(dim=1), torch.ones(2, 30), atol=1e-6)
    assert torch.all(c >= 0)
    assert torch.all(capsule_lengths(v) < 1.0)
    # agreement moves the coupling away from uniform after the first iteration
    assert not torch.allclose(c, torch.full_like(c, 1 / 3))


def test_routing_with_one_output_capsule_couples_everything():
    routing = DynamicRouting(in_caps=10, in_dim=4, out_caps=1, out_dim=6)
    v, c = routing(torch.randn(3, 10, 4), return_coupling=True)
    assert v.shape == (3, 1, 6)
    assert torch.allclose(c, torch.ones_like(c))


def test_routing_gradient_reaches_weights_and_inputs():
    routing = DynamicRouting(in_caps=12, in_dim=8, out_caps=2, out_dim=4)
    u = torch.randn(2, 12, 8, requires_grad=True)
    capsule_lengths(routing(u)).sum().backward()
    assert routing.W.grad is not None and routing.W.grad.abs().sum() > 0
    assert u.grad is not None and u.grad.abs().sum() > 0


def test_longest_capsule_picks_the_longer_one():
    v = torch.zeros(2, 2, 3)
    v[0, 0] = torch.tensor([0.1, 0.0, 0.0])
    v[0, 1] = torch.tensor([0.0, 0.5, 0.0])
    v[1, 0] = torch.tensor([0.0, 0.0, 0.7])
    v[1, 1] = torch.tensor([0.2, 0.0, 0.0])
    kept = longest_capsule(v)
    assert torch.equal(kept, torch.stack([v[0, 1], v[1, 0]]))
