"""The ``prunelab`` command line: run recipes, list them, show and compare runs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from prunelab.config import RecipeError, builtin_recipes, load_recipe, run_name
from prunelab.report import format_table

EPILOG = """examples:
  prunelab run                                   # the default recipe: MNIST-1D CNN, 90% one-shot
  prunelab run imp --set prune.levels=5          # a built-in recipe with an override
  prunelab run my_recipe.yaml --set seeds=[0,1,2] --out results
  prunelab show runs/oneshot-mnist1d_cnn-mnist1d-1a2b3c4d
  prunelab compare runs/*
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="prunelab", description="Magnitude pruning done right.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a recipe (resumes an interrupted run)")
    run.add_argument("recipe", nargs="?", help="recipe file or built-in name (default: the default recipe)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a recipe field, e.g. --set prune.sparsity=0.95 (repeatable)")
    run.add_argument("--out", default="runs", help="folder of run directories (default: runs)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")

    commands.add_parser("recipes", help="list the built-in recipes")

    show = commands.add_parser("show", help="summary and layerwise pruning ratios of a run")
    show.add_argument("run", type=Path)

    compare = commands.add_parser("compare", help="side-by-side table of runs")
    compare.add_argument("runs", nargs="+", type=Path)

    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (RecipeError, FileNotFoundError, ValueError) as error:
        print(f"prunelab: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nprunelab: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    from prunelab.runs.runner import run_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    print(f"prunelab: running {run_name(recipe)} ({recipe.prune.method}, seeds {recipe.seeds})", file=sys.stderr)
    folder = run_recipe(recipe, args.out, progress=not args.no_progress)
    print(_summary_table(folder))
    print(f"\nresults in {folder}")
    return 0


def _recipes(args: argparse.Namespace) -> int:
    print(format_table([{"recipe": name, "description": text} for name, text in builtin_recipes().items()]))
    return 0


def _show(args: argparse.Namespace) -> int:
    folder = _run_folder(args.run)
    print(_summary_table(folder))
    for seed_folder in sorted(folder.glob("seed-*")):
        path = seed_folder / "layer_sparsity.json"
        if path.exists():
            layers = json.loads(path.read_text())
            rows = [{"layer": name, **counts} for name, counts in layers.items()]
            print(f"\nlayerwise pruning ratios ({seed_folder.name}):")
            print(format_table(rows, ["layer", "numel", "remaining", "sparsity"]))
    return 0


def _compare(args: argparse.Namespace) -> int:
    rows = []
    for run in args.runs:
        folder = _run_folder(run)
        stats = json.loads((folder / "summary.json").read_text())["stats"]
        rows.append({"run": folder.name, **{key: _mean_std(stats.get(key)) for key in COMPARED}})
    print(format_table(rows, ["run", *COMPARED]))
    return 0


COMPARED = ("dense_acc", "pruned_acc", "final_acc", "sparsity", "remaining_parameters", "wall_seconds")


def _summary_table(folder: Path) -> str:
    summary = json.loads((folder / "summary.json").read_text())
    rows = [{"metric": key, "mean": value["mean"], "std": value["std"]} for key, value in summary["stats"].items()]
    return f"{summary['run']} (seeds {summary['seeds']}):\n" + format_table(rows)


def _mean_std(stat: dict | None) -> str:
    if stat is None:
        return ""
    return f"{stat['mean']:.4g} ± {stat['std']:.2g}" if stat["std"] else f"{stat['mean']:.4g}"


def _run_folder(path: Path) -> Path:
    if not (path / "summary.json").exists():
        raise FileNotFoundError(f"{path} is not a finished run directory (no summary.json); run it with prunelab run")
    return path


COMMANDS = {"run": _run, "recipes": _recipes, "show": _show, "compare": _compare}

if __name__ == "__main__":
    sys.exit(main())
