"""The end-to-end pipeline (bench/pipeline.py): every stage is timed, the stages make up the total, the frames decode
to what was encoded, and the record names the libraries it used."""
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.line import build_detector
from bench.pipeline import (STAGES, PipelineSettings, camera_frames, open_pipeline, parse_camera_size,
                            stage_latency)
from bench.plugins import load_plugins

PLUGIN = str(Path(__file__).parent / "plugins" / "line_models.py")
QUICK = dict(camera_size="96x64", frames=2, warmup=2, min_iters=8, max_iters=8, min_seconds=0.0)


@pytest.fixture(scope="module", autouse=True)
def plugin_models():
    load_plugins([PLUGIN])


@pytest.mark.parametrize("decoder", ["torchvision", "pillow"])
@pytest.mark.parametrize("encoding", ["png", "jpeg"])
def test_stages_exist_are_positive_and_sum_to_the_total(decoder, encoding):
    record = stage_latency(build_detector("line_sleep", model_args={"service_ms": 2.0}),
                           PipelineSettings(decoder=decoder, encoding=encoding, **QUICK))
    total = np.asarray(record["e2e_total_samples_ms"])
    parts = np.sum([record[f"e2e_{stage}_samples_ms"] for stage in STAGES], axis=0)
    for stage in (*STAGES, "total"):
        assert record[f"e2e_{stage}_n"] == 8
        assert record[f"e2e_{stage}_ms_p50"] > 0 and record[f"e2e_{stage}_ms_p99"] >= record[f"e2e_{stage}_ms_p50"]
        assert all(v > 0 for v in record[f"e2e_{stage}_samples_ms"])
    assert np.allclose(parts, total, rtol=1e-3, atol=1e-3)  # the samples are rounded to 0.1 us
    # the network stage is the model's 2 ms sleep: the largest part, and not all of it
    assert record["e2e_network_ms_p50"] >= 2.0
    assert 0 < record["e2e_outside_network_share"] < 1
    assert decoder in record["e2e_decoder"].lower() or (decoder == "pillow" and "PIL" in record["e2e_decoder"])
    assert ("torchvision" if decoder == "torchvision" else "PIL") in record["e2e_resize"]
    assert record["e2e_camera_size"] == "96x64" and record["e2e_input_size"] == 32
    assert record["variant"] == "torch-fp32" and record["runtime"] == "torch"


@pytest.mark.parametrize("decoder", ["torchvision", "pillow"])
def test_the_pipeline_decodes_what_was_encoded_and_decides_by_the_threshold(decoder):
    settings = PipelineSettings(camera_size="48x40", frames=2, threshold=0.5, decoder=decoder)
    png = camera_frames(48, 40, "png", 2, "nut", 0)
    detector = build_detector("line_sleep", model_args={"service_ms": 0.0})
    with open_pipeline(detector, settings) as pipeline:
        decoded = pipeline.decode(png[0])
        pixels = decoded.permute(1, 2, 0).numpy() if decoder == "torchvision" else np.asarray(decoded)
        images = pipeline.preprocess([decoded, pipeline.decode(png[1])])
        assert tuple(images.shape) == (2, 3, 32, 32) and images.dtype == torch.float32
        assert 0.0 <= float(images.min()) <= float(images.max()) <= 1.0
        result = pipeline.process(list(png))
        assert tuple(result.maps.shape) == (2, 40, 48)  # the map at the camera resolution (height 40, width 48)
        assert result.decisions.tolist() == [False, False]  # the sleeping model scores 0, not above 0.5
        pipeline.settings = PipelineSettings(camera_size="48x40", frames=2, threshold=-1.0, decoder=decoder)
        assert pipeline.process([png[0]]).decisions.tolist() == [True]
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png[0])) as image:  # PNG is lossless: the decoded pixels are the encoded ones
        expected = np.asarray(image.convert("RGB"))
    assert pixels.shape == (40, 48, 3) and np.array_equal(pixels, expected)


def test_torchvision_and_pillow_resize_agree_to_about_a_grey_level():
    frames = camera_frames(256, 256, "png", 1, "nut", 0)
    detector = build_detector("line_sleep", model_args={"service_ms": 0.0})
    inputs = {}
    for decoder in ("torchvision", "pillow"):
        with open_pipeline(detector, PipelineSettings(camera_size=256, frames=1, decoder=decoder)) as pipeline:
            inputs[decoder] = pipeline.preprocess([pipeline.decode(frames[0])])
    difference = (inputs["torchvision"] - inputs["pillow"]).abs() * 255
    assert float(difference.mean()) < 1.0 and float(difference.max()) <= 8


def test_a_prepared_variant_needs_the_input_size_and_bad_settings_name_their_option():
    with pytest.raises(ValueError, match="--camera-size"):
        PipelineSettings(camera_size="big")
    with pytest.raises(ValueError, match="--decoder"):
        PipelineSettings(decoder="opencv")
    with pytest.raises(ValueError, match="--encoding"):
        PipelineSettings(encoding="bmp")
    assert parse_camera_size("1280x1024") == (1280, 1024) and parse_camera_size(512) == (512, 512)
    from bench.measure import ProbeSettings
    from bench.variants import prepare_variant

    detector = build_detector("line_sleep", model_args={"service_ms": 0.0})
    variant = prepare_variant("torch-fp32", detector.inference_module(), torch.rand(1, 3, 32, 32), ProbeSettings())
    with pytest.raises(ValueError, match="input size"):
        with open_pipeline(variant, PipelineSettings()):
            pass
    record = stage_latency(variant, PipelineSettings(input_size=32, **QUICK))
    assert record["variant"] == "torch-fp32" and record["e2e_total_n"] == 8


def test_ort_fp32_runs_the_variants_own_export_and_agrees_with_torch():
    load_plugins([str(Path(__file__).parent / "plugins" / "tiny_models.py")])
    frames = camera_frames(64, 64, "png", 1, "nut", 0)
    results = {}
    for variant in ("torch-fp32", "ort-fp32"):
        with open_pipeline(build_detector("tiny_ok"), PipelineSettings(camera_size=64, frames=1,
                                                                      variant=variant)) as pipeline:
            results[variant] = pipeline.process([frames[0]])
            assert pipeline.facts["runtime"] == ("torch" if variant == "torch-fp32" else "onnxruntime")
    assert np.allclose(results["torch-fp32"].scores, results["ort-fp32"].scores, atol=1e-5)
    assert torch.allclose(results["torch-fp32"].maps, results["ort-fp32"].maps, atol=1e-5)


def test_the_profile_jobs_probe_gives_known_columns_and_reuses_the_frames_file(tmp_path):
    """pipeline_probe (what the profile job runs on each default variant): e2e_* columns, all named by the schema,
    the frames written once to the scratch folder and read back; the line scenario skipped, saying why, when
    the pipeline is slower than `max_service_ms`."""
    from bench.measure import ProbeSettings
    from bench.line import pipeline_probe
    from bench.schema import unknown_columns
    from bench.variants import prepare_variant

    detector = build_detector("line_sleep", model_args={"service_ms": 3.0})
    example = torch.rand(1, 3, 32, 32)
    variant = prepare_variant("torch-fp32", detector.inference_module(), example, ProbeSettings(threads=1))
    settings = {"pipeline": {k: v for k, v in QUICK.items()},
                "line": {"deadline_ms": 50.0, "seconds": 0.3, "max_trials": 2, "policies": [[1, 0.0]],
                         "max_service_ms": 1.0}}
    record = pipeline_probe(variant, example, settings, frames_dir=tmp_path)
    assert unknown_columns(record) == [] and record["e2e_total_n"] == 8
    assert record["e2e_network_ms_p50"] >= 3.0 and record["e2e_input_size"] == 32
    assert record["line_note"].startswith("line scenario not run") and "line_b1_sustainable_rate_hz" not in record
    (frames_file,) = tmp_path.glob("frames-*.pickle")
    stamp = frames_file.stat().st_mtime_ns
    pipeline_probe(variant, example, {"pipeline": settings["pipeline"]}, frames_dir=tmp_path)
    assert frames_file.stat().st_mtime_ns == stamp  # read, not rendered and written again


def test_the_all_suite_plans_the_e2e_probe_and_the_line_for_its_line_models_only():
    from bench import config
    from bench.api import make_config
    from bench.plan import plan_run

    def profile_e2e(suite: str) -> dict:
        cfg = make_config(suite, ["unet", "fcn32"], threads=1)
        return {s.model: s.settings.get("e2e") for s in plan_run(cfg, ["unet", "fcn32"], "cpu", 1, None, ["nut"])
                if s.kind == "profile"}

    planned = profile_e2e("all")
    assert planned["unet"]["variants"] == ["torch-fp32", "ort-fp32"]
    assert planned["unet"]["line"]["deadline_ms"] == config.SUITE_LINE["all"]["line"]["deadline_ms"]
    assert planned["fcn32"]["pipeline"] and planned["fcn32"]["line"] is None  # too slow for a 100 ms line
    assert profile_e2e("quick") == {"unet": None, "fcn32": None}  # the CI gate's suite is unchanged
