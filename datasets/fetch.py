"""`bench data fetch mvtec|btad`: download, verify the sha256, extract, move into place, check.

Nothing half-done is left behind: the archive is downloaded to a temporary file next to the root, and
extracted into a temporary folder inside the root's parent; only after the checksum matched and the
extraction finished are the extracted entries moved into the root. Any failure removes both temporaries
(and the root itself, if this call created it).
"""
from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from datasets.common import DatasetError


@dataclass(frozen=True)
class Source:
    url: str
    sha256: str
    archive: str  # file name, for messages


SOURCES = {
    # The public record: anomalib's MVTec AD datamodule (DOWNLOAD_INFO) gives this URL and sha256.
    "mvtec": Source(
        "https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f282/download/420938113-1629952094/mvtec_anomaly_detection.tar.xz",
        "cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d",
        "mvtec_anomaly_detection.tar.xz",
    ),
    # BTAD's archive as published by its authors; the sha256 is the one in the reference notes.
    "btad": Source(
        "https://avires.dimi.uniud.it/papers/btad/btad.zip",
        "461c9387e515bfed41ecaae07c50cf6b10def647b36c9e31d239ab2736b10d2a",
        "btad.zip",
    ),
}

# progress(done_bytes, total_bytes or None)
ProgressFn = Callable[[int, "int | None"], None]


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, target: Path, progress: ProgressFn | None = None, timeout: float = 60.0) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(target, "wb") as out:
            total = response.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            done = 0
            while block := response.read(1 << 20):
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise DatasetError(f"--url {url}: download failed: {e}") from None


def extract(archive: Path, into: Path) -> None:
    """Extract a .zip or a tar (any compression) into `into`, refusing entries that leave it."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                base = into.resolve()
                for name in z.namelist():
                    if not (into / name).resolve().is_relative_to(base):
                        raise DatasetError(f"archive {archive.name}: entry {name!r} points outside the extraction folder")
                z.extractall(into)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                t.extractall(into, filter="data")  # the data filter refuses absolute paths, links out, devices
        else:
            raise DatasetError(f"archive {archive.name} is neither a zip nor a tar file")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise DatasetError(f"archive {archive.name} could not be extracted: {e}") from None


def fetch(name: str, root: str | Path, url: str | None = None, sha256: str | None = None, progress: ProgressFn | None = None) -> Path:
    """Download the archive of `name` (or `url`), verify it, extract it into `root`; returns root.

    The archive's top-level entries end up directly in root (MVTec: the category folders; BTAD:
    `BTech_Dataset_transformed/`). An entry that already exists in root is an error, before anything moves.
    """
    if name not in SOURCES:
        raise DatasetError(f"cannot fetch {name!r}; fetchable: {', '.join(SOURCES)}")
    source = SOURCES[name]
    url = url or source.url
    expected = (sha256 or source.sha256).lower()
    root = Path(root)
    created_root = not root.exists()
    parent = root.parent
    parent.mkdir(parents=True, exist_ok=True)
    archive = Path(tempfile.mkstemp(prefix=f".{name}-", suffix=".part", dir=parent)[1])
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-extract-", dir=parent))
    moved: list[Path] = []
    try:
        download(url, archive, progress)
        actual = sha256_of(archive)
        if actual != expected:
            raise DatasetError(f"sha256 mismatch for {url}: expected {expected}, got {actual}; nothing was extracted")
        extract(archive, staging)
        entries = sorted(staging.iterdir())
        if not entries:
            raise DatasetError(f"archive from {url} is empty")
        root.mkdir(parents=True, exist_ok=True)
        clashes = [e.name for e in entries if (root / e.name).exists()]
        if clashes:
            raise DatasetError(f"--root {root} already holds {clashes[0]}; remove it or choose another root")
        for entry in entries:
            shutil.move(str(entry), str(root / entry.name))
            moved.append(root / entry.name)
        return root
    except BaseException:
        for path in moved:  # undo a partial move (e.g. a full disk half-way)
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        if created_root and root.exists() and not any(root.iterdir()):
            root.rmdir()
        raise
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
