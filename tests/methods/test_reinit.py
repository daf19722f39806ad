"""``eval.rewind: reinit``: the mask is evaluated from new random weights (seed 002's random
baselines and its "preserve mask" control), drawn as the initialisation is."""

from __future__ import annotations

import pytest
import torch

from prunelab.config import RecipeError
from prunelab.runs.runner import run_recipe
from prunelab.runs.session import Session


def eval_starts(recipe, out):
    """The weights every eval phase starts from, by phase."""
    starts = {}
    original = Session.train

    def watched(self, phase, config, **kwargs):
        if phase.endswith("eval") and phase not in self.journal["done"]:
            starts[phase] = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        return original(self, phase, config, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Session, "train", watched)
        folder = run_recipe(recipe, out, progress=False)
    return folder / "seed-0", starts


def test_reinit_draws_new_weights_like_the_initialisation_and_keeps_the_mask(make_recipe, tmp_path, load_masks, find_snapshot) -> None:
    recipe = make_recipe("prune.method=oneshot", "prune.sparsity=0.5", "eval.rewind=reinit", "eval.epochs=1")
    seed, starts = eval_starts(recipe, tmp_path / "a")
    start = starts["eval"]
    init = find_snapshot(tmp_path / "a", recipe, "init")
    masks = load_masks(seed / "masks" / "prune.safetensors")
    for name, mask in masks.items():
        weight = start[name]
        assert (weight[~mask] == 0).all(), name
        assert not torch.equal(weight[mask], init[name][mask]), f"{name}: the initialisation again"
        # drawn as the initialisation is: the same scale (Kaiming-uniform bound of the layer)
        assert weight[mask].abs().max() <= init[name].abs().max() * 1.0001
        assert weight[mask].std() == pytest.approx(init[name].std(), rel=0.25)  # the mask does not depend on them
    # the same new weights whenever the run is made again
    _, again = eval_starts(recipe, tmp_path / "b")
    for name, value in start.items():
        assert torch.equal(value, again["eval"][name]), name


def test_imp_finds_masks_from_the_initialisation_and_evaluates_them_from_new_weights(make_recipe, tmp_path, load_masks, find_snapshot) -> None:
    """Seed 002's random baselines under IMP: Algorithm A1 finds every mask from θ0 (line 6);
    each level's mask is evaluated from the same new random weights."""
    recipe = make_recipe("prune.method=imp", "prune.levels=2", "prune.masks_from=find", "eval.rewind=reinit", "eval.epochs=1")
    starts = {}
    original = Session.train

    def watched(self, phase, config, **kwargs):
        if phase not in self.journal["done"]:
            starts[phase] = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        return original(self, phase, config, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Session, "train", watched)
        seed = run_recipe(recipe, tmp_path, progress=False) / "seed-0"
    init = find_snapshot(tmp_path, recipe, "init")
    level_1 = load_masks(seed / "masks" / "level-1" / "prune.safetensors")
    for name, value in starts["level-2/find"].items():
        expected = init[name] * level_1[name] if name in level_1 else init[name]
        assert torch.equal(value, expected), name  # the find training starts from θ0
    kept = load_masks(seed / "masks" / "level-2" / "prune.safetensors")
    for name, mask in kept.items():
        assert torch.equal(starts["level-1/eval"][name][mask], starts["level-2/eval"][name][mask]), name
        assert not torch.equal(starts["level-2/eval"][name][mask], init[name][mask]), name


def test_reinit_with_masks_found_by_the_retraining_is_refused(make_recipe) -> None:
    with pytest.raises(RecipeError, match="use prune.masks_from: find"):
        make_recipe("prune.method=imp", "prune.levels=2", "eval.rewind=reinit")
