"""Run directories read back (means over seeds, the settings that differ) and ``prunelab report``."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
from pathlib import Path

import pytest

from prunelab import cli, commands
from prunelab.config import recipe_yaml, validate
from prunelab.report.runs import load_run, load_runs, run_names, unfinished_notes, write_report
from prunelab.report.setups import differing_settings

PNG = b"\x89PNG\r\n\x1a\n"


def fake_run(folder: Path, recipe: dict, seeds: dict[int, dict], layers: dict[int, dict[str, float]]) -> Path:
    """A run directory as ``prunelab run`` leaves it, with the given per-seed summaries and LPR."""
    folder.mkdir(parents=True)
    (folder / "recipe.yaml").write_text(recipe_yaml(validate(recipe)))  # every section, as a run writes it
    for seed, summary in seeds.items():
        (folder / f"seed-{seed}").mkdir()
        (folder / f"seed-{seed}" / "summary.json").write_text(json.dumps({"seed": seed, **summary}))
        lpr = {name: {"numel": 100, "remaining": round(100 * (1 - s)), "sparsity": s} for name, s in layers[seed].items()}
        (folder / f"seed-{seed}" / "layer_sparsity.json").write_text(json.dumps(lpr))
        # One step an epoch: 3 epochs of find, 2 of eval.
        (folder / f"seed-{seed}" / "lr_log.json").write_text(json.dumps({"find": [0.1, 0.05, 0.01], "eval": [0.1, 0.01]}))
        rows = [{"phase": phase, "epoch": epoch} for phase, epochs in (("find", 3), ("eval", 2)) for epoch in range(1, epochs + 1)]
        (folder / f"seed-{seed}" / "metrics.json").write_text(json.dumps(rows))
        (folder / f"seed-{seed}" / "events.json").write_text(json.dumps({"prune": {}}))
    keys = [key for key in ("dense_acc", "pruned_acc", "final_acc", "sparsity") if all(key in s for s in seeds.values())]
    stats = {k: {"mean": statistics.fmean(s[k] for s in seeds.values()), "std": 0.0} for k in keys}
    (folder / "summary.json").write_text(json.dumps({"run": folder.name, "method": "x", "seeds": list(seeds), "stats": stats}))
    return folder


def imp_run(folder: Path, rate: float = 0.2) -> Path:
    levels = {
        0: [{"level": 1, "sparsity": 0.2, "final_acc": 0.80}, {"level": 2, "sparsity": 0.36, "final_acc": 0.70}],
        1: [{"level": 1, "sparsity": 0.2, "final_acc": 0.90}, {"level": 2, "sparsity": 0.36, "final_acc": 0.74}],
    }
    seeds = {s: {"dense_acc": 0.95, "final_acc": lv[-1]["final_acc"], "sparsity": 0.36, "levels": lv} for s, lv in levels.items()}
    recipe = {"prune": {"method": "imp", "rate": rate}, "eval": {"epochs": 2}, "seeds": [0, 1]}
    return fake_run(folder, recipe, seeds, {0: {"a.weight": 0.1, "b.weight": 0.5}, 1: {"a.weight": 0.3, "b.weight": 0.4}})


def record_lpr_during_find(folder: Path, seed: int, distance: float, epochs: tuple[int, ...] = (0, 1)) -> None:
    """A seed's LPR during its find phase as events.json keeps it: one layer at 30% then 20%,
    the first epoch ``distance`` away from the final LPR."""
    record = {"epochs": list(epochs), "layer_sparsity": {"a.weight": [0.3, 0.2]}, "distance": [distance, 0.0]}
    (folder / f"seed-{seed}" / "events.json").write_text(json.dumps({"level-1/prune": {"lpr_during_find": record}}))


def oneshot_run(folder: Path, sparsity: float, acc: float) -> Path:
    recipe = {"prune": {"method": "oneshot", "sparsity": sparsity}, "eval": {"epochs": 2}, "seeds": [0]}
    seeds = {0: {"dense_acc": 0.95, "final_acc": acc, "sparsity": sparsity}}
    return fake_run(folder, recipe, seeds, {0: {"a.weight": sparsity / 2, "b.weight": sparsity}})


def test_a_run_is_averaged_over_its_seeds(tmp_path: Path) -> None:
    run = load_run(imp_run(tmp_path / "imp"))
    assert [(s, m) for s, m, _ in run.curve] == [(0.2, pytest.approx(0.85)), (0.36, pytest.approx(0.72))]
    assert [sd for _, _, sd in run.curve] == [pytest.approx(statistics.stdev([0.8, 0.9])), pytest.approx(statistics.stdev([0.7, 0.74]))]
    assert run.layer_sparsity == {"a.weight": pytest.approx(0.2), "b.weight": pytest.approx(0.45)}
    assert run.layer_weights == {"a.weight": 100, "b.weight": 100}  # each seed's model has them, not their sum
    assert run.settings["prune.rate"] == 0.2 and run.settings["eval.epochs"] == 2


def test_a_run_is_read_over_the_seeds_its_summary_lists(tmp_path: Path) -> None:
    """A seed folder the summary does not list (another command's, still running) is not averaged in."""
    folder = oneshot_run(tmp_path / "a", 0.9, 0.6)
    shutil.copytree(folder / "seed-0", folder / "seed-5")
    (folder / "seed-5" / "summary.json").write_text(json.dumps({"seed": 5, "dense_acc": 0.95, "final_acc": 0.1, "sparsity": 0.9}))
    assert load_run(folder).curve == [(0.9, 0.6, 0.0)]


def test_runs_over_other_process_counts_say_so_in_a_column(tmp_path: Path) -> None:
    from prunelab.report.runs import comparison_rows

    folders = [oneshot_run(tmp_path / name, 0.9, 0.6) for name in ("one", "two")]
    environment = {"device": "cpu", "threads": 1, "processes": 2, "torch": "2.3.0", "prunelab": "0.1.0"}
    summary = folders[1] / "seed-0" / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "environment": environment}))
    rows, columns, _ = comparison_rows(load_runs(folders))
    assert columns[-2:] == ["processes", "run"] and [row["processes"] for row in rows] == [1, 2]
    assert "processes" not in comparison_rows(load_runs(folders[:1]))[1]  # alike: no column
    # a run whose seeds ran on other process counts names each count, seed by seed
    mixed = [imp_run(tmp_path / name) for name in ("a", "b")]
    summary = mixed[1] / "seed-0" / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "environment": environment}))
    rows, _, _ = comparison_rows(load_runs(mixed))
    assert [row["processes"] for row in rows] == [1, "2 / 1"]


def test_a_run_s_training_plots_are_those_of_each_of_its_seeds(tmp_path: Path) -> None:
    folder = imp_run(tmp_path / "imp")
    for seed in (0, 1):
        (folder / f"seed-{seed}" / "training.png").write_bytes(PNG)
    assert load_run(folder).training_plots == [folder / "seed-0" / "training.png", folder / "seed-1" / "training.png"]
    (folder / "seed-0" / "training.png").unlink()  # a seed without one (copied without its images) is left out
    assert load_run(folder).training_plots == [folder / "seed-1" / "training.png"]


def test_a_run_alone_shows_every_value_in_its_row(tmp_path: Path) -> None:
    """Values every run shares are said once above the table, but one run shares with none."""
    from prunelab.report.runs import comparison_rows

    rows, columns, shared = comparison_rows(load_runs([oneshot_run(tmp_path / "a", 0.9, 0.6)]))
    assert shared == {} and (rows[0]["final_acc"], rows[0]["sparsity"]) == ("60.00%", "90.00%")


def test_a_method_without_levels_is_one_point(tmp_path: Path) -> None:
    assert load_run(oneshot_run(tmp_path / "a", 0.9, 0.6)).curve == [(0.9, 0.6, 0.0)]
    # seeds that reached other sparsities (channel pruning) give the point at their mean sparsity
    seeds = {0: {"final_acc": 0.8, "sparsity": 0.5}, 1: {"final_acc": 0.6, "sparsity": 0.7}}
    run = fake_run(tmp_path / "b", {"seeds": [0, 1]}, seeds, {0: {"a.weight": 0.5}, 1: {"a.weight": 0.7}})
    assert load_run(run).curve == [(pytest.approx(0.6), pytest.approx(0.7), pytest.approx(statistics.stdev([0.8, 0.6])))]


def test_the_settings_that_differ_are_named_seeds_aside(tmp_path: Path) -> None:
    runs = [load_run(imp_run(tmp_path / "a", 0.2)), load_run(imp_run(tmp_path / "b", 0.5)), load_run(oneshot_run(tmp_path / "c", 0.9, 0.6))]
    # read with the schema: a setting one method lacks differs too; unset defaults are alike
    assert differing_settings([run.settings for run in runs]) == ["prune.method", "prune.rate", "prune.masks_from"]


def test_report_page_tables_and_plots(tmp_path: Path) -> None:
    folders = [oneshot_run(tmp_path / "runs" / f"s{s}", s, acc) for s, acc in ((0.5, 0.9), (0.9, 0.7))]
    page = write_report(folders, tmp_path / "report")
    lines = page.read_text().splitlines()
    # the runs differ in their sparsity only: one line of accuracy against sparsity, named by the method
    assert "| oneshot |   50.00% |         90.00% |" in lines and "| oneshot |   90.00% |         70.00% |" in lines
    # the LPR of each run (named by what differs), in percent
    assert "| layer    | weights | sparsity=0.5 | sparsity=0.9 |" in lines  # each layer's size beside its ratios
    assert "| b.weight |     100 |       50.00% |       90.00% |" in lines
    # the runs side by side, named by what differs: their summary values in one table, a value every
    # run shares in a line above; the settings that differ in another, beside each run's folder
    assert "The same in every run: dense_acc 95.00%." in lines
    assert "| run          | final_acc | sparsity |" in lines
    assert "| sparsity=0.5 |    90.00% |   50.00% |" in lines
    assert lines.index("| run          | final_acc | sparsity |") < lines.index("### Settings that differ")
    assert "| sparsity=0.5 |            0.5 | s0.5   |" in lines
    # seed 004's comparison setups: these runs are not even at one sparsity
    assert ("Comparison setup (seed 004): no two runs share a dataset, network, granularity and compression or speedup (S1), "
            "so none are compared: the sparsities (50.00% / 90.00%) differ") in lines  # fmt: skip
    for name in ("accuracy_vs_sparsity.png", "layer_sparsity.png"):
        assert f"]({name})" in page.read_text()
        assert (tmp_path / "report" / name).read_bytes().startswith(PNG)


def test_the_report_plots_each_line_against_its_own_dense_accuracy(tmp_path: Path, monkeypatch) -> None:
    """Two find phases, each pruned to two sparsities: the lines' dense accuracies differ, and
    the plot, which drew a dense line only for runs sharing one, drew none."""
    from prunelab.report import plots

    folders = []
    for epochs, dense in ((3, 0.9), (5, 0.95)):
        for sparsity in (0.5, 0.9):
            recipe = {"find": {"epochs": epochs}, "prune": {"method": "oneshot", "sparsity": sparsity}, "seeds": [0]}
            seeds = {0: {"dense_acc": dense, "final_acc": dense - sparsity / 10, "sparsity": sparsity}}
            folders.append(fake_run(tmp_path / f"e{epochs}-s{sparsity}", recipe, seeds, {0: {"a.weight": sparsity}}))
    legends: dict[str, list[str]] = {}
    save = plots._save

    def keep(fig, path):
        legends[path.name] = [text.get_text() for legend in fig.legends for text in legend.get_texts()]
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    write_report(folders, tmp_path / "report")
    assert legends["accuracy_vs_sparsity.png"] == ["find.epochs=3 (dense: 90.00%)", "find.epochs=5 (dense: 95.00%)"]
    # a line of runs that reached other dense accuracies (trained apart) has no dense accuracy to draw
    apart = [fake_run(tmp_path / f"apart-{sparsity}", {"prune": {"method": "oneshot", "sparsity": sparsity}, "seeds": [0]},
                      {0: {"dense_acc": dense, "final_acc": 0.8, "sparsity": sparsity}}, {0: {"a.weight": sparsity}})
             for sparsity, dense in ((0.5, 0.9), (0.9, 0.95))]  # fmt: skip
    write_report(apart, tmp_path / "apart-report")
    assert legends["accuracy_vs_sparsity.png"] == ["oneshot"]


def test_a_line_of_imp_runs_to_other_sparsities_goes_through_their_levels_in_order(tmp_path: Path) -> None:
    """Two IMP runs that differ in their target sparsity make one line: its points by sparsity, not run after run."""
    folders = []
    for target, levels in ((0.36, [(0.2, 0.8), (0.36, 0.7)]), (0.49, [(0.2, 0.85), (0.36, 0.75), (0.49, 0.6)])):
        points = [{"level": k, "sparsity": s, "final_acc": a} for k, (s, a) in enumerate(levels, start=1)]
        seeds = {0: {"dense_acc": 0.95, "final_acc": levels[-1][1], "sparsity": target, "levels": points}}
        recipe = {"prune": {"method": "imp", "sparsity": target}, "seeds": [0]}
        folders.append(fake_run(tmp_path / "runs" / f"imp{target}", recipe, seeds, {0: {"a.weight": target}}))
    lines = write_report(folders, tmp_path / "report").read_text().splitlines()
    table = lines[lines.index("## Accuracy against sparsity") + 6 :][:5]  # past the plot, the header and its rule
    assert [line.split("|")[2].strip() for line in table] == ["20.00%", "20.00%", "36.00%", "36.00%", "49.00%"]


def test_the_report_says_the_channels_each_group_keeps_after_channel_pruning(tmp_path: Path) -> None:
    recipe = {"prune": {"method": "oneshot", "criterion": "filter_l1", "sparsity": 0.5}, "seeds": [0, 1]}
    seeds = {seed: {"dense_acc": 0.95, "final_acc": 0.8, "sparsity": 0.6} for seed in (0, 1)}
    folder = fake_run(tmp_path / "runs" / "channels", recipe, seeds, {seed: {"a.weight": 0.5} for seed in (0, 1)})
    # conv1 (10 channels) keeps 3, then 4; conv2 (4 channels) keeps 2 in both seeds. 3 / (1 - 0.7) is 9.999...: a size rounded, not cut.
    kept = {0: {"conv1": [0, 2, 5], "conv2": [1, 3]}, 1: {"conv1": [1, 2, 3, 4], "conv2": [0, 1]}}
    for seed, channels in kept.items():
        (folder / f"seed-{seed}" / "channels.json").write_text(json.dumps(channels))
        removed = {"conv1": 1 - len(channels["conv1"]) / 10, "conv2": 0.5}
        (folder / f"seed-{seed}" / "events.json").write_text(json.dumps({"prune": {"group_sparsity": removed}}))
    weights = oneshot_run(tmp_path / "runs" / "weights", 0.6, 0.8)
    lines = write_report([folder, weights], tmp_path / "report").read_text().splitlines()
    section = lines[lines.index("## Kept channels") :]
    # the channel run alone (the second of the runs, numbered, as the tables above name it): the mean ± std of 3 and 4 channels
    assert "| channel group | #2              |" in section
    assert "| conv1         | 3.5 ± 0.7 of 10 |" in section and "| conv2         | 2 of 4          |" in section
    assert "## Kept channels" not in write_report([weights], tmp_path / "report").read_text()


def test_the_report_page_says_which_runs_it_shows_of_their_finished_seeds_only(tmp_path: Path) -> None:
    """A run cut off in its second seed: the page, read away from the terminal, says its results are seed 0's only."""
    recipe = {"prune": {"method": "oneshot", "sparsity": 0.9}, "seeds": [0, 1, 2]}
    cut = fake_run(tmp_path / "runs" / "cut", recipe, {0: {"dense_acc": 0.95, "final_acc": 0.7, "sparsity": 0.9}}, {0: {"a.weight": 0.9}})
    lines = write_report([cut], tmp_path / "report").read_text().splitlines()
    assert "cut: the results are of the finished seeds only; seeds 1, 2 of its recipe had not finished." in lines
    assert "1 run: accuracies are test accuracies, mean ± std over seeds." in lines
    finished = write_report([oneshot_run(tmp_path / "runs" / "done", 0.9, 0.7)], tmp_path / "report").read_text()
    assert "finished seeds only" not in finished
    one_left = fake_run(tmp_path / "runs" / "one", {**recipe, "seeds": [0, 1]}, {0: {"final_acc": 0.7, "sparsity": 0.9}}, {0: {"a.weight": 0.9}})
    assert unfinished_notes(load_runs([one_left]), ["one"]) == [
        "one: the results are of the finished seeds only; seed 1 of its recipe had not finished."
    ]


def test_runs_are_numbered_past_sixty_characters_of_a_label_and_a_run_alone_never() -> None:
    """A run alone keeps its label however long or empty (then its folder names it), as no other needs telling apart."""
    assert run_names(["a" * 60, "b" * 60]) == (["a" * 60, "b" * 60], False)
    assert run_names(["a" * 61, "b"]) == (["#1", "#2"], True)
    # among others, a run without a label (an arm that sets none of the grid's keys) is numbered, as they are
    assert run_names(["", "lr_policy=ft"]) == (["#1", "#2"], True)
    assert run_names(["a" * 61]) == (["a" * 61], False) and run_names([""]) == ([""], False)


def test_many_differing_settings_number_the_runs(tmp_path: Path) -> None:
    base = {"prune": {"method": "oneshot", "sparsity": 0.5}, "seeds": [0]}
    folders = []
    for i, lr in enumerate((0.1, 0.2)):
        recipe = {**base, "find": {"optimizer": {"lr": lr, "weight_decay": lr / 10}, "epochs": 10 + i, "batch_size": 100 + i}}
        folders.append(fake_run(tmp_path / f"r{i}", recipe, {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.5}},
                                {0: {"a.weight": 0.5}}))  # fmt: skip
    folders.append(oneshot_run(tmp_path / "r2", 0.9, 0.7))  # alone at its sparsity
    text = write_report(folders, tmp_path / "report").read_text()
    lines = text.splitlines()
    assert "| #1  |    90.00% |    80.00% |   50.00% |" in lines  # numbered
    # six settings of three runs: a row per setting, a column per run, the folders below
    assert "|                             | #1   | #2  | #3   |" in lines and "| find.optimizer.lr           |  0.1 | 0.1 |  0.2 |" in lines
    assert "- #3: `r1`" in lines
    # seed 004's setups name the runs as the tables do, group by group of one sparsity
    # ordered by the settings that differ: find.epochs first, 10, 10, 11
    assert ("- #1 vs #3: S1: the same dataset, network, granularity and compression or speedup. Not S2: the base models' "
            "settings differ: ") in text  # fmt: skip
    assert "| #1 #3 |   50.00% |" not in text  # they differ in more than sparsity: two lines
    assert "| #1   |   50.00% |         80.00% |" in text and "| #3   |   50.00% |         80.00% |" in text


def test_the_report_folder_holds_every_image_it_shows(tmp_path: Path, monkeypatch) -> None:
    """The runs' training plots are copied beside the page, which is linked by paths inside
    its folder: moved anywhere, with the runs gone, the page still finds every image; made
    again from fewer runs, it keeps no copy of the others'."""
    folders = [oneshot_run(tmp_path / "runs" / f"s{s}", s, 0.8) for s in (0.5, 0.9)]
    for i, folder in enumerate(folders):
        (folder / "seed-0" / "training.png").write_bytes(PNG + bytes([i]))
    monkeypatch.chdir(tmp_path)
    write_report([Path("runs") / folder.name for folder in folders], Path("report"))
    (tmp_path / "elsewhere").mkdir()
    moved = (tmp_path / "report").rename(tmp_path / "elsewhere" / "moved")
    shutil.rmtree(tmp_path / "runs" / "s0.9")
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", (moved / "report.md").read_text())
    assert links == ["accuracy_vs_sparsity.png", "layer_sparsity.png", "training/s0.5-seed-0.png", "training/s0.9-seed-0.png"]
    assert (moved / links[2]).read_bytes() == PNG + bytes([0]) and (moved / links[3]).read_bytes() == PNG + bytes([1])
    write_report([folders[0]], moved)
    assert sorted(p.name for p in (moved / "training").iterdir()) == ["s0.5-seed-0.png"]


def test_a_report_of_many_runs_folds_each_run_s_training_plots_under_its_name(tmp_path: Path) -> None:
    """A sweep's dozens of training plots, one under another, buried the page: past a few runs, behind a click."""
    from prunelab.report.runs import FOLDED_TRAINING

    def page(count: int) -> str:
        folders = [oneshot_run(tmp_path / f"runs{count}" / f"s{i}", 0.5 + i / 100, 0.8) for i in range(count)]
        for folder in folders:
            (folder / "seed-0" / "training.png").write_bytes(PNG)
        return write_report(folders, tmp_path / f"report{count}").read_text().split("## Training")[1]

    few, many = page(FOLDED_TRAINING), page(FOLDED_TRAINING + 1)
    assert "<details>" not in few and "sparsity=0.5 (seed-0):\n\n![s0](training/s0-seed-0.png)" in few
    assert many.count("<details>") == many.count("</details>") == FOLDED_TRAINING + 1
    assert "<details>\n<summary>sparsity=0.5</summary>\n\nseed-0:\n\n![s0](training/s0-seed-0.png)\n\n</details>" in many


def test_the_report_links_copies_of_each_seed_s_lpr_during_find_plot(tmp_path: Path) -> None:
    """The find.lpr_every section points at each seed's lpr_during_find.png copied beside the
    training plots, so that the page moved on its own still shows the layers."""
    folder = imp_run(tmp_path / "runs" / "imp")
    for seed in (0, 1):
        record_lpr_during_find(folder, seed, 0.1 * (seed + 1))
        (folder / f"seed-{seed}" / "lpr_during_find.png").write_bytes(PNG + bytes([seed]))
    write_report([folder], tmp_path / "report")
    moved = (tmp_path / "report").rename(tmp_path / "moved")
    shutil.rmtree(tmp_path / "runs")
    page = (moved / "report.md").read_text()
    section = page.split("## Layerwise pruning ratios during the find phase")[1].split("\n## ")[0]
    assert "lpr_during_find.png shows" not in section  # a file left behind in the run directory
    links = re.findall(r"\[imp \((seed-\d)\)\]\(([^)]+)\)", section)
    assert links == [("seed-0", "training/imp-seed-0-lpr_during_find.png"), ("seed-1", "training/imp-seed-1-lpr_during_find.png")]
    assert [(moved / link).read_bytes() for _, link in links] == [PNG + bytes([0]), PNG + bytes([1])]


def test_the_report_plots_the_lpr_distance_with_its_spread_over_seeds(tmp_path: Path, monkeypatch) -> None:
    """The section says mean ± std over seeds, and its table gives both: the plot showed the mean alone."""
    from matplotlib.container import ErrorbarContainer

    from prunelab.report import plots

    folder = imp_run(tmp_path / "imp")
    for seed in (0, 1):
        record_lpr_during_find(folder, seed, 0.1 * (seed + 1))
    bars = {}
    save = plots._save

    def keep(fig, path):
        bars[path.name] = [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    write_report([folder], tmp_path / "report")
    (distance,) = bars["lpr_distance.png"]
    (segments,) = distance.lines[2]
    spread = 100 * statistics.stdev([0.1, 0.2])
    assert [list(segment[:, 1]) for segment in segments.get_segments()] == [pytest.approx([15 - spread, 15 + spread]), [0, 0]]


def test_lpr_distances_of_seeds_at_other_epochs_are_not_averaged(tmp_path: Path) -> None:
    """Seed 1 kept other epochs of its find phase: averaging by position would mix epoch 1 with 2."""
    folder = imp_run(tmp_path / "imp")
    for seed, epochs in ((0, (0, 1)), (1, (0, 2))):
        record_lpr_during_find(folder, seed, 0.1, epochs)
    assert load_run(folder).lpr_distance is None


def test_report_command_skips_what_is_not_a_run(tmp_path: Path, capsys, monkeypatch) -> None:
    folders = [oneshot_run(tmp_path / "runs" / f"s{s}", s, 0.8) for s in (0.5, 0.9)]
    (tmp_path / "runs" / "table.md").write_text("")
    assert cli.main(["report", *map(str, folders), str(tmp_path / "runs" / "table.md"), "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert f"report in {tmp_path / 'out' / 'report.md'}" in captured.out and "skipping" in captured.err
    assert cli.main(["compare", *map(str, folders)]) == 0
    assert "\nComparison setup (seed 004): no two runs share a dataset" in capsys.readouterr().out
    assert cli.main(["report", str(tmp_path / "runs" / "table.md")]) == 2
    monkeypatch.chdir(tmp_path)  # without --out: a folder named report
    assert cli.main(["report", *map(str, folders)]) == 0
    assert capsys.readouterr().out.endswith(f"report in {Path('report', 'report.md')}\n") and (tmp_path / "report" / "report.md").is_file()


def test_show_prints_each_run_given_two_blank_lines_apart(tmp_path: Path, capsys) -> None:
    folders = [oneshot_run(tmp_path / name, 0.5, 0.8) for name in ("a", "b")]
    alone = []
    for folder in folders:
        assert cli.main(["show", str(folder)]) == 0
        alone.append(capsys.readouterr().out)
    assert cli.main(["show", *map(str, folders)]) == 0
    assert capsys.readouterr().out == f"{alone[0]}\n\n{alone[1]}"


def test_show_on_a_narrow_terminal_lists_below_the_table_only_the_values_that_have_a_meaning(tmp_path: Path, capsys, monkeypatch) -> None:
    run = oneshot_run(tmp_path / "run", 0.5, 0.8)
    summary = json.loads((run / "summary.json").read_text())
    summary["stats"]["custom"] = {"mean": 3.0, "std": 0.0}  # a value of no known meaning
    (run / "summary.json").write_text(json.dumps({**summary, "method": "oneshot"}))
    monkeypatch.setattr(commands, "_terminal_width", lambda: 60)
    assert cli.main(["show", str(run)]) == 0
    table, meanings = capsys.readouterr().out.split("\n\n")[:2]
    assert "| custom " in table
    assert [line.split(":")[0] for line in meanings.splitlines() if not line.startswith("  ")] == ["dense_acc", "final_acc", "sparsity"]


DAMAGES = {  # a file of a run directory, what is written into it (None: removed), what the error says of it
    "cut summary": ("summary.json", "{\n", "is not valid JSON (line 2, column 1)"),
    "empty summary": ("summary.json", "{}", "lacks 'run', 'seeds', 'stats'"),
    "cut seed summary": ("seed-0/summary.json", "{\n", "is not valid JSON (line 2, column 1)"),
    "no seed summary": ("seed-0/summary.json", None, "is missing"),
    "cut LR log": ("seed-0/lr_log.json", "{\n", "is not valid JSON (line 2, column 1)"),
    "cut metrics": ("seed-0/metrics.json", '[{"phase": "fi', "is not valid JSON (line 1, column 12)"),
    "no metrics": ("seed-0/metrics.json", None, "is missing"),
    "layers in a list": ("seed-0/layer_sparsity.json", "[1]", "is not a JSON object"),
    "no final accuracy": ("summary.json", '{"run": "run", "seeds": [0], "stats": {"sparsity": {"mean": 0.5, "std": 0.0}}}',
                          "lacks the stats of final_acc"),
}


@pytest.mark.parametrize("command", ["show", "compare", "report"])
@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_run_file_is_named_in_one_line(damage: str, command: str, tmp_path: Path, capsys) -> None:
    name, content, problem = DAMAGES[damage]
    run = oneshot_run(tmp_path / "run", 0.5, 0.8)
    path = run / name
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    assert cli.main([command, str(run), *(["--out", str(tmp_path / "report")] if command == "report" else [])]) == 2
    assert capsys.readouterr().err == f"prunelab: error: {path} {problem}: the run folder is damaged: remove that file if it is there, then run the run's command again, which rebuilds a seed's results from its checkpoint (a seed without one trains anew)\n"


def test_a_seed_folder_of_an_unfinished_run_is_named_as_a_seed(tmp_path: Path) -> None:
    run = oneshot_run(tmp_path / "run", 0.5, 0.8)
    (run / "summary.json").unlink()  # the seeds are done, the run's summary not yet written
    with pytest.raises(FileNotFoundError, match="one seed of a run; pass the run directory"):
        load_run(run / "seed-0")


def test_report_into_a_file_is_a_clear_error(tmp_path: Path, capsys) -> None:
    run = oneshot_run(tmp_path / "run", 0.5, 0.8)
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    assert cli.main(["report", str(run), "--out", str(not_a_folder)]) == 2
    assert capsys.readouterr().err == f"prunelab: error: --out {not_a_folder} is a file, not a folder\n"


def test_an_interrupted_report_leaves_no_folder_it_made_and_keeps_the_user_s(tmp_path: Path, monkeypatch, capsys) -> None:
    run = oneshot_run(tmp_path / "run", 0.5, 0.8)

    def interrupted(folders: list[Path], out: Path) -> Path:
        raise KeyboardInterrupt

    monkeypatch.setattr("prunelab.report.runs.write_report", interrupted)
    own = tmp_path / "own"
    own.mkdir()
    for out in (tmp_path / "reports" / "latest", own):  # --out made with its parent; --out the user made
        assert cli.main(["report", str(run), "--out", str(out)]) == 130
    assert sorted(path.name for path in tmp_path.iterdir()) == ["own", "run"]


def test_a_report_may_go_into_a_folder_inside_a_run_or_into_new_folders(tmp_path: Path, capsys) -> None:
    # Only the run directory itself and its seeds are refused: a report there would be taken for the run's files.
    run = oneshot_run(tmp_path / "run", 0.5, 0.8)
    for out in (run / "report", tmp_path / "reports" / "latest"):
        assert cli.main(["report", str(run), "--out", str(out)]) == 0
        assert (out / "report.md").is_file()


def test_settings_a_run_never_read_show_as_unread_not_as_their_defaults(tmp_path: Path) -> None:
    """FT retrains at the find phase's last LR: its eval LR and schedule are not what it trained with."""
    from prunelab.report.runs import comparison_rows

    ft = fake_run(tmp_path / "ft", {"eval": {"epochs": 2, "lr_policy": "ft"}, "seeds": [0]},
                  {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.9}}, {0: {"a.weight": 0.9}})  # fmt: skip
    scheduled = fake_run(tmp_path / "scheduled", {"eval": {"epochs": 2, "optimizer": {"lr": 0.05}}, "seeds": [0]},
                         {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.9}}, {0: {"a.weight": 0.9}})  # fmt: skip
    rows, columns, _ = comparison_rows([load_run(ft), load_run(scheduled)])
    assert "eval.optimizer.lr" in columns
    assert [row["eval.optimizer.lr"] for row in rows] == ["–", 0.05]
    assert [row["eval.lr_policy"] for row in rows] == ["ft", "null"]  # unset: no policy


def test_runs_are_compared_in_the_order_of_the_settings_that_differ(tmp_path: Path, capsys) -> None:
    """Numbers by value and an unset setting last, not in the order of the folders' hashes."""
    folders = []
    for name, stop in [("a", 2), ("b", None), ("c", 1), ("d", 3)]:
        find = {"epochs": 3, **({"stop_epoch": stop} if stop is not None else {})}
        recipe = {"prune": {"method": "oneshot", "sparsity": 0.5}, "find": find, "seeds": [0]}
        folders.append(fake_run(tmp_path / name, recipe, {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.5}},
                                {0: {"a.weight": 0.5}}))  # fmt: skip
    assert [run.folder.name for run in load_runs(folders)] == ["c", "a", "d", "b"]
    assert cli.main(["compare", *map(str, folders)]) == 0
    table = [line.split("|")[1:3] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    assert [(run.strip(), stop.strip()) for stop, run in table] == [("c", "1"), ("a", "2"), ("d", "3"), ("b", "null")]


def test_runs_at_one_sparsity_get_no_accuracy_against_sparsity_plot(tmp_path: Path) -> None:
    folders = [oneshot_run(tmp_path / name, 0.9, acc) for name, acc in (("a", 0.8), ("b", 0.7))]
    page = write_report(folders, tmp_path / "report").read_text()
    assert "## Accuracy against sparsity" not in page and not (tmp_path / "report" / "accuracy_vs_sparsity.png").exists()
    assert "80.00%" in page and "70.00%" in page  # the runs' table has the accuracies
    # a point of sparsity apart: two points
    apart = [oneshot_run(tmp_path / name, sparsity, 0.8) for name, sparsity in (("c", 0.9), ("d", 0.91))]
    assert "## Accuracy against sparsity" in write_report(apart, tmp_path / "report").read_text()


def test_the_accuracy_table_gives_each_point_s_spread_over_the_seeds(tmp_path: Path) -> None:
    lines = write_report([imp_run(tmp_path / "runs" / "imp")], tmp_path / "report").read_text().splitlines()
    table = lines[lines.index("## Accuracy against sparsity") + 4 :][:4]  # past the plot
    cells = [[cell.strip() for cell in line.split("|")[1:-1]] for line in table]
    # seeds 0 and 1 reach 80% and 90% at the first level, 70% and 74% at the second
    assert cells[0] == ["runs", "sparsity", "final accuracy"]
    assert cells[2:] == [["imp", "20.00%", f"85.00% ± {100 * statistics.stdev([0.8, 0.9]):.2f}"],
                         ["imp", "36.00%", f"72.00% ± {100 * statistics.stdev([0.7, 0.74]):.2f}"]]  # fmt: skip


def test_a_sweep_s_report_plots_its_table(tmp_path: Path, monkeypatch) -> None:
    from prunelab.config.sweep import TableSpec
    from prunelab.report.runs import plot_sweep

    results = []
    for name, stop, acc in [("a", 2, 0.8), ("b", None, 0.7)]:
        recipe = {"prune": {"method": "oneshot", "sparsity": 0.5}, "find": {"epochs": 3, "stop_epoch": stop}, "seeds": [0]}
        folder = fake_run(tmp_path / name, recipe, {0: {"dense_acc": 0.9, "final_acc": acc, "sparsity": 0.5}}, {0: {"a.weight": 0.5}})
        results.append(({"find.stop_epoch": stop}, folder))
    drawn = []
    monkeypatch.setattr("prunelab.report.runs.plot_pivot", lambda *args, **kwargs: drawn.append((*args, kwargs)))
    page = write_report([f for _, f in results], tmp_path / "report", sweep=(results, TableSpec(rows="find.stop_epoch"))).read_text()
    ((x, panels, xlabel, ylabel, path, options),) = drawn
    assert (x, xlabel, ylabel, path) == (["2", "null"], "stop_epoch", "final_acc (%)", tmp_path / "report" / "sweep.png")
    # null among the rows: points, not a line through them; the seeds the error bars are over named; the runs' dense accuracy
    assert options == {"title": "final_acc by stop_epoch: mean ± std over 1 seed", "ordered": False, "legend_title": "",
                       "reference": ("dense: 90.00%", pytest.approx(90.0))}  # fmt: skip
    assert panels == {"": {"final_acc": [pytest.approx((80.0, 0.0)), pytest.approx((70.0, 0.0))]}}
    assert page.index("## The sweep's table") < page.index("## Runs") and "## Comparison setup" not in page
    # a table of sparsities: no dense accuracy on their axis
    plot_sweep(results, TableSpec(rows="find.stop_epoch", value="sparsity"), tmp_path / "sweep.png")
    ylabel, options = drawn[-1][3], drawn[-1][-1]
    assert (ylabel, options["title"], options["reference"]) == ("sparsity (%)", "sparsity by stop_epoch: mean ± std over 1 seed", None)


def test_a_sweep_s_plot_is_a_panel_per_sparsity_a_line_per_policy_over_the_budget(tmp_path: Path, monkeypatch) -> None:
    """Seed 003's layout; policies equal in every cell are one line named by both."""
    from prunelab.config.sweep import TableSpec
    from prunelab.report.runs import plot_sweep

    accuracy = {("ft", 0.5, 1): 0.8, ("ft", 0.5, 2): 0.82, ("ft", 0.9, 1): 0.6, ("ft", 0.9, 2): 0.65,
                ("llr", 0.5, 1): 0.85, ("llr", 0.5, 2): 0.86, ("llr", 0.9, 1): 0.7, ("llr", 0.9, 2): 0.72}  # fmt: skip
    accuracy.update({("lrw", *rest): acc for (policy, *rest), acc in accuracy.items() if policy == "ft"})
    results = []
    for (policy, sparsity, epochs), acc in accuracy.items():
        recipe = {"prune": {"method": "oneshot", "sparsity": sparsity}, "eval": {"lr_policy": policy, "epochs": epochs}, "seeds": [0]}
        folder = fake_run(tmp_path / f"{policy}{sparsity}{epochs}", recipe, {0: {"dense_acc": 0.9, "final_acc": acc, "sparsity": sparsity}},
                          {0: {"a.weight": sparsity}})  # fmt: skip
        results.append(({"eval.lr_policy": policy, "prune.sparsity": sparsity, "eval.epochs": epochs}, folder))
    drawn = []
    monkeypatch.setattr("prunelab.report.runs.plot_pivot", lambda *args, **kwargs: drawn.append((*args, kwargs)))
    plot_sweep(results, TableSpec(rows="eval.lr_policy", columns=["prune.sparsity", "eval.epochs"]), tmp_path / "sweep.png")
    ((x, panels, xlabel, _, _, options),) = drawn
    assert (x, xlabel, options["legend_title"], list(panels)) == (["1", "2"], "eval.epochs", "lr_policy", ["sparsity 0.5", "sparsity 0.9"])
    assert panels["sparsity 0.9"] == {"ft = lrw": [pytest.approx((60.0, 0.0)), pytest.approx((65.0, 0.0))],
                                      "llr": [pytest.approx((70.0, 0.0)), pytest.approx((72.0, 0.0))]}  # fmt: skip


def test_settings_with_numbers_in_their_text_are_ordered_by_the_numbers(tmp_path: Path) -> None:
    folders = []
    for name, rewind in [("a", "epoch:10"), ("b", "init"), ("c", "epoch:5")]:
        recipe = {"prune": {"method": "oneshot", "sparsity": 0.5}, "eval": {"rewind": rewind, "epochs": 20}, "seeds": [0]}
        folders.append(fake_run(tmp_path / name, recipe, {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.5}},
                                {0: {"a.weight": 0.5}}))  # fmt: skip
    assert [run.settings["eval.rewind"] for run in load_runs(folders)] == ["epoch:5", "epoch:10", "init"]


def test_runs_are_ordered_by_the_first_setting_that_differs_numbers_then_text_then_unset(tmp_path: Path) -> None:
    """FT never reads the eval LR ("–"): the runs by that LR first, numbers before it, then by
    their policy; a setting left unset (null) comes after one set to a name."""
    summary, layers = {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.5}}, {0: {"a.weight": 0.5}}
    evals = {"lrw": {"lr_policy": "lrw"}, "lr0.1": {"optimizer": {"lr": 0.1}}, "ft": {"lr_policy": "ft"}, "lr0.05": {"optimizer": {"lr": 0.05}}}
    folders = [fake_run(tmp_path / name, {"eval": {"epochs": 2, **retraining}, "seeds": [0]}, summary, layers)
               for name, retraining in evals.items()]
    runs = load_runs(folders)
    assert differing_settings([run.settings for run in runs])[0] == "eval.optimizer.lr"  # the first column of the tables
    assert [run.folder.name for run in runs] == ["lr0.05", "lr0.1", "ft", "lrw"]
    # a channel criterion's sparsity_of: weights, or unset (what the criterion prunes)
    prunes = {"unset": {}, "weights": {"sparsity_of": "weights"}}
    folders = [fake_run(tmp_path / name, {"prune": {"method": "oneshot", "criterion": "filter_l1", "scope": "global", **prune}, "seeds": [0]},
                        summary, layers) for name, prune in prunes.items()]  # fmt: skip
    assert [run.settings["prune.sparsity_of"] for run in load_runs(folders)] == ["weights", None]


def test_a_setting_of_another_method_shows_as_unread_not_null(tmp_path: Path) -> None:
    """IMP's prune.rate is no setting of a one-shot run: "–" (never read), not "null" (left unset)."""
    from prunelab.report.runs import comparison_rows

    summary = {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.5}}
    folders = [fake_run(tmp_path / name, {"prune": prune, "seeds": [0]}, summary, {0: {"a.weight": 0.5}})
               for name, prune in (("once", {"method": "oneshot", "sparsity": 0.5}), ("imp", {"method": "imp", "sparsity": 0.5, "rate": 0.5}))]  # fmt: skip
    rows, columns, _ = comparison_rows(load_runs(folders))
    assert "prune.rate" in columns
    assert {row["run"]: row["prune.rate"] for row in rows} == {"once": "–", "imp": 0.5}


def test_compare_and_the_report_say_what_a_dash_is(tmp_path: Path, capsys) -> None:
    """A one-shot run beside an IMP run shows "–" for prune.rate: the tables now say what it is."""
    summary = {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.5}}
    folders = [fake_run(tmp_path / name, {"prune": prune, "seeds": [0]}, summary, {0: {"a.weight": 0.5}})
               for name, prune in (("once", {"method": "oneshot", "sparsity": 0.5}), ("imp", {"method": "imp", "sparsity": 0.5, "rate": 0.5}))]  # fmt: skip
    note = "–: a setting the run never read"
    assert note in write_report(folders, tmp_path / "report").read_text()
    assert cli.main(["compare", *map(str, folders)]) == 0
    assert note in capsys.readouterr().out
    # runs of one method, every setting read: no note
    assert cli.main(["compare", str(folders[0]), str(oneshot_run(tmp_path / "other", 0.9, 0.7))]) == 0
    assert note not in capsys.readouterr().out


def test_the_report_says_what_each_value_means_per_method_where_they_differ(tmp_path: Path) -> None:
    summary = {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.5, "pruned_acc": 0.4}}
    folders = [fake_run(tmp_path / name, {"prune": {"method": name, "sparsity": 0.5}, "seeds": [0]}, summary, {0: {"a.weight": 0.5}})
               for name in ("oneshot", "gmp")]  # fmt: skip
    page = write_report(folders, tmp_path / "report").read_text()
    assert "- `final_acc`: test accuracy at the end of the run\n" in page
    assert ("- `pruned_acc`: oneshot: test accuracy right after pruning, before retraining; "
            "gmp: test accuracy at the end of the pruning stage, before fine-tuning\n") in page


def test_compare_says_what_a_value_means_only_where_the_methods_differ(tmp_path: Path, capsys) -> None:
    summary = {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.5, "pruned_acc": 0.4}}
    folders = [fake_run(tmp_path / name, {"prune": {"method": name, "sparsity": 0.5}, "seeds": [0]}, summary, {0: {"a.weight": 0.5}})
               for name in ("oneshot", "gmp")]  # fmt: skip
    assert cli.main(["compare", *map(str, folders)]) == 0
    out = capsys.readouterr().out
    assert "- pruned_acc: oneshot: test accuracy right after pruning" in out and "- final_acc" not in out


def test_runs_of_the_same_settings_are_numbered_beside_their_folders(tmp_path: Path) -> None:
    """The same recipe run twice (in two folders of runs, say): no setting tells the runs apart, so they
    are numbered, and with no table of settings to name their folders, the runs' table does."""
    folders = [oneshot_run(tmp_path / name, 0.9, acc) for name, acc in (("here", 0.6), ("there", 0.7))]
    lines = write_report(folders, tmp_path / "report").read_text().splitlines()
    assert "### Settings that differ" not in lines
    assert "| run | final_acc | folder |" in lines
    assert "| #1  |    60.00% | here   |" in lines and "| #2  |    70.00% | there  |" in lines


def test_methods_that_read_a_value_alike_are_named_together(tmp_path: Path) -> None:
    """Seed 004's TA is read alike by one-shot and GMP runs, at the last level by IMP: its meaning once for the two."""
    from prunelab.report.runs import value_meanings

    summary = {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.5, "trainability_acc": 0.7}}
    runs = load_runs([fake_run(tmp_path / name, {"prune": {"method": name, "sparsity": 0.5}, "seeds": [0]}, summary, {0: {"a.weight": 0.5}})
                      for name in ("imp", "oneshot", "gmp")])  # fmt: skip
    ta = "mean training accuracy in the retraining's first LR stage (all of it if none; seed 004's TA)"
    assert value_meanings(runs, ["trainability_acc"]) == [f"- `trainability_acc`: imp: {ta}, at the last level; oneshot, gmp: {ta}"]


def test_a_methods_own_summary_value_is_compared_by_default(tmp_path: Path, capsys) -> None:
    """GMP's sparsity_updates is no standard value, but a GMP run's table shows it, and says what it is."""
    summary = {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.5}}
    folders = [fake_run(tmp_path / name, {"prune": {"method": name, "sparsity": 0.5}, "seeds": [0]}, summary, {0: {"a.weight": 0.5}})
               for name in ("oneshot", "gmp")]  # fmt: skip
    gmp = json.loads((folders[1] / "summary.json").read_text())
    gmp["stats"]["sparsity_updates"] = {"mean": 60.0, "std": 0.0}
    (folders[1] / "summary.json").write_text(json.dumps(gmp))
    page = write_report(folders, tmp_path / "report").read_text()
    assert "- `sparsity_updates`: mask updates along the sparsity schedule" in page
    assert cli.main(["compare", *map(str, folders)]) == 0
    header, _, *rows = [[cell.strip() for cell in line.split("|")] for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert header[2] == "sparsity_updates"  # after the numbers; the values every run shares said above
    assert {row[-2]: row[2] for row in rows} == {"oneshot": "", "gmp": "60"}


def test_a_sweeps_report_keeps_its_order_and_names_runs_by_the_grid_values_that_differ(tmp_path: Path) -> None:
    folders = [oneshot_run(tmp_path / "runs" / f"s{s}", s, 0.8) for s in (0.9, 0.5)]
    results = [({"prune.sparsity": 0.9, "eval.epochs": 2}, folders[0]), ({"prune.sparsity": 0.5, "eval.epochs": 2}, folders[1])]
    text = write_report(folders, tmp_path / "report", sweep=(results, None)).read_text()
    runs = [line.split("|")[-2].strip() for line in text.split("### Settings that differ")[1].split("\n## ")[0].splitlines() if line.startswith("| ")][1:]
    assert runs == ["s0.9", "s0.5"]  # the sweep's order, not the settings' (0.5 first)
    assert re.search(r"\| layer +\| weights \| sparsity=0\.9 \| sparsity=0\.5 \|", text), text  # eval.epochs is every run's
    assert "## Comparison setup" in text  # no table judged the setups


def test_a_run_has_one_colour_in_every_plot_of_a_report(tmp_path: Path, monkeypatch) -> None:
    """Run b has no layerwise ratios: run c must not take b's colour in the LPR plot."""
    from matplotlib.colors import to_hex

    from prunelab.report import plots

    folders = []
    for name, epochs, sparsity, acc in (("a", 2, 0.5, 0.9), ("b", 3, 0.8, 0.8), ("c", 4, 0.9, 0.7)):
        recipe = {"prune": {"method": "oneshot", "sparsity": sparsity}, "eval": {"epochs": epochs}, "seeds": [0]}
        seeds = {0: {"dense_acc": 0.95, "final_acc": acc, "sparsity": sparsity}}
        folders.append(fake_run(tmp_path / name, recipe, seeds, {0: {"a.weight": sparsity}}))
    (folders[1] / "seed-0" / "layer_sparsity.json").write_text("{}")
    colours: dict[str, dict[str, str]] = {}
    save = plots._save

    def keep(fig, path):
        ax = fig.axes[0]
        drawn = {line.get_label(): to_hex(line.get_color()) for line in ax.lines if not line.get_label().startswith("dense: ")}
        drawn.update((bars.get_label(), to_hex(bars.patches[0].get_facecolor())) for bars in ax.containers)
        colours[path.name] = drawn
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    write_report(folders, tmp_path / "report")
    # A line per run (its eval.epochs; the sparsity is on x), a bar per run that has LPR (named with its sparsity).
    lines, bars = colours["accuracy_vs_sparsity.png"], colours["layer_sparsity.png"]
    assert list(lines) == ["eval.epochs=2", "eval.epochs=3", "eval.epochs=4"] and len(set(lines.values())) == 3
    assert bars == {"sparsity=0.5, eval.epochs=2": lines["eval.epochs=2"], "sparsity=0.9, eval.epochs=4": lines["eval.epochs=4"]}
    # ten runs on one line and one on another: the lines in their own colours, not both in the first run's (#1 and #11)
    many = []
    for i, (epochs, sparsity) in enumerate([*((2, 0.05 * k) for k in range(1, 11)), (3, 0.5)]):
        recipe = {"prune": {"method": "oneshot", "sparsity": sparsity}, "eval": {"epochs": epochs}, "seeds": [0]}
        many.append(fake_run(tmp_path / f"m{i}", recipe, {0: {"dense_acc": 0.95, "final_acc": 0.9 - sparsity / 10, "sparsity": sparsity}},
                             {0: {"a.weight": sparsity}}))  # fmt: skip
    write_report(many, tmp_path / "report-many")
    assert len(set(colours["accuracy_vs_sparsity.png"].values())) == 2
    # the twelve runs of a sweep, six by six on two masks: two bars in the first two colours, not the 7th run's
    policies = []
    for i, sparsity in enumerate([0.5] * 6 + [0.9] * 6):
        recipe = {"prune": {"method": "oneshot", "sparsity": sparsity}, "eval": {"epochs": i % 6 + 1}, "seeds": [0]}
        policies.append(fake_run(tmp_path / f"p{i}", recipe, {0: {"dense_acc": 0.95, "final_acc": 0.8, "sparsity": sparsity}},
                                 {0: {"a.weight": sparsity}}))  # fmt: skip
    write_report(policies, tmp_path / "report-policies")
    assert list(colours["layer_sparsity.png"].values()) == [to_hex("C0"), to_hex("C1")]


def test_compare_names_runs_in_its_setup_as_its_columns_tell_them_apart(tmp_path: Path, capsys) -> None:
    """One setting apart: by its value; several, too long to read: by numbers in a column of their own."""

    def runs(folder: Path, extra: dict) -> list[Path]:
        made = []
        for policy, eval_lrs in (("ft", [0.1, 0.01]), ("lrw", [0.1, 0.01]), ("allr", [0.05, 0.0])):
            recipe = {"prune": {"method": "oneshot", "sparsity": 0.5}, "eval": {"epochs": 2, "lr_policy": policy, **extra.get(policy, {})},
                      "seeds": [0]}  # fmt: skip
            made.append(fake_run(folder / policy, recipe, {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.5}}, {0: {"a.weight": 0.5}}))
            (made[-1] / "seed-0" / "lr_log.json").write_text(json.dumps({"find": [0.1, 0.05, 0.01], "eval": eval_lrs}))
        return made

    assert cli.main(["compare", *map(str, runs(tmp_path / "one", {}))]) == 0
    out = capsys.readouterr().out
    assert "the retraining LR schedules differ from step 1 on (allr: 0.05 / ft = lrw: 0.1; seed 0)" in out
    assert out.endswith("Pairs of them that meet a stricter setup:\n\n- S4.2: ft vs lrw\n")
    # two more settings apart, the names too long to read: numbered, in the table's order
    apart = {policy: {"optimizer": {"weight_decay": decay}, "label_smoothing": smoothing}
             for policy, decay, smoothing in (("ft", 1e-4, 0.1), ("lrw", 2e-4, 0.2), ("allr", 3e-4, 0.3))}  # fmt: skip
    assert cli.main(["compare", *map(str, runs(tmp_path / "many", apart))]) == 0
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [[row[0], row[-1]] for row in rows] == [["#", "run"], ["1", "ft"], ["2", "lrw"], ["3", "allr"]]  # by the first setting apart, the weight decay


def test_compare_turns_a_table_wider_than_the_terminal_a_column_per_run(tmp_path: Path, capsys, monkeypatch) -> None:
    """Runs of other methods differ in a dozen settings: on a terminal too narrow for a row per
    run, a row per value and setting, the runs numbered and named below; into a file, as it is."""
    summary = {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.5}}
    prunes = {"once": {"method": "oneshot", "sparsity": 0.5}, "gradual": {"method": "gmp", "sparsity": 0.5},
              "iterative": {"method": "imp", "sparsity": 0.5, "rate": 0.2}}  # fmt: skip
    folders = [fake_run(tmp_path / name, {"prune": prune, "seeds": [0]}, summary, {0: {"a.weight": 0.5}}) for name, prune in prunes.items()]
    assert cli.main(["compare", *map(str, folders)]) == 0
    as_is = capsys.readouterr().out
    monkeypatch.setattr(commands, "_terminal_width", lambda: 100)
    assert cli.main(["compare", *map(str, folders)]) == 0
    turned = capsys.readouterr().out
    wide = max(len(line) for line in as_is.splitlines() if line.startswith("|"))
    assert wide > 100 > max(len(line) for line in turned.splitlines() if line.startswith("|"))
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in turned.splitlines() if line.startswith("| "))}
    order = [run.folder.name for run in load_runs(folders)]
    assert rows[""] == ["#1", "#2", "#3"] and rows["prune.method"] == [{"once": "oneshot", "gradual": "gmp", "iterative": "imp"}[n] for n in order]
    assert rows["prune.rate"] == ["0.2" if name == "iterative" else "–" for name in order]
    assert [f"#{i}: {name}" for i, name in enumerate(order, 1)] == [line for line in turned.splitlines() if line.startswith("#")]
    assert "run" not in rows  # the folders' names are below, not a row
    assert "The same in every run: dense_acc 90.00%, final_acc 80.00%, sparsity 50.00%." in turned
    # one run: a row, as it is, however narrow the terminal
    monkeypatch.setattr(commands, "_terminal_width", lambda: 20)
    assert cli.main(["compare", str(folders[0])]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("| dense_acc |")


def test_runs_of_the_same_layerwise_ratios_are_one_bar_named_by_what_they_share(tmp_path: Path) -> None:
    """A sweep over retraining policies prunes the same masks at each sparsity: a bar per
    sparsity, not per run."""
    from prunelab.config.sweep import TableSpec

    results = []
    for sparsity in (0.5, 0.9):
        for policy in ("ft", "lrw", "llr"):
            recipe = {"prune": {"method": "oneshot", "sparsity": sparsity}, "eval": {"lr_policy": policy}, "seeds": [0]}
            folder = fake_run(tmp_path / f"{policy}{sparsity}", recipe, {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": sparsity}},
                              {0: {"a.weight": sparsity / 2, "b.weight": sparsity}})  # fmt: skip
            results.append(({"prune.sparsity": sparsity, "eval.lr_policy": policy}, folder))
    spec = TableSpec(rows="eval.lr_policy", columns=["prune.sparsity"])
    page = write_report([f for _, f in results], tmp_path / "report", sweep=(results, spec)).read_text()
    lpr = page.split("## Layerwise pruning ratios of the final masks")[1]
    assert "| layer    | weights | sparsity=0.5 | sparsity=0.9 |" in lpr and "| b.weight |     100 |       50.00% |       90.00% |" in lpr


def test_runs_all_of_the_same_layerwise_ratios_are_one_bar_of_every_run(tmp_path: Path) -> None:
    """Two criteria crossed with two policies, each layer's share of channels alike: the four
    runs' names, joined, made a column header and a legend entry wider than the page."""
    from prunelab.config.sweep import TableSpec

    results = []
    for criterion in ("magnitude", "random"):
        for policy in ("ft", "llr"):
            recipe = {"prune": {"method": "oneshot", "sparsity": 0.5, "criterion": criterion}, "eval": {"lr_policy": policy}, "seeds": [0]}
            folder = fake_run(tmp_path / f"{criterion}-{policy}", recipe, {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.5}},
                              {0: {"a.weight": 0.25, "b.weight": 0.5}})  # fmt: skip
            results.append(({"prune.criterion": criterion, "eval.lr_policy": policy}, folder))
    spec = TableSpec(rows="prune.criterion", columns=["eval.lr_policy"])
    page = write_report([f for _, f in results], tmp_path / "report", sweep=(results, spec)).read_text()
    lpr = page.split("## Layerwise pruning ratios of the final masks")[1]
    assert "| layer    | weights | every run |" in lpr and "| b.weight |     100 |    50.00% |" in lpr


def test_runs_whose_layerwise_ratios_differ_by_a_little_are_bars_of_their_own(tmp_path: Path) -> None:
    """Pruning to one sparsity after a shorter or longer dense training leaves layers a few points apart: the ratios the plot compares."""
    folders = []
    for epochs, ratio in ((3, 0.21), (5, 0.23)):
        recipe = {"find": {"epochs": epochs}, "prune": {"method": "oneshot", "sparsity": 0.5}, "seeds": [0]}
        folders.append(fake_run(tmp_path / f"e{epochs}", recipe, {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.5}},
                                {0: {"a.weight": ratio, "b.weight": 0.5}}))  # fmt: skip
    lpr = write_report(folders, tmp_path / "report").read_text().split("## Layerwise pruning ratios of the final masks")[1]
    assert "| layer    | weights | find.epochs=3 | find.epochs=5 |" in lpr and "| a.weight |     100 |        21.00% |        23.00% |" in lpr


def test_a_layer_of_another_size_in_another_run_has_no_size_in_the_lpr_table(tmp_path: Path) -> None:
    folders = [oneshot_run(tmp_path / "runs" / f"s{s}", s, 0.8) for s in (0.5, 0.9)]
    wider = folders[1] / "seed-0" / "layer_sparsity.json"
    wider.write_text(json.dumps({"b.weight": {"numel": 400, "remaining": 40, "sparsity": 0.9}}))
    lpr = write_report(folders, tmp_path / "report").read_text().split("## Layerwise pruning ratios of the final masks")[1]
    assert "| b.weight |         |       50.00% |       90.00% |" in lpr.splitlines()
    assert "| a.weight |     100 |       25.00% |              |" in lpr.splitlines()  # a layer the other model lacks


def test_compare_names_runs_as_the_table_it_prints_does_when_turning_it_would_not_help(tmp_path: Path, capsys, monkeypatch) -> None:
    """Six runs on a terminal too narrow for either layout: the table as it is, and the setup
    names the runs by their settings, not by numbers that appear nowhere."""
    folders = []
    for sparsity in (0.5, 0.9):
        for policy in ("ft", "lrw", "llr"):
            recipe = {"prune": {"method": "oneshot", "sparsity": sparsity}, "eval": {"lr_policy": policy}, "seeds": [0]}
            folders.append(fake_run(tmp_path / f"{policy}{sparsity}", recipe, {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": sparsity}},
                                    {0: {"a.weight": sparsity}}))  # fmt: skip
    monkeypatch.setattr(commands, "_terminal_width", lambda: 50)
    assert cli.main(["compare", *map(str, folders)]) == 0
    out = capsys.readouterr().out
    assert "| sparsity | prune.sparsity | eval.lr_policy | run " in out and "#1" not in out
    assert "sparsity=0.5, lr_policy=ft" in out


def test_lines_of_accuracy_against_sparsity_are_named_by_the_one_setting_left_as_runs_are(tmp_path: Path) -> None:
    """Runs apart in sparsity and LR policy: a line per policy, named as a policy names a run (``ft``)."""
    folders = []
    for sparsity in (0.5, 0.9):
        for policy in ("ft", "lrw"):
            recipe = {"prune": {"method": "oneshot", "sparsity": sparsity}, "eval": {"lr_policy": policy}, "seeds": [0]}
            folders.append(fake_run(tmp_path / f"{policy}{sparsity}", recipe, {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": sparsity}},
                                    {0: {"a.weight": sparsity}}))  # fmt: skip
    page = write_report(folders, tmp_path / "report").read_text()
    rows = [line.split("|")[1].strip() for line in page.split("## Accuracy against sparsity")[1].split("\n## ")[0].splitlines() if line.startswith("| ")]
    assert rows == ["runs", "ft", "ft", "lrw", "lrw"]


def test_a_sweep_s_plot_puts_numbers_in_order_and_names_a_line_of_rows_alike(tmp_path: Path, monkeypatch) -> None:
    """A grid of budgets [4, 1, 2] is drawn 1, 2, 4, not as a zigzag; rows equal everywhere are
    one line that the legend still names."""
    from prunelab.config.sweep import TableSpec
    from prunelab.report import plots
    from prunelab.report.runs import plot_sweep

    results = []
    for policy in ("ft", "lrw"):
        for epochs in (4, 1, 2):
            recipe = {"prune": {"method": "oneshot", "sparsity": 0.5}, "eval": {"lr_policy": policy, "epochs": epochs}, "seeds": [0]}
            folder = fake_run(tmp_path / f"{policy}{epochs}", recipe, {0: {"dense_acc": 0.9, "final_acc": 0.7 + epochs / 100, "sparsity": 0.5}},
                              {0: {"a.weight": 0.5}})  # fmt: skip
            results.append(({"eval.lr_policy": policy, "eval.epochs": epochs}, folder))
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plot_sweep(results, TableSpec(rows="eval.lr_policy", columns=["eval.epochs"]), tmp_path / "sweep.png")
    (ax,) = figures[0].axes
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["1", "2", "4"]
    (line,) = [line for line in ax.lines if line.get_marker() == "o"]
    assert list(line.get_ydata()) == pytest.approx([71.0, 72.0, 74.0])
    assert [text.get_text() for text in figures[0].legends[0].get_texts()] == ["ft = lrw"]
    assert [text.get_text() for text in ax.texts] == ["dense: 90.00%"]
    # runs of other dense models share no dense line
    summary = results[0][1] / "summary.json"
    run = json.loads(summary.read_text())
    run["stats"]["dense_acc"]["mean"] = 0.8
    summary.write_text(json.dumps(run))
    plot_sweep(results, TableSpec(rows="eval.lr_policy", columns=["eval.epochs"]), tmp_path / "sweep.png")
    assert not figures[1].axes[0].texts and "--" not in [line.get_linestyle() for line in figures[1].axes[0].lines]


def test_a_sweep_s_table_and_plot_say_what_seeds_their_spread_is_over_in_percent(tmp_path: Path, monkeypatch) -> None:
    """ft over seeds 0 and 1 (80% ± 2), lrw over seed 0 alone (70% ± 1, as its summary gives it)."""
    from prunelab.config.sweep import TableSpec
    from prunelab.report.runs import plot_sweep, sweep_table

    results = []
    for policy, seeds, mean, std in (("ft", [0, 1], 0.8, 0.02), ("lrw", [0], 0.7, 0.01)):
        recipe = {"prune": {"method": "oneshot", "sparsity": 0.5}, "eval": {"lr_policy": policy}, "seeds": seeds}
        folder = fake_run(tmp_path / policy, recipe, {seed: {"dense_acc": 0.9, "final_acc": mean, "sparsity": 0.5} for seed in seeds},
                          {seed: {"a.weight": 0.5} for seed in seeds})  # fmt: skip
        summary = json.loads((folder / "summary.json").read_text())
        summary["stats"]["final_acc"]["std"] = std
        (folder / "summary.json").write_text(json.dumps(summary))
        results.append(({"eval.lr_policy": policy}, folder))
    spec = TableSpec(rows="eval.lr_policy")
    drawn = []
    monkeypatch.setattr("prunelab.report.runs.plot_pivot", lambda *args, **kwargs: drawn.append((*args, kwargs)))
    plot_sweep(results, spec, tmp_path / "sweep.png")
    ((_, panels, _, ylabel, _, options),) = drawn
    assert panels == {"": {"final_acc": [pytest.approx((80.0, 2.0)), pytest.approx((70.0, 1.0))]}} and ylabel == "final_acc (%)"
    assert options["title"] == "final_acc by lr_policy: mean ± std over the seeds of each run"
    assert sweep_table(results, spec).startswith("final_acc, in % (mean ± std over each run's seeds (see its summary.json)):")
    assert sweep_table(results[:1], spec).startswith("final_acc, in % (mean ± std over seeds [0, 1]):")
    assert sweep_table(results[1:], spec).startswith("final_acc, in % (of seed 0):")


def test_a_report_cut_short_by_a_full_disk_leaves_the_earlier_page_whole(tmp_path: Path, monkeypatch) -> None:
    """The plots of an earlier page are removed once the new page is written, not before: a
    report made again onto a full disk fails naming the file, and the page already there
    still finds every image it links."""
    import errno

    from prunelab.runs import io

    folders = [oneshot_run(tmp_path / "runs" / f"s{s}", s, 0.8) for s in (0.5, 0.9)]
    for i, folder in enumerate(folders):
        (folder / "seed-0" / "training.png").write_bytes(PNG + bytes([i]))
    page = write_report(folders, tmp_path / "report")
    before = page.read_text()
    links = re.findall(r"\]\(([^)]+)\)", before)
    assert "training/s0.9-seed-0.png" in links and "accuracy_vs_sparsity.png" in links

    real = io.atomic_write

    def full_at_the_page(path):
        if Path(path).name == "report.md":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path)

    monkeypatch.setattr(io, "atomic_write", full_at_the_page)
    with pytest.raises(OSError, match=rf"^cannot write {re.escape(str(page))}: No space left on device$"):
        write_report([folders[0]], tmp_path / "report")
    assert page.read_text() == before
    assert [link for link in links if not (tmp_path / "report" / link).is_file()] == []
    monkeypatch.undo()
    write_report([folders[0]], tmp_path / "report")  # the disk freed: the plots of the runs left out go
    assert sorted(p.name for p in (tmp_path / "report" / "training").iterdir()) == ["s0.5-seed-0.png"]
    assert not (tmp_path / "report" / "accuracy_vs_sparsity.png").exists()  # one run: one sparsity, no such plot


@pytest.mark.parametrize("settings", [2, 3])
def test_runs_differing_in_more_settings_than_there_are_runs_get_their_settings_turned(tmp_path: Path, settings: int) -> None:
    """Two runs of two differing settings keep a row per run; of three, a row per setting reads better."""
    folders = []
    for i in range(2):
        find = {"optimizer": {"lr": 0.1 * (i + 1)}, "epochs": 10 + i, **({"batch_size": 100 + i} if settings == 3 else {})}
        folders.append(fake_run(tmp_path / f"r{i}", {"prune": {"method": "oneshot", "sparsity": 0.5}, "find": find, "seeds": [0]},
                                {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.5}}, {0: {"a.weight": 0.5}}))  # fmt: skip
    page = write_report(folders, tmp_path / "report").read_text()
    table = page.split("### Settings that differ")[1].split("\n\n")[1].splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    if settings == 2:
        assert header == ["run", "find.epochs", "find.optimizer.lr", "folder"] and len(table) == 2 + 2
    else:
        assert header == ["", "find.epochs=10, find.batch_size=100, find.optimizer.lr=0.1", "find.epochs=11, find.batch_size=101, find.optimizer.lr=0.2"] and len(table) == 2 + 3


def test_runs_of_the_same_layerwise_ratios_named_briefly_together_are_one_bar_of_their_names(tmp_path: Path) -> None:
    """"every run" stands for names joined past a legend's width: two short names read better joined."""
    folders = [fake_run(tmp_path / policy, {"prune": {"method": "oneshot", "sparsity": 0.5}, "eval": {"lr_policy": policy}, "seeds": [0]},
                        {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.5}}, {0: {"a.weight": 0.25}})
               for policy in ("ft", "llr")]  # fmt: skip
    page = write_report(folders, tmp_path / "report").read_text()
    lpr = page.split("## Layerwise pruning ratios of the final masks")[1]
    assert "| layer    | weights | ft = llr |" in lpr


def test_the_lpr_distance_of_a_run_is_in_its_colour_in_every_plot(tmp_path: Path, monkeypatch) -> None:
    """Of three runs, the second without LPR during its find phase: the third's line and error bars in the third colour, not the second."""
    from matplotlib.colors import to_hex

    from prunelab.report import plots

    folders = [imp_run(tmp_path / f"imp{rate}", rate) for rate in (0.2, 0.3, 0.4)]
    for folder in (folders[0], folders[2]):
        for seed in (0, 1):
            record_lpr_during_find(folder, seed, 0.1 * (seed + 1))
    colours = {}
    save = plots._save

    def keep(fig, path):
        if path.name == "lpr_distance.png":
            ax = fig.axes[0]
            colours[path.name] = ([to_hex(line.get_color()) for line in ax.lines if line.get_marker() == "."],
                                  [to_hex(bars.lines[2][0].get_color()[0]) for bars in ax.containers])  # fmt: skip
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    write_report(folders, tmp_path / "report")
    assert colours["lpr_distance.png"] == ([to_hex("C0"), to_hex("C2")], [to_hex("C0"), to_hex("C2")])


def test_some_runs_of_the_same_layerwise_ratios_are_never_every_run(tmp_path: Path) -> None:
    """Two runs of three on one mask, their names joined past a legend's width: still their names, as a third run has a bar of its own."""
    folders = []
    for i, (lr, ratio) in enumerate(((0.1, 0.25), (0.2, 0.25), (0.3, 0.5))):
        find = {"optimizer": {"lr": lr}, "epochs": 10 + i, "batch_size": 100 + i}
        folders.append(fake_run(tmp_path / f"r{i}", {"prune": {"method": "oneshot", "sparsity": 0.5}, "find": find, "seeds": [0]},
                                {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.5}}, {0: {"a.weight": ratio}}))  # fmt: skip
    page = write_report(folders, tmp_path / "report").read_text()
    header = page.split("## Layerwise pruning ratios of the final masks")[1].split("\n\n")[2].splitlines()[0]
    assert [cell.strip() for cell in header.strip("|").split("|")] == [
        "layer", "weights", "find.epochs=10, find.batch_size=100, find.optimizer.lr=0.1 = find.epochs=11, find.batch_size=101, find.optimizer.lr=0.2",
        "find.epochs=12, find.batch_size=102, find.optimizer.lr=0.3"]  # fmt: skip


@pytest.mark.parametrize(("milestones", "named"), [([*range(10, 23)], "by what they share"), ([*range(10, 22), 100], "by their numbers")])
def test_a_line_s_shared_settings_name_it_up_to_80_characters(tmp_path: Path, milestones: list[int], named: str) -> None:
    """Two runs of one mask at two sparsities, sharing their milestones, are one line of the
    accuracy plot and one bar of the LPR plot: named by those settings in 80 characters
    (``find.lr_schedule.milestones=[10, ..., 22]``), by the runs' numbers in 81."""
    shared = f"find.lr_schedule.milestones={milestones}"
    assert len(shared) == (80 if named == "by what they share" else 81)
    folders = []
    for i, (marks, sparsity, ratio) in enumerate(((milestones, 0.5, 0.25), (milestones, 0.8, 0.25), ([5], 0.5, 0.5))):
        find = {"epochs": 200, "lr_schedule": {"name": "multistep", "milestones": marks}}
        folders.append(fake_run(tmp_path / f"r{i}", {"prune": {"method": "oneshot", "sparsity": sparsity}, "find": find, "seeds": [0]},
                                {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": sparsity}}, {0: {"a.weight": ratio}}))  # fmt: skip
    page = write_report(folders, tmp_path / "report").read_text()
    name = shared if named == "by what they share" else "#2-#3"  # #1 is the run of milestones [5], first in order
    accuracy = page.split("## Accuracy against sparsity")[1].split("## ")[0]
    assert [line.split("|")[1].strip() for line in accuracy.splitlines() if "%" in line] == ["find.lr_schedule.milestones=[5]", name, name]
    lpr = page.split("## Layerwise pruning ratios of the final masks")[1].split("## ")[0]
    assert [cell.strip() for cell in lpr.split("\n\n")[2].splitlines()[0].strip("|").split("|")] == ["layer", "weights", "#1", name]


@pytest.mark.parametrize(("second", "bar"), [([10, 100], "find.lr_schedule.milestones=[10, 11, 12] = find.lr_schedule.milestones=[10, 100]"),
                                             ([100, 101], "every run")])  # fmt: skip
def test_every_run_of_one_mask_is_named_by_their_names_joined_up_to_80_characters(tmp_path: Path, second: list[int], bar: str) -> None:
    folders = []
    for i, milestones in enumerate(([10, 11, 12], second)):
        find = {"epochs": 200, "lr_schedule": {"name": "multistep", "milestones": milestones}}
        folders.append(fake_run(tmp_path / f"r{i}", {"prune": {"method": "oneshot", "sparsity": 0.5}, "find": find, "seeds": [0]},
                                {0: {"dense_acc": 0.9, "final_acc": 0.8, "sparsity": 0.5}}, {0: {"a.weight": 0.25}}))  # fmt: skip
    page = write_report(folders, tmp_path / "report").read_text()
    lpr = page.split("## Layerwise pruning ratios of the final masks")[1].split("## ")[0]
    assert [cell.strip() for cell in lpr.split("\n\n")[2].splitlines()[0].strip("|").split("|")] == ["layer", "weights", bar]
