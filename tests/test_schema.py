"""The results schema (bench/schema.py): every column a record carries is one it knows, the variant table
follows its order, its reader refuses a bad file in one line, and it imports without torch."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import api, schema

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "small_run" / "results.json"


def unknown_in(records: list[dict]) -> dict[str, str]:
    """Each column no schema family knows -> the first record carrying it (model, suite, variant)."""
    found: dict[str, str] = {}
    for record in records:
        for column in schema.unknown_columns(record):
            found.setdefault(column, f"{record.get('suite')} {record.get('model')} {record.get('variant')}")
    return found


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory) -> list[dict]:
    """The records of two real small runs: the quick suite (profile) and a tiny accuracy run with a second
    variant and two seeds (variant deltas, intervals, mean rows)."""
    from datasets.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("schema")
    api.run("quick", ["pixel_stats"], threads=1, out=root / "quick", quiet=True, executor="inline")
    data = generate_synthetic(root / "data", size=32, seed=1, categories=["nut"], n_train=6, n_test_good=3,
                              n_test_defective=4)
    api.run("accuracy", ["pixel_stats"], dataset="synthetic", data_root=data, image_size=32, threads=1, seeds=[0, 1],
            variants=["torch-fp32", "torch-channels-last"], out=root / "accuracy", quiet=True, executor="inline")
    return [record for run in ("quick", "accuracy") for record in schema.read_results(root / run)[2]]


def test_the_fixture_carries_no_column_the_schema_does_not_know():
    records = schema.read_results(FIXTURE)[2]
    assert records and unknown_in(records) == {}


def test_a_real_small_run_carries_no_column_the_schema_does_not_know(small_runs):
    kinds = {(r["suite"], r["variant"], r["category"] == schema.MEAN_CATEGORY, r["status"]) for r in small_runs}
    assert {("profile", "ort-fp32", False, "ok"), ("accuracy", "torch-channels-last", False, "ok"),
            ("accuracy", "torch-channels-last", True, "ok")} <= kinds  # a variant's rows and its mean row, with their deltas
    assert any(schema.PAIRED_DELTA_COLUMNS[0] in r for r in small_runs)
    assert unknown_in(small_runs) == {}


def test_an_invented_column_is_reported():
    record = {"suite": "profile", "model": "m", "latency_ms_p50": 1.0, "latency_ms_p95": 1.2, "bogus_ms": 3.0,
              "image_auroc_ci_low": 0.5, "image_f1_max_ci_low": 0.5, "pixel_ap_delta": 0.0, "aupro_seed_std": 0.1,
              "probe_seconds_macs": 0.2}
    # a percentile of any quantile is a latency column; image_f1_max carries no interval
    assert schema.unknown_columns(record) == ["bogus_ms", "image_f1_max_ci_low"]


def test_the_variant_table_follows_the_schema_order():
    from bench.variants.table import DEFAULT_VARIANTS, REFERENCE_VARIANT, VARIANTS
    from reports.run_data import variant_sort_key

    assert tuple(VARIANTS) == schema.VARIANT_ORDER
    assert REFERENCE_VARIANT == schema.REFERENCE_VARIANT and set(DEFAULT_VARIANTS) <= set(VARIANTS)
    shuffled = list(reversed(schema.VARIANT_ORDER))
    assert tuple(sorted(shuffled, key=lambda v: variant_sort_key(v, shuffled))) == schema.VARIANT_ORDER


def test_every_delta_family_is_documented():
    delta_columns = {schema.delta_column(m) for m in (*schema.PAIRED_DELTA_METRICS, *schema.POINT_DELTA_METRICS)}
    assert delta_columns == set(schema.DELTA_COLUMNS)
    assert set(schema.POINT_DELTA_METRICS) == set(schema.ACCURACY_METRICS)
    assert set(schema.PAIRED_DELTA_METRICS) <= set(schema.INTERVAL_METRICS)


@pytest.mark.parametrize("content, says", [
    (None, "no such file"),
    ("{ not json", "not JSON"),
    ("[1, 2]", "a JSON list, not an object"),
    ({"schema": 1, "provenance": {}, "records": []}, "results schema 1; this defectbench reads schema 2"),
    ({"schema": 2, "provenance": {}}, "no list of records"),
    ({"schema": 2, "provenance": [], "records": []}, "'provenance' is not an object"),
])
def test_the_reader_refuses_a_bad_file_in_one_line(tmp_path, content, says):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(schema.ResultsError) as caught:
        schema.read_results(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and says in message and "\n" not in message


def test_the_schema_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None; import bench.schema, bench.formatting; "
            "assert 'numpy' not in sys.modules, 'the schema needs only Python'")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_file_written_before_a_rename_loads_with_the_new_names(tmp_path):
    old = {"suite": "profile", "model": "fcn32s", "variant": "ort-fp32", "achieved_gflops": 116.0,
           "peak_fraction": 1.06, "device_peak_gflops": 109.4, "device_peak_kernel": "onnxruntime Conv3x3 (fp32)",
           "latency_ms_p50": 2.0}
    both = {"suite": "profile", "model": "unet", "peak_fraction": 0.1, "best_kernel_ratio": 0.5}
    provenance = {"device_peak_gflops": 46.0}  # an older run's provenance: not a record column, kept as it is
    (tmp_path / "results.json").write_text(json.dumps({"schema": 2, "provenance": provenance, "records": [old, both]}))
    _, read_provenance, (first, second) = schema.read_results(tmp_path)
    assert list(first) == ["suite", "model", "variant", "achieved_gflops", "best_kernel_ratio", "best_kernel_gflops",
                           "best_kernel", "latency_ms_p50"]  # renamed in place, values unchanged
    assert (first["best_kernel_ratio"], first["best_kernel_gflops"]) == (1.06, 109.4)
    assert first["best_kernel"] == "onnxruntime Conv3x3 (fp32)"
    assert second == {"suite": "profile", "model": "unet", "best_kernel_ratio": 0.5}  # the new name's value wins
    assert read_provenance == provenance
    assert schema.unknown_columns(first) == [] and schema.unknown_columns(old) == [
        "peak_fraction", "device_peak_gflops", "device_peak_kernel"]  # nothing may write the old names
    job = tmp_path / "job.json"  # a job file goes through the same reader
    job.write_text(json.dumps({"schema": 2, "provenance": {}, "records": [old]}))
    assert "best_kernel_ratio" in schema.read_run_file(job, "job record")["records"][0]
    assert set(schema.RENAMED_COLUMNS.values()) <= set(schema.PROFILE_COLUMNS)


def test_the_committed_baseline_written_before_the_rename_loads_with_the_new_names():
    records = schema.read_results(REPO / "benchmarks" / "baseline" / "quick" / "r1")[2]
    assert not any(old in r for r in records for old in schema.RENAMED_COLUMNS)
    assert any(schema.is_present(r.get("best_kernel_ratio")) for r in records)
    assert unknown_in(records) == {}
