"""What each ``prunelab`` command does, once :mod:`prunelab.cli` has parsed its arguments: run
recipes, list them, show, compare and report runs, the LR range test and the pruning
sensitivity analysis; errors said in one line, with the command's exit code."""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import io
import logging
import math
import os
import re
import shlex
import shutil
import sys
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING

import torch

from prunelab.cli import LR_RANGE
from prunelab.config import RecipeError, builtin_recipes, load_recipe, load_run_recipe, run_name
from prunelab.config.load import parse_override, recipe_text, settings_digest
from prunelab.config.sweep import grid_label, grid_value, load_plan, summary_meanings
from prunelab.distributed import MainProcessFailed, join_from_environment, leave, main_first, wait_until_main_leaves, world
from prunelab.models.registry import close_name
from prunelab.report import format_stat, format_table
from prunelab.report.tables import mean_std, numbered, transposed
from prunelab.runs.io import read_json, write_text
from prunelab.train.trainer import TrainingDiverged
from prunelab.user_code import named, raised_at, user_error
from prunelab.wording import counted, plural

if TYPE_CHECKING:
    from prunelab.runs.session import Session


def execute(args: argparse.Namespace) -> int:
    """Do the command ``args`` names (as :func:`prunelab.cli.main` parsed them); its exit code."""
    try:
        processes = join_from_environment()  # started by torchrun: one of several processes
        if processes.size > 1 and args.command != "run":
            if processes.is_main:  # every process meets it: said once
                print(f"prunelab: error: only `prunelab run` works over several processes; run `prunelab {args.command}` without torchrun", file=sys.stderr)
            wait_until_main_leaves()  # torchrun stops the others once one ends: none ends before the main process has said why
            return 2
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stdout if processes.is_main else io.StringIO()):
            # Each distinct warning once per command: Python's own once-per-place registry
            # would show a sweep's repeated warning for some recipes and not for others.
            warnings.simplefilter("always", UserWarning)
            warnings.showwarning = functools.partial(_show_warning, shown=set())
            # Every process meets a module that fails to import alike: the main one tries first and says why.
            main_first(lambda: _import(args.imports))
            with _log_lines(args):
                return COMMANDS[args.command](args)
    except BrokenPipeError:  # e.g. `prunelab show RUN | head`: the reader is gone, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (RecipeError, OSError, ValueError) as error:  # OSError: e.g. --out is a file, or read-only
        if world().is_main:
            print(f"prunelab: error: {_said(error)}", file=sys.stderr)
        # Every process meets a bad setting, and a loss summed over them, alike: said once. Other
        # trouble may be this process's own, which the main one does not meet.
        elif not isinstance(error, (RecipeError, TrainingDiverged)):
            print(f"prunelab: error: process {world().rank} of {world().size}: {_said(error)}", file=sys.stderr)
        else:  # said by the main process: this one ends after it did
            wait_until_main_leaves()
        return 2
    except MainProcessFailed:  # the main process says why
        wait_until_main_leaves()
        return 2
    except Exception as error:  # a bug (a RuntimeError, an AttributeError in a model's forward, ...)
        if world().size > 1 and isinstance(error, RuntimeError) and _lost_contact(error):
            # One process that stops (its own error, or killed) breaks the others' next collective
            # call: each says so in one line, and the one that stopped says why.
            print(f"prunelab: error: process {world().rank} of {world().size} stopped: {_first_line(error)}", file=sys.stderr)
            return 1
        if world().is_main:
            raise  # its traceback helps (once: the other processes likely meet it too)
        # One line, with where: the main process may not meet it (a model failing on this process's examples alone).
        print(f"prunelab: error: process {world().rank} of {world().size}: {named(error).splitlines()[0]}{raised_at(error)}",
              file=sys.stderr)  # fmt: skip
        return 1
    except KeyboardInterrupt:
        if world().is_main:  # torchrun passes Ctrl-C to every process: say it once
            # On a terminal the line starts below the ^C (and any progress bar); in a log, no blank line.
            print(("\n" if sys.stderr.isatty() else "") + "prunelab: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        leave()


#: What collective calls say when another process is gone: Gloo's transport (a peer's closed
#: connection, a receive that timed out), NCCL's watchdog and aborted communicators.
LOST_CONTACT = re.compile(
    r"gloo/transport/|by peer|connection (?:reset|closed|refused)|communicator was aborted|collective operation timeout",
    re.IGNORECASE,
)


def _lost_contact(error: RuntimeError) -> bool:
    """Whether ``error`` is a collective call failing because another process stopped, not a bug."""
    network = (torch.distributed.DistNetworkError, torch.distributed.DistStoreError)
    return isinstance(error, network) or bool(LOST_CONTACT.search(str(error)))


def _said(error: Exception) -> str:
    """An expected error as a command reports it: its text; without one (a bare ``raise ValueError``
    in the user's code), its type and where it was raised."""
    return str(error).strip() or f"{named(error)}{raised_at(error)}"


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _import(modules: Sequence[str]) -> None:
    """Import the modules of --import, the current folder first on the path, as ``python -m`` has it."""
    for module in modules:
        if not module:
            raise ValueError("--import needs a module's name, e.g. --import my_models for my_models.py")
        if module.startswith(".") or "/" in module or "\\" in module or module.endswith(".py"):
            # Windows' separators on any system; .my_models: a relative import needs a package
            name = PureWindowsPath(module).name.removesuffix(".py").lstrip(".")
            raise ValueError(f"--import {module}: give a module's name, as Python imports it (e.g. {name} for {name}.py)")
    folder = os.getcwd()
    sys.path.insert(0, folder)
    try:
        for module in modules:
            try:
                importlib.import_module(module)
            except ImportError as error:
                raise ValueError(f"--import {module}: {error}") from None
            except SyntaxError as error:  # where, in one line; a bug's errors (NameError, TypeError, ...) keep their traceback
                text = f": {error.text.strip()}" if error.text else ""
                raise ValueError(f"--import {module}: {error.msg} ({error.filename}, line {error.lineno}){text}") from None
            # ValueError and OSError the command would report as its own; a RuntimeError is what a
            # module raises to refuse (no GPU, a missing library), as a registered model's is said: as the module's.
            except (ValueError, OSError, RuntimeError) as error:
                raise ValueError(user_error(f"--import {module}", error)) from None
    finally:
        sys.path.remove(folder)


def _show_warning(message: Warning | str, category: type[Warning], *_where: object, shown: set[str], **_kwargs: object) -> None:
    # Deprecations are for whoever calls the deprecated code, not for a run's user (Python hides
    # them by default), yet some are UserWarnings too, which execute's filter shows always:
    # pyparsing's, which older matplotlib meets while it plots.
    if issubclass(category, DeprecationWarning):
        return
    if world().is_main and str(message) not in shown:  # once, not once per process or per recipe
        shown.add(str(message))
        print(f"prunelab: warning: {message}", file=sys.stderr)  # for users: no source lines


def _run(args: argparse.Namespace) -> int:
    from prunelab.report.runs import sweep_table, write_report
    from prunelab.runs.runner import check_plan, run_folder, run_recipe

    plan, sweep = load_plan(args.recipe, args.overrides)
    # A dry run makes nothing. An --out that cannot be used is said once, by the main process.
    main_first(lambda: (_check_out if args.dry_run else _make_out)(args.out))
    # Every arm's checks before the first trains, and before a run is said to start.
    checked = check_plan([(grid_label(assignment), recipe) for assignment, recipe in plan], args.out)
    if args.dry_run:
        return _dry_run(plan, sweep is not None, args.out, checked) if world().is_main else 0
    results = []
    for index, (assignment, recipe) in enumerate(plan, start=1):
        label = f" [{index}/{len(plan)}: {grid_label(assignment)}]" if sweep else ""
        if world().is_main:
            folder = run_folder(args.out, recipe)
            to_do = _seeds_to_do(args.out, recipe)
            interrupted = to_do["resume"]
            doing = "finished before, nothing to train:" if not any(to_do.values()) else "resuming" if interrupted else "running"
            resumed = f"; {_seed_list(interrupted)} {'picks up where it' if len(interrupted) == 1 else 'pick up where they'} stopped" if interrupted else ""
            print(f"prunelab: {doing} {folder.name} ({recipe.prune.method}, seeds {recipe.seeds}{resumed}){label}", file=sys.stderr)
        folder = run_recipe(recipe, args.out, progress=_progress(args), data=checked.get(run_folder(args.out, recipe).resolve()))
        results.append((assignment, folder))
    if not world().is_main:  # the main process reports
        return 0
    if sweep is None:
        print(_summary_table(results[0][1]))
        print(f"\nresults in {results[0][1]}")
        return 0
    if sweep.table is None:
        text = format_table([{**{k: grid_value(v) for k, v in assignment.items()}, "run": folder.name} for assignment, folder in results])
    else:
        text = sweep_table(results, sweep.table)
    name = Path(args.recipe).stem if args.recipe else "default"
    if args.overrides:  # another sweep than the recipe's own: a table of its own, whatever the order or spelling
        name += "-" + settings_digest(dict(map(parse_override, args.overrides)))
    launcher = ["prunelab"]
    if world().size > 1:  # its runs are other folders (run_folder): a table of its own
        name += f"-{world().size}proc"
        launcher = ["torchrun", "--nproc_per_node", str(world().size), "-m", "prunelab"]
    table_path = Path(args.out) / f"{name}-table.md"
    command = shlex.join([*launcher, "run", *([args.recipe] if args.recipe else []), *(part for o in args.overrides for part in ("--set", o))])
    write_text(table_path, f"Made by `{command}`.\n\n{text}\n")
    print(text)
    print(f"\n{counted(len(results), 'run')} in {args.out}; table in {table_path}")
    report = write_report([folder for _, folder in results], Path(args.out) / f"{name}-report", sweep=(results, sweep.table), command=command)
    print(f"report{', with the table as a plot' if sweep.table else ''}: {report}")
    return 0


def _seeds_to_do(out: str, recipe) -> dict[str, list[int]]:
    """The recipe's seeds by what ``run`` does with them: resume (interrupted),
    wait for (another command is running them), or train anew; finished seeds are in none."""
    from prunelab.runs.lock import busy
    from prunelab.runs.runner import interrupted_seeds, run_folder
    from prunelab.runs.session import finished_seeds

    folder = run_folder(out, recipe)
    left, interrupted = [seed for seed in recipe.seeds if seed not in finished_seeds(folder)], interrupted_seeds(out, recipe)
    waiting = [seed for seed in left if seed not in interrupted and busy(folder / f"seed-{seed}")]
    return {
        "resume": [seed for seed in left if seed in interrupted],
        "wait for another command running": waiting,
        "train": [seed for seed in left if seed not in interrupted and seed not in waiting],
    }


def _dry_run(plan: list, is_sweep: bool, out: str, checked: dict) -> int:
    """What ``run`` would do with the checked ``plan`` (``checked``: the data of each run
    directory :func:`~prunelab.runs.runner.check_plan` checked): a recipe alone as YAML
    (stdout) and its run directory and seeds to train (stderr); a sweep as a table of its runs."""
    from prunelab.config import recipe_yaml, unused_settings
    from prunelab.runs.runner import data_advice, interrupted_elsewhere, run_folder

    to_do = []
    for _, recipe in plan:
        by_action = _seeds_to_do(out, recipe)
        parts = [f"{action} {_seed_list(seeds)}" for action, seeds in by_action.items() if seeds]
        to_do.append("; ".join(parts) or "nothing, every seed finished before")
        # The warnings the run would give as it starts; those that need the data where check_plan loaded it.
        data = checked.get(run_folder(out, recipe).resolve())
        advice = data_advice(recipe, len(data.x_train)) if parts and data is not None else []
        for message in unused_settings(recipe) + advice + (interrupted_elsewhere(out, recipe) if parts else []):
            warnings.warn(message, stacklevel=1)
    if not is_sweep:
        recipe = plan[0][1]
        print(recipe_yaml(recipe), end="")
        print(f"prunelab: --dry-run, nothing trained; to do in {run_folder(out, recipe)}: {to_do[0]}", file=sys.stderr)
        return 0
    rows = [{**{key: grid_value(value) for key, value in assignment.items()}, "run": run_folder(out, recipe).name, "to do": text}
            for (assignment, recipe), text in zip(plan, to_do)]  # fmt: skip
    print(format_table(rows))
    print(f"\n{counted(len(plan), 'run')} in {out}; --dry-run, nothing trained")
    return 0


def _lr_range_test(args: argparse.Namespace) -> int:
    from prunelab.analysis import check_lr_range, lr_range_test
    from prunelab.analysis.lr_range import describe_rise
    from prunelab.report.plots import plot_lr_range
    from prunelab.runs.io import write_json

    with _named_as_options("start_lr", "end_lr", "steps"):
        check_lr_range(args.start_lr, args.end_lr, args.steps)  # before the find phase trains
    with _trained_session(args) as session:
        recipe, seed = session.recipe, session.seed
        result = lr_range_test(
            session.model, session.data, recipe.eval.optimizer, batch_size=recipe.eval.batch_size, start_lr=args.start_lr,
            end_lr=args.end_lr, steps=args.steps, label_smoothing=recipe.eval.label_smoothing, augment=recipe.data.augment,
            seed=seed, device=session.device, progress=session.progress,
        )
        # Another range (start, end, steps) gets a folder of its own.
        default = all(getattr(args, key) == value for key, value in LR_RANGE.items())
        own = "" if default else "-" + settings_digest([args.start_lr, args.end_lr, args.steps])
        folder = Path(args.out) / f"lr-range-test-{run_name(recipe)}{own}"
        # The first LR of each decade, then the last LRs before the inflection point and it.
        shown = {i for i, lr in enumerate(result.lrs) if i == 0 or math.floor(math.log10(lr)) != math.floor(math.log10(result.lrs[i - 1]))}
        if result.inflection_lr is not None:
            at = result.lrs.index(result.inflection_lr)
            shown |= set(range(max(0, at - 3), at + 1))
        print(f"{len(shown)} of the {len(result.lrs)} LRs tried (probe loss: the loss on the first training examples after the steps up to that LR):")
        print(format_table([
            {"lr": f"{result.lrs[i]:.2e}", "probe loss": f"{result.losses[i]:#.3g}",
             "note": "<- inflection" if result.lrs[i] == result.inflection_lr else ""}
            for i in sorted(shown)
        ]))  # fmt: skip
        if len(result.lrs) < args.steps:
            print(f"stopped at LR {result.lrs[-1]:.2e} of {args.end_lr:g}: the loss had diverged")
        print(f"\ntrained model's loss: {result.baseline:.4g}")
        rise = describe_rise(result.baseline, result.threshold)
        if result.inflection_lr is None:
            print(f"the loss never rose by {rise}: the model tolerates every LR up to the end; try a larger --end-lr")
        elif result.inflection_lr == result.lrs[0]:  # no flat stretch before it: the inflection point lies lower
            print(f"the loss rose by more than {rise} already at the first LR, {result.lrs[0]:.2e}: no pruning LR to suggest; try a smaller --start-lr")
        else:
            use = f"--set eval.optimizer.lr={result.inflection_lr:.3g}"
            if recipe.eval.lr_policy is not None:  # a policy sets the eval LR itself and would ignore it
                use = f"--set eval.lr_policy=null {use}, in place of the recipe's LR policy {recipe.eval.lr_policy}"
            print(f"suggested pruning LR: {result.inflection_lr:.3g}, the inflection point, where the probe loss is {rise} "
                  f"above the trained model's (seed 000)\n  e.g. {use}")
        # Written after the results are shown: a disk that cannot take them loses nothing computed.
        write_json(folder / "lr_range_test.json", {
            "lrs": result.lrs, "losses": result.losses, "baseline": result.baseline,
            "inflection_lr": result.inflection_lr,
        })
        plot_lr_range(result.lrs, result.losses, result.inflection_lr, folder / "lr_range_test.png", f"{run_name(recipe)}, seed {seed}",
                      baseline=result.baseline, threshold=result.threshold)  # fmt: skip
        print(f"\ncurve and plot in {folder}")
        return 0


@contextlib.contextmanager
def _named_as_options(*names: str) -> Iterator[None]:
    """A check of the analysis's arguments, its errors naming the options the user typed (``--start-lr``, not ``start_lr``)."""
    try:
        yield
    except (TypeError, ValueError) as error:
        pattern = r"\b(" + "|".join(names) + r")\b"
        raise type(error)(re.sub(pattern, lambda match: "--" + match[1].replace("_", "-"), str(error))) from None


def _sensitivity(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from prunelab.analysis import (
        DEFAULT_SPARSITIES,
        check_sparsities,
        max_sparsity_within,
        percent_labels,
        pruning_sensitivity,
    )
    from prunelab.report.plots import plot_sensitivity
    from prunelab.runs.io import write_json

    try:
        sparsities = list(DEFAULT_SPARSITIES) if args.sparsities is None else [float(s) for s in args.sparsities.split(",")]
    except ValueError:
        raise ValueError(f"--sparsities must be comma-separated numbers, e.g. 0.5,0.9,0.99; got {args.sparsities!r}") from None
    with _named_as_options("sparsities"):
        check_sparsities(sparsities)  # before the find phase trains
    with _trained_session(args) as session:
        recipe, data, prune = session.recipe, session.data, session.recipe.prune
        # The recipe's prunable weights; under a channel criterion include/exclude name channel groups, not weights.
        include, exclude = (None, None) if prune.prunes_channels else (prune.include, prune.exclude)
        result = pruning_sensitivity(
            session.model, data, sparsities, include=include, exclude=exclude, split=args.split, device=session.device,
            progress=session.progress,
        )
        measured_on = "training" if args.split == "train" else "test"
        examples = f"the first {min(len(data.x_train), len(data.x_test)):,} training examples" if args.split == "train" else "the test set"
        tolerance = 0.01  # one point of accuracy
        best = max_sparsity_within(result, tolerance)
        # Another analysis of the same model (other sparsities, the test set) gets a folder of its own.
        own = "" if args.sparsities is None and args.split == "train" else "-" + settings_digest([sparsities, args.split])
        folder = Path(args.out) / f"sensitivity-{run_name(recipe)}{own}"
        within = f"within {100 * tolerance:g} point up to"
        label = dict(zip(sparsities, percent_labels(sparsities)))  # distinct columns, however close the sparsities
        rows = [
            {"layer": name, "weights": f"{curve.size:,}",
             **{label[s]: f"{100 * a:.2f}%" for s, a in zip(curve.sparsities, curve.accuracies)},
             within: f"< {label[curve.sparsities[0]]}" if best[name] is None else label[best[name]]}
            for name, curve in result.layers.items()
        ]  # fmt: skip
        print(f"accuracy on {examples} with one layer alone pruned by magnitude to the sparsity of each column, no retraining:\n")
        print(format_table(rows))
        print(f"\ndense model's {measured_on} accuracy: {100 * result.dense_accuracy:.2f}%")
        # Written after the results are shown: a disk that cannot take them loses nothing computed.
        write_json(folder / "sensitivity.json", {
            **asdict(result), "tolerance": tolerance, "max_sparsity_within_tolerance": best,
        })
        curves = {name: (curve.sparsities, curve.accuracies) for name, curve in result.layers.items()}
        sizes = {name: curve.size for name, curve in result.layers.items()}
        plot_sensitivity(curves, result.dense_accuracy, folder / "sensitivity.png", f"{run_name(recipe)}, seed {recipe.seeds[0]}",
                         tolerance, best, sizes, measured_on)  # fmt: skip
        print(f"\ncurves and plot in {folder}")
        return 0


@contextlib.contextmanager
def _trained_session(args: argparse.Namespace) -> Iterator[Session]:
    """The session of the model the recipe's find phase trained (its first seed's; trained
    into ``--out`` if no run there has yet), with its recipe, data, device and progress, for
    the analyses of a trained model, which run inside the block with the recipe's ``threads``."""
    from prunelab.runs.runner import cpu_threads, preflight, resolve_device, shared_find
    from prunelab.runs.session import Session, recipe_data

    recipe = load_recipe(args.recipe, args.overrides)
    _make_out(args.out)
    seed, device, progress = recipe.seeds[0], resolve_device(recipe.device), _progress(args)
    with cpu_threads(recipe.threads):
        data = recipe_data(recipe)
        preflight(recipe, data, references=False)  # as a run checks its recipe: before the find phase trains, not after
        found = shared_find(Path(args.out), recipe, seed, data, device, progress)
        yield Session(found, recipe, seed, data, device, progress)


def _recipes(args: argparse.Namespace) -> int:
    if args.name is not None:
        if args.name not in builtin_recipes():
            raise RecipeError(f"no built-in recipe {args.name!r}{close_name(args.name, builtin_recipes())}; built-in recipes: {', '.join(builtin_recipes())}")
        print(recipe_text(args.name)[0], end="")
        return 0
    # A name per line and its description wrapped below it: a table of them would be far wider than a terminal.
    width = max(40, min(100, shutil.get_terminal_size().columns)) - 4
    for name, text in builtin_recipes().items():
        print(name)
        print(textwrap.fill(text, width, initial_indent="    ", subsequent_indent="    ", break_on_hyphens=False))
    print("\nrun one with: prunelab run NAME [--set KEY=VALUE ...]; print one with: prunelab recipes NAME")
    return 0


def _show(args: argparse.Namespace) -> int:
    for index, folder in enumerate(_run_folders(args.runs)):
        if index:
            print("\n")
        _show_run(folder)
    return 0


def _show_run(folder: Path) -> None:
    from prunelab.methods.common import first_lpr_record
    from prunelab.report.runs import kept_channels, unfinished_seeds
    from prunelab.report.setups import read_run_record

    # The run's record first: a damaged recipe is said before anything is printed.
    record = read_run_record(folder) if (folder / "recipe.yaml").is_file() else None
    print(_summary_table(folder))
    if left := unfinished_seeds(folder):
        print(f"\n{_unfinished(folder, left)}")
    if record is not None:
        pipeline = record.pipeline
        recipe = load_run_recipe(folder)
        find = recipe.find_training  # as the method read it (bimp ignores stop_epoch)
        stopped = find.stop_epoch not in (None, find.epochs)
        find_phase = "the find phase" + (f", stopped there in its {find.epochs}-epoch LR schedule" if stopped else "")
        pruning = f"{pipeline.pruning.epochs} of pruning"
        if recipe.prune.method == "gmp":  # seed 001's stages
            pruning += f" ({recipe.prune.stabilization_epochs} stabilizing, dense, then {recipe.prune.pruning_epochs} along the schedule)"
        if recipe.prune.method == "bimp":
            pruning += f" (a budget of prune.budget_epochs={recipe.prune.budget_epochs} in all)"
        retraining = f"{pipeline.retraining.epochs} of retraining"
        if record.reinit:  # a pruning run's network trained from scratch, or a random baseline: compare tells
            retraining += " from new random weights"
        print(f"\npipeline (seed 004's steps): {counted(pipeline.base.epochs, 'epoch')} of pretraining ({find_phase}), "
              f"{pruning}, {retraining}")  # fmt: skip
    seed_folders = [folder / f"seed-{seed}" for seed in read_json(folder / "summary.json")["seeds"]]  # the finished ones
    _environments(seed_folders)
    _levels_table(seed_folders)
    _layers_table(seed_folders)
    for seed_folder in seed_folders:
        events = read_json(seed_folder / "events.json")
        lpr_record = first_lpr_record(events)
        if lpr_record:
            distances = ", ".join(f"{e}: {100 * d:.2f}" for e, d in zip(lpr_record["epochs"], lpr_record["distance"]))
            print(f"\nLPR if pruned after each kept epoch of the find phase, distance from the final LPR in percentage "
                  f"points ({seed_folder.name}; lpr_during_find.png shows the layers): {distances}")  # fmt: skip
        if channels := kept_channels(seed_folder):
            rows = [{"channel group": name, "kept channels": f"{kept} of {size}",
                     "removed": format_stat("sparsity", {"mean": (size - kept) / size, "std": 0.0})}
                    for name, (kept, size) in channels.items()]  # fmt: skip
            print(f"\nchannels ({seed_folder.name}):")
            print(format_table(rows))


def _over_seeds(seed_folders: Sequence[Path]) -> str:
    if len(seed_folders) == 1:
        return seed_folders[0].name
    return "mean ± std over seeds " + ", ".join(seed.name.removeprefix("seed-") for seed in seed_folders)


def _environments(seed_folders: Sequence[Path]) -> None:
    """What the seeds ran on."""
    ran_on: dict[str, list[str]] = {}
    for seed in seed_folders:
        if environment := read_json(seed / "summary.json").get("environment"):
            count, processes = environment["threads"], environment["processes"]
            threads = counted(count, "thread") + (f" in each of {processes} processes" if processes > 1 else "")
            text = f"{environment['device']}, {threads}; torch {environment['torch']}, prunelab {environment['prunelab']}"
            ran_on.setdefault(text, []).append(seed.name.removeprefix("seed-"))
    for text, seeds in ran_on.items():
        print(f"\nran on {text} ({_seed_list(seeds)})")


def _levels_table(seed_folders: Sequence[Path]) -> None:
    """IMP's and BIMP's levels, one row per level, over the finished seeds."""
    levels = {seed: read_json(seed / "summary.json").get("levels") for seed in seed_folders}
    levels = {seed: points for seed, points in levels.items() if points}
    if not levels:
        return
    rows = [{key: points[0][key] if key == "level" else _stat(key, [p.get(key) for p in points]) for key in points[0]}
            for points in zip(*levels.values())]  # fmt: skip
    print(f"\nlevels ({_over_seeds(list(levels))}):")
    print(format_table(rows))


def _stat(key: str, values: list) -> str:
    """Mean ± std of the values that are numbers (a level that did not retrain has no TA)."""
    numbers = [value for value in values if isinstance(value, (int, float))]
    return format_stat(key, mean_std(numbers) if numbers else None)


def _layers_table(seed_folders: Sequence[Path]) -> None:
    """The layerwise pruning ratios of the final masks, over the seeds."""
    layers = {seed: read_json(seed / "layer_sparsity.json") for seed in seed_folders}
    if not any(layers.values()):
        return
    rows = []
    for name in next(iter(layers.values())):
        counts = [seed_layers[name] for seed_layers in layers.values()]
        rows.append({
            "layer": name, "weights": f"{counts[0]['numel']:,}",
            "remaining": format_stat("remaining_parameters", mean_std([c["remaining"] for c in counts])),
            "sparsity": format_stat("sparsity", mean_std([c["sparsity"] for c in counts])),
        })  # fmt: skip
    print(f"\nlayerwise pruning ratios ({_over_seeds(list(layers))}):")
    print(format_table(rows))


def _compare(args: argparse.Namespace) -> int:
    from prunelab.methods import METHODS
    from prunelab.report.runs import comparison_rows, load_runs, run_label, run_names, shared_values, unread_note, value_meanings
    from prunelab.report.setups import describe_setup, differing_settings

    values = None if args.values is None else list(dict.fromkeys(value.strip() for value in args.values.split(",")))
    known = dict.fromkeys(key for method in METHODS for key in summary_meanings(method))
    if values is not None and (unknown := [value for value in values if value not in known]):
        raise ValueError(f"--values: unknown summary value {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
    folders = _run_folders(args.runs)
    # In the order of the settings that tell them apart (runs of a sweep differ only in their hash otherwise).
    runs = load_runs(folders)
    rows, columns, shared = comparison_rows(runs, values)
    # The setup names the runs as a report does: by the settings that differ, or by numbers in a column of their own.
    keys = differing_settings([run.settings for run in runs])
    names, by_number = run_names([run_label(run.settings, keys) for run in runs])
    table = format_table(*(numbered(rows, columns) if by_number else (rows, columns)))
    # A few runs of many columns (other methods' settings) read better turned, a column per run.
    if len(runs) > 1 and (width := _terminal_width()) is not None and _width(table) > width:
        headers = names if max(map(len, names)) <= TURNED_HEADER_WIDTH else [f"#{i}" for i in range(1, len(runs) + 1)]
        turned = format_table(*transposed(rows, columns[:-1], headers))  # the folders' names below, not as a row
        if _width(turned) < _width(table):
            names, table = headers, "\n".join([turned, "", *(f"{name}: {run.folder.name}" for name, run in zip(headers, runs))])
    if shared:
        print(shared_values(shared) + "\n")
    print(table)
    if note := unread_note(rows):
        print(f"\n{note}")
    differing = value_meanings(runs, [*columns, *shared], only_differing=True)  # the rest: see `prunelab show`
    if differing:
        print("\n" + "\n".join(item.replace("`", "") for item in differing))
    if len(runs) > 1 and (setup := describe_setup([run.folder for run in runs], names)):
        print(f"\n{setup}")
    return 0


#: Runs named by longer labels are numbered in a table turned a column per run.
TURNED_HEADER_WIDTH = 16


def _width(table: str) -> int:
    return max(map(len, table.splitlines()))


def _terminal_width() -> int | None:
    """The terminal's width in characters; None when the output goes elsewhere (a file, a
    pipe), which then gets the table as it is, to paste into Markdown."""
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def _report(args: argparse.Namespace) -> int:
    from prunelab.report.runs import write_report

    folders = _run_folders(args.runs)
    out = Path(args.out)
    made = [folder for folder in (out, *out.parents) if not folder.exists()]  # innermost first: reports/latest makes both
    _make_out(args.out)
    try:
        page = write_report(folders, args.out)
    except BaseException:
        for folder in made:  # a report that failed (a damaged run, Ctrl-C) leaves no empty folder behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    print(f"report in {page}")
    return 0


def _run_folders(paths: list[Path]) -> list[Path]:
    """The finished run directories among ``paths``; with several paths (``runs/*``), the
    rest is skipped: prunelab's own tables and analyses silently, anything else (unfinished
    runs, other files) with a note."""
    from prunelab.report.runs import check_run_folder, made_beside_runs, unfinished_seeds

    folders: list[Path] = []
    for path in paths:
        try:
            folder = check_run_folder(path)
        except FileNotFoundError as error:
            if len(paths) == 1:
                runs = [child for child in Path(path).iterdir() if not child.name.startswith("seed-")] if Path(path).is_dir() else []
                if any((child / "summary.json").is_file() for child in runs):
                    raise FileNotFoundError(f"{path} is a folder of runs, not a run: give its runs, e.g. {Path(path) / '*'}") from None
                raise
            if made_beside_runs(Path(path)) is None:  # prunelab's own tables and analyses need no note
                print(f"prunelab: skipping {path}: {error}", file=sys.stderr)
            continue
        if any(folder.resolve() == earlier.resolve() for earlier in folders):
            print(f"prunelab: skipping {path}: given before", file=sys.stderr)
        else:
            folders.append(folder)
            if left := unfinished_seeds(folder):
                print(f"prunelab: {folder}: {_unfinished(folder, left)}", file=sys.stderr)
    if not folders:
        raise FileNotFoundError("none of the given paths is a finished run directory")
    return folders


def _unfinished(folder: Path, seeds: list[int]) -> str:
    """What became of a run's seeds that have not finished: running in another command, or interrupted."""
    from prunelab.runs.lock import busy

    running = [seed for seed in seeds if busy(folder / f"seed-{seed}")]
    interrupted = [seed for seed in seeds if seed not in running]
    parts = ([f"{_seed_list(running)} still running in another command"] if running else []) + (
        [f"{_seed_list(interrupted)} interrupted (run its command again to finish it)"] if interrupted else [])
    return f"the results are of the finished seeds only: {'; '.join(parts)}"


def _seed_list(seeds: Sequence[object]) -> str:
    """``seed 3``, ``seeds 1, 2``."""
    return f"{plural(len(seeds), 'seed')} {', '.join(map(str, seeds))}"


def _summary_table(folder: Path) -> str:
    summary = read_json(folder / "summary.json", keys=["run", "seeds", "stats"])
    spread = ", mean ± std" if len(summary["seeds"]) > 1 else ""
    meanings = summary_meanings(summary.get("method", ""))
    rows = [
        {"metric": key, f"value{spread}": format_stat(key, stat), "meaning": meanings.get(key, "")}
        for key, stat in summary["stats"].items()
    ]
    table = format_table(rows)
    # On a terminal too narrow for the meanings beside the values: below them, one a line.
    if (width := _terminal_width()) is not None and _width(table) > width:
        table = "\n".join([format_table([{k: v for k, v in row.items() if k != "meaning"} for row in rows]), "",
                            *(textwrap.fill(f"{row['metric']}: {row['meaning']}", width, subsequent_indent="  ")
                              for row in rows if row["meaning"])])  # fmt: skip
    return f"{summary['run']} (seeds {summary['seeds']}):\n" + table


@contextlib.contextmanager
def _log_lines(args: argparse.Namespace) -> Iterator[None]:
    """The ``prunelab`` logger's warnings on stderr (e.g. waiting for another command's run),
    and where progress bars cannot show (a log file, a pipe), a line now and then instead."""
    from prunelab.runs.runner import progress_shows

    logger, handler = logging.getLogger("prunelab"), logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("prunelab: %(message)s"))
    logger.addHandler(handler)
    level = logger.level
    if not (getattr(args, "no_progress", True) or progress_shows()):
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _progress(args: argparse.Namespace) -> bool:
    from prunelab.runs.runner import progress_shows

    return not args.no_progress and progress_shows()


def _check_out(out: str) -> None:
    if not out.strip():  # Path("") is the current folder: an unset variable in a script, most likely
        raise OSError("--out is empty: give a folder (e.g. --out runs)")
    path = Path(out)
    if path.is_file():
        raise OSError(f"--out {out} is a file, not a folder")
    # Said here, not only by mkdir, so that a dry run, which makes no folder, says it too.
    if blocker := next((parent for parent in path.parents if parent.is_file()), None):
        raise OSError(f"--out {out}: cannot make the folder: {blocker} is a file")
    # Runs (or a report) written inside a run would be taken for its files.
    if _is_run(path) or path.name.startswith("seed-") and _is_run(path.parent):
        run = path if _is_run(path) else path.parent
        raise OSError(f"--out {out} is {'a' if run == path else 'a seed of a'} run directory; give a folder outside the run, e.g. {run.parent}")


def _is_run(folder: Path) -> bool:
    """Whether ``folder`` is a run directory, finished or not (a recipe file of one's own is not)."""
    return (folder / "recipe.yaml").is_file() and any(folder.glob("seed-*"))


def _make_out(out: str) -> None:
    _check_out(out)
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"--out {out}: cannot make the folder: {error.strerror or error}") from None


COMMANDS = {
    "run": _run, "recipes": _recipes, "lr-range-test": _lr_range_test, "sensitivity": _sensitivity, "show": _show,
    "compare": _compare, "report": _report,
}
