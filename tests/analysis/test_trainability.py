"""Trainability accuracy (seed 004): the mean training accuracy over the first LR stage."""

from __future__ import annotations

import pytest

from prunelab.analysis import first_lr_stage, trainability_accuracy
from prunelab.config import EvalConfig

ACCURACIES = [0.2, 0.4, 0.6, 0.8, 0.9, 0.95]


@pytest.mark.parametrize(
    ("settings", "n"),
    [
        ({"lr_schedule": {"name": "multistep", "milestones": [2, 5]}}, 2),
        ({"lr_schedule": {"name": "multistep", "milestones": [9]}}, 6),  # past the end: all epochs
        ({"lr_schedule": {"name": "step", "step_size": 4}}, 4),
        ({"lr_schedule": {"name": "cosine"}}, 6),
        ({"lr_schedule": {"name": "constant"}}, 6),
        ({"lr_policy": "llr", "lr_schedule": {"name": "multistep", "milestones": [2]}}, 6),  # the policy's LR
    ],
)
def test_the_first_lr_stage_and_the_mean_over_it(settings, n) -> None:
    evaluation = EvalConfig.model_validate(settings)
    assert first_lr_stage(evaluation, len(ACCURACIES)) == n
    assert trainability_accuracy(ACCURACIES, evaluation) == pytest.approx(sum(ACCURACIES[:n]) / n)


def test_no_retraining_has_no_trainability() -> None:
    assert trainability_accuracy([], EvalConfig()) is None
