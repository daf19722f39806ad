"""Finished run directories read back for comparison, and the report that sums them up.

``prunelab report RUN...`` writes one Markdown page next to its plots: the runs side by side
(their summaries, then the settings that tell them apart), test accuracy against sparsity
(every pruning step of IMP and BIMP, or a run's single sparsity; runs that differ only in
the target sparsity make one line; left out when every run stands at one sparsity), the
layerwise pruning ratios (LPR) of the final masks, the variable seed 002 explains its
results with, the channels each group keeps after channel pruning, and for runs with
``find.lpr_every`` how that LPR settles during the find phase. A sweep's report opens with
its table and a plot of it.
"""

from __future__ import annotations

import contextlib
import html
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prunelab.config import Recipe, load_run_recipe, run_settings
from prunelab.config.sweep import (
    TableSpec,
    grid_value,
    summary_meanings,
)
from prunelab.methods.common import first_lpr_record
from prunelab.report.plots import (
    plot_accuracy_vs_sparsity,
    plot_layer_sparsity,
    plot_lpr_distance,
    plot_pivot,
)
from prunelab.report.setups import (
    default_model_options,
    describe_column_setups,
    describe_setup,
    differing_settings,
    read_run_record,
    read_sweep_records,
    rows_of_other_tasks,
)
from prunelab.report.tables import (
    UNREAD,
    column_name,
    column_winners,
    format_mean_std,
    format_stat,
    format_table,
    is_percent,
    mean_std,
    pivot,
    pivot_cells,
    short_labels,
    transposed,
)
from prunelab.runs.io import RUN_AGAIN, DamagedRunError, read_json, write_bytes, write_text
from prunelab.runs.session import finished_seeds
from prunelab.wording import counted, plural

#: Longer names of runs (their differing settings) give way to numbers in tables, and in legends longer names of lines.
LABEL_WIDTH = 60
LEGEND_WIDTH = 80
#: A report of more runs than this folds each run's training plots under its name.
FOLDED_TRAINING = 4

#: The plots a report page may make, beside report.md, and the folder of copies of the runs' training and
#: lpr_during_find plots.
REPORT_PLOTS = ("sweep.png", "accuracy_vs_sparsity.png", "layer_sparsity.png", "lpr_distance.png")
TRAINING_PLOTS = "training"


@dataclass
class RunResults:
    """What a finished run directory holds, averaged over its seeds."""

    folder: Path
    settings: dict[str, object]  # the recipe, flattened: {"eval.epochs": 2, ...}
    stats: dict[str, dict[str, float]]  # summary statistic -> {"mean", "std"}
    curve: list[tuple[float, float, float]]  # (sparsity, mean, std of the final accuracy) per pruning step
    layer_sparsity: dict[str, float]  # mean LPR of the final masks
    layer_weights: dict[str, int]  # each prunable layer's number of weights (of the dense model)
    training_plots: list[Path]
    lpr_plots: list[Path]  # each seed's lpr_during_find.png (find.lpr_every)
    # channel pruning: per channel group, its size in the dense model and the channels each seed kept
    channels: dict[str, tuple[int, list[int]]] = field(default_factory=dict)
    # find.lpr_every: per kept epoch, the mean and std over seeds of the distance of pruning then from pruning at the end
    lpr_distance: dict[int, tuple[float, float]] | None = None
    # settings as trained where the recipe does not say (the model's default options, a scratch budget's epochs, the
    # number of processes), for tables
    trained: dict[str, object] = field(default_factory=dict)


def check_run_folder(folder: str | Path) -> Path:
    """``folder`` if it is a finished run directory; else a FileNotFoundError saying what it
    is, or a DamagedRunError naming the file of it that cannot be read."""
    folder = Path(folder)
    summary = folder / "summary.json"
    if not folder.exists():
        raise FileNotFoundError(f"{folder} does not exist")
    if summary.exists() and not summary.is_file():
        raise DamagedRunError(f"{summary} is not a file: {RUN_AGAIN}")
    if summary.is_file() and folder.name.startswith("seed-"):
        raise FileNotFoundError(f"{folder} is one seed of a run; pass the run directory {folder.parent}")
    if not summary.is_file() and (folder / "recipe.yaml").is_file():
        done = finished_seeds(folder)
        raise FileNotFoundError(
            f"{folder} is an interrupted run (seeds finished: {', '.join(map(str, done)) or 'none'}): "
            "run its command again to finish it"
        )
    if not summary.is_file():
        raise FileNotFoundError(f"{folder} is not a finished run directory (no summary.json): {_what_it_is(folder)}")
    # The files that report.setups reads are read here first, so that a damaged one is named.
    run = read_json(summary)
    missing = [key for key in ("sparsity", "final_acc") if key not in run["stats"]]
    if missing:
        raise DamagedRunError(f"{summary} lacks the stats of {', '.join(missing)}: {RUN_AGAIN}")
    for seed in run["seeds"]:
        seed_folder = folder / f"seed-{seed}"
        read_json(seed_folder / "summary.json", keys=["sparsity", "final_acc"])
        read_json(seed_folder / "lr_log.json")
        read_json(seed_folder / "metrics.json", list)
        read_json(seed_folder / "layer_sparsity.json")
    return folder


#: What prunelab writes into a folder of runs besides the runs, by the file that marks it.
BESIDE_RUNS = {"lr_range_test.json": "an LR range test", "sensitivity.json": "a sensitivity analysis", "report.md": "a report"}


def made_beside_runs(path: Path) -> str | None:
    """What ``path`` is if prunelab itself wrote it into a folder of runs besides the runs (a
    sweep's table, a report, an LR range test, a sensitivity analysis); else None."""
    if path.is_file():
        return "a sweep's table, its runs are in the folder beside it" if path.name.endswith("-table.md") else None
    marker = next((name for name in BESIDE_RUNS if (path / name).is_file()), None)
    return None if marker is None else f"{BESIDE_RUNS[marker]}, whose results are {path / marker}"


def _what_it_is(path: Path) -> str:
    """What a path that is no run directory is, for the message saying so."""
    if (made := made_beside_runs(path)) is not None:
        return f"it is {made}"
    if path.is_file():
        return "it is a file, and a run is a folder (runs/<run name>)"
    return "a run directory holds recipe.yaml and summary.json, as prunelab run leaves them"


def unfinished_seeds(folder: Path) -> list[int]:
    """The seeds that the recipe of a finished run directory names and its summary lacks:
    those of an interrupted run (its summary follows every finished seed); none if
    the recipe is missing (a run copied without it)."""
    if not (folder / "recipe.yaml").is_file():
        return []
    done = set(read_json(folder / "summary.json", keys=["seeds"])["seeds"])
    return [seed for seed in load_run_recipe(folder).seeds if seed not in done]


def kept_channels(seed_folder: Path) -> dict[str, tuple[int, int]]:
    """The channels a seed's small model keeps of each channel group, and the group's size
    (``channels.json`` and the pruning step's shares); none for a seed that pruned weights."""
    path = seed_folder / "channels.json"
    if not path.exists():
        return {}
    channels = read_json(path)
    removed = read_json(seed_folder / "events.json").get("prune", {}).get("group_sparsity", {})
    if missing := [name for name in channels if name not in removed]:
        raise DamagedRunError(f"{seed_folder / 'events.json'} lacks prune.group_sparsity.{missing[0]}, a channel group of {path}: {RUN_AGAIN}")
    # The size from the share removed, which below 1 (a group keeps a channel) gives it back exactly.
    return {name: (len(kept), round(len(kept) / (1 - removed[name]))) for name, kept in channels.items()}


def load_run(folder: str | Path) -> RunResults:
    """Read a finished run directory (as ``prunelab run`` leaves it)."""
    folder = check_run_folder(folder)
    summary = read_json(folder / "summary.json")
    stats = summary["stats"]
    settings = run_settings(folder, unread_as=UNREAD)
    trained = default_model_options(settings)
    if settings.get("eval.budget", "epochs") != "epochs":
        # A training from scratch sized by its budget (Scratch-E/B): the epochs it trained, per seed.
        trained["eval.epochs"] = _per_seed(pipeline.retraining.epochs for pipeline in read_run_record(folder).pipelines.values())
    seeds = [folder / f"seed-{seed}" for seed in summary["seeds"]]  # those its stats are of
    summaries = [read_json(seed / "summary.json") for seed in seeds]
    # The processes that trained it (torchrun): their BatchNorm statistics and batches differ from one process's.
    trained["processes"] = _per_seed((s.get("environment") or {}).get("processes", 1) for s in summaries)
    # IMP and BIMP record every level; other methods one point: the final sparsity.
    steps = [s.get("levels") or [{"sparsity": s["sparsity"], "final_acc": s["final_acc"]}] for s in summaries]
    curve = []
    for level in zip(*steps):  # the levels every seed has
        accuracy = mean_std([point["final_acc"] for point in level])
        curve.append((statistics.fmean(p["sparsity"] for p in level), accuracy["mean"], accuracy["std"]))
    layers: dict[str, list[float]] = {}
    weights: dict[str, int] = {}
    for seed in seeds:
        for name, layer in read_json(seed / "layer_sparsity.json").items():
            layers.setdefault(name, []).append(layer["sparsity"])
            weights[name] = layer["numel"]
    channels: dict[str, tuple[int, list[int]]] = {}
    for seed in seeds:
        for name, (kept, size) in kept_channels(seed).items():
            channels.setdefault(name, (size, []))[1].append(kept)
    records = [first_lpr_record(read_json(seed / "events.json")) for seed in seeds]
    records = [record for record in records if record]
    lpr_distance = None
    if records and all(record["epochs"] == records[0]["epochs"] for record in records):
        by_epoch = zip(records[0]["epochs"], zip(*(record["distance"] for record in records)))
        lpr_distance = {}
        for epoch, distances in by_epoch:
            stat = mean_std(distances)
            lpr_distance[epoch] = (stat["mean"], stat["std"])
    return RunResults(
        folder=folder,
        settings=settings,
        trained=trained,
        stats=stats,
        curve=curve,
        layer_sparsity={name: statistics.fmean(values) for name, values in layers.items()},
        layer_weights=weights,
        training_plots=[seed / "training.png" for seed in seeds if (seed / "training.png").exists()],
        lpr_plots=[seed / "lpr_during_find.png" for seed in seeds if (seed / "lpr_during_find.png").exists()],
        lpr_distance=lpr_distance,
        channels=channels,
    )


def _per_seed(values: Iterable[object]) -> object:
    """A per-seed value as tables show it: the one every seed has, else the distinct ones in turn (``2 / 3``)."""
    distinct = list(dict.fromkeys(values))
    return distinct[0] if len(distinct) == 1 else " / ".join(map(str, distinct))


def load_runs(folders: Sequence[str | Path]) -> list[RunResults]:
    """Finished run directories read back, ordered by the settings that tell them apart
    (numbers by value, then text, an unset one last), else as given."""
    runs = [load_run(folder) for folder in folders]
    differing = differing_settings([run.settings for run in runs])
    return sorted(runs, key=lambda run: tuple(_order(run.settings.get(key)) for key in differing))


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _order(value: object) -> tuple[int, float, tuple]:
    if _number(value):
        return (0, float(value), ())
    if value is None:
        return (2, 0.0, ())
    # Text with numbers in it by the numbers' values: epoch:5 before epoch:10.
    parts = re.split(r"(\d+)", str(value))
    return (1, 0.0, tuple(int(part) if i % 2 else part for i, part in enumerate(parts)))


def _as_shown(results: list[tuple[dict[str, object], Path]]) -> list[tuple[dict[str, object], Path]]:
    """The grid values as tables show them: a list or a mapping (a sweep over widths, say) as
    its one-line YAML, which can name a row or a column."""
    return [({field: grid_value(value) for field, value in assignment.items()}, folder) for assignment, folder in results]


def sweep_table(results: list[tuple[dict[str, object], Path]], spec: TableSpec) -> str:
    """A sweep's table: ``spec.value`` (mean ± std) with a row per ``spec.rows`` value and a
    column per ``spec.columns`` value, seed 004's cross-validation verdict when the columns
    are training recipes, and the comparison setup of the rows within each column.
    ``results`` are the sweep's runs: (the settings the grid gave, the run directory)."""
    results = _as_shown(results)
    # Checked as for a report: the setups read the files of every seed, some from earlier commands.
    summaries = [(assignment, read_json(check_run_folder(folder) / "summary.json")) for assignment, folder in results]
    # A run directory keeps the seeds of earlier commands too: name those the numbers cover.
    seeds = {tuple(summary["seeds"]) for _, summary in summaries}
    only = seeds.pop() if len(seeds) == 1 else None
    if only is None:
        over = "mean ± std over each run's seeds (see its summary.json)"
    else:
        over = f"mean ± std over seeds {list(only)}" if len(only) > 1 else f"of seed {only[0]}"
    stats = [(assignment, summary["stats"]) for assignment, summary in summaries]
    records = read_sweep_records(results)
    winners = column_winners(stats, spec.rows, spec.columns, spec.value)
    unlike = rows_of_other_tasks(records, spec.rows, spec.columns) if winners else None
    if unlike:
        winners += (
            " But the rows of a column are not runs of one task, so this compares unlike with unlike "
            f"(seed 004's S1 fails): {unlike}."
        )
    parts = [
        f"{spec.value}{', in %' if is_percent(spec.value) else ''} ({over}):",
        pivot(stats, spec.rows, spec.columns, spec.value),
        winners,
        describe_column_setups(records, spec.rows, spec.columns),
    ]
    return "\n\n".join(part for part in parts if part)


def comparison_rows(runs: list[RunResults], values: list[str] | None = None) -> tuple[list[dict], list[str], dict[str, str]]:
    """One row per run: the summary ``values`` first, where a reader looks for the results,
    then the settings that differ, then the run's folder name; the columns; and, when the
    values are not given (every one any run has), those every run shares, as shown, left
    out of the rows: ``{value: text}``."""
    shown = [{**run.settings, **run.trained} for run in runs]
    differing = differing_settings(shown)
    shared: dict[str, str] = {}
    if values is None:  # the standard values, and a method's own (GMP's sparsity_updates)
        known = dict.fromkeys(key for run in runs for key in summary_meanings(str(run.settings.get("prune.method"))))
        values = [key for key in known if any(key in run.stats for run in runs)]
        if len(runs) > 1:
            for key in values:
                cells = {format_stat(key, run.stats.get(key)) for run in runs}
                if len(cells) == 1 and (cell := cells.pop()):
                    shared[key] = cell
            values = [key for key in values if key not in shared]
    rows = [
        # A setting of another method (IMP's rate, for a one-shot run) is not this run's: unread.
        {**{key: format_stat(key, run.stats.get(key)) for key in values},
         **{key: grid_value(settings[key]) if key in settings else UNREAD for key in differing}, "run": run.folder.name}
        for run, settings in zip(runs, shown)
    ]  # fmt: skip
    return rows, [*values, *differing, "run"], shared


def _split_columns(runs: list[RunResults], columns: list[str]) -> tuple[list[str], list[str]]:
    """:func:`comparison_rows`'s columns as (the summary values, the settings that differ), the run's folder left out."""
    values = {key for run in runs for key in summary_meanings(str(run.settings.get("prune.method")))}
    return [key for key in columns if key in values], [key for key in columns if key not in values and key != "run"]


def shared_values(shared: dict[str, str]) -> str:
    """The summary values every run shares, in one line.

    >>> shared_values({"sparsity": "90.00%", "parameters": "28,298"})
    'The same in every run: sparsity 90.00%, parameters 28,298.'
    """
    return f"The same in every run: {', '.join(f'{key} {text}' for key, text in shared.items())}." if shared else ""


def unread_note(rows: list[dict]) -> str:
    """What a "–" cell of ``rows`` is, if they have one.

    >>> unread_note([{"prune.rate": "–"}]), unread_note([{"prune.rate": 0.2}])
    ("–: a setting the run never read (another method's, or one it replaces, as an LR policy replaces eval's LR schedule).", '')
    """
    if not any(value == UNREAD for row in rows for value in row.values()):
        return ""
    return f"{UNREAD}: a setting the run never read (another method's, or one it replaces, as an LR policy replaces eval's LR schedule)."


def unfinished_notes(runs: list[RunResults], names: list[str]) -> list[str]:
    """A line for each run whose recipe names seeds that have not finished (interrupted, or
    running in another command): the page, which may be read far from the runs, shows the
    results of its finished seeds only, and says so."""
    notes = []
    for name, run in zip(names, runs):
        if left := unfinished_seeds(run.folder):
            seeds = f"{plural(len(left), 'seed')} {', '.join(map(str, left))}"
            notes.append(f"{name}: the results are of the finished seeds only; {seeds} of its recipe had not finished.")
    return notes


def value_meanings(runs: list[RunResults], columns: list[str], only_differing: bool = False) -> list[str]:
    """What each summary value among ``columns`` is, a Markdown list item each; where the runs'
    methods read it differently (GMP's pruned_acc is at the end of its pruning stage), per
    method; ``only_differing``: those values only."""
    known = {method: summary_meanings(method) for method in dict.fromkeys(str(run.settings.get("prune.method")) for run in runs)}
    items = []
    for key in columns:
        meanings = {method: meaning[key] for method, meaning in known.items() if key in meaning}
        if len(set(meanings.values())) > 1:
            methods: dict[str, list[str]] = {}  # the methods that read it alike, said once
            for method, meaning in meanings.items():
                methods.setdefault(meaning, []).append(method)
            items.append(f"- `{key}`: " + "; ".join(f"{', '.join(alike)}: {meaning}" for meaning, alike in methods.items()))
        elif meanings and not only_differing:
            items.append(f"- `{key}`: {next(iter(meanings.values()))}")
    return items


def run_label(values: Mapping[str, object], keys: Sequence[str], leaving_out: Sequence[str] = ()) -> str:
    """A run by the ``values`` of the ``keys`` that tell runs apart (its settings, or its grid
    values in a sweep), each key by its shortest ending no other setting shares; a key
    without a value (a setting of another method, which the run never read) left out. Where
    one key tells the runs apart and its values are names (LR policies, arms), by the name.

    >>> run_label({"eval.lr_policy": "ft", "prune.sparsity": 0.9}, ["prune.sparsity", "eval.lr_policy", "prune.rate"])
    'sparsity=0.9, lr_policy=ft'
    >>> run_label({"eval.lr_policy": "ft", "prune.sparsity": 0.9}, ["eval.lr_policy"])
    'ft'
    """
    keys = [key for key in keys if key not in leaving_out]
    if len(keys) == 1 and isinstance(name := values.get(keys[0]), str):
        return name
    short = short_labels(keys)
    return ", ".join(f"{short[key]}={grid_value(values[key])}" for key in keys if key in values)


def training_label(recipe: Recipe) -> str:
    """What tells a seed's training apart beyond its method and sparsity, named as tables name
    runs (:func:`run_label`): the retraining's LR policy and rewinding, and the find phase's
    early stop, each where the run has one (the title of its training plot).

    >>> from prunelab.config import validate
    >>> training_label(validate({"find": {"epochs": 4, "stop_epoch": 3}, "eval": {"lr_policy": "ft", "rewind": "epoch:1"}}))
    'lr_policy=ft, rewind=epoch:1, stop_epoch=3'
    >>> training_label(validate({"eval": {"lr_policy": None}})), training_label(validate({"eval": {"lr_policy": None, "rewind": "init"}}))
    ('', 'rewind=init')
    """
    evaluation = recipe.eval_training
    values = {"eval.lr_policy": evaluation.lr_policy, "eval.rewind": evaluation.rewind, "find.stop_epoch": recipe.find_training.stop_epoch}
    # All three keys, the unset ones without a value: one key alone would name the run by its value only ("init").
    return run_label({key: value for key, value in values.items() if value not in (None, "none")}, list(values))


def levels_title(recipe: Recipe, run: str, seeds: Sequence[int]) -> str:
    """The title of an IMP or BIMP run's levels plot: the method and its training
    (:func:`training_label`), what the points are over ``seeds``, then the ``run``'s folder.

    >>> from prunelab.config import validate
    >>> levels_title(validate({"prune": {"method": "imp"}, "eval": {"lr_policy": "lrw"}}), "imp-x", [0, 1])
    'imp, lr_policy=lrw: mean ± std over seeds 0, 1\\nimp-x'
    >>> levels_title(validate({"prune": {"method": "imp"}, "eval": {"lr_policy": None}}), "imp-y", [3])
    'imp: seed 3\\nimp-y'
    """
    ran = ", ".join([str(recipe.prune.method), *filter(None, [training_label(recipe)])])
    over = f"mean ± std over seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else f"seed {seeds[0]}"
    return f"{ran}: {over}\n{run}"


def run_names(labels: Sequence[str]) -> tuple[list[str], bool]:
    """The names tables, legends and setups give runs: their labels (:func:`run_label`), or
    their numbers (``#1``) where a label is long, empty or another run's too; and whether numbered.

    >>> run_names(["lr_policy=ft", "lr_policy=lrw"]), run_names(["a", "a"])
    ((['lr_policy=ft', 'lr_policy=lrw'], False), (['#1', '#2'], True))
    """
    if len(labels) > 1 and not (all(labels) and len(set(labels)) == len(labels) and max(map(len, labels)) <= LABEL_WIDTH):
        return [f"#{i}" for i in range(1, len(labels) + 1)], True
    return list(labels), False


def distance_rows(distances: dict[str, dict[int, tuple[float, float]]]) -> list[dict[str, object]]:
    """A row per epoch of the find phase, a column per run: the distance (mean, std) in percentage points.

    >>> distance_rows({"a": {0: (0.1, 0.01), 2: (0.0, 0.0)}, "b": {0: (0.2, 0.0), 1: (0.05, 0.0), 2: (0.0, 0.0)}})
    [{'epoch': 0, 'a': '10.00 ± 1.00', 'b': '20.00'}, {'epoch': 1, 'a': '', 'b': '5.00'}, {'epoch': 2, 'a': '0.00', 'b': '0.00'}]
    """
    epochs = sorted({epoch for curve in distances.values() for epoch in curve})
    return [
        {"epoch": epoch, **{name: format_mean_std(*curve[epoch], scale=100) if epoch in curve else "" for name, curve in distances.items()}}
        for epoch in epochs
    ]


def plot_sweep(results: list[tuple[dict[str, object], Path]], spec: TableSpec, path: Path) -> Path:
    """The sweep's table (:func:`sweep_table`) as a plot: a line per row, over the values of
    the last column field, a panel per value of the other column fields (seed 003's Table 1
    as a plot: a panel per sparsity, the retraining budget on x, a line per LR policy); a row that wins
    every column (seed 004's cross-validation) is a line above the others in every panel.
    Without columns, ``spec.value`` over the rows. The dense accuracy as a dashed line, if
    the runs share it."""
    summaries = [(assignment, read_json(folder / "summary.json")) for assignment, folder in _as_shown(results)]
    stats = [(a, s["stats"]) for a, s in summaries]
    scale = 100 if is_percent(spec.value) else 1
    label = short_labels([spec.rows, *spec.columns])
    rows = list(dict.fromkeys(a[spec.rows] for a, _ in stats))
    cells = pivot_cells(stats, spec.rows, spec.columns, spec.value)

    def point(key: tuple) -> tuple[float, float] | None:
        return None if (cell := cells.get(key)) is None else (scale * cell["mean"], scale * cell["std"])

    if spec.columns:
        *across, along = spec.columns
        x = _in_order(list(dict.fromkeys(a[along] for a, _ in stats)))
        panels = {
            column_name(label, across, values): {str(grid_value(row)): [point((row, (*values, value))) for value in x] for row in rows}
            for values in dict.fromkeys(tuple(a[c] for c in across) for a, _ in stats)
        }  # fmt: skip
        xlabel, legend = label[along], label[spec.rows]
    else:
        x = _in_order(rows)
        panels, xlabel, legend = {"": {spec.value: [point((row, ())) for row in x]}}, label[spec.rows], ""
    # Rows equal in every cell (FT and LRW at budgets where they coincide) are one line, not one hidden under another.
    alike: dict[tuple, list[str]] = {}
    for name in next(iter(panels.values())):
        alike.setdefault(tuple(tuple(lines[name]) for lines in panels.values()), []).append(name)
    panels = {panel: {" = ".join(names): lines[names[0]] for names in alike.values()} for panel, lines in panels.items()}
    dense = {round(100 * s["dense_acc"]["mean"], 10) for _, s in stats if "dense_acc" in s}
    reference = (f"dense: {min(dense):.2f}%", min(dense)) if spec.value.endswith("_acc") and len(dense) == 1 else None
    counts = {len(summary["seeds"]) for _, summary in summaries}
    count = counts.pop() if len(counts) == 1 else None
    seeds = "the seeds of each run" if count is None else counted(count, "seed")
    ordered = all(map(_number, x))
    title = f"{spec.value} by {label[spec.rows]}: mean ± std over {seeds}"
    return plot_pivot([str(grid_value(value)) for value in x], panels, xlabel, spec.value + (" (%)" if scale == 100 else ""), path,
                      title=title, ordered=ordered, legend_title=legend, reference=reference)  # fmt: skip


def _in_order(values: list) -> list:
    """Numbers by value, for a line through them; others (names, null) in the grid's order."""
    return sorted(values) if all(map(_number, values)) else values


def write_report(
    folders: list[str | Path],
    out: str | Path,
    sweep: tuple[list[tuple[dict[str, object], Path]], TableSpec | None] | None = None,
    command: str | None = None,
) -> Path:
    """Write ``report.md`` and its plots into ``out``; returns the page's path. With ``sweep``
    (the sweep's runs with their grid values, and its table if it has one), the runs are in
    the sweep's order, named by their grid values, and the page opens with the table and a
    plot of it; with ``command``, it names the command that made the runs."""
    runs = load_runs(folders)
    out = Path(out)

    differing = differing_settings([run.settings for run in runs])
    # A sweep's runs in its order, named by the grid values that differ (its arms by their
    # names); other runs by the settings that tell them apart.
    grid = {Path(folder).resolve(): assignment for assignment, folder in _as_shown(sweep[0])} if sweep else {}
    varying = [key for key in dict.fromkeys(k for a in grid.values() for k in a) if len({a.get(key) for a in grid.values()}) > 1]
    if grid:
        order = list(grid)
        runs.sort(key=lambda run: order.index(run.folder.resolve()))

    keys = varying if grid else differing

    def values(run: RunResults) -> Mapping[str, object]:
        """What names the run: its grid values in a sweep, else its settings."""
        return grid[run.folder.resolve()] if grid else run.settings

    def label(run: RunResults, leaving_out: tuple[str, ...] = ()) -> str:
        return run_label(values(run), keys, leaving_out)

    names, _ = run_names([label(run) for run in runs])
    names = [name or run.folder.name for name, run in zip(names, runs)]  # a run alone has nothing to tell apart
    positions = {name: i for i, name in enumerate(names)}  # a run has one colour in every plot: its place among the runs

    judged = sweep is not None and sweep[1] is not None  # a table that judges the runs' setups itself
    lines = ["# prunelab report", "", *([f"Made by `{command}`.", ""] if command else []),
             f"{counted(len(runs), 'run')}: accuracies are test accuracies, mean ± std over seeds.", ""]
    if judged:
        plot_sweep(*sweep, out / "sweep.png")
        lines += ["## The sweep's table", "", sweep_table(*sweep), "", "![the sweep's table](sweep.png)", ""]
    rows, columns, shared = comparison_rows(runs)
    results, settings = _split_columns(runs, columns)
    # Two tables, each named by the run's name: the results alone read at a glance, the settings below them.
    named = [{**row, "run": name, "folder": row["run"]} for name, row in zip(names, rows)]
    unfinished = unfinished_notes(runs, names)
    by_folder = [] if settings or len(runs) == 1 else ["folder"]  # where no table of settings names their folders
    lines += ["## Runs", "", *([shared_values(shared), ""] if shared else []), format_table(named, ["run", *results, *by_folder]), "",
              *([*unfinished, ""] if unfinished else []), *value_meanings(runs, [*results, *shared]), ""]
    if settings:
        note = unread_note([{key: row[key] for key in settings} for row in rows])
        # More settings than runs (other methods' settings) read better turned, a column per run, the folders below.
        table = (format_table(*transposed(rows, settings, names)) + "\n\n" + "\n".join(f"- {name}: `{run.folder.name}`" for name, run in zip(names, runs))
                 if len(settings) > len(runs) else format_table(named, ["run", *settings, "folder"]))  # fmt: skip
        lines += ["### Settings that differ", "", table, "", *([note, ""] if note else [])]
    # Seed 004's setups, runs named as above; a sweep's table has already judged its columns.
    setup = describe_setup([run.folder for run in runs], names) if len(runs) > 1 and not judged else ""
    if setup:
        lines += ["## Comparison setup", "", setup, ""]
    lines += _accuracy_section(runs, names, [label(run, leaving_out=("prune.sparsity",)) for run in runs], out)
    def shared_name(members: list[int]) -> str:
        """A group of runs by what they share (what differs within it left out), else by their names."""
        if len(members) == 1:
            return names[members[0]]
        within = tuple(key for key in keys if len({repr(values(runs[i]).get(key)) for i in members}) > 1)
        text = label(runs[members[0]], leaving_out=within)
        if text and len(text) <= LEGEND_WIDTH:
            return text
        together = joined([names[i] for i in members])
        # Every run's name, joined, made a legend entry and a table column wider than the page.
        return "every run" if len(members) == len(runs) and len(together) > LEGEND_WIDTH else together

    lines += _lpr_section(runs, shared_name, out)
    lines += _channels_section(runs, names)
    lines += _lpr_during_find_section(runs, names, positions, out)
    lines += ["## Training", ""]
    fold = len(runs) > FOLDED_TRAINING  # a sweep's dozens of plots: each run's behind its name, opened on a click
    for name, run in zip(names, runs):
        shown = [(plot.parent.name, _copy(plot, run, plot.parent.name, out)) for plot in run.training_plots]
        if fold and shown:
            lines += ["<details>", f"<summary>{html.escape(name)}</summary>", ""]
        for seed, link in shown:
            lines += [f"{seed if fold else f'{name} ({seed})'}:", "", f"![{run.folder.name}]({link})", ""]
        if fold and shown:
            lines += ["</details>", ""]
    page = out / "report.md"
    text = "\n".join(lines)
    write_text(page, text)
    _remove_unlinked(out, text)
    return page


def _remove_unlinked(out: Path, page: str) -> None:
    """Remove the plots of an earlier page in ``out`` that ``page`` does not link (a plot it
    no longer makes, a copy of a run it leaves out). Only once the new page is written: a
    report cut short (a full disk) leaves the page already there with every image it links."""
    linked = set(re.findall(r"\]\(([^)]+)\)", page))
    stale = [out / plot for plot in REPORT_PLOTS if plot not in linked]
    training = out / TRAINING_PLOTS
    if training.is_dir():
        stale += [plot for plot in training.glob("*.png") if f"{TRAINING_PLOTS}/{plot.name}" not in linked]
    for plot in stale:
        try:
            plot.unlink(missing_ok=True)
        except OSError as error:
            raise OSError(f"cannot remove {plot}, a plot of an earlier report: {error.strerror or error}") from None
    with contextlib.suppress(OSError):  # a copy of no run's plots left: no folder for them either
        training.rmdir()


def joined(names: list[str]) -> str:
    """Names of runs alike, numbers in ranges.

    >>> joined(["#1", "#2", "#3", "#5"]), joined(["ft", "lrw"])
    ('#1-#3 = #5', 'ft = lrw')
    """
    if not all(re.fullmatch(r"#\d+", name) for name in names):
        return " = ".join(names)
    ranges: list[list[int]] = []
    for number in sorted(int(name[1:]) for name in names):
        if ranges and number == ranges[-1][-1] + 1:
            ranges[-1][1:] = [number]
        else:
            ranges.append([number])
    return " = ".join("-".join(f"#{n}" for n in r) for r in ranges)


def _copy(plot: Path, run: RunResults, name: str, out: Path) -> str:
    """The link to a copy of the run's ``plot`` beside the page, which can then be moved or sent on its own."""
    link = f"{TRAINING_PLOTS}/{run.folder.name}-{name}.png"
    write_bytes(out / link, plot.read_bytes())
    return link


def _accuracy_section(runs: list[RunResults], names: list[str], shared: list[str], out: Path) -> list[str]:
    """Accuracy against sparsity: one line per group of runs that differ only in their target
    sparsity (``shared``: each run's label without it), named by what the group shares (or its
    members' names), or by the method if that is everything; nothing if all runs are at one sparsity."""
    groups: dict[str, list[int]] = {}
    for i, text in enumerate(shared):
        groups.setdefault(text, []).append(i)
    # A line is named by what its runs share unless that is too long for a legend, then by their numbers.
    curves = {
        (joined([names[i] for i in members]) if len(text) > LEGEND_WIDTH else text or str(runs[members[0]].settings.get("prune.method"))):
        sorted(point for i in members for point in runs[i].curve)
        for text, members in groups.items()
    }  # fmt: skip
    # Runs all at one sparsity would be points over each other: the runs' table says it all.
    if len({round(s, 6) for curve in curves.values() for s, _, _ in curve}) <= 1:
        return []
    # Each line's dense accuracy, if its runs share one: runs of other find phases reach other ones.
    dense = {}
    for name, members in zip(curves, groups.values()):
        values = {round(runs[i].stats["dense_acc"]["mean"], 12) for i in members if runs[i].stats.get("dense_acc")}
        if len(values) == 1:
            dense[name] = values.pop()
    # A line of one run in that run's colour; where lines gather several runs, lines in their own order.
    alone = all(len(members) == 1 for members in groups.values())
    plot_accuracy_vs_sparsity(curves, dense, out / "accuracy_vs_sparsity.png",
                              positions=dict(zip(curves, (members[0] for members in groups.values()))) if alone else None)
    points = [
        {"runs": name, "sparsity": f"{100 * s:.2f}%", "final accuracy": format_stat("final_acc", {"mean": m, "std": sd})}
        for name, curve in curves.items() for s, m, sd in curve
    ]  # fmt: skip
    return ["## Accuracy against sparsity", "", "![accuracy against sparsity](accuracy_vs_sparsity.png)", "",
            format_table(points), ""]  # fmt: skip


def _lpr_section(runs: list[RunResults], shared_name: Callable[[list[int]], str], out: Path) -> list[str]:
    """The layerwise pruning ratios of the runs' final masks, plotted and tabulated; runs of
    the same ratios (a sweep over retraining, on the same masks) as one, named by
    ``shared_name`` of their indices, in the first one's colour."""
    groups: dict[tuple, list[int]] = {}
    for i, run in enumerate(runs):
        if run.layer_sparsity:
            groups.setdefault(tuple((layer, round(ratio, 9)) for layer, ratio in run.layer_sparsity.items()), []).append(i)
    if not groups:
        return []
    lprs = {shared_name(members): runs[members[0]].layer_sparsity for members in groups.values()}
    # A bar of one run in that run's colour; where bars gather several runs, bars in their own order, as the
    # accuracy plot's lines: the 13th run's colour gave the second of two bars a hatching that meant nothing.
    alone = all(len(members) == 1 for members in groups.values())
    positions = {name: members[0] for name, members in zip(lprs, groups.values())} if alone else None
    plot_layer_sparsity(lprs, out / "layer_sparsity.png", positions)
    layer_names = list(dict.fromkeys(layer for lpr in lprs.values() for layer in lpr))

    def size(layer: str) -> str:
        """The layer's number of weights, beside its ratios; blank where the runs' models differ in it."""
        sizes = {run.layer_weights[layer] for run in runs if layer in run.layer_weights}
        return f"{sizes.pop():,}" if len(sizes) == 1 else ""

    table = [{"layer": layer, "weights": size(layer), **{name: f"{100 * lpr[layer]:.2f}%" if layer in lpr else "" for name, lpr in lprs.items()}}
             for layer in layer_names]  # fmt: skip
    return ["## Layerwise pruning ratios of the final masks", "",
            "![layerwise pruning ratios](layer_sparsity.png)", "", format_table(table), ""]  # fmt: skip


def _channels_section(runs: list[RunResults], names: list[str]) -> list[str]:
    """The channels each channel-pruning run's small model keeps of each group, of the dense model's."""
    pruned = [(name, run) for name, run in zip(names, runs) if run.channels]
    if not pruned:
        return []

    def kept(run: RunResults, group: str) -> str:
        if group not in run.channels:
            return ""
        size, counts = run.channels[group]
        stat = mean_std(counts)
        return (f"{stat['mean']:.1f} ± {stat['std']:.1f}" if stat["std"] else f"{stat['mean']:.0f}") + f" of {size}"

    groups = list(dict.fromkeys(group for _, run in pruned for group in run.channels))
    table = [{"channel group": group, **{name: kept(run, group) for name, run in pruned}} for group in groups]
    return ["## Kept channels", "",
            "The channels the small dense model keeps of each channel group (a layer's filters, with those joined to "
            "them by residual additions), of the dense model's; mean ± std over seeds.", "",
            format_table(table), ""]  # fmt: skip


def _lpr_during_find_section(runs: list[RunResults], names: list[str], positions: dict[str, int], out: Path) -> list[str]:
    """With ``find.lpr_every``: how far the LPR over the find phase lies from the final one."""
    distances = {name: run.lpr_distance for name, run in zip(names, runs) if run.lpr_distance}
    if not distances:
        return []
    # The spread too: the text and table below give mean ± std over seeds, the plot gave the mean alone.
    plot_lpr_distance({name: (list(d), [mean for mean, _ in d.values()]) for name, d in distances.items()}, out / "lpr_distance.png", positions,
                      spreads={name: [std for _, std in d.values()] for name, d in distances.items()})  # fmt: skip
    layers = [f"[{name} ({plot.parent.name})]({_copy(plot, run, f'{plot.parent.name}-lpr_during_find', out)})"
              for name, run in zip(names, runs) if run.lpr_distance for plot in run.lpr_plots]  # fmt: skip
    return ["## Layerwise pruning ratios during the find phase", "",
            "How far the LPR of pruning the find phase's weights after each kept epoch lies from the LPR of "
            "pruning them at the end: the mean over layers of the absolute difference, in percentage points, "
            "mean ± std over seeds (seed 002's Figure A19)."
            + (f" The LPR of each layer, seed by seed (Figure A18): {', '.join(layers)}." if layers else ""), "",
            "![distance of the LPR from the final one](lpr_distance.png)", "",
            format_table(distance_rows(distances)), ""]  # fmt: skip
