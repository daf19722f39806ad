"""A session: one seed of one run, backed by a folder, resumable after a kill at any moment.

Methods (:mod:`prunelab.methods`) are plain functions of a session. They change the model
only inside :meth:`Session.train` and :meth:`Session.once`; each of these ends with a
checkpoint, and records its result in the journal. Resuming replays the method from the
top: finished units return their recorded result without running, the unit that was cut
off continues from its last checkpoint (a training phase from its last finished epoch).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from prunelab.analysis.flops import count_macs, speedup
from prunelab.config import RecipeError, load_run_recipe
from prunelab.config.schema import Recipe, TrainConfig
from prunelab.data import Dataset, default_data_dir, load_dataset
from prunelab.data.registry import DATA_ENV_VAR
from prunelab.distributed import agree, barrier, main_first, world
from prunelab.masks import Pruner
from prunelab.models import build_model, initialize
from prunelab.runs.checkpoint import load_checkpoint, read_journal, save_checkpoint
from prunelab.runs.io import DamagedRunError, load_model_weights, read_json, read_state_dict, read_tensors, save_tensors, weight_differences
from prunelab.schedules import Schedule
from prunelab.structured import ChannelPruner, shrink
from prunelab.train import Trainer, evaluate
from prunelab.train.trainer import PhaseState, StepHook
from prunelab.wording import counted

CHECKPOINT = "checkpoint.safetensors"


def recipe_pruner(recipe: Recipe, model: nn.Module, seed: int = 0) -> Pruner:
    """The pruner of ``model``'s weights as the recipe's prune section says. With a channel
    criterion it prunes nothing (every Conv/Linear weight stays kept); it measures the
    model, and include/exclude name channel groups."""
    prune = recipe.prune
    if prune.prunes_channels:
        return Pruner(model)
    return Pruner(model, include=prune.include, exclude=prune.exclude, criterion=prune.criterion, seed=seed)


#: What every finished seed's folder holds (the layout in ``runs/runner.py``), its summary last.
SEED_RESULTS = ("metrics.csv", "metrics.json", "lr_log.json", "layer_sparsity.json", "events.json",
                "masks.safetensors", "model.safetensors", "summary.json")  # fmt: skip


def seed_finished(seed_folder: Path) -> bool:
    """Whether a seed's folder holds all its results (channel pruning's ``channels.json``
    too). A seed lacking one is run again, which rebuilds them from its checkpoint."""
    if not all((seed_folder / name).is_file() for name in SEED_RESULTS):
        return False
    try:
        channels = "channel_sparsity" in json.loads((seed_folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return not channels or (seed_folder / "channels.json").is_file()


def finished_seeds(folder: Path) -> list[int]:
    """The seeds of the run directory ``folder`` that finished (hold all their results)."""
    return sorted(int(path.name.removeprefix("seed-")) for path in folder.glob("seed-*") if seed_finished(path))


def load_trained(folder: str | Path, seed: int | None = None, device: str | torch.device = "cpu") -> tuple[nn.Module, Pruner]:
    """The final model of one seed (the first if None) of a finished run directory, and a
    pruner holding its masks (attach it to keep them while training on). After channel
    pruning the model is the small dense one.

    >>> model, pruner = load_trained("runs/oneshot-mnist1d_cnn-mnist1d-5820dedb")  # doctest: +SKIP
    >>> round(pruner.sparsity(), 2)  # doctest: +SKIP
    0.9
    """
    folder = Path(folder)
    if not (folder / "recipe.yaml").is_file():
        raise FileNotFoundError(f"{folder} is not a run directory (it has no recipe.yaml)")
    recipe = load_run_recipe(folder)
    seed = recipe.seeds[0] if seed is None else seed
    seed_folder = folder / f"seed-{seed}"
    if not (seed_folder / "summary.json").is_file():
        raise FileNotFoundError(f"{folder} has no finished seed {seed}; its finished seeds: {finished_seeds(folder) or 'none'}")
    data = recipe_data(recipe)
    with torch.random.fork_rng():  # the weights come from the files: the caller's random state stays as it was
        model = recipe_model(recipe, data)
    if recipe.prune.prunes_channels:
        channels = recipe_channel_pruner(recipe, model, torch.zeros(1, *data.input_shape), seed)
        channels.load_state_dict(read_json(seed_folder / "channels.json"))
        model = channels.shrink()
    load_model_weights(model, read_tensors(seed_folder / "model.safetensors"), seed_folder / "model.safetensors")
    model.to(device)
    pruner = recipe_pruner(recipe, model, seed)
    pruner.load_state_dict(read_tensors(seed_folder / "masks.safetensors"))
    return model, pruner


def recipe_channel_pruner(recipe: Recipe, model: nn.Module, example_input: Tensor, seed: int = 0) -> ChannelPruner:
    """A channel pruner of ``model`` with the recipe's criterion, include and exclude."""
    prune = recipe.prune
    return ChannelPruner(model, example_input, prune.include, prune.exclude, prune.criterion, seed)


def recipe_data(recipe: Recipe) -> Dataset:
    """The recipe's dataset; a data folder that cannot be used is an error naming the setting.
    Over several processes the main one loads it first, so that it alone downloads the files or
    writes the cache."""
    folder = Path(recipe.data.data_dir).expanduser() if recipe.data.data_dir is not None else default_data_dir()
    if recipe.data.data_dir is not None:
        setting = f"data.data_dir={recipe.data.data_dir}"
    else:  # the folder comes from the environment, or is the default
        setting = f"${DATA_ENV_VAR}={folder} (data.data_dir unset)" if os.environ.get(DATA_ENV_VAR) else f"data.data_dir={folder} (the default)"

    def load() -> Dataset:  # the main process first: a folder every process finds unusable is said once
        if folder.exists() and not folder.is_dir():
            raise OSError(f"{setting} is a file, not a folder")
        try:
            return load_dataset(recipe.data.name, recipe.data.data_dir, recipe.data.download)
        except (NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError) as error:
            # The folder is unusable; a dataset not found or a failed download say so themselves.
            raise OSError(f"{setting}: cannot use {error.filename or folder}: {error.strerror or error}") from None

    return main_first(load)


def progress_label(recipe: Recipe, seed: int, phase: str) -> str:
    """Where a phase stands in the run, for its progress bar.

    >>> from prunelab.config import load_recipe
    >>> progress_label(load_recipe("imp", ["seeds=[0, 5, 7]", "prune.levels=4"]), 5, "level-2/eval")
    'seed 5 (2/3) level 2/4 eval'
    >>> progress_label(load_recipe("imp", ["seeds=[5]"]), 5, "find")  # one seed: no count
    'seed 5 find'
    """
    seeds = recipe.seeds
    where = f"seed {seed}" + (f" ({seeds.index(seed) + 1}/{len(seeds)})" if len(seeds) > 1 else "")
    level = re.fullmatch(r"level-(\d+)/(.+)", phase)
    if level:
        phase = f"level {level[1]}/{recipe.prune.level_count} {level[2]}"
    return f"{where} {phase}"


def recipe_model(recipe: Recipe, data: Dataset) -> nn.Module:
    """The recipe's model, freshly initialised from the global RNG, for ``data``."""
    return build_model(recipe.model.name, num_classes=data.num_classes, input_shape=data.input_shape, **recipe.model.options)


def starting_model(recipe: Recipe, data: Dataset) -> nn.Module:
    """The model a run starts from: the recipe's, freshly initialised from the global RNG, then
    given the weights of ``model.weights`` if the recipe names a file (a RecipeError if they
    are not this model's)."""
    model = recipe_model(recipe, data)
    if recipe.model.weights is None:
        return model
    try:
        state = read_state_dict(recipe.model.weights)
    except ValueError as error:
        raise RecipeError(f"model.weights: {error}") from None
    # Files saved before torch 0.4.1 (torchvision's first ImageNet weights) count no BatchNorm steps.
    state = {**{key: value for key, value in model.state_dict().items() if key.endswith(".num_batches_tracked")}, **state}
    if differences := weight_differences(model, state):
        more = f"; {counted(len(differences) - 1, 'more difference')}" if len(differences) > 1 else ""
        raise RecipeError(f"model.weights: {recipe.model.weights} holds weights of another model than "
                          f"{recipe.model.name!r} builds for {recipe.data.name} ({differences[0]}{more})")  # fmt: skip
    with torch.no_grad():
        model.load_state_dict(state)
    return model


class Session:
    """One seed of one run, in ``folder``: the recipe's model and pruner, its data and device.
    Restored from the folder's checkpoint if there is one (rebuilt small first if channels were
    removed), otherwise initialised from ``seed``, with those weights kept as ``init``."""

    def __init__(self, folder: Path, recipe: Recipe, seed: int, data: Dataset, device: torch.device, progress: bool = True) -> None:
        self.folder, self.recipe, self.seed, self.data, self.device = folder, recipe, seed, data, device
        self.progress = progress
        torch.manual_seed(seed)
        self.model = starting_model(recipe, data).to(device)
        self.pruner = recipe_pruner(self.recipe, self.model, self.seed)
        self.dense = self._dense_sizes()
        self.channels: ChannelPruner | None = None  # after channel pruning: the groups and kept channels
        self.journal: dict = {"done": {}, "phase": None}
        self._optimizer_state: dict | None = None
        if agree((folder / CHECKPOINT).exists()):
            # The main process reads it first: a damaged checkpoint, which every process would
            # meet, is said once, by the main process.
            self.journal, self._optimizer_state = main_first(self._restore)
            # Every process has read the checkpoint (journal, then weights) before the main one,
            # going on alone (e.g. removing channels), replaces it: a slower one read the old
            # journal and the new weights.
            barrier()
        else:
            self.save_weights("init")
        self._started = time.perf_counter() - self.journal.get("elapsed", 0.0)

    def _restore(self) -> tuple[dict, dict | None]:
        """The model, masks (and removed channels) of the folder's checkpoint; its journal and
        optimizer state."""
        keep = read_journal(self.folder / CHECKPOINT).get("channels")
        if keep is not None:  # the model was rebuilt without pruned channels
            channels = self.channel_pruner()
            channels.load_state_dict(keep)
            self.shrink(channels)
        return load_checkpoint(self.folder / CHECKPOINT, self.model, self.pruner)

    def _dense_sizes(self) -> dict:
        """The dense model's sizes, which pruning measures itself against: each prunable
        weight's, all parameters, and the multiply-accumulates per example."""
        return {
            "numel": {name: p.numel() for name, p in self.pruner.parameters.items()},
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "macs": count_macs(self.model, self.example_input()),
        }

    def channel_pruner(self) -> ChannelPruner:
        """A channel pruner of the session's model as the recipe's prune section says."""
        return recipe_channel_pruner(self.recipe, self.model, self.example_input(), self.seed)

    def example_input(self) -> Tensor:
        """A batch of one zero input, for tracing and counting."""
        return torch.zeros(1, *self.data.input_shape, device=self.device)

    def shrink(self, channels: ChannelPruner) -> None:
        """Replace the dense model by its small dense copy without the channels ``channels``
        removed (physical removal); remembered, so that a resumed run rebuilds it."""
        self.channels = channels
        self.model = channels.shrink()
        self.pruner = recipe_pruner(self.recipe, self.model, self.seed)
        self.journal["channels"] = channels.state_dict()

    # -- measurements (against the dense model: removed channels count as pruned) ----------

    def layer_counts(self) -> dict[str, dict]:
        """Per prunable tensor: size in the dense model, remaining weights and sparsity (the LPR)."""
        counts = {}
        for name, p in self.pruner.parameters.items():
            numel, remaining = self.dense["numel"][name], p.numel() - self.pruner.count_pruned(name)
            counts[name] = {"numel": numel, "remaining": remaining, "sparsity": (numel - remaining) / numel}
        return counts

    def sparsity(self) -> float:
        """The pruned share of the prunable weights."""
        counts = self.layer_counts().values()
        total = sum(c["numel"] for c in counts)
        return (total - sum(c["remaining"] for c in counts)) / total

    def parameter_counts(self) -> dict[str, int]:
        """All parameters of the dense model, and those remaining (nonzero, in the small model
        if channels were removed)."""
        current = sum(p.numel() for p in self.model.parameters())
        return {"parameters": self.dense["parameters"], "remaining_parameters": current - self.pruner.count_pruned()}

    def macs(self) -> int:
        """Multiply-accumulates per example of the model as it is (pruned weights cost nothing)."""
        return count_macs(self.model, self.example_input(), self.pruner.masks)

    def speedup(self) -> float:
        """The theoretical speedup: the dense model's multiply-accumulates over the model's now."""
        return speedup(self.dense["macs"], self.macs())

    def trained_phases(self) -> list[str]:
        """The phases trained so far, in order (the journal's entries with an epoch history)."""
        return [key for key, value in self.journal["done"].items() if isinstance(value, dict) and "history" in value]

    def total_epochs(self) -> int:
        """Epochs trained over every phase, the find phase's included: the budget seed 003 compares
        methods at. An instability measurement's second retraining (a ``-copy`` phase) is no part of it."""
        done = self.journal["done"]
        return sum(len(done[phase]["history"]) for phase in self.trained_phases() if not phase.endswith("-copy"))

    def images_per_second(self) -> float | None:
        """Training throughput (seed 003's Table 2): training examples over the seconds of the
        training steps, evaluation not counted, over every phase trained so far."""
        done = self.journal["done"]
        rows = [row for phase in self.trained_phases() for row in done[phase]["history"] if "train_seconds" in row]
        seconds = sum(row["train_seconds"] for row in rows)
        return sum(row["train_images"] for row in rows) / seconds if seconds > 0 else None

    def elapsed(self) -> float:
        """Wall time spent on this seed so far, summed over interrupted and resumed runs."""
        return time.perf_counter() - self._started

    # -- units of work -----------------------------------------------------------------

    def once(self, key: str, compute: Callable[[], dict]) -> dict:
        """Run ``compute`` unless a previous run finished it; its result is remembered. While an
        interrupted phase waits to resume (a unit newer than the checkpoint, replayed before it),
        the phase's next checkpoint records it: one now would lose the phase's optimizer state."""
        if key not in self.journal["done"]:
            self.journal["done"][key] = compute()
            if self.journal["phase"] is None:
                self._checkpoint()
        return self.journal["done"][key]

    def train(
        self,
        phase: str,
        config: TrainConfig,
        *,
        schedule: Schedule | None = None,
        step_hooks: Sequence[StepHook] = (),
        start_step: int = 0,
    ) -> dict:
        """Train one phase (resuming it if it was interrupted); returns its history and LR log.

        ``start_step`` starts the LR schedule at that step, and the epochs at the one that
        contains it (used by late rewinding, which restores the LR position).
        """
        if phase in self.journal["done"]:
            return self.journal["done"][phase]
        trainer = Trainer(
            self.model, self.data, config, seed=self.seed, phase=phase, device=self.device,
            pruner=self.pruner, schedule=schedule, step_hooks=step_hooks,
            augment=self.recipe.data.augment, progress=self.progress, label=progress_label(self.recipe, self.seed, phase),
            sparsity=self.sparsity,
        )
        current = self.journal["phase"]
        if current is not None and current["name"] == phase:
            try:
                trainer.state = PhaseState(**current["state"])
            except TypeError:  # fields this version does not write: a damaged or foreign file
                raise DamagedRunError(
                    f"{self.folder / CHECKPOINT} is damaged (its state of phase {phase} is not one prunelab writes); "
                    "remove it to train again what it held"
                ) from None
            if self._optimizer_state is not None:
                trainer.optimizer.load_state_dict(self._optimizer_state)  # the attached pruner re-masks it
                self._optimizer_state = None  # the optimizer's now: freed with it when the phase ends
        else:
            trainer.state.epoch = start_step // trainer.steps_per_epoch
            trainer.state.step = start_step
        try:
            trainer.run(on_epoch_end=self._checkpoint_phase)
        finally:
            self.pruner.detach(trainer.optimizer)
        result = {"history": trainer.state.history, "lr_log": trainer.state.lr_log, "steps_per_epoch": trainer.steps_per_epoch}
        self.journal["done"][phase] = result
        self.journal["phase"] = None
        self._checkpoint()
        return result

    def _checkpoint_phase(self, trainer: Trainer) -> None:
        # A snapshot of each field, its list copied whole: dataclasses.asdict copied every LR of
        # the phase one by one, at every epoch, which grew with the square of the phase's length.
        state = {field.name: copy.copy(getattr(trainer.state, field.name)) for field in dataclasses.fields(trainer.state)}
        self.journal["phase"] = {"name": trainer.phase, "state": state}
        self._checkpoint(trainer.optimizer)

    def _checkpoint(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        self.journal["elapsed"] = self.elapsed()
        save_checkpoint(self.folder / CHECKPOINT, self.model, self.pruner, optimizer, self.journal)

    # -- helpers for methods -------------------------------------------------------------

    def evaluate(self) -> tuple[float, float]:
        """Test loss and accuracy of the model as it is."""
        return evaluate(self.model, self.data.x_test, self.data.y_test, self.device)

    def save_weights(self, name: str) -> None:
        """Keep a copy of the current weights under ``name`` (e.g. for rewinding)."""
        save_tensors(self.model.state_dict(), self.folder / "snapshots" / f"{name}.safetensors")
        barrier()  # written by the main process, read by all

    def load_weights(self, name: str) -> None:
        """Put back the weights saved as ``name``; pruned weights stay zero, and weights of
        the dense model lose their pruned channels if the model has been shrunk since."""
        state = self.read_weights(name)
        if self.channels is not None and any(state[k].shape != v.shape for k, v in self.model.state_dict().items()):
            with torch.random.fork_rng(devices=[]):  # the dense model's own draws are overwritten
                dense = recipe_model(self.recipe, self.data).to(self.device)
            dense.load_state_dict(state)
            state = shrink(dense, self.channels.groups, self.channels.keep, self.example_input()).state_dict()
        self.model.load_state_dict(state)
        self.pruner.apply()

    def read_weights(self, name: str) -> dict[str, Tensor]:
        """The weights saved as ``name``, as a state dict on the session's device."""
        return read_tensors(self.folder / "snapshots" / f"{name}.safetensors", device=str(self.device))

    def reinitialize(self) -> None:
        """New random weights, drawn as the initialisation is but from a seed of their own.
        The draw is the same for every call of this seed's run: the ticket it is compared with
        starts every IMP level from the same initial weights, so the two differ only in those
        weights (seed 002's "new randomly initialized weights" are new against the ticket's).
        Pruned weights stay zero. A model rebuilt without pruned channels is initialised as the
        small dense model it is (seed 004's scratch training: initialisation depends on the
        layers' shapes)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(zlib.crc32(f"{self.seed}/reinit".encode()))
            if self.channels is not None:
                initialize(self.recipe.model.name, self.model)
            else:
                self.model.load_state_dict(recipe_model(self.recipe, self.data).state_dict())
        self.pruner.apply()

    def save_masks(self, name: str) -> None:
        """Keep a copy of the current masks under ``name`` (e.g. one per IMP level)."""
        save_tensors(self.pruner.state_dict(), self.folder / "masks" / f"{name}.safetensors")

    def drop_weights(self, names: Sequence[str] | None = None) -> None:
        """Delete the weights kept as ``names`` once nothing will read them again (saves disk);
        if None, all of them and their folder."""
        barrier()  # every process has read them
        if world().is_main:
            folder = self.folder / "snapshots"
            paths = sorted(folder.glob("*.safetensors")) if names is None else [folder / f"{name}.safetensors" for name in names]
            for path in paths:
                path.unlink(missing_ok=True)
            if names is None and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    def has_weights(self, name: str) -> bool:
        """Whether weights were kept as ``name`` (:meth:`save_weights`)."""
        return (self.folder / "snapshots" / f"{name}.safetensors").exists()


class SaveWeightsAt:
    """Step hook: save the weights as ``name`` when ``step`` optimizer steps are done."""

    def __init__(self, session: Session, step: int, name: str) -> None:
        self.session, self.step, self.name = session, step, name

    def __call__(self, trainer: Trainer, step: int) -> None:
        if step == self.step:
            self.session.save_weights(self.name)

