"""Batch sweeps end at the first out-of-memory batch, recorded as skipped: the allocators' real errors."""
import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from bench.measure import ProbeSettings
from bench.variants import batch_sweep, is_out_of_memory, profile_variants
from bench.variants.ort_variants import OrtVariant
from bench.variants.torch_variants import TorchVariant


def settings(tmp_path):
    return ProbeSettings(threads=1, warmup=1, min_iters=3, max_iters=5, min_seconds=0.0, workdir=tmp_path)


class AllocatesBeyondMemory(nn.Module):
    """Above `limit` images it asks the CPU allocator for 2^48 bytes per image, more than any address space
    holds: the allocator raises its real error, as a batch too large for the machine would."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        if x.shape[0] > self.limit:
            torch.empty(x.shape[0] * 2**48, dtype=torch.uint8)
        return self.conv(x).mean(dim=(1, 2, 3)), self.conv(x)[:, 0]


def test_torch_out_of_memory_is_skipped_and_ends_the_sweep(tmp_path):
    module = AllocatesBeyondMemory(limit=2).eval()
    variant = TorchVariant("torch-fp32", module, torch.device("cpu"), {"runtime": "torch", "precision": "fp32"},
                           resident=0)
    rows = batch_sweep(variant, torch.rand(3, 16, 16), [8, 1, 2, 4, 16], settings(tmp_path))
    assert [r["batch_size"] for r in rows] == [1, 2, 4]  # in increasing order; 8 and 16 never tried
    assert [r["status"] for r in rows] == ["ok", "ok", "skipped"]
    assert rows[2]["error"].startswith("out of memory at batch 4")
    assert "can't allocate memory" in rows[2]["error"]
    assert rows[1]["peak_infer_mb"] > 0 and rows[1]["throughput_batch"] == 2


def test_out_of_memory_at_the_jobs_own_batch_fails_every_variant_with_its_cause(tmp_path):
    from bench.variants import profile_variants

    rows = profile_variants(AllocatesBeyondMemory(limit=2).eval(), torch.rand(4, 3, 16, 16), "torch-fp32,ort-fp32",
                            settings(tmp_path))
    assert [(r["variant"], r["status"]) for r in rows] == [("torch-fp32", "failed"), ("ort-fp32", "failed")]
    assert all(r["error"].startswith("out of memory at batch 4") for r in rows)


def oom_graph() -> bytes:
    """An ONNX graph whose working buffer is 2^(11 x batch) floats: fine at batch 1 and 2, past any memory
    at batch 4, where ONNX Runtime's arena fails to allocate."""
    n = helper.make_node
    nodes = [
        n("Shape", ["images"], ["shape"]), n("Gather", ["shape", "zero"], ["batch"], axis=0),
        n("Mul", ["batch", "eleven"], ["bits"]), n("Pow", ["two", "bits"], ["length"]),
        n("Unsqueeze", ["length", "axes"], ["size"]),
        n("ConstantOfShape", ["size"], ["buffer"], value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])),
        n("ReduceSum", ["buffer"], ["total"], keepdims=0),
        n("ReduceMean", ["images"], ["scores"], axes=[1, 2, 3], keepdims=0),
        n("Add", ["scores", "total"], ["out"]),
    ]
    consts = [numpy_helper.from_array(np.array(v, np.int64), k)
              for k, v in (("zero", 0), ("eleven", 11), ("two", 2), ("axes", [0]))]
    graph = helper.make_graph(nodes, "oom", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["b", 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b"])], consts)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_onnxruntime_allocation_failure_is_skipped_and_ends_the_sweep(tmp_path):
    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # the arena's failure is expected here: keep it out of the test log
    session = ort.InferenceSession(oom_graph(), sess_options=opts, providers=["CPUExecutionProvider"])
    variant = OrtVariant("ort-fp32", session, torch.device("cpu"), {"runtime": "onnxruntime", "precision": "fp32"})
    rows = batch_sweep(variant, torch.rand(1, 3, 8, 8), [1, 2, 4, 8], settings(tmp_path))
    assert [(r["batch_size"], r["status"]) for r in rows] == [(1, "ok"), (2, "ok"), (4, "skipped")]
    assert rows[2]["error"].startswith("out of memory at batch 4")
    assert rows[0]["peak_infer_mb"] is None  # ONNX Runtime exposes no allocation peak


def test_other_errors_fail_that_batch_only(tmp_path):
    class BreaksAtThree(nn.Module):
        def forward(self, x):
            if x.shape[0] == 3:
                raise ValueError("a bug at batch 3")
            return x.mean(dim=(1, 2, 3))

    variant = TorchVariant("torch-fp32", BreaksAtThree(), torch.device("cpu"), {"runtime": "torch", "precision": "fp32"},
                           resident=0)
    rows = batch_sweep(variant, torch.rand(1, 3, 4, 4), [2, 3, 4], settings(tmp_path))
    assert [r["status"] for r in rows] == ["ok", "failed", "ok"]
    assert rows[1]["error"] == "batch 3: ValueError: a bug at batch 3"


def test_out_of_memory_classifier():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(MemoryError())
    try:
        torch.empty(2**50, dtype=torch.uint8)
    except RuntimeError as exc:
        assert is_out_of_memory(exc)
    wrapped = RuntimeError("probe failed")
    wrapped.__cause__ = MemoryError()
    assert is_out_of_memory(wrapped)
    assert not is_out_of_memory(ValueError("shape mismatch"))
    with pytest.raises(ValueError, match="batch sizes must be >= 1"):
        batch_sweep(None, torch.rand(3, 4, 4), [0], None)


class SleepsPerImage(nn.Module):
    """About `seconds` of wall time per image: a variant as slow as emulated bf16 on a CPU, scaled down."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.conv = nn.Conv2d(3, 1, 1)

    def forward(self, x):
        import time

        time.sleep(self.seconds * x.shape[0])
        return self.conv(x)[:, 0].amax(dim=(1, 2)), self.conv(x)[:, 0]


def test_a_throughput_measurement_too_slow_to_make_is_not_made_and_says_why(tmp_path, monkeypatch):
    import bench.variants.probe as probe

    monkeypatch.setattr(probe, "THROUGHPUT_SECONDS_LIMIT", 1.0)
    # 20 ms per image: five calls at batch 16 would take about 1.6 s, over the (lowered) limit of 1 s
    slow = dict(settings(tmp_path).__dict__, throughput_batch=16)
    rows = probe.profile_variants(SleepsPerImage(0.02).eval(), torch.rand(1, 3, 8, 8), "torch-fp32",
                                  ProbeSettings(**slow))
    row = rows[0]
    assert row["status"] == "ok" and row["latency_ms_p50"] >= 20
    assert row["throughput_ips"] is None and row["notes"].startswith("throughput not measured: five calls at batch 16")
    monkeypatch.setattr(probe, "THROUGHPUT_SECONDS_LIMIT", 120.0)  # the default: measured
    rows = probe.profile_variants(SleepsPerImage(0.02).eval(), torch.rand(1, 3, 8, 8), "torch-fp32",
                                  ProbeSettings(**slow))
    assert 0 < rows[0]["throughput_ips"] <= 50.5  # measured: 16 images cannot take less than the 0.32 s slept


class Narrow(nn.Module):
    """Takes at most `limit` images: a model whose throughput batch is beyond what it accepts. Counts its calls."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit, self.calls = limit, 0
        self.conv = nn.Conv2d(3, 1, 1)

    def forward(self, x):
        self.calls += 1
        if x.shape[0] > self.limit:
            raise RuntimeError(f"this model takes at most {self.limit} images, got {x.shape[0]}")
        return self.conv(x)[:, 0].amax(dim=(1, 2)), self.conv(x)[:, 0]


def test_a_throughput_failure_fails_the_row_and_keeps_its_latency(tmp_path):
    slow = dict(settings(tmp_path).__dict__, throughput_batch=4)
    row = profile_variants(Narrow(2).eval(), torch.rand(2, 3, 8, 8), "torch-fp32", ProbeSettings(**slow))[0]
    assert row["status"] == "failed" and row["error"].startswith("throughput:") and "at most 2 images" in row["error"]
    assert row["latency_ms_p50"] > 0 and row.get("throughput_ips") is None


def test_throughput_at_the_latency_batch_is_the_latency_calls_and_costs_no_call(tmp_path):
    s = settings(tmp_path)
    example = torch.rand(2, 3, 8, 8)
    at_batch = Narrow(2).eval()  # throughput batch 2 = the latency batch: no call at another batch, none extra
    row = profile_variants(at_batch, example, "torch-fp32", ProbeSettings(**dict(s.__dict__, throughput_batch=2)))[0]
    assert row["status"] == "ok" and row["throughput_batch"] == 2
    assert row["throughput_ips"] == pytest.approx(2 / (row["latency_ms_p50"] / 1e3))
    larger = Narrow(8).eval()  # throughput batch 4: its own calls (at least one warm-up and three timed)
    row4 = profile_variants(larger, example, "torch-fp32", ProbeSettings(**dict(s.__dict__, throughput_batch=4)))[0]
    assert row4["throughput_batch"] == 4 and row4["throughput_ips"] > 0
    assert larger.calls >= at_batch.calls + 4
    skipped = profile_variants(Narrow(2).eval(), example, "torch-fp32",
                               ProbeSettings(**dict(s.__dict__, throughput_batch=4, throughput=False)))[0]
    assert skipped["status"] == "ok" and skipped.get("throughput_ips") is None, "left out: no call at batch 4"
