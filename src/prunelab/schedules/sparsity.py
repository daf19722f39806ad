"""Target-sparsity schedules: gradual magnitude pruning (GMP) and IMP levels.

Sparsity is the fraction of prunable weights that are zero, in [0, 1).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from prunelab.schedules._validation import as_tuple, check_int, check_real, check_step

# Slack, in units of levels, absorbing float error in log(1 - target) / log(1 - rate).
_LEVEL_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Polynomial:
    """Zhu & Gupta's polynomial GMP schedule, evaluated at its update steps only.

    The target is recomputed at each step ``t`` of ``update_steps``, the first of which is
    ``t_0`` and the last ``t_n``::

        s_t = final + (initial - final) * (1 - (t - t_0) / (t_n - t_0)) ** exponent

    Between updates the value of the last update holds; before ``t_0`` the target is 0.0,
    and from ``t_n`` on it is exactly ``final`` (a single update goes straight there).
    ``exponent=3`` (default) is the cubic schedule, which prunes fast early and slowly near
    the target; ``exponent=1`` prunes the same amount at each of evenly spaced updates.

    >>> gmp = Polynomial(initial=0.05, final=0.9, update_steps=range(10, 111, 10))
    >>> gmp(10), gmp(110)
    (0.05, 0.9)
    >>> gmp.update_steps[:3], gmp.update_steps[-1]
    ((10, 20, 30), 110)
    """

    initial: float
    final: float
    update_steps: tuple[int, ...]
    exponent: float = 3

    def __post_init__(self) -> None:
        check_real("initial", self.initial, 0.0, 1.0)
        check_real("final", self.final, self.initial, 1.0)
        object.__setattr__(self, "update_steps", as_tuple("update_steps", self.update_steps))
        if not self.update_steps:
            raise ValueError("update_steps must name at least one step")
        for step in self.update_steps:
            check_int("each of update_steps", step, 0)
        if any(a >= b for a, b in zip(self.update_steps, self.update_steps[1:])):
            raise ValueError(f"update_steps must be strictly increasing, got {self.update_steps!r}")
        check_real("exponent", self.exponent, 0.0, low_open=True)

    def __call__(self, step: int) -> float:
        check_step(step)
        first, last = self.update_steps[0], self.update_steps[-1]
        if step < first:
            return 0.0
        if step >= last:
            return float(self.final)
        last_update = self.update_steps[bisect.bisect_right(self.update_steps, step) - 1]
        remaining = 1.0 - (last_update - first) / (last - first)
        # The formula above, rearranged so that the first update is exactly ``initial``.
        return self.initial + (self.final - self.initial) * (1.0 - remaining**self.exponent)


def imp_sparsity(level: int, rate: float = 0.2) -> float:
    """Sparsity after ``level`` IMP prune-retrain cycles that each prune ``rate`` of the remaining weights.

    ``1 - (1 - rate) ** level``

    >>> round(imp_sparsity(3), 10)
    0.488
    """
    check_int("level", level, 0)
    check_real("rate", rate, 0.0, 1.0, low_open=True)
    return 1.0 - (1.0 - rate) ** level


def imp_levels(target: float, rate: float = 0.2) -> int:
    """The smallest number of IMP levels whose sparsity reaches ``target``.

    Solves ``imp_sparsity(n, rate) >= target`` in closed form with a tiny
    tolerance, so a target written as ``1 - 0.8 ** 10`` gives 10, not 11.

    >>> imp_levels(0.9), imp_levels(1 - 0.8**10)
    (11, 10)
    """
    check_real("target", target, 0.0, 1.0)
    check_real("rate", rate, 0.0, 1.0, low_open=True)
    levels = math.log1p(-target) / math.log1p(-rate)
    return math.ceil(levels - _LEVEL_TOLERANCE)
