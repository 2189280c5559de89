"""The regression gate has power: three realistic bugs, each injected into a copy of this repository, make
`bench ab` (the A/B half of `make regress`) exit 1 and name the model and the field that moved.

Each case copies the working tree into a fresh git repository (commit `base`), commits one bug on a branch,
and runs `bench ab base --new bug` there with a small version of the gate's run. Real sides, real training,
real timing: nothing of the gate is mocked."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The gate's accuracy run (benchmarks/regress.sh), smaller: U-Net alone, 2 epochs instead of 4
ACCURACY = ["--suite", "accuracy", "--models", "unet", "--categories", "brushed_metal", "--epochs", "2",
            "--image-size", "64", "--threads", "1", "--seed", "0"]
QUICK = ["--suite", "quick", "--models", "unet", "--threads", "1", "--seed", "0", "--variants", "torch-fp32",
         "--skip-probes", "train_step"]

SEGMENTER = "models/segmenter_adapter.py"
UNET = "models/zoo/smp_unets.py"
BUGS = {
    # the map negated at inference: the most anomalous pixels now score lowest
    "map_negated": (SEGMENTER, "        maps = self.net(self.normalise(images))[:, 0]",
                    "        maps = -self.net(self.normalise(images))[:, 0]"),
    # the loss's target inverted: the net learns to flag the normal pixels
    "target_inverted": (SEGMENTER, "        targets = torch.maximum(masks.to(masks_synth.dtype), masks_synth)",
                        "        targets = 1.0 - torch.maximum(masks.to(masks_synth.dtype), masks_synth)"),
    # U-Net's eager forward computed twice (a leftover debug call; not while exporting or tracing, so graphs,
    # sizes and MACs are unchanged): twice the CPU time. A 30% slowdown is what the gate is sized for, and it is
    # measured that way (docs/measurements/latency-gate.md), but not here: inside make test the other core runs the other test
    # worker, a call's CPU time then spreads by 15-20% between neighbouring calls on this 2-vCPU VM, and 10-25
    # calls a side found +30% in 7 of 9 tries here (p = 0.026 in a fresh-clone make test; 2 of 3 beside a CPU
    # burner): a test that fails one run in five blocks everyone's landing
    "unet_twice": (UNET, "    return smp.Unet(encoder_name, encoder_weights=None, in_channels=in_channels, classes=classes)",
                   "    net = smp.Unet(encoder_name, encoder_weights=None, in_channels=in_channels, classes=classes)\n"
                   "    import torch\n"
                   "    forward = net.forward\n\n"
                   "    def twice(x):\n"
                   "        if not (torch.compiler.is_exporting() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):\n"
                   "            forward(x)\n"
                   "        return forward(x)\n\n"
                   "    net.forward = twice\n"
                   "    return net"),
}
# what the gate must name for each bug: (job contains, check, field)
EXPECTED = {
    # the image score (mean of the map's top 1%) then reads the least anomalous pixels, which still rank images
    # somewhat: image AUROC 0.854 [0.755, 0.937] -> 0.653 [0.521, 0.775] (DeLong p = 0.00095, measured at 525c41d,
    # intervals overlapping), while the map's own metrics collapse (pixel AUROC 0.754 -> 0.246): named by the pixels
    "map_negated": ("unet", "accuracy", "pixel_auroc"),
    # image AUROC 0.854 -> 0.540 [0.399, 0.672] (p = 9.5e-05), pixel AUROC 0.754 -> 0.161 (measured at 525c41d)
    "target_inverted": ("unet", "accuracy", "pixel_auroc"),
    "unet_twice": ("unet", "latency", "latency p50 ms"),
}
RUNS = {"map_negated": ACCURACY, "target_inverted": ACCURACY, "unet_twice": QUICK}


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout


def copy_repository(dest: Path) -> Path:
    """The working tree as it is (tracked and untracked, not ignored files) as a new repository, commit `base`."""
    from tests.test_compare_gate import copy_repository as copy_files

    copy_files(dest)
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    _git(dest, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "base")
    _git(dest, "tag", "base")
    return dest


def inject(repo: Path, bug: str) -> None:
    path, old, new = BUGS[bug]
    text = (repo / path).read_text()
    assert text.count(old) == 1, f"{path}: the line the {bug} bug replaces has changed; update BUGS"
    (repo / path).write_text(text.replace(old, new))
    _git(repo, "checkout", "-q", "-b", bug)
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-am", bug)


@pytest.fixture(scope="module")
def synthetic_cache(tmp_path_factory):
    """One synthetic-data cache for the cases (the data is seeded: the same files whoever generates them first)."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.parametrize("bug", sorted(BUGS))
def test_gate_fails_on_an_injected_bug_and_names_model_and_field(bug, tmp_path, synthetic_cache):
    repo = copy_repository(tmp_path / "repo")
    inject(repo, bug)
    env = dict(os.environ, PYTHONPATH=str(repo), DEFECTBENCH_CACHE=str(synthetic_cache))
    out = tmp_path / "ab"
    done = subprocess.run([sys.executable, "-m", "bench.cli", "ab", "base", "--new", bug, *RUNS[bug],
                           "--out", str(out), "--format", "json"], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 1, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    rows = json.loads(done.stdout)["rows"]
    job, check, field = EXPECTED[bug]
    named = [r for r in rows if r["fails"] and job in r["job"] and r["check"] == check and r["field"] == field]
    assert named, f"no failing {check} row for {field} of {job}: {[r for r in rows if r['fails']]}"
    if check == "accuracy":  # the bug moves the metric by more than its interval: the two sides' intervals are disjoint
        base = json.loads((out / "base" / "r1" / "results.json").read_text())["records"]
        new = json.loads((out / "new" / "r1" / "results.json").read_text())["records"]
        a = next(r for r in base if r["model"] == "unet" and r.get("variant", "torch-fp32") == "torch-fp32")
        b = next(r for r in new if r["model"] == "unet" and r.get("variant", "torch-fp32") == "torch-fp32")
        assert b[f"{field}_ci_high"] < a[f"{field}_ci_low"], (a[field], b[field])
        # and the image AUROC falls below BASE's interval (the issue's "moves image AUROC by more than its
        # interval"; disjoint intervals only for the inverted target: the figures in EXPECTED's comments)
        assert b["image_auroc"] < a["image_auroc_ci_low"], (a["image_auroc"], a["image_auroc_ci_low"], b["image_auroc"])
