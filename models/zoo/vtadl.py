"""VT-ADL: Vision Transformer for anomaly detection and localisation (Mishra et al., ISIE 2021, arXiv 2104.10036).

Follows the authors' code (github pankajmishra000/VT-ADL: `VT_AE.py`, `student_transformer.py`, `spatial.py`,
`model_res18.py`, `mdn1.py`, `train.py`, `test.py`, `utility_fun.py`):
- Encoder: ViT on an 8x8 grid of patches (64x64 pixels at 512), linear patch embedding (patch flattened in
  the code's `(p1 p2 c)` order, 12288 -> 512 at 512), learned CLS token and position embedding (65 x 512),
  6 pre-LayerNorm blocks (8 heads, bias-free qkv, MLP 1024 with GELU), no final LayerNorm. The attention
  logits are scaled by dim**-0.5 with dim = 512 (the whole model width), not by the head width: the code's
  choice, kept. Output: the 64 patch tokens (CLS dropped).
- Training-time Gaussian noise (std 0.2) on the tokens, in train mode only. As in the code, the noisy tokens
  feed both the routing and the MDN.
- Routing: the tokens read as 4096 capsules of dimension 8 (each token split into 64 consecutive 8-vectors),
  3 iterations of dynamic routing to ONE 512-d capsule (`models.capsules.DynamicRouting`; with a single
  output capsule the coupling is 1 and the code's "longest capsule" mask is the identity), reshaped (8,8,8).
- Decoder (`model_res18.decoder2`): six ConvTranspose2d, BatchNorm + ReLU between, Tanh last. Tanh spans
  [-1, 1] while the targets are [0, 1]: the authors' choice, kept.
- MDN (`mdn1.MDN`): bias-free linears on the tokens clamped below at float64 eps (the code's
  `torch.clamp(x, eps)`, in effect a ReLU on the MDN's input); pi = softmax(Linear(512 -> K)),
  mu = Linear(512 -> 512K), s = softplus(Linear(512 -> 512K)), both viewed (.., 512, K) (d-major). The code
  passes s as `logvar` to its Gaussian log-likelihood, i.e. the variance is exp(softplus(.)) >= 1; we keep
  that parameterisation (the methods summary's "var = softplus" is the variable's name in the code).
- MDN objectives, per token (summed over the 64 tokens, averaged over the batch, as the code reduces):
  "mixture" (default): the mixture's negative log-likelihood, -logsumexp_k(log pi_k + log N(x; mu_k, var_k)),
  with the full D*log(2 pi) constant; "paper": the code's pi-weighted sum of the components' negative
  log-likelihoods, sum_k pi_k * 0.5 * (log(2 pi) + sum_d(logvar + (x - mu)^2 / var)) (the constant counted
  once, as the code does; constants shift the loss and the scores, not the gradients).
- Loss: 5 * MSE(recon, x) - 0.5 * SSIM(x, recon) + MDN NLL; SSIM by `pytorch_msssim.ssim` (window 11,
  sigma 1.5, data_range 1). The authors' vendored `pytorch_ssim` pads the window ("same" output) while
  pytorch_msssim averages over valid positions only: a small difference at the borders. `ssim_padding="zero"`
  computes the loss's and the score's SSIM the authors' way (`models.filters.ssim_per_image`).
- Adam, lr 1e-4, weight decay 1e-4, over the autoencoder and the MDN together. The authors' `train.py`
  zeroes only the autoencoder's gradients (`model.zero_grad()`, never `G_estimate`'s), so the MDN's gradients
  add up over every step of the run: `mdn_grad_accumulation=True` does the same (default off: each step's
  own gradient). They keep the weights of the epoch with the lowest mean training loss: `checkpoint=
  "lowest_loss"` (`models.base.CHECKPOINTS`; default "last"). Initialisation as the code's
  `initialize_weights(vt, decoder)`: Kaiming-normal weights and zero biases for the ViT's Linear layers;
  ConvTranspose2d is not an `nn.Conv2d`, so the decoder's layers keep PyTorch's default initialisation;
  the MDN is not passed to it and keeps the default too; CLS token and position embedding ~ N(0, 1);
  routing weights ~ 0.01 N(0, 1).
- Heat map (`test.py`, upsample=1): per-token NLL on the 8x8 grid -> bilinear upsampling with
  align_corners=True (`nn.UpsamplingBilinear2d`) to the input size -> Gaussian blur sigma 4 as
  `scipy.ndimage.gaussian_filter` does it (radius 16 = truncate 4, half-sample-symmetric "reflect" border),
  written here as fixed separable convolutions after a gather that pads, so that it exports to ONNX.
- Image score (`test.py`, `Patch_Overlap_Score`): loss1 - loss2 + loss3.max() with loss2 = -SSIM, i.e.
  MSE(recon, x) + SSIM(x, recon) + the largest per-token NLL. The SSIM enters with a plus sign (a higher
  similarity raises the anomaly score): the code's sign, kept; the NLL term dominates its scale anyway.
  The score's SSIM is per image, computed with our own Gaussian-window convolution (models/filters.py, the
  same definition as pytorch_msssim, which is kept for the training loss): pytorch_msssim.ssim exports, but
  its `X.squeeze(dim=d)` on the non-unit spatial axes becomes an ONNX Squeeze that onnxruntime rejects.

Input size. The authors' model is built for 512x512 inputs (resize 550, centre-crop 512; here the dataset
resizes to `image_size`). At any size that is a multiple of 8 we keep the 8x8 patch grid (patch side
image_size / 8, so the patch embedding is 3*(S/8)^2 -> 512 and the routing keeps its 4096 input capsules),
and the decoder keeps the authors' six layers with the same channels and kernel sizes (so the same
parameters) but with strides and paddings rescaled so that it gives back exactly S x S: see
`decoder_geometry`, which picks, among strides no larger than the authors' and paddings up to (k-1)//2,
the geometry whose intermediate sizes are closest (in log ratio) to the authors' sizes scaled by S/512. At
512 that is the authors' geometry exactly (8 -> 15 -> 49 -> 245 -> 497 -> 502 -> 512); the decoder's cost
then shrinks with the input instead of always rendering 512x512.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as msssim_ssim
from torch import nn

from models.base import Detector, check_checkpoint
from models.capsules import DynamicRouting
from models.filters import SSIM_PADDINGS, SSIM_SIGMA, SSIM_WINDOW, gaussian_kernel_1d, ssim_per_image
from models.registry import register_model

GRID = 8  # patches per side, at every input size
TOKEN_DIM = 512
CAPSULE_DIM_IN = 8
MDN_INPUT_FLOOR = float(np.finfo(float).eps)  # the code's torch.clamp(x, np.finfo(float).eps)

# The authors' decoder (model_res18.decoder2) at 512: (in, out, kernel, stride, padding), and its sizes.
AUTHORS_DECODER = ((8, 16, 3, 2, 1), (16, 32, 9, 3, 1), (32, 32, 7, 5, 1),
                   (32, 16, 9, 2, 0), (16, 8, 6, 1, 0), (8, 3, 11, 1, 0))
AUTHORS_DECODER_SIZES = (15, 49, 245, 497, 502, 512)
AUTHORS_INPUT = 512


@lru_cache(maxsize=None)
def decoder_geometry(image_size: int) -> tuple[tuple[int, int], ...]:
    """(stride, padding) of each decoder layer so that 8x8 becomes image_size x image_size.

    Dynamic programming over the six layers: strides 1..(the authors' stride), paddings 0..(k-1)//2, cost =
    sum over layers of log(size / (authors' size * image_size / 512))^2, ties broken by the distance to the
    authors' strides and paddings. At 512 the authors' geometry has cost 0 and is returned.
    """
    scale = image_size / AUTHORS_INPUT
    # best[h] = (cost, tie_break, geometry so far) for the reachable sizes h after each layer
    best: dict[int, tuple[float, int, tuple[tuple[int, int], ...]]] = {GRID: (0.0, 0, ())}
    for layer, (_, _, kernel, authors_stride, authors_padding) in enumerate(AUTHORS_DECODER):
        target = AUTHORS_DECODER_SIZES[layer] * scale
        last = layer == len(AUTHORS_DECODER) - 1
        nxt: dict[int, tuple[float, int, tuple[tuple[int, int], ...]]] = {}
        for h_in, (cost, tie, geometry) in best.items():
            for stride in range(1, authors_stride + 1):
                for padding in range((kernel - 1) // 2 + 1):
                    h = (h_in - 1) * stride - 2 * padding + kernel
                    if h <= 0 or (last and h != image_size):
                        continue
                    candidate = (cost + math.log(h / target) ** 2,
                                 tie + abs(stride - authors_stride) + abs(padding - authors_padding),
                                 geometry + ((stride, padding),))
                    if h not in nxt or candidate[:2] < nxt[h][:2]:
                        nxt[h] = candidate
        best = nxt
    if image_size not in best:
        raise ValueError(f"VT-ADL: no decoder geometry gives {image_size}x{image_size}")
    return best[image_size][2]


def build_decoder(image_size: int) -> nn.Sequential:
    """The authors' six transposed convolutions (BN + ReLU between, Tanh last) with `decoder_geometry`."""
    layers: list[nn.Module] = []
    for i, ((c_in, c_out, kernel, _, _), (stride, padding)) in enumerate(
            zip(AUTHORS_DECODER, decoder_geometry(image_size))):
        layers.append(nn.ConvTranspose2d(c_in, c_out, kernel, stride=stride, padding=padding))
        if i < len(AUTHORS_DECODER) - 1:
            layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    layers.append(nn.Tanh())
    return nn.Sequential(*layers)


# ---- encoder -------------------------------------------------------------------------------------------

class SelfAttention(nn.Module):
    """Multi-head self-attention as `student_transformer.Attention` (bias-free qkv, scale dim**-0.5)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = dim ** -0.5  # the code scales by the model width, not the head width
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.to_qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attention = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * self.scale, dim=-1)
        out = torch.matmul(attention, v).transpose(1, 2).reshape(b, n, d)
        return self.to_out(out)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: x + attention(LN(x)), then x + MLP(LN(x)) with GELU."""

    def __init__(self, dim: int, heads: int, mlp_dim: int):
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, heads)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class PatchViT(nn.Module):
    """ViT on a GRID x GRID patch grid; returns the patch tokens [B, GRID^2, dim] (CLS dropped)."""

    def __init__(self, image_size: int, dim: int, depth: int, heads: int, mlp_dim: int, channels: int = 3):
        super().__init__()
        if image_size % GRID:
            raise ValueError(f"VT-ADL needs an input side divisible by {GRID}, got {image_size}")
        self.patch = image_size // GRID
        self.patch_to_embedding = nn.Linear(channels * self.patch ** 2, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, GRID * GRID + 1, dim))
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_dim) for _ in range(depth))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = images.shape
        p = self.patch
        # 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)', as the code flattens a patch
        patches = images.reshape(b, c, GRID, p, GRID, p).permute(0, 2, 4, 3, 5, 1).reshape(b, GRID * GRID, p * p * c)
        x = torch.cat([self.cls_token.expand(b, -1, -1), self.patch_to_embedding(patches)], dim=1)
        x = x + self.pos_embedding
        for block in self.blocks:
            x = block(x)
        return x[:, 1:]


class VTAutoencoder(nn.Module):
    """ViT -> (train-time noise) -> dynamic routing to one 512-d capsule -> transposed-conv decoder."""

    def __init__(self, image_size: int, dim: int = TOKEN_DIM, depth: int = 6, heads: int = 8, mlp_dim: int = 1024,
                 noise_std: float = 0.2, routing_iterations: int = 3):
        super().__init__()
        if dim != GRID * GRID * CAPSULE_DIM_IN:
            raise ValueError(f"the routed capsule is read as (8, 8, 8): dim must be {GRID * GRID * CAPSULE_DIM_IN}")
        self.noise_std = noise_std
        self.noise_generator: torch.Generator | None = None  # CPU generator for the noise; None: global RNG
        self.vit = PatchViT(image_size, dim, depth, heads, mlp_dim)
        self.routing = DynamicRouting(in_caps=GRID * GRID * dim // CAPSULE_DIM_IN, in_dim=CAPSULE_DIM_IN,
                                      out_caps=1, out_dim=dim, iterations=routing_iterations)
        self.decoder = build_decoder(image_size)
        self._init_like_authors()

    def _init_like_authors(self) -> None:
        # initialize_weights(self.vt, self.decoder): only nn.Conv2d / nn.Linear / nn.BatchNorm2d are touched;
        # the decoder has ConvTranspose2d (not an nn.Conv2d) and BatchNorm2d (already weight 1, bias 0).
        for module in self.vit.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [B,3,S,S] -> (tokens [B,64,512], with noise in train mode; reconstruction [B,3,S,S])."""
        tokens = self.vit(images)
        if self.training and self.noise_std > 0:
            noise = torch.randn(tokens.shape, generator=self.noise_generator)
            tokens = tokens + self.noise_std * noise.to(tokens)
        b = tokens.shape[0]
        capsule = self.routing(tokens.reshape(b, -1, CAPSULE_DIM_IN))  # [B, 1, 512]
        reconstruction = self.decoder(capsule.reshape(b, CAPSULE_DIM_IN, GRID, GRID))
        return tokens, reconstruction


# ---- mixture density network ---------------------------------------------------------------------------

class MixtureDensityHead(nn.Module):
    """`mdn1.MDN`: per token, K diagonal Gaussians over the token's 512 values (bias-free linears)."""

    def __init__(self, dim: int = TOKEN_DIM, n_gaussians: int = 10):
        super().__init__()
        self.dim, self.n_gaussians = dim, n_gaussians
        self.pi = nn.Linear(dim, n_gaussians, bias=False)
        self.mu = nn.Linear(dim, dim * n_gaussians, bias=False)
        self.log_variance = nn.Linear(dim, dim * n_gaussians, bias=False)  # softplus of it (the code's sigma_sq)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens [B,N,D] -> log pi [B,N,K], mu [B,N,D,K], log-variance [B,N,D,K]."""
        b, n, _ = tokens.shape
        x = tokens.clamp(min=MDN_INPUT_FLOOR)
        log_pi = torch.log_softmax(self.pi(x), dim=-1)
        mu = self.mu(x).reshape(b, n, self.dim, self.n_gaussians)
        log_variance = F.softplus(self.log_variance(x)).reshape(b, n, self.dim, self.n_gaussians)
        return log_pi, mu, log_variance


def _squared_terms(tokens: torch.Tensor, mu: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """sum_d (logvar + (x - mu)^2 / var) per component: [B,N,K]."""
    return (log_variance + (tokens[..., None] - mu) ** 2 * torch.exp(-log_variance)).sum(dim=2)


def mixture_nll(tokens, log_pi, mu, log_variance) -> torch.Tensor:
    """Per-token negative log-likelihood of the Gaussian mixture: [B,N]."""
    d = tokens.shape[-1]
    log_components = -0.5 * (d * math.log(2 * math.pi) + _squared_terms(tokens, mu, log_variance))
    return -torch.logsumexp(log_pi + log_components, dim=-1)


def paper_nll(tokens, log_pi, mu, log_variance) -> torch.Tensor:
    """Per-token pi-weighted sum of component NLLs, as `mdn1.log_gmm(..., total=True)`: [B,N]."""
    component_nll = 0.5 * (math.log(2 * math.pi) + _squared_terms(tokens, mu, log_variance))
    return (torch.exp(log_pi) * component_nll).sum(dim=-1)


MDN_OBJECTIVES = {"mixture": mixture_nll, "paper": paper_nll}


# ---- inference graph -------------------------------------------------------------------------------------

def _reflect_indices(size: int, radius: int) -> torch.Tensor:
    """Indices that pad a length-`size` axis by `radius` as scipy's mode='reflect' (d c b a | a b c d | d c b a)."""
    period = 2 * size
    idx = np.arange(-radius, size + radius) % period
    return torch.as_tensor(np.where(idx >= size, period - 1 - idx, idx), dtype=torch.long)


class GaussianBlur(nn.Module):
    """scipy.ndimage.gaussian_filter(sigma, truncate=4) on [B,1,S,S] maps as a fixed separable convolution."""

    def __init__(self, size: int, sigma: float):
        super().__init__()
        radius = int(4.0 * sigma + 0.5)
        kernel = gaussian_kernel_1d(2 * radius + 1, sigma, torch.float64).float()  # scipy's weights, rounded once
        self.register_buffer("kernel_h", kernel.reshape(1, 1, -1, 1), persistent=False)
        self.register_buffer("kernel_w", kernel.reshape(1, 1, 1, -1), persistent=False)
        self.register_buffer("pad_index", _reflect_indices(size, radius), persistent=False)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        padded = maps.index_select(2, self.pad_index).index_select(3, self.pad_index)
        return F.conv2d(F.conv2d(padded, self.kernel_h), self.kernel_w)


class VTADLInference(nn.Module):
    """images [B,3,S,S] -> (scores [B], maps [B,S,S]); no noise, whatever the mode."""

    def __init__(self, autoencoder: VTAutoencoder, mdn: MixtureDensityHead, objective: str, image_size: int,
                 blur_sigma: float, ssim_padding: str = "valid"):
        super().__init__()
        self.autoencoder, self.mdn = autoencoder, mdn
        self.ssim_padding = ssim_padding
        self.token_nll = MDN_OBJECTIVES[objective]
        self.image_size = image_size
        self.blur = GaussianBlur(image_size, blur_sigma)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ae = self.autoencoder
        tokens = ae.vit(images)
        b = tokens.shape[0]
        capsule = ae.routing(tokens.reshape(b, -1, CAPSULE_DIM_IN))
        reconstruction = ae.decoder(capsule.reshape(b, CAPSULE_DIM_IN, GRID, GRID))
        patch_nll = self.token_nll(tokens, *self.mdn(tokens))  # [B, 64]
        mse = ((reconstruction - images) ** 2).flatten(1).mean(1)
        scores = mse + ssim_per_image(images, reconstruction, padding=self.ssim_padding) + patch_nll.max(dim=1).values
        grid = patch_nll.reshape(b, 1, GRID, GRID)
        maps = F.interpolate(grid, size=(self.image_size, self.image_size), mode="bilinear", align_corners=True)
        return scores, self.blur(maps)[:, 0]


# ---- detector ----------------------------------------------------------------------------------------------

class VTADL(Detector):
    name = "vtadl"

    def __init__(self, image_size: int = AUTHORS_INPUT, n_gaussians: int = 10, mdn_objective: str = "mixture",
                 noise_std: float = 0.2, seed: int = 0, lr: float = 1e-4, weight_decay: float = 1e-4,
                 depth: int = 6, heads: int = 8, mlp_dim: int = 1024, routing_iterations: int = 3,
                 blur_sigma: float = 4.0, mdn_grad_accumulation: bool = False, ssim_padding: str = "valid",
                 checkpoint: str = "last"):
        super().__init__(image_size)
        if mdn_objective not in MDN_OBJECTIVES:
            raise ValueError(f"mdn_objective must be one of {sorted(MDN_OBJECTIVES)}, got {mdn_objective!r}")
        if ssim_padding not in SSIM_PADDINGS:
            raise ValueError(f"ssim_padding must be one of {SSIM_PADDINGS}, got {ssim_padding!r}")
        self.mdn_grad_accumulation, self.ssim_padding = bool(mdn_grad_accumulation), ssim_padding
        self.checkpoint = check_checkpoint(checkpoint)
        self.n_gaussians, self.mdn_objective = n_gaussians, mdn_objective
        self.lr, self.weight_decay = lr, weight_decay
        with torch.random.fork_rng(devices=[]):  # seeded construction, global RNG left as it was
            torch.manual_seed(seed)
            self.autoencoder = VTAutoencoder(image_size, depth=depth, heads=heads, mlp_dim=mlp_dim,
                                             noise_std=noise_std, routing_iterations=routing_iterations)
            self.mdn = MixtureDensityHead(TOKEN_DIM, n_gaussians)
        self.autoencoder.noise_generator = torch.Generator().manual_seed(seed)
        self.token_nll = MDN_OBJECTIVES[mdn_objective]
        self._inference = VTADLInference(self.autoencoder, self.mdn, mdn_objective, image_size, blur_sigma,
                                         ssim_padding)

    def modules_to_save(self) -> dict[str, nn.Module]:
        return {"autoencoder": self.autoencoder, "mdn": self.mdn}

    def to(self, device) -> "VTADL":
        super().to(device)
        self._inference.to(self.device)  # the blur's buffers
        return self

    def make_optimizer(self) -> torch.optim.Optimizer:
        params = list(self.autoencoder.parameters()) + list(self.mdn.parameters())
        return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)

    def loss(self, images: torch.Tensor) -> torch.Tensor:
        """5 MSE - 0.5 SSIM + MDN NLL (summed over tokens, mean over the batch), as train.py."""
        tokens, reconstruction = self.autoencoder(images)
        mse = F.mse_loss(reconstruction, images)
        if self.ssim_padding == "valid":
            similarity = msssim_ssim(images, reconstruction, data_range=1.0, size_average=True,
                                     win_size=SSIM_WINDOW, win_sigma=SSIM_SIGMA)
        else:
            similarity = ssim_per_image(images, reconstruction, padding=self.ssim_padding).mean()
        nll = self.token_nll(tokens, *self.mdn(tokens)).sum(dim=1).mean()
        return 5.0 * mse - 0.5 * similarity + nll

    def training_step(self, images: torch.Tensor, masks: torch.Tensor, optimizer: torch.optim.Optimizer) -> float:
        self.train_mode(True)
        if self.mdn_grad_accumulation:  # train.py: model.zero_grad() only; the MDN's gradients keep adding up
            self.autoencoder.zero_grad(set_to_none=True)
        else:
            optimizer.zero_grad(set_to_none=True)
        loss = self.loss(images)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    def inference_module(self) -> nn.Module:
        self.train_mode(False)
        return self._inference.eval()

    def info(self) -> dict:
        return {"pretrained": self.pretrained, "n_gaussians": self.n_gaussians, "mdn_objective": self.mdn_objective}


@register_model("vtadl", family="detector", paper="Mishra et al., VT-ADL, ISIE 2021 (arXiv 2104.10036)",
                input_size=AUTHORS_INPUT,
                description="ViT autoencoder + capsule routing + Gaussian mixture density on the patch tokens")
def vtadl(image_size: int = AUTHORS_INPUT, n_gaussians: int = 10, mdn_objective: str = "mixture",
          noise_std: float = 0.2, seed: int = 0, lr: float = 1e-4, weight_decay: float = 1e-4, depth: int = 6,
          heads: int = 8, mlp_dim: int = 1024, routing_iterations: int = 3, blur_sigma: float = 4.0,
          mdn_grad_accumulation: bool = False, ssim_padding: str = "valid", checkpoint: str = "last") -> VTADL:
    return VTADL(image_size=image_size, n_gaussians=n_gaussians, mdn_objective=mdn_objective, noise_std=noise_std,
                 seed=seed, lr=lr, weight_decay=weight_decay, depth=depth, heads=heads, mlp_dim=mlp_dim,
                 routing_iterations=routing_iterations, blur_sigma=blur_sigma,
                 mdn_grad_accumulation=mdn_grad_accumulation, ssim_padding=ssim_padding, checkpoint=checkpoint)
