"""Damaged files of a run directory or of the shared find phases (cut short by a full disk, say,
or edited by hand): one clear error that names the file and says what to do, not a traceback."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError, safe_open

from prunelab import cli
from prunelab.config import RecipeError
from prunelab.runs.io import DamagedRunError, read_json
from prunelab.runs.runner import FIND_CACHE, run_recipe

# recipe and run: the tiny run of conftest.py, shared read only.
DAMAGED = "the run folder is damaged: remove that file if it is there, then run the run's command again, which rebuilds a seed's results from its checkpoint (a seed without one trains anew)"


@pytest.fixture(autouse=True)
def in_a_folder_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test in a current folder of its own, where ``report`` without ``--out`` writes: a
    report that failed on a damaged run leaves no empty ``report`` folder there."""
    monkeypatch.chdir(tmp_path)
    yield
    assert not (tmp_path / "report").exists()


@pytest.fixture
def out(run: Path, tmp_path: Path) -> Path:
    """A copy of the run's --out folder (the run and its find phase), free to damage."""
    shutil.copytree(run.parent, tmp_path, dirs_exist_ok=True)
    return tmp_path


def run_command(tiny_overrides: list[str], out: Path) -> list[str]:
    sets = [arg for item in tiny_overrides for arg in ("--set", item)]
    return ["run", "--no-progress", "--out", str(out), *sets]


@pytest.mark.parametrize(
    ("content", "kind", "keys", "problem"),
    [
        (None, dict, [], "is missing"),
        ('{"a": 1,\n', dict, [], "is not valid JSON (line 2, column 1)"),
        ("\xff\xfe garbage", dict, [], "is not valid JSON (line 1, column 1)"),
        ("[1]", dict, [], "is not a JSON object"),
        ("{}", list, [], "is not a JSON array"),
        ('{"a": 1}', dict, ["a", "b", "c"], "lacks 'b', 'c'"),
    ],
)
def test_read_json_names_the_file_and_what_is_wrong(content, kind, keys, problem: str, tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    if content is not None:
        path.write_text(content, encoding="latin-1")
    with pytest.raises(DamagedRunError) as raised:
        read_json(path, kind, keys)
    assert str(raised.value) == f"{path} {problem}: {DAMAGED}"


def test_a_field_of_another_shape_is_named_not_the_missing_one_beside_it(tmp_path: Path) -> None:
    """A file both lacking a field and holding one of another type names the latter, the edit."""
    path = tmp_path / "layer_sparsity.json"
    path.write_text('{"conv.weight": {"numel": 10, "sparsity": "x"}}')  # lacks remaining
    with pytest.raises(DamagedRunError) as raised:
        read_json(path)
    assert str(raised.value) == (f"{path} holds conv.weight.sparsity that is not as prunelab writes it "
                                 f"(Input should be a valid number): {DAMAGED}")


def test_read_json_returns_what_is_there(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"a": [1, 2]}')
    (tmp_path / "b.json").write_text("[1, 2]")
    assert read_json(tmp_path / "a.json", keys=["a"]) == {"a": [1, 2]}
    assert read_json(tmp_path / "b.json", list) == [1, 2]


@pytest.mark.parametrize("name", ["summary.json", "metrics.json", "model.safetensors"])
def test_running_again_rebuilds_a_finished_seeds_damaged_or_missing_results(name: str, out: Path, run: Path, tiny_overrides: list[str], capsys) -> None:
    """From the seed's checkpoint, without training: the same files, and show reads them again."""
    seed = out / run.name / "seed-0"
    kept = {path.name: path.read_bytes() for path in seed.iterdir() if path.name in ("metrics.json", "model.safetensors", "masks.safetensors")}
    summary = read_json(seed / "summary.json")
    if name == "summary.json":
        (seed / name).write_text("{\n")  # cut short
    else:
        (seed / name).unlink()
    assert cli.main(run_command(tiny_overrides, out)) == 0
    assert "seed 0 picks up where it stopped" in capsys.readouterr().err
    assert {name: (seed / name).read_bytes() for name in kept} == kept
    rebuilt = read_json(seed / "summary.json")
    assert {**rebuilt, "wall_seconds": None} == {**summary, "wall_seconds": None}  # the time: as of the last checkpoint
    assert cli.main(["show", str(out / run.name)]) == 0


@pytest.mark.parametrize("where", ["find phase", "seed"])
def test_a_damaged_checkpoint_is_named_and_removing_it_trains_its_part_again(
    where: str, out: Path, run: Path, tiny_overrides: list[str], capsys
) -> None:
    seed = out / run.name / "seed-0"
    (seed / "summary.json").unlink()  # the seed is run again: from its checkpoint, or copied from the find phase's
    if where == "find phase":
        shutil.rmtree(seed)
        (checkpoint,) = (out / FIND_CACHE).glob("*/seed-0/checkpoint.safetensors")
    else:
        checkpoint = seed / "checkpoint.safetensors"
    checkpoint.write_bytes(checkpoint.read_bytes()[:-16])  # cut short in its tensor data
    with pytest.raises(SafetensorError) as cut_short:  # safetensors' own reason, worded differently by its versions
        safe_open(str(checkpoint), framework="pt")
    assert cli.main(run_command(tiny_overrides, out)) == 2
    err = capsys.readouterr().err
    assert err.endswith(f"prunelab: error: {checkpoint} is damaged ({cut_short.value}); remove it to train again what it held\n")
    assert "Traceback" not in err
    checkpoint.unlink()  # as the message says
    assert cli.main(run_command(tiny_overrides, out)) == 0
    assert json.loads((seed / "summary.json").read_text())["seed"] == 0


@pytest.mark.parametrize(
    ("file", "edit", "where"),
    [
        ("seed-0/layer_sparsity.json", lambda data: {"a": 1}, "a"),
        ("seed-0/lr_log.json", lambda data: {"find": 1}, "find"),
        ("seed-0/metrics.json", lambda data: [1, 2], "0"),
        ("seed-0/summary.json", lambda data: {**data, "final_acc": "x"}, "final_acc"),
        ("seed-0/summary.json", lambda data: {**data, "environment": "cpu"}, "environment"),
        ("seed-0/summary.json", lambda data: {**data, "levels": [{"level": 1, "sparsity": 0.2, "final_acc": "x"}]}, "levels.0.final_acc"),
        ("seed-0/events.json", lambda data: {**data, "prune": "x"}, "prune"),
        ("summary.json", lambda data: {**data, "seeds": 0}, "seeds"),
        ("summary.json", lambda data: {**data, "stats": {**data["stats"], "final_acc": {"mean": "0.9", "std": 0}}}, "stats.final_acc.mean"),
    ],
)
def test_run_files_of_another_shape_are_named(out: Path, run: Path, file: str, edit, where: str, capsys) -> None:
    """Valid JSON, edited by hand: named, not a TypeError from deep inside show, compare or report."""
    path = out / run.name / file
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    for command in ("show", "compare", "report"):
        assert cli.main([command, str(out / run.name)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"prunelab: error: {path} holds {where} that is not as prunelab writes it (") and err.endswith(f"): {DAMAGED}\n")


@pytest.mark.parametrize(
    ("edit", "where", "reason"),
    [
        (lambda prune: {**prune, "lpr_during_find": {"epochs": [0], "layer_sparsity": {}, "distance": "x"}}, "prune.lpr_during_find.distance", "a valid list"),
        (lambda prune: {**prune, "lpr_during_find": {"epochs": [0], "layer_sparsity": {"a": 0.5}, "distance": [0.1]}}, "prune.lpr_during_find.layer_sparsity.a", "a valid list"),
        (lambda prune: {**prune, "group_sparsity": {"features.0": "x"}}, "prune.group_sparsity.features.0", "a valid number"),
        (lambda prune: {**prune, "group_sparsity": {"features.0": 1.0}}, "prune.group_sparsity.features.0", "less than 1"),  # no group loses all
    ],
)
def test_recorded_steps_of_another_shape_are_named(out: Path, run: Path, edit, where: str, reason: str, capsys) -> None:
    """The LPR record and channel sparsities that show and report read: a KeyError, a format
    error or a plot of nonsense before."""
    path = out / run.name / "seed-0" / "events.json"
    events = json.loads(path.read_text())
    path.write_text(json.dumps({**events, "prune": edit(events["prune"])}))
    for command in (["show"], ["report", "--out", str(out / "report")]):
        assert cli.main([command[0], str(out / run.name), *command[1:]]) == 2
        assert capsys.readouterr().err == f"prunelab: error: {path} holds {where} that is not as prunelab writes it (Input should be {reason}): {DAMAGED}\n"


def test_channels_without_their_recorded_sparsity_are_named(out: Path, run: Path, capsys) -> None:
    seed = out / run.name / "seed-0"
    (seed / "channels.json").write_text('{"features.0": [0, 1]}')
    for command in (["show"], ["report", "--out", str(out / "report")]):
        assert cli.main([command[0], str(out / run.name), *command[1:]]) == 2
        assert capsys.readouterr().err == (f"prunelab: error: {seed / 'events.json'} lacks prune.group_sparsity.features.0, a channel group of "
                                           f"{seed / 'channels.json'}: {DAMAGED}\n")  # fmt: skip


def test_a_run_summary_without_its_sparsity_is_named(out: Path, run: Path, capsys) -> None:
    path = out / run.name / "summary.json"
    summary = json.loads(path.read_text())
    del summary["stats"]["sparsity"]
    path.write_text(json.dumps(summary))
    for command in ("show", "compare", "report"):
        assert cli.main([command, str(out / run.name)]) == 2
        assert capsys.readouterr().err == f"prunelab: error: {path} lacks the stats of sparsity: {DAMAGED}\n"


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda text: "", "is empty"),  # as a full disk leaves it
        (lambda text: text[: text.index("\nfind:")], "lacks seeds, find, prune, eval, which a run writes"),  # cut short
        (lambda text: "\x90" + text, "is not a recipe: a recipe is YAML text in UTF-8, and byte 0 is not (invalid start byte)"),
    ],
)
def test_a_damaged_recipe_file_is_named_not_read_as_the_defaults(out: Path, run: Path, recipe, damage, problem, capsys) -> None:
    """Read with the schema's defaults, an emptied or cut-short recipe.yaml would pass for the
    recipe of another experiment (in run, show, compare and report)."""
    path = out / run.name / "recipe.yaml"
    path.write_bytes(damage(path.read_text()).encode("latin-1"))  # the recipe's text is ASCII
    more_seeds = recipe.model_copy(update={"seeds": [0, 1]})
    message = f"{path} (a damaged run folder? remove that file and run the run's command again: it is written anew) {problem}"
    with pytest.raises(RecipeError) as error:
        run_recipe(more_seeds, out, progress=False)
    assert str(error.value) == message
    assert not (out / run.name / "seed-1").exists()
    for command in ("show", "compare", "report"):
        assert cli.main([command, str(out / run.name)]) == 2
        assert capsys.readouterr().err == f"prunelab: error: {message}\n"


def test_a_damaged_or_missing_snapshot_is_named(tmp_path: Path) -> None:
    """Snapshots (weights kept for rewinding) are read as every run file is: a bad one named."""
    from prunelab.runs.io import read_tensors, save_tensors

    path = tmp_path / "init.safetensors"
    with pytest.raises(DamagedRunError, match=rf"^{re.escape(str(path))} is missing: {re.escape(DAMAGED)}$"):
        read_tensors(path)
    save_tensors({"w": torch.ones(3)}, path)
    assert torch.equal(read_tensors(path)["w"], torch.ones(3))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # cut short
    with pytest.raises(DamagedRunError, match=rf"^{re.escape(str(path))} is damaged \(.*\): {re.escape(DAMAGED)}$"):
        read_tensors(path)


def test_a_write_that_fails_names_the_file_meant_and_leaves_no_temporary(tmp_path: Path) -> None:
    from prunelab.runs.io import write_text

    (tmp_path / "metrics.csv").mkdir()  # where a file must go
    with pytest.raises(OSError, match=rf"^cannot write {re.escape(str(tmp_path / 'metrics.csv'))}: Is a directory$"):
        write_text(tmp_path / "metrics.csv", "a")
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_a_full_disk_or_an_unusable_folder_names_the_file_meant(tmp_path: Path, monkeypatch) -> None:
    from prunelab import atomic
    from prunelab.runs import io

    def full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(atomic.os, "fsync", full)
        with pytest.raises(OSError, match=rf"^cannot write {re.escape(str(tmp_path / 'summary.json'))}: No space left on device$"):
            io.write_text(tmp_path / "summary.json", "{}")
    assert not any(tmp_path.iterdir())  # no temporary left behind
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OSError, match=rf"^cannot write {re.escape(str(tmp_path / 'a-file' / 'x.json'))}: "):
        io.write_text(tmp_path / "a-file" / "x.json", "{}")


def test_a_finished_run_run_again_on_a_full_disk_writes_nothing_and_shows_its_results(
    out: Path, run: Path, tiny_overrides: list[str], monkeypatch, capsys
) -> None:
    """Every file it would write holds those bytes already: none is written, so a disk with no
    room left (or mounted read-only) does not stop it."""
    from prunelab import atomic
    from prunelab.runs.io import write_text

    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}

    def full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    assert cli.main(run_command(tiny_overrides, out)) == 0
    assert "final_acc" in capsys.readouterr().out
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
    with pytest.raises(OSError, match="No space left on device"):  # a write that changes a file still meets the full disk
        write_text(out / run.name / "summary.json", "{}")


@pytest.mark.parametrize(
    ("file", "edit", "missing"),
    [
        ("seed-0/lr_log.json", None, None),
        ("seed-0/summary.json", lambda data: {**data, "levels": [{"sparsity": 0.2, "final_acc": 0.5}]}, "'levels.0.level'"),
    ],
)
def test_a_missing_run_file_or_field_is_named(out: Path, run: Path, file: str, edit, missing: str | None, capsys) -> None:
    path = out / run.name / file
    if edit is None:
        path.unlink()
    else:
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    for command in ("show", "compare", "report"):
        assert cli.main([command, str(out / run.name)]) == 2
        said = "is missing" if missing is None else f"lacks {missing}"
        assert capsys.readouterr().err == f"prunelab: error: {path} {said}: {DAMAGED}\n"
