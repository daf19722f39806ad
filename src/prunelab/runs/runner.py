"""Running a recipe into a run directory, one seed after another, resumably.

Layout of ``<out>/<run name>/``::

    recipe.yaml                 the resolved recipe (every default written out, every seed run)
    summary.json                mean and std over the finished seeds
    levels.png                  IMP, BIMP: accuracy after each level's pruning and retraining, over the seeds
    seed-<s>/
        summary.json            dense / pruned / final accuracy, sparsity, parameters, time, what it ran on
        metrics.csv, .json      one row per epoch of every phase
        lr_log.json             the LR of every optimizer step, per phase
        layer_sparsity.json     the layerwise pruning ratios (LPR) of the final masks
        events.json             what each step besides training recorded: pruning (sparsity, accuracy
                                after it, d1, LPR; with find.lpr_every, the LPR pruning earlier
                                would have given), rewinding, LR policies, budgets, GMP's plan
        training.png            test accuracy and sparsity per epoch, the LR per step, phases (and GMP stages) named (sparsity_schedule.png: GMP)
        lpr_during_find.png     with find.lpr_every: the LPR pruning after each kept epoch would have given
        masks.safetensors       final masks (bit-packed; after channel pruning, of the small dense model: all kept)
        model.safetensors       final weights (of the small model, if channels were removed)
        channels.json           the kept channels of each channel group (channel criteria only)
        checkpoint.safetensors  the resumable state (kept: a finished seed is not re-run)
        snapshots/              while the seed runs: weights kept for rewinding (init, rewind) and, until read, the
                                LPR record (find-epoch-<e>), the start and end of each retraining's two copies
                                (eval.instability) and IMP's pruned weights for the next level's H_find (masks_from:
                                find, rewind: none); deleted once the seed's method ends (the find phase's stay in .find)
        masks/                  the masks of every pruning step (bit-packed: prune.safetensors, each IMP
                                level's level-<k>/prune.safetensors; what prune.masks_of copies; none
                                for channel pruning, whose steps channels.json records, nor for GMP, which
                                prunes along its schedule; not rebuilt when removed: the checkpoint holds
                                the final masks only)

The find phase is trained once per ``<out>/.find/<key>/seed-<s>/`` and copied into every
run with the same data, model, find training, late-rewinding point, weights kept for the LPR
record, device type and number of processes (:func:`find_key`), so that runs differing only
in pruning or retraining (a sweep over retraining policies, say) share it.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from prunelab import __version__
from prunelab.atomic import STARTED
from prunelab.config import (
    Recipe,
    RecipeError,
    experiment_settings,
    recipe_yaml,
    run_name,
    run_settings,
    unused_settings,
)
from prunelab.config.load import settings_digest, weights_digest
from prunelab.config.schema import PruneBase, rewind_target
from prunelab.data import Dataset
from prunelab.distributed import agree, barrier, share, world
from prunelab.masks import Pruner
from prunelab.methods import METHODS
from prunelab.methods.common import (
    check_reference,
    choose_channels,
    epoch_steps,
    find,
    first_lpr_record,
    late_rewinding,
    lpr_snapshot_epochs,
)
from prunelab.methods.gmp import check_update_frequency
from prunelab.methods.imp import level_targets
from prunelab.models.common import evaluating
from prunelab.report.plots import plot_levels, plot_lpr_during_find, plot_sparsity_schedule, plot_training
from prunelab.report.runs import levels_title, training_label
from prunelab.report.tables import mean_std
from prunelab.runs.io import (
    DamagedRunError,
    read_json,
    save_tensors,
    write_bytes,
    write_csv,
    write_json,
    write_text,
)
from prunelab.runs.checkpoint import read_journal
from prunelab.runs.lock import busy, exclusive
from prunelab.runs.session import (
    CHECKPOINT,
    Session,
    finished_seeds,
    seed_finished,
    progress_label,
    recipe_channel_pruner,
    recipe_data,
    starting_model,
)
from prunelab.schedules import round_warmup
from prunelab.user_code import USER_ERRORS, user_error
from prunelab.wording import counted

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
FIND_CACHE = ".find"


def resolve_device(name: str) -> torch.device:
    """The recipe's device; with CUDA, each process of a multi-process run takes its own GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda was asked for, but torch sees no CUDA device (use cpu or auto)")
    return torch.device("cuda", world().local_rank) if name == "cuda" else torch.device(name)


def preflight(recipe: Recipe, data, references: bool = True) -> None:
    """The recipe's checks that need the data, other runs or the processes, before any training;
    without ``references``, not the run ``prune.lpr_of`` or ``prune.masks_of`` it copies (which
    the analyses of its find phase do not read)."""
    for phase in ("find", "eval"):
        try:
            share(getattr(recipe, phase).batch_size, f"{phase}.batch_size")
        except ValueError as error:
            raise RecipeError(str(error)) from None
    late_rewinding(recipe.find_training, recipe.eval, len(data.x_train))
    check_warmups_take_steps(recipe, len(data.x_train))
    check_augment(recipe, data)
    model = starting_model(recipe, data)
    # Other buffers may hold -inf (attention masks); BatchNorm statistics must be finite.
    statistics = [(name, buffer) for name, buffer in model.named_buffers() if name.endswith(("running_mean", "running_var"))]
    if broken := [name for name, tensor in [*model.named_parameters(), *statistics] if not tensor.isfinite().all()]:
        origin = f"model.weights: {recipe.model.weights} holds" if recipe.model.weights else f"model {recipe.model.name!r} is built with"
        raise RecipeError(f"{origin} NaN or infinite values in {', '.join(broken)}: no training can start from them"
                          + ("" if recipe.model.weights else "; see its builder or weight scheme"))  # fmt: skip
    check_forward(recipe, model, data)
    if recipe.prune.prunes_channels:
        check_channel_pruning(recipe, model, data)
        return
    try:
        pruner = Pruner(model, recipe.prune.include, recipe.prune.exclude, criterion=recipe.prune.criterion)
    except ValueError as error:
        raise RecipeError(f"prune.include/exclude: {error}") from None
    ratios = None
    if recipe.prune.scope == "ratios":
        try:
            ratios = pruner.named_ratios(recipe.prune.ratios)
        except ValueError as error:
            raise RecipeError(f"prune.ratios: {error}") from None
    if references and recipe.prune.reference is not None:
        check_reference(recipe, {name: tuple(p.shape) for name, p in pruner.parameters.items()})
    sizes = {name: p.numel() for name, p in pruner.parameters.items()}
    if recipe.prune.scope in ("global", "layerwise"):
        check_keeps_a_weight(recipe.prune, sizes)
    if recipe.prune.scope in ("global", "layerwise", "ratios"):
        check_prunes_a_weight(recipe.prune, sizes, ratios)


def data_advice(recipe: Recipe, train_size: int) -> list[str]:
    """What a run warns of as it starts, after :func:`~prunelab.config.unused_settings`, that
    needs the data: GMP's number of sparsity updates (seed 000), from the steps an epoch has."""
    return check_update_frequency(recipe, train_size) if recipe.prune.method == "gmp" else []


def check_warmups_take_steps(recipe: Recipe, train_size: int) -> None:
    """Each warmup a run trains rounds to at least 2 steps of its phase (:func:`~prunelab.schedules.round_warmup`),
    checked before training: the eval phase builds its schedule only after the find phase."""
    find, evaluation = recipe.find_training, recipe.eval_training
    eval_steps = epoch_steps(train_size, evaluation.batch_size)
    warmups = []
    if find.trained_epochs:
        warmups.append(("find.lr_schedule.warmup_epochs", find.lr_schedule.warmup_epochs, epoch_steps(train_size, find.batch_size), "an epoch"))
    if evaluation.lr_policy is None:
        warmups.append(("eval.lr_schedule.warmup_epochs", evaluation.lr_schedule.warmup_epochs, eval_steps, "an epoch"))
    elif evaluation.budget == "epochs":  # a scratch budget retrains longer
        warmups.append(("eval.warmup_fraction", evaluation.warmup_fraction, shortest_retraining(recipe) * eval_steps,
                        "BIMP's shortest retraining" if recipe.prune.method == "bimp" else "the retraining"))
    for setting, value, steps, of in warmups:
        try:
            round_warmup(setting, value, steps, of)
        except ValueError as error:
            raise RecipeError(str(error)) from None


def shortest_retraining(recipe: Recipe) -> int:
    """The epochs of a run's shortest retraining: ``eval.epochs``, or BIMP's last level's share of its budget."""
    spec = recipe.prune
    if spec.method == "bimp":
        return (spec.budget_epochs - spec.initial_epochs) // spec.level_count  # the earlier levels take the remainder
    return recipe.eval.epochs


def check_forward(recipe: Recipe, model: torch.nn.Module, data: Dataset) -> None:
    """The model must take a batch of the dataset's inputs and give a score per class: tried on
    two examples, so that a model that does not fit the data is said before training, not as a
    traceback from inside torch at the first step (or, for too many outputs, not at all)."""
    batch = data.x_train[:2]
    what = f"model {recipe.model.name!r} on a batch of dataset {recipe.data.name!r} (inputs of shape {tuple(batch.shape)}, float32)"
    try:
        with torch.no_grad(), evaluating(model):
            output = model(batch)
    except USER_ERRORS as error:
        raise RecipeError(user_error(f"{what} fails", error)) from error
    expected = (len(batch), data.num_classes)
    if not isinstance(output, torch.Tensor) or not output.is_floating_point() or tuple(output.shape) != expected:
        got = f"{output.dtype} scores of shape {tuple(output.shape)}" if isinstance(output, torch.Tensor) else f"a {type(output).__name__}"
        raise RecipeError(f"{what} returns {got}; training needs floating-point scores of shape {expected}, "
                          f"one per class of the dataset's {data.num_classes}")  # fmt: skip


def check_augment(recipe: Recipe, data: Dataset) -> None:
    """A dataset's augmentation must keep the batch's shape: tried on two examples, so that a
    wrong one is said before training, not as a shape error deep inside the model."""
    if not recipe.data.augment or data.augment is None:
        return
    batch = data.x_train[:2].clone()  # a copy: an augmentation may work in place
    try:
        augmented = data.augment(batch, torch.Generator().manual_seed(0))
    except USER_ERRORS as error:
        raise RecipeError(user_error(f"data.augment: the augmentation of dataset {recipe.data.name!r} fails on a batch of shape "
                                     f"{tuple(batch.shape)}", error)) from error  # fmt: skip
    if not isinstance(augmented, torch.Tensor) or augmented.shape != batch.shape:
        got = tuple(augmented.shape) if isinstance(augmented, torch.Tensor) else type(augmented).__name__
        raise RecipeError(f"data.augment: the augmentation of dataset {recipe.data.name!r} returns {got} for a batch of shape "
                          f"{tuple(batch.shape)}; it must return the batch's shape (or set data.augment: false)")  # fmt: skip


def sparsity_targets(spec: PruneBase) -> list[float]:
    """The sparsity each pruning step of a run prunes to (IMP's levels; one-shot's and GMP's one target)."""
    return level_targets(spec.rate, spec.sparsity, spec.levels) if spec.method in ("imp", "bimp") else [spec.sparsity]


def check_keeps_a_weight(spec: PruneBase, sizes: dict[str, int]) -> None:
    """A final sparsity that rounds to every prunable weight leaves a model that computes
    nothing, and no speedup to report: refused before any training."""
    targets = sparsity_targets(spec)
    final = targets[-1]
    total = sum(sizes.values())
    if total == 0:
        raise RecipeError(f"model: its prunable weights hold no values ({', '.join(sizes)}): nothing to prune")
    if spec.scope == "global":
        everything = round(final * total) >= total
    else:
        everything = all(round(final * size) >= size for size in sizes.values())
    if everything:
        where = f"all {total:,} prunable weights" if spec.scope == "global" else "every weight of every prunable layer"
        limit = 1 - 0.5 / (max(sizes.values()) if spec.scope == "layerwise" else total)
        if getattr(spec, "levels", None) is not None:  # IMP's levels set how far it prunes, not its sparsity
            keeping = sum(1 for target in targets if target < limit)
            advice = f"prune.levels={spec.levels} goes that far; " + (
                "at most 1 level keeps some weight" if keeping == 1 else f"at most {keeping} levels keep some weight"
            )
        else:
            advice = f"below {limit:.6g} some weight stays"
        raise RecipeError(
            f"prune: a final sparsity of {final:.6g} rounds to {where}, which leaves a model that computes nothing; {advice}"
        )


def check_prunes_a_weight(spec: PruneBase, sizes: dict[str, int], ratios: dict[str, float] | None) -> None:
    """A sparsity above 0 (or ``ratios``, per prunable tensor) that rounds to no weight at all
    would run the dense model as a pruned one: refused before any training."""
    final = sparsity_targets(spec)[-1]
    if ratios is not None:
        targets = [(ratio, sizes[name]) for name, ratio in ratios.items()]
    else:
        targets = [(final, sum(sizes.values()))] if spec.scope == "global" else [(final, size) for size in sizes.values()]
    if not any(target for target, _ in targets) or any(round(target * size) for target, size in targets):
        return
    if ratios is not None:
        each = "; ".join(f"{name}: {ratio:g} of {sizes[name]:,}" for name, ratio in ratios.items())
        raise RecipeError(f"prune.ratios round to no weight of their layers ({each}), so the run would prune nothing; "
                          "a ratio above 0.5 / the layer's weights prunes one")  # fmt: skip
    where = f"none of the {counted(targets[0][1], 'prunable weight')}" if spec.scope == "global" else \
        f"no weight in any prunable layer (the largest has {max(sizes.values()):,})"
    if getattr(spec, "levels", None) is not None:  # IMP's levels set how far it prunes, not its sparsity
        what, advice = f"prune.levels={spec.levels} at prune.rate={spec.rate:g} reach a sparsity of {final:.3g}, which", "raise prune.rate"
    else:
        one = 1 / (targets[0][1] if spec.scope == "global" else max(sizes.values()))
        what, advice = f"prune.sparsity={spec.sparsity:g}", f"{one:.3g} prunes one (0: a run that prunes none)"
    raise RecipeError(f"{what} rounds to {where}, so the run would prune nothing; {advice}")


def check_channel_pruning(recipe: Recipe, model, data) -> None:
    """The model traces into channel groups, include/exclude and ratios name them, and the
    target leaves every group a channel: the channel pruning of a run, tried on a fresh model."""
    try:
        channels = recipe_channel_pruner(recipe, model, torch.zeros(1, *data.input_shape))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the run itself warns, once
            choose_channels(channels, recipe.prune)
        asked = any(recipe.prune.ratios.values()) if recipe.prune.scope == "ratios" else recipe.prune.sparsity
        if asked and not channels.channel_sparsity():
            setting = "prune.ratios round" if recipe.prune.scope == "ratios" else f"prune.sparsity={recipe.prune.sparsity:g} rounds"
            count = sum(group.size for group in channels.groups)
            raise ValueError(f"{setting} to none of the {counted(count, 'channel')} of the prunable groups, so the run would prune nothing")
        channels.shrink()
    except ValueError as error:
        raise RecipeError(f"prune (criterion {recipe.prune.criterion}): {error}") from None


def check_same_experiment(folder: Path, recipe: Recipe) -> None:
    """A run directory gathers seeds of one experiment: its recipe, read with today's
    defaults, must set everything as ``recipe`` does. (Run names hash the settings that
    differ from the defaults, so a changed default would otherwise mix two experiments.)
    ``model.weights`` is left out: the run name holds the file's digest, so the same weights
    given by another path (a copy) are the same run."""
    if not (folder / "recipe.yaml").exists():
        return
    ours, theirs = experiment_settings(recipe), run_settings(folder)
    for settings in (ours, theirs):
        settings.pop("model.weights", None)
    changed = [key for key in dict.fromkeys([*ours, *theirs]) if ours.get(key) != theirs.get(key)]
    if changed:
        shown = "; ".join(f"{key}: {theirs.get(key)!r} there, {ours.get(key)!r} now" for key in changed)
        raise RecipeError(
            f"{folder} holds runs of other settings ({shown}), as after a change of a default; "
            "run into another --out, or remove that directory"
        )


def check_plan(recipes: Sequence[tuple[str, Recipe]], out: str | Path = "runs") -> dict[Path, Dataset]:
    """The checks :func:`run_recipe` makes before training, for every recipe of a sweep (with
    its label; a recipe alone has none) at once, so that a bad one fails before the first
    trains. A recipe that copies the LPR or masks of another one of the plan (``prune.lpr_of``,
    ``prune.masks_of``) is checked when it runs, after it. Returns the data of each run
    directory it checked, for :func:`run_recipe` to train on without loading it or making the
    checks again."""
    labels_of: dict[Path, list[str]] = {}
    for label, recipe in recipes:
        labels_of.setdefault(run_folder(out, recipe).resolve(), []).append(label)
    for folder, labels in labels_of.items():
        if len(labels) > 1:
            raise RecipeError(
                f"[{labels[0]}] and [{labels[1]}] are the same run, {folder.name}: what tells them apart is not part of a "
                "run's settings (a field the recipe does not read; or seeds, which one run gathers: give seeds: [0, 1] "
                "rather than a grid over them)"
            )
    planned = set(labels_of)
    datasets, checked = {}, {}  # each dataset loaded once
    for label, recipe in recipes:
        folder = run_folder(out, recipe)
        try:
            check_same_experiment(folder, recipe)
            resolve_device(recipe.device)  # a device torch cannot see: said for every recipe, by every process alike
        except ValueError as error:
            raise RecipeError(f"[{label}] {error}" if label else str(error)) from None
        if agree(set(recipe.seeds) <= set(finished_seeds(folder))):
            continue
        if recipe.prune.reference is not None and Path(recipe.prune.reference).resolve() in planned:
            continue
        try:
            source = (recipe.data.name, recipe.data.data_dir, recipe.data.download)
            if source not in datasets:
                datasets[source] = recipe_data(recipe)
            preflight(recipe, datasets[source])
        except ValueError as error:  # RecipeError, and the checks of the rewinding point
            raise RecipeError(f"[{label}] {error}" if label else str(error)) from None
        checked[folder.resolve()] = datasets[source]
    return checked


@contextlib.contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``count`` (the recipe's ``threads``) inside the block, and
    back to what they were after it; None leaves them as they are. Several threads on cores
    that other work keeps busy are warned about, once."""
    if count is None:
        warn_of_busy_cores(torch.get_num_threads())
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    warn_of_busy_cores(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


LOADAVG, OWN_THREADS = Path("/proc/loadavg"), Path("/proc/self/task")


@functools.cache  # once a process (a thread count): its own training later keeps the cores busy too
def warn_of_busy_cores(threads: int) -> None:
    """torch's threads wait for each other by spinning: more of them than the cores other work
    leaves free ran the default job 3 to 11 times slower than one thread (load 2 and 8 on 2
    cores). Busy: threads of other processes running right now (Linux's ``/proc/loadavg``, less
    this process's own, such as torch's still spinning after its last op) and over the last
    minute. Not said where CUDA trains."""
    try:
        load, _, _, running, *_ = LOADAVG.read_text().replace("/", " ").split()
        own = sum(task.read_text().rsplit(")", 1)[1].split()[0] == "R" for task in OWN_THREADS.glob("*/stat"))
    except (OSError, ValueError, IndexError):  # not Linux: nothing to tell
        return
    cores, others = os.cpu_count() or 1, int(running) - max(1, own)
    if threads > 1 and others >= 1 and float(load) >= 1 and others + threads > cores and not torch.cuda.is_available():
        warnings.warn(
            f"the CPU is busy ({counted(others, 'thread')} of other processes running on {counted(cores, 'core')}, "
            f"load {float(load):.1f}) and torch runs {threads} threads, which wait for each other by spinning: "
            "threads=1 (--set threads=1) can train several times faster (the results may differ in their last bits)",
            stacklevel=5,  # the caller of run_recipe, past the context manager
        )


def environment(device: torch.device) -> dict:
    """What a seed ran on: its speed and the last bits of its results depend on it (the
    thread count changes the order of float sums)."""
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "processes": world().size,
        "torch": torch.__version__,
        "prunelab": __version__,
    }


def progress_shows() -> bool:
    """Whether progress bars show by default: on a terminal or in a notebook, where they
    redraw one line; in a log file they would be clutter, and on a terminal that reports no
    size (some containers' and recorders' pseudo-terminals) tqdm draws nothing, so the log
    lines serve there too."""
    if "ipykernel" in sys.modules:
        return True
    if not sys.stderr.isatty():
        return False
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return size.columns > 0 and size.lines > 0


def run_recipe(recipe: Recipe, out: str | Path = "runs", progress: bool | None = None, data: Dataset | None = None) -> Path:
    """Run every seed of ``recipe`` that has not finished yet; returns the run directory.
    Progress bars show when ``progress`` is True, or if None, as :func:`progress_shows` says.
    ``data``: the recipe's data as :func:`check_plan` loaded it, having made the checks that
    need it, which are then not made again.

    >>> from prunelab.config import load_recipe
    >>> folder = run_recipe(load_recipe("gmp", ["find.epochs=5"]), out="runs")  # doctest: +SKIP
    """
    if not isinstance(recipe, Recipe):
        raise TypeError(
            f"run_recipe takes a Recipe, e.g. prunelab.config.load_recipe('gmp', ['find.epochs=5']); got {type(recipe).__name__}"
        )
    for message in unused_settings(recipe):
        warnings.warn(message, stacklevel=2)
    with cpu_threads(recipe.threads):
        return _run_recipe(recipe, out, progress_shows() if progress is None else progress, data)


def _run_recipe(recipe: Recipe, out: str | Path, progress: bool, data: Dataset | None) -> Path:
    device = resolve_device(recipe.device)
    folder = run_folder(out, recipe)
    check_same_experiment(folder, recipe)  # finished or not: its results must be of this recipe
    remove_orphans(folder, locked=False)  # its own files; each seed's, under the seed's lock
    pending = agree(sorted(set(recipe.seeds) - set(finished_seeds(folder)), key=recipe.seeds.index))
    # The checks build models and each seed seeds the global RNG: the caller's random state is left as it was.
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if device.type == "cuda" else []):
        if pending:
            if data is None:
                data = recipe_data(recipe)
                preflight(recipe, data)  # before the run directory exists, so a bad recipe leaves nothing behind
            for message in data_advice(recipe, len(data.x_train)) + interrupted_elsewhere(out, recipe):
                warnings.warn(message, stacklevel=3)
            write_seeds(folder, recipe)
        # Seeds another command is running come last, once this one has run the others. The
        # run's summary follows every seed, so that an interrupted run shows the seeds it finished.
        waiting = []
        for seed in pending:
            if run_seed(folder / f"seed-{seed}", recipe, seed, data, device, progress, wait=False):
                write_json(folder / SUMMARY, aggregate(folder, recipe, seed_summaries(folder)))
            else:
                waiting.append(seed)
        for seed in waiting:
            run_seed(folder / f"seed-{seed}", recipe, seed, data, device, progress)
        # Again: a command beside this one may have written its own seeds meanwhile; or
        # restored, if it was deleted from a finished run (show and compare read it).
        if pending or not (folder / "recipe.yaml").exists():
            write_seeds(folder, recipe)
    summaries = seed_summaries(folder)
    write_json(folder / SUMMARY, aggregate(folder, recipe, summaries))
    if world().is_main and recipe.prune.method in ("imp", "bimp"):
        plot_levels(summaries, folder / "levels.png", levels_title(recipe, folder.name, [s["seed"] for s in summaries]))
    return folder


def write_seeds(folder: Path, recipe: Recipe) -> None:
    """The run directory's ``recipe.yaml``: it gathers the seeds of every command, so that
    its recipe names them all (those of ``recipe`` and those finished)."""
    seeds = sorted({*recipe.seeds, *finished_seeds(folder)})
    write_text(folder / "recipe.yaml", recipe_yaml(recipe.model_copy(update={"seeds": seeds})))


def run_folder(out: str | Path, recipe: Recipe) -> Path:
    """The run directory of ``recipe`` under ``out``: its run name, and the number of
    processes if several train it, because BatchNorm statistics are per process, so that
    their results differ from one process's (and runs of several counts never mix)."""
    processes = world().size
    return Path(out) / (run_name(recipe) + (f"-{processes}proc" if processes > 1 else ""))


def interrupted_seeds(out: str | Path, recipe: Recipe) -> list[int]:
    """The seeds of ``recipe`` that an earlier command started and did not finish, and no
    other command is running: their folder, or the find phase they share with other runs,
    holds a checkpoint to resume from."""
    folder, key = run_folder(out, recipe), find_key(recipe, resolve_device(recipe.device))
    finished, seeds = set(finished_seeds(folder)), []
    for seed in recipe.seeds:
        if seed in finished or busy(folder / f"seed-{seed}"):  # another command is running it
            continue
        find = Path(out) / FIND_CACHE / key / f"seed-{seed}" / CHECKPOINT
        if (folder / f"seed-{seed}" / CHECKPOINT).exists() or (find.exists() and "find" not in read_journal(find)["done"]):
            seeds.append(seed)
    return seeds


def interrupted_elsewhere(out: str | Path, recipe: Recipe) -> list[str]:
    """What to say of the run directories of ``recipe``'s settings over other numbers of
    processes (see :func:`run_folder`) that hold an interrupted seed: a run that
    trains starts anew beside them."""
    name, mine, device = run_name(recipe), run_folder(out, recipe), resolve_device(recipe.device)
    messages = []
    for folder in sorted(Path(out).glob(f"{glob.escape(name)}*")):
        count = re.fullmatch(rf"{re.escape(name)}(?:-(\d+)proc)?", folder.name)
        if folder == mine or not count:
            continue
        processes = int(count[1] or 1)
        # Interrupted in a seed's own phases (its checkpoint), or in the find phase it trains first.
        finds = [Path(out) / FIND_CACHE / find_key(recipe, device, processes) / f"seed-{seed}" for seed in recipe.seeds]
        if any((seed / CHECKPOINT).exists() and not seed_finished(seed) for seed in folder.glob("seed-*")) or any(
            _find_interrupted(find) for find in finds
        ):
            messages.append(f"{folder} holds seeds of these settings interrupted over {counted(processes, 'process', 'processes')}; "
                            f"this run over {world().size} starts anew in {mine}: resume that one with as many")  # fmt: skip
    return messages


def _find_interrupted(folder: Path) -> bool:
    """Whether a find phase's folder holds a checkpoint short of its end that no command is
    training now (a damaged one counts: running again trains it anew)."""
    if not (folder / CHECKPOINT).exists() or busy(folder):
        return False
    try:
        return "find" not in read_journal(folder / CHECKPOINT)["done"]
    except DamagedRunError:
        return True


def find_key(recipe: Recipe, device: torch.device, processes: int | None = None) -> str:
    """What the find phase depends on: data, model, its training, the weights it keeps for
    late rewinding (epoch:K, step:K; none, init and reinit need nothing more of it, so their
    runs share one) and for the LPR record (``find.lpr_every``), the device type and the
    number of processes (see :func:`run_folder`; this run's if None)."""
    processes = world().size if processes is None else processes
    kept = lpr_snapshot_epochs(recipe)
    # lpr_every counts only through the weights it keeps (below): runs keeping none share a find phase.
    find_phase = recipe.find_training.model_dump(mode="json", exclude={"lpr_every"})
    if find_phase["stop_epoch"] in (None, find_phase["epochs"]):  # stopping at the last epoch is the whole training: one key
        del find_phase["stop_epoch"]
    if find_phase["lr_schedule"]["name"] != "halving":  # read by halving alone, added after the keys of find phases cached before it
        del find_phase["lr_schedule"]["max_stage_epochs"]
    settings = {
        "data": recipe.data.model_dump(mode="json", exclude={"data_dir", "download"}),
        "model": recipe.model.model_dump(mode="json", exclude={"weights"}),
        **({"weights": weights_digest(recipe.model.weights)} if recipe.model.weights is not None else {}),
        "find": find_phase,
        "rewind": rewind_target(recipe.eval.rewind),
        **({"lpr_epochs": kept} if kept else {}),
        "device": device.type,
        **({"processes": processes} if processes > 1 else {}),
    }
    return settings_digest(settings, length=12)


def shared_find(out: Path, recipe: Recipe, seed: int, data, device: torch.device, progress: bool) -> Path:
    """The folder of a finished find phase for this recipe and seed, trained once per ``out``
    and shared by every run whose find phase is the same (e.g. all retraining policies)."""
    folder = out / FIND_CACHE / find_key(recipe, device) / f"seed-{seed}"
    with exclusive(folder, progress_label(recipe, seed, "find")):
        remove_orphans(folder, locked=True)
        session = Session(folder, recipe, seed, data, device, progress)
        if "find" in session.journal["done"] and world().is_main:
            log.info("%s: trained before, kept for every run with this find phase (%s)", progress_label(recipe, seed, "find"), folder)
        find(session)
    return folder


def remove_orphans(folder: Path, locked: bool) -> None:
    """Remove the temporary files a kill in the middle of a write left (each may be a whole
    checkpoint), before work resumes: in ``folder`` and its subfolders if this process holds
    its lock, where no other writes; else only in ``folder`` itself, and only those last
    written before this process started, not a write going on beside it."""
    if world().is_main:
        for orphan in folder.glob("**/.*.tmp" if locked else ".*.tmp"):
            try:
                if locked or orphan.stat().st_mtime < STARTED:
                    orphan.unlink()
            except FileNotFoundError:  # renamed meanwhile by the write it belongs to
                pass
            except OSError as error:  # a folder made read-only since: named, not errno's words alone
                raise OSError(f"cannot remove {orphan}, the temporary file of a write cut short: "
                              f"{error.strerror or error}") from None


def run_seed(folder: Path, recipe: Recipe, seed: int, data, device: torch.device, progress: bool, wait: bool = True) -> bool:
    """Run one seed into ``folder`` (resuming it if it was interrupted) and write its results,
    unless another process has finished it meanwhile. While another process runs it, wait
    for that one, or, unless ``wait``, return False at once; else True."""
    with exclusive(folder, progress_label(recipe, seed, "run"), wait) as mine:
        if mine and not agree(seed_finished(folder)):
            remove_orphans(folder, locked=True)
            write_seed(folder, recipe, seed, data, device, progress)
    return mine


def write_seed(folder: Path, recipe: Recipe, seed: int, data, device: torch.device, progress: bool) -> None:
    """Run one seed into ``folder``, resuming it if it was interrupted, and write its results."""
    # Overwritten meanwhile (a training still saving to it): this seed would start from other weights than the run's.
    # The main process's look decides, so that every process stops or none.
    if recipe.model.weights is not None and agree(run_folder(folder.parents[1], recipe) != folder.parent):
        raise RecipeError(f"model.weights: {recipe.model.weights} changed while this run ran: {folder.parent} is named by its "
                          "earlier contents, which its seeds so far started from; run again for a run of the file as it is now")  # fmt: skip
    if not agree((folder / CHECKPOINT).exists()):
        copy_shared_find(folder, shared_find(folder.parents[1], recipe, seed, data, device, progress))
    session = Session(folder, recipe, seed, data, device, progress)
    results = METHODS[recipe.prune.method](session)
    # Every step that reads the kept weights is recorded in the checkpoint: running the seed
    # again (to rebuild a result file) replays them without reading, so they only take disk.
    session.drop_weights()
    write_results(session)
    summary = {
        "method": recipe.prune.method,
        "seed": seed,
        **results,
        "sparsity": session.sparsity(),
        **({"channel_sparsity": session.channels.channel_sparsity()} if session.channels is not None else {}),
        **session.parameter_counts(),
        "speedup": session.speedup(),
        "total_epochs": session.total_epochs(),
        "images_per_second": session.images_per_second(),
        "wall_seconds": session.elapsed(),
        "environment": environment(device),
    }
    if world().is_main:  # the plots read the files only the main process writes
        plot_training(folder, summary, training_label(recipe))
    write_json(folder / SUMMARY, summary)
    barrier()  # the run directory's summary reads every seed's


def copy_shared_find(folder: Path, found: Path) -> None:
    """Start a seed's folder from the finished find phase in ``found``: its snapshots, then
    its checkpoint, whose presence is what marks the copy as done. Only the main process,
    the one that writes, reads them: another may get here before the main one has written
    the find phase's last checkpoint."""
    if world().is_main:
        for source in [*sorted((found / "snapshots").glob("*.safetensors")), found / CHECKPOINT]:
            write_bytes(folder / source.relative_to(found), source.read_bytes())
    barrier()


def write_results(session: Session) -> None:
    """A finished seed's result files and plots (the layout in this module's docstring)."""
    folder, done = session.folder, session.journal["done"]
    phases = session.trained_phases()
    rows = [row for phase in phases for row in done[phase]["history"]]
    write_csv(folder / "metrics.csv", rows)
    write_json(folder / "metrics.json", rows)
    write_json(folder / "lr_log.json", {phase: done[phase]["lr_log"] for phase in phases})
    write_json(folder / "layer_sparsity.json", session.layer_counts())
    write_json(folder / "events.json", {key: value for key, value in done.items() if key not in phases})
    if session.channels is not None:
        write_json(folder / "channels.json", session.channels.state_dict())
    save_tensors(session.pruner.state_dict(), folder / "masks.safetensors")
    save_tensors(session.model.state_dict(), folder / "model.safetensors")
    if world().is_main:  # the plots read the files only the main process writes
        plan = done.get("gmp/plan")
        if plan:
            end, epochs = len(done["eval"]["lr_log"]), len(done["eval"]["history"])
            plot_sparsity_schedule(plan["update_steps"], plan["sparsity"], plan["finetune_step"], end, folder / "sparsity_schedule.png",
                                   epochs, session.recipe.prune.schedule)  # fmt: skip
        record = first_lpr_record(done)
        if record:
            plot_lpr_during_find(record, folder / "lpr_during_find.png", f"{folder.parent.name} ({folder.name})")


def seed_summaries(folder: Path) -> list[dict]:
    """The summaries of the run directory's finished seeds, including seeds added by earlier
    commands, in the order of the seeds."""
    return [read_json(folder / f"seed-{seed}" / SUMMARY, keys=["seed"]) for seed in finished_seeds(folder)]


def aggregate(folder: Path, recipe: Recipe, summaries: list[dict]) -> dict:
    """Mean and standard deviation of every numeric field of the seeds' ``summaries``."""
    # Every field any seed has: seeds run by an older version may lack newer ones.
    fields = list(dict.fromkeys(k for s in summaries for k, v in s.items() if isinstance(v, (int, float)) and k != "seed"))
    stats = {}
    for key in fields:
        values = [s[key] for s in summaries if isinstance(s.get(key), (int, float))]
        stats[key] = mean_std(values)
    return {"run": folder.name, "method": recipe.prune.method, "seeds": [s["seed"] for s in summaries], "stats": stats}
