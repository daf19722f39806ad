"""LR schedules against hand-computed values."""

import math

import pytest

from prunelab.schedules import Constant, Cosine, Linear, MultiStep, Replay, Step, Warmup, halving_milestones


def test_constant():
    schedule = Constant(0.05)
    assert schedule(0) == 0.05
    assert schedule(10**6) == 0.05
    assert type(Constant(1)(0)) is float  # an LR, whatever number it was given as


def test_step_decays_every_step_size():
    schedule = Step(0.1, step_size=3, gamma=0.5)
    assert [schedule(s) for s in range(7)] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])


def test_multistep_decays_at_each_milestone():
    schedule = MultiStep(0.1, milestones=(20, 32))
    assert schedule(0) == pytest.approx(0.1)
    assert schedule(19) == pytest.approx(0.1)
    assert schedule(20) == pytest.approx(0.01)
    assert schedule(31) == pytest.approx(0.01)
    assert schedule(32) == pytest.approx(0.001)
    assert schedule(1000) == pytest.approx(0.001)


def test_multistep_accepts_a_list():
    assert MultiStep(1.0, milestones=[2], gamma=0.5).milestones == (2,)


def test_cosine():
    schedule = Cosine(0.1, total_steps=8, final_lr=0.02)
    assert schedule(0) == pytest.approx(0.1)
    # 0.02 + 0.08 * (1 + cos(pi / 4)) / 2
    assert schedule(2) == pytest.approx(0.02 + 0.04 * (1 + math.sqrt(2) / 2))
    assert schedule(4) == pytest.approx(0.06)
    assert schedule(8) == pytest.approx(0.02)
    assert schedule(100) == pytest.approx(0.02)


def test_linear():
    schedule = Linear(0.1, total_steps=8)
    assert schedule(0) == pytest.approx(0.1)
    assert schedule(2) == pytest.approx(0.075)
    assert schedule(7) == pytest.approx(0.0125)
    assert schedule(8) == pytest.approx(0.0)
    assert schedule(9) == pytest.approx(0.0)


def test_linear_to_nonzero_final_lr():
    schedule = Linear(0.1, total_steps=4, final_lr=0.02)
    assert [schedule(s) for s in range(6)] == pytest.approx([0.1, 0.08, 0.06, 0.04, 0.02, 0.02])


def test_warmup_ramps_from_zero():
    schedule = Warmup(Constant(0.1), warmup_steps=4)
    assert [schedule(s) for s in range(6)] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])


def test_warmup_with_start_factor_multiplies_the_wrapped_schedule():
    schedule = Warmup(Linear(0.1, total_steps=10), warmup_steps=2, start_factor=0.5)
    # step 0: 0.1 * (0.5 + 0.5 * 1/2); step 1: 0.09 * (0.5 + 0.5 * 2/2); then plain Linear
    assert schedule(0) == pytest.approx(0.075)
    assert schedule(1) == pytest.approx(0.09)
    assert schedule(2) == pytest.approx(0.08)


def test_replay_clamps_past_the_end():
    schedule = Replay([0.3, 0.2, 0.1])
    assert schedule.lrs == (0.3, 0.2, 0.1)
    assert [schedule(s) for s in range(5)] == [0.3, 0.2, 0.1, 0.1, 0.1]


def test_replay_takes_lrs_of_zero_and_gives_floats():
    """A log may reach LR 0 before its end (a Linear shorter than the training, held at 0),
    and its LRs are floats whatever numbers they were given as."""
    schedule = Replay([1, 0])
    assert [schedule(s) for s in range(3)] == [1.0, 0.0, 0.0]
    assert {type(schedule(s)) for s in range(3)} == {float}


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Constant(-0.1), r"lr must be in \[0, inf\)"),
        (lambda: Constant(float("nan")), "lr must be a finite number"),
        (lambda: Constant(True), r"^lr must be a finite number in \[0, inf\), got True$"),
        (lambda: Step(0.1, step_size=0), "step_size must be an int >= 1"),
        (lambda: Step(0.1, step_size=2.5), "step_size must be an int >= 1"),
        (lambda: Step(0.1, step_size=2, gamma=0.0), r"gamma must be in \(0, inf\)"),
        (lambda: MultiStep(0.1, milestones=(5, 5)), "milestones must be strictly increasing"),
        (lambda: MultiStep(0.1, milestones=(5,), gamma=0.0), r"gamma must be in \(0, inf\), got 0.0"),
        (lambda: MultiStep(0.1, milestones=(0, 5)), "each of milestones must be an int >= 1"),
        (lambda: MultiStep(0.1, milestones=5), r"^milestones must be a sequence \(e.g. a list or a range\), got 5$"),
        (lambda: Replay("0.1"), r"^lrs must be a sequence \(e.g. a list or a range\), got '0.1'$"),
        (lambda: Cosine(0.1, total_steps=0), "total_steps must be an int >= 1"),
        (lambda: Linear(0.1, total_steps=5, final_lr=-1.0), "final_lr must be in"),
        (lambda: Warmup(Constant(0.1), warmup_steps=0), "warmup_steps must be an int >= 1"),
        (lambda: Warmup(Constant(0.1), warmup_steps=2, start_factor=1.5), r"start_factor must be in \[0, 1\]"),
        (lambda: Warmup(0.1, warmup_steps=2), "schedule must be callable"),
        (lambda: Replay(()), "lrs must contain at least one learning rate"),
        (lambda: Replay((0.1, -0.1)), "each of lrs must be in"),
        (lambda: halving_milestones(10, stages=0), "stages must be an int >= 1, got 0"),
        (lambda: halving_milestones(0, stages=1), "epochs must be an int >= 1, got 0"),
        (lambda: halving_milestones(10, stages=3, max_stage_epochs=0), "max_stage_epochs must be an int >= 1, got 0"),
    ],
)
def test_invalid_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize("step", [-1, 1.5, True])
def test_invalid_step(step):
    with pytest.raises(ValueError, match="step must be an int >= 0"):
        Replay((0.1,))(step)


@pytest.mark.parametrize(
    ("epochs", "stages", "published"),
    [
        # seed 004, Appendix A: each schedule as it prints it ("0:1e-1,30:1e-2,...")
        (90, 5, "0:1e-1,30:1e-2,60:1e-3,75:1e-4,83:1e-5"),  # P30F90 fine-tuning from 1e-1
        (60, 4, "0:1e-2,30:1e-3,45:1e-4,53:1e-5"),  # P60F60 fine-tuning from 1e-2
        (90, 4, "0:1e-2,30:1e-3,60:1e-4,75:1e-5"),  # ResNet-50 fine-tuning (its Tab. 1)
        (120, 5, "0:0.1,30:0.01,60:0.001,90:1e-4,105:1e-5"),  # scratch training (its Tab. 4)
    ],
)
def test_halving_milestones_derive_seed_004s_published_schedules(epochs, stages, published) -> None:
    starts = [int(stage.split(":")[0]) for stage in published.split(",")]
    assert halving_milestones(epochs, stages) == tuple(starts[1:])


def test_halving_milestones_halve_what_is_left_below_the_cap() -> None:
    assert halving_milestones(10, stages=3) == (5, 8)  # 5 of 10, then 3 of 5 (rounded up), 2 for the last
    assert halving_milestones(10, stages=3, max_stage_epochs=2) == (2, 4)
    assert halving_milestones(7, stages=1) == ()


# (3, 4, 30, 8): the fewest is not always one more than given: 7 epochs halve to (4, 6, 7) and 8 too,
# which leaves the last stage none of 7 but one of 8
@pytest.mark.parametrize(("epochs", "stages", "cap", "fewest"), [(3, 3, 30, 4), (7, 4, 30, 8), (3, 4, 30, 8), (4, 5, 1, 5)])
def test_halving_milestones_refuse_a_stage_without_epochs(epochs, stages, cap, fewest) -> None:
    with pytest.raises(ValueError, match=f"{stages} LR stages halved in turn need at least {fewest} epochs .*got {epochs}"):
        halving_milestones(epochs, stages, cap)
    assert len(halving_milestones(fewest, stages, cap)) == stages - 1
    with pytest.raises(ValueError, match=f"need at least {fewest} epochs"):
        halving_milestones(fewest - 1, stages, cap)
