"""MVTec AD (Bergmann et al. 2019) in its official layout; the synthetic set uses the same layout.

    <root>/<category>/train/good/000.png
    <root>/<category>/test/good/000.png
    <root>/<category>/test/<defect>/000.png
    <root>/<category>/ground_truth/<defect>/000_mask.png   (255 = defect)
"""
from __future__ import annotations

from pathlib import Path

from datasets.common import GOOD, DatasetError, Sample, SampleDataset, check_mask_sizes, check_size, check_split, list_images

# Official image counts per category: (train good, test good, test defective), from the dataset's own files.
MVTEC_COUNTS: dict[str, tuple[int, int, int]] = {
    "bottle": (209, 20, 63),
    "cable": (224, 58, 92),
    "capsule": (219, 23, 109),
    "carpet": (280, 28, 89),
    "grid": (264, 21, 57),
    "hazelnut": (391, 40, 70),
    "leather": (245, 32, 92),
    "metal_nut": (220, 22, 93),
    "pill": (267, 26, 141),
    "screw": (320, 41, 119),
    "tile": (230, 33, 84),
    "toothbrush": (60, 12, 30),
    "transistor": (213, 60, 40),
    "wood": (247, 19, 60),
    "zipper": (240, 32, 119),
}


def mvtec_categories(root: str | Path) -> list[str]:
    """Category folders under `root` (those with a train/ or test/ folder); raises if there are none."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data root {root} does not exist or is not a folder")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and ((p / "train").is_dir() or (p / "test").is_dir()))
    if not found:
        raise DatasetError(f"{root} is not an MVTec AD layout: no <category>/train/good or <category>/test folder in it")
    return found


def find_mask(ground_truth: Path, image: Path) -> Path:
    """The mask of a defect image: `<stem>_mask.png` (or another image suffix if that is what exists)."""
    expected = ground_truth / f"{image.stem}_mask.png"
    if expected.is_file():
        return expected
    for other in sorted(ground_truth.glob(f"{image.stem}_mask.*")):
        if other.suffix.lower() in (".png", ".bmp", ".tif", ".tiff", ".jpg"):
            return other
    return expected  # missing: check_mask_sizes names it


def mvtec_samples(root: str | Path, category: str, split: str) -> list[Sample]:
    """The files of one split, in a fixed order (good first, then defect types by name)."""
    root = Path(root)
    categories = mvtec_categories(root)
    if category not in categories:
        raise DatasetError(f"category {category!r} not found in {root}; available: {', '.join(categories)}")
    base = root / category
    if split == "train":
        return [Sample(p, None, 0, GOOD) for p in list_images(base / "train" / GOOD)]
    test = base / "test"
    if not test.is_dir():
        return []
    samples = [Sample(p, None, 0, GOOD) for p in list_images(test / GOOD)]
    for defect_dir in sorted(d for d in test.iterdir() if d.is_dir() and d.name != GOOD):
        gt = base / "ground_truth" / defect_dir.name
        samples += [Sample(p, find_mask(gt, p), 1, defect_dir.name) for p in list_images(defect_dir)]
    return samples


class MVTecAD(SampleDataset):
    """One category and split of an MVTec-AD-layout tree; validates the split's files on construction."""

    def __init__(self, root: str | Path, category: str, split: str = "train", image_size: int = 256):
        self.root = Path(root)
        self.category = category
        self.split = check_split(split)
        samples = mvtec_samples(self.root, category, split)
        where = self.root / category / ("train/good" if split == "train" else "test")
        super().__init__(samples, check_size(image_size), str(where))
        check_mask_sizes(self.samples)
