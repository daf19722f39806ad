"""Trainability accuracy (seed 004, section 5.1): how fast a pruned network trains.

TA is the mean training accuracy over the first N epochs of retraining, N being the epochs
of the retraining's first LR stage, so that runs compare at the same LR. A pruned model
that is harder to train climbs more slowly and scores a lower TA, whatever it reaches in
the end.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from prunelab.config.schema import EvalConfig


def first_lr_stage(evaluation: EvalConfig, epochs: int) -> int:
    """N: the epochs before the retraining LR first steps down (``multistep``: the first
    milestone, ``step``: ``step_size``); all ``epochs`` of a schedule without stages (constant,
    cosine, linear, or any LR policy).

    >>> first_lr_stage(EvalConfig(lr_schedule={"name": "multistep", "milestones": [30, 60]}), 90)
    30
    >>> first_lr_stage(EvalConfig(lr_schedule={"name": "cosine"}), 90)
    90
    """
    schedule = evaluation.lr_schedule
    if evaluation.lr_policy is None and schedule.name == "multistep" and schedule.milestones:
        return min(epochs, schedule.milestones[0])
    if evaluation.lr_policy is None and schedule.name == "step":
        return min(epochs, schedule.step_size)
    return epochs


def trainability_accuracy(train_accuracies: Sequence[float], evaluation: EvalConfig) -> float | None:
    """Mean of the first N epochs' training accuracies of a retraining (None if it has none).

    >>> trainability_accuracy([0.5, 0.7, 0.9, 0.95], EvalConfig(lr_schedule={"name": "step", "step_size": 2}))
    0.6
    """
    n = first_lr_stage(evaluation, len(train_accuracies))
    return statistics.fmean(train_accuracies[:n]) if n else None
