"""The paper suite runs each method's authors' recipe (models/recipes.py, bench/plan.py): the planned job specs
carry the settings read from the authors' code and papers, written here as numbers with their source; the CPU
suites keep the project's choices; the deviations are listed; weight files are checked against torchvision's
published hash prefixes; the input crop and the test subset read the data as the authors' loaders did."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench import api
from bench.plan import plan_run, recipe_notice
from models import weights as published
from models.recipes import RECIPES, recipe_for

CATEGORIES = ["fabric"]


def paper_specs(model, **options):
    cfg = api.make_config("paper", [model], out="/tmp/unused", **options)
    specs = plan_run(cfg, [model], "cpu", 1, Path("/tmp/no-data"), CATEGORIES)
    return {s.kind: s for s in specs}


def test_vtadl_paper_suite_carries_the_authors_settings():
    # github pankajmishra000/VT-ADL @ 20b58e2
    job = paper_specs("vtadl")["accuracy"]
    s = job.settings
    assert s["recipe"] == "authors" and s["recipe_deviations"] == []
    assert s["model_args"]["mdn_objective"] == "paper"  # mdn1.py mdn_loss_function: pi-weighted sum of NLLs
    assert s["model_args"]["mdn_grad_accumulation"] is True  # train.py l.65: model.zero_grad() only
    assert s["model_args"]["ssim_padding"] == "zero"  # pytorch_ssim/__init__.py l.18: padding = window_size // 2
    assert s["model_args"]["checkpoint"] == "lowest_loss"  # train.py l.104-110: lowest mean epoch loss
    assert s["model_args"]["lr"] == 1e-4 and s["model_args"]["weight_decay"] == 1e-4  # train.py l.25, l.52
    assert job.batch_size == 8 and s["train_batch_size"] == 8  # train.py l.27
    assert s["epochs"] == 400  # train.py l.24
    assert s["schedule"] == "constant"  # train.py: no scheduler
    assert job.image_size == 512 and s["data_pipeline"] == {"resize": 550}  # mvtech.py l.189-190
    record = job.base_record()
    assert record["recipe"] == "authors" and record["recipe_deviations"] == []


def test_piade_paper_suite_carries_the_authors_settings_and_says_what_it_lacks():
    # github pankajmishra000/PIADE @ 6c17c29
    job = paper_specs("piade")["accuracy"]
    s = job.settings
    assert job.batch_size == 60 and s["train_batch_size"] == 60  # train.py l.30: mvtech.Mvtec(60, ...)
    assert s["model_args"]["lr"] == 1e-3 and s["model_args"]["weight_decay"] == 1e-3  # train.py l.44
    assert s["epochs"] == 400 and s["schedule"] == "constant"  # train.py l.25, no scheduler
    assert s["model_args"]["checkpoint"] == "last"  # train.py l.76: saved after the last epoch
    assert s["model_args"]["ssim_padding"] == "zero"  # pytorch_ssim/__init__.py l.18
    assert job.image_size == 120 and s["data_pipeline"] == {"resize": 156}  # mvtech.py l.151-152
    deviations = " | ".join(s["recipe_deviations"])
    # capsmod.py l.104 resnet50(pretrained=True), vgg_percep_loss.py l.15 vgg11(pretrained=True): not here
    assert "WARNING: resnet50 starts from random weights" in deviations
    assert "WARNING: vgg11 starts from random weights" in deviations
    # Testing_mvtech.py l.52 (batch 3) and l.125 (5 batches): 15 + 15 test images; the project evaluates all
    assert "first 15 normal" in deviations
    assert "test_subset" not in s.get("data_pipeline", {})


def test_pyramid_ae_and_capsnet_recipes_say_they_have_no_public_code():
    pyramid = paper_specs("pyramid_ae")["accuracy"]
    # no public code: PIADE's train.py (batch 60, Adam 1e-3 / 1e-3) and loader (156 -> 120), assumed
    assert pyramid.batch_size == 60 and pyramid.image_size == 120
    assert pyramid.settings["data_pipeline"] == {"resize": 156}
    assert any("no public code" in d for d in pyramid.settings["recipe_deviations"])
    capsnet = paper_specs("capsnet_ad")["accuracy"]
    # CapsNet (Sabour et al. 2017): 28 x 28 input, Adam at 1e-3; no crop
    assert capsnet.image_size == 28 and capsnet.settings["model_args"]["lr"] == 1e-3
    assert "data_pipeline" not in capsnet.settings
    assert any("no public code" in d for d in capsnet.settings["recipe_deviations"])


def test_every_choice_of_every_recipe_names_its_source():
    for recipe in RECIPES.values():
        for name, choice in recipe.choices().items():
            assert choice.source.strip(), (recipe.model, name)


def test_options_over_the_recipe_are_deviations_and_the_notice_prints_them():
    specs = paper_specs("vtadl", epochs=3, image_size=64, model_args={"mdn_objective": "mixture"})
    job = specs["accuracy"]
    assert job.settings["model_args"]["mdn_objective"] == "mixture"  # --model-arg wins over the recipe
    assert job.settings["model_args"]["mdn_grad_accumulation"] is True
    assert job.settings["data_pipeline"] == {"resize": 69}  # 64 * 550 / 512, then the centre 64 x 64
    deviations = job.settings["recipe_deviations"]
    assert any("3 epochs instead of the authors' 400" in d for d in deviations)
    assert any("mdn_objective=mixture instead of the authors' paper" in d for d in deviations)
    assert any("input 64 px" in d for d in deviations)
    lines = recipe_notice(list(specs.values()))
    assert lines[0].startswith("recipe: vtadl: the authors' recipe") and len(lines) == 1 + len(deviations)


def test_the_cpu_suites_keep_the_projects_choices_and_say_so():
    cfg = api.make_config("accuracy", ["vtadl", "piade"], out="/tmp/unused")
    for job in plan_run(cfg, ["vtadl", "piade"], "cpu", 1, Path("/tmp/no-data"), CATEGORIES):
        assert job.settings["model_args"] == {}  # the builders' defaults: mixture objective, valid SSIM, last
        assert job.batch_size == 8 and job.settings["schedule"] == "budget"
        assert not {"recipe", "recipe_deviations", "data_pipeline"} & set(job.settings)
        record = job.base_record()
        assert record["recipe"] == "project" and record["recipe_deviations"] == []
    assert recipe_for("fcn32") is None


def test_batch_size_and_test_subset_options_reach_every_suite():
    cfg = api.make_config("accuracy", ["piade"], out="/tmp/unused", train_batch_size=60, test_subset=15)
    job = plan_run(cfg, ["piade"], "cpu", 1, Path("/tmp/no-data"), CATEGORIES)[0]
    assert job.batch_size == 60 and job.settings["data_pipeline"] == {"test_subset": 15}


def test_published_weight_files_are_torchvisions_current_urls():
    # torchvision names each file <arch>-<first 8 hex digits of its sha256>.pth (torch.hub checks that prefix)
    import torchvision

    current = {torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url, torchvision.models.ResNet50_Weights.IMAGENET1K_V2.url,
               torchvision.models.VGG11_Weights.IMAGENET1K_V1.url, torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url}
    listed = {f.file_name for f in published.PUBLISHED_FILES}
    assert {url.rsplit("/", 1)[1] for url in current} <= listed
    assert published.PublishedFile("resnet50", "x", "resnet50-0676ba61.pth", True).sha256_prefix == "0676ba61"


def test_weight_check_by_hash_prefix(tmp_path, monkeypatch):
    from bench.plan import _weights_deviation

    path = tmp_path / "r50.pth"
    path.write_bytes(b"not really weights")
    assert published.check_weights_file(path).match is None
    cfg = api.make_config("paper", ["piade"], out="/tmp/unused", weights=str(path))
    assert "is not the resnet50 file the authors loaded" in _weights_deviation(cfg, "weights", "resnet50")
    monkeypatch.setattr(published, "file_sha256", lambda p: "0676ba61" + "0" * 56)  # IMAGENET1K_V1
    assert _weights_deviation(cfg, "weights", "resnet50") is None
    monkeypatch.setattr(published, "file_sha256", lambda p: "11ad3fa6" + "0" * 56)  # IMAGENET1K_V2: not theirs
    assert "NOT the authors'" in _weights_deviation(cfg, "weights", "resnet50")
    with pytest.raises(FileNotFoundError):
        published.check_weights_file(tmp_path / "missing.pth")


def test_resize_then_centre_crop_and_the_test_subset(tmp_path):
    # mvtech.py (both repositories): Resize((R, R)) then CenterCrop(S), torchvision's crop offset round((R-S)/2)
    from datasets.common import GOOD, Sample, SampleDataset

    rng = np.random.default_rng(0)
    image = (rng.random((40, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    samples = [Sample(tmp_path / "a.png", None, 0, GOOD)] * 3 + [Sample(tmp_path / "a.png", None, 1, "cut")] * 20
    data = SampleDataset(list(samples), 16, "test").use_pipeline(resize=21, test_subset=15)
    resized = np.asarray(Image.fromarray(image).resize((21, 21), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    expected = torch.from_numpy(resized[2:18, 2:18].transpose(2, 0, 1).copy())
    assert torch.equal(data[0]["image"], expected)
    assert [s.label for s in data.samples] == [0] * 3 + [1] * 15
