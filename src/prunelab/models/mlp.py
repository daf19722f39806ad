"""Fully connected networks: a configurable MLP, a residual MLP and LeNet-300-100."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from prunelab.models.common import glorot_init
from prunelab.models.registry import register


def _mlp(in_features: int, hidden_sizes: Sequence[int], num_classes: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden_sizes:
        layers += [nn.Linear(in_features, width), nn.ReLU()]
        in_features = width
    layers.append(nn.Linear(in_features, num_classes))
    return nn.Sequential(*layers)


@register("mlp")
def mlp(
    num_classes: int, input_shape: tuple[int, ...], *, hidden_sizes: Sequence[int] = (100, 100)
) -> nn.Module:
    """ReLU MLP on the flattened input, hidden sizes 100-100 by default (PyTorch default init).

    >>> sum(p.numel() for p in mlp(10, (1, 40)).parameters())
    15210
    """
    return _mlp(math.prod(input_shape), hidden_sizes, num_classes)


@register("lenet_300_100", init=glorot_init)
def lenet_300_100(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """LeNet-300-100 (LeCun et al., 1998): flatten, 300, 100, ReLU; Glorot init as Frankle & Carbin.

    >>> sum(p.numel() for p in lenet_300_100(10, (1, 28, 28)).parameters())
    266610
    """
    return _mlp(math.prod(input_shape), (300, 100), num_classes)


class ResidualMLP(nn.Module):
    """Flatten, ``h = ReLU(linear1(x))``, ``h = h + ReLU(linear2(h))``, ``linear3(h)``: the
    MLP of the MNIST-1D lottery-ticket notebook (Greydanus, 2020), whose hidden layer is residual."""

    def __init__(self, in_features: int, hidden_size: int, num_classes: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(in_features, hidden_size)
        self.linear2 = nn.Linear(hidden_size, hidden_size)
        self.linear3 = nn.Linear(hidden_size, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.linear1(x.flatten(1)).relu()
        h = h + self.linear2(h).relu()
        return self.linear3(h)


@register("residual_mlp")
def residual_mlp(num_classes: int, input_shape: tuple[int, ...], *, hidden_size: int = 100) -> nn.Module:
    """MLP with one residual hidden layer of ``hidden_size`` units (PyTorch default init).

    The MNIST-1D lottery-ticket notebook uses ``hidden_size=500`` (276,010 parameters).

    >>> sum(p.numel() for p in residual_mlp(10, (1, 40), hidden_size=500).parameters())
    276010
    """
    return ResidualMLP(math.prod(input_shape), hidden_size, num_classes)
