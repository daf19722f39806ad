"""Channel criteria on a residual-coupled group: measures summed over every producer and
every BatchNorm (seed 002), against hand-computed sums; seeded random channel scores."""

from __future__ import annotations

import torch
from torch import nn

from prunelab.criteria import BatchNormScale, FilterL1, RandomChannels
from prunelab.structured import ChannelGroup, ChannelPruner, channel_groups

X = torch.zeros(2, 2)


class TwoBranches(nn.Module):
    """Two Linear+BatchNorm branches added together: their 3 channels form one group with
    producers ``a`` and ``b`` and norms ``bn_a`` and ``bn_b``, read by ``head``."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.bn_a = nn.Linear(2, 3), nn.BatchNorm1d(3)
        self.b, self.bn_b = nn.Linear(2, 3), nn.BatchNorm1d(3)
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn_a(self.a(x)) + self.bn_b(self.b(x))))


def two_branches() -> nn.Module:
    """Hand-set weights: row L1 norms a = [3, 2, 1], b = [0, 0.5, 4] (sum [3, 2.5, 5]),
    gammas bn_a = [1, -0.5, 0.25], bn_b = [0.125, 0.0625, -2] (sums of |gamma| [1.125, 0.5625, 2.25]).
    The first member alone would rank channel 2 lowest; the sums rank channel 1 lowest."""
    model = TwoBranches()
    with torch.no_grad():
        model.a.weight.copy_(torch.tensor([[1.0, -2.0], [0.0, 2.0], [-0.5, 0.5]]))
        model.b.weight.copy_(torch.tensor([[0.0, 0.0], [0.25, -0.25], [3.0, -1.0]]))
        model.bn_a.weight.copy_(torch.tensor([1.0, -0.5, 0.25]))
        model.bn_b.weight.copy_(torch.tensor([0.125, 0.0625, -2.0]))
    return model


def coupled_group(model: nn.Module) -> ChannelGroup:
    group = next(g for g in channel_groups(model, X) if g.name == "a")
    # The premise of the tests: one group of two producers and two BatchNorms.
    assert group.producers == ["a", "b"] and group.norms == ["bn_a", "bn_b"] and group.size == 3
    return group


def test_filter_l1_sums_the_row_norms_of_every_producer() -> None:
    model = two_branches()
    scores = FilterL1()(model, coupled_group(model))
    assert scores.tolist() == [3.0, 2.5, 5.0]  # [3, 2, 1] + [0, 0.5, 4]


def test_filter_l1_scores_the_filters_making_the_channels_not_a_depthwise_convolution_s() -> None:
    """A depthwise convolution passes each channel through a filter of its own, which makes no
    channel: the scores are conv 0's row norms, [1, 3], whatever its filters ([15, 0] would rank otherwise)."""
    model = nn.Sequential(nn.Conv1d(1, 2, 1), nn.Conv1d(2, 2, 3, groups=2), nn.ReLU(), nn.Conv1d(2, 1, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[[1.0]], [[-3.0]]]))
        model[1].weight.copy_(torch.tensor([[[5.0, -5.0, 5.0]], [[0.0, 0.0, 0.0]]]))
    group = channel_groups(model, torch.zeros(1, 1, 5))[0]
    assert group.producers == ["0"] and group.depthwise == ["1"]
    assert FilterL1()(model, group).tolist() == [1.0, 3.0]


def test_bn_scale_sums_abs_gamma_of_every_batchnorm() -> None:
    model = two_branches()
    scores = BatchNormScale()(model, coupled_group(model))
    assert scores.tolist() == [1.125, 0.5625, 2.25]  # |1| + |0.125|, |-0.5| + |0.0625|, |0.25| + |-2|


def test_scores_are_summed_in_float64() -> None:
    """float32 has no 2**24 + 1: the channel it rounds down would tie with one below it."""
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[2.0**24, -1.0, 0.0], [2.0**24, 0.0, 0.0]]))
    assert FilterL1()(model, channel_groups(model, torch.zeros(1, 3))[0]).tolist() == [2**24 + 1, 2**24]
    coupled = two_branches()
    with torch.no_grad():
        coupled.bn_a.weight.copy_(torch.tensor([2.0**24, 2.0**24, 1.0]))
        coupled.bn_b.weight.copy_(torch.tensor([-1.0, 0.0, 0.0]))
    assert BatchNormScale()(coupled, coupled_group(coupled)).tolist() == [2**24 + 1, 2**24, 1]


def test_channel_pruner_removes_the_channel_lowest_by_the_sum() -> None:
    """One channel of three removed: channel 1, the lowest by the sums above (by the first
    member alone it would be channel 2), for both criteria."""
    for criterion in ("filter_l1", "bn_scale"):
        pruner = ChannelPruner(two_branches(), X, include=["a"], criterion=criterion)
        pruner.prune(1 / 3, scope="layerwise")
        assert pruner.keep["a"].tolist() == [0, 2], criterion


def test_random_channels_depend_on_the_seed() -> None:
    """1000 uniform scores: two seeds agreeing everywhere is practically impossible."""
    group = ChannelGroup("fc1", 1000, ["fc1"])
    first = RandomChannels(3)(None, group)
    assert first.shape == (1000,)
    assert torch.equal(RandomChannels(3)(None, group), first)
    assert not torch.equal(RandomChannels(4)(None, group), first)
    assert (RandomChannels(4)(None, group) != first).sum() > 900


def test_bn_scale_has_no_score_for_a_batchnorm_without_gamma() -> None:
    """A BatchNorm without scale and shift (affine=False) has no |gamma| to rank by: no score, so the group stays whole."""
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3, affine=False), nn.ReLU(), nn.Linear(3, 1))
    assert BatchNormScale()(model, ChannelGroup("0", 3, ["0"], norms=["1"])) is None
    assert BatchNormScale()(model, ChannelGroup("0", 3, ["0"])) is None  # no BatchNorm at all
    coupled = two_branches()
    coupled.bn_b = nn.BatchNorm1d(3, affine=False)  # one of the group's two without gamma: no sum over all
    assert BatchNormScale()(coupled, ChannelGroup("a", 3, ["a", "b"], norms=["bn_a", "bn_b"])) is None


def test_random_channels_differ_between_groups() -> None:
    """Two groups of one size get their own scores: else layerwise random pruning would remove the same channels in every layer."""
    first, second = ChannelGroup("fc1", 1000, ["fc1"]), ChannelGroup("fc2", 1000, ["fc2"])
    assert (RandomChannels(3)(None, first) != RandomChannels(3)(None, second)).sum() > 900
