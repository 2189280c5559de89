"""Each method's recipe as its authors ran it: the one place that says how `--suite paper` trains and scores a
model, and where each choice comes from (a file and line of the authors' public code, or the paper).

A `Recipe` holds one `Choice` (value + source) per part of the protocol: objective, input pipeline, batch
size, optimiser, learning-rate schedule, epochs, checkpoint selection, score, test set and pretrained
weights, plus `model_args`, the builder arguments that carry those choices into the model (`--model-arg`
names). `bench/plan.py` applies a recipe to the paper suite's jobs and lists what still differs from it
(`recipe_deviations`); the CPU suites keep the project's own choices (the mixture MDN likelihood, valid-window
SSIM, the budget schedule, batch 8) and their records say `recipe: project`. The table in
docs/design/recipes.md is written from the same facts.

Sources: github pankajmishra000/VT-ADL at commit 20b58e2 and pankajmishra000/PIADE at commit 6c17c29 (file and
line below); the pyramidal autoencoder and the capsule-network detector have no public code, and their rows
say what was taken from where.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

AUTHORS = "authors"  # the `recipe` of a paper-suite record
PROJECT = "project"  # the `recipe` of every other suite's records


@dataclass(frozen=True)
class Choice:
    value: Any
    source: str


@dataclass(frozen=True)
class Recipe:
    model: str
    code: str  # where the authors' code is, or that there is none
    objective: Choice
    input_pipeline: Choice  # {"resize": R, "crop": S}: resize to R x R, keep the centre S x S
    batch_size: Choice
    optimizer: Choice  # {"name": "adam", "lr": ..., "weight_decay": ...}
    schedule: Choice  # "constant" (models.schedule's name for no schedule)
    epochs: Choice
    checkpoint: Choice  # "last" or "lowest_loss" (models.base.CHECKPOINTS)
    score: Choice
    test_set: Choice  # "all", or {"first": N}: the first N normal and N defective test images
    pretrained: Choice  # {run option: what it should name}, e.g. {"weights": "resnet50"}; {} when none
    model_args: dict = field(default_factory=dict)  # the builder arguments that carry the choices
    notes: tuple[str, ...] = ()  # what the paper suite cannot follow whatever the options (always a deviation)
    # The paper suite evaluates every test image even where the authors did not (PIADE): a sounder estimate;
    # `--test-subset N` reproduces theirs, and the deviation is recorded either way (bench/plan.py).

    def choices(self) -> dict[str, Choice]:
        return {name: getattr(self, name) for name in CHOICE_NAMES}

    def resize_for(self, image_size: int) -> int | None:
        """The side to resize to before the centre crop, scaled to `image_size` (the authors' own at their crop
        size: VT-ADL 550 for 512, PIADE 156 for 120); None when the authors resize without cropping."""
        pipeline = self.input_pipeline.value
        if not pipeline.get("resize") or pipeline["resize"] == pipeline["crop"]:
            return None
        return int(round(image_size * pipeline["resize"] / pipeline["crop"]))


CHOICE_NAMES = ("objective", "input_pipeline", "batch_size", "optimizer", "schedule", "epochs", "checkpoint", "score",
                "test_set", "pretrained")

VTADL_CODE = "github pankajmishra000/VT-ADL @ 20b58e2"
PIADE_CODE = "github pankajmishra000/PIADE @ 6c17c29"

RECIPES: dict[str, Recipe] = {
    "vtadl": Recipe(
        model="vtadl", code=VTADL_CODE,
        objective=Choice(
            {"loss": "5 MSE - 0.5 SSIM + MDN NLL", "mdn_objective": "paper", "mdn_grad_accumulation": True,
             "ssim_padding": "zero"},
            "train.py l.72-77 (loss), mdn1.py mdn_loss_function (pi-weighted sum of component NLLs), "
            "train.py l.65 (only model.zero_grad(): the MDN's gradients accumulate), "
            "pytorch_ssim/__init__.py l.18-27 (zero-padded window)"),
        input_pipeline=Choice({"resize": 550, "crop": 512}, "mvtech.py l.187-193 (Resize((550,550)), CenterCrop(512))"),
        batch_size=Choice(8, "train.py l.27 (--batch_size default 8)"),
        optimizer=Choice({"name": "adam", "lr": 1e-4, "weight_decay": 1e-4},
                         "train.py l.25 (lr 0.0001), l.52 (Adam over the autoencoder and the MDN, weight_decay 0.0001)"),
        schedule=Choice("constant", "train.py: no scheduler"),
        epochs=Choice(400, "train.py l.24 (--epochs default 400)"),
        checkpoint=Choice("lowest_loss", "train.py l.104-110 (saved when the epoch's mean loss <= the lowest so far)"),
        score=Choice("MSE + SSIM + max patch NLL; map: patch NLL upsampled, blurred (sigma 4)",
                     "test.py l.140-143 (loss1 - loss2 + loss3.max()), l.170-173 (bilinear upsampling, Filter)"),
        test_set=Choice("all", "mvtech.py l.195-196 and test.py l.42: every test image"),
        pretrained=Choice({}, "VT_AE.py: trained from scratch"),
        model_args={"mdn_objective": "paper", "mdn_grad_accumulation": True, "ssim_padding": "zero",
                    "checkpoint": "lowest_loss", "lr": 1e-4, "weight_decay": 1e-4},
    ),
    "piade": Recipe(
        model="piade", code=PIADE_CODE,
        objective=Choice({"loss": "MSE - SSIM + perceptual (VGG11 features[:4])", "ssim_padding": "zero"},
                         "train.py l.57-61; pytorch_ssim/__init__.py l.18-27 (zero-padded window)"),
        input_pipeline=Choice({"resize": 156, "crop": 120}, "mvtech.py l.149-156 (Resize((156,156)), CenterCrop(120))"),
        batch_size=Choice(60, "train.py l.30 (mvtech.Mvtec(60, ...))"),
        optimizer=Choice({"name": "adam", "lr": 1e-3, "weight_decay": 1e-3}, "train.py l.44"),
        schedule=Choice("constant", "train.py: no scheduler"),
        epochs=Choice(400, "train.py l.25 (n_epochs = 400)"),
        checkpoint=Choice("last", "train.py l.76 (saved once, after the last epoch)"),
        score=Choice("MSE - SSIM + perceptual, per image",
                     "Testing_mvtech.py l.145-155 (loss1 + loss2 + loss4 with loss2 = -SSIM)"),
        test_set=Choice({"first": 15},
                        "Testing_mvtech.py l.52 (batch_size = 3), l.125 (if no < 5): the first 5 batches of each "
                        "loader, at most 15 normal and 15 defective images in directory order"),
        pretrained=Choice({"weights": "resnet50", "vgg_weights": "vgg11"},
                          "capsmod.py l.101-104 (resnet50(pretrained=True)), vgg_percep_loss.py l.15 "
                          "(vgg11(pretrained=True).features[:4])"),
        model_args={"ssim_padding": "zero", "checkpoint": "last", "lr": 1e-3, "weight_decay": 1e-3},
    ),
    # No public code: the ICPR 2020 workshop paper describes the same family and the same loss as PIADE, by the
    # same authors; its training settings are taken from PIADE's code and say so.
    "pyramid_ae": Recipe(
        model="pyramid_ae", code="no public code (ICPR 2020 workshops paper)",
        objective=Choice({"loss": "MSE - SSIM + perceptual (VGG11 features[:4])", "ssim_padding": "zero"},
                         "the paper's loss (the same as PIADE's); SSIM as PIADE's code (pytorch_ssim), assumed"),
        input_pipeline=Choice({"resize": 156, "crop": 120}, "PIADE mvtech.py l.149-156, assumed (same authors)"),
        batch_size=Choice(60, "PIADE train.py l.30, assumed"),
        optimizer=Choice({"name": "adam", "lr": 1e-3, "weight_decay": 1e-3}, "PIADE train.py l.44, assumed"),
        schedule=Choice("constant", "PIADE train.py, assumed"),
        epochs=Choice(400, "PIADE train.py l.25, assumed"),
        checkpoint=Choice("last", "PIADE train.py l.76, assumed"),
        score=Choice("MSE - SSIM + perceptual, per image", "PIADE Testing_mvtech.py l.145-155, assumed"),
        test_set=Choice("all", "the project's: the paper's protocol is not public"),
        pretrained=Choice({"weights": "resnet18", "vgg_weights": "vgg11"},
                          "ImageNet trunk as PIADE's backbone (capsmod.py l.104), on the ResNet-18 of PIADE's figure"),
        model_args={"ssim_padding": "zero", "checkpoint": "last", "lr": 1e-3, "weight_decay": 1e-3},
        notes=("no public code: the training settings are PIADE's code's, assumed for the same authors' variant",),
    ),
    # No public code either: CapsNet's own training (Sabour et al. 2017) where the ICIAP paper follows it.
    "capsnet_ad": Recipe(
        model="capsnet_ad", code="no public code (ICIAP 2019 paper)",
        objective=Choice({"loss": "margin (0.9, 0.1, 0.5) + 0.0005 x squared reconstruction error"},
                         "Sabour et al. 2017, section 3 and 4.1, as the ICIAP paper's CapsNet"),
        input_pipeline=Choice({"resize": 28, "crop": 28}, "CapsNet's 28 x 28 input (Sabour et al. 2017)"),
        batch_size=Choice(8, "not published: the project's"),
        optimizer=Choice({"name": "adam", "lr": 1e-3, "weight_decay": 0.0}, "Sabour et al. 2017 (Adam, TensorFlow's "
                                                                             "default rate)"),
        schedule=Choice("constant", "not published: the project's paper-suite choice"),
        epochs=Choice(400, "not published: the paper suite's 400"),
        checkpoint=Choice("last", "not published: the project's"),
        score=Choice("|v_anomalous| - |v_normal|", "the ICIAP paper (capsule lengths)"),
        test_set=Choice("all", "the project's"),
        pretrained=Choice({}, "trained from scratch"),
        model_args={"lr": 1e-3},
        notes=("no public code: batch size, epochs and checkpoint are the project's",),
    ),
}


def recipe_for(model: str) -> Recipe | None:
    """The authors' recipe of a model, or None (the baselines and plugins: the project's settings)."""
    return RECIPES.get(model)
