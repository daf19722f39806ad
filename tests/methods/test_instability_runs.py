"""``eval.instability``: a second retraining from the same start, and the error barrier between the two."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from prunelab.runs.runner import run_recipe
from prunelab.runs.session import Session


@pytest.fixture(scope="module")
def stable_run(make_recipe, shared_out: Path):
    """The run, and the model's weights at the start and end of each phase it trained."""
    recipe = make_recipe("eval.instability=true", "eval.rewind=epoch:1", "find.batch_size=100", "eval.batch_size=100")
    weights: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    train = Session.train

    def watched(self, phase, config, **kwargs):
        weights[phase, "start"] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        result = train(self, phase, config, **kwargs)
        weights[phase, "end"] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        weights["model"], weights["test"] = copy.deepcopy(self.model), (self.data.x_test, self.data.y_test)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Session, "train", watched)
        seed = run_recipe(recipe, shared_out, progress=False) / "seed-0"
    return recipe, seed, weights


def test_the_copy_starts_where_the_retraining_did_and_sees_other_batches(stable_run, read, load_masks, find_snapshot) -> None:
    recipe, seed, weights = stable_run
    rewind = find_snapshot(seed.parents[1], recipe, "rewind")
    assert read(seed / "events.json")["prune"]["sparsity"] == pytest.approx(0.9, abs=1e-3)
    # the start is the late-rewinding point with the saved masks applied
    masks = load_masks(seed / "masks.safetensors")
    assert masks and set(masks) < set(rewind)
    for name, value in rewind.items():
        expected = value * masks[name] if name in masks else value
        # both copies trained from it: the first, and the second after the first had ended
        assert torch.equal(weights["eval", "start"][name], expected), name
        assert torch.equal(weights["eval-copy", "start"][name], expected), name
    lr = read(seed / "lr_log.json")
    assert lr["eval"] == lr["eval-copy"] and len(lr["eval"]) == recipe.eval.epochs * 40  # the LR policy's schedule
    rows = read(seed / "metrics.json")
    first, copy = ([r for r in rows if r["phase"] == p] for p in ("eval", "eval-copy"))
    assert len(first) == len(copy) and first[-1]["train_loss"] != copy[-1]["train_loss"]
    # the copy measures, it is no part of the run's budget: the find phase's epochs and one retraining's
    assert read(seed / "summary.json")["total_epochs"] == recipe.find.epochs + recipe.eval.epochs == 3 + 2


def test_the_barrier_is_measured_between_the_two_ends(stable_run, read) -> None:
    _, seed, weights = stable_run
    summary, line = read(seed / "summary.json"), read(seed / "events.json")["eval/instability"]
    rows = read(seed / "metrics.json")
    copy_acc = [r for r in rows if r["phase"] == "eval-copy"][-1]["test_acc"]
    assert line["alphas"] == [i / 10 for i in range(11)]
    assert line["errors"][0] == pytest.approx(1 - summary["final_acc"])  # the run's own result
    assert line["errors"][-1] == pytest.approx(1 - copy_acc)
    # the middle of the line, by hand: the mean of the two ends' weights
    ends = weights["eval", "end"], weights["eval-copy", "end"]
    middle = weights["model"]
    middle.load_state_dict({k: (a + ends[1][k]) / 2 if a.is_floating_point() else a for k, a in ends[0].items()})
    middle.eval()
    x, y = weights["test"]
    with torch.no_grad():
        error = (middle(x).argmax(1) != y).float().mean().item()
    assert line["errors"][5] == pytest.approx(error, abs=1e-6)
    assert summary["instability"] == line["barrier"] == pytest.approx(max(line["errors"]) - (line["errors"][0] + line["errors"][-1]) / 2)
    # the run goes on from the first copy: the saved model is it
    assert torch.equal(load_file(str(seed / "model.safetensors"))["classifier.0.weight"], ends[0]["classifier.0.weight"])


@pytest.mark.filterwarnings("ignore:the pruning stage has only:UserWarning")  # a tiny GMP budget
@pytest.mark.filterwarnings("ignore:eval.epochs=1 ends with GMP's last pruning step:UserWarning")
def test_gmp_has_no_retraining_to_repeat(make_recipe, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="eval.instability is not used: GMP prunes while it trains"):
        run_recipe(make_recipe("prune.method=gmp", "eval.lr_policy=null", "eval.instability=true", "prune.pruning_epochs=1", "prune.stabilization_epochs=0",
                               "prune.updates_per_epoch=1", "eval.epochs=1"), tmp_path, progress=False)  # fmt: skip


def test_each_level_deletes_the_weights_of_its_two_copies_once_measured(make_recipe, tmp_path: Path) -> None:
    """The start and end of a level's two retrainings are kept until the barrier between them is
    recorded, not for the rest of the run: an IMP run keeps no more copies of the model at
    level 3 than at level 1."""
    kept: dict[str, set[str]] = {}
    train = Session.train

    def watched(self, phase, config, **kwargs):
        kept[phase] = {path.stem for path in (self.folder / "snapshots").glob("*.safetensors")}
        return train(self, phase, config, **kwargs)

    recipe = make_recipe("prune.method=imp", "prune.levels=3", "eval.epochs=1", "eval.instability=true")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Session, "train", watched)
        run_recipe(recipe, tmp_path, progress=False)
    # the second copy starts from the saved start, and the first copy's end waits for the measurement
    assert {"level-2-eval-start", "level-2-eval-end"} <= kept["level-2/eval-copy"]
    assert kept["level-1/eval"] == {"init", "level-1-eval-start"}
    assert kept["level-3/eval"] == {"init", "level-3-eval-start"}


def test_after_late_rewinding_the_copy_resumes_the_lr_schedule_where_the_retraining_did(make_recipe, shared_out, read, steps_per_epoch) -> None:
    """Without an LR policy, rewinding to epoch 1 also restores the LR position there: both
    copies train the rest of the schedule, from the find phase's LR after its first epoch."""
    recipe = make_recipe("eval.instability=true", "eval.rewind=epoch:1", "eval.lr_policy=null", "eval.epochs=3",
                         "eval.lr_schedule={name: cosine}")  # fmt: skip
    assert recipe.eval.lr_schedule == recipe.find.lr_schedule and recipe.eval.optimizer == recipe.find.optimizer
    seed = run_recipe(recipe, shared_out, progress=False) / "seed-0"
    lr = read(seed / "lr_log.json")
    assert lr["eval"] == lr["eval-copy"] == lr["find"][steps_per_epoch:]
    rows = read(seed / "metrics.json")
    assert [r["epoch"] for r in rows if r["phase"] == "eval-copy"] == [r["epoch"] for r in rows if r["phase"] == "eval"] == [2, 3]
