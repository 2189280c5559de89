"""The runner end to end on tiny registered detectors: records, files, and failure isolation."""
import json

import pytest
import torch
from torch import nn

from bench import api, results
from models import registry
from models.base import Detector

PROFILE_COLUMNS = ["params", "trainable_params", "gmacs", "mac_counter", "model_mb", "fwd_bwd_mb_est",
                   "peak_infer_mb", "peak_train_mb", "onnx_mb", "onnx_max_abs_diff", "onnx_parity",
                   "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_mean", "latency_iqr_ratio",
                   "throughput_ips", "ort_latency_ms_p50", "ort_latency_ms_p90", "ort_latency_ms_p99",
                   "train_step_ms_p50", "achieved_gflops", "peak_fraction"]


class HeatNet(nn.Module):
    def __init__(self, fail_export: bool):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 1, 1)
        self.fail_export = fail_export

    def forward(self, x):
        if self.fail_export and torch.compiler.is_exporting():
            raise RuntimeError("this model refuses to export")
        heat = torch.sigmoid(self.head(torch.relu(self.conv(x))))[:, 0]
        return heat.flatten(1).amax(1), heat


class TinyDetector(Detector):
    name = "tiny"

    def __init__(self, image_size: int, fail_export: bool = False):
        super().__init__(image_size)
        self.net = HeatNet(fail_export)

    def modules_to_save(self):
        return {"net": self.net}

    def inference_module(self):
        return self.net

    def training_step(self, images, masks, optimizer):
        optimizer.zero_grad()
        _, heat = self.net(images)
        loss = nn.functional.binary_cross_entropy(heat, masks)
        loss.backward()
        optimizer.step()
        return float(loss.detach())


@pytest.fixture
def tiny_models(monkeypatch):
    registry._load_zoo()
    for name, fail in (("tiny_ok", False), ("tiny_broken", True)):
        entry = registry.ModelEntry(name, "detector", "test", 64, lambda image_size, f=fail: TinyDetector(image_size, f))
        monkeypatch.setitem(registry._REGISTRY, name, entry)


def test_failed_probe_is_isolated(tiny_models, tmp_path):
    frame = api.run("quick", ["tiny_broken", "tiny_ok"], threads=1, out=tmp_path, quiet=True, argv=["test"])
    ok = frame.set_index("model").loc["tiny_ok"]
    broken = frame.set_index("model").loc["tiny_broken"]
    assert ok["status"] == "ok" and ok["error"] == ""
    for col in PROFILE_COLUMNS:
        assert not pd_isna(ok[col]), col
    assert ok["onnx_parity"] == "pass"
    assert broken["status"] == "failed"
    assert broken["error"].startswith("onnx:") and "refuses to export" in broken["error"]
    # what was measured before and after the failing probe is kept
    assert broken["params"] == ok["params"] and not pd_isna(broken["latency_ms_p50"])
    assert not pd_isna(broken["train_step_ms_p50"])


def test_run_files_are_self_contained(tiny_models, tmp_path):
    api.run("quick", ["tiny_ok"], threads=1, out=tmp_path, seed=3, quiet=True, argv=["bench", "run"])
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["schema"] == results.SCHEMA
    prov = payload["provenance"]
    for key in ("python", "torch", "onnxruntime", "cpu", "threads", "git_sha", "seed", "command", "timestamp"):
        assert key in prov, key
    assert prov["seed"] == 3 and prov["threads"] == 1
    (record,) = payload["records"]
    assert len(record["latency_samples_ms"]) == record["latency_n"]
    # each job's record file stands alone: its own provenance beside it
    job_file = tmp_path / "records" / f"{record['job_id']}.json"
    alone = json.loads(job_file.read_text())
    assert alone["record"]["latency_ms_p50"] == record["latency_ms_p50"]
    assert alone["provenance"]["command"] == "bench run"
    csv = (tmp_path / "results.csv").read_text().splitlines()
    assert csv[0].startswith("suite,model,family") and "latency_samples_ms" not in csv[0]


def test_resume_keeps_finished_jobs(tiny_models, tmp_path):
    first = api.run("quick", ["tiny_ok"], threads=1, out=tmp_path, quiet=True)
    again = api.run("quick", ["tiny_ok"], threads=1, out=tmp_path, quiet=True, resume=True)
    assert again["latency_ms_p50"].iloc[0] == first["latency_ms_p50"].iloc[0]  # not re-measured


def test_unknown_model_is_one_clear_error(tmp_path):
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        api.run("quick", ["nope"], out=tmp_path, quiet=True)


def pd_isna(value):
    import pandas as pd

    return bool(pd.isna(value))
