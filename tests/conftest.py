"""Shared fixtures: every test's global random generators seeded; tiny MVTec- and BTAD-shaped trees in tmp_path."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(autouse=True)
def seed_global_generators():
    """Each test starts from the same state of torch's, numpy's and random's global generators, whatever ran before it
    in its process: pytest-randomly shuffles the order on every run and pytest-xdist splits the files between workers,
    so a draw that depends on what an earlier test consumed would differ from run to run.

    torch is seeded here only (pytest-randomly does not seed it). numpy's and random's seeds hold for fixture setup;
    when pytest-randomly is active it reseeds those two again just before the test body runs, from its run seed and
    the test's id (the seed is in the header and at the end; `-p randomly --randomly-seed=N` repeats a run's order
    and draws; `-p no:randomly` keeps the file order and this fixture's 0). A test whose claim depends on the values
    it draws should draw from its own seeded generator (torch.Generator().manual_seed(s), np.random.default_rng(s))."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def shorten_timing(monkeypatch) -> None:
    """The quick and all suites' timing loops cut to a few calls without a minimum time, for tests that check what
    the runner does with jobs (isolation, scheduling, resume, executors), not the numbers the loops measure. The
    settings are taken into the job specs at planning, so jobs in worker processes and on Ray get them too; a
    `bench` command started as a subprocess does not."""
    from bench import config

    short = dict(warmup=1, min_iters=3, max_iters=5, min_seconds=0.0, max_seconds=2.0, warmup_seconds=0.0,
                 train_iters=1)
    for suite in ("quick", "all"):
        monkeypatch.setitem(config.SUITE_PROBE_SETTINGS, suite, short)
    monkeypatch.setitem(config.SUITE_PEAK_SECONDS, "all", 0.1)
    monkeypatch.setitem(config.SUITE_PEAK_SECONDS, "quick", 0.1)


@pytest.fixture
def short_timing(monkeypatch):
    """`shorten_timing` for one test (a module-scoped fixture uses it under `pytest.MonkeyPatch.context()`)."""
    shorten_timing(monkeypatch)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The order's seed at the end too: pytest-randomly puts it in the header, which `-q` (make test, CI) leaves out."""
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int) and config.pluginmanager.hasplugin("randomly"):
        terminalreporter.write_line(f"test order: pytest-randomly seed {seed} "
                                    f"(again: -p randomly --randomly-seed={seed})")


def write_image(path: Path, array: np.ndarray, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


def solid(h: int, w: int, rgb=(200, 100, 50)) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (h, w, 3)).copy()


def box_mask(h: int, w: int, top: int, left: int, bottom: int, right: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=np.uint8)
    m[top:bottom, left:right] = 255
    return m


@pytest.fixture
def mvtec_root(tmp_path: Path) -> Path:
    """widget: 2 train (one RGB, one grey), 1 test good, 1 `scratch` with a mask on the left half."""
    root = tmp_path / "mvtec"
    c = root / "widget"
    write_image(c / "train/good/000.png", solid(64, 64))
    write_image(c / "train/good/001.png", np.full((64, 64), 128, np.uint8))  # grey
    write_image(c / "test/good/000.png", solid(64, 64, (10, 20, 30)))
    write_image(c / "test/scratch/000.png", solid(64, 64, (255, 255, 255)))
    write_image(c / "ground_truth/scratch/000_mask.png", box_mask(64, 64, 0, 0, 64, 32))
    (root / "other").mkdir()  # a second category folder, only a train/ inside
    (root / "other" / "train").mkdir()
    return root


@pytest.fixture
def btad_root(tmp_path: Path) -> Path:
    """BTech_Dataset_transformed/01 (1600x1600 .bmp, .png masks) and 03 (800x600 .bmp, .bmp masks)."""
    root = tmp_path / "btad"
    p1 = root / "BTech_Dataset_transformed" / "01"
    write_image(p1 / "train/ok/0000.bmp", solid(1600, 1600, (90, 90, 90)))
    write_image(p1 / "test/ok/0000.bmp", solid(1600, 1600, (80, 80, 80)))
    write_image(p1 / "test/ko/0001.bmp", solid(1600, 1600, (250, 0, 0)))
    write_image(p1 / "ground_truth/ko/0001.png", box_mask(1600, 1600, 800, 0, 1600, 1600))  # bottom half
    p3 = root / "BTech_Dataset_transformed" / "03"
    write_image(p3 / "train/ok/0000.bmp", np.full((600, 800), 60, np.uint8))  # grey, non-square
    write_image(p3 / "test/ok/0000.bmp", np.full((600, 800), 70, np.uint8))
    write_image(p3 / "test/ko/0002.bmp", np.full((600, 800), 200, np.uint8))
    write_image(p3 / "ground_truth/ko/0002.bmp", box_mask(600, 800, 0, 400, 600, 800), fmt="BMP")  # right half
    return root
