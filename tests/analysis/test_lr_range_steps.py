"""The LR range test on toy models, by hand: what each step trains on and what the probe reads,
the rules read off a scripted curve below the loss floor, and the range's bounds."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunelab.analysis import check_lr_range, lr_range, lr_range_test
from prunelab.config import OptimizerConfig
from prunelab.data import Dataset


def toy_data(n: int) -> Dataset:
    """``n`` examples of two features, labelled by the sign of the first."""
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    return Dataset("toy", x, (x[:, 0] > 0).long(), x, (x[:, 0] > 0).long(), num_classes=2)


def test_steps_train_on_batch_statistics_and_the_probe_reads_the_trained_running_ones() -> None:
    """Plain SGD on full batches of 12 through a BatchNorm whose running statistics are the
    trained model's: each step normalises by its batch's statistics (train mode), each probe
    by the running ones, which the steps leave as they were, on the first ``probe_size`` (5)
    training examples only."""
    data = toy_data(12)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    running_mean, running_var = torch.tensor([0.5, -0.5, 1.0]), torch.tensor([2.0, 0.5, 1.5])
    model[1].running_mean.copy_(running_mean)
    model[1].running_var.copy_(running_var)
    result = lr_range_test(model, data, OptimizerConfig(momentum=0.0), batch_size=12, start_lr=0.1, steps=3, probe_size=5, progress=False)

    w1, b1, gamma, beta, w2, b2 = (p.detach().clone().requires_grad_() for p in model.parameters())

    def logits(x: torch.Tensor, mean: torch.Tensor | None = None, var: torch.Tensor | None = None) -> torch.Tensor:
        hidden = x @ w1.T + b1
        if mean is None:  # train mode: the batch's own statistics (biased variance)
            mean, var = hidden.mean(0), hidden.var(0, unbiased=False)
        return ((hidden - mean) / torch.sqrt(var + 1e-5) * gamma + beta) @ w2.T + b2

    x, y = data.x_train, data.y_train
    expected = []
    for lr in (0.1, 0.1**0.5, 1.0):
        grads = torch.autograd.grad(F.cross_entropy(logits(x), y), (w1, b1, gamma, beta, w2, b2))
        with torch.no_grad():
            for param, grad in zip((w1, b1, gamma, beta, w2, b2), grads):
                param -= lr * grad
            expected.append(float(F.cross_entropy(logits(x[:5], running_mean, running_var), y[:5])))
    assert result.losses == pytest.approx(expected, rel=1e-5)


def test_below_the_loss_floor_the_threshold_and_the_stop_are_rises_of_a_share_of_the_floor(monkeypatch) -> None:
    """A scripted probe curve from a trained loss of 0.004, below the floor of 0.01: the loss
    has risen past 0.004 + 0.1 * 0.01 = 0.005 at 0.0052, and diverged past 0.004 + 3 * 0.01 =
    0.034 at 0.036, where the test stops (not at 4 x 0.004, nor only past 4 x the floor)."""
    probe = iter([0.004, 0.0045, 0.0052, 0.03, 0.036, 0.05, 0.05, 0.05])  # the trained model's, then one per step
    monkeypatch.setattr(lr_range, "_probe_loss", lambda *args: next(probe))
    result = lr_range_test(nn.Linear(2, 2), toy_data(8), OptimizerConfig(momentum=0.0), batch_size=8, steps=7, progress=False)
    assert result.baseline == 0.004 and result.threshold == pytest.approx(0.005)
    assert result.losses == [0.0045, 0.0052, 0.03, 0.036]
    assert result.inflection_lr == result.lrs[1]


def test_a_stop_factor_no_larger_than_the_threshold_is_refused() -> None:
    """The test would stop where the loss first counts as risen, before any rise beyond it."""
    with pytest.raises(ValueError, match=r"need tolerance > 0 and stop_factor > 1 \+ tolerance, got tolerance=0.5, stop_factor=1.5"):
        check_lr_range(1e-9, 1.0, 10, tolerance=0.5, stop_factor=1.5)
    check_lr_range(1e-9, 1.0, 10, tolerance=0.5, stop_factor=1.51)


def test_the_seed_draws_the_dropout_of_the_steps() -> None:
    """One training example, so every step's batch is the same whatever the seed: the curves
    of two seeds differ by the dropout the seed draws alone, and one seed gives one curve."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))
    curves = [
        lr_range_test(model, toy_data(1), OptimizerConfig(momentum=0.0), batch_size=1, start_lr=0.1, steps=4, seed=seed, progress=False).losses
        for seed in (0, 0, 5)
    ]
    assert curves[0] == curves[1] and curves[0] != curves[2]


@pytest.mark.parametrize("size", ["batch_size", "probe_size"])
def test_true_is_no_number_of_examples(size) -> None:
    """A bool is an int to Python: True would have run the test on one example."""
    with pytest.raises(ValueError, match=rf"^{size} must be a whole number of examples, at least 1, got True$"):
        lr_range_test(nn.Linear(2, 2), toy_data(8), OptimizerConfig(), progress=False, **{size: True})


def test_a_trained_loss_that_overflowed_to_inf_is_refused() -> None:
    """Logits 3e38 apart against half the labels: the probe's float32 sum of losses overflows to
    inf, from which no rise can be measured: the threshold and the stop would be inf too."""
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([0.0, -3e38]))
    with pytest.raises(ValueError, match=r"^the trained model's loss on the probe examples is inf: the test needs a finite loss to start from$"):
        lr_range_test(model, toy_data(8), OptimizerConfig(), progress=False)
