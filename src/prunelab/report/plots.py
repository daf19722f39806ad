"""Plots of runs, written as PNG files next to the results."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

from prunelab.runs.io import read_json, write_bytes
from prunelab.wording import counted


def _figure(width: float = 7, height: float = 4, **grid):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Constrained layout, unlike tight_layout, keeps the axes clear of a legend placed outside them.
    return plt.subplots(figsize=(width, height), dpi=120, layout="constrained", **grid)


def _legend_below(fig, ax, title: str = "") -> None:
    """The legend under the axes, in as many columns as its longest label lets fit the width,
    and the figure taller by its rows: with dozens of runs a legend in or above the axes covered
    the lines, ran off the image or squeezed the axes to nothing."""
    handles, labels = ax.get_legend_handles_labels()
    if not labels:
        return
    column = 0.45 + 0.055 * max(map(len, labels))  # inches: the handle, then ~18 characters an inch at size 7
    columns = max(1, min(len(labels), int(fig.get_figwidth() // column)))
    fig.set_figheight(fig.get_figheight() + 0.17 * (-(-len(labels) // columns) + bool(title)))
    fig.legend(handles, labels, loc="outside lower center", ncol=columns, fontsize=7, frameon=False, title=title or None, title_fontsize=7)


def _save(fig, path: Path) -> None:
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    # "tight" widens the image to a legend wider than the figure rather than cutting it.
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    write_bytes(path, buffer.getvalue())


def _whole_epochs(axis) -> None:
    """Ticks at whole epochs, 1, 2, 5 or 10 times a power of 10 apart: matplotlib's own ticked 18
    epochs at 2.5, 7.5, ..., and its whole numbers stepped 70 epochs by 8 (0, 8, ..., 72). One
    whole epoch in view is enough: asking for two, it ticked -0.04, -0.02, ... around a single one."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10], min_n_ticks=1))


def plot_training(seed_folder: Path, summary: Mapping[str, object], setup: str = "") -> Path:
    """Test accuracy per epoch over all phases, one line per phase, drawn at the end of each
    epoch, with the dense model's accuracy and the accuracy right after each pruning step
    (before retraining) marked where it happened; below, the sparsity, then the LR of every
    optimizer step; the phases (and GMP's stages) marked on every panel. The title says what
    the seed ran, from its ``summary`` (drawn before it is written: a seed with a summary has
    its plot) and the run's ``setup`` (:func:`prunelab.report.runs.training_label`: its LR
    policy, rewinding and early stop). Second trainings that only measure instability are left out."""
    rows = [row for row in read_json(seed_folder / "metrics.json", list) if not row["phase"].endswith("-copy")]
    events_path, lr_path = seed_folder / "events.json", seed_folder / "lr_log.json"
    events = read_json(events_path) if events_path.exists() else {}
    lr_log = read_json(lr_path) if lr_path.exists() else {}
    # Sparsity on a panel of its own: on a second axis of the accuracy's, 90% sparsity lay on 90% accuracy.
    fig, (ax, sparsity_ax, lr_ax) = _figure(height=5.5, nrows=3, sharex=True, height_ratios=[3, 1, 1])
    # Epoch k spans k - 1 to k, its accuracy measured at its end, where its last step's LR is drawn.
    x = list(range(1, len(rows) + 1))
    boundaries = [i for i in range(1, len(rows)) if rows[i]["phase"] != rows[i - 1]["phase"]]
    for start, end in zip([0, *boundaries], [*boundaries, len(rows)]) if rows else ():  # no epoch trained: an empty plot
        # Not joined across phases: between them the weights change (pruning, rewinding) without an epoch.
        # A phase of one epoch is one point: a dot large enough to find (BIMP's last levels, a retraining budget of 1 epoch).
        ax.plot(x[start:end], [100 * r["test_acc"] for r in rows[start:end]], color="tab:blue", marker="o" if end - start == 1 else None,
                markersize=4, label="test accuracy" if start == 0 else None)  # fmt: skip
        log = lr_log.get(rows[start]["phase"], [])  # a phase's steps spread evenly over its epochs
        if log:
            lr_ax.plot([start + (i + 1) * (end - start) / len(log) for i in range(len(log))], log, color="tab:green")
    dense = summary.get("dense_acc")
    if dense is not None:
        ax.axhline(100 * dense, color="0.5", linestyle=":", label=f"dense: {100 * dense:.2f}%")
    ax.set_ylabel("test accuracy (%)", color="tab:blue")
    lr_ax.set_yscale("log", nonpositive="mask")  # an LR decayed to 0 ends the line
    lrs = [lr for log in lr_log.values() for lr in log if lr > 0]
    if lrs:  # a schedule's last steps near 0 (cosine) would squeeze the rest into the top of the panel
        from matplotlib.ticker import LogLocator, NullFormatter

        low = max(min(lrs), 1e-4 * max(lrs)) / 2
        # From a power of 10 to a power of 10, labelled there only: within about a decade (a
        # constant LR) matplotlib labelled the 2, 3, 4 and 6 between, one over another in this short panel.
        lr_ax.set_ylim(10 ** math.floor(math.log10(low)), max(lr_ax.get_ylim()[1], 10 ** math.ceil(math.log10(max(lrs)))))
        lr_ax.yaxis.set_minor_formatter(NullFormatter())
        # A tick at every power of 10, every one labelled up to 4 of them: matplotlib found room for
        # two ticks in this short panel, 10^-2 and 10^0 around a constant 0.1, 10^-6 and 10^-1 around GMP's 0.05 to 0.0005.
        lr_ax.yaxis.set_major_locator(LogLocator(numticks=4))
        lr_ax.yaxis.set_minor_locator(LogLocator(subs=(1.0,), numticks=99))
    lr_ax.set_ylabel("LR", color="tab:green")
    lr_ax.set_xlabel("epoch (all phases)")
    _whole_epochs(lr_ax.xaxis)
    labelled = False
    for boundary in boundaries:
        # "eval" follows the unit "prune", "level-2/eval" follows "level-2/prune".
        pruned = events.get(rows[boundary]["phase"].replace("eval", "prune"), {})
        if "test_acc_after_prune" in pruned:  # unclipped: a marker at the bottom edge is drawn whole
            ax.plot(boundary, 100 * pruned["test_acc_after_prune"], "v", color="tab:blue", clip_on=False,
                    label=None if labelled else "test accuracy right after pruning")
            labelled = True
    lines = [(boundary, {"color": "0.8", "linewidth": 0.8}) for boundary in boundaries]
    # Each phase named where it starts ("level-2/eval" as "level-2").
    marks = [(start, rows[start]["phase"].removesuffix("/eval")) for start in [0, *boundaries]] if rows else []
    plan = events.get("gmp/plan")
    if plan and lr_log.get("eval"):
        # GMP prunes within the epochs of its eval phase (the last one), the find phase dense:
        # each update where it happened, in steps spread evenly over the epochs.
        start = next(i for i, row in enumerate(rows) if row["phase"] == "eval")
        per_epoch = len(lr_log["eval"]) / (len(rows) - start)
        updates = [start + step / per_epoch for step in plan["update_steps"]]
        sparsity_ax.step([0, *updates, len(rows)], [0.0, *(100 * s for s in plan["sparsity"]), 100 * plan["sparsity"][-1]],
                         where="post", color="tab:red")  # fmt: skip
        # Seed 001's stages within it.
        stages = [(updates[0], "pruning")]
        if plan["finetune_step"] < len(lr_log["eval"]):
            stages.append((start + plan["finetune_step"] / per_epoch, "fine-tuning"))
        lines += [(where, {"color": "0.6", "linestyle": ":", "linewidth": 0.8}) for where, _ in stages]
        marks += stages
    elif rows:  # each epoch's sparsity holds over the epoch: pruning steps show as steps, at the phase lines
        sparsity_ax.step(range(len(rows) + 1), [100 * r["sparsity"] for r in [*rows, rows[-1]]], where="post", color="tab:red")
    for panel in (ax, sparsity_ax, lr_ax):
        for where, style in lines:
            panel.axvline(where, **style)
    sparsity_ax.set_ylabel("sparsity (%)", color="tab:red")
    sparsity_ax.set_ylim(0, 100)
    sparsity_ax.set_yticks([0, 50, 100])
    # One text where marks lie closer than its height (GMP pruning an epoch after the eval phase
    # starts): upright above the panel, clear of its lines, as phases of an epoch or two leave no room across.
    named: list[tuple[float, list[str]]] = []
    for where, name in sorted(marks, key=lambda mark: mark[0]):
        if named and where - named[-1][0] < len(rows) / 40:
            named[-1][1].append(name)
        else:
            named.append((where, [name]))
    for where, names in named:
        ax.annotate(", ".join(names), (where, 1), xycoords=("data", "axes fraction"), xytext=(0, 2), textcoords="offset points",
                    rotation=90, ha="center", va="bottom", fontsize=7, color="0.4")  # fmt: skip
    # Below the panels: inside, the legend covered the marker it names.
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=max(1, len(labels)), fontsize=8, frameon=False)
    sparse = f"{100 * summary['sparsity']:.3g}% sparse"
    if summary.get("channel_sparsity") is not None:  # the recipe's sparsity counts channels: "0.5" showed as "72.7% sparse"
        sparse += f" ({100 * summary['channel_sparsity']:.3g}% of channels removed)"
    ran = [summary["method"], sparse, *([setup] if setup else []), f"seed {summary['seed']}"]
    outcome = f"final {100 * summary['final_acc']:.2f}%" + (f" (dense {100 * dense:.2f}%)" if dense is not None else "")
    fig.suptitle(f"{', '.join(ran)}: {outcome}\n{seed_folder.parent.name}", fontsize=9)
    path = seed_folder / "training.png"
    _save(fig, path)
    return path


def plot_sparsity_schedule(steps: list[int], sparsity: list[float], finetune_step: int, end: int, path: Path, epochs: int,
                           schedule: str) -> Path:  # fmt: skip
    """GMP's target sparsity over its whole eval phase (``end`` optimizer steps in ``epochs``
    epochs), against the epoch as every other plot reads: dense while it stabilizes, the
    updates along the ``schedule``, then fine-tuning from ``finetune_step``."""
    per_epoch = end / epochs
    updates = [step / per_epoch for step in steps]
    finetune = finetune_step / per_epoch
    fig, ax = _figure()
    percent = [0.0, *(100 * s for s in sparsity), 100 * sparsity[-1]]
    ax.step([0, *updates, epochs], percent, where="post", marker=".", markevery=list(range(1, len(steps) + 1)))
    for where, stage in ((updates[0], "pruning"), (finetune, "fine-tuning")):
        if where < epochs:
            ax.axvline(where, color="0.6", linestyle=":")
            ax.annotate(f" {stage}", (where, 0), xycoords=("data", "axes fraction"), va="bottom", color="0.4")
    ax.set_xlim(0, epochs)
    ax.set_xlabel("epoch of the eval phase")
    ax.set_ylabel("sparsity (%)")
    ax.set_title(f"GMP, {schedule} {100 * sparsity[0]:.3g}% -> {100 * sparsity[-1]:.3g}%: {counted(len(steps), 'update')} over "
                 f"epochs {updates[0]:g}-{finetune:g} of the eval phase's {epochs}")  # fmt: skip
    _save(fig, path)
    return path


def plot_lr_range(lrs: list[float], losses: list[float], inflection_lr: float | None, path: Path, run: str,
                  baseline: float | None = None, threshold: float | None = None) -> Path:  # fmt: skip
    """Probe loss against the LR of the test of ``run``, both on log scales, with the trained
    model's loss (``baseline``), the loss that counts as risen (``threshold``: a share of the
    baseline or, below it, of the loss floor) and the
    inflection point, the first LR above it. The axis ends at 3 times the threshold: the
    diverged tail, orders of magnitude above, squeezed the rise to the threshold into pixels."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, ax = _figure()
    ax.plot(lrs, losses, label="probe loss after the steps up to that LR")
    if baseline is not None:
        ax.axhline(baseline, color="0.5", linestyle=":", label=f"trained model: {baseline:.3g}")
    if threshold is not None:
        from prunelab.analysis.lr_range import describe_rise

        # Named as the command names it: below the floor, "34% above" a loss of 0.003 hid the 10% rule.
        risen = "risen" if baseline is None else f"{describe_rise(baseline, threshold)} above the trained model"
        ax.axhline(threshold, color="tab:orange", linestyle=":", label=f"{risen}: {threshold:.3g}")
    if inflection_lr is not None:
        ax.axvline(inflection_lr, color="tab:red", linestyle="--", label=f"inflection: {inflection_lr:.3g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    if threshold and any(loss > 3 * threshold for loss in losses):
        ax.set_ylim(top=3 * threshold)
    # Losses as plain numbers (the ticks read "2 x 10^0"), between the powers of 10 too where
    # the axis spans less than one and a half decades.
    low, high = ax.get_ylim()
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain if high < 30 * low else NullFormatter())
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss on the probe set")
    ax.set_title(f"LR range test: {run}", fontsize=10)
    _legend_below(fig, ax)
    _save(fig, path)
    return path


def plot_sensitivity(
    curves: dict[str, tuple[list[float], list[float]]], dense_acc: float, path: Path, run: str, tolerance: float,
    within: dict[str, float | None], sizes: dict[str, int], measured_on: str = "training",
) -> Path:
    """Pruning sensitivity of ``run``: accuracy (on the ``measured_on`` examples) against the
    weights remaining in the one layer pruned (``curves``: layer -> its sparsities and
    accuracies), on a log scale, as the accuracy plots of runs read, so that 80% to 99% is not
    squeezed into a fifth of the axis; a line per layer (:func:`_layer_colours`: up to 10 named
    with their size, ``sizes``, in the legend), its highest sparsity within the ``tolerance``
    below the dense model's accuracy (``within``) circled; the dense model's accuracy dotted
    and, shaded, the ``tolerance`` below it."""
    fig, ax = _figure()
    colours = _layer_colours(fig, ax, len(curves))
    circled: list[tuple[float, float, object]] = []  # where, and in which layer's colour
    for colour, (name, (sparsities, accuracies)) in zip(colours, curves.items()):
        ax.plot([100 * (1 - s) for s in sparsities], [100 * a for a in accuracies], marker=".", color=colour,
                label=f"{name}: {counted(sizes[name], 'weight')}" if len(curves) <= 10 else None)  # fmt: skip
        if within[name] is not None:
            circled.append((100 * (1 - within[name]), 100 * accuracies[sparsities.index(within[name])], colour))
    if circled:  # one legend entry for all layers; over the lines, which cross there
        x, y, edges = zip(*circled)
        ax.scatter(x, y, s=80, facecolors="none", edgecolors=edges, zorder=3, label=f"highest sparsity within {100 * tolerance:g} point")
    ax.axhline(100 * dense_acc, color="0.5", linestyle=":", label=f"dense: {100 * dense_acc:.2f}%")
    # Under everything: drawn over the circles, which lie in it, it cut them in half.
    ax.axhspan(100 * (dense_acc - tolerance), 100 * dense_acc, color="0.9", zorder=0, label=f"within {100 * tolerance:g} point of dense")
    _weights_remaining_axis(ax, [s for sparsities, _ in curves.values() for s in sparsities])
    ax.set_xlabel("weights remaining in the pruned layer (%)")
    ax.set_ylabel(f"{measured_on} accuracy (%)")
    _legend_below(fig, ax)
    ax.set_title(f"pruning sensitivity: one layer pruned at a time, no retraining\n{run}", fontsize=10)
    _save(fig, path)
    return path


def _layer_colours(fig, ax, count: int) -> list:
    """A colour per layer of ``ax``, in the model's order: the 10 of the cycle up to 10 layers,
    for a legend to name; past that (a ResNet-56's 58) the cycle would give six layers one
    colour, so colours go from the input (dark) to the output (light) along a colour bar
    beside ``ax`` numbered 1 to ``count`` (viridis without its palest yellow, faint on white)."""
    if count <= 10:
        return [f"C{i}" for i in range(count)]
    import matplotlib
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.ticker import MaxNLocator

    viridis = matplotlib.colormaps["viridis"]
    scale = ListedColormap([viridis(0.9 * i / (count - 1)) for i in range(count)])
    # Layer k's colour spans k - 0.5 to k + 0.5: the bar ends at the first and last layer.
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(BoundaryNorm([k + 0.5 for k in range(count + 1)], count), scale), ax=ax,
                       label="layer (input to output)")  # fmt: skip
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    bar.minorticks_off()  # a tick per layer's boundary read as a ruler
    return [scale(i) for i in range(count)]


def _weights_remaining_axis(ax, sparsities: list[float]) -> None:
    """x as the share of weights remaining, plotted in percent, on a log scale from dense on
    the left to sparse on the right, ticked at the outermost points' values first, so that
    every point lies between two labels, then at the other points' and 100, 50, 20, ...
    where room is left (:func:`_spaced`): with the round values alone, points left of the
    first in view (80% and 67% left of 50) could not be read."""
    from matplotlib.ticker import LogLocator, NullFormatter

    ax.set_xscale("log")
    low, high = sorted(ax.get_xlim())
    if high < 3 * low:
        # Runs a fraction of a percent apart (channel pruning to 70% of the weights) spread over
        # the whole width looked far apart: a factor of 3 at least, which holds a 1-2-5 tick.
        high = max(high, min(100.0, math.sqrt(3 * low * high)))
        low = high / 3
        ax.set_xlim(low, high)
    ax.invert_xaxis()
    plotted = sorted({float(f"{100 * (1 - s):.3g}") for s in sparsities}, reverse=True)
    wanted = plotted[:1] + plotted[-1:] + plotted[1:-1] + list(LogLocator(subs=(1, 2, 5)).tick_values(low, high))
    tick_label = "{:g}".format
    ax.set_xticks(_spaced(wanted, low, high, tick_label))
    ax.xaxis.set_major_formatter(lambda value, _: tick_label(value))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _position(positions: dict[str, int] | None, name: str, index: int) -> int:
    """A series' place in the colour cycle: its run's in the report (``positions``), so that a
    run keeps its colour in every plot, or else its place in this plot."""
    return index if positions is None else positions[name]


def _spaced(ticks: list[float], low: float, high: float, label: Callable[[float], str], characters: int = 70) -> list[float]:
    """Of ``ticks`` on a log axis from ``low`` to ``high`` (``characters`` of its tick labels
    wide), first come first kept, those whose ``label`` stays two characters clear of every
    label kept."""
    from math import log10

    def apart(a: float, b: float) -> float:  # in characters, centre to centre
        return abs(log10(a / b)) / log10(high / low) * characters

    kept: list[float] = []
    for tick in ticks:
        if low <= tick <= high and all(apart(tick, k) >= (len(label(tick)) + len(label(k))) / 2 + 2 for k in kept):
            kept.append(tick)
    return kept


def plot_accuracy_vs_sparsity(
    curves: dict[str, list[tuple[float, float, float]]], dense_acc: float | Mapping[str, float] | None, path: Path,
    ylabel: str = "final test accuracy (%)", title: str = "accuracy against sparsity", positions: dict[str, int] | None = None,
) -> Path:
    """Final test accuracy (mean, ± std shaded, or as error bars past 3 lines, where shades
    would merge) against the share of weights remaining, on a log scale from dense on the
    left to sparse on the right, as lottery-ticket plots read. Lines of the same points (runs
    whose results are equal) are drawn once, named together. The dense accuracy
    (``dense_acc``: every curve's, or each curve's by name) is a grey dotted line where the
    curves share it, else a dotted line in each curve's colour, named with the curve.
    ``positions``: each curve's place in the colour cycle (default: its order)."""
    same: dict[tuple, list[str]] = {}
    for name, points in curves.items():
        same.setdefault(tuple((round(s, 9), round(m, 9), round(sd, 9)) for s, m, sd in points), []).append(name)
    dense = dense_acc if isinstance(dense_acc, Mapping) else {} if dense_acc is None else dict.fromkeys(curves, dense_acc)
    lines_at = Counter(round(dense[names[0]], 12) for names in same.values() if names[0] in dense)  # dense value -> lines of it
    fig, ax = _figure()
    for index, (points, names) in enumerate(same.items()):
        remaining = [100 * (1 - s) for s, _, _ in points]
        mean = [100 * m for _, m, _ in points]
        spread = [100 * sd for _, _, sd in points]
        i = _position(positions, names[0], index)
        # The 10 colours repeat past 10 lines: each round of them gets its own marker and dash.
        style = {"color": f"C{i % 10}", "marker": "osD^v"[i // 10 % 5], "linestyle": ("-", "--", "-.", ":")[i // 10 % 4],
                 "label": " = ".join(names)}  # fmt: skip
        if len(lines_at) > 1 and names[0] in dense:  # runs of other dense models: each line against its own
            value = dense[names[0]]
            # Grey where several lines share it: drawn over each other, the last one's colour showed.
            ax.axhline(100 * value, color=style["color"] if lines_at[round(value, 12)] == 1 else "0.5", linestyle=":", linewidth=1)
            style["label"] += f" (dense: {100 * value:.2f}%)"
        if len(same) > 3:
            ax.errorbar(remaining, mean, yerr=spread, capsize=2, **style)
            continue
        ax.plot(remaining, mean, **style)
        ax.fill_between(remaining, [m - s for m, s in zip(mean, spread)], [m + s for m, s in zip(mean, spread)],
                        color=style["color"], alpha=0.2)
    if len(lines_at) == 1:
        (value,) = lines_at
        ax.axhline(100 * value, color="0.5", linestyle=":", label=f"dense: {100 * value:.2f}%")
    _weights_remaining_axis(ax, [s for points in curves.values() for s, _, _ in points])
    ax.set_xlabel("weights remaining (% of the prunable weights)")
    ax.set_ylabel(ylabel)
    _legend_below(fig, ax)
    ax.set_title(title)
    _save(fig, path)
    return path


def plot_levels(summaries: list[dict], path: Path, title: str) -> Path:
    """An IMP or BIMP run's levels (the seeds' ``summary.json``): test accuracy right after
    each level's pruning and after its retraining, mean ± std over the seeds, against the
    weights remaining, as the lottery-ticket figures show them."""
    from prunelab.report.tables import mean_std

    count = min(len(s["levels"]) for s in summaries)
    curves = {}
    for key, label in (("final_acc", "after retraining"), ("pruned_acc", "right after pruning")):
        curves[label] = []
        for level in range(count):
            sparsity = summaries[0]["levels"][level]["sparsity"]
            stat = mean_std([s["levels"][level][key] for s in summaries])
            curves[label].append((sparsity, stat["mean"], stat["std"]))
    dense = [s["dense_acc"] for s in summaries if s.get("dense_acc") is not None]  # none if nothing trained first
    return plot_accuracy_vs_sparsity(curves, mean_std(dense)["mean"] if dense else None, path, ylabel="test accuracy (%)", title=title)


def plot_layer_sparsity(lprs: dict[str, dict[str, float]], path: Path, positions: dict[str, int] | None = None) -> Path:
    """Layerwise pruning ratios: a group of bars per layer, a bar per run, the figure wider
    with more bars so that each stays a few pixels wide, and with more layers so that their
    names stay apart. ``positions``: each run's place in the colour cycle (default: its order)."""
    layers = list(dict.fromkeys(name for lpr in lprs.values() for name in lpr))
    figure_width = min(60, max(7, 1.5 + 0.025 * len(layers) * len(lprs)))  # past 60 in, thinner bars
    # Level where the longest name fits its layer's share of the width (about 0.07 in a character
    # at size 8): six ResNet names of 21 characters, level, ran into each other.
    level = 0.07 * max(map(len, layers), default=0) <= (figure_width - 1) / max(1, len(layers))
    if not level:
        # At 45 degrees a name (size 7, a line about 0.12 in high) clears the next 0.17 in along:
        # 58 ResNet-20 names in 7 inches lay over each other.
        figure_width = min(60, max(figure_width, 1.5 + 0.17 * len(layers)))
    fig, ax = _figure(figure_width)
    width = 0.8 / max(1, len(lprs))
    for index, (name, lpr) in enumerate(lprs.items()):
        x = [j + (index - (len(lprs) - 1) / 2) * width for j in range(len(layers))]
        i = _position(positions, name, index)
        # The 10 colours repeat past 10 runs: each round of them gets its own hatching.
        hatch = (None, "//", "..", "xx", "\\\\")[i // 10 % 5]
        ax.bar(x, [100 * lpr.get(layer, 0.0) for layer in layers], width, label=name, color=f"C{i % 10}", hatch=hatch)
    if level:
        ax.set_xticks(range(len(layers)), layers, fontsize=8)
    else:
        ax.set_xticks(range(len(layers)), layers, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("pruned in the layer (%)")
    ax.set_ylim(0, 100)
    _legend_below(fig, ax)
    _save(fig, path)
    return path


def plot_lpr_during_find(record: dict, path: Path, title: str = "") -> Path:
    """Seed 002's Figures A18 and A19 for one seed: left, each layer's pruning ratio had the
    find phase's weights been pruned after that many epochs; right, the mean absolute
    difference of those LPR from the LPR of pruning at the end. Up to 10 layers are told
    apart by colour and named in a legend below; more are coloured from the input (dark) to
    the output (light) along a colour bar (:func:`_layer_colours`)."""
    epochs, layers = record["epochs"], record["layer_sparsity"]
    fig, (ax, distance_ax) = _figure(10, 4, ncols=2)
    for colour, (layer, ratios) in zip(_layer_colours(fig, ax, len(layers)), layers.items()):
        ax.plot(epochs, [100 * r for r in ratios], marker=".", color=colour, label=layer if len(layers) <= 10 else None)
    ax.set_xlabel("epoch of the find phase pruned")
    ax.set_ylabel("pruned in the layer (%)")
    ax.set_ylim(0, 100)
    ax.set_title("LPR if pruned at that epoch")
    _legend_below(fig, ax)  # within the axes, ten layer names covered the lines
    # In no layer's colour: in the cycle's first, the legend below named it the first layer.
    distance_ax.plot(epochs, [100 * d for d in record["distance"]], marker=".", color="black")
    distance_ax.set_xlabel("epoch of the find phase pruned")
    distance_ax.set_ylabel("mean |LPR - final LPR| (percentage points)")
    distance_ax.set_title("distance from the LPR of pruning at the end")
    for axes in (ax, distance_ax):
        _whole_epochs(axes.xaxis)
    if title:
        fig.suptitle(title, fontsize=9)
    _save(fig, path)
    return path


def plot_lpr_distance(curves: dict[str, tuple[list[int], list[float]]], path: Path, positions: dict[str, int] | None = None,
                      spreads: dict[str, list[float]] | None = None) -> Path:  # fmt: skip
    """Seed 002's Figure A19 across runs: per run, the mean absolute difference between the
    LPR of pruning its find phase after that many epochs and of pruning it at the end, with
    its std over the seeds (``spreads``) as error bars. ``positions``: each run's place in
    the colour cycle (default: its order)."""
    fig, ax = _figure()
    for index, (name, (epochs, distances)) in enumerate(curves.items()):
        i = _position(positions, name, index)
        mean = [100 * d for d in distances]
        ax.plot(epochs, mean, marker=".", color=f"C{i % 10}", linestyle=("-", "--", "-.", ":")[i // 10 % 4], label=name)
        if spreads and name in spreads:
            ax.errorbar(epochs, mean, yerr=[100 * s for s in spreads[name]], fmt="none", ecolor=f"C{i % 10}", capsize=2)
    _whole_epochs(ax.xaxis)
    ax.set_xlabel("epoch of the find phase pruned")
    ax.set_ylabel("mean |LPR - final LPR| (percentage points)")
    _legend_below(fig, ax)
    _save(fig, path)
    return path


def plot_pivot(x: list[str], panels: dict[str, dict[str, list[tuple[float, float] | None]]], xlabel: str, ylabel: str,
               path: Path, title: str = "", ordered: bool = True, legend_title: str = "",
               reference: tuple[str, float] | None = None) -> Path:  # fmt: skip
    """A sweep's table as a plot: a panel per key of ``panels`` (titled by it, side by side on
    one y scale), in each the mean (± std as error bars) of every series at each ``x`` value,
    in the table's order (``None`` where a cell is empty). Series over ``ordered`` x values
    (numbers) are joined by lines; over others (LR policies, arms) they are points, each series
    a little aside, so that neither a trend between them is implied nor their error bars hide
    each other. A series keeps its colour in every panel; ``reference``: a labelled dashed
    line (the dense accuracy)."""
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = _figure(max(7.0, 3.6 * columns), 3.6 * rows, ncols=columns, nrows=rows, sharey=True, squeeze=False)
    names = list(dict.fromkeys(name for lines in panels.values() for name in lines))
    spread = 0.0 if ordered or len(names) == 1 else 0.6 / len(names)
    for ax, (panel, lines) in zip(axes.flat, panels.items()):
        for name, points in lines.items():
            index = names.index(name)
            shift = spread * (index - (len(names) - 1) / 2)
            shown = [(i, point) for i, point in enumerate(points) if point is not None]
            ax.errorbar([i + shift for i, _ in shown], [m for _, (m, _) in shown], yerr=[s for _, (_, s) in shown], color=f"C{index % 10}",
                        marker="o", capsize=3, linestyle="-" if ordered else "none", label=name if len(names) > 1 or legend_title else None)  # fmt: skip
        if reference is not None:
            ax.axhline(reference[1], color="grey", linestyle="--", linewidth=1)
        ax.set_xticks(range(len(x)), x)
        ax.set_xlabel(xlabel)
        if panel:
            ax.set_title(panel, fontsize=9)
    if reference is not None:
        # Named at the line's end, right of the panels: in the legend, under its title, it read as
        # one of the series; inside a panel, it lay over the points near the line.
        axes[0, -1].annotate(reference[0], (1, reference[1]), xycoords=("axes fraction", "data"), xytext=(3, 0),
                             textcoords="offset points", ha="left", va="center", fontsize=7, color="grey")  # fmt: skip
        # The dense accuracy above every point lay on the axis' top edge, hidden by the frame: a tenth of the axis above it.
        low, high = axes.flat[0].get_ylim()
        if high - reference[1] < 0.1 * (high - low):
            axes.flat[0].set_ylim(low, reference[1] + 0.1 * (high - low))
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    if title:
        fig.suptitle(title, fontsize=9)
    _legend_below(fig, axes.flat[0], title=legend_title)
    _save(fig, path)
    return path
