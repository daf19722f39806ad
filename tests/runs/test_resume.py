"""Resuming: an interrupted run (an exception, a failed write, ``kill -9`` at any moment) ends
with the same results as an uninterrupted one, and finished steps are not repeated."""

from __future__ import annotations

import gc
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
import weakref
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from prunelab import atomic
from prunelab.config import load_recipe, run_name
from prunelab.config.sweep import load_plan
from prunelab.masks import Pruner
from prunelab.runs import io as runs_io
from prunelab.runs import session as runs_session
from prunelab.runs import runner
from prunelab.runs.runner import FIND_CACHE, run_recipe
from prunelab.runs.session import CHECKPOINT
from prunelab.train import Trainer

# The default recipe on a tiny budget: a narrow CNN in batches of 500 (8 steps an epoch) runs
# the same code paths many times faster than the default 64 channels in batches of 100.
NARROW = ["model.options.channels=8", "find.batch_size=500", "eval.batch_size=500"]
# A large LR for its 16 steps, and layer by layer, so that it learns, no layer is emptied
# and retraining moves every layer's kept weights.
BUDGET = ["find.epochs=2", "eval.epochs=2", "device=cpu", "find.optimizer.lr=1.0", "prune.scope=layerwise", *NARROW]
EPOCHS = [("find", 0), ("find", 1), ("eval", 0), ("eval", 1)]
VOLATILE = {"seconds", "train_seconds", "wall_seconds", "images_per_second"}  # times: the only things allowed to differ


class Interrupted(Exception):
    """Stands for anything that stops a run: Ctrl-C, a crash, a full disk."""


def overrides(data_dir: Path, *extra: str) -> list[str]:
    return [*BUDGET, f"data.data_dir={data_dir}", *extra]


@pytest.fixture(scope="module")
def recipe(data_dir: Path):
    return load_recipe(None, overrides(data_dir))


@pytest.fixture(scope="module")
def reference(recipe, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run: made once a test session and shared (read only) by the test
    modules, since run_recipe of a finished run returns at once."""
    return run_recipe(recipe, tmp_path_factory.getbasetemp() / "shared-runs", progress=False)


# -- comparing runs --------------------------------------------------------------------------


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def outcome(run: Path) -> dict:
    """Everything a run produced, but wall times: JSON files, CSV columns, tensors."""
    seed = run / "seed-0"
    result: dict = {"files": sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file() and
                                    p.suffix in (".json", ".csv", ".safetensors", ".yaml"))}
    for path in sorted(seed.glob("*.json")) + [run / "summary.json"]:
        result[path.relative_to(run).as_posix()] = _strip(json.loads(path.read_text()))
    for name in ("masks.safetensors", "model.safetensors"):
        result[name] = {k: v.tolist() for k, v in load_file(str(seed / name)).items()}
    header, *rows = (seed / "metrics.csv").read_text().splitlines()
    columns = header.split(",")
    keep = [i for i, c in enumerate(columns) if c not in VOLATILE]
    result["metrics.csv"] = [[line.split(",")[i] for i in keep] for line in rows]
    return result


def assert_same_outcome(run: Path, reference: Path) -> None:
    assert run.name == reference.name
    got, expected = outcome(run), outcome(reference)
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == expected[key], f"{key} differs from the uninterrupted run"
    summary = json.loads((run / "seed-0" / "summary.json").read_text())
    assert summary["sparsity"] == pytest.approx(0.9, abs=1e-3)


# -- interrupting ------------------------------------------------------------------------------


def record_epochs(monkeypatch: pytest.MonkeyPatch, stop_at: tuple[str, int] | None = None, after_steps: int = 5) -> list:
    """Record every (phase, epoch) trained; raise ``Interrupted`` in the middle of epoch
    ``stop_at`` (after ``after_steps`` optimizer steps of it, so the weights in memory have
    moved past the last checkpoint)."""
    calls: list[tuple[str, int]] = []
    real = Trainer.train_epoch

    def train_epoch(self: Trainer, epoch: int, **kwargs):
        calls.append((self.phase, epoch))
        if (self.phase, epoch) == stop_at:
            schedule, start = self.schedule, self.state.step

            def failing(step: int) -> float:
                if step >= start + after_steps:
                    raise Interrupted(f"{self.phase} epoch {epoch}, step {step}")
                return schedule(step)

            self.schedule = failing
        return real(self, epoch, **kwargs)

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
    return calls


def test_the_reference_run_retrains_every_layer(reference: Path) -> None:
    """What the resume tests compare is a run whose retraining changes something: no layer
    is emptied, and the accuracy after retraining is not the one right after pruning."""
    seed = reference / "seed-0"
    layers = json.loads((seed / "layer_sparsity.json").read_text())
    assert all(0 < layer["sparsity"] < 1 for layer in layers.values()), layers
    summary = json.loads((seed / "summary.json").read_text())
    assert summary["final_acc"] != summary["pruned_acc"]


def test_interrupted_in_find_then_in_eval_resumes_to_the_same_result(
    recipe, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        first = record_epochs(patch, stop_at=("find", 1))
        with pytest.raises(Interrupted):
            run_recipe(recipe, tmp_path, progress=False)
    assert first == [("find", 0), ("find", 1)]
    assert not (tmp_path / reference.name / "seed-0" / "summary.json").exists()

    with monkeypatch.context() as patch:
        second = record_epochs(patch, stop_at=("eval", 1))
        with pytest.raises(Interrupted):
            run_recipe(recipe, tmp_path, progress=False)
    # find epoch 0 was finished: not trained again; epoch 1 was interrupted: trained again
    assert second == [("find", 1), ("eval", 0), ("eval", 1)]

    with monkeypatch.context() as patch:
        third = record_epochs(patch)
        run = run_recipe(recipe, tmp_path, progress=False)
    assert third == [("eval", 1)]
    assert_same_outcome(run, reference)

    with monkeypatch.context() as patch:  # and now it is finished for good
        fourth = record_epochs(patch)
        run_recipe(recipe, tmp_path, progress=False)
    assert fourth == []
    assert_same_outcome(run, reference)


def test_interrupted_while_pruning_resumes_to_the_same_result(
    recipe, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        calls = record_epochs(patch)
        real = Pruner.prune

        def prune_then_fail(self, *args, **kwargs):
            real(self, *args, **kwargs)  # the masks in memory change, then the run dies
            raise Interrupted("pruning")

        patch.setattr(Pruner, "prune", prune_then_fail)
        with pytest.raises(Interrupted):
            run_recipe(recipe, tmp_path, progress=False)
    assert calls == EPOCHS[:2]
    with monkeypatch.context() as patch:
        calls = record_epochs(patch)
        run = run_recipe(recipe, tmp_path, progress=False)
    assert calls == EPOCHS[2:]  # the find phase is not trained again
    assert_same_outcome(run, reference)


def test_wall_time_counts_the_time_before_the_interruption(recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """wall_seconds sums the interrupted and the resumed runs: resuming starts from the
    elapsed time the checkpoint recorded. The resumed run sees a stopped clock, so it adds
    nothing and the total is exactly that recorded time (a restarted count would be 0)."""
    with monkeypatch.context() as patch:
        record_epochs(patch, stop_at=("eval", 1))
        with pytest.raises(Interrupted):
            run_recipe(recipe, tmp_path, progress=False)
    seed = tmp_path / run_name(recipe) / "seed-0"
    with safe_open(str(seed / "checkpoint.safetensors"), framework="pt") as file:
        recorded = json.loads(file.metadata()["journal"])["elapsed"]
    assert recorded > 0  # find, pruning and an eval epoch took some time
    with monkeypatch.context() as patch:
        patch.setattr(runs_session, "time", SimpleNamespace(perf_counter=lambda: 1000.0))
        run_recipe(recipe, tmp_path, progress=False)
    summary = json.loads((seed / "summary.json").read_text())
    assert summary["wall_seconds"] == pytest.approx(recorded, rel=1e-9)
    with safe_open(str(seed / "checkpoint.safetensors"), framework="pt") as file:
        assert json.loads(file.metadata()["journal"])["elapsed"] == pytest.approx(recorded, rel=1e-9)


def test_each_epoch_s_checkpoint_holds_the_phase_as_it_stood_then(recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The phase state a checkpoint records at the end of epoch k holds k epochs of history
    and LRs, in the file and in the journal kept in memory, whatever later epochs add."""
    seen = []  # (epoch, the journal's phase state then, the file's)
    checkpoint = runs_session.Session._checkpoint_phase

    def watched(self, trainer: Trainer) -> None:
        checkpoint(self, trainer)
        with safe_open(str(self.folder / CHECKPOINT), framework="pt") as file:
            stored = json.loads(file.metadata()["journal"])["phase"]["state"]
            stored["lr_log"] = file.get_tensor(stored["lr_log"]["tensor"]).tolist()
        seen.append((trainer.state.epoch, self.journal["phase"]["state"], stored))

    monkeypatch.setattr(runs_session.Session, "_checkpoint_phase", watched)
    run = run_recipe(recipe, tmp_path, progress=False) / "seed-0"
    lr_log, metrics = json.loads((run / "lr_log.json").read_text()), json.loads((run / "metrics.json").read_text())
    assert [(epoch, state["epoch"]) for epoch, state, _ in seen] == [(1, 1), (2, 2), (1, 1), (2, 2)]  # find, then eval
    for (epoch, state, stored), phase in zip(seen, ["find", "find", "eval", "eval"]):
        rows = [row for row in metrics if row["phase"] == phase][:epoch]
        assert state["step"] == stored["step"] == 8 * epoch  # 4000 examples in batches of 500
        assert state["lr_log"] == stored["lr_log"] == lr_log[phase][: 8 * epoch]
        assert [row["epoch"] for row in state["history"]] == [row["epoch"] for row in stored["history"]] == [row["epoch"] for row in rows]
        assert [row["test_acc"] for row in stored["history"]] == [row["test_acc"] for row in rows]


def test_a_unit_computed_while_a_phase_waits_to_resume_is_recorded_by_the_phase_s_next_checkpoint(
    recipe, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unit missing from the journal (one a later version added before an interrupted phase)
    is computed when the method replays it, and kept: the checkpoint is not written then, as
    one without the phase's optimizer state would lose the momentum, but at the phase's next
    epoch. Killed before that epoch ends, the run computes the unit again."""
    from prunelab.data import load_dataset

    folder, data = tmp_path / "seed-0", load_dataset("mnist1d", data_dir)

    def session() -> runs_session.Session:
        return runs_session.Session(folder, recipe, 0, data, torch.device("cpu"), progress=False)

    with monkeypatch.context() as patch:
        record_epochs(patch, stop_at=("find", 1))
        with pytest.raises(Interrupted):
            session().train("find", recipe.find_training)
    computed = []

    def unit() -> dict:
        computed.append("unit")
        return {"value": 1}

    waiting = session()
    assert waiting.journal["phase"]["name"] == "find"
    assert waiting.once("unit", unit) == waiting.once("unit", unit) == {"value": 1} and computed == ["unit"]
    killed_now = session()  # what a run killed here resumes from: the phase's momentum, without the unit
    assert killed_now._optimizer_state is not None and "unit" not in killed_now.journal["done"]
    assert killed_now.once("unit", unit) == {"value": 1} and computed == ["unit", "unit"]
    with monkeypatch.context() as patch:
        trained = record_epochs(patch)
        waiting.train("find", recipe.find_training)
    assert trained == [("find", 1)]
    assert runs_session.read_journal(folder / CHECKPOINT)["done"]["unit"] == {"value": 1}


def test_a_unit_after_a_finished_phase_is_checkpointed_as_soon_as_it_is_done(recipe, data_dir: Path, tmp_path: Path) -> None:
    """Once a phase has ended, none waits to resume: a unit's result is in the checkpoint as
    soon as it is computed, and a run killed right after it (a new session on the folder)
    returns it without computing it again."""
    from prunelab.data import load_dataset

    folder, data = tmp_path / "seed-0", load_dataset("mnist1d", data_dir)
    computed = []

    def unit() -> dict:
        computed.append("unit")
        return {"value": 1}

    for _ in range(2):
        session = runs_session.Session(folder, recipe, 0, data, torch.device("cpu"), progress=False)
        session.train("find", recipe.find_training)  # the second time: finished, its recorded result
        assert session.once("unit", unit) == {"value": 1}
    assert computed == ["unit"]
    journal = runs_session.read_journal(folder / CHECKPOINT)
    assert journal["phase"] is None and journal["done"]["unit"] == {"value": 1}


def test_adam_state_survives_resuming(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Optimizer state with tensors (Adam's moments and step) and betas goes through the checkpoint."""
    adam = load_recipe(None, overrides(
        data_dir, "find.optimizer={name: adam, lr: 0.01, betas: [0.8, 0.99], weight_decay: 1.0e-4}",
        "eval.epochs=1", "eval.optimizer={name: adamw, lr: 0.01, weight_decay: 0.01}", "eval.lr_policy=ft",
    ))
    uninterrupted = run_recipe(adam, tmp_path / "reference", progress=False)
    with monkeypatch.context() as patch:
        record_epochs(patch, stop_at=("find", 1), after_steps=1)
        with pytest.raises(Interrupted):
            run_recipe(adam, tmp_path / "resumed", progress=False)
    with monkeypatch.context() as patch:
        calls = record_epochs(patch)
        run = run_recipe(adam, tmp_path / "resumed", progress=False)
    assert calls == [("find", 1), ("eval", 0)]
    assert_same_outcome(run, uninterrupted)


def test_a_resumed_phase_frees_the_optimizer_state_it_read_when_it_ends(recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The optimizer state read from the checkpoint goes into the resumed phase's optimizer and
    is freed with it, not kept for the rest of the run (SGD's momentum is a copy of the
    weights; Adam's moments, two)."""
    with monkeypatch.context() as patch:
        record_epochs(patch, stop_at=("eval", 1))
        with pytest.raises(Interrupted):
            run_recipe(recipe, tmp_path, progress=False)
    read, alive = [], {}
    load, train = runs_session.load_checkpoint, runs_session.Session.train

    def loading(path, model, pruner):
        journal, state = load(path, model, pruner)
        if state is not None:
            read.extend(weakref.ref(value) for entries in state["state"].values() for value in entries.values() if torch.is_tensor(value))
        return journal, state

    def watched(self, phase, config, **kwargs):
        result = train(self, phase, config, **kwargs)
        gc.collect()
        alive[phase] = sum(ref() is not None for ref in read)
        return result

    with monkeypatch.context() as patch:
        patch.setattr(runs_session, "load_checkpoint", loading)
        patch.setattr(runs_session.Session, "train", watched)
        run_recipe(recipe, tmp_path, progress=False)
    assert read and alive == {"find": len(read), "eval": 0}  # the momentum of every layer, until the phase has ended


def record_all_epochs(monkeypatch: pytest.MonkeyPatch, stop_after: int | None = None) -> list:
    """Like ``record_epochs``, but interrupt the ``stop_after``-th epoch trained in this run."""
    calls: list[tuple[str, int]] = []
    real = Trainer.train_epoch

    def train_epoch(self: Trainer, epoch: int, **kwargs):
        calls.append((self.phase, epoch))
        if len(calls) == stop_after:
            raise Interrupted(f"{self.phase} epoch {epoch}")
        return real(self, epoch, **kwargs)

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
    return calls


@pytest.mark.filterwarnings("ignore:the pruning stage has only:UserWarning")  # tiny GMP budgets
@pytest.mark.parametrize(
    ("source", "extra"),
    [
        ("gmp", [*NARROW, "prune.stabilization_epochs=1", "prune.pruning_epochs=1", "eval.epochs=3", "find.epochs=1"]),
        ("imp", [*NARROW, "prune.levels=2", "eval.epochs=1"]),
        ("imp", [*NARROW, "prune.levels=3", "eval.epochs=1", "prune.masks_from=find", "eval.rewind=none"]),
        ("late_rewind", [*NARROW, "prune.levels=2", "find.epochs=3", "eval.epochs=3"]),
        ("lottery", ["model.options.hidden_size=100", "find.batch_size=500", "eval.batch_size=500", "prune.levels=2", "eval.epochs=1"]),
        ("bimp", [*NARROW, "prune.budget_epochs=4", "prune.initial_epochs=2", "prune.levels=2"]),
        ("structured", [*NARROW, "eval.epochs=2"]),
        ("imp", [*NARROW, "prune.levels=2", "eval.epochs=1", "eval.instability=true"]),  # a second retraining per level
    ],
)
def test_every_method_resumes_to_the_same_result(
    source: str, extra: list[str], data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted in its middle epoch (after pruning has begun), each method resumes without
    training finished epochs again and ends as the uninterrupted run."""
    find = [] if source == "bimp" else ["find.epochs=2"]  # BIMP's find phase is its prune.initial_epochs
    plan, _ = load_plan(source, [*find, "device=cpu", f"data.data_dir={data_dir}", "seeds=[0]", *extra])
    (_, recipe), *_ = plan  # of a sweep (lottery), its first arm
    with monkeypatch.context() as patch:
        everything = record_all_epochs(patch)
        uninterrupted = run_recipe(recipe, tmp_path / "reference", progress=False)
    middle = len(everything) // 2 + 1
    with monkeypatch.context() as patch:
        first = record_all_epochs(patch, stop_after=middle)
        with pytest.raises(Interrupted):
            run_recipe(recipe, tmp_path / "resumed", progress=False)
    with monkeypatch.context() as patch:
        second = record_all_epochs(patch)
        run = run_recipe(recipe, tmp_path / "resumed", progress=False)
    assert first + second[1:] == everything and second[0] == first[-1]  # only the interrupted epoch again
    got, expected = outcome(run), outcome(uninterrupted)
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == expected[key], f"{key} differs from the uninterrupted run"


def test_a_run_from_given_weights_resumes_to_the_same_result(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Channels removed from the weights of model.weights, interrupted while retraining the
    small model: resumed from its checkpoint (the file read again only to build the model), it
    ends as the uninterrupted run."""
    given = ["find.epochs=0", "eval.epochs=2", "device=cpu", f"data.data_dir={data_dir}", "seeds=[0]", *NARROW]
    plan, _ = load_plan("structured", given)
    model = runs_session.recipe_model(plan[0][1], runs_session.recipe_data(plan[0][1]))
    with torch.no_grad():  # distinct BatchNorm scales: the channels kept are those of the file
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.weight.uniform_(-1, 1)
    save_file(model.state_dict(), tmp_path / "given.safetensors")
    ((_, recipe),), _ = load_plan("structured", [*given, f"model.weights={tmp_path / 'given.safetensors'}"])
    with monkeypatch.context() as patch:
        everything = record_all_epochs(patch)
        uninterrupted = run_recipe(recipe, tmp_path / "reference", progress=False)
    assert everything == [("eval", 0), ("eval", 1)]
    with monkeypatch.context() as patch:
        record_all_epochs(patch, stop_after=2)
        with pytest.raises(Interrupted):
            run_recipe(recipe, tmp_path / "resumed", progress=False)
    with monkeypatch.context() as patch:
        second = record_all_epochs(patch)
        run = run_recipe(recipe, tmp_path / "resumed", progress=False)
    assert second == [("eval", 1)]  # only the interrupted epoch again
    got, expected = outcome(run), outcome(uninterrupted)
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == expected[key], f"{key} differs from the uninterrupted run"


# -- failed writes -----------------------------------------------------------------------------


def matches(out: Path, destination, target: str) -> bool:
    """Is ``destination`` the file ``target`` of the run folder (``seed-0/model.safetensors``),
    or for ``*/<name>``, any file of that name under ``out`` (the shared find phase's too)?"""
    relative = Path(destination).resolve().relative_to(out.resolve()).as_posix()
    if target.startswith("*/"):
        return relative.endswith(target[1:])
    return not relative.startswith(".") and relative.split("/", 1)[-1] == target


def count_writes(monkeypatch: pytest.MonkeyPatch, out: Path, targets) -> dict:
    real = os.replace
    counts = dict.fromkeys(targets, 0)

    def replace(source, destination, *args, **kwargs):
        for target in counts:
            counts[target] += matches(out, destination, target)
        return real(source, destination, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "replace", replace)
    return counts


def fail_write(monkeypatch: pytest.MonkeyPatch, out: Path, target: str, occurrence: int) -> dict:
    """Make the ``occurrence``-th atomic write of ``target`` fail when the new file is
    complete but not yet in place: the moment a kill or a full disk does the most harm."""
    real = os.replace
    state = {"count": 0, "failed": False}

    def replace(source, destination, *args, **kwargs):
        if not state["failed"] and matches(out, destination, target):
            state["count"] += 1
            if state["count"] == occurrence:
                state["failed"] = True
                raise OSError(28, "No space left on device (injected)")
        return real(source, destination, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "replace", replace)
    return state


FAILURES = [
    ("*/checkpoint.safetensors", 1),             # the very first checkpoint (find phase)
    ("seed-0/checkpoint.safetensors", 1),        # the run folder's first checkpoint
    ("seed-0/checkpoint.safetensors", "last"),   # the end of the eval phase
    ("seed-0/snapshots/init.safetensors", 1),    # the weights kept for rewinding
    ("seed-0/model.safetensors", 1),             # writing the results
]
SHORT = [("find", 0), ("eval", 0)]  # the epochs of the recipe of these tests


@pytest.fixture(scope="module")
def rewinding_reference(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A recipe that needs the init snapshot (lottery-style rewinding), its uninterrupted
    run, and how many times each file of ``FAILURES`` was written in it."""
    recipe = load_recipe(None, overrides(data_dir, "find.epochs=1", "eval.epochs=1", "eval.rewind=init", "eval.lr_policy=null"))
    out = tmp_path_factory.mktemp("rewinding")
    with pytest.MonkeyPatch.context() as patch:
        counts = count_writes(patch, out, {target for target, _ in FAILURES})
        run = run_recipe(recipe, out, progress=False)
    return recipe, run, counts


@pytest.mark.parametrize(("target", "occurrence"), FAILURES)
def test_a_failed_write_leaves_a_resumable_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, occurrence: int | str, rewinding_reference: tuple
) -> None:
    recipe, reference, counts = rewinding_reference
    occurrence = counts[target] if occurrence == "last" else occurrence
    assert 1 <= occurrence <= counts[target], f"{target} is written {counts[target]} times"
    out = tmp_path / "runs"
    with monkeypatch.context() as patch:
        state = fail_write(patch, out, target, occurrence)
        first = record_epochs(patch)
        with pytest.raises(OSError, match="injected"):
            run_recipe(recipe, out, progress=False)
    assert state["failed"]
    # nothing half-written: no temporary files, every tensor file readable
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    for path in out.rglob("*.safetensors"):
        load_file(str(path))
    with monkeypatch.context() as patch:
        second = record_epochs(patch)
        run = run_recipe(recipe, out, progress=False)
    assert_same_outcome(run, reference)
    # at most the epoch whose checkpoint failed is trained twice
    assert set(first + second) == set(SHORT)
    assert len(first) + len(second) <= len(SHORT) + 1


def test_a_finished_seed_keeps_no_weights_for_rewinding_and_still_rebuilds_its_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rewinding_reference: tuple
) -> None:
    """The weights kept for rewinding serve the seed's own steps, which its checkpoint records:
    once the seed has finished they are gone (its find phase keeps them for other runs), and a
    result file removed since is rebuilt from the checkpoint without training."""
    recipe, reference, _ = rewinding_reference
    assert not (reference / "seed-0" / "snapshots").exists()
    assert [path.name for path in (reference.parent / FIND_CACHE).glob("*/seed-0/snapshots/*")] == ["init.safetensors"]
    out = tmp_path / "runs"
    shutil.copytree(reference.parent, out)
    for name in ("model.safetensors", "metrics.json"):
        (out / reference.name / "seed-0" / name).unlink()
    with monkeypatch.context() as patch:
        trained = record_epochs(patch)
        run = run_recipe(recipe, out, progress=False)
    assert trained == []
    assert_same_outcome(run, reference)


# -- atomic writes -------------------------------------------------------------------------------


@pytest.mark.parametrize("fail", ["replace", "fsync", "write"])
def test_write_bytes_keeps_the_old_file_when_the_write_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: str) -> None:
    path = tmp_path / "checkpoint.safetensors"
    runs_io.write_bytes(path, b"old contents")

    def boom(*args, **kwargs):
        raise OSError(5, f"{fail} failed (injected)")

    with monkeypatch.context() as patch:
        if fail == "write":
            # a short write: part of the data reaches the temporary file, then the error
            real_fdopen = os.fdopen

            class HalfFile:
                def __init__(self, file):
                    self.file = file

                def __enter__(self):
                    return self

                def __exit__(self, *exc):
                    return self.file.__exit__(*exc)

                def write(self, data):
                    self.file.write(data[: len(data) // 2])
                    self.file.flush()
                    raise OSError(5, "write failed (injected)")

            patch.setattr(atomic.os, "fdopen", lambda *a, **k: HalfFile(real_fdopen(*a, **k)))
        else:
            patch.setattr(atomic.os, fail, boom)
        with pytest.raises(OSError, match="injected"):
            runs_io.write_bytes(path, b"new contents that are longer than the old ones")
    assert path.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors"]  # no temporary left
    runs_io.write_bytes(path, b"new")
    assert path.read_bytes() == b"new"


@pytest.mark.parametrize("where", [0, -1], ids=["first byte", "last byte"])
@pytest.mark.parametrize("size", [3, 9 << 18], ids=["3 bytes", "2.25 MiB"])  # one chunk; three
def test_write_bytes_replaces_a_file_of_the_same_size_that_differs_anywhere(tmp_path: Path, size: int, where: int) -> None:
    """A file is left alone only if it holds the very bytes (it is read in chunks of 1 MiB): one
    of the same size differing in its first or last byte is written over."""
    path, new = tmp_path / "checkpoint.safetensors", bytes(range(256)) * (size // 256) + bytes(size % 256)
    old = bytearray(new)
    old[where] ^= 0xFF
    path.write_bytes(old)
    runs_io.write_bytes(path, new)
    assert path.read_bytes() == new


def test_write_bytes_replaces_a_longer_file_that_begins_with_the_same_bytes(tmp_path: Path) -> None:
    """A file holding the bytes and more is written over, even where the bytes end at the end of
    a chunk read (1 MiB), past which the comparison reads nothing more of the new ones."""
    path, new = tmp_path / "checkpoint.safetensors", bytes(range(256)) * (1 << 12)  # 1 MiB
    path.write_bytes(new + b"more")
    runs_io.write_bytes(path, new)
    assert path.read_bytes() == new


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    """Group-readable results under a 027 umask (0640), not private temporary files (0600)."""
    previous = os.umask(0o027)
    try:
        runs_io.write_json(tmp_path / "summary.json", {"a": 1})
        runs_io.save_tensors({"x": torch.ones(2)}, tmp_path / "model.safetensors")
    finally:
        os.umask(previous)
    for name in ("summary.json", "model.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name
    assert json.loads((tmp_path / "summary.json").read_text()) == {"a": 1}


KILLED_WRITER = """
import sys, torch
from prunelab.runs.io import save_tensors
path, ready = sys.argv[1], sys.argv[2]
big = {"a": torch.zeros(4_000_000), "b": torch.ones(4_000_000)}  # 32 MB a write
i = 0
while True:
    save_tensors({k: v + i for k, v in big.items()}, path, {"i": str(i)})
    if i == 0:
        open(ready, "w").close()
    i += 1
"""


#: Seconds the tests wait on a command they started before giving up: torch alone took a
#: minute to import on a loaded machine of 2 cores, past the 60 s a deadline here allowed.
GIVE_UP_SECONDS = 600


def test_kill_9_while_writing_a_checkpoint_leaves_a_whole_file(tmp_path: Path) -> None:
    path, ready = tmp_path / "checkpoint.safetensors", tmp_path / "ready"
    process = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path), str(ready)])
    try:
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while not ready.exists():
            assert process.poll() is None, "the writer died"
            assert time.monotonic() < deadline, "the writer never wrote"
            time.sleep(0.01)
        time.sleep(random.Random(0).uniform(0.05, 0.3))  # in the middle of some later write
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as file:
        i = int(file.metadata()["i"])
    assert torch.equal(tensors["a"], torch.full((4_000_000,), float(i)))
    assert torch.equal(tensors["b"], torch.full((4_000_000,), float(i + 1)))


# -- kill -9 at any moment ----------------------------------------------------------------------


def prunelab_command() -> list[str]:
    script = Path(sys.executable).with_name("prunelab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "prunelab"]


def checkpoint_states(out: Path) -> set:
    """Every version of every checkpoint seen so far (each atomic write makes a new file)."""
    states = set()
    # os.walk, not rglob: a folder the run removes while it is walked (snapshots/ once read) is skipped, not an error
    for folder, _, files in os.walk(out):
        if "checkpoint.safetensors" not in files:
            continue
        path = Path(folder) / "checkpoint.safetensors"
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        states.add((str(path), stat.st_ino, stat.st_mtime_ns, stat.st_size))
    return states


def test_kill_9_at_any_moment_resumes_to_the_same_result(data_dir: Path, recipe, reference: Path, tmp_path: Path) -> None:
    """``prunelab run`` killed with SIGKILL a few times, at random moments after some
    checkpoints, then run again to the end: the same results as the uninterrupted run."""
    out = tmp_path / "runs"
    command = [*prunelab_command(), "run", "--no-progress", "--out", str(out)]
    for item in overrides(data_dir):
        command += ["--set", item]
    seed = int(os.environ.get("PRUNELAB_KILL_SEED", "2024"))
    rng = random.Random(seed)
    kills = []
    # each run is killed after 1-3 new checkpoint versions and a short random delay (an
    # epoch here takes ~0.1 s), until one finishes before its kill
    for index in range(5):
        wait_for = 1 if index == 0 else rng.randint(1, 3)
        seen = checkpoint_states(out)
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while process.poll() is None and len(checkpoint_states(out) - seen) < wait_for:
            assert time.monotonic() < deadline, "no checkpoint written"
            time.sleep(0.005)
        delay = 0.0 if index == 0 else rng.uniform(0.0, 0.08)  # the first run surely dies in its find phase
        time.sleep(delay)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate()
        kills.append((wait_for, round(delay, 3), process.returncode))
        if process.returncode == 0:
            break  # it finished before the kill
        assert process.returncode == -signal.SIGKILL, stderr
    assert kills[0][2] == -signal.SIGKILL, f"the first run finished before it was killed: {kills}"
    finished = subprocess.run(command, check=False, capture_output=True, text=True, timeout=GIVE_UP_SECONDS)
    assert finished.returncode == 0, finished.stderr
    assert "final_acc" in finished.stdout
    print(f"PRUNELAB_KILL_SEED={seed}; (checkpoints waited for, delay, return code) of each run: {kills}")
    assert_same_outcome(out / reference.name, reference)


def test_leftover_temporary_files_of_a_killed_write_are_removed(recipe, reference: Path, tmp_path: Path) -> None:
    """A kill during an atomic write leaves its hidden temporary file (of a whole checkpoint,
    maybe); resuming clears them, in the seed's folder, the run's and the shared find phase's:
    under the lock of a seed or find phase all of them, in the run's own folder, which
    commands beside each other write to, only those of writes before this one started."""
    copy = tmp_path / reference.name
    shutil.copytree(reference, copy)
    shutil.copytree(reference.parent / FIND_CACHE, tmp_path / FIND_CACHE)
    (copy / "seed-0" / "summary.json").unlink()  # the seed did not finish
    (copy / "seed-0" / CHECKPOINT).unlink()  # nor copied the find phase
    (find_phase,) = (tmp_path / FIND_CACHE).glob("*/seed-0")
    orphans = [copy / "seed-0" / ".metrics.csv.0123abcd.tmp", copy / ".summary.json.4567cdef.tmp",
               find_phase / ".checkpoint.safetensors.89abcdef.tmp"]  # fmt: skip
    for orphan in orphans:
        orphan.write_text("half a file")
        os.utime(orphan, (runner.STARTED - 60, runner.STARTED - 60))  # left by an earlier command
    # commands killed since this one started: under a lock, in subfolders too
    orphans += [find_phase / ".masks.safetensors.76543210.tmp", copy / "seed-0" / "masks" / ".prune.safetensors.01234567.tmp"]
    for orphan in orphans[-2:]:
        orphan.parent.mkdir(exist_ok=True)
        orphan.write_text("half written")
    live = copy / ".recipe.yaml.fedcba98.tmp"  # a command beside this one writing right now
    live.write_text("half written")
    run_recipe(recipe, tmp_path, progress=False)
    assert not [orphan for orphan in orphans if orphan.exists()]
    assert live.exists()
    assert_same_outcome(copy, reference)


def test_a_finished_run_run_again_removes_the_leftover_of_a_killed_recipe_write(recipe, reference: Path, tmp_path: Path) -> None:
    """The run's recipe.yaml is written last, after its seeds: a kill then leaves its temporary
    file, which no write of a finished run replaces; running again removes it."""
    copy = tmp_path / reference.name
    shutil.copytree(reference, copy)
    orphan = copy / ".recipe.yaml.0123abcd.tmp"
    orphan.write_text("half a file")
    os.utime(orphan, (runner.STARTED - 60, runner.STARTED - 60))  # left by an earlier command
    with pytest.MonkeyPatch.context() as patch:
        trained = record_epochs(patch)
        run_recipe(recipe, tmp_path, progress=False)
    assert trained == [] and not orphan.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_cuda_without_it_is_a_clear_error(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="device: cuda was asked for, but torch sees no CUDA device"):
        run_recipe(load_recipe(None, overrides(data_dir, "device=cuda")), tmp_path, progress=False)
    assert not list(tmp_path.iterdir())  # checked before anything is written


def test_a_resumed_gmp_run_warns_about_its_update_frequency_again(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan (and its warnings) is made once and kept; a resumed run says them again."""
    overrides = ["find.epochs=1", "device=cpu", f"data.data_dir={data_dir}", "seeds=[0]", NARROW[0],
                 "prune.stabilization_epochs=1", "prune.pruning_epochs=1", "eval.epochs=3"]  # fmt: skip
    recipe = load_recipe("gmp", overrides)
    with monkeypatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        record_all_epochs(patch, stop_after=3)  # the find epoch, then the second eval epoch: after the plan
        with pytest.raises(Interrupted):
            run_recipe(recipe, tmp_path, progress=False)
    with pytest.warns(UserWarning, match="the pruning stage has only 4 sparsity updates"):
        run_recipe(recipe, tmp_path, progress=False)


def test_a_checkpoint_with_a_foreign_phase_state_is_named_as_damaged(recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A journal whose phase state has fields this version does not write (another version,
    an edit by hand) is a DamagedRunError naming the checkpoint, not a TypeError."""
    from prunelab.runs.io import DamagedRunError

    with monkeypatch.context() as patch:
        record_all_epochs(patch, stop_after=4)  # the second eval epoch: the eval phase's state is journaled
        with pytest.raises(Interrupted):
            run_recipe(recipe, tmp_path, progress=False)
    (checkpoint,) = tmp_path.glob("*/seed-0/checkpoint.safetensors")
    with safe_open(str(checkpoint), framework="pt") as file:
        metadata, tensors = file.metadata(), {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118
    journal = json.loads(metadata["journal"])
    assert journal["phase"]["name"] == "eval"
    journal["phase"]["state"]["momentum_of_the_future"] = 1
    save_file(tensors, str(checkpoint), {**metadata, "journal": json.dumps(journal)})
    with pytest.raises(DamagedRunError, match=rf"^{re.escape(str(checkpoint))} is damaged \(its state of phase eval is not one prunelab writes\)"):
        run_recipe(recipe, tmp_path, progress=False)


def test_a_run_interrupted_between_seeds_shows_the_seeds_it_finished(data_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """The run's summary follows every seed: show, compare and report read a run stopped in
    its second seed, and say that its results are of the first seed only."""
    from prunelab import cli
    from prunelab.runs import runner

    recipe = load_recipe(None, overrides(data_dir, "seeds=[0, 1]"))
    write_seed = runner.write_seed

    def stop_in_seed_1(folder, recipe, seed, *args):
        if seed == 1:
            raise Interrupted
        write_seed(folder, recipe, seed, *args)

    monkeypatch.setattr(runner, "write_seed", stop_in_seed_1)
    with pytest.raises(Interrupted):
        run_recipe(recipe, tmp_path, progress=False)
    folder = runner.run_folder(tmp_path, recipe)
    assert json.loads((folder / "summary.json").read_text())["seeds"] == [0]
    note = "the results are of the finished seeds only: seed 1 interrupted (run its command again to finish it)"
    assert cli.main(["show", str(folder)]) == 0
    shown = capsys.readouterr().out
    assert f"\n{note}\n" in shown and "\npipeline (seed 004's steps): " in shown  # of the finished seed
    assert cli.main(["compare", str(folder)]) == 0
    assert capsys.readouterr().err == f"prunelab: {folder}: {note}\n"
    monkeypatch.setattr(runner, "write_seed", write_seed)
    run_recipe(recipe, tmp_path, progress=False)
    assert json.loads((folder / "summary.json").read_text())["seeds"] == [0, 1]
    assert cli.main(["show", str(folder)]) == 0
    assert "interrupted" not in capsys.readouterr().out


def test_a_leftover_temporary_file_that_cannot_be_removed_is_named(tmp_path: Path, monkeypatch) -> None:
    """A killed write's temporary file in a folder since made read-only: the error says which
    file cannot be removed and why, not errno's words alone."""
    import errno

    orphan = tmp_path / ".summary.json.4567cdef.tmp"
    orphan.write_text("half a file")
    os.utime(orphan, (runner.STARTED - 60, runner.STARTED - 60))  # left by an earlier command

    def read_only(self, missing_ok=False):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "unlink", read_only)
    for locked in (False, True):
        with pytest.raises(OSError, match=rf"^cannot remove {re.escape(str(orphan))}, the temporary file of a write cut short: "
                                          r"Read-only file system$"):  # fmt: skip
            runner.remove_orphans(tmp_path, locked=locked)
