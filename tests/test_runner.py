"""The runner end to end on the tiny plugin models: records, files, resume, identity, failure isolation."""
import json
from pathlib import Path

import pandas as pd
import pytest

from bench import api, run_folder
from bench.jobs.spec import JobSpec

pytestmark = pytest.mark.usefixtures("short_timing")  # the runner is under test, not the timing loops
PLUGIN = str(Path(__file__).parent / "plugins" / "tiny_models.py")
PROFILE_COLUMNS = ["params", "trainable_params", "gmacs", "mac_counter", "model_mb", "fwd_bwd_mb_est",
                   "peak_infer_mb", "peak_train_mb", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99",
                   "latency_ms_mean", "latency_iqr_ratio", "throughput_ips", "train_step_ms_p50", "achieved_gflops",
                   "best_kernel_ratio"]


def quick(models, out, **kw):
    kw.setdefault("executor", "inline")
    return api.run("quick", models, threads=1, out=out, quiet=True, plugins=[PLUGIN], image_size=32, **kw)


def row(frame, model, variant="torch-fp32"):
    return frame[(frame["model"] == model) & (frame["variant"] == variant)].iloc[0]


def test_failed_probe_is_isolated(tmp_path):
    frame = quick(["tiny_broken", "tiny_ok"], tmp_path, argv=["test"])
    ok, broken = row(frame, "tiny_ok"), row(frame, "tiny_broken", "ort-fp32")
    assert ok["status"] == "ok" and ok["error"] == ""
    for col in PROFILE_COLUMNS:
        assert not pd.isna(ok[col]), col
    assert row(frame, "tiny_ok", "ort-fp32")["parity"] == "pass"
    assert broken["status"] == "failed"
    assert broken["error"].startswith("onnx export:") and "refuses to export" in broken["error"]
    # the model's own torch row and what was measured before and after the failing probe are kept
    assert row(frame, "tiny_broken")["status"] == "ok"
    assert broken["params"] == ok["params"] and not pd.isna(broken["train_step_ms_p50"])
    assert not list((tmp_path / "tmp").glob("onnx-*")), "the failed export left its files behind"


def test_run_files_are_self_contained(tmp_path):
    quick(["tiny_ok"], tmp_path, seed=3, argv=["bench", "run"])
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["schema"] == run_folder.SCHEMA == 2
    prov = payload["provenance"]
    for key in ("python", "torch", "onnx", "onnxruntime", "cpu", "cpu_flags", "threads", "git_sha", "seed", "command",
                "timestamp", "executor", "math_mode"):
        assert key in prov, key
    assert prov["seed"] == 3 and prov["threads"] == 1 and prov["executor"] == "inline"
    first = payload["records"][0]
    assert len(first["latency_samples_ms"]) == first["latency_n"]
    # each job's file stands alone: its spec, its provenance and its records
    job = json.loads(run_folder.job_file(tmp_path, first["job_id"]).read_text())
    assert job["complete"] is True and job["provenance"]["command"] == "bench run"
    assert JobSpec.from_dict(job["job"]).job_id == first["job_id"]
    assert [r["variant"] for r in job["records"]] == ["torch-fp32", "ort-fp32"]
    csv = (tmp_path / "results.csv").read_text().splitlines()
    assert csv[0].startswith("suite,model,family,variant") and "latency_samples_ms" not in csv[0]


def test_resume_keeps_finished_jobs(tmp_path):
    first = quick(["tiny_ok"], tmp_path)
    again = quick(["tiny_ok"], tmp_path, resume=True)
    assert again["latency_ms_p50"].tolist() == first["latency_ms_p50"].tolist()  # not re-measured
    assert again["started_at"].tolist() == first["started_at"].tolist()


def test_resume_does_not_reuse_records_made_with_other_settings(tmp_path, capsys):
    quick(["tiny_ok"], tmp_path, seed=0)
    old_id = json.loads((tmp_path / "results.json").read_text())["records"][0]["job_id"]
    again = quick(["tiny_ok"], tmp_path, seed=1, resume=True)
    err = capsys.readouterr().err
    assert f"records/{old_id}.json: made with other settings (seed 0 -> 1); not reused" in err
    assert set(again["seed"]) == {1} and again["job_id"].iloc[0] != old_id
    assert (tmp_path / "superseded" / f"{old_id}.json").is_file()  # set aside, not deleted


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    from datasets.synthetic import generate_synthetic

    return generate_synthetic(tmp_path_factory.mktemp("synth"), size=32, seed=1, categories=["nut"], n_train=4,
                              n_test_good=2, n_test_defective=2)


@pytest.mark.parametrize("change, changed_kinds", [
    (dict(threads=2), {"profile", "accuracy"}),
    (dict(epochs=3), {"accuracy"}),
    (dict(seed=1), {"profile", "accuracy"}),
    (dict(variants=["torch-fp32"]), {"profile"}),
    (dict(schedule="constant"), {"accuracy"}),
    (dict(image_size=64), {"profile", "accuracy"}),
    (dict(skip_probes=["train_step"]), {"profile"}),
])
def test_job_identity_covers_settings(tmp_path, small_set, change, changed_kinds):
    def ids(**kw):
        options = dict(dict(threads=1, epochs=2, image_size=32), **kw)
        cfg = api.make_config("all", ["tiny_ok"], out=tmp_path, plugins=[PLUGIN], data_root=small_set, categories=["nut"],
                              **options)
        return {s.kind: s.job_id for s in api.Run(cfg).plan()}

    base, other = ids(), ids(**change)
    assert {kind for kind in base if base[kind] != other[kind]} == changed_kinds


def test_suites_with_other_probe_settings_do_not_share_ids(tmp_path, small_set):
    a = api.Run(api.make_config("all", ["tiny_ok"], out=tmp_path, plugins=[PLUGIN], data_root=small_set,
                                categories=["nut"])).plan()[0]
    b = api.Run(api.make_config("profile", ["tiny_ok"], out=tmp_path, plugins=[PLUGIN], image_size=32,
                                batch_size=1)).plan()[0]
    assert a.kind == b.kind == "profile" and a.prefix == b.prefix and a.job_id != b.job_id


def test_corrupt_job_file_is_named_and_rerun(tmp_path, capsys):
    first = quick(["tiny_ok"], tmp_path)
    path = run_folder.job_file(tmp_path, first["job_id"].iloc[0])
    path.write_text("{not json")
    again = quick(["tiny_ok"], tmp_path, resume=True)
    assert f"{path}: not a defectbench job record (not JSON" in capsys.readouterr().err
    assert (again["status"] == "ok").all() and json.loads(path.read_text())["complete"]


def test_fresh_run_replaces_the_old_results_at_once(tmp_path):
    quick(["tiny_ok"], tmp_path)
    spec = api.Run(api.make_config("quick", ["tiny_broken"], out=tmp_path, plugins=[PLUGIN], image_size=32,
                                   threads=1, executor="inline"))
    seen = {}
    from bench.executors.inline import InlineExecutor

    original = InlineExecutor.run

    def spy(self, specs, on_record, on_done, on_progress):  # look at results.json before any job has run
        seen["models"] = {r["model"] for r in json.loads((tmp_path / "results.json").read_text())["records"]}
        return original(self, specs, on_record, on_done, on_progress)

    InlineExecutor.run = spy
    try:
        spec.quiet = True
        spec.execute()
    finally:
        InlineExecutor.run = original
    assert seen["models"] == set(), "the old run's results were still there when the new run started"


def test_results_csv_is_replaced_atomically(tmp_path, monkeypatch):
    run_folder.write_results(tmp_path, [{"suite": "profile", "model": "a", "status": "ok"}], {})
    before = (tmp_path / "results.csv").read_text()
    real_write = Path.write_text

    def disk_full(self, text, *args, **kwargs):  # half the file reaches the disk, then the disk is full
        real_write(self, text[: len(text) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(OSError):
        run_folder.write_results(tmp_path, [{"suite": "profile", "model": "b" * 50, "status": "ok"}], {})
    monkeypatch.undo()
    assert (tmp_path / "results.csv").read_text() == before
    assert json.loads((tmp_path / "results.json").read_text())["records"][0]["model"] == "a"


def test_other_schema_folder_is_refused(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"schema": 1, "records": []}))
    with pytest.raises(ValueError, match="results schema 1"):
        quick(["tiny_ok"], tmp_path)
    assert not (tmp_path / "records").exists()


def test_dry_run_prints_the_plan_and_measures_nothing(tmp_path, capsys):
    quick(["tiny_ok"], tmp_path)
    plan = api.run("quick", ["tiny_ok", "tiny_broken"], threads=1, out=tmp_path, plugins=[PLUGIN], image_size=32,
                   executor="inline", dry_run=True)
    states = dict(zip(plan["model"], plan["state"]))
    assert states == {"tiny_ok": "done", "tiny_broken": "to run"}
    assert plan.set_index("model").loc["tiny_ok", "estimate_s"] == 0.0
    out = capsys.readouterr().out
    assert "2 jobs in" in out and "1 done, 1 to run" in out
    assert not list((tmp_path / "records").glob("*tiny_broken*"))


def test_skipped_probes_leave_their_columns_empty_and_the_rest_measured(tmp_path):
    frame = quick(["tiny_ok"], tmp_path, skip_probes=["train_step", "macs", "throughput"], variants=["torch-fp32"])
    ok = row(frame, "tiny_ok")
    assert ok["status"] == "ok" and ok["params"] > 0 and ok["latency_ms_p50"] > 0 and ok["peak_infer_mb"] > 0
    for col in ("train_step_ms_p50", "peak_train_mb", "gmacs", "throughput_ips", "probe_seconds_train_step"):
        assert col not in frame or pd.isna(ok[col]), col
    record = json.loads((tmp_path / "results.json").read_text())["records"][0]
    assert record["settings"]["skip_probes"] == ["macs", "throughput", "train_step"]


@pytest.mark.parametrize("suite, skip, message", [
    ("quick", ["train_steps"], "--skip-probes: unknown probe 'train_steps'; one of params, size, macs"),
    ("accuracy", ["macs"], "--skip-probes goes with a suite that profiles"),
])
def test_skip_probes_names_a_known_probe_of_a_profiling_suite(tmp_path, suite, skip, message):
    with pytest.raises(ValueError, match=message):
        api.run(suite, ["tiny_ok"], out=tmp_path, plugins=[PLUGIN], quiet=True, skip_probes=skip)
    assert not tmp_path.exists() or not any(tmp_path.iterdir()), "nothing written before the error"


def test_the_skippable_model_probes_are_the_ones_a_profile_job_runs():
    from bench import config
    from bench.jobs.profile import MODEL_PROBES

    assert config.MODEL_PROBE_NAMES == tuple(name for name, _ in MODEL_PROBES) + ("train_step",)


def test_unknown_model_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="--models: unknown model 'nope'"):
        api.run("quick", ["nope"], out=tmp_path, quiet=True)


def test_retry_failed_reruns_only_the_failed_jobs(tmp_path, capsys):
    first = quick(["tiny_ok", "tiny_broken"], tmp_path)
    again = quick(["tiny_ok", "tiny_broken"], tmp_path, resume=True, retry_failed=True)
    err = capsys.readouterr().err
    assert "failed before; --retry-failed runs it again" in err
    # `seconds` is a float clock reading: equal only when the record was reused, not re-measured
    assert row(again, "tiny_ok")["seconds"] == row(first, "tiny_ok")["seconds"]
    assert row(again, "tiny_broken", "ort-fp32")["seconds"] != row(first, "tiny_broken", "ort-fp32")["seconds"]
    assert row(again, "tiny_broken", "ort-fp32")["status"] == "failed"
