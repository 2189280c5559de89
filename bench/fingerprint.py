"""A fingerprint of the data an accuracy record was evaluated on, so that `bench compare` judges two
records only when they saw the same test images.

For the generated synthetic set, the generator's version and parameters define every byte (it is
deterministic), so they are the fingerprint; for any other dataset, a hash over the test files' paths
(relative to the dataset root) and bytes, masks included.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

DIGITS = 16


def synthetic_fingerprint(marker: dict, category: str) -> str:
    text = json.dumps({"generator": marker, "category": category}, sort_keys=True)
    return "synthetic:" + hashlib.sha256(text.encode()).hexdigest()[:DIGITS]


def files_fingerprint(root: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    root = Path(root).resolve()
    for path in sorted({Path(f).resolve() for f in files}):
        try:
            name = path.relative_to(root).as_posix()
        except ValueError:
            name = path.as_posix()
        digest.update(name.encode() + b"\0")
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return "files:" + digest.hexdigest()[:DIGITS]


def test_set_fingerprint(dataset: str, root: Path, category: str, test_set) -> str:
    """The fingerprint of one category's test split (`test_set.samples` lists its image and mask files)."""
    if dataset == "synthetic":
        from datasets.synthetic import read_marker

        marker = read_marker(root)
        if marker:
            return synthetic_fingerprint(marker, category)
    files = [s.image for s in test_set.samples] + [s.mask for s in test_set.samples if s.mask is not None]
    return files_fingerprint(root, files)
