"""A user's own models: `--plugin my_models.py` files and installed packages' `defectbench.models` entry points.

A plugin is a Python file (or package module) that registers models with `@register_model`. The driver
imports it before planning, and every worker (process or Ray) imports it again before running a job, so
plugin models run wherever the project's own models run.
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path

ENTRY_POINT_GROUP = "defectbench.models"
_LOADED: dict[str, str] = {}  # module name -> the plugin file it came from
_ENTRY_POINTS_LOADED = False


class PluginError(ValueError):
    """A plugin that cannot be used; one line naming the file."""


def _module_name(path: Path) -> str:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    safe = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"defectbench_plugin_{safe}_{digest}"


def load_plugin(path: str | Path) -> str:
    """Import one plugin file (once per process); returns its module name."""
    path = Path(path).resolve()
    name = _module_name(path)
    if name in sys.modules:
        return name
    if not path.is_file():
        raise PluginError(f"--plugin {path}: no such file")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"--plugin {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise PluginError(f"--plugin {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    _LOADED[name] = str(path)
    return name


def load_entry_points() -> None:
    """Import every installed package's `defectbench.models` entry point (once per process)."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as exc:
            raise PluginError(f"entry point {entry.name} = {entry.value} ({ENTRY_POINT_GROUP}): "
                              f"{type(exc).__name__}: {exc}") from exc


def load_plugins(paths) -> None:
    load_entry_points()
    for path in paths or ():
        load_plugin(path)


def plugin_file_of(model: str) -> Path | None:
    """The plugin file that registered `model`, or None for the project's own and installed models."""
    from models import get_entry

    module = get_entry(model).module
    return Path(_LOADED[module]) if module in _LOADED else None
