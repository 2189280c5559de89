"""The CI gate end to end: a copy of this repository in which one model is narrower must fail `bench compare`
against the committed baseline (benchmarks/baseline/, `make regress-baseline`), on exactly that model's
exact fields."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "benchmarks" / "baseline" / "quick"
MODEL = "capsnet_ad"  # small at the quick suite's size: about 15 s to measure on an idle core
NARROWER = {"nn.Conv2d(3, 256, 9)": "nn.Conv2d(3, 192, 9)",  # the first convolution's width: 256 -> 192
            "nn.Conv2d(256, PRIMARY_MAPS": "nn.Conv2d(192, PRIMARY_MAPS"}


def copy_repository(target: Path) -> Path:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.mark.slow
def test_a_copy_with_one_model_narrower_fails_the_gate(tmp_path):
    assert BASELINE.is_dir(), "no committed baseline: run `make regress-baseline` and commit benchmarks/baseline/"
    repo = copy_repository(tmp_path / "repo")
    source = repo / "models" / "zoo" / f"{MODEL}.py"
    text = source.read_text()
    for old, new in NARROWER.items():
        assert text.count(old) == 1, f"{source.name} no longer has {old!r}: update this test's NARROWER"
        text = text.replace(old, new)
    source.write_text(text)
    run = tmp_path / "run"
    measured = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--suite", "quick", "--models", MODEL,
                               "--threads", "1", "--out", str(run)], cwd=repo, check=True, capture_output=True, text=True)
    # its ONNX export shows a tqdm bar in the worker; tqdm's semaphore must not outlive the worker (bench/executors)
    assert "leaked semaphore" not in measured.stderr, measured.stderr[-2000:]
    compared = subprocess.run([sys.executable, "-m", "bench.cli", "compare", str(BASELINE), str(run), "--format",
                               "json", "--allow-missing"], cwd=repo, capture_output=True, text=True)
    assert compared.returncode == 1, compared.stdout + compared.stderr
    rows = json.loads(compared.stdout)["rows"]
    failing = [r for r in rows if r["fails"]]
    assert {r["field"] for r in failing if r["check"] == "exact"} >= {"params", "trainable_params", "gmacs", "model_mb"}
    assert all(MODEL in r["job"] for r in failing), failing
    params = next(r for r in failing if r["field"] == "params" and "torch-fp32" in r["job"])
    assert params["new"] < params["base"]
    # the other models were not measured in this run: listed, not failed, since --allow-missing names it
    assert any(r["verdict"] == "only in BASE" and not r["fails"] for r in rows)
    without = subprocess.run([sys.executable, "-m", "bench.cli", "compare", str(BASELINE), str(run), "--format", "json"],
                             cwd=repo, capture_output=True, text=True)
    assert without.returncode == 1
    assert any(r["verdict"] == "only in BASE" and r["fails"] for r in json.loads(without.stdout)["rows"])
