"""`bench ab`: both sides measured here, each from its own checkout; what happens when BASE cannot run is said."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_gate_power import _git, copy_repository

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def ab(repo: Path, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(repo), DEFECTBENCH_CACHE=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-m", "bench.cli", "ab", *args], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=900)


def test_identical_code_runs_both_sides_from_their_checkouts_and_passes(tmp_path):
    repo = copy_repository(tmp_path / "repo")
    (repo / "NOTE.txt").write_text("not code\n")  # a commit that changes no code
    _git(repo, "add", "NOTE.txt")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "docs only")
    out = tmp_path / "ab"
    done = ab(repo, "base", "--suite", "accuracy", "--models", "pixel_stats", "--categories", "fabric", "--epochs", "1",
              "--image-size", "32", "--threads", "1", "--out", str(out), "--format", "json", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(done.stdout)
    assert any("code: identical" in line for line in payload["context"])
    shas = {side: json.loads((out / side / "r1" / "results.json").read_text())["provenance"]["git_sha"]
            for side in ("base", "new")}
    assert shas["base"] == _git(repo, "rev-parse", "base").strip()  # BASE ran from its own worktree
    assert shas["new"].startswith(_git(repo, "rev-parse", "HEAD").strip())
    reproduced = [r for r in payload["rows"] if r["verdict"] == "reproduced"]
    assert reproduced, "identical code on one machine: the accuracy rows must be checked bit for bit"
    # the order alternates and both sides' logs exist
    assert (out / "base.log").is_file() and (out / "new.log").is_file()


def test_bad_options_and_a_base_that_predates_bench_ab_exit_2_before_any_job(tmp_path):
    repo = copy_repository(tmp_path / "repo")
    done = ab(repo, "base", "--suite", "nosuch", "--out", str(tmp_path / "ab"), tmp_path=tmp_path)
    assert done.returncode == 2 and "nosuch" in done.stderr
    assert not list((tmp_path / "ab").glob("*/r1"))
    done = ab(repo, "no-such-ref", "--suite", "quick", "--out", str(tmp_path / "ab"), tmp_path=tmp_path)
    assert done.returncode == 2 and "'no-such-ref': not a commit" in done.stderr
    shutil.rmtree(repo / "bench" / "ab")  # a commit from before bench ab existed
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-am", "old")
    old = _git(repo, "rev-parse", "HEAD").strip()
    _git(repo, "checkout", "-q", "base")
    done = ab(repo, old, "--suite", "quick", "--out", str(tmp_path / "ab"), tmp_path=tmp_path)
    assert done.returncode == 2 and "predates `bench ab`" in done.stderr, done.stderr
