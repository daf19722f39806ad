"""Channel importance criteria: one score per channel of a channel group, larger means more important.

The contract is small: a criterion is called with the model and one
:class:`~prunelab.structured.ChannelGroup` and returns a float tensor of ``group.size``
scores, or None if it cannot score the group (which is then left whole). Members of a group are pruned jointly, so a criterion sums its measure over them
(seed 002: "for channels that are connected by residual connections, we sum their measures").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor, nn

from prunelab.criteria.elementwise import Random, check_seed
from prunelab.criteria.registry import from_registry

if TYPE_CHECKING:
    from prunelab.structured.groups import ChannelGroup


class ChannelCriterion(Protocol):
    """Scores of a channel group's channels, larger kept: one per channel (``group.size``), or
    None if the criterion cannot score the group (e.g. ``bn_scale`` where no BatchNorm
    follows), which then keeps all its channels. Scores depend on the model's weights only."""

    def __call__(self, model: nn.Module, group: ChannelGroup) -> Tensor | None: ...


class FilterL1:
    """The L1 norm of each channel's filter (its row of the weight), summed over the layers
    making the channel: Li et al. (2017), "Pruning filters for efficient ConvNets".

    >>> from prunelab.structured import channel_groups
    >>> model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    >>> with torch.no_grad():
    ...     _ = model[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0], [-4.0, 1.0]]))
    >>> FilterL1()(model, channel_groups(model, torch.zeros(1, 2))[0]).tolist()
    [3.0, 0.5, 5.0]
    """

    def __call__(self, model: nn.Module, group: ChannelGroup) -> Tensor:
        scores = torch.zeros(group.size, dtype=torch.float64)
        for name in group.producers:
            weight = model.get_submodule(name).weight.detach()
            scores += weight.abs().reshape(group.size, -1).sum(1, dtype=torch.float64).cpu()
        return scores

    def __repr__(self) -> str:
        return "FilterL1()"


class BatchNormScale:
    """|gamma| of the BatchNorm layers normalising each channel, summed over them: the channel
    criterion of seed 002's structured pruning (Liu et al., 2017, "network slimming").
    A group without a BatchNorm layer has no score (``None``) and is not pruned.
    """

    def __call__(self, model: nn.Module, group: ChannelGroup) -> Tensor | None:
        norms = [model.get_submodule(name) for name in group.norms]
        if not norms or any(norm.weight is None for norm in norms):
            return None
        return sum(norm.weight.detach().abs().to(torch.float64).cpu() for norm in norms)

    def __repr__(self) -> str:
        return "BatchNormScale()"


class RandomChannels:
    """Uniform random scores, fixed by ``seed`` and the group's name: the random baseline.

    >>> from prunelab.structured import ChannelGroup
    >>> group = ChannelGroup("fc1", 3, ["fc1"])
    >>> bool(torch.equal(RandomChannels(0)(None, group), RandomChannels(0)(None, group)))
    True
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = check_seed(seed)

    def __call__(self, model: nn.Module, group: ChannelGroup) -> Tensor:
        return Random(self.seed)(f"channels:{group.name}", torch.zeros(group.size), slice(0, group.size), torch.empty(group.size))

    def __repr__(self) -> str:
        return f"RandomChannels(seed={self.seed})"


CHANNEL_CRITERIA: dict[str, type] = {"filter_l1": FilterL1, "bn_scale": BatchNormScale, "random_channels": RandomChannels}


def default_scope(criterion: object) -> str:
    """The scope a channel criterion (its name or itself) ranks channels in unless told otherwise,
    in :class:`~prunelab.structured.ChannelPruner` and in a recipe: ``layerwise`` for
    ``filter_l1`` (Li et al. and seed 004 prune filters layer by layer: the norms of layers with
    different fan-in do not compare), ``global`` for the others (BatchNorm scales compare, as
    network slimming ranks them).

    >>> default_scope("filter_l1"), default_scope(FilterL1()), default_scope("bn_scale")
    ('layerwise', 'layerwise', 'global')
    """
    return "layerwise" if criterion == "filter_l1" or isinstance(criterion, FilterL1) else "global"


def get_channel_criterion(criterion: str | ChannelCriterion, seed: int = 0) -> ChannelCriterion:
    """A channel criterion from its registry name (``"filter_l1"``, ``"bn_scale"``, ``"random_channels"``) or as given.

    >>> get_channel_criterion("random_channels", seed=2)
    RandomChannels(seed=2)
    """
    return from_registry(CHANNEL_CRITERIA, "channel criterion", criterion, seed, ("model, group", "prunelab.criteria.channels"))
