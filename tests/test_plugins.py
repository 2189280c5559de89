"""A user's own models: a plugin file (`--plugin`) or an installed package's `defectbench.models` entry point."""
import sys
import textwrap

import pytest

from bench import plugins
from bench.plan import model_source
from models import registry

MODEL = '''
from torch import nn
from models.registry import register_model

@register_model("{name}", family="segmenter", paper="test", input_size=32)
def build(in_channels: int = 3, classes: int = 1) -> nn.Module:
    return nn.Conv2d(in_channels, classes, {kernel}, padding={padding})
'''


@pytest.fixture
def clean_registry(monkeypatch):
    registry._load_zoo()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(plugins, "_LOADED", dict(plugins._LOADED))


def test_plugin_file_registers_models_and_its_bytes_are_its_identity(tmp_path, clean_registry):
    path = tmp_path / "my_models.py"
    path.write_text(MODEL.format(name="my_conv", kernel=3, padding=1))
    plugins.load_plugin(path)
    assert registry.get_entry("my_conv").family == "segmenter"
    assert plugins.plugin_file_of("my_conv") == path.resolve()
    first = model_source("my_conv")
    assert first["plugin"] == str(path.resolve())
    path.write_text(MODEL.format(name="my_conv", kernel=5, padding=2))  # the user edits the model
    assert model_source("my_conv")["sha256"] != first["sha256"]
    assert plugins.plugin_file_of("unet") is None and model_source("unet") == {}


def test_broken_plugin_is_one_line_naming_the_file(tmp_path, clean_registry):
    path = tmp_path / "broken.py"
    path.write_text("import no_such_module_here\n")
    with pytest.raises(plugins.PluginError, match=f"--plugin {path}: ModuleNotFoundError"):
        plugins.load_plugin(path)


def test_entry_point_of_an_installed_package(tmp_path, clean_registry, monkeypatch):
    (tmp_path / "acme_models.py").write_text(MODEL.format(name="acme_conv", kernel=1, padding=0))
    info = tmp_path / "acme_models-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-models\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [defectbench.models]
        acme = acme_models
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_ENTRY_POINTS_LOADED", False)
    plugins.load_entry_points()
    assert registry.get_entry("acme_conv").module == "acme_models"
    sys.modules.pop("acme_models", None)
