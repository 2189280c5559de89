"""`bench data check`: open every split of every category, decode every file, count, compare with the
official counts. Malformed trees raise DatasetError; a count that differs from the official one is a
warning (a user may have a partial or extended copy)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from datasets import list_categories, open_dataset
from datasets.btad import BTAD_COUNTS
from datasets.common import DatasetError
from datasets.mvtec import MVTEC_COUNTS


@dataclass
class CountRow:
    category: str
    split: str  # train | test
    defect: str  # a defect type, `good`, or `all defective` (the total the official count is given for)
    count: int
    official: int | None = None

    @property
    def differs(self) -> bool:
        return self.official is not None and self.official != self.count


@dataclass
class CheckResult:
    dataset: str
    root: Path
    rows: list[CountRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def official_counts(name: str, root: Path) -> dict[str, tuple[int, int, int]]:
    """(train good, test good, test defective) per category, for the datasets that have official numbers."""
    if name == "mvtec":
        return MVTEC_COUNTS
    if name == "btad":
        return BTAD_COUNTS
    if name == "synthetic":
        from datasets.synthetic import read_marker

        params = read_marker(root)
        if params:
            return {c: (params["n_train"], params["n_test_good"], params["n_test_defective"]) for c in params["categories"]}
    return {}


def check_dataset(name: str, root: str | Path, category: str | None = None, deep: bool = True) -> CheckResult:
    """Count (and, with deep, fully decode) every split; raises DatasetError on the first malformed file."""
    root = Path(root)
    categories = list_categories(name, root)
    if category is not None and category != "" and category not in categories:
        raise DatasetError(f"category {category!r} not found in {root}; available: {', '.join(categories)}")
    chosen = [category] if category else categories
    official = official_counts(name, root)
    result = CheckResult(name, root)
    for cat in chosen:
        expected = official.get(cat)
        for split in ("train", "test"):
            ds = open_dataset(name, root, cat, split, image_size=1)
            if deep:
                ds.verify()
            counts = ds.counts()
            good = counts.pop("good", 0)
            result.rows.append(CountRow(cat, split, "good", good, None if expected is None else expected[0 if split == "train" else 1]))
            for defect in sorted(counts):
                result.rows.append(CountRow(cat, split, defect, counts[defect]))
            if split == "test":
                result.rows.append(CountRow(cat, split, "all defective", sum(counts.values()), None if expected is None else expected[2]))
        if name in ("mvtec", "btad") and expected is None:
            result.warnings.append(f"{cat}: not an official {name} category; counts not compared")
    for row in result.rows:
        if row.differs:
            result.warnings.append(f"{row.category or '(root)'} {row.split}/{row.defect}: {row.count} images, official count {row.official}")
    return result
