"""The ``prunelab`` command line: its commands, their options and help.

What each command does is in :mod:`prunelab.commands`, imported once the arguments parse, so
that ``--help``, ``--version`` and a mistyped option answer at once, without loading torch."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import gc
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from prunelab import __version__

EPILOG = """examples:
  prunelab run                                   # the default recipe: MNIST-1D CNN, 90% one-shot
  prunelab run imp --set prune.sparsity=0.8      # a built-in recipe with an override
  prunelab run my_recipe.yaml --set seeds=[0,1,2] --out results
  prunelab run imp --set threads=1               # one CPU thread: when other runs share the cores
  prunelab show runs/oneshot-mnist1d_cnn-mnist1d-1a2b3c4d
  prunelab compare runs/*
  prunelab report runs/* --out report            # report/report.md with plots
  prunelab lr-range-test gmp                     # suggest the pruning LR for the GMP recipe
  prunelab sensitivity --sparsities 0.5,0.9,0.99 # accuracy with each layer alone pruned: how far each can go
  prunelab run my.yaml --import my_models        # a recipe using models (or datasets) my_models.py registers
  torchrun --nproc_per_node 4 -m prunelab run imp    # data-parallel over 4 processes (GPUs)
"""

#: The LR range test's range when none is given, seed 000's (as ``lr_range_test`` defaults to).
LR_RANGE = {"start_lr": 1e-9, "end_lr": 1.0, "steps": 200}


def main(argv: Sequence[str] | None = None) -> int:
    if "TORCHELASTIC_RUN_ID" in os.environ:  # one of the processes torchrun started (it sets this)
        _end_with_launcher()  # first: a torchrun killed while torch loads (seconds) is then seen too
    parser = _Parser(
        prog="prunelab", description="Magnitude pruning done right.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"prunelab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = _recipe_command(commands, "run", "run a recipe (resumes an interrupted run)")
    run.add_argument("--dry-run", action="store_true",
                     help="check the recipe (or each of a sweep) against its data and model and say what would train, "
                          "training nothing: a recipe alone printed resolved, as its run's recipe.yaml will hold it")

    recipes = commands.add_parser("recipes", help="list the built-in recipes, or print one", parents=[IMPORT])
    recipes.add_argument("name", nargs="?", help="a built-in recipe to print as YAML (e.g. to copy and edit)")

    lr_test = _recipe_command(
        commands, "lr-range-test", "suggest a pruning LR: raise the LR from 1e-9 to 1 on the trained model (seed 000, see the README)"
    )
    lr_test.add_argument("--start-lr", type=float, default=LR_RANGE["start_lr"], help="the first LR tried (default: %(default)g)")
    lr_test.add_argument("--end-lr", type=float, default=LR_RANGE["end_lr"], help="the last LR tried (default: %(default)g)")
    lr_test.add_argument("--steps", type=int, default=LR_RANGE["steps"], help="LR values, spaced geometrically, one batch each (default: %(default)d)")

    sensitivity = _recipe_command(
        commands, "sensitivity",
        "prune each layer of the trained model alone to each sparsity, no retraining: how far can each go (see the README)",
    )  # fmt: skip
    sensitivity.add_argument("--sparsities", metavar="S1,S2,...",
                             help="comma-separated sparsities in [0, 1), increasing (default: 0,0.1,...,0.9,0.95,0.99)")
    sensitivity.add_argument("--split", choices=("train", "test"), default="train",
                             help="the examples to measure on: the first training examples, as many as the test set has, "
                                  "so that sparsities chosen from the analysis have not seen the test set (default); or the test set")

    show = commands.add_parser("show", help="summary, pipeline, environment and layerwise pruning ratios of runs", parents=[IMPORT])
    show.add_argument("runs", nargs="+", type=Path, help="run directories (e.g. runs/*)")

    compare = commands.add_parser("compare", help="side-by-side table of runs", parents=[IMPORT])
    compare.add_argument("runs", nargs="+", type=Path, help="run directories (e.g. runs/*)")
    compare.add_argument("--values", metavar="V1,V2,...", help="the summary values to show, comma-separated "
                         "(default: every one the runs have, GMP's sparsity_updates included; e.g. final_acc,sparsity,speedup)")  # fmt: skip

    report = commands.add_parser("report", help="a Markdown page of runs: table, accuracy against sparsity, LPR", parents=[IMPORT])
    report.add_argument("runs", nargs="+", type=Path, help="run directories (e.g. runs/*)")
    report.add_argument("--out", default="report", help="folder for report.md and its plots (default: report)")

    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command's own parser: its usage, and its options to suggest from
        commands.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        with _ctrl_c_held():
            execute = _load_commands(freeze=argv is None)  # torch and the rest: only for a command that runs
    except KeyboardInterrupt:  # Ctrl-C while torch loads: nothing has started yet
        print(("\n" if sys.stderr.isatty() else "") + "prunelab: interrupted before the command started", file=sys.stderr)
        return 130
    return execute(args)


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors suggest the command, choice or option closest to a
    misspelt one (as Python 3.14's ``suggest_on_error``, which does not reach options)."""

    def error(self, message: str) -> NoReturn:
        choice = re.search(r"invalid choice: '([^']*)'", message)
        unknown = re.match(r"unrecognized arguments: (--?[^\s=]+)", message)
        if choice and "maybe you meant" not in message:
            known = [name for action in self._actions if action.choices for name in action.choices]
            message += _suggestion(choice[1], known)
        elif unknown:
            message += _suggestion(unknown[1], [name for action in self._actions for name in action.option_strings])
        super().error(message)


def _suggestion(word: str, known: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the known word closest to ``word``, or nothing if none is
    close. Options are compared without their dashes, which every one shares.

    >>> _suggestion("rnu", ["run", "report"]), _suggestion("--ouut", ["--out", "--set"]), _suggestion("--bogus", ["--out"])
    (" (did you mean 'run'?)", " (did you mean '--out'?)", '')
    """
    by_name = {name.lstrip("-"): name for name in known}
    close = difflib.get_close_matches(word.lstrip("-"), by_name, n=1)
    return f" (did you mean {by_name[close[0]]!r}?)" if close else ""


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Ctrl-C held until the block ends, then raised. torch's C code drops an exception raised
    while it imports numpy: a Ctrl-C there left numpy half-loaded, and the command went on as if
    never interrupted (to fail at its first plot), or failed at once with an ImportError."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # only the main thread sets handlers; a handler of the caller's own stays
        return
    pressed = []
    signal.signal(signal.SIGINT, lambda *_: pressed.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pressed:
        raise KeyboardInterrupt


#: Seconds between two looks at whether the process that started this one is still there.
LAUNCHER_POLL_SECONDS = 1.0


def _end_with_launcher() -> None:
    """End this process (by SIGTERM, as torchrun ends its processes) once the process that
    started it is gone. torchrun starts each process in a session of its own, so a kill -9 of
    torchrun's process group reached torchrun alone, which then could not end them: they
    trained on, holding the cores and the run's locks (the command run again waited for them),
    or, killed before they joined, waited half an hour for the others."""
    launcher = os.getppid()

    def watch() -> None:
        while os.getppid() == launcher:  # an orphan gets another parent
            time.sleep(LAUNCHER_POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="prunelab-end-with-launcher", daemon=True).start()


def _load_commands(freeze: bool) -> Callable[[argparse.Namespace], int]:
    """:func:`prunelab.commands.execute`, imported with the garbage collector off. torch's
    import makes some 270,000 objects that stay: collecting among them again and again, and
    once more at exit, took 0.4 s of a 1.5 s ``prunelab show``. With ``freeze`` (the program,
    which reads its arguments from the command line), they are frozen after the first import
    and left out of every later collection (the few cycles the import left are kept too). A
    Python caller passing its own arguments is not frozen: a freeze would take its objects too,
    and keep any that later become cyclic garbage."""
    first, enabled = "prunelab.commands" not in sys.modules, gc.isenabled()
    gc.disable()
    try:
        from prunelab.commands import execute
    finally:
        if enabled:
            gc.enable()
    if first and freeze:
        gc.freeze()
    return execute


def _import_option() -> argparse.ArgumentParser:
    """--import, which every command takes, so that a script may give it to all alike: the
    commands that train need it for a recipe naming the user's own models or datasets (show,
    compare and report read runs without it)."""
    option = argparse.ArgumentParser(add_help=False)
    option.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (from the current folder or installed), e.g. one that registers "
                             "your own models or datasets with prunelab.models.register or prunelab.data.register "
                             "(repeatable)")  # fmt: skip
    return option


IMPORT = _import_option()


def _recipe_command(commands: argparse._SubParsersAction, name: str, description: str) -> argparse.ArgumentParser:
    """A subcommand that takes a recipe, its overrides, the folder of runs and --no-progress
    (and, as every command, --import)."""
    command = commands.add_parser(name, help=description, parents=[IMPORT])
    command.add_argument("recipe", nargs="?", help="recipe file or built-in name (default: the default recipe)")
    command.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="override a recipe field, e.g. --set prune.sparsity=0.95 (repeatable)")
    command.add_argument("--out", default="runs", help="folder of run directories (default: runs)")
    command.add_argument("--no-progress", action="store_true",
                         help="no progress: no bars (on a terminal or in a notebook), no lines (in a log or a pipe)")
    return command


if __name__ == "__main__":  # python -m prunelab.cli, as python -m prunelab
    sys.exit(main())
