"""Sweeps: one recipe file that stands for a grid of recipes, and the table that sums it up.

A recipe may carry a top-level ``sweep`` section::

    sweep:
      grid:                                  # every combination of these values
        prune.sparsity: [0.9, 0.95]
        eval.lr_policy: [ft, lrw, llr]
      table: {rows: eval.lr_policy, columns: [prune.sparsity], value: final_acc}

Each combination is the base recipe with those fields set, validated on its own. The
table's rows and columns name every field swept over more than one value, so that no two
runs share a cell. ``--set sweep.grid.eval.epochs=[1,2]`` adds to or changes the grid.

Settings that only make sense together are named ``arms``, each a set of fields; the arms
are one more axis of the grid, called ``arm``::

    sweep:
      arms:
        pruning: {}
        scratch-e: {eval.rewind: reinit, eval.budget: scratch_e}
      grid: {prune.sparsity: [0.5, 0.9]}
      table: {rows: arm, columns: [prune.sparsity]}
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError

from prunelab.config.load import (
    RECIPE_SECTIONS,
    RecipeError,
    apply_override,
    assign,
    describe_errors,
    override_list,
    parse_override,
    read_recipe_data,
    validate,
)
from prunelab.config.schema import Recipe, Strict

#: The numbers every run summarises over its seeds (which a sweep table can show), and what they are.
SUMMARY_VALUES = {  # short enough for a table a terminal shows whole; the README says more
    "dense_acc": "test accuracy of the trained dense model",
    "pruned_acc": "test accuracy right after pruning, before retraining",
    "final_acc": "test accuracy at the end of the run",
    "trainability_acc": "mean training accuracy in the retraining's first LR stage (all of it if none; seed 004's TA)",
    "instability": "test-error barrier between two retrainings from one start (seed 002)",
    "sparsity": "pruned share of the prunable weights (removed channels count as pruned)",
    "channel_sparsity": "removed share of the channels of the prunable channel groups",
    "parameters": "all parameters of the dense model, biases and norm layers included",
    "remaining_parameters": "parameters not pruned (of the small model, if channels were removed)",
    "speedup": "theoretical speedup: Conv/Linear multiply-accumulates, dense over pruned",
    "total_epochs": "epochs trained over all phases, the find phase's included (seed 003's budget)",
    "images_per_second": "training examples per second of training steps, all phases (seed 003)",
    "wall_seconds": "time the run took, its (possibly shared) find phase included",
}


def summary_meanings(method: str) -> dict[str, str]:
    """What each summary value of a run of ``method`` is: GMP prunes while it trains, so its
    "pruned" accuracy is that of the end of the pruning stage."""
    if method == "gmp":
        return {
            **SUMMARY_VALUES,
            "pruned_acc": "test accuracy at the end of the pruning stage, before fine-tuning",
            "sparsity_updates": "mask updates along the sparsity schedule (seed 000 asks for at least 30)",
        }
    if method in ("imp", "bimp"):  # every level's are in the table of levels
        last = {key: f"{SUMMARY_VALUES[key]}, at the last level" for key in ("pruned_acc", "trainability_acc", "instability")}
        return {**SUMMARY_VALUES, **last}
    return dict(SUMMARY_VALUES)


class TableSpec(Strict):
    """Pivot of the sweep's results: one row per value of ``rows``, one column per
    combination of ``columns``, cells = mean ± std over seeds of ``value``."""

    rows: str
    columns: list[str] = Field(default_factory=list)
    value: Literal[tuple(SUMMARY_VALUES)] = "final_acc"  # type: ignore[valid-type]


ARM = "arm"


class SweepSpec(Strict):
    grid: dict[str, list] = Field(default_factory=dict)
    arms: dict[str, dict[str, object]] = Field(default_factory=dict)
    table: TableSpec | None = None

    def axes(self) -> dict[str, list]:
        """The grid with the arms as one more axis, first."""
        return {ARM: list(self.arms), **self.grid} if self.arms else dict(self.grid)


def load_plan(
    source: str | Path | None = None, overrides: Iterable[str] = ()
) -> tuple[list[tuple[dict, Recipe]], SweepSpec | None]:
    """The recipes a file stands for, each with the grid values that made it.

    A plain recipe is a plan of one. Overrides apply to the base recipe; overriding a field
    that the grid or an arm sets, or a part of it, is an error, because the sweep would
    silently undo it.

    >>> plan, sweep = load_plan(overrides=["eval.epochs=2"])
    >>> len(plan), sweep is None, plan[0][1].eval.epochs
    (1, True, 2)
    """
    data, origin = read_recipe_data(source)
    raw_sweep = data.pop("sweep", None)
    overrides = override_list(overrides)
    sweep_overrides = [o for o in overrides if o.partition("=")[0].strip().split(".")[0] == "sweep"]
    overrides = [o for o in overrides if o not in sweep_overrides]
    for override in overrides:
        apply_override(data, override)
    if sweep_overrides:
        raw_sweep = _override_sweep(raw_sweep, sweep_overrides)
    if overrides or sweep_overrides:
        origin = f"{origin} with the --set overrides"
    if raw_sweep is None:
        return [({}, validate(data, origin))], None
    sweep = _check_sweep(raw_sweep, origin)
    _check_overrides(sweep, overrides)
    axes = sweep.axes()
    keys = list(axes)
    plan = []
    for values in itertools.product(*(axes[k] for k in keys)):
        variant = copy.deepcopy(data)
        assignment = dict(zip(keys, values))
        fields = {**sweep.arms.get(assignment.get(ARM), {}), **{k: v for k, v in assignment.items() if k != ARM}}
        for key, value in fields.items():
            assign(variant, key, value)
        plan.append((assignment, validate(variant, f"{origin} [{grid_label(assignment)}]")))
    return plan, sweep


def grid_label(assignment: Mapping[str, object]) -> str:
    """The grid values of one recipe of a sweep, as its messages name it.

    >>> grid_label({"prune.sparsity": 0.5, "arm": "scratch-e", "find.stop_epoch": None})
    'prune.sparsity=0.5, arm=scratch-e, find.stop_epoch=null'
    """
    return ", ".join(f"{key}={grid_value(value)}" for key, value in assignment.items())


def grid_value(value: object) -> object:
    """A grid value to show as a recipe writes it: None as YAML's ``null`` (a setting left
    unset), booleans as ``true``/``false``, a list or a mapping as YAML writes it in one line
    (a text, so that it can name a table's row), others as they are.

    >>> grid_value(None), grid_value(True), grid_value([16, 32]), grid_value({"name": "cosine"}), grid_value(0.5)
    ('null', 'true', '[16, 32]', '{name: cosine}', 0.5)
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=float("inf")).strip()
    return value


def _overlap(a: str, b: str) -> bool:
    """Whether setting one of two dotted fields changes the other (equal, or one inside the other)."""
    return a == b or a.startswith(f"{b}.") or b.startswith(f"{a}.")


def _check_sweep(raw_sweep: object, origin: str) -> SweepSpec:
    if isinstance(raw_sweep, dict) and isinstance(raw_sweep.get("arms"), dict):
        # YAML reads `1:` or `0.01:` as numbers and an empty `pruning:` as null.
        raw_sweep = {**raw_sweep, "arms": {str(name): {} if fields is None else fields for name, fields in raw_sweep["arms"].items()}}
    try:
        sweep = SweepSpec.model_validate(raw_sweep)
    except ValidationError as error:
        raise RecipeError(describe_errors(error, origin, ("sweep",), SweepSpec)) from None
    if not sweep.grid and not sweep.arms:
        raise RecipeError(f"{origin}: the sweep needs a grid of fields to sweep, or arms, or both")
    if ARM in sweep.grid:
        raise RecipeError(f"{origin}: sweep.grid.{ARM}: '{ARM}' names the axis of sweep.arms, not a recipe field")
    keys = list(sweep.grid)
    for i, (key, values) in enumerate(sweep.grid.items()):
        if not all(key.split(".")):
            raise RecipeError(f"{origin}: sweep.grid has the key {key!r}, a field's dotted path with an empty part (e.g. find.epochs)")
        if key in RECIPE_SECTIONS:  # as for arms: a whole section would replace the recipe's
            raise RecipeError(f"{origin}: sweep.grid.{key}: sweep the fields of {key} with dots ({key}.<field>: [...]); "
                              f"a whole {key} section would replace the recipe's")  # fmt: skip
        inside = next((other for other in keys[:i] if _overlap(key, other)), None)
        if inside is not None:
            raise RecipeError(f"{origin}: sweep.grid sweeps both {inside} and {key}, one inside the other: "
                              "the values of one would replace those of the other")  # fmt: skip
        if not values:
            raise RecipeError(f"{origin}: sweep.grid.{key} is empty; a swept field needs at least one value")
        repeated = [v for i, v in enumerate(values) if v in values[:i]]  # null may be repeated too
        if repeated:
            raise RecipeError(f"{origin}: sweep.grid.{key} lists {grid_value(repeated[0])!r} twice; each value makes its own runs")
    arms = list(sweep.arms.items())
    for i, (name, fields) in enumerate(arms):
        twin = next((other for other, earlier in arms[:i] if earlier == fields), None)
        if twin is not None:
            raise RecipeError(f"{origin}: sweep.arms.{name} sets the same fields as arm {twin!r}, so they would be the same runs")
    for name, fields in sweep.arms.items():
        if "." in name or not name.strip():
            raise RecipeError(f"{origin}: sweep.arms: {name!r} cannot name an arm; write it without dots (e.g. 1e-2 "
                              "for 0.01), so that --set sweep.arms.<arm>.<field> can find it")  # fmt: skip
        for key in fields:
            if key in RECIPE_SECTIONS:  # an arm must not replace a whole section
                raise RecipeError(f"{origin}: sweep.arms.{name}.{key}: name the fields the arm sets with dots "
                                  f"({key}.<field>: value); a whole {key} section would replace the recipe's")  # fmt: skip
            if any(_overlap(key, swept) for swept in sweep.grid):
                raise RecipeError(f"{origin}: sweep.arms.{name} sets {key}, which the grid sweeps too")
    axes = sweep.axes()
    if sweep.table is not None:
        for key in [sweep.table.rows, *sweep.table.columns]:
            if key not in axes:
                raise RecipeError(f"{origin}: sweep.table names {key!r}, which the grid does not sweep ({', '.join(axes)})")
        shown = [sweep.table.rows, *sweep.table.columns]
        twice = next((key for i, key in enumerate(shown) if key in shown[:i]), None)
        if twice is not None:
            raise RecipeError(f"{origin}: sweep.table names {twice!r} twice, as {'rows and a column' if twice == shown[0] else 'two columns'}; "
                              "a field is either the rows or one of the columns")  # fmt: skip
        missing = [k for k, values in axes.items() if len(values) > 1 and k not in (sweep.table.rows, *sweep.table.columns)]
        if missing:
            raise RecipeError(
                f"{origin}: sweep.table shows one run per cell, so its rows and columns must name every swept "
                f"field; add {', '.join(missing)} to sweep.table.columns"
            )
    return sweep


def _check_overrides(sweep: SweepSpec, overrides: list[str]) -> None:
    """Refuse an override that the grid or an arm would silently undo, in whole or in part."""
    for override in overrides:
        key = override.partition("=")[0].strip()
        for swept, values in sweep.grid.items():
            if _overlap(key, swept):
                raise RecipeError(f"--set {key}: the sweep sets {swept} (sweep.grid.{swept}: [{', '.join(str(grid_value(v)) for v in values)}])")
        arms = {name: field for name, fields in sweep.arms.items() for field in fields if _overlap(key, field)}
        if arms:
            first, field = next(iter(arms.items()))
            who = f"arm {first!r} sets" if len(arms) == 1 else f"arms {', '.join(map(repr, arms))} set"
            # Of the two, the one inside the other: an arm may not set a whole section (--set eval=…).
            example = field if len(field) > len(key) else key
            raise RecipeError(
                f"--set {key}: {who} {', '.join(dict.fromkeys(arms.values()))}; override it per arm, "
                f"e.g. --set 'sweep.arms.{first}.{example}=…'"
            )


def _override_sweep(raw_sweep: object, overrides: list[str]) -> dict | None:
    """The sweep section with ``--set sweep.…`` overrides applied (``--set sweep=null`` drops
    it, leaving the base recipe). In ``sweep.grid.<field>`` and ``sweep.arms.<arm>.<field>``
    the field is one key, dots and all (``sweep.grid.eval.epochs=[1, 2]``)."""
    sweep = copy.deepcopy(raw_sweep)
    for override in overrides:
        key, value = parse_override(override)
        if key == "sweep":
            sweep = value
            continue
        if sweep is not None and not isinstance(sweep, dict):
            raise RecipeError(f"the sweep section must be a mapping (grid, arms, table), got {sweep!r}")
        sweep = {} if sweep is None else sweep
        if key.startswith("sweep.grid."):
            grid = sweep.setdefault("grid", {})
            if not isinstance(grid, dict):
                raise RecipeError(f"sweep.grid must be a mapping of fields to lists of values, got {grid!r}")
            grid[key.removeprefix("sweep.grid.")] = value
        elif key.startswith("sweep.arms.") and key.count(".") > 2:  # sweep.arms.<arm>.<field>
            arm, _, field = key.removeprefix("sweep.arms.").partition(".")
            arms = sweep.get("arms")
            if not isinstance(arms, dict) or arm not in arms:
                known = ", ".join(map(repr, arms)) if isinstance(arms, dict) else "none"
                raise RecipeError(f"--set {key}: the sweep has no arm {arm!r} (arms: {known})")
            fields = {} if arms[arm] is None else arms[arm]  # an empty `arm:` reads as null
            if not isinstance(fields, dict):
                raise RecipeError(f"--set {key}: sweep.arms.{arm} must be a mapping of fields to values, got {fields!r}")
            arms[arm] = {**fields, field: value}
        else:
            assign(sweep, key.removeprefix("sweep."), value)
    return sweep
