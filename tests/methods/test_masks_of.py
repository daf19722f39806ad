"""``prune.scope: masks_of``: the very masks of another run, pruning step by pruning step and
seed by seed; with ``eval.rewind: reinit``, seed 002's "preserve mask" control of a ticket."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from prunelab.runs.runner import run_recipe

SEEDS = "seeds=[0, 1]"
ONESHOT = ["prune.method=oneshot", "prune.sparsity=0.8", "eval.epochs=1"]
IMP = ["prune.method=imp", "prune.rate=0.5", "prune.levels=2", "eval.lr_policy=null", "eval.epochs=2"]
#: Seed 002's Algorithm A1 with late rewinding: every level's mask found by H_find rewinding to epoch 1.
LATE_REWINDING_TICKET = [*IMP, "prune.masks_from=find", "eval.rewind=epoch:1"]


def copying(reference: str | Path, *overrides: str) -> list[str]:
    return [*overrides, "prune.scope=masks_of", f"prune.masks_of={reference}"]


@pytest.mark.parametrize(("ticket", "control", "keys"), [
    (ONESHOT, ONESHOT, ["prune"]),
    (LATE_REWINDING_TICKET, IMP, ["level-1/prune", "level-2/prune"]),
])  # fmt: skip
def test_the_masks_are_the_reference_run_s_bit_for_bit_and_reinit_draws_other_weights(
    make_recipe, shared_out, load_masks, find_weights, ticket, control, keys
) -> None:
    reference = run_recipe(make_recipe(*ticket, SEEDS), shared_out, progress=False)
    # another find phase (a larger LR): its own weights would give other masks
    recipe = make_recipe(*copying(reference, *control, SEEDS, "find.optimizer.lr=0.3", "eval.rewind=reinit"))
    preserved = run_recipe(recipe, shared_out, progress=False)
    for seed in (0, 1):
        for key in keys:
            ours, theirs = (run / f"seed-{seed}" / "masks" / f"{key}.safetensors" for run in (preserved, reference))
            assert ours.read_bytes() == theirs.read_bytes(), (seed, key)
            masks = load_masks(ours)
            assert all((~mask).any() and mask.any() for mask in masks.values()), (seed, key)  # every layer partly pruned
        assert (preserved / f"seed-{seed}" / "masks.safetensors").read_bytes() == (reference / f"seed-{seed}" / "masks.safetensors").read_bytes()
        # new random weights, pruned where the ticket is
        events = json.loads((preserved / f"seed-{seed}" / "events.json").read_text())
        assert {events[key.replace("prune", "eval/rewind")]["rewind"] for key in keys} == {"reinit"}
        ours, theirs = (load_file(str(run / f"seed-{seed}" / "model.safetensors")) for run in (preserved, reference))
        final = load_masks(preserved / f"seed-{seed}" / "masks.safetensors")
        for name, mask in final.items():
            assert (ours[name][~mask] == 0).all() and not ours[name][mask].equal(theirs[name][mask]), (seed, name)
    # each seed its own ticket's masks
    assert (reference / "seed-0" / "masks" / f"{keys[0]}.safetensors").read_bytes() != (
        reference / "seed-1" / "masks" / f"{keys[0]}.safetensors").read_bytes()
    # the first step's masks are not this run's smallest weights (the find phase's end, which it would have pruned)
    weights = find_weights(shared_out, recipe)
    copied = load_masks(preserved / "seed-0" / "masks" / f"{keys[0]}.safetensors")
    assert any(weights[name][~mask].abs().max() > weights[name][mask].abs().min() for name, mask in copied.items())


def test_a_reference_that_does_not_fit_is_an_error_before_any_training(make_recipe, shared_out, tmp_path, refused_before_training) -> None:
    reference = run_recipe(make_recipe(*ONESHOT), shared_out, progress=False)
    imp_reference = run_recipe(make_recipe(*IMP), shared_out, progress=False)
    channels = run_recipe(make_recipe(*ONESHOT, "prune.criterion=filter_l1", "prune.scope=layerwise", "prune.sparsity=0.5"), shared_out, progress=False)
    references = tmp_path / "references"
    gmp_like = references / "gmp"  # GMP records no pruning step: its updates follow a schedule
    shutil.copytree(reference, gmp_like)
    for events in gmp_like.glob("seed-*/events.json"):
        events.write_text(json.dumps({key: value for key, value in json.loads(events.read_text()).items() if key != "prune"}))
    unkept = references / "unkept"  # a run copied without its masks/ folder
    shutil.copytree(reference, unkept)
    shutil.rmtree(unkept / "seed-0" / "masks")
    transposed = references / "transposed"  # the same sizes, another shape
    shutil.copytree(reference, transposed)
    masks = load_file(str(transposed / "seed-0" / "masks" / "prune.safetensors"))
    masks["shape:classifier.0.weight"] = masks["shape:classifier.0.weight"].flip(0)
    save_file(masks, str(transposed / "seed-0" / "masks" / "prune.safetensors"))
    cases = [
        (["seeds=[0, 5]"], reference, "has no finished seed 5; run that recipe with this seed first"),
        (IMP, reference, r"\(seed 0\) prunes once \(one-shot\), this run prunes in 2 IMP levels: a one-shot run's masks are "
                         r"copied by a one-shot run \(prune.method=oneshot\)"),
        ([*IMP, "prune.levels=3"], imp_reference, r"prunes in 2 IMP levels, this run prunes in 3 IMP levels: set prune.levels=2 "),
        ([], imp_reference, r"this run prunes once \(one-shot\): an IMP run's masks are copied by IMP with as many levels "
                            r"\(prune.method=imp, prune.levels=2\)"),
        (["prune.exclude=[classifier]"], reference, r"\(name: size\): the masks of another model or other include/exclude cannot be copied"),
        (["model.options={channels: 8}"], reference, "cannot be copied"),  # same names, other sizes
        ([], transposed, r"has masks of .*'classifier\.0\.weight': \(\d+, \d+\).* at prune, this run prunes .* \(name: shape\): the masks "
                         "of another model cannot be copied"),
        ([], gmp_like, r"prunes along a schedule \(GMP\), in no pruning step of its own, this run prunes once \(one-shot\): "
                       r"it copies the masks of a one-shot, IMP or BIMP run"),
        ([], unkept, r"\(seed 0\) has not kept the masks of its pruning step prune \(.*seed-0/masks/prune.safetensors is missing\): "
                     "remove its folder seed-0 and run that recipe again, which keeps them"),
        ([], channels, "prunes whole channels, and keeps no weight masks to copy; give a run whose criterion prunes weights"),
        ([], tmp_path / "typo", "prune.masks_of: .*typo is not a folder; give the run directory whose masks to copy"),
        ([], shared_out, "prune.masks_of: .* is not a run directory \\(it has no recipe.yaml\\)"),  # the folder of runs itself
    ]
    refused_before_training([(make_recipe(*copying(ref, *overrides)), message) for overrides, ref, message in cases])


@pytest.mark.parametrize(("overrides", "message"), [
    (["prune.scope=masks_of"], "scope is masks_of but masks_of is not given: give the run directory whose masks to copy"),
    (["prune.masks_of=runs/x"], "masks_of is given but scope is global: set scope: masks_of to copy that run's masks, or leave masks_of out"),
    (["prune.scope=lpr_of", "prune.lpr_of=runs/x", "prune.masks_of=runs/x"], "masks_of is given but scope is lpr_of"),
    (copying("runs/x", "prune.criterion=filter_l1"), "scope 'masks_of' copies weight masks; criterion 'filter_l1' prunes channels"),
    (copying("runs/x", "prune.criterion=random"), "criterion 'random' with scope masks_of: the masks are copied from masks_of, "
                                                        "no criterion chooses them; leave criterion out"),
    (["prune={method: gmp, scope: masks_of, masks_of: runs/x}", "eval.epochs=8", "eval.lr_policy=null"],
     "gmp prunes gradually with scope global, layerwise or ratios, not masks_of"),
    (copying("runs/x", *LATE_REWINDING_TICKET), "masks_from: find trains H_find at every level to find the masks it prunes, "
                                                      "but scope masks_of copies them from masks_of; leave masks_from out"),
])  # fmt: skip
def test_masks_of_needs_its_run_directory_weight_masks_and_pruning_steps(make_recipe, overrides, message) -> None:
    from prunelab.config import RecipeError

    with pytest.raises(RecipeError, match=message):
        make_recipe(*overrides)


def test_imp_evaluates_copied_masks_from_reinit_without_finding_masks_itself(make_recipe) -> None:
    # IMP with masks_from: eval would find its next mask on new random weights; copied masks are found by no one
    assert make_recipe(*copying("runs/x", *IMP, "eval.rewind=reinit")).prune.masks_from == "eval"


def test_a_relative_reference_is_resolved_once(make_recipe, shared_out, monkeypatch) -> None:
    reference = run_recipe(make_recipe(*ONESHOT), shared_out, progress=False)
    monkeypatch.chdir(reference.parent)
    spellings = [reference.name, f"./{reference.name}", f"{reference.name}/", str(reference)]
    assert {make_recipe(*copying(spelling)).prune.masks_of for spelling in spellings} == {str(reference.resolve())}
