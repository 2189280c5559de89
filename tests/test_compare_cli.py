"""`bench compare` as a command: what it reads, what it refuses (exit 2), its exit status and its formats."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.measure import REFERENCE_WORKLOAD

PROVENANCE = {"hostname": "vm", "cpu": "AMD EPYC", "device": "cpu", "threads": 1, "torch": "2.14.1",
              "onnxruntime": "1.32.0", "git_sha": "0123456789abcdef"}
LONG_NAME = "a_model_with_a_name_long_enough_to_be_cut_by_a_narrow_table"


def record(model="unet", params=1000, **fields) -> dict:
    return {"suite": "profile", "model": model, "variant": "torch-fp32", "image_size": 64, "batch_size": 2,
            "device": "cpu", "threads": 1, "seed": 0, "status": "ok", "params": params, **fields}


def write(path: Path, records: list[dict], schema=2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema": schema, "provenance": PROVENANCE, "records": records}))
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, ["compare", *map(str, args)])


def one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


# -- unusable input: exit 2 with one line naming the file --------------------------------------------------
def test_missing_file(tmp_path):
    one_line_error(invoke(tmp_path / "nope.json", write(tmp_path / "b.json", [record()])), "nope.json",
                   "no such file")


def test_garbage_json(tmp_path):
    bad = tmp_path / "garbage.json"
    bad.write_text('{"schema": 2, "records": [')
    one_line_error(invoke(write(tmp_path / "a.json", [record()]), bad), "garbage.json", "not JSON")


def test_other_schema(tmp_path):
    old = write(tmp_path / "old.json", [record()], schema=1)
    one_line_error(invoke(old, write(tmp_path / "a.json", [record()])), "old.json", "schema 1", "schema 2")


def test_empty_run(tmp_path):
    one_line_error(invoke(write(tmp_path / "a.json", [record()]), write(tmp_path / "empty.json", [])),
                   "empty.json", "no records")


def test_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "nothing").mkdir()
    one_line_error(invoke(tmp_path / "nothing", write(tmp_path / "a.json", [record()])), "not a run folder")


def test_a_json_that_is_neither_kind(tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    one_line_error(invoke(other, other), "other.json", "neither a defectbench results file")


def test_ambiguous_records(tmp_path):
    twice = write(tmp_path / "twice.json", [record(), record()])
    one_line_error(invoke(twice, twice), "twice.json", "two records share the identity")


def test_bad_option(tmp_path):
    a = write(tmp_path / "a.json", [record()])
    one_line_error(invoke(a, a, "--format", "xml"), "--format")
    one_line_error(invoke(a, a, "--alpha", "2"), "--alpha")


def test_like_with_like(tmp_path):
    one_line_error(invoke(write(tmp_path / "a.json", [record()]), pytest_benchmark(tmp_path / "pb.json", [1.0] * 10)),
                   "compare like with like")


# -- inputs that work --------------------------------------------------------------------------------------
def test_the_same_file_twice_is_no_regression(tmp_path):
    a = write(tmp_path / "a.json", [record()])
    result = invoke(a, a)
    assert result.exit_code == 0, result.output
    assert "no regression" in result.output


def test_a_run_folder_without_results_json_is_read_from_its_job_files(tmp_path):
    run = tmp_path / "run"
    (run / "records").mkdir(parents=True)
    for name in ("unet", "segnet"):
        (run / "records" / f"{name}.json").write_text(json.dumps(
            {"schema": 2, "provenance": PROVENANCE, "job": {}, "complete": True, "records": [record(name)]}))
    full = write(tmp_path / "full" / "results.json", [record("unet"), record("segnet", params=2000)])
    result = invoke(full.parent, run)
    assert result.exit_code == 1  # segnet's 2000 params vs 1000
    assert "segnet" in result.output and "params" in result.output


def test_exit_1_and_all_three_formats_name_the_regression(tmp_path):
    a = write(tmp_path / "a.json", [record(LONG_NAME)])
    b = write(tmp_path / "b.json", [record(LONG_NAME, params=1_234_567)])
    table = invoke(a, b)
    assert table.exit_code == 1
    assert LONG_NAME in table.output and "1,234,567" in table.output  # not a terminal: nothing cut
    assert "REGRESSION" in table.output
    markdown = invoke(a, b, "--format", "markdown")
    assert markdown.exit_code == 1
    assert "| job | check |" in markdown.output and f"| profile {LONG_NAME} torch-fp32" in markdown.output
    assert "**changed**" in markdown.output
    payload = json.loads(invoke(a, b, "--format", "json").output)
    assert payload["verdict"] == "regression" and payload["exit_code"] == 1
    failing = [r for r in payload["rows"] if r["fails"]]
    assert [(r["field"], r["base"], r["new"]) for r in failing] == [("params", 1000, 1_234_567)]


def test_allow_size_change_accepts_sizes_and_allow_param_change_parameter_counts(tmp_path):
    a = write(tmp_path / "a.json", [record(gmacs=0.2)])
    assert invoke(a, write(tmp_path / "b.json", [record(gmacs=0.3)]), "--allow-size-change").exit_code == 0
    params = write(tmp_path / "c.json", [record(params=2000, gmacs=0.2)])
    assert invoke(a, params, "--allow-size-change").exit_code == 1  # a size change never excuses the model's own
    assert invoke(a, params, "--allow-param-change").exit_code == 0


def test_each_silent_pass_fails_unless_its_option_accepts_it(tmp_path):
    a = write(tmp_path / "a.json", [record(), record("segnet"), record("fcn32", variant="ort-fp32")])
    skipped = record("fcn32", variant="ort-fp32", status="skipped", error="no onnxruntime here")
    b = write(tmp_path / "b.json", [record(), skipped])
    result = invoke(a, b, "--format", "json")
    assert result.exit_code == 1
    payload = json.loads(result.output)
    assert payload["silent"] == {"missing": 1, "skipped": 1} and payload["fails"] == 2
    assert [r["kind"] for r in payload["rows"][:2]] == ["missing", "skipped"]
    assert invoke(a, b, "--allow-missing").exit_code == 1
    assert invoke(a, b, "--allow-skipped").exit_code == 1
    accepted = invoke(a, b, "--allow-missing", "--allow-skipped", "--format", "json")
    assert accepted.exit_code == 0 and json.loads(accepted.output)["silent"] == {}
    data = {"suite": "accuracy", "dataset": "synthetic", "category": "nut", "image_auroc": 0.9}
    c = write(tmp_path / "c.json", [record(**data, data_fingerprint="synthetic:1")])
    d = write(tmp_path / "d.json", [record(**data, data_fingerprint="synthetic:2")])
    assert invoke(c, d).exit_code == 1
    assert invoke(c, d, "--allow-data-change").exit_code == 0


# -- pytest-benchmark files ----------------------------------------------------------------------------------
def pytest_benchmark(path: Path, seconds: list[float], reference: list[float] | None = None,
                     cpu: list[float] | None = None, node: str = "vm") -> Path:
    extra = {"torch": "2.14.1", "threads": 1}
    if reference is not None:
        extra |= {"reference_samples_ms": reference, "reference_cpu_samples_ms": reference,
                 "cpu_samples_ms": cpu if cpu is not None else [s * 1e3 for s in seconds],
                 "reference_workload": REFERENCE_WORKLOAD, "device": "cpu"}
    path.write_text(json.dumps({
        "machine_info": {"node": node, "cpu": {"brand_raw": "AMD EPYC", "count": 2}, "python_version": "3.11.7"},
        "commit_info": {"id": "0123456789abcdef"}, "datetime": "2026-11-29T10:00:00",
        "benchmarks": [{"group": None, "name": "test_inference[unet]",
                        "fullname": "tests/benchmarks/bench_inference.py::test_inference[unet]",
                        "stats": {"median": float(np.median(seconds)), "data": seconds}, "extra_info": extra}]}))
    return path


def test_pytest_benchmark_files_get_the_same_latency_test(tmp_path):
    rng = np.random.default_rng(0)
    base = list(0.060 * rng.lognormal(0, 0.02, 30))
    slower = list(0.078 * rng.lognormal(0, 0.02, 30))
    a = pytest_benchmark(tmp_path / "a.json", base)
    b = pytest_benchmark(tmp_path / "b.json", slower)
    result = invoke(a, b, "--format", "json")
    assert result.exit_code == 1
    row = json.loads(result.output)["rows"][0]
    assert row["job"].startswith("pytest-benchmark tests/benchmarks/bench_inference.py::test_inference[unet]")
    assert row["verdict"] == "regression" and "raw wall time" in row["note"]
    table = invoke(a, b)
    assert "test_inference[unet]" in table.output  # a name in brackets, printed as it is (not rich markup)
    assert "1 thread(s)" in table.output and "torch 2.14.1" in table.output  # provenance from extra_info


def test_pytest_benchmark_files_with_a_reference_cancel_drift(tmp_path):
    rng = np.random.default_rng(1)
    cpu_a, ref_a = 60 * rng.lognormal(0, 0.02, 30), 1.5 * rng.lognormal(0, 0.02, 30)
    cpu_b, ref_b = 1.4 * 60 * rng.lognormal(0, 0.02, 30), 1.4 * 1.5 * rng.lognormal(0, 0.02, 30)  # a slower machine
    a = pytest_benchmark(tmp_path / "a.json", list(cpu_a / 1e3), list(ref_a), list(cpu_a))
    b = pytest_benchmark(tmp_path / "b.json", list(2 * cpu_b / 1e3), list(ref_b), list(cpu_b))  # and busy
    result = invoke(a, b, "--format", "json")
    assert result.exit_code == 0, result.output
    assert "CPU time / reference CPU time" in json.loads(result.output)["rows"][0]["note"]


def test_pytest_benchmark_saved_without_raw_data_is_refused(tmp_path):
    path = pytest_benchmark(tmp_path / "a.json", [0.06] * 10)
    payload = json.loads(path.read_text())
    del payload["benchmarks"][0]["stats"]["data"]
    path.write_text(json.dumps(payload))
    one_line_error(invoke(path, path), "a.json", "--benchmark-save-data")


def test_a_piped_table_keeps_every_cell_on_one_line(tmp_path):
    a = write(tmp_path / "a.json", [record(LONG_NAME), record("unet")])
    b = write(tmp_path / "b.json", [record("unet")])
    result = invoke(a, b)
    assert result.exit_code == 1  # a model missing in NEW fails unless --allow-missing
    line = next(line for line in result.output.splitlines() if LONG_NAME in line)
    assert "only in BASE (fails)" in line and "missing in NEW (BASE: ok); --allow-missing accepts it" in line
    assert invoke(a, b, "--allow-missing").exit_code == 0
