"""IMP with ``prune.masks_from: find`` (seed 002, Algorithm A1): every level after the first
rewinds and trains the masked model with H_find, prunes those weights, and H_eval only
evaluates each level's mask."""

from __future__ import annotations

import pytest
import torch

from prunelab.config import RecipeError
from prunelab.masks import Pruner
from prunelab.runs.runner import run_recipe
from prunelab.runs.session import Session

# H_find and H_eval differ in their LR; H_eval trains 1 epoch, H_find 3 (BASE in conftest).
A1 = ["prune.method=imp", "prune.rate=0.3", "prune.levels=2", "prune.masks_from=find", "eval.optimizer.lr=0.5",
      "eval.lr_policy=null", "eval.epochs=1"]  # fmt: skip


def run_capturing(recipe, out):
    """Run ``recipe``; keep the weights each pruning step pruned and the masks before and
    after it, the weights at the start and end of every training phase, and the weights kept
    on disk (``snapshots/``) at its start."""
    seen: dict = {"starts": {}, "ends": {}, "snapshots": {}}  # and 1, 2, ...: each pruning step
    original = Pruner.prune
    train = Session.train

    def watched_train(self, phase, config, **kwargs):
        seen["starts"][phase] = {n: p.detach().clone() for n, p in self.pruner.parameters.items()}
        seen["snapshots"][phase] = {path.name for path in (self.folder / "snapshots").glob("*.safetensors")}
        result = train(self, phase, config, **kwargs)
        seen["ends"][phase] = {n: p.detach().clone() for n, p in self.pruner.parameters.items()}
        return result

    def capturing(self, *args, **kwargs):
        weights = {name: p.detach().clone() for name, p in self.parameters.items()}
        masks = {name: m.clone() for name, m in self.masks.items()}
        result = original(self, *args, **kwargs)
        step = sum(isinstance(key, int) for key in seen) + 1
        seen[step] = (weights, masks, {name: m.clone() for name, m in self.masks.items()})
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Pruner, "prune", capturing)
        patch.setattr(Session, "train", watched_train)
        folder = run_recipe(recipe, out, progress=False)
    return folder / "seed-0", seen


@pytest.mark.parametrize("rewind", ["init", "none"])
def test_each_level_prunes_weights_trained_with_h_find(make_recipe, tmp_path, read, rewind) -> None:
    seed, seen = run_capturing(make_recipe(*A1, f"eval.rewind={rewind}"), tmp_path)
    phases = list(dict.fromkeys(row["phase"] for row in read(seed / "metrics.json")))
    assert phases == ["find", "level-1/eval", "level-2/find", "level-2/eval"]
    rows = read(seed / "metrics.json")
    find_epochs = [r for r in rows if r["phase"] == "find"]
    again = [r for r in rows if r["phase"] == "level-2/find"]
    assert len(again) == len(find_epochs) == 3  # the whole H_find schedule again
    lr_log = read(seed / "lr_log.json")
    assert lr_log["level-2/find"] == lr_log["find"]  # H_find's LR, not H_eval's 0.5
    assert max(lr_log["level-2/eval"]) == pytest.approx(0.5)

    weights, before, after = seen[2]
    # what level 2 pruned is what the H_find training left, not the H_eval retraining
    for name, value in weights.items():
        assert torch.equal(value, seen["ends"]["level-2/find"][name]), name
        assert not torch.equal(value, seen["ends"]["level-1/eval"][name]), name
    # Level 2 pruned the H_find weights: magnitude pruning of exactly them, nested in level 1's mask.
    reference = {name: w.abs().masked_fill(~before[name], -1.0) for name, w in weights.items()}
    kept = sum(int(m.sum()) for m in before.values())
    target = round((1 - 0.7**2) * sum(m.numel() for m in before.values()))
    threshold = torch.cat([r.flatten() for r in reference.values()]).sort().values[target - 1]
    for name, mask in after.items():
        assert torch.equal(mask, reference[name] > threshold), name  # no ties in trained float weights
    assert kept > sum(int(m.sum()) for m in after.values())
    events = read(seed / "events.json")
    assert events["level-2/find/rewind"] == {"rewind": rewind}
    # without rewinding, the weights each level pruned are kept for the next level's H_find, which
    # starts from them, and no longer; the last level's are not kept, as nothing trains on from them
    pruned_weights = {"level-1-pruned.safetensors"} if rewind == "none" else set()
    assert seen["snapshots"]["level-1/eval"] == {"init.safetensors", *pruned_weights}
    assert seen["snapshots"]["level-2/find"] == seen["snapshots"]["level-2/eval"] == {"init.safetensors"}


def test_level_find_starts_from_the_rewind_point(make_recipe, tmp_path, find_weights, find_snapshot) -> None:
    """init: from the initialisation; none: from the weights pruned at the previous level (the
    find phase's end, masked)."""
    starts = {}
    original = Session.train

    def watched(self, phase, config, **kwargs):
        if phase == "level-2/find" and phase not in self.journal["done"]:
            starts[phase] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return original(self, phase, config, **kwargs)

    for rewind in ("init", "none"):
        starts.clear()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Session, "train", watched)
            recipe = make_recipe(*A1, f"eval.rewind={rewind}")
            seed, seen = run_capturing(recipe, tmp_path / rewind)
        start = starts["level-2/find"]
        if rewind == "init":
            expected = find_snapshot(tmp_path / rewind, recipe, "init")
        else:
            expected = find_weights(tmp_path / rewind, recipe)
        _, _, level_1_mask = seen[1]
        for key, value in expected.items():
            mask = level_1_mask.get(key)
            torch.testing.assert_close(start[key], value * mask if mask is not None else value, rtol=0, atol=0)
        if rewind == "none":  # the find phase's end is what level 1 pruned
            weights_pruned_at_1, _, _ = seen[1]
            for name in level_1_mask:
                torch.testing.assert_close(expected[name], weights_pruned_at_1[name], rtol=0, atol=0)


def test_bimp_keeps_pruning_what_its_retraining_leaves(make_recipe) -> None:
    with pytest.raises(RecipeError, match="masks_from must be eval for bimp, which prunes the weights its retraining leaves, got find"):
        make_recipe("prune.method=bimp", "prune.masks_from=find")


def test_late_rewinding_resumes_h_find_at_step_k(make_recipe, tmp_path, read, steps_per_epoch, find_snapshot) -> None:
    """With epoch:K every level's H_find training starts from the weights kept at epoch K and
    runs the rest of the find schedule, from its LR position there: find step 8, whatever
    H_eval's batches (of 250, 16 steps an epoch) make of epoch K in eval steps."""
    recipe = make_recipe(*A1, "eval.rewind=epoch:1", "eval.epochs=2", "eval.batch_size=250")
    seed, seen = run_capturing(recipe, tmp_path)
    lr_log = read(seed / "lr_log.json")
    assert lr_log["level-2/find"] == lr_log["find"][steps_per_epoch:]
    rewound = find_snapshot(tmp_path, recipe, "rewind")
    _, _, level_1_mask = seen[1]
    starts = seen["starts"]["level-2/find"]
    for name, mask in level_1_mask.items():
        assert torch.equal(starts[name], rewound[name] * mask), name
