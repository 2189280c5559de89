"""The Ray executor on a real local Ray instance (2 CPUs, one for the module): the same records as the process
executor, records streamed into the driver's folder while a job still runs, a worker killed mid-task costs its
own job only, --resume hands Ray only the unfinished jobs, and a cluster without the timing resource is refused
before any job runs."""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'defectbench[ray]' (CI installs it)")

from bench import api  # noqa: E402
from bench.executors.ray_executor import TIMING_RESOURCE, RayExecutor, start_local  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "tests" / "plugins" / "tiny_models.py")
KILLER = str(REPO / "tests" / "plugins" / "ray_models.py")
DETERMINISTIC = ["model", "variant", "status", "params", "trainable_params", "gmacs", "model_mb", "onnx_mb", "parity",
                 "job_id", "image_size", "batch_size"]
SMALL = dict(threads=1, image_size=32, quiet=True)
pytestmark = pytest.mark.usefixtures("short_timing")  # the executor is under test, not the timing loops


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def bare_cluster(tmp_path_factory):
    """A Ray head started the way a user might forget to: without the timing resource. Started before the
    module's own instance so that the two start-ups overlap; stopped through its own process (never `ray stop`,
    which would stop every Ray instance on the machine).

    Token authentication is set, not left to Ray: head and client get a token of their own in their environment.
    Left alone, `ray start` turns it on whenever ~/.ray/auth_token exists (any earlier ray.init() on the machine
    writes one), while a client given an address sends the token only with RAY_AUTH_MODE=token in its environment,
    which this process gains when `local_ray` calls ray.init(): the refusal test failed whenever it ran first."""
    port = _free_port()
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    log = tmp_path_factory.mktemp("bare-head") / "ray-start.log"
    head = subprocess.Popen([str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={port}",
                             "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                            env=dict(os.environ, **auth))
    yield head, log, f"127.0.0.1:{port}", auth  # the head listens on every interface of this machine
    head.terminate()  # `ray start --block` drains and stops what it started
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(head.pid, signal.SIGKILL)  # anything left in its process group
    except ProcessLookupError:
        pass
    # `ray start` names its head in this file for `ray.init()` calls on the machine; a dead head must not stay named.
    current = Path("/tmp/ray/ray_current_cluster")
    if current.is_file() and current.read_text().strip().endswith(f":{port}"):
        current.unlink()


@pytest.fixture(scope="module")
def local_ray(bare_cluster):
    start_local(num_cpus=2)  # what `--executor ray` starts without an address; the runs below reuse it
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_quick(local_ray, tmp_path_factory):
    """The quick suite on the Ray executor: two plugin models that finish (one fails its ONNX export) and two
    whose forward kills the worker (SIGABRT, which leaves a crash report; SIGKILL, which leaves none)."""
    from tests.conftest import shorten_timing

    out = tmp_path_factory.mktemp("ray-quick")
    with pytest.MonkeyPatch.context() as patch:  # the same settings as the tests that resume or repeat this run
        shorten_timing(patch)
        frame = api.run("quick", ["tiny_ok", "tiny_broken", "tiny_abort", "tiny_killed"], executor="ray", out=out,
                        plugins=[TINY, KILLER], **SMALL)
    return frame, out


def _deterministic(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[DETERMINISTIC].sort_values(["model", "variant"]).reset_index(drop=True)


def test_same_deterministic_fields_as_the_process_executor(ray_quick, tmp_path):
    frame, _ = ray_quick
    process = api.run("quick", ["tiny_ok", "tiny_broken"], executor="process", out=tmp_path, plugins=[TINY], **SMALL)
    on_ray = frame[frame["model"].isin(["tiny_ok", "tiny_broken"])]
    assert len(on_ray) == 4
    pd.testing.assert_frame_equal(_deterministic(on_ray), _deterministic(process), check_dtype=False)
    broken = on_ray.set_index("variant").loc[lambda f: f["model"] == "tiny_broken"]
    assert broken.loc["ort-fp32", "status"] == "failed" and "refuses to export" in broken.loc["ort-fp32", "error"]


def test_a_worker_killed_mid_task_fails_its_own_job_and_the_run_completes(ray_quick):
    frame, out = ray_quick
    by_model = {m: g for m, g in frame.groupby("model")}
    aborted, killed = by_model["tiny_abort"], by_model["tiny_killed"]
    assert len(aborted) == len(killed) == 2  # one failed record per variant the job owed
    assert (aborted["status"] == "failed").all() and (killed["status"] == "failed").all()
    assert aborted["error"].str.contains(r"Ray worker killed by signal 6 \(SIGABRT\)").all()
    assert killed["error"].str.contains("died mid-task").all() and killed["error"].str.contains("SIGKILL").all()
    ok = by_model["tiny_ok"]
    assert (ok["status"] == "ok").all() and ok["latency_ms_p50"].notna().all() and ok["onnx_mb"].notna().any()
    assert api.exit_status(frame) == 1
    jobs = [json.loads(p.read_text()) for p in (out / "records").glob("*.json")]
    assert len(jobs) == 4 and all(job["complete"] for job in jobs)
    assert len(json.loads((out / "results.json").read_text())["records"]) == 8


def test_resume_hands_ray_only_the_unfinished_job(ray_quick, tmp_path):
    frame, out = ray_quick
    folder = tmp_path / "resumed"
    shutil.copytree(out, folder)
    jobs = {json.loads(p.read_text())["records"][0]["model"]: p for p in (folder / "records").glob("*.json")}
    interrupted = json.loads(jobs["tiny_broken"].read_text())
    interrupted["complete"] = False  # what a runner killed mid-job leaves
    jobs["tiny_broken"].write_text(json.dumps(interrupted))
    started = {m: json.loads(p.read_text())["records"][0]["started_at"] for m, p in jobs.items()}

    resumed = api.run("quick", ["tiny_ok", "tiny_broken", "tiny_abort", "tiny_killed"], executor="ray", out=folder,
                      plugins=[TINY, KILLER], resume=True, **SMALL)
    after = {m: json.loads(p.read_text()) for m, p in jobs.items()}
    assert all(job["complete"] for job in after.values())
    assert [m for m in after if after[m]["records"][0]["started_at"] != started[m]] == ["tiny_broken"]
    assert len(after["tiny_broken"]["records"]) == 2  # the rerun's records only, not appended to the old ones
    pd.testing.assert_frame_equal(_deterministic(resumed), _deterministic(frame), check_dtype=False)


def test_accuracy_records_stream_into_the_drivers_folder_while_the_job_runs(local_ray, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative --out: the workers must write where the driver reads
    cfg = api.make_config("accuracy", ["tiny_ok"], threads=1, image_size=32, out="run", plugins=[TINY],
                          categories=["fabric"], train_minutes=[0.02, 0.15])
    specs = api.Run(cfg, quiet=True).plan()
    later_checkpoint_seen, records, done, progress = [], [], [], []

    def on_record(spec, record):
        later = [m for m in spec.stages if m > record["train_minutes"]]
        checkpoints = tmp_path / "run" / "checkpoints"
        later_checkpoint_seen.append(any((checkpoints / f"{spec.job_id}__{m:g}min.safetensors").exists()
                                         for m in later))
        records.append((spec.job_id, record))

    RayExecutor().run(specs, on_record, lambda spec: done.append(spec.job_id), lambda s, text: progress.append(text))
    assert sorted(done) == sorted(s.job_id for s in specs)
    assert len(records) == 2 and all(r["status"] == "ok" for _, r in records)
    # The first stage's record reached the driver before the same job had saved its second stage's weights.
    assert not any(later_checkpoint_seen)
    for _, record in records:
        assert (tmp_path / "run" / record["checkpoint"]).is_file()
        assert (tmp_path / "run" / record["gallery_file"]).is_file()
    assert any(text.startswith("running on ") for text in progress)


def test_a_cluster_without_the_timing_resource_is_refused_before_any_job(bare_cluster, tmp_path):
    head, log, address, auth = bare_cluster
    deadline = time.monotonic() + 180
    while "Ray runtime started" not in log.read_text() and head.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)  # `ray start --block` prints its banner once the head is up
    out = tmp_path / "refused"
    command = [sys.executable, "-m", "bench.cli", "run", "--suite", "quick", "--models", "tiny_ok", "--plugin", TINY,
               "--image-size", "32", "--threads", "1", "--executor", "ray", "--ray-address", address, "--out", str(out)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, **auth))
    assert result.returncode == 2, result.stderr
    message = [line for line in result.stderr.splitlines() if TIMING_RESOURCE in line]
    assert len(message) == 1, result.stderr
    assert f"--ray-address {address}" in message[0] and f"--resources '{{\"{TIMING_RESOURCE}\": N}}'" in message[0]
    assert not list(out.glob("records/*.json")), "a job ran on a cluster that cannot keep timing jobs apart"
