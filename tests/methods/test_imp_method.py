"""Iterative magnitude pruning in real runs: exact level sparsities, nesting masks, global and
layerwise scope, rewinding (none, init, epoch:K with the LR position), resuming without
recomputing finished levels, and One Shot IMP."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from prunelab.masks import Pruner
from prunelab.methods.imp import level_targets
from prunelab.models import build_model
from prunelab.runs.io import DamagedRunError
from prunelab.runs.runner import run_recipe
from prunelab.runs.session import Session
from prunelab.train import Trainer

IMP = ["prune.method=imp", "prune.rate=0.2", "prune.sparsity=0.9", "eval.epochs=1"]


def _clone(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def run_watched(recipe, out: Path) -> SimpleNamespace:
    """Run ``recipe``, keeping the weights at the start and end of every retraining phase and
    at the end of every epoch of the find phase."""
    starts: dict[str, dict] = {}
    ends: dict[str, dict] = {}
    find_epochs: dict[int, dict] = {}
    train, checkpoint_phase = Session.train, Session._checkpoint_phase

    def watched_train(self, phase, config, **kwargs):
        if phase.endswith("/eval") and phase not in self.journal["done"]:
            starts[phase] = _clone(self.model)
        result = train(self, phase, config, **kwargs)
        if phase.endswith("/eval"):
            ends[phase] = _clone(self.model)
        return result

    def watched_checkpoint(self, trainer):
        if trainer.phase == "find":
            find_epochs[trainer.state.epoch] = _clone(self.model)
        checkpoint_phase(self, trainer)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Session, "train", watched_train)
        patch.setattr(Session, "_checkpoint_phase", watched_checkpoint)
        folder = run_recipe(recipe, out, progress=False)
    return SimpleNamespace(recipe=recipe, seed=folder / "seed-0", starts=starts, ends=ends, find_epochs=find_epochs)


def count(masks: dict[str, torch.Tensor], names) -> int:
    return sum(int((~masks[n]).sum()) for n in names)


def assert_masked_copy(actual: dict, source: dict, masks: dict) -> None:
    """``actual`` is ``source`` with the pruned entries zeroed, exactly."""
    assert actual.keys() == source.keys()
    for name, value in actual.items():
        expected = source[name] * masks[name] if name in masks else source[name]
        assert torch.equal(value, expected), name


@pytest.fixture(scope="module")
def imp_global(make_recipe, shared_out):
    return run_watched(make_recipe(*IMP, "prune.levels=3"), shared_out)


def level_masks(run, load_masks, levels: int) -> list[dict]:
    return [load_masks(run.seed / "masks" / f"level-{level}" / "prune.safetensors") for level in range(1, levels + 1)]


def test_every_level_has_exactly_the_sparsity_1_minus_0_8_to_the_level(imp_global, load_masks, numel, read) -> None:
    total = sum(numel.values())
    events = read(imp_global.seed / "events.json")
    summary = read(imp_global.seed / "summary.json")
    masks = level_masks(imp_global, load_masks, 3)
    for level in (1, 2, 3):
        expected = round((1 - 0.8**level) * total)
        assert count(masks[level - 1], numel) == expected
        assert events[f"level-{level}/prune"]["sparsity"] == expected / total
        assert summary["levels"][level - 1]["sparsity"] == expected / total
    assert "level-4/prune" not in events and len(summary["levels"]) == 3
    assert summary["sparsity"] == round(0.488 * total) / total


def test_each_level_prunes_the_rate_of_the_remaining_weights(imp_global, load_masks, numel, read) -> None:
    total = sum(numel.values())
    events = read(imp_global.seed / "events.json")
    before = 0
    for level, masks in enumerate(level_masks(imp_global, load_masks, 3), start=1):
        after = count(masks, numel)
        fraction = events[f"level-{level}/prune"]["pruned_fraction_of_remaining"]
        assert fraction == (after - before) / (total - before)
        assert abs(fraction - 0.2) <= 1 / (total - before)
        before = after


def test_masks_nest_across_levels(imp_global, load_masks, numel) -> None:
    masks = level_masks(imp_global, load_masks, 3)
    for previous, current in zip(masks, masks[1:]):
        for name in numel:
            assert not torch.any(current[name] & ~previous[name]), f"{name}: a pruned weight came back"
    final = load_masks(imp_global.seed / "masks.safetensors")
    assert all(torch.equal(final[n], masks[-1][n]) for n in numel)


def test_global_levels_prune_the_smallest_remaining_magnitudes(imp_global, shared_out, find_weights, load_masks, numel) -> None:
    masks = level_masks(imp_global, load_masks, 3)
    weights = [find_weights(shared_out, imp_global.recipe), imp_global.ends["level-1/eval"], imp_global.ends["level-2/eval"]]
    previous = {n: torch.ones(size, dtype=torch.bool) for n, size in numel.items()}
    for level, (mask, w) in enumerate(zip(masks, weights), start=1):
        new = torch.cat([w[n][previous[n].view_as(w[n]) & ~mask[n]].abs() for n in numel])
        kept = torch.cat([w[n][mask[n]].abs() for n in numel])
        assert len(new) > 0 and new.max() <= kept.min(), f"level {level}"
        previous = {n: mask[n].flatten() for n in numel}


def test_rewind_none_continues_from_the_pruned_weights(imp_global, shared_out, find_weights, load_masks) -> None:
    masks = level_masks(imp_global, load_masks, 3)
    assert_masked_copy(imp_global.starts["level-1/eval"], find_weights(shared_out, imp_global.recipe), masks[0])
    for level in (2, 3):
        assert_masked_copy(imp_global.starts[f"level-{level}/eval"], imp_global.ends[f"level-{level - 1}/eval"], masks[level - 1])


def test_levels_are_recorded_with_accuracy_after_pruning_and_after_retraining(imp_global, read) -> None:
    rows = read(imp_global.seed / "metrics.json")
    events = read(imp_global.seed / "events.json")
    summary = read(imp_global.seed / "summary.json")
    for level, record in enumerate(summary["levels"], start=1):
        phase_rows = [r for r in rows if r["phase"] == f"level-{level}/eval"]
        assert len(phase_rows) == 1
        assert record["final_acc"] == phase_rows[-1]["test_acc"]
        assert record["pruned_acc"] == events[f"level-{level}/prune"]["test_acc_after_prune"]
    assert summary["final_acc"] == summary["levels"][-1]["final_acc"]
    assert summary["pruned_acc"] == events["level-3/prune"]["test_acc_after_prune"]  # the last level's, as final_acc
    assert (imp_global.seed.parent / "levels.png").read_bytes().startswith(b"\x89PNG")  # the levels, plotted


def test_layerwise_imp_prunes_every_layer_to_the_level_sparsity(make_recipe, shared_out, load_masks, numel, read) -> None:
    run = run_watched(
        make_recipe("prune.method=imp", "prune.rate=0.5", "prune.levels=2", "prune.scope=layerwise", "eval.epochs=1"),
        shared_out,
    )
    masks = level_masks(run, load_masks, 2)
    for level, mask in enumerate(masks, start=1):
        for name, size in numel.items():
            assert int((~mask[name]).sum()) == round((1 - 0.5**level) * size), (level, name)
    # within each layer, the smallest remaining magnitudes went
    weights = run.ends["level-1/eval"]
    for name in numel:
        new = weights[name][masks[0][name] & ~masks[1][name]].abs()
        assert new.max() <= weights[name][masks[1][name]].abs().min()
        assert not torch.any(masks[1][name] & ~masks[0][name])
    layers = read(run.seed / "events.json")["level-2/prune"]["layer_sparsity"]
    assert layers == {name: round(0.75 * size) / size for name, size in numel.items()}


def test_rewind_init_restores_exactly_the_initial_weights_on_the_kept_entries(
    make_recipe, shared_out, load_masks, data, read, find_snapshot
) -> None:
    run = run_watched(make_recipe(*IMP, "prune.levels=2", "eval.rewind=init", "eval.lr_policy=null"), shared_out)
    init = find_snapshot(shared_out, run.recipe, "init")
    torch.manual_seed(0)  # the seed of the run: its model is built right after seeding
    fresh = build_model("mnist1d_cnn", num_classes=data.num_classes, input_shape=data.input_shape).state_dict()
    assert init.keys() == fresh.keys() and all(torch.equal(init[k], fresh[k]) for k in init)
    for level, masks in enumerate(level_masks(run, load_masks, 2), start=1):
        assert_masked_copy(run.starts[f"level-{level}/eval"], init, masks)
    assert read(run.seed / "events.json")["level-1/eval/rewind"] == {"rewind": "init"}


def test_late_rewinding_restores_the_weights_and_the_lr_position_of_epoch_k(
    make_recipe, shared_out, load_masks, steps_per_epoch, read, find_snapshot
) -> None:
    recipe = make_recipe(
        *IMP, "prune.levels=2", "eval.rewind=epoch:1", "eval.lr_policy=null", "eval.epochs=3",
        "eval.lr_schedule={name: cosine}",
    )
    assert recipe.eval.optimizer == recipe.find.optimizer and recipe.eval.lr_schedule == recipe.find.lr_schedule
    run = run_watched(recipe, shared_out)
    epoch1 = run.find_epochs[1]  # weights of the find phase after its first epoch
    rewind = find_snapshot(shared_out, recipe, "rewind")
    assert all(torch.equal(rewind[k], epoch1[k]) for k in epoch1)
    assert not all(torch.equal(epoch1[k], run.find_epochs[3][k]) for k in epoch1)  # it is not the end
    logs = read(run.seed / "lr_log.json")
    rows = read(run.seed / "metrics.json")
    for level, masks in enumerate(level_masks(run, load_masks, 2), start=1):
        phase = f"level-{level}/eval"
        assert_masked_copy(run.starts[phase], epoch1, masks)
        assert logs[phase][0] == logs["find"][1 * steps_per_epoch]
        assert logs[phase] == logs["find"][steps_per_epoch:]  # the rest of the original schedule
        assert [r["epoch"] for r in rows if r["phase"] == phase] == [2, 3]


def test_late_rewinding_to_a_step_inside_an_epoch_retrains_the_rest_of_the_schedule(
    make_recipe, shared_out, steps_per_epoch, read
) -> None:
    k = steps_per_epoch + 3  # three steps into the second epoch
    recipe = make_recipe(
        *IMP, "prune.levels=1", f"eval.rewind=step:{k}", "eval.lr_policy=null", "eval.epochs=3",
        "eval.lr_schedule={name: cosine}",
    )
    run = run_watched(recipe, shared_out)
    logs = read(run.seed / "lr_log.json")
    assert len(logs["find"]) == 3 * steps_per_epoch
    assert logs["level-1/eval"] == logs["find"][k:]  # exactly the steps after K, none repeated or added
    rows = [r for r in read(run.seed / "metrics.json") if r["phase"] == "level-1/eval"]
    assert [(r["epoch"], r["step"]) for r in rows] == [(2, 2 * steps_per_epoch), (3, 3 * steps_per_epoch)]


def test_late_rewinding_across_batch_sizes_resumes_at_the_same_point_of_training(
    make_recipe, shared_out, steps_per_epoch, read
) -> None:
    """Find batches of 500 (8 steps an epoch), eval batches of 250 (16): find step 11 is
    eval step 22, where the eval schedule (cosine over 3 epochs, like the find phase's)
    has the LR the find phase had at step 11."""
    recipe = make_recipe(
        *IMP, "prune.levels=1", "eval.rewind=step:11", "eval.lr_policy=null", "eval.epochs=3",
        "eval.batch_size=250", "eval.lr_schedule={name: cosine}",
    )
    run = run_watched(recipe, shared_out)
    logs = read(run.seed / "lr_log.json")
    eval_steps = 2 * steps_per_epoch
    assert len(logs["level-1/eval"]) == 3 * eval_steps - 22
    assert logs["level-1/eval"][0] == pytest.approx(logs["find"][11])
    assert logs["level-1/eval"][::2] == pytest.approx(logs["find"][11:])  # every other eval step, the find's LR


def test_late_rewinding_across_batch_sizes_keeps_the_find_weights_of_epoch_k(
    make_recipe, tmp_path, load_masks, find_snapshot, read
) -> None:
    """epoch:1 counts the find phase's epochs: with eval batches of 250 (16 steps an epoch), the
    weights kept are those after the find phase's first epoch (its step 8), not its step 16."""
    recipe = make_recipe(
        *IMP, "prune.levels=1", "eval.rewind=epoch:1", "eval.lr_policy=null", "eval.epochs=3", "eval.batch_size=250",
    )
    run = run_watched(recipe, tmp_path)  # a folder of its own: the find phase trains here, watched
    epoch1 = run.find_epochs[1]
    assert all(torch.equal(find_snapshot(tmp_path, recipe, "rewind")[k], epoch1[k]) for k in epoch1)
    assert read(run.seed / "events.json")["find/rewind-snapshot"] == {"step": 8}
    (masks,) = level_masks(run, load_masks, 1)
    assert_masked_copy(run.starts["level-1/eval"], epoch1, masks)


def test_rewinding_to_the_last_step_leaves_nothing_to_retrain_and_fails_before_training(
    make_recipe, steps_per_epoch, refused_before_training
) -> None:
    recipe = make_recipe(*IMP, f"eval.rewind=step:{2 * steps_per_epoch}", "eval.lr_policy=null", "eval.epochs=2")
    refused_before_training([(recipe, "leaves nothing to retrain")])


def test_rewinding_past_the_find_phase_is_an_error(make_recipe, tmp_path) -> None:
    with pytest.raises(ValueError, match="past the end of the find phase"):
        run_recipe(make_recipe(*IMP, "eval.rewind=epoch:4"), tmp_path, progress=False)


def test_late_rewinding_needs_retraining_epochs_after_k(make_recipe) -> None:
    """eval.epochs counts from the start of the rewound schedule: epoch:2 with eval.epochs=2
    would retrain nothing, silently. The recipe itself is refused, before any run starts."""
    with pytest.raises(ValueError, match=re.escape("eval.rewind=epoch:2 resumes the eval LR schedule at epoch 2, so eval.epochs=2 leaves nothing to retrain")):
        make_recipe(*IMP, "eval.rewind=epoch:2", "eval.lr_policy=null", "eval.epochs=2")


def crash_after(recipe, out: Path, phase: str, epoch: int) -> None:
    """Run ``recipe`` into ``out`` until ``phase`` has checkpointed ``epoch`` epochs, then crash."""
    checkpoint_phase = Session._checkpoint_phase

    def crashing(self, trainer):
        checkpoint_phase(self, trainer)
        if trainer.phase == phase and trainer.state.epoch == epoch:
            raise RuntimeError("injected crash")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Session, "_checkpoint_phase", crashing)
        with pytest.raises(RuntimeError, match="injected crash"):
            run_recipe(recipe, out, progress=False)


def test_a_finished_level_is_never_recomputed_after_a_resume(make_recipe, tmp_path, read) -> None:
    recipe = make_recipe(*IMP, "prune.levels=3", "eval.epochs=2")
    crash_after(recipe, tmp_path, "level-2/eval", 1)
    seed = next(tmp_path.glob("imp-*")) / "seed-0"
    assert not (seed / "summary.json").exists()
    level1 = seed / "masks" / "level-1" / "prune.safetensors"
    level1_bytes, level1_mtime = level1.read_bytes(), level1.stat().st_mtime_ns

    epochs: dict[str, int] = {}
    prunes: list[float] = []
    train_epoch, prune = Trainer.train_epoch, Pruner.prune

    def counted_epoch(self, epoch, **kwargs):
        epochs[self.phase] = epochs.get(self.phase, 0) + 1
        return train_epoch(self, epoch, **kwargs)

    def counted_prune(self, sparsity=None, **kwargs):
        prunes.append(sparsity)
        return prune(self, sparsity, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "train_epoch", counted_epoch)
        patch.setattr(Pruner, "prune", counted_prune)
        run_recipe(recipe, tmp_path, progress=False)
    assert epochs == {"level-2/eval": 1, "level-3/eval": 2}  # find and level 1 did not train again
    assert prunes == [pytest.approx(1 - 0.8**3)]  # only level 3 was pruned
    assert level1.read_bytes() == level1_bytes and level1.stat().st_mtime_ns == level1_mtime
    rows = read(seed / "metrics.json")
    assert [r["phase"] for r in rows] == ["find"] * 3 + ["level-1/eval"] * 2 + ["level-2/eval"] * 2 + ["level-3/eval"] * 2
    assert len(read(seed / "summary.json")["levels"]) == 3


@pytest.mark.parametrize("k", ["epoch:1", "epoch:3"], ids=["within-find", "at-its-end"])
def test_a_lost_rewind_snapshot_is_a_damaged_run_not_replaced_by_later_weights(make_recipe, tmp_path, k) -> None:
    """Late rewinding's weights, lost after the find phase (here: after level 1), are never
    taken from the model as it then is, pruned and retrained."""
    recipe = make_recipe(*IMP, "prune.levels=2", f"eval.rewind={k}", "eval.lr_policy=null", "eval.epochs=4")
    crash_after(recipe, tmp_path, "level-1/eval", 4)
    snapshot = next(tmp_path.glob("imp-*")) / "seed-0" / "snapshots" / "rewind.safetensors"
    snapshot.unlink()
    with pytest.raises(DamagedRunError, match=re.escape(str(snapshot))):
        run_recipe(recipe, tmp_path, progress=False)


def test_a_checkpoint_of_an_earlier_version_resumes_with_its_optimizer_state(make_recipe, tmp_path, read) -> None:
    """An interrupted phase's checkpoint from before the rewind snapshot was a unit of its own:
    the unit, replayed first, must not write a checkpoint without the phase's momentum."""
    recipe = make_recipe(*IMP, "prune.levels=1", "eval.rewind=epoch:1", "eval.lr_policy=null", "eval.epochs=4")
    uninterrupted = read(run_recipe(recipe, tmp_path / "whole", progress=False) / "seed-0" / "summary.json")
    crash_after(recipe, tmp_path / "cut", "level-1/eval", 2)
    checkpoint = next((tmp_path / "cut").glob("imp-*")) / "seed-0" / "checkpoint.safetensors"
    with safe_open(str(checkpoint), framework="pt") as file:
        tensors, metadata = {key: file.get_tensor(key) for key in file.keys()}, file.metadata()
    journal = json.loads(metadata["journal"])
    del journal["done"]["find/rewind-snapshot"]  # as the earlier version wrote it
    save_file(tensors, str(checkpoint), metadata={**metadata, "journal": json.dumps(journal)})
    before = checkpoint.read_bytes()
    with pytest.MonkeyPatch.context() as patch:  # killed again before the resumed phase's next checkpoint
        patch.setattr(Trainer, "train_epoch", lambda self, epoch, **_: pytest.fail("stop") if self.phase == "level-1/eval" else None)
        with pytest.raises(pytest.fail.Exception):
            run_recipe(recipe, tmp_path / "cut", progress=False)
    assert checkpoint.read_bytes() == before
    resumed = read(run_recipe(recipe, tmp_path / "cut", progress=False) / "seed-0" / "summary.json")
    assert (resumed["pruned_acc"], resumed["final_acc"]) == (uninterrupted["pruned_acc"], uninterrupted["final_acc"])


def test_one_shot_imp_is_one_level_and_prunes_like_oneshot(make_recipe, shared_out, load_masks, numel, read) -> None:
    imp_run = run_watched(make_recipe("prune.method=imp", "prune.levels=1", "prune.rate=0.9", "prune.sparsity=0.9"), shared_out)
    oneshot_seed = run_recipe(make_recipe("prune.method=oneshot", "prune.sparsity=0.9"), shared_out, progress=False) / "seed-0"
    events = read(imp_run.seed / "events.json")
    assert sorted(k for k in events if k.startswith("level-")) == ["level-1/eval/lr_policy", "level-1/eval/rewind", "level-1/prune"]
    masks = load_masks(imp_run.seed / "masks" / "level-1" / "prune.safetensors")
    assert count(masks, numel) == round(0.9 * sum(numel.values()))
    oneshot_masks = load_masks(oneshot_seed / "masks" / "prune.safetensors")
    assert all(torch.equal(masks[n], oneshot_masks[n]) for n in numel)  # same find phase, same cut
    assert events["level-1/prune"]["test_acc_after_prune"] == read(oneshot_seed / "events.json")["prune"]["test_acc_after_prune"]
    assert len(read(imp_run.seed / "summary.json")["levels"]) == 1


@pytest.mark.parametrize(
    ("rate", "target", "levels", "expected"),
    [
        (0.2, 0.6, None, [0.2, 0.36, 0.488, 0.5904, 0.6]),  # until the target, the last one capped
        (0.2, 0.9, 3, [0.2, 0.36, 0.488]),
        (0.9, 0.9, 1, [0.9]),                               # One Shot IMP
        (0.5, 0.7, 3, [0.5, 0.75, 0.875]),                  # levels given: the target is not used
    ],
)
def test_level_targets(rate, target, levels, expected) -> None:
    assert level_targets(rate, target, levels) == pytest.approx(expected, abs=1e-12)


def test_summaries_take_the_last_epoch_of_each_phase(make_recipe, tmp_path, read) -> None:
    recipe = make_recipe("prune.method=imp", "prune.levels=2", "eval.epochs=2", "eval.lr_policy=null")
    seed = run_recipe(recipe, tmp_path, progress=False) / "seed-0"
    rows, summary = read(seed / "metrics.json"), read(seed / "summary.json")
    assert summary["dense_acc"] == [r for r in rows if r["phase"] == "find"][-1]["test_acc"]
    for level, record in enumerate(summary["levels"], start=1):
        phase_rows = [r for r in rows if r["phase"] == f"level-{level}/eval"]
        assert len(phase_rows) == 2 and record["final_acc"] == phase_rows[-1]["test_acc"]
    assert summary["final_acc"] == [r for r in rows if r["phase"] == "level-2/eval"][-1]["test_acc"]


def test_rewinding_to_the_end_of_the_find_phase(make_recipe, tmp_path, load_masks) -> None:
    """epoch:K with K the last find epoch: the kept weights are the find phase's last ones,
    the pruned ones (by the level's saved masks) zero, and the rest of the model as it was."""
    run = run_watched(make_recipe("prune.method=imp", "prune.levels=1", "eval.rewind=epoch:3", "eval.lr_policy=llr"), tmp_path)
    find_end = run.find_epochs[3]
    start = run.starts["level-1/eval"]
    masks = load_masks(run.seed / "masks" / "level-1" / "prune.safetensors")
    assert masks and all(not bool(mask.all()) for mask in masks.values())  # each prunable tensor lost weights
    for key, value in start.items():
        expected = find_end[key] * masks[key] if key in masks else find_end[key]
        torch.testing.assert_close(value, expected, rtol=0, atol=0)


def test_trainability_is_the_mean_training_accuracy_of_the_first_lr_stage(make_recipe, tmp_path, read) -> None:
    """Seed 004's TA of every level's retraining, over the epochs before its first milestone."""
    recipe = make_recipe(
        "prune.method=imp", "prune.levels=2", "eval.epochs=3", "eval.lr_policy=null",
        "eval.lr_schedule={name: multistep, milestones: [2]}",
    )  # fmt: skip
    seed = run_recipe(recipe, tmp_path, progress=False) / "seed-0"
    rows, summary = read(seed / "metrics.json"), read(seed / "summary.json")
    for level in summary["levels"]:
        accuracies = [r["train_acc"] for r in rows if r["phase"] == f"level-{level['level']}/eval"]
        assert len(accuracies) == 3 and level["trainability_acc"] == pytest.approx(sum(accuracies[:2]) / 2)
    assert summary["trainability_acc"] == summary["levels"][-1]["trainability_acc"]


@pytest.mark.parametrize(
    ("overrides", "first_stage"),
    [
        # late rewinding to epoch 1 of a 4-epoch schedule stepping down at epoch 3: the
        # retraining runs epochs 1-3 and its first LR stage is 2 of them
        (["eval.rewind=epoch:1", "eval.lr_policy=null", "eval.epochs=4", "eval.lr_schedule={name: multistep, milestones: [3]}"], 2),
        # rewinding to step 5 of 8-step epochs: a part of epoch 1 and epoch 2 before the milestone
        (["eval.rewind=step:5", "eval.lr_policy=null", "eval.epochs=3", "eval.lr_schedule={name: multistep, milestones: [2]}"], 2),
        # LR rewinding replays the last 3 epochs of a find schedule stepping down at epoch 2 of 3
        (["eval.lr_policy=lrw", "eval.epochs=3", "find.lr_schedule={name: multistep, milestones: [2]}"], 2),
    ],
)
def test_trainability_counts_the_first_lr_stage_of_the_retraining_itself(make_recipe, tmp_path, read, overrides, first_stage) -> None:
    seed = run_recipe(make_recipe("prune.method=imp", "prune.levels=1", *overrides), tmp_path, progress=False) / "seed-0"
    rows, summary = read(seed / "metrics.json"), read(seed / "summary.json")
    accuracies = [r["train_acc"] for r in rows if r["phase"] == "level-1/eval"]
    assert len(accuracies) == 3
    assert summary["trainability_acc"] == pytest.approx(sum(accuracies[:first_stage]) / first_stage)


@pytest.mark.parametrize("method", [["prune.method=oneshot"], [*IMP, "prune.levels=2"]], ids=["oneshot", "imp"])
def test_pruning_at_initialisation_without_any_training_finishes(make_recipe, tmp_path, read, method) -> None:
    """find.epochs=0 and eval.epochs=0: pruning a fresh model, no retraining (a baseline)."""
    recipe = make_recipe(*method, "find.epochs=0", "eval.epochs=0", "eval.lr_policy=null", "prune.scope=layerwise")
    seed = run_recipe(recipe, tmp_path, progress=False) / "seed-0"
    summary = read(seed / "summary.json")
    assert summary["dense_acc"] is None  # random weights: no dense model was trained to measure
    assert summary["final_acc"] == summary["pruned_acc"]
    assert summary["sparsity"] == pytest.approx(0.9 if "oneshot" in method[0] else 0.36, abs=1e-3)
    assert read(seed / "metrics.json") == [] and (seed / "training.png").exists()
