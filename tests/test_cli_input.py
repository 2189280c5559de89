"""One rule for bad input: every option is checked before any work, one line naming it, exit status 2.
A run whose jobs failed exits 1 with its results written; 0 only when every job is ok."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app

PLUGIN = str(Path(__file__).parent / "plugins" / "tiny_models.py")
REPO = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("args, message", [
    (["--image-size", "-5"], "--image-size must be >= 16, got -5"),
    (["--image-size", "0"], "--image-size must be >= 16, got 0"),
    (["--threads", "0"], "--threads must be >= 1, got 0"),
    (["--threads", "-1"], "--threads must be >= 1, got -1"),
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["--batch-sizes", "1,0"], "--batch-sizes must be >= 1, got 0"),
    (["--epochs", "0", "--suite", "accuracy"], "--epochs must be >= 1, got 0"),
    (["--train-minutes", "-1", "--suite", "accuracy"], "--train-minutes must be a finite number > 0, got -1.0"),
    (["--train-minutes", "nan", "--suite", "accuracy"], "--train-minutes: 'nan' is not a finite number"),
    (["--train-minutes", "1,x", "--suite", "accuracy"], "--train-minutes: 'x' is not a number"),
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--seeds", "0,0"], "--seeds repeats a seed: 0,0"),
    (["--skip-probes", "train"], "--skip-probes: unknown probe 'train'; one of params, size, macs"),
    (["--suite", "nope"], "--suite must be one of"),
    (["--models", "nope"], "--models: unknown model 'nope'"),
    (["--executor", "threads"], "--executor must be one of"),
    (["--variants", "torch-fp64"], "--variants: unknown variant 'torch-fp64'"),
    (["--job-timeout", "0"], "--job-timeout must be a finite number > 0"),
    (["--job-memory-mb", "-3"], "--job-memory-mb must be a finite number > 0"),
    (["--schedule", "cosine", "--suite", "accuracy"], "--schedule must be one of budget, constant"),
    (["--suite", "accuracy", "--dataset", "imagenet"], "--dataset must be one of"),
    (["--suite", "accuracy", "--dataset", "mvtec"], "--data-root is required for --dataset mvtec"),
    (["--suite", "accuracy", "--dataset", "mvtec", "--data-root", "/no/such/dir"], "--data-root /no/such/dir: no such folder"),
    (["--suite", "deploy"], "--suite deploy needs --checkpoints"),
    (["--eval-only"], "--eval-only goes with --suite accuracy"),
    (["--plugin", "/no/such/plugin.py"], "--plugin /no/such/plugin.py: no such file"),
    (["--weights", "/no/such.pth", "--models", "piade"], "--weights: no such file: /no/such.pth"),
    (["--suite", "accuracy", "--val-normals", "-3"], "--val-normals must be a whole number of images >= 0 or a fraction in (0, 1), got -3"),
    (["--suite", "accuracy", "--val-normals", "1.5"], "--val-normals must be a whole number of images >= 0 or a fraction in (0, 1), got 1.5"),
    (["--suite", "accuracy", "--val-normals", "ten"], "--val-normals must be a whole number of images >= 0 or a fraction in (0, 1), got 'ten'"),
    (["--suite", "accuracy", "--target-fpr", "0"], "--target-fpr: each rate must lie in (0, 1), got 0.0"),
    (["--suite", "accuracy", "--target-fpr", "5"], "--target-fpr: each rate must lie in (0, 1), got 5.0"),
    (["--suite", "accuracy", "--target-fpr", "0.05,0.05"], "--target-fpr repeats a rate: 0.05,0.05"),
    (["--suite", "accuracy", "--target-fpr", "1%"], "--target-fpr: '1%' is not a number"),
])
def test_bad_option_exits_2_before_any_work(tmp_path, args, message):
    out = tmp_path / "run"
    result = invoke("run", "--suite", "quick", "--models", "pixel_stats", "--out", str(out), *args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not out.exists(), "something was written before the options were checked"


def test_out_that_is_a_file_exits_2(tmp_path):
    target = tmp_path / "a_file"
    target.write_text("not a run folder")
    result = invoke("run", "--suite", "quick", "--models", "pixel_stats", "--out", str(target))
    assert result.exit_code == 2 and f"--out {target}: exists and is not a folder" in result.stderr
    assert target.read_text() == "not a run folder"


def test_run_folder_of_another_schema_exits_2(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"schema": 1, "provenance": {}, "records": []}))
    result = invoke("run", "--suite", "quick", "--models", "pixel_stats", "--out", str(tmp_path))
    assert result.exit_code == 2 and "written by results schema 1" in result.stderr
    assert not (tmp_path / "records").exists()


def test_unknown_category_exits_2(tmp_path):
    from datasets.synthetic import generate_synthetic

    root = generate_synthetic(tmp_path / "data", size=32, seed=0, categories=["nut"], n_train=2, n_test_good=1,
                              n_test_defective=1)
    result = invoke("run", "--suite", "accuracy", "--models", "pixel_stats", "--data-root", str(root),
                    "--categories", "carpet", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2 and "--categories: 'carpet' is not in" in result.stderr


def test_labelled_defects_needs_a_positive_count(tmp_path):
    result = invoke("run", "--suite", "accuracy", "--models", "capsnet_ad", "--labelled-defects", "0",
                    "--out", str(tmp_path / "run"))
    assert result.exit_code == 2 and "--labelled-defects must be >= 1, got 0" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["data", "preview", "--n-normal", "0", "--n-defect", "0"], "--n-normal and --n-defect are both 0"),
    (["data", "preview", "--n-normal", "-1"], "--n-normal must be >= 0, got -1"),
    (["data", "synth", "--n-train", "-1"], "--n-train must be >= 1, got -1"),
    (["data", "synth", "--n-test-defective", "0"], "--n-test-defective must be >= 1, got 0"),
    (["data", "check", "--dataset", "mvtec", "--data-root", "/no/such/dir"], "/no/such/dir"),
])
def test_bad_data_options_exit_2(tmp_path, args, message):
    if args[1] == "synth":
        args = args + ["--out", str(tmp_path / "synth")]
    if args[1] == "preview":
        args = args + ["--out", str(tmp_path / "p.png")]
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "synth").exists() and not (tmp_path / "p.png").exists()


def test_failed_job_exits_1_with_results_written(tmp_path):
    result = invoke("run", "--suite", "quick", "--models", "tiny_broken", "--plugin", PLUGIN, "--image-size", "32",
                    "--threads", "1", "--executor", "inline", "--variants", "ort-fp32", "--out", str(tmp_path))
    assert result.exit_code == 1, result.output
    assert "1 record(s) failed" in result.stderr
    records = json.loads((tmp_path / "results.json").read_text())["records"]
    assert [r["status"] for r in records] == ["failed"]


def test_summary_from_a_pipe_is_whole(tmp_path):
    """Read through a pipe (not a terminal), every number of the summary comes out whole."""
    run = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--suite", "quick", "--models", "tiny_ok",
                          "--plugin", PLUGIN, "--image-size", "32", "--threads", "1", "--executor", "inline",
                          "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "…" not in run.stdout and "..." not in run.stdout
    records = json.loads((tmp_path / "results.json").read_text())["records"]
    header = next(line for line in run.stdout.splitlines() if line.startswith("model"))
    for column in ("params", "gmacs", "latency_ms_p50", "train_step_ms_p50"):
        assert column in header.split()
    from bench.formatting import fmt_value

    for record in records:
        for column in ("params", "latency_ms_p50", "train_step_ms_p50", "model_mb"):
            assert fmt_value(record[column], column) in run.stdout, column
    assert "USDT" not in run.stdout + run.stderr
    # progress went to stderr as plain lines, one per record
    assert sum("profile tiny_ok" in line for line in run.stderr.splitlines()) == len(records)


def test_the_terminal_writes_a_number_as_the_report_does():
    from bench.formatting import fmt_value
    from reports.tables import PROFILE_COLUMNS

    assert fmt_value(24_436_369) == fmt_value(24_436_369.0, "params") == "24,436,369"  # a count keeps every digit
    assert fmt_value(0.012345678) == "0.0123"
    assert fmt_value(123456.7) == "123457"
    assert fmt_value(math.nan) == fmt_value(None) == "–"
    assert fmt_value(True) == "yes" and fmt_value("pass") == "pass"
    record = {"latency_ms_p50": 0.36217, "params": 24_436_369, "batch_size": 2, "onnx_mb": 0.10531,
              "throughput_ips": 7845.31}
    for column in PROFILE_COLUMNS:
        if column.key in record:
            assert column.render(record).text == fmt_value(record[column.key], column.key), column.key


def test_labelled_defects_refused_for_models_that_cannot_use_labels(tmp_path):
    result = invoke("run", "--suite", "accuracy", "--models", "unet,pixel_stats,vtadl", "--labelled-defects", "5",
                    "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert "--labelled-defects: pixel_stats, vtadl cannot learn from labels" in result.stderr
