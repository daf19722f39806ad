"""Which parameters are prunable: defaults, include/exclude by name and regex, and errors."""

import re
import warnings

import pytest
import torch
from torch import nn

from prunelab.masks import Pruner, find_prunable, matches
from prunelab.masks.targets import unwrapped


class Mixed(nn.Module):
    """Every prunable module kind next to ones that must be left alone."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.conv1d = nn.Conv1d(2, 3, 3)
        self.conv2d = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.conv3d = nn.Conv3d(1, 2, 2, bias=False)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 2))


def test_default_is_conv_and_linear_weights_only():
    assert list(find_prunable(Mixed())) == [
        "conv1d.weight",
        "conv2d.weight",
        "conv3d.weight",
        "head.0.weight",
        "head.2.weight",
    ]


def test_transformer_linear_weights_including_out_proj():
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32)
    with pytest.warns(UserWarning, match="input projections"):  # the packed one is left dense, and said so
        assert list(find_prunable(layer)) == ["self_attn.out_proj.weight", "linear1.weight", "linear2.weight"]
        pruner = Pruner(layer)
    pruner.prune(0.5)
    assert pruner.count_pruned() == round(0.5 * (16 * 16 + 2 * 16 * 32))
    assert (layer.self_attn.out_proj.weight == 0).any()
    assert layer(torch.randn(3, 2, 16)).isfinite().all()  # still a working layer
    # the packed input projection is a plain parameter: pruned when included (as in the README)
    every_matrix = find_prunable(layer, include=[r".*in_proj_weight", r".*out_proj", r".*linear\d"])
    assert list(every_matrix) == ["self_attn.in_proj_weight", "self_attn.out_proj.weight", "linear1.weight", "linear2.weight"]


def test_shared_weight_is_listed_once():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    model[1].weight = model[0].weight
    assert list(find_prunable(model)) == ["0.weight"]


@pytest.mark.parametrize(
    ("include", "expected"),
    [
        (["head.0.weight"], ["head.0.weight"]),  # parameter name
        (["head.2"], ["head.2.weight"]),  # module name: its Conv/Linear weights, not the bias
        (["head"], ["head.0.weight", "head.2.weight"]),  # a container module: the weights inside
        (["embed.weight", "conv1d.weight"], ["embed.weight", "conv1d.weight"]),  # any parameter, model order
        ([r"conv\dd\.weight"], ["conv1d.weight", "conv2d.weight", "conv3d.weight"]),  # regex on the whole name
        # a regex naming modules picks their Conv/Linear weights, as their names do: not biases, norms, embeddings
        (["head.*"], ["head.0.weight", "head.2.weight"]),
        ([".*"], ["conv1d.weight", "conv2d.weight", "conv3d.weight", "head.0.weight", "head.2.weight"]),
        ([r"(conv2d|bn)"], ["conv2d.weight"]),
        # one naming only parameters picks them, whatever they are
        ([r".*\.bias"], ["conv1d.bias", "conv2d.bias", "bn.bias", "norm.bias", "head.0.bias", "head.2.bias"]),
    ],
)
def test_include(include, expected):
    assert list(find_prunable(Mixed(), include=include)) == expected


@pytest.mark.parametrize(
    ("exclude", "expected"),
    [
        (["head"], ["conv1d.weight", "conv2d.weight", "conv3d.weight"]),  # module name, and its children
        (["conv2d.weight"], ["conv1d.weight", "conv3d.weight", "head.0.weight", "head.2.weight"]),
        (["conv.d"], ["head.0.weight", "head.2.weight"]),  # regex
        ([r"head\.\d", "conv1d"], ["conv2d.weight", "conv3d.weight"]),
    ],
)
def test_exclude(exclude, expected):
    assert list(find_prunable(Mixed(), exclude=exclude)) == expected


class Numbered(nn.Module):
    """Blocks 0..119, whose names a regex reading "." as any character would mix up."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[nn.Sequential(nn.Linear(2, 2)) for _ in range(120)])


@pytest.mark.parametrize("label", ["include", "exclude"])
def test_a_name_of_the_model_means_that_name_not_a_regex_matching_others(label):
    everything = list(find_prunable(Numbered()))
    named = ["blocks.1.0.weight"]
    chosen = list(find_prunable(Numbered(), **{label: ["blocks.1.0"]}))
    assert chosen == (named if label == "include" else [name for name in everything if name not in named])
    # not a name of the model: a regex, "." any character
    assert list(find_prunable(Numbered(), include=["blocks.1.0.weigh."])) == named
    assert list(find_prunable(Numbered(), include=["blocks.1.0.*"])) == ["blocks.1.0.weight", "blocks.100.0.weight", "blocks.110.0.weight"]


def test_ratio_keys_that_are_names_of_the_model_mean_those_names():
    pruner = Pruner(Numbered())
    assert pruner.named_ratios({"blocks.1.0": 0.5}) == {"blocks.1.0.weight": 0.5}


def test_names_match_whole_components_not_prefixes():
    assert matches("fc", "fc.weight") and not matches("fc", "fc2.weight")
    assert matches("layer1", "layer1.0.conv1.weight") and not matches("layer", "layer1.0.conv1.weight")


@pytest.mark.parametrize(("label", "message"), [("include", "picks nothing"), ("exclude", "matches no parameter or module")])
def test_pattern_matching_nothing_is_an_error_naming_it(label, message):
    with pytest.raises(ValueError, match=f"{label} pattern 'hed' {message}"):
        find_prunable(Mixed(), **{label: ["head", "hed"]})


def test_including_a_module_without_conv_or_linear_weights_is_an_error():
    """``bn`` names a module, but picks nothing: its weight is not a Conv/Linear weight."""
    with pytest.raises(ValueError, match="include pattern 'bn' picks nothing"):
        find_prunable(Mixed(), include=["head", "bn"])


def test_a_tied_weight_answers_to_each_of_its_names():
    embed = nn.Embedding(10, 4)
    tied = nn.Sequential(embed, nn.Linear(4, 4, bias=False))
    tied[1].weight = embed.weight  # the Linear's weight is the embedding's
    assert list(find_prunable(tied)) == ["0.weight"]  # listed once, by its first name
    assert list(find_prunable(tied, include=["1"])) == ["0.weight"]
    assert list(find_prunable(tied, include=["1.weight"])) == ["0.weight"]
    with pytest.raises(ValueError, match="no prunable parameters"):
        find_prunable(tied, exclude=["1"])
    pruner = Pruner(tied)
    pruner.prune(ratios={"1.weight": 0.5})
    assert pruner.count_pruned("1.weight") == pruner.count_pruned("0.weight") == 20
    with pytest.raises(ValueError, match="'2.weight' is not a prunable parameter"):
        pruner.count_pruned("2.weight")


def test_excluding_a_module_that_would_not_be_pruned_anyway_is_no_error():
    """Defensive exclusions (an embedding, a norm layer, a head left out of include) change nothing."""
    assert list(find_prunable(Mixed(), exclude=["bn"])) == list(find_prunable(Mixed()))
    assert list(find_prunable(Mixed(), include=["head"], exclude=["embed", "conv2d"])) == list(find_prunable(Mixed(), include=["head"]))


def test_a_pattern_that_is_part_of_names_gets_a_hint():
    """Patterns match whole names: a middle part names nothing, and the error says how to mean it."""
    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 1, enable_nested_tensor=False)
    with pytest.raises(ValueError, match=re.escape("exclude pattern 'self_attn' matches no parameter or module of the model "
                                                   "(patterns match whole names: r'.*self_attn' matches layers.0.self_attn)")):  # fmt: skip
        find_prunable(model, exclude=["self_attn"])
    assert "layers.0.self_attn.out_proj.weight" not in find_prunable(model, exclude=[r".*self_attn"])
    with pytest.raises(ValueError, match=r"exclude pattern 'self_att' matches no parameter or module of the model; "):
        find_prunable(model, exclude=["self_att"])  # part of a part: r'.*self_att' would match nothing either, so no hint


@pytest.mark.parametrize("label", ["include", "exclude"])
def test_invalid_regex_is_an_error(label):
    with pytest.raises(ValueError, match=r"'conv\(' is not a valid regular expression"):
        find_prunable(Mixed(), **{label: ["conv("]})


def test_a_single_string_is_an_error():
    with pytest.raises(TypeError, match="not the string 'head'"):
        find_prunable(Mixed(), exclude="head")


def test_excluding_everything_is_an_error():
    with pytest.raises(ValueError, match="no prunable parameters"):
        find_prunable(nn.Sequential(nn.Linear(2, 2)), exclude=["0"])
    with pytest.raises(ValueError, match="no prunable parameters"):
        find_prunable(nn.Sequential(nn.BatchNorm1d(3)))


def test_a_layer_with_a_computed_weight_is_an_error_unless_excluded():
    from torch.nn.utils import parametrizations

    model = nn.Sequential(parametrizations.weight_norm(nn.Conv1d(4, 8, 3)), nn.Flatten(), nn.Linear(8 * 6, 2))
    for kwargs in ({}, {"include": ["0"]}):
        with pytest.raises(ValueError, match=r"layer '0' \(ParametrizedConv1d\) computes its weight"):
            find_prunable(model, **kwargs)
    assert list(find_prunable(model, exclude=["0"])) == ["2.weight"]
    assert list(find_prunable(model, include=["2"])) == ["2.weight"]
    # The parametrization's own parameter can be named (weight_norm's direction v, which zeroes w).
    assert list(find_prunable(model, include=["0.parametrizations.weight.original1"])) == [
        "0.parametrizations.weight.original1"
    ]
    with pytest.raises(ValueError, match=r"layer '0' \(ParametrizedLinear\)"):
        find_prunable(nn.Sequential(parametrizations.spectral_norm(nn.Linear(8, 8))))


def test_a_layer_pruned_by_torch_prune_says_how_to_make_its_weight_a_parameter_again():
    from torch.nn.utils import prune as torch_prune

    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    torch_prune.l1_unstructured(model[0], "weight", amount=0.5)
    with pytest.raises(ValueError, match=r"layer '0' \(Linear\) was pruned with torch.nn.utils.prune.*prune.remove\(module, 'weight'\)"):
        find_prunable(model)
    torch_prune.remove(model[0], "weight")
    assert list(find_prunable(model)) == ["0.weight", "2.weight"]


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.nn.utils.weight_norm, the older form, is deprecated
def test_the_older_weight_and_spectral_norms_are_named_as_computing_the_weight():
    for layer in (nn.utils.weight_norm(nn.Linear(8, 8)), nn.utils.spectral_norm(nn.Linear(8, 8))):
        with pytest.raises(ValueError, match=r"layer '0' \(Linear\) computes its weight from other parameters"):
            find_prunable(nn.Sequential(layer))


def test_a_weight_held_as_a_buffer_is_named_as_such():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    frozen = model[1].weight.detach().clone()
    del model[1].weight
    model[1].register_buffer("weight", frozen)
    with pytest.raises(ValueError, match=r"layer '1' \(Linear\) holds its weight as a plain tensor or buffer, not a parameter"):
        find_prunable(model)
    assert list(find_prunable(model, exclude=["1"])) == ["0.weight"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script is deprecated
def test_an_empty_include_and_a_scripted_model_are_named():
    with pytest.raises(ValueError, match="no prunable parameters: include is empty"):
        find_prunable(Mixed(), include=[])
    with pytest.raises(ValueError, match=r"a scripted model \(torch.jit.script\) cannot be pruned.*prune the model, then script it"):
        Pruner(torch.jit.script(nn.Sequential(nn.Linear(4, 4))))


def test_a_model_that_is_no_module_is_named():
    with pytest.raises(TypeError, match="^model must be a torch.nn.Module, got NoneType$"):
        find_prunable(None)


def test_the_default_set_says_it_leaves_attention_input_projections_dense():
    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 2, enable_nested_tensor=False)
    with pytest.warns(UserWarning, match=re.escape("nn.MultiheadAttention's input projections (layers.0.self_attn.in_proj_weight, "
                                                   "layers.1.self_attn.in_proj_weight) are plain parameters")):  # fmt: skip
        chosen = find_prunable(model)
    assert "layers.0.self_attn.out_proj.weight" in chosen and "layers.0.self_attn.in_proj_weight" not in chosen
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # named in include, or left out by an include of one's own: no warning
        find_prunable(model, include=[r".*in_proj_weight", r".*out_proj", r".*linear\d"])
        find_prunable(model, include=[r".*linear\d"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        find_prunable(model, exclude=[r".*self_attn"])  # left dense on purpose


def test_a_module_registered_twice_is_named_exactly_by_its_second_name():
    """``alias`` is ``blocks`` again: ``alias.1.0`` is a name of the model, so it means that
    module, not also ``alias.100.0`` and ``alias.110.0``, which the regular expression matches."""
    model = Numbered()
    model.alias = model.blocks
    assert list(find_prunable(model, include=["alias.1.0"])) == ["blocks.1.0.weight"]
    assert len(find_prunable(model, exclude=["alias.1.0"])) == len(find_prunable(model)) - 1


def test_a_distributed_data_parallel_wrapper_is_unwrapped(tmp_path):
    """DistributedDataParallel runs the model as ``module``, as DataParallel does (one process, Gloo)."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        model = nn.Linear(2, 2)
        assert unwrapped(nn.parallel.DistributedDataParallel(model)) is model
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize("patterns", [(p for p in ["head"]), 5])
def test_patterns_that_are_no_list_are_an_error(patterns):
    """A generator would be read up by the checks and then pick nothing; a number is no list."""
    with pytest.raises(TypeError, match=f"include must be a list of names or patterns, got {type(patterns).__name__}"):
        find_prunable(Mixed(), include=patterns)
