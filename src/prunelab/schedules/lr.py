"""Learning-rate schedules as pure functions of the optimizer step.

Every schedule is a frozen dataclass; calling it with a 0-based optimizer step
returns the absolute learning rate for that step. Schedules know nothing about
torch optimizers: the training loop writes ``schedule(step)`` into the
optimizer's param groups before each step. Lengths are in steps; configs that
speak in epochs convert with ``steps_per_epoch`` before building a schedule.
Schedules with a ``total_steps`` hold their final value past it.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

from prunelab.schedules._validation import as_tuple, check_int, check_real, check_step, lr_tuple
from prunelab.wording import counted

Schedule = Callable[[int], float]
"""Any callable mapping a 0-based step to a float (LR or target sparsity)."""


@dataclass(frozen=True)
class Constant:
    """The same learning rate at every step.

    >>> Constant(0.01)(1000)
    0.01
    """

    lr: float

    def __post_init__(self) -> None:
        check_real("lr", self.lr, 0.0)

    def __call__(self, step: int) -> float:
        check_step(step)
        return float(self.lr)


@dataclass(frozen=True)
class Step:
    """``lr * gamma ** (step // step_size)``: decay by ``gamma`` every ``step_size`` steps.

    >>> Step(0.1, step_size=10, gamma=0.5)(25)
    0.025
    """

    lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        check_real("lr", self.lr, 0.0)
        check_int("step_size", self.step_size, 1)
        check_real("gamma", self.gamma, 0.0, low_open=True)

    def __call__(self, step: int) -> float:
        check_step(step)
        return self.lr * self.gamma ** (step // self.step_size)


@dataclass(frozen=True)
class MultiStep:
    """Multiply ``lr`` by ``gamma`` at each milestone step (the milestone step itself is decayed).

    >>> MultiStep(1.0, milestones=(20, 32), gamma=0.5)(20)
    0.5
    """

    lr: float
    milestones: tuple[int, ...]
    gamma: float = 0.1

    def __post_init__(self) -> None:
        check_real("lr", self.lr, 0.0)
        check_real("gamma", self.gamma, 0.0, low_open=True)
        object.__setattr__(self, "milestones", as_tuple("milestones", self.milestones))
        for milestone in self.milestones:
            check_int("each of milestones", milestone, 1)
        if any(a >= b for a, b in zip(self.milestones, self.milestones[1:])):
            raise ValueError(f"milestones must be strictly increasing, got {self.milestones!r}")

    def __call__(self, step: int) -> float:
        check_step(step)
        return self.lr * self.gamma ** bisect.bisect_right(self.milestones, step)


def halving_milestones(epochs: int, stages: int, max_stage_epochs: int = 30) -> tuple[int, ...]:
    """The epochs at which a schedule of ``stages`` LRs steps down, by seed 004's Rules 2 and 3
    (its Appendix A): each LR but the last takes half of the epochs left (rounded up), at most
    ``max_stage_epochs``; the last LR takes the rest. Every stage must get an epoch.

    Seed 004's fine-tuning of 90 epochs from 1e-1 to 1e-5 ("0:1e-1,30:1e-2,60:1e-3,75:1e-4,83:1e-5"):

    >>> halving_milestones(90, stages=5)
    (30, 60, 75, 83)
    """
    check_int("epochs", epochs, 1)
    check_int("stages", stages, 1)
    check_int("max_stage_epochs", max_stage_epochs, 1)
    milestones = _halved(epochs, stages, max_stage_epochs)
    if milestones[-1:] >= (epochs,):
        fewest = next(e for e in itertools.count(epochs + 1) if _halved(e, stages, max_stage_epochs)[-1] < e)
        raise ValueError(f"{stages} LR stages halved in turn need at least {fewest} epochs (each gets one), got {epochs}")
    return milestones


def _halved(epochs: int, stages: int, max_stage_epochs: int) -> tuple[int, ...]:
    milestones, start = [], 0
    for _ in range(stages - 1):
        start += min(max_stage_epochs, math.ceil((epochs - start) / 2))
        milestones.append(start)
    return tuple(milestones)


@dataclass(frozen=True)
class _Annealing:
    """From ``lr`` at step 0 to ``final_lr`` at ``total_steps`` (held afterwards), along a
    curve each subclass draws from the progress, 0 to 1."""

    lr: float
    total_steps: int
    final_lr: float = 0.0

    def __post_init__(self) -> None:
        check_real("lr", self.lr, 0.0)
        check_int("total_steps", self.total_steps, 1)
        check_real("final_lr", self.final_lr, 0.0)

    def _progress(self, step: int) -> float:
        check_step(step)
        return min(step, self.total_steps) / self.total_steps


@dataclass(frozen=True)
class Cosine(_Annealing):
    """Half-cosine from ``lr`` at step 0 to ``final_lr`` at ``total_steps`` (held afterwards).

    ``final_lr + (lr - final_lr) * (1 + cos(pi * step / total_steps)) / 2``

    >>> Cosine(0.1, total_steps=8)(4)
    0.05
    """

    def __call__(self, step: int) -> float:
        return self.final_lr + (self.lr - self.final_lr) * (1.0 + math.cos(math.pi * self._progress(step))) / 2.0


@dataclass(frozen=True)
class Linear(_Annealing):
    """Straight line from ``lr`` at step 0 to ``final_lr`` at ``total_steps`` (held afterwards).

    >>> Linear(1.0, total_steps=4)(1)
    0.75
    """

    def __call__(self, step: int) -> float:
        return self.lr + (self.final_lr - self.lr) * self._progress(step)


@dataclass(frozen=True)
class Warmup:
    """Scale the first ``warmup_steps`` steps of ``schedule`` by a linear ramp.

    For ``step < warmup_steps``::

        lr(step) = schedule(step) * (start_factor + (1 - start_factor) * (step + 1) / warmup_steps)

    and ``lr(step) = schedule(step)`` afterwards. The ramp multiplies the wrapped
    schedule rather than replacing it, so the decay underneath keeps its timing;
    the ``step + 1`` makes the last warmup step use the full factor 1 and keeps
    step 0 non-zero even with ``start_factor=0``.

    >>> Warmup(Constant(0.1), warmup_steps=4)(0)
    0.025
    """

    schedule: Schedule
    warmup_steps: int
    start_factor: float = 0.0

    def __post_init__(self) -> None:
        if not callable(self.schedule):
            raise ValueError(f"schedule must be callable as schedule(step), got {self.schedule!r}")
        check_int("warmup_steps", self.warmup_steps, 1)
        check_real("start_factor", self.start_factor, 0.0, 1.0, high_open=False)

    def __call__(self, step: int) -> float:
        check_step(step)
        lr = self.schedule(step)
        if step >= self.warmup_steps:
            return lr
        ramp = (step + 1) / self.warmup_steps
        return lr * (self.start_factor + (1.0 - self.start_factor) * ramp)


def round_warmup(setting: str, length: float, steps: int, of: str) -> int:
    """The optimizer steps of a warmup ``length`` times ``steps`` long, rounded to the nearest
    whole step: ``setting`` is ``warmup_epochs`` of an epoch's steps or ``warmup_fraction``
    of a retraining's, and ``of`` names those steps. A ramp of one step is the full LR (see
    :class:`Warmup`), so a warmup given that rounds to fewer than 2 steps, which would change
    nothing, is an error rather than no warmup; 0 is none.

    >>> round_warmup("warmup_epochs", 0.3, 10, "an epoch")
    3
    >>> round_warmup("warmup_epochs", 0.1, 10, "an epoch")
    Traceback (most recent call last):
    ...
    ValueError: warmup_epochs=0.1 of an epoch's 10 optimizer steps rounds to 1, and a warmup of fewer than 2 steps leaves the LR as it is; 0.2 is 2 steps (0: no warmup)
    """
    count = round(length * steps)
    if length and steps and count < 2:
        raise ValueError(
            f"{setting}={length:g} of {of}'s {counted(steps, 'optimizer step')} rounds to {count}, and a warmup of fewer "
            f"than 2 steps leaves the LR as it is; {2 / steps:.3g} is 2 steps (0: no warmup)"
        )
    return count


@dataclass(frozen=True)
class Replay:
    """Replay a recorded per-step LR log: ``lrs[step]``, the last value past the end.

    >>> Replay((0.1, 0.01))(5)
    0.01
    """

    lrs: tuple[float, ...]

    def __post_init__(self) -> None:
        # Normalise lists/arrays to a tuple of floats so the schedule stays hashable and immutable.
        object.__setattr__(self, "lrs", lr_tuple("lrs", self.lrs))

    def __call__(self, step: int) -> float:
        check_step(step)
        return self.lrs[min(step, len(self.lrs) - 1)]
