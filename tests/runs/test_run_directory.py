"""The run directory of a tiny default run: every file, its content, and no repeated work."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import shutil
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import prunelab
from prunelab.config import RecipeError, load_recipe, recipe_yaml, run_name
from prunelab.data import load_dataset
from prunelab.masks import Pruner
from prunelab.models import build_model
from prunelab.runs import runner
from prunelab.runs.checkpoint import save_checkpoint
from prunelab.runs.io import load_model_weights, write_csv
from prunelab.runs.lock import exclusive
from prunelab.runs.runner import FIND_CACHE, aggregate, find_key, interrupted_seeds, progress_shows, run_recipe, seed_summaries
from prunelab.runs.session import SEED_RESULTS, load_trained, seed_finished
from prunelab.schedules import Constant, Warmup
from prunelab.train import Trainer, evaluate

# The tiny run of conftest.py (recipe, run), shared with test_resume and test_damaged_files.
STEPS_PER_EPOCH = 8  # 4000 MNIST-1D training examples in batches of 500


@pytest.fixture(scope="module")
def seed0(run: Path) -> Path:
    return run / "seed-0"


def read_json(path: Path):
    return json.loads(path.read_text())


def build(recipe) -> torch.nn.Module:
    """The recipe's model, freshly initialised."""
    data = load_dataset(recipe.data.name, recipe.data.data_dir)
    return build_model(recipe.model.name, num_classes=data.num_classes, input_shape=data.input_shape, **recipe.model.options)


def test_folder_is_named_after_the_recipe(run: Path, recipe) -> None:
    assert run.name == run_name(recipe) and run.name.startswith("oneshot-mnist1d_cnn-mnist1d-")
    for name in ("recipe.yaml", "summary.json", "seed-0"):
        assert (run / name).exists(), name
    for name in ("summary.json", "metrics.csv", "metrics.json", "lr_log.json", "layer_sparsity.json",
                 "masks.safetensors", "model.safetensors", "checkpoint.safetensors"):
        assert (run / "seed-0" / name).is_file(), name
    assert not list(run.rglob("*.tmp")), "temporary files of atomic writes are left behind"


def test_recipe_yaml_reloads_to_the_same_recipe(run: Path, recipe) -> None:
    again = load_recipe(run / "recipe.yaml")
    assert again == recipe
    assert run_name(again) == run.name
    assert "lr_policy: llr" in (run / "recipe.yaml").read_text()  # every setting written out


def test_seed_summary(seed0: Path, recipe) -> None:
    summary = read_json(seed0 / "summary.json")
    for key in ("dense_acc", "pruned_acc", "final_acc", "sparsity", "parameters", "remaining_parameters", "wall_seconds"):
        assert key in summary, key
    assert summary["method"] == "oneshot" and summary["seed"] == 0
    for key in ("dense_acc", "final_acc"):
        assert 0.15 < summary[key] <= 1.0, (key, summary[key])  # above chance (10 classes) after 2 epochs
    assert 0 <= summary["pruned_acc"] < summary["final_acc"]  # retraining recovers from pruning
    assert summary["sparsity"] == pytest.approx(0.9, abs=1e-3)
    model = build(recipe)
    prunable = sum(p.numel() for p in Pruner(model).parameters.values())
    assert summary["parameters"] == sum(p.numel() for p in model.parameters())
    assert round(summary["sparsity"] * prunable) == round(0.9 * prunable)
    # counted from the saved weights: the pruned ones are exactly zero, the others (trained) not
    weights = load_file(str(seed0 / "model.safetensors"))
    zeros = sum(int((weights[name] == 0).sum()) for name in Pruner(model).parameters)
    assert zeros == round(0.9 * prunable)
    assert summary["remaining_parameters"] == summary["parameters"] - zeros
    assert isinstance(summary["wall_seconds"], float) and math.isfinite(summary["wall_seconds"])
    assert summary["total_epochs"] == recipe.find.epochs + recipe.eval.epochs  # the find phase's and the retraining's


def test_summary_accuracies_agree_with_metrics_and_weights(seed0: Path, recipe) -> None:
    summary = read_json(seed0 / "summary.json")
    rows = read_json(seed0 / "metrics.json")
    find = [r for r in rows if r["phase"] == "find"]
    evals = [r for r in rows if r["phase"] == "eval"]
    assert summary["dense_acc"] == find[-1]["test_acc"]
    assert summary["final_acc"] == evals[-1]["test_acc"]
    # retrained by an LR policy, without LR stages: TA is the mean over all its epochs
    assert summary["trainability_acc"] == pytest.approx(sum(r["train_acc"] for r in evals) / len(evals))
    # the saved final model has the final accuracy
    data = load_dataset("mnist1d", recipe.data.data_dir)
    model = build(recipe)
    model.load_state_dict(load_file(str(seed0 / "model.safetensors")))
    loss, acc = evaluate(model, data.x_test, data.y_test, torch.device("cpu"))
    assert acc == summary["final_acc"] and loss == pytest.approx(evals[-1]["test_loss"], rel=1e-5)
    # the accuracy right after pruning is the one the prune step recorded
    assert summary["pruned_acc"] == read_json(seed0 / "events.json")["prune"]["test_acc_after_prune"]


def test_run_summary_aggregates_the_seeds(run: Path, seed0: Path) -> None:
    top = read_json(run / "summary.json")
    seed = read_json(seed0 / "summary.json")
    assert top["run"] == run.name and top["method"] == "oneshot" and top["seeds"] == [0]
    for key in ("dense_acc", "pruned_acc", "final_acc", "sparsity", "parameters", "remaining_parameters", "wall_seconds"):
        assert top["stats"][key] == {"mean": pytest.approx(seed[key]), "std": 0.0}, key
    assert "seed" not in top["stats"]


def finished_seed(folder: Path, summary: dict) -> None:
    """A seed folder holding every result file a finished seed has, with this summary."""
    for name in SEED_RESULTS:
        (folder / name).write_text("{}")
    (folder / "summary.json").write_text(json.dumps(summary))


def test_a_channel_pruned_seed_without_its_channels_is_not_finished(tmp_path: Path) -> None:
    """It is run again, which rebuilds channels.json from its checkpoint; a seed of weight
    pruning has none to lack."""
    finished_seed(tmp_path, {"seed": 0, "channel_sparsity": 0.5})
    assert not seed_finished(tmp_path)
    (tmp_path / "channels.json").write_text("{}")
    assert seed_finished(tmp_path)
    finished_seed(tmp_path, {"seed": 0})
    (tmp_path / "channels.json").unlink()
    assert seed_finished(tmp_path)


@pytest.mark.parametrize("name", ["metrics.csv", "metrics.json", "lr_log.json", "layer_sparsity.json", "events.json",
                                  "masks.safetensors", "model.safetensors", "summary.json"])  # fmt: skip
def test_a_seed_lacking_any_one_of_its_result_files_is_not_finished(tmp_path: Path, name: str) -> None:
    """Each file of the layout in runner.py's docstring: a seed without it is run again,
    which rebuilds it from its checkpoint."""
    finished_seed(tmp_path, {"seed": 0})
    assert seed_finished(tmp_path)
    (tmp_path / name).unlink()
    assert not seed_finished(tmp_path)


def test_run_summary_covers_seeds_run_by_earlier_commands(recipe, tmp_path: Path) -> None:
    """The run name leaves the seeds out, so a run directory gains seeds command by command,
    listed in numerical order (seed-10's folder name sorts before seed-2's)."""
    for seed, acc in ((10, 0.7), (0, 0.5), (2, 0.6), (1, 0.6)):
        (tmp_path / f"seed-{seed}").mkdir()
        finished_seed(tmp_path / f"seed-{seed}", {"method": "oneshot", "seed": seed, "final_acc": acc})
    assert recipe.seeds == [0]
    top = aggregate(tmp_path, recipe, seed_summaries(tmp_path))
    assert top["seeds"] == [0, 1, 2, 10]
    assert top["stats"]["final_acc"] == {"mean": pytest.approx(0.6), "std": pytest.approx((0.02 / 3) ** 0.5)}  # n - 1


def test_run_summary_has_the_values_only_some_seeds_have(recipe, tmp_path: Path) -> None:
    """Seed 0 run by a version before a summary value existed, seed 3 after: the value of the
    seeds that have it, not dropped because the first seed lacks it."""
    for seed, extra in ((0, {}), (3, {"images_per_second": 1000.0})):
        (tmp_path / f"seed-{seed}").mkdir()
        finished_seed(tmp_path / f"seed-{seed}", {"seed": seed, "final_acc": 0.5, **extra})
    assert aggregate(tmp_path, recipe, seed_summaries(tmp_path))["stats"]["images_per_second"] == {"mean": 1000.0, "std": 0.0}


def test_metrics_have_one_row_per_epoch_of_each_phase(seed0: Path) -> None:
    rows = read_json(seed0 / "metrics.json")
    assert [(r["phase"], r["epoch"]) for r in rows] == [("find", 1), ("find", 2), ("eval", 1), ("eval", 2)]
    assert [r["step"] for r in rows] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH] * 2
    assert [r["sparsity"] for r in rows[:2]] == [0.0, 0.0]
    assert [r["sparsity"] for r in rows[2:]] == [pytest.approx(0.9, abs=1e-3)] * 2
    for r in rows:
        assert set(r) >= {"phase", "epoch", "step", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"}
        assert r["train_images"] == 4000 and 0 <= r["train_seconds"] <= r["seconds"]
    # the summary's throughput: every phase's training examples over the time of its steps
    images_per_second = 4 * 4000 / sum(r["train_seconds"] for r in rows)
    assert read_json(seed0 / "summary.json")["images_per_second"] == pytest.approx(images_per_second)
    with open(seed0 / "metrics.csv", newline="") as file:
        table = list(csv.DictReader(file))
    assert len(table) == len(rows)
    for line, row in zip(table, rows):
        assert list(line) == list(row)  # the columns in the order of the fields
        assert {k: str(v) for k, v in row.items()} == line


def test_metrics_csv_has_a_column_for_every_value_of_any_row(tmp_path: Path) -> None:
    """A value one phase's rows record and another's lack gets its column, in the order first
    seen, blank where a row lacks it."""
    write_csv(tmp_path / "metrics.csv", [{"phase": "find", "epoch": 1}, {"phase": "eval", "epoch": 1, "sparsity": 0.5}])
    assert (tmp_path / "metrics.csv").read_text() == "phase,epoch,sparsity\nfind,1,\neval,1,0.5\n"


def test_events_hold_the_steps_besides_training(seed0: Path) -> None:
    """The trained phases are in metrics.json and lr_log.json, not again in events.json."""
    assert list(read_json(seed0 / "events.json")) == ["prune", "eval/rewind", "eval/lr_policy"]


def test_lr_log_has_every_step_of_each_phase(seed0: Path, recipe) -> None:
    log = read_json(seed0 / "lr_log.json")
    assert list(log) == ["find", "eval"]
    assert len(log["find"]) == len(log["eval"]) == 2 * STEPS_PER_EPOCH
    # find: cosine from 0.1 down; eval: LLR, linear from the find phase's initial LR
    assert log["find"][0] == recipe.find.optimizer.lr
    assert all(a >= b for a, b in zip(log["find"], log["find"][1:])) and log["find"][-1] < 0.01
    assert log["eval"][0] == pytest.approx(recipe.find.optimizer.lr)
    assert all(a >= b for a, b in zip(log["eval"], log["eval"][1:]))
    for row in read_json(seed0 / "metrics.json"):
        assert row["lr"] == log[row["phase"]][row["step"] - 1]


def test_masks_load_into_a_pruner(seed0: Path, recipe) -> None:
    pruner = Pruner(build(recipe))
    pruner.load_state_dict(load_file(str(seed0 / "masks.safetensors")))
    assert pruner.sparsity() == read_json(seed0 / "summary.json")["sparsity"]
    assert pruner.sparsity() == pytest.approx(0.9, abs=1e-3)
    assert pruner.layer_sparsity() == {k: v["sparsity"] for k, v in read_json(seed0 / "layer_sparsity.json").items()}


def test_model_weights_are_zero_where_pruned(seed0: Path, recipe) -> None:
    weights = load_file(str(seed0 / "model.safetensors"))
    model = build(recipe)
    assert weights.keys() == model.state_dict().keys()
    pruner = Pruner(model)
    pruner.load_state_dict(load_file(str(seed0 / "masks.safetensors")))
    assert pruner.masks.keys() == pruner.parameters.keys()
    for name, mask in pruner.masks.items():
        assert torch.all(weights[name][~mask] == 0), name
        assert torch.count_nonzero(weights[name][mask]) == mask.sum(), name  # the kept ones trained


def test_layer_sparsity(seed0: Path) -> None:
    layers = read_json(seed0 / "layer_sparsity.json")
    summary = read_json(seed0 / "summary.json")
    assert list(layers) == ["features.0.weight", "features.2.weight", "features.4.weight", "classifier.0.weight"]
    for name, counts in layers.items():
        assert counts["sparsity"] == pytest.approx(1 - counts["remaining"] / counts["numel"]), name
    numel = sum(c["numel"] for c in layers.values())
    pruned = numel - sum(c["remaining"] for c in layers.values())
    assert pruned / numel == pytest.approx(summary["sparsity"])
    assert summary["parameters"] - summary["remaining_parameters"] == pruned


def test_a_finished_run_is_not_repeated(run: Path, recipe, monkeypatch: pytest.MonkeyPatch) -> None:
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "summary.json"}
    seed_summary = (run / "seed-0" / "summary.json").read_bytes()

    def no_training(self, epoch, **kwargs):
        raise AssertionError(f"trained {self.phase} epoch {epoch} again")

    monkeypatch.setattr(Trainer, "train_epoch", no_training)
    assert run_recipe(recipe, run.parent, progress=False) == run
    assert (run / "seed-0" / "summary.json").read_bytes() == seed_summary
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "summary.json"}
    assert after == before
    assert read_json(run / "summary.json")["seeds"] == [0]


def test_a_recipe_deleted_from_a_finished_run_is_written_again(run: Path, recipe, tmp_path: Path, monkeypatch) -> None:
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    (copy / "recipe.yaml").unlink()
    monkeypatch.setattr(Trainer, "train_epoch", lambda self, epoch, **_: pytest.fail("a finished run was trained again"))
    assert run_recipe(recipe, tmp_path, progress=False) == copy
    assert (copy / "recipe.yaml").read_text() == (run / "recipe.yaml").read_text()


def test_adding_a_seed_runs_only_the_new_seed(run: Path, recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(run.parent, tmp_path, dirs_exist_ok=True)  # the finished run, and any shared state
    copy = tmp_path / run.name
    seed0_before = (copy / "seed-0" / "summary.json").read_bytes()
    trained = []
    real = Trainer.train_epoch

    def recording(self, epoch, **kwargs):
        trained.append((self.seed, self.phase, epoch))
        return real(self, epoch, **kwargs)

    monkeypatch.setattr(Trainer, "train_epoch", recording)
    more = recipe.model_copy(update={"seeds": [0, 1]})
    assert run_name(more) == run.name
    assert run_recipe(more, tmp_path, progress=False) == copy
    assert trained == [(1, "find", 0), (1, "find", 1), (1, "eval", 0), (1, "eval", 1)]
    assert (copy / "seed-0" / "summary.json").read_bytes() == seed0_before
    s0, s1 = (read_json(copy / f"seed-{s}" / "summary.json") for s in (0, 1))
    assert s1["seed"] == 1
    assert (s1["dense_acc"], s1["final_acc"]) != (s0["dense_acc"], s0["final_acc"])  # another seed, another run
    top = read_json(copy / "summary.json")
    assert top["seeds"] == [0, 1]
    mean = (s0["final_acc"] + s1["final_acc"]) / 2
    assert top["stats"]["final_acc"]["mean"] == pytest.approx(mean)
    assert top["stats"]["final_acc"]["std"] == pytest.approx(abs(s0["final_acc"] - s1["final_acc"]) / 2 ** 0.5)
    assert load_recipe(copy / "recipe.yaml").seeds == [0, 1]


def test_seeds_run_in_the_order_the_recipe_gives(recipe, tmp_path: Path, monkeypatch) -> None:
    """As progress counts them (seed 3 is "1/3"), not in numerical order."""
    ran = []
    monkeypatch.setattr(runner, "run_seed", lambda folder, recipe, seed, *args, **kwargs: ran.append(seed) or True)
    data = load_dataset(recipe.data.name, recipe.data.data_dir)
    run_recipe(recipe.model_copy(update={"seeds": [3, 1, 2]}), tmp_path, progress=False, data=data)
    assert ran == [3, 1, 2]


def test_a_directory_of_other_settings_is_not_mixed_in(recipe, run: Path, tmp_path: Path) -> None:
    """A directory whose recipe reads differently today (a default changed since) takes no
    more seeds, since its summary would average two experiments, and its finished seeds are
    not passed off as this recipe's results."""
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    text = (copy / "recipe.yaml").read_text()
    assert "  criterion: magnitude\n" in text
    (copy / "recipe.yaml").write_text(text.replace("  criterion: magnitude\n", "  criterion: random\n"))
    more_seeds = recipe.model_copy(update={"seeds": [0, 1]})
    with pytest.raises(RecipeError, match=r"holds runs of other settings \(prune.criterion: 'random' there, 'magnitude' now\)"):
        run_recipe(more_seeds, tmp_path, progress=False)
    assert not (copy / "seed-1").exists()
    with pytest.raises(RecipeError, match=r"holds runs of other settings"):
        run_recipe(recipe, tmp_path, progress=False)  # nothing left to run, but not this recipe's results


def test_run_recipe_takes_a_recipe_and_says_how_to_make_one(tmp_path) -> None:
    from prunelab.runs.runner import run_recipe as exported

    with pytest.raises(TypeError, match=r"run_recipe takes a Recipe, e.g. prunelab.config.load_recipe\('gmp', \['find.epochs=5'\]\); got str"):
        exported("gmp", tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("progress", "tty", "bars"), [(None, False, False), (None, True, True), (True, False, True), (False, True, False)])
def test_progress_bars_show_on_a_terminal_unless_told(recipe, tmp_path: Path, monkeypatch, progress, tty, bars) -> None:
    """``run_recipe``'s default, as the CLI's: bars on a terminal, none in a log file."""
    shown = []
    real_init = Trainer.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        shown.append(self.progress)

    monkeypatch.setattr(Trainer, "__init__", init)
    monkeypatch.setattr("sys.stderr.isatty", lambda: tty)
    monkeypatch.setattr(runner.os, "get_terminal_size", lambda fd: os.terminal_size((120, 40)))
    run_recipe(recipe.model_copy(update={"find": recipe.find.model_copy(update={"epochs": 1})}), tmp_path, progress=progress)
    assert shown and set(shown) == {bars}


def test_runs_that_rewind_to_no_weights_of_the_find_phase_share_it(recipe) -> None:
    """Only late rewinding (epoch:K, step:K) keeps weights of the find phase; none, init and
    reinit runs can share one, as value_of_pruning.yaml's retrained and scratch arms do."""
    cpu = torch.device("cpu")
    keys = {rewind: find_key(recipe.model_copy(update={"eval": recipe.eval.model_copy(update={"rewind": rewind})}), cpu)
            for rewind in ("none", "init", "reinit", "epoch:1", "epoch:2", "step:3")}  # fmt: skip
    assert keys["none"] == keys["init"] == keys["reinit"]
    assert len({keys["none"], keys["epoch:1"], keys["epoch:2"], keys["step:3"]}) == 4


def test_load_trained_gives_the_final_model_and_its_masks(run: Path, seed0: Path, recipe) -> None:
    random_state = torch.random.get_rng_state()
    model, pruner = load_trained(run, device="cpu")
    assert torch.equal(torch.random.get_rng_state(), random_state)  # the weights come from the files
    summary = read_json(seed0 / "summary.json")
    data = load_dataset("mnist1d", recipe.data.data_dir)
    assert evaluate(model, data.x_test, data.y_test, torch.device("cpu"))[1] == summary["final_acc"]
    assert pruner.sparsity() == pytest.approx(summary["sparsity"], abs=1e-12)
    saved = load_file(str(seed0 / "model.safetensors"))
    assert all(torch.equal(value, saved[key]) for key, value in model.state_dict().items())
    with pytest.raises(FileNotFoundError, match=r"has no finished seed 7; its finished seeds: \[0\]"):
        load_trained(run, seed=7)
    with pytest.raises(FileNotFoundError, match="is not a run directory"):
        load_trained(seed0)


def test_load_trained_gives_the_first_seed_unless_told(run: Path, recipe, tmp_path: Path) -> None:
    folder = tmp_path / run.name
    shutil.copytree(run, folder)
    shutil.copytree(folder / "seed-0", folder / "seed-5")
    doubled = {key: 2 * value for key, value in load_file(str(folder / "seed-0" / "model.safetensors")).items()}
    save_file(doubled, str(folder / "seed-5" / "model.safetensors"))
    (folder / "recipe.yaml").write_text(recipe_yaml(recipe.model_copy(update={"seeds": [0, 5]})))
    first, fifth = load_trained(folder)[0].state_dict(), load_trained(folder, seed=5)[0].state_dict()
    assert all(torch.equal(fifth[key], 2 * value) for key, value in first.items())


def test_a_run_that_reuses_a_find_phase_says_so(recipe, tmp_path, caplog) -> None:
    """Its find phase shows no training: a line of the ``prunelab`` logger says why."""
    with caplog.at_level(logging.INFO, logger="prunelab"):
        run_recipe(recipe, tmp_path, progress=False)
        first = [r.getMessage() for r in caplog.records]
        caplog.clear()
        other = run_recipe(recipe.model_copy(update={"eval": recipe.eval.model_copy(update={"epochs": 1})}), tmp_path, progress=False)
    again = [r.getMessage() for r in caplog.records]
    assert not any("trained before" in message for message in first)
    assert any(message.startswith("seed 0 find: epoch 2/2") for message in first)
    find_folder = next((tmp_path / FIND_CACHE).iterdir()) / "seed-0"
    assert f"seed 0 find: trained before, kept for every run with this find phase ({find_folder})" in again
    assert not any(message.startswith("seed 0 find: epoch") for message in again) and other.exists()


def test_weights_of_a_model_whose_builder_changed_are_a_clear_error(tiny_overrides, tmp_path) -> None:
    """Runs and find phases are named by settings, not code: a builder changed since its
    weights were saved is named, not a size mismatch from deep inside torch."""
    from torch import nn

    from prunelab.config import load_recipe
    from prunelab.models import MODELS, register
    from prunelab.runs.session import load_trained

    def define(hidden: int) -> None:
        @register("test_changing_mlp")
        def changing_mlp(num_classes, input_shape):
            """An MLP whose width the test changes."""
            return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    overrides = [o for o in tiny_overrides if not o.startswith("model.")] + ["model.name=test_changing_mlp", "model.options={}"]
    try:
        define(16)
        recipe = load_recipe(None, overrides)
        folder = run_recipe(recipe, tmp_path, progress=False)
        define(32)
        with pytest.raises(ValueError, match=r"model.safetensors holds the weights of another model than the recipe builds now "
                                             r"\(1.weight has shape \(16, 40\) in the file, \(32, 40\) in the model\)"):
            load_trained(folder)
        shutil.rmtree(folder)  # the shared find phase stays
        with pytest.raises(ValueError, match=r"\.find/.*checkpoint.safetensors holds the weights of another model"):
            run_recipe(recipe, tmp_path, progress=False)
    finally:
        MODELS.pop("test_changing_mlp", None)


def test_weights_lacking_one_of_the_model_s_are_named_as_another_model_s(tmp_path: Path) -> None:
    """A builder that gained a parameter since: the first difference named, not torch's own error."""
    saved = {"weight": torch.zeros(2, 2)}  # saved before the model had its bias
    with pytest.raises(ValueError, match=r"model.safetensors holds the weights of another model than the recipe builds now "
                                         r"\(the model's bias is not in the file\)"):
        load_model_weights(nn.Linear(2, 2), saved, tmp_path / "model.safetensors")


def test_running_a_recipe_leaves_the_caller_s_random_state_alone(recipe, tmp_path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run_recipe(recipe.model_copy(update={"eval": recipe.eval.model_copy(update={"epochs": 1})}), tmp_path, progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_a_seed_records_what_it_ran_on(seed0: Path) -> None:
    assert read_json(seed0 / "summary.json")["environment"] == {
        "device": "cpu", "threads": torch.get_num_threads(), "processes": 1, "torch": torch.__version__, "prunelab": prunelab.__version__,
    }  # fmt: skip


def test_a_run_trains_with_the_recipe_s_threads_and_gives_the_caller_s_back(recipe, tmp_path, monkeypatch) -> None:
    callers = torch.get_num_threads()
    threads = 1 if callers > 1 else 2
    seen, original = [], runner.METHODS["oneshot"]

    def oneshot(session):
        seen.append(torch.get_num_threads())
        return original(session)

    monkeypatch.setitem(runner.METHODS, "oneshot", oneshot)
    short = recipe.model_copy(update={"eval": recipe.eval.model_copy(update={"epochs": 1}), "threads": threads})
    folder = run_recipe(short, tmp_path, progress=False)
    assert seen == [threads] and torch.get_num_threads() == callers
    assert read_json(folder / "seed-0" / "summary.json")["environment"]["threads"] == threads
    assert folder.name == run_name(short.model_copy(update={"threads": None}))  # the same experiment, the same folder
    # a run that stops with an error gives the caller's threads back too
    def stop(session):
        raise RuntimeError("stopped")

    monkeypatch.setitem(runner.METHODS, "oneshot", stop)
    with pytest.raises(RuntimeError, match="stopped"):
        run_recipe(short.model_copy(update={"seeds": [1]}), tmp_path, progress=False)
    assert torch.get_num_threads() == callers


def test_one_process_s_find_key_names_no_process_count(recipe) -> None:
    """Keys of find phases trained before process counts were part of them stay valid."""
    cpu = torch.device("cpu")
    assert find_key(recipe, cpu) == find_key(recipe, cpu, processes=1) != find_key(recipe, cpu, processes=2)


def test_seeds_interrupted_over_another_process_count_are_pointed_to(recipe, tmp_path: Path) -> None:
    """Runs over N processes live in a folder of their own; a one-process run of the same
    settings starts anew, and says where the interrupted one is, which only N processes resume."""
    name = run_name(recipe)
    folders = {
        f"{name}-2proc": ["checkpoint.safetensors"],  # interrupted
        f"{name}-3proc": ["checkpoint.safetensors", *SEED_RESULTS],  # finished
        f"{name}x-2proc": ["checkpoint.safetensors"],  # of other settings
    }
    for folder, files in folders.items():
        for file in files:
            (tmp_path / folder / "seed-0").mkdir(parents=True, exist_ok=True)
            (tmp_path / folder / "seed-0" / file).write_text("{}")
    # interrupted over 4 processes in the find phase, which trains in a folder of its own, before the seed's
    (tmp_path / f"{name}-4proc").mkdir()
    find = tmp_path / FIND_CACHE / find_key(recipe, torch.device("cpu"), processes=4) / "seed-0" / "checkpoint.safetensors"
    find.parent.mkdir(parents=True)
    model = nn.Linear(2, 2)
    save_checkpoint(find, model, Pruner(model), None, {"done": {}, "phase": None})
    # and over 5, a find phase whose checkpoint a kill left damaged: interrupted too, not an error of this run
    (tmp_path / f"{name}-5proc").mkdir()
    damaged = tmp_path / FIND_CACHE / find_key(recipe, torch.device("cpu"), processes=5) / "seed-0" / "checkpoint.safetensors"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"cut short")
    with pytest.warns(UserWarning) as warned:
        run_recipe(recipe, tmp_path, progress=False)
    messages = [str(w.message) for w in warned if "interrupted" in str(w.message)]
    assert messages == [
        f"{tmp_path / (name + f'-{count}proc')} holds seeds of these settings interrupted over {count} processes; this run over 1 "
        f"starts anew in {tmp_path / name}: resume that one with as many" for count in (2, 4, 5)
    ]


def test_a_run_over_several_processes_points_to_one_interrupted_over_one_not_to_itself(recipe, tmp_path: Path, monkeypatch) -> None:
    name = run_name(recipe)
    for folder in (name, f"{name}-2proc"):  # each with an interrupted seed
        (tmp_path / folder / "seed-0").mkdir(parents=True)
        (tmp_path / folder / "seed-0" / "checkpoint.safetensors").write_text("{}")
    monkeypatch.setattr(runner, "world", lambda: SimpleNamespace(size=2))  # this run: over 2 processes
    assert runner.interrupted_elsewhere(tmp_path, recipe) == [
        f"{tmp_path / name} holds seeds of these settings interrupted over 1 process; this run over 2 starts anew in "
        f"{tmp_path / name}-2proc: resume that one with as many"
    ]


def test_a_find_phase_another_command_is_training_over_other_processes_is_not_pointed_to(recipe, tmp_path: Path) -> None:
    (tmp_path / f"{run_name(recipe)}-2proc").mkdir()
    find = tmp_path / FIND_CACHE / find_key(recipe, torch.device("cpu"), processes=2) / "seed-0"
    find.mkdir(parents=True)
    model = nn.Linear(2, 2)
    save_checkpoint(find / "checkpoint.safetensors", model, Pruner(model), None, {"done": {}, "phase": None})
    with exclusive(find, "seed 0 find"):  # as the command training it holds it
        assert runner.interrupted_elsewhere(tmp_path, recipe) == []
    assert len(runner.interrupted_elsewhere(tmp_path, recipe)) == 1


def test_a_seed_is_interrupted_in_its_shared_find_phase_until_that_phase_finishes(recipe, tmp_path: Path) -> None:
    """A find phase cut short is this run's to resume; a finished one was trained for it, or
    for another run sharing it (other pruning, say): no seed of this run is interrupted there."""
    find = tmp_path / FIND_CACHE / find_key(recipe, torch.device("cpu")) / "seed-0" / "checkpoint.safetensors"
    find.parent.mkdir(parents=True)
    model = nn.Linear(2, 2)
    save_checkpoint(find, model, Pruner(model), None, {"done": {}, "phase": None})
    assert interrupted_seeds(tmp_path, recipe) == [0]
    save_checkpoint(find, model, Pruner(model), None, {"done": {"find": {}}, "phase": None})
    assert interrupted_seeds(tmp_path, recipe) == []


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return 2


@pytest.mark.parametrize(("size", "shows"), [((120, 40), True), ((0, 0), False), ((120, 0), False)])
def test_progress_bars_show_on_a_terminal_that_reports_its_size(monkeypatch, size, shows) -> None:
    """A pseudo-terminal of 0 lines (``script``, some containers) gets the log lines: tqdm draws nothing there."""
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr(sys, "stderr", _Terminal())
    monkeypatch.setattr(runner.os, "get_terminal_size", lambda fd: os.terminal_size(size))
    assert progress_shows() is shows
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a pipe or a file
    assert progress_shows() is False


def test_a_model_that_does_not_fit_the_data_is_said_before_training(tiny_overrides: list[str], tmp_path: Path) -> None:
    # Each trained without a word (too many outputs) or failed at the first step with a traceback from inside torch.
    from prunelab.models import MODELS, register as register_model

    @register_model("test_wide_input")
    def wide_input(num_classes, input_shape):
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1] + 1, num_classes))

    @register_model("test_extra_outputs")
    def extra_outputs(num_classes, input_shape):
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], num_classes + 2))

    @register_model("test_pair")
    def pair(num_classes, input_shape):
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], num_classes), nn.Unflatten(1, (1, num_classes)))

    batch = "model '{}' on a batch of dataset 'mnist1d' (inputs of shape (2, 1, 40), float32)"
    cases = [
        ("test_wide_input", batch.format("test_wide_input") + " fails: RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x40 and 41x10)"),
        ("test_extra_outputs", batch.format("test_extra_outputs") + " returns torch.float32 scores of shape (2, 12); "
                                                                     "training needs floating-point scores of shape (2, 10), one per class of the dataset's 10"),
        ("test_pair", batch.format("test_pair") + " returns torch.float32 scores of shape (2, 1, 10); training needs floating-point scores of shape (2, 10)"),
    ]  # fmt: skip
    try:
        for name, message in cases:
            with pytest.raises(RecipeError) as caught:
                runner.check_plan([("", load_recipe(None, [*tiny_overrides, f"model.name={name}", "model.options={}"]))], tmp_path)
            assert str(caught.value).startswith(message)
        assert not any(tmp_path.iterdir())
    finally:
        for name, _ in cases:
            MODELS.pop(name)


def test_an_error_in_the_users_code_names_the_users_line(tiny_overrides: list[str], tmp_path: Path) -> None:
    # Not the line inside torch (or prunelab's own checks) that raised it.
    from prunelab.data import DATASETS, Dataset, register
    from prunelab.models import MODELS, register as register_model

    class Unflattened(nn.Module):
        def __init__(self, num_classes: int) -> None:
            super().__init__()
            self.fc = nn.Linear(10, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    @register_model("test_unflattened")
    def unflattened(num_classes, input_shape):
        return Unflattened(num_classes)

    @register("test_column_labels")
    def column_labels(data_dir, download):
        x, y = torch.zeros(8, 1, 40), torch.zeros(8, 1, dtype=torch.long)
        return Dataset("column", x, y, x, y, num_classes=10)

    forward_line = Unflattened.forward.__code__.co_firstlineno + 1
    try:
        for overrides, where in [(["model.name=test_unflattened"], forward_line),
                                 (["data.name=test_column_labels", "model.name=mlp"], column_labels.__code__.co_firstlineno + 3)]:  # fmt: skip
            with pytest.raises(RecipeError) as caught:
                runner.check_plan([("", load_recipe(None, [*tiny_overrides, *overrides, "model.options={}"]))], tmp_path)
            assert str(caught.value).endswith(f"({__file__}, line {where})")
    finally:
        MODELS.pop("test_unflattened")
        DATASETS.pop("test_column_labels")


def test_a_misspelt_attribute_or_key_in_the_users_model_names_the_users_line(tiny_overrides: list[str], tmp_path: Path) -> None:
    # Both left a traceback: only TypeError, ValueError and RuntimeError (and IndexError in a forward) were said in one line.
    from prunelab.models import MODELS, register as register_model

    class Misspelt(nn.Module):
        def __init__(self, num_classes: int) -> None:
            super().__init__()
            self.fc = nn.Linear(40, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc1(x.flatten(1))

    @register_model("test_misspelt")
    def misspelt(num_classes, input_shape):
        return Misspelt(num_classes)

    @register_model("test_keyed")
    def keyed(num_classes, input_shape):
        return {"mlp": nn.Linear(40, num_classes)}["mpl"]

    keyed_line = keyed.__code__.co_firstlineno + 2  # a decorated function's first line is its decorator's
    cases = [("test_misspelt", "fails: AttributeError: ", Misspelt.forward.__code__.co_firstlineno + 1),
             ("test_keyed", "cannot be built for input_shape (1, 40) with no options: KeyError: 'mpl'", keyed_line)]  # fmt: skip
    try:
        for name, message, line in cases:
            with pytest.raises(RecipeError) as caught:
                runner.check_plan([("", load_recipe(None, [*tiny_overrides, f"model.name={name}", "model.options={}"]))], tmp_path)
            assert message in str(caught.value) and str(caught.value).endswith(f"({__file__}, line {line})")
    finally:
        for name, _, _ in cases:
            MODELS.pop(name)


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_an_augmentation_that_changes_the_shape_or_a_model_with_empty_or_nan_weights_is_said_before_training(
    tiny_overrides: list[str], tmp_path: Path
) -> None:
    import dataclasses

    from prunelab.data import DATASETS, register
    from prunelab.models import MODELS, register as register_model

    @register("test_cropping", augmented=True)
    def cropping(data_dir, download):
        return dataclasses.replace(load_dataset("mnist1d", data_dir), augment=lambda x, generator: x[..., :20])

    @register("test_failing", augmented=True)
    def failing(data_dir, download):
        return dataclasses.replace(load_dataset("mnist1d", data_dir), augment=lambda x, generator: x[:, 5])

    @register_model("test_empty")
    def empty(num_classes, input_shape):
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], 0), nn.Linear(0, num_classes))

    @register_model("test_causal")  # a buffer of -inf, as attention masks are: no weight of it
    def causal(num_classes, input_shape):
        model = nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], num_classes))
        model.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(4))
        return model

    @register_model("test_nan")
    def nan(num_classes, input_shape):
        model = nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], num_classes))
        torch.nn.init.constant_(model[1].bias, float("inf"))
        return model

    try:
        cases = [
            (["data.name=test_cropping", "model.name=mlp", "model.options={}"],
             "data.augment: the augmentation of dataset 'test_cropping' returns (2, 1, 20) for a batch of shape (2, 1, 40); "
             "it must return the batch's shape (or set data.augment: false)"),
            (["data.name=test_failing", "model.name=mlp", "model.options={}"],
             "data.augment: the augmentation of dataset 'test_failing' fails on a batch of shape (2, 1, 40): IndexError: "
             f"index 5 is out of bounds for dimension 1 with size 1 ({__file__}, line {failing.__code__.co_firstlineno + 2})"),
            (["model.name=test_empty", "model.options={}"], "model: its prunable weights hold no values (1.weight, 2.weight): nothing to prune"),
            (["model.name=test_nan", "model.options={}"],
             "model 'test_nan' is built with NaN or infinite values in 1.bias: no training can start from them; see its builder or weight scheme"),
        ]  # fmt: skip
        for overrides, message in cases:
            with pytest.raises(RecipeError) as caught:
                runner.check_plan([("", load_recipe(None, [*tiny_overrides, *overrides]))], tmp_path)
            assert str(caught.value) == message
        assert not any(tmp_path.iterdir())
        runner.check_plan([("", load_recipe(None, [*tiny_overrides, "model.name=test_causal", "model.options={}"]))], tmp_path)
    finally:
        DATASETS.pop("test_cropping")
        DATASETS.pop("test_failing")
        MODELS.pop("test_empty")
        MODELS.pop("test_nan")
        MODELS.pop("test_causal")


@pytest.mark.parametrize("loadavg, own, threads, cores, warned", [
    ("2.10 1.50 1.00 3/90 123", "RS", 2, 2, True),   # another command's two threads spinning beside this one's reading
    ("2.10 1.50 1.00 2/90 123", "RR", 2, 2, False),  # both this process's own: one still spinning after its last op
    ("2.10 1.50 1.00 1/90 123", "RS", 2, 2, False),  # busy a minute ago, idle now
    ("0.40 0.30 0.20 3/90 123", "RS", 2, 2, False),  # a moment's spike
    ("2.10 1.50 1.00 3/90 123", "RS", 1, 2, False),  # one thread waits for none
    ("2.10 1.50 1.00 3/90 123", "RS", 2, 4, False),  # 2 + 2 threads on 4 cores: each has a core of its own
    ("2.10 1.50 1.00 3/90 123", "RS", 3, 4, True),   # 2 + 3 on 4: one too many
])  # fmt: skip
def test_threads_on_busy_cores_are_warned_about_once(loadavg, own, threads, cores, warned, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(runner.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(runner.torch.cuda, "is_available", lambda: False)
    (tmp_path / "loadavg").write_text(loadavg)
    for i, state in enumerate(own):  # this process's threads: running (R) or sleeping (S)
        (tmp_path / "task" / str(i)).mkdir(parents=True)
        (tmp_path / "task" / str(i) / "stat").write_text(f"{100 + i} (python (x)) {state} 1 2 3")
    monkeypatch.setattr(runner, "LOADAVG", tmp_path / "loadavg")
    monkeypatch.setattr(runner, "OWN_THREADS", tmp_path / "task")
    runner.warn_of_busy_cores.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with runner.cpu_threads(threads):
            pass
        with runner.cpu_threads(threads):
            pass
    messages = [str(w.message) for w in caught]
    expected = [f"the CPU is busy (2 threads of other processes running on {cores} cores, load 2.1) and torch runs {threads} threads, "
                "which wait for each other by spinning: threads=1 (--set threads=1) can train several times faster "
                "(the results may differ in their last bits)"]
    assert messages == (expected if warned else [])
    runner.warn_of_busy_cores.cache_clear()


def test_threads_on_busy_cores_are_not_warned_about_where_cuda_trains(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(runner.torch.cuda, "is_available", lambda: True)
    (tmp_path / "loadavg").write_text("5.00 5.00 5.00 6/90 123")
    monkeypatch.setattr(runner, "LOADAVG", tmp_path / "loadavg")
    runner.warn_of_busy_cores.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with runner.cpu_threads(2):
            pass
    runner.warn_of_busy_cores.cache_clear()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_torch_cannot_see_is_a_recipe_error_before_any_arm_trains(tiny_overrides: list[str], tmp_path: Path) -> None:
    """Checked with the other settings of every recipe of a sweep, before the first trains (and
    over several processes by each alike, so that the main one says it once)."""
    recipes = [("arm=a", load_recipe(None, [*tiny_overrides, "prune.sparsity=0.5"])),
               ("arm=b", load_recipe(None, [*tiny_overrides, "prune.sparsity=0.6", "device=cuda"]))]  # fmt: skip
    with pytest.raises(RecipeError, match=r"^\[arm=b\] device: cuda was asked for, but torch sees no CUDA device"):
        runner.check_plan(recipes, tmp_path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [  # the tiny CNN prunes 40 + 192 + 192 + 400 = 824 weights; 0.5 of one rounds to none
        (["prune.scope=global", "prune.sparsity=0.0006"],
         "prune.sparsity=0.0006 rounds to none of the 824 prunable weights, so the run would prune nothing; 0.00121 prunes one"),
        (["prune.sparsity=0.0012"],  # 0.48 of the largest layer's 400
         "prune.sparsity=0.0012 rounds to no weight in any prunable layer (the largest has 400), so the run would prune nothing; 0.0025 prunes one"),
        (["prune.scope=global", "prune.method=imp", "prune.rate=1.0e-4", "prune.levels=4"],  # 1 - 0.9999^4 of 824: 0.33
         "prune.levels=4 at prune.rate=0.0001 reach a sparsity of 0.0004, which rounds to none of the 824 prunable weights"),
        (["prune.scope=ratios", "prune.ratios={classifier: 0.001}"],
         "prune.ratios round to no weight of their layers (classifier.0.weight: 0.001 of 400), so the run would prune nothing"),
        (["model.options.batch_norm=true", "prune.criterion=bn_scale", "prune.scope=global", "prune.sparsity=0.02"],  # 0.48 of 3 x 8 channels
         "prune (criterion bn_scale): prune.sparsity=0.02 rounds to none of the 24 channels of the prunable groups, so the run would prune nothing"),
    ],
    ids=["global", "layerwise", "imp-levels", "ratios", "channels"],
)
def test_a_sparsity_that_rounds_to_no_weight_is_refused_before_training(tiny_overrides: list[str], tmp_path: Path, overrides, message) -> None:
    """A run that asks to prune but would prune nothing is the dense model under a pruning run's name."""
    with pytest.raises(RecipeError) as caught:
        runner.check_plan([("", load_recipe(None, [*tiny_overrides, *overrides]))], tmp_path)
    assert message in str(caught.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "overrides",
    [["prune.scope=global", "prune.sparsity=0.0007"], ["prune.sparsity=0.0013"], ["prune.sparsity=0"], ["prune.scope=ratios", "prune.ratios={classifier: 0}"],
     ["model.options.batch_norm=true", "prune.criterion=bn_scale", "prune.scope=global", "prune.sparsity=0.03"]],
    ids=["global-one-weight", "layerwise-one-weight", "zero", "zero-ratio", "one-channel"],
)
def test_a_sparsity_that_prunes_a_weight_or_none_by_design_is_run(tiny_overrides: list[str], tmp_path: Path, overrides) -> None:
    assert runner.check_plan([("", load_recipe(None, [*tiny_overrides, *overrides]))], tmp_path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [  # the tiny run's epochs are 8 steps (4000 examples in batches of 500)
        (["find.lr_schedule.warmup_epochs=0.1"], "find.lr_schedule.warmup_epochs=0.1 of an epoch's 8 optimizer steps rounds to 1"),
        (["eval.lr_policy=null", "eval.lr_schedule.warmup_epochs=0.05"], "eval.lr_schedule.warmup_epochs=0.05 of an epoch's 8 optimizer steps rounds to 0"),
        (["eval.epochs=1", "eval.warmup_fraction=0.1"], "eval.warmup_fraction=0.1 of the retraining's 8 optimizer steps rounds to 1"),
        # BIMP's 3 retraining epochs over 2 levels: 2 for the first (2.4 warmup steps of 16), 1 for the last (1.2 of 8)
        (["prune.method=bimp", "eval.lr_policy=null", "prune.budget_epochs=5", "prune.initial_epochs=2", "prune.levels=2", "eval.warmup_fraction=0.15"],
         "eval.warmup_fraction=0.15 of BIMP's shortest retraining's 8 optimizer steps rounds to 1"),
    ],
    ids=["find", "eval", "policy", "bimp"],
)
def test_a_warmup_of_fewer_than_two_steps_is_refused_before_training(tiny_overrides: list[str], tmp_path: Path, overrides, message) -> None:
    assert Warmup(Constant(0.1), warmup_steps=1)(0) == 0.1  # a ramp of one step is the full LR
    with pytest.raises(RecipeError) as caught:
        runner.check_plan([("", load_recipe(None, [*tiny_overrides, *overrides]))], tmp_path)
    assert f"{message}, and a warmup of fewer than 2 steps leaves the LR as it is" in str(caught.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "overrides",
    [["find.lr_schedule.warmup_epochs=0.2"], ["eval.warmup_fraction=0.1"],  # 1.6 steps of 8, and of the 16 of eval.epochs=2: 2
     ["eval.epochs=0", "eval.warmup_fraction=0.1"], ["find.lr_schedule.warmup_epochs=0.1", "eval.lr_policy=null", "find.epochs=0"]],
    ids=["find-two-steps", "policy-two-steps", "no-retraining", "no-find-training"],
)
def test_a_warmup_of_two_steps_or_in_a_phase_that_does_not_train_is_run(tiny_overrides: list[str], tmp_path: Path, overrides) -> None:
    assert runner.check_plan([("", load_recipe(None, [*tiny_overrides, *overrides]))], tmp_path)
