"""Sweeps: a recipe's grid expanded into recipes, the pivot table, and ``prunelab run`` on a
sweep file sharing one find phase across the grid."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path

import pytest
import yaml

from prunelab.cli import main
from prunelab.config import RecipeError, load_recipe
from prunelab.config.sweep import grid_value, load_plan
from prunelab.report import pivot
from prunelab.runs.runner import run_folder
from prunelab.train import Trainer


def write_sweep(folder: Path, data_dir: Path, grid: dict, table: dict | None = None, arms: dict | None = None, **sections) -> Path:
    recipe = {
        "data": {"name": "mnist1d", "data_dir": str(data_dir)},
        "find": {"epochs": 2, "batch_size": 500},
        "prune": {"method": "oneshot", "sparsity": 0.5},
        "eval": {"epochs": 1, "batch_size": 500, "lr_policy": "ft"},
        "device": "cpu",
        **sections,
        "sweep": {"grid": grid, **({"arms": arms} if arms else {}), **({"table": table} if table else {})},
    }
    path = folder / "tiny_sweep.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def final_accs(out: Path, row: str) -> dict[tuple[str, str], float]:
    """The final accuracy of each run in ``out``, by (its prune.``row``, its eval.lr_policy)."""
    accs = {}
    for run in (p for p in out.iterdir() if (p / "recipe.yaml").exists()):
        recipe = yaml.safe_load((run / "recipe.yaml").read_text())
        accs[str(recipe["prune"][row]), recipe["eval"]["lr_policy"]] = json.loads((run / "summary.json").read_text())["stats"]["final_acc"]["mean"]
    return accs


def one_seed_verdict(accs: dict[tuple[str, str], float], row: str) -> str:
    """The start of the table's verdict on rows crossed with the LR policies ft and llr, by
    hand: one seed has no spread, so any lead is a clear one (seed 004's cross-validation)."""
    winners = {}
    for policy in ("ft", "llr"):
        (best, first), (runner_up, _) = sorted(((acc, r) for (r, p), acc in accs.items() if p == policy), reverse=True)[:2]
        winners[policy] = first if best > runner_up else None  # None: a tie
    if None not in winners.values() and winners["ft"] == winners["llr"]:
        return f"Best in every column (lr_policy ft, lr_policy llr): {row} {winners['ft']}, the consistent winner"
    per_column = ", ".join(f"a tie under lr_policy {p}" if w is None else f"{row} {w} under lr_policy {p}" for p, w in winners.items())
    if None in winners.values():
        return f"No {row} wins every column ({per_column})"
    return f"The best {row} depends on the column ({per_column}): the method and the recipe interact"


def test_load_plan_expands_the_grid(tmp_path, data_dir) -> None:
    grid = {"prune.sparsity": [0.5, 0.7, 0.9], "eval.lr_policy": ["ft", "llr"]}
    plan, sweep = load_plan(write_sweep(tmp_path, data_dir, grid), ["eval.epochs=3"])
    assert len(plan) == 3 * 2
    assert [a for a, _ in plan] == [
        {"prune.sparsity": s, "eval.lr_policy": p} for s, p in itertools.product(grid["prune.sparsity"], grid["eval.lr_policy"])
    ]
    for assignment, recipe in plan:
        assert recipe.prune.sparsity == assignment["prune.sparsity"]
        assert recipe.eval.lr_policy == assignment["eval.lr_policy"]
        assert recipe.eval.epochs == 3  # the override reaches every variant
        assert recipe.find.epochs == 2
    assert sweep.grid == grid and sweep.table is None
    assert len({json.dumps(r.model_dump(mode="json"), sort_keys=True) for _, r in plan}) == 6


def test_overriding_a_swept_key_is_an_error(tmp_path, data_dir) -> None:
    path = write_sweep(tmp_path, data_dir, {"prune.sparsity": [0.5, 0.9]})
    with pytest.raises(RecipeError, match=re.escape("--set prune.sparsity: the sweep sets prune.sparsity (sweep.grid.prune.sparsity: [0.5, 0.9])")):
        load_plan(path, ["prune.sparsity=0.7"])
    with pytest.raises(RecipeError, match=re.escape("--set prune.sparsity: the sweep sets prune.sparsity")):
        load_plan(path, [" prune.sparsity = 0.7"])  # spaced as --set reads it too


def test_a_field_whose_name_begins_with_a_swept_one_is_another_field(tmp_path, data_dir) -> None:
    """prune.sparsity_of is not inside prune.sparsity: setting it leaves the swept values alone."""
    path = write_sweep(tmp_path, data_dir, {"prune.sparsity": [0.5, 0.9]})
    plan, _ = load_plan(path, ["prune.criterion=filter_l1", "prune.scope=global", "prune.sparsity_of=weights"])
    assert [(r.prune.sparsity, r.prune.sparsity_of) for _, r in plan] == [(0.5, "weights"), (0.9, "weights")]


def test_set_adds_a_whole_arm(tmp_path, data_dir) -> None:
    plan, _ = load_plan(write_sweep(tmp_path, data_dir, {}, arms={"short": {}}), ["sweep.arms.long={eval.epochs: 3}"])
    assert [(a["arm"], r.eval.epochs) for a, r in plan] == [("short", 1), ("long", 3)]


def test_an_invalid_grid_value_names_the_variant(tmp_path, data_dir) -> None:
    path = write_sweep(tmp_path, data_dir, {"eval.lr_policy": ["ft", "nonsense"]})
    with pytest.raises(RecipeError, match="eval.lr_policy=nonsense"):
        load_plan(path)
    with pytest.raises(RecipeError, match=re.escape("with the --set overrides [eval.lr_policy=nonsense] is invalid")):
        load_plan(write_sweep(tmp_path, data_dir, {}), ["sweep.grid.eval.lr_policy=[ft, nonsense]"])


SCRATCH_ARMS = {"pruning": {}, "scratch-e": {"eval.rewind": "reinit", "eval.budget": "scratch_e", "eval.lr_policy": None}}


def test_an_empty_arm_or_a_number_for_a_name_is_an_arm(tmp_path, data_dir) -> None:
    plan, _ = load_plan(write_sweep(tmp_path, data_dir, {}, arms={"pruning": None, 1: {"eval.epochs": 3}}))
    assert [(a["arm"], r.eval.epochs) for a, r in plan] == [("pruning", 1), ("1", 3)]


def test_arms_set_their_fields_together_as_one_more_axis(tmp_path, data_dir) -> None:
    path = write_sweep(tmp_path, data_dir, {"prune.sparsity": [0.5, 0.9]}, arms=SCRATCH_ARMS)
    plan, sweep = load_plan(path, ["sweep.arms.scratch-e.eval.epochs=3"])
    assert [a for a, _ in plan] == [{"arm": arm, "prune.sparsity": s} for arm in SCRATCH_ARMS for s in (0.5, 0.9)]
    for assignment, recipe in plan:
        scratch = assignment["arm"] == "scratch-e"
        assert (recipe.eval.rewind, recipe.eval.budget) == (("reinit", "scratch_e") if scratch else ("none", "epochs"))
        assert recipe.eval.lr_policy == (None if scratch else "ft") and recipe.eval.epochs == (3 if scratch else 1)
        assert recipe.prune.sparsity == assignment["prune.sparsity"]
    assert sweep.axes() == {"arm": ["pruning", "scratch-e"], "prune.sparsity": [0.5, 0.9]}


@pytest.mark.parametrize(
    ("grid", "arms", "overrides", "message"),
    [
        ({"eval.rewind": ["none"]}, SCRATCH_ARMS, [], "sweep.arms.scratch-e sets eval.rewind, which the grid sweeps too"),
        ({"arm": ["a"]}, SCRATCH_ARMS, [], "sweep.grid.arm: 'arm' names the axis of sweep.arms"),
        ({}, {}, [], "the sweep needs a grid of fields to sweep, or arms, or both"),
        ({"prune.sparsity": [0.5]}, SCRATCH_ARMS, ["eval.budget=epochs"],
         r"--set eval.budget: arm 'scratch-e' sets eval.budget; override it per arm, e.g. --set 'sweep.arms.scratch-e.eval.budget=…'"),
        ({}, {"a": {"eval.rewind": "init"}, "b": {"eval.rewind": "none"}}, ["eval={epochs: 3}"],
         r"^--set eval: arms 'a', 'b' set eval.rewind; override it per arm, e.g. --set 'sweep.arms.a.eval.rewind=…'$"),
        ({"eval.optimizer.lr": [0.1]}, {}, ["eval.optimizer={lr: 0.05}"], r"--set eval.optimizer: the sweep sets eval.optimizer.lr \(sweep.grid"),
        ({}, {"a": {"eval.rewnd": "init"}}, [], r"\[arm=a\] is invalid:\n  - eval.rewnd: unknown field"),
        ({}, {"lr 0.1": {}}, [], r"sweep.arms: 'lr 0.1' cannot name an arm; write it without dots \(e.g. 1e-2 for 0.01\)"),
        ({}, {0.01: {}}, [], r"sweep.arms: '0.01' cannot name an arm"),
        ({}, {"a": {"eval": {"rewind": "reinit"}}}, [], r"sweep.arms.a.eval: name the fields the arm sets with dots \(eval.<field>: value\)"),
        ({}, {"small": {"eval.optimizer": {"lr": 0.01}}, "big": {}}, ["eval.optimizer.momentum=0.5"],
         "--set eval.optimizer.momentum: arm 'small' sets eval.optimizer"),
        ({}, SCRATCH_ARMS, ["sweep.arms.scratch_e.eval.epochs=3"], r"--set sweep.arms.scratch_e.eval.epochs: the sweep has no arm 'scratch_e' \(arms: 'pruning', 'scratch-e'\)"),
        ({}, SCRATCH_ARMS, ["sweep.arms.scratch_e.seeds=[1]"], r"--set sweep.arms.scratch_e.seeds: the sweep has no arm 'scratch_e'"),
        ({}, {" ": {}}, [], r"sweep.arms: ' ' cannot name an arm"),
        ({"eval.optimizer": [{"name": "sgd"}]}, {"a": {"eval.optimizer.lr": 0.1}}, [], "sweep.arms.a sets eval.optimizer.lr, which the grid sweeps too"),
        ({}, {"a": ["eval.epochs"], "b": {}}, ["sweep.arms.a.eval.epochs=3"],
         r"^--set sweep.arms.a.eval.epochs: sweep.arms.a must be a mapping of fields to values, got \['eval.epochs'\]$"),
    ],
)
def test_arms_that_collide_with_the_grid_or_overrides_are_errors(tmp_path, data_dir, grid, arms, overrides, message) -> None:
    with pytest.raises(RecipeError, match=message):
        load_plan(write_sweep(tmp_path, data_dir, grid, arms=arms), overrides)


def test_a_grid_value_is_named_in_one_line_with_its_keys_in_the_order_given() -> None:
    """A list or mapping names a table's row and a run's label: YAML's own wrapping at 80
    characters or sorting of keys would split the one and rename the other."""
    assert grid_value(list(range(40))) == "[" + ", ".join(str(i) for i in range(40)) + "]"
    assert grid_value({"name": "sgd", "lr": 0.1}) == "{name: sgd, lr: 0.1}"


def test_a_plain_recipe_is_a_plan_of_one() -> None:
    plan, sweep = load_plan(None, ["eval.epochs=4"])
    assert sweep is None and len(plan) == 1
    assert plan[0][0] == {} and plan[0][1] == load_recipe(None, ["eval.epochs=4"])


def test_the_builtin_policy_comparison_is_seed_003_s_table_1_grid() -> None:
    plan, sweep = load_plan("policy_comparison")
    assert len(plan) == 3 * 3 * 6
    assert {r.prune.sparsity for _, r in plan} == {0.7, 0.8, 0.9}
    assert {r.eval.epochs / r.find.epochs for _, r in plan} == {0.025, 0.05, 0.1}  # Table 1: 2.22%, 5.55%, 11.11%
    assert {r.eval.lr_policy for _, r in plan} == {"ft", "lrw", "slr", "clr", "llr", "allr"}
    assert sweep.table.rows == "eval.lr_policy" and sweep.table.columns == ["prune.sparsity", "eval.epochs"]


def _stats(mean: float, std: float) -> dict:
    return {"final_acc": {"mean": mean, "std": std}, "sparsity": {"mean": mean / 2, "std": std}}


def test_pivot_shows_mean_and_std_and_bolds_the_best_of_each_column() -> None:
    results = [
        ({"eval.lr_policy": "ft", "prune.sparsity": 0.5}, _stats(0.80, 0.010)),
        ({"eval.lr_policy": "llr", "prune.sparsity": 0.5}, _stats(0.85, 0.020)),
        ({"eval.lr_policy": "ft", "prune.sparsity": 0.9}, _stats(0.70, 0.001)),
        ({"eval.lr_policy": "llr", "prune.sparsity": 0.9}, _stats(0.65, 0.000)),
    ]
    table = pivot(results, "eval.lr_policy", ["prune.sparsity"], "final_acc")
    lines = table.splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert cells[0] == ["lr_policy", "sparsity 0.5", "sparsity 0.9"]
    assert cells[2] == ["ft", "80.00 ± 1.00", "**70.00 ± 0.10**"]
    assert cells[3] == ["llr", "**85.00 ± 2.00**", "65.00 ± 0.00"]  # seeds that agree, beside others that do not
    assert len(lines) == 4
    # sparsity is in percent too, as in the run summaries
    sparsity = pivot(results, "eval.lr_policy", ["prune.sparsity"], "sparsity")
    assert "**42.50 ± 2.00**" in sparsity and "40.00 ± 1.00" in sparsity


def test_pivot_with_two_column_keys_and_a_missing_cell() -> None:
    results = [
        ({"p": "a", "s": 0.9, "e": 2}, _stats(0.5, 0.0)),
        ({"p": "b", "s": 0.9, "e": 2}, _stats(0.6, 0.0)),
        ({"p": "a", "s": 0.9, "e": 5}, _stats(0.7, 0.0)),
    ]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in pivot(results, "p", ["s", "e"], "final_acc").splitlines()]
    assert cells[0] == ["p", "s 0.9 / e 2", "s 0.9 / e 5"]
    assert cells[2] == ["a", "50.00", "**70.00**"]
    assert cells[3] == ["b", "**60.00**", ""]


def test_cli_runs_a_2x2_sweep_on_one_shared_find_phase(tmp_path, data_dir, capsys) -> None:
    path = write_sweep(
        tmp_path, data_dir, {"eval.lr_policy": ["ft", "llr"], "prune.sparsity": [0.5, 0.8]},
        table={"rows": "eval.lr_policy", "columns": ["prune.sparsity"], "value": "final_acc"},
    )
    out = tmp_path / "runs"
    epochs: dict[str, int] = {}
    original = Trainer.train_epoch

    def counted(self, epoch, **kwargs):
        epochs[self.phase] = epochs.get(self.phase, 0) + 1
        return original(self, epoch, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "train_epoch", counted)
        assert main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    assert epochs == {"find": 2, "eval": 4}  # one find training of 2 epochs, 4 retrainings of 1
    assert len(list((out / ".find").iterdir())) == 1
    runs = sorted(p for p in out.iterdir() if (p / "recipe.yaml").exists())
    assert len(runs) == 4

    made_by, table = (out / "tiny_sweep-table.md").read_text().split("\n\n", 1)
    assert made_by == f"Made by `prunelab run {path}`."  # the recipe and its overrides: where the runs go is not the sweep
    printed, said = capsys.readouterr()
    assert table.strip() in printed
    assert printed.endswith(f"\n4 runs in {out}; table in {out / 'tiny_sweep-table.md'}\n"
                            f"report, with the table as a plot: {out / 'tiny_sweep-report' / 'report.md'}\n")
    # each run said as it starts, with its place in the sweep and its grid values
    assert re.findall(r"^prunelab: running .* \[(.*)\]$", said, flags=re.MULTILINE) == [
        f"{i}/4: eval.lr_policy={policy}, prune.sparsity={sparsity}"
        for i, (policy, sparsity) in enumerate(itertools.product(["ft", "llr"], [0.5, 0.8]), start=1)
    ]
    # and a report of the sweep's runs, made by the same command, that opens with the table and its plot
    report = (out / "tiny_sweep-report" / "report.md").read_text()
    assert report.startswith(f"# prunelab report\n\n{made_by}\n\n")
    assert f"## The sweep's table\n\n{table.strip()}\n\n![the sweep's table](sweep.png)" in report
    assert (out / "tiny_sweep-report" / "sweep.png").read_bytes().startswith(b"\x89PNG")
    assert all(run.name in report for run in runs)
    # The same sweep with another grid: a table of its own beside the first.
    overrides = ["sweep.grid.prune.sparsity=[0.5]"]
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--set", overrides[0]]) == 0
    given = b'{"sweep.grid.prune.sparsity": [0.5]}'  # the parsed overrides, as sorted JSON
    other = out / f"tiny_sweep-{hashlib.sha256(given).hexdigest()[:8]}-table.md"
    made_by_other, other_table = other.read_text().split("\n\n", 1)
    assert made_by_other == f"Made by `prunelab run {path} --set 'sweep.grid.prune.sparsity=[0.5]'`."
    printed = capsys.readouterr().out
    assert other_table.strip() in printed and f"\n2 runs in {out}; table in {other}\n" in printed
    assert (out / "tiny_sweep-table.md").read_text() == f"{made_by}\n\n{table}"
    rows = {}
    for line in table.splitlines():
        if line.startswith("| ft") or line.startswith("| llr"):
            parts = [c.strip() for c in line.strip("|").split("|")]
            rows[parts[0]] = parts[1:]
    assert set(rows) == {"ft", "llr"} and all(len(v) == 2 for v in rows.values())
    assert "sparsity 0.5" in table and "sparsity 0.8" in table
    # Within a column the rows share the base model and the retraining epochs, not the LR schedule:
    # FT stays at the find phase's (constant) 0.1, LLR falls linearly over 8 steps, to 0.1 * 7/8 after one.
    assert ("Comparison setup (seed 004) in every column: S3.1: the same dataset, network, granularity and compression or "
            "speedup; the same base model; the same retraining epochs. Not S3.2: the retraining LR schedules differ "
            "from step 2 on (0.1 / 0.0875; seed 0)") in table  # fmt: skip
    # every cell is the final accuracy of its run, in percent; the best of a column in bold
    finals = {}
    for run in runs:
        recipe = yaml.safe_load((run / "recipe.yaml").read_text())
        stats = json.loads((run / "summary.json").read_text())["stats"]["final_acc"]
        finals[(recipe["eval"]["lr_policy"], recipe["prune"]["sparsity"])] = stats["mean"]
    for column, sparsity in enumerate([0.5, 0.8]):
        best = max(finals[(p, sparsity)] for p in ("ft", "llr"))
        for policy in ("ft", "llr"):
            cell = rows[policy][column]
            assert cell.strip("*") == f"{finals[(policy, sparsity)] * 100:.2f}"
            assert cell.startswith("**") == (finals[(policy, sparsity)] == best)
    # columns of two sparsities are two tasks: no cross-validation verdict across them
    assert "Best in every column" not in table and "depends on the column" not in table


def test_overriding_a_field_inside_a_swept_one_is_an_error(tmp_path, data_dir) -> None:
    """The grid replaces eval.optimizer as a whole, so eval.optimizer.lr=0.5 would be undone."""
    path = write_sweep(tmp_path, data_dir, {"eval.optimizer": [{"name": "sgd", "lr": 0.1}, {"name": "adam", "lr": 0.01}]})
    with pytest.raises(RecipeError, match=re.escape("--set eval.optimizer.lr: the sweep sets eval.optimizer "
                                                    "(sweep.grid.eval.optimizer: [{name: sgd, lr: 0.1}, {name: adam, lr: 0.01}])")):
        load_plan(path, ["eval.optimizer.lr=0.5"])
    plan, _ = load_plan(path, ["eval.epochs=2"])  # a field beside the swept one is fine
    assert [(r.eval.optimizer.name, r.eval.optimizer.lr, r.eval.epochs) for _, r in plan] == [("sgd", 0.1, 2), ("adam", 0.01, 2)]


def test_an_empty_grid_entry_is_an_error(tmp_path, data_dir) -> None:
    path = write_sweep(tmp_path, data_dir, {"prune.sparsity": [0.5], "eval.epochs": []})
    with pytest.raises(RecipeError, match="eval.epochs is empty"):
        load_plan(path)


@pytest.mark.parametrize("key", ["find..epochs", "", ".find"])
def test_a_grid_key_with_an_empty_part_is_named(tmp_path, data_dir, key) -> None:
    path = write_sweep(tmp_path, data_dir, {key: [1]})
    with pytest.raises(RecipeError, match=f"sweep.grid has the key '{re.escape(key)}', a field's dotted path with an empty part"):
        load_plan(path)


@pytest.mark.parametrize(
    ("grid", "arms", "message"),
    [
        ({"prune.sparsity": [0.5, 0.7, 0.5]}, None, r"sweep.grid.prune.sparsity lists 0.5 twice"),
        ({"find.stop_epoch": [None, 1, None]}, None, r"sweep.grid.find.stop_epoch lists 'null' twice"),
        ({"eval.optimizer": [{"name": "sgd"}, {"name": "sgd"}]}, None, r"lists '\{name: sgd\}' twice"),
        ({"prune.sparsity": [0.5]}, {"a": {"eval.epochs": 1}, "b": {"eval.epochs": 1}}, "sweep.arms.b sets the same fields as arm 'a'"),
    ],
)
def test_a_sweep_that_repeats_a_run_is_an_error_before_any_run(tmp_path, data_dir, grid, arms, message) -> None:
    path = write_sweep(tmp_path, data_dir, grid, arms=arms)
    with pytest.raises(RecipeError, match=message):
        load_plan(path)


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"eval.optimizer.lr": [0.01, 0.2], "eval.optimizer": [{"name": "sgd"}]},
         "sweep.grid sweeps both eval.optimizer.lr and eval.optimizer, one inside the other"),
        ({"eval": [{"epochs": 1}, {"epochs": 2}]}, r"sweep.grid.eval: sweep the fields of eval with dots \(eval.<field>: \[...\]\)"),
    ],
    ids=["one-inside-the-other", "whole-section"],
)
def test_grid_keys_that_would_replace_one_another_or_a_section_are_errors(tmp_path, data_dir, grid, message) -> None:
    with pytest.raises(RecipeError, match=message):
        load_plan(write_sweep(tmp_path, data_dir, grid))


@pytest.mark.parametrize(
    ("grid", "labels"),
    [
        ({"eval.optimizer.lr": [0.01, 0.2]}, ("eval.optimizer.lr=0.01", "eval.optimizer.lr=0.2")),  # FT reads no LR of eval's
        ({"seeds": [[0], [1]]}, ("seeds=[0]", "seeds=[1]")),
    ],
    ids=["unread-field", "seeds"],
)
def test_grid_cells_that_are_one_run_are_an_error_before_any_run(tmp_path, data_dir, capsys, grid, labels) -> None:
    out = tmp_path / "runs"
    assert main(["run", str(write_sweep(tmp_path, data_dir, grid)), "--out", str(out), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert f"prunelab: error: [{labels[0]}] and [{labels[1]}] are the same run, " in error
    assert not out.exists() or not any(out.iterdir())


def test_a_table_over_a_list_valued_field_names_its_rows_as_yaml(tmp_path, data_dir, capsys) -> None:
    """Widths are lists: the table's rows and the plot are named by them as YAML writes them."""
    path = write_sweep(tmp_path, data_dir, {"model.options.hidden_sizes": [[16], [32, 8]]}, {"rows": "model.options.hidden_sizes"},
                       model={"name": "mlp"})  # fmt: skip
    out = tmp_path / "runs"
    assert main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    rows = {line.split("|")[1].strip() for line in capsys.readouterr().out.splitlines() if line.startswith("| [")}
    assert rows == {"[16]", "[32, 8]"}
    assert (next(out.glob("*-report")) / "sweep.png").exists()


def test_a_repeated_value_given_with_set_is_an_error_before_any_run(tmp_path, data_dir) -> None:
    path = write_sweep(tmp_path, data_dir, {"prune.sparsity": [0.5, 0.9]})
    with pytest.raises(RecipeError, match=r"sweep.grid.prune.sparsity lists 0.5 twice"):
        load_plan(path, ["sweep.grid.prune.sparsity=[0.5, 0.5]"])


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"rows": "eval.lr_polcy"}, r"sweep.table names 'eval.lr_polcy', which the grid does not sweep \(prune.sparsity\)$"),
        ({"rows": "prune.sparsity", "columns": ["eval.epochs"]}, "sweep.table names 'eval.epochs'"),
        ({"rows": "prune.sparsity", "value": "final_accuracy"}, "- sweep.table.value: Input should be 'dense_acc'"),
        ({"rows": "prune.sparsity", "columns": ["prune.sparsity"]}, r"sweep.table names 'prune.sparsity' twice, as rows and a column; "),
        ({"rows": "prune.sparsity", "columns": ["eval.lr_policy", "eval.lr_policy"]}, "sweep.table names 'eval.lr_policy' twice, as two columns"),
    ],
)
def test_a_table_naming_unswept_keys_or_unknown_values_is_an_error_before_any_run(tmp_path, data_dir, table, message) -> None:
    grid = {"prune.sparsity": [0.5, 0.9], **({"eval.lr_policy": ["ft", "llr"]} if "eval.lr_policy" in table.get("columns", []) else {})}
    path = write_sweep(tmp_path, data_dir, grid, table)
    with pytest.raises(RecipeError, match=message):
        load_plan(path)


def test_a_table_must_name_every_field_swept_over_several_values(tmp_path, data_dir) -> None:
    grid = {"eval.lr_policy": ["ft", "llr"], "prune.sparsity": [0.5, 0.9], "eval.epochs": [1]}
    path = write_sweep(tmp_path, data_dir, grid, {"rows": "eval.lr_policy"})
    with pytest.raises(RecipeError, match="must name every swept field; add prune.sparsity to sweep.table.columns"):
        load_plan(path)
    plan, sweep = load_plan(path, ["sweep.table.columns=[prune.sparsity]"])  # eval.epochs has one value
    assert len(plan) == 4 and sweep.table.columns == ["prune.sparsity"]


def test_pivot_refuses_two_runs_in_one_cell() -> None:
    results = [({"p": "ft", "s": 0.5}, {"final_acc": {"mean": 0.3, "std": 0.0}}),
               ({"p": "ft", "s": 0.9}, {"final_acc": {"mean": 0.2, "std": 0.0}})]  # fmt: skip
    with pytest.raises(ValueError, match="two runs fall into the cell p=ft"):
        pivot(results, "p", [], "final_acc")


def test_set_changes_the_grid_and_table_or_makes_a_sweep(tmp_path, data_dir) -> None:
    path = write_sweep(tmp_path, data_dir, {"prune.sparsity": [0.5, 0.9]}, {"rows": "prune.sparsity"})
    plan, _ = load_plan(path, [
        "sweep.grid.eval.epochs=[1, 2]", "sweep.grid.prune.sparsity=[0.7]", " sweep.table.columns = [eval.epochs]",
        " eval.batch_size = 250",
    ])
    assert [(a["prune.sparsity"], r.eval.epochs, r.eval.batch_size) for a, r in plan] == [(0.7, 1, 250), (0.7, 2, 250)]
    plan, sweep = load_plan(None, ["sweep.grid.prune.sparsity=[0.5, 0.8]", "sweep.table.rows=prune.sparsity"])
    assert [r.prune.sparsity for _, r in plan] == [0.5, 0.8] and sweep.table.rows == "prune.sparsity"


def test_a_sweep_is_refused_where_one_recipe_is_needed() -> None:
    with pytest.raises(RecipeError, match="'policy_comparison' is a sweep.*give a recipe without a sweep section"):
        load_recipe("policy_comparison")


def test_the_table_header_names_the_seeds_its_numbers_cover(tmp_path, data_dir, capsys) -> None:
    """A run directory keeps the seeds of earlier commands, and the table averages them all."""
    path = write_sweep(tmp_path, data_dir, {"eval.lr_policy": ["ft", "llr"]}, {"rows": "eval.lr_policy"}, seeds=[0])
    out = tmp_path / "runs"
    assert main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    assert "final_acc, in % (of seed 0):" in capsys.readouterr().out
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--set", "seeds=[1]"]) == 0
    assert "final_acc, in % (mean ± std over seeds [0, 1]):" in capsys.readouterr().out


def test_a_bad_arm_fails_before_any_arm_trains(tmp_path, data_dir, capsys) -> None:
    """Checks that need the data (a rewinding step past the find phase) run for every arm
    before the first trains, and the error names the arm."""
    path = write_sweep(tmp_path, data_dir, {"eval.rewind": ["none", "step:1000"]})
    out = tmp_path / "runs"
    assert main(["run", str(path), "--out", str(out), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "prunelab: error: [eval.rewind=step:1000] eval.rewind=step:1000 lies past the end of the find phase" in error
    assert not out.exists() or not any(out.iterdir())  # nothing trained, not even the good arm


def test_set_sweep_null_runs_the_base_recipe_and_a_bare_sweep_must_be_a_mapping(tmp_path, data_dir) -> None:
    path = write_sweep(tmp_path, data_dir, {"prune.sparsity": [0.5, 0.7]})
    plan, sweep = load_plan(path, ["sweep=null", "eval.epochs=3"])
    assert sweep is None and len(plan) == 1
    assert plan[0][1].prune.sparsity == 0.5 and plan[0][1].eval.epochs == 3  # the base recipe's own
    plan, sweep = load_plan(path, ["sweep={grid: {prune.sparsity: [0.6, 0.8, 0.9]}}"])  # replaced whole
    assert [recipe.prune.sparsity for _, recipe in plan] == [0.6, 0.8, 0.9]
    with pytest.raises(RecipeError, match=r"sweep: Input should be a valid dictionary"):
        load_plan(path, ["sweep=3"])
    with pytest.raises(RecipeError, match=r"^the sweep section must be a mapping \(grid, arms, table\), got 3$"):
        load_plan(path, ["sweep=3", "sweep.grid.eval.epochs=[1, 2]"])
    with pytest.raises(RecipeError, match=r"^sweep.grid must be a mapping of fields to lists of values, got \[0.5\]$"):
        load_plan(path, ["sweep={grid: [0.5]}", "sweep.grid.eval.epochs=[1, 2]"])


def test_a_table_of_methods_under_retraining_recipes_reads_the_winners(tmp_path, data_dir, capsys) -> None:
    """Seed 004's cross-validation: criteria (rows) each retrained with both recipes (columns)."""
    path = write_sweep(
        tmp_path, data_dir, {"prune.criterion": ["magnitude", "random"], "eval.lr_policy": ["ft", "llr"]},
        table={"rows": "prune.criterion", "columns": ["eval.lr_policy"], "value": "final_acc"},
    )  # fmt: skip
    out = tmp_path / "runs"
    assert main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    table = (out / "tiny_sweep-table.md").read_text()
    accs = final_accs(out, "criterion")
    assert len(accs) == 4
    assert one_seed_verdict(accs, "criterion") in table, table


def test_an_arm_may_copy_the_lpr_of_an_arm_before_it(tmp_path, data_dir) -> None:
    """seed 002's "preserve LPR" baseline as an arm after the run it copies: checked when it
    runs, not before the run it reads exists."""
    out = tmp_path / "runs"
    plain = write_sweep(tmp_path, data_dir, {"prune.sparsity": [0.8]})
    ((_, reference),), _ = load_plan(plain)
    arms = {"magnitude": {}, "preserve lpr": {"prune.criterion": "random", "prune.scope": "lpr_of",
                                              "prune.lpr_of": str(run_folder(out, reference)), "eval.rewind": "reinit"}}  # fmt: skip
    path = write_sweep(tmp_path, data_dir, {"prune.sparsity": [0.8]}, arms=arms)
    assert main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    layers = [json.loads((folder / "seed-0" / "layer_sparsity.json").read_text()) for folder in sorted(out.glob("oneshot-*"))]
    assert len(layers) == 2 and layers[0] == layers[1]  # the same count left in every layer
    # the report names the runs by their arms, in the sweep's order; of the same ratios, one column
    report = (out / "tiny_sweep-report" / "report.md").read_text()
    assert "| layer | weights | magnitude = preserve lpr |" in re.sub(" +", " ", report), report


def test_an_arm_may_preserve_the_masks_of_a_late_rewinding_ticket_trained_before_it(tmp_path, data_dir) -> None:
    """seed 002's "preserve mask" control (its Figure A14): the masks of an IMP ticket found
    rewinding to epoch 1, every level's, evaluated from new random weights; checked when it
    runs, after the ticket's run of the same sweep."""
    out, imp = tmp_path / "runs", {"method": "imp", "rate": 0.5}
    evaluation = {"epochs": 2, "batch_size": 500, "lr_policy": None}
    ticket = {"prune.masks_from": "find", "eval.rewind": "epoch:1"}
    plain = write_sweep(tmp_path, data_dir, {"prune.levels": [2]}, arms={"ticket": ticket}, prune=imp, eval=evaluation)
    ((_, reference),), _ = load_plan(plain)
    preserve = {"prune.scope": "masks_of", "prune.masks_of": str(run_folder(out, reference)), "eval.rewind": "reinit"}
    path = write_sweep(tmp_path, data_dir, {"prune.levels": [2]}, arms={"ticket": ticket, "preserve mask": preserve}, prune=imp, eval=evaluation)
    assert main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    (ticket_run,) = [folder for folder in out.glob("imp-*") if folder.name == run_folder(out, reference).name]
    (preserved,) = [folder for folder in out.glob("imp-*") if folder != ticket_run]
    for key in ("level-1/prune", "level-2/prune"):
        assert (preserved / "seed-0" / "masks" / f"{key}.safetensors").read_bytes() == (ticket_run / "seed-0" / "masks" / f"{key}.safetensors").read_bytes()
    events = {run: json.loads((run / "seed-0" / "events.json").read_text()) for run in (ticket_run, preserved)}
    assert events[preserved]["level-2/eval/rewind"] == {"rewind": "reinit"}
    assert "level-2/find/rewind" in events[ticket_run] and "level-2/find/rewind" not in events[preserved]  # no H_find training finds its masks


def test_a_winner_between_rows_of_other_tasks_is_said_to_compare_unlike_with_unlike(tmp_path, data_dir, capsys) -> None:
    """Rows of sparsities under columns of a training setting: one row wins a column, but its
    runs prune to another sparsity than the other row's, which seed 004's S1 does not allow."""
    path = write_sweep(
        tmp_path, data_dir, {"prune.sparsity": [0.5, 0.8], "eval.lr_policy": ["ft", "llr"]},
        table={"rows": "prune.sparsity", "columns": ["eval.lr_policy"], "value": "final_acc"},
    )
    assert main(["run", str(path), "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    table = (tmp_path / "runs" / "tiny_sweep-table.md").read_text()
    assert one_seed_verdict(final_accs(tmp_path / "runs", "sparsity"), "sparsity") in table, table
    said = re.search(r"But the rows of a column are not runs of one task, so this compares unlike with unlike "
                     r"\(seed 004's S1 fails\): in column eval.lr_policy=ft, (.*)\.$", table, flags=re.MULTILINE)
    assert said, table
    assert "the speedups (" in said.group(1) and said.group(1).endswith("sparsities 49.99% / 80.00%")  # of the prunable weights, round(s * n) each
