"""Looking criteria up by name: one lookup for the weight and the channel registries."""

from __future__ import annotations

import inspect
from collections.abc import Callable


def from_registry(registry: dict[str, type], kind: str, criterion: str | Callable, seed: int) -> Callable:
    """The criterion named ``criterion`` in ``registry`` (built with ``seed`` if it takes one),
    or ``criterion`` itself if it is already a callable.

    >>> from prunelab.criteria import CRITERIA
    >>> from_registry(CRITERIA, "criterion", "l2", 0)
    Traceback (most recent call last):
    ...
    ValueError: unknown criterion 'l2'; expected one of ['magnitude', 'random']
    """
    if not isinstance(criterion, str):
        if not callable(criterion):
            raise TypeError(f"{kind} must be one of {sorted(registry)} or a callable criterion, got {criterion!r}")
        return criterion
    if criterion not in registry:
        raise ValueError(f"unknown {kind} {criterion!r}; expected one of {sorted(registry)}")
    factory = registry[criterion]
    return factory(seed) if "seed" in inspect.signature(factory).parameters else factory()
