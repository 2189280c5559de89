"""A user's own images in plain folders, after anomalib's `Folder`.

normal_dir holds normal images; abnormal_dir (optional) defective ones, whose masks (optional) sit in
mask_dir under the same stem (`<stem>.png` or `<stem>_mask.png`). Without normal_test_dir, a fixed
fraction of the normal images (normal_split_ratio, chosen by a seeded permutation) is held out for test.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from datasets.common import GOOD, IMAGE_SUFFIXES, DatasetError, Sample, SampleDataset, check_mask_sizes, check_size, check_split, list_images


def _dir_option(name: str, value: str | Path | None, required: bool = False) -> Path | None:
    if value is None:
        if required:
            raise DatasetError(f"{name} is required")
        return None
    path = Path(value)
    if not path.is_dir():
        raise DatasetError(f"{name} {path} does not exist or is not a folder")
    return path


def _mask_for(mask_dir: Path, image: Path) -> Path:
    for stem in (image.stem, f"{image.stem}_mask"):
        for suffix in IMAGE_SUFFIXES:
            if (mask_dir / f"{stem}{suffix}").is_file():
                return mask_dir / f"{stem}{suffix}"
    return mask_dir / f"{image.stem}.png"  # missing: named in the error


class Folder(SampleDataset):
    def __init__(
        self,
        normal_dir: str | Path,
        abnormal_dir: str | Path | None = None,
        mask_dir: str | Path | None = None,
        split: str = "train",
        image_size: int = 256,
        normal_test_dir: str | Path | None = None,
        normal_split_ratio: float = 0.2,
        seed: int = 0,
    ):
        self.split = check_split(split)
        normal = _dir_option("normal_dir", normal_dir, required=True)
        abnormal = _dir_option("abnormal_dir", abnormal_dir)
        masks = _dir_option("mask_dir", mask_dir)
        normal_test = _dir_option("normal_test_dir", normal_test_dir)
        if not 0.0 <= normal_split_ratio < 1.0:
            raise DatasetError(f"normal_split_ratio must be in [0, 1); got {normal_split_ratio}")
        self.has_masks = masks is not None

        normal_files = list_images(normal)
        if normal_test is not None:
            train_files, test_normal_files = normal_files, list_images(normal_test)
        else:
            order = np.random.default_rng(seed).permutation(len(normal_files))
            n_test = int(round(len(normal_files) * normal_split_ratio))
            held_out = set(order[:n_test].tolist())
            train_files = [p for i, p in enumerate(normal_files) if i not in held_out]
            test_normal_files = [p for i, p in enumerate(normal_files) if i in held_out]

        if split == "train":
            samples = [Sample(p, None, 0, GOOD) for p in train_files]
            where = str(normal)
        else:
            samples = [Sample(p, None, 0, GOOD) for p in test_normal_files]
            if abnormal is not None:
                defect = abnormal.name
                samples += [Sample(p, _mask_for(masks, p) if masks else None, 1, defect) for p in list_images(abnormal)]
            where = f"{normal_test or normal} (held-out normal) and {abnormal}"
        super().__init__(samples, check_size(image_size), where)
        check_mask_sizes(self.samples)
