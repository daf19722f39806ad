"""Linear interpolation between two trained networks: errors along the line and the barrier."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunelab.analysis import Interpolation, interpolate


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 6, generator=g)
    return x, ((x[:, 0] * x[:, 1] > 0) ^ (x[:, 2] > 0)).long()  # needs the hidden layer


def trained_mlp() -> nn.Sequential:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 2))
    x, y = data()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(300):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model


def error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) != y).float().mean())


def permuted(model: nn.Sequential) -> nn.Sequential:
    """The same function with its hidden units in another order: another point in weight space."""
    other = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 2))
    order = torch.randperm(32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        other[0].weight.copy_(model[0].weight[order])
        other[0].bias.copy_(model[0].bias[order])
        other[2].weight.copy_(model[2].weight[:, order])
        other[2].bias.copy_(model[2].bias)
    return other


def test_a_permuted_network_is_one_function_but_not_linearly_connected() -> None:
    x, y = data()
    a = trained_mlp()
    b = permuted(a)
    line = interpolate(a, b, x, y, points=5)
    assert line.alphas == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert line.errors[0] == pytest.approx(error(a, x, y)) and line.errors[-1] == pytest.approx(error(b, x, y))
    assert error(a, x, y) == pytest.approx(error(b, x, y))  # the same function
    assert error(a, x, y) < 0.1  # trained
    # the midpoint, averaged by hand
    middle = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 2))
    with torch.no_grad():
        for p_mid, p_a, p_b in zip(middle.parameters(), a.parameters(), b.parameters()):
            p_mid.copy_((p_a + p_b) / 2)
    assert line.errors[2] == pytest.approx(error(middle, x, y))
    assert line.barrier == pytest.approx(max(line.errors) - (line.errors[0] + line.errors[-1]) / 2)
    assert line.barrier > 0.1  # averaging unrelated hidden units breaks the function


def test_batchnorm_statistics_are_interpolated() -> None:
    x, y = data()
    a = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    b = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    with torch.no_grad():
        b.load_state_dict(a.state_dict())
        b[1].running_mean.fill_(3.0)  # only the statistics differ
    b[1].num_batches_tracked.fill_(7)
    middle = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    middle.load_state_dict(a.state_dict())
    with torch.no_grad():
        middle[1].running_mean.copy_((a[1].running_mean + b[1].running_mean) / 2)
    middle.eval()
    line = interpolate(a, b, x, y, points=3)
    assert line.errors[1] == pytest.approx(error(middle, x, y))


def test_models_of_two_architectures_or_one_point_are_errors() -> None:
    x, y = data()
    with pytest.raises(ValueError, match="only models of one architecture"):
        interpolate(nn.Linear(6, 2), nn.Linear(6, 3), x, y)
    for a, b in ((nn.Linear(6, 2), nn.Linear(6, 2, bias=False)), (nn.Linear(6, 2, bias=False), nn.Linear(6, 2))):
        with pytest.raises(ValueError, match="only models of one architecture"):  # a bias on one side only
            interpolate(a, b, x, y)
    with pytest.raises(ValueError, match="points must be at least 2"):
        interpolate(nn.Linear(6, 2), nn.Linear(6, 2), x, y, points=1)


def test_labels_and_inputs_the_evaluation_cannot_take_are_named() -> None:
    # torch's errors came from inside the loss or the model, and one-hot rows failed on the accuracy's shapes.
    x, y = data()
    a, b = nn.Linear(6, 2), nn.Linear(6, 2)
    with pytest.raises(ValueError, match=rf"^y must be int64 class indices of shape \({len(x)},\), one per input; got torch.float32 of shape \({len(x)},\)$"):
        interpolate(a, b, x, y.float())
    with pytest.raises(ValueError, match=rf"got torch.float32 of shape \({len(x)}, 2\): .argmax\(1\) of one-hot rows$"):
        interpolate(a, b, x, torch.eye(2)[y])
    with pytest.raises(ValueError, match=rf"^y must be int64 class indices of shape \({len(x)},\), one per input; got torch.int64 of shape \(10,\)$"):
        interpolate(a, b, x, y[:10])
    with pytest.raises(ValueError, match=r"^x is torch.float64 and the model's weights torch.float32: x.to\(torch.float32\)$"):
        interpolate(a, b, x.double(), y)
    with pytest.raises(TypeError, match=r"^x and y must be tensors \(inputs, class indices\), got TensorDataset and NoneType$"):
        interpolate(a, b, torch.utils.data.TensorDataset(x, y), None)
    assert interpolate(a.double(), b.double(), x.double(), y, points=2).alphas == [0.0, 1.0]  # float64 on both sides is fine
    tokens = torch.arange(len(y)) % 5  # integer inputs (token ids) are no dtype mismatch with float weights
    assert interpolate(nn.Embedding(5, 2), nn.Embedding(5, 2), tokens, y, points=2).alphas == [0.0, 1.0]


def test_integer_buffers_come_from_the_first_model(monkeypatch):
    a = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    b = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    b.load_state_dict(a.state_dict())
    a[1].num_batches_tracked.fill_(3)
    b[1].num_batches_tracked.fill_(7)
    from prunelab.analysis import instability

    seen, real = [], instability.evaluate
    monkeypatch.setattr(instability, "evaluate", lambda model, *args: seen.append(int(model[1].num_batches_tracked)) or real(model, *args))
    interpolate(a, b, torch.randn(20, 6), torch.zeros(20, dtype=torch.long), points=3)
    assert seen == [3, 3, 3]


def test_the_barrier_is_the_highest_error_on_the_line_including_its_ends_above_their_mean() -> None:
    """Frankle et al.'s barrier by hand: max over every point, minus the mean of the two ends."""
    assert Interpolation([0.0, 0.5, 1.0], [0.1, 0.2, 0.5]).barrier == pytest.approx(0.5 - (0.1 + 0.5) / 2)
    assert Interpolation([0.0, 0.5, 1.0], [0.1, 0.6, 0.3]).barrier == pytest.approx(0.6 - (0.1 + 0.3) / 2)


def test_the_line_runs_from_the_first_model_to_the_second() -> None:
    """``a`` classifies both points right, ``b`` (its negation) both wrong; halfway every logit is 0 and argmax says class 0."""
    x, y = torch.eye(2), torch.tensor([0, 1])
    a, b = nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        a.weight.copy_(torch.eye(2))
        b.weight.copy_(-torch.eye(2))
    line = interpolate(a, b, x, y, points=3)
    assert line.errors == [0.0, 0.5, 1.0]
    assert line.barrier == pytest.approx(0.5)
