"""What every loader shares: the error type, image/mask reading, and the item contract.

An item is a dict: `image` float32 [3,H,W] in [0,1] (grey stacked to 3 channels, bilinear resize to
image_size x image_size), `mask` float32 [H,W] in {0,1} (nearest resize; zeros for normal images),
`label` int (0 normal, 1 defective), `defect` str (`good` for normal), `path` str.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")
GOOD = "good"


class DatasetError(ValueError):
    """A malformed dataset tree or option; the message is one line and names the file or option."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # one line, whatever the caller wrote


@dataclass(frozen=True)
class Sample:
    """One file of a split, before reading: enough to build the item and to count."""

    image: Path
    mask: Path | None  # None for normal images (and for abnormal images of a Folder without masks)
    label: int
    defect: str


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name (hidden files skipped)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def image_size_of(path: Path) -> tuple[int, int]:
    """(width, height) from the file header; raises DatasetError if it is not a readable image."""
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DatasetError(f"unreadable image {path}: {type(e).__name__}: {e}") from None


def decode(path: Path) -> Image.Image:
    """Fully decode a file (so a truncated file fails here, not later); raises DatasetError naming it."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DatasetError(f"unreadable or truncated image {path}: {type(e).__name__}: {e}") from None


def check_mask_sizes(samples: list[Sample]) -> None:
    """Every mask exists, reads, and has its image's size (header reads only: cheap)."""
    for s in samples:
        image_wh = image_size_of(s.image)
        if s.mask is None:
            continue
        if not s.mask.is_file():
            raise DatasetError(f"defect image {s.image} has no mask: expected {s.mask}")
        mask_wh = image_size_of(s.mask)
        if mask_wh != image_wh:
            raise DatasetError(f"mask {s.mask} is {mask_wh[0]}x{mask_wh[1]} but its image {s.image} is {image_wh[0]}x{image_wh[1]}")


def _crop_box(resize: int, image_size: int) -> tuple[int, int, int, int]:
    """The centre image_size square of a resize x resize image, as torchvision's CenterCrop places it."""
    top = int(round((resize - image_size) / 2.0))
    return top, top, top + image_size, top + image_size


def load_image(path: Path, image_size: int, resize: int | None = None) -> torch.Tensor:
    """float32 [3,S,S] in [0,1]; grey (and palette, 16-bit, alpha) images become RGB; bilinear resize.
    With `resize` R: bilinear resize to R x R, then the centre S x S crop (the authors' Resize + CenterCrop)."""
    im = decode(path)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float32)
        arr = arr / (65535.0 if arr.max() > 255 else 255.0)
        im = Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    im = im.convert("RGB")
    if resize is not None:
        if im.size != (resize, resize):
            im = im.resize((resize, resize), Image.Resampling.BILINEAR)
        im = im.crop(_crop_box(resize, image_size))
    elif im.size != (image_size, image_size):
        im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)
    arr = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


def load_mask(path: Path | None, image_size: int, resize: int | None = None) -> torch.Tensor:
    """float32 [S,S] in {0,1} (any non-zero pixel is defect); nearest resize keeps it binary; `resize` as
    `load_image`."""
    if path is None:
        return torch.zeros(image_size, image_size, dtype=torch.float32)
    im = decode(path).convert("L")
    if resize is not None:
        if im.size != (resize, resize):
            im = im.resize((resize, resize), Image.Resampling.NEAREST)
        im = im.crop(_crop_box(resize, image_size))
    elif im.size != (image_size, image_size):
        im = im.resize((image_size, image_size), Image.Resampling.NEAREST)
    return torch.from_numpy((np.asarray(im) > 0).astype(np.float32))


class SampleDataset(torch.utils.data.Dataset):
    """A list of samples read into items; subclasses only build the list."""

    def __init__(self, samples: list[Sample], image_size: int, where: str):
        if not samples:
            raise DatasetError(f"empty split: no images in {where}")
        self.samples = samples
        self.image_size = int(image_size)
        self.resize: int | None = None  # resize to this side, then centre-crop image_size (`use_pipeline`)

    def use_pipeline(self, resize: int | None = None, test_subset: int | None = None) -> "SampleDataset":
        """The authors' input pipeline and test protocol, where a recipe asks for them (docs/design/recipes.md):
        `resize` R > image_size: resize to R x R and keep the centre crop; `test_subset` N: keep only the first
        N normal and the first N defective samples in listing order (PIADE's `Testing_mvtech.py` scores 5
        batches of 3 from each loader, i.e. at most 15 + 15, defect folders in directory order)."""
        if resize is not None:
            if int(resize) < self.image_size:
                raise DatasetError(f"resize {resize} is smaller than the crop {self.image_size}")
            self.resize = int(resize)
        if test_subset is not None:
            normal = [s for s in self.samples if not s.label][: int(test_subset)]
            defective = [s for s in self.samples if s.label][: int(test_subset)]
            self.samples = normal + defective
        return self

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        s = self.samples[index]
        return {
            "image": load_image(s.image, self.image_size, self.resize),
            "mask": load_mask(s.mask, self.image_size, self.resize),
            "label": int(s.label),
            "defect": s.defect,
            "path": str(s.image),
        }

    def counts(self) -> dict[str, int]:
        """Images per defect type (`good` for normal)."""
        out: dict[str, int] = {}
        for s in self.samples:
            out[s.defect] = out.get(s.defect, 0) + 1
        return out

    def verify(self) -> None:
        """Decode every image and mask in full (catches truncated files); raises DatasetError naming one."""
        for s in self.samples:
            decode(s.image)
            if s.mask is not None:
                decode(s.mask)


def check_split(split: str, allowed: tuple[str, ...] = ("train", "test")) -> str:
    if split not in allowed:
        raise DatasetError(f"split must be one of {', '.join(allowed)}; got {split!r}")
    return split


def check_size(image_size: int) -> int:
    if int(image_size) < 1:
        raise DatasetError(f"image_size must be a positive number of pixels; got {image_size!r}")
    return int(image_size)
