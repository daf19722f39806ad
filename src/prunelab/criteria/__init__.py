"""Importance criteria: which weights (:mod:`~prunelab.criteria.elementwise`) or channels
(:mod:`~prunelab.criteria.channels`) matter."""

from __future__ import annotations

from prunelab.criteria.channels import (
    CHANNEL_CRITERIA,
    BatchNormScale,
    ChannelCriterion,
    FilterL1,
    RandomChannels,
    get_channel_criterion,
)
from prunelab.criteria.elementwise import Criterion, Magnitude, Random

CRITERIA: dict[str, type] = {"magnitude": Magnitude, "random": Random}


def get_criterion(criterion: str | Criterion, seed: int = 0) -> Criterion:
    """A criterion object from its registry name (``"magnitude"``, ``"random"``) or as given.

    >>> get_criterion("random", seed=3)
    Random(seed=3)
    """
    if not isinstance(criterion, str):
        if not callable(criterion):
            raise TypeError(f"criterion must be one of {sorted(CRITERIA)} or a Criterion, got {criterion!r}")
        return criterion
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; expected one of {sorted(CRITERIA)}")
    return CRITERIA[criterion](seed) if criterion == "random" else CRITERIA[criterion]()


__all__ = [
    "CHANNEL_CRITERIA", "CRITERIA", "BatchNormScale", "ChannelCriterion", "Criterion", "FilterL1", "Magnitude", "Random",
    "RandomChannels", "get_channel_criterion", "get_criterion",
]  # fmt: skip
