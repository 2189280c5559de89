"""The budget-aware learning-rate schedule and the shared fit loop's budgets (models/schedule.py, models/base.py)."""
import math

import numpy as np
import pytest
import torch
from torch import nn

import models
from models.base import Budget, Detector
from models.registry import list_models
from models.schedule import DEFAULT_WARMUP, budget_factor, mean_budget_factor

BASE_LR = 0.1


class FakeClock:
    """A wall clock that only moves when the toy model takes a step."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class ToyDetector(Detector):
    """One linear layer; each training step advances `clock` (when given) by `step_seconds`."""

    def __init__(self, clock=None, step_seconds=6.0, seed=0):
        super().__init__(image_size=4)
        torch.manual_seed(seed)
        self.net = nn.Linear(3 * 4 * 4, 1)
        self.fake_clock, self.step_seconds = clock, step_seconds
        if clock is not None:
            self.clock = clock

    def modules_to_save(self):
        return {"net": self.net}

    def inference_module(self):
        return self.net

    def make_optimizer(self):
        return torch.optim.Adam(self.net.parameters(), lr=BASE_LR)

    def training_step(self, images, masks, optimizer):
        optimizer.zero_grad()
        loss = (self.net(images.flatten(1)) - masks.flatten(1).mean(1, keepdim=True)).pow(2).mean()
        loss.backward()
        if self.fake_clock is not None:
            self.fake_clock.now += self.step_seconds  # the step's forward + backward take this long
        optimizer.step()
        return float(loss.detach())


def batches(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"image": torch.rand(2, 3, 4, 4, generator=g), "mask": (torch.rand(2, 4, 4, generator=g) > 0.5).float()}
            for _ in range(n)]


def interval_means(n_steps, warmup=DEFAULT_WARMUP):
    return [BASE_LR * mean_budget_factor(k / n_steps, (k + 1) / n_steps, warmup) for k in range(n_steps)]


def test_factor_warms_up_then_decays_linearly_to_zero():
    w = 0.2
    assert budget_factor(0.0, w) == 0.0
    assert budget_factor(0.1, w) == pytest.approx(0.5)  # half-way up the warm-up
    assert budget_factor(w, w) == pytest.approx(1.0)  # the peak at the warm-up's end
    assert budget_factor(0.6, w) == pytest.approx(0.5)  # half-way down the decay
    assert budget_factor(1.0, w) == 0.0 and budget_factor(1.5, w) == 0.0
    # the schedule's mean over the whole budget is 1/2 (a triangle), and interval means add up to it
    assert mean_budget_factor(0.0, 1.0, w) == pytest.approx(0.5)
    parts = [mean_budget_factor(k / 7, (k + 1) / 7, w) / 7 for k in range(7)]
    assert sum(parts) == pytest.approx(0.5)
    # a stretch past the budget's end counts as zero
    assert mean_budget_factor(0.9, 1.1, w) == pytest.approx(mean_budget_factor(0.9, 1.0, w) / 2)


def test_epoch_budget_rate_reaches_zero_exactly_at_the_last_step():
    detector = ToyDetector()
    report = detector.fit(batches(5), Budget(epochs=2))  # 10 steps
    assert report.steps == 10 and report.epochs == 2 and report.stopped_by == "epochs"
    assert report.learning_rates == pytest.approx(interval_means(10))
    rates = report.learning_rates
    peak = int(np.argmax(rates))
    assert all(a < b for a, b in zip(rates[:peak], rates[1 : peak + 1]))  # rising through the warm-up
    assert all(a > b for a, b in zip(rates[peak:], rates[peak + 1 :]))  # then falling every step
    # the last update's rate is the schedule's mean over the last tenth: it ends at 0 when the budget ends
    assert rates[-1] == pytest.approx(BASE_LR * 0.5 * (1 - 0.9) / (1 - DEFAULT_WARMUP))
    assert mean_budget_factor(1.0, 1.0) == 0.0
    # the base rate is back once the fit is over
    assert detector._optimizer.param_groups[0]["lr"] == BASE_LR


def test_minute_budget_follows_the_wall_clock_to_zero():
    clock = FakeClock()
    detector = ToyDetector(clock=clock, step_seconds=6.0)
    report = detector.fit(batches(5), Budget(epochs=1000, minutes=1.0))  # 60 s of 6-s steps
    assert report.stopped_by == "minutes" and report.steps == 10
    assert report.train_seconds == pytest.approx(60.0)
    assert report.learning_rates == pytest.approx(interval_means(10))  # each update at p = elapsed / 60 s


def test_with_both_budgets_the_one_that_ends_first_drives_the_schedule():
    clock = FakeClock()
    detector = ToyDetector(clock=clock, step_seconds=6.0)
    # 4 epochs of 5 steps = 20 steps, but the 1-minute budget ends after 10: the time fraction leads
    report = detector.fit(batches(5), Budget(epochs=4, minutes=1.0))
    assert report.steps == 10 and report.learning_rates == pytest.approx(interval_means(10))
    clock2 = FakeClock()
    detector2 = ToyDetector(clock=clock2, step_seconds=1.0)
    # 1 epoch of 5 steps ends long before 1 minute of 1-s steps: the step fraction leads
    report2 = detector2.fit(batches(5), Budget(epochs=1, minutes=1.0))
    assert report2.stopped_by == "epochs" and report2.learning_rates == pytest.approx(interval_means(5))


def test_constant_schedule_keeps_the_models_own_rate():
    report = ToyDetector().fit(batches(5), Budget(epochs=1, schedule="constant"))
    assert report.learning_rates == [BASE_LR] * 5


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="schedule"):
        Budget(schedule="cosine")


def test_schedule_changes_training_and_runs_reproduce_to_the_bit():
    def losses(schedule, seed=0):
        got = []
        ToyDetector(seed=seed).fit(batches(5), Budget(epochs=2, schedule=schedule),
                                   progress=lambda step, loss: got.append(loss))
        return got

    assert losses("budget") == losses("budget")
    assert losses("budget") != losses("constant")


def test_segmenter_epoch_budget_is_bit_reproducible_under_the_schedule():
    def run():
        torch.manual_seed(0)
        detector = models.create_detector("u2net_small", image_size=32, seed=3)
        got = []
        report = detector.fit(batches_at(32), Budget(epochs=1, schedule="budget"), progress=lambda s, l: got.append(l))
        return got, report.learning_rates, detector.state_dict()

    (losses_a, rates_a, state_a), (losses_b, rates_b, state_b) = run(), run()
    assert losses_a == losses_b and rates_a == rates_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def batches_at(size, n=2):
    g = torch.Generator().manual_seed(1)
    return [{"image": torch.rand(2, 3, size, size, generator=g), "mask": torch.zeros(2, size, size)} for _ in range(n)]


def test_stages_of_a_run_share_one_schedule_and_the_epoch_cap():
    """A learning curve is one run fitted in stages: the stages continue one schedule (and the optimiser) to the
    run's end, and the run's epoch cap counts every stage's steps."""
    data = batches(5)
    whole = ToyDetector().fit(data, Budget(epochs=2))  # the same run in one fit: 10 steps
    staged = ToyDetector()
    first = staged.fit(data, Budget(epochs=2, max_steps=3))
    optimizer = staged._optimizer
    second = staged.fit(data, Budget(epochs=2, max_steps=4, steps_done=3))
    assert staged._optimizer is optimizer and optimizer.state  # Adam's moments carried over
    third = staged.fit(data, Budget(epochs=2, max_steps=4, steps_done=7))  # only 3 steps are left under the cap
    assert (first.steps, second.steps, third.steps) == (3, 4, 3)
    assert third.stopped_by == "epochs"
    assert first.learning_rates + second.learning_rates + third.learning_rates == pytest.approx(whole.learning_rates)
    assert third.learning_rates[-1] == pytest.approx(whole.learning_rates[-1])  # at 0 when the run ends
    fourth = staged.fit(data, Budget(epochs=2, steps_done=10))
    assert fourth.steps == 0 and fourth.stopped_by == "epochs" and fourth.learning_rates == []


def test_minute_stages_decay_to_the_last_stages_end():
    """--train-minutes 1,2 on a fake clock: stage 2's schedule continues from 60 s and ends at 0 at 120 s."""
    clock = FakeClock()
    detector = ToyDetector(clock=clock, step_seconds=6.0)
    first = detector.fit(batches(5), Budget(epochs=1000, minutes=1.0, run_minutes=2.0))
    clock.now += 30.0  # evaluation between the stages is not training time
    second = detector.fit(batches(5), Budget(epochs=1000, minutes=1.0, run_minutes=2.0, steps_done=first.steps,
                                             seconds_done=60.0))
    assert first.steps == second.steps == 10
    assert first.learning_rates + second.learning_rates == pytest.approx(interval_means(20))


def test_every_zoo_model_says_whether_it_learns_from_labels():
    # the zoo's own models: plugins loaded by other tests in this process register theirs too
    zoo = [entry for entry in list_models() if entry.module.startswith("models.zoo")]
    expected = {"fcn32": True, "unet": True, "unetpp": True, "u2net": True, "u2net_small": True, "segnet": True,
                "capsnet_ad": True, "vtadl": False, "piade": False, "pyramid_ae": False, "pixel_stats": False}
    names = {entry.name for entry in zoo}
    assert names == set(expected), "a model was added: say here whether it learns from labels"
    for entry in zoo:
        cls = models.detector_class(entry.name)
        assert cls.uses_labels is expected[entry.name], entry.name


class ScriptedLossDetector(ToyDetector):
    """Reports a scripted loss per step (and still trains), so that the epochs' mean losses are known."""

    def __init__(self, losses, checkpoint="last"):
        super().__init__()
        self.scripted, self.checkpoint = list(losses), checkpoint

    def training_step(self, images, masks, optimizer):
        super().training_step(images, masks, optimizer)
        return self.scripted.pop(0)


def test_lowest_loss_checkpoint_keeps_the_best_full_pass_and_training_goes_on_from_the_last():
    # VT-ADL's train.py l.104-110: the weights of the epoch whose mean loss is <= the lowest so far (ties: the
    # later epoch). Epoch means 3, 1, 2, 1 (two steps each): the 4th epoch's weights are kept, not the 3rd's.
    losses = [3, 3, 1, 1, 2, 2, 1, 1]
    snapshots = {}
    last = ScriptedLossDetector(losses)
    for epochs in (2, 4):  # the weights the plain fit ends with after 2 and after 4 epochs
        model = ScriptedLossDetector(losses)
        model.fit(batches(2), Budget(epochs=epochs, schedule="constant"))
        snapshots[epochs] = model.state_dict()
    kept = ScriptedLossDetector(losses, checkpoint="lowest_loss")
    report = kept.fit(batches(2), Budget(epochs=4, schedule="constant"))
    assert report.loss_history == [3, 1, 2, 1]
    assert all(torch.equal(kept.state_dict()[k], snapshots[4][k]) for k in snapshots[4])
    # with losses 3, 1, 2, 5 the 2nd epoch's weights are kept
    best_second = ScriptedLossDetector([3, 3, 1, 1, 2, 2, 5, 5], checkpoint="lowest_loss")
    best_second.fit(batches(2), Budget(epochs=4, schedule="constant"))
    assert all(torch.equal(best_second.state_dict()[k], snapshots[2][k]) for k in snapshots[2])
    # a second stage of the same run continues from the last weights, not from the kept ones
    # (after 3 epochs it holds the 2nd epoch's weights; the 4th epoch, the best, equals the plain fit's 4th)
    staged = ScriptedLossDetector([3, 3, 1, 1, 2, 2, 0, 0], checkpoint="lowest_loss")
    staged.fit(batches(2), Budget(epochs=4, schedule="constant", max_steps=6))
    assert all(torch.equal(staged.state_dict()[k], snapshots[2][k]) for k in snapshots[2])
    staged.fit(batches(2), Budget(epochs=4, schedule="constant", steps_done=6))
    assert all(torch.equal(staged.state_dict()[k], snapshots[4][k]) for k in snapshots[4])
    assert last.checkpoint == "last"
