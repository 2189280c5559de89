"""`bench data fetch` against archives served on 127.0.0.1: verify, extract, check; a bad checksum leaves nothing."""
from __future__ import annotations

import functools
import hashlib
import io
import tarfile
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import box_mask, solid, write_image
from typer.testing import CliRunner

from bench.cli import app
from datasets import DatasetError
from datasets.fetch import fetch


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def served(tmp_path: Path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def btad_zip(path: Path, src: Path) -> str:
    """A BTAD-shaped zip (one product, 48x48 images) like the real archive; returns its sha256."""
    p = src / "BTech_Dataset_transformed" / "02"
    write_image(p / "train/ok/0000.png", solid(48, 48))
    write_image(p / "test/ok/0000.png", solid(48, 48))
    write_image(p / "test/ko/0000.png", solid(48, 48, (0, 0, 0)))
    write_image(p / "ground_truth/ko/0000.png", box_mask(48, 48, 0, 0, 8, 8))
    with zipfile.ZipFile(path, "w") as z:
        for f in sorted(src.rglob("*")):
            z.write(f, f.relative_to(src).as_posix())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_verifies_extracts_and_checks(tmp_path: Path, served):
    www, base = served
    digest = btad_zip(www / "btad.zip", tmp_path / "src")
    root = tmp_path / "data" / "btad"
    result = CliRunner().invoke(app, ["data", "fetch", "btad", "--root", str(root), "--url", f"{base}/btad.zip", "--sha256", digest])
    assert result.exit_code == 0, result.output
    assert (root / "BTech_Dataset_transformed/02/ground_truth/ko/0000.png").is_file()
    assert "all defective" in result.output and "official count 399" in result.output  # the check ran and compared
    assert sorted(p.name for p in root.parent.iterdir()) == ["btad"]  # no temporary file or folder left


def test_checksum_mismatch_leaves_nothing(tmp_path: Path, served):
    www, base = served
    btad_zip(www / "btad.zip", tmp_path / "src")
    root = tmp_path / "data" / "btad"
    result = CliRunner().invoke(app, ["data", "fetch", "btad", "--root", str(root), "--url", f"{base}/btad.zip"])  # official sha256
    assert result.exit_code == 1
    assert "sha256 mismatch" in result.output and "461c9387e515bfed" in result.output
    assert not root.exists()
    assert list((tmp_path / "data").iterdir()) == []  # no .part archive, no extraction folder


def test_fetch_tar_and_refuse_existing_entries(tmp_path: Path, served):
    www, base = served
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as t:
        payload = b"hello"
        info = tarfile.TarInfo("bottle/readme.txt")
        info.size = len(payload)
        t.addfile(info, io.BytesIO(payload))
    (www / "mvtec.tar.gz").write_bytes(buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    root = tmp_path / "mvtec"
    fetch("mvtec", root, url=f"{base}/mvtec.tar.gz", sha256=digest)
    assert (root / "bottle/readme.txt").read_bytes() == b"hello"
    with pytest.raises(DatasetError) as e:  # a second fetch into the same root would overwrite: refused, nothing moved
        fetch("mvtec", root, url=f"{base}/mvtec.tar.gz", sha256=digest)
    assert "--root" in str(e.value) and "bottle" in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mvtec", "www"]


def test_unreachable_url_is_named(tmp_path: Path, served):
    _, base = served
    with pytest.raises(DatasetError) as e:
        fetch("btad", tmp_path / "x", url=f"{base}/missing.zip")
    assert "--url" in str(e.value) and "missing.zip" in str(e.value)
    assert not (tmp_path / "x").exists()
