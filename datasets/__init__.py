"""Datasets: MVTec AD, BTAD, a user's folders, and the embedded synthetic industrial set.

`open_dataset(name, root, category, split, image_size)` gives a torch Dataset of items (see
`datasets.common`); `list_categories(name, root)` names what a root holds. Every malformed tree or
option raises `DatasetError` (a ValueError) with a one-line message naming the file or option.
"""
from __future__ import annotations

from pathlib import Path

from datasets.btad import BTAD, btad_products
from datasets.common import DatasetError, SampleDataset
from datasets.folder import Folder
from datasets.mvtec import MVTecAD, mvtec_categories

DATASET_NAMES = ("mvtec", "btad", "folder", "synthetic")


def _check_name(name: str) -> str:
    if name not in DATASET_NAMES:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    return name


def folder_categories(root: str | Path) -> list[str]:
    """A folder root is either one dataset (`good/` in it: category "") or one sub-folder per category."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data root {root} does not exist or is not a folder")
    if (root / "good").is_dir():
        return [""]
    found = sorted(p.name for p in root.iterdir() if (p / "good").is_dir())
    if not found:
        raise DatasetError(f"{root} is not a folder dataset: expected {root}/good/ (normal images) or {root}/<category>/good/")
    return found


def open_folder(root: str | Path, category: str | None, split: str, image_size: int) -> Folder:
    """The folder convention of `--dataset folder`: <root>[/<category>]/good/ (normal), optional defect/
    (defective images), mask/ (their masks) and test_good/ (normal test images; else 20% of good/ is held out)."""
    root = Path(root)
    categories = folder_categories(root)
    if category and category not in categories:
        raise DatasetError(f"category {category!r} not found in {root}; available: {', '.join(c or '(root)' for c in categories)}")
    base = root / category if category else root
    if categories != [""] and not category:
        raise DatasetError(f"--category is required for {root}; available: {', '.join(categories)}")

    def optional(name: str) -> Path | None:
        return base / name if (base / name).is_dir() else None

    return Folder(base / "good", optional("defect"), optional("mask"), split=split, image_size=image_size, normal_test_dir=optional("test_good"))


def list_categories(name: str, root: str | Path | None = None) -> list[str]:
    """Categories (products, for BTAD) under `root`; for `synthetic` without a root, the generator's own."""
    _check_name(name)
    if name == "mvtec":
        return mvtec_categories(root)
    if name == "btad":
        return btad_products(root)
    if name == "folder":
        return folder_categories(root)
    from datasets import synthetic

    marker = synthetic.read_marker(root) if root is not None else None
    return list(marker["categories"]) if marker else list(synthetic.CATEGORIES)


def open_dataset(name: str, root: str | Path, category: str | None, split: str = "train", image_size: int = 256,
                 resize: int | None = None, test_subset: int | None = None) -> SampleDataset:
    """One category and split of a dataset as a torch Dataset of items; `resize` and `test_subset` (the test
    split only) as `SampleDataset.use_pipeline`.

    For `synthetic`, `root` is either a generated tree (it holds `synthetic.json`) or a cache folder into
    which the default set (128 px, seed 0) is generated on first use.
    """
    _check_name(name)
    if name == "mvtec":
        dataset = MVTecAD(root, category, split, image_size)
    elif name == "btad":
        dataset = BTAD(root, category, split, image_size)
    elif name == "folder":
        dataset = open_folder(root, category, split, image_size)
    else:
        from datasets import synthetic

        tree = Path(root) if synthetic.read_marker(root) else synthetic.ensure_synthetic(root)
        dataset = MVTecAD(tree, category, split, image_size)
    return dataset.use_pipeline(resize, test_subset if split == "test" else None)


__all__ = [
    "BTAD",
    "DATASET_NAMES",
    "DatasetError",
    "Folder",
    "MVTecAD",
    "list_categories",
    "open_dataset",
]
