"""The published torchvision ImageNet files the methods' authors started from, and a check that a local file
is one of them. Nothing here downloads: `--weights` / `--vgg-weights` name files the user already has.

Facts: torchvision names each weight file `<arch>-<first 8 hex digits of the
file's sha256>.pth`, and `torch.hub.download_url_to_file` checks a download against that prefix (torch/hub.py,
`hash_prefix`). The full sha256 of these files is not documented by torchvision that we could find, so the
8-digit prefix is the fact recorded here and `check_weights_file` compares the file's sha256 with it.

- PIADE (`capsmod.py`: `torchvision.models.resnet50(pretrained=True)`; `vgg_percep_loss.py`:
  `torchvision.models.vgg11(pretrained=True).features[:4]`) ran in January 2020. `pretrained=True` means
  `ResNet50_Weights.IMAGENET1K_V1` and `VGG11_Weights.IMAGENET1K_V1` in today's torchvision
  (resnet50-0676ba61.pth, vgg11-8a719046.pth). The 2020 torchvision downloaded resnet50-19c8e357.pth and
  vgg11-bbd30ac9.pth instead: the same weights, re-uploaded later with the newer serialisation
  (pytorch/vision issue 2068 for the ResNets, pull request 3851 for VGG11). Either file is the authors' start.
- `ResNet50_Weights.IMAGENET1K_V2` (resnet50-11ad3fa6.pth) is a later, differently trained model: NOT the
  authors'. It is listed so that the check can say so.
- The pyramidal autoencoder's trunk (ours, after the PIADE figure) is a ResNet-18: IMAGENET1K_V1,
  resnet18-f37072fd.pth (the older upload: resnet18-5c106cde.pth).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

HASH_PREFIX_DIGITS = 8


@dataclass(frozen=True)
class PublishedFile:
    architecture: str  # "resnet50", "vgg11", "resnet18"
    weights: str  # the torchvision weight enum it is, e.g. "ResNet50_Weights.IMAGENET1K_V1"
    file_name: str  # as torchvision publishes it: <arch>-<sha256 prefix>.pth
    authors: bool  # what the methods' authors' `pretrained=True` loaded (either upload of it)
    note: str = ""

    @property
    def sha256_prefix(self) -> str:
        return self.file_name.rsplit("-", 1)[1].split(".")[0]


PUBLISHED_FILES = (
    PublishedFile("resnet50", "ResNet50_Weights.IMAGENET1K_V1", "resnet50-0676ba61.pth", True),
    PublishedFile("resnet50", "ResNet50_Weights.IMAGENET1K_V1", "resnet50-19c8e357.pth", True,
                  "the 2020 upload of the same weights (pytorch/vision issue 2068)"),
    PublishedFile("resnet50", "ResNet50_Weights.IMAGENET1K_V2", "resnet50-11ad3fa6.pth", False,
                  "a later training recipe, not the weights PIADE's authors used"),
    PublishedFile("vgg11", "VGG11_Weights.IMAGENET1K_V1", "vgg11-8a719046.pth", True),
    PublishedFile("vgg11", "VGG11_Weights.IMAGENET1K_V1", "vgg11-bbd30ac9.pth", True,
                  "the 2020 upload of the same weights (pytorch/vision pull request 3851)"),
    PublishedFile("resnet18", "ResNet18_Weights.IMAGENET1K_V1", "resnet18-f37072fd.pth", True),
    PublishedFile("resnet18", "ResNet18_Weights.IMAGENET1K_V1", "resnet18-5c106cde.pth", True,
                  "the 2020 upload of the same weights (pytorch/vision issue 2068)"),
)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class WeightsCheck:
    path: str
    sha256: str
    match: PublishedFile | None

    def expected(self, architecture: str) -> bool:
        """Whether the file is the authors' starting point for `architecture`."""
        return self.match is not None and self.match.architecture == architecture and self.match.authors

    def describe(self) -> str:
        if self.match is None:
            return (f"{self.path}: sha256 {self.sha256[:16]}...: not one of torchvision's published files we know "
                    f"({', '.join(f.file_name for f in PUBLISHED_FILES)})")
        f = self.match
        verdict = "the authors' starting point" if f.authors else "NOT the authors' starting point"
        note = f"; {f.note}" if f.note else ""
        return f"{self.path}: torchvision {f.weights} ({f.file_name}, sha256 begins {f.sha256_prefix}): {verdict}{note}"


def check_weights_file(path: str | Path) -> WeightsCheck:
    """The published file whose sha256 prefix the file's sha256 starts with, if any; never downloads."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    sha = file_sha256(path)
    match = next((f for f in PUBLISHED_FILES if sha.startswith(f.sha256_prefix)), None)
    return WeightsCheck(str(path), sha, match)
