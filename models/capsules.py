"""Capsule parts shared by VT-ADL, PIADE and the capsule-network detector (Sabour et al. 2017).

`DynamicRouting` is routing-by-agreement: every input capsule predicts every output capsule through its own
matrix W[j, i] (out_dim x in_dim); coupling coefficients c[b, j, i] = softmax over the output capsules j of
the logits b, which grow by the agreement <u_hat, v>. As in the authors' code (and Guo's CapsNet-Pytorch),
the predictions are detached in all but the last iteration, so gradients flow through the last one only.
With one output capsule (VT-ADL) c is 1 for every input: the routing reduces to a squashed sum of
predictions, exactly as in the authors' code. Written with matmul/softmax/sum only, so it exports to ONNX
with the loop unrolled.
"""
from __future__ import annotations

import torch
from torch import nn


def squash(s: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """v = |s|^2 / (1 + |s|^2) * s / |s|: keeps direction, maps length into [0, 1)."""
    sq = (s * s).sum(dim, keepdim=True)
    return sq / (1.0 + sq) * s / torch.sqrt(sq + eps)


class DynamicRouting(nn.Module):
    def __init__(self, in_caps: int, in_dim: int, out_caps: int, out_dim: int, iterations: int = 3,
                 init_std: float = 0.01):
        super().__init__()
        self.in_caps, self.in_dim, self.out_caps, self.out_dim = in_caps, in_dim, out_caps, out_dim
        self.iterations = iterations
        self.W = nn.Parameter(init_std * torch.randn(out_caps, in_caps, out_dim, in_dim))

    def predictions(self, u: torch.Tensor) -> torch.Tensor:
        """u [B, in_caps, in_dim] -> u_hat [B, out_caps, in_caps, out_dim]."""
        # einsum, not a broadcast matmul: matmul would copy W (16.8M values for VT-ADL) once per sample.
        return torch.einsum("jiod,bid->bjio", self.W, u)

    def forward(self, u: torch.Tensor, return_coupling: bool = False):
        """u [B, in_caps, in_dim] -> v [B, out_caps, out_dim] (and c [B, out_caps, in_caps] if asked)."""
        u_hat = self.predictions(u)
        u_hat_detached = u_hat.detach()
        logits = torch.zeros(u.shape[0], self.out_caps, self.in_caps, dtype=u.dtype, device=u.device)
        for i in range(self.iterations):
            c = torch.softmax(logits, dim=1)
            last = i == self.iterations - 1
            v = squash((c[..., None] * (u_hat if last else u_hat_detached)).sum(dim=2))
            if not last:
                logits = logits + (u_hat_detached * v[:, :, None, :]).sum(-1)
        return (v, c) if return_coupling else v


def capsule_lengths(v: torch.Tensor) -> torch.Tensor:
    """[B, caps, dim] -> [B, caps]: the probability-like length of each capsule."""
    return torch.sqrt((v * v).sum(-1) + 1e-12)


def longest_capsule(v: torch.Tensor) -> torch.Tensor:
    """[B, caps, dim] -> [B, dim]: the longest capsule of each sample (PIADE keeps it for the decoder).

    A one-hot mask times v, summed, rather than an index gather: it exports to ONNX and keeps gradients.
    """
    lengths = capsule_lengths(v)
    mask = torch.nn.functional.one_hot(lengths.argmax(dim=1), v.shape[1]).to(v.dtype)
    return (v * mask[..., None]).sum(dim=1)
