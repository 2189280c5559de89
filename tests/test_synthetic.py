"""The synthetic set: MVTec layout, binary non-empty masks, byte-identical for a seed, cached by parameters."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app
from datasets import list_categories, open_dataset
from datasets.synthetic import CATEGORIES, DEFECTS, GREY_CATEGORIES, MARKER, ensure_synthetic, generate_synthetic

SMALL = dict(size=32, n_train=2, n_test_good=1, n_test_defective=4)  # one image per defect type


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_byte_identical_different_seed_differs(tmp_path: Path):
    runner = CliRunner()
    for out, seed in (("a", 3), ("b", 3), ("c", 4)):
        result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / out), "--size", "32", "--seed", str(seed),
                                     "--n-train", "2", "--n-test-good", "1", "--n-test-defective", "4"])
        assert result.exit_code == 0, result.output
    a, b, c = (tree_bytes(tmp_path / x) for x in "abc")
    assert len(a) == 4 * (2 + 1 + 4 + 4) + 1  # images, masks and the marker
    assert a == b
    images = [k for k in a if k.endswith(".png") and "ground_truth" not in k]
    assert all(a[k] != c[k] for k in images)  # every image changes with the seed


def test_layout_masks_and_loader(tmp_path: Path):
    root = generate_synthetic(tmp_path, seed=0, **SMALL)
    assert list_categories("synthetic", root) == sorted(CATEGORIES)
    for category in CATEGORIES:
        assert len(CATEGORIES) >= 4 and len(DEFECTS[category]) >= 4
        for defect in DEFECTS[category]:
            mask = np.asarray(Image.open(root / category / "ground_truth" / defect / "000_mask.png"))
            assert set(np.unique(mask)) == {0, 255}, (category, defect)  # binary and never empty
        image = Image.open(root / category / "train/good/000.png")
        assert image.size == (32, 32) and image.mode == ("L" if category in GREY_CATEGORIES else "RGB")
        test = open_dataset("synthetic", root, category, "test", 32)
        assert [s.defect for s in test.samples] == ["good", *sorted(DEFECTS[category])]
        for item in (test[i] for i in range(len(test))):
            assert item["image"].shape == (3, 32, 32) and item["mask"].shape == (32, 32)
            assert (item["mask"].sum() > 0) == (item["label"] == 1)
            assert item["path"].startswith(str(root / category / "test"))


def test_ensure_synthetic_caches_by_parameters(tmp_path: Path):
    root = ensure_synthetic(tmp_path, size=32, seed=1, categories=["nut"], n_train=2, n_test_good=1, n_test_defective=4)
    assert root.parent == tmp_path and (root / MARKER).is_file()
    first = root / "nut/train/good/000.png"
    stamp = first.stat().st_mtime_ns
    assert ensure_synthetic(tmp_path, size=32, seed=1, categories=["nut"], n_train=2, n_test_good=1, n_test_defective=4) == root
    assert first.stat().st_mtime_ns == stamp  # reused, not regenerated
    again = ensure_synthetic(tmp_path, size=32, seed=1, categories=["nut", "screw"], n_train=2, n_test_good=1, n_test_defective=4)
    assert again == root and (root / "screw").is_dir()  # parameters differ: generated again
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != ".lock"]  # no staging folder left


def test_open_dataset_reads_a_generated_tree_directly(tmp_path: Path):
    root = generate_synthetic(tmp_path / "tree", seed=0, categories=["fabric"], **SMALL)
    train = open_dataset("synthetic", root, "fabric", "train", 16)
    assert len(train) == 2 and train[0]["image"].dtype == torch.float32


def test_cli_check_and_preview(tmp_path: Path):
    runner = CliRunner()
    root = generate_synthetic(tmp_path / "tree", seed=0, categories=["screw"], **SMALL)
    result = runner.invoke(app, ["data", "check", "--dataset", "synthetic", "--data-root", str(root)])
    assert result.exit_code == 0, result.output
    assert "all defective" in result.output and "warning" not in result.output
    result = runner.invoke(app, ["data", "check", "--dataset", "mvtec", "--data-root", str(root), "--category", "bottle"])
    assert result.exit_code == 2 and "'bottle'" in result.output and "available: screw" in result.output
    out = tmp_path / "preview.png"
    result = runner.invoke(app, ["data", "preview", "--data-root", str(root), "--out", str(out), "--scale", "1"])
    assert result.exit_code == 0, result.output
    sheet = Image.open(out)
    assert sheet.width > 32 * 8 and sheet.height > 32  # 2 normal + 4 defective x (raw, overlay)


def test_run_and_preview_share_one_synthetic_cache(tmp_path: Path, monkeypatch):
    """Without --data-root, `bench run` and `bench data preview` read the same generated tree, and
    DEFECTBENCH_CACHE moves it (not the working directory)."""
    import datasets.synthetic as synthetic
    from bench.config import RunConfig
    from bench.validate import resolve_data

    tree = generate_synthetic(tmp_path / "tree", seed=0, categories=["screw"], **SMALL)
    asked = []

    def fake_ensure(cache_dir, *args, **kwargs):
        asked.append(Path(cache_dir))
        return tree

    monkeypatch.setattr(synthetic, "ensure_synthetic", fake_ensure)
    monkeypatch.setenv("DEFECTBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    root, categories = resolve_data(RunConfig(suite="accuracy", categories=["screw"]))
    assert root == tree and categories == ["screw"]
    out = tmp_path / "preview.png"
    result = CliRunner().invoke(app, ["data", "preview", "--categories", "screw", "--out", str(out), "--scale", "1"])
    assert result.exit_code == 0, result.output
    assert asked and set(asked) == {tmp_path / "cache" / "synthetic"}
    assert not (tmp_path / ".cache").exists()
    result = CliRunner().invoke(app, ["data", "preview", "--dataset", "mvtec", "--out", str(out)])
    assert result.exit_code == 2 and "--data-root" in result.output


def test_a_run_that_waits_for_the_cache_lock_uses_the_tree_made_meanwhile(tmp_path: Path):
    """Two runs starting at once on an empty cache: the second waits for the first and reads its tree instead of
    deleting it to generate its own."""
    import fcntl
    import threading

    root = tmp_path / "synthetic_32px_seed0"
    got = []
    with open(tmp_path / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first run, generating
        waiter = threading.Thread(target=lambda: got.append(ensure_synthetic(tmp_path, seed=0, categories=["nut"],
                                                                              **SMALL)))
        waiter.start()
        waiter.join(timeout=1.0)
        assert waiter.is_alive() and not got, "the second run did not wait for the lock"
        generate_synthetic(root, seed=0, categories=["nut"], **SMALL)
        made = (root / MARKER).stat().st_mtime_ns
    waiter.join(timeout=60)
    assert got == [root] and (root / MARKER).stat().st_mtime_ns == made  # read, not generated again


def test_categories_rendered_in_parallel_give_the_same_bytes(tmp_path: Path):
    one = generate_synthetic(tmp_path / "one", seed=3, categories=["nut", "fabric"], workers=1, **SMALL)
    two = generate_synthetic(tmp_path / "two", seed=3, categories=["nut", "fabric"], workers=2, **SMALL)
    a, b = tree_bytes(one), tree_bytes(two)
    assert len(a) == 2 * (2 + 1 + 4 + 4) + 1 and a == b
