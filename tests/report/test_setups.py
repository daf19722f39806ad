"""Seed 004's comparison setups, judged on hand-made run records: each condition of the
ladder on its own, and the SX-A / SX-B budgets computed by hand."""

from __future__ import annotations

import pytest

from prunelab.report.setups import Pipeline, RunRecord, Stage, comparison_setup

BASE_LRS = (0.1, 0.05, 0.01)
BASE, NO_PRUNING, RETRAINING = Stage(3, BASE_LRS), Stage(), Stage(2, (0.1, 0.05))


def record(name="a", *, seeds=(0,), sparsity=0.9, speedup=10.0, base=BASE, pruning=NO_PRUNING,
           retraining=RETRAINING, per_seed=None, **settings) -> RunRecord:  # fmt: skip
    defaults = {"data.name": "mnist1d", "model.name": "mnist1d_cnn", "prune.method": "oneshot", "find.batch_size": 100,
                "find.optimizer.lr": 0.1, "eval.batch_size": 100, "eval.optimizer.weight_decay": 1e-4,
                "eval.rewind": "none", "eval.lr_policy": "llr"}  # fmt: skip
    pipelines = per_seed or {seed: Pipeline(base, pruning, retraining) for seed in seeds}
    if settings.get("eval.rewind") == "reinit":
        pipelines = {seed: Pipeline(None, Stage(), p.retraining) for seed, p in pipelines.items()}
    return RunRecord(name, {**defaults, **settings}, tuple(seeds), sparsity, speedup, pipelines)


def test_runs_that_differ_only_in_the_pruning_criterion_meet_every_setup() -> None:
    verdict = comparison_setup([record("a", **{"prune.criterion": "magnitude"}), record("b", **{"prune.criterion": "random"})])
    assert (verdict.setup, verdict.unmet, verdict.budgets) == ("S4.2", None, ())
    assert str(verdict).startswith("S4.2: the same dataset and network")


@pytest.mark.parametrize(
    ("change", "setup", "reason"),
    [
        ({"model.name": "lenet_300_100"}, None, "the networks differ: model.name mnist1d_cnn / lenet_300_100"),
        ({"sparsity": 0.8, "speedup": 5.0}, None, "the sparsities (90.00% / 80.00%) and the speedups (10.00x / 5.00x) differ"),
        ({"seeds": (1,)}, "S1", "the seeds, and with them the base models differ ([0] / [1])"),
        ({"find.batch_size": 50}, "S1", "the base models' training differ: find.batch_size 100 / 50"),
        ({"base": Stage(3, (0.1, 0.05, 0.02))}, "S1", "the base models' LR schedules differ from step 3 on (0.01 / 0.02; seed 0)"),
        ({"retraining": Stage(3, (0.1, 0.05, 0.0))}, "S2", "the retraining epochs differ (2 / 3)"),
        ({"eval.batch_size": 50}, "S3.1", "the retraining settings differ: eval.batch_size 100 / 50"),
        ({"retraining": Stage(2, (0.01, 0.005))}, "S3.1", "the retraining LR schedules differ from step 1 on (0.1 / 0.01; seed 0)"),
        ({"pruning": Stage(1, (0.1,))}, "S3.2", "the pruning epochs differ (0 / 1)"),
    ],
)
def test_each_condition_of_the_ladder_on_its_own(change, setup, reason) -> None:
    verdict = comparison_setup([record("a"), record("b", **change)])
    assert (verdict.setup, verdict.unmet) == (setup, reason)


def test_the_same_pruning_epochs_with_other_lrs_meet_s4_1_only() -> None:
    verdict = comparison_setup([record("a", pruning=Stage(1, (0.1, 0.1))), record("b", pruning=Stage(1, (0.1, 0.01)))])
    assert verdict.setup == "S4.1"
    assert verdict.unmet == "the pruning LR schedules differ from step 2 on (0.1 / 0.01; seed 0)"
    assert "the same retraining LR schedule; the same pruning epochs" in str(verdict)


def test_the_same_sparsity_or_the_same_speedup_is_the_same_compression() -> None:
    assert comparison_setup([record("a", speedup=10.0), record("b", speedup=4.0)]).setup == "S4.2"  # same sparsity
    assert comparison_setup([record("a", sparsity=0.9), record("b", sparsity=0.7, speedup=10.05)]).setup == "S4.2"
    assert comparison_setup([record("a", sparsity=0.9), record("b", sparsity=0.894)]).setup == "S4.2"  # within half a point
    assert comparison_setup([record("a", sparsity=0.9), record("b", sparsity=0.89, speedup=9.8)]).setup is None


def test_settings_the_record_covers_or_the_method_owns_do_not_count() -> None:
    """An LR policy and an explicit schedule that give the same LRs are the same schedule;
    rewinding is part of the pruning method under comparison."""
    a = record("a", **{"eval.lr_policy": "llr", "eval.optimizer.lr": 0.1, "eval.rewind": "none"})
    b = record("b", **{"eval.lr_policy": None, "eval.lr_schedule.name": "linear", "eval.optimizer.lr": 0.5, "eval.rewind": "init"})
    assert comparison_setup([a, b]).setup == "S4.2"


def test_gmp_fine_tunes_without_weight_decay_unless_told_to() -> None:
    oneshot = record("a")
    gmp = record("b", **{"prune.method": "gmp", "prune.finetune_weight_decay": False})
    assert comparison_setup([oneshot, gmp]).unmet == "the retraining settings differ: eval.optimizer.weight_decay 0.0001 / 0.0"
    kept = record("b", **{"prune.method": "gmp", "prune.finetune_weight_decay": True})
    assert comparison_setup([oneshot, kept]).setup == "S4.2"


def test_adaptive_schedules_are_compared_seed_by_seed() -> None:
    """ALLR gives each seed's mask its own LR: seed 1's schedules differ, seed 0's do not."""
    same, other = Pipeline(Stage(3, BASE_LRS), Stage(), Stage(2, (0.3, 0.1))), Pipeline(Stage(3, BASE_LRS), Stage(), Stage(2, (0.2, 0.1)))
    a = record("a", seeds=(0, 1), per_seed={0: same, 1: same})
    b = record("b", seeds=(0, 1), per_seed={0: same, 1: other})
    assert comparison_setup([a, b]).unmet == "the retraining LR schedules differ from step 1 on (0.3 / 0.2; seed 1)"


def budget(pruned: RunRecord, scratch: RunRecord):
    (one,) = comparison_setup([pruned, scratch]).budgets
    return one


def test_scratch_budgets_by_hand() -> None:
    """A pruning run: 30 epochs of pretraining, 10 of retraining, speedup 4. SX-A gives
    scratch training 40 epochs; SX-B 30 * 4 + 10 = 130 epochs of the 4x cheaper network."""
    pruned = record("pruned", base=Stage(30, ()), retraining=Stage(10, ()), speedup=4.0)

    def against(epochs: int, speedup: float = 4.0, of=pruned):
        return budget(of, record("scratch", retraining=Stage(epochs, ()), speedup=speedup, **{"eval.rewind": "reinit"}))

    scratch_e, scratch_b = against(40), against(130)
    assert (scratch_e.same_epochs, scratch_e.equivalent_epochs, scratch_e.same_macs) == (True, 130.0, False)
    assert (scratch_b.same_epochs, scratch_b.same_macs) == (False, True)
    assert scratch_b.row() == {"run": "pruned", "from scratch": "scratch", "epochs": "30 + 0 + 10 / 130", "SX-A": "not met",
                               "MACs": "130.0 / 130", "SX-B": "met"}  # fmt: skip
    assert not against(131).same_macs and not against(60).same_macs
    # Scratch-B rounds to whole epochs: speedup 3.3 gives 30 * 3.3 + 10 = 109 epochs, within half an epoch
    close = record("pruned", base=Stage(30, ()), retraining=Stage(10, ()), speedup=3.3)
    assert against(109, 3.3, close).same_macs


def test_a_pruning_stage_leaves_sx_b_unjudged_and_scratch_runs_stay_off_the_ladder() -> None:
    imp = record("imp", pruning=Stage(4, (0.1,) * 8))
    scratch = record("scratch", retraining=Stage(9, ()), **{"eval.rewind": "reinit"})
    verdict = comparison_setup([imp, scratch])
    assert (verdict.setup, verdict.unmet, str(verdict)) == (None, None, "")  # one pruning run: no ladder
    (only,) = verdict.budgets
    assert (only.same_epochs, only.same_macs, only.row()["MACs"], only.row()["SX-B"]) == (True, None, "not judged (pruning stage)", "")
    other_task = record("scratch", sparsity=0.5, speedup=2.0, retraining=Stage(9, ()), **{"eval.rewind": "reinit"})
    assert comparison_setup([imp, other_task]).budgets == ()  # another sparsity: no budget to match
