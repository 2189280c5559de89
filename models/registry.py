"""The model table: one decorated builder per model, in the style of timm's `@register_model`.

A builder takes explicit keyword arguments and returns either an `nn.Module` (family `segmenter`:
3 channels in, 1 logit map out) or a `Detector` (families `detector` and `baseline`).
`create_detector` gives every entry the same fit/predict contract, wrapping segmenters in an adapter.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

FAMILIES = ("segmenter", "detector", "baseline")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    paper: str
    input_size: int  # the default square input side, in pixels
    builder: Callable[..., Any]
    description: str = ""

    @property
    def module(self) -> str:
        return self.builder.__module__


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, family: str, paper: str, input_size: int, description: str = ""):
    """Decorator: add `builder` to the table under `name`."""
    if family not in FAMILIES:
        raise ValueError(f"model {name!r}: family must be one of {FAMILIES}, got {family!r}")

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice ({_REGISTRY[name].module} and {builder.__module__})")
        _REGISTRY[name] = ModelEntry(name, family, paper, input_size, builder, description)
        return builder

    return wrap


def _load_zoo() -> None:
    # Importing the zoo runs every @register_model; deferred so that `models.registry` stays import-cheap.
    import models.zoo  # noqa: F401


def list_models(family: str | None = None) -> list[ModelEntry]:
    _load_zoo()
    return [e for e in _REGISTRY.values() if family is None or e.family == family]


def get_entry(name: str) -> ModelEntry:
    _load_zoo()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(name: str, **kwargs: Any) -> Any:
    """Call the entry's builder: an nn.Module for segmenters, a Detector otherwise."""
    return get_entry(name).builder(**kwargs)


def create_detector(name: str, *, image_size: int | None = None, **kwargs: Any):
    """Every entry as a Detector (fit / predict / inference_module); segmenters get `SegmenterDetector`.

    `kwargs` go to the detector's builder, or for a segmenter to its adapter (seed, lr, ...).
    """
    entry = get_entry(name)
    size = image_size or entry.input_size
    if entry.family == "segmenter":
        from models.segmenter_adapter import SegmenterDetector

        return SegmenterDetector(entry.builder(), name=name, image_size=size, **kwargs)
    return entry.builder(image_size=size, **kwargs)


def detector_arguments(name: str) -> set[str]:
    """The keyword arguments `create_detector(name, ...)` accepts besides image_size."""
    import inspect

    entry = get_entry(name)
    if entry.family == "segmenter":
        from models.segmenter_adapter import SegmenterDetector

        target = SegmenterDetector.__init__
    else:
        target = entry.builder
    return {p.name for p in inspect.signature(target).parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} - {"self", "net", "name", "image_size"}
