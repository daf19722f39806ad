"""The run plots: written as PNG files, with the data they claim to show."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from matplotlib.colors import to_hex
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.legend import Legend

from prunelab.config import recipe_yaml, validate
from prunelab.report import plots

PNG = b"\x89PNG\r\n\x1a\n"


def _rows(phase: str, accs: list[float], sparsity: float) -> list[dict]:
    return [{"phase": phase, "test_acc": a, "sparsity": sparsity} for a in accs]


def _seed(run: Path, rows: list[dict], events: dict | None = None, lr_log: dict | None = None, recipe: dict | None = None,
          **summary) -> Path:  # fmt: skip
    """Seed 0's folder in the run directory ``run``, with the files the training plot reads."""
    folder = run / "seed-0"
    folder.mkdir(parents=True)
    (run / "recipe.yaml").write_text(recipe_yaml(validate(recipe or {})))
    summary = {"method": "oneshot", "seed": 0, "dense_acc": 0.9, "final_acc": 0.85, "sparsity": 0.9, **summary}
    for name, content in (("metrics.json", rows), ("events.json", events), ("lr_log.json", lr_log), ("summary.json", summary)):
        if content is not None:
            (folder / name).write_text(json.dumps(content))
    return folder


def _plot_training(folder: Path) -> Path:
    """The seed's training plot, given what the runner gives it: its summary and the run's setup."""
    from prunelab.config import load_run_recipe
    from prunelab.report.runs import training_label

    setup = training_label(load_run_recipe(folder.parent))
    return plots.plot_training(folder, json.loads((folder / "summary.json").read_text()), setup)


@pytest.fixture
def captured(monkeypatch):
    """The figures the plots make, kept open for inspection (and still written)."""
    figures = []
    save = plots._save

    def keep(fig, path):
        figures.append([
            (line.get_xdata(), line.get_ydata(), line.get_marker(), line.get_drawstyle()) for ax in fig.axes for line in ax.lines
        ])
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def _curves(ax, colour: str) -> list[tuple[list, list]]:
    """The lines (x, y) of ``ax`` in ``colour``, not the markers of single points."""
    return [(list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines
            if to_hex(line.get_color()) == to_hex(colour) and line.get_marker() != "v"]  # fmt: skip


def _vertical(ax) -> list[float]:
    """Where the vertical lines across ``ax`` are."""
    return [line.get_xdata()[0] for line in ax.lines if list(line.get_ydata()) == [0, 1]]


def test_training_plot_marks_the_accuracy_right_after_each_pruning_step(tmp_path: Path, figures) -> None:
    rows = (_rows("find", [0.5, 0.8], 0.0) + _rows("level-1/eval", [0.7, 0.75], 0.2)
            + _rows("level-1/eval-copy", [0.1, 0.2], 0.2) + _rows("level-2/eval", [0.6, 0.7], 0.36))
    events = {"level-1/prune": {"test_acc_after_prune": 0.4}, "level-2/prune": {"test_acc_after_prune": 0.3}}
    path = _plot_training(_seed(tmp_path / "run", rows, events))
    assert path.read_bytes().startswith(PNG)
    accuracy_ax, sparsity_ax, _ = figures[0].axes
    # a line per phase, not joined through the pruning between them; the instability copy left out
    assert _curves(accuracy_ax, "tab:blue") == [([1, 2], [50, 80]), ([3, 4], [70, 75]), ([5, 6], [60, 70])]
    markers = [(list(line.get_xdata()), list(line.get_ydata())) for line in accuracy_ax.lines if line.get_marker() == "v"]
    assert markers == [([2], [40.0]), ([4], [30.0])]  # at the end of the epoch pruned after, at the pruned accuracy
    # each named once in the legend, however many phases and pruning steps
    legend = [text.get_text() for text in figures[0].legends[0].get_texts()]
    assert legend == ["test accuracy", "dense: 90.00%", "test accuracy right after pruning"]
    # the sparsity, in percent, holding over each epoch (k - 1 to k): pruning is a step at the phase line
    assert _curves(sparsity_ax, "tab:red") == [([0, 1, 2, 3, 4, 5, 6], [0, 0, 20, 20, 36, 36, 36])]
    assert sparsity_ax.lines[0].get_drawstyle() == "steps-post"


def test_training_plot_draws_an_epoch_s_accuracy_where_its_last_step_s_lr_is(tmp_path: Path, figures) -> None:
    """Epoch k spans k - 1 to k: its accuracy at k, its steps' LRs up to k, the phase lines between."""
    rows = _rows("find", [0.5, 0.8], 0.0) + _rows("eval", [0.7], 0.5) + _rows("eval-copy", [0.6], 0.5)
    lr_log = {"find": [0.1, 0.1, 0.01, 0.01], "eval": [0.05, 0.0], "eval-copy": [0.05, 0.0]}
    _plot_training(_seed(tmp_path / "run", rows, lr_log=lr_log))
    accuracy_ax, _, lr_ax = figures[0].axes
    # find: 4 steps over epochs 1-2 (x 0 to 2); eval: 2 steps over epoch 3 (x 2 to 3); no copy
    assert _curves(lr_ax, "tab:green") == [([0.5, 1.0, 1.5, 2.0], [0.1, 0.1, 0.01, 0.01]), ([2.5, 3.0], [0.05, 0.0])]
    assert [x for x, _ in _curves(accuracy_ax, "tab:blue")] == [[1, 2], [3]]
    assert _vertical(lr_ax) == [2]
    # the one-epoch retraining, a single point, as a dot; the lines of several epochs without markers
    assert [line.get_marker() for line in accuracy_ax.lines if to_hex(line.get_color()) == to_hex("tab:blue")] == ["None", "o"]


def test_training_plot_without_pruning_events(tmp_path: Path, captured) -> None:
    _plot_training(_seed(tmp_path / "run", _rows("find", [0.5], 0.0) + _rows("eval", [0.6], 0.5)))
    assert not [line for line in captured[0] if line[2] == "v"]  # GMP prunes inside its eval phase: no single pruning step


def test_training_plot_gives_the_sparsity_its_own_panel_and_draws_the_dense_accuracy(tmp_path: Path, figures) -> None:
    """On a second axis of the accuracy's, 90% sparsity lay on the line of 90% accuracy."""
    rows = _rows("find", [0.5, 0.9], 0.0) + _rows("eval", [0.8, 0.85], 0.9)
    _plot_training(_seed(tmp_path / "run", rows, lr_log={"find": [0.1, 0.1], "eval": [0.1, 0.1]}, dense_acc=0.9))
    (fig,) = figures
    accuracy_ax, sparsity_ax, lr_ax = fig.axes  # no twin axes
    assert (accuracy_ax.get_ylabel(), sparsity_ax.get_ylabel(), lr_ax.get_ylabel()) == ("test accuracy (%)", "sparsity (%)", "LR")
    assert sparsity_ax.get_ylim() == (0, 100) and _curves(sparsity_ax, "tab:red")[0][1] == [0, 0, 90, 90, 90]
    (dense,) = [line for line in accuracy_ax.lines if line.get_label() == "dense: 90.00%"]
    assert list(dense.get_ydata()) == [90, 90]
    assert "dense: 90.00%" in [text.get_text() for text in fig.legends[0].get_texts()]


def test_training_plot_marks_the_phases_and_gmp_s_stages_on_every_panel(tmp_path: Path, figures) -> None:
    rows = _rows("find", [0.5], 0.0) + _rows("eval", [0.6, 0.5, 0.6, 0.7], 0.9)
    plan = {"update_steps": [10, 15, 20, 25], "sparsity": [0.3, 0.6, 0.8, 0.9], "warnings": [], "finetune_step": 30}
    lr_log = {"find": [0.1] * 10, "eval": [0.1] * 40}
    _plot_training(_seed(tmp_path / "run", rows, {"gmp/plan": plan}, lr_log, recipe={"prune": {"method": "gmp"}}, method="gmp"))
    for ax in figures[0].axes:  # the eval phase from x 1, pruning from 2, fine-tuning from 4
        assert _vertical(ax) == [1, 2, 4]
    # GMP's updates where they happened: 10 steps an epoch from x 1
    assert _curves(figures[0].axes[1], "tab:red") == [([0, 2, 2.5, 3, 3.5, 5], [0, 30, 60, 80, 90, 90])]


def test_training_plot_title_says_what_the_seed_ran_and_how_it_ended(tmp_path: Path, figures) -> None:
    rows = _rows("find", [0.5, 0.9], 0.0) + _rows("eval", [0.8], 0.9)
    _plot_training(_seed(tmp_path / "oneshot-x", rows, recipe={"eval": {"lr_policy": "llr"}}, final_acc=0.8512, sparsity=0.89998))
    _plot_training(_seed(tmp_path / "gmp-x", rows, recipe={"prune": {"method": "gmp"}}, method="gmp", dense_acc=None))
    _plot_training(_seed(tmp_path / "channels-x", rows, recipe={"prune": {"criterion": "bn_scale", "sparsity": 0.5}}, sparsity=0.7272,
                         channel_sparsity=0.5))  # fmt: skip
    late = {"find": {"epochs": 4, "stop_epoch": 3}, "eval": {"lr_policy": None, "rewind": "epoch:1"}}
    _plot_training(_seed(tmp_path / "late-x", rows, recipe=late))
    _plot_training(_seed(tmp_path / "ticket-x", rows, recipe={"eval": {"lr_policy": None, "rewind": "init"}}))
    # Each figure's one text of its own is its title (Figure.get_suptitle needs matplotlib 3.8).
    assert [text.get_text() for fig in figures for text in fig.texts] == [
        "oneshot, 90% sparse, lr_policy=llr, seed 0: final 85.12% (dense 90.00%)\noneshot-x",
        "gmp, 90% sparse, seed 0: final 85.00%\ngmp-x",  # no LR policy; nothing trained dense
        # the recipe's 50% counts channels: said beside the weights' 72.7%
        "oneshot, 72.7% sparse (50% of channels removed), seed 0: final 85.00% (dense 90.00%)\nchannels-x",
        # rewinding and an early stop named as tables name them; a single one still by its key
        "oneshot, 90% sparse, rewind=epoch:1, stop_epoch=3, seed 0: final 85.00% (dense 90.00%)\nlate-x",
        "oneshot, 90% sparse, rewind=init, seed 0: final 85.00% (dense 90.00%)\nticket-x",
    ]


def test_training_plot_draws_the_lowest_marker_whole(tmp_path: Path, monkeypatch) -> None:
    """The accuracy right after pruning, lower than every epoch's, sits at the bottom of the
    panel: inside it, not clipped by its edge."""
    rows = _rows("find", [0.5, 0.8], 0.0) + _rows("eval", [0.7, 0.8], 0.9)
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    _plot_training(_seed(tmp_path / "run", rows, {"prune": {"test_acc_after_prune": 0.1}}))
    (fig,) = figures
    fig.canvas.draw()
    ax = fig.axes[0]
    (marker,) = [line for line in ax.lines if line.get_marker() == "v"]
    assert list(marker.get_ydata()) == [10.0]
    assert _inside(marker.get_window_extent(fig.canvas.get_renderer()), ax.get_window_extent()) and not marker.get_clip_on()


@pytest.mark.parametrize("lrs", [[0.02] * 8, [0.1] * 4 + [0.01] * 4, [0.1 * (1 - i / 8) for i in range(8)]])
def test_training_plot_labels_the_lr_at_powers_of_ten_only(tmp_path: Path, figures, lrs: list[float]) -> None:
    """A constant LR (Adam's 0.02) spans less than a decade: matplotlib labelled 2, 3, 4 and 6
    x 10^-2 as well, one over another in the short LR panel. Now two powers of 10 at least,
    around the LRs, and nothing between."""
    _plot_training(_seed(tmp_path / "run", _rows("find", [0.5, 0.8], 0.0), lr_log={"find": lrs}))
    lr_ax = figures[0].axes[2]
    figures[0].canvas.draw()
    low, high = lr_ax.get_ylim()
    labelled = [label.get_position()[1] for label in lr_ax.get_yticklabels(which="both") if label.get_text() and low <= label.get_position()[1] <= high]
    assert len(labelled) >= 2 and all(math.log10(y) == round(math.log10(y)) for y in labelled)
    assert low <= min(lr for lr in lrs if lr > 0) and max(lrs) <= high


@pytest.mark.parametrize(("lrs", "ticked", "labelled"), [
    ([0.1] * 8, [-2, -1, 0], [-2, -1, 0]),  # a constant LR: every power labelled
    ([0.1, 0.05, 0.005, 0.0005, 1e-7], [-6, -5, -4, -3, -2, -1], [-6, -4, -2]),  # GMP's steps after a cosine to 0: every other one
    # a cosine to 0 from 0.1, its last step's 0 (off a log axis) aside: from half its least LR above 0 (about 0.005)
    ([0.1 * (1 + math.cos(math.pi * i / 7)) / 2 for i in range(8)], [-3, -2, -1], [-3, -2, -1]),
])
def test_training_plot_ticks_the_lr_at_every_power_of_ten(tmp_path: Path, figures, lrs: list[float], ticked: list[int],
                                                          labelled: list[int]) -> None:  # fmt: skip
    """The short LR panel left matplotlib room for two ticks: 10^-2 and 10^0 around a constant
    0.1, 10^-6 and 10^-1 around GMP's steps from 0.05 to 0.0005, no mark between to read them by."""
    _plot_training(_seed(tmp_path / "run", _rows("find", [0.5, 0.8], 0.0), lr_log={"find": lrs}))
    lr_ax = figures[0].axes[2]
    figures[0].canvas.draw()
    low, high = lr_ax.get_ylim()

    def powers(values) -> list[int]:
        return sorted({round(math.log10(y)) for y in values if low <= y <= high})

    assert powers([*lr_ax.get_yticks(), *lr_ax.get_yticks(minor=True)]) == ticked
    assert powers(label.get_position()[1] for label in lr_ax.get_yticklabels(which="both") if label.get_text()) == labelled


@pytest.mark.parametrize("levels", [6, 32])
def test_training_plot_ticks_whole_epochs(tmp_path: Path, figures, levels: int) -> None:
    """An IMP run of 18 epochs was ticked at 2.5, 7.5, 12.5 and 17.5, where no epoch ends; with
    whole numbers alone, matplotlib stepped 70 epochs by 8 (0, 8, ..., 72)."""
    rows = _rows("find", [0.5] * 6, 0.0) + [row for level in range(1, levels + 1) for row in _rows(f"level-{level}/eval", [0.6, 0.7], 0.5)]
    _plot_training(_seed(tmp_path / "run", rows))
    lr_ax = figures[0].axes[2]
    figures[0].canvas.draw()
    ticks = lr_ax.get_xticks()
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1 and steps.pop() in {1, 2, 5, 10, 20, 50}
    assert all(x == round(x) for x in ticks)


@pytest.fixture
def marked(monkeypatch):
    """Per figure saved: the texts written on its first axes, with their x in data units."""
    figures = []
    save = plots._save

    def keep(fig, path):
        figures.append([(text.get_text(), text.xy[0]) for text in fig.axes[0].texts])
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def test_training_plot_names_each_phase_and_gmp_s_stages_where_they_start(tmp_path: Path, marked) -> None:
    # IMP: find (epochs 1-2), two levels of one epoch; the instability copy is no phase of its own
    rows = _rows("find", [0.5, 0.8], 0.0) + _rows("level-1/eval", [0.7], 0.2) + _rows("level-1/eval-copy", [0.1], 0.2) + _rows("level-2/eval", [0.6], 0.36)
    _plot_training(_seed(tmp_path / "imp", rows))
    assert marked[0] == [("find", 0), ("level-1", 2), ("level-2", 3)]
    # GMP: find (1 epoch), then eval of 4 epochs of 10 steps: pruning from step 10, fine-tuning from step 30
    plan = {"update_steps": [10, 15, 20, 25], "sparsity": [0.3, 0.6, 0.8, 0.9], "warnings": [], "finetune_step": 30}
    gmp = _seed(tmp_path / "gmp", _rows("find", [0.5], 0.0) + _rows("eval", [0.6, 0.5, 0.6, 0.7], 0.9), {"gmp/plan": plan},
                {"find": [0.1] * 10, "eval": [0.1] * 40}, recipe={"prune": {"method": "gmp"}}, method="gmp")  # fmt: skip
    _plot_training(gmp)
    assert marked[1] == [("find", 0), ("eval", 1), ("pruning", 2), ("fine-tuning", 4)]
    # no stabilization: pruning starts with the eval phase, one text there
    plan["update_steps"] = [0, 5, 10, 15]
    (gmp / "events.json").write_text(json.dumps({"gmp/plan": plan}))
    _plot_training(gmp)
    assert marked[2] == [("find", 0), ("eval, pruning", 1), ("fine-tuning", 4)]
    # fine-tuning from the eval phase's last step on: none to name
    plan["finetune_step"] = 40
    (gmp / "events.json").write_text(json.dumps({"gmp/plan": plan}))
    _plot_training(gmp)
    assert marked[3] == [("find", 0), ("eval, pruning", 1)]


def test_training_plot_names_marks_closer_than_a_text_s_height_in_one_text(tmp_path: Path, marked) -> None:
    """The gmp recipe's 40 epochs of find, then 1 stabilizing: "eval" and "pruning" an epoch
    apart, a few pixels in 65 epochs, overprinted each other."""
    plan = {"update_steps": [4, 5, 6], "sparsity": [0.3, 0.6, 0.9], "warnings": [], "finetune_step": 16}
    rows = _rows("find", [0.5] * 40, 0.0) + _rows("eval", [0.6] * 25, 0.9)
    gmp = _seed(tmp_path / "gmp", rows, {"gmp/plan": plan}, {"find": [0.1] * 160, "eval": [0.1] * 100},
                recipe={"prune": {"method": "gmp"}}, method="gmp")  # fmt: skip
    _plot_training(gmp)
    assert marked[0] == [("find", 0), ("eval, pruning", 40), ("fine-tuning", 44)]
    # 80 epochs: marks 2 epochs (a fortieth of them) apart are apart enough for two texts
    plan["update_steps"] = [8, 9, 10]
    rows = _rows("find", [0.5] * 40, 0.0) + _rows("eval", [0.6] * 40, 0.9)
    long = _seed(tmp_path / "gmp-long", rows, {"gmp/plan": plan}, {"find": [0.1] * 160, "eval": [0.1] * 160},
                 recipe={"prune": {"method": "gmp"}}, method="gmp")  # fmt: skip
    _plot_training(long)
    assert marked[1] == [("find", 0), ("eval", 40), ("pruning", 42), ("fine-tuning", 44)]


def test_sparsity_schedule_plot_reads_in_epochs_of_the_eval_phase(tmp_path: Path, figures) -> None:
    path = plots.plot_sparsity_schedule([8, 10, 20], [0.05, 0.5, 0.9], 24, 40, tmp_path / "schedule.png", 4, "cubic")
    assert path.read_bytes().startswith(PNG)
    (ax,) = figures[0].axes
    schedule, pruning, finetuning = [(list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines]
    # the whole eval phase, 10 steps an epoch: dense until the first update, the target held through fine-tuning to its end
    assert schedule == ([0, 0.8, 1, 2, 4], [0.0, 5.0, 50.0, 90.0, 90.0])
    assert (pruning[0], finetuning[0]) == ([0.8, 0.8], [2.4, 2.4])  # where pruning and fine-tuning start
    assert ax.get_xlim() == (0, 4) and ax.get_xlabel() == "epoch of the eval phase"
    assert ax.get_title() == "GMP, cubic 5% -> 90%: 3 updates over epochs 0.8-2.4 of the eval phase's 4"
    # fine-tuning from the last step on: none to mark
    plots.plot_sparsity_schedule([8, 10, 20], [0.05, 0.5, 0.9], 40, 40, tmp_path / "schedule.png", 4, "cubic")
    (ax,) = figures[1].axes
    assert len(ax.lines) == 2 and [text.get_text() for text in ax.texts] == [" pruning"]
    # a single update (a warned-of recipe) is one update
    plots.plot_sparsity_schedule([8], [0.9], 20, 40, tmp_path / "schedule.png", 4, "cubic")
    assert figures[2].axes[0].get_title() == "GMP, cubic 90% -> 90%: 1 update over epochs 0.8-2 of the eval phase's 4"


def test_lr_range_plot_shows_the_rise_to_the_threshold(tmp_path: Path, figures) -> None:
    """A diverged tail (2.0) set the linear axis' scale: the trained model's loss (0.1), the
    threshold (0.11) and the rise between lay within a few pixels."""
    path = plots.plot_lr_range([1e-3, 1e-2, 1e-1], [0.1, 0.12, 2.0], 1e-2, tmp_path / "lr.png", "oneshot-x, seed 0",
                               baseline=0.1, threshold=0.11)  # fmt: skip
    assert path.read_bytes().startswith(PNG)
    (fig,) = figures
    (ax,) = fig.axes
    curve, baseline, threshold, inflection = [(list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines]
    assert curve == ([1e-3, 1e-2, 1e-1], [0.1, 0.12, 2.0]) and inflection[0] == [1e-2, 1e-2]
    assert (baseline[1], threshold[1]) == ([0.1, 0.1], [0.11, 0.11])  # the trained model's loss, and risen
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log") and ax.get_ylim()[1] == pytest.approx(0.33)
    assert ax.get_title() == "LR range test: oneshot-x, seed 0"
    assert [text.get_text() for text in fig.legends[0].get_texts()][0] == "probe loss after the steps up to that LR"
    fig.canvas.draw()
    low, high = ax.get_ylim()
    shown = sorted((tick.get_position()[1], tick.get_text()) for tick in ax.get_yticklabels(which="both") if low <= tick.get_position()[1] <= high)
    assert [text for _, text in shown] == ["0.09", "0.1", "0.2", "0.3"]  # plain numbers, not 2 x 10^-1


@pytest.mark.parametrize(("baseline", "threshold", "named"), [
    (0.1, 0.11, "10% above the trained model: 0.11"),
    # below the floor of 0.01, the rise is 10% of the floor: 0.001, a third of this loss
    (0.003, 0.004, "0.001 (10% of the loss floor 0.01) above the trained model: 0.004"),
    # a trained loss of 0 (a model that fits its probe examples in float32) still names the rise
    (0.0, 0.001, "0.001 (10% of the loss floor 0.01) above the trained model: 0.001"),
])
def test_lr_range_plot_names_the_rise_as_the_command_does(tmp_path: Path, figures, baseline: float, threshold: float,
                                                          named: str) -> None:  # fmt: skip
    """The command says the loss must rise by 10% of 0.01 where the trained loss is lower; the
    legend said "33% above the trained model" for the same threshold."""
    plots.plot_lr_range([1e-3, 1e-2, 1e-1], [baseline, baseline, 1.0], 1e-1, tmp_path / "lr.png", "x", baseline=baseline, threshold=threshold)
    assert named in [text.get_text() for text in figures[0].legends[0].get_texts()]


# -- what the plots draw: the quantities their axes name, against hand-computed percents --


@pytest.fixture
def drawn(monkeypatch):
    """Per figure saved: its lines (label, x, y) and its bars (label, x centre, height), its x
    scale, axis labels and title, read before the figure is closed (and still written)."""
    figures = []
    save = plots._save

    def keep(fig, path):
        ax = fig.axes[0]
        figures.append({
            "ylim": ax.get_ylim(),
            "axes": (ax.get_xscale(), ax.get_xlabel(), ax.get_ylabel(), ax.get_title()),
            "lines": [(line.get_label(), list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines],
            "bars": [(bars.get_label(), [p.get_x() + p.get_width() / 2 for p in bars], [p.get_height() for p in bars])
                     for bars in ax.containers if isinstance(bars, BarContainer)],
            "error bars": [bars for bars in ax.containers if isinstance(bars, ErrorbarContainer)],
        })  # fmt: skip
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def test_forty_accuracy_lines_are_told_apart_by_colour_marker_and_dash(tmp_path: Path, monkeypatch) -> None:
    """Matplotlib's 10 colours repeat from the 11th line on; every line must still differ."""
    styles = []
    save = plots._save

    def keep(fig, path):
        styles.extend((line.get_color(), line.get_marker(), line.get_linestyle()) for line in fig.axes[0].lines
                      if not line.get_label().startswith("dense: ") and line.get_marker() != "_")  # the error bars' caps aside  # fmt: skip
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    plots.plot_accuracy_vs_sparsity({f"run {i}": [(0.9, 0.8 + i / 1000, 0.0)] for i in range(40)}, 0.9, tmp_path / "a.png")
    assert len(styles) == 40 and len(set(styles)) == 40


def test_lines_of_equal_results_are_drawn_once_and_many_get_error_bars(tmp_path: Path, drawn) -> None:
    """A sweep's retraining policies that end alike (ft, lrw and slr at the LR they share)
    would hide each other, all named in the legend; past 3 lines, shaded spreads merge. Lines
    of one mean and other spreads (llr, allr) are not alike."""
    same = [(0.9, 0.8, 0.01)]
    curves = {"ft": same, "lrw": same, "slr": same, "clr": [(0.9, 0.85, 0.01)], "llr": [(0.9, 0.86, 0.0)], "allr": [(0.9, 0.86, 0.02)]}
    plots.plot_accuracy_vs_sparsity(curves, None, tmp_path / "a.png")
    assert [bars.get_label() for bars in drawn[0]["error bars"]] == ["ft = lrw = slr", "clr", "llr", "allr"]
    # one std either side of the mean, in percent as the mean is
    ends = [[list(segment[:, 1]) for segment in bars.lines[2][0].get_segments()] for bars in drawn[0]["error bars"]]
    assert ends == [[pytest.approx([79, 81])], [pytest.approx([84, 86])], [pytest.approx([86, 86])], [pytest.approx([84, 88])]]


def test_accuracy_plot_puts_the_weights_remaining_on_x(tmp_path: Path, drawn) -> None:
    """Sparsities 0.5, 0.8, 0.99 leave 50%, 20%, 1% of the weights; accuracies in percent."""
    curves = {"imp": [(0.5, 0.95, 0.01), (0.8, 0.9, 0.02), (0.99, 0.5, 0.05)], "oneshot": [(0.8, 0.85, 0.0)]}
    path = plots.plot_accuracy_vs_sparsity(curves, 0.96, tmp_path / "accuracy.png")
    assert path.read_bytes().startswith(PNG)
    lines = {label: (x, y) for label, x, y in drawn[0]["lines"]}
    assert lines["imp"] == (pytest.approx([50, 20, 1]), pytest.approx([95, 90, 50]))
    assert lines["oneshot"] == (pytest.approx([20]), pytest.approx([85]))
    assert lines["dense: 96.00%"][1] == pytest.approx([96, 96])
    assert drawn[0]["axes"] == ("log", "weights remaining (% of the prunable weights)", "final test accuracy (%)", "accuracy against sparsity")


def test_accuracy_plot_shades_one_std_either_side_of_the_mean(tmp_path: Path, figures) -> None:
    plots.plot_accuracy_vs_sparsity({"imp": [(0.5, 0.95, 0.01), (0.8, 0.9, 0.02), (0.99, 0.5, 0.05)]}, None, tmp_path / "accuracy.png")
    (band,) = figures[0].axes[0].collections
    edges = band.get_paths()[0].vertices
    assert (edges[:, 1].min(), edges[:, 1].max()) == (pytest.approx(50 - 5), pytest.approx(95 + 1))


def test_accuracy_plot_draws_each_line_s_own_dense_accuracy_where_they_differ(tmp_path: Path, monkeypatch) -> None:
    """Runs of other find phases (IMP beside GMP, a longer dense training) reach other dense
    accuracies: the plot drew none, and nothing showed whether a line kept its own."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    curves = {"a": [(0.5, 0.8, 0.0), (0.9, 0.7, 0.0)], "b": [(0.5, 0.6, 0.0), (0.9, 0.5, 0.0)], "c": [(0.8, 0.65, 0.0), (0.9, 0.55, 0.0)]}
    plots.plot_accuracy_vs_sparsity(curves, {"a": 0.9, "b": 0.7, "c": 0.7}, tmp_path / "own.png")
    plots.plot_accuracy_vs_sparsity(curves, {"a": 0.9, "b": 0.9, "c": 0.9}, tmp_path / "shared.png")

    def levels(ax) -> list[tuple[float, str, str | None]]:
        """The horizontal lines across ``ax``: height, colour and legend entry (None: none of their own)."""
        return [(line.get_ydata()[0], to_hex(line.get_color()), None if line.get_label().startswith("_") else line.get_label())
                for line in ax.lines if list(line.get_xdata()) == [0, 1]]  # fmt: skip

    own, shared = (fig.axes[0] for fig in figures)
    # a's in its colour; b's and c's, one value, in grey: in either's colour it would read as that line's alone
    assert levels(own) == [(pytest.approx(90), to_hex("C0"), None), (pytest.approx(70), to_hex("0.5"), None), (pytest.approx(70), to_hex("0.5"), None)]
    labels = [text.get_text() for text in figures[0].legends[0].get_texts()]
    assert labels == ["a (dense: 90.00%)", "b (dense: 70.00%)", "c (dense: 70.00%)"]
    # one value for all: one grey line, named on its own
    assert levels(shared) == [(pytest.approx(90), to_hex("0.5"), "dense: 90.00%")]
    assert [text.get_text() for text in figures[1].legends[0].get_texts()] == ["a", "b", "c", "dense: 90.00%"]
    # c trained nothing dense (masks given): a line of its own, against no dense accuracy
    plots.plot_accuracy_vs_sparsity(curves, {"a": 0.9, "b": 0.7}, tmp_path / "none.png")
    assert levels(figures[2].axes[0]) == [(pytest.approx(90), to_hex("C0"), None), (pytest.approx(70), to_hex("C1"), None)]
    assert [text.get_text() for text in figures[2].legends[0].get_texts()] == ["a (dense: 90.00%)", "b (dense: 70.00%)", "c"]


def test_levels_plot_shows_each_level_after_pruning_and_after_retraining_over_the_seeds(tmp_path: Path, drawn) -> None:
    def summary(dense: float, levels: list[tuple[float, float, float]]) -> dict:
        return {"dense_acc": dense, "levels": [{"level": i + 1, "sparsity": s, "pruned_acc": p, "final_acc": f}
                                               for i, (s, p, f) in enumerate(levels)]}  # fmt: skip

    seeds = [summary(0.90, [(0.2, 0.80, 0.91), (0.36, 0.60, 0.89)]), summary(0.94, [(0.2, 0.84, 0.93), (0.36, 0.70, 0.85)])]
    path = plots.plot_levels(seeds, tmp_path / "levels.png", "imp")
    assert path.read_bytes().startswith(PNG)
    lines = {label: (x, y) for label, x, y in drawn[0]["lines"]}
    assert lines["after retraining"] == (pytest.approx([80, 64]), pytest.approx([92, 87]))
    assert lines["right after pruning"] == (pytest.approx([80, 64]), pytest.approx([82, 65]))
    assert lines["dense: 92.00%"][1] == pytest.approx([92, 92])
    assert drawn[0]["axes"][2:] == ("test accuracy (%)", "imp")
    # a seed cut short after its first level: the levels every seed has
    plots.plot_levels([seeds[0], summary(0.94, [(0.2, 0.84, 0.93)])], tmp_path / "levels.png", "imp")
    lines = {label: (x, y) for label, x, y in drawn[1]["lines"]}
    assert lines["after retraining"] == (pytest.approx([80]), pytest.approx([92]))
    # nothing trained dense first (masks given): no dense line, not one at 0%
    plots.plot_levels([{**seed, "dense_acc": None} for seed in seeds], tmp_path / "levels.png", "imp")
    assert [label for label, _, _ in drawn[2]["lines"]] == ["after retraining", "right after pruning"]


def test_layer_plot_bars_are_the_share_pruned_in_each_layer(tmp_path: Path, drawn) -> None:
    """Bar heights are the layers' pruning ratios in percent (0.9 -> 90, not the 10 kept);
    a layer one run lacks is drawn at 0 for it; two runs share each layer's slot."""
    lprs = {"a": {"conv": 0.9, "fc": 0.25}, "b": {"conv": 0.6}}
    path = plots.plot_layer_sparsity(lprs, tmp_path / "layers.png")
    assert path.read_bytes().startswith(PNG)
    bars = {label: (x, heights) for label, x, heights in drawn[0]["bars"]}
    assert bars["a"] == (pytest.approx([-0.2, 0.8]), pytest.approx([90, 25]))  # bar width 0.8 / 2 runs
    assert bars["b"] == (pytest.approx([0.2, 1.2]), pytest.approx([60, 0]))
    assert drawn[0]["ylim"] == (0, 100)  # the whole of a layer, however little of it is pruned


# -- the layout: with dozens of runs, the plot area and every legend entry stay in the image --


@pytest.fixture
def laid_out(monkeypatch):
    """Per figure saved, its boxes in pixels once drawn: the figure, the axes, the axes with
    their tick labels, axis labels and title, the legend's entries, and the x tick labels
    shown (left to right)."""
    figures = []
    save = plots._save

    def keep(fig, path):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        low, high = sorted(ax.get_xlim())
        ticks = [(label.get_text(), label.get_window_extent(renderer)) for label in ax.get_xticklabels(which="both")
                 if label.get_text() and low <= label.get_position()[0] <= high]  # fmt: skip
        figures.append({
            "figure": fig.bbox.frozen(), "axes": ax.get_window_extent(), "decorated": ax.get_tightbbox(renderer),
            "entries": [text.get_window_extent(renderer) for legend in [*fig.legends, *ax.get_children()]
                        if isinstance(legend, Legend) for text in legend.get_texts()],
            "xticks": sorted(ticks, key=lambda tick: tick[1].x0),
        })  # fmt: skip
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def _inside(box, outer) -> bool:
    return outer.x0 <= box.x0 and box.x1 <= outer.x1 and outer.y0 <= box.y0 and box.y1 <= outer.y1


def _readable(figure: dict, entries: int) -> None:
    """A plot area of at least 2 inches (240 pixels at 120 dpi), and every legend entry in the
    figure, clear of the axes, their labels and title."""
    assert figure["axes"].height >= 240
    assert len(figure["entries"]) == entries
    assert all(_inside(entry, figure["figure"]) and not entry.overlaps(figure["decorated"]) for entry in figure["entries"])


def test_forty_runs_over_twelve_layers_keep_the_bars_and_every_legend_entry(tmp_path: Path, laid_out) -> None:
    lprs = {f"prune.rate={i / 100}, seed set {i}": {f"features.{j}.conv.weight": (i + j) / 60 for j in range(12)}
            for i in range(40)}  # fmt: skip
    plots.plot_layer_sparsity(lprs, tmp_path / "layers.png")
    _readable(laid_out[0], 40)


def test_forty_lines_keep_the_accuracy_plot_and_distinct_ticks(tmp_path: Path, laid_out) -> None:
    """Dense to 0.5% of the weights remaining: the 1-2-5 steps label the log axis, apart."""
    curves = {f"prune.method=imp, prune.rate={i / 100}": [(0.0, 0.9, 0.0), (0.5, 0.88, 0.01), (0.995, 0.5 + i / 1000, 0.02)]
              for i in range(40)}  # fmt: skip
    plots.plot_accuracy_vs_sparsity(curves, 0.9, tmp_path / "accuracy.png")
    figure = laid_out[0]
    _readable(figure, 41)  # and the dense line
    assert [text for text, _ in figure["xticks"]] == ["100", "50", "20", "10", "5", "2", "1", "0.5"]
    assert all(left.x1 < right.x0 for (_, left), (_, right) in zip(figure["xticks"], figure["xticks"][1:]))


@pytest.mark.parametrize("layers", [[f"stage{i // 2 + 1}.{i % 2}.conv1.weight" for i in range(6)], ["conv.weight", "fc.weight"]])
def test_layer_plot_names_stay_apart(tmp_path: Path, laid_out, layers: list[str]) -> None:
    """Six ResNet layer names of 21 characters, written level, overlapped by a quarter of their width."""
    plots.plot_layer_sparsity({run: dict.fromkeys(layers, 0.5) for run in ("a", "b")}, tmp_path / "layers.png")
    ticks = laid_out[0]["xticks"]
    assert [text for text, _ in ticks] == layers
    assert all(left.x1 < right.x0 for (_, left), (_, right) in zip(ticks, ticks[1:]))


@pytest.mark.parametrize("runs", [1, 3])
def test_layer_plot_names_at_an_angle_stay_apart(tmp_path: Path, monkeypatch, runs: int) -> None:
    """ResNet-20's 21 prunable layers and a ResNet-56's 57, written at 45 degrees: in a 7-inch
    figure the names of the 57 lay 0.1 in apart along the axis, each line of text over the next."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    for blocks in (3, 9):
        layers = ["conv1.weight", *(f"stage{s}.{b}.conv{c}.weight" for s in (1, 2, 3) for b in range(blocks) for c in (1, 2)), "linear.weight"]
        plots.plot_layer_sparsity({f"run {r}": dict.fromkeys(layers, 0.5) for r in range(runs)}, tmp_path / "layers.png")
    for fig in figures:
        ax = fig.axes[0]
        fig.canvas.draw()
        labels = [label for label in ax.get_xticklabels() if label.get_text()]
        assert {label.get_rotation() for label in labels} == {45}
        along = sorted(ax.transData.transform((x, 0))[0] for x in ax.get_xticks())
        # two names at 45 degrees, x pixels apart along the axis, lie x sin 45 apart across their lines
        apart = min(b - a for a, b in zip(along, along[1:])) * math.sin(math.pi / 4)
        assert apart >= 1.2 * labels[0].get_fontsize() * fig.dpi / 72  # a line of text: 1.2 times its size


def _labelled_xticks(ax) -> list[tuple[float, str, object]]:
    """The x tick labels shown on ``ax``, left to right: their position in data units, text and box in pixels."""
    ax.figure.canvas.draw()
    low, high = sorted(ax.get_xlim())
    shown = [(label.get_position()[0], label.get_text(), label.get_window_extent(ax.figure.canvas.get_renderer()))
             for label in ax.get_xticklabels(which="both") if label.get_text() and low <= label.get_position()[0] <= high]  # fmt: skip
    return sorted(shown, key=lambda tick: tick[2].x0)


def test_accuracy_plots_label_the_weights_remaining_of_every_point(tmp_path: Path, monkeypatch) -> None:
    """Points at 80% and 67% of the weights remaining lay left of the first label (50) that the
    1-2-5 steps gave; now each point's position is labelled, and 100, 50, 20, ... fill the room
    left, apart. Ten IMP levels, 80% down to 10.7%, are each labelled too."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    curves = {"oneshot": [(0.2, 0.9, 0.01), (1 / 3, 0.89, 0.01), (0.5, 0.87, 0.02), (0.9, 0.7, 0.03)], "structured": [(0.2, 0.88, 0.0)]}
    plots.plot_accuracy_vs_sparsity(curves, 0.91, tmp_path / "accuracy.png")
    levels = [{"level": i + 1, "sparsity": 1 - 0.8 ** (i + 1), "pruned_acc": 0.8, "final_acc": 0.9} for i in range(10)]
    plots.plot_levels([{"dense_acc": 0.9, "levels": levels}], tmp_path / "levels.png", "imp")
    accuracy, imp = [_labelled_xticks(fig.axes[0]) for fig in figures]
    assert [(position, text) for position, text, _ in accuracy] == [
        (80, "80"), (66.7, "66.7"), (50, "50"), (20, "20"), (10, "10"),
    ]  # fmt: skip
    assert [text for _, text, _ in imp] == ["80", "64", "51.2", "41", "32.8", "26.2", "21", "16.8", "13.4", "10.7"]
    for ticks in (accuracy, imp):
        assert all(left.x1 < right.x0 for (*_, left), (*_, right) in zip(ticks, ticks[1:]))


def test_tick_labels_of_the_weights_remaining_stay_two_characters_apart() -> None:
    """From 1 to 100 over 70 characters a decade is 35: 12 lies 35 * log10(1.2) = 2.8 characters
    from 10, less than the 2 + 2 that two labels of 2 characters keep apart; 20 lies 10.5 away."""
    assert plots._spaced([10, 12, 20], 1, 100, "{:g}".format, characters=70) == [10, 20]


@pytest.mark.parametrize("sparsities", [(0.7024, 0.7055), (0.001, 0.004)])
def test_accuracy_plot_of_runs_at_about_one_sparsity_does_not_spread_them_over_the_width(tmp_path: Path, monkeypatch,
                                                                                       sparsities: tuple[float, float]) -> None:  # fmt: skip
    """Channel pruning to 70% of the weights ends at 70.24% and 70.55%: an axis from 29.75 to
    29.45 read as runs far apart. Now a factor of 3 at least, never past 100% (dense), with
    labels on either side of the points."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.plot_accuracy_vs_sparsity({f"run {s}": [(s, 0.8, 0.01)] for s in sparsities}, None, tmp_path / "a.png")
    ax = figures[0].axes[0]
    low, high = sorted(ax.get_xlim())
    remaining = [100 * (1 - s) for s in sparsities]
    assert high >= 3 * low * 0.999 and high <= 100 and low <= min(remaining) and max(remaining) <= high
    shown = [position for position, *_ in _labelled_xticks(ax)]
    assert min(shown) < min(remaining) and max(shown) >= max(remaining) * 0.99


def test_accuracy_plot_of_runs_less_than_3_times_apart_in_weights_remaining_widens_to_3(tmp_path: Path, monkeypatch) -> None:
    """50% and 20% of the weights remaining, 2.5 times apart: the axis spans a factor of 3 as for runs at about one sparsity."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.plot_accuracy_vs_sparsity({"a": [(0.5, 0.8, 0.0)], "b": [(0.8, 0.7, 0.0)]}, None, tmp_path / "a.png")
    low, high = sorted(figures[0].axes[0].get_xlim())
    assert high == pytest.approx(3 * low) and low <= 20 and 50 <= high <= 100


def test_lpr_plots_tick_whole_epochs(tmp_path: Path, monkeypatch) -> None:
    """Over 3 epochs matplotlib ticked 0.5, 1.5, ...: an epoch of the find phase is a whole number."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    record = {"epochs": [0, 1, 2, 3], "layer_sparsity": {"a.weight": [0.5, 0.6, 0.7, 0.7]}, "distance": [0.2, 0.1, 0.0, 0.0]}
    plots.plot_lpr_during_find(record, tmp_path / "lpr.png")
    plots.plot_lpr_distance({"lr=0.1": ([0, 1, 2, 3], [0.2, 0.1, 0.0, 0.0])}, tmp_path / "d.png")
    (lpr_ax, distance_ax), (across_runs,) = figures[0].axes, figures[1].axes
    for ax in (lpr_ax, distance_ax, across_runs):
        assert [position for position, *_ in _labelled_xticks(ax)] == [0, 1, 2, 3]


def test_lpr_plots_of_a_single_epoch_tick_it_alone(tmp_path: Path, monkeypatch) -> None:
    """A find phase of no epochs records the initial weights alone: matplotlib ticked -0.04,
    -0.02, ... around that single epoch 0, where no epoch ends."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.plot_lpr_during_find({"epochs": [0], "layer_sparsity": {"a.weight": [0.5]}, "distance": [0.0]}, tmp_path / "lpr.png")
    plots.plot_lpr_distance({"lr=0.1": ([0], [0.0])}, tmp_path / "d.png")
    (lpr_ax, distance_ax), (across_runs,) = figures[0].axes, figures[1].axes
    for ax in (lpr_ax, distance_ax, across_runs):
        assert [position for position, *_ in _labelled_xticks(ax)] == [0]


def test_plots_without_any_line_or_bar_are_written(tmp_path: Path) -> None:
    """Runs without layer ratios (or no curve at all): an empty figure, not an error."""
    assert plots.plot_layer_sparsity({}, tmp_path / "layers.png").read_bytes().startswith(PNG)
    assert plots.plot_accuracy_vs_sparsity({}, None, tmp_path / "accuracy.png").read_bytes().startswith(PNG)


def test_layer_plot_bars_of_runs_past_ten_are_hatched(tmp_path: Path, monkeypatch) -> None:
    """Ten colours: run 11 would look like run 1 without its own hatching."""
    hatches = []
    save = plots._save

    def keep(fig, path):
        hatches.extend(bars.patches[0].get_hatch() for bars in fig.axes[0].containers)
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    plots.plot_layer_sparsity({f"run {i}": {"a.weight": 0.5} for i in range(12)}, tmp_path / "layers.png")
    assert hatches[:10] == [None] * 10 and hatches[10:] == ["//", "//"]


@pytest.mark.parametrize("layers", [2, 15])
def test_lpr_during_find_plot_shows_each_layer_and_the_distance(tmp_path: Path, monkeypatch, layers: int) -> None:
    record = {
        "epochs": [0, 5, 10],
        "layer_sparsity": {f"layer{i}.weight": [0.5, 0.6 + i / 100, 0.7] for i in range(layers)},
        "distance": [0.2, 0.1, 0.0],
    }
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.plot_lpr_during_find(record, tmp_path / "lpr.png")
    (fig,) = figures
    lpr_ax, distance_ax, *colorbar = fig.axes
    assert [list(line.get_ydata()) for line in lpr_ax.lines] == [
        pytest.approx([50, 60 + i, 70]) for i in range(layers)
    ]
    assert [list(line.get_ydata()) for line in distance_ax.lines] == [pytest.approx([20, 10, 0])]
    # few layers are named in a legend, many told apart by a colour scale
    assert (len(fig.legends), len(colorbar)) == ((1, 0) if layers <= 10 else (0, 1))
    colours = {to_hex(line.get_color()) for line in lpr_ax.lines}
    assert len(colours) == layers  # told apart, by the colour cycle or along the colour scale
    # the distance in a colour of no layer: in the first one's, it read as that layer's
    assert to_hex(distance_ax.lines[0].get_color()) not in colours


def test_lpr_distance_plot_has_a_line_per_run(tmp_path: Path, captured) -> None:
    plots.plot_lpr_distance({"lr=0.1": ([0, 5], [0.3, 0.0]), "lr=0.5": ([0, 5], [0.4, 0.1])}, tmp_path / "d.png")
    assert (tmp_path / "d.png").read_bytes().startswith(PNG)
    (lines,) = captured
    assert [list(y) for _, y, _, _ in lines] == [pytest.approx([30, 0]), pytest.approx([40, 10])]


def test_pivot_plot_has_a_line_per_series_over_the_x_values(tmp_path: Path, monkeypatch) -> None:
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    lines = {"ft": [(90.0, 1.0), None, (80.0, 0.5)], "llr": [(91.0, 0.0), (85.0, 2.0), (82.0, 1.0)]}
    plots.plot_pivot(["10", "20", "null"], {"": lines}, "stop_epoch", "final_acc (%)", tmp_path / "p.png", legend_title="lr_policy",
                     reference=("dense: 95.00%", 95.0))  # fmt: skip
    (fig,) = figures
    (ax,) = fig.axes
    drawn = [(list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines if line.get_marker() == "o"]
    assert drawn == [([0, 2], [90.0, 80.0]), ([0, 1, 2], [91.0, 85.0, 82.0])]  # an empty cell is left out
    # each point's std either side of it
    bars = [[list(segment[:, 1]) for segment in c.lines[2][0].get_segments()] for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert bars == [[[89.0, 91.0], [79.5, 80.5]], [[91.0, 91.0], [83.0, 87.0], [81.0, 83.0]]]
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["10", "20", "null"]
    legend = fig.legends[0]
    assert [text.get_text() for text in legend.get_texts()] == ["ft", "llr"] and legend.get_title().get_text() == "lr_policy"
    assert [text.get_text() for text in ax.texts] == ["dense: 95.00%"]  # on its line, not among the series
    assert [list(line.get_ydata()) for line in ax.lines if line.get_linestyle() == "--"] == [[95.0, 95.0]]


def test_pivot_plot_draws_a_panel_per_key_on_one_scale_a_series_in_one_colour(tmp_path: Path, monkeypatch) -> None:
    """Seed 003's figures: a panel per sparsity, the budget on x, a line per policy, in its colour in every panel."""
    from matplotlib.colors import to_hex

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    panels = {"sparsity 0.7": {"ft": [(90.0, 1.0), (91.0, 0.5)], "llr": [(92.0, 0.0), (93.0, 1.0)]},
              "sparsity 0.9": {"ft": [(70.0, 1.0), (75.0, 0.5)], "llr": [(80.0, 0.0), None]},
              "sparsity 0.95": {"llr": [(60.0, 0.0), (65.0, 1.0)]}}  # fmt: skip
    plots.plot_pivot(["1", "2"], panels, "eval.epochs", "final_acc (%)", tmp_path / "p.png", title="t")
    (fig,) = figures
    assert [ax.get_title() for ax in fig.axes] == list(panels)
    assert all(fig.axes[0].get_shared_y_axes().joined(fig.axes[0], ax) for ax in fig.axes)
    colours = [{to_hex(line.get_color()): list(line.get_ydata()) for line in ax.lines if line.get_marker() == "o"} for ax in fig.axes]
    # llr in the second colour in a panel without ft too
    assert colours == [{"#1f77b4": [90.0, 91.0], "#ff7f0e": [92.0, 93.0]}, {"#1f77b4": [70.0, 75.0], "#ff7f0e": [80.0]},
                       {"#ff7f0e": [60.0, 65.0]}]  # fmt: skip
    assert fig._suptitle.get_text() == "t"


def test_pivot_plot_of_unordered_x_values_draws_points_aside_not_lines(tmp_path: Path, monkeypatch) -> None:
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    lines = {"sparsity 0.9": [(90.0, 1.0), (80.0, 0.5)], "sparsity 0.95": [(91.0, 0.0), (85.0, 2.0)]}
    plots.plot_pivot(["ft", "llr"], {"": lines}, "lr_policy", "final_acc (%)", tmp_path / "p.png", ordered=False)
    (ax,) = figures[0].axes
    drawn = [line for line in ax.lines if line.get_marker() == "o"]
    assert [list(line.get_xdata()) for line in drawn] == [pytest.approx([-0.15, 0.85]), pytest.approx([0.15, 1.15])]
    assert {line.get_linestyle() for line in drawn} == {"None"}


def test_a_series_takes_the_colour_of_its_position_in_the_report(tmp_path: Path, monkeypatch) -> None:
    """Run b, 13th of the report's runs, is drawn in the third colour, in its second round (its own marker and dash, or hatching)."""
    from matplotlib.colors import to_hex

    styles = {}
    save = plots._save

    def keep(fig, path):
        ax = fig.axes[0]
        drawn = [(line.get_label(), to_hex(line.get_color()), line.get_marker(), line.get_linestyle())
                 for line in ax.lines if line.get_label() in ("a", "b")]  # fmt: skip
        drawn += [(bars.get_label(), to_hex(bars.patches[0].get_facecolor()), bars.patches[0].get_hatch()) for bars in ax.containers]
        styles[path.name] = drawn
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    positions = {"a": 0, "b": 12}
    plots.plot_accuracy_vs_sparsity({"a": [(0.5, 0.9, 0.0)], "b": [(0.5, 0.8, 0.0)]}, None, tmp_path / "acc.png", positions=positions)
    plots.plot_layer_sparsity({"b": {"x.weight": 0.5}}, tmp_path / "lpr.png", positions)
    plots.plot_lpr_distance({"b": ([0, 1], [0.2, 0.0])}, tmp_path / "distance.png", positions)
    third = to_hex("C2")
    assert styles == {
        "acc.png": [("a", to_hex("C0"), "o", "-"), ("b", third, "s", "--")],
        "lpr.png": [("b", third, "//")],
        "distance.png": [("b", third, ".", "--")],
    }


def test_sensitivity_plot_draws_the_circles_over_the_band_and_the_lines(tmp_path: Path, monkeypatch, band_heights) -> None:
    """A MNIST-1D CNN's curves: the circles lie in the shaded band within the tolerance, drawn
    after them, which hid their middle; the lines, drawn over them, crossed them out."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    sparsities = [0.0, 0.2, 0.5, 0.8, 0.9, 0.99]
    curves = {"features.0.weight": (sparsities, [0.569, 0.571, 0.538, 0.349, 0.309, 0.114]),
              "features.2.weight": (sparsities, [0.569, 0.57, 0.562, 0.53, 0.41, 0.136])}  # fmt: skip
    within = {"features.0.weight": 0.2, "features.2.weight": 0.5}
    plots.plot_sensitivity(curves, 0.569, tmp_path / "s.png", "run, seed 0", 0.01, within, {"features.0.weight": 80, "features.2.weight": 768})
    (ax,) = figures[0].axes
    (circles,) = ax.collections
    assert [list(point) for point in circles.get_offsets()] == [pytest.approx([80, 57.1]), pytest.approx([50, 56.2])]
    # each line against the weights remaining in its layer, on a log scale
    assert [list(line.get_xdata()) for line in ax.lines[:2]] == [pytest.approx([100, 80, 50, 20, 10, 1])] * 2
    assert (ax.get_xscale(), ax.get_xlabel()) == ("log", "weights remaining in the pruned layer (%)")
    (band,) = ax.patches
    assert band_heights(band) == (pytest.approx(55.9), pytest.approx(56.9))
    # Matplotlib draws an axes' children by zorder, those of one zorder in the order they were added.
    order = sorted(ax.get_children(), key=lambda artist: artist.get_zorder())
    assert order.index(band) < min(map(order.index, ax.lines)) and order.index(circles) > max(map(order.index, ax.lines))


@pytest.mark.parametrize("plot", ["sensitivity", "lpr_during_find"])
def test_past_ten_layers_the_colour_bar_numbers_exactly_the_layers(tmp_path: Path, monkeypatch, plot: str) -> None:
    """15 layers: the sensitivity plot repeated its 10 colours, 15 names in a legend told
    layers 1 and 11 apart by nothing; the LPR plot's colour bar ran to 16.6, its top colour
    no layer's. Now a colour bar from layer 1 to 15, each line in its layer's colour, and
    no legend entry per layer."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    layers = [f"stage{i // 5 + 1}.{i % 5}.conv1.weight" for i in range(15)]
    if plot == "sensitivity":
        curves = {layer: ([0.0, 0.5, 0.9], [0.9, 0.85 - i / 100, 0.5]) for i, layer in enumerate(layers)}
        plots.plot_sensitivity(curves, 0.9, tmp_path / "s.png", "run", 0.01, dict.fromkeys(layers, 0.0), dict.fromkeys(layers, 100))
    else:
        record = {"epochs": [0, 1], "layer_sparsity": {layer: [0.5, 0.5 + i / 100] for i, layer in enumerate(layers)}, "distance": [0.1, 0.0]}
        plots.plot_lpr_during_find(record, tmp_path / "lpr.png")
    (fig,) = figures
    ax, bar = fig.axes[0], next(axes._colorbar for axes in fig.axes if hasattr(axes, "_colorbar"))
    assert bar.ax.get_ylim() == pytest.approx((0.5, 15.5))  # layer k's colour from k - 0.5 to k + 0.5
    lines = ax.lines[:15]  # the layers' lines come first, the dense accuracy after them
    assert [to_hex(line.get_color()) for line in lines] == [to_hex(bar.cmap(bar.norm(k))) for k in range(1, 16)]
    assert len({to_hex(line.get_color()) for line in lines}) == 15
    texts = [text.get_text() for legend in fig.legends for text in legend.get_texts()]
    assert not [text for text in texts if text.startswith("stage")]


@pytest.mark.parametrize("plot", ["sensitivity", "lpr_during_find"])
def test_ten_layers_are_named_in_the_legend_each_in_a_colour_of_the_cycle(tmp_path: Path, monkeypatch, plot: str) -> None:
    """Ten layers, as many as the cycle's colours: told apart by them and named, no colour bar."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    layers = [f"layer{i}.weight" for i in range(10)]
    if plot == "sensitivity":
        curves = {layer: ([0.0, 0.5, 0.9], [0.9, 0.85 - i / 100, 0.5]) for i, layer in enumerate(layers)}
        plots.plot_sensitivity(curves, 0.9, tmp_path / "s.png", "run", 0.01, dict.fromkeys(layers, None), dict.fromkeys(layers, 100))
        names = [f"{layer}: 100 weights" for layer in layers]
    else:
        record = {"epochs": [0, 1], "layer_sparsity": {layer: [0.5, 0.5 + i / 100] for i, layer in enumerate(layers)}, "distance": [0.1, 0.0]}
        plots.plot_lpr_during_find(record, tmp_path / "lpr.png")
        names = layers
    (fig,) = figures
    assert not [axes for axes in fig.axes if hasattr(axes, "_colorbar")]
    assert [to_hex(line.get_color()) for line in fig.axes[0].lines[:10]] == [to_hex(f"C{i}") for i in range(10)]
    assert [text.get_text() for text in fig.legends[0].get_texts()][:10] == names


def test_lpr_during_find_plot_names_few_layers_below_the_panels(tmp_path: Path, monkeypatch) -> None:
    """Ten layer names in a legend inside the axes covered a third of the lines."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    layers = [f"stage{i // 5 + 1}.{i % 5}.conv1.weight" for i in range(10)]
    record = {"epochs": [0, 1, 2], "layer_sparsity": {layer: [0.2 + i / 20, 0.5, 0.9 - i / 20] for i, layer in enumerate(layers)},
              "distance": [0.1, 0.05, 0.0]}  # fmt: skip
    plots.plot_lpr_during_find(record, tmp_path / "lpr.png")
    (fig,) = figures
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    assert [text.get_text() for text in legend.get_texts()] == layers
    assert [line.get_color() for line in fig.axes[0].lines] == [f"C{i}" for i in range(10)]  # the cycle's ten, no colour bar
    box = legend.get_window_extent(renderer)
    assert _inside(box, fig.bbox) and not any(box.overlaps(ax.get_tightbbox(renderer)) for ax in fig.axes)


@pytest.mark.parametrize("dense", [92.0, 86.0, 78.0])
def test_pivot_plot_names_the_dense_line_beside_the_panels(tmp_path: Path, monkeypatch, dense: float) -> None:
    """A dense accuracy above every point lay at the top edge of the panels: its name, written
    above the line, ran across the frame; among the points (86, 78), written inside the panel
    at its right end, it lay over the lines passing there."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    panels = {f"sparsity {s}": {p: [(84.0 - 10 * s * i, 0.5) for i in range(3)] for p in ("ft", "llr")} for s in (0.7, 0.9)}
    plots.plot_pivot(["1", "2", "4"], panels, "eval.epochs", "final_acc (%)", tmp_path / "p.png", legend_title="lr_policy",
                     reference=(f"dense: {dense:.2f}%", dense))  # fmt: skip
    (fig,) = figures
    fig.canvas.draw()
    (name,) = [text for ax in fig.axes for text in ax.texts]
    assert name.get_text() == f"dense: {dense:.2f}%" and name.xy[1] == dense
    box = name.get_window_extent(fig.canvas.get_renderer())
    assert not any(box.overlaps(ax.get_window_extent()) for ax in fig.axes if ax.get_visible())
    # at the line's height, right of the last panel, within the figure
    line_y = fig.axes[-1].transData.transform((0, dense))[1]
    assert box.y0 < line_y < box.y1 and box.x0 > fig.axes[-1].get_window_extent().x1 and _inside(box, fig.bbox)


@pytest.mark.parametrize(("series", "offsets"), [(2, [-0.15, 0.15]), (3, [-0.2, 0.0, 0.2]), (5, [-0.24, -0.12, 0.0, 0.12, 0.24])])
def test_pivot_plot_of_unordered_x_values_spreads_the_series_evenly_around_each_value(tmp_path: Path, monkeypatch, series: int,
                                                                                       offsets: list[float]) -> None:  # fmt: skip
    """n series each 0.6 / n of an x value's gap apart, centred on it: the outermost stay 0.6 (n - 1) / n apart, clear of the next value's."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    lines = {f"s{i}": [(90.0, 1.0), (80.0, 1.0)] for i in range(series)}
    plots.plot_pivot(["ft", "llr"], {"": lines}, "lr_policy", "final_acc (%)", tmp_path / "p.png", ordered=False)
    (ax,) = figures[0].axes
    drawn = [list(line.get_xdata()) for line in ax.lines if line.get_marker() == "o"]
    assert drawn == [pytest.approx([offset, 1 + offset]) for offset in offsets]


@pytest.mark.parametrize("legend_title", ["", "lr_policy"])
def test_pivot_plot_names_a_single_series_only_under_a_legend_title(tmp_path: Path, monkeypatch, legend_title: str) -> None:
    """One series alone needs no legend, but under the title of the rows it is the row it stands for."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.plot_pivot(["1", "2"], {"": {"ft": [(90.0, 1.0), (91.0, 0.5)]}}, "eval.epochs", "final_acc (%)", tmp_path / "p.png",
                     legend_title=legend_title)  # fmt: skip
    (fig,) = figures
    assert [[text.get_text() for text in legend.get_texts()] for legend in fig.legends] == ([["ft"]] if legend_title else [])


def test_pivot_plot_of_four_panels_lays_them_three_a_row(tmp_path: Path, monkeypatch) -> None:
    """Four sparsities: three panels on the first row, one on the second, the two places left empty hidden, the y axis named on each row."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    panels = {f"sparsity {s}": {"ft": [(90.0 - 10 * s, 1.0), (91.0 - 10 * s, 0.5)]} for s in (0.5, 0.7, 0.9, 0.95)}
    plots.plot_pivot(["1", "2"], panels, "eval.epochs", "final_acc (%)", tmp_path / "p.png")
    (fig,) = figures
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(fig.axes) == 6 and [ax.get_title() for ax in shown] == list(panels)
    assert [ax.get_subplotspec().rowspan.start for ax in shown] == [0, 0, 0, 1]
    assert [ax.get_ylabel() for ax in shown] == ["final_acc (%)", "", "", "final_acc (%)"]
    assert [list(line.get_ydata()) for ax in shown for line in ax.lines if line.get_marker() == "o"] == [
        pytest.approx([90.0 - 10 * s, 91.0 - 10 * s]) for s in (0.5, 0.7, 0.9, 0.95)]


@pytest.mark.parametrize(("dense", "top"), [(90.0, 91.1), (85.0, 90.5)])
def test_pivot_plot_leaves_a_tenth_of_the_axis_above_a_dense_line_at_its_top(tmp_path: Path, monkeypatch, dense: float, top: float) -> None:
    """Points from 80 to 90 fill 79.5 to 90.5 (matplotlib's 5% margins): a dense line at 90,
    within a tenth of the axis below its top, gets that tenth (1.1) above it; one at 85 leaves the axis as it is."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.plot_pivot(["1", "2"], {"": {"ft": [(80.0, 0.0), (90.0, 0.0)]}}, "eval.epochs", "final_acc (%)", tmp_path / "p.png",
                     reference=(f"dense: {dense:.2f}%", dense))  # fmt: skip
    assert figures[0].axes[0].get_ylim() == pytest.approx((79.5, top))
