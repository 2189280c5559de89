"""The model table: one decorated builder per model, in the style of timm's `@register_model`.

A builder takes explicit keyword arguments and returns either an `nn.Module` (family `segmenter`:
3 channels in, 1 logit map out) or a `Detector` (families `detector` and `baseline`).
`create_detector` gives every entry the same fit/predict contract, wrapping segmenters in an adapter.

What a builder must declare is checked when it is registered (`check_builder`), so that a mistake fails on
import with the builder's name rather than deep inside one suite (the return annotation, for instance, is read
only under `--labelled-defects`).
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
        check_builder(name, family, builder)
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice ({_REGISTRY[name].module} and {builder.__module__})")
        _REGISTRY[name] = ModelEntry(name, family, paper, input_size, builder, description, dict(train_defaults or {}))
        return builder

    return wrap


def check_builder(name: str, family: str, builder: Callable[..., Any]) -> None:
    """Raise TypeError, naming the builder and what to add, unless the runner can call it as it does:
    keywords only, and only those it has a value for (`image_size` always, for detector families); a detector's
    builder must also annotate the `Detector` class it returns, which the runner reads without building it."""
    where = f"model {name!r}: builder {builder.__module__}.{builder.__qualname__}"
    parameters = list(inspect.signature(builder).parameters.values())
    detector = family != "segmenter"
    positional_only = [p.name for p in parameters if p.kind is p.POSITIONAL_ONLY]
    if positional_only:
        raise TypeError(f"{where} takes {', '.join(positional_only)} positionally only; the runner passes keyword "
                        "arguments: remove the '/'")
    required = [p.name for p in parameters if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                and not (detector and p.name == "image_size")]
    if required:
        raise TypeError(f"{where} needs a default for {', '.join(required)}: the runner calls it with only the "
                        "keyword arguments a run gives")
    if not detector:
        return
    if "image_size" not in _keyword_parameters(builder) and not any(p.kind is p.VAR_KEYWORD for p in parameters):
        raise TypeError(f"{where} must take image_size= (family {family!r}: the runner passes each job's input "
                        "size), e.g. `def build(image_size: int = 128) -> MyDetector:`")
    if inspect.signature(builder).return_annotation is inspect.Signature.empty:
        raise TypeError(f"{where} must annotate the Detector class it returns, e.g. `-> MyDetector` (the runner "
                        "reads the class's `uses_labels` without building the model)")
    returned = _return_class(where, builder)
    from models.base import Detector  # already imported by the module that defines the detector

    if not (isinstance(returned, type) and issubclass(returned, Detector)):
        raise TypeError(f"{where} is annotated to return {returned!r}, which is not a subclass of "
                        "models.base.Detector: annotate the Detector class it returns")


def _return_class(where: str, builder: Callable[..., Any]) -> Any:
    import typing

    try:
        return typing.get_type_hints(builder).get("return")
    except NameError as error:  # a string annotation naming a class that does not exist (yet) in the module
        raise TypeError(f"{where}: its return annotation cannot be resolved ({error}); define the Detector class "
                        "before the builder") from None


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
    entry = get_entry(name)
    if entry.family == "segmenter":
        from models.segmenter_adapter import SegmenterDetector

        return SegmenterDetector
    return _return_class(f"model {name!r}: builder {entry.module}.{entry.builder.__qualname__}", entry.builder)


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
