"""The detector contract, scikit-learn style: `fit(train_data, budget)`, then `predict(images)`.

Every model in the zoo is used through this contract (segmenters through `SegmenterDetector`):
- `fit(train_loader, budget)` trains on batches of normal images and returns a `FitReport`;
- `predict(images)` returns `(scores[B], maps[B,H,W])` as numpy (`maps` is None for image-level-only models);
- `inference_module()` is the plain `nn.Module` that maps an image batch to `(scores, maps)` (or to
  `scores` alone for image-level-only models): the graph that the cost probes time and export to ONNX;
- `training_step(images, masks, optimizer)` is one forward + backward + optimiser step with the model's own
  training loss; `fit` loops over it and the `train_step_ms` probe times it.

Batches are dicts as the datasets yield them: `image` float32 [B,3,H,W] in [0,1], `mask` float32 [B,H,W]
in {0,1}, `label` int [B], `defect` list[str], `path` list[str].
"""
from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Budget:
    """Train until `epochs` passes over the data or `minutes` of wall time, whichever ends first."""

    epochs: int = 1
    minutes: float = math.inf
    max_steps: int | None = None  # a hard cap, for tests

    def out_of_time(self, steps: int, started: float) -> bool:
        if self.max_steps is not None and steps >= self.max_steps:
            return True
        return (time.perf_counter() - started) >= self.minutes * 60.0


@dataclass
class FitReport:
    epochs: int = 0  # completed passes (a pass cut short by the time budget counts as partial below)
    steps: int = 0
    train_seconds: float = 0.0
    final_loss: float = float("nan")
    loss_history: list[float] = field(default_factory=list)  # mean loss of each pass (partial last pass included)
    stopped_by: str = "epochs"  # "epochs" | "minutes" | "max_steps" | "no_training"


# A progress callback gets (step, loss) after each step; the runner passes one that drives a rich bar.
ProgressFn = Callable[[int, float], None]


class Detector(ABC):
    """Base class of every model as the runner sees it."""

    name: str = "detector"
    image_level_only: bool = False

    def __init__(self, image_size: int):
        self.image_size = int(image_size)
        self.device = torch.device("cpu")
        self.pretrained = "none"  # or "local:<path>" when weights came from a file the user named

    # -- the parts a subclass provides ------------------------------------------------------------
    @abstractmethod
    def modules_to_save(self) -> dict[str, nn.Module]:
        """The trainable (or fitted) modules, by name: saved, loaded and moved to the device."""

    @abstractmethod
    def inference_module(self) -> nn.Module:
        """images [B,3,H,W] in [0,1] -> (scores [B], maps [B,H,W]), or scores alone if image-level only."""

    def make_optimizer(self) -> torch.optim.Optimizer:
        params = [p for m in self.modules_to_save().values() for p in m.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=1e-4)

    @abstractmethod
    def training_step(self, images: torch.Tensor, masks: torch.Tensor, optimizer: torch.optim.Optimizer) -> float:
        """One forward + backward + optimiser step on a batch; returns the loss as a float."""

    # -- shared behaviour -------------------------------------------------------------------------
    def to(self, device: str | torch.device) -> "Detector":
        self.device = torch.device(device)
        for m in self.modules_to_save().values():
            m.to(self.device)
        return self

    def train_mode(self, on: bool) -> None:
        for m in self.modules_to_save().values():
            m.train(on)

    def fit(self, train_data: Iterable[dict], budget: Budget, progress: ProgressFn | None = None) -> FitReport:
        report = FitReport()
        # One optimiser per detector: a fit in stages (a learning curve) continues Adam's state, as one fit would.
        optimizer = self._optimizer = getattr(self, "_optimizer", None) or self.make_optimizer()
        self.train_mode(True)
        started = time.perf_counter()
        cut_short = False
        while not cut_short and report.epochs < budget.epochs:
            losses = []
            for batch in train_data:
                loss = self.training_step(batch["image"].to(self.device), batch["mask"].to(self.device), optimizer)
                losses.append(loss)
                report.steps += 1
                if progress:
                    progress(report.steps, loss)
                if budget.out_of_time(report.steps, started):
                    cut_short = True
                    break
            if not losses:
                raise ValueError("the training data yielded no batch")
            if not cut_short:
                report.epochs += 1
            report.loss_history.append(float(np.mean(losses)))
        report.train_seconds = time.perf_counter() - started
        report.final_loss = report.loss_history[-1] if report.loss_history else float("nan")
        if not cut_short:
            report.stopped_by = "epochs"
        elif budget.max_steps is not None and report.steps >= budget.max_steps:
            report.stopped_by = "max_steps"
        else:
            report.stopped_by = "minutes"
        self.train_mode(False)
        return report

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        self.train_mode(False)
        out = self.inference_module()(images.to(self.device))
        if self.image_level_only:
            return out.detach().float().cpu().numpy(), None
        scores, maps = out
        return scores.detach().float().cpu().numpy(), maps.detach().float().cpu().numpy()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{k}.{n}": t.detach().cpu() for k, m in self.modules_to_save().items() for n, t in m.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, m in self.modules_to_save().items():
            prefix = f"{k}."
            m.load_state_dict({n[len(prefix):]: t for n, t in state.items() if n.startswith(prefix)})

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path))
        return path

    def load(self, path: str | Path) -> "Detector":
        from safetensors.torch import load_file

        self.load_state_dict(load_file(str(path)))
        return self.to(self.device)

    def info(self) -> dict[str, Any]:
        """Extra facts the runner records (e.g. the MDN objective, K); override to add."""
        return {"pretrained": self.pretrained}


def load_local_weights(module: nn.Module, path: str | Path | None, *, strict: bool = False) -> str:
    """Load a torchvision-style state dict from a file the user named; never downloads.

    Returns the `pretrained` label for the results: "none" when no path was given, else "local:<path>".
    """
    if not path:
        return "none"
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--weights: no such file: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = module.load_state_dict(state, strict=strict)
    loaded = len(state) - len(unexpected)
    if loaded == 0:
        raise ValueError(f"--weights {path}: no tensor matches the model's parameter names")
    return f"local:{path}"
