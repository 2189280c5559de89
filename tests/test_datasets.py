"""The loaders read the official layouts exactly, and refuse broken trees with a one-line error naming the culprit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import box_mask, solid, write_image

from datasets import BTAD, DatasetError, Folder, MVTecAD, list_categories, open_dataset
from datasets.check import check_dataset


def assert_item_contract(item: dict, size: int) -> None:
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, size, size)
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert item["mask"].dtype == torch.float32 and item["mask"].shape == (size, size)
    assert set(torch.unique(item["mask"]).tolist()) <= {0.0, 1.0}
    assert isinstance(item["label"], int) and isinstance(item["defect"], str) and isinstance(item["path"], str)


# -- MVTec AD -------------------------------------------------------------------------------------
def test_mvtec_train_items(mvtec_root: Path):
    ds = MVTecAD(mvtec_root, "widget", "train", image_size=32)
    assert len(ds) == 2
    rgb, grey = ds[0], ds[1]
    for item in (rgb, grey):
        assert_item_contract(item, 32)
        assert item["label"] == 0 and item["defect"] == "good" and item["mask"].sum() == 0
    assert rgb["path"] == str(mvtec_root / "widget/train/good/000.png")
    torch.testing.assert_close(rgb["image"][:, 5, 7], torch.tensor([200, 100, 50]) / 255.0)
    # grey becomes three identical channels
    assert torch.equal(grey["image"][0], grey["image"][1]) and torch.equal(grey["image"][1], grey["image"][2])
    torch.testing.assert_close(grey["image"][0, 0, 0], torch.tensor(128 / 255.0))


def test_mvtec_test_items_with_mask(mvtec_root: Path):
    ds = open_dataset("mvtec", mvtec_root, "widget", "test", 16)
    assert [(s.defect, s.label) for s in ds.samples] == [("good", 0), ("scratch", 1)]
    good, bad = ds[0], ds[1]
    assert_item_contract(good, 16)
    assert_item_contract(bad, 16)
    assert good["mask"].sum() == 0 and good["path"].endswith("test/good/000.png")
    assert bad["label"] == 1 and bad["defect"] == "scratch" and bad["path"].endswith("test/scratch/000.png")
    expected = torch.zeros(16, 16)
    expected[:, :8] = 1.0  # the left half, nearest-resized from 64 to 16
    assert torch.equal(bad["mask"], expected)
    assert ds.counts() == {"good": 1, "scratch": 1}


def test_mvtec_categories(mvtec_root: Path):
    assert list_categories("mvtec", mvtec_root) == ["other", "widget"]


# -- BTAD -----------------------------------------------------------------------------------------
def test_btad_product_01_large_bmp_png_masks(btad_root: Path):
    train = BTAD(btad_root, "01", "train", image_size=64)
    item = train[0]
    assert_item_contract(item, 64)
    assert item["label"] == 0 and item["defect"] == "good" and item["path"].endswith("01/train/ok/0000.bmp")
    torch.testing.assert_close(item["image"][:, 10, 10], torch.full((3,), 90 / 255.0))

    test = BTAD(btad_root, "01", "test", image_size=64)
    assert [s.defect for s in test.samples] == ["good", "ko"]
    ko = test[1]
    assert_item_contract(ko, 64)
    assert ko["label"] == 1 and ko["path"].endswith("01/test/ko/0001.bmp")
    assert test.samples[1].mask.name == "0001.png"
    assert torch.equal(ko["mask"][32:], torch.ones(32, 64)) and ko["mask"][:32].sum() == 0  # bottom half


def test_btad_product_03_grey_nonsquare_bmp_masks(btad_root: Path):
    test = open_dataset("btad", btad_root / "BTech_Dataset_transformed", "03", "test", 40)  # the inner folder also works
    ko = test[1]
    assert_item_contract(ko, 40)
    assert test.samples[1].mask.suffix == ".bmp"
    assert torch.equal(ko["image"][0], ko["image"][2])  # grey to 3 channels
    assert torch.equal(ko["mask"][:, 20:], torch.ones(40, 20)) and ko["mask"][:, :20].sum() == 0  # right half
    assert list_categories("btad", btad_root) == ["01", "03"]


# -- Folder ---------------------------------------------------------------------------------------
def test_folder_with_masks_and_held_out_normals(tmp_path: Path):
    for i in range(5):
        write_image(tmp_path / "good" / f"n{i}.png", solid(20, 20, (i * 40, 0, 0)))
    write_image(tmp_path / "defect" / "d0.png", solid(20, 20))
    write_image(tmp_path / "mask" / "d0_mask.png", box_mask(20, 20, 0, 0, 10, 20))
    train = Folder(tmp_path / "good", tmp_path / "defect", tmp_path / "mask", split="train", image_size=10)
    test = Folder(tmp_path / "good", tmp_path / "defect", tmp_path / "mask", split="test", image_size=10)
    assert len(train) == 4 and len(test) == 2  # 20% of 5 normals held out, plus the defect
    assert {s.image for s in train.samples}.isdisjoint(s.image for s in test.samples)
    bad = test[1]
    assert_item_contract(bad, 10)
    assert bad["label"] == 1 and bad["defect"] == "defect" and bad["mask"][:5].all() and bad["mask"][5:].sum() == 0
    via_api = open_dataset("folder", tmp_path, None, "test", 10)
    assert [s.image for s in via_api.samples] == [s.image for s in test.samples]


# -- malformed trees: each error is one line and names the file or option --------------------------
def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    assert isinstance(error.value, ValueError)
    return message


def test_defect_image_without_mask(mvtec_root: Path):
    (mvtec_root / "widget/ground_truth/scratch/000_mask.png").unlink()
    with pytest.raises(DatasetError) as e:
        MVTecAD(mvtec_root, "widget", "test", 16)
    assert "widget/test/scratch/000.png" in one_line(e) and "000_mask.png" in str(e.value)


def test_mask_size_differs(mvtec_root: Path):
    write_image(mvtec_root / "widget/ground_truth/scratch/000_mask.png", box_mask(32, 32, 0, 0, 4, 4))
    with pytest.raises(DatasetError) as e:
        MVTecAD(mvtec_root, "widget", "test", 16)
    assert "ground_truth/scratch/000_mask.png" in one_line(e) and "32x32" in str(e.value) and "64x64" in str(e.value)


def test_unreadable_image(mvtec_root: Path):
    (mvtec_root / "widget/train/good/001.png").write_bytes(b"not an image at all")
    with pytest.raises(DatasetError) as e:
        MVTecAD(mvtec_root, "widget", "train", 16)
    assert "train/good/001.png" in one_line(e)


def test_truncated_image(mvtec_root: Path):
    path = mvtec_root / "widget/train/good/000.png"
    write_image(path, np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # header intact, pixel data cut
    ds = MVTecAD(mvtec_root, "widget", "train", 16)  # the header still reads
    with pytest.raises(DatasetError) as e:
        ds[0]
    assert "train/good/000.png" in one_line(e) and "truncated" in str(e.value)
    with pytest.raises(DatasetError) as e:
        check_dataset("mvtec", mvtec_root, "widget")
    assert "train/good/000.png" in one_line(e)


def test_empty_split(mvtec_root: Path):
    with pytest.raises(DatasetError) as e:
        MVTecAD(mvtec_root, "other", "train", 16)
    assert "empty split" in one_line(e) and str(mvtec_root / "other" / "train/good") in str(e.value)


def test_category_that_does_not_exist(mvtec_root: Path, btad_root: Path):
    with pytest.raises(DatasetError) as e:
        MVTecAD(mvtec_root, "bottle", "train", 16)
    assert "'bottle'" in one_line(e) and "available: other, widget" in str(e.value)
    with pytest.raises(DatasetError) as e:
        BTAD(btad_root, "02", "train", 16)
    assert "'02'" in one_line(e) and "available: 01, 03" in str(e.value)


def test_root_that_is_not_the_layout(tmp_path: Path):
    (tmp_path / "random" / "stuff").mkdir(parents=True)
    with pytest.raises(DatasetError) as e:
        MVTecAD(tmp_path / "random", "stuff", "train", 16)
    assert str(tmp_path / "random") in one_line(e) and "not an MVTec AD layout" in str(e.value)
    with pytest.raises(DatasetError) as e:
        BTAD(tmp_path / "random", "01", "train", 16)
    assert "not a BTAD layout" in one_line(e)
    with pytest.raises(DatasetError) as e:
        MVTecAD(tmp_path / "missing", "x", "train", 16)
    assert str(tmp_path / "missing") in one_line(e)


def test_bad_options_are_named(mvtec_root: Path, tmp_path: Path):
    with pytest.raises(DatasetError) as e:
        MVTecAD(mvtec_root, "widget", "val", 16)
    assert "split" in one_line(e) and "'val'" in str(e.value)
    with pytest.raises(DatasetError) as e:
        open_dataset("visa", mvtec_root, "widget", "train", 16)
    assert "'visa'" in one_line(e)
    with pytest.raises(DatasetError) as e:
        Folder(tmp_path / "nope", split="train", image_size=16)
    assert "normal_dir" in one_line(e) and "nope" in str(e.value)
    write_image(tmp_path / "n" / "a.png", solid(8, 8))
    write_image(tmp_path / "d" / "b.png", solid(8, 8))
    (tmp_path / "m").mkdir()
    with pytest.raises(DatasetError) as e:
        Folder(tmp_path / "n", tmp_path / "d", tmp_path / "m", split="test", image_size=16, normal_split_ratio=0.0)
    assert "d/b.png" in one_line(e) and "no mask" in str(e.value)


def test_check_counts_and_official_comparison(btad_root: Path):
    result = check_dataset("btad", btad_root, "01")
    rows = {(r.split, r.defect): (r.count, r.official) for r in result.rows}
    assert rows[("train", "good")] == (1, 400)
    assert rows[("test", "good")] == (1, 21)
    assert rows[("test", "ko")] == (1, None)
    assert rows[("test", "all defective")] == (1, 49)
    assert any("01 train/good: 1 images, official count 400" in w for w in result.warnings)


def test_in_memory_items_equal_the_files_and_are_decoded_once(mvtec_root: Path, tmp_path: Path):
    import shutil

    from datasets.in_memory import InMemory

    root = tmp_path / "copy"
    shutil.copytree(mvtec_root, root)
    on_disk = MVTecAD(root, "widget", "test", image_size=48)  # resized from 64: a bilinear resample, in 8 bits
    cached = InMemory(on_disk)
    first = [cached[i] for i in range(len(cached))]
    expected = [on_disk[i] for i in range(len(on_disk))]
    shutil.rmtree(root)  # the files are gone: the cache must not read them again
    again = [cached[i] for i in range(len(cached))]
    for got, want in zip(first + again, expected + expected):
        assert torch.equal(got["image"], want["image"]) and got["image"].dtype == torch.float32
        assert torch.equal(got["mask"], want["mask"]) and got["mask"].dtype == torch.float32
        assert (got["label"], got["defect"], got["path"]) == (want["label"], want["defect"], want["path"])
    assert cached.samples == on_disk.samples and len(cached) == len(on_disk)
    first[0]["image"].zero_()  # a caller writing into an item does not write into the cache
    assert torch.equal(cached[0]["image"], expected[0]["image"])
