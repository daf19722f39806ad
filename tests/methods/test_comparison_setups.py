"""Seed 004's comparison setups of real runs, read back from their directories: which
trainings are the base model, the pruning stage and the retraining, for every method."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from prunelab.config import Recipe
from prunelab.methods.common import scratch_budget
from prunelab.report.setups import (
    comparison_setup,
    describe_column_setups,
    read_run_record,
    read_sweep_records,
    trained_from_scratch,
)
from prunelab.runs.runner import run_recipe

STEPS_PER_EPOCH = 8


def runs(make_recipe, out, *variants):
    common = ("prune.method=oneshot", "prune.sparsity=0.75")
    return [read_run_record(run_recipe(make_recipe(*common, *variant), out, progress=False)) for variant in variants]


def test_oneshot_pipeline_and_criteria_compared_under_s4_2(make_recipe, shared_out) -> None:
    magnitude, random = runs(make_recipe, shared_out, (), ("prune.criterion=random",))
    pipeline = magnitude.pipeline
    lr_log = json.loads((shared_out / magnitude.name / "seed-0" / "lr_log.json").read_text())
    assert (pipeline.base.epochs, pipeline.pruning.epochs, pipeline.retraining.epochs) == (3, 0, 2)
    assert pipeline.base.lrs == tuple(lr_log["find"]) and pipeline.retraining.lrs == tuple(lr_log["eval"])
    assert comparison_setup([magnitude, random]).setup == "S4.2"


def test_retraining_policies_differ_in_their_recorded_schedules(make_recipe, shared_out) -> None:
    """FT retrains at the find phase's last LR, LLR from its largest: the same epochs (S3.1)."""
    llr, ft = runs(make_recipe, shared_out, ("eval.lr_policy=llr",), ("eval.lr_policy=ft",))
    verdict = comparison_setup([llr, ft])
    assert verdict.setup == "S3.1"
    assert verdict.reason.startswith("the retraining LR schedules differ from step 1 on (0.1 / ")


def test_imp_levels_before_the_last_are_the_pruning_stage(make_recipe, shared_out) -> None:
    oneshot, imp = runs(make_recipe, shared_out, (), ("prune.method=imp", "prune.rate=0.5", "prune.levels=2"))
    assert imp.sparsity == oneshot.sparsity
    assert (imp.pipeline.pruning.epochs, len(imp.pipeline.pruning.lrs), imp.pipeline.retraining.epochs) == (2, 2 * STEPS_PER_EPOCH, 2)
    verdict = comparison_setup([oneshot, imp])
    assert (verdict.setup, verdict.reason) == ("S3.2", "the pruning epochs differ (0 / 2)")


@pytest.mark.filterwarnings("ignore::UserWarning")  # a pruning stage this short updates too often
def test_gmp_eval_phase_splits_into_pruning_and_fine_tuning(make_recipe, tmp_path) -> None:
    """Stabilization and pruning epochs train with the eval phase's weight decay, the
    fine-tuning without it (``finetune_weight_decay`` off)."""
    gmp, kept = runs(make_recipe, tmp_path, *[("prune.method=gmp", "eval.lr_policy=null", "eval.rewind=none", "eval.epochs=4",
                                               "eval.optimizer.weight_decay=0.001", "prune.stabilization_epochs=1",
                                               "prune.pruning_epochs=2", f"prune.finetune_weight_decay={keep}") for keep in (False, True)])  # fmt: skip
    lrs = json.loads((tmp_path / gmp.name / "seed-0" / "lr_log.json").read_text())["eval"]
    assert gmp.pipeline.pruning.epochs == 3 and gmp.pipeline.pruning.lrs == tuple(lrs[: 3 * STEPS_PER_EPOCH])
    assert gmp.pipeline.retraining.epochs == 1 and gmp.pipeline.retraining.lrs == tuple(lrs[3 * STEPS_PER_EPOCH :])
    assert gmp.pipeline.pruning.settings["eval.optimizer.weight_decay"] == 0.001
    assert gmp.pipeline.retraining.settings["eval.optimizer.weight_decay"] == 0.0
    assert kept.pipeline.retraining.settings["eval.optimizer.weight_decay"] == 0.001
    assert comparison_setup([gmp, kept]).reason == "the retraining settings differ: eval.optimizer.weight_decay 0.0 / 0.001"


def test_scratch_budgets_meet_sx_a_and_sx_b(make_recipe, shared_out) -> None:
    pruned, scratch_e, scratch_b = runs(make_recipe, shared_out, (), ("eval.rewind=reinit", "eval.budget=scratch_e"),
                                        ("eval.rewind=reinit", "eval.budget=scratch_b"))  # fmt: skip
    assert scratch_e.pipeline.retraining.epochs == 3 + 2
    # The pruned run's own masks, trained from new weights: its training from scratch.
    assert scratch_e.pipeline.masks == scratch_b.pipeline.masks == pruned.pipeline.masks is not None
    assert trained_from_scratch([pruned, scratch_e, scratch_b]) == [scratch_e, scratch_b]
    against_e, against_b = comparison_setup([pruned, scratch_e, scratch_b]).budgets
    assert (against_e.pipeline_epochs, against_e.scratch_epochs) == ((3, 0, 2), (5,))
    assert (against_e.same_epochs, against_e.same_macs) == (True, False)
    assert (against_b.same_epochs, against_b.same_macs) == (False, True)
    # Tables of runs show the epochs each scratch run trained, not the recipe's eval.epochs (2);
    # grouping (the report's curves) still goes by the recipe.
    from prunelab.report.runs import comparison_rows, load_runs

    results = load_runs([shared_out / run.name for run in (pruned, scratch_e, scratch_b)])
    rows, columns, _ = comparison_rows(results)
    shown = {row["run"]: row["eval.epochs"] for row in rows}
    assert "eval.epochs" in columns and shown == {pruned.name: 2, scratch_e.name: 5, scratch_b.name: scratch_b.pipeline.retraining.epochs}
    assert {result.settings["eval.epochs"] for result in results} == {2}
    # a sparse model's MACs buy more epochs: Scratch-B, 2 + 3 * speedup (rounded)
    assert scratch_b.pipeline.retraining.epochs == 2 + round(3 * scratch_b.pipelines[0].speedup) > 5


def test_scratch_b_rounds_the_pipeline_s_epochs_times_the_speedup_to_the_nearest_epoch() -> None:
    """Scratch-B adds round(find epochs * speedup) to eval.epochs: 3 * 1.9 = 5.7 makes 6 more, not 5."""
    recipe = Recipe.model_validate({"find": {"epochs": 3}, "eval": {"epochs": 2, "rewind": "reinit", "budget": "scratch_b"}})
    session = SimpleNamespace(recipe=recipe, speedup=lambda: 1.9, once=lambda key, compute: compute())  # a run's unit, computed
    assert scratch_budget(session, "eval", recipe.eval).epochs == 2 + 6


def test_a_halving_schedule_is_derived_from_a_scratch_budgets_epochs(make_recipe, shared_out) -> None:
    """Seed 004's Rules 2 and 3 give the scratch training of 3 + 2 epochs its own milestone
    (3 of 5 epochs at 0.1), ending at the retraining's final LR (Rule 1)."""
    halving = ("eval.lr_policy=null", "eval.optimizer.lr=0.1", "eval.lr_schedule={name: halving, final_lr: 0.01}")
    pruned, scratch = runs(make_recipe, shared_out, halving, (*halving, "eval.rewind=reinit", "eval.budget=scratch_e"))
    assert pruned.pipeline.retraining.lrs == pytest.approx([0.1] * STEPS_PER_EPOCH + [0.01] * STEPS_PER_EPOCH)
    assert scratch.pipeline.retraining.lrs == pytest.approx([0.1] * 3 * STEPS_PER_EPOCH + [0.01] * 2 * STEPS_PER_EPOCH)
    (against_e,) = comparison_setup([pruned, scratch]).budgets
    assert (against_e.scratch_epochs, against_e.same_epochs) == ((5,), True)


def test_a_random_mask_with_new_weights_is_a_baseline_on_the_ladder(make_recipe, shared_out) -> None:
    """Seed 002's global random baseline: a random mask, new random weights, the same H_find
    and H_eval as the magnitude run. Another network than the magnitude run's, so a pruning
    method compared by S1-S4.2, not its training from scratch."""
    magnitude, random = runs(make_recipe, shared_out, (), ("prune.criterion=random", "eval.rewind=reinit"))
    assert random.pipeline.masks != magnitude.pipeline.masks
    assert trained_from_scratch([magnitude, random]) == []
    verdict = comparison_setup([magnitude, random])
    assert (verdict.setup, verdict.budgets) == ("S4.2", ())


def test_imp_finding_masks_by_h_find_counts_those_trainings_not_the_evaluations(make_recipe, shared_out) -> None:
    """With ``masks_from: find`` the next level's mask comes from a new H_find training;
    the earlier levels' H_eval trainings only evaluate masks and are left out."""
    (imp,) = runs(make_recipe, shared_out, ("prune.method=imp", "prune.rate=0.5", "prune.levels=2", "prune.masks_from=find",
                                            "eval.rewind=init"))  # fmt: skip
    lr_log = json.loads((shared_out / imp.name / "seed-0" / "lr_log.json").read_text())
    assert list(lr_log) == ["find", "level-1/eval", "level-2/find", "level-2/eval"]
    assert (imp.pipeline.pruning.epochs, imp.pipeline.pruning.lrs) == (3, tuple(lr_log["level-2/find"]))
    assert imp.pipeline.pruning.settings["find.batch_size"] == 500 and "eval.batch_size" not in imp.pipeline.pruning.settings


def test_turning_off_an_augmentation_mnist1d_does_not_have_is_the_same_experiment(make_recipe, shared_out) -> None:
    """(Where a dataset is augmented, augmentation is a setting of the base model and the
    retraining: see tests/report/test_setups.py.)"""
    with pytest.warns(UserWarning, match="data.augment=False is not used: mnist1d comes without data augmentation"):
        augmented, plain = runs(make_recipe, shared_out, (), ("data.augment=false",))
    assert augmented.name == plain.name and augmented.pipeline == plain.pipeline


def test_a_second_copy_for_instability_is_not_part_of_the_pipeline(make_recipe, shared_out) -> None:
    plain, measured = runs(make_recipe, shared_out, (), ("eval.instability=true",))
    assert measured.pipeline == plain.pipeline
    assert comparison_setup([plain, measured]).setup == "S4.2"


def test_a_sweep_names_its_runs_by_their_row(make_recipe, shared_out) -> None:
    """Scratch training for the base model's 3 epochs meets S2-S4.2's convention, for the
    pipeline's 3 + 2 SX-A."""
    arms = {"pruning": (), "scratch": ("eval.rewind=reinit", "eval.epochs=3"), "scratch-e": ("eval.rewind=reinit", "eval.budget=scratch_e")}
    common = ("prune.method=oneshot", "prune.sparsity=0.75")
    results = [({"arm": arm}, run_recipe(make_recipe(*common, *fields), shared_out, progress=False)) for arm, fields in arms.items()]
    text = describe_column_setups(read_sweep_records(results), "arm", [])
    assert "| run     | from scratch | epochs        | S2-S4.2 | SX-A    | MACs" in text
    assert "| pruning | scratch      | 3 + 0 + 2 / 3 | met     | not met |" in text
    assert "| pruning | scratch-e    | 3 + 0 + 2 / 5 | not met | met     |" in text


def test_a_table_whose_columns_are_not_one_task_is_judged_task_by_task(make_recipe, shared_out) -> None:
    """Rows of sparsities and columns of arms: each column holds two sparsities, so the runs
    are grouped by task instead, each named by its place in the grid."""
    arms = {"pruning": (), "scratch-e": ("eval.rewind=reinit", "eval.budget=scratch_e")}
    results = [({"prune.sparsity": s, "arm": arm}, run_recipe(make_recipe("prune.method=oneshot", f"prune.sparsity={s}", *fields),
                                                             shared_out, progress=False))
               for arm, fields in arms.items() for s in (0.5, 0.75)]  # fmt: skip
    text = describe_column_setups(read_sweep_records(results), "prune.sparsity", ["arm"])
    assert "| prune.sparsity=0.5, arm=pruning  | prune.sparsity=0.5, arm=scratch-e  | 3 + 0 + 2 / 5 | not met | met  |" in text
    assert "| prune.sparsity=0.75, arm=pruning | prune.sparsity=0.75, arm=scratch-e | 3 + 0 + 2 / 5 | not met | met  |" in text


def test_a_retraining_entered_part_way_into_an_epoch_keeps_every_lr_it_trained(make_recipe, shared_out) -> None:
    """Rewinding to step 3 resumes the eval LR schedule 3 steps into its first epoch: 13 steps
    over 2 epochs, all of them the retraining's, its last LR included (Rule 1 reads it)."""
    (rewound,) = runs(make_recipe, shared_out, ("eval.rewind=step:3", "eval.lr_policy=null", "eval.lr_schedule.name=linear"))
    lr_log = json.loads((shared_out / rewound.name / "seed-0" / "lr_log.json").read_text())["eval"]
    assert len(lr_log) == 2 * STEPS_PER_EPOCH - 3
    assert rewound.pipeline.retraining.epochs == 2 and rewound.pipeline.retraining.lrs == tuple(lr_log)
