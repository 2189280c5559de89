"""scripts/gpu_check.py refuses clearly where it cannot run, before doing any work."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"


def run(args, tmp_path, **env):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, **env})


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_refuses_without_cuda_in_one_line(tmp_path):
    got = run(["--out", str(tmp_path / "out")], tmp_path)
    assert got.returncode == 2
    assert got.stderr.strip().count("\n") == 0 and "no CUDA device" in got.stderr and "--dry-run" in got.stderr
    assert not (tmp_path / "out").exists()  # nothing was started


def test_refuses_without_an_output_folder(tmp_path):
    got = run([], tmp_path, OUT="")
    assert got.returncode == 2
    assert got.stderr.strip() == "gpu-check: no output folder: pass --out DIR or set OUT"


def test_gpu_plan_fits_the_device_tools_command_limit():
    sys.path.insert(0, str(SCRIPT.parent))
    import gpu_check

    plan = gpu_check.gpu_plan()
    # the two device calls the docstring prescribes each fit; all steps in one call do not (measured on an H200)
    assert plan.total_s(("quick", "paper")) <= gpu_check.TOTAL_BUDGET_S < 600
    assert plan.total_s(("variants",)) <= gpu_check.TOTAL_BUDGET_S
    assert plan.total_s() > gpu_check.TOTAL_BUDGET_S
    assert set(plan.variant_models) == {"fcn32", "unet", "unetpp", "u2net", "u2net_small", "segnet", "vtadl"}
    assert plan.groups("unet") == 3 and plan.groups("fcn32") == 1


def test_ratios_are_taken_within_a_model_and_group():
    sys.path.insert(0, str(SCRIPT.parent))
    import gpu_check

    rows = [{"model": "m", "group": 0, "variant": "torch-fp32", "status": "ok", "batch_size": 8, "job_batch": 8,
             "latency_ms_p50": 4.0},
            {"model": "m", "group": 0, "variant": "torch-fp16", "status": "ok", "batch_size": 8, "job_batch": 8,
             "latency_ms_p50": 1.0},
            {"model": "m", "group": 1, "variant": "torch-fp32", "status": "ok", "batch_size": 8, "job_batch": 8,
             "latency_ms_p50": 5.0},
            {"model": "m", "group": 1, "variant": "torch-compile", "status": "ok", "batch_size": 8, "job_batch": 8,
             "latency_ms_p50": 2.5},
            {"model": "m", "group": 1, "variant": "torch-compile-cudagraphs", "status": "skipped", "batch_size": 8,
             "job_batch": 8}]
    gpu_check.add_ratios(rows)
    assert [r["latency_ratio_to_fp32"] for r in rows] == [1.0, 0.25, 1.0, 0.5, None]


def test_steps_are_parsed_in_their_fixed_order():
    sys.path.insert(0, str(SCRIPT.parent))
    import gpu_check

    assert gpu_check.parse_steps("all") == ("quick", "variants", "paper")
    assert gpu_check.parse_steps("paper, quick") == ("quick", "paper")
    assert gpu_check.parse_steps("quick,compile") is None
    assert gpu_check.parse_steps("") is None


def test_refuses_an_unknown_step_before_anything_else(tmp_path):
    got = run(["--out", str(tmp_path / "out"), "--steps", "quick,compile"], tmp_path)
    assert got.returncode == 2
    assert got.stderr.strip() == "gpu-check: --steps 'quick,compile': choose from quick, variants, paper (comma-separated) or all"
    assert not (tmp_path / "out").exists()
