"""Target-sparsity schedules: gradual magnitude pruning (GMP) and IMP levels.

Sparsity is the fraction of prunable weights that are zero, in [0, 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prunelab.schedules._validation import check_int, check_real, check_step

# Slack, in units of levels, absorbing float error in log(1 - target) / log(1 - rate).
_LEVEL_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Polynomial:
    """Zhu & Gupta's polynomial GMP schedule, evaluated at update steps only.

    The target is recomputed at the update steps ``t = begin_step + j * frequency``
    (``t < end_step``) and at ``end_step`` itself::

        s_t = final + (initial - final) * (1 - (t - begin_step) / (end_step - begin_step)) ** exponent

    Between updates the value of the last update holds; before ``begin_step``
    the target is 0.0, and from ``end_step`` on it is exactly ``final``.
    ``exponent=3`` (default) is the cubic schedule, which prunes fast early and
    slowly near the target; ``exponent=1`` prunes the same amount at each update.

    >>> gmp = Polynomial(initial=0.05, final=0.9, begin_step=10, end_step=110, frequency=10)
    >>> gmp(10), gmp(110)
    (0.05, 0.9)
    >>> gmp.update_steps()[:3], gmp.update_steps()[-1]
    ((10, 20, 30), 110)
    """

    initial: float
    final: float
    begin_step: int
    end_step: int
    frequency: int
    exponent: float = 3

    def __post_init__(self) -> None:
        check_real("initial", self.initial, 0.0, 1.0)
        check_real("final", self.final, self.initial, 1.0)
        check_int("begin_step", self.begin_step, 0)
        check_int("end_step", self.end_step, self.begin_step + 1)
        check_int("frequency", self.frequency, 1)
        check_real("exponent", self.exponent, 0.0, low_open=True)

    def update_steps(self) -> tuple[int, ...]:
        """The steps at which the target changes, ending with ``end_step``."""
        return (*range(self.begin_step, self.end_step, self.frequency), self.end_step)

    def __call__(self, step: int) -> float:
        check_step(step)
        if step < self.begin_step:
            return 0.0
        if step >= self.end_step:
            return float(self.final)
        last_update = step - (step - self.begin_step) % self.frequency
        remaining = 1.0 - (last_update - self.begin_step) / (self.end_step - self.begin_step)
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
    return max(0, math.ceil(levels - _LEVEL_TOLERANCE))
