"""What `register_model` checks when a builder is registered (models/registry.py): a mistake fails on import,
naming the builder and what to add, instead of under one suite's option."""
import pytest
from torch import nn

import models
from models import registry
from models.base import Detector


class ToyDetector(Detector):
    uses_labels = True

    def __init__(self, image_size: int):
        super().__init__(image_size)
        self.net = nn.Conv2d(3, 1, 1)

    def modules_to_save(self):
        return {"net": self.net}

    def inference_module(self):
        return self.net

    def training_step(self, images, masks, optimizer):
        return 0.0


@pytest.fixture(autouse=True)
def own_registry(monkeypatch):
    """Each test registers into a copy of the table, so its toy models leave no trace."""
    registry._load_zoo()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def register(family="detector", name="toy_model"):
    return registry.register_model(name, family=family, paper="test", input_size=16)


def test_a_detector_builder_without_its_return_annotation_fails_at_registration():
    def build_toy(image_size: int = 16):
        return ToyDetector(image_size)

    with pytest.raises(TypeError) as raised:
        register()(build_toy)
    message = str(raised.value)
    assert "'toy_model'" in message and "build_toy" in message
    assert "must annotate the Detector class it returns" in message and "-> MyDetector" in message
    assert "toy_model" not in registry._REGISTRY


def test_a_well_declared_detector_registers_and_its_class_is_read_without_building_it():
    @register()
    def build_toy(image_size: int = 16, seed: int = 0) -> ToyDetector:
        raise AssertionError("not built to read its class")

    assert models.get_entry("toy_model").builder is build_toy
    assert models.detector_class("toy_model") is ToyDetector and models.uses_labels("toy_model")


def test_a_string_annotation_resolves_against_the_builders_module():
    @register()
    def build_toy(image_size: int = 16) -> "ToyDetector":
        return ToyDetector(image_size)

    assert models.detector_class("toy_model") is ToyDetector


@pytest.mark.parametrize("annotation, fragment", [
    ("nn.Module", "not a subclass of models.base.Detector"),
    ("'NoSuchDetector'", "cannot be resolved"),
])
def test_a_return_annotation_that_is_not_a_detector_fails(annotation, fragment):
    namespace = {"nn": nn, "ToyDetector": ToyDetector}
    exec(f"def build_toy(image_size: int = 16) -> {annotation}:\n    pass", namespace)
    with pytest.raises(TypeError, match=fragment):
        register()(namespace["build_toy"])


def test_a_detector_builder_must_take_image_size():
    def build_toy(size: int = 16) -> ToyDetector:
        return ToyDetector(size)

    with pytest.raises(TypeError, match="must take image_size="):
        register(family="baseline")(build_toy)


def test_every_argument_but_image_size_needs_a_default():
    def build_toy(image_size: int, depth: int) -> ToyDetector:
        return ToyDetector(image_size)

    with pytest.raises(TypeError, match="needs a default for depth"):
        register()(build_toy)


def test_a_segmenter_needs_no_annotation_but_keyword_arguments_with_defaults():
    @register(family="segmenter", name="toy_segmenter")
    def build_segmenter(in_channels: int = 3, classes: int = 1):
        return nn.Conv2d(in_channels, classes, 1)

    assert models.get_entry("toy_segmenter").builder is build_segmenter

    def positional(in_channels=3, /):
        return nn.Conv2d(in_channels, 1, 1)

    with pytest.raises(TypeError, match="positionally only"):
        register(family="segmenter", name="toy_positional")(positional)
