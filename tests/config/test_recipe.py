"""Recipes: validation with errors that name the field and the value, ``--set`` overrides,
built-in recipes, YAML round trips and run names."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from pydantic import ValidationError

from prunelab.config import (
    EvalConfig,
    FindConfig,
    OneShotConfig,
    Recipe,
    RecipeError,
    apply_override,
    builtin_recipes,
    experiment_settings,
    load_recipe,
    recipe_yaml,
    run_name,
    run_settings,
    unused_settings,
    validate,
)
from prunelab.config.sweep import load_plan
from prunelab.methods.common import late_rewinding
from prunelab.train import build_schedule


def error_of(overrides: list[str], source: str | Path | None = None) -> str:
    with pytest.raises(RecipeError) as caught:
        load_recipe(source, overrides)
    return str(caught.value)


def error_line(message: str, field: str) -> str:
    """The line of a validation error that reports ``field`` (exactly that dotted path)."""
    lines = [line for line in message.splitlines() if re.match(rf"\s*- {re.escape(field)}: ", line)]
    assert lines, f"no error line for {field!r} in:\n{message}"
    return lines[0]


# -- validation errors name the field and the bad value -----------------------------------


@pytest.mark.parametrize(
    ("override", "field", "shown"),
    [
        # bad types
        ("find.epochs=ten", "find.epochs", "'ten'"),
        ("find.epochs=2.5", "find.epochs", "2.5"),
        ("find.batch_size=[100]", "find.batch_size", "[100]"),
        ("find.optimizer.lr=fast", "find.optimizer.lr", "'fast'"),
        ("data.download=maybe", "data.download", "'maybe'"),
        ("seeds=zero", "seeds", "'zero'"),
        ("seeds=[0, one]", "seeds.1", "'one'"),
        ("find=3", "find", "3"),
        # out-of-range values
        ("prune.sparsity=-0.1", "prune.sparsity", "-0.1"),
        ("find.optimizer.lr=-0.1", "find.optimizer.lr", "-0.1"),
        ("eval.optimizer.lr=0", "eval.optimizer.lr", "0"),
        ("find.optimizer.momentum=1", "find.optimizer.momentum", "1"),
        ("find.optimizer.weight_decay=-1.0e-4", "find.optimizer.weight_decay", "-0.0001"),
        ("find.optimizer.betas=[0.9, 1.0]", "find.optimizer.betas.1", "1.0"),
        ("find.batch_size=0", "find.batch_size", "0"),
        ("find.epochs=-1", "find.epochs", "-1"),
        ("eval.warmup_fraction=1", "eval.warmup_fraction", "1"),
        ("seeds=[]", "seeds", "[]"),
        ("seeds=[0, 1, 0]", "seeds", "[0, 1, 0]"),
        # unknown names of things
        ("prune.criterion=l1", "prune.criterion", "'l1'"),
        ("prune.scope=everywhere", "prune.scope", "'everywhere'"),
        ("eval.lr_policy=xyz", "eval.lr_policy", "'xyz'"),
        ("find.optimizer.name=rmsprop", "find.optimizer.name", "'rmsprop'"),
        ("find.lr_schedule.name=exp", "find.lr_schedule.name", "'exp'"),
        ("device=tpu", "device", "'tpu'"),
        ("threads=0", "threads", "0"),
        # bad rewind strings
        ("eval.rewind=epoch:x", "eval.rewind", "'epoch:x'"),
        ("eval.rewind=epochs:3", "eval.rewind", "'epochs:3'"),
        ("eval.rewind=epoch:-1", "eval.rewind", "'epoch:-1'"),
        ("eval.rewind=Init", "eval.rewind", "'Init'"),
        ("eval.rewind=step:k", "eval.rewind", "'step:k'"),
        ("eval.rewind='epoch:'", "eval.rewind", "'epoch:'"),  # no K
        # a boolean where a number belongs (pydantic alone would read true as 1)
        ("find.epochs=true", "find.epochs", "not the boolean true"),
        ("find.optimizer.lr=true", "find.optimizer.lr", "not the boolean true"),
        ("prune.sparsity=false", "prune.sparsity", "not the boolean false"),
        ("seeds=[0, true]", "seeds.1", "not the boolean true"),
        # a fraction must be below 1 (percentages: test_the_percentage_hint_is_only_for_fractions_a_percentage_could_mean)
        ("prune.sparsity=1.0", "prune.sparsity", "less than 1 (got 1.0)"),
        # numbers must be finite
        ("find.optimizer.lr=.inf", "find.optimizer.lr", "finite number (got inf)"),
        ("eval.lr_schedule.warmup_epochs=.inf", "eval.lr_schedule.warmup_epochs", "finite number (got inf)"),
        # milestones must increase strictly
        ("find.lr_schedule.milestones=[3, 2]", "find.lr_schedule.milestones", "[3, 2]"),
        ("find.lr_schedule.milestones=[2, 2]", "find.lr_schedule.milestones", "[2, 2]"),
        ("find.lr_schedule.milestones=[0, 2]", "find.lr_schedule.milestones.0", "0"),
    ],
)
def test_bad_values_are_errors_naming_field_and_value(override: str, field: str, shown: str) -> None:
    message = error_of([override])
    line = error_line(message, field)
    assert shown in line.removeprefix(f"  - {field}:"), line
    assert message.startswith("built-in recipe 'default' with the --set overrides is invalid")


@pytest.mark.parametrize(
    ("override", "field"),
    [("bogus=1", "bogus"), ("find.optimizer.lrr=0.1", "find.optimizer.lrr"), ("eval.lr_polcy=llr", "eval.lr_polcy"),
     ("data.root=/data", "data.root"), ("prune.rate=0.2", "prune.rate"), ("find.lr_schedule.milestone=[2]", "find.lr_schedule.milestone")],
)
def test_unknown_keys_are_errors_at_any_depth(override: str, field: str) -> None:
    line = error_line(error_of([override]), field)
    assert "unknown field" in line


@pytest.mark.parametrize(
    ("override", "field", "hint"),
    [
        ("find.optimiser.lr=0.1", "find.optimiser", "did you mean find.optimizer?"),
        ("eval.lr_polcy=llr", "eval.lr_polcy", "did you mean eval.lr_policy?"),
        ("prune.sparsty=0.5", "prune.sparsty", "did you mean prune.sparsity?"),
        ("find.batch=500", "find.batch", "did you mean find.batch_size?"),  # a word of the field, not a typo
        ("prune.rate=0.2", "prune.rate", "prune.rate is read by method imp, bimp, not oneshot"),
        ("data.root=/data", "data.root", "data has the fields name, data_dir, download, augment"),
        ("bogus=1", "bogus", "a recipe has the fields description, data, model, "),
        ("sweep.table={rows: a, colums: [b]}", "sweep.table.colums", "did you mean sweep.table.columns?"),
        ("sparsity=0.5", "sparsity", "did you mean prune.sparsity?"),  # a section's field at the top level
        ("epochs=3", "epochs", "did you mean find.epochs or eval.epochs?"),
    ],
)
def test_unknown_keys_name_the_field_meant(override: str, field: str, hint: str) -> None:
    with pytest.raises(RecipeError) as caught:
        load_plan(overrides=[override])
    assert hint in error_line(str(caught.value), field)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["prune.scope=ratios"], "scope is ratios but ratios is not given: give each layer to prune its ratio, e.g. ratios: {fc1: 0.9}"),
        (["prune.ratios.features.0=0.5"], "ratios is given but scope is global: set scope: ratios to prune each layer to its ratio, or leave ratios out"),
        (["prune.lpr_of=runs/x"], "lpr_of is given but scope is global: set scope: lpr_of to copy that run's LPR, or leave lpr_of out"),
        (["prune.masks_of=runs/x"], "masks_of is given but scope is global: set scope: masks_of to copy that run's masks, or leave masks_of out"),
    ],
)
def test_a_scope_without_its_setting_or_a_setting_without_its_scope_says_which(overrides: list[str], message: str) -> None:
    # Both read "scope 'ratios' and the ratios mapping go together", which did not say what to add.
    assert error_line(error_of(overrides), "prune") == f"  - prune: {message}"


def test_an_lr_policy_without_a_find_phase_to_derive_it_from_says_what_to_retrain_with() -> None:
    # find.epochs 0: pruning the weights of model.weights as they are, say
    assert error_line(error_of(["find.epochs=0", "eval.lr_policy=clr"]), "eval.lr_policy") == (
        "  - eval.lr_policy: clr derives the retraining LR from the find phase's LR schedule, but find.epochs is 0: "
        "retrain with eval's own lr_schedule (eval.lr_policy: null)"
    )
    load_recipe(None, ["find.epochs=0", "eval.lr_policy=null"])


def test_union_fields_are_reported_at_the_path_the_user_writes() -> None:
    # pydantic puts the method's tag in the location (prune.oneshot.sparsity); the message
    # must show the path that --set and the YAML use.
    message = error_of(["prune.sparsity=1.5", "prune.method=imp", "prune.rate=1"])
    assert "prune.imp" not in message and "prune.oneshot" not in message
    assert "1.5" in error_line(message, "prune.sparsity")
    assert "1" in error_line(message, "prune.rate")
    # a model-level check of the prune section is reported at ``prune`` too
    message = error_of(["prune.scope=ratios"])
    assert "prune.oneshot" not in message
    assert "ratios" in error_line(message, "prune")


def test_model_options_must_be_the_model_s() -> None:
    """Switching models keeps the recipe's options, which may belong to the old model."""
    message = error_of(["model.name=mlp"])
    assert "model 'mlp' has no option 'channels'; its options are: hidden_sizes" in error_line(message, "model.options")
    assert "unknown model 'alexnet'" in error_line(error_of(["model.name=alexnet"]), "model.name")
    # the builder's own arguments come from the dataset
    message = error_of(["model.options={num_classes: 5, input_shape: [1, 40]}"])
    assert "input_shape and num_classes come from the dataset (data.name), not from the model's options" in error_line(message, "model.options")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.options.channels=abc", "channels must be an int, got 'abc'"),
        ("model.options.channels=2.5", "channels must be an int, got 2.5"),
        ("model.options.channels=true", "channels must be an int, got True"),
        ("model.options.channels=0", "channels must be at least 1"),
    ],
)
def test_model_option_values_are_checked_against_the_builder(override, expected) -> None:
    assert expected in error_line(error_of([override]), "model.options")


def test_an_unknown_dataset_is_named_before_any_run() -> None:
    line = error_line(error_of(["data.name=cifar99"]), "data.name")
    assert "unknown dataset 'cifar99' (did you mean 'cifar10'?); known datasets: cifar10" in line and "--import MODULE" in line


def test_a_misspelt_model_name_suggests_the_registered_one() -> None:
    # Among 20 names, a one-letter slip was hard to spot in the list alone.
    assert "unknown model 'resent20' (did you mean 'resnet20'?); known models: conv2" in error_line(error_of(["model.name=resent20"]), "model.name")
    assert "unknown model 'alexnet'; known models" in error_line(error_of(["model.name=alexnet"]), "model.name")  # nothing close


@pytest.mark.parametrize("seeds", ["[-1]", "[9223372036854775808]", "[99999999999999999999]"])  # 2**63: one past
def test_seeds_must_fit_a_generator_seed(seeds) -> None:
    assert "seeds must lie in [0, 2**63)" in error_line(error_of([f"seeds={seeds}"]), "seeds")


def test_unknown_method_names_the_method_and_the_choices() -> None:
    message = error_of(["prune.method=foo"])
    assert "'foo'" in error_line(message, "prune.method")
    for method in ("oneshot", "gmp", "imp", "bimp"):
        assert method in message


@pytest.mark.parametrize(
    ("override", "field", "hint"),
    [("seeds=0,1", "seeds", "[0,1]"), ("seeds=3", "seeds", "[3]"), ("prune.exclude=classifier", "prune.exclude", "[classifier]"),
     ("find.lr_schedule.milestones=10,20", "find.lr_schedule.milestones", "[10,20]")],
)
def test_a_list_given_without_brackets_is_shown_with_them(override, field, hint) -> None:
    assert error_line(error_of([override]), field).endswith(f": a list, e.g. {hint}")


def test_a_boolean_for_a_list_is_not_shown_in_brackets() -> None:
    """`seeds: true` is no list with its brackets left out: [True] would be no list of seeds either."""
    assert error_line(error_of(["seeds=true"]), "seeds") == "  - seeds: Input should be a valid list (got True)"


def test_a_misspelt_method_suggests_the_one_meant() -> None:
    assert error_line(error_of(["prune.method=gmpp"]), "prune.method").endswith(
        "prune.method: unknown value 'gmpp' (did you mean 'gmp'?); expected one of oneshot, gmp, imp, bimp")


def test_a_prune_section_without_method_prunes_once() -> None:
    # As a recipe without a prune section does.
    assert validate({"prune": {"sparsity": 0.5}}).prune == OneShotConfig(sparsity=0.5)


def test_cross_field_checks() -> None:
    message = error_of(["find.optimizer.nesterov=true", "find.optimizer.momentum=0"])
    assert "nesterov" in error_line(message, "find.optimizer")
    message = error_of(["prune.method=bimp", "prune.budget_epochs=10", "prune.initial_epochs=10"])
    assert "initial_epochs" in error_line(message, "prune")
    for method in ("imp", "bimp"):  # no level could reach sparsity 0
        message = error_of([f"prune.method={method}", "prune.sparsity=0"])
        assert "target sparsity above 0" in error_line(message, "prune.sparsity")
    # BIMP's initial training is linear to find.lr_schedule.final_lr, whatever find.lr_schedule.name says
    message = error_of(["prune.method=bimp", "eval.lr_policy=null", "find.lr_schedule.name=constant", "find.lr_schedule.final_lr=0.2"])
    assert "find.lr_schedule.final_lr=0.2 is above find.optimizer.lr=0.1: bimp's initial training" in message
    message = error_of(["find.epochs=0"])  # the default eval.lr_policy needs the find phase's LR log
    assert "find.epochs is 0" in error_line(message, "eval.lr_policy")
    message = error_of(["eval.lr_policy=lrw", "eval.epochs=5", "find.epochs=3"])
    assert "lrw replays the last eval.epochs=5 epochs of the find phase, which trains only find.epochs=3" in message
    for policy in ("null", "ft", "lrw"):
        message = error_of([f"eval.lr_policy={policy}", "eval.warmup_fraction=0.1"])
        assert "eval.warmup_fraction warms up the restarting LR policies" in message, policy
    # a scratch budget adds at least the find phase's epochs, more than LRW can replay
    message = error_of(["eval.lr_policy=lrw", "eval.epochs=1", "eval.rewind=reinit", "eval.budget=scratch_e"])
    assert "eval.budget: scratch_e adds the pipeline's epochs to the retraining, more than the 40 epochs" in message


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        (["find.lr_schedule.warmup_epochs=41"], "find.lr_schedule.warmup_epochs=41.0 is longer than the find phase (find.epochs=40)"),
        (["eval.lr_policy=null", "eval.lr_schedule.warmup_epochs=30.5"],
         "eval.lr_schedule.warmup_epochs=30.5 is longer than the eval phase (eval.epochs=30)"),
        # BIMP's initial training is its find phase
        (["prune.method=bimp", "eval.lr_policy=null", "find.lr_schedule.warmup_epochs=16"],
         "find.lr_schedule.warmup_epochs=16.0 is longer than the find phase (prune.initial_epochs=15)"),
    ],
)
def test_a_warmup_longer_than_its_phase_is_an_error(overrides, error) -> None:
    assert error in error_of(overrides)


@pytest.mark.parametrize(
    ("overrides", "unused"),
    [
        (["find.lr_schedule.warmup_epochs=40", "eval.epochs=2"], []),  # as long as the phase
        # eval schedules that are not read: named as such, not checked
        (["eval.lr_schedule.warmup_epochs=31"], ["eval.lr_schedule.warmup_epochs=31.0 is not used: the LR policy llr"]),
        (["prune.method=bimp", "eval.lr_policy=null", "eval.lr_schedule.warmup_epochs=31"],
         ["eval.lr_schedule.warmup_epochs=31.0 is not used: "]),
        # a scratch budget makes the phase longer than eval.epochs
        (["eval.lr_policy=null", "eval.rewind=reinit", "eval.budget=scratch_e", "eval.lr_schedule.warmup_epochs=31"], []),
    ],
)
def test_warmups_that_fit_or_are_not_read_are_valid(overrides, unused) -> None:
    messages = [m for m in unused_settings(load_recipe(overrides=overrides)) if "warmup" in m]
    assert len(messages) == len(unused) and all(m.startswith(u) for m, u in zip(messages, unused)), messages


def test_an_invalid_plan_names_the_overrides_as_part_of_its_origin() -> None:
    with pytest.raises(RecipeError, match=r"^built-in recipe 'default' with the --set overrides is invalid"):
        load_plan(overrides=["find.lr_schedule.warmup_epochs=41"])


@pytest.mark.parametrize(
    ("source", "at_the_limit", "one_past", "error"),
    [
        # rewinding to the very end of the find phase keeps its final weights
        (None, ["find.epochs=3", "eval.rewind=epoch:3", "eval.lr_policy=null", "eval.epochs=4"],
         ["find.epochs=3", "eval.rewind=epoch:4", "eval.lr_policy=null", "eval.epochs=5"],
         "eval.rewind=epoch:4 lies past the end of the find phase (find.epochs=3)"),
        (None, ["find.epochs=3", "eval.rewind=epoch:3"], ["find.epochs=3", "eval.rewind=epoch:4"],
         "eval.rewind=epoch:4 lies past the end of the find phase (find.epochs=3)"),
        # GMP from a sparsity straight to the same one: no gradual part, but not inverted
        (None, ["prune.method=gmp", "eval.lr_policy=null", "prune.sparsity=0.5", "prune.init_sparsity=0.5"],
         ["prune.method=gmp", "eval.lr_policy=null", "prune.sparsity=0.5", "prune.init_sparsity=0.51"],
         "init_sparsity=0.51 is above sparsity=0.5"),
        # BIMP's linear initial training may end at its start, not above it
        ("bimp", ["find.lr_schedule.final_lr=0.1"], ["find.lr_schedule.final_lr=0.1001"],
         "find.lr_schedule.final_lr=0.1001 is above find.optimizer.lr=0.1"),
        # BIMP: exactly one retraining epoch per level
        ("bimp", ["prune.budget_epochs=4", "prune.initial_epochs=2", "prune.levels=2"],
         ["prune.budget_epochs=4", "prune.initial_epochs=2", "prune.levels=3"],
         "= 2 epochs cannot cover 3 IMP levels"),
        # LRW replays the find phase's last epochs: all of them, at most
        (None, ["eval.lr_policy=lrw", "find.epochs=3", "eval.epochs=3"], ["eval.lr_policy=lrw", "find.epochs=3", "eval.epochs=4"],
         "eval.lr_policy lrw replays the last eval.epochs=4 epochs of the find phase, which trains only find.epochs=3"),
        # IMP: 1 - 0.999^1000 = 0.63230 reaches 0.6323 at level 1000 (0.6324 only at 1001)
        (None, ["prune.method=imp", "prune.rate=0.001", "prune.sparsity=0.6323"], ["prune.method=imp", "prune.rate=0.001", "prune.sparsity=0.6324"],
         "rate=0.001 takes 1,001 levels to reach sparsity=0.6324; at most 1000 levels"),
    ],
    ids=["rewind-last-epoch", "rewind-last-epoch-with-policy", "gmp-init-equals-final", "bimp-linear-to-its-start", "bimp-one-epoch-per-level",
         "lrw-whole-find-phase", "imp-a-thousand-levels"],
)
def test_settings_exactly_at_their_limit_are_valid(source, at_the_limit, one_past, error) -> None:
    """Each limit is inclusive: the value at it validates, one past it is the error."""
    assert isinstance(load_recipe(source, at_the_limit), Recipe)  # no RecipeError
    assert error in error_of(one_past, source)


def test_a_count_of_one_is_said_in_the_singular() -> None:
    """BIMP's budget of one retraining epoch for two levels: '1 epoch', not '1 epochs'."""
    error = error_of(["prune.budget_epochs=3", "prune.initial_epochs=2", "prune.levels=2"], "bimp")
    assert "prune.budget_epochs - prune.initial_epochs = 1 epoch cannot cover 2 IMP levels" in error


def test_late_rewinding_across_batch_sizes_rounds_to_the_nearest_eval_step() -> None:
    """Find batches of 500 and eval batches of 300 on 4000 examples: epochs of 8 and 14
    steps (13 full batches and one of 100). Rewinding to find step K resumes the eval LR
    schedule at the same fraction of an epoch, K / 8 * 14 eval steps, rounded to the
    nearest step: step 5 (2500 examples) lies at 8.75 eval steps, so the LR resumes at 9."""
    find_phase = FindConfig(epochs=2, batch_size=500)

    def resume(rewind: str) -> tuple[int, int] | None:
        return late_rewinding(find_phase, EvalConfig(epochs=2, batch_size=300, rewind=rewind), 4000)

    assert resume("step:5") == (5, 9)  # 8.75 -> 9, not 8
    assert resume("step:13") == (13, 23)  # 22.75 -> 23
    assert resume("step:3") == (3, 5)  # 5.25 -> 5
    assert resume("epoch:1") == (8, 14)  # whole epochs map to whole epochs
    assert resume("init") is None


def test_every_error_is_reported_at_once() -> None:
    message = error_of(["find.epochs=ten", "eval.rewind=back", "seeds=[]"])
    for field in ("find.epochs", "eval.rewind", "seeds"):
        error_line(message, field)


def test_validate_accepts_a_mapping_and_names_its_origin() -> None:
    assert validate({}) == Recipe()
    with pytest.raises(RecipeError, match=r"^my recipe is invalid:\n  - find\.epochs: .*'x'"):
        validate({"find": {"epochs": "x"}}, "my recipe")


# -- the overrides ---------------------------------------------------------------------------


def test_set_parses_yaml_values() -> None:
    recipe = load_recipe(overrides=[
        "find.epochs=3",                      # int
        "prune.sparsity=0.75",                # float
        "find.optimizer.weight_decay=5e-4",   # YAML 1.1 reads this as a string; still a float
        "seeds=[1, 2,3]",                     # list
        "data.augment=false",                 # bool
        "eval.lr_policy=null",                # null
        "eval.rewind=epoch:2",                # a string with a colon
        "description=lr=0.1, then 0.01",      # the first = ends the key
        "model={name: mlp, options: {hidden_sizes: [10, 5]}}",  # a mapping
        "find.lr_schedule={name: multistep, milestones: [1, 2]}",
    ])
    assert recipe.find.epochs == 3 and isinstance(recipe.find.epochs, int)
    assert recipe.prune.sparsity == 0.75
    assert recipe.find.optimizer.weight_decay == 5e-4 and isinstance(recipe.find.optimizer.weight_decay, float)
    assert recipe.seeds == [1, 2, 3]
    assert recipe.data.augment is False
    assert recipe.eval.lr_policy is None
    assert recipe.eval.rewind == "epoch:2"
    assert recipe.description == "lr=0.1, then 0.01"
    assert recipe.model.options == {"hidden_sizes": [10, 5]}
    assert recipe.find.lr_schedule.name == "multistep" and recipe.find.lr_schedule.milestones == (1, 2)
    # untouched settings keep the recipe's values
    assert recipe.find.batch_size == 100 and recipe.find.optimizer.lr == 0.1


def test_set_creates_sections_and_later_overrides_win() -> None:
    data: dict = {}
    apply_override(data, "find.optimizer.lr=0.5")
    apply_override(data, "find.optimizer.lr=0.25")
    apply_override(data, "find.epochs=1")
    assert data == {"find": {"optimizer": {"lr": 0.25}, "epochs": 1}}
    assert validate(data).find.optimizer.lr == 0.25


def test_set_fills_a_section_left_empty(tmp_path: Path) -> None:
    """YAML reads an empty `eval:` as null: --set eval.epochs=2 sets a field of it, as of a
    section not written at all, instead of calling eval a value."""
    path = tmp_path / "empty-section.yaml"
    path.write_text("data: {name: mnist1d}\neval:\n")
    assert load_recipe(path, ["eval.epochs=2"]).eval == EvalConfig(epochs=2)


def test_a_mapping_without_a_space_after_a_colon_is_an_error() -> None:
    """YAML reads {features.3:0.8} as the key "features.3:0.8" without a value."""
    assert error_of(["prune.scope=ratios", "prune.ratios={features.0: 0.5, features.3:0.8}"]) == (
        "override 'prune.ratios={features.0: 0.5, features.3:0.8}': write a mapping with a space after each colon, e.g. {name: 0.5}")
    data: dict = {}
    apply_override(data, "eval={lr_policy: null, epochs: 2}")  # a null value is not a missing space
    assert data == {"eval": {"lr_policy": None, "epochs": 2}}


@pytest.mark.parametrize("override", ["find.epochs.x=3", "seeds.first=1", "prune.method.name=gmp"])
def test_set_on_a_scalar_path_is_an_error(override: str) -> None:
    message = error_of([override])
    assert override.partition("=")[0] in message and "not a section" in message
    assert repr(override.split(".")[-2]) in message  # names the value that is not a section


@pytest.mark.parametrize(
    ("override", "comment"),
    [("description=exp #3", "#3"), ("description=#3", "#3"), ("seeds=[0, 1] # two seeds", "# two seeds"), ("prune.sparsity=0.9 #", "#")],
)
def test_a_set_value_that_yaml_would_cut_at_a_comment_is_an_error_saying_to_quote_it(override: str, comment: str) -> None:
    """On a command line '#' is text: YAML would silently drop it and what follows (a
    description 'exp', seeds taken without their note, a value of None)."""
    key, _, raw = override.partition("=")
    assert error_of([override]) == (
        f"override {override!r}: YAML reads {comment!r} as a comment and drops it; quote the value to keep it, e.g. {key}='{raw}', "
        "or leave the comment out"
    )


def test_a_hash_inside_a_word_or_quoted_is_kept() -> None:
    recipe = load_recipe(None, ["description=run#3", "find.epochs=2"])
    assert recipe.description == "run#3"
    assert load_recipe(None, ["description='exp #3'"]).description == "exp #3"


@pytest.mark.parametrize("override", ["noequals", "=3"])
def test_set_needs_key_and_value(override: str) -> None:
    assert "key.sub=value" in error_of([override])


def test_overrides_given_as_one_string_are_an_error() -> None:
    """A string would be read character by character."""
    for load in (load_recipe, lambda source, overrides: load_plan(source, overrides)):
        with pytest.raises(TypeError, match=r"^overrides must be a list of 'key.sub=value' strings, got the string 'eval.epochs=3'$"):
            load(None, "eval.epochs=3")
        with pytest.raises(TypeError, match=r"^overrides must be a list of 'key.sub=value' strings, got \[5\]$"):
            load(None, [5])
        with pytest.raises(TypeError, match=r"^overrides must be a list of 'key.sub=value' strings, got \['eval.epochs=3', 5\]$"):
            load(None, ["eval.epochs=3", 5])
        with pytest.raises(TypeError, match=re.escape("as --set takes them (['find.epochs=2', 'seeds=[0, 1]']), not a mapping")):
            load(None, {"find.epochs": 2, "seeds": [0, 1]})
        with pytest.raises(TypeError, match=re.escape("(['eval.lr_policy=null', 'find.optimizer={lr: 0.1}'])")):
            load(None, {"eval.lr_policy": None, "find.optimizer": {"lr": 0.1}})
        with pytest.raises(TypeError, match=r"^a recipe is a file's path or a built-in recipe's name, got dict \(recipe data as a dict: prunelab.config.validate\)$"):
            load({"prune": {}}, [])


def test_set_with_invalid_yaml_value() -> None:
    message = error_of(["seeds=[1,"])
    assert message == ("override 'seeds=[1,': the value is not valid YAML: line 1, column 4: expected the node "
                       "content, but found '<stream end>' (while parsing a flow node)")  # fmt: skip


# -- recipe files -----------------------------------------------------------------------------


def test_invalid_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("find:\n  epochs: [1, 2\nprune: {}\n")
    message = error_of([], path)
    assert str(path) in message and "not valid YAML" in message


def test_a_tab_indent_is_named_as_one(tmp_path: Path) -> None:
    path = tmp_path / "tabbed.yaml"
    path.write_text("prune:\n\tsparsity: 0.9\n")
    assert error_of([], path).endswith("line 2, column 1: found character '\\t' that cannot start any token "
                                       "(while scanning for the next token); indent with spaces: YAML takes no tabs")


def test_a_key_given_twice_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text("data: {name: mnist1d}\nfind: {epochs: 2, epochs: 3}\n")
    message = error_of([], path)
    assert "duplicate key 'epochs'" in message and "line 2" in message


def test_a_key_given_twice_in_an_override_is_an_error_too() -> None:
    message = error_of(["prune.scope=ratios", "prune.ratios={features.2: 0.5, features.2: 0.8}"])
    assert message == ("override 'prune.ratios={features.2: 0.5, features.2: 0.8}': the value is not valid YAML: "
                       "line 1, column 19: duplicate key 'features.2'")  # fmt: skip


def test_an_empty_key_is_named_as_one(tmp_path: Path) -> None:
    path = tmp_path / "empty-key.yaml"
    for text, where in [('"": 1\n', '""'), ('prune: {"": 1}\n', 'prune.""')]:
        path.write_text(text)
        assert f'  - {where}: unknown field' in error_of([], path)


def test_yaml_merge_keys_work_and_the_keys_beside_them_override_theirs(tmp_path: Path) -> None:
    path = tmp_path / "merged.yaml"
    path.write_text("find: &phase {epochs: 2, batch_size: 500}\neval:\n  <<: *phase\n  epochs: 3\n")
    recipe = load_recipe(path)
    assert (recipe.find.epochs, recipe.eval.epochs, recipe.eval.batch_size) == (2, 3, 500)


@pytest.mark.parametrize(("text", "kind"), [("? [a]\n: 1\n", "a list"), ("find: {epochs: 1, {a: 1}: 2}\n", "a mapping")])
def test_a_list_or_mapping_as_a_key_is_an_error(tmp_path: Path, text: str, kind: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    assert f"a key must be a name, not {kind}" in error_of([], path)


def test_a_folder_given_as_the_recipe_is_named_as_one(tmp_path: Path) -> None:
    # It was said to be no recipe file "and no built-in recipe of that name", as a typo would be.
    assert error_of([], tmp_path).startswith(f"{tmp_path} is a folder, not a recipe: give a recipe's YAML file or a built-in recipe's name (bimp, ")


def test_a_misspelt_recipe_file_or_name_suggests_the_one_there_is(tmp_path: Path) -> None:
    (tmp_path / "oneshot_cnn.yaml").write_text("seeds: [0]\n")
    assert "no built-in recipe of that name (did you mean 'oneshot_cnn.yaml'?); " in error_of([], tmp_path / "oneshot_cnn.yml")
    (tmp_path / "mlp.yml").write_text("seeds: [0]\n")
    assert "(did you mean 'mlp.yml'?)" in error_of([], tmp_path / "mlp.yaml")
    assert "no built-in recipe of that name (did you mean 'gmp'?); built-in recipes: bimp, " in error_of([], "gmpp")
    assert "no built-in recipe of that name; built-in recipes: " in error_of([], tmp_path / "zzz")  # nothing close: no guess


def test_a_recipe_file_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- find\n- eval\n")
    assert "must be a mapping" in error_of([], path) and "list" in error_of([], path)


def test_errors_in_a_file_name_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("find:\n  optimizer: {name: sgd, lrr: 0.1}\n")
    message = error_of([], path)
    assert message.startswith(f"{path} is invalid")
    assert "unknown field" in error_line(message, "find.optimizer.lrr")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "{}\n"], ids=["no-bytes", "only-comments", "empty-mapping"])
def test_an_empty_recipe_file_is_an_error(tmp_path: Path, text: str) -> None:
    """It would run the schema's defaults, which are not the built-in default recipe."""
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    assert error_of([], path).startswith(f"{path} is empty: a recipe needs at least one section")


def test_unknown_recipe_name_lists_the_builtins() -> None:
    message = error_of([], "no_such_recipe")
    assert "'no_such_recipe'" in message and "default" in message


def test_recipe_file_with_overrides(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("prune: {method: oneshot, sparsity: 0.5}\nseeds: [3]\n")
    recipe = load_recipe(path, ["prune.sparsity=0.8"])
    assert recipe.prune == OneShotConfig(sparsity=0.8) and recipe.seeds == [3]


# -- built-in recipes ------------------------------------------------------------------------


def test_builtin_recipes_are_listed_with_a_description() -> None:
    recipes = builtin_recipes()
    assert "default" in recipes
    for name, description in recipes.items():
        assert description.strip() and "\n" not in description, name


@pytest.mark.parametrize("name", sorted(builtin_recipes()))
def test_builtin_recipe_validates(name: str) -> None:
    plan, _ = load_plan(name)  # a plain recipe is a plan of one; a sweep, one recipe per combination
    assert plan
    for _, recipe in plan:
        assert isinstance(recipe, Recipe)
        assert recipe.description.strip().split("\n")[0] == builtin_recipes()[name]
        assert run_name(recipe).startswith(f"{recipe.prune.method}-{recipe.model.name}-{recipe.data.name}-")
    assert len({run_name(recipe) for _, recipe in plan}) == len(plan)  # every combination has its own folder


def test_default_recipe_is_the_documented_one() -> None:
    recipe = load_recipe()
    assert recipe == load_recipe("default")
    assert recipe.prune.method == "oneshot" and recipe.prune.sparsity == 0.9 and recipe.prune.scope == "global"
    assert recipe.data.name == "mnist1d" and recipe.model.name == "mnist1d_cnn"
    assert recipe.eval.lr_policy == "llr" and recipe.seeds == [0]


@pytest.mark.parametrize("name", sorted(builtin_recipes()))
def test_resolved_yaml_round_trips(name: str, tmp_path: Path) -> None:
    plan, _ = load_plan(name, ["seeds=[4, 5]"])
    for index, (_, recipe) in enumerate(plan):
        text = recipe_yaml(recipe)
        assert yaml.safe_load(text)["prune"]["method"] == recipe.prune.method
        path = tmp_path / f"resolved-{index}.yaml"
        path.write_text(text)
        again = load_recipe(path)
        assert again == recipe and run_name(again) == run_name(recipe) and again.seeds == [4, 5]


def test_recipes_are_immutable() -> None:
    recipe = load_recipe()
    with pytest.raises(ValidationError, match="frozen"):
        recipe.find.epochs = 3  # type: ignore[misc]


# -- run names ------------------------------------------------------------------------------


def test_run_name_is_stable() -> None:
    name = run_name(load_recipe())
    assert re.fullmatch(r"oneshot-mnist1d_cnn-mnist1d-[0-9a-f]{8}", name)
    assert run_name(load_recipe()) == name == run_name(load_recipe("default"))
    # the same settings written differently give the same name
    assert run_name(load_recipe(overrides=["find.optimizer.lr=0.10"])) == name
    assert run_name(load_recipe(overrides=["eval.rewind=none"])) == name  # the schema's default, spelt out


def test_run_name_hashes_the_settings_off_the_schema_defaults_and_the_method() -> None:
    """The schema's defaults set nothing but the method, which the hash keeps: runs named by
    earlier versions keep resuming."""
    digest = hashlib.sha256(json.dumps({"prune": {"method": "oneshot"}}).encode()).hexdigest()[:8]
    assert run_name(Recipe()) == f"oneshot-mnist1d_cnn-mnist1d-{digest}"


@pytest.mark.parametrize(
    "override",
    ["prune.sparsity=0.95", "find.epochs=2", "eval.epochs=2", "find.optimizer.lr=0.05", "eval.lr_policy=ft",
     "prune.scope=layerwise", "find.optimizer.momentum=0.5", "eval.rewind=init", "find.lr_schedule.warmup_epochs=1"],
)
def test_run_name_changes_with_a_setting(override: str) -> None:
    assert run_name(load_recipe(overrides=[override])) != run_name(load_recipe())


def test_run_name_ignores_seeds_description_device_threads_and_where_the_data_is() -> None:
    """A moved data folder must resume the same run directory, not start a new one."""
    name = run_name(load_recipe())
    assert run_name(load_recipe(overrides=["seeds=[0, 1, 2]", "description=other words", "device=cpu", "threads=1"])) == name
    assert run_name(load_recipe(overrides=["data.data_dir=/elsewhere", "data.download=true"])) == name
    cifar = ["data.name=cifar10", "model.name=resnet20", "model.options={}"]
    assert run_name(load_recipe(overrides=[*cifar, "data.augment=false"])) != run_name(load_recipe(overrides=cifar))  # that one changes results


@pytest.mark.parametrize(
    ("overrides", "unused"),
    [
        (["find.optimizer.name=adam", "find.optimizer.momentum=0.5"], "find.optimizer.momentum=0.5 is not used: the adam optimizer does not read it"),
        (["eval.optimizer.betas=[0.8, 0.99]"], "eval.optimizer.betas=[0.8, 0.99] is not used: the sgd optimizer does not read it"),
        (["data.augment=false"], "data.augment=False is not used: mnist1d comes without data augmentation"),
    ],
)
def test_options_the_optimizer_or_the_dataset_never_read_are_named_and_do_not_name_the_run(overrides, unused) -> None:
    recipe = load_recipe(overrides=overrides)
    assert unused_settings(recipe) == [unused]
    assert run_name(recipe) == run_name(load_recipe(overrides=[o for o in overrides if not o.startswith(unused.split("=")[0])]))


@pytest.mark.parametrize(
    ("source", "base", "unused"),
    [
        (None, [], "find.lr_schedule.milestones=[1, 5]"),  # the find schedule is cosine
        (None, [], "find.lr_schedule.gamma=0.5"),
        (None, [], "eval.lr_schedule.name=step"),  # eval.lr_policy is llr
        (None, [], "eval.optimizer.lr=0.5"),
        (None, ["prune.scope=ratios", "prune.ratios={features.0.weight: 0.5}"], "prune.sparsity=0.5"),
        ("imp", ["prune.levels=2"], "prune.sparsity=0.5"),
        ("bimp", [], "find.epochs=3"),
        ("bimp", [], "find.lr_schedule.name=cosine"),
        ("bimp", [], "eval.epochs=2"),
    ],
)
def test_run_name_ignores_a_setting_that_cannot_take_effect(source, base, unused) -> None:
    """The same experiment, so the same run directory: neither its name nor the settings
    that the directory's recipe is checked against change."""
    recipe, other = load_recipe(source, base), load_recipe(source, [*base, unused])
    assert recipe != other and unused_settings(other) != unused_settings(recipe)
    assert run_name(other) == run_name(recipe)
    assert experiment_settings(other) == experiment_settings(recipe)


def test_set_takes_a_dotted_layer_name_under_prune_ratios_whole() -> None:
    recipe = load_recipe(None, ["prune.scope=ratios", "prune.ratios.features.0=0.25", r"prune.ratios.stage\d\.0\.conv1=0.5"])
    assert recipe.prune.ratios == {"features.0": 0.25, r"stage\d\.0\.conv1": 0.5}


def test_model_options_at_their_builders_defaults_are_the_same_experiment() -> None:
    """Spelled out or left to the builder, the same network: the same run directory."""
    implicit = validate({"model": {"name": "mlp"}})
    explicit = validate({"model": {"name": "mlp", "options": {"hidden_sizes": [100, 100]}}})  # the builder's (100, 100)
    assert run_name(explicit) == run_name(implicit) and experiment_settings(explicit) == experiment_settings(implicit)
    as_tuple = validate({"model": {"name": "mlp", "options": {"hidden_sizes": (100, 100)}}})  # as Python code may give it
    assert run_name(as_tuple) == run_name(implicit)
    other = validate({"model": {"name": "mlp", "options": {"hidden_sizes": [100, 50]}}})
    assert run_name(other) != run_name(implicit)
    assert experiment_settings(other)["model.options.hidden_sizes"] == [100, 50]


def test_run_name_differs_between_methods_with_default_settings() -> None:
    names = {run_name(validate({"prune": {"method": method}})) for method in ("oneshot", "gmp", "imp", "bimp")}
    assert len(names) == 4
    assert run_name(validate({})) == run_name(validate({"prune": {"method": "oneshot"}}))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["prune.scope=ratios", "prune.ratios={features.0.weight: 0.5}"], ["prune.sparsity=0.9 is not used: scope ratios"]),
        (["prune.method=imp", "prune.levels=2"], ["prune.sparsity=0.9 is not used: prune.levels=2 sets how far IMP prunes"]),
        (["find.epochs=5", "find.lr_schedule={name: multistep, milestones: [3, 5, 9]}"],
         ["find.lr_schedule.milestones [5, 9] lie at or past the end of the phase (find.epochs=5)"]),
        (["eval.lr_policy=null", "eval.epochs=4", "eval.lr_schedule={name: step, step_size: 4}"], ["eval.lr_schedule.step_size=4 is not below eval.epochs=4"]),
        (["eval.lr_policy=null", "eval.epochs=4", "eval.lr_schedule={name: step, step_size: 3}", "find.epochs=0"], []),
        (["eval.lr_policy=ft", "eval.lr_schedule={name: multistep, milestones: [100]}", "find.lr_schedule.final_lr=0.001"],  # the policy decides
         ["eval.lr_schedule.name=multistep is not used: the LR policy ft sets the eval phase's LR schedule",
          "eval.lr_schedule.milestones=[100] is not used: the LR policy ft sets the eval phase's LR schedule"]),
        (["eval.lr_schedule.name=step"], ["eval.lr_schedule.name=step is not used: the LR policy llr sets the eval phase's LR schedule"]),
        # options the chosen schedule does not read (the default recipe's find schedule is cosine)
        (["find.lr_schedule.milestones=[1, 5]"],
         ["find.lr_schedule.milestones=[1, 5] is not used: a cosine LR schedule reads only final_lr, warmup_epochs"]),
        (["find.lr_schedule.gamma=0.5"], ["find.lr_schedule.gamma=0.5 is not used: a cosine LR schedule reads only final_lr, warmup_epochs"]),
        (["find.lr_schedule={name: step, step_size: 2, gamma: 0.5, final_lr: 0.01, warmup_epochs: 1}"],
         ["find.lr_schedule.final_lr=0.01 is not used: a step LR schedule reads only step_size, gamma, warmup_epochs"]),
        (["find.lr_schedule={name: constant, warmup_epochs: 1}"], []),
        (["eval.lr_policy=null", "eval.lr_schedule={name: linear, final_lr: 0.01, milestones: [2]}"],
         ["eval.lr_schedule.milestones=[2] is not used: a linear LR schedule reads only final_lr, warmup_epochs"]),
        (["find.lr_schedule={name: cosine, max_stage_epochs: 10}"],
         ["find.lr_schedule.max_stage_epochs=10 is not used: a cosine LR schedule reads only final_lr, warmup_epochs"]),
        (["find.lr_schedule={name: halving, final_lr: 0.001, max_stage_epochs: 10, gamma: 0.1}"], []),
    ],
)
def test_unused_settings_are_named(overrides, expected) -> None:
    messages = unused_settings(load_recipe(overrides=overrides))
    assert len(messages) == len(expected)
    for message, start in zip(messages, expected):
        assert message.startswith(start)


def test_imp_with_the_lpr_of_another_run_uses_the_sparsity_for_its_levels() -> None:
    lpr_of = ["prune.scope=lpr_of", "prune.lpr_of=/elsewhere", "prune.criterion=random"]
    assert unused_settings(load_recipe("imp", lpr_of)) == []  # 0.9 at rate 0.2: 11 levels
    assert unused_settings(load_recipe("imp", [*lpr_of, "prune.levels=3"])) == [
        "prune.sparsity=0.9 is not used: prune.levels=3 sets how far IMP prunes"
    ]
    assert unused_settings(load_recipe(overrides=lpr_of)) == [  # one-shot prunes to the other run's LPR
        "prune.sparsity=0.9 is not used: scope lpr_of sets each layer's ratio"
    ]


def test_imp_with_the_masks_of_another_run_uses_the_sparsity_for_its_levels() -> None:
    masks_of = ["prune.scope=masks_of", "prune.masks_of=/elsewhere"]
    assert unused_settings(load_recipe("imp", masks_of)) == []  # 0.9 at rate 0.2: 11 levels
    assert unused_settings(load_recipe("imp", [*masks_of, "prune.levels=3"])) == [
        "prune.sparsity=0.9 is not used: prune.levels=3 sets how far IMP prunes"
    ]
    assert unused_settings(load_recipe(overrides=masks_of)) == [  # one-shot takes the other run's masks
        "prune.sparsity=0.9 is not used: scope masks_of takes the masks of prune.masks_of"
    ]


def test_bimp_names_the_find_and_eval_settings_it_never_reads() -> None:
    """BIMP trains prune.initial_epochs with a linear schedule, then splits the rest of its
    budget over the levels with ALLR: the default recipe's find and eval lengths and its
    cosine find schedule do not apply."""
    messages = unused_settings(load_recipe(overrides=["prune.method=bimp", "eval.lr_policy=null", "find.lr_schedule.gamma=0.5"]))
    assert messages == [
        "find.epochs=40 is not used: bimp first trains prune.initial_epochs=15 epochs",
        "find.lr_schedule.name=cosine is not used: bimp first trains with a linear LR schedule",
        "eval.epochs=30 is not used: bimp splits the other prune.budget_epochs - prune.initial_epochs = 15 epochs over its levels",
        "find.lr_schedule.gamma=0.5 is not used: a linear LR schedule reads only final_lr, warmup_epochs",
    ]
    # what its initial training does read
    read = ["find.batch_size=50", "find.optimizer.lr=0.05", "find.lr_schedule={final_lr: 0.01, warmup_epochs: 1}"]
    assert unused_settings(load_recipe("bimp", read)) == []


def test_bimp_may_name_its_own_lr_policy() -> None:
    """eval.lr_policy: allr says what BIMP retrains with anyway; another policy is refused."""
    assert load_recipe("bimp", ["eval.lr_policy=allr"]).eval_training.lr_policy == "allr"
    assert "eval.lr_policy=llr (use null): bimp retrains every level with ALLR" in error_of(["eval.lr_policy=llr"], "bimp")


def test_bimp_does_not_refuse_a_find_schedule_it_does_not_train() -> None:
    """A halving find schedule to a final_lr off its powers of gamma would be refused where it is
    trained; BIMP trains a linear one to that final_lr, so it is only named as unused."""
    halving = ["find.lr_schedule={name: halving, final_lr: 0.003}"]
    with pytest.raises(RecipeError, match=r"final_lr=0.003 is not optimizer.lr=0.1 times a power of lr_schedule.gamma=0.1"):
        load_recipe(overrides=halving)
    assert unused_settings(load_recipe("bimp", halving)) == [
        "find.lr_schedule.name=halving is not used: bimp first trains with a linear LR schedule",
    ]


def test_an_unset_sparsity_is_not_reported_as_unused() -> None:
    recipe = validate({"prune": {"method": "imp", "levels": 2}})
    assert unused_settings(recipe) == []


def test_an_eval_lr_that_an_lr_policy_replaces_is_named() -> None:
    messages = unused_settings(load_recipe(overrides=["eval.optimizer.lr=0.5"]))  # the default's policy: llr
    assert messages == [
        "eval.optimizer.lr=0.5 is not used: the LR policy llr takes its learning rates from the find phase's "
        "LR log (find.optimizer.lr=0.1)"
    ]
    assert unused_settings(load_recipe(overrides=["find.optimizer.lr=0.05"])) == []  # the eval LR was never set


@pytest.mark.parametrize(
    ("schedule", "refused"),
    [
        ("{name: cosine, final_lr: 1.0}", "eval: lr_schedule.final_lr=1.0 is above optimizer.lr=0.1: the cosine schedule would raise the LR"),
        ("{name: halving, final_lr: 0.01, gamma: 2}", "eval: a halving lr_schedule steps the LR down from optimizer.lr=0.1 by lr_schedule.gamma=2"),
        ("{name: halving, final_lr: 0.002}", "eval: lr_schedule.final_lr=0.002 is not optimizer.lr=0.1 times a power of lr_schedule.gamma=0.1"),
    ],
)
def test_an_eval_schedule_that_an_lr_policy_replaces_is_unused_not_refused(schedule, refused) -> None:
    """The policy (the default's llr; BIMP's allr) sets the eval LR: its schedule, never
    followed, is named as unused; the schedule is refused only where the eval phase follows it."""
    assert refused in error_of(["eval.lr_policy=null", f"eval.lr_schedule={schedule}"])
    for overrides in (["eval.lr_policy=llr"], ["prune.method=bimp", "eval.lr_policy=null"]):
        messages = unused_settings(load_recipe(overrides=[*overrides, f"eval.lr_schedule={schedule}"]))
        unused = {m.split("=")[0] for m in messages if m.startswith("eval.lr_schedule.")}
        assert unused == {f"eval.lr_schedule.{key}" for key in yaml.safe_load(schedule)}, overrides


@pytest.mark.parametrize("name", sorted(builtin_recipes()))
def test_builtin_recipes_set_nothing_in_vain(name) -> None:
    """Every built-in recipe (each variant of a sweep) uses what it sets: the suite ignores
    these notes for its shrunk recipes, so the full ones are checked here."""
    plan, _ = load_plan(name)
    for assignment, recipe in plan:
        assert unused_settings(recipe) == [], assignment


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ("{name: multistep, milestones: [19, 23]}", []),  # gmp.yaml: both steps in fine-tuning (milestone 16 on)
        ("{name: multistep, milestones: [16, 24]}", []),
        ("{name: multistep, milestones: [16]}", ["eval.lr_schedule (multistep) lowers the LR only once in fine-tuning (epochs 17-25)"]),
        ("{name: multistep, milestones: [3, 8]}",
         ["eval.lr_schedule (multistep) changes the LR at epochs 4, 9, before fine-tuning starts at epoch 17",
          "eval.lr_schedule (multistep) never lowers the LR in fine-tuning (epochs 17-25)"]),
        ("{name: multistep, milestones: [15, 20]}",
         ["eval.lr_schedule (multistep) changes the LR at epoch 16, before fine-tuning starts at epoch 17",
          "eval.lr_schedule (multistep) lowers the LR only once in fine-tuning (epochs 17-25)"]),
        ("{name: step, step_size: 5}",
         ["eval.lr_schedule (step) changes the LR at epochs 6, 11, 16, before fine-tuning starts at epoch 17",
          "eval.lr_schedule (step) lowers the LR only once in fine-tuning (epochs 17-25)"]),
        ("{name: step, step_size: 8}", ["eval.lr_schedule (step) changes the LR at epoch 9, before fine-tuning starts at epoch 17"]),
        ("{name: constant}", ["eval.lr_schedule (constant) never lowers the LR in fine-tuning (epochs 17-25)"]),
        ("{name: constant, warmup_epochs: 1}", ["eval.lr_schedule (constant) never lowers the LR in fine-tuning"]),
        ("{name: cosine}", ["eval.lr_schedule (cosine) changes the LR from the start, before fine-tuning starts at epoch 17"]),
        # changes that do not step the LR down: x 2 raises it, x 1 keeps it, a cosine to the LR itself (0.05) is constant
        ("{name: multistep, milestones: [19, 23], gamma: 2}", ["eval.lr_schedule (multistep) never lowers the LR in fine-tuning (epochs 17-25)"]),
        ("{name: multistep, milestones: [5, 19, 23], gamma: 1}", ["eval.lr_schedule (multistep) never lowers the LR in fine-tuning (epochs 17-25)"]),
        ("{name: step, step_size: 5, gamma: 1}", ["eval.lr_schedule (step) never lowers the LR in fine-tuning (epochs 17-25)"]),
        ("{name: cosine, final_lr: 0.05}", ["eval.lr_schedule (cosine) never lowers the LR in fine-tuning (epochs 17-25)"]),
        # 0.05 to 5e-4 halved over 25 epochs: 13, 6, then 6
        ("{name: halving, final_lr: 0.0005}",
         ["eval.lr_schedule (halving) changes the LR at epoch 14, before fine-tuning starts at epoch 17",
          "eval.lr_schedule (halving) lowers the LR only once in fine-tuning (epochs 17-25)"]),
        ("{name: multistep, milestones: [19, 23], gamma: 0.5}", []),
        # a warmup belongs to the stabilization (1 epoch): past it, the LR still rises while GMP prunes
        ("{name: multistep, milestones: [19, 23], warmup_epochs: 1}", []),
        ("{name: multistep, milestones: [19, 23], warmup_epochs: 1.5}",
         ["eval.lr_schedule.warmup_epochs=1.5 is longer than prune.stabilization_epochs=1: the LR still rises while GMP prunes"]),
    ],
)
def test_gmp_lr_schedules_against_the_seeds_advice_are_named(schedule, expected) -> None:
    """Seeds 000/001: the LR is held while GMP prunes and stepped down in fine-tuning."""
    messages = unused_settings(load_recipe("gmp", [f"eval.lr_schedule={schedule}"]))
    assert len(messages) == len(expected), messages
    for message, start in zip(messages, expected):
        assert message.startswith(start) and "(seeds 000/001)" in message


def test_a_fine_tuning_of_one_epoch_is_named_as_one() -> None:
    # 1 stabilization and 15 pruning epochs of 17: it read "fine-tuning (epochs 17-17)".
    (message,) = unused_settings(load_recipe("gmp", ["eval.epochs=17", "eval.lr_schedule={name: constant}"]))
    assert message.startswith("eval.lr_schedule (constant) never lowers the LR in fine-tuning (epoch 17): ")


def test_the_gmp_recipe_prunes_at_the_middle_of_the_dense_lrs_then_steps_down_by_tenths() -> None:
    """Seed 000: with SGD, prune at "roughly in the middle of your start and end learning rates"
    (the find phase's cosine from 0.1 to 0: 0.05), held through stabilization and pruning
    (epochs 0-15), then stepped down by one-tenth twice in fine-tuning (milestones 19 and 23)."""
    recipe = load_recipe("gmp")
    find = recipe.find
    assert (find.optimizer.name, find.optimizer.lr, find.lr_schedule.name, find.lr_schedule.final_lr) == ("sgd", 0.1, "cosine", 0.0)
    assert recipe.eval.optimizer.name == "sgd"
    schedule = build_schedule(recipe.eval.lr_schedule, recipe.eval.optimizer.lr, recipe.eval.epochs, 1)  # one step an epoch
    assert [schedule(epoch) for epoch in range(25)] == pytest.approx([0.05] * 19 + [0.005] * 4 + [0.0005] * 2)


def test_gmp_without_fine_tuning_still_hears_of_an_lr_that_moves_while_it_prunes() -> None:
    """The LR advice for the pruning stage holds whether or not fine-tuning follows it."""
    recipe = load_recipe("gmp", ["eval.epochs=16", "eval.lr_schedule={name: multistep, milestones: [5], warmup_epochs: 1.5}"])
    messages = unused_settings(recipe)
    assert [message.split(":")[0] for message in messages] == [
        "eval.epochs=16 ends with GMP's last pruning step (prune.stabilization_epochs=1 + prune.pruning_epochs=15)",
        "eval.lr_schedule (multistep) changes the LR at epoch 6, before fine-tuning starts at epoch 17",
        "eval.lr_schedule.warmup_epochs=1.5 is longer than prune.stabilization_epochs=1",
    ], messages


def test_gmp_defaults_follow_seed_000s_minimum_of_30_updates() -> None:
    prune = validate({"prune": {"method": "gmp"}}).prune
    assert prune.pruning_epochs * prune.updates_per_epoch >= 30


def test_our_own_checks_name_the_value_once() -> None:
    """A check of the schema's own quotes the value in its message: the line adds no "(got ...)"."""
    line = error_line(error_of(["eval.rewind=epoch:x"]), "eval.rewind")
    assert line.count("'epoch:x'") == 1 and "(got" not in line


def test_the_percentage_hint_is_only_for_fractions_a_percentage_could_mean() -> None:
    """sparsity=90 meant 0.9; sparsity=100 has no valid fraction, sparsity=1 meant all (not 1%), and momentum is no share."""
    assert error_line(error_of(["prune.sparsity=90"]), "prune.sparsity").endswith("(got 90): a fraction, e.g. 0.9 for 90%")
    # the other fractions: a rate, a ratio, a fraction by name
    assert error_line(error_of(["prune.method=imp", "prune.rate=20"]), "prune.rate").endswith("(got 20): a fraction, e.g. 0.2 for 20%")
    assert error_line(error_of(["prune.scope=ratios", "prune.ratios.fc1=80"]), "prune.ratios.fc1").endswith("(got 80): a fraction, e.g. 0.8 for 80%")
    assert error_line(error_of(["eval.warmup_fraction=50"]), "eval.warmup_fraction").endswith("(got 50): a fraction, e.g. 0.5 for 50%")
    assert error_line(error_of(["prune.sparsity=100"]), "prune.sparsity").endswith("(got 100)")
    assert error_line(error_of(["prune.sparsity=1"]), "prune.sparsity").endswith("(got 1)")
    assert "a fraction" not in error_of(["find.optimizer.momentum=90"])


def test_a_section_given_as_its_name_alone_is_shown_as_the_mapping_it_should_be() -> None:
    """`model: my_net` in a recipe written from scratch meant `model: {name: my_net}`; `find: 3` means nothing of the kind."""
    message = error_of(["model=my_net", "data=blobs", "eval.optimizer=adam", "find=3"])
    assert error_line(message, "model").endswith("(got 'my_net'): a mapping, e.g. {name: my_net}")
    assert error_line(message, "data").endswith("(got 'blobs'): a mapping, e.g. {name: blobs}")
    assert error_line(message, "eval.optimizer").endswith("(got 'adam'): a mapping, e.g. {name: adam}")
    assert error_line(error_of(["find.lr_schedule=cosine"]), "find.lr_schedule").endswith("(got 'cosine'): a mapping, e.g. {name: cosine}")
    assert error_line(message, "find").endswith("(got 3)")
    assert error_line(error_of(["find=fast"]), "find").endswith("(got 'fast')")  # find has no name to give


def test_filter_l1_is_ranked_layer_by_layer_unless_the_recipe_says_otherwise() -> None:
    """Li et al. and seed 004 prune filters by L1-norm layer by layer (ChannelPruner's default
    too); BatchNorm scales and weights are ranked globally by default."""
    assert load_recipe("structured", ["prune.criterion=filter_l1"]).prune.scope == "layerwise"
    assert load_recipe("structured").prune.criterion == "bn_scale"
    assert load_recipe("structured").prune.scope == "global"
    assert load_recipe("structured", ["prune.criterion=filter_l1", "prune.scope=global"]).prune.scope == "global"
    assert load_recipe(None, ["prune.scope=layerwise"]).prune.scope == "layerwise"
    assert Recipe.model_validate({"prune": {"criterion": "filter_l1"}}).prune.scope == "layerwise"


def test_a_sparsity_of_weights_is_for_a_global_channel_ranking() -> None:
    assert load_recipe("structured", ["prune.sparsity_of=weights"]).prune.sparsity_of == "weights"
    # what the criterion counts anyway, given or not: one experiment, one run name
    for source, counted in ((None, "weights"), ("structured", "channels")):
        given = load_recipe(source, [f"prune.sparsity_of={counted}"])
        assert given.prune.sparsity_of is None and run_name(given) == run_name(load_recipe(source))
    assert "sparsity_of: channels is for the channel criteria (filter_l1, bn_scale, random_channels); criterion 'magnitude' " \
        "prunes weights" in error_of(["prune.sparsity_of=channels"])
    assert "sparsity_of: weights ranks channels across layers until the weights they take out reach the sparsity: it needs " \
        "scope 'global', not 'layerwise'" in error_of(["prune.criterion=filter_l1", "prune.sparsity_of=weights"], "structured")


def test_gmp_prunes_layer_by_layer_unless_the_recipe_says_otherwise() -> None:
    """Seed 001 sets "the sparsity for all layers" along the schedule; one-shot, IMP and BIMP
    rank all layers together unless told otherwise."""
    assert Recipe.model_validate({"prune": {"method": "gmp"}}).prune.scope == "layerwise"
    assert load_recipe("gmp").prune.scope == "layerwise"
    assert load_recipe("gmp", ["prune.scope=global"]).prune.scope == "global"
    for method in ("oneshot", "imp", "bimp"):
        assert Recipe.model_validate({"prune": {"method": method}}).prune.scope == "global", method


def test_gmp_without_fine_tuning_is_warned_about_and_needs_no_lr_step_there() -> None:
    ends = load_recipe("gmp", ["eval.epochs=16", "eval.lr_schedule={name: constant}"])  # 1 + 15 epochs: none left
    assert unused_settings(ends) == [
        "eval.epochs=16 ends with GMP's last pruning step (prune.stabilization_epochs=1 + prune.pruning_epochs=15): no "
        "fine-tuning, which seeds 000/001 need to recover accuracy (and no trainability accuracy, which is measured on it)"
    ]
    assert not any("no fine-tuning" in message for message in unused_settings(load_recipe("gmp", ["eval.epochs=17"])))


def test_tables_of_runs_show_what_bimp_fixes_not_its_unread_settings(tmp_path: Path) -> None:
    """BIMP retrains with ALLR after a linear first training whatever eval.lr_policy and
    find.lr_schedule say: a table of runs beside IMP's must not read "null" for its policy."""
    for name, overrides in (("bimp", ["prune.initial_epochs=20"]), ("imp", ["eval.lr_policy=allr"])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "recipe.yaml").write_text(recipe_yaml(load_recipe(name, overrides)))
    bimp, imp = (run_settings(tmp_path / name, unread_as="–") for name in ("bimp", "imp"))
    assert (bimp["eval.lr_policy"], bimp["find.lr_schedule.name"], bimp["find.epochs"]) == ("allr", "linear", 20)
    assert bimp["eval.epochs"] == "–"  # split over the levels by the budget
    assert (imp["eval.lr_policy"], imp["find.lr_schedule.name"]) == ("allr", load_recipe("imp").find.lr_schedule.name)
    assert run_settings(tmp_path / "bimp")["eval.lr_policy"] is None  # what the recipe says, for comparing recipes


@pytest.mark.parametrize(
    ("source", "overrides", "where"),
    [("imp", ["eval.rewind=epoch:2"], "epoch 2 of the find phase"), ("lottery", ["eval.lr_policy=lrw"], "their initial values")],
)
def test_weight_rewinding_under_an_lr_policy_is_named_as_a_hybrid(source: str, overrides: list[str], where: str) -> None:
    """Rewinding as seed 002 takes the weights and the LR back; a retraining LR policy keeps
    the second from following the first, which a recipe most likely does not mean."""
    (_, recipe), *_ = load_plan(source, overrides)[0]  # lottery is a sweep: its first arm
    (message,) = [m for m in unused_settings(recipe) if "the LR does not" in m]
    assert f"the weights go back to {where}, the LR does not" in message and "leave eval.lr_policy unset" in message
    shipped = [recipe for _, recipe in load_plan(source)[0]]
    assert not [m for recipe in shipped for m in unused_settings(recipe) if "the LR does not" in m]  # as shipped


def test_fine_tuning_at_the_end_of_a_schedule_that_ends_at_zero_is_named() -> None:
    (message,) = unused_settings(load_recipe(overrides=["eval.lr_policy=ft"]))  # the default find phase is cosine
    assert message.startswith("eval.lr_policy=ft retrains at the find phase's last LR, which its cosine schedule brings close to 0")
    assert unused_settings(load_recipe(overrides=["eval.lr_policy=ft", "find.lr_schedule.final_lr=0.01"])) == []
    assert unused_settings(load_recipe(overrides=["eval.lr_policy=ft", "find.stop_epoch=10"])) == []  # stopped high up
    assert unused_settings(load_recipe(overrides=["eval.lr_policy=ft", "find.lr_schedule={name: multistep, milestones: [5]}"])) == []


def test_a_huge_bad_value_is_shown_cut_short() -> None:
    """YAML anchors can make a few lines a value of millions of items: the error stays a line."""
    text = "a0: &a0 [x, x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 20))
    data = yaml.safe_load(text + "find: {epochs: *a19}")
    with pytest.raises(RecipeError) as error:
        validate({"find": data["find"]}, "anchors.yaml")
    assert len(str(error.value)) < 300 and "find.epochs: Input should be a valid integer (got [[[[...], [...]], [[...], [...]]]" in str(error.value)
    with pytest.raises(RecipeError) as error:  # a long flat list too
        validate({"find": {"epochs": list(range(10**5))}}, "long.yaml")
    assert str(error.value).endswith("find.epochs: Input should be a valid integer (got [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...])")


@pytest.mark.parametrize("key", ["prune..sparsity", ".prune", "prune."])
def test_an_override_with_an_empty_field_name_says_so(key: str) -> None:
    with pytest.raises(RecipeError, match=rf"^override '{re.escape(key)}=0.5': '{re.escape(key)}' has an empty field name"):
        load_recipe(overrides=[f"{key}=0.5"])
    with pytest.raises(RecipeError, match="must look like key.sub=value"):
        load_recipe(overrides=["=0.5"])


def test_imp_levels_past_a_thousand_are_refused_before_anything_is_computed() -> None:
    """Each level is a retraining; a typo of a billion levels must not hang building their list."""
    assert "prune.levels: Input should be less than or equal to 1000" in error_of(["prune.method=imp", "prune.levels=1000000000"])
    message = error_of(["prune.method=imp", "prune.rate=1e-7", "prune.sparsity=0.999999999"])
    assert "rate=1e-07 takes 207,232,649 levels to reach sparsity=0.999999999; at most 1000 levels" in message


@pytest.mark.parametrize("field", ["find.optimizer.lr", "eval.optimizer.weight_decay"])
def test_an_lr_or_weight_decay_beyond_float32_is_refused(field: str) -> None:
    assert "must be at most 3.4e+38, the largest float32" in error_line(error_of([f"{field}=1e39"]), field)
    assert isinstance(load_recipe(overrides=[f"{field}={torch.finfo(torch.float32).max!r}"]), Recipe)  # at most: the largest itself


def test_empty_ratios_are_refused_as_pruning_nothing() -> None:
    assert "ratios is empty: it would prune nothing" in error_of(["prune.scope=ratios", "prune.ratios={}"])


def test_a_decaying_schedule_that_would_end_above_its_lr_is_refused() -> None:
    message = error_of(["find.lr_schedule={name: cosine, final_lr: 100}"])
    assert "lr_schedule.final_lr=100.0 is above optimizer.lr=0.1: the cosine schedule would raise the LR" in message


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("{name: halving}", "find: a halving lr_schedule steps the LR down from optimizer.lr=0.1 by lr_schedule.gamma=0.1 to "
         "lr_schedule.final_lr=0: it needs gamma below 1 and final_lr above 0 and below the LR (e.g. final_lr 1e-05, 0.1 x 0.1^4)"),
        ("{name: halving, final_lr: 0.001, gamma: 2}", "find: a halving lr_schedule steps the LR down from optimizer.lr=0.1 by lr_schedule.gamma=2"),
        ("{name: halving, final_lr: 0.001, gamma: 1}", "find: a halving lr_schedule steps the LR down from optimizer.lr=0.1 by lr_schedule.gamma=1"),
        ("{name: halving, final_lr: 0.5}", "find: a halving lr_schedule steps the LR down from optimizer.lr=0.1"),
        ("{name: halving, final_lr: 0.1}", "find: a halving lr_schedule steps the LR down from optimizer.lr=0.1"),  # no step down
        ("{name: halving, final_lr: 0.002}", "find: lr_schedule.final_lr=0.002 is not optimizer.lr=0.1 times a power of lr_schedule.gamma=0.1"),
        ("{name: halving, final_lr: 0.0011}", "find: lr_schedule.final_lr=0.0011 is not optimizer.lr=0.1 times a power"),  # 10% off 0.001
        # 0.1 to 1e-5: five LRs, which halving needs 16 epochs for
        ("{name: halving, final_lr: 1.0e-5}", "find.lr_schedule: a halving schedule from find.optimizer.lr=0.1 to final_lr=1e-05 over "
         "find.epochs=10: 5 LR stages halved in turn need at least 16 epochs"),
    ],
)
def test_a_halving_schedule_that_cannot_step_down_to_its_final_lr_is_named(schedule, expected) -> None:
    with pytest.raises(RecipeError) as error:
        load_recipe(overrides=["find.epochs=10", f"find.lr_schedule={schedule}"])
    assert expected in str(error.value)
    assert load_recipe(overrides=["find.epochs=16", "find.lr_schedule={name: halving, final_lr: 1.0e-5}"]).find.lr_schedule.name == "halving"


def test_a_halving_schedule_counts_a_power_that_floating_point_puts_just_below_it() -> None:
    """0.1 x 0.3^4 = 0.00081: five LRs, though log(0.00081 / 0.1) / log(0.3) is 3.999... in floating point."""
    schedule = load_recipe(overrides=["find.epochs=16", "find.lr_schedule={name: halving, gamma: 0.3, final_lr: 0.00081}"]).find.lr_schedule
    assert schedule.halving_stages(0.1) == 5


HALVING_SCRATCH = ["eval.lr_policy=null", "eval.optimizer.lr=0.1", "eval.lr_schedule={name: halving, final_lr: 1.0e-5}",
                   "eval.rewind=reinit", "eval.budget=scratch_e"]  # fmt: skip


def test_a_halving_schedule_must_fit_the_fewest_epochs_a_scratch_budget_trains() -> None:
    """0.1 to 1e-5 is five LRs, which take 16 epochs; a scratch budget trains eval.epochs plus the
    find phase's (the epochs it trains), which the schedule is derived from, not eval.epochs alone."""
    message = error_of([*HALVING_SCRATCH, "find.epochs=15", "eval.epochs=0"])
    assert ("eval.lr_schedule: a halving schedule from eval.optimizer.lr=0.1 to final_lr=1e-05 over eval.epochs + find.epochs "
            "= 0 + 15 epochs, the fewest eval.budget scratch_e trains: 5 LR stages halved in turn need at least 16 epochs") in message
    message = error_of([*HALVING_SCRATCH, "find.epochs=40", "find.stop_epoch=10", "eval.epochs=5"])
    assert "over eval.epochs + find.stop_epoch = 5 + 10 epochs" in message
    assert load_recipe(overrides=[*HALVING_SCRATCH, "find.epochs=16", "eval.epochs=0"]).eval.epochs == 0
    assert load_recipe(overrides=[*HALVING_SCRATCH, "find.epochs=14", "eval.epochs=2"]).eval.epochs == 2  # 16 epochs in all


def test_a_halving_schedule_that_a_phase_does_not_read_is_not_fitted_to_it() -> None:
    halving = "lr_schedule={name: halving, final_lr: 1.0e-5}"  # 16 epochs' worth of stages
    assert load_recipe(overrides=[f"eval.{halving}", "eval.epochs=3"]).eval.lr_policy == "llr"  # the policy sets the LR
    assert load_recipe("bimp", [f"find.{halving}", "find.epochs=3"]).prune.method == "bimp"  # a linear initial training


@pytest.mark.parametrize("source", [None, "imp"])
def test_instability_without_retraining_is_refused(source) -> None:
    """Two copies that are not retrained are the same weights: a barrier of 0 would read as stable."""
    message = error_of(["eval.epochs=0", "eval.instability=true"], source)
    assert "eval.instability measures the barrier between two retrainings from one start, but eval.epochs=0 retrains nothing" in message
    assert load_recipe(source, ["eval.epochs=1", "eval.instability=true"]).eval.instability


def test_instability_of_a_scratch_budget_or_a_method_that_sets_the_retraining_is_left_alone() -> None:
    scratch = load_recipe(overrides=["eval.epochs=0", "eval.instability=true", "eval.rewind=reinit", "eval.budget=scratch_e"])
    assert scratch.eval.instability  # trains the find phase's 40 epochs
    assert load_recipe("bimp", ["eval.epochs=0", "eval.instability=true"]).eval.instability  # bimp's levels retrain 30 epochs
    assert "eval.instability is not used" in " ".join(unused_settings(load_recipe("gmp", ["eval.instability=true"])))


def test_a_saved_run_s_recipe_reads_without_the_module_that_registers_its_model_and_dataset(tmp_path: Path) -> None:
    """show, compare and report read a run's results, which need neither its model nor its
    dataset: names no module registers here are taken as recorded, options and all."""
    data = yaml.safe_load(recipe_yaml(load_recipe()))
    data["model"] = {"name": "own_net", "options": {"hidden": 16}}
    data["data"].update(name="own_data", augment=False)
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(data))
    settings = run_settings(tmp_path)
    assert (settings["model.name"], settings["model.options.hidden"]) == ("own_net", 16)
    assert (settings["data.name"], settings["data.augment"]) == ("own_data", False)  # whether own_data augments is unknown here
    with pytest.raises(RecipeError, match="unknown model 'own_net'") as caught:  # a recipe to run stays strict
        load_recipe(tmp_path / "recipe.yaml")
    assert "unknown dataset 'own_data'" in str(caught.value)
    data["model"] = {"name": "mlp", "options": {"channels": 8}}  # a registered model's options are checked as before
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(RecipeError, match="model 'mlp' has no option 'channels'"):
        run_settings(tmp_path)


@pytest.mark.parametrize("untrained", ["find.epochs=0", "find.stop_epoch=0"])
def test_gmp_of_a_find_phase_that_trains_nothing_is_warned_about(untrained: str) -> None:
    """Seeds 000/001 start GMP from a trained network: pruning a random one is said, naming the setting."""
    messages = unused_settings(load_recipe("gmp", [untrained]))
    setting = untrained.removesuffix("=0")
    assert [m for m in messages if "untrained" in m] == [
        f"{setting}=0: the find phase trains nothing, so GMP stabilizes and prunes an untrained network, where seeds 000/001 "
        f"start from a trained one; give {setting} the dense training's epochs (or, to prune while training from scratch, "
        "prune.stabilization_epochs long enough to train the network before it is pruned)"
    ]
    assert not any("untrained" in m for m in unused_settings(load_recipe("gmp", ["find.epochs=1"])))
    assert not any("untrained" in m for m in unused_settings(load_recipe("default", ["find.epochs=0", "eval.lr_policy=null"])))  # one-shot at init: seed 002's


def test_gmp_s_finetune_weight_decay_without_weight_decay_is_named_as_not_used() -> None:
    no_decay = ["eval.optimizer.weight_decay=0"]
    assert "prune.finetune_weight_decay is not used: eval.optimizer.weight_decay is 0, so fine-tuning has no weight decay to keep " \
        "or turn off" in unused_settings(load_recipe("gmp", [*no_decay, "prune.finetune_weight_decay=true"]))
    given = ["prune.finetune_weight_decay=true"]
    assert not any("finetune_weight_decay" in m for m in unused_settings(load_recipe("gmp", given)))  # gmp's weight decay is 1e-4
    # Not given (the default, as the schema has it), it is not the recipe's doing.
    assert not any("finetune_weight_decay" in m for m in unused_settings(validate({"prune": {"method": "gmp", "pruning_epochs": 1}})))
    # The run keeps its name: the setting is read, and named it before.
    assert run_name(load_recipe("gmp", [*no_decay, *given])) != run_name(load_recipe("gmp", no_decay))
