"""``prune.scope: lpr_of``: the layerwise pruning ratios of another run, pruning step by
pruning step, with this run's own masks within each layer (seed 002, "match LPR")."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from prunelab.runs.runner import run_recipe

IMP = ["prune.method=imp", "prune.rate=0.5", "prune.levels=2", "eval.epochs=1"]


def pruned_counts(seed_folder: Path, key: str) -> dict[str, float]:
    return json.loads((seed_folder / "events.json").read_text())[key]["layer_sparsity"]


@pytest.mark.parametrize("method", [["prune.method=oneshot", "prune.sparsity=0.8", "eval.epochs=1"], IMP])
def test_the_lpr_is_the_reference_run_s_and_the_masks_are_this_run_s(make_recipe, shared_out, load_masks, method) -> None:
    reference = run_recipe(make_recipe(*method), shared_out, progress=False)
    # another find phase (a larger LR) finds other weights; its masks follow the reference's LPR
    matched = run_recipe(
        make_recipe(*method, "find.optimizer.lr=0.3", "prune.scope=lpr_of", f"prune.lpr_of={reference}"),
        shared_out, progress=False,
    )
    keys = ["prune"] if "prune.method=oneshot" in method else ["level-1/prune", "level-2/prune"]
    for key in keys:
        expected = pruned_counts(reference / "seed-0", key)
        assert pruned_counts(matched / "seed-0", key) == pytest.approx(expected, abs=1e-12)
        ours, theirs = (load_masks(run / "seed-0" / "masks" / f"{key}.safetensors")
                        for run in (matched, reference))
        assert any((ours[n] != theirs[n]).any() for n in ours)  # same counts, other weights kept
    # an ordinary global run with that find phase has an LPR of its own
    free = run_recipe(make_recipe(*method, "find.optimizer.lr=0.3"), shared_out, progress=False)
    assert pruned_counts(free / "seed-0", keys[-1]) != pytest.approx(pruned_counts(reference / "seed-0", keys[-1]))


@pytest.mark.filterwarnings("ignore:.* is not used. bimp")  # the BIMP case keeps the find and eval settings of the others
def test_a_reference_that_does_not_fit_is_an_error_before_any_training(make_recipe, shared_out, tmp_path, refused_before_training) -> None:
    reference = run_recipe(make_recipe("prune.method=oneshot", "prune.sparsity=0.8", "eval.epochs=1"), shared_out, progress=False)
    imp_reference = run_recipe(make_recipe(*IMP), shared_out, progress=False)
    gmp_like = tmp_path / "references" / "gmp"  # GMP records no pruning step: its updates follow a schedule
    shutil.copytree(reference, gmp_like)
    for events in gmp_like.glob("seed-*/events.json"):
        events.write_text(json.dumps({key: value for key, value in json.loads(events.read_text()).items() if key != "prune"}))
    unfinished = tmp_path / "references" / "unfinished"  # a seed stopped mid-run: events so far, no final layer sparsity
    shutil.copytree(reference, unfinished)
    (unfinished / "seed-0" / "layer_sparsity.json").unlink()
    cases = [
        (["seeds=[0, 5]"], reference, "has no finished seed 5"),
        ([], unfinished, "has no finished seed 0"),
        (IMP, reference, r"\(seed 0\) prunes once \(one-shot\), this run prunes in 2 IMP levels: a one-shot run's LPR is "
                         r"copied by a one-shot run \(prune.method=oneshot\)"),
        # One Shot IMP prunes once too, but as IMP's level 1: the steps' names differ
        ([*IMP, "prune.levels=1"], reference, r"prunes once \(one-shot\), this run prunes in 1 IMP level: a one-shot run's LPR is copied by a one-shot run"),
        ([*IMP, "prune.levels=3"], imp_reference, r"prunes in 2 IMP levels, this run prunes in 3 IMP levels: set prune.levels=2 "),
        (["prune.method=bimp", "prune.rate=0.5", "prune.levels=3", "prune.budget_epochs=5", "prune.initial_epochs=2",
          "eval.lr_policy=null"], imp_reference,
         r"prunes in 2 IMP levels, this run prunes in 3 IMP levels: set prune.levels=2 "),  # BIMP's levels, too
        ([], imp_reference, r"this run prunes once \(one-shot\): an IMP run's LPR is copied by IMP with as many levels "
                            r"\(prune.method=imp, prune.levels=2\)"),
        (["prune.exclude=[classifier]"], reference, "cannot be copied"),
        (["model.options={channels: 8}"], reference, "cannot be copied"),  # same names, other sizes
        ([], gmp_like, r"prunes along a schedule \(GMP\), in no pruning step of its own, this run prunes once \(one-shot\): "
                       r"it copies the LPR of a one-shot, IMP or BIMP run"),
        ([], tmp_path / "typo", "typo is not a folder; give the run directory whose LPR to copy"),
        ([], shared_out, "is not a run directory \\(it has no recipe.yaml\\)"),  # the folder of runs itself
    ]
    refused_before_training([(make_recipe(*overrides, "prune.scope=lpr_of", f"prune.lpr_of={ref}"), message) for overrides, ref, message in cases])


def test_a_relative_reference_is_resolved_once(make_recipe, shared_out, monkeypatch) -> None:
    reference = run_recipe(make_recipe("prune.method=oneshot", "prune.sparsity=0.8", "eval.epochs=1"), shared_out, progress=False)
    monkeypatch.chdir(reference.parent)
    spellings = [reference.name, f"./{reference.name}", f"{reference.name}/", str(reference)]
    recipes = [make_recipe("prune.scope=lpr_of", f"prune.lpr_of={spelling}") for spelling in spellings]
    assert {r.prune.lpr_of for r in recipes} == {str(reference.resolve())}


def test_lpr_of_needs_its_run_directory_and_a_method_with_pruning_steps(make_recipe) -> None:
    from prunelab.config import RecipeError

    with pytest.raises(RecipeError, match="scope is lpr_of but lpr_of is not given: give the run directory whose LPR to copy"):
        make_recipe("prune.scope=lpr_of")
    with pytest.raises(RecipeError, match="gmp prunes gradually"):
        make_recipe("prune={method: gmp, scope: lpr_of, lpr_of: runs/x}", "eval.epochs=8", "eval.lr_policy=null")


def test_random_masks_at_the_reference_lpr_are_the_preserve_lpr_baseline(make_recipe, shared_out, load_masks, lowest_random_scores) -> None:

    oneshot = ["prune.method=oneshot", "prune.sparsity=0.8", "eval.epochs=1"]
    reference = run_recipe(make_recipe(*oneshot), shared_out, progress=False)
    baseline = run_recipe(
        make_recipe(*oneshot, "prune.criterion=random", "prune.scope=lpr_of", f"prune.lpr_of={reference}"),
        shared_out, progress=False,
    )
    ratios = pruned_counts(reference / "seed-0", "prune")
    assert pruned_counts(baseline / "seed-0", "prune") == pytest.approx(ratios, abs=1e-12)
    # random within each layer: the lowest random scores of each layer, as many as the reference pruned
    saved = load_masks(baseline / "seed-0" / "masks" / "prune.safetensors")
    expected = lowest_random_scores({name: mask.shape for name, mask in saved.items()}, 0, ratios=ratios)
    assert saved.keys() == expected.keys() and all(torch.equal(saved[n], expected[n]) for n in saved)


def test_lpr_of_masks_are_the_smallest_of_this_run_s_weights(make_recipe, shared_out, load_masks, find_weights) -> None:
    reference = run_recipe(make_recipe("prune.method=oneshot", "prune.sparsity=0.8", "eval.epochs=1"), shared_out, progress=False)
    recipe = make_recipe("prune.method=oneshot", "prune.sparsity=0.8", "eval.epochs=1", "find.optimizer.lr=0.3",
                         "prune.scope=lpr_of", f"prune.lpr_of={reference}")
    matched = run_recipe(recipe, shared_out, progress=False)
    weights = find_weights(shared_out, recipe)
    masks = load_masks(matched / "seed-0" / "masks" / "prune.safetensors")
    for name, mask in masks.items():
        assert (~mask).any() and mask.any(), name  # every layer partly pruned, so the check below says something
        assert weights[name][~mask].abs().max() <= weights[name][mask].abs().min(), name
