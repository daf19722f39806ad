"""Argument checks shared by the weight pruner and the channel pruner."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence

import torch

from prunelab.masks.targets import compile_pattern


def fraction(label: str, value: object, whole: bool = False) -> float:
    """``value`` as a Python float in [0, 1), or [0, 1] if ``whole`` may be pruned (numpy
    scalars count in their own precision; a one-element real tensor, integer or floating,
    counts as its number, as a numpy scalar does).

    >>> fraction("sparsity", 0.9), fraction("sparsity", torch.tensor(0.5)), fraction("sparsity", torch.tensor(0))
    (0.9, 0.5, 0.0)
    """
    expected = f"{label} must be a number in [0, 1{']' if whole else ')'}"
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dtype == torch.bool or value.is_complex():
            raise ValueError(f"{expected}, got a {value.dtype} tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 <= value < 1 or whole and value == 1):
        raise ValueError(f"{expected}, got {value!r}")
    return float(value)


def check_target(sparsity: object, scope: str | None, ratios: object, per: str) -> None:
    """One target: a sparsity (with an optional scope), or ratios ``per`` layer or group (without)."""
    if (sparsity is None) == (ratios is None):
        raise ValueError(f"give either a sparsity or per-{per} ratios, not both or neither")
    if ratios is not None and scope is not None:
        raise ValueError(f"scope={scope!r} does not apply to per-{per} ratios: give one or the other")


def ratios_by_target(
    ratios: object, targets: Sequence[str], named_by: Callable[[str, str], bool], kind: str, of: str, whole: bool = False
) -> dict[str, float]:
    """Each target (a ``kind``, one ``of`` ``targets``) that a key of ``ratios`` names
    (``named_by(key, target)``), with its ratio. A key that names nothing, or two ratios for
    one target, are errors; so is a ratio of 1 unless a ``whole`` target may be pruned.

    >>> ratios_by_target({"fc.*": 0.5}, ["fc1", "fc2", "conv"], lambda k, t: t.startswith(k[:2]), "layer", "layers")
    {'fc1': 0.5, 'fc2': 0.5}
    """
    if not isinstance(ratios, Mapping):
        raise TypeError(f"ratios must be a mapping of names to ratios, got {type(ratios).__name__}")
    chosen: dict[str, float] = {}
    named_in: dict[str, str] = {}  # the key that gave each target its ratio
    for key, raw_ratio in ratios.items():
        if not isinstance(key, str):
            raise TypeError(f"ratios are keyed by names or patterns (strings), got the key {key!r}")
        ratio = fraction(f"ratio for {key!r}", raw_ratio, whole)
        compile_pattern("ratios", key)
        named = [target for target in targets if named_by(key, target)]
        if not named:
            raise ValueError(f"ratio given for {key!r}, which names none of the {of}: {', '.join(targets)}")
        for target in named:
            if target in chosen and chosen[target] != ratio:
                raise ValueError(f"{kind} {target} gets two ratios: {chosen[target]} from {named_in[target]!r} and {ratio} from {key!r}")
            chosen[target], named_in[target] = ratio, key
    return chosen
