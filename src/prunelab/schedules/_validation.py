"""Argument checks shared by the schedules; each raises a ValueError naming the argument."""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real


def check_int(name: str, value: object, minimum: int) -> None:
    """Require an integer (bool excluded) that is >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def check_real(
    name: str,
    value: object,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = True,
) -> None:
    """Require a finite real number in the interval from ``low`` to ``high``."""
    left, right = ("(" if low_open else "["), (")" if high_open else "]")
    interval = f"{left}{low:g}, {high:g}{right}"
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        raise ValueError(f"{name} must be in {interval}, got {value!r}")


def check_step(step: object) -> None:
    """Require a valid 0-based optimizer step."""
    check_int("step", step, 0)


def as_tuple(name: str, values: object) -> tuple:
    """``values`` (a list, a range, ...) as a tuple, so that a schedule stays hashable and
    immutable; a single value or a string is a ValueError naming the argument."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"{name} must be a sequence (e.g. a list or a range), got {values!r}")
    return tuple(values)


def lr_tuple(name: str, values: Iterable[float]) -> tuple[float, ...]:
    """Require a non-empty sequence of finite learning rates >= 0; return them as a tuple of floats."""
    lrs = as_tuple(name, values)
    if not lrs:
        raise ValueError(f"{name} must contain at least one learning rate, got an empty sequence")
    for lr in lrs:
        check_real(f"each of {name}", lr, 0.0)
    return tuple(float(lr) for lr in lrs)
