"""Trainability accuracy (seed 004): the mean training accuracy over the first LR stage,
read off the LR the retraining used step by step."""

from __future__ import annotations

import math

import pytest

from prunelab.analysis import first_lr_stage, trainability_accuracy
from prunelab.schedules import Cosine, Linear, MultiStep, Step, Warmup

ACCURACIES = [0.2, 0.4, 0.6, 0.8, 0.9, 0.95]
STEPS_PER_EPOCH = 4
STEPS = len(ACCURACIES) * STEPS_PER_EPOCH


def log(schedule, start: int = 0, steps: int = STEPS) -> list[float]:
    return [schedule(step) for step in range(start, start + steps)]


def epoch_ends(lr_log: list[float], steps_per_epoch: int = STEPS_PER_EPOCH) -> list[int]:
    return list(range(steps_per_epoch, len(lr_log) + 1, steps_per_epoch))


@pytest.mark.parametrize(
    ("lr_log", "n"),
    [
        (log(MultiStep(0.1, (2 * STEPS_PER_EPOCH, 5 * STEPS_PER_EPOCH))), 2),
        (log(MultiStep(0.1, (9 * STEPS_PER_EPOCH,))), 6),  # past the end: all epochs
        (log(MultiStep(0.1, (4 * STEPS_PER_EPOCH, 5 * STEPS_PER_EPOCH), gamma=0.5)), 4),
        # late rewinding to epoch 2 of an 8-epoch schedule with a milestone at epoch 5: the
        # retraining's own first stage is 3 epochs
        (log(MultiStep(0.1, (5 * STEPS_PER_EPOCH,)), start=2 * STEPS_PER_EPOCH), 3),
        # a policy scaling a multistep schedule into the retraining (SLR): a milestone mid-epoch
        ([0.1] * 9 + [0.01] * 8 + [0.001] * 7, 2),
        (log(Warmup(MultiStep(0.1, (3 * STEPS_PER_EPOCH,)), STEPS_PER_EPOCH)), 3),  # warmup counts
        (log(Cosine(0.1, STEPS)), 6),
        (log(Warmup(Cosine(0.1, STEPS), STEPS_PER_EPOCH)), 6),
        (log(Linear(0.1, STEPS)), 6),
        # SLR stretching a cosine schedule of 8 steps over the retraining: each LR holds 3 steps
        ([lr for lr in log(Cosine(0.1, 8), steps=8) for _ in range(3)], 6),
        # the same over two epochs, each LR held 2 steps: 3 drops, more than epochs end, and no stages
        ([lr for lr in log(Cosine(0.1, 4), steps=4) for _ in range(2)], 2),
        # SLR compressing a 6-epoch schedule stepping down at epochs 3 and 5 into 2 epochs of 4 steps
        ([0.1] * 4 + [0.01] * 3 + [0.001], 1),
        # stepping down by one factor at every epoch: StepLR(step_size=1), milestones at every epoch
        (log(Step(0.1, STEPS_PER_EPOCH, gamma=0.5)), 1),
        (log(MultiStep(0.1, tuple(range(STEPS_PER_EPOCH, STEPS, STEPS_PER_EPOCH)), gamma=0.2)), 1),
        ([0.1] * STEPS, 6),
        ([0.1] * (STEPS - 1) + [0.01], 5),  # a step at the very last step: the last epoch is not all at 0.1
        # a decay over the first epoch's steps 1 to 3, then held: consecutive drops within an epoch, no stages
        (log(Linear(0.1, 3, final_lr=0.01)), 6),
        # three epochs, a drop at each epoch's end inside by other factors (x 0.5, x 0.2): a decay stepped per epoch
        ([0.1] * 4 + [0.05] * 4 + [0.01] * 4, 3),
        # milestones at epochs 2 and 3 of 4 by other factors: not at every epoch's end, so stages
        ([0.1] * 8 + [0.05] * 4 + [0.01] * 4, 2),
    ],
)
def test_the_first_lr_stage_and_the_mean_over_it(lr_log, n) -> None:
    ends = epoch_ends(lr_log)
    assert first_lr_stage(lr_log, ends) == n
    history = [{"train_acc": a, "step": 1000 + end} for a, end in zip(ACCURACIES, ends)]  # a log that starts at step 1000
    assert math.isclose(trainability_accuracy({"history": history, "lr_log": lr_log}), sum(ACCURACIES[:n]) / n)


def test_a_first_stage_shorter_than_an_epoch_still_counts_one_epoch() -> None:
    assert first_lr_stage([0.1] + [0.01] * 7, epoch_ends=[4, 8]) == 1


def test_a_retraining_entered_part_way_into_an_epoch_counts_whole_epochs() -> None:
    """Rewinding to step 5 of 8-step epochs with a milestone at epoch 2 (step 16): the
    retraining's epochs end at steps 8, 16 and 24, 3, 11 and 19 steps into its log, and
    the first two (a part and a whole) train at the first LR."""
    lr_log = log(MultiStep(0.1, (16,)), start=5, steps=19)
    history = [{"train_acc": a, "step": s} for a, s in ((0.2, 8), (0.4, 16), (0.6, 24))]
    assert first_lr_stage(lr_log, [3, 11, 19]) == 2
    assert math.isclose(trainability_accuracy({"history": history, "lr_log": lr_log}), 0.3)


def test_no_retraining_has_no_trainability() -> None:
    assert trainability_accuracy({"history": [], "lr_log": []}) is None


def test_a_schedule_stepped_once_an_epoch_has_no_stages() -> None:
    """CosineAnnealingLR stepped per epoch: the LR drops at every epoch's end, a decay throughout."""
    import math

    epochs, steps = 10, 5
    lr_log = [0.05 * (1 + math.cos(math.pi * e / epochs)) for e in range(epochs) for _ in range(steps)]
    ends = [steps * (e + 1) for e in range(epochs)]
    assert first_lr_stage(lr_log, ends) == epochs
    # one milestone among many epochs is still a stage
    assert first_lr_stage([0.1] * 15 + [0.01] * 35, ends) == 3


@pytest.mark.parametrize(
    ("lr_log", "n"),
    [
        ([0.1, 0.01, 0.001, 0.001], 1),  # milestones at epochs 1 and 2
        ([0.1, 0.1, 0.01, 0.001, 0.001], 2),  # at epochs 2 and 3
        ([0.1, 0.08, 0.05, 0.02, 0.0], 5),  # linear, stepped once an epoch: no stages
        ([0.1, 0.05, 0.025, 0.0125], 1),  # x 0.5 every epoch
    ],
)
def test_full_batch_retraining_one_step_an_epoch(lr_log, n) -> None:
    """One step an epoch: drops at consecutive steps are milestones one epoch apart, not a decay within epochs."""
    assert first_lr_stage(lr_log, epoch_ends=list(range(1, len(lr_log) + 1))) == n


def test_two_epochs_with_drops_by_different_factors_still_have_a_first_stage() -> None:
    """A decay throughout is told from stages by drops at every epoch's end of more than two
    epochs: with two, there is no such pattern to see, so a drop at the end of epoch 1 (x 0.5,
    then x 0.2 mid-epoch 2) ends a first stage of one epoch."""
    lr_log = [0.1] * 4 + [0.05] * 2 + [0.01] * 2
    assert first_lr_stage(lr_log, epoch_ends=[4, 8]) == 1
    history = [{"train_acc": 0.3, "step": 4}, {"train_acc": 0.7, "step": 8}]
    assert trainability_accuracy({"history": history, "lr_log": lr_log}) == 0.3


def test_an_lr_falling_by_factors_a_few_percent_apart_has_no_stages() -> None:
    """A smooth decay stepped once an epoch, by x 0.9, 0.92, 0.94, 0.96: factors that differ, so all 5 epochs (only one factor at every epoch's end is a step schedule)."""
    lrs = [1.0]
    for factor in (0.9, 0.92, 0.94, 0.96):
        lrs.append(lrs[-1] * factor)
    assert first_lr_stage([lr for lr in lrs for _ in range(2)], epoch_ends=[2, 4, 6, 8, 10]) == 5


def test_a_decay_at_every_epoch_whose_first_factor_differs_has_no_stages() -> None:
    """x 0.8, then x 0.5 twice, one drop at each epoch's end: factors that differ, so all 4 epochs."""
    assert first_lr_stage([0.1, 0.1, 0.08, 0.08, 0.04, 0.04, 0.02, 0.02], epoch_ends=[2, 4, 6, 8]) == 4
