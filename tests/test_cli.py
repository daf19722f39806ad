"""The ``prunelab`` command line: run (end to end, errors), recipes, show, compare."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

import prunelab
from prunelab import cli, commands
from prunelab.config import builtin_recipes
from prunelab.distributed import world
from prunelab.models import MODELS, build_model
from prunelab.report import format_stat, format_table
from prunelab.train import Trainer

# The default recipe on a tiny budget: a narrow CNN in batches of 500, the same code paths.
BUDGET = ["find.epochs=2", "eval.epochs=2", "device=cpu", "model.options.channels=8", "find.batch_size=500", "eval.batch_size=500"]


def sparsity_shown(target: float) -> str:
    """The sparsity a run of BUDGET's CNN reports for ``target``: exactly round(target * n)
    of its n Conv/Linear weights pruned, as a percentage with two decimals."""
    model = build_model("mnist1d_cnn", num_classes=10, input_shape=(1, 40), channels=8)
    n = sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Linear)))
    return f"{100 * round(target * n) / n:.2f}%"


def sets(data_dir: Path, *extra: str) -> list[str]:
    args = []
    for item in [*BUDGET, f"data.data_dir={data_dir}", *extra]:
        args += ["--set", item]
    return args


def table(text: str) -> dict[str, list[str]]:
    """The rows of the Markdown tables in ``text``, by their first cell."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|--"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def number(cell: str) -> float:
    """The mean in a summary cell: ``93.90%`` -> 0.939, ``3,012`` -> 3012, ``16.5 s`` -> 16.5."""
    mean = cell.split(" ± ")[0].removesuffix(" s").replace(",", "")
    return float(mean[:-1]) / 100 if mean.endswith("%") else float(mean)


def prunelab_command() -> list[str]:
    script = Path(sys.executable).with_name("prunelab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "prunelab"]


@pytest.fixture(scope="module")
def cli_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess, Path]:
    """The default recipe, end to end on a reduced budget, through the installed command: the
    output folder, the process, and the run's folder (other tests add runs beside it)."""
    out = tmp_path_factory.mktemp("cli-runs")
    done = subprocess.run(
        [*prunelab_command(), "run", "--no-progress", "--out", str(out), *sets(data_dir)],
        check=False, capture_output=True, text=True, timeout=600,
    )
    return out, done, run_folder(out) if done.returncode == 0 else out / "(the run failed)"


def run_folder(out: Path, prefix: str = "oneshot-") -> Path:
    """The one run folder in ``out`` whose name starts with ``prefix``."""
    (folder,) = (p for p in out.iterdir() if p.name.startswith(prefix))
    return folder


def test_run_end_to_end(cli_run) -> None:
    _, done, folder = cli_run
    assert done.returncode == 0, done.stderr
    assert re.search(rf"prunelab: running {re.escape(folder.name)} \(oneshot, seeds \[0\]\)", done.stderr)
    assert "Traceback" not in done.stderr
    rows = table(done.stdout)
    for metric in ("dense_acc", "pruned_acc", "final_acc", "sparsity", "remaining_parameters", "wall_seconds"):
        assert metric in rows, metric
    summary = json.loads((folder / "seed-0" / "summary.json").read_text())
    assert rows["sparsity"][0] == sparsity_shown(0.9) and "prunable weights" in rows["sparsity"][1]
    for metric in ("dense_acc", "pruned_acc", "final_acc"):
        assert number(rows[metric][0]) == pytest.approx(summary[metric], abs=1e-4)
        assert 0 <= number(rows[metric][0]) <= 1
    assert rows["wall_seconds"][0] == f"{summary['wall_seconds']:.1f} s"
    assert number(rows["remaining_parameters"][0]) == summary["remaining_parameters"] < summary["parameters"]
    assert done.stdout.rstrip().endswith(f"results in {folder}")


def test_run_again_prints_the_results_without_training(cli_run, data_dir: Path, capsys, monkeypatch) -> None:
    out, done, _ = cli_run
    monkeypatch.setattr(Trainer, "train_epoch", lambda self, epoch, **_: pytest.fail("a finished run was trained again"))
    assert cli.main(["run", "--no-progress", "--out", str(out), *sets(data_dir)]) == 0
    again = capsys.readouterr()
    assert table(again.out) == table(done.stdout)
    assert again.err.startswith("prunelab: finished before, nothing to train: oneshot-")
    assert "prunelab: running oneshot-" in done.stderr


def test_dry_run_prints_the_resolved_recipe_and_what_would_train(cli_run, data_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from prunelab.config import load_recipe, run_name

    out, _, folder = cli_run
    monkeypatch.setattr(Trainer, "train_epoch", lambda self, epoch, **_: pytest.fail("a dry run trained"))
    overrides = [*BUDGET, f"data.data_dir={data_dir}", "prune.sparsity=0.8"]
    monkeypatch.chdir(tmp_path)  # without --out: a folder named runs
    assert cli.main(["run", "--dry-run", *sets(data_dir, "prune.sparsity=0.8")]) == 0
    printed = capsys.readouterr()
    (tmp_path / "printed.yaml").write_text(printed.out)
    assert load_recipe(tmp_path / "printed.yaml") == load_recipe(None, overrides)
    assert printed.err == f"prunelab: --dry-run, nothing trained; to do in {Path('runs', run_name(load_recipe(None, overrides)))}: train seed 0\n"
    assert not (tmp_path / "runs").exists()
    # beside a finished run: seeds finished, interrupted (a checkpoint kept, no summary) and new
    copy = tmp_path / "runs"
    shutil.copytree(out, copy)
    assert cli.main(["run", "--dry-run", "--out", str(copy), *sets(data_dir)]) == 0
    assert capsys.readouterr().err.endswith(f"to do in {copy / folder.name}: nothing, every seed finished before\n")
    shutil.copytree(copy / folder.name / "seed-0", copy / folder.name / "seed-1")
    (copy / folder.name / "seed-1" / "summary.json").unlink()
    assert cli.main(["run", "--dry-run", "--out", str(copy), *sets(data_dir, "seeds=[0, 1, 2, 3]")]) == 0
    assert capsys.readouterr().err.endswith(f"to do in {copy / folder.name}: resume seed 1; train seeds 2, 3\n")
    from prunelab.runs.lock import exclusive

    with exclusive(copy / folder.name / "seed-3", "seed 3"):  # another command running seed 3
        assert cli.main(["run", "--dry-run", "--out", str(copy), *sets(data_dir, "seeds=[0, 1, 2, 3]")]) == 0
    assert capsys.readouterr().err.endswith(f"to do in {copy / folder.name}: resume seed 1; wait for another command running seed 3; train seed 2\n")
    # --out must be a folder, as for the run
    assert cli.main(["run", "--dry-run", "--out", str(copy / folder.name / "recipe.yaml"), *sets(data_dir)]) == 2
    assert capsys.readouterr().err == f"prunelab: error: --out {copy / folder.name / 'recipe.yaml'} is a file, not a folder\n"
    # the checks that need the data and the model are made: a bad recipe is the run's error
    assert cli.main(["run", "--dry-run", "--out", str(copy), *sets(data_dir, "prune.scope=ratios", "prune.ratios.x=0.5")]) == 2
    assert "prunelab: error: prune.ratios: ratio given for 'x', which names none of the prunable parameters" in capsys.readouterr().err


def test_dry_run_of_a_sweep_is_a_table_of_its_runs(data_dir: Path, tmp_path: Path, capsys) -> None:
    from prunelab.config import load_recipe, run_name
    from prunelab.config.load import recipe_text

    recipe = tmp_path / "sweep.yaml"
    sweep = {"sweep": {"grid": {"prune.sparsity": [0.5, 0.8], "eval.lr_policy": ["ft", "llr"]}}}
    recipe.write_text(recipe_text("default")[0] + yaml.safe_dump(sweep, sort_keys=False))  # the default recipe, swept
    assert cli.main(["run", str(recipe), "--dry-run", "--out", str(tmp_path / "out"), *sets(data_dir, "find.lr_schedule.gamma=0.5")]) == 0
    out, err = capsys.readouterr()
    # each warning once, as the run says it, not once per run of the sweep
    assert err.count("prunelab: warning: find.lr_schedule.gamma=0.5 is not used: ") == 1 and "[prune.sparsity" not in err
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| ")]
    expected = [
        [sparsity, policy, run_name(load_recipe(None, [*BUDGET, f"data.data_dir={data_dir}", f"prune.sparsity={sparsity}", f"eval.lr_policy={policy}"])), "train seed 0"]
        for sparsity in ("0.5", "0.8") for policy in ("ft", "llr")
    ]  # fmt: skip
    assert rows == [["prune.sparsity", "eval.lr_policy", "run", "to do"], *expected]
    assert out.endswith(f"\n4 runs in {tmp_path / 'out'}; --dry-run, nothing trained\n")
    assert not (tmp_path / "out").exists()


def test_a_sweep_of_one_run_says_1_run(data_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    args = ["run", "--no-progress", "--out", str(out), *sets(data_dir, "sweep.grid={prune.sparsity: [0.5]}", "find.epochs=1", "eval.epochs=0")]
    assert cli.main([*args, "--dry-run"]) == 0
    assert capsys.readouterr().out.endswith(f"\n1 run in {out}; --dry-run, nothing trained\n")
    assert cli.main(args) == 0
    # Without a table in the recipe: a row per run, its grid values and its folder; a report without a plot of the table.
    (run,) = (folder for folder in out.iterdir() if (folder / "recipe.yaml").is_file())
    (table_file,) = out.glob("default-*-table.md")  # another sweep than the recipe's own: a table of its own
    table = format_table([{"prune.sparsity": 0.5, "run": run.name}])
    assert capsys.readouterr().out == (f"{table}\n\n1 run in {out}; table in {table_file}\n"
                                       f"report: {out / table_file.name.replace('-table.md', '-report') / 'report.md'}\n")  # fmt: skip
    command = shlex.join(["prunelab", *(arg for arg in args if arg not in ("--no-progress", "--out", str(out)))])
    assert table_file.read_text() == f"Made by `{command}`.\n\n{table}\n"


def test_a_dry_run_of_a_finished_run_gives_only_the_advice_running_it_again_would(data_dir: Path, tmp_path: Path, capsys) -> None:
    """Advice on training (GMP's few sparsity updates, seeds of these settings interrupted over
    other numbers of processes) is for seeds left to train; settings that are not used are said
    whatever there is to do, as the run says them."""
    out = tmp_path / "out"
    gmp = sets(data_dir, "find.epochs=1", "eval.batch_size=500", "prune.stabilization_epochs=1", "prune.pruning_epochs=1", "eval.epochs=3")
    assert cli.main(["run", "gmp", "--no-progress", "--out", str(out), *gmp]) == 0
    folder = run_folder(out, "gmp-")
    other = out / f"{folder.name}-2proc" / "seed-0"  # a seed interrupted over 2 processes
    other.mkdir(parents=True)
    (other / "checkpoint.safetensors").touch()
    capsys.readouterr()
    few_updates, elsewhere = "prunelab: warning: the pruning stage has only 4 sparsity updates", f"{other.parent} holds seeds"
    assert cli.main(["run", "gmp", "--dry-run", "--out", str(out), *gmp, "--set", "seeds=[0, 1]"]) == 0
    err = capsys.readouterr().err
    assert few_updates in err and elsewhere in err and err.endswith("to do in " f"{folder}: train seed 1\n")
    assert cli.main(["run", "gmp", "--dry-run", "--out", str(out), *gmp]) == 0
    err = capsys.readouterr().err
    assert few_updates not in err and elsewhere not in err and err.endswith("nothing, every seed finished before\n")
    assert "prunelab: warning: eval.lr_schedule.milestones [19, 23] lie at or past the end of the phase" in err


def test_recipes_lists_the_builtin_recipes(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # however wide the terminal, lines of at most 100 characters
    assert cli.main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 100 for line in out.splitlines())
    listed = re.findall(r"^(\S+)\n((?:    .*\n)+)", out, flags=re.MULTILINE)
    assert {name: " ".join(text.split()) for name, text in listed} == {
        name: " ".join(description.split()) for name, description in builtin_recipes().items()
    }


def test_recipes_prints_a_builtin_recipe_as_it_is_written(capsys) -> None:
    from importlib import resources

    assert cli.main(["recipes", "gmp"]) == 0
    assert capsys.readouterr().out == (resources.files("prunelab.recipes") / "gmp.yaml").read_text()
    assert cli.main(["recipes", "gmpp"]) == 2
    assert "prunelab: error: no built-in recipe 'gmpp' (did you mean 'gmp'?); built-in recipes: bimp, " in capsys.readouterr().err


@pytest.mark.parametrize(
    ("call", "frozen"),
    [("sys.argv = ['prunelab', 'recipes']; c.main()", "True"), ("c.main(['recipes'])", "False")],
    ids=["the program", "a Python caller"],
)
def test_a_command_leaves_the_garbage_collector_on_and_freezes_only_the_program_s_objects(call: str, frozen: str) -> None:
    # A process of its own: this one has imported the commands already.
    code = f"import gc, sys, prunelab.cli as c; {call}; print(gc.isenabled(), gc.get_freeze_count() > 0)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == f"True {frozen}"


def test_the_lr_range_test_command_defaults_to_the_function_s_range() -> None:
    import inspect

    from prunelab.analysis import lr_range_test

    defaults = {key: inspect.signature(lr_range_test).parameters[key].default for key in cli.LR_RANGE}
    assert cli.LR_RANGE == defaults == {"start_lr": 1e-9, "end_lr": 1.0, "steps": 200}


def test_version(capsys) -> None:
    from prunelab import __version__

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"prunelab {__version__}\n"


@pytest.mark.parametrize(
    ("args", "said", "suggested"),
    [
        (["rnu"], "prunelab: error: argument command: invalid choice: 'rnu'", "'run'"),
        (["run", "--ouut", "runs"], "prunelab run: error: unrecognized arguments: --ouut", "'--out'"),
        (["run", "--dryrun"], "prunelab run: error: unrecognized arguments: --dryrun", "'--dry-run'"),
        (["lr-range-test", "--start_lr", "1e-6"], "prunelab lr-range-test: error: unrecognized arguments: --start_lr", "'--start-lr'"),
        (["sensitivity", "--split", "tset"], "prunelab sensitivity: error: argument --split: invalid choice: 'tset'", "'test'"),
        (["show", "runs/a", "--sparsities", "0.5"], "prunelab show: error: unrecognized arguments: --sparsities 0.5", None),
        (["run", "--bogus"], "prunelab run: error: unrecognized arguments: --bogus", None),
        (["xyzzy"], "prunelab: error: argument command: invalid choice: 'xyzzy'", None),
    ],
)
def test_a_misspelt_command_or_option_is_told_the_closest_one_by_the_command_s_own_usage(args, said, suggested, capsys) -> None:
    """A misspelling gets the closest command, choice or option of the command it was given to
    (none if none is close, and none from another command: --sparsities is sensitivity's),
    under that command's usage."""
    with pytest.raises(SystemExit) as exited:
        cli.main(args)
    error = capsys.readouterr().err
    assert exited.value.code == 2 and said in error
    assert error.startswith(f"usage: prunelab {args[0]} " if len(args) > 1 else "usage: prunelab [-h]")
    assert error.endswith(f" (did you mean {suggested}?)\n") if suggested else "did you mean" not in error


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--set", "find.epochs=ten"], ["find.epochs", "'ten'"]),
        (["--set", "find.optimizer.lrr=0.1"], ["find.optimizer.lrr", "unknown field"]),
        (["--set", "prune.sparsity=1.0"], ["prune.sparsity", "1.0"]),
        (["--set", "eval.rewind=epochs:3"], ["eval.rewind", "'epochs:3'"]),
        (["--set", "find.epochs.x=3"], ["find.epochs.x", "not a section"]),
        (["--set", "seeds"], ["'seeds'", "key.sub=value"]),
        (["no_such_recipe"], ["'no_such_recipe'", "default"]),
    ],
)
def test_run_with_a_bad_recipe_exits_2_naming_the_field(args, expected, tmp_path: Path, capsys) -> None:
    out = tmp_path / "runs"
    assert cli.main(["run", "--no-progress", "--out", str(out), *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("prunelab: error: ")
    assert "Traceback" not in captured.err and len(captured.err.splitlines()) <= 4
    for text in expected:
        assert text in captured.err, (text, captured.err)
    assert not out.exists()  # nothing was run


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("find:\n  epochs: [1, 2\n", ("is not valid YAML: line 3, column 1: expected ',' or ']', but got '<stream end>' "
                                        "(while parsing a flow sequence)\n")),
        ("find:\n  optimizer: {lrr: 0.1}\n", "find.optimizer.lrr"),
        ("prune: {method: magic}\n", "'magic'"),
        (b"find: {epochs: 2}\n\xe9t\xe9\n", ("is not a recipe: a recipe is YAML text in UTF-8, and byte 18 is not "
                                            "(invalid continuation byte)\n")),
    ],
)
def test_run_with_a_bad_recipe_file(content: str | bytes, expected: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert cli.main(["run", str(path), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prunelab: error: ") and str(path) in err and expected in err
    assert "Traceback" not in err and "<unicode string>" not in err


def test_an_interrupted_run_says_it_resumes_and_which_seed(tmp_path: Path, data_dir: Path, capsys, monkeypatch) -> None:
    from prunelab.runs.session import Session

    checkpoint = Session._checkpoint_phase

    def interrupt(self, trainer):  # Ctrl-C right after the first epoch's checkpoint
        checkpoint(self, trainer)
        raise KeyboardInterrupt

    out = tmp_path / "runs"
    with monkeypatch.context() as patch:
        patch.setattr(Session, "_checkpoint_phase", interrupt)
        assert cli.main(["run", "--no-progress", "--out", str(out), *sets(data_dir)]) == 130
    assert cli.main(["run", "--no-progress", "--out", str(out), *sets(data_dir)]) == 0
    folder = run_folder(out)
    line = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("prunelab: resuming"))
    assert line == f"prunelab: resuming {folder.name} (oneshot, seeds [0]; seed 0 picks up where it stopped)"
    assert (folder / "seed-0" / "summary.json").exists()


def test_seeds_that_resume_are_said_in_the_plural(tmp_path: Path, data_dir: Path, capsys, monkeypatch) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # once the run is said to start: nothing trains

    monkeypatch.setattr("prunelab.runs.runner.interrupted_seeds", lambda out, recipe: [0, 1])
    monkeypatch.setattr("prunelab.runs.runner.run_recipe", interrupted)
    assert cli.main(["run", "--no-progress", "--out", str(tmp_path), *sets(data_dir, "seeds=[0,1,2]")]) == 130
    line = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("prunelab: resuming"))
    assert line.endswith("(oneshot, seeds [0, 1, 2]; seeds 0, 1 pick up where they stopped)")


def test_interrupting_says_how_to_resume(tmp_path: Path, capsys, monkeypatch) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("prunelab.runs.runner.run_recipe", interrupted)
    assert cli.main(["run", "--no-progress", "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err.endswith("prunelab: interrupted; run the same command again to resume\n")
    assert not err.startswith("\n")  # in a log or a pipe, no blank line before it


def test_show_prints_the_summary_and_the_layerwise_table(cli_run, capsys) -> None:
    folder = cli_run[2]
    assert cli.main(["show", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{folder.name} (seeds [0]):")
    rows = table(out)
    stats = json.loads((folder / "summary.json").read_text())["stats"]
    for metric in ("dense_acc", "pruned_acc", "final_acc", "sparsity", "parameters", "remaining_parameters", "wall_seconds"):
        tolerance = 0.05 if metric == "wall_seconds" else 1e-4  # seconds to one decimal
        assert number(rows[metric][0]) == pytest.approx(stats[metric]["mean"], abs=tolerance), metric
    recipe = yaml.safe_load((folder / "recipe.yaml").read_text())
    assert (f"pipeline (seed 004's steps): {recipe['find']['epochs']} epochs of pretraining (the find phase), 0 of pruning, "
            f"{recipe['eval']['epochs']} of retraining") in out  # fmt: skip
    threads = torch.get_num_threads()  # the fixture's run had the caller's
    assert f"\nran on cpu, {threads} thread{'s' if threads > 1 else ''}; torch {torch.__version__}, prunelab {prunelab.__version__} (seed 0)\n" in out
    assert "layerwise pruning ratios (seed-0):" in out
    layers = json.loads((folder / "seed-0" / "layer_sparsity.json").read_text())
    assert rows["layer"] == ["weights", "remaining", "sparsity"]
    for name, counts in layers.items():
        numel, remaining, sparsity = rows[name]
        assert (number(numel), number(remaining)) == (counts["numel"], counts["remaining"])
        assert number(sparsity) == pytest.approx(counts["sparsity"], abs=1e-4)


def test_show_on_a_narrow_terminal_gives_the_meanings_below_the_values(cli_run, capsys, monkeypatch) -> None:
    folder = cli_run[2]
    assert cli.main(["show", str(folder)]) == 0
    wide = capsys.readouterr().out.split("\n\n")[0]
    monkeypatch.setattr(commands, "_terminal_width", lambda: 80)
    assert cli.main(["show", str(folder)]) == 0
    narrow = capsys.readouterr().out.split("\npipeline")[0]
    assert max(map(len, wide.splitlines())) > 80 >= max(map(len, narrow.splitlines()))
    rows = table(narrow)
    assert rows["metric"] == ["value"] and rows["final_acc"] == table(wide)["final_acc"][:1]
    assert "\nfinal_acc: test accuracy at the end of the run\n" in narrow and "\n  " in narrow  # long ones wrapped, indented


def test_show_gives_levels_and_layers_once_as_mean_and_std_over_the_seeds(cli_run, tmp_path: Path, capsys) -> None:
    import shutil
    import statistics

    copy = tmp_path / cli_run[2].name
    shutil.copytree(cli_run[2], copy)
    levels = {0: [(0.2, 0.50), (0.36, 0.60)], 1: [(0.2, 0.54), (0.36, 0.70)], 10: [(0.2, 0.58), (0.36, 0.65)]}
    for seed, points in levels.items():
        folder = copy / f"seed-{seed}"
        if seed:
            shutil.copytree(copy / "seed-0", folder)
        summary = json.loads((folder / "summary.json").read_text())
        summary["environment"] = {"device": "cpu", "threads": 7 if seed == 10 else 1, "processes": 2 if seed == 10 else 1, "torch": "2.3.0", "prunelab": "0.1.0"}
        summary["levels"] = [{"level": k, "sparsity": sp, "pruned_acc": acc - 0.1, "final_acc": acc, "trainability_acc": acc}
                             for k, (sp, acc) in enumerate(points, start=1)]  # fmt: skip
        (folder / "summary.json").write_text(json.dumps(summary))
        layers = json.loads((folder / "layer_sparsity.json").read_text())
        for counts in layers.values():  # seed 10 keeps 10 more weights a layer than seed 1, 20 more than seed 0
            counts["remaining"] += seed
            counts["sparsity"] = 1 - counts["remaining"] / counts["numel"]
        (folder / "layer_sparsity.json").write_text(json.dumps(layers))
    run = json.loads((copy / "summary.json").read_text())
    (copy / "summary.json").write_text(json.dumps({**run, "seeds": list(levels)}))  # as a run of these seeds writes it
    assert cli.main(["show", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "seed-" not in out.replace(copy.name, "")  # one table of each, not one per seed
    assert "\nran on cpu, 1 thread; torch 2.3.0, prunelab 0.1.0 (seeds 0, 1)\n\nran on cpu, 7 threads in each of 2 processes; torch 2.3.0, prunelab 0.1.0 (seed 10)\n" in out
    assert "levels (mean ± std over seeds 0, 1, 10):" in out
    assert "layerwise pruning ratios (mean ± std over seeds 0, 1, 10):" in out
    rows = table(out)
    for level in (1, 2):
        accuracies = [points[level - 1][1] for points in levels.values()]
        sparsity, pruned, final, _ = rows[str(level)]
        assert final == f"{100 * statistics.fmean(accuracies):.2f}% ± {100 * statistics.stdev(accuracies):.2f}"
        assert number(pruned) == pytest.approx(statistics.fmean(accuracies) - 0.1, abs=1e-4)
        assert sparsity == f"{100 * levels[0][level - 1][0]:.2f}%"  # equal over the seeds: no ± 0
    # a level without a number (no retraining, so no TA) reads as empty, not as an error
    for seed in levels:
        path = copy / f"seed-{seed}" / "summary.json"
        summary = json.loads(path.read_text())
        summary["levels"][0]["trainability_acc"] = None
        path.write_text(json.dumps(summary))
    assert cli.main(["show", str(copy)]) == 0
    assert table(capsys.readouterr().out)["1"][3] == ""
    for name, counts in json.loads((cli_run[2] / "seed-0" / "layer_sparsity.json").read_text()).items():
        numel, remaining, sparsity = rows[name]
        kept = [counts["remaining"] + seed for seed in levels]
        assert remaining == f"{statistics.fmean(kept):,.0f} ± {statistics.stdev(kept):,.0f}"
        assert number(sparsity) == pytest.approx(1 - statistics.fmean(kept) / counts["numel"], abs=1e-4)


def test_compare_shows_the_values_asked_for(cli_run, capsys) -> None:
    _, _, folder = cli_run
    assert cli.main(["compare", str(folder), "--values", "speedup, final_acc, sparsity, dense_acc, final_acc"]) == 0
    rows = table(capsys.readouterr().out)
    assert rows["speedup"] == ["final_acc", "sparsity", "dense_acc", "run"]  # in the order given, once each
    assert cli.main(["compare", str(folder), "--values", "final,speedup"]) == 2
    assert "prunelab: error: --values: unknown summary value 'final'; known: dense_acc, " in capsys.readouterr().err


def test_show_of_a_run_with_a_damaged_recipe_says_so_in_one_line_first(cli_run, tmp_path: Path, capsys) -> None:
    import shutil

    _, _, folder = cli_run
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    (copy / "recipe.yaml").write_text("a: [1")
    assert cli.main(["show", str(copy)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing of the run before the error
    assert captured.err == (
        f"prunelab: error: {copy / 'recipe.yaml'} (a damaged run folder? remove that file and run the run's command again: it is written anew) is not valid YAML: "
        "line 1, column 6: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence)\n"
    )


def test_show_takes_several_runs_and_skips_what_is_not_one(cli_run, tmp_path: Path, capsys) -> None:
    _, _, folder = cli_run
    stray = tmp_path / "notes.txt"
    stray.write_text("")
    again = folder / ".." / folder.name  # the same run, however written
    assert cli.main(["show", str(folder), str(stray), str(again)]) == 0
    captured = capsys.readouterr()
    assert captured.out.count(f"{folder.name} (seeds [0]):") == 1  # once, though given twice
    assert captured.out.count("layerwise pruning ratios (seed-0):") == 1
    assert f"prunelab: skipping {stray}" in captured.err and f"prunelab: skipping {again}: given before" in captured.err
    # the folder of runs itself is not a run: the error says to give its runs
    assert cli.main(["compare", str(folder.parent)]) == 2
    assert f"{folder.parent} is a folder of runs, not a run: give its runs, e.g. {folder.parent / '*'}" in capsys.readouterr().err


def test_compare_prints_a_row_per_run(cli_run, data_dir: Path, capsys) -> None:
    out, _, first = cli_run
    # a second run on the same budget, differing in the target sparsity only
    assert cli.main(["run", "--no-progress", "--out", str(out), *sets(data_dir, "prune.sparsity=0.5")]) == 0
    second = next(p for p in out.iterdir() if p.name.startswith("oneshot-") and p != first)
    capsys.readouterr()
    assert cli.main(["compare", str(first), str(second)]) == 0
    text = capsys.readouterr().out
    # the summaries first, then the one setting that differs, then the run; the values the runs
    # share in a line above: the same find phase, the same dense accuracy and model
    header, _, *lines = [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]
    shared = text.split("\n")[0]
    values = ["dense_acc", "pruned_acc", "final_acc", "trainability_acc", "sparsity", "parameters", "remaining_parameters",
              "speedup", "images_per_second", "wall_seconds"]  # fmt: skip
    assert header[-2:] == ["prune.sparsity", "run"] and header[:-2] == [value for value in values if f" {value} " not in shared]
    assert {"pruned_acc", "final_acc", "sparsity", "remaining_parameters"} <= set(header)
    rows = {line[-1]: dict(zip(header, line)) for line in lines}
    assert list(rows) == [second.name, first.name]  # in the order of the setting that differs
    assert [rows[first.name]["prune.sparsity"], rows[second.name]["prune.sparsity"]] == ["0.9", "0.5"]
    assert [rows[first.name]["sparsity"], rows[second.name]["sparsity"]] == [sparsity_shown(0.9), sparsity_shown(0.5)]
    dense = format_stat("dense_acc", json.loads((first / "summary.json").read_text())["stats"]["dense_acc"])
    assert text.startswith(f"The same in every run: dense_acc {dense}, parameters ")


@pytest.mark.parametrize("command", ["show", "compare"])
def test_show_and_compare_on_a_folder_that_is_not_a_run(command: str, tmp_path: Path, capsys) -> None:
    assert cli.main([command, str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("prunelab: error: ") and "Traceback" not in captured.err
    assert str(tmp_path) in captured.err and "not a finished run directory" in captured.err


def test_several_paths_none_of_them_a_run_are_each_skipped_then_an_error(tmp_path: Path, capsys) -> None:
    notes, todo = tmp_path / "notes.md", tmp_path / "todo.md"
    for path in (notes, todo):
        path.write_text("")
    assert cli.main(["compare", str(notes), str(todo)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        *(f"prunelab: skipping {path}: {path} is not a finished run directory (no summary.json): it is a file, and a run "
          "is a folder (runs/<run name>)" for path in (notes, todo)),
        "prunelab: error: none of the given paths is a finished run directory",
    ]  # fmt: skip


def test_compare_skips_what_is_not_a_run_and_show_names_the_run_of_a_seed(cli_run, tmp_path: Path, capsys) -> None:
    """``prunelab compare runs/*`` meets sweep tables, LR range tests and sensitivity analyses
    (prunelab's own, skipped without a note) and unfinished runs and other files (noted)."""
    folder = cli_run[2]
    table_file = tmp_path / "default-table.md"
    table_file.write_text("| run |\n")
    (tmp_path / "lr-range-test-x").mkdir()
    (tmp_path / "lr-range-test-x" / "lr_range_test.json").write_text("{}")
    (tmp_path / "sensitivity-x").mkdir()
    (tmp_path / "sensitivity-x" / "sensitivity.json").write_text("{}")
    unfinished, notes = tmp_path / "oneshot-unfinished", tmp_path / "notes.md"
    unfinished.mkdir()
    notes.write_text("")
    capsys.readouterr()
    others = [table_file, tmp_path / "lr-range-test-x", tmp_path / "sensitivity-x", unfinished, notes]
    assert cli.main(["compare", str(folder), *map(str, others)]) == 0
    captured = capsys.readouterr()
    assert f"| {folder.name} " in captured.out
    assert captured.err.splitlines() == [
        f"prunelab: skipping {unfinished}: {unfinished} is not a finished run directory (no summary.json): a run directory "
        "holds recipe.yaml and summary.json, as prunelab run leaves them",
        f"prunelab: skipping {notes}: {notes} is not a finished run directory (no summary.json): it is a file, and a run "
        "is a folder (runs/<run name>)",
    ]
    for other, what in [(table_file, "a sweep's table, its runs are in the folder beside it"),
                        (tmp_path / "lr-range-test-x", f"an LR range test, whose results are {tmp_path / 'lr-range-test-x' / 'lr_range_test.json'}")]:  # fmt: skip
        assert cli.main(["show", str(other)]) == 2
        assert capsys.readouterr().err == f"prunelab: error: {other} is not a finished run directory (no summary.json): it is {what}\n"
    assert cli.main(["show", str(folder / "seed-0")]) == 2
    assert f"one seed of a run; pass the run directory {folder}" in capsys.readouterr().err
    assert cli.main(["show", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == f"prunelab: error: {tmp_path / 'nowhere'} does not exist\n"
    # a run of seeds 0 and 1 interrupted in seed 1: not a folder of runs, a run to finish
    cut = tmp_path / "oneshot-cut"
    shutil.copytree(folder, cut)
    (cut / "summary.json").unlink()
    (cut / "seed-1").mkdir()
    assert cli.main(["show", str(cut)]) == 2
    assert capsys.readouterr().err == f"prunelab: error: {cut} is an interrupted run (seeds finished: 0): run its command again to finish it\n"
    (cut / "seed-1" / "summary.json").write_text((cut / "seed-0" / "summary.json").read_text())  # a summary alone is no finished seed
    assert cli.main(["show", str(cut)]) == 2
    assert "(seeds finished: 0)" in capsys.readouterr().err
    shutil.copytree(cut / "seed-0", cut / "seed-10")  # finished seeds in the order of their numbers
    shutil.copytree(cut / "seed-0", cut / "seed-2")
    assert cli.main(["show", str(cut)]) == 2
    assert "(seeds finished: 0, 2, 10)" in capsys.readouterr().err
    (cut / "summary.json").mkdir()  # not interrupted: damaged
    assert cli.main(["show", str(cut)]) == 2
    assert capsys.readouterr().err.startswith(f"prunelab: error: {cut / 'summary.json'} is not a file: the run folder is damaged")


def test_a_run_directory_given_as_the_recipe_names_its_recipe_file(cli_run, capsys) -> None:
    folder = cli_run[2]
    assert cli.main(["run", str(folder), "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        f"prunelab: error: {folder} is a run directory, not a recipe; its recipe is {folder / 'recipe.yaml'}\n"
    )


def test_a_data_folder_that_cannot_be_used_names_the_setting(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = ["run", "--no-progress", "--out", str(tmp_path / "runs"), "--set", f"data.data_dir={blocker / 'data'}"]
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.endswith(f"prunelab: error: data.data_dir={blocker / 'data'}: cannot use {blocker / 'data'}: Not a directory\n")
    for name in ("mnist1d", "cifar10"):  # the data folder itself a file
        args = ["run", "--no-progress", "--out", str(tmp_path / "runs"), "--set", f"data.data_dir={blocker}", "--set", f"data.name={name}",
                "--set", "model.name=mlp", "--set", "model.options={}"]  # fmt: skip
        assert cli.main(args) == 2
        assert capsys.readouterr().err.endswith(f"prunelab: error: data.data_dir={blocker} is a file, not a folder\n")
    # a dataset that is not there says so itself
    args = ["run", "--no-progress", "--out", str(tmp_path / "runs"), "--set", f"data.data_dir={tmp_path}", "--set", "data.name=cifar10",
            "--set", "model.name=resnet20", "--set", "model.options={}"]  # fmt: skip
    assert cli.main(args) == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("prunelab: error: cifar10: ") and "download" in error


def test_a_data_folder_from_the_environment_is_named_as_such(tmp_path: Path, capsys, monkeypatch) -> None:
    # It was named data.data_dir=... (the default), a setting the user never made.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("PRUNELAB_DATA", str(blocker))
    assert cli.main(["run", "--dry-run", "--out", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err == f"prunelab: error: $PRUNELAB_DATA={blocker} (data.data_dir unset) is a file, not a folder\n"


def test_an_out_folder_that_cannot_be_made_is_a_clear_error(tmp_path: Path, capsys) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    assert cli.main(["run", "--no-progress", "--out", str(not_a_folder), "--set", "find.epochs=1"]) == 2
    captured = capsys.readouterr()
    assert f"prunelab: error: --out {not_a_folder} is a file, not a folder" in captured.err
    assert "Traceback" not in captured.err
    for inside in (not_a_folder / "runs", not_a_folder / "runs" / "today"):  # the file named however deep it lies
        for command in (["run", "--no-progress", "--set", "find.epochs=1"], ["run", "--dry-run"]):  # a dry run said it would train there
            assert cli.main([*command, "--out", str(inside)]) == 2
            assert capsys.readouterr().err == f"prunelab: error: --out {inside}: cannot make the folder: {not_a_folder} is a file\n"


def test_an_out_folder_that_is_empty_or_a_run_is_an_error(tmp_path: Path, capsys) -> None:
    # --out '' wrote into the current folder, and a run's folder as --out put runs (or a report) inside that run.
    run = tmp_path / "runs" / "oneshot-x"
    (run / "seed-0").mkdir(parents=True)
    (run / "recipe.yaml").write_text("seeds: [0]\n")
    for command, out in ((["run", "--dry-run"], " "), (["sensitivity"], "")):
        assert cli.main([*command, "--out", out]) == 2
        assert capsys.readouterr().err == "prunelab: error: --out is empty: give a folder (e.g. --out runs)\n"
    for out, what in [(run, "a run directory"), (run / "seed-0", "a seed of a run directory")]:
        assert cli.main(["run", "--dry-run", "--out", str(out)]) == 2
        assert capsys.readouterr().err == f"prunelab: error: --out {out} is {what}; give a folder outside the run, e.g. {tmp_path / 'runs'}\n"
    # a folder of one's own inside a run (not one of its seeds) is taken for none of its files
    assert cli.main(["run", "--dry-run", "--out", str(run / "reports")]) == 0
    (tmp_path / "recipe.yaml").write_text("seeds: [0]\n")  # a recipe of one's own beside the runs is no run
    assert cli.main(["run", str(tmp_path / "recipe.yaml"), "--dry-run", "--out", str(tmp_path)]) == 0


def test_no_command_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([])
    assert exited.value.code == 2
    assert "usage: prunelab" in capsys.readouterr().err


def test_a_bad_recipe_is_an_error_before_the_run_is_said_to_start(data_dir: Path, tmp_path: Path, capsys) -> None:
    assert cli.main(["run", "--no-progress", "--out", str(tmp_path), *sets(data_dir, "prune.scope=ratios", "prune.ratios={x: 0.5}")]) == 2
    assert capsys.readouterr().err.startswith("prunelab: error: prune.ratios: ratio given for 'x'")


def test_a_run_gives_its_warnings_after_saying_it_starts(data_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """GMP's warning on the number of updates, which needs the data, comes with the others:
    after the line saying the run starts, before it trains (stopped here where it writes its recipe)."""
    from prunelab.runs import runner

    def stop(*_args: object) -> None:
        raise ValueError("stopped before training")

    monkeypatch.setattr(runner, "write_seeds", stop)
    gmp = ["prune.method=gmp", "prune.pruning_epochs=1", "prune.updates_per_epoch=2", "eval.lr_policy=null", "find.lr_schedule.gamma=0.5"]
    assert cli.main(["run", "--no-progress", "--out", str(tmp_path), *sets(data_dir, "eval.epochs=3", *gmp)]) == 2
    lines = capsys.readouterr().err.splitlines()
    starts = ["prunelab: running gmp-", "prunelab: warning: find.lr_schedule.gamma=0.5 is not used", "prunelab: warning: eval.lr_schedule (constant)",
              "prunelab: warning: the pruning stage has only 2 sparsity updates", "prunelab: error: stopped before training"]  # fmt: skip
    assert [line[:len(start)] for line, start in zip(lines, starts)] == starts and len(lines) == len(starts)


def test_a_run_loads_its_data_and_makes_its_checks_once(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from prunelab.runs import runner

    calls = []
    for name in ("recipe_data", "preflight"):
        real = getattr(runner, name)
        monkeypatch.setattr(runner, name, lambda *args, _real=real, _name=name: calls.append(_name) or _real(*args))
    assert cli.main(["run", "--no-progress", "--out", str(tmp_path), *sets(data_dir)]) == 0
    assert calls == ["recipe_data", "preflight"]


def test_ratio_names_are_checked_before_any_training_and_leave_no_run(data_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(Trainer, "train_epoch", lambda self, epoch, **_: pytest.fail("trained before the recipe was checked"))
    args = sets(data_dir, "prune.scope=ratios", "prune.ratios={features.9.weight: 0.5}")
    assert cli.main(["run", "--no-progress", "--out", str(tmp_path), *args]) == 2
    error = capsys.readouterr().err
    assert "prunelab: error: prune.ratios: ratio given for 'features.9.weight', which names none of the prunable parameters" in error
    assert list(tmp_path.iterdir()) == []  # no run directory, no find phase


@pytest.mark.parametrize(
    ("overrides", "where", "below"),
    [
        (["prune.sparsity=0.99999"], "all {total:,} prunable weights", lambda total, largest: 1 - 0.5 / total),
        (["prune.method=imp", "prune.rate=0.99", "prune.levels=3"], "all {total:,} prunable weights",
         lambda total, largest: f"prune.levels=3 goes that far; at most {sum(1 - 0.01**k < 1 - 0.5 / total for k in (1, 2, 3))} level"),
        (["prune.scope=layerwise", "prune.sparsity=0.9999"], "every weight of every prunable layer", lambda total, largest: 1 - 0.5 / largest),
    ],
    ids=["global", "imp-levels", "layerwise"],
)
def test_a_sparsity_that_rounds_to_every_weight_is_refused_before_training(
    overrides, where, below, data_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    """0.99999 of the 28,096 weights of BUDGET's CNN rounds to all of them (IMP's 1 - 0.01^3
    too); layer by layer, 0.9999 empties even its largest layer."""
    monkeypatch.setattr(Trainer, "train_epoch", lambda self, epoch, **_: pytest.fail("trained before the recipe was checked"))
    model = build_model("mnist1d_cnn", num_classes=10, input_shape=(1, 40), channels=8)
    sizes = [m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
    total, largest = sum(sizes), max(sizes)
    assert cli.main(["run", "--no-progress", "--out", str(tmp_path), *sets(data_dir, *overrides)]) == 2
    error = capsys.readouterr().err
    limit = below(total, largest)  # round(s * n) < n: s below 1 - 0.5 / n
    advice = limit if isinstance(limit, str) else f"below {limit:.6g} some weight stays"
    assert f"rounds to {where.format(total=total)}, which leaves a model that computes nothing; {advice}" in error
    assert list(tmp_path.iterdir()) == []


def test_lr_range_test_arguments_are_checked_before_training(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(Trainer, "train_epoch", lambda self, epoch, **_: pytest.fail("trained before the arguments were checked"))
    assert cli.main(["lr-range-test", "--out", str(tmp_path), "--steps", "0"]) == 2
    assert "error: --steps must be at least 2, got 0" in capsys.readouterr().err  # named as the user typed it
    assert cli.main(["lr-range-test", "--out", str(tmp_path), "--start-lr", "1", "--end-lr", "1e-3"]) == 2
    assert "need 0 < --start-lr < --end-lr, got --start-lr=1.0, --end-lr=0.001" in capsys.readouterr().err
    assert cli.main(["lr-range-test", "--out", str(tmp_path), "--start-lr", "1e-10", "--end-lr", "1e300"]) == 2
    assert "--end-lr / --start-lr must be a finite ratio, and --end-lr within float32" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["sensitivity", "lr-range-test"])
def test_the_analyses_check_the_recipe_before_training(command: str, data_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    # A wrong include pattern used to be said only after the find phase had trained.
    monkeypatch.setattr(Trainer, "train_epoch", lambda self, epoch, **_: pytest.fail("trained before the recipe was checked"))
    assert cli.main([command, "--no-progress", "--out", str(tmp_path), *sets(data_dir, "prune.include=[features.9]")]) == 2
    assert capsys.readouterr().err.startswith("prunelab: error: prune.include/exclude: include pattern 'features.9' picks nothing")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("scope", ["lpr_of", "masks_of"])
def test_the_analyses_do_not_need_the_run_a_recipe_copies(scope: str, data_dir: Path, tmp_path: Path, capsys) -> None:
    # They analyse the find phase, which does not read it: the run to copy may come later.
    args = sets(data_dir, "find.epochs=1", f"prune.scope={scope}", f"prune.{scope}={tmp_path / 'later'}")
    assert cli.main(["run", "--dry-run", "--out", str(tmp_path / "runs"), *args]) == 2
    assert f"prune.{scope}: {tmp_path / 'later'} is not a folder" in capsys.readouterr().err
    assert cli.main(["lr-range-test", "--no-progress", "--out", str(tmp_path / "runs"), "--steps", "5", *args]) == 0
    assert len(list((tmp_path / "runs").glob("lr-range-test-*/lr_range_test.json"))) == 1


def test_the_run_recipe_names_every_seed_the_directory_holds(data_dir: Path, tmp_path: Path) -> None:
    for seeds in ("[1]", "[0]"):
        assert cli.main(["run", "--no-progress", "--out", str(tmp_path), *sets(data_dir, "eval.epochs=1", f"seeds={seeds}")]) == 0
    folder = run_folder(tmp_path)
    assert "seeds:\n- 0\n- 1\n" in (folder / "recipe.yaml").read_text()
    assert json.loads((folder / "summary.json").read_text())["seeds"] == [0, 1]


@pytest.mark.filterwarnings("default::UserWarning")  # over the test suite's ignoring of this note
def test_warnings_read_as_one_line_without_source(data_dir: Path, tmp_path: Path, capsys) -> None:
    args = sets(data_dir, "eval.epochs=1", "prune.method=imp", "prune.levels=1")
    assert cli.main(["run", "--no-progress", "--out", str(tmp_path), *args]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert lines == ["prunelab: warning: prune.sparsity=0.9 is not used: prune.levels=1 sets how far IMP prunes"]


def test_deprecations_that_are_user_warnings_too_are_not_shown(tmp_path: Path, monkeypatch, capsys) -> None:
    """As pyparsing's, which older matplotlib meets while it plots: Python hides deprecations
    from users by default, and a run's user can do nothing about them."""
    (tmp_path / "old_style_models.py").write_text(
        "import warnings\n\n"
        "class LegacyNameWarning(UserWarning, DeprecationWarning):\n    pass\n\n"
        "warnings.warn(LegacyNameWarning(\"'parseString' deprecated - use 'parse_string'\"))\n"
    )
    monkeypatch.chdir(tmp_path)
    try:
        assert cli.main(["recipes", "--import", "old_style_models"]) == 0
    finally:
        sys.modules.pop("old_style_models", None)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("terminal", "flag", "expected"), [(True, [], True), (True, ["--no-progress"], False), (False, [], False)])
def test_progress_bars_only_on_a_terminal(terminal, flag, expected, tmp_path: Path, monkeypatch) -> None:
    from prunelab.runs import runner

    seen = []

    def fake_run(recipe, out, progress, data):
        seen.append(progress)
        raise KeyboardInterrupt  # stop before any work

    monkeypatch.setattr(runner, "run_recipe", fake_run)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal, raising=False)
    monkeypatch.setattr(runner.os, "get_terminal_size", lambda fd: os.terminal_size((120, 40)))
    assert cli.main(["run", "--out", str(tmp_path), *flag]) == 130
    assert seen == [expected]


@pytest.mark.parametrize("flag", [[], ["--no-progress"]])
def test_without_a_terminal_a_run_logs_its_phases_unless_told_not_to(flag, data_dir: Path, tmp_path: Path, capsys) -> None:
    """A log file or pipe gets a line per phase end (and every LOG_EVERY seconds) where a
    terminal would show bars; the logger is left as it was."""
    import logging

    assert cli.main(["run", "--out", str(tmp_path), *flag, *sets(data_dir, "eval.epochs=1")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if ": epoch " in line]
    if flag:
        assert lines == []
    else:
        assert [line.split(", test accuracy")[0] for line in lines] == ["prunelab: seed 0 find: epoch 2/2", "prunelab: seed 0 eval: epoch 1/1"]
    assert logging.getLogger("prunelab").handlers == [] and logging.getLogger("prunelab").level == logging.NOTSET


def test_gmp_summaries_say_what_their_pruned_accuracy_is(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "gmp-run"
    (folder / "seed-0").mkdir(parents=True)
    (folder / "seed-0" / "summary.json").write_text(json.dumps({"seed": 0, "method": "gmp", "sparsity": 0.9, "final_acc": 0.8}))
    for name, content in (("lr_log.json", {"eval": [0.1]}), ("metrics.json", []), ("layer_sparsity.json", {}), ("events.json", {})):
        (folder / "seed-0" / name).write_text(json.dumps(content))
    stats = {key: {"mean": value, "std": 0.0} for key, value in (("pruned_acc", 0.8), ("final_acc", 0.8), ("sparsity", 0.9))}
    (folder / "summary.json").write_text(json.dumps({"run": folder.name, "method": "gmp", "seeds": [0], "stats": stats}))
    assert cli.main(["show", str(folder)]) == 0
    assert table(capsys.readouterr().out)["pruned_acc"] == ["80.00%", "test accuracy at the end of the pruning stage, before fine-tuning"]


def test_an_exclusion_that_names_nothing_is_reported_as_such(data_dir: Path, tmp_path: Path, capsys) -> None:
    assert cli.main(["run", "--no-progress", "--out", str(tmp_path), *sets(data_dir, "prune.exclude=[duration]")]) == 2
    assert "prunelab: error: prune.include/exclude: exclude pattern 'duration' matches no parameter or module of the model" in capsys.readouterr().err


def test_a_reader_gone_from_the_pipe_ends_quietly_and_a_bug_keeps_its_traceback(monkeypatch, capfd) -> None:
    """``prunelab show RUN | head``: exit 141 (as a shell reports SIGPIPE), nothing said; a
    RuntimeError of one process is a bug, raised as it is."""
    def gone(_args):
        raise BrokenPipeError

    monkeypatch.setitem(commands.COMMANDS, "recipes", gone)
    redirected = []
    monkeypatch.setattr(commands.os, "dup2", lambda *fds: redirected.append(fds))  # keep pytest's own stdout
    assert cli.main(["recipes"]) == 141
    assert capfd.readouterr().err == "" and len(redirected) == 1  # later writes go nowhere

    def bug(_args):
        raise RuntimeError("shape mismatch deep inside")

    monkeypatch.setitem(commands.COMMANDS, "recipes", bug)
    with pytest.raises(RuntimeError, match="shape mismatch deep inside"):
        cli.main(["recipes"])


def test_over_several_processes_a_command_other_than_run_exits_2_said_once(monkeypatch, capsys) -> None:
    from prunelab.distributed import World

    monkeypatch.setitem(commands.COMMANDS, "recipes", lambda _args: pytest.fail("a command other than run ran over several processes"))
    for rank, said in ((0, "prunelab: error: only `prunelab run` works over several processes; "
                           "run `prunelab recipes` without torchrun\n"), (1, "")):  # fmt: skip
        monkeypatch.setattr(commands, "join_from_environment", lambda rank=rank: World(rank=rank, size=2, local_rank=rank))
        assert cli.main(["recipes"]) == 2
        assert capsys.readouterr().err == said
    # one process alone runs any command
    monkeypatch.setattr(commands, "join_from_environment", lambda: World(rank=0, size=1, local_rank=0))
    monkeypatch.setitem(commands.COMMANDS, "recipes", lambda _args: 0)
    assert cli.main(["recipes"]) == 0


@pytest.mark.parametrize(
    ("command", "said"),
    [(["show", "runs/x"], "only `prunelab run` works over several processes"),  # refused
     (["run", "--import", "no_such_module_here"], "--import no_such_module_here: No module named"),  # the main process's main_first work
     (["run", "--set", "prune.sparsity=1.5"], "prune.sparsity")],  # a bad setting, which every process meets
)
def test_over_several_processes_the_others_end_after_the_main_process_said_why(command, said, two_processes, tmp_path, monkeypatch) -> None:
    """torchrun stops the processes still running once one ends: another process that ended
    on an error the main process says for all stopped the main one, now and then (a loaded
    machine), before it had said it."""
    log = tmp_path / "stderr"

    class SlowTerminal:  # the main process, slow to say it
        def write(self, text: str) -> None:
            time.sleep(0.5)
            with log.open("a") as file:
                file.write(text)

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return False

    def command_then_end() -> int:
        if world().is_main:
            sys.stderr = SlowTerminal()  # of this process alone, which ends after the command
        code = cli.main(command)
        if not world().is_main:
            with log.open("a") as file:
                file.write("process 1 ended\n")
        return code

    monkeypatch.setattr(commands, "leave", lambda: None)  # the fixture leaves the process group, after the command
    assert two_processes(command_then_end) == [2, 2]
    text = log.read_text()
    assert text.startswith("prunelab: error: ") and text.count("prunelab: error") == 1 and said in text, text
    assert text.endswith("\nprocess 1 ended\n"), text


def test_over_several_processes_a_process_s_own_error_is_said_by_it(monkeypatch, capsys) -> None:
    """The main process says a bad recipe once for all; trouble another process meets alone
    (its disk, its data) is said by that process, named."""
    from prunelab.distributed import World

    from prunelab.train.trainer import TrainingDiverged

    monkeypatch.setattr(commands, "world", lambda: World(rank=1, size=2, local_rank=1))
    cases = [(OSError("cannot write x: No space left on device"), True), (commands.RecipeError("bad recipe"), False),
             (TrainingDiverged("find: the training loss is nan"), False)]  # fmt: skip
    for error, said in cases:
        def fail(_args, error=error):
            raise error

        monkeypatch.setitem(commands.COMMANDS, "recipes", fail)
        assert cli.main(["recipes"]) == 2
        err = capsys.readouterr().err
        assert err == ("prunelab: error: process 1 of 2: cannot write x: No space left on device\n" if said else "")


def test_over_several_processes_a_bug_keeps_its_traceback_and_a_lost_process_is_one_line(monkeypatch, capsys) -> None:
    """A collective call failing because another process is gone is one line from each; a bug
    is raised by the main process (its traceback) and named in one line by the others."""
    from prunelab.distributed import World

    lost = RuntimeError("[../gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:4010: Connection reset by peer. This is ...\n"
                        "Exception raised from recvBytes at ../gloo/transport/tcp/pair.cc:537")  # fmt: skip
    bug = RuntimeError("mat1 and mat2 shapes cannot be multiplied (50x39 and 40x10)\nmore lines")
    # one process alone has no other to lose: its error is a bug, with its traceback
    def reset(_args):
        raise RuntimeError("Connection reset by peer")

    monkeypatch.setitem(commands.COMMANDS, "recipes", reset)
    monkeypatch.setattr(commands, "world", lambda: World(rank=0, size=1, local_rank=0))
    with pytest.raises(RuntimeError, match="Connection reset by peer"):
        cli.main(["recipes"])
    # errors that name a backend or a timeout without another process being gone are bugs too
    assert not any(commands._lost_contact(RuntimeError(text)) for text in (
        "DataLoader timed out after 5 seconds", "ProcessGroupGloo does not support reduce op AVG", "NCCL error: invalid usage"))
    # whatever its case: a store's socket refused when another process has ended
    assert all(commands._lost_contact(RuntimeError(text)) for text in (
        "The client socket has failed to connect to [localhost]:29500 (errno: 111 - Connection refused).",
        "NCCL communicator was aborted on rank 1.", "Watchdog caught collective operation timeout: WorkNCCL(SeqNum=7)"))
    for error in (lost, bug):
        def fail(_args, error=error):
            raise error

        monkeypatch.setitem(commands.COMMANDS, "recipes", fail)
        for rank in (0, 1):
            monkeypatch.setattr(commands, "world", lambda rank=rank: World(rank=rank, size=2, local_rank=rank))
            if error is bug and rank == 0:
                with pytest.raises(RuntimeError, match="mat1 and mat2"):
                    cli.main(["recipes"])
                continue
            assert cli.main(["recipes"]) == 1
            said = "stopped: [../gloo/transport/tcp/pair.cc:537] Read error" if error is lost else "RuntimeError: mat1 and mat2 shapes"
            err = capsys.readouterr().err
            assert err.startswith(f"prunelab: error: process {rank} of 2{':' if error is bug else ''} {said}")
            assert error is bug or err.count("\n") == 1  # a lost process: its error's first line alone


def test_over_several_processes_any_bug_has_one_traceback(monkeypatch, capsys) -> None:
    """Not only a RuntimeError: an AttributeError in a model's forward, say, which every
    process meets, is raised by the main process and named in one line by the others, not a
    traceback from each; the line says where, as the main process may not meet it (a model
    failing on one process's examples alone) and then says only that this one stopped."""
    from prunelab.distributed import World

    for error in (AttributeError("'Net' object has no attribute 'fc3'"), TypeError("forward() takes 2 positional arguments"),
                  KeyError("features.0.weight")):  # fmt: skip
        def fail(_args, error=error):
            raise error

        monkeypatch.setitem(commands.COMMANDS, "recipes", fail)
        monkeypatch.setattr(commands, "world", lambda: World(rank=1, size=2, local_rank=1))
        assert cli.main(["recipes"]) == 1
        where = f"{__file__}, line {fail.__code__.co_firstlineno + 1}"  # the raise in fail
        assert capsys.readouterr().err == f"prunelab: error: process 1 of 2: {type(error).__name__}: {error} ({where})\n"
        monkeypatch.setattr(commands, "world", lambda: World(rank=0, size=2, local_rank=0))
        with pytest.raises(type(error)):
            cli.main(["recipes"])


def test_over_several_processes_a_bug_without_text_is_named_by_its_type_alone(monkeypatch, capsys) -> None:
    from prunelab.distributed import World

    def fail(_args):
        raise KeyError

    monkeypatch.setitem(commands.COMMANDS, "recipes", fail)
    monkeypatch.setattr(commands, "world", lambda: World(rank=1, size=2, local_rank=1))
    assert cli.main(["recipes"]) == 1
    where = f"{__file__}, line {fail.__code__.co_firstlineno + 1}"
    assert capsys.readouterr().err == f"prunelab: error: process 1 of 2: KeyError ({where})\n"  # not "KeyError: KeyError"


def test_a_value_error_without_text_is_named_by_its_type_and_where_it_was_raised(monkeypatch, capsys) -> None:
    """A ValueError is reported by its text alone; a bare one (a user's model) said nothing at all."""
    from prunelab.distributed import World

    def fail(_args):
        raise ValueError

    monkeypatch.setitem(commands.COMMANDS, "recipes", fail)
    where = f"{__file__}, line {fail.__code__.co_firstlineno + 1}"
    for rank, said in ((0, ""), (1, "process 1 of 2: ")):
        monkeypatch.setattr(commands, "world", lambda rank=rank: World(rank=rank, size=2, local_rank=rank))
        assert cli.main(["recipes"]) == 2
        assert capsys.readouterr().err == f"prunelab: error: {said}ValueError ({where})\n"


def test_sensitivity_prints_each_layers_accuracy_and_writes_the_curves(data_dir: Path, tmp_path: Path, capsys) -> None:
    from prunelab.analysis import (
        LayerSensitivity,
        SensitivityResult,
        max_sparsity_within,
    )
    from prunelab.masks import Pruner

    tiny = ["find.epochs=1", "device=cpu", "model.options.channels=8", f"data.data_dir={data_dir}"]
    args = [arg for item in tiny for arg in ("--set", item)]
    assert cli.main(["sensitivity", "--out", str(tmp_path), "--no-progress", "--sparsities", "0,0.5,0.9", *args]) == 0
    out = capsys.readouterr().out
    folder = next(tmp_path.glob("sensitivity-*"))
    saved = json.loads((folder / "sensitivity.json").read_text())
    assert (folder / "sensitivity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = build_model("mnist1d_cnn", num_classes=10, input_shape=(1, 40), channels=8)
    sizes = {name: weight.numel() for name, weight in Pruner(model).parameters.items()}
    assert {name: layer["size"] for name, layer in saved["layers"].items()} == sizes
    result = SensitivityResult(saved["dense_loss"], saved["dense_accuracy"],
                               {name: LayerSensitivity(**layer) for name, layer in saved["layers"].items()})  # fmt: skip
    assert saved["tolerance"] == 0.01
    assert saved["max_sparsity_within_tolerance"] == max_sparsity_within(result, 0.01)
    rows = table(out)
    assert rows["layer"] == ["weights", "0%", "50%", "90%", "within 1 point up to"]
    for name, layer in result.layers.items():
        assert layer.sparsities == [0.0, 0.5, 0.9] and layer.accuracies[0] == result.dense_accuracy
        best = saved["max_sparsity_within_tolerance"][name]
        assert rows[name] == [f"{layer.size:,}", *(f"{100 * a:.2f}%" for a in layer.accuracies),
                              f"< {100 * layer.sparsities[0]:g}%" if best is None else f"{100 * best:g}%"]  # fmt: skip
    assert "accuracy on the first 1,000 training examples with one layer alone pruned" in out
    assert f"dense model's training accuracy: {100 * result.dense_accuracy:.2f}%" in out and saved["split"] == "train"
    assert list(tmp_path.glob(".find/*/seed-0/checkpoint.safetensors"))  # the shared find phase, cached for runs
    # other sparsities are another analysis, beside this one rather than over it; columns of sparsities
    # that differ past 6 digits show as many more as tell them apart
    assert cli.main(["sensitivity", "--out", str(tmp_path), "--no-progress", "--sparsities", "0,0.9,0.9000001", *args]) == 0
    assert table(capsys.readouterr().out)["layer"] == ["weights", "0%", "90%", "90.00001%", "within 1 point up to"]
    folders = sorted(tmp_path.glob("sensitivity-*"))
    assert len(folders) == 2 and json.loads((folder / "sensitivity.json").read_text()) == saved


def test_sensitivity_on_the_test_set_of_a_channel_recipe(data_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """A hand-made result: the analysis measures the split asked for, on every weight when the
    recipe's include/exclude name channel groups; a layer that loses more than a point at the
    first sparsity is within it only below; another split is another analysis, in its own folder."""
    import prunelab.analysis
    import prunelab.report.plots
    from prunelab.analysis import LayerSensitivity, SensitivityResult

    layers = {"features.0.weight": LayerSensitivity(100, [0.5, 0.9], [0.6, 0.9], [0.795, 0.6]),
              "classifier.0.weight": LayerSensitivity(2000, [0.5, 0.9], [1.0, 2.0], [0.7, 0.5])}  # fmt: skip
    calls, titles, plot = [], [], prunelab.report.plots.plot_sensitivity

    def analysis(model, data, sparsities, include, exclude, split, **_kwargs):
        calls.append((sparsities, include, exclude, split))
        return SensitivityResult(0.5, 0.8, layers, split)

    def plotted(curves, dense_acc, path, run, *args):
        titles.append(run)
        return plot(curves, dense_acc, path, run, *args)

    monkeypatch.setattr(prunelab.analysis, "pruning_sensitivity", analysis)
    monkeypatch.setattr(prunelab.report.plots, "plot_sensitivity", plotted)
    recipe = ["find.epochs=1", "device=cpu", "model.options.channels=8", f"data.data_dir={data_dir}", "seeds=[3, 4]",
              "prune.criterion=filter_l1", "prune.scope=layerwise", "prune.include=[features]"]  # fmt: skip
    args = ["--out", str(tmp_path), "--no-progress", "--sparsities", "0.5,0.9", *(a for item in recipe for a in ("--set", item))]
    assert cli.main(["sensitivity", *args, "--split", "test"]) == 0
    out = capsys.readouterr().out
    (folder,) = tmp_path.glob("sensitivity-*")
    assert calls == [([0.5, 0.9], None, None, "test")]
    assert out.startswith("accuracy on the test set with one layer alone pruned by magnitude")
    rows = table(out)
    assert list(rows) == ["layer", "features.0.weight", "classifier.0.weight"]  # the model's order, as the analysis gives them
    assert rows["features.0.weight"] == ["100", "79.50%", "60.00%", "50%"]
    assert rows["classifier.0.weight"] == ["2,000", "70.00%", "50.00%", "< 50%"]
    assert "\ndense model's test accuracy: 80.00%\n" in out and out.endswith(f"\ncurves and plot in {folder}\n")
    assert len(titles) == 1 and titles[0].endswith(", seed 3")  # the recipe's first seed, whose find phase it analysed
    assert [path.parent.name for path in tmp_path.glob(".find/*/seed-*/checkpoint.safetensors")] == ["seed-3"]
    assert cli.main(["sensitivity", *args, "--split", "train"]) == 0
    assert "\ndense model's training accuracy: 80.00%\n" in capsys.readouterr().out
    assert calls[1][3] == "train" and len(list(tmp_path.glob("sensitivity-*"))) == 2
    # the default sparsities on the same split: another analysis again, in a folder of its own
    assert cli.main(["sensitivity", *(arg for arg in args if arg not in ("--sparsities", "0.5,0.9")), "--split", "train"]) == 0
    assert len(list(tmp_path.glob("sensitivity-*"))) == 3


def test_the_analyses_run_with_the_recipe_s_threads_and_give_the_caller_s_back(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import prunelab.analysis

    callers = torch.get_num_threads()
    threads, seen, original = (1 if callers > 1 else 2), [], prunelab.analysis.pruning_sensitivity

    def sensitivity(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(prunelab.analysis, "pruning_sensitivity", sensitivity)
    tiny = ["find.epochs=1", "device=cpu", "model.options.channels=8", f"data.data_dir={data_dir}", f"threads={threads}"]
    assert cli.main(["sensitivity", "--out", str(tmp_path), "--no-progress", "--sparsities", "0,0.5", *(a for t in tiny for a in ("--set", t))]) == 0
    assert seen == [threads] and torch.get_num_threads() == callers


@pytest.mark.parametrize(
    ("sparsities", "message"),
    [("0.5,0.2", "error: --sparsities must be strictly increasing"), ("0.5,1", r"error: --sparsities must lie in [0, 1), got 1.0"),
     ("0.5,x", "--sparsities must be comma-separated numbers")],
)  # fmt: skip
def test_sensitivity_arguments_are_checked_before_training(sparsities: str, message: str, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(Trainer, "train_epoch", lambda self, epoch, **_: pytest.fail("trained before the arguments were checked"))
    assert cli.main(["sensitivity", "--out", str(tmp_path), "--sparsities", sparsities]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_each_distinct_warning_is_shown_once_per_command(monkeypatch, capsys) -> None:
    """As a sweep's recipes meet the same note one after another: said once, whatever
    Python's once-per-place registry has seen before."""
    import warnings

    def warn_per_recipe(_args):
        for message in ("a note", "a note", "another note", "a note"):
            warnings.warn(message, stacklevel=1)
        return 0

    monkeypatch.setitem(commands.COMMANDS, "recipes", warn_per_recipe)
    warnings.simplefilter("always")  # as -W always would: every warning reaches the command's display
    for _ in range(2):  # a second command says them again
        assert cli.main(["recipes"]) == 0
        assert capsys.readouterr().err == "prunelab: warning: a note\nprunelab: warning: another note\n"


MY_MODELS = '''
from torch import nn
from prunelab.models import register

@register("my_mlp")
def my_mlp(num_classes, input_shape, hidden=16):
    """An MLP of my own."""
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
'''


def test_import_brings_a_model_of_the_user_s_own_into_recipes(data_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """The module registers a model; `--import` loads it from the current folder, as
    `python -m` would, so that `model.name` can name it."""
    (tmp_path / "my_models.py").write_text(MY_MODELS)
    own_model = ["model.name=my_mlp", "model.options={}", f"data.data_dir={data_dir}"]
    settings = [item for item in BUDGET if not item.startswith("model.")] + own_model
    run = ["run", "--no-progress", "--out", str(tmp_path / "runs"), *(f"--set={item}" for item in settings)]
    monkeypatch.chdir(tmp_path)
    assert cli.main(run) == 2  # my_mlp is unknown without the module
    assert "unknown model 'my_mlp'" in capsys.readouterr().err
    try:
        assert cli.main([*run, "--import", "my_models"]) == 0
        (folder,) = (tmp_path / "runs").glob("oneshot-my_mlp-*")
        capsys.readouterr()
        assert cli.main(["show", str(folder), "--import", "my_models"]) == 0  # its recipe names my_mlp too
        assert "oneshot-my_mlp-" in capsys.readouterr().out
    finally:
        MODELS.pop("my_mlp", None)
        sys.modules.pop("my_models", None)
    # show, compare and report read only the run's results: they need no module, and name the model as recorded.
    for command in ("show", "compare"):
        assert cli.main([command, str(folder)]) == 0, capsys.readouterr().err
        assert "oneshot-my_mlp-" in capsys.readouterr().out
    assert cli.main(["report", str(folder), "--out", str(tmp_path / "report")]) == 0, capsys.readouterr().err
    assert "oneshot-my_mlp-" in (tmp_path / "report" / "report.md").read_text()
    assert cli.main(["run", "--import", "no_such_module"]) == 2
    assert "prunelab: error: --import no_such_module: No module named 'no_such_module'" in capsys.readouterr().err
    assert cli.main(["compare", str(folder), "--import", "./my_models.py"]) == 2
    assert "--import ./my_models.py: give a module's name, as Python imports it (e.g. my_models for my_models.py)" in capsys.readouterr().err
    assert json.loads((folder / "summary.json").read_text())["stats"]["sparsity"]["mean"] == pytest.approx(0.9, abs=1e-3)
    assert str(tmp_path) not in sys.path


@pytest.mark.parametrize("given", ["my_models.py", "./my_models.py", "lib/my_models", "lib\\my_models", ".my_models", "..my_models"])
def test_import_takes_a_module_s_name_not_a_path_or_a_relative_name(given: str, capsys) -> None:
    assert cli.main(["recipes", "--import", given]) == 2
    assert capsys.readouterr().err == (
        f"prunelab: error: --import {given}: give a module's name, as Python imports it (e.g. my_models for my_models.py)\n")


def test_import_takes_the_module_of_the_current_folder_first(tmp_path: Path, monkeypatch) -> None:
    """As `python -m` has it: the current folder's module, not one of that name further along the path."""
    (tmp_path / "installed").mkdir()
    (tmp_path / "installed" / "shadowed_models.py").write_text("raise RuntimeError('the installed module was imported')\n")
    (tmp_path / "shadowed_models.py").write_text("")
    monkeypatch.syspath_prepend(tmp_path / "installed")
    monkeypatch.chdir(tmp_path)
    try:
        assert cli.main(["recipes", "--import", "shadowed_models"]) == 0
        assert sys.modules["shadowed_models"].__file__ == str(tmp_path / "shadowed_models.py")
    finally:
        sys.modules.pop("shadowed_models", None)


def test_import_of_a_module_with_a_syntax_error_says_where_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "broken_models.py").write_text("from torch import nn\n\ndef my_mlp(:\n    pass\n")
    monkeypatch.chdir(tmp_path)
    try:
        assert cli.main(["recipes", "--import", "broken_models"]) == 2
    finally:
        sys.modules.pop("broken_models", None)
    err = capsys.readouterr().err
    assert err.startswith("prunelab: error: --import broken_models: ")
    assert f"({tmp_path / 'broken_models.py'}, line 3): def my_mlp(:" in err
    assert "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("code", "error"),
    [("raise ValueError('bad value in module')", "ValueError: bad value in module"),
     ("open('/nonexistent/cfg.txt')", "FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent/cfg.txt'"),
     ("raise RuntimeError('needs a GPU')", "RuntimeError: needs a GPU")],
)
def test_an_error_an_imported_module_raises_is_said_as_the_module_s(tmp_path: Path, monkeypatch, capsys, code: str, error: str) -> None:
    (tmp_path / "raising_models.py").write_text(f"x = 1\n{code}\n")
    monkeypatch.chdir(tmp_path)
    try:
        assert cli.main(["recipes", "--import", "raising_models"]) == 2
    finally:
        sys.modules.pop("raising_models", None)
    assert capsys.readouterr().err == f"prunelab: error: --import raising_models: {error} ({tmp_path / 'raising_models.py'}, line 2)\n"
    assert cli.main(["recipes", "--import", ""]) == 2
    assert "--import needs a module's name" in capsys.readouterr().err


def test_ctrl_c_while_torch_loads_is_one_line(monkeypatch, capsys) -> None:
    """The first second of a command imports torch, before the command's own Ctrl-C handling."""
    import types

    class Loading(types.ModuleType):
        def __getattr__(self, name: str):
            raise KeyboardInterrupt

    monkeypatch.setitem(sys.modules, "prunelab.commands", Loading("prunelab.commands"))
    assert cli.main(["show", "runs/x"]) == 130
    assert capsys.readouterr().err == "prunelab: interrupted before the command started\n"


def test_a_ctrl_c_handler_of_the_caller_s_own_stays_and_a_thread_may_run_a_command(capsys) -> None:
    import signal
    import threading

    def own(*_: object) -> None:
        pass

    previous = signal.signal(signal.SIGINT, own)
    try:
        assert cli.main(["recipes", "gmp"]) == 0
        assert signal.getsignal(signal.SIGINT) is own
    finally:
        signal.signal(signal.SIGINT, previous)
    codes: list[int] = []  # only the main thread may set handlers: another runs the command without
    thread = threading.Thread(target=lambda: codes.append(cli.main(["recipes", "gmp"])))
    thread.start()
    thread.join()
    assert codes == [0]


def test_only_a_process_torchrun_started_ends_with_the_process_that_started_it(monkeypatch) -> None:
    """A command started otherwise lives on when its parent ends (a shell closed on `nohup prunelab run &`)."""
    watched = []
    monkeypatch.setattr(cli, "_end_with_launcher", lambda: watched.append(True))
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert watched == []
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")  # torchrun sets it in each process it starts
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert watched == [True]


def test_ctrl_c_while_torch_loads_is_not_lost_in_an_import_that_drops_it() -> None:
    """torch's C code drops an exception raised while it imports numpy: a Ctrl-C there went
    unnoticed, and the command ran on. A process of its own: this one has imported the commands."""
    code = """if True:
        import importlib.abc, signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as on a terminal, also where pytest runs with SIGINT ignored (started with &)
        class Dropping(importlib.abc.MetaPathFinder):  # Ctrl-C pressed in an import that drops it, as torch's does
            def find_spec(self, name, path=None, target=None):
                if name == "prunelab.commands":
                    try:
                        signal.raise_signal(signal.SIGINT)
                    except (KeyboardInterrupt, ImportError):
                        pass
        sys.meta_path.insert(0, Dropping())
        from prunelab.cli import main
        sys.exit(main(["recipes"]))
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "prunelab: interrupted before the command started\n")
