"""The process executor: each job in its own child process. A model that aborts, hangs or eats memory costs
its own job only; a runner killed with SIGKILL resumes without rerunning what had finished."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bench import api, config

PLUGIN = str(Path(__file__).parent / "plugins" / "tiny_models.py")
REPO = Path(__file__).resolve().parents[1]
DETERMINISTIC = ["model", "variant", "status", "params", "trainable_params", "gmacs", "model_mb", "onnx_mb", "parity",
                 "image_size", "batch_size", "job_id"]


@pytest.mark.usefixtures("short_timing")  # the runner is under test, not the timing loops
def test_crash_hang_and_memory_hog_each_fail_alone(tmp_path):
    # tiny_hog asks for 4 GiB. The limit leaves room for what a real job maps beyond its imports: under 400 MB,
    # on a loaded machine, oneDNN could not map its kernels for tiny_ok ("could not create a primitive").
    frame = api.run("quick", ["tiny_abort", "tiny_ok", "tiny_sleep", "tiny_hog"], executor="process", threads=1,
                    image_size=32, out=tmp_path, plugins=[PLUGIN], job_timeout=15, job_memory_mb=1500, quiet=True)
    by_model = {m: g for m, g in frame.groupby("model")}
    assert (by_model["tiny_abort"]["status"] == "failed").all()
    assert by_model["tiny_abort"]["error"].str.contains(r"killed by signal 6 \(SIGABRT\)").all()
    assert (by_model["tiny_sleep"]["error"] == "timed out after 15 s").all()
    hog = by_model["tiny_hog"]
    assert (hog["status"] == "failed").all() and hog["error"].str.contains("out of memory at batch").all()
    assert hog["params"].notna().all(), "the probes that ran before the allocation kept their numbers"
    ok = by_model["tiny_ok"]
    assert (ok["status"] == "ok").all() and len(ok) == 2, ok["error"].tolist()
    assert ok["latency_ms_p50"].notna().all() and ok["train_step_ms_p50"].notna().all()
    assert api.exit_status(frame) == 1


def _complete_jobs(out: Path) -> dict[str, str]:
    done = {}
    for path in (out / "records").glob("*.json"):
        try:
            payload = json.loads(path.read_text())
        except ValueError:
            continue
        if payload.get("complete"):
            done[path.stem] = payload["records"][0]["started_at"]
    return done


def test_sigkill_then_resume_reruns_nothing_that_finished(tmp_path):
    models = "tiny_ok,tiny_broken"
    command = [sys.executable, "-m", "bench.cli", "run", "--suite", "quick", "--models", models, "--plugin", PLUGIN,
               "--image-size", "32", "--threads", "1", "--out", str(tmp_path / "killed")]
    runner = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.monotonic() + 300
    while not _complete_jobs(tmp_path / "killed") and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(runner.pid, signal.SIGKILL)  # the runner and its worker, mid-run
    runner.wait()
    before = _complete_jobs(tmp_path / "killed")
    assert len(before) == 1, "the kill did not land mid-run"
    partial = json.loads((tmp_path / "killed" / "results.json").read_text())["records"]
    assert {r["model"] for r in partial} <= set(models.split(","))  # results.json describes this run only

    resumed = subprocess.run(command + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 1, resumed.stderr  # tiny_broken fails its export
    after = _complete_jobs(tmp_path / "killed")
    assert len(after) == 2
    assert all(after[job] == started for job, started in before.items()), "a finished job ran again"

    clean = api.run("quick", models.split(","), executor="inline", threads=1, image_size=32, out=tmp_path / "clean",
                    plugins=[PLUGIN], quiet=True)
    killed = pd.read_csv(tmp_path / "killed" / "results.csv")
    key = ["model", "variant"]
    left = killed[DETERMINISTIC].sort_values(key).reset_index(drop=True)
    right = clean[DETERMINISTIC].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right, check_dtype=False)


def _children() -> list[tuple[str, int]]:
    import multiprocessing

    return sorted((c.name, c.pid) for c in multiprocessing.active_children() if c.name.startswith("defectbench-"))


def _run_watching_workers(specs) -> list[tuple[str, str, list]]:
    from bench.executors.process import ProcessExecutor

    seen = []
    ProcessExecutor().run(specs, lambda spec, record: seen.append((spec.kind, spec.model, record["status"] + record.get("error", ""), _children())),
                          lambda spec: None, lambda spec, text: None)
    assert _children() == [], "every worker is stopped at the end"
    return seen


@pytest.mark.usefixtures("short_timing")  # the runner is under test, not the timing loops
def test_next_models_worker_starts_beside_an_accuracy_job_and_never_beside_a_profile_job(tmp_path, monkeypatch):
    # the scheduling is what is checked: the `all` suite's end-to-end pipeline and line scenario (settings taken
    # into the job specs at planning, here) would only lengthen the profile jobs (pixel_stats' line: ~40 s)
    monkeypatch.setattr(config, "SUITE_E2E", {})
    cfg = api.make_config("all", ["tiny_ok", "pixel_stats"], threads=1, image_size=32, out=tmp_path / "all",
                          plugins=[PLUGIN], categories=["fabric"], epochs=1)
    specs = api.Run(cfg, quiet=True).plan()
    assert [(s.kind, s.model) for s in specs] == [("profile", "tiny_ok"), ("accuracy", "tiny_ok"),
                                                  ("profile", "pixel_stats"), ("accuracy", "pixel_stats")]
    seen = _run_watching_workers(specs)
    assert [status for _, _, status, _ in seen] == ["ok"] * len(seen)
    workers = {(kind, model): children for kind, model, _, children in seen}
    assert [name for name, _ in workers[("profile", "tiny_ok")]] == ["defectbench-tiny_ok"]
    beside = workers[("accuracy", "tiny_ok")]
    assert [name for name, _ in beside] == ["defectbench-pixel_stats", "defectbench-tiny_ok"]
    spare = dict(beside)["defectbench-pixel_stats"]
    assert workers[("profile", "pixel_stats")] == [("defectbench-pixel_stats", spare)], "the spare ran the next job"

    quick = api.Run(api.make_config("quick", ["tiny_ok", "pixel_stats"], threads=1, image_size=32,
                                    out=tmp_path / "quick", plugins=[PLUGIN]), quiet=True).plan()
    for kind, model, status, children in _run_watching_workers(quick):
        assert [name for name, _ in children] == [f"defectbench-{model}"], "a profile job ran beside another worker"
