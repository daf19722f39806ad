"""``find.stop_epoch``: the find phase stops after that many epochs of its LR schedule, which
stays ``find.epochs`` long, and the mask is found there (seed 002's Figure 9: pruning at
epoch 50 or 70 of 110). The tiny runs' find phase is 3 epochs of 8 steps, cosine from 0.1."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from prunelab.cli import main
from prunelab.config import RecipeError, load_recipe
from prunelab.config.schema import unread_settings
from prunelab.runs.runner import FIND_CACHE, find_key, run_recipe

EARLY = ["prune.sparsity=0.8", "eval.epochs=1"]


def seed_file(run: Path, name: str):
    return json.loads((run / "seed-0" / name).read_text())


def cosine(steps: int, total: int) -> list[float]:
    """The find phase's LR at each of its first ``steps`` steps: cosine from 0.1 to 0 over ``total``."""
    return [0.1 * (1 + math.cos(math.pi * step / total)) / 2 for step in range(steps)]


def test_the_find_phase_trains_the_first_epochs_of_its_whole_schedule(make_recipe, shared_out, find_weights, capsys) -> None:
    # find batches of 250 (16 steps an epoch) unlike eval's 500: the find phase counts its own steps
    small = [*EARLY, "find.batch_size=250"]
    full = run_recipe(make_recipe(*small, "find.lpr_every=2"), shared_out, progress=False)
    early = run_recipe(make_recipe(*small, "find.stop_epoch=2"), shared_out, progress=False)
    assert seed_file(early, "lr_log.json")["find"] == pytest.approx(cosine(2 * 16, 3 * 16))
    assert [row["epoch"] for row in seed_file(early, "metrics.json") if row["phase"] == "find"] == [1, 2]
    # the same two epochs as the whole training's first two: its weights then are the ones pruned
    full_find = shared_out / FIND_CACHE / find_key(make_recipe(*small, "find.lpr_every=2"), torch.device("cpu"))
    kept = load_file(str(full_find / "seed-0" / "snapshots" / "find-epoch-2.safetensors"))
    found = find_weights(shared_out, make_recipe(*small, "find.stop_epoch=2"))
    assert found.keys() == kept.keys() and all(torch.equal(found[k], kept[k]) for k in kept)
    record = seed_file(full, "events.json")["prune"]["lpr_during_find"]
    assert record["epochs"][1] == 2
    lpr_at_2 = {layer: ratios[1] for layer, ratios in record["layer_sparsity"].items()}
    assert seed_file(early, "events.json")["prune"]["layer_sparsity"] == pytest.approx(lpr_at_2, abs=1e-12)
    assert main(["show", str(early)]) == 0
    assert "2 epochs of pretraining (the find phase, stopped there in its 3-epoch LR schedule)" in capsys.readouterr().out


def test_a_stop_within_the_warmup_prunes_while_the_lr_still_rises(make_recipe, shared_out) -> None:
    """The warmup belongs to the whole 3-epoch schedule: a stop after its first of 2 epochs trains that epoch's ramp."""
    early = run_recipe(make_recipe(*EARLY, "find.batch_size=250", "find.stop_epoch=1", "find.lr_schedule.warmup_epochs=2"), shared_out, progress=False)
    ramp = [(step + 1) / 32 for step in range(16)]  # 2 epochs of 16 steps, linearly from 0
    assert seed_file(early, "lr_log.json")["find"] == pytest.approx([lr * r for lr, r in zip(cosine(16, 3 * 16), ramp)])


def test_imp_finds_every_level_s_mask_early(make_recipe, shared_out, steps_per_epoch) -> None:
    recipe = make_recipe("prune.method=imp", "prune.rate=0.5", "prune.levels=2", "prune.masks_from=find",
                         "eval.epochs=1", "find.stop_epoch=1")  # fmt: skip
    run = run_recipe(recipe, shared_out, progress=False)
    rows = seed_file(run, "metrics.json")
    assert [row["phase"] for row in rows if row["phase"].endswith("find")] == ["find", "level-2/find"]
    for phase in ("find", "level-2/find"):  # the first epoch of the 3-epoch schedule, each time
        assert seed_file(run, "lr_log.json")[phase] == pytest.approx(cosine(steps_per_epoch, 3 * steps_per_epoch))


def test_scratch_e_counts_the_epochs_the_find_phase_trained(make_recipe, shared_out) -> None:
    recipe = make_recipe(*EARLY, "find.stop_epoch=1", "eval.rewind=reinit", "eval.budget=scratch_e")
    assert seed_file(run_recipe(recipe, shared_out, progress=False), "events.json")["eval/budget"]["epochs"] == 1 + 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["find.stop_epoch=4"], r"find.stop_epoch=4 lies past the end of the find phase's LR schedule \(find.epochs=3\)"),
        (["find.stop_epoch=0"], r"eval.lr_policy: llr derives the retraining LR .* but find.stop_epoch is 0"),
        (["find.stop_epoch=1", "eval.lr_policy=lrw"], "lrw replays the last eval.epochs=2 epochs of the find phase, which trains only find.stop_epoch=1"),
        (["find.stop_epoch=1", "eval.rewind=epoch:2"], r"eval.rewind=epoch:2 lies past the end of the find phase \(find.stop_epoch=1\)"),
        (["find.stop_epoch=1", "find.lr_schedule.warmup_epochs=4"], r"warmup_epochs=4.0 is longer than the find phase \(find.epochs=3\)"),
        (["find.stop_epoch=-1"], "find.stop_epoch"),
    ],
)
def test_a_stop_past_the_schedule_is_a_recipe_error(make_recipe, overrides, message) -> None:
    with pytest.raises(RecipeError, match=message):
        make_recipe(*overrides)


def test_late_rewinding_past_the_stop_is_an_error_before_training(make_recipe, tmp_path) -> None:
    recipe = make_recipe("find.stop_epoch=1", "eval.rewind=step:9")  # the 9th step lies in the second epoch
    with pytest.raises(ValueError, match=r"eval.rewind=step:9 lies past the end of the find phase \(1 epoch of 8 steps\)"):
        run_recipe(recipe, tmp_path, progress=False)
    assert not list(tmp_path.iterdir())


def test_a_stop_at_the_end_shares_the_find_phase_and_is_compared_by_what_it_trained(make_recipe) -> None:
    from prunelab.report.setups import training_settings

    cpu = torch.device("cpu")
    assert find_key(make_recipe("find.stop_epoch=3"), cpu) == find_key(make_recipe(), cpu)  # all 3 epochs
    assert find_key(make_recipe("find.stop_epoch=2"), cpu) != find_key(make_recipe(), cpu)
    settings = {"find.epochs": 3, "find.stop_epoch": 2, "find.batch_size": 100}
    assert training_settings(settings, "find.") == {"find.batch_size": 100}  # the LR log and epochs record the stop


def test_bimp_does_not_read_it() -> None:
    recipe = load_recipe("bimp", ["find.stop_epoch=31"])  # past find.epochs, but bimp trains its initial_epochs
    assert "find.stop_epoch" in unread_settings(recipe)
    assert recipe.find_training.trained_epochs == recipe.prune.initial_epochs
