"""The README's examples work as written."""

import re
import typing
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from prunelab.config import validate

README = (Path(__file__).parents[1] / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(_blocks("python")[0], namespace)
    pruner, model = namespace["pruner"], namespace["model"]
    assert list(pruner.masks) == ["0.weight"]  # exclude=["2"] leaves the last layer alone
    assert bool((model[2].weight != 0).all())
    assert abs(pruner.layer_sparsity()["0.weight"] - 0.9) < 1e-3
    assert int((model[0].weight == 0).sum()) == round(0.9 * 4000)
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "masks.safetensors"))
    assert set(saved) == {"mask:0.weight", "shape:0.weight"} and saved["shape:0.weight"].tolist() == [100, 40]


@pytest.mark.filterwarnings("ignore::UserWarning")  # a tiny GMP budget is warned about
def test_the_from_python_example_runs_a_recipe_and_reads_it_back(tmp_path, monkeypatch, data_dir):
    (block,) = [block for block in _blocks("python") if "run_recipe(load_recipe(" in block]
    tiny = ["find.epochs=1", "eval.epochs=3", "eval.lr_schedule.milestones=[2]", "prune.stabilization_epochs=0",
            "prune.pruning_epochs=1", "model.options.channels=8", "seeds=[0]", "device=cpu"]  # fmt: skip
    assert '["find.epochs=5"]' in block
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRUNELAB_DATA", str(data_dir))  # the session's MNIST-1D, not the user's cache (generated there if absent)
    namespace: dict = {}
    exec(block.replace('["find.epochs=5"]', repr(tiny)), namespace)
    results, pruner = namespace["results"], namespace["pruner"]
    assert results.folder == namespace["folder"] and 0 <= results.stats["final_acc"]["mean"] <= 1
    assert results.layer_sparsity == pytest.approx(pruner.layer_sparsity())


def test_recipe_example_is_the_default_recipe_with_three_seeds():
    from prunelab.config import load_recipe

    recipe = validate(yaml.safe_load(_blocks("yaml")[0]))
    default = load_recipe("default")
    assert recipe.seeds == [0, 1, 2]
    assert recipe.model_dump(exclude={"seeds"}) == default.model_dump(exclude={"seeds"})


def test_first_commands_are_the_ci_test_command():
    commands = _blocks("bash")[0].splitlines()
    test_command = commands[1].split("#")[0].strip()
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert test_command in ci


def test_structured_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an example that is warned about teaches the wrong thing
        exec(_blocks("python")[1], namespace)
    channels, small, rebuilt = namespace["channels"], namespace["small"], namespace["rebuilt"]
    assert channels.channel_sparsity() == 0.5
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in namespace["model"].parameters())
    # The saved channels rebuild the small architecture, whose weights then load into it.
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in small.state_dict().items()}
    rebuilt.load_state_dict(small.state_dict())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(rebuilt.eval()(x), small.eval()(x))


def test_arms_example_is_the_builtin_value_of_pruning_sweep():
    documented = yaml.safe_load(_blocks("yaml")[1])["sweep"]
    builtin = yaml.safe_load((Path(__file__).parents[1] / "src" / "prunelab" / "recipes" / "value_of_pruning.yaml").read_text())
    assert documented["arms"] == builtin["sweep"]["arms"] and documented["grid"] == builtin["sweep"]["grid"]
    assert documented["table"] == {k: v for k, v in builtin["sweep"]["table"].items() if k != "value"}


def test_own_model_example_registers_a_model_and_a_dataset_recipes_can_name(tmp_path):
    import numpy as np

    from prunelab.config import load_recipe
    from prunelab.data import DATASETS, load_dataset
    from prunelab.models import MODELS, build_model

    (block,) = [b for b in _blocks("python") if b.startswith("# my_models.py")]
    command = [line for line in _blocks("bash") if "data.name=my_data" in line][0].splitlines()[-1]
    overrides = [arg.strip("'") for arg in command.split("--set ")[1:]]
    # A user's arrays as numpy saves them: float64 inputs, int64 labels of 3 classes.
    np.savez(tmp_path / "my_data.npz", x_train=np.arange(10.0).reshape(5, 2), y_train=np.array([0, 1, 2, 1, 0]),
             x_test=np.ones((2, 2)), y_test=np.array([2, 0]))  # fmt: skip
    try:
        exec(block, {})
        recipe = load_recipe(None, ["model.name=my_mlp", "model.options={hidden: 128}"])
        model = build_model(recipe.model.name, num_classes=10, input_shape=(1, 40), **recipe.model.options)
        assert model[1].out_features == 128 and model[3].out_features == 10
        recipe = load_recipe(None, [o.strip().replace("data_dir=.", f"data_dir={tmp_path}") for o in overrides])
        data = load_dataset(recipe.data.name, recipe.data.data_dir)
        assert data.num_classes == 3 and data.input_shape == (2,) and data.y_test.tolist() == [2, 0]
        # Normalized by the training inputs' mean 4.5 and std sqrt(9.1667): 1.0 is -1.1489 of them.
        assert data.x_test[0, 0].item() == pytest.approx((1 - 4.5) / (55 / 6) ** 0.5, abs=1e-5)
        assert abs(data.x_train.mean().item()) < 1e-6
        model = build_model(recipe.model.name, data.num_classes, data.input_shape, **recipe.model.options)
        assert model(data.x_test).shape == (2, 3)
    finally:
        MODELS.pop("my_mlp", None)
        DATASETS.pop("my_data", None)


def test_preserve_mask_example_is_two_valid_runs_with_as_many_levels():
    import shlex

    from prunelab.config import load_recipe

    (block,) = [block for block in _blocks("bash") if "masks_of" in block]
    ticket, preserved = (shlex.split(line.split("#")[0].replace("<ticket run>", "imp-ticket")) for line in block.strip().splitlines())
    recipes = [load_recipe(command[2], command[4::2]) for command in (ticket, preserved)]
    assert recipes[0].prune.masks_from == "find" and recipes[0].eval.rewind == "epoch:2"
    assert recipes[1].prune.masks_of.endswith("runs/imp-ticket") and recipes[1].eval.rewind == "reinit"
    assert recipes[1].prune.level_count == recipes[0].prune.level_count



def _choices(annotation) -> set[str]:
    """The values of a schema field: its Literal's (an optional one's too); the prune section's methods."""
    args = typing.get_args(annotation)
    if all(isinstance(arg, str) for arg in args):
        return set(args)
    choices = set()
    for arm in args:  # Literal[...] | None, or the union of the methods' prune sections
        if typing.get_args(arm):
            choices |= _choices(arm)
        elif hasattr(arm, "model_fields"):
            choices.add(arm.model_fields["method"].default)
    return choices


def test_recipe_example_comments_list_every_choice_the_schema_has():
    """Each ``key: value  # a | b | c`` comment of the recipe example names the schema's choices for that key, all of them."""
    from prunelab.config.schema import EvalConfig, LRScheduleConfig, OneShotConfig, Recipe

    fields = {"lr_schedule": LRScheduleConfig.model_fields["name"], "method": Recipe.model_fields["prune"],
              "scope": OneShotConfig.model_fields["scope"], "criterion": OneShotConfig.model_fields["criterion"],
              "lr_policy": EvalConfig.model_fields["lr_policy"], "device": Recipe.model_fields["device"]}  # fmt: skip
    commented = {}
    for line in _blocks("yaml")[0].splitlines():
        key, _, comment = line.partition("#")
        if "|" in comment:  # the choices, less the words in brackets
            commented[key.strip().split(":")[0]] = set(re.findall(r"\w+", re.sub(r"\(.*?\)", "", comment)))
    for key, field in fields.items():
        assert commented[key] == _choices(field.annotation), key


def test_ci_runs_the_readme_s_test_command():
    """CI checks what a new user runs: the second command of the README, word for word."""
    first_block = _blocks("bash")[0].splitlines()
    test_command = first_block[1].split("#")[0].strip()
    ci_script = (Path(__file__).parents[1] / ".ci" / "run").read_text().splitlines()
    assert "pytest" in test_command and ci_script[-1] == test_command
