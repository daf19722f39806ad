"""build_model: names, options and errors."""

from __future__ import annotations

import functools
import re

import pytest
import torch
from torch import nn

from typing_extensions import TypedDict

from prunelab.models import MODELS, NO_DEFAULT, build_model, initialize, model_options, register
from prunelab.models.registry import close_name


class Sizes(TypedDict):  # a builder option's type, found by name as a module's are
    hidden: int


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown model 'alexnet'") as info:
        build_model("alexnet", 10, (3, 32, 32))
    assert f"known models: {', '.join(sorted(MODELS))} (" in str(info.value)  # in alphabetical order
    assert "prunelab.models.register" in str(info.value) and "--import MODULE" in str(info.value)


def test_a_misspelt_model_is_met_with_the_name_it_begins_like() -> None:
    # 'resnet21' is as alike to resnet20 as to resnet32 (7 of 8 characters in order each); the
    # one that begins as it does is meant
    with pytest.raises(ValueError, match=r"'resnet21' \(did you mean 'resnet20'\?\)"):
        build_model("resnet21", 10, (3, 32, 32))
    # and 'resnet26' (as alike to resnet56, ending as it does) begins as resnet20 does
    with pytest.raises(ValueError, match=r"'resnet26' \(did you mean 'resnet20'\?\)"):
        build_model("resnet26", 10, (3, 32, 32))
    # a name cut short is met with the first name (in the order registered) it begins, however short it is
    with pytest.raises(ValueError, match=r"'lenet' \(did you mean 'lenet_300_100'\?\)"):
        build_model("lenet", 10, (1, 28, 28))
    with pytest.raises(ValueError, match=r"'resnet' \(did you mean 'resnet18'\?\)"):
        build_model("resnet", 10, (3, 32, 32))
    # of names equally alike, the first known is meant, not the first in alphabetical order
    assert close_name("resnet", ["resnet56", "resnet20"]) == " (did you mean 'resnet56'?)"


def test_an_unknown_option_is_an_error_listing_the_model_s_options() -> None:
    with pytest.raises(ValueError, match="'depth'") as info:
        build_model("resnet20", 10, (3, 32, 32), depth=44)
    assert "width" in str(info.value)
    with pytest.raises(ValueError, match=r"^model 'resnet20' has no options 'alpha', 'blocks', 'depth', 'kernel'; its options are: width$"):
        build_model("resnet20", 10, (3, 32, 32), width=8, depth=44, kernel=3, blocks=3, alpha=1)  # in order of name
    with pytest.raises(ValueError, match="'hidden'.*none"):
        build_model("lenet_300_100", 10, (1, 28, 28), hidden=[10])


def test_a_bad_option_value_is_an_error_naming_model_and_option() -> None:
    with pytest.raises(ValueError, match="model 'mnist1d_cnn': channels must be an int, got 'abc'"):
        build_model("mnist1d_cnn", 10, (1, 40), channels="abc")
    with pytest.raises(ValueError, match=r"model 'mlp': hidden_sizes must be a list of ints, got \[10, 2.5\]"):
        build_model("mlp", 10, (1, 40), hidden_sizes=[10, 2.5])
    with pytest.raises(ValueError, match=r"^model 'resnet18': stem must be one of 'imagenet', 'small', got 'tiny'$"):
        build_model("resnet18", 10, (3, 64, 64), stem="tiny")


@pytest.mark.parametrize(
    ("name", "options", "field"),
    [("mnist1d_cnn", {"channels": -1}, "channels"), ("resnet20", {"width": 0}, "width"),
     ("mlp", {"hidden_sizes": [10, 0]}, "hidden_sizes"), ("mlp", {"hidden_sizes": (10, 0)}, "hidden_sizes"),
     ("mlp", {"num_classes": 0}, "num_classes")],
)
def test_sizes_below_one_are_errors(name, options, field) -> None:
    num_classes = options.pop("num_classes", 10)
    with pytest.raises(ValueError, match=f"model '{name}': {field} must be at least 1"):
        build_model(name, num_classes, (3, 32, 32) if name == "resnet20" else (1, 40), **options)


def test_options() -> None:
    assert model_options("mlp") == {"hidden_sizes": [100, 100]}  # as a recipe gives it
    model = build_model("mlp", 3, (1, 40), hidden_sizes=[8])
    assert sum(p.numel() for p in model.parameters()) == (40 * 8 + 8) + (8 * 3 + 3)
    assert build_model("resnet20", 10, (3, 32, 32), width=8).fc.in_features == 32
    # a flag is no size: False is no size below 1
    assert not any(isinstance(m, nn.BatchNorm1d) for m in build_model("mnist1d_cnn", 10, (1, 40), batch_norm=False).modules())


@pytest.mark.parametrize("shape", [(1, 40), (1, 3, 32, 32)])
def test_wrong_input_rank_is_explained(shape) -> None:
    with pytest.raises(ValueError, match=rf"resnet20 needs inputs of shape \(C, H, W\), got {re.escape(repr(shape))}"):
        build_model("resnet20", 10, shape)


@pytest.mark.parametrize("shape", [None, 40, (1, 0), (1.0, 40), (True, 40), b"\x01\x28"])  # bytes: a sequence of ints, (1, 40)
def test_an_input_shape_that_is_no_shape_is_named(shape) -> None:
    # It read as the builder's failure: "cannot be built with no options: 'int' object is not iterable".
    with pytest.raises(ValueError, match=rf"^model 'mlp': input_shape must be the shape of one example, positive ints without the batch \(e.g. \(3, 32, 32\)\), got {re.escape(repr(shape))}$"):
        build_model("mlp", 10, shape)


@pytest.mark.parametrize(("name", "input_shape"), [
    ("vgg16_bn", (1, 28, 28)),  # five 2x2 max-pools need 32x32: 28 -> 14 -> 7 -> 3 -> 1 -> 0
    ("conv6", (3, 4, 4)),  # three 2x2 max-pools need 8x8: 4 -> 2 -> 1 -> 0
    ("mnist1d_cnn", (1, 2)),  # a width-5 kernel over 2 + 2 padded values
])  # fmt: skip
def test_an_input_too_small_for_the_model_names_the_input_shape(name: str, input_shape: tuple[int, ...]) -> None:
    # It read "cannot be built with no options", blaming the options, with only torch's words on sizes.
    with pytest.raises(ValueError, match=rf"^model '{name}' cannot be built for input_shape {re.escape(repr(input_shape))} with no options: "):
        build_model(name, 10, input_shape)


def test_a_builtin_builder_s_own_check_is_said_in_its_words_alone() -> None:
    # A user's builder's error also names its type and line; prunelab's own checks say what is wrong themselves.
    with pytest.raises(ValueError) as caught:
        build_model("resnet20", 10, (1, 40))
    assert str(caught.value) == "model 'resnet20' cannot be built for input_shape (1, 40) with no options: resnet20 needs inputs of shape (C, H, W), got (1, 40)"


def test_an_input_shape_of_numpy_ints_builds_as_python_ints() -> None:
    import numpy as np

    model = build_model("mlp", 10, (np.int64(1), np.int64(40)), hidden_sizes=[8])
    assert sum(p.numel() for p in model.parameters()) == (40 * 8 + 8) + (8 * 10 + 10)
    with pytest.raises(ValueError, match=r"^model 'mnist1d_cnn' cannot be built for input_shape \(1, 2\) with no options: "):
        build_model("mnist1d_cnn", 10, (np.int64(1), np.int64(2)))


def test_a_class_count_of_numpy_int_builds_as_a_python_int() -> None:
    """A Dataset accepts num_classes=np.int64(10) (labels.max() + 1, say); a run then builds
    its model with it, which failed: "num_classes must be an int, got np.int64(10)"."""
    import numpy as np

    from prunelab.data import Dataset

    x, y = torch.zeros(4, 1, 40), torch.tensor([0, 1, 9, 2])
    data = Dataset("numpy_classes", x, y, x, y, num_classes=np.int64(y.max().item()) + 1)
    model = build_model("mlp", data.num_classes, data.input_shape, hidden_sizes=[8])
    assert model[-1].out_features == 10
    with pytest.raises(ValueError, match="model 'mlp': num_classes must be an int, got True"):
        build_model("mlp", True, (1, 40))


def test_initialize_draws_weights_as_a_new_model_and_resets_batchnorm() -> None:
    """Every value is drawn anew: BatchNorm at weight 1, bias 0 and fresh statistics, the
    linear layer within PyTorch's default bound 1/sqrt(fan_in), convs He-normal fan-out."""
    torch.manual_seed(0)
    model = build_model("resnet20", 10, (3, 32, 32))
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.fill_(7)
    initialize("resnet20", model)
    norm = model.stage3[2].bn2
    assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0) and norm.num_batches_tracked.item() == 0
    assert torch.all(norm.running_mean == 0) and torch.all(norm.running_var == 1)
    assert model.fc.weight.abs().max().item() <= 1 / 64**0.5 and model.fc.bias.abs().max().item() <= 1 / 64**0.5
    assert model.stage3[1].conv1.weight.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.05)


def test_initialize_of_an_unknown_model_is_an_error() -> None:
    # Not PyTorch's defaults alone, without the scheme of the model meant.
    with pytest.raises(ValueError, match=r"^unknown model 'resnet_20' \(did you mean 'resnet20'\?\); known models: "):
        initialize("resnet_20", nn.Linear(4, 2))


def test_every_builder_has_a_one_line_summary() -> None:
    for name, builder in MODELS.items():
        assert builder.__doc__ and builder.__doc__.strip().splitlines()[0], name


def test_construction_leaves_batchnorm_statistics_untouched() -> None:
    # Builders that size their classifier with a dummy forward pass must not update BN stats.
    model = build_model("vgg16_bn", 10, (3, 32, 32))
    norms = [module for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d)]
    assert len(norms) == 13  # one after each of VGG-16's convolutions
    for module in norms:
        assert module.num_batches_tracked.item() == 0
        assert torch.equal(module.running_mean, torch.zeros_like(module.running_mean))
    assert model.training


@pytest.mark.parametrize(("returned", "kind"), [("hello", "str"), (None, "NoneType")])  # None: a builder without its return
def test_a_builder_that_returns_no_module_is_named(monkeypatch: pytest.MonkeyPatch, returned: object, kind: str) -> None:
    monkeypatch.setitem(MODELS, "not_a_model", lambda num_classes, input_shape: returned)
    with pytest.raises(ValueError, match=f"model 'not_a_model': its builder returned a {kind}, not an nn.Module"):
        build_model("not_a_model", num_classes=10, input_shape=(1, 40))


def test_a_user_builder_s_options_need_only_their_types() -> None:
    """Sizes below 1 are errors for prunelab's own models; a user's integers may mean other things."""

    @register("doctest_dropout_mlp")
    def dropout_mlp(num_classes: int, input_shape, hidden: int = 8, dropout: float = 0.1, skip_first: int = 0) -> nn.Module:
        """An MLP with dropout."""
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], hidden), nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    try:
        model = build_model("doctest_dropout_mlp", 10, (1, 40), dropout=0, skip_first=0)
        assert model[2].p == 0
        with pytest.raises(ValueError, match="model 'doctest_dropout_mlp': hidden must be an int, got 2.5"):
            build_model("doctest_dropout_mlp", 10, (1, 40), hidden=2.5)
    finally:
        MODELS.pop("doctest_dropout_mlp")


def test_a_builder_of_a_module_named_like_prunelab_is_the_user_s() -> None:
    # prunelab_models is the user's module, not one of prunelab's: its integers may be 0.
    def skip_mlp(num_classes: int, input_shape, skip_first: int = 1) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], num_classes))

    skip_mlp.__module__ = "prunelab_models"
    try:
        register("test_prunelab_models")(skip_mlp)
        assert build_model("test_prunelab_models", 3, (1, 5), skip_first=0)[1].out_features == 3
    finally:
        MODELS.pop("test_prunelab_models", None)


def test_a_builder_class_s_options_are_checked_by_its_init_s_types() -> None:
    """A class's own annotations are its attributes': the option types are its __init__'s."""

    class Net(nn.Module):
        scale: float  # a class attribute, no option

        def __init__(self, num_classes, input_shape, width: int = 4):
            super().__init__()
            self.fc = nn.Linear(input_shape[-1], width)

    try:
        register("test_typed_class")(Net)
        assert build_model("test_typed_class", 3, (1, 5), width=6).fc.out_features == 6
        with pytest.raises(ValueError, match=r"^model 'test_typed_class': width must be an int, got '6'$"):
            build_model("test_typed_class", 3, (1, 5), width="6")
    finally:
        MODELS.pop("test_typed_class", None)


def test_options_of_types_pydantic_does_not_know_are_checked_by_isinstance_or_not_at_all() -> None:
    """A module as an option (a user's builder, called from Python) was a pydantic schema error;
    an annotation naming a type imported for type checkers only was a NameError."""

    @register("test_module_option")
    def module_option(num_classes, input_shape, act: nn.Module | None = None) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], num_classes), act or nn.Identity())

    @register("test_unresolved_option")
    def unresolved_option(num_classes, input_shape, act: "OnlyForTypeCheckers" = None) -> nn.Module:  # noqa: F821
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], num_classes))

    @register("test_typed_dict_option")
    def typed_dict_option(num_classes, input_shape, sizes: Sizes) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], sizes["hidden"]), nn.Linear(sizes["hidden"], num_classes))

    try:
        assert isinstance(build_model("test_module_option", 3, (1, 5), act=nn.ReLU())[2], nn.ReLU)
        with pytest.raises(ValueError, match=r"^model 'test_module_option': act must be a Module or null, got 3$"):
            build_model("test_module_option", 3, (1, 5), act=3)
        assert build_model("test_unresolved_option", 3, (1, 5), act="anything")[1].out_features == 3
        # a TypedDict carries its own pydantic config: checked as it was
        assert build_model("test_typed_dict_option", 3, (1, 5), sizes={"hidden": 7})[1].out_features == 7
        with pytest.raises(ValueError, match=r"^model 'test_typed_dict_option': sizes must be a Sizes, got \{'hidden': '7'\}$"):
            build_model("test_typed_dict_option", 3, (1, 5), sizes={"hidden": "7"})
    finally:
        MODELS.pop("test_module_option", None)
        MODELS.pop("test_unresolved_option", None)
        MODELS.pop("test_typed_dict_option", None)


def test_options_without_a_default_a_recipe_can_write_must_be_given_and_name_no_run() -> None:
    """A required option, a class as a default, ``*args`` and ``**options``: recipes name runs by the
    options that differ from the defaults, so these must not break the naming."""
    from prunelab.config import load_recipe, run_name
    from prunelab.report.setups import default_model_options

    @register("test_act_mlp")
    def act_mlp(num_classes, input_shape, hidden: int, act=nn.ReLU, width=(4, 4)) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], hidden), act(), nn.Linear(hidden, num_classes))

    @register("test_any_mlp")
    def any_mlp(num_classes, input_shape, *layers, **options) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], options.get("hidden", 8)), nn.Linear(options.get("hidden", 8), num_classes))

    try:
        assert model_options("test_act_mlp") == {"hidden": NO_DEFAULT, "act": NO_DEFAULT, "width": [4, 4]}
        assert model_options("test_any_mlp") == {}
        name = run_name(load_recipe(None, ["model.name=test_act_mlp", "model.options={hidden: 8}"]))
        assert name == run_name(load_recipe(None, ["model.name=test_act_mlp", "model.options={hidden: 8, width: [4, 4]}"]))
        assert name != run_name(load_recipe(None, ["model.name=test_act_mlp", "model.options={hidden: 8, width: [4, 5]}"]))
        with pytest.raises(ValueError, match=r"model 'test_act_mlp' cannot be built for input_shape \(1, 40\) with no options: .*'hidden'"):
            build_model("test_act_mlp", 10, (1, 40))
        assert build_model("test_any_mlp", 10, (1, 40), hidden=4)[1].out_features == 4  # any option: its builder's to read
        # an option with no default names the run whatever its value, null too
        assert run_name(load_recipe(None, ["model.name=test_any_mlp", "model.options={act: null}"])) != run_name(
            load_recipe(None, ["model.name=test_any_mlp", "model.options={}"]))
        # tables fill in defaults a recipe could have given, and no others
        assert default_model_options({"model.name": "test_act_mlp", "model.options.hidden": 4}) == {"model.options.width": [4, 4]}
    finally:
        MODELS.pop("test_act_mlp")
        MODELS.pop("test_any_mlp")


def test_a_builder_defined_again_replaces_itself_but_no_other() -> None:
    """A reloaded module or a notebook cell run twice registers the same function again."""

    def define(width: int, init=None):
        @register("doctest_again", init=init)
        def again(num_classes, input_shape):
            """A linear layer."""
            return nn.Linear(input_shape[-1], width)

        return again

    def zero_weights(model: nn.Linear) -> nn.Linear:
        nn.init.zeros_(model.weight)
        return model

    try:
        define(3, init=zero_weights)
        assert torch.all(build_model("doctest_again", 10, (1, 40)).weight == 0)
        assert define(5) is MODELS["doctest_again"]  # the newer definition, without the older's weight scheme
        assert build_model("doctest_again", 10, (1, 40)).out_features == 5
        assert torch.all(build_model("doctest_again", 10, (1, 40)).weight != 0)
        with pytest.raises(ValueError, match="model 'doctest_again' is already registered"):
            register("doctest_again")(lambda num_classes, input_shape: nn.Linear(1, 1))

        def again(num_classes, input_shape):
            return nn.Linear(input_shape[-1], 1)

        # a function of the same name in another module
        again.__module__, again.__qualname__ = "other_models", MODELS["doctest_again"].__qualname__
        with pytest.raises(ValueError, match="model 'doctest_again' is already registered"):
            register("doctest_again")(again)
    finally:
        MODELS.pop("doctest_again")


def test_a_partial_or_a_callable_object_is_a_builder_that_may_be_defined_again() -> None:
    """Neither has a name of its own: registering one again failed with "'functools.partial'
    object has no attribute '__qualname__'". Each is defined where its function or class is."""

    def mlp(num_classes: int, input_shape, hidden: int = 8) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], hidden), nn.Linear(hidden, num_classes))

    class Linear:
        def __call__(self, num_classes, input_shape) -> nn.Module:
            return nn.Linear(input_shape[-1], num_classes)

    try:
        for width in (4, 6):  # a notebook cell run twice, edited
            register("test_partial")(functools.partial(mlp, hidden=width))
            register("test_object")(Linear())
        assert build_model("test_partial", 3, (1, 5))[1].out_features == 6
        assert build_model("test_object", 3, (1, 5)).out_features == 3
        with pytest.raises(ValueError, match="model 'test_partial' is already registered"):
            register("test_partial")(functools.partial(lambda num_classes, input_shape: mlp(num_classes, input_shape)))
        with pytest.raises(ValueError, match="model 'test_object' is already registered"):
            register("test_object")(mlp)
    finally:
        MODELS.pop("test_partial", None)
        MODELS.pop("test_object", None)


def test_a_builder_that_cannot_take_the_class_count_and_shape_is_refused_where_it_is_registered() -> None:
    # It was accepted, and a run failed later with "no_args() got an unexpected keyword argument 'num_classes'".
    with pytest.raises(ValueError, match=r"^model 'test_no_shape': its builder must take input_shape \(it is called as builder\(num_classes=..., "
                                        r"input_shape=..., \*\*model.options\)\); it takes \(num_classes, hidden\)$"):  # fmt: skip
        register("test_no_shape")(lambda num_classes, hidden=8: nn.Linear(4, num_classes))
    with pytest.raises(ValueError, match=r"must take num_classes and input_shape .* it takes \(\)$"):
        register("test_no_args")(lambda: nn.Linear(4, 2))
    assert "test_no_shape" not in MODELS and "test_no_args" not in MODELS

    class Net(nn.Module):  # a class is a builder too, as is one taking any keyword
        def __init__(self, num_classes, input_shape, width=4):
            super().__init__()
            self.fc = nn.Linear(input_shape[-1], num_classes)

    try:
        register("test_class")(Net)
        register("test_kwargs")(lambda **kwargs: nn.Linear(kwargs["input_shape"][-1], kwargs["num_classes"]))
        assert build_model("test_class", 3, (1, 5)).fc.out_features == 3
        assert build_model("test_kwargs", 3, (1, 5)).in_features == 5
    finally:
        MODELS.pop("test_class", None)
        MODELS.pop("test_kwargs", None)
