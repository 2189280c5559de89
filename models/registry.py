"""The model table: one decorated builder per model, in the style of timm's `@register_model`.

A builder takes explicit keyword arguments and returns either an `nn.Module` (family `segmenter`:
3 channels in, 1 logit map out) or a `Detector` (families `detector` and `baseline`).
`create_detector` gives every entry the same fit/predict contract, wrapping segmenters in an adapter.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
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
    # segmenters: the training recipe's defaults for `SegmenterDetector` (e.g. a lower lr), overridable per run
    train_defaults: dict = field(default_factory=dict)

    @property
    def module(self) -> str:
        return self.builder.__module__


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, family: str, paper: str, input_size: int, description: str = "",
                   train_defaults: dict | None = None):
    """Decorator: add `builder` to the table under `name`."""
    if family not in FAMILIES:
        raise ValueError(f"model {name!r}: family must be one of {FAMILIES}, got {family!r}")

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice ({_REGISTRY[name].module} and {builder.__module__})")
        _REGISTRY[name] = ModelEntry(name, family, paper, input_size, builder, description, dict(train_defaults or {}))
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

    `kwargs` go to the detector's builder; for a segmenter, those its builder takes (e.g. `weights`) go to the
    builder and the rest to its adapter (seed, lr, ...), over the entry's `train_defaults`.
    """
    entry = get_entry(name)
    size = image_size or entry.input_size
    if entry.family == "segmenter":
        from models.segmenter_adapter import SegmenterDetector

        for_builder = _keyword_parameters(entry.builder)
        net = entry.builder(**{k: v for k, v in kwargs.items() if k in for_builder})
        adapter_args = {**entry.train_defaults, **{k: v for k, v in kwargs.items() if k not in for_builder}}
        return SegmenterDetector(net, name=name, image_size=size, **adapter_args)
    return entry.builder(image_size=size, **kwargs)


def _keyword_parameters(function: Callable[..., Any]) -> set[str]:
    return {p.name for p in inspect.signature(function).parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def detector_class(name: str) -> type:
    """The Detector class `create_detector(name)` returns, without building it (from the builder's return
    annotation; `SegmenterDetector` for segmenters)."""
    import typing

    entry = get_entry(name)
    if entry.family == "segmenter":
        from models.segmenter_adapter import SegmenterDetector

        return SegmenterDetector
    returned = typing.get_type_hints(entry.builder).get("return")
    if returned is None:
        raise TypeError(f"model {name!r}: its builder {entry.module}.{entry.builder.__name__} must annotate the "
                        "Detector class it returns")
    return returned


def uses_labels(name: str) -> bool:
    """Whether the model learns from labelled defects (masks) in its training data; see `Detector.uses_labels`."""
    return bool(detector_class(name).uses_labels)


def detector_arguments(name: str) -> set[str]:
    """The keyword arguments `create_detector(name, ...)` accepts besides image_size."""
    entry = get_entry(name)
    if entry.family == "segmenter":
        from models.segmenter_adapter import SegmenterDetector

        accepted = _keyword_parameters(SegmenterDetector.__init__) | (_keyword_parameters(entry.builder)
                                                                       - {"in_channels", "classes"})
    else:
        accepted = _keyword_parameters(entry.builder)
    return accepted - {"self", "net", "name", "image_size"}
