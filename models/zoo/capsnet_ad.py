"""Capsule-network detector for imbalanced supervised data (Piciarelli, Mishra, Foresti, "Image anomaly
detection with capsule networks and imbalanced datasets", ICIAP 2019, arXiv 1909.02755).

CapsNet (Sabour et al. 2017) with two class capsules, normal and anomalous:
- conv 9x9, 256 channels, ReLU -> primary capsules: conv 9x9 stride 2 to 32 maps of 8-d capsules, squashed
  (a capsule = the 8 channels of one map at one position) -> routing-by-agreement, 3 iterations
  (`models.capsules.DynamicRouting`) -> 2 class capsules of 16 dimensions.
- Reconstruction decoder: the class capsules masked to one (the true class in training, the longest at test)
  and flattened (2x16) -> FC 512 ReLU -> FC 1024 ReLU -> FC 3*S*S sigmoid.
- Loss: margin loss (m+ 0.9, m- 0.1, lambda 0.5, summed over the two classes) + 0.0005 x the sum of
  squared reconstruction errors per image, both averaged over the batch (Sabour et al.'s weights).
- Anomaly score: the capsule-length difference |v_anomalous| - |v_normal| in [-1, 1]. Image-level only:
  `inference_module` returns scores [B] and no map; the decoder is not part of the scoring graph.
- Input size: 28x28 by default, as CapsNet and the paper's experiments (1152 primary capsules: 6x6 positions
  x 32 maps); our datasets resize whole images to it, so small defects shrink with them. Any S >= 25 works:
  the primary grid is ((S-8)-9)//2+1 per side, e.g. S=64 gives 18,432 capsules and 4.7M routing weights.

Training data. `training_step(images, masks, optimizer)` labels an image anomalous when its mask has any
positive pixel. When a batch holds normal images only and `synthetic_anomalies` is on, each image is replaced
by a synthetic anomaly (`models.anomaly_synth.synthesize_anomalies`) with probability r / (1 + r), where
`anomaly_ratio` r = anomalous : normal (default 0.1, i.e. 1 : 10), drawn from a generator seeded by `seed`.
For training on labelled real defects (`bench run --labelled-defects N`), the runner builds the split with
`datasets.splits.labelled_folds` and turns `synthetic_anomalies` off.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.base import Detector
from models.capsules import DynamicRouting, capsule_lengths, squash
from models.registry import register_model

CAPSNET_INPUT = 28
PRIMARY_MAPS = 32
PRIMARY_DIM = 8
CLASS_DIM = 16
NORMAL, ANOMALOUS = 0, 1
MARGIN_POSITIVE, MARGIN_NEGATIVE, MARGIN_LAMBDA = 0.9, 0.1, 0.5
RECONSTRUCTION_WEIGHT = 0.0005


def primary_grid(image_size: int) -> int:
    """Positions per side of the primary-capsule grid: conv 9 (valid), then conv 9 stride 2 (valid)."""
    return (image_size - 8 - 9) // 2 + 1


class CapsuleNetwork(nn.Module):
    def __init__(self, image_size: int = CAPSNET_INPUT, routing_iterations: int = 3):
        super().__init__()
        grid = primary_grid(image_size)
        if grid < 1:
            raise ValueError(f"capsnet_ad needs image_size >= 25, got {image_size}")
        self.image_size = image_size
        self.conv = nn.Conv2d(3, 256, 9)
        self.primary = nn.Conv2d(256, PRIMARY_MAPS * PRIMARY_DIM, 9, stride=2)
        self.routing = DynamicRouting(PRIMARY_MAPS * grid * grid, PRIMARY_DIM, 2, CLASS_DIM, iterations=routing_iterations)
        self.decoder = nn.Sequential(
            nn.Linear(2 * CLASS_DIM, 512), nn.ReLU(inplace=True),
            nn.Linear(512, 1024), nn.ReLU(inplace=True),
            nn.Linear(1024, 3 * image_size * image_size), nn.Sigmoid(),
        )

    def class_capsules(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,3,S,S] -> class capsules [B,2,16]."""
        batch = images.shape[0]
        features = self.primary(F.relu(self.conv(images)))  # [B, 32*8, g, g]
        grid = features.shape[-1]
        primary = features.reshape(batch, PRIMARY_MAPS, PRIMARY_DIM, grid, grid).permute(0, 1, 3, 4, 2)
        return self.routing(squash(primary.reshape(batch, -1, PRIMARY_DIM)))

    def reconstruct(self, capsules: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Decode the capsule of `labels` (the longest when None) -> images [B,3,S,S]."""
        if labels is None:
            labels = capsule_lengths(capsules).argmax(dim=1)
        mask = F.one_hot(labels.long(), 2).to(capsules.dtype)
        flat = (capsules * mask[..., None]).flatten(1)
        return self.decoder(flat).reshape(-1, 3, self.image_size, self.image_size)


class CapsuleScore(nn.Module):
    """images -> scores [B] = |v_anomalous| - |v_normal|."""

    def __init__(self, network: CapsuleNetwork):
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        lengths = capsule_lengths(self.network.class_capsules(images))
        return lengths[:, ANOMALOUS] - lengths[:, NORMAL]


def margin_loss(lengths: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sabour et al.'s margin loss, [B,2] lengths and [B] integer labels -> scalar (batch mean)."""
    target = F.one_hot(labels.long(), 2).to(lengths.dtype)
    present = target * F.relu(MARGIN_POSITIVE - lengths) ** 2
    absent = MARGIN_LAMBDA * (1 - target) * F.relu(lengths - MARGIN_NEGATIVE) ** 2
    return (present + absent).sum(1).mean()


class CapsNetAD(Detector):
    name = "capsnet_ad"
    image_level_only = True
    uses_labels = True  # an image whose mask has a positive pixel is trained as the anomalous class

    def __init__(self, image_size: int = CAPSNET_INPUT, seed: int = 0, lr: float = 1e-3, anomaly_ratio: float = 0.1,
                 synthetic_anomalies: bool = True, routing_iterations: int = 3):
        super().__init__(image_size)
        if anomaly_ratio < 0:
            raise ValueError("anomaly_ratio (anomalous : normal) must be >= 0")
        self.seed, self.lr = seed, lr
        self.anomaly_ratio = anomaly_ratio
        self.synthetic_anomalies = synthetic_anomalies
        torch.manual_seed(seed)
        self.network = CapsuleNetwork(self.image_size, routing_iterations)
        self._score = CapsuleScore(self.network)
        self._generator: torch.Generator | None = None

    def modules_to_save(self) -> dict[str, nn.Module]:
        return {"network": self.network}

    def inference_module(self) -> nn.Module:
        return self._score

    def make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.network.parameters(), lr=self.lr)  # Sabour et al.: Adam, default betas

    def _synthesis_generator(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    def training_batch(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) for one step: real labels from the masks, synthetic anomalies for all-normal batches."""
        labels = masks.flatten(1).amax(1) > 0
        if self.synthetic_anomalies and not bool(labels.any()) and self.anomaly_ratio > 0:
            from models.anomaly_synth import synthesize_anomalies

            probability = self.anomaly_ratio / (1.0 + self.anomaly_ratio)
            images, masks = synthesize_anomalies(images, self._synthesis_generator(images.device), probability=probability)
            labels = masks.flatten(1).amax(1) > 0
        return images, labels.long()

    def training_step(self, images: torch.Tensor, masks: torch.Tensor, optimizer: torch.optim.Optimizer) -> float:
        images, labels = self.training_batch(images, masks)
        optimizer.zero_grad(set_to_none=True)
        capsules = self.network.class_capsules(images)
        reconstructions = self.network.reconstruct(capsules, labels)
        reconstruction = ((reconstructions - images) ** 2).flatten(1).sum(1).mean()
        loss = margin_loss(capsule_lengths(capsules), labels) + RECONSTRUCTION_WEIGHT * reconstruction
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    def info(self) -> dict:
        return {"pretrained": self.pretrained, "anomaly_ratio": self.anomaly_ratio,
                "synthetic_anomalies": self.synthetic_anomalies}


@register_model("capsnet_ad", family="detector",
                paper="Piciarelli, Mishra, Foresti: Image anomaly detection with capsule networks and imbalanced "
                      "datasets, ICIAP 2019 (arXiv 1909.02755)",
                input_size=CAPSNET_INPUT,
                description="CapsNet, 2 class capsules (normal/anomalous), margin + reconstruction loss; "
                            "score = capsule-length difference; image-level only")
def capsnet_ad(image_size: int = CAPSNET_INPUT, seed: int = 0, lr: float = 1e-3, anomaly_ratio: float = 0.1,
               synthetic_anomalies: bool = True, routing_iterations: int = 3) -> CapsNetAD:
    return CapsNetAD(image_size=image_size, seed=seed, lr=lr, anomaly_ratio=anomaly_ratio,
                     synthetic_anomalies=synthetic_anomalies, routing_iterations=routing_iterations)
