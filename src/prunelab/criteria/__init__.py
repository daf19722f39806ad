"""Importance criteria: which weights (:mod:`~prunelab.criteria.elementwise`) or channels
(:mod:`~prunelab.criteria.channels`) matter."""

from __future__ import annotations

from prunelab.criteria.channels import (
    CHANNEL_CRITERIA,
    BatchNormScale,
    ChannelCriterion,
    FilterL1,
    RandomChannels,
    default_scope,
    get_channel_criterion,
)
from prunelab.criteria.elementwise import Criterion, Magnitude, Random
from prunelab.criteria.registry import from_registry

CRITERIA: dict[str, type] = {"magnitude": Magnitude, "random": Random}


def get_criterion(criterion: str | Criterion, seed: int = 0) -> Criterion:
    """A criterion object from its registry name (``"magnitude"``, ``"random"``) or as given.

    >>> get_criterion("random", seed=3)
    Random(seed=3)
    """
    if isinstance(criterion, str) and criterion in CHANNEL_CRITERIA:
        raise ValueError(f"{criterion!r} scores whole channels: use prunelab.ChannelPruner(model, example_input, criterion={criterion!r})")
    return from_registry(CRITERIA, "criterion", criterion, seed, ("name, values, positions, out", "prunelab.criteria.elementwise"))


__all__ = [
    "CHANNEL_CRITERIA", "CRITERIA", "BatchNormScale", "ChannelCriterion", "Criterion", "FilterL1", "Magnitude", "Random",
    "RandomChannels", "default_scope", "get_channel_criterion", "get_criterion",
]  # fmt: skip
