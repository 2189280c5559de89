"""BTAD, beanTech Anomaly Detection (Mishra et al. 2021), in the layout its archive extracts to.

    <root>/BTech_Dataset_transformed/<product>/train/ok/0000.bmp     (the root may also be that folder itself)
    <root>/.../<product>/test/ok/, test/ko/
    <root>/.../<product>/ground_truth/ko/0000.png                    (.png for 01 and 02, .bmp for 03; 255 = defect)
Normal images get defect `good` (the contract's name), defective ones `ko`.
"""
from __future__ import annotations

from pathlib import Path

from datasets.common import GOOD, IMAGE_SUFFIXES, DatasetError, Sample, SampleDataset, check_mask_sizes, check_size, check_split, list_images

BTAD_FOLDER = "BTech_Dataset_transformed"
# Official counts per product: (train ok, test ok, test ko), as the folders hold them.
BTAD_COUNTS: dict[str, tuple[int, int, int]] = {"01": (400, 21, 49), "02": (399, 30, 200), "03": (1000, 400, 41)}


def btad_base(root: str | Path) -> Path:
    """The folder that holds the product folders: `root/BTech_Dataset_transformed` if present, else root."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data root {root} does not exist or is not a folder")
    return root / BTAD_FOLDER if (root / BTAD_FOLDER).is_dir() else root


def btad_products(root: str | Path) -> list[str]:
    base = btad_base(root)
    found = sorted(p.name for p in base.iterdir() if p.is_dir() and ((p / "train" / "ok").is_dir() or (p / "test").is_dir()))
    if not found:
        raise DatasetError(f"{root} is not a BTAD layout: no <product>/train/ok or <product>/test folder in it (nor under {BTAD_FOLDER}/)")
    return found


def _mask_for(ground_truth: Path, image: Path) -> Path:
    for suffix in (".png", ".bmp"):
        if (ground_truth / f"{image.stem}{suffix}").is_file():
            return ground_truth / f"{image.stem}{suffix}"
    for other in sorted(ground_truth.glob(f"{image.stem}.*")):
        if other.suffix.lower() in IMAGE_SUFFIXES:
            return other
    return ground_truth / f"{image.stem}.png"  # missing: named in the error


def btad_samples(root: str | Path, product: str, split: str) -> list[Sample]:
    products = btad_products(root)
    if product not in products:
        raise DatasetError(f"product {product!r} not found in {root}; available: {', '.join(products)}")
    base = btad_base(root) / product
    if split == "train":
        return [Sample(p, None, 0, GOOD) for p in list_images(base / "train" / "ok")]
    samples = [Sample(p, None, 0, GOOD) for p in list_images(base / "test" / "ok")]
    samples += [Sample(p, _mask_for(base / "ground_truth" / "ko", p), 1, "ko") for p in list_images(base / "test" / "ko")]
    return samples


class BTAD(SampleDataset):
    """One product and split of a BTAD tree; validates the split's files on construction."""

    def __init__(self, root: str | Path, product: str, split: str = "train", image_size: int = 256):
        self.root = Path(root)
        self.product = product
        self.split = check_split(split)
        samples = btad_samples(self.root, product, split)
        where = btad_base(self.root) / product / ("train/ok" if split == "train" else "test")
        super().__init__(samples, check_size(image_size), str(where))
        check_mask_sizes(self.samples)
