"""Retraining LR policies and ALLR's d1 against hand-computed values."""

import math
import re

import pytest
import torch

from prunelab.schedules import POLICIES, allr_d1, retrain_schedule

# 10 epochs x 4 steps: 0.1, then 0.01 from epoch 5 (step 20), then 0.001 from epoch 8 (step 32).
LOG = (0.1,) * 20 + (0.01,) * 12 + (0.001,) * 8
RETRAIN = 8


def lrs(plan, steps=RETRAIN):
    return [plan.schedule(step) for step in range(steps)]


def test_policies():
    assert POLICIES == ("ft", "lrw", "slr", "clr", "llr", "allr")


def test_ft_uses_last_lr():
    plan = retrain_schedule("ft", LOG, RETRAIN)
    assert plan.policy == "ft"
    assert plan.initial_lr == 0.001
    assert lrs(plan, 10) == [0.001] * 10


def test_lrw_replays_the_end_of_the_log():
    assert lrs(retrain_schedule("lrw", LOG, RETRAIN)) == [0.001] * 8
    # 12 steps rewind to step 40 - 12 = 28: four steps at 0.01, then eight at 0.001.
    plan = retrain_schedule("lrw", LOG, 12)
    assert plan.initial_lr == 0.01
    assert lrs(plan, 14) == [0.01] * 4 + [0.001] * 10


def test_lrw_can_replay_the_whole_log():
    assert lrs(retrain_schedule("lrw", LOG, 40), 40) == list(LOG)


def test_slr_compresses_the_log():
    # lr(step) = LOG[floor(step * 40 / 8)] = LOG[5 * step] -> LOG[0], LOG[5], ..., LOG[35]
    plan = retrain_schedule("slr", LOG, RETRAIN)
    assert plan.initial_lr == 0.1
    assert lrs(plan) == [0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001]


def test_slr_with_uneven_ratio():
    # lr(step) = LOG[floor(step * 40 / 6)] -> LOG[0], LOG[6], LOG[13], LOG[20], LOG[26], LOG[33]
    assert lrs(retrain_schedule("slr", LOG, 6), 6) == [0.1, 0.1, 0.1, 0.01, 0.01, 0.001]
    # A strictly decreasing log tells every index apart: floor, not round (6.67 -> 6, 26.67 -> 26).
    decreasing = tuple((40 - i) / 100 for i in range(40))
    assert lrs(retrain_schedule("slr", decreasing, 6), 6) == [0.40, 0.34, 0.27, 0.20, 0.14, 0.07]


def test_slr_restarts_at_the_peak_of_a_warmed_up_log():
    """A find phase that warmed up over its first 4 of 16 steps: SLR compressed into 8 steps
    starts at eta_1 = 0.1, not at the warmup's 0.025; past the peak it is the log, compressed."""
    warmed = (0.025, 0.05, 0.075, 0.1) + (0.1,) * 4 + (0.01,) * 8
    plan = retrain_schedule("slr", warmed, 8)  # log[2 * step], the warmup's entries held at 0.1
    assert plan.initial_lr == 0.1
    assert lrs(plan) == [0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01]


def test_slr_holds_only_the_rise_before_the_first_peak():
    """An LR that falls after the peak and comes back to it (a cyclic find schedule) is
    replayed as it was: only what precedes the first eta_1 is a warmup to hold."""
    cyclic = (0.05, 0.1, 0.05, 0.1, 0.01)
    assert lrs(retrain_schedule("slr", cyclic, 5), 5) == [0.1, 0.1, 0.05, 0.1, 0.01]


def test_clr_is_one_cosine_cycle_from_eta_1():
    plan = retrain_schedule("clr", LOG, RETRAIN)
    assert plan.initial_lr == pytest.approx(0.1)
    assert plan.schedule(2) == pytest.approx(0.05 * (1 + math.cos(math.pi / 4)))
    assert plan.schedule(4) == pytest.approx(0.05)
    assert plan.schedule(7) == pytest.approx(0.05 * (1 + math.cos(7 * math.pi / 8)))
    assert plan.schedule(8) == pytest.approx(0.0)


def test_llr_is_linear_from_eta_1():
    plan = retrain_schedule("llr", LOG, RETRAIN)
    assert plan.initial_lr == pytest.approx(0.1)
    assert lrs(plan) == pytest.approx([0.1, 0.0875, 0.075, 0.0625, 0.05, 0.0375, 0.025, 0.0125])


def test_eta_1_is_the_max_not_the_first_lr():
    log = (0.02, 0.2, 0.1, 0.05)
    assert retrain_schedule("llr", log, 4).initial_lr == pytest.approx(0.2)


def test_allr_uses_d1_when_it_dominates():
    plan = retrain_schedule("allr", LOG, RETRAIN, d1=0.5)
    assert (plan.d1, plan.d2, plan.d) == pytest.approx((0.5, 0.2, 0.5))  # d2 = 8 / 40
    assert plan.initial_lr == pytest.approx(0.05)
    assert plan.schedule(4) == pytest.approx(0.025)


def test_allr_uses_d2_when_it_dominates():
    plan = retrain_schedule("allr", LOG, RETRAIN, d1=0.1)
    assert plan.d == pytest.approx(0.2)
    assert plan.initial_lr == pytest.approx(0.02)
    assert plan.schedule(6) == pytest.approx(0.005)  # 0.02 * (1 - 6/8)


def test_allr_d2_is_capped_at_one():
    plan = retrain_schedule("allr", LOG, 80, d1=0.0)
    assert plan.d2 == 1.0
    assert plan.initial_lr == pytest.approx(0.1)


def test_other_policies_have_no_allr_factors():
    plan = retrain_schedule("llr", LOG, RETRAIN)
    assert (plan.d1, plan.d2, plan.d) == (None, None, None)


def test_warmup_llr():
    # round(0.25 * 8) = 2 warmup steps: 0.1 * (1/2), then 0.0875 * (2/2), then plain LLR.
    plan = retrain_schedule("llr", LOG, RETRAIN, warmup_fraction=0.25)
    assert plan.warmup_steps == 2
    assert plan.initial_lr == pytest.approx(0.1)
    assert lrs(plan) == pytest.approx([0.05, 0.0875, 0.075, 0.0625, 0.05, 0.0375, 0.025, 0.0125])


def test_warmup_slr_clr_allr():
    slr = retrain_schedule("slr", LOG, RETRAIN, warmup_fraction=0.25)
    assert lrs(slr)[:3] == pytest.approx([0.05, 0.1, 0.1])
    clr = retrain_schedule("clr", LOG, RETRAIN, warmup_fraction=0.25)
    assert clr.schedule(0) == pytest.approx(0.05)
    assert clr.schedule(1) == pytest.approx(0.05 * (1 + math.cos(math.pi / 8)))
    allr = retrain_schedule("allr", LOG, RETRAIN, d1=0.5, warmup_fraction=0.25)
    assert allr.initial_lr == pytest.approx(0.05)
    assert lrs(allr)[:3] == pytest.approx([0.025, 0.04375, 0.0375])


def test_a_warmup_rounds_to_whole_steps():
    # round(0.2 * 8) = 2 warmup steps, the shortest: 0.1 * (1/2), then LLR's 0.0875 * (2/2)
    plan = retrain_schedule("llr", LOG, RETRAIN, warmup_fraction=0.2)
    assert plan.warmup_steps == 2 and lrs(plan)[:3] == pytest.approx([0.05, 0.0875, 0.075])
    # round(0.1 * 40) = 4 warmup steps
    assert retrain_schedule("llr", LOG, 40, warmup_fraction=0.1).schedule(0) == pytest.approx(0.025)
    # round(0.25 * 10) = round(2.5) = 2: a half rounds to even, as the documented round() does
    assert retrain_schedule("llr", LOG, 10, warmup_fraction=0.25).warmup_steps == 2


@pytest.mark.parametrize(("fraction", "rounded"), [(0.1, 1), (0.05, 0)])
def test_a_warmup_that_rounds_to_fewer_than_2_steps_is_refused(fraction, rounded):
    """A ramp of one step is the full LR, and one of none no ramp: the warmup asked for would not happen."""
    with pytest.raises(ValueError, match=re.escape(
        f"warmup_fraction={fraction} of the retraining's 8 optimizer steps rounds to {rounded}, and a warmup of fewer "
        "than 2 steps leaves the LR as it is; 0.25 is 2 steps (0: no warmup)"
    )):  # fmt: skip
        retrain_schedule("llr", LOG, RETRAIN, warmup_fraction=fraction)


# Two find epochs of 4 steps, retrained in batches twice as large: T = 4 retraining steps.
FIND = (8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0)


def test_log_steps_keep_ft_at_the_last_lr_of_the_whole_log():
    # Reading FIND at every other step ([8, 6, 4, 2]) would retrain at 2, not at the last LR 1.
    assert lrs(retrain_schedule("ft", FIND, 2, log_steps=4), 2) == [1.0, 1.0]


def test_log_steps_keep_eta_1_the_largest_lr_of_the_whole_log():
    warmed_up = (1.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0)  # the peak at an odd step
    assert retrain_schedule("llr", warmed_up, 2, log_steps=4).initial_lr == 8.0
    assert retrain_schedule("clr", warmed_up, 2, log_steps=4).initial_lr == 8.0
    allr = retrain_schedule("allr", warmed_up, 2, d1=0.25, log_steps=4)
    assert (allr.d2, allr.d, allr.initial_lr) == (0.5, 0.5, 4.0)  # d2 = T_rt / T = 2 / 4


def test_log_steps_place_lrw_and_slr_at_the_same_point_of_training():
    # Retraining step t at position p of T = 4 takes FIND[floor(p * 8 / 4)] = FIND[2p].
    assert lrs(retrain_schedule("lrw", FIND, 2, log_steps=4), 2) == [4.0, 2.0]  # p = 2, 3
    assert lrs(retrain_schedule("slr", FIND, 2, log_steps=4), 2) == [8.0, 4.0]  # p = floor(t * 4 / 2) = 0, 2
    # T_rt = 3 does not divide T = 4: p = floor(t * 4 / 3) = 0, 1, 2 -> FIND[0], FIND[2], FIND[4]
    assert lrs(retrain_schedule("slr", FIND, 3, log_steps=4), 3) == [8.0, 6.0, 4.0]
    # Retrained in batches half as large: T = 16, p = 12..15 -> FIND[6], FIND[6], FIND[7], FIND[7]
    assert lrs(retrain_schedule("lrw", FIND, 4, log_steps=16), 4) == [2.0, 2.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("sgdr", LOG, 8), {}, r"policy must be one of \('ft', 'lrw', 'slr', 'clr', 'llr', 'allr'\)"),
        (("lrw", LOG, 41), {}, r"of T = 40 steps \(len\(lr_log\), or log_steps\), so retrain_steps must be <= 40, got 41"),
        (("allr", LOG, 8), {}, "policy 'allr' requires d1"),
        (("allr", LOG, 8), {"d1": 1.5}, r"d1 must be in \[0, 1\]"),
        (("llr", LOG, 8), {"d1": 0.5}, "d1 is only used by policy 'allr'"),
        (("ft", LOG, 8), {"warmup_fraction": 0.1}, "warmup_fraction must be 0 for policy 'ft'"),
        (("lrw", LOG, 8), {"warmup_fraction": 0.1}, "warmup_fraction must be 0 for policy 'lrw'"),
        (("llr", LOG, 8), {"warmup_fraction": 1.0}, r"warmup_fraction must be in \[0, 1\)"),
        (("llr", (), 8), {}, "lr_log must contain at least one learning rate"),
        (("llr", (0.1, -0.1), 8), {}, "each of lr_log must be in"),
        (("llr", LOG, 0), {}, "retrain_steps must be an int >= 1"),
        (("llr", LOG, 8), {"log_steps": 0}, "log_steps must be an int >= 1"),
        (("lrw", LOG, 8), {"log_steps": 4}, r"of T = 4 steps \(len\(lr_log\), or log_steps\), so retrain_steps must be <= 4, got 8"),
        (("lrw", LOG, 8), {"log_steps": 1}, r"of T = 1 step \(len\(lr_log\), or log_steps\), so retrain_steps must be <= 1, got 8"),
    ],
)
def test_invalid_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        retrain_schedule(*args, **kwargs)


def test_allr_d1_single_tensor():
    # ||theta|| = 5, pruning the 3 removes norm 3, s = 1/2 of the remaining (nonzero) weights.
    theta = [torch.tensor([3.0, 4.0, 0.0, 0.0])]
    pruned = [torch.tensor([0.0, 4.0, 0.0, 0.0])]
    assert allr_d1(theta, pruned, pruned_fraction=0.5) == pytest.approx(3 / (5 * math.sqrt(0.5)))


def test_allr_d1_spans_several_tensors():
    # ||theta||^2 = 1 + 4 + 4 + 16 + 16 + 9 = 50; pruning 1, 2, 2 removes 9 -> d1 = 3 / (sqrt(50) * sqrt(0.5)) = 0.6
    theta = [torch.tensor([1.0, 2.0]), torch.tensor([[2.0, 4.0], [4.0, 3.0]], dtype=torch.float16)]
    pruned = [torch.tensor([0.0, 0.0]), torch.tensor([[0.0, 4.0], [4.0, 3.0]], dtype=torch.float16)]
    assert allr_d1(theta, pruned, pruned_fraction=0.5) == pytest.approx(0.6)


def test_allr_d1_is_one_when_everything_is_pruned():
    theta = [torch.tensor([3.0, 4.0])]
    assert allr_d1(theta, [torch.zeros(2)], pruned_fraction=1.0) == pytest.approx(1.0)


def test_allr_d1_clamps_non_magnitude_pruning():
    # Pruning the larger weight: 4 / (5 * sqrt(0.5)) = 1.13 -> 1
    theta = [torch.tensor([3.0, 4.0])]
    assert allr_d1(theta, [torch.tensor([3.0, 0.0])], pruned_fraction=0.5) == 1.0


def test_allr_d1_feeds_retrain_schedule():
    theta = [torch.tensor([3.0, 4.0])]
    d1 = allr_d1(theta, [torch.tensor([0.0, 4.0])], pruned_fraction=0.5)
    plan = retrain_schedule("allr", LOG, RETRAIN, d1=d1)
    assert plan.initial_lr == pytest.approx(0.1 * 3 / (5 * math.sqrt(0.5)))


@pytest.mark.parametrize(
    ("theta", "pruned", "fraction", "match"),
    [
        ([torch.ones(2)], [torch.ones(2), torch.ones(2)], 0.5, "got 1 and 2 tensors"),
        ([torch.ones(2)], [torch.ones(3)], 0.5, r"theta\[0\] and theta_pruned\[0\] must have the same shape"),
        ([torch.zeros(2)], [torch.zeros(2)], 0.5, "theta has zero norm"),
        ([torch.ones(2)], [torch.ones(2)], 0.0, r"pruned_fraction must be in \(0, 1\]"),
        ([torch.ones(2)], [torch.ones(2)], 1.5, r"pruned_fraction must be in \(0, 1\]"),
    ],
)
def test_allr_d1_invalid_arguments(theta, pruned, fraction, match):
    with pytest.raises(ValueError, match=match):
        allr_d1(theta, pruned, fraction)


def test_ft_uses_the_last_lr_even_when_an_earlier_one_is_smaller():
    """FT retrains at eta_T, the log's last LR (seed 003), not its smallest: e.g. a log that ends after a restart."""
    plan = retrain_schedule("ft", [0.1, 0.001, 0.05], 4)
    assert plan.initial_lr == 0.05
    assert lrs(plan, 4) == [0.05] * 4


@pytest.mark.parametrize("scale", [1e-25, 1.0, 1e20])
def test_allr_d1_does_not_depend_on_the_scale_of_the_weights(scale):
    """d1 is a ratio of norms: 3 / (5 * sqrt(0.5)) at any scale, also where float32 squares
    would underflow to 0 (1e-25) or overflow to inf (1e20): the norms are summed in float64."""
    theta, pruned = [torch.tensor([3.0, 4.0]) * scale], [torch.tensor([0.0, 4.0]) * scale]
    assert allr_d1(theta, pruned, pruned_fraction=0.5) == pytest.approx(3 / (5 * math.sqrt(0.5)))
