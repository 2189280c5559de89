"""The line scenario (bench/line.py) against queueing theory, with a plugin model of known service time.

No absolute time limits: the model sleeps a known time S (tests/plugins/line_models.py), so what the generator
and the search find is checked as ratios to what was asked and to what theory predicts from S.
"""
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from bench.cli import app
from bench.line import (BatchPolicy, LineSettings, arrival_schedule, find_sustainable_rate, line_scenario, run_trial,
                        trial_record)
from bench.pipeline import PipelineSettings

PLUGIN = str(Path(__file__).parent / "plugins" / "line_models.py")
SMALL_FRAMES = PipelineSettings(camera_size="32x32", frames=2)


def inter_arrival_cv(times: np.ndarray) -> float:
    gaps = np.diff(times)
    return float(gaps.std() / gaps.mean())


def realised_rate(times: np.ndarray) -> float:
    return (len(times) - 1) / float(times[-1] - times[0])


@pytest.mark.parametrize("process, cv", [("periodic", 0.0), ("poisson", 1.0)])
def test_the_schedule_has_the_rate_and_variability_asked_for(process, cv):
    schedule = arrival_schedule(250.0, 80.0, process, seed=3)  # 20,000 arrivals
    assert len(schedule) == 20_000
    assert realised_rate(schedule) == pytest.approx(250.0, rel=0.01)
    assert inter_arrival_cv(schedule) == pytest.approx(cv, abs=0.02)
    if process == "poisson":  # exponential gaps: Kolmogorov-Smirnov against Exp(rate) does not reject
        assert stats.kstest(np.diff(schedule) * 250.0, "expon").pvalue > 0.01
        assert np.array_equal(schedule, arrival_schedule(250.0, 80.0, process, seed=3))  # seeded
        assert not np.array_equal(schedule, arrival_schedule(250.0, 80.0, process, seed=4))


@pytest.mark.parametrize("process, cv", [("periodic", 0.0), ("poisson", 1.0)])
def test_the_generator_issues_parts_on_schedule(process, cv):
    rate = 50.0  # a 20 ms mean gap; 150 parts
    schedule = arrival_schedule(rate, 3.0, process, seed=1)
    served = []
    trial = run_trial(served.extend, schedule, BatchPolicy(), deadline_ms=50.0)
    assert sorted(served) == list(range(len(schedule)))  # every part served once
    issued = trial.issued
    lateness = issued - trial.scheduled
    assert np.all(lateness >= 0)
    # A busy shared core delays the odd wake-up (make test runs beside other test processes): the typical part is
    # issued within a tenth of a gap of its time, and the rate over the trial holds to 1%.
    assert np.median(lateness) < 0.1 / rate
    assert realised_rate(issued) == pytest.approx(realised_rate(trial.scheduled), rel=0.01)
    gaps = np.diff(issued)
    if process == "periodic":
        assert realised_rate(issued) == pytest.approx(rate, rel=0.01)
        assert np.median(np.abs(gaps * rate - 1)) < 0.1 and inter_arrival_cv(issued) < 0.3
    else:
        assert inter_arrival_cv(issued) == pytest.approx(cv, abs=0.15)


def test_dynamic_batching_forms_batches_and_waits_at_most_max_wait():
    batches = []
    schedule = arrival_schedule(100.0, 1.0, "periodic")
    trial = run_trial(lambda parts: batches.append(list(parts)), schedule, BatchPolicy(4, 35.0), deadline_ms=100.0)
    assert max(len(b) for b in batches) == 4 and sum(len(b) for b in batches) == len(schedule)
    assert [p for b in batches for p in b] == list(range(len(schedule)))  # in arrival order
    # periodic 10 ms gaps, a 35 ms wait: four parts are waiting when the first has waited 30 ms
    latency = trial.latencies_ms[: 4 * (len(schedule) // 4)].reshape(-1, 4)
    assert np.median(latency[:, 0]) == pytest.approx(30.0, abs=5.0)
    assert np.all(latency[:, 0] < 35.0 + 10.0)


def test_the_search_brackets_then_bisects_and_stops_by_itself():
    capacity = 37.0  # a fake trial: passes at or below this rate

    def trial_at(rate):
        return {"rate_hz": rate, "passed": rate <= capacity}

    search = find_sustainable_rate(trial_at, 10.0, LineSettings(max_trials=30, tolerance=0.01, growth=1.5))
    assert capacity / 1.01 <= search.rate_hz <= capacity
    assert len(search.trials) < 30 and "within 1%" in search.decision
    capped = find_sustainable_rate(trial_at, 10.0, LineSettings(max_trials=3, growth=1.5))
    assert len(capped.trials) == 3 and capped.rate_hz == 22.5 and "--max-trials 3 reached" in capped.decision
    none = find_sustainable_rate(lambda rate: {"passed": False}, 10.0, LineSettings(max_trials=4))
    assert none.rate_hz is None and "no rate passed" in none.decision


def test_periodic_batch_1_sustains_1_over_s_and_misses_rise_beyond_it():
    """D/D/1: periodic arrivals, deterministic service S, deadline D > S. Below 1/S every part waits for
    nothing (latency S); above it part k waits k (S - 1/r), so at 1.2/S part k misses once k > 6 (D - S) / S.

    S is the model's 20 ms sleep plus the pipeline around it (decoding 32x32 frames, the torch call: about 1 ms
    on an idle core, more on a busy one); the server's throughput past capacity measures it: 1/S."""
    sleep_ms, deadline_ms = 20.0, 40.0
    frame = line_scenario("line_sleep", model_args={"service_ms": sleep_ms}, plugins=[PLUGIN],
                          pipeline_settings=SMALL_FRAMES,
                          line=LineSettings(deadline_ms=deadline_ms, seconds=1.5, max_trials=8, checks=(0.8, 1.2)))
    found = frame["sustainable_rate_hz"].iloc[0]
    search = frame[frame["kind"] == "search"]
    assert len(search) <= 8 and search["passed"].any() and not search["passed"].all()
    checks = frame[frame["kind"] == "check"].set_index("rate_factor")
    s = 1 / checks.loc[1.2, "throughput_ips"]  # a server busy all the time finishes a part every S
    assert sleep_ms / 1e3 <= s < 1.25 * sleep_ms / 1e3
    assert found * s == pytest.approx(1.0, abs=0.05)
    assert 0.8 <= found * sleep_ms / 1e3 <= 1.03  # never above what the sleep alone allows (+ the finite trial)
    assert checks.loc[0.8, "deadline_miss_rate"] <= 0.05 and checks.loc[0.8, "queue_len_mean"] <= 0.1
    assert checks.loc[0.8, "throughput_ips"] == pytest.approx(0.8 * found, rel=0.05)
    rate = 1.2 * found
    arrivals = int(checks.loc[1.2, "arrivals"])
    on_time = min(arrivals, math.floor((deadline_ms / 1e3 - s) / max(s - 1 / rate, 1e-9)) + 1)
    assert checks.loc[1.2, "deadline_miss_rate"] == pytest.approx(1 - on_time / arrivals, abs=0.08)
    assert checks.loc[1.2, "deadline_miss_rate"] > 0.5
    assert checks.loc[1.2, "queue_len_max"] > checks.loc[0.8, "queue_len_max"]


def test_dynamic_batching_keeps_up_where_batch_1_cannot():
    """A per-call cost of 20 ms at 100 parts/s: batch 1 serves 50/s and falls behind; batches of up to 4
    serve up to 200/s."""
    policies = [BatchPolicy(), BatchPolicy(4, 30.0)]
    frame = line_scenario("line_sleep", model_args={"service_ms": 20.0}, plugins=[PLUGIN], policies=policies,
                          pipeline_settings=SMALL_FRAMES, rate_hz=100.0,
                          line=LineSettings(deadline_ms=100.0, seconds=1.0)).set_index("max_batch")
    assert frame.loc[1, "deadline_miss_rate"] > 0.3 and not frame.loc[1, "passed"]
    assert frame.loc[4, "deadline_miss_rate"] == 0.0 and frame.loc[4, "passed"]
    assert frame.loc[4, "batch_size_mean"] >= 2.0
    assert frame.loc[4, "throughput_ips"] == pytest.approx(100.0, rel=0.1)


@pytest.mark.parametrize("args, message", [
    (["--rate", "0"], "--rate must be a finite number > 0"),
    (["--rate", "fast"], "--rate must be a number of Hz or 'search'"),
    (["--deadline-ms", "-1"], "--deadline-ms must be a finite number > 0"),
    (["--arrivals", "bursty"], "--arrivals must be one of periodic, poisson"),
    (["--batch", "0"], "--batch must be at least 1"),
    (["--max-wait-ms", "5"], "--max-wait-ms needs --batch above 1"),
    (["--seconds", "0"], "--seconds must be a finite number > 0"),
    (["--max-trials", "1"], "--max-trials must be at least 2"),
    (["--camera-size", "4x4"], "--camera-size: expected two sides between 8 and 16384"),
    (["--encoding", "webp"], "--encoding must be one of png, jpeg"),
    (["--variant", "torch-fp64"], "--variant: unknown variant 'torch-fp64'"),
    (["--variant", "ort-fp16"], "--variant ort-fp16 runs on CUDA only"),
    (["--model-arg", "colour=3"], "--model-arg: line_sleep takes no colour"),
])
def test_bad_input_is_one_line_naming_the_option_and_exit_2(args, message):
    result = CliRunner().invoke(app, ["line", "--model", "line_sleep", "--plugin", PLUGIN, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_bench_line_writes_results(tmp_path):
    out = tmp_path / "line"
    result = CliRunner().invoke(app, ["line", "--model", "line_sleep", "--plugin", PLUGIN, "--model-arg", "service_ms=5",
                                      "--rate", "50", "--seconds", "0.5", "--camera-size", "32x32", "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "line.json").read_text())
    record = payload["records"][0]
    assert record["model"] == "line_sleep" and record["kind"] == "fixed" and record["arrivals"] == 25
    assert len(record["line_latency_samples_ms"]) == 25 and payload["provenance"]["git_sha"]
    assert "line_latency_ms_p99" in (out / "line.csv").read_text().splitlines()[0]


def test_line_probe_flattens_each_policy_into_known_columns():
    """What the profile job records: per policy the sustainable rate, the lowest failing rate above it, and the
    miss rates at 0.8x, 1x (the search's own passing trial) and 1.2x, in columns the schema knows."""
    from bench.line import line_probe, policy_key
    from bench.pipeline import open_pipeline
    from bench.plugins import load_plugins
    from bench.schema import unknown_columns

    load_plugins([PLUGIN])
    from bench.line import build_detector

    options = {"deadline_ms": 40.0, "seconds": 0.6, "max_trials": 4, "tolerance": 0.05, "checks": [0.8, 1.2],
               "policies": [[1, 0.0], [4, 5.0]]}
    with open_pipeline(build_detector("line_sleep", model_args={"service_ms": 10.0}), SMALL_FRAMES) as pipeline:
        record = line_probe(pipeline, options, service_ms=11.0)
    assert unknown_columns(record) == []
    assert policy_key(BatchPolicy(4, 5.0)) == "b4w5" and policy_key(BatchPolicy(4, 2.5)) == "b4w2p5"
    for key in ("b1", "b4w5"):
        rate = record[f"line_{key}_sustainable_rate_hz"]
        assert rate is not None and record[f"line_{key}_search_trials"] <= 4
        if record[f"line_{key}_failing_rate_hz"] is not None:
            assert record[f"line_{key}_failing_rate_hz"] > rate
        assert {f"line_{key}_miss_rate_{x}" for x in ("x0p8", "x1", "x1p2")} <= set(record)
        assert record[f"line_{key}_miss_rate_x1"] <= 0.05  # the passing trial: p99 within the deadline
        assert len(record[f"line_{key}_trials"]) == record[f"line_{key}_search_trials"] + 2
    assert record["line_b1_sustainable_rate_hz"] * 0.010 <= 1.05  # batch 1 cannot beat 1/S
    assert record["line_b1_policy"] == "batch 1" and record["line_deadline_ms"] == 40.0


def test_line_probe_skips_a_pipeline_whose_own_p99_misses_the_deadline():
    from bench.line import line_probe

    record = line_probe(None, {"deadline_ms": 100.0, "policies": [[1, 0.0]]}, service_ms=90.0, service_p99_ms=130.0)
    assert "p99 (130 ms) is above the 100 ms deadline" in record["line_note"]
    assert not any(k.startswith("line_b1_") for k in record) and record["line_deadline_ms"] == 100.0
