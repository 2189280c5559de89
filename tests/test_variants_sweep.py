"""Batch sweeps end at the first out-of-memory batch, recorded as skipped: the allocators' real errors."""
import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from bench.probes import ProbeSettings
from bench.variants import batch_sweep, is_out_of_memory
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


def test_out_of_memory_at_the_jobs_own_batch_is_skipped_for_every_variant(tmp_path):
    from bench.variants import profile_variants

    rows = profile_variants(AllocatesBeyondMemory(limit=2).eval(), torch.rand(4, 3, 16, 16), "torch-fp32,ort-fp32",
                            settings(tmp_path))
    assert [(r["variant"], r["status"]) for r in rows] == [("torch-fp32", "skipped"), ("ort-fp32", "skipped")]
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
