"""ChannelPruner: exact channel counts, scopes, nesting, criteria, and the small dense model."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from prunelab.criteria import FilterL1, RandomChannels
from prunelab.models import build_model
from prunelab.structured import ChannelGroup, ChannelPruner
from prunelab.structured.groups import channel_groups


def chain() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 10, 3), nn.BatchNorm2d(10), nn.ReLU(),
        nn.Conv2d(10, 12, 3), nn.BatchNorm2d(12), nn.ReLU(),
        nn.Flatten(), nn.Linear(12 * 2 * 2, 8), nn.ReLU(), nn.Linear(8, 3),
    )  # fmt: skip


X = torch.zeros(1, 3, 6, 6)
# Global filter_l1 is warned about (see the test of the warning); the tests use it on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:filter_l1 ranked globally:UserWarning")


def randomise_batchnorm(model: nn.Module) -> None:
    """Non-trivial BatchNorm parameters and statistics, so that zeroed channels must match exactly."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            nn.init.uniform_(module.weight, 0.1, 1.0)
            nn.init.normal_(module.bias)
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)


def zero_removed_channels(model: nn.Module, pruner: ChannelPruner) -> nn.Module:
    """Independent reference: the large model with each removed channel's filter, bias and
    BatchNorm scale and shift set to zero (seed 002's theta * M)."""
    masked = copy.deepcopy(model)
    with torch.no_grad():
        for group in pruner.groups:
            gone = sorted(set(range(group.size)) - set(pruner.keep[group.name].tolist()))
            for name in group.producers + group.depthwise + group.norms:
                layer = masked.get_submodule(name)
                layer.weight[gone] = 0
                if layer.bias is not None:
                    layer.bias[gone] = 0
    return masked


def test_layerwise_filter_l1_matches_torch_ln_structured() -> None:
    model = chain()
    pruner = ChannelPruner(model, X, exclude=["7"], criterion="filter_l1")
    pruner.prune(0.3, scope="layerwise")
    for name in ("0", "3"):
        reference = copy.deepcopy(model.get_submodule(name))
        torch_prune.ln_structured(reference, "weight", amount=0.3, n=1, dim=0)
        kept_rows = reference.weight_mask.flatten(1).all(1).nonzero().flatten()
        assert torch.equal(pruner.keep[name], kept_rows), name
    assert pruner.group_sparsity() == {"0": 0.3, "3": 4 / 12}  # round(3.6) = 4 of 12


def test_global_count_is_exact_and_ranks_across_groups() -> None:
    model = chain()
    randomise_batchnorm(model)
    pruner = ChannelPruner(model, X, criterion="bn_scale")
    assert [g.name for g in pruner.groups] == ["0", "3"]
    scores = torch.cat([model[1].weight.abs(), model[4].weight.abs()]).detach()
    with pytest.warns(UserWarning, match=r"cannot score the channel groups 7 \(no BatchNorm follows them\): they stay whole"):
        pruner.prune(0.5)
    kept = torch.cat([torch.isin(torch.arange(10), pruner.keep["0"]), torch.isin(torch.arange(12), pruner.keep["3"])])
    assert int((~kept).sum()) == 11  # round(0.5 * 22): the scored groups only
    assert pruner.channel_sparsity() == 0.5  # counted over the same groups
    assert scores[~kept].max() < scores[kept].min()  # the 11 smallest |gamma| went
    with pytest.warns(UserWarning, match="cannot score the channel groups 7"):
        pruner.prune(0.7)  # 4 more: the 15 smallest, round(0.7 * 22), counting the 11 already gone
    kept = torch.cat([torch.isin(torch.arange(10), pruner.keep["0"]), torch.isin(torch.arange(12), pruner.keep["3"])])
    assert int((~kept).sum()) == 15 and scores[~kept].max() < scores[kept].min()
    assert pruner.shrink()[7].out_features == 8  # the Linear group whole
    with pytest.raises(ValueError, match=r"ratio given for '7', but criterion BatchNormScale\(\) cannot score 7"):
        pruner.prune(ratios={"7": 0.5})
    # a state listing the unscorable group whole (as a filter_l1 pruner writes it) loads
    pruner.load_state_dict({**pruner.state_dict(), "7": list(range(8))})
    with pytest.raises(ValueError, match="channel state has groups"):
        pruner.load_state_dict({**pruner.state_dict(), "7": [0, 1]})


def test_unscorable_groups_are_said_when_channels_are_chosen_not_when_a_small_model_is_rebuilt() -> None:
    model = chain()
    randomise_batchnorm(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pruner = ChannelPruner(model, X, criterion="bn_scale")
        pruner.prune(0.5)
        rebuilt = ChannelPruner(model, X, criterion="bn_scale")  # as a resumed run or load_trained does
        rebuilt.load_state_dict(pruner.state_dict())
        rebuilt.shrink()
    said = [str(w.message) for w in caught]
    assert said == ["criterion BatchNormScale() cannot score the channel groups 7 (no BatchNorm follows them): "
                    "they stay whole, and sparsities count the other groups' channels"]  # fmt: skip


def test_a_prune_scores_the_weights_as_they_are_then_even_if_written_through_data() -> None:
    """Group 0's largest filter set to zero through ``.data`` (no version counter moves) after
    the pruner was made: the prune must remove that filter, by the weights it finds."""
    model = chain()
    pruner = ChannelPruner(model, X, criterion="filter_l1")
    channel = int(model[0].weight.abs().sum((1, 2, 3)).argmax())
    model[0].weight.data[channel] = 0
    pruner.prune(0.1, scope="layerwise")  # 1 of group 0's 10 channels
    assert channel not in pruner.keep["0"].tolist() and len(pruner.keep["0"]) == 9


def test_all_equal_scores_break_ties_by_group_then_channel_order() -> None:
    model = chain()
    with torch.no_grad():
        for layer in (model[0], model[3], model[7]):
            layer.weight.fill_(1.0)
    pruner = ChannelPruner(model, X, criterion=lambda m, g: torch.ones(g.size))
    with pytest.warns(UserWarning, match="18 of the channels kept score exactly as the best of those just removed"):
        pruner.prune(0.4)  # 12 of 30 channels; the 18 kept tie with them
    assert pruner.keep["0"].tolist() == [9]  # group "0" gives all but its best (the last, on ties)
    assert pruner.keep["3"].tolist() == list(range(3, 12))
    assert pruner.keep["7"].tolist() == list(range(8))


@pytest.mark.parametrize("seed", [0, 7])
def test_random_channels_removes_the_lowest_scores_of_the_pruner_s_seed(seed) -> None:
    """random_channels ranks globally by default: 12 of the 30 channels go, those of the
    lowest RandomChannels(seed) scores of all groups but each group's best."""
    sizes = {"0": 10, "3": 12, "7": 8}
    scores = {name: RandomChannels(seed)(None, ChannelGroup(name, size, [name])).tolist() for name, size in sizes.items()}
    assert len({s for score in scores.values() for s in score}) == 30  # no ties to break
    candidates = sorted((s, name, channel) for name, score in scores.items() for channel, s in enumerate(score) if s != max(score))
    removed = {(name, channel) for _, name, channel in candidates[:12]}
    expected = {name: [c for c in range(size) if (name, c) not in removed] for name, size in sizes.items()}
    pruner = ChannelPruner(chain(), X, criterion="random_channels", seed=seed)
    assert {name: kept.tolist() for name, kept in pruner.prune(0.4).items()} == expected


def test_every_group_keeps_a_channel_and_the_limit_is_a_clear_error() -> None:
    pruner = ChannelPruner(chain(), X)
    pruner.prune(0.9, scope="layerwise")
    assert [len(k) for k in pruner.keep.values()] == [1, 1, 1]  # 9 of 10 each
    for scope, ratios, asked in [("layerwise", None, "sparsity"), (None, {"0": 0.95}, "ratio")]:  # round(0.95 * 10) = 10
        with pytest.raises(ValueError, match=rf"^0: removing 10 of its 10 channels leaves none, but every group keeps one: "
                                             rf"at most 9 can go \(a {asked} of at most 0.9\)$"):  # fmt: skip
            ChannelPruner(chain(), X).prune(None if ratios else 0.95, scope=scope, ratios=ratios)
    pruner = ChannelPruner(chain(), X)
    with pytest.raises(ValueError, match=r"removes 28 of 30 channels, but every group keeps one: at most 27 channels can go \(a sparsity of at most 0.9\)"):
        pruner.prune(0.95, scope="global")
    pruner.prune(0.9, scope="global")  # round(0.9 * 30) = 27: the limit itself, each group down to its best channel
    assert [len(k) for k in pruner.keep.values()] == [1, 1, 1]
    halved = ChannelPruner(chain(), X)
    halved.prune(ratios={"0": 0.5})  # the 5 channels gone count towards the limit, which stays 27
    with pytest.raises(ValueError, match=r"removes 28 of 30 channels, but every group keeps one: at most 27 channels can go \(a sparsity of at most 0.9\)"):
        halved.prune(0.95, scope="global")


@pytest.mark.parametrize(("scope", "ratios"), [("layerwise", None), (None, {"0": 0.3, "3": 0.1})])
def test_a_target_in_error_for_one_group_changes_no_group(scope, ratios) -> None:
    """Group 0 comes first and could be pruned; group 3 cannot (2 removed already, 1 asked for)."""
    pruner = ChannelPruner(chain(), X)
    pruner.prune(ratios={"3": 0.2})
    before = {name: kept.tolist() for name, kept in pruner.keep.items()}
    with pytest.raises(ValueError, match=r"^3 already has 2 of 12 channels removed, more than the 1 asked for$"):
        pruner.prune(None if ratios else 0.1, scope=scope, ratios=ratios)
    assert {name: kept.tolist() for name, kept in pruner.keep.items()} == before


def ranked_chain() -> nn.Sequential:
    """BatchNorm scales that interleave the two groups: 0.05 (group 3), 0.1 (group 0), 0.15, 0.25 (3), 0.3 (0), ..."""
    model = chain()
    with torch.no_grad():
        model[1].weight.copy_(0.1 + 0.2 * torch.arange(10))
        model[4].weight.copy_(0.05 + 0.1 * torch.arange(12))
    return model


def dense_weights(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)))


@pytest.mark.filterwarnings("ignore:criterion BatchNormScale\\(\\) cannot score")  # the Linear group
def test_a_sparsity_of_weights_removes_the_fewest_channels_that_take_that_share_of_the_weights() -> None:
    """Seed 002's Algorithm A2: "prune p% of parameters" by removing channels in the order of
    their BatchNorm scales. chain() has 270 + 1080 + 384 + 24 = 1758 Conv/Linear weights; a
    channel of group 3 takes its conv row (10 inputs * 9) and 2 * 2 columns of the 8-unit
    Linear, one of group 0 its conv row (3 * 9) and the next conv's column (12 rows * 9):
    122, then 27 + 11 * 9 = 126, then 9 * 9 + 32 = 113: 361 of 1758 at the third channel."""
    model = ranked_chain()
    assert dense_weights(model) == 1758
    pruner = ChannelPruner(model, X, criterion="bn_scale")
    pruner.prune(0.2, sparsity_of="weights")  # 351.6 weights: two channels take 248, three 361
    assert {name: 10 - len(kept) if name == "0" else 12 - len(kept) for name, kept in pruner.keep.items()} == {"0": 1, "3": 2}
    assert pruner.weight_sparsity() == pytest.approx(361 / 1758)
    assert dense_weights(pruner.shrink()) == 1758 - 361  # what the small model has, counted independently
    # Nested: the next target continues down the same ranking; a lower one is an error.
    pruner.prune(0.5, sparsity_of="weights")
    assert 0.5 <= pruner.weight_sparsity() == pytest.approx(1 - dense_weights(pruner.shrink()) / 1758)
    fewer = ChannelPruner(ranked_chain(), X, criterion="bn_scale")
    fewer.prune((pruner.channel_sparsity() * 22 - 1) / 22)  # one channel fewer, by count
    assert fewer.weight_sparsity() < 0.5
    with pytest.raises(ValueError, match=r"^0\.5\d* of the weights are already removed, more than the sparsity 0\.3 asked for$"):
        pruner.prune(0.3, sparsity_of="weights")
    # The same target again is met: whole channels overshot it, and nothing changes (as for a count of channels).
    kept = pruner.state_dict()
    assert pruner.weight_sparsity() > 0.5
    pruner.prune(0.5, sparsity_of="weights")
    assert pruner.state_dict() == kept
    with pytest.raises(ValueError, match=r"^sparsity 0\.99 of the weights needs more channels than can go \(every group keeps one\): at most 0\.9477 of"):
        # one channel left in each group: 27 + 9 + 8 * 4 + 24 = 92 weights, 1 - 92 / 1758 = 0.9477
        ChannelPruner(ranked_chain(), X, criterion="bn_scale").prune(0.99, sparsity_of="weights")


@pytest.mark.filterwarnings("ignore:criterion BatchNormScale\\(\\) cannot score")  # the Linear group
def test_a_sparsity_of_weights_met_exactly_takes_no_extra_channel_and_one_met_without_a_channel_is_an_error() -> None:
    """The boundaries of "the fewest channels whose removal takes at least the sparsity out",
    with the counts derived in the test above: the first channel takes 122 weights, the first
    two 122 + 126 = 248, the first three 361. A target of exactly 122 / 1758 or 248 / 1758 is
    met by one or two channels, not one more. After the three, restoring group 0's channel
    leaves group 3's two (2 * 122 = 244 weights), restoring one of group 3's leaves 248: a
    target of 244 / 1758 is met without either, so it asks for fewer channels (an error),
    while 245 / 1758 needs all three and changes nothing."""
    for weights, removed in ((122, {"0": 0, "3": 1}), (248, {"0": 1, "3": 1}), (361, {"0": 1, "3": 2})):
        pruner = ChannelPruner(ranked_chain(), X, criterion="bn_scale")
        pruner.prune(weights / 1758, sparsity_of="weights")
        assert {name: {"0": 10, "3": 12}[name] - len(kept) for name, kept in pruner.keep.items()} == removed
        assert dense_weights(pruner.shrink()) == 1758 - weights  # counted on the small model, independently
    kept = pruner.state_dict()
    pruner.prune(245 / 1758, sparsity_of="weights")
    assert pruner.state_dict() == kept
    with pytest.raises(ValueError, match=r"^0\.2053 of the weights are already removed, more than the sparsity 0\.1387\d* asked for$"):
        pruner.prune(244 / 1758, sparsity_of="weights")
    assert pruner.state_dict() == kept


def test_a_sparsity_of_weights_met_without_a_removed_channel_is_an_error_whatever_the_untouched_groups() -> None:
    """Of the 8 + 80 + 40 = 128 weights, each of b's 20 units takes 4 + 2, each of a's 4 units
    2 + 20. Two of b's units removed take 12; without either, 6 still go, which meets a target
    of 5 / 128: an error, as a has no removed unit to give back."""
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 20), nn.ReLU(), nn.Linear(20, 2))
    pruner = ChannelPruner(model, torch.zeros(1, 2), criterion=lambda m, g: torch.arange(g.size, dtype=torch.float64))
    pruner.prune(ratios={"2": 0.1})
    assert pruner.weight_sparsity() == 12 / 128
    with pytest.raises(ValueError, match=r"^0\.09375 of the weights are already removed, more than the sparsity 0\.0390625 asked for$"):
        pruner.prune(5 / 128, sparsity_of="weights")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sparsity": 0.5, "scope": "layerwise", "sparsity_of": "weights"}, "sparsity_of='weights' ranks channels across groups"),
        ({"ratios": {"0": 0.5}, "sparsity_of": "weights"}, "it needs scope 'global' \\(and no ratios\\)"),
        ({"sparsity": 0.5, "sparsity_of": "parameters"}, "sparsity_of must be 'channels' or 'weights', got 'parameters'"),
    ],
)
def test_a_sparsity_of_weights_is_global_only(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        ChannelPruner(chain(), X, criterion="random_channels").prune(**kwargs)  # global by default: ratios alone are refused


@pytest.mark.parametrize(("name", "shape", "options"), [("resnet20", (3, 32, 32), {}), ("mnist1d_cnn", (1, 40), {"batch_norm": True})])
def test_weight_sparsity_counts_what_the_small_model_loses(name, shape, options) -> None:
    """Residual-coupled groups and a flattening classifier: the count agrees with the small model's weights."""
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, input_shape=shape, **options)
    randomise_batchnorm(model)
    pruner = ChannelPruner(model, torch.zeros(1, *shape), criterion="bn_scale")
    pruner.prune(0.6, sparsity_of="weights")
    assert 0.6 <= pruner.weight_sparsity() < 0.61
    assert pruner.weight_sparsity() == pytest.approx(1 - dense_weights(pruner.shrink()) / dense_weights(model))


@pytest.mark.filterwarnings("ignore:3 of the channels kept score exactly")  # the zeroed filters tie
def test_channels_once_removed_stay_removed() -> None:
    model = chain()
    pruner = ChannelPruner(model, X)
    pruner.prune(ratios={"0": 0.5})
    assert pruner.group_sparsity() == {"0": 0.5, "3": 0.0, "7": 0.0}
    first = pruner.keep["0"].clone()
    with torch.no_grad():
        model[0].weight[first] = 0  # the kept filters now score lowest; nesting still holds
    pruner.prune(ratios={"0": 0.7})
    assert len(pruner.keep["0"]) == 3 and set(pruner.keep["0"].tolist()) <= set(first.tolist())
    with pytest.raises(ValueError, match="0 already has 7 of 10 channels removed, more than the 5 asked for"):
        pruner.prune(ratios={"0": 0.5})
    with pytest.raises(ValueError, match="more than the 6 asked for"):
        pruner.prune(0.2, scope="global")


def test_the_same_target_again_removes_no_more_channels() -> None:
    """A schedule may give a target twice: the channels already removed meet it, in every scope.
    chain()'s groups of 10, 12 and 8 lose 5, 6 and 4 to a sparsity of 0.5 layerwise, 15 of 30 in all."""
    pruner = ChannelPruner(chain(), X)
    pruner.prune(0.5, scope="layerwise")
    kept = pruner.state_dict()
    assert [len(k) for k in kept.values()] == [5, 6, 4]
    pruner.prune(0.5, scope="layerwise")
    pruner.prune(ratios={"0": 0.5, "3": 0.5})
    pruner.prune(0.5, scope="global")  # round(0.5 * 30) = 15, all gone already
    assert pruner.state_dict() == kept


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: p.prune(1.0), r"sparsity must be a number in \[0, 1\), got 1.0"),
        (lambda p: p.prune(0.5, scope="blocks"), "scope must be 'global' or 'layerwise'"),
        (lambda p: p.prune(), "give either a sparsity or per-group ratios"),
        (lambda p: p.prune(ratios={"9": 0.5}), r"ratio given for '9', but the channels of 9 cannot be removed: the model's output"),
        (lambda p: p.prune(ratios={"conv9": 0.5}), r"ratio given for 'conv9', which names none of the channel groups \(or the layers of one\): 0, 3, 7"),
        (lambda p: p.prune(ratios={"0": -0.1}), r"ratio for '0' must be a number"),
        (lambda p: p.prune(ratios={"0": 1.0}), r"ratio for '0' must be a number in \[0, 1\), got 1.0"),  # no channel left
    ],
)
def test_bad_arguments_are_clear_errors(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call(ChannelPruner(chain(), X))


def test_a_criterion_of_ones_own_that_breaks_the_contract_is_named() -> None:
    """One score per channel, every time: none for any group, a score too few, a NaN, or none
    at pruning for a group it scored when the pruner was made."""

    def no_scores(model, group):
        return None

    def one_too_few(model, group):
        return torch.ones(group.size - 1)

    def nan(model, group):
        return torch.full((group.size,), math.nan)

    calls = []

    def scores_once(model, group):  # each group is scored once as the pruner is made
        calls.append(group.name)
        return torch.ones(group.size) if len(calls) <= 3 else None

    with pytest.raises(ValueError, match=r"^criterion <function .*no_scores at .*> scores none of the channel groups 0, 3, 7$"):
        ChannelPruner(chain(), X, criterion=no_scores)
    for criterion, given in ((one_too_few, 9), (nan, 10)):
        with pytest.raises(ValueError, match=rf"^criterion <function .*{criterion.__name__} at .*> gave {given} scores \(or NaN\) for the 10 channels of 0$"):
            ChannelPruner(chain(), X, criterion=criterion).prune(0.5)
    with pytest.raises(ValueError, match=r"^criterion <function .*scores_once at .*> scored 0 when the pruner was made, but not now$"):
        ChannelPruner(chain(), X, criterion=scores_once).prune(0.5)


def test_a_sparsity_or_ratio_may_be_a_one_element_real_tensor_and_other_tensors_are_named() -> None:
    for scope in ("layerwise", "global"):
        kept = ChannelPruner(chain(), X).prune(torch.tensor(0), scope=scope)
        assert {name: channels.tolist() for name, channels in kept.items()} == {"0": list(range(10)), "3": list(range(12)), "7": list(range(8))}
    kept = ChannelPruner(chain(), X).prune(ratios={"0": torch.tensor(0.5), "3": torch.tensor(0)})
    assert {name: len(channels) for name, channels in kept.items()} == {"0": 5, "3": 12, "7": 8}
    for value, what in [(torch.tensor([0.1, 0.2]), r"torch.float32 tensor of shape \(2,\)"), (torch.tensor(True), "torch.bool tensor"),
                        (torch.tensor(0.1j), "torch.complex64 tensor")]:  # fmt: skip
        with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\), got a " + what):
            ChannelPruner(chain(), X).prune(value)
        with pytest.raises(ValueError, match=r"ratio for '0' must be a number in \[0, 1\), got a " + what):
            ChannelPruner(chain(), X).prune(ratios={"0": value})


def test_a_model_without_channels_to_prune_says_so() -> None:
    # The message listed the model's channel groups, and ended in an empty list here.
    with pytest.raises(ValueError, match=r"^no channel group of the model can be pruned; groups: none, no layer of the model makes channels \(a Conv or Linear layer\)$"):
        ChannelPruner(nn.Sequential(nn.ReLU()), torch.zeros(1, 4))
    # Channels whose groups cannot be pruned: which, why, and what to do instead.
    layernorm = nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 2))
    with pytest.raises(ValueError, match=r"^no channel group of the model can be pruned; prune its weights instead \(prunelab.Pruner, or criterion "
                                         r"magnitude in a recipe\); groups: 0 \(6, not prunable: used by 1 \(LayerNorm\)\); 2 "):
        ChannelPruner(layernorm, torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"^include/exclude leave no prunable channel group; groups: 0 \(10\); 3 \(12\); 7 \(8\); 9 "):
        ChannelPruner(chain(), X, exclude=["0", "3", "7"])


def test_include_exclude_pick_groups_by_layer_and_typos_are_errors() -> None:
    assert [g.name for g in ChannelPruner(chain(), X, include=["3"]).groups] == ["3"]
    assert [g.name for g in ChannelPruner(chain(), X, exclude=["1"]).groups] == ["3", "7"]  # a group's BatchNorm counts
    assert [g.name for g in ChannelPruner(chain(), X, include=["4"]).groups] == ["3"]  # for include too
    with pytest.raises(ValueError, match="exclude pattern 'conv' matches no layer making channels; groups: 0 .10.; 3"):
        ChannelPruner(chain(), X, exclude=["conv"])
    with pytest.raises(ValueError, match="include pattern '9' picks no prunable channel group"):
        ChannelPruner(chain(), X, include=["9"])  # the output layer's group is not prunable
    with pytest.raises(ValueError, match=r"criterion bn_scale needs BatchNorm layers after the pruned layers, and none of the channel groups \(7\)"):
        ChannelPruner(chain(), X, include=["7"], criterion="bn_scale").prune(0.5)


@pytest.mark.parametrize(
    ("name", "shape", "criterion"),
    [
        ("resnet20", (3, 32, 32), "bn_scale"),
        ("resnet20", (3, 32, 32), "filter_l1"),
        ("resnet50", (3, 64, 64), "bn_scale"),  # bottlenecks: stage groups joined through their shortcuts
        ("vgg16_bn", (3, 32, 32), "random_channels"),
        ("conv2", (3, 16, 16), "filter_l1"),
        ("mnist1d_cnn", (1, 40), "filter_l1"),
        ("lenet_300_100", (1, 28, 28), "filter_l1"),
    ],
)
@pytest.mark.parametrize("train", [False, True])
def test_small_model_computes_what_the_zeroed_large_model_does(name, shape, criterion, train) -> None:
    torch.manual_seed(1)
    model = build_model(name, num_classes=10, input_shape=shape)
    randomise_batchnorm(model)
    x = torch.randn(6, *shape)
    pruner = ChannelPruner(model, x[:1], criterion=criterion)
    pruner.prune(0.6)
    small = pruner.shrink()
    reference = zero_removed_channels(model, pruner)
    small.train(train)
    reference.train(train)
    torch.testing.assert_close(small(x), reference(x), rtol=1e-4, atol=1e-5)
    kept = sum(len(k) for k in pruner.keep.values())
    sizes = [g.size for g in pruner.groups]
    if criterion == "filter_l1":  # its default scope: the same share of every group
        assert kept == sum(size - round(0.6 * size) for size in sizes)
    else:  # ranked across groups
        assert kept == sum(sizes) - round(0.6 * sum(sizes))
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    assert model.training and not any(p.shape != q.shape for p, q in zip(model.parameters(), build_model(name, 10, shape).parameters()))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: expand (1x1), depthwise 3x3, project (1x1); a residual when the widths allow."""

    def __init__(self, width: int, expanded: int, out: int) -> None:
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(width, expanded, 1, bias=False), nn.BatchNorm2d(expanded), nn.ReLU6())
        self.depthwise = nn.Sequential(nn.Conv2d(expanded, expanded, 3, padding=1, groups=expanded), nn.BatchNorm2d(expanded), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(expanded, out, 1, bias=False), nn.BatchNorm2d(out))
        self.residual = width == out

    def forward(self, x):
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


def mobile() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(),
        InvertedResidual(8, 24, 12), InvertedResidual(12, 36, 12),
        nn.Conv2d(12, 24, 3, padding=1, groups=12),  # a depthwise multiplier of 2: two channels of each, kept whole
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 5),
    )  # fmt: skip


@pytest.mark.parametrize("criterion", ["filter_l1", "bn_scale"])
@pytest.mark.parametrize("train", [False, True])
def test_depthwise_convolutions_lose_the_channels_of_their_group(criterion, train) -> None:
    model = mobile()
    randomise_batchnorm(model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d) and module.bias is not None:
                module.bias.normal_()  # a removed channel's depthwise bias must go with it
    x = torch.randn(4, 3, 8, 8)
    groups = {g.name: g for g in channel_groups(model, x[:1])}
    assert groups["3.expand.0"].depthwise == ["3.depthwise.0"] and groups["3.expand.0"].norms == ["3.expand.1", "3.depthwise.1"]
    assert groups["4.expand.0"].depthwise == ["4.depthwise.0"]
    # block 4's residual joins its output with block 3's, which a depthwise multiplier of 2 reads
    assert groups["3.project.0"].unprunable == "read by the grouped convolution 5, whose groups of input channels must stay whole"
    assert groups["3.project.0"].producers == ["3.project.0", "4.project.0"] and groups["5"].unprunable == "made by the grouped convolution 5"
    pruner = ChannelPruner(model, x[:1], criterion=criterion)
    pruner.prune(0.5, scope="layerwise")
    small = pruner.shrink()
    depthwise = small.get_submodule("3.depthwise.0")
    kept = len(pruner.keep["3.expand.0"])
    assert kept == 12 and (depthwise.in_channels, depthwise.out_channels, depthwise.groups) == (kept, kept, kept)
    assert depthwise.weight.shape == (kept, 1, 3, 3) and depthwise.bias.shape == (kept,)
    assert pruner.weight_sparsity() == pytest.approx(1 - dense_weights(small) / dense_weights(model))  # depthwise filters too
    reference = zero_removed_channels(model, pruner)
    small.train(train)
    reference.train(train)
    torch.testing.assert_close(small(x), reference(x), rtol=1e-4, atol=1e-5)


def test_a_depthwise_convolution_with_a_bias_and_no_batchnorm_after_shrinks_without_a_warning() -> None:
    """The removed channels' depthwise biases are zeroed in the reference too: the small model
    computes what it does, and shrink does not warn otherwise."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 4, 1), nn.ReLU(), nn.Conv1d(4, 4, 3, padding=1, groups=4), nn.ReLU(), nn.Conv1d(4, 2, 1))
    with torch.no_grad():
        model[2].bias.uniform_(0.5, 1.0)  # a removed channel would be its bias, alive after the ReLU
    x = torch.randn(3, 1, 6)
    pruner = ChannelPruner(model, x[:1])
    pruner.prune(0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small = pruner.shrink()
    torch.testing.assert_close(small(x), zero_removed_channels(model, pruner)(x))


def test_small_model_layers_describe_their_new_widths() -> None:
    model = build_model("resnet20", num_classes=10, input_shape=(3, 32, 32))
    pruner = ChannelPruner(model, torch.zeros(1, 3, 32, 32), include=["stage1.0.conv1"])
    pruner.prune(ratios={"stage1.0.conv1": 0.25})
    small = pruner.shrink()
    block = small.stage1[0]
    assert (block.conv1.out_channels, block.bn1.num_features, block.conv2.in_channels) == (12, 12, 12)
    assert block.conv1.weight.shape == (12, 16, 3, 3) and block.conv2.weight.shape == (16, 12, 3, 3)
    assert set(small.state_dict()) == set(model.state_dict())  # same names: checkpoints and reports still line up


def test_small_model_parameters_stay_frozen_or_trainable_as_they_were() -> None:
    """A frozen layer (requires_grad=False, as when only the head trains) stays frozen in the
    small model; the others stay trainable."""
    model = chain()
    for parameter in (*model[0].parameters(), *model[1].parameters()):
        parameter.requires_grad_(False)
    pruner = ChannelPruner(model, X, criterion="filter_l1")
    pruner.prune(0.5, scope="layerwise")
    small = pruner.shrink()
    assert small[0].out_channels == 5 and small[3].in_channels == 5  # cut where frozen and where trained
    frozen = {name for name, p in small.named_parameters() if not p.requires_grad}
    assert frozen == {"0.weight", "0.bias", "1.weight", "1.bias"}


def test_a_flatten_to_a_fixed_width_leaves_its_channels_whole_and_the_others_prunable() -> None:
    """LeNet's x.view(-1, 16 * 5 * 5), here 4 * 8: the last convolution's channels stay, the first one's go."""

    class Fixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2, self.fc = nn.Conv1d(1, 6, 3), nn.Conv1d(6, 4, 3), nn.Linear(4 * 8, 2)

        def forward(self, x):
            return self.fc(self.conv2(self.conv1(x).relu()).relu().view(-1, 4 * 8))

    torch.manual_seed(0)
    model = Fixed()
    pruner = ChannelPruner(model, torch.zeros(1, 1, 12))
    assert [g.name for g in pruner.groups] == ["conv1"]
    pruner.prune(0.5)
    small = pruner.shrink()
    assert (small.conv1.out_channels, small.conv2.in_channels, small.conv2.out_channels) == (3, 3, 4)
    x = torch.randn(5, 1, 12)
    torch.testing.assert_close(small(x), zero_removed_channels(model, pruner)(x))


def test_state_dict_round_trip_and_bad_states() -> None:
    pruner = ChannelPruner(chain(), X, criterion=FilterL1())
    pruner.prune(0.5, scope="layerwise")
    state = pruner.state_dict()
    other = ChannelPruner(chain(), X)
    other.load_state_dict(state)
    assert other.state_dict() == state and other.channel_sparsity() == pruner.channel_sparsity()
    with pytest.raises(ValueError, match="channel state has groups"):
        other.load_state_dict({"0": [1]})
    with pytest.raises(ValueError, match="kept channels of 0 must be increasing indices below 10"):
        other.load_state_dict({**state, "0": [3, 2]})
    with pytest.raises(ValueError, match=r"kept channels of 0 must be a list of channel indices \(whole numbers\), got \[0.5, 1.7\]"):
        other.load_state_dict({**state, "0": [0.5, 1.7]})
    other.load_state_dict({name: torch.tensor(kept) for name, kept in state.items()})  # tensors of indices too
    assert other.state_dict() == state
    for kept, message in (([[1, 2]], r"must be a list of channel indices \(whole numbers\), got \[\[1, 2\]\]"),
                          ("abc", "must be a list of channel indices"), ([], "must be increasing indices below 10, at least one; got \\[\\]")):  # fmt: skip
        with pytest.raises(ValueError, match=f"kept channels of 0 {message}"):
            other.load_state_dict({**state, "0": kept})
    with pytest.raises(TypeError, match="channel state must be a mapping of group names to kept channels, got list"):
        other.load_state_dict(list(state.items()))
    assert other.state_dict() == state  # nothing half-loaded


def test_a_scope_given_with_ratios_is_an_error() -> None:
    pruner = ChannelPruner(chain(), X)
    for scope in ("global", "layerwise", "bogus"):
        with pytest.raises(ValueError, match=f"scope='{scope}' does not apply to per-group ratios"):
            pruner.prune(ratios={"0": 0.5}, scope=scope)


def test_models_with_several_outputs_shrink_and_keep_their_modes() -> None:
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.bn = nn.Conv1d(1, 6, 3), nn.BatchNorm1d(6)
            self.left, self.right = nn.Conv1d(6, 2, 1), nn.Conv1d(6, 3, 1)

        def forward(self, x):
            h = torch.relu(self.bn(self.body(x)))
            return {"left": self.left(h), "both": (self.right(h), x)}

    torch.manual_seed(0)
    model = TwoHeads()
    randomise_batchnorm(model)
    model.bn.eval()  # a frozen BatchNorm inside a training model stays frozen
    x = torch.randn(4, 1, 7)
    pruner = ChannelPruner(model, x[:1], criterion="bn_scale")
    assert [c for c, _ in pruner.groups[0].consumers] == ["left", "right"]
    pruner.prune(0.5)
    small = pruner.shrink()
    assert model.training and not model.bn.training and small.training and not small.bn.training
    got, expected = small.eval()(x), zero_removed_channels(model, pruner).eval()(x)
    torch.testing.assert_close(got["left"], expected["left"])
    torch.testing.assert_close(got["both"][0], expected["both"][0])


@pytest.mark.filterwarnings("default")
def test_global_filter_l1_is_warned_about_and_each_criterion_s_default_scope_is_not() -> None:
    with pytest.warns(UserWarning, match="filter_l1 ranked globally compares filter norms of layers with different fan-in"):
        ChannelPruner(chain(), X).prune(0.5, scope="global")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        default = ChannelPruner(chain(), X)
        default.prune(0.5)  # filter_l1's own scope: layerwise
        assert [len(k) for k in default.keep.values()] == [5, 6, 4]  # half of 10, 12 and 8
        trained = chain()
        randomise_batchnorm(trained)  # scales of 1 would tie
        ChannelPruner(trained, X, criterion="bn_scale", exclude=["7"]).prune(0.5)  # "7" has no BatchNorm
        ChannelPruner(chain(), X, include=["3"]).prune(0.5, scope="global")  # one group: nothing to compare across


class AuxiliaryHead(nn.Module):
    """A head that only runs in training (as GoogLeNet's), reading the first layer's channels;
    with ``eval_only``, a head that only runs in eval mode instead."""

    def __init__(self, eval_only: bool = False) -> None:
        super().__init__()
        self.eval_only = eval_only
        self.c1, self.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc, self.aux = nn.Linear(8, 2), nn.Linear(8, 2)

    def forward(self, x):
        a = torch.relu(self.bn(self.c1(x)))
        out = self.fc(nn.functional.adaptive_avg_pool2d(torch.relu(self.c2(a)), 1).flatten(1))
        if self.training != self.eval_only:
            return out, self.aux(nn.functional.adaptive_avg_pool2d(a, 1).flatten(1))
        return out


def test_a_branch_that_runs_only_in_training_is_traced_and_shrunk_whatever_the_models_mode() -> None:
    torch.manual_seed(0)
    model = AuxiliaryHead()
    randomise_batchnorm(model)
    x = torch.randn(4, 3, 8, 8)
    for mode in ("eval", "train"):
        pruner = ChannelPruner(getattr(model, mode)(), x)
        assert pruner.groups[0].consumers == [("c2", 1), ("aux", 1)]
        pruner.prune(0.5, scope="layerwise")
        small, masked = pruner.shrink(), zero_removed_channels(model, pruner)
        assert small.training == (mode == "train")
        torch.testing.assert_close(small.eval()(x), masked.eval()(x))
        with torch.random.fork_rng():
            expected = masked.train()(x)
        torch.testing.assert_close(small.train()(x), expected)


def test_a_branch_that_runs_only_in_eval_mode_is_checked_when_shrinking() -> None:
    model = AuxiliaryHead(eval_only=True).train()
    before = {name: b.clone() for name, b in model.named_buffers()}
    pruner = ChannelPruner(model, torch.randn(2, 3, 8, 8))
    pruner.prune(0.5, scope="layerwise")
    with pytest.raises(ValueError, match=r"fails on the example input \(its forward may fix a width, or a branch that runs only in eval mode"):
        pruner.shrink()
    assert model.training and all(torch.equal(b, before[name]) for name, b in model.named_buffers())


class _FailsInTraining(nn.Module):
    """Passes its input on in eval mode; run in training mode (not while traced), raises."""

    def forward(self, x):
        if self.training and not isinstance(x, torch.fx.Proxy):
            raise RuntimeError("no training here")
        return x


def test_a_model_that_fails_in_training_mode_is_shrunk_and_checked_in_eval_mode_only() -> None:
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), _FailsInTraining(), nn.Linear(6, 2))
    pruner = ChannelPruner(model, torch.zeros(1, 4))
    pruner.prune(0.5)
    with pytest.warns(UserWarning, match=r"^the model fails in training mode on the example input \(no training here\): "
                                         r"the small model is checked in eval mode only$"):  # fmt: skip
        small = pruner.shrink()
    assert (small[0].out_features, small[3].in_features) == (3, 3)


class _CountingDropout(nn.Dropout):
    """Dropout that records the batch size of every call in training mode (not while traced)."""

    def __init__(self) -> None:
        super().__init__(0.5)
        self.training_batches: list[int] = []

    def forward(self, x):
        if self.training and not isinstance(x, torch.fx.Proxy):
            self.training_batches.append(len(x))
        return super().forward(x)


def test_shrinking_checks_training_mode_on_a_batch_of_one_and_leaves_the_random_state_alone() -> None:
    """BatchNorm cannot train on a batch of one: the training-mode check gives the single
    example twice, so that it runs at all; its dropout draws are not taken from the caller."""
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), _CountingDropout(), nn.Linear(6, 2))
    pruner = ChannelPruner(model, torch.zeros(1, 4))
    pruner.prune(0.5)
    state = torch.get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the check is not skipped
        small = pruner.shrink()
    assert torch.equal(torch.get_rng_state(), state)
    assert model[3].training_batches == [2] and small[3].training_batches == [2]


def test_a_single_example_is_enough_for_a_batchnorm_without_running_statistics() -> None:
    """Such a BatchNorm normalises by the batch's statistics in eval mode too, which one example
    does not have: the pruner runs the model on the example given twice, leaving the model's
    mode and the random state alone."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6, track_running_stats=False), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 2))
    nn.init.uniform_(model[1].weight, 0.5, 1.5)
    nn.init.normal_(model[1].bias)
    state = torch.get_rng_state()
    pruner = ChannelPruner(model, torch.zeros(1, 4))
    assert [(g.name, g.norms) for g in pruner.groups] == [("0", ["1"])]
    pruner.prune(0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no check is skipped
        small = pruner.shrink()
    assert torch.equal(torch.get_rng_state(), state) and model.training
    x = torch.randn(5, 4)
    assert (small[0].out_features, small[1].num_features) == (3, 3)
    torch.testing.assert_close(small.eval()(x), zero_removed_channels(model, pruner).eval()(x))


def test_shrink_refuses_kept_channels_that_are_not_increasing_indices() -> None:
    from prunelab.structured import shrink

    model = chain()
    pruner = ChannelPruner(model, X)
    state = pruner.state_dict()
    for kept, message in (([1, 1, 2], "must be increasing indices below 10"), ([0.5, 1.7], "must be a list of channel indices"),
                          ([0, 10], "must be increasing indices below 10"), ([-1, 3], "must be increasing indices below 10"),
                          ([], "must be increasing indices below 10, at least one"), ([True, 2], "must be a list of channel indices")):  # fmt: skip
        with pytest.raises(ValueError, match=f"kept channels of 0 {message}"):
            shrink(model, pruner.groups, {**state, "0": kept}, X)
    with pytest.raises(ValueError, match="keep has no kept channels for the group"):
        shrink(model, pruner.groups, {}, X)
    with pytest.raises(ValueError, match=r"^the model fails on the example input: "):
        shrink(model, pruner.groups, state, torch.zeros(1, 5, 6, 6))  # 5 input channels for 3


def test_shrink_refuses_to_cut_a_group_the_tracer_found_unprunable() -> None:
    """Every group of channel_groups may be given to shrink, whole; cutting one that cannot lose
    channels is an error with the tracer's reason, not a failed forward or a warning."""
    from prunelab.structured import shrink

    class ScaledByWidth(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv1d(1, 4, 1), nn.Conv1d(4, 2, 1)

        def forward(self, x):
            h = self.a(x)
            return self.b(h * h.size(1) ** -0.5)  # a width the small model would change

    model, x = ScaledByWidth(), torch.randn(1, 1, 5)
    groups = channel_groups(model, x)
    whole = {g.name: list(range(g.size)) for g in groups}
    assert shrink(model, groups, whole, x).a.out_channels == 4
    with pytest.raises(ValueError, match=r"^keep removes channels of a, which cannot be removed: its width read by size$"):
        shrink(model, groups, {**whole, "a": [0, 1]}, x)


def test_shrink_takes_the_kept_channels_as_the_state_dict_gives_them() -> None:
    """``shrink(model, groups, pruner.state_dict(), x)``: lists of indices, as in channels.json."""
    from prunelab.structured import shrink

    model = chain()
    pruner = ChannelPruner(model, X)
    pruner.prune(0.5)
    x = torch.randn(2, 3, 6, 6)
    small = shrink(model, pruner.groups, pruner.state_dict(), X)
    torch.testing.assert_close(small.eval()(x), zero_removed_channels(model, pruner).eval()(x))


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (("model", X), {}, "ChannelPruner needs an nn.Module, got str"),
        ((None, [X]), {}, r"example_input must be a tensor \(a batch the model takes\), got list: the inputs alone, not a batch of \(inputs, labels, ...\)$"),
        ((None, (X, torch.zeros(1))), {}, r"got tuple: the inputs alone, not a batch of \(inputs, labels, ...\)$"),
        ((None, X.numpy()), {}, r"got ndarray$"),
        ((None, X), {"seed": 1.5}, "seed must be an int, got 1.5"),
    ],
)
def test_arguments_of_the_wrong_type_are_named(args, kwargs, error) -> None:
    model = chain() if args[0] is None else args[0]
    with pytest.raises(TypeError, match=error):
        ChannelPruner(model, args[1], **kwargs)


def test_an_input_of_another_float_dtype_than_the_weights_is_named_with_both() -> None:
    # torch's own message ("expected scalar type Double but found Float") named neither side.
    with pytest.raises(ValueError, match=r"does not fit the model: .*\(a torch.float64 input to torch.float32 weights: example_input.to\(torch.float32\)\)$"):
        ChannelPruner(chain(), X.double())
    with pytest.raises(ValueError, match=r"does not fit the model: .*\(a torch.float32 input to torch.float64 weights: example_input.to\(torch.float64\)\)$"):
        ChannelPruner(chain().double(), X)
    with pytest.raises(ValueError, match=r"does not fit the model") as wrong_shape:
        ChannelPruner(chain(), X[:, :2])
    assert "example_input.to" not in str(wrong_shape.value)  # a wrong shape is no dtype's fault


def test_ratios_name_groups_by_any_of_their_layers_or_by_regex_as_include_does() -> None:
    """Group "0" is made by conv "0" and normalised by BatchNorm "1"; "3" by "3" and "4"."""
    by_layer = ChannelPruner(chain(), X)
    by_layer.prune(ratios={"1": 0.5, "4": 0.25})
    assert [len(k) for k in by_layer.keep.values()] == [5, 9, 8]  # 10 - 5, 12 - 3, the linear layer whole
    by_regex = ChannelPruner(chain(), X)
    by_regex.prune(ratios={r"[03]": 0.5})
    assert [len(k) for k in by_regex.keep.values()] == [5, 6, 8]
    with pytest.raises(ValueError, match=r"^channel group 0 gets two ratios: 0.5 from '0' and 0.2 from '1'$"):
        ChannelPruner(chain(), X).prune(ratios={"0": 0.5, "1": 0.2})


@pytest.mark.parametrize("chosen", [{"exclude": ["1"]}, {"include": ["3"]}])
def test_a_ratio_for_a_group_include_or_exclude_leave_out_says_so(chosen) -> None:
    """Group 0 exists (conv 0, BatchNorm 1) but is not pruned: not 'names none of the channel groups'."""
    pruner = ChannelPruner(chain(), X, **chosen)
    with pytest.raises(ValueError, match=r"^ratio given for '0', but include/exclude leave out the channel group 0$"):
        pruner.prune(ratios={"0": 0.5})
    with pytest.raises(ValueError, match=r"^ratio given for 'fc', which names none of the channel groups"):
        pruner.prune(ratios={"fc": 0.5})


def test_ties_at_the_cut_are_warned_about() -> None:
    """Untrained BatchNorm scales are all 1: which channels go is then a matter of order."""
    with pytest.warns(UserWarning, match=r"11 of the channels kept score exactly as the best of those just removed"):
        ChannelPruner(chain(), X, criterion="bn_scale", exclude=["7"]).prune(0.5)  # 11 of 22 go; all 22 scales are 1
    model = chain()
    randomise_batchnorm(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ChannelPruner(model, X, criterion="bn_scale", exclude=["7"]).prune(0.5)


def test_a_tie_at_the_cut_among_distinct_scores_is_warned_about() -> None:
    """Only the best of the removed channels can tie with a kept one: group 0 scores
    1, 2, 3, 3, 4, ..., and removing 3 of its 10 channels cuts between the two 3s (one kept
    channel ties); removing 2 cuts between 2 and 3 (none)."""
    scores = torch.tensor([1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])

    def criterion(model, group):
        return scores if group.name == "0" else torch.arange(group.size, dtype=torch.float64)

    with pytest.warns(UserWarning, match=r"^1 of the channels kept score exactly as the best of those just removed"):
        ChannelPruner(chain(), X, criterion=criterion).prune(ratios={"0": 0.3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ChannelPruner(chain(), X, criterion=criterion).prune(ratios={"0": 0.2})


def test_a_channel_pruner_says_what_it_holds() -> None:
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    channels = ChannelPruner(model, torch.zeros(1, 1, 8, 8), criterion="filter_l1")
    channels.prune(ratios={"0": 0.5})
    assert repr(channels) == "ChannelPruner(2 channel groups, 12 channels, 33.33% removed)"
    alone = ChannelPruner(nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU(), nn.Conv2d(1, 4, 3)), torch.zeros(1, 1, 8, 8))
    assert repr(alone) == "ChannelPruner(1 channel group, 1 channel, 0.00% removed)"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside torch's compile stack
def test_a_compiled_model_is_refused_with_the_way_to_its_model() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    with pytest.raises(TypeError, match=r"not its torch.compile wrapper: pass model._orig_mod"):
        ChannelPruner(torch.compile(model), torch.zeros(1, 1, 8, 8))
    assert ChannelPruner(torch.compile(model)._orig_mod, torch.zeros(1, 1, 8, 8)).groups


def test_a_data_parallel_model_is_refused_with_the_way_to_its_model() -> None:
    """DataParallel (and DistributedDataParallel) wrap the model as .module, which fx cannot trace through."""
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    with pytest.raises(TypeError, match=r"not its DataParallel wrapper: pass model.module"):
        ChannelPruner(nn.DataParallel(model), torch.zeros(1, 1, 8, 8))


def test_a_layer_whose_weight_is_computed_elsewhere_in_the_model_is_no_obstacle() -> None:
    """A spectral-normalised classifier (its weight a parametrization) keeps its channels and
    counts its weights as they are."""
    model = chain()
    randomise_batchnorm(model)
    torch.nn.utils.parametrizations.spectral_norm(model[9])
    pruner = ChannelPruner(model, X, criterion="bn_scale", exclude=["7"])
    pruner.prune(0.3, sparsity_of="weights")
    assert 0.3 <= pruner.weight_sparsity() == pytest.approx(1 - dense_weights(pruner.shrink()) / dense_weights(model))


class ReadsByIndexInEval(nn.Module):
    """An eval-only branch reading the first three channels by index (times ``scale``): not in the
    trace (made in training mode), and the same shapes, but other values once channels are gone.
    With ``as_dict``, the output is a dict holding it."""

    def __init__(self, scale: float = 1.0, as_dict: bool = False) -> None:
        super().__init__()
        self.scale, self.as_dict = scale, as_dict
        self.l1, self.l2 = nn.Linear(4, 12), nn.Linear(12, 3)

    def forward(self, x):
        h = torch.relu(self.l1(x))
        out = self.l2(h)
        out = out if self.training else out + self.scale * h[:, :3]
        return {"out": out} if self.as_dict else out


@pytest.mark.parametrize(("scale", "as_dict"), [(1.0, False), (1.0, True), (3e-4, False)], ids=["tensor", "dict", "small-gap"])
def test_a_small_model_that_computes_otherwise_than_the_zeroed_one_is_warned_about(scale, as_dict) -> None:
    """Outputs in a dict are compared too, and a gap of a few ten-thousandths (outputs of about 0.5) is more than rounding."""
    torch.manual_seed(0)
    model = ReadsByIndexInEval(scale, as_dict)
    with torch.no_grad():
        model.l1.bias.uniform_(0.5, 1.0)  # every channel alive on the example input
    pruner = ChannelPruner(model, torch.ones(1, 4))
    pruner.prune(ratios={"l1": 0.5})
    assert 0 not in pruner.keep["l1"].tolist()  # a channel the branch reads went
    with pytest.warns(UserWarning, match="computes other outputs on the example input in eval mode than with those channels zeroed"):
        pruner.shrink()
    kept_first = ChannelPruner(model, torch.ones(1, 4))
    kept_first.load_state_dict({"l1": [0, 1, 2, 4, 6, 8, 10, 11]})  # the three it reads kept, in their places
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept_first.shrink()


@pytest.mark.parametrize("outputs", ["cancelling to about 0", "in the thousands"])
def test_rounding_in_the_small_model_is_not_warned_about_whatever_the_size_of_the_outputs(outputs) -> None:
    """The small model sums fewer terms than the zeroed one, in another order: float32 rounding
    differs by about 1e-6 of the features summed, not of the outputs. Outputs that cancel to about
    0 are held to 1e-4 (absolute, not a fraction of themselves); large ones to 1e-4 of their size."""
    torch.manual_seed(0)
    model, x, kept = nn.Sequential(nn.Linear(8, 1000), nn.ReLU(), nn.Linear(1000, 2)), torch.randn(1, 8), list(range(0, 1000, 2))
    with torch.no_grad():
        model[0].bias.uniform_(5, 10)  # features of about 10, every one alive
        if outputs == "in the thousands":
            model[2].weight.mul_(1000)
        else:  # the bias cancels the kept features' sum, computed in float64
            features = torch.relu(model[0](x))[0, kept].double()
            model[2].bias.copy_(-(model[2].weight[:, kept].double() @ features))
    pruner = ChannelPruner(model, x)
    pruner.load_state_dict({"0": kept})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pruner.shrink()


class NormalisedInEval(nn.Module):
    """Divides each channel by its peak in eval mode only, which the trace (made in training mode)
    does not see: a removed channel is 0 / 0, NaN, in the zeroed model."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.head = nn.Conv1d(1, 4, 1), nn.Conv1d(4, 2, 1)

    def forward(self, x):
        h = self.a(x)
        if not self.training:
            h = h / h.abs().amax(-1, keepdim=True)
        return self.head(h).mean(-1)


class ReturnsFeaturesInEval(nn.Module):
    """In eval mode only (not in the trace), the hidden features are returned too."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(4, 12), nn.Linear(12, 3)

    def forward(self, x):
        h = torch.relu(self.l1(x))
        return self.l2(h) if self.training else (self.l2(h), h)


def test_a_small_model_whose_outputs_change_shape_is_an_error() -> None:
    pruner = ChannelPruner(ReturnsFeaturesInEval(), torch.ones(1, 4))
    pruner.prune(ratios={"l1": 0.5})
    with pytest.raises(ValueError, match=r"^the model with channels removed gives outputs of shape \[\(2, 3\), \(2, 6\)\], not \[\(2, 3\), \(2, 12\)\]$"):
        pruner.shrink()


def test_a_zeroed_model_that_computes_nan_where_the_small_one_does_not_is_warned_about() -> None:
    torch.manual_seed(0)
    model, x = NormalisedInEval(), torch.randn(1, 1, 5)
    assert model.eval()(x).isfinite().all()
    pruner = ChannelPruner(model, x)
    pruner.prune(0.5)
    with pytest.warns(UserWarning, match="computes other outputs on the example input in eval mode"):
        small = pruner.shrink()
    assert small.eval()(x).isfinite().all() and zero_removed_channels(model, pruner).eval()(x).isnan().all()


class MeanPooled(nn.Module):
    """Global average pooling written as a mean over the spatial dims, then a classifier."""

    def __init__(self, over_channels: bool = False) -> None:
        super().__init__()
        self.over_channels = over_channels
        self.c1, self.b1, self.c2, self.fc = nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 16, 3), nn.Linear(16, 4)

    def forward(self, x):
        h = torch.relu(self.c2(torch.relu(self.b1(self.c1(x)))))
        if self.over_channels:  # a mean across channels, broadcast back: mixes them
            h = h + h.mean(1, keepdim=True)
        return self.fc(h.mean((2, 3)))


def test_a_mean_over_the_spatial_dims_keeps_channels_apart_and_one_over_channels_does_not() -> None:
    torch.manual_seed(0)
    model = MeanPooled()
    randomise_batchnorm(model)
    x = torch.randn(4, 3, 8, 8)
    groups = {g.name: g for g in channel_groups(model, x[:1])}
    assert groups["c2"].unprunable is None and groups["c2"].consumers == [("fc", 1)]
    pruner = ChannelPruner(model, x[:1])
    pruner.prune(0.5, scope="layerwise")
    small = pruner.shrink()
    assert small.fc.in_features == 8
    torch.testing.assert_close(small.eval()(x), zero_removed_channels(model, pruner).eval()(x), rtol=1e-4, atol=1e-5)
    mixed = {g.name: g for g in channel_groups(MeanPooled(over_channels=True), x[:1])}
    assert mixed["c2"].unprunable == "reduced across channels by mean"


class TokenMeanPooled(nn.Module):
    """A transformer's MLP on (batch, tokens, features), its features then averaged over the tokens."""

    def __init__(self, keepdim: bool = False) -> None:
        super().__init__()
        self.keepdim = keepdim
        self.fc1, self.fc2, self.head = nn.Linear(5, 8), nn.Linear(8, 6), nn.Linear(6, 3)

    def forward(self, x):
        h = self.fc2(nn.functional.gelu(self.fc1(x)))
        return self.head(h.mean(1, keepdim=True) if self.keepdim else h.mean(1))  # keepdim left out: False


@pytest.mark.parametrize("keepdim", [False, True])
def test_a_mean_over_the_tokens_keeps_the_features_apart(keepdim) -> None:
    """The features are the last dim; a mean over dim 1 (the tokens) leaves each one value per
    example, so fc2's units are pruned as those of a Linear the head reads directly."""
    torch.manual_seed(0)
    model = TokenMeanPooled(keepdim)
    x = torch.randn(4, 7, 5)
    groups = {g.name: g for g in channel_groups(model, x[:1])}
    assert groups["fc2"].prunable and groups["fc2"].consumers == [("head", 1)]
    pruner = ChannelPruner(model, x[:1])
    pruner.prune(0.5, scope="layerwise")
    small = pruner.shrink()
    assert (small.fc1.out_features, small.fc2.in_features, small.fc2.out_features, small.head.in_features) == (4, 4, 3, 3)
    torch.testing.assert_close(small.eval()(x), zero_removed_channels(model, pruner).eval()(x), rtol=1e-4, atol=1e-5)


def test_a_prelu_with_a_slope_per_token_leaves_the_features_prunable() -> None:
    """PReLU's slopes run along dim 1, the tokens of (batch, tokens, features): the features,
    the last dim, keep theirs whole and can go, as with one slope for all."""
    torch.manual_seed(0)
    model, x = nn.Sequential(nn.Linear(5, 8), nn.PReLU(7), nn.Linear(8, 3)), torch.randn(4, 7, 5)
    with torch.no_grad():
        model[1].weight.uniform_(0.1, 0.5)  # a slope of its own for each token
    pruner = ChannelPruner(model, x[:1])
    pruner.prune(0.5)
    small = pruner.shrink()
    assert (small[0].out_features, small[1].num_parameters, small[2].in_features) == (4, 7, 4)
    torch.testing.assert_close(small(x), zero_removed_channels(model, pruner)(x))


def test_prune_returns_the_channels_each_group_keeps_as_pruner_returns_its_masks():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    pruner = ChannelPruner(model, torch.zeros(1, 3, 5, 5))
    assert pruner.prune(0.5) is pruner.keep and [len(kept) for kept in pruner.keep.values()] == [4, 2]
    with pytest.warns(UserWarning, match="filter_l1 ranked globally"):
        assert pruner.prune(0.75, scope="global") is pruner.keep


class Activated(nn.Module):
    """Units of ``a`` through ``activation`` (a module, or a function of a tensor), read by ``b``."""

    def __init__(self, activation) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(3, 6), nn.Linear(6, 2)
        self.activation = activation

    def forward(self, x):
        return self.b(self.activation(self.a(x)))


F = nn.functional


@pytest.mark.parametrize(
    "activation",
    [
        nn.SELU(), nn.CELU(0.7), nn.RReLU(), nn.PReLU(), nn.Softsign(), nn.Tanhshrink(), nn.Softshrink(0.3), nn.Hardshrink(0.3),
        nn.Hardtanh(-0.5, 2.0), nn.Threshold(-0.2, 5.0), nn.Threshold(0.1, 0.0),
        lambda h: F.hardtanh(h, -0.5, 2.0), lambda h: F.hardtanh_(h), lambda h: F.hardtanh_(h, 0.0, 0.5), lambda h: F.selu(h), lambda h: torch.selu_(h),
        lambda h: F.celu(h, 0.7), lambda h: torch.celu(h), lambda h: F.rrelu(h), lambda h: torch.rrelu_(h), lambda h: F.softsign(h),
        lambda h: F.tanhshrink(h), lambda h: F.softshrink(h, 0.3), lambda h: F.hardshrink(h), lambda h: h.hardshrink(0.3),
        lambda h: torch.hardshrink(h), lambda h: F.threshold(h, -0.2, 5.0), lambda h: torch.threshold_(h, 0.1, 0.0),
        lambda h: F.elu_(h), lambda h: F.leaky_relu_(h), lambda h: h.tanh_(), lambda h: torch.tanh_(h),
    ],
    ids=[
        "SELU", "CELU", "RReLU", "PReLU", "Softsign", "Tanhshrink", "Softshrink", "Hardshrink", "Hardtanh", "Threshold-below-0",
        "Threshold-to-0", "F.hardtanh", "F.hardtanh_-defaults", "F.hardtanh_", "F.selu", "torch.selu_", "F.celu", "torch.celu", "F.rrelu", "torch.rrelu_",
        "F.softsign", "F.tanhshrink", "F.softshrink", "F.hardshrink", "Tensor.hardshrink", "torch.hardshrink", "F.threshold",
        "torch.threshold_", "F.elu_", "F.leaky_relu_", "Tensor.tanh_", "torch.tanh_",
    ],
)  # fmt: skip
def test_an_activation_that_maps_zero_to_zero_shrinks_to_what_the_zeroed_model_computes(activation) -> None:
    """A removed unit is 0 in the zeroed model and stays 0 through these (RReLU's random slopes
    in training too), so the next layer's columns reading it add nothing: the small model
    without them computes the same (in eval mode: in training, RReLU draws as many slopes as values)."""
    assert_shrinks_to_the_zeroed_model(activation)


def assert_shrinks_to_the_zeroed_model(function) -> None:
    """Half of the units ``function`` is applied to, removed: the small model computes what the
    model with them zeroed does, which differs from the dense model's outputs."""
    torch.manual_seed(0)
    model, x = Activated(function), torch.randn(8, 3)
    pruner = ChannelPruner(model, x[:1])
    assert [g.name for g in pruner.groups] == ["a"]
    pruner.prune(ratios={"a": 0.5})
    small = pruner.shrink()
    assert (small.a.out_features, small.b.in_features) == (3, 3)
    expected = zero_removed_channels(model, pruner).eval()(x)
    assert not torch.allclose(model.eval()(x), expected)  # the removed units counted
    torch.testing.assert_close(small.eval()(x), expected)


@pytest.mark.parametrize(
    "function",
    [
        torch.abs, lambda h: abs(h), lambda h: h.abs_(), torch.neg, lambda h: -h, lambda h: h.negative(), torch.square,
        lambda h: h ** 2, lambda h: torch.pow(h, exponent=3), lambda h: h.pow_(2), torch.sin, lambda h: h.sin(), torch.tanh,
        torch.sign, lambda h: h.sgn(), lambda h: h * -3.0, lambda h: h / 4, lambda h: torch.clamp(h, -0.5, 0.5),
        lambda h: h.clamp(min=0.0), lambda h: h.clamp(max=0.0), lambda h: h.clamp_(max=0.2), lambda h: torch.clip(h, max=1.0),
    ],
    ids=[
        "torch.abs", "abs", "Tensor.abs_", "torch.neg", "unary-minus", "Tensor.negative", "torch.square", "power-2", "torch.pow-3",
        "Tensor.pow_", "torch.sin", "Tensor.sin", "torch.tanh", "torch.sign", "Tensor.sgn", "times-number", "over-number",
        "torch.clamp", "Tensor.clamp-min", "Tensor.clamp-max-0", "Tensor.clamp_-max", "torch.clip-max",
    ],
)  # fmt: skip
def test_an_elementwise_function_that_maps_zero_to_zero_shrinks_to_what_the_zeroed_model_computes(function) -> None:
    """abs, -x, x ** 2, sin, sign, x * 3, x / 4, clamp with bounds around zero: a removed unit
    is 0 in the zeroed model and stays 0, so the small model without it computes the same."""
    assert_shrinks_to_the_zeroed_model(function)
