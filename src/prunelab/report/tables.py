"""Plain-text tables that read well in a terminal and paste into Markdown."""

from __future__ import annotations

import functools
import math
import re
import statistics
from collections.abc import Mapping, Sequence

from prunelab.config import BIMPConfig, GMPConfig, IMPConfig, OneShotConfig, Recipe, flat
from prunelab.config.sweep import grid_value


def format_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None) -> str:
    """A Markdown table of ``rows``; numbers right-aligned, floats to 4 significant digits.

    >>> print(format_table([{"layer": "fc1.weight", "sparsity": 0.91234}, {"layer": "fc2.weight", "sparsity": "null"}]))
    | layer      | sparsity |
    |------------|---------:|
    | fc1.weight |   0.9123 |
    | fc2.weight |     null |
    """
    columns = [str(c) for c in (columns or dict.fromkeys(key for row in rows for key in row))]
    if not columns:
        return "(no rows)"
    rows = [{str(key): value for key, value in row.items()} for row in rows]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    names = [_cell(c) for c in columns]
    widths = [max([len(name)] + [len(r[i]) for r in cells]) for i, name in enumerate(names)]
    numeric = [all(_is_number(row.get(c)) for row in rows if row.get(c) not in PLACEHOLDERS) for c in columns]
    header = "| " + " | ".join(name.ljust(w) for name, w in zip(names, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 1) + (":" if n else "-") for w, n in zip(widths, numeric)) + "|"
    body = [
        "| " + " | ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(r, widths, numeric)) + " |"
        for r in cells
    ]
    return "\n".join([header, rule, *body])


UNREAD = "–"  # a setting the run's method never read (BIMP's find.epochs, FT's eval LR schedule)
#: Cells that stand for no number (empty, unset, not read), so that they leave a column of numbers right-aligned.
PLACEHOLDERS = (None, "", "null", UNREAD)

_NUMBER_TEXT = re.compile(r"(< )?[-+]?\d[\d,]*(\.\d+)?(%| s|x|/s)?( ± .*)?")


def numbered(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> tuple[list[dict], list[str]]:
    """``rows`` and ``columns`` with a first column ``#`` numbering the rows from 1, for text
    that names rows by number where their own names are too long.

    >>> numbered([{"run": "a"}, {"run": "b"}], ["run"])
    ([{'#': 1, 'run': 'a'}, {'#': 2, 'run': 'b'}], ['#', 'run'])
    """
    return [{"#": i, **row} for i, row in enumerate(rows, start=1)], ["#", *columns]


def transposed(rows: Sequence[Mapping[str, object]], columns: Sequence[str], names: Sequence[str]) -> tuple[list[dict], list[str]]:
    """``rows`` turned a quarter, for a few rows of many columns: a row per column, a column
    per row, named by ``names``.

    >>> transposed([{"acc": 0.9, "lr": 0.1}, {"acc": 0.8, "lr": 0.2}], ["acc", "lr"], ["#1", "#2"])
    ([{'': 'acc', '#1': 0.9, '#2': 0.8}, {'': 'lr', '#1': 0.1, '#2': 0.2}], ['', '#1', '#2'])
    """
    return [{"": column, **{name: row.get(column) for name, row in zip(names, rows)}} for column in columns], ["", *names]


def _is_number(value: object) -> bool:
    """Numbers, and numbers already formatted (``93.90% ± 0.50``, bold too), are right-aligned."""
    if isinstance(value, str):
        return _NUMBER_TEXT.fullmatch(value.removeprefix("**").removesuffix("**")) is not None
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"
    # A | or a line break inside a cell would end it, or the row.
    return str(value).replace("|", "\\|").replace("\n", " ")


LOWER_IS_BETTER = ("loss", "seconds", "parameters", "epochs", "instability")  # instability: the error barrier; epochs: a budget


def pivot(
    results: Sequence[tuple[Mapping[str, object], Mapping[str, Mapping[str, float]]]],
    rows: str,
    columns: Sequence[str],
    value: str,
) -> str:
    """A Markdown pivot table of sweep results, best mean of each column in bold.

    ``results`` pairs each run's grid assignment with its summary statistics
    (``{metric: {"mean": ..., "std": ...}}``). Accuracies and sparsity are in percent. The best is
    the highest, or the lowest for losses, times and parameter counts.

    >>> results = [({"policy": p, "budget": b}, {"final_acc": {"mean": m, "std": 0.01}})
    ...            for p, b, m in [("ft", 2, 0.8), ("llr", 2, 0.9), ("ft", 5, 0.85), ("llr", 5, 0.84)]]
    >>> print(pivot(results, "policy", ["budget"], "final_acc"))
    | policy | budget 2         | budget 5         |
    |--------|-----------------:|-----------------:|
    | ft     |     80.00 ± 1.00 | **85.00 ± 1.00** |
    | llr    | **90.00 ± 1.00** |     84.00 ± 1.00 |
    """
    row_label, row_values, by_column = pivot_columns(results, rows, columns, value)
    choose = min if lower_is_better(value) else max
    best = {  # NaN means (a diverged run) are never the best
        header: choose((s["mean"] for s in stats if s is not None and not math.isnan(s["mean"])), default=None)
        for header, stats in by_column.items()
    }
    scale = 100 if is_percent(value) else 1  # as format_stat shows them
    # Over several seeds a cell whose seeds agree shows its ± 0.00 too, unlike a single seed's.
    spread = any(s is not None and s["std"] for stats in by_column.values() for s in stats)
    table = []
    for i, r in enumerate(row_values):
        line = {row_label: grid_value(r)}
        for header, stats in by_column.items():
            stat = stats[i]
            text = "" if stat is None else format_mean_std(stat["mean"], stat["std"], scale, always=spread)
            line[header] = f"**{text}**" if stat is not None and stat["mean"] == best[header] else text
        table.append(line)
    return format_table(table)


def pivot_columns(
    results: Sequence[tuple[Mapping[str, object], Mapping[str, Mapping[str, float]]]], rows: str, columns: Sequence[str], value: str
) -> tuple[str, list, dict[str, list[Mapping[str, float] | None]]]:
    """What :func:`pivot` shows: the rows' label, the row values, and per column (by its
    header) the statistics of ``value`` in each row, None where no run has them."""
    row_values = list(dict.fromkeys(a[rows] for a, _ in results))
    column_values = list(dict.fromkeys(tuple(a[c] for c in columns) for a, _ in results))
    cells = pivot_cells(results, rows, columns, value)
    label = short_labels([rows, *columns])
    by_column = {column_name(label, columns, col) or value: [cells.get((r, col)) for r in row_values] for col in column_values}
    return label[rows], row_values, by_column


def column_winners(
    results: Sequence[tuple[Mapping[str, object], Mapping[str, Mapping[str, float]]]],
    rows: str,
    columns: Sequence[str],
    value: str,
) -> str:
    """Seed 004's reading of a table that crosses methods (rows) with training recipes
    (columns): "if one method consistently wins in both cases, we are more confident that the
    winner is really better"; if the winners reverse (one row ahead in a column, another in
    another, each by more than a standard deviation), pruning and retraining interact, and
    "the case delivering higher performance weighs more"; rows tied for best are each a winner
    of their column. Winners that differ only by leads within one standard deviation show
    neither; such leads are named. Empty unless two columns have two rows or more, and the
    columns are training settings (``find.*``, ``eval.*``): columns of other sparsities, data
    or models compare different tasks, whose best cell says nothing about the rows.

    >>> results = [({"criterion": c, "eval.lr_policy": p}, {"final_acc": {"mean": m, "std": 0.005}})
    ...            for c, p, m in [("l1", "ft", 0.938), ("bn", "ft", 0.927), ("l1", "llr", 0.964), ("bn", "llr", 0.961)]]
    >>> print(column_winners(results, "criterion", ["eval.lr_policy"], "final_acc"))
    Best in every column (lr_policy ft, lr_policy llr): criterion l1, the consistent winner (seed 004's cross-validation); its lead is within one standard deviation under lr_policy llr (a lead of 0.30, a std of 0.50).
    """
    if not all(column.startswith(("find.", "eval.")) for column in columns):
        return ""
    scale = 100 if is_percent(value) else 1
    cells = {key: stat for key, stat in pivot_cells(results, rows, columns, value).items() if not math.isnan(stat["mean"])}
    row_values = list(dict.fromkeys(r for r, _ in cells))
    column_values = list(dict.fromkeys(c for _, c in cells))
    label = short_labels([rows, *columns])
    name = {col: column_name(label, columns, col) for col in column_values}
    winners, top, close = {}, {}, []
    for col in column_values:
        ranked = sorted((r for r in row_values if (r, col) in cells), key=lambda r: cells[(r, col)]["mean"], reverse=not lower_is_better(value))
        if len(ranked) < 2:
            continue
        (first, second) = (cells[(r, col)] for r in ranked[:2])
        lead, spread = abs(first["mean"] - second["mean"]), max(first["std"], second["std"])
        winners[col] = ranked[0]
        top[col] = [r for r in ranked if cells[(r, col)]["mean"] == first["mean"]]  # a tie's rows win together
        if lead and lead <= spread:
            close.append(f"{name[col]} (a lead of {lead * scale:.2f}, a std of {spread * scale:.2f})")
    if len(winners) < 2:
        return ""
    ties = {col for col, best in top.items() if len(best) > 1}
    caveat = f"; its lead is within one standard deviation under {', '.join(close)}" if close else ""
    if not ties and len(set(winners.values())) == 1:
        return (f"Best in every column ({', '.join(name[c] for c in winners)}): {label[rows]} {grid_value(next(iter(winners.values())))}, "
                f"the consistent winner (seed 004's cross-validation){caveat}.")  # fmt: skip
    per_column = ", ".join(f"a tie under {name[c]}" if c in ties else f"{label[rows]} {grid_value(w)} under {name[c]}" for c, w in winners.items())
    sign = -1 if lower_is_better(value) else 1

    def ahead(a: object, b: object, col: object) -> bool:  # row a beats row b in col by more than a std
        if (a, col) not in cells or (b, col) not in cells:
            return False
        first, second = cells[(a, col)], cells[(b, col)]
        return sign * (first["mean"] - second["mean"]) > max(first["std"], second["std"])

    # An interaction: two winners (a tie's rows among them) that swap places, each ahead of the
    # other by more than a std in its column.
    reversal = any(ahead(w1, w2, c1) and ahead(w2, w1, c2) for c1 in top for c2 in top for w1 in top[c1] for w2 in top[c2])
    if not reversal:
        return (f"No {label[rows]} wins every column ({per_column}), and no winner is reversed by more than a standard "
                "deviation elsewhere: neither a consistent winner nor an interaction of the method and the recipe "
                "(seed 004); more seeds may tell" + (f"; leads within one standard deviation under {', '.join(close)}" if close else "") + ".")  # fmt: skip
    best_row, best_col = (min if lower_is_better(value) else max)(cells, key=lambda key: cells[key]["mean"])
    return (f"The best {label[rows]} depends on the column ({per_column}): the method and the recipe interact "
            f"(seed 004), and the best cell, {label[rows]} {grid_value(best_row)} under {name[best_col]}, weighs more"
            + (f"; leads within one standard deviation under {', '.join(close)}" if close else "") + ".")


def pivot_cells(
    results: Sequence[tuple[Mapping[str, object], Mapping[str, Mapping[str, float]]]], rows: str, columns: Sequence[str], value: str
) -> dict[tuple, Mapping[str, float]]:
    """The statistics of ``value`` by (row value, column values); two runs in one cell are an error."""
    cells: dict[tuple, Mapping[str, float]] = {}
    for assignment, stats in results:
        key = (assignment[rows], tuple(assignment[c] for c in columns))
        if key in cells:
            cell = ", ".join(f"{field}={grid_value(v)}" for field, v in zip([rows, *columns], [key[0], *key[1]]))
            raise ValueError(f"two runs fall into the cell {cell}: "
                             "the rows and columns must name every field that differs between the runs")
        if value in stats:
            cells[key] = stats[value]
    return cells


def column_name(label: Mapping[str, str], columns: Sequence[str], values: tuple) -> str:
    return " / ".join(f"{label[c]} {grid_value(v)}" for c, v in zip(columns, values))


def lower_is_better(value: str) -> bool:
    """Whether the lowest of a summary ``value`` is the best (losses, times, counts, instability)."""
    return any(word in value for word in LOWER_IS_BETTER)


def short_labels(fields: Sequence[str]) -> dict[str, str]:
    """Each dotted field by its shortest ending that no other field, nor another setting of
    a recipe, shares: ``lr_policy`` is eval's alone, but ``lr`` could be find's or eval's.

    >>> short_labels(["find.optimizer.lr", "eval.lr_policy", "prune.sparsity"])
    {'find.optimizer.lr': 'find.optimizer.lr', 'eval.lr_policy': 'lr_policy', 'prune.sparsity': 'sparsity'}
    """
    labels = {}
    for field in fields:
        parts = field.split(".")
        others = (recipe_settings() | set(fields)) - {field}
        for length in range(1, len(parts) + 1):
            ending = ".".join(parts[-length:])
            if not any(other == ending or other.endswith("." + ending) for other in others):
                break
        labels[field] = ending
    return labels


@functools.cache
def recipe_settings() -> frozenset[str]:
    """The dotted keys of every setting and section a recipe can have, over all methods
    (``find.optimizer`` as well as ``find.optimizer.lr``)."""
    leaves = {key for prune in (OneShotConfig, GMPConfig, IMPConfig, BIMPConfig) for key in flat(Recipe(prune=prune()).model_dump())}
    return frozenset(".".join(key.split(".")[:n]) for key in leaves for n in range(1, key.count(".") + 2))


def format_mean_std(mean: float, std: float, scale: float = 1, always: bool = False) -> str:
    """``mean ± std`` to two decimals, after ``scale`` (100 for percent); the mean alone if the
    std is 0, unless ``always``.

    >>> format_mean_std(0.9312, 0.0051, 100), format_mean_std(0.5, 0.0, 100), format_mean_std(0.5, 0.0, 100, always=True)
    ('93.12 ± 0.51', '50.00', '50.00 ± 0.00')
    """
    return f"{mean * scale:.2f}" + (f" ± {std * scale:.2f}" if std or always else "")


def is_percent(key: str) -> bool:
    """Whether a summary value is a share, shown in percent: accuracies, sparsities, the
    instability (a difference of test errors)."""
    return key.endswith(("_acc", "sparsity")) or key == "instability"


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation of one value over seeds (std 0 for a single seed).

    >>> {k: round(v, 4) for k, v in mean_std([0.5, 0.7]).items()}
    {'mean': 0.6, 'std': 0.1414}
    """
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def format_stat(key: str, stat: Mapping[str, float] | None) -> str:
    """A run's summary statistic for reading: accuracies and sparsity in percent, counts with
    thousands separators, seconds with a unit; ``± std`` when the seeds differ.

    >>> format_stat("final_acc", {"mean": 0.9391, "std": 0.0052})
    '93.91% ± 0.52'
    >>> format_stat("remaining_parameters", {"mean": 3012.0, "std": 0.0}), format_stat("wall_seconds", {"mean": 16.49, "std": 0.0})
    ('3,012', '16.5 s')
    >>> format_stat("images_per_second", {"mean": 41870.2, "std": 1520.7})
    '41,870/s ± 1,521'
    """
    if stat is None:
        return ""
    mean, std = stat["mean"], stat["std"]
    if is_percent(key):
        return f"{100 * mean:.2f}%" + (f" ± {100 * std:.2f}" if std else "")
    if key == "speedup":
        return f"{mean:.2f}x" + (f" ± {std:.2f}" if std else "")
    if key.endswith("parameters"):
        return f"{mean:,.0f}" + (f" ± {std:,.0f}" if std else "")
    if key.endswith("seconds"):
        return f"{mean:.1f} s" + (f" ± {std:.1f}" if std else "")
    if key.endswith("per_second"):
        return f"{mean:,.0f}/s" + (f" ± {std:,.0f}" if std else "")
    return f"{mean:.4g}" + (f" ± {std:.2g}" if std else "")
