"""Seed 004's comparison setups, judged on hand-made run records: each condition of the
ladder on its own, the SX-A / SX-B budgets computed by hand, and runs grouped by task."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from prunelab.config import recipe_yaml, validate
from prunelab.report.setups import (
    Budget,
    Pipeline,
    RunRecord,
    Stage,
    comparison_setup,
    describe_setups,
    read_run_record,
    training_settings,
)

BASE = Stage(3, (0.1, 0.05, 0.01), {"find.batch_size": 100})
NO_PRUNING = Stage()
RETRAINING = Stage(2, (0.1, 0.05), {"eval.batch_size": 100})


def record(name="a", *, seeds=(0,), sparsity=0.9, speedup=10.0, compression=None, base=BASE, pruning=NO_PRUNING,
           retraining=RETRAINING, per_seed=None, **settings) -> RunRecord:  # fmt: skip
    defaults = {"data.name": "mnist1d", "model.name": "mnist1d_cnn", "prune.method": "oneshot",
                "prune.criterion": "magnitude", "eval.rewind": "none"}  # fmt: skip
    pipelines = per_seed or {seed: Pipeline(base, pruning, retraining, speedup) for seed in seeds}
    return RunRecord(name, {**defaults, **settings}, tuple(seeds), sparsity, speedup, pipelines, compression)


def test_runs_that_differ_only_in_the_pruning_criterion_meet_every_setup() -> None:
    verdict = comparison_setup([record("a"), record("b", **{"prune.criterion": "random"})])
    assert (verdict.setup, verdict.reason, verdict.budgets) == ("S4.2", None, ())
    assert str(verdict) == (
        "S4.2: the same dataset, network, granularity and compression or speedup; the same base model; "
        "the same retraining LR schedule and settings; the same pruning LR schedule and settings"
    )


@pytest.mark.parametrize(
    ("change", "setup", "reason"),
    [
        ({"model.name": "lenet_300_100"}, None, "the networks differ: model.name mnist1d_cnn / lenet_300_100"),
        ({"prune.criterion": "filter_l1"}, None, "the sparsity granularities differ (weights / channels)"),
        ({"sparsity": 0.8, "speedup": 5.0}, None, "the sparsities (90.00% / 80.00%) and the speedups (10.00x / 5.00x) differ"),
        ({"sparsity": 0.8, "speedup": None}, None, "the sparsities (90.00% / 80.00%) differ"),
        ({"seeds": (0, 1)}, "S1", "the seeds differ ([0] / [0, 1]), and with them the base models; run them all with --set seeds=[0, 1]"),
        ({"base": Stage(3, BASE.lrs, {"find.batch_size": 50})}, "S1", "the base models' settings differ: find.batch_size 100 / 50"),
        ({"base": Stage(3, (0.1, 0.05, 0.02), BASE.settings)}, "S1", "the base models' LR schedules differ from step 3 on (0.01 / 0.02; seed 0)"),
        ({"retraining": Stage(3, (0.1, 0.05, 0.0), RETRAINING.settings)}, "S2", "the retraining epochs differ (2 / 3)"),
        ({"retraining": Stage(2, RETRAINING.lrs, {"eval.batch_size": 50})}, "S3.1", "the retraining settings differ: eval.batch_size 100 / 50"),
        ({"retraining": Stage(2, (0.01, 0.005), RETRAINING.settings)}, "S3.1", "the retraining LR schedules differ from step 1 on (0.1 / 0.01; seed 0)"),
        ({"retraining": Stage(2, (0.1234, 0.05), RETRAINING.settings)}, "S3.1", "the retraining LR schedules differ from step 1 on (0.1 / 0.1234; seed 0)"),
        ({"pruning": Stage(1, (0.1,))}, "S3.2", "the pruning epochs differ (0 / 1)"),
    ],
)
def test_each_condition_of_the_ladder_on_its_own(change, setup, reason) -> None:
    verdict = comparison_setup([record("a"), record("b", **change)])
    assert (verdict.setup, verdict.reason) == (setup, reason)
    if setup is None:
        assert str(verdict) == f"not comparable, not even by S1: {reason}"


def test_a_run_between_two_alike_differs_all_the_same() -> None:
    longer = Stage(4, (*BASE.lrs, 0.01), BASE.settings)
    verdict = comparison_setup([record("a"), record("b", base=longer), record("c")])
    assert (verdict.setup, verdict.reason) == ("S1", "the base models' epochs differ (3 / 4 / 3)")


def test_other_seeds_and_other_find_phases_name_both_and_advise_no_seeds_alone() -> None:
    """A user's four runs: seeds [0] / [0, 1] / [0] / [5, 6], find phases of 40 / 6 / 3 / 4
    epochs, the last GMP's (cosine, another batch size). Running them all with one set of
    seeds would not give them one base model: the message names both obstacles. S1 asks for
    neither the same base model nor the same training epochs, so they are one task."""
    multistep = [Stage(n, (0.1,) * (n // 2) + (0.01,) * (n - n // 2), BASE.settings) for n in (40, 6, 3)]
    gmp = Stage(4, (0.1, 0.085, 0.05, 0.015), {"find.batch_size": 50})
    runs = [record("a", base=multistep[0]), record("b", seeds=(0, 1), base=multistep[1]), record("c", base=multistep[2]),
            record("gmp", seeds=(5, 6), base=gmp, **{"prune.method": "gmp"})]  # fmt: skip
    assert describe_setups({"": runs}) == (
        "Comparison setup (seed 004): S1: the same dataset, network, granularity and compression or speedup. Not S2: "
        "the base models' epochs differ (40 / 6 / 3 / 4); the base models' settings differ: find.batch_size 100 ×3 / 50; "
        "and the seeds differ ([0] / [0, 1] / [0] / [5, 6]): train their find phases alike and run them all with "
        "--set seeds=[0, 1, 5, 6]"
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        # the same find phase: the seeds are all that differs
        ({"seeds": (5, 6)}, "the seeds differ ([0] / [5, 6]), and with them the base models; run them all with --set seeds=[0, 5, 6]"),
        ({"seeds": (1,), "base": Stage(3, BASE.lrs, {"find.batch_size": 50})},
         ("the base models' settings differ: find.batch_size 100 / 50; and the seeds differ ([0] / [1]): train their find "
          "phases alike and run them all with --set seeds=[0, 1]")),
        # another find LR (a recorded setting) in runs that share no seed: compared on their first seeds
        ({"seeds": (1, 2), "base": Stage(3, (0.05, 0.025, 0.005), BASE.settings)},
         ("the base models' LR schedules differ from step 1 on (0.1 / 0.05; seeds 0 / 1); and the seeds differ ([0] / [1, 2]): "
          "train their find phases alike and run them all with --set seeds=[0, 1, 2]")),
        ({"seeds": (0, 1), "base": Stage(4, BASE.lrs + (0.01,), BASE.settings)},
         ("the base models' epochs differ (3 / 4); and the seeds differ ([0] / [0, 1]): train their find phases alike and "
          "run them all with --set seeds=[0, 1]")),
    ],
)
def test_other_seeds_advise_the_same_seeds_only_if_the_find_phases_are_alike(change, reason) -> None:
    verdict = comparison_setup([record("a"), record("b", **change)])
    assert (verdict.setup, verdict.reason) == ("S1", reason)


def test_where_lr_schedules_part_does_not_depend_on_the_order_of_the_runs() -> None:
    """b and c agree with a at step 1 and part at step 2; d already differs at step 1."""
    schedules = {"a": (0.1, 0.1), "b": (0.1, 0.09), "c": (0.1, 0.08), "d": (0.01, 0.01)}
    runs = [record(name, retraining=Stage(2, lrs, RETRAINING.settings)) for name, lrs in schedules.items()]
    for order in (runs, runs[::-1], [runs[1], runs[2], runs[3], runs[0]]):
        reason = comparison_setup(order).reason
        assert reason.startswith("the retraining LR schedules differ from step 1 on ("), reason
    # with more than two runs, each LR is named by its runs
    assert comparison_setup(runs[:3]).reason == "the retraining LR schedules differ from step 2 on (a: 0.1 / b: 0.09 / c: 0.08; seed 0)"
    alike = [*runs[:3], record("e", retraining=Stage(2, (0.1, 0.09), RETRAINING.settings))]
    assert comparison_setup(alike).reason == "the retraining LR schedules differ from step 2 on (a: 0.1 / b = e: 0.09 / c: 0.08; seed 0)"


def test_the_same_pruning_epochs_with_other_lrs_or_settings_meet_s4_1_only() -> None:
    settings = {"eval.optimizer.weight_decay": 1e-4}
    verdict = comparison_setup([record("a", pruning=Stage(1, (0.1, 0.1), settings)), record("b", pruning=Stage(1, (0.1, 0.01), settings))])
    assert (verdict.setup, verdict.reason) == ("S4.1", "the pruning LR schedules differ from step 2 on (0.1 / 0.01; seed 0)")
    # S4.1's same pruning epochs imply S3.1's same retraining epochs, which goes without saying
    assert str(verdict) == ("S4.1: the same dataset, network, granularity and compression or speedup; the same base model; "
                            "the same retraining LR schedule and settings; the same pruning epochs. Not S4.2: the pruning "
                            "LR schedules differ from step 2 on (0.1 / 0.01; seed 0)")  # fmt: skip
    other = comparison_setup([record("a", pruning=Stage(1, (0.1,), settings)), record("b", pruning=Stage(1, (0.1,), {}))])
    assert other.reason == "the pruning settings differ: eval.optimizer.weight_decay 0.0001 / null"


def test_settings_of_a_stage_that_did_not_train_do_not_count() -> None:
    a, b = Stage(0, (), {"eval.optimizer.weight_decay": 0.0}), Stage(0, (), {"eval.optimizer.weight_decay": 1e-4})
    assert comparison_setup([record("a", retraining=a), record("b", retraining=b)]).setup == "S4.2"


def test_the_same_compression_or_the_same_speedup_is_the_same_rate() -> None:
    """Seed 004's S1: the same compression (all parameters over those left) or speedup,
    within 1%; the sparsity stands in for the compression in runs without parameter counts."""
    assert comparison_setup([record("a", compression=10.0, speedup=10.0), record("b", compression=10.05, speedup=4.0)]).setup == "S4.2"
    assert comparison_setup([record("a", compression=10.0, speedup=10.0), record("b", compression=5.0, speedup=10.05)]).setup == "S4.2"
    assert comparison_setup([record("a", compression=10.0, speedup=10.0), record("b", compression=10.15, speedup=4.0)]).setup is None
    # the same sparsity of other prunable weights (an excluded layer) is another compression
    other = comparison_setup([record("a", compression=10.0, speedup=10.0), record("b", compression=9.8, speedup=9.8)])
    assert other.reason == ("the compressions (all parameters over those left: 10.00x / 9.80x) and the speedups "
                            "(10.00x / 9.80x) differ; sparsities 90.00% / 90.00%")  # fmt: skip
    assert comparison_setup([record("a", speedup=10.0), record("b", speedup=4.0)]).setup == "S4.2"  # same sparsity
    assert comparison_setup([record("a", sparsity=0.9), record("b", sparsity=0.894)]).setup == "S4.2"  # within half a point
    assert comparison_setup([record("a", sparsity=0.9), record("b", sparsity=0.89, speedup=9.8)]).setup is None
    assert comparison_setup([record("a", sparsity=0.9), record("b", sparsity=0.8925, speedup=4.0)]).setup is None  # 0.75 points apart
    # data augmentation is a training setting (compared with the base model and the retraining), not the dataset
    assert comparison_setup([record("a"), record("b", **{"data.augment": False})]).setup == "S4.2"


def test_augmentation_is_a_setting_of_the_base_model() -> None:
    """On a dataset with augmentation (CIFAR), turning it off trains another base model."""
    on, off = (Stage(3, BASE.lrs, {**BASE.settings, "data.augment": flag}) for flag in (True, False))
    verdict = comparison_setup([record("a", base=on), record("b", base=off)])
    assert (verdict.setup, verdict.reason) == ("S1", "the base models' settings differ: data.augment true / false")


def test_adaptive_schedules_are_compared_seed_by_seed() -> None:
    """ALLR gives each seed's mask its own LR: seed 1's schedules differ, seed 0's do not."""
    same = Pipeline(BASE, NO_PRUNING, Stage(2, (0.3, 0.1)))
    other = Pipeline(BASE, NO_PRUNING, Stage(2, (0.2, 0.1)))
    a = record("a", seeds=(0, 1), per_seed={0: same, 1: same})
    b = record("b", seeds=(0, 1), per_seed={0: same, 1: other})
    assert comparison_setup([a, b]).reason == "the retraining LR schedules differ from step 1 on (0.3 / 0.2; seed 1)"


def test_retraining_epochs_are_compared_seed_by_seed() -> None:
    """A Scratch-B budget gives each seed the epochs of its own speedup: seed 1 retrains 2
    epochs in one run, 3 in the other, so the runs do not retrain for the same epochs (S3.1)."""
    longer = Pipeline(BASE, NO_PRUNING, Stage(3, (0.1, 0.05, 0.0), RETRAINING.settings))
    a = record("a", seeds=(0, 1))
    b = record("b", seeds=(0, 1), per_seed={0: a.pipelines[0], 1: longer})
    verdict = comparison_setup([a, b])
    assert (verdict.setup, verdict.reason) == ("S2", "the retraining epochs differ (2 / 3; seed 1)")


def scratch_run(epochs: dict[int, int], speedups: dict[int, float]) -> RunRecord:
    pipelines = {seed: Pipeline(Stage(30), NO_PRUNING, Stage(e, ()), speedups[seed]) for seed, e in epochs.items()}
    return record("scratch", seeds=tuple(epochs), speedup=sum(speedups.values()) / len(speedups), per_seed=pipelines,
                  **{"eval.rewind": "reinit"})  # fmt: skip


def pruned_run(speedups: dict[int, float], pruning: Stage = NO_PRUNING) -> RunRecord:
    pipelines = {seed: Pipeline(Stage(30), pruning, Stage(10), s) for seed, s in speedups.items()}
    return record("pruned", seeds=tuple(speedups), speedup=sum(speedups.values()) / len(speedups), per_seed=pipelines)


def test_scratch_budgets_by_hand() -> None:
    """A pruning run: 30 epochs of pretraining, 10 of retraining, speedup 4. S2-S4.2 give
    scratch training the base model's 30 epochs; SX-A 40 epochs; SX-B 30 * 4 + 10 = 130
    epochs of the 4x cheaper network."""

    def against(epochs: int, speedup: float = 4.0):
        (budget,) = comparison_setup([pruned_run({0: speedup}), scratch_run({0: epochs}, {0: speedup})]).budgets
        return budget

    as_base, scratch_e, scratch_b = against(30), against(40), against(130)
    assert (as_base.base_epochs, as_base.same_epochs, as_base.same_macs) == (True, False, False)
    assert (scratch_e.base_epochs, scratch_e.same_epochs, scratch_e.equivalent_epochs, scratch_e.same_macs) == (False, True, (130.0,), False)
    assert (scratch_b.base_epochs, scratch_b.same_epochs, scratch_b.same_macs) == (False, False, True)
    assert scratch_b.row() == {"run": "pruned", "from scratch": "scratch", "epochs": "30 + 0 + 10 / 130", "S2-S4.2": "not met",
                               "SX-A": "not met", "MACs": "130.0 / 130", "SX-B": "met"}  # fmt: skip
    assert as_base.row()["S2-S4.2"] == "met"
    # Pretraining ends at a whole epoch of the dense model, 4 of the pruned one: within 2 is the same.
    assert against(132).same_macs and not against(133).same_macs and not against(60).same_macs
    assert against(109, 3.3).same_macs  # Scratch-B rounds to whole epochs: 30 * 3.3 + 10 = 109


@pytest.mark.parametrize("speedup", [1.11, 1.41, 1.93, 3.09, 7.68, 12.06])
def test_seed_004s_sx_b_rows_meet_sx_b(speedup) -> None:
    """Seed 004, Tab. 4's SX-B rows (P30/F90 against 120 epochs of scratch training): the
    pretraining "squeezed by the speedup ratio", to 30 / 1.11 = 27 epochs of the dense model
    at 10% pruned, to 2 at 95% (12.06x): 2 * 12.06 + 90 = 114.1 epochs of the pruned network,
    as near 120 as whole epochs get. An epoch more is not the same budget."""

    def budget(pretraining: int) -> Budget:
        pruned = record("P30/F90", per_seed={0: Pipeline(Stage(pretraining), NO_PRUNING, Stage(90), speedup)}, speedup=speedup)
        (only,) = comparison_setup([pruned, scratch_run({0: 120}, {0: speedup})]).budgets
        return only

    squeezed = round(30 / speedup)
    assert budget(squeezed).same_macs and not budget(squeezed + 1).same_macs


def test_sx_b_counts_in_epochs_of_the_scratch_network() -> None:
    """Two speedups of one task (within 1%): pretraining costs the scratch network's speedup
    an epoch, retraining the ratio of the two: 30 * 4.03 + 10 * 4.03 / 4.0 = 130.975."""
    (budget,) = comparison_setup([pruned_run({0: 4.0}), scratch_run({0: 131}, {0: 4.03})]).budgets
    assert budget.equivalent_epochs == (pytest.approx(130.975),) and budget.same_macs
    (budget,) = comparison_setup([pruned_run({0: 4.03}), scratch_run({0: 131}, {0: 4.0})]).budgets
    assert budget.equivalent_epochs == (pytest.approx(30 * 4.0 + 10 * 4.0 / 4.03),)  # 129.93


def test_the_budget_table_says_which_side_of_a_slash_is_which() -> None:
    """"30 + 0 + 10 / 130" read as a sum divided by 130: the text above the table names the sides."""
    text = describe_setups({"": [pruned_run({0: 4.0}), scratch_run({0: 130}, {0: 4.0})]})
    assert "epochs and MACs: the pruning run's / the run from scratch's):\n\n| run " in text
    assert "| pruned | scratch      | 30 + 0 + 10 / 130 |" in text


def test_scratch_budgets_are_judged_seed_by_seed() -> None:
    """Global pruning gives each seed its own speedup, so each its own Scratch-B budget."""
    speedups = {0: 12.8, 1: 13.19, 2: 14.35}
    budgets = {seed: round(30 * s) + 10 for seed, s in speedups.items()}  # 394, 406, 440
    (budget,) = comparison_setup([pruned_run(speedups), scratch_run(budgets, speedups)]).budgets
    assert budget.same_macs and not budget.same_epochs
    assert budget.row()["epochs"] == "30 + 0 + 10 / 394-440"
    assert budget.row()["MACs"] == "440.5 / 440 (the farthest of 3 seeds)"
    off = {**budgets, 1: budgets[0]}  # seed 1 trained seed 0's budget
    (budget,) = comparison_setup([pruned_run(speedups), scratch_run(off, speedups)]).budgets
    assert not budget.same_macs and budget.row()["MACs"] == "405.7 / 394 (the farthest of 3 seeds)"
    # one seed trained beyond the base model's 30 epochs: the run does not give S2-S4.2's budget
    (budget,) = comparison_setup([pruned_run({0: 4.0, 1: 4.0}), scratch_run({0: 30, 1: 40}, {0: 4.0, 1: 4.0})]).budgets
    assert (budget.row()["epochs"], budget.row()["S2-S4.2"], budget.row()["SX-A"]) == ("30 + 0 + 10 / 30-40", "not met", "not met")
    # the same MACs on both seeds, against other epochs: the farthest seed is named
    assert budget.row()["MACs"] == "130.0 / 30 (the farthest of 2 seeds)"
    # one budget against MACs 0.3 epochs apart (30 x 4.01 + 10 for seed 1): the seeds are told apart
    (budget,) = comparison_setup([pruned_run({0: 4.0, 1: 4.01}), scratch_run({0: 130, 1: 130}, {0: 4.0, 1: 4.01})]).budgets
    assert budget.row()["MACs"] == "130.3 / 130 (the farthest of 2 seeds)"
    # one budget for every seed, against each seed's own MACs (30 x 14.35 + 10 for seed 2): still the farthest seed's
    (budget,) = comparison_setup([pruned_run(speedups), scratch_run(dict.fromkeys(speedups, 406), speedups)]).budgets
    assert budget.row()["MACs"] == "440.5 / 406 (the farthest of 3 seeds)"


def test_a_channel_pruning_run_of_other_seeds_is_judged_on_its_first_seed() -> None:
    """After channel pruning, a run from scratch on seed 5 trains the architecture seeds 0 and
    1 pruned to: judged against seed 0's 30 * 4.0 + 10 = 130 epochs of MACs (seed 1's are
    30 * 4.0 + 10 * 4.0 / 4.04 = 129.9)."""
    channels = {"prune.criterion": "filter_l1"}
    pruned = replace(pruned_run({0: 4.0, 1: 4.04}), settings={**pruned_run({0: 4.0}).settings, **channels})
    scratch = replace(scratch_run({5: 130}, {5: 4.0}), settings={**scratch_run({5: 130}, {5: 4.0}).settings, **channels})
    (budget,) = comparison_setup([pruned, scratch]).budgets
    assert budget.row()["MACs"] == "130.0 / 130"


def test_sx_b_is_not_judged_without_a_one_shot_pipeline_or_a_speedup() -> None:
    imp = pruned_run({0: 4.0}, pruning=Stage(4, (0.1,) * 8))
    verdict = comparison_setup([imp, scratch_run({0: 44}, {0: 4.0})])
    assert (verdict.setup, verdict.reason, str(verdict)) == (None, None, "")  # one pruning run: no ladder
    (only,) = verdict.budgets
    assert (only.same_epochs, only.same_macs, only.row()["MACs"], only.row()["SX-B"]) == (True, None, "not judged: a pruning stage", "")
    old = RunRecord("old", {**pruned_run({0: 4.0}).settings}, (0,), 0.9, None, {0: Pipeline(Stage(30), NO_PRUNING, Stage(10))})
    (only,) = comparison_setup([old, scratch_run({0: 40}, {0: 4.0})]).budgets
    assert only.row()["MACs"] == "not judged: no speedup recorded (a run made before it was measured)"
    unmeasured = replace(scratch_run({0: 130}, {0: 4.0}), pipelines={0: Pipeline(Stage(30), NO_PRUNING, Stage(130, ()), None)})
    (only,) = comparison_setup([pruned_run({0: 4.0}), unmeasured]).budgets
    assert only.row()["MACs"] == "not judged: no speedup recorded (a run made before it was measured)"
    other_task = record("scratch", sparsity=0.5, speedup=2.0, **{"eval.rewind": "reinit"})
    assert comparison_setup([imp, other_task]).budgets == ()  # another sparsity: no budget to match


ONE_SCHEDULE = (0.1,) * 4 + (0.01,) * 4 + (0.001,) * 4  # 12 epochs, an LR an epoch


def pruned_at(epoch: int, retraining_settings=None, lrs=ONE_SCHEDULE) -> RunRecord:
    base = Stage(epoch, lrs[:epoch], {"find.batch_size": 100})
    retraining = Stage(12 - epoch, lrs[epoch:], retraining_settings or {"eval.batch_size": 100})
    return record(f"P{epoch}F{12 - epoch}", base=base, retraining=retraining)


def test_one_schedule_pruned_at_different_epochs_is_s4_2_as_in_seed_004s_table_4() -> None:
    verdict = comparison_setup([pruned_at(3), pruned_at(6), pruned_at(9)])
    assert (verdict.setup, verdict.reason) == ("S4.2", None)
    assert str(verdict) == ("S4.2: the same dataset, network, granularity and compression or speedup; one LR schedule "
                            "and settings over the whole pipeline, pruned at different epochs (seed 004, Tab. 4)")  # fmt: skip


def test_table_4s_scratch_training_runs_the_whole_schedule_its_rows_prune_in() -> None:
    """Seed 004, Tab. 4: the rows prune at epoch P of one 12-epoch schedule (find.stop_epoch P
    of find.epochs 12), and scratch training with "the same training recipe of obtaining the
    base model" runs all 12 epochs of it: S2-S4.2's budget, and SX-A's (P + 0 + 12 - P) too.
    Training P epochs of it is not the base model's recipe."""

    def stopped(run: RunRecord, epoch: int) -> RunRecord:
        return replace(run, settings={**run.settings, "find.epochs": 12, "find.stop_epoch": epoch})

    def scratch(epochs: int) -> RunRecord:
        run = record("scratch", base=Stage(3, ONE_SCHEDULE[:3], {"find.batch_size": 100}),
                     retraining=Stage(epochs, (ONE_SCHEDULE * 2)[:epochs], {"eval.batch_size": 100}), **{"eval.rewind": "reinit"})  # fmt: skip
        return stopped(run, 3)

    for epoch in (3, 6, 9):
        (budget,) = comparison_setup([stopped(pruned_at(epoch), epoch), scratch(12)]).budgets
        assert (budget.not_scratch, budget.base_epochs, budget.same_epochs) == ("", True, True)
        assert budget.row()["epochs"] == f"{epoch} (of 12) + 0 + {12 - epoch} / 12"
    (too_short,) = comparison_setup([stopped(pruned_at(3), 3), scratch(3)]).budgets
    assert not too_short.base_epochs
    # A find phase that ran its whole schedule is the base model's recipe as it is.
    (whole,) = comparison_setup([stopped(pruned_at(12), 12), scratch(12)]).budgets
    assert whole.base_epochs and whole.row()["epochs"].startswith("12 + 0 + 0 /")
    # BIMP's first training runs its own epochs, whatever find.stop_epoch says
    bimp = replace(stopped(pruned_at(3), 2), settings={**stopped(pruned_at(3), 2).settings, "prune.method": "bimp"})
    (budget,) = comparison_setup([bimp, scratch(3)]).budgets
    assert budget.base_epochs and budget.row()["epochs"] == "3 + 0 + 9 / 3"


@pytest.mark.parametrize(
    "other",
    [
        pruned_at(6, {"eval.batch_size": 50}),  # the recipe changes at the pruning epoch
        pruned_at(6, lrs=ONE_SCHEDULE[:-1] + (0.0001,)),  # another LR in the last epoch
        # the same LRs, then one more epoch: a longer schedule
        record("P6F7", base=Stage(6, ONE_SCHEDULE[:6], {"find.batch_size": 100}),
               retraining=Stage(7, ONE_SCHEDULE[6:] + (0.001,), {"eval.batch_size": 100})),
    ],
)
def test_pruning_epochs_of_two_trainings_are_not_s4_2(other) -> None:
    verdict = comparison_setup([pruned_at(3), other])
    assert (verdict.setup, verdict.reason) == ("S1", "the base models' epochs differ (3 / 6)")


def test_one_schedule_over_other_seeds_is_not_s4_2() -> None:
    more_seeds = replace(pruned_at(6), seeds=(0, 1), pipelines=dict.fromkeys((0, 1), pruned_at(6).pipeline))
    assert comparison_setup([pruned_at(3), more_seeds]).setup == "S1"


def test_one_schedule_pruned_to_other_sparsities_is_not_even_s1() -> None:
    verdict = comparison_setup([pruned_at(3), replace(pruned_at(6), sparsity=0.5, speedup=2.0)])
    assert (verdict.setup, verdict.one_schedule) == (None, False)


def test_one_schedule_needs_the_same_settings_in_its_pruning_stage_too() -> None:
    """Both runs prune for an epoch at LR 0.01 inside one schedule, one of them at another batch size."""

    def pruned_over_an_epoch(epoch: int, batch_size: int) -> RunRecord:
        return record(f"P{epoch}", base=Stage(epoch, ONE_SCHEDULE[:epoch], {"find.batch_size": 100}),
                      pruning=Stage(1, ONE_SCHEDULE[epoch : epoch + 1], {"eval.batch_size": batch_size}),
                      retraining=Stage(11 - epoch, ONE_SCHEDULE[epoch + 1 :], {"eval.batch_size": 100}))  # fmt: skip

    assert comparison_setup([pruned_over_an_epoch(4, 100), pruned_over_an_epoch(5, 100)]).one_schedule
    verdict = comparison_setup([pruned_over_an_epoch(4, 100), pruned_over_an_epoch(5, 50)])
    assert (verdict.setup, verdict.reason) == ("S1", "the base models' epochs differ (4 / 5)")


@pytest.mark.parametrize("rewind", ["init", "epoch:1"])
def test_a_run_rewound_before_retraining_does_not_continue_one_schedule(rewind) -> None:
    """Even with the LRs of one schedule, a run whose weights go back (a lottery ticket's
    init, an early epoch) trains twice, not once: not Tab. 4's S4.2."""
    rewound = pruned_at(6)
    rewound = RunRecord(rewound.name, {**rewound.settings, "eval.rewind": rewind}, rewound.seeds, rewound.sparsity,
                        rewound.speedup, rewound.pipelines, rewound.compression)  # fmt: skip
    verdict = comparison_setup([pruned_at(3), rewound])
    assert (verdict.setup, verdict.reason) == ("S1", "the base models' epochs differ (3 / 6)")


DENSE_RECIPE = {"find.batch_size": 100, "find.optimizer.weight_decay": 1e-4}
SCRATCH_RECIPE = {"eval.batch_size": 100, "eval.optimizer.weight_decay": 1e-4}
LEFT = {"conv.weight": 30, "fc.weight": 10}


DENSE = Stage(3, (0.1, 0.1, 0.01), DENSE_RECIPE)


def sx_pair(scratch: Stage, scratch_base: Stage = DENSE) -> Budget:
    """A pruning run (3 epochs at LR 0.1 then 0.01, 2 of retraining ending at 0.001) and a
    run from scratch of 5 epochs of its network: SX-A's budget. An LR an epoch."""
    pruned = Pipeline(DENSE, NO_PRUNING, Stage(2, (0.001, 0.001), SCRATCH_RECIPE), 4.0, LEFT, "masks")
    runs = [record("pruned", per_seed={0: pruned}),
            record("scratch", per_seed={0: Pipeline(scratch_base, NO_PRUNING, scratch, 4.0, LEFT, "masks")}, **{"eval.rewind": "reinit"})]  # fmt: skip
    (budget,) = comparison_setup(runs).budgets
    return budget


@pytest.mark.parametrize(
    ("scratch", "reason"),
    [
        (Stage(5, (0.1, 0.1, 0.01, 0.001, 0.001), SCRATCH_RECIPE), ""),
        (Stage(5, (0.1, 0.1, 0.01, 0.001, 0.001), {**SCRATCH_RECIPE, "eval.optimizer.weight_decay": 0.0}),
         "it does not train with the dense model's recipe: optimizer.weight_decay 0.0001 / 0.0"),
        (Stage(5, (0.001,) * 5, SCRATCH_RECIPE), "its peak LR is not the dense model's (0.1 / 0.001)"),
        (Stage(5, (0.05, 0.1, 0.01, 0.001, 0.001), SCRATCH_RECIPE), ""),  # a warmup to the dense model's peak LR
        (Stage(5, (0.1, 0.1, 0.01, 0.01, 0.01), SCRATCH_RECIPE),
         "it ends at another LR than the pruned model's retraining (0.001 / 0.01; seed 004's Rule 1)"),
    ],
)
def test_sx_judges_only_the_scratch_training_of_the_pruned_network(scratch, reason) -> None:
    """Seed 004: scratch training of a pruned model trains its architecture "from scratch using
    the same training recipe as training the dense model", to the same final LR (Rule 1)."""
    budget = sx_pair(scratch)
    assert budget.not_scratch == reason
    row = budget.row()
    if reason:
        assert (row["S2-S4.2"], row["SX-A"], row["SX-B"]) == (f"not judged: {reason}", "not judged", "not judged")
    else:
        assert (row["S2-S4.2"], row["SX-A"], row["SX-B"]) == ("not met", "met", "not met")  # 5 epochs; S2-S4.2 ask for 3, SX-B for 3 * 4 + 2 = 14


def test_new_random_weights_on_another_network_are_a_pruning_method_not_scratch_training() -> None:
    """Seed 002's random baselines (a global random mask; random masks keeping the ticket's
    LPR) are evaluated "with new randomly initialized weights" and "the same H_find and
    H_eval" as the ticket: pruning methods, compared on the ladder. Only a run training the
    ticket's own masks from new weights is its training from scratch (seed 004's SX-A/B)."""
    def run(name: str, masks: str, remaining=LEFT, retraining=Stage(2, (0.001, 0.001), SCRATCH_RECIPE), **settings) -> RunRecord:
        return record(name, per_seed={0: Pipeline(DENSE, NO_PRUNING, retraining, 4.0, remaining, masks)}, **settings)

    reinit = {"eval.rewind": "reinit"}
    ticket = run("ticket", "magnitude masks", **{"eval.rewind": "init"})
    preserve_lpr = run("preserve LPR", "random masks", **reinit, **{"prune.criterion": "random"})
    global_random = run("global random", "other random masks", {"conv.weight": 25, "fc.weight": 15}, **reinit,
                        **{"prune.criterion": "random"})  # fmt: skip
    verdict = comparison_setup([ticket, preserve_lpr, global_random])
    assert (verdict.setup, verdict.reason, verdict.budgets) == ("S4.2", None, ())
    # The ticket's masks trained from new weights: its scratch training, off the ladder.
    scratch = run("scratch", "magnitude masks", retraining=Stage(5, (0.1, 0.1, 0.01, 0.001, 0.001), SCRATCH_RECIPE), **reinit)
    verdict = comparison_setup([ticket, preserve_lpr, scratch])
    assert verdict.setup == "S4.2" and [(b.pruned, b.scratch) for b in verdict.budgets] == [("ticket", "scratch")]
    # Against a run of another network of the same size, it is no scratch training.
    layerwise = run("layerwise", "layerwise masks", {"conv.weight": 25, "fc.weight": 15}, **{"prune.scope": "layerwise"})
    budgets = {b.pruned: b.not_scratch for b in comparison_setup([ticket, layerwise, scratch]).budgets}
    assert budgets == {"ticket": "", "layerwise": "it trains another network (conv.weight: 25 / 30 weights left; seed 0)"}
    same_counts = run("other masks", "other magnitude masks", **{"prune.scope": "layerwise"})
    budgets = {b.pruned: b.not_scratch for b in comparison_setup([ticket, same_counts, scratch]).budgets}
    assert budgets == {"ticket": "", "other masks": "it trains another network (other masks; seed 0)"}
    # weight pruning on a seed the run from scratch did not run finds other masks, whatever their counts
    seed_1 = record("ticket, seed 1", seeds=(1,), per_seed={1: replace(ticket.pipeline, masks="masks of seed 1")}, **{"eval.rewind": "init"})
    budgets = {b.pruned: b.not_scratch for b in comparison_setup([ticket, seed_1, scratch]).budgets}
    assert budgets == {"ticket": "", "ticket, seed 1": "it trains another network (the masks of another seed; it did not run seed 1)"}
    # After channel pruning the small architecture is the network, whichever channels each run kept.
    channels = {"prune.criterion": "filter_l1"}
    filters = run("filters", "kept filters", **channels)
    scratch_filters = run("scratch", "other kept filters", retraining=scratch.pipeline.retraining, **reinit, **channels)
    (budget,) = comparison_setup([filters, scratch_filters]).budgets
    assert (budget.pruned, budget.scratch, budget.not_scratch) == ("filters", "scratch", "")
    # On another seed the masks cannot be compared, and the same counts do not make the same network.
    other_seed = record("random, seed 1", per_seed={1: Pipeline(DENSE, NO_PRUNING, Stage(2, (0.001, 0.001), SCRATCH_RECIPE), 4.0, LEFT, "masks of seed 1")},
                        seeds=(1,), **reinit, **{"prune.criterion": "random"})  # fmt: skip
    verdict = comparison_setup([ticket, other_seed])
    assert verdict.budgets == () and verdict.setup == "S1" and verdict.reason.startswith("the seeds differ")


@pytest.mark.parametrize("final_lr", [0.0, 0.001])
def test_decays_of_other_lengths_to_one_final_lr_meet_rule_1(final_lr) -> None:
    """Cosine (or linear) decays of 20 and 50 steps to one final LR end their last steps at
    different LRs, a step above it: the same final LR all the same (seed 004's own cosine runs)."""
    from prunelab.schedules import Cosine, Linear

    for schedule in (Cosine, Linear):
        short, long = ([schedule(0.1, n, final_lr)(t) for t in range(n)] for n in (20, 50))
        assert short[-1] != long[-1]
        for retraining, from_scratch in ((short, long), (long, short)):  # either side's last step may span the gap
            pruned = Pipeline(Stage(3, (0.1, 0.1, 0.1), DENSE_RECIPE), NO_PRUNING, Stage(2, tuple(retraining), SCRATCH_RECIPE), 4.0, LEFT)
            scratch = Pipeline(DENSE, NO_PRUNING, Stage(5, tuple(from_scratch), SCRATCH_RECIPE), 4.0, LEFT)
            runs = [record("pruned", per_seed={0: pruned}), record("scratch", per_seed={0: scratch}, **{"eval.rewind": "reinit"})]
            (budget,) = comparison_setup(runs).budgets
            assert budget.not_scratch == "", schedule


def test_runs_of_several_tasks_are_compared_group_by_group() -> None:
    runs = [record("a9"), record("a5", sparsity=0.5, speedup=2.0), record("b9", **{"prune.criterion": "random"}),
            record("b5", sparsity=0.5, speedup=2.0, retraining=Stage(3, (0.1, 0.1, 0.1), RETRAINING.settings)),
            record("lonely", sparsity=0.7, speedup=3.0)]  # fmt: skip
    text = describe_setups({"": runs})
    assert text.splitlines()[2:] == [
        ("- a9 vs b9: S4.2: the same dataset, network, granularity and compression or speedup; the same base model; "
         "the same retraining LR schedule and settings; the same pruning LR schedule and settings"),
        ("- a5 vs b5: S2: the same dataset, network, granularity and compression or speedup; the same base model. "
         "Not S3.1: the retraining epochs differ (2 / 3)"),
    ]
    # a sweep's columns: one line when every column meets the same setup, else one per column
    assert describe_setups({"sparsity 0.9": runs[0:3:2], "sparsity 0.5": runs[1:4:2]}).splitlines()[2:] == [
        ("- sparsity 0.9: S4.2: the same dataset, network, granularity and compression or speedup; the same base model; "
         "the same retraining LR schedule and settings; the same pruning LR schedule and settings"),
        ("- sparsity 0.5: S2: the same dataset, network, granularity and compression or speedup; the same base model. "
         "Not S3.1: the retraining epochs differ (2 / 3)"),
    ]
    assert describe_setups({"sparsity 0.9": runs[0:3:2], "sparsity 0.5": [runs[1], record("c5", sparsity=0.5, speedup=2.0)]}) == (
        "Comparison setup (seed 004) in every column: S4.2: the same dataset, network, granularity and compression or "
        "speedup; the same base model; the same retraining LR schedule and settings; the same pruning LR schedule and settings"
    )
    # a column of one run has no setup: the others' is not every column's
    assert describe_setups({"sparsity 0.9": runs[0:3:2], "sparsity 0.5": runs[1:2]}).splitlines()[2:] == [
        ("- sparsity 0.9: S4.2: the same dataset, network, granularity and compression or speedup; the same base model; "
         "the same retraining LR schedule and settings; the same pruning LR schedule and settings"),
    ]


def test_training_settings_leave_out_what_the_record_covers_and_what_the_optimizer_ignores() -> None:
    settings = {"eval.epochs": 3, "eval.batch_size": 100, "eval.optimizer.name": "adam", "eval.optimizer.lr": 0.1,
                "eval.optimizer.momentum": 0.9, "eval.optimizer.betas": [0.9, 0.99], "eval.lr_schedule.name": "cosine",
                "eval.lr_policy": "llr", "eval.rewind": "init", "eval.budget": "epochs", "eval.instability": False,
                "eval.warmup_fraction": 0.1, "eval.lpr_every": 1, "find.batch_size": 50, "data.augment": True}  # fmt: skip
    assert training_settings(settings, "eval.") == {
        "eval.batch_size": 100, "eval.optimizer.name": "adam", "eval.optimizer.betas": [0.9, 0.99], "data.augment": True,
    }  # fmt: skip


def test_pairs_that_meet_more_than_all_runs_together_are_named() -> None:
    """One run of other seeds makes the three runs S1 together; the other two still meet S4.2."""
    runs = [record("a"), record("b", **{"prune.criterion": "random"}), record("c", seeds=(0, 1))]
    text = describe_setups({"": runs})
    assert text.startswith("Comparison setup (seed 004): S1: ")
    assert text.endswith("Pairs of them that meet a stricter setup:\n\n- S4.2: a vs b")
    # by the setup they meet, the strictest first: a, b and d alike (S4.2 pairs); e pruned for an epoch the others did not (S3.2)
    four = [record("a"), record("b", **{"prune.criterion": "random"}), record("c", seeds=(0, 1)), record("d"),
            record("e", pruning=Stage(1, (0.05,), BASE.settings))]  # fmt: skip
    assert describe_setups({"": four}).endswith("Pairs of them that meet a stricter setup:\n\n"
                                                "- S4.2: a vs b; a vs d; b vs d\n- S3.2: a vs e; b vs e; d vs e")  # fmt: skip
    # e first: its S3.2 pairs come first, the S4.2 pair still leads
    assert describe_setups({"": [four[4], *four[:3]]}).endswith("Pairs of them that meet a stricter setup:\n\n"
                                                                "- S4.2: a vs b\n- S3.2: e vs a; e vs b")  # fmt: skip
    assert "Pairs" not in describe_setups({"": runs[:2]})  # two runs: the verdict is the pair's
    many = [record(f"r{i}", **{"prune.criterion": "random"}) for i in range(8)] + [record("c", seeds=(0, 1))]
    assert describe_setups({"": many}).endswith("Pairs of more than 8 runs are not judged one by one: compare fewer runs "
                                                "at a time to see which of them meet a stricter setup.")  # fmt: skip
    # 8 runs, 7 of them alike and one of other seeds: every pair is judged
    eight = describe_setups({"": many[1:]})
    assert "not judged one by one" not in eight and "- S4.2: r1 vs r2; " in eight
    # 9 runs that meet the strictest setup together: no pair meets a stricter one
    assert "Pairs" not in describe_setups({"": [record(f"r{i}") for i in range(9)]})


def test_the_dense_model_s_recipe_is_the_pruning_run_s_not_the_scratch_run_s_own_find_phase():
    """The run from scratch keeps to its own find phase's batch size of 50, not the dense model's 100."""
    own = {**DENSE_RECIPE, "find.batch_size": 50}
    budget = sx_pair(Stage(5, (0.1, 0.1, 0.01, 0.001, 0.001), {**SCRATCH_RECIPE, "eval.batch_size": 50}), Stage(3, DENSE.lrs, own))
    assert budget.not_scratch == "it does not train with the dense model's recipe: batch_size 100 / 50"


def test_a_scratch_run_ending_more_than_one_last_step_away_fails_rule_1():
    """Ends 0.0015 apart; the last steps change by 0 and 0.0009: not the same final LR."""
    budget = sx_pair(Stage(5, (0.1, 0.1, 0.01, 0.0034, 0.0025), SCRATCH_RECIPE))
    assert budget.not_scratch == "it ends at another LR than the pruned model's retraining (0.001 / 0.0025; seed 004's Rule 1)"


def test_retraining_lrs_one_percent_apart_are_other_schedules():
    verdict = comparison_setup([record("a"), record("b", retraining=Stage(2, (0.1, 0.0505), RETRAINING.settings))])
    assert (verdict.setup, verdict.reason) == ("S3.1", "the retraining LR schedules differ from step 2 on (0.05 / 0.0505; seed 0)")


def test_a_run_directory_is_read_as_its_record(tmp_path: Path) -> None:
    """A one-shot run as ``prunelab run`` leaves it: 1000 parameters, 250 left (a compression
    of 4), a speedup of 3; 3 epochs of find, 2 of retraining, and a second copy of the
    retraining that only measures its instability. An LR an epoch."""
    seed = tmp_path / "run" / "seed-0"
    seed.mkdir(parents=True)
    (tmp_path / "run" / "recipe.yaml").write_text(recipe_yaml(validate({"prune": {"method": "oneshot", "sparsity": 0.75}, "seeds": [0]})))
    stats = {key: {"mean": mean, "std": 0.0} for key, mean in (("sparsity", 0.75), ("speedup", 3.0), ("parameters", 1000), ("remaining_parameters", 250))}
    (tmp_path / "run" / "summary.json").write_text(json.dumps({"run": "run", "seeds": [0], "stats": stats}))
    lrs = {"find": [0.1, 0.1, 0.01], "eval": [0.01, 0.001], "eval-copy": [0.01, 0.001]}
    files = {"summary.json": {"speedup": 3.0}, "layer_sparsity.json": {"a.weight": {"numel": 1000, "remaining": 250, "sparsity": 0.75}}, "lr_log.json": lrs,
             "metrics.json": [{"phase": phase, "epoch": e + 1} for phase, log in lrs.items() for e in range(len(log))]}  # fmt: skip
    for name, content in files.items():
        (seed / name).write_text(json.dumps(content))
    run = read_run_record(tmp_path / "run")
    assert (run.name, run.seeds, run.sparsity, run.speedup, run.compression) == ("run", (0,), 0.75, 3.0, 4.0)
    assert run.pipeline == Pipeline(Stage(3, (0.1, 0.1, 0.01), run.pipeline.base.settings), Stage(),
                                    Stage(2, (0.01, 0.001), run.pipeline.retraining.settings), 3.0, {"a.weight": 250})  # fmt: skip
    # each stage with its own phase's settings
    assert "find.batch_size" in run.pipeline.base.settings and "eval.batch_size" in run.pipeline.retraining.settings
    assert not any(key.startswith("eval.") for key in run.pipeline.base.settings)


def test_runs_of_other_tasks_are_told_every_way_they_differ() -> None:
    """Three runs, two of one network at other sparsities: naming the network alone would
    leave those two seeming alike."""
    runs = [record("a"), record("b", **{"model.name": "lenet_300_100"}), record("c", sparsity=0.5, speedup=2.0)]
    assert comparison_setup(runs).reason == (
        "the networks differ: model.name mnist1d_cnn / lenet_300_100 / mnist1d_cnn; "
        "the sparsities (90.00% / 90.00% / 50.00%) and the speedups (10.00x / 10.00x / 2.00x) differ"
    )
