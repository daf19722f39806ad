"""Budgeted IMP (seed 003): T_0 epochs of linear-schedule training, then IMP with ALLR over the
remaining T - T_0 epochs split over the levels; impossible budgets are errors."""

from __future__ import annotations

import json
import re

import pytest
import torch

from prunelab.config import RecipeError
from prunelab.runs.runner import run_recipe

BUDGET, INITIAL = 5, 2
BIMP = [
    "prune.method=bimp",
    "prune.rate=0.5",
    "prune.sparsity=0.75",  # two levels: 50%, 75%
    f"prune.budget_epochs={BUDGET}",
    f"prune.initial_epochs={INITIAL}",
    "find.epochs=7",          # ignored: BIMP trains initial_epochs
    "eval.lr_policy=null",
    "eval.epochs=9",          # ignored: the budget decides
]


@pytest.fixture(scope="module")
def bimp_run(make_recipe, shared_out, phase_ends):
    """The run, and the weights at the end of each training phase (what the next level prunes)."""
    recipe = make_recipe(*BIMP)
    with pytest.warns(UserWarning) as warned, phase_ends() as ends:  # the ignored settings, named
        folder = run_recipe(recipe, shared_out, progress=False)
    # pytest.warns records deprecations too, which Python hides from users: pyparsing's, as
    # UserWarnings, when older matplotlib plots.
    notes = [w for w in warned if not issubclass(w.category, DeprecationWarning)]
    assert [str(w.message).split(" is not used")[0] for w in notes] == [
        "find.epochs=7", "find.lr_schedule.name=cosine", "eval.epochs=9"
    ]  # fmt: skip
    return recipe, folder / "seed-0", ends


def level_cuts(seed, load_masks, prunable_names):
    """Per level: its number, epochs, the phase whose end it pruned, its masks of the weights it
    cut (False only there) and the share s of the remaining weights they were."""
    kept = {n: torch.ones_like(load_masks(seed / "masks.safetensors")[n]) for n in prunable_names}
    for level, epochs, pruned_after in ((1, 2, "find"), (2, 1, "level-1/eval")):
        masks = load_masks(seed / "masks" / f"level-{level}" / "prune.safetensors")
        newly = {n: masks[n] | ~kept[n] for n in prunable_names}
        s = sum(int((~newly[n]).sum()) for n in prunable_names) / sum(int(kept[n].sum()) for n in prunable_names)
        kept = masks
        yield level, epochs, pruned_after, newly, s


def test_the_find_phase_is_initial_epochs_of_linear_decay_to_zero(bimp_run, steps_per_epoch, read) -> None:
    recipe, seed, _ = bimp_run
    log = read(seed / "lr_log.json")["find"]
    t = INITIAL * steps_per_epoch
    lr = recipe.find.optimizer.lr
    assert log == pytest.approx([lr * (1 - step / t) for step in range(t)], rel=1e-12)
    assert all(a > b for a, b in zip(log, log[1:])) and log[-1] == pytest.approx(lr / t)
    assert len([r for r in read(seed / "metrics.json") if r["phase"] == "find"]) == INITIAL


def test_the_remaining_budget_is_split_over_the_levels(bimp_run, read) -> None:
    _, seed, _ = bimp_run
    rows = read(seed / "metrics.json")
    per_level = [len([r for r in rows if r["phase"] == f"level-{level}/eval"]) for level in (1, 2)]
    assert per_level == [2, 1]  # 3 epochs over 2 levels, the remainder to the earlier level
    assert sum(per_level) == BUDGET - INITIAL
    assert len(rows) == BUDGET  # every epoch of the budget, and no more
    assert read(seed / "summary.json")["total_epochs"] == BUDGET  # the budget seed 003 compares at, summed up
    assert not any(r["phase"].startswith("level-3") for r in rows)


def test_levels_retrain_with_allr(bimp_run, steps_per_epoch, read, load_masks, prunable_names, hand_d1) -> None:
    """Each level's d1 by hand from the weights it pruned and its saved masks (s: the share
    of the remaining weights it pruned), d2 = T_rt / T_0, and the linear LR from d * eta_1."""
    _, seed, ends = bimp_run
    events, logs = read(seed / "events.json"), read(seed / "lr_log.json")
    find_log = logs["find"]
    for level, epochs, pruned_after, newly, s in level_cuts(seed, load_masks, prunable_names):
        recorded = events[f"level-{level}/eval/lr_policy"]
        t_rt = epochs * steps_per_epoch
        d2 = t_rt / len(find_log)
        assert recorded["policy"] == "allr"
        assert recorded["d2"] == pytest.approx(d2)
        assert recorded["d1"] == pytest.approx(hand_d1(ends[pruned_after], newly, prunable_names, s), rel=1e-9)
        d = max(recorded["d1"], d2)
        assert recorded["d"] == pytest.approx(d)
        assert logs[f"level-{level}/eval"] == pytest.approx(
            [d * max(find_log) * (1 - step / t_rt) for step in range(t_rt)], rel=1e-12
        )


def test_warmup_fraction_ramps_up_each_levels_allr(
    make_recipe, shared_out, steps_per_epoch, read, load_masks, prunable_names, hand_d1, phase_ends
) -> None:
    """eval.warmup_fraction applies to BIMP's ALLR, which it uses with eval.lr_policy unset."""
    recipe = make_recipe(*BIMP, "eval.warmup_fraction=0.5")
    with pytest.warns(UserWarning, match="is not used"), phase_ends() as ends:  # BIMP's settings it does not read, as above
        seed = run_recipe(recipe, shared_out, progress=False) / "seed-0"
    events, logs = read(seed / "events.json"), read(seed / "lr_log.json")
    eta_1 = max(logs["find"])
    for level, epochs, pruned_after, newly, s in level_cuts(seed, load_masks, prunable_names):
        t_rt = epochs * steps_per_epoch
        d = max(hand_d1(ends[pruned_after], newly, prunable_names, s), t_rt / len(logs["find"]))
        warmup = round(0.5 * t_rt)
        recorded = events[f"level-{level}/eval/lr_policy"]
        assert recorded["warmup_steps"] == warmup
        ramp = [min(1.0, (step + 1) / warmup) for step in range(t_rt)]
        allr = [d * eta_1 * (1 - step / t_rt) for step in range(t_rt)]
        assert logs[f"level-{level}/eval"] == pytest.approx([r * lr for r, lr in zip(ramp, allr)], rel=1e-9)


def test_bimp_ends_exactly_at_the_target(bimp_run, load_masks, prunable_names, read) -> None:
    _, seed, _ = bimp_run
    masks = load_masks(seed / "masks.safetensors")
    total = sum(m.numel() for m in masks.values())
    assert sum(int((~masks[n]).sum()) for n in prunable_names) == round(0.75 * total)
    summary = read(seed / "summary.json")
    assert summary["method"] == "bimp" and [lv["level"] for lv in summary["levels"]] == [1, 2]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["prune.budget_epochs=4", "prune.initial_epochs=3"], "cannot cover 2 IMP levels"),
        (["eval.lr_policy=llr"], r"- eval.lr_policy=llr \(use null\): bimp retrains every level with ALLR"),
        (["eval.rewind=init"], r"- eval.rewind=init \(use none\): bimp retrains"),
    ],
)
def test_impossible_budgets_and_settings_are_recipe_errors(make_recipe, overrides, match) -> None:
    # The recipe itself is refused, so nothing trains before the error.
    with pytest.raises(RecipeError, match=match):
        make_recipe(*BIMP, *overrides)


@pytest.mark.parametrize("initial", [5, 6])
def test_initial_training_must_leave_part_of_the_budget(make_recipe, initial) -> None:
    with pytest.raises(RecipeError, match=f"prune: initial_epochs={initial} must be smaller than budget_epochs={BUDGET}: bimp trains"):
        make_recipe(*BIMP, f"prune.initial_epochs={initial}")


def test_show_names_the_budget_and_each_levels_share(bimp_run, capsys) -> None:
    from prunelab.cli import main

    _, seed, _ = bimp_run
    assert [level["epochs"] for level in json.loads((seed / "summary.json").read_text())["levels"]] == [2, 1]
    assert main(["show", str(seed.parent)]) == 0
    out = capsys.readouterr().out
    assert f"of pruning (a budget of prune.budget_epochs={BUDGET} in all)" in out
    assert re.search(r"\| level \| sparsity \| epochs \|", out)
