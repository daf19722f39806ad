"""Trainability accuracy (seed 004, section 5.1): how fast a pruned network trains.

TA is the mean training accuracy over the first N epochs of retraining, N being the epochs
of the retraining's first LR stage, so that runs compare at the same LR. A pruned model
that is harder to train climbs more slowly and scores a lower TA, whatever it reaches in
the end.

N is read off the LR the retraining actually used, step by step, so it is right however
that LR came about: a schedule of the eval phase, one resumed at a late-rewinding point, or
an LR policy replaying the find phase's schedule (LRW, SLR).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence


def first_lr_stage(lr_log: Sequence[float], epoch_ends: Sequence[int]) -> int:
    """N: the whole epochs before the LR first steps down (a step or multistep schedule,
    also scaled or replayed by an LR policy, or one stepping down by the same factor at
    every epoch's end); all epochs of an LR that never steps down, or that decays throughout
    (cosine, linear, the policies CLR, LLR and ALLR, or a smooth schedule stretched so that
    each LR holds a few steps, or one stepped once an epoch, like ``CosineAnnealingLR``
    stepped per epoch), which has no stages. A warmup counts as part of the first stage.
    ``epoch_ends`` are the steps of the log at which the epochs end (a first epoch entered
    part-way, as after rewinding to a step, is shorter).

    >>> first_lr_stage([0.1] * 6 + [0.01] * 4, epoch_ends=[2, 4, 6, 8, 10])  # a milestone at epoch 3
    3
    >>> first_lr_stage([0.1, 0.09, 0.07, 0.04, 0.02, 0.0], epoch_ends=[2, 4, 6])  # linear: no stages
    3
    >>> first_lr_stage([0.1, 0.1, 0.08, 0.08, 0.05, 0.05, 0.02, 0.02], epoch_ends=[2, 4, 6, 8])  # cosine by epoch
    4
    >>> first_lr_stage([0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125], epoch_ends=[2, 4, 6, 8])  # x 0.5 every epoch
    1
    """
    drops = [step for step in range(1, len(lr_log)) if lr_log[step] < lr_log[step - 1]]
    # No step down, or a decay throughout: at consecutive steps within epochs (with one step
    # an epoch, consecutive steps are epochs' ends: milestones one epoch apart), more often
    # than epochs end, or at every epoch's end (of more than two) by factors that differ, as
    # a smooth decay's do.
    within_epochs = drops and drops[0] + 1 in drops and not {drops[0], drops[0] + 1} <= set(epoch_ends)
    if (
        not drops or within_epochs or len(drops) > len(epoch_ends)
        or (len(drops) >= len(epoch_ends) - 1 > 1 and not _one_factor(lr_log, drops))
    ):  # fmt: skip
        return len(epoch_ends)
    return max(1, sum(end <= drops[0] for end in epoch_ends))


def _one_factor(lr_log: Sequence[float], drops: Sequence[int]) -> bool:
    """Whether the LR steps down by the same factor at each of ``drops`` (a step schedule)."""
    factors = [lr_log[step] / lr_log[step - 1] for step in drops]
    return all(math.isclose(factor, factors[0], rel_tol=1e-6) for factor in factors)


def trainability_accuracy(trained: Mapping) -> float | None:
    """Mean training accuracy over the first LR stage of a retraining, given as the trainer
    returns it (``history``, with the step each epoch ends at, and ``lr_log``); None if it
    trained no epoch. An epoch's training accuracy is the one measured on its batches as
    they trained (seed 004 does not say; a separate pass over the training set would double
    the cost of measuring it).

    >>> history = [{"train_acc": a, "step": s} for a, s in ((0.5, 2), (0.7, 4), (0.9, 6), (0.95, 8))]
    >>> trainability_accuracy({"history": history, "lr_log": [0.1] * 4 + [0.01] * 4})
    0.6
    """
    history, lr_log = trained["history"], trained["lr_log"]
    if not history:
        return None
    start = history[-1]["step"] - len(lr_log)  # the step the retraining started at
    n = first_lr_stage(lr_log, [row["step"] - start for row in history])
    return statistics.fmean(row["train_acc"] for row in history[:n])
