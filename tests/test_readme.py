"""The README's examples work as written."""

import re
from pathlib import Path

import yaml

from prunelab.config import validate

README = (Path(__file__).parents[1] / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(_blocks("python")[0], namespace)
    pruner = namespace["pruner"]
    assert abs(pruner.layer_sparsity()["0.weight"] - 0.9) < 1e-3
    assert (tmp_path / "masks.safetensors").stat().st_size > 0


def test_recipe_example_is_valid():
    recipe = validate(yaml.safe_load(_blocks("yaml")[0]))
    assert recipe.prune.method == "oneshot" and recipe.eval.lr_policy == "llr"


def test_first_commands_are_the_ci_test_command():
    commands = _blocks("bash")[0].splitlines()
    test_command = commands[1].split("#")[0].strip()
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert test_command in ci
