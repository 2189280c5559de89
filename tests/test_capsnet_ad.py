"""The capsule-network detector: contract, training data, loss, and the labelled k-fold split."""
import numpy as np
import pytest
import torch

from models import create_detector, get_entry
from models.base import Budget
from datasets.splits import labelled_folds
from models.zoo.capsnet_ad import CapsNetAD, capsnet_ad, margin_loss, primary_grid

torch.set_num_threads(1)  # the machine is shared; these tests are small
SIZE = 28


def batches(n_batches=2, batch=4, size=SIZE, seed=0, defective=()):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        masks = torch.zeros(batch, size, size)
        for i in defective:
            masks[i, 4:10, 4:10] = 1.0
        out.append({"image": torch.rand(batch, 3, size, size, generator=g), "mask": masks})
    return out


def test_registered_image_level_only_at_28():
    entry = get_entry("capsnet_ad")
    assert entry.family == "detector" and entry.input_size == 28
    assert CapsNetAD.image_level_only is True
    assert primary_grid(28) == 6  # 6x6x32 = 1152 primary capsules, as CapsNet on MNIST
    assert capsnet_ad().network.routing.W.shape == (2, 1152, 16, 8)


def test_predict_returns_scores_and_no_map():
    d = capsnet_ad()
    scores, maps = d.predict(torch.rand(3, 3, SIZE, SIZE))
    assert maps is None
    assert scores.shape == (3,) and np.all(np.abs(scores) <= 1.0)
    out = d.inference_module()(torch.rand(2, 3, SIZE, SIZE))
    assert torch.is_tensor(out) and out.shape == (2,)


def test_reconstruction_uses_the_true_or_the_longest_capsule():
    net = capsnet_ad().network
    capsules = net.class_capsules(torch.rand(2, 3, SIZE, SIZE))
    assert capsules.shape == (2, 2, 16)
    labels = torch.tensor([0, 1])
    assert net.reconstruct(capsules, labels).shape == (2, 3, SIZE, SIZE)
    longest = capsules.norm(dim=-1).argmax(1)
    assert torch.equal(net.reconstruct(capsules), net.reconstruct(capsules, longest))


def test_margin_loss_values():
    lengths = torch.tensor([[0.95, 0.05], [0.5, 0.5]])
    labels = torch.tensor([0, 1])
    # first: both margins met -> 0; second: (0.9-0.5)^2 + 0.5*(0.5-0.1)^2 = 0.16 + 0.08
    assert margin_loss(lengths, labels).item() == pytest.approx(0.24 / 2)


def test_training_batch_labels_from_masks_and_synthetic_fill():
    d = capsnet_ad(anomaly_ratio=1.0)  # probability 1/2 per image
    real = batches(1, batch=4, defective=(2,))[0]
    images, labels = d.training_batch(real["image"], real["mask"])
    assert labels.tolist() == [0, 0, 1, 0] and torch.equal(images, real["image"])  # real labels: no synthesis
    normal = batches(1, batch=16, seed=1)[0]
    images, labels = d.training_batch(normal["image"], normal["mask"])
    assert 0 < int(labels.sum()) < 16  # a random half, about
    changed = (images != normal["image"]).flatten(1).any(1)
    assert torch.equal(changed, labels.bool())
    off = capsnet_ad(synthetic_anomalies=False)
    assert int(off.training_batch(normal["image"], normal["mask"])[1].sum()) == 0


def test_fit_two_steps_and_same_seed_same_loss():
    reports = [create_detector("capsnet_ad", seed=4).fit(batches(), Budget(max_steps=2)) for _ in range(2)]
    assert reports[0].steps == 2 and np.isfinite(reports[0].final_loss)
    assert reports[0].loss_history == reports[1].loss_history


@pytest.mark.parametrize("n_labelled", [0, 3, 1000])
def test_labelled_folds_never_train_on_evaluated_images(n_labelled):
    labels = np.array([0] * 23 + [1] * 41)
    np.random.default_rng(0).shuffle(labels)
    folds = labelled_folds(labels, n_labelled=n_labelled, k=5, seed=7)
    assert len(folds) == 5
    evaluated = np.concatenate([e for _, e in folds])
    assert sorted(evaluated.tolist()) == list(range(len(labels)))  # every image evaluated exactly once
    for train, eval_idx in folds:
        assert len(np.intersect1d(train, eval_idx)) == 0
        assert len(np.union1d(train, eval_idx)) == len(train) + len(eval_idx)
        assert int(labels[train].sum()) == min(n_labelled, int((labels == 1).sum() - labels[eval_idx].sum()))
        assert set(labels[eval_idx]) == {0, 1}  # stratified: both classes in every evaluation fold
        assert int((labels[train] == 0).sum()) + int((labels[eval_idx] == 0).sum()) == 23


def test_labelled_folds_are_seeded():
    labels = [0, 1] * 20
    a = labelled_folds(labels, 5, k=4, seed=1)
    b = labelled_folds(labels, 5, k=4, seed=1)
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    with pytest.raises(ValueError):
        labelled_folds(labels, 5, k=1)
