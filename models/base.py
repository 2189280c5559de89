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

from models.schedule import DEFAULT_WARMUP, FitClock, check_schedule, mean_budget_factor


@dataclass(frozen=True)
class Budget:
    """How long one `fit` may train, and how its learning rate moves.

    A *run* is one detector trained once; it may be fitted in several stages (a learning curve evaluated after
    1, 3 and 10 minutes), each stage one `fit` with its own Budget that says where the run stands.
    - `epochs`: the run's cap in passes over the training data (fractions allowed); the steps of earlier
      stages (`steps_done`) count against it, and a fit whose cap is already reached trains 0 steps.
    - `minutes`: wall-clock minutes of THIS fit. It stops at whichever of the caps ends first.
    - `max_steps`: a hard cap on this fit's optimiser steps (tests, smoke runs); not part of the schedule.
    - `run_minutes`: the run's whole time budget (the last stage's end), the schedule's horizon on the wall
      clock; None: this fit's `minutes`. `seconds_done`: the run's time budget spent by earlier stages (the
      previous stage's end, in seconds), so that the schedule reaches 0 exactly at the last stage's end.
    - `schedule`: "budget" warms up over the first `warmup` fraction of the run and then decays the learning
      rate linearly to zero at the run's end (`models.schedule`); "constant" keeps each model's own rate (the
      authors' protocols). Either way the base rate is the model's own (`make_optimizer`).

    The schedule's clock is optimiser steps for `epochs` (bit-reproducible) and wall time for minutes; with
    both, it follows whichever is further along. The stages of a learning curve share ONE schedule, to the
    last stage's end; the earlier stages are evaluated on the weights as they are then (see `models.schedule`).
    """

    epochs: float = 1
    minutes: float = math.inf
    max_steps: int | None = None
    steps_done: int = 0
    run_minutes: float | None = None
    seconds_done: float = 0.0
    schedule: str = "budget"
    warmup: float = DEFAULT_WARMUP

    def __post_init__(self):
        check_schedule(self.schedule)
        if self.epochs < 0 or self.steps_done < 0 or self.seconds_done < 0:
            raise ValueError(f"epochs, steps_done and seconds_done must be >= 0; got {self.epochs}, "
                             f"{self.steps_done}, {self.seconds_done}")
        if not self.minutes > 0 or (self.run_minutes is not None and not self.run_minutes > 0):
            raise ValueError(f"minutes and run_minutes must be > 0; got {self.minutes}, {self.run_minutes}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup must be a fraction in [0, 1); got {self.warmup}")


@dataclass
class FitReport:
    epochs: int = 0  # passes over the data completed within this fit
    steps: int = 0
    train_seconds: float = 0.0  # everything the fit did, batch-norm recalibration included
    final_loss: float = float("nan")
    loss_history: list[float] = field(default_factory=list)  # mean loss of each pass (partial last pass included)
    stopped_by: str = "epochs"  # "epochs" | "minutes" | "max_steps" | "no_training"
    batches_per_epoch: int = 0
    learning_rates: list[float] = field(default_factory=list)  # the first parameter group's rate at each update
    schedule: str = "constant"

    @property
    def epochs_trained(self) -> float:
        """Steps as a fraction of passes (a pass cut short by a time budget counts in part)."""
        return self.steps / self.batches_per_epoch if self.batches_per_epoch else 0.0


# A progress callback gets (step, loss) after each step; the runner passes one that drives a rich bar.
ProgressFn = Callable[[int, float], None]

# Which weights a fit ends with: "last" (the project's), or "lowest_loss", the full pass with the lowest mean
# training loss so far (ties to the later pass), as VT-ADL's train.py keeps its saved model.
CHECKPOINTS = ("last", "lowest_loss")


def check_checkpoint(name: str) -> str:
    if name not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, got {name!r}")
    return name


class Detector(ABC):
    """Base class of every model as the runner sees it."""

    name: str = "detector"
    image_level_only: bool = False
    # Whether training learns from the masks: a model with True learns real labelled defects in its training
    # data as defects (`--labelled-defects`); one with False treats every training image as normal, so
    # labelled defects would only teach it that defects are normal.
    uses_labels: bool = False
    clock = staticmethod(time.perf_counter)  # the wall clock of minute budgets (a fake one in tests)
    checkpoint = "last"  # or "lowest_loss" (CHECKPOINTS), set by the builders that take `checkpoint`

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
        """Train within `budget` on batches of `train_data` (a sized iterable: a DataLoader or a list).

        One optimiser per detector: a run fitted in stages (a learning curve) continues Adam's state, as one fit
        would. Under `schedule="budget"` each update's rate is the model's base rate times the schedule's mean
        over the stretch of budget the step used (`models.schedule`); the base rate is restored at the end.
        """
        try:
            batches_per_epoch = len(train_data)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError("fit needs sized training data (a DataLoader or a list of batches)") from None
        if batches_per_epoch == 0:
            raise ValueError("the training data yielded no batch")
        report = FitReport(batches_per_epoch=batches_per_epoch, schedule=budget.schedule)
        run_steps = round(budget.epochs * batches_per_epoch)  # the run's step cap, and the step clock's horizon
        epoch_cap = run_steps - budget.steps_done  # steps left under it
        if epoch_cap <= 0 or budget.max_steps == 0:
            report.stopped_by = "epochs" if epoch_cap <= 0 else "max_steps"  # earlier stages reached the cap
            return report
        optimizer = self._optimizer = getattr(self, "_optimizer", None) or self.make_optimizer()
        for group in optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])
        # A step cap far beyond what the minutes allow (the runner's "no epoch cap") does not flatten the
        # schedule: the clock takes the larger fraction, so the minutes drive it then.
        run_seconds = (budget.minutes if budget.run_minutes is None else budget.run_minutes) * 60.0
        clock = FitClock(run_steps, run_seconds, steps_done=budget.steps_done, seconds_done=budget.seconds_done,
                         now=self.clock)
        step_started_at = [0.0]  # progress when the current step began

        def apply_rate(opt, args, kwargs):
            if budget.schedule == "budget":
                factor = mean_budget_factor(step_started_at[0], clock.progress(report.steps + 1), budget.warmup)
                for group in opt.param_groups:
                    group["lr"] = group["base_lr"] * factor
            report.learning_rates.append(float(opt.param_groups[0]["lr"]))

        hook = optimizer.register_step_pre_hook(apply_rate)
        self.train_mode(True)
        stopped_by = None
        kept = getattr(self, "_lowest_loss", None)  # (mean loss, weights) of the best full pass of the run so far
        if getattr(self, "_last_weights", None) is not None:  # an earlier stage ended on its best pass's weights:
            self.load_state_dict(self._last_weights)  # training goes on from where it stopped, as one fit would
            self._last_weights = None
        try:
            while stopped_by is None:
                losses = []
                for batch in train_data:
                    step_started_at[0] = clock.progress(report.steps)
                    loss = self.training_step(batch["image"].to(self.device), batch["mask"].to(self.device), optimizer)
                    losses.append(loss)
                    report.steps += 1
                    if progress:
                        progress(report.steps, loss)
                    if budget.max_steps is not None and report.steps >= budget.max_steps:
                        stopped_by = "max_steps"
                    elif report.steps >= epoch_cap:
                        stopped_by = "epochs"
                    elif clock.elapsed() >= budget.minutes * 60.0:
                        stopped_by = "minutes"
                    if stopped_by:
                        break
                if not losses:
                    raise ValueError("the training data yielded no batch")
                if len(losses) == batches_per_epoch:
                    report.epochs += 1
                    if self.checkpoint == "lowest_loss" and (kept is None or np.mean(losses) <= kept[0]):
                        kept = (float(np.mean(losses)), {k: v.clone() for k, v in self.state_dict().items()})
                report.loss_history.append(float(np.mean(losses)))
        finally:
            hook.remove()
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"]
            self.train_mode(False)
        if self.checkpoint == "lowest_loss" and kept is not None:
            self._lowest_loss = kept  # a later stage of the same run compares with it
            self._last_weights = {k: v.clone() for k, v in self.state_dict().items()}
            self.load_state_dict(kept[1])  # state_dict() is on the CPU: load_state_dict copies onto the device
        report.stopped_by = stopped_by
        report.train_seconds = clock.elapsed()
        report.final_loss = report.loss_history[-1]
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


def read_state_dict(path: str | Path, option: str = "--weights") -> dict[str, torch.Tensor]:
    """A state dict from a local file (torch `.pth`/`.pt`, or `.safetensors`); never downloads.
    `option` names the command-line option in the error when the file is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{option}: no such file: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{option} {path}: expected a state dict (name -> tensor), got {type(state).__name__}")
    return state


def load_local_weights(module: nn.Module, path: str | Path | None, *, strict: bool = False) -> str:
    """Load a torchvision-style state dict from a file the user named; never downloads.

    Returns the `pretrained` label for the results: "none" when no path was given, else "local:<path>".
    """
    if not path:
        return "none"
    state = read_state_dict(path)
    missing, unexpected = module.load_state_dict(state, strict=strict)
    loaded = len(state) - len(unexpected)
    if loaded == 0:
        raise ValueError(f"--weights {path}: no tensor matches the model's parameter names")
    return f"local:{path}"
