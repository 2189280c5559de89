"""scripts/scaling.py: the scheduling model and the per-job price, on constructed jobs and records."""
from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_script():
    spec = importlib.util.spec_from_file_location("scaling_script", ROOT / "scripts" / "scaling.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["scaling_script"] = module
    spec.loader.exec_module(module)
    return module


scaling = _load_script()
Job, Cluster, simulate = scaling.Job, scaling.Cluster, scaling.simulate


def jobs_of(seconds: list[float], timing: list[bool] | None = None) -> list:
    timing = timing or [False] * len(seconds)
    return [Job(f"j{i}", "m", "profile" if t else "accuracy", s, timing=t)
            for i, (s, t) in enumerate(zip(seconds, timing))]


# -- the scheduler -----------------------------------------------------------------------------------------
def test_one_worker_runs_the_jobs_back_to_back_in_plan_order():
    schedule = simulate(jobs_of([3.0, 1.0, 2.0]), Cluster(1, per_node=1))
    assert schedule.makespan == 6.0
    assert schedule.starts == {"j0": 0.0, "j1": 3.0, "j2": 4.0}


def test_known_jobs_on_n_workers():
    # 4 workers: 5, 4, 3, 2 start at once; 1 starts on the first worker to free up (the one running 2)
    schedule = simulate(jobs_of([5.0, 4.0, 3.0, 2.0, 1.0]), Cluster(4, per_node=4))
    assert schedule.starts["j4"] == 2.0
    assert schedule.makespan == 5.0
    # plan order can lose to longest-first: the long job submitted last starts last
    plan = jobs_of([1.0, 1.0, 1.0, 1.0, 4.0])
    assert simulate(plan, Cluster(2, per_node=2)).makespan == 6.0
    assert simulate(scaling.longest_first(plan), Cluster(2, per_node=2)).makespan == 4.0


def test_more_workers_than_jobs_gives_the_longest_job():
    jobs = jobs_of([7.0, 3.0, 2.0])
    assert simulate(jobs, Cluster(64, per_node=8)).makespan == 7.0


@pytest.mark.parametrize("seed", range(20))
def test_graham_bounds_hold_for_jobs_without_timing(seed):
    rng = random.Random(seed)
    jobs = jobs_of([rng.uniform(0.1, 50.0) for _ in range(rng.randint(1, 60))])
    workers = rng.choice([1, 2, 3, 8, 16, 64])
    cluster = Cluster(workers, per_node=min(8, workers))
    makespan = simulate(jobs, cluster).makespan
    total, longest = sum(j.seconds for j in jobs), max(j.seconds for j in jobs)
    assert max(longest, total / workers) - 1e-9 <= makespan <= total / workers + longest + 1e-9
    assert scaling.lower_bound(jobs, cluster) <= makespan + 1e-9
    assert makespan <= scaling.upper_bound(jobs, cluster) + 1e-9


@pytest.mark.parametrize("seed", range(20))
def test_bounds_hold_with_profile_jobs_holding_timing_slots(seed):
    rng = random.Random(100 + seed)
    n = rng.randint(2, 50)
    jobs = jobs_of([rng.uniform(0.1, 30.0) for _ in range(n)], [rng.random() < 0.3 for _ in range(n)])
    workers = rng.choice([1, 4, 8, 12, 64])
    cluster = Cluster(workers, per_node=min(8, workers), timing_slots=1)
    makespan = simulate(jobs, cluster).makespan
    assert scaling.lower_bound(jobs, cluster) - 1e-9 <= makespan <= scaling.upper_bound(jobs, cluster) + 1e-9


def _overlaps(schedule, jobs, ids):
    spans = sorted((schedule.starts[j.job_id], schedule.starts[j.job_id] + j.seconds, schedule.nodes[j.job_id])
                   for j in jobs if j.job_id in ids)
    return [(a, b) for a, b in zip(spans, spans[1:]) if b[0] < a[1] - 1e-12 and a[2] == b[2]]


def test_one_timing_slot_per_node_serialises_profile_jobs():
    # one node of 8 GPUs: 8 profile jobs run one after another, while accuracy jobs use the other GPUs
    jobs = jobs_of([2.0] * 8 + [1.0] * 6, [True] * 8 + [False] * 6)
    schedule = simulate(jobs, Cluster(8, per_node=8, timing_slots=1))
    timing = {j.job_id for j in jobs if j.timing}
    assert _overlaps(schedule, jobs, timing) == []
    assert schedule.makespan == 16.0
    assert max(schedule.starts[f"j{i}"] for i in range(8, 14)) == 0.0  # not held back by the waiting profiles
    # two timing slots halve it; eight nodes of one GPU (a slot each) run them all at once
    assert simulate(jobs, Cluster(8, per_node=8, timing_slots=2)).makespan == 8.0
    assert simulate(jobs, Cluster(8, per_node=1, timing_slots=1)).makespan == 3.0


def test_profile_jobs_on_different_nodes_may_overlap_but_never_on_one_node():
    rng = random.Random(7)
    jobs = jobs_of([rng.uniform(1, 5) for _ in range(40)], [i % 3 == 0 for i in range(40)])
    schedule = simulate(jobs, Cluster(16, per_node=4, timing_slots=1))
    timing = {j.job_id for j in jobs if j.timing}
    assert _overlaps(schedule, jobs, timing) == []
    spans = [(schedule.starts[j.job_id], schedule.starts[j.job_id] + j.seconds) for j in jobs if j.timing]
    side_by_side = [(a, b) for a in spans for b in spans if a < b and b[0] < a[1]]
    assert side_by_side  # several nodes, a slot each: some profile jobs do run at the same time


def test_cluster_topology_and_bad_clusters():
    assert Cluster(64, per_node=8).nodes() == [8] * 8
    assert Cluster(12, per_node=8).nodes() == [8, 4]
    with pytest.raises(ValueError):
        simulate(jobs_of([1.0]), Cluster(0))
    with pytest.raises(ValueError):
        simulate(jobs_of([1.0], [True]), Cluster(2, per_node=2, timing_slots=0))


def test_two_runs_add_up():
    jobs = [Job("a", "m", "accuracy", 4.0, run=0), Job("b", "m", "accuracy", 1.0, run=1),
            Job("c", "m", "accuracy", 1.0, run=1)]
    assert scaling.two_runs_makespan(jobs, Cluster(2, per_node=2)) == 5.0
    assert simulate(jobs, Cluster(2, per_node=2)).makespan == 4.0


# -- prices ------------------------------------------------------------------------------------------------
def test_steps_follow_the_loader():
    assert scaling.steps_per_epoch(209) == 26  # drop_last: 209 // 8
    assert scaling.steps_per_epoch(8) == 1
    assert scaling.steps_per_epoch(5) == 1  # one short batch: not dropped
    assert scaling.eval_batches(83) == 11


def cost(**kw):
    base = dict(model="m", image_size=256, batch_size=8, threads=1, train_step_ms=1000.0, eval_batch_ms=100.0,
                train_step_min_ms=900.0, eval_batch_min_ms=90.0, peak_train_mb=1.0, model_mb=1.0,
                cpu_peak_gflops=50.0, profile_seconds=60.0, gmacs=1.0, records=1)
    base.update(kw)
    return scaling.ModelCost(**base)


def test_accuracy_price_on_the_cpu_and_derived_for_the_gpu():
    a = scaling.Assumptions()
    bottle = scaling.accuracy_seconds(cost(), "mvtec", "bottle", a)
    assert bottle == pytest.approx(26 * 400 * 1.0 + 11 * 0.1)
    # GPU: x 50 GFLOP/s / (66.9 TFLOP/s x 0.25), floored at the per-step overhead
    scale = 50.0 / (66.9e3 * 0.25)
    gpu = scaling.accuracy_seconds(cost(), "mvtec", "bottle", a, gpu_efficiency=0.25)
    assert gpu == pytest.approx(26 * 400 * max(1.0 * scale, 0.005) + 11 * max(0.1 * scale, 0.002))
    tiny = scaling.accuracy_seconds(cost(train_step_ms=0.01, eval_batch_ms=0.01), "mvtec", "bottle", a, 0.25)
    assert tiny == pytest.approx(26 * 400 * 0.005 + 11 * 0.002)


def test_host_work_from_measured_rates():
    io = {"decode_ms": {"png_rgb_1024": 20.0, "bmp_rgb_1600": 30.0, "png_rgb_600": 5.0, "bmp_rgb_800x600": 8.0},
          "metrics_s_per_megapixel": 0.5}
    every = scaling.Assumptions(io=io)
    once = scaling.Assumptions(io=io, decode="once")
    pixels = 83 * 256 * 256 / 1e6
    assert scaling.host_seconds(every, "mvtec", "bottle", 209, 83, 256) == pytest.approx(
        (209 * 400 + 83) * 0.02 + 0.5 * pixels)
    assert scaling.host_seconds(once, "mvtec", "bottle", 209, 83, 256) == pytest.approx(
        (209 + 83) * 0.02 + 0.5 * pixels)
    assert scaling.host_seconds(scaling.Assumptions(), "mvtec", "bottle", 209, 83, 256) == 0.0


def _profile_record(model: str, **kw) -> dict:
    record = {"job_id": f"profile__{model}", "suite": "profile", "model": model, "variant": "torch-fp32",
              "status": "ok", "error": "", "image_size": 256, "batch_size": 8, "threads": 1,
              "train_step_ms_p50": 1000.0, "train_step_samples_ms": [900.0, 1000.0, 1100.0],
              "latency_ms_p50": 100.0, "latency_samples_ms": [80.0, 100.0, 120.0], "peak_train_mb": 10.0,
              "model_mb": 2.0, "device_peak_gflops": 50.0, "seconds": 60.0, "gmacs": 1.5}
    record.update(kw)
    return record


def _run_folder(path: Path, records: list[dict]) -> Path:
    from bench.run_folder import write_results

    write_results(path, records, {"note": "test"})
    return path


def test_records_are_read_per_model_with_medians_and_failures_named(tmp_path):
    run_a = _run_folder(tmp_path / "a", [_profile_record("unet"), _profile_record("vtadl", image_size=512),
                                         _profile_record("segnet", status="failed", error="train_step: out of memory",
                                                         train_step_ms_p50=None)])
    run_b = _run_folder(tmp_path / "b", [_profile_record("unet", train_step_ms_p50=3000.0,
                                                         train_step_samples_ms=[2000.0, 3000.0]),
                                         _profile_record("unet", variant="ort-fp32", train_step_ms_p50=1.0)])
    costs, notes = scaling.read_model_costs([run_a, run_b])
    assert [c.model for c in costs] == ["unet", "vtadl"]
    unet = costs[0]
    assert unet.records == 2 and unet.train_step_ms == 2000.0  # median of 1000 and 3000; ort row ignored
    assert unet.train_step_min_ms == pytest.approx((900.0 + 2000.0) / 2)
    assert any("segnet" in n and "out of memory" in n for n in notes)
    fastest, _ = scaling.read_model_costs([run_a], statistic="min")
    assert fastest[0].train_step_ms == 900.0 and fastest[0].eval_batch_ms == 80.0


def test_records_at_two_sizes_for_one_model_are_refused(tmp_path):
    run = _run_folder(tmp_path / "a", [_profile_record("unet"), _profile_record("unet", image_size=128)])
    with pytest.raises(SystemExit, match="several sizes"):
        scaling.read_model_costs([run])


def test_the_table_is_the_same_twice_and_bad_options_exit_2(tmp_path, capsys):
    run = _run_folder(tmp_path / "a", [_profile_record("unet"), _profile_record("pixel_stats", image_size=128,
                                                                                 train_step_ms_p50=5.0)])
    argv = ["table", str(run), "--gpus", "1,8", "--efficiency", "0.1,0.5"]
    assert scaling.main(argv) == 0
    first = capsys.readouterr().out
    assert scaling.main(argv) == 0
    assert capsys.readouterr().out == first
    assert "DERIVED with efficiency 0.5" in first and "| 8 | 1 |" in first
    # unet: 2 profile + 36 accuracy jobs in all; pixel_stats + unet planned = 2 profile + 36 accuracy
    assert "(38 jobs;" in first
    assert scaling.main(["table", str(run), "--gpus", "0"]) == 2
    assert scaling.main(["table", str(tmp_path / "missing")]) == 2
    assert scaling.main(["table", str(run), "--efficiency", "nan"]) == 2
    err = capsys.readouterr().err
    assert "missing: no such run folder" in err


def test_plan_order_is_the_runners(tmp_path):
    plan = scaling.paper_plan(["unet", "vtadl"])
    assert plan[0] == ("profile", "unet", "", "", 0)
    assert [p[3] for p in plan[1:16]] == sorted(scaling.MVTEC_AD)
    assert plan[16] == ("profile", "vtadl", "", "", 0)
    btad = [p for p in plan if p[4] == 1]
    assert [(p[1], p[3]) for p in btad] == [("unet", "01"), ("unet", "02"), ("unet", "03"),
                                            ("vtadl", "01"), ("vtadl", "02"), ("vtadl", "03")]
    assert len(plan) == 2 + 2 * 18


def test_peak_completions_counts_the_densest_minute():
    jobs = jobs_of([10.0, 20.0, 30.0, 100.0, 200.0])
    schedule = simulate(jobs, Cluster(5, per_node=5))
    assert scaling.peak_completions(schedule, jobs) == 3  # 10, 20, 30 s within one minute
    assert scaling.peak_completions(schedule, jobs, window=5.0) == 1
    steady = jobs_of([50.0, 50.0, 50.0])
    one = simulate(steady, Cluster(1, per_node=1))  # back to back: ends 50, 100, 150
    assert scaling.peak_completions(one, steady) == 2


def test_one_session_peak_or_each_runs_own():
    a_own, a_session = scaling.Assumptions(), scaling.Assumptions(cpu_peak_gflops=25.0)
    assert scaling.gpu_scale(cost(cpu_peak_gflops=50.0), a_own, 0.5) == pytest.approx(50.0 / (66.9e3 * 0.5))
    assert scaling.gpu_scale(cost(cpu_peak_gflops=50.0), a_session, 0.5) == pytest.approx(25.0 / (66.9e3 * 0.5))


def test_a_file_that_is_not_a_run_is_named_with_exit_2(tmp_path, capsys):
    other = tmp_path / "io.json"
    other.write_text(json.dumps({"decode_ms": {}}))
    assert scaling.main(["table", str(other)]) == 2
    assert "io.json" in capsys.readouterr().err
