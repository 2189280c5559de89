"""Deployment variants on a tiny segmenter: every CPU variant's record, the skip rules, parity, the roofline
per precision, the math-mode records. Real ONNX Runtime sessions, real quantisers, real torch.compile."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from bench.measure import ProbeSettings
from bench.variants import (CPU_VARIANTS, PARITY_RTOL, VARIANTS, VariantUnavailable, cpu_flags, math_mode,
                            measure_peaks, parity, parse_variants, prepare_variant, profile_variants, roofline_for,
                            variant_probe)
from bench.variants.mathmode import fp32_math
from bench.variants.probe import merge_latency
from bench.variants.torch_variants import TorchVariant


class TinySegmenter(nn.Module):
    """images [B,3,16,16] -> (scores [B], maps [B,16,16]): the shape of every detector's inference graph."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                 nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 1))

    def forward(self, images):
        maps = torch.sigmoid(self.net(images)[:, 0])
        return maps.flatten(1).amax(dim=1), maps


def tiny_module(seed=0):
    torch.manual_seed(seed)
    module = TinySegmenter().eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so folding them is exercised
        module.net[1].running_mean.uniform_(-0.2, 0.2)
        module.net[1].running_var.uniform_(0.5, 1.5)
    return module


def quick_settings(tmp_path, **kw):
    return ProbeSettings(threads=1, warmup=2, min_iters=5, max_iters=8, min_seconds=0.0, throughput_batch=4,
                         workdir=tmp_path, **kw)


TINY_GMACS = (16 * 16 * (8 * 3 * 9 + 8 * 8 * 9 + 8)) / 1e9  # the three convolutions of one image


@pytest.fixture(scope="module")
def cpu_rows(tmp_path_factory):
    """One profile of every CPU variant, with a short batch sweep (the expensive part, shared by the tests)."""
    settings = quick_settings(tmp_path_factory.mktemp("variants"))
    calibration = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    peaks = {"fp32": 50.0, "bf16": 20.0, "int8": 100.0}  # given, so the roofline arithmetic is checkable
    example = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    rows = profile_variants(tiny_module(), example, "cpu", settings, batch_sizes=[1, 2, 4],
                            calibration_images=calibration, gmacs=TINY_GMACS, peaks=peaks, rounds=2)
    return rows, peaks


def main_rows(rows):
    return {r["variant"]: r for r in rows if r["batch_size"] == 2}


def test_parse_variants():
    assert parse_variants(None) == ["torch-fp32", "ort-fp32"]
    assert parse_variants("ort-fp32,torch-fp32") == ["torch-fp32", "ort-fp32"]  # table order
    assert parse_variants("all") == list(VARIANTS)
    assert "torch-fp16" not in parse_variants("cpu") and "torch-bf16" in parse_variants("cpu")
    with pytest.raises(ValueError, match="--variants: unknown variant 'int4'"):
        parse_variants("torch-fp32,int4")


def test_every_cpu_variant_is_measured_with_its_columns(cpu_rows):
    rows, peaks = cpu_rows
    by_name = main_rows(rows)
    assert list(by_name) == list(CPU_VARIANTS)
    for name, row in by_name.items():
        assert row["status"] == "ok", (name, row["error"])
        assert row["runtime"] == VARIANTS[name].runtime and row["precision"] == VARIANTS[name].precision
        assert len(row["latency_samples_ms"]) == row["latency_n"] >= 10  # two interleaved rounds pooled
        assert row["latency_rounds"] == 2
        assert row["latency_ms_p50"] == pytest.approx(np.median(row["latency_samples_ms"]), rel=1e-6)
        assert row["latency_ms_p50"] <= row["latency_ms_p90"] <= row["latency_ms_p99"]
        assert row["throughput_ips"] > 0 and row["throughput_batch"] == 4
        assert row["math_mode"]
        own = max(peaks["fp32"], peaks.get(row["precision"], 0.0))
        assert row["best_kernel_gflops"] == own
        assert row["achieved_gflops"] == pytest.approx(2 * TINY_GMACS * 2 / (row["latency_ms_p50"] / 1e3))
        assert row["best_kernel_ratio"] == pytest.approx(row["achieved_gflops"] / own)


def test_torch_rows_measure_peak_memory_and_ort_rows_leave_it_empty(cpu_rows):
    by_name = main_rows(cpu_rows[0])
    resident = sum(p.numel() * 4 for p in tiny_module().parameters()) / 1e6
    for name, row in by_name.items():
        if row["runtime"] == "torch":
            assert row["peak_infer_mb"] > resident, name
            assert row["provider"] == "torch-cpu"
        else:
            assert row["peak_infer_mb"] is None, name
            assert row["provider"] == "CPUExecutionProvider"
            assert row["onnx_mb"] > 0 and row["onnx_files"] >= 1 and row["onnx_export_seconds"] > 0
    assert by_name["ort-fp32"]["onnx_files"] == 2  # graph + external weights, as the exporter writes them
    assert by_name["ort-int8-static"]["onnx_files"] == 1  # the quantiser writes one self-contained file
    assert "MinMax over 16 calibration images" in by_name["ort-int8-static"]["quantisation"]
    assert by_name["torch-compile"]["compile_seconds"] > 0


def test_parity_against_fp32_with_the_precisions_tolerance(cpu_rows):
    by_name = main_rows(cpu_rows[0])
    assert by_name["torch-fp32"]["parity"] is None  # the reference itself
    for name, row in by_name.items():
        if name == "torch-fp32":
            continue
        assert row["parity"] == "pass", (name, row["parity_rel_diff"])
        assert row["parity_tolerance"] == PARITY_RTOL[row["precision"]]
        assert 0 <= row["parity_max_abs_diff"] <= 1e-5 + row["parity_tolerance"]  # maps are in [0, 1]
    assert by_name["ort-fp32"]["parity_max_abs_diff"] < 1e-4
    assert by_name["torch-bf16"]["parity_max_abs_diff"] > 0  # bf16 does round


def test_batch_sweep_rows_per_variant_and_size(cpu_rows):
    rows = cpu_rows[0]
    sweep = [r for r in rows if r["batch_size"] != 2]
    for name in CPU_VARIANTS:
        mine = {r["batch_size"]: r for r in sweep if r["variant"] == name}
        assert sorted(mine) == [1, 4], name  # the job's own batch (2) is the main row
        for batch, row in mine.items():
            assert row["status"] == "ok" and row["throughput_batch"] == batch
            assert row["throughput_ips"] == pytest.approx(batch / (row["latency_ms_p50"] / 1e3))
    torch_fp32 = {r["batch_size"]: r for r in sweep if r["variant"] == "torch-fp32"}
    assert torch_fp32[4]["peak_infer_mb"] > torch_fp32[1]["peak_infer_mb"]  # activations grow with the batch


@pytest.mark.parametrize("name", ["torch-fp16", "torch-tf32", "torch-compile-cudagraphs", "ort-fp16"])
def test_cuda_only_variants_are_skipped_on_cpu_with_the_reason(name, tmp_path):
    rows = profile_variants(tiny_module(), torch.rand(1, 3, 16, 16), name, quick_settings(tmp_path))
    assert [r["variant"] for r in rows] == [name]
    assert rows[0]["status"] == "skipped"
    assert "CUDA" in rows[0]["error"]


def test_static_int8_without_calibration_images_is_skipped(tmp_path):
    rows = profile_variants(tiny_module(), torch.rand(1, 3, 16, 16), "ort-int8-static", quick_settings(tmp_path))
    assert rows[0]["status"] == "skipped" and "calibration images" in rows[0]["error"]


def test_ort_on_a_cuda_run_without_the_cuda_provider_is_skipped_not_run_on_cpu(tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    settings = quick_settings(tmp_path, device=torch.device("cuda"))
    with pytest.raises(VariantUnavailable, match="no CUDAExecutionProvider"):
        prepare_variant("ort-fp32", tiny_module(), torch.rand(1, 3, 16, 16), settings)


def test_a_wrong_variant_fails_parity(tmp_path):
    settings = quick_settings(tmp_path)
    module = tiny_module()
    x = torch.rand(2, 3, 16, 16)
    broken = copy.deepcopy(module)
    with torch.no_grad():
        broken.net[5].bias += 0.5  # a shifted logit: what a wrong layout or a dropped op looks like
    reference = tuple(t.clone() for t in module(x))
    wrong = TorchVariant("torch-fp32", broken, torch.device("cpu"), {"runtime": "torch", "precision": "fp32"},
                         resident=0)
    row = variant_probe(wrong, x, settings, reference=reference)
    assert row["parity"] == "fail" and row["parity_max_abs_diff"] > 0.05
    right = TorchVariant("torch-fp32", module, torch.device("cpu"), {"runtime": "torch", "precision": "fp32"},
                         resident=0)
    assert variant_probe(right, x, settings, reference=reference)["parity"] == "pass"


def test_parity_rule_per_output_scale_and_precision():
    ref = (torch.tensor([1000.0, -2000.0]), torch.tensor([[0.5, 0.25]]))
    # 1.0 off on a 2000-scale output: within fp32's 1e-3 of its own scale; the maps are exact
    assert parity(ref, (torch.tensor([1001.0, -2000.0]), ref[1]), "fp32")["parity"] == "pass"
    # the same 0.01 on the 0.5-scale maps: 2% of their scale, fails fp32, passes bf16's 16 u
    off = (ref[0], torch.tensor([[0.51, 0.25]]))
    assert parity(ref, off, "fp32")["parity"] == "fail"
    got = parity(ref, off, "bf16")
    assert got["parity"] == "pass" and got["parity_rel_diff"] == pytest.approx(0.02, rel=1e-5)
    assert got["parity_p99_abs_diff"] == pytest.approx(0.99 * 0.01, rel=1e-3)  # one of two elements is off
    assert parity(ref, (ref[0], torch.tensor([[float("nan"), 0.25]])), "bf16")["parity"] == "fail"
    with pytest.raises(RuntimeError, match="outputs"):
        parity(ref, ref[:1], "fp32")


def test_ort_outputs_stay_valid_across_calls(tmp_path):
    variant = prepare_variant("ort-fp32", tiny_module(), torch.rand(2, 3, 16, 16), quick_settings(tmp_path))
    try:
        a, b = torch.rand(2, 3, 16, 16), torch.rand(3, 3, 16, 16)  # a new batch size: dynamic batch
        first = variant(a)
        kept = tuple(t.clone() for t in first)
        second = variant(b)
        assert second[1].shape == (3, 16, 16)
        assert all(torch.equal(k, f) for k, f in zip(kept, first))
        with torch.no_grad():
            expected = tiny_module()(b)
        assert torch.allclose(second[1], expected[1], atol=1e-5)
    finally:
        variant.close()
    assert not variant.owned_exports.root.exists()  # its own export is removed on close


def test_fp16_conversion_keeps_fp32_inputs_and_outputs(tmp_path):
    """ort-fp16 runs on CUDA only; its graph conversion is checked here through the CPU provider."""
    import onnxruntime as ort

    from bench.variants.ort_variants import OnnxExports
    from bench.variants.quantise import convert_fp16

    module, x = tiny_module(), torch.rand(2, 3, 16, 16)
    exports = OnnxExports(module, x, quick_settings(tmp_path))
    try:
        path, _ = convert_fp16(exports.fp32(), exports.root / "fp16" / "model.onnx")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].type == "tensor(float)"
        maps = session.run(None, {session.get_inputs()[0].name: x.numpy()})[1]
        with torch.no_grad():
            expected = module(x)[1].numpy()
        assert maps.dtype == np.float32
        assert np.abs(maps - expected).max() <= 1e-5 + PARITY_RTOL["fp16"] * np.abs(expected).max()
    finally:
        exports.cleanup()


def test_merge_latency_pools_samples_and_resummarises():
    a = {"latency_ms_p50": 1.0, "latency_n": 3, "latency_samples_ms": [1.0, 1.0, 1.0], "latency_iqr_ratio": 0.0}
    b = {"latency_ms_p50": 3.0, "latency_n": 3, "latency_samples_ms": [3.0, 3.0, 3.0], "latency_iqr_ratio": 0.0}
    got = merge_latency([a, b])
    assert got["latency_samples_ms"] == [1.0] * 3 + [3.0] * 3
    assert got["latency_n"] == 6 and got["latency_ms_p50"] == 2.0
    assert set(got) == set(a)  # no column that the timing routine did not produce


def test_roofline_uses_the_larger_of_fp32_and_the_variants_peak():
    peaks = {"fp32": 100.0, "bf16": 40.0, "int8": 400.0}
    assert roofline_for(10.0, 1.0, 1, peaks, "bf16")["best_kernel_gflops"] == 100.0  # emulated bf16: fp32 is higher
    got = roofline_for(10.0, 1.0, 1, peaks, "int8")
    assert got["best_kernel_gflops"] == 400.0 and got["best_kernel_ratio"] == pytest.approx(200.0 / 400.0)
    assert "best_kernel_ratio" not in roofline_for(10.0, 1.0, 1, {}, "fp32")
    # a ratio to a measured kernel, not a fraction of the hardware's peak: a model faster than the kernel reads > 1
    faster = roofline_for(10.0, 1.0, 1, {"fp32": 150.0}, "fp32", {"fp32": "onnxruntime Conv3x3"})
    assert faster["best_kernel_ratio"] == pytest.approx(200.0 / 150.0) and faster["best_kernel_ratio"] > 1
    assert faster["best_kernel"] == "onnxruntime Conv3x3 (fp32)"


def test_measured_peaks_cover_what_the_cpu_runs():
    peaks = measure_peaks(torch.device("cpu"), threads=1, seconds=0.05)
    assert set(peaks) == {"fp32", "bf16", "int8"}  # no fp16 or tf32 arithmetic on a CPU
    assert all(v > 0 for v in peaks.values())


def test_cpu_flags_from_cpuinfo():
    text = "processor : 0\nflags : fpu sse4_2 avx avx2 fma f16c avx512f avx512_vnni amx_tile amx_bf16 ht\n"
    assert cpu_flags(text) == "amx_bf16,amx_tile,avx,avx2,avx512_vnni,avx512f,f16c,fma,sse4_2"
    assert cpu_flags("no flags here") == ""
    assert "avx2" in cpu_flags() or cpu_flags() == "" or "avx" not in cpu_flags()


def test_math_mode_records_and_restores_the_tf32_flags():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with fp32_math("tf32", torch.device("cuda")):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert math_mode("cuda")["cudnn_allow_tf32"] is True
    with fp32_math("ieee", torch.device("cuda")):
        assert math_mode("cuda")["cuda_matmul_allow_tf32"] is False
        assert math_mode("cuda")["cudnn_allow_tf32"] is False
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    cpu = math_mode("cpu")
    assert "cudnn_allow_tf32" not in cpu and cpu["cpu_capability"]


def test_compiled_variant_compiles_into_its_own_cache_and_removes_it(tmp_path, monkeypatch):
    """A shared inductor cache with a kernel left empty by a killed run failed every later compile of that graph
    (ImportError on the empty .so): each compiled variant now compiles into a folder of its own."""
    shared = tmp_path / "shared-cache"
    shared.mkdir()
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(shared))
    settings = quick_settings(tmp_path / "job")
    example = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    variant = prepare_variant("torch-compile", tiny_module(), example, settings)
    try:
        own = variant.cache_dir
        assert own is not None and own.parent == tmp_path / "job"
        assert list(own.rglob("*.so")), "the kernels were not compiled into the variant's own folder"
        variant(torch.rand(3, 3, 16, 16))  # a new batch shape: compiled there too
        assert len(list(own.rglob("*.so"))) >= 2
        assert not list(shared.rglob("*.so"))
        import os
        assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(shared)  # restored after each compile
    finally:
        variant.close()
    assert not own.exists()


def test_the_denominator_is_the_best_of_the_kernels_and_the_ratio_is_against_it(monkeypatch, tmp_path):
    """A torch matmul slower than ONNX Runtime's convolution (as on this project's CPU) no longer sets the peak: the
    fraction is against the fastest kernel, the record names it, and the run's workers share one measurement."""
    from bench.jobs import profile
    from bench.variants import peaks as peaks_module

    fake = {"torch matmul": 60.0, "onnxruntime Conv3x3": 90.0, "onnxruntime MatMul": 80.0}
    calls = []

    def kernel(rate):
        return lambda device, precision, seconds, threads: calls.append(rate) or rate

    monkeypatch.setitem(peaks_module.PEAK_KERNELS, ("cpu", "fp32"), {k: kernel(v) for k, v in fake.items()})
    assert peaks_module.measure_peak(torch.device("cpu"), "fp32", seconds=0.01) == 90.0
    monkeypatch.setattr(profile, "_PEAKS", {})
    peaks, kernels = profile.device_peaks(torch.device("cpu"), 1, {"fp32"}, 0.01, cache_dir=tmp_path)
    assert peaks == {"fp32": 90.0} and kernels == {"fp32": "onnxruntime Conv3x3"}
    row = roofline_for(10.0, 0.36, 1, peaks, "fp32", kernels)  # 72 GFLOP/s achieved: above the matmul's 60
    assert row["best_kernel_ratio"] == pytest.approx(72.0 / 90.0) and row["best_kernel_ratio"] < 1
    assert row["best_kernel"] == "onnxruntime Conv3x3 (fp32)"
    measured = len(calls)
    monkeypatch.setattr(profile, "_PEAKS", {})  # another worker of the same run: reads the file, measures nothing
    assert profile.device_peaks(torch.device("cpu"), 1, {"fp32"}, 0.01, cache_dir=tmp_path) == (peaks, kernels)
    assert len(calls) == measured
