"""Channel groups found by tracing: producers, BatchNorms, consumers, residual coupling, blockers."""

from __future__ import annotations

import inspect
import re

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from prunelab.models import build_model
from prunelab.structured import ChannelPruner, channel_groups


def test_chain_with_flatten_counts_columns_per_channel() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 5, 1), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 3 * 3, 7), nn.ReLU(), nn.Linear(7, 2),
    )  # fmt: skip
    groups = channel_groups(model, torch.zeros(1, 3, 8, 8))
    assert [(g.name, g.size, g.producers, g.norms, g.consumers, g.prunable) for g in groups] == [
        ("0", 6, ["0"], ["1"], [("4", 1)], True),
        ("4", 5, ["4"], [], [("7", 9)], True),  # 3x3 positions per channel after the flatten
        ("7", 7, ["7"], [], [("9", 1)], True),
        ("9", 2, ["9"], [], [], False),
    ]
    assert groups[-1].unprunable == "the model's output"


def test_resnet_stage_outputs_form_one_group_with_every_member() -> None:
    model = build_model("resnet20", num_classes=10, input_shape=(3, 32, 32))
    groups = {g.name: g for g in channel_groups(model, torch.zeros(1, 3, 32, 32))}
    stage1 = groups["conv"]  # the stem and every block's second conv add into one another
    assert stage1.producers == ["conv", "stage1.0.conv2", "stage1.1.conv2", "stage1.2.conv2"]
    assert stage1.norms == ["bn", "stage1.0.bn2", "stage1.1.bn2", "stage1.2.bn2"]
    assert [c for c, _ in stage1.consumers] == ["stage1.0.conv1", "stage1.1.conv1", "stage1.2.conv1", "stage2.0.conv1", "stage2.0.shortcut.0"]
    stage2 = groups["stage2.0.conv2"]
    assert stage2.producers == ["stage2.0.conv2", "stage2.0.shortcut.0", "stage2.1.conv2", "stage2.2.conv2"]
    assert "stage2.0.shortcut.1" in stage2.norms
    assert groups["stage3.0.conv2"].consumers[-1] == ("fc", 1)
    # Inside each block, the first conv's channels are a group of their own.
    assert groups["stage1.0.conv1"].producers == ["stage1.0.conv1"] and groups["stage1.0.conv1"].consumers == [("stage1.0.conv2", 1)]
    assert len(groups) == 1 + 9 + 2 + 1  # stem group, 9 inner groups, 2 more stage groups, fc
    assert [name for name, g in groups.items() if not g.prunable] == ["fc"]


class Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.head = nn.Conv1d(1, 3, 1), nn.Conv1d(1, 4, 1), nn.Conv1d(7, 2, 1)

    def forward(self, x):
        return self.head(torch.cat([self.a(x), self.b(x)], dim=1)).mean(-1)


class Scaled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.scale, self.head = nn.Conv1d(1, 3, 1), nn.Parameter(torch.ones(3, 1)), nn.Conv1d(3, 2, 1)

    def forward(self, x):
        return self.head(self.conv(x) * self.scale).mean(-1)


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head = nn.Conv1d(3, 3, 1), nn.Conv1d(3, 2, 1)

    def forward(self, x):
        return self.head(self.conv(self.conv(x))).mean(-1)


@pytest.mark.parametrize(
    ("model", "x", "blocked"),
    [
        (Concat(), torch.zeros(2, 1, 5), {"a": "used by cat", "b": "used by cat"}),
        (Scaled(), torch.zeros(2, 1, 5), {"conv": "combined by mul with a tensor of another shape"}),
        (Twice(), torch.zeros(2, 3, 5), {"conv": "conv is called more than once"}),
        (
            nn.Sequential(nn.Conv1d(1, 4, 1), nn.Conv1d(4, 4, 1, groups=2), nn.Conv1d(4, 2, 1)),
            torch.zeros(2, 1, 5),
            {"0": "read by the grouped convolution 1, whose groups of input channels must stay whole", "1": "made by the grouped convolution 1"},
        ),
        (nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 2)), torch.zeros(2, 4), {"0": "used by 1 (LayerNorm)"}),
        # A pooling given one dim fewer than its batched input takes it as unbatched: it pools the channels.
        (nn.Sequential(nn.Linear(4, 8), nn.MaxPool1d(3, 1, 1), nn.Linear(8, 2)), torch.zeros(2, 4),
         {"0": "pooled across channels by 1 (MaxPool1d)"}),
        (nn.Sequential(nn.Conv1d(1, 4, 3), nn.AvgPool2d(3, 1, 1), nn.Conv1d(4, 2, 1)), torch.zeros(2, 1, 6),
         {"0": "pooled across channels by 1 (AvgPool2d)"}),
    ],
    ids=["cat", "scaled-by-a-tensor", "called-twice", "grouped", "layernorm", "pool1d-of-2d", "pool2d-of-3d"],
)
def test_what_the_tracer_cannot_keep_apart_is_unprunable(model, x, blocked) -> None:
    groups = {g.name: g for g in channel_groups(model, x)}
    assert {name: g.unprunable for name, g in groups.items() if name in blocked} == blocked
    # Only the blocked groups and the output are unprunable.
    assert [name for name, g in groups.items() if not g.prunable and g.consumers and name not in blocked] == []


class Pair(nn.Module):
    """Two convolutions side by side, concatenated."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.a, self.b = nn.Conv1d(width, 3, 1), nn.Conv1d(width, 3, 1)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], dim=1)


class TwoConcatenations(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.mid, self.pair, self.head = nn.Conv1d(1, 2, 1), nn.Conv1d(1, 2, 1), nn.Conv1d(4, 6, 1), Pair(6), nn.Conv1d(6, 2, 1)

    def forward(self, x):
        return self.head(self.pair(torch.relu(self.mid(torch.cat([self.a(x), self.b(x)], 1)))))


def test_a_reason_names_the_call_among_several_of_one_function_and_the_layer_it_is_in() -> None:
    """Two concatenations: torch.fx names them cat and cat_1; the second is in the forward of
    layer pair, the first in the model's own."""
    x = torch.zeros(1, 1, 5)
    reasons = {g.name: g.unprunable for g in channel_groups(TwoConcatenations(), x)}
    assert reasons == {"a": "used by cat", "b": "used by cat", "mid": None, "pair.a": "used by cat_1 in pair",
                       "pair.b": "used by cat_1 in pair", "head": "the model's output"}  # fmt: skip
    with pytest.raises(ValueError, match=r"^ratio given for 'pair.b', but the channels of pair.b cannot be removed: used by cat_1 in pair$"):
        ChannelPruner(TwoConcatenations(), x).prune(ratios={"pair.b": 0.5})
    nested = nn.Sequential(nn.Sequential(Pair(1)), nn.Conv1d(6, 2, 1))  # the innermost layer is named
    assert channel_groups(nested, x)[0].unprunable == "used by cat in 0.0"


def test_a_depthwise_convolution_of_the_model_input_stays_a_layer_of_its_own() -> None:
    """Its channels are the input's, which stay; listed as unprunable, it can be named."""
    model = nn.Sequential(nn.Conv2d(3, 3, 3, groups=3), nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 4, 1))
    groups = {g.name: g for g in channel_groups(model, torch.zeros(1, 3, 6, 6))}
    assert groups["0"].unprunable == "made by the grouped convolution 0" and groups["1"].prunable
    assert [g.name for g in ChannelPruner(model, torch.zeros(1, 3, 6, 6), exclude=["0"]).groups] == ["1"]


def test_a_convolution_of_one_channel_into_one_makes_a_group_of_its_own() -> None:
    """groups = in = out channels = 1 is an ordinary convolution, not a depthwise one passing its input's channel on."""
    model = nn.Sequential(nn.Conv1d(1, 1, 1), nn.ReLU(), nn.Conv1d(1, 1, 1), nn.ReLU(), nn.Conv1d(1, 2, 1))
    groups = channel_groups(model, X1)
    assert [(g.name, g.depthwise, g.consumers) for g in groups] == [("0", [], [("2", 1)]), ("2", [], [("4", 1)]), ("4", [], [])]


def test_functional_flatten_and_view_are_recognised() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv1d(1, 4, 3), nn.Linear(4 * 8, 2)

        def forward(self, x):
            y = torch.relu(self.conv(x))
            return self.fc(y.view(y.size(0), -1))

    (conv, fc) = channel_groups(Net(), torch.zeros(1, 1, 10))
    assert conv.consumers == [("fc", 8)] and conv.prunable and not fc.prunable
    viewed = Lambda(lambda s, x: (lambda h: s.fc(h.view((h.size(0), -1))))(s.conv(x)), conv=nn.Conv1d(1, 4, 3), fc=nn.Linear(4 * 8, 2))
    (conv, _) = channel_groups(viewed, torch.zeros(1, 1, 10))  # the sizes as one tuple
    assert conv.consumers == [("fc", 8)] and conv.prunable


def test_untraceable_model_and_wrong_input_are_clear_errors(capsys) -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else x

    branch_line = inspect.getsourcelines(Branchy.forward)[1] + 1
    # The error said neither where in the model tracing failed nor what to do about it.
    with pytest.raises(ValueError, match=rf"traces the model with torch.fx, which failed on Branchy: .*control flow \({re.escape(__file__)}, line {branch_line}\); "
                                         r"make that part of the forward traceable .* torch.fx.wrap .* \(criterion magnitude\)"):  # fmt: skip
        channel_groups(Branchy(), torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"example input of shape \(1, 3\), given twice as a batch of 2, does not fit"):
        channel_groups(nn.Sequential(nn.Linear(2, 2)), torch.zeros(1, 3))

    class Reshaping(nn.Module):  # fails in a traced function call, of which fx prints the code
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(100, 2)

        def forward(self, x):
            return self.fc(self.conv(x).view(x.shape[0], 100))

    with pytest.raises(ValueError, match=r"example input of shape \(1, 1, 8, 8\), given twice as a batch of 2, does not fit the model: shape '\[2, 100\]'"):
        channel_groups(Reshaping(), torch.zeros(1, 1, 8, 8))
    assert capsys.readouterr().err == ""  # the one-line error says it all


def test_tracing_leaves_batchnorm_statistics_and_mode_alone() -> None:
    model = nn.Sequential(nn.Conv1d(1, 2, 1), nn.BatchNorm1d(2), nn.Flatten(), nn.Linear(6, 1))
    model.train()
    channel_groups(model, torch.randn(4, 1, 3))
    assert model.training and int(model[1].num_batches_tracked) == 0
    assert torch.equal(model[1].running_mean, torch.zeros(2))


class Lambda(nn.Module):
    """A model whose forward is ``fn(self, x)``, with the given layers."""

    def __init__(self, fn, **layers: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        for name, layer in layers.items():
            setattr(self, name, layer)

    def forward(self, x):
        return self.fn(self, x)


def conv_then(*middle: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(1, 4, 1), *middle, nn.Conv1d(4, 2, 1))


def tied() -> nn.Module:
    model = Lambda(lambda s, x: s.b(s.a(x)), a=nn.Linear(4, 4), b=nn.Linear(4, 4))
    model.b.weight = model.a.weight
    return model


def hooked() -> nn.Module:
    model = conv_then(nn.ReLU())
    torch_prune.l1_unstructured(model[0], "weight", amount=0.5)
    return model


def forward_hooked(layer: int) -> nn.Module:
    """A depthwise convolution between two layers, ``layer`` of them with a forward hook (its output, other than the trace sees)."""
    model = nn.Sequential(nn.Conv1d(1, 4, 1), nn.Conv1d(4, 4, 3, padding=1, groups=4), nn.Conv1d(4, 2, 1))
    model[layer].register_forward_hook(lambda module, inputs, output: output + 1)
    return model


def spectral_normed() -> nn.Module:
    model = conv_then(nn.ReLU())
    torch.nn.utils.parametrizations.spectral_norm(model[0])  # a weight computed from others, which shrinking does not see
    return model


def relu_hooked() -> nn.Module:
    model = conv_then(nn.ReLU())
    model[1].register_forward_hook(lambda module, inputs, output: output + 1)  # removed channels become 1
    return model


def relu_pre_hooked() -> nn.Module:
    model = conv_then(nn.ReLU())
    model[1].register_forward_pre_hook(lambda module, inputs: (inputs[0] + 1,))  # removed channels become 1
    return model


X1 = torch.zeros(2, 1, 5)
FIXED = "to a fixed width, which fewer channels would not fill: flatten with x.flatten(1) or x.view(x.size(0), -1)"


@pytest.mark.parametrize(
    ("model", "x", "blocked"),
    [
        (conv_then(nn.Sigmoid()), X1, "used by 1 (Sigmoid)"),  # sigmoid(0) = 0.5
        (conv_then(nn.Hardtanh(0.5, 1.0)), X1, "moved away from zero by 1 (Hardtanh)"),
        (conv_then(nn.Hardtanh(-2.0, -1.0)), X1, "moved away from zero by 1 (Hardtanh)"),  # 0 becomes -1
        (Lambda(lambda s, x: s.b(nn.functional.hardtanh(s.a(x), 0.5, 1.0)), a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(4, 2, 1)), X1,
         "moved away from zero by hardtanh"),
        (conv_then(nn.Threshold(0.0, 1.0)), X1, "moved away from zero by 1 (Threshold)"),  # 0 is not above 0: it becomes 1
        (Lambda(lambda s, x: s.b(torch.threshold(s.a(x), 0.0, 1.0)), a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(4, 2, 1)), X1,
         "moved away from zero by threshold"),
        (Lambda(lambda s, x: s.b(s.a(x).clamp(0.1)), a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(4, 2, 1)), X1, "moved away from zero by clamp"),
        (Lambda(lambda s, x: s.b(torch.clip(s.a(x), max=-0.1)), a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(4, 2, 1)), X1, "moved away from zero by clip"),
        (Lambda(lambda s, x: s.b(s.a(x) ** 0), a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(4, 2, 1)), X1, "moved away from zero by pow_1"),  # 0 ** 0 = 1
        (Lambda(lambda s, x: s.b(torch.pow(s.a(x), -1.0)), a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(4, 2, 1)), X1, "moved away from zero by pow_1"),
        (Lambda(lambda s, x: s.b(torch.pow(2.0, s.a(x))), a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(4, 2, 1)), X1, "used by pow_1"),  # 2 ** 0 = 1
        (Lambda(lambda s, x: s.b(s.a(x).clamp(min=s.c(x))), a=nn.Conv1d(1, 4, 1), c=nn.Conv1d(1, 4, 1), b=nn.Conv1d(4, 2, 1)), X1,
         "used by clamp with tensor arguments"),
        # A sum of everything, or a mean over the features (the last dim, -1) of (batch, tokens, features): channels mixed.
        (Lambda(lambda s, x: (lambda h: s.b(h) + h.sum())(s.a(x)), a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(4, 2, 1)), X1, "reduced across channels by sum_1"),
        (Lambda(lambda s, x: s.b(s.a(x).mean(-1, keepdim=True)), a=nn.Linear(3, 4), b=nn.Linear(1, 2)), torch.zeros(2, 5, 3),
         "reduced across channels by mean"),
        (conv_then(nn.PReLU(4)), X1, "scaled by 1 (PReLU), a slope per channel"),
        # Two slopes for two channels: a slope per channel all the same (its weight would need its channels cut).
        (nn.Sequential(nn.Conv1d(1, 2, 1), nn.PReLU(2), nn.Conv1d(2, 2, 1)), X1, "scaled by 1 (PReLU), a slope per channel"),
        (conv_then(nn.BatchNorm1d(4, affine=False)), X1, "normalised by 1 (BatchNorm1d) across channels or without scale and shift"),
        (Lambda(lambda s, x: s.b(s.a(x) + 1.0), a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(4, 2, 1)), X1, "shifted away from zero by add"),
        (Lambda(lambda s, x: s.b(s.a(x) + x.size(0)), a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(4, 2, 1)), X1, "shifted away from zero by add"),
        (Lambda(lambda s, x: s.b(s.a(x) + True), a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(4, 2, 1)), X1, "shifted away from zero by add"),  # True is 1
        (Lambda(lambda s, x: s.b((lambda h: h / h)(s.a(x))), a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(4, 2, 1)), X1, "divided by a tensor in truediv"),
        (nn.Sequential(nn.Linear(3, 4), nn.MaxPool1d(3, 1, 1), nn.Linear(4, 2)), torch.zeros(2, 5, 3), "pooled across channels by 1 (MaxPool1d)"),
        (Lambda(lambda s, x: s.b(s.bn(s.a(x))) + s.bn(s.a2(x)).mean(), a=nn.Conv1d(1, 4, 1), a2=nn.Conv1d(1, 4, 1),
                bn=nn.BatchNorm1d(4), b=nn.Conv1d(4, 2, 1)), X1, "bn is called more than once"),
        (tied(), torch.zeros(2, 4), "a shares a parameter with another layer"),
        (Lambda(lambda s, x: s.b((lambda h: h * h.size(1) ** -0.5)(s.a(x))), a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(4, 2, 1)), X1,
         "its width read by size"),
        (Lambda(lambda s, x: s.b((lambda h: h * h.shape[1] ** -0.5)(s.a(x))), a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(4, 2, 1)), X1,
         "its width read by getitem"),
        (Lambda(lambda s, x: s.b((lambda h: h * h.shape[-2])(s.a(x))), a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(4, 2, 1)), X1,
         "its width read by getitem"),  # -2 is the channel dim of (batch, channels, length)
        (Lambda(lambda s, x: s.b((lambda h: h * h.shape[1:].numel())(s.a(x))), a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(4, 2, 1)), X1,
         "its width possibly read by getitem"),  # a slice of the shape, channels among its entries
        (Lambda(lambda s, x: (lambda h: s.b(h) * torch.ones(h.size()).sum())(s.a(x)), a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(4, 2, 1)), X1,
         "its width read for ones"),  # the whole shape, given to a function
        (nn.Sequential(nn.Conv1d(1, 4, 1), nn.Linear(5, 3)), X1, "read by 1 in a way that mixes channels"),  # a Linear reads the last dim
        # The input's channels stay, and so do those added to them.
        (Lambda(lambda s, x: s.b(s.a(x) + x), a=nn.Linear(4, 4), b=nn.Linear(4, 2)), torch.zeros(2, 4), "the model's input"),
        # After a flatten, each channel is 5 values: a BatchNorm or depthwise convolution there would cut them one per channel.
        (nn.Sequential(nn.Conv1d(1, 4, 1), nn.Flatten(), nn.BatchNorm1d(4 * 5), nn.Linear(20, 2)), X1,
         "normalised by 2 (BatchNorm1d) across channels or without scale and shift"),
        (nn.Sequential(nn.Conv1d(1, 4, 1), nn.Flatten(), nn.Conv1d(2, 2, 1, groups=2), nn.Linear(20, 2)), X1,
         "read by 2 (Conv1d) in a way that mixes channels"),  # the flattened batch of 2, taken as 2 unbatched channels
        (hooked(), X1, "0 has a parametrization or forward hooks"),
        (spectral_normed(), X1, "0 has a parametrization or forward hooks"),
        (forward_hooked(0), X1, "0 has a parametrization or forward hooks"),
        (forward_hooked(1), X1, "1 has a parametrization or forward hooks"),
        (relu_hooked(), X1, "1 (ReLU) has forward hooks"),
        (relu_pre_hooked(), X1, "1 (ReLU) has forward hooks"),
        (nn.Sequential(nn.Conv1d(1, 4, 1), nn.MaxPool1d(1, return_indices=True), Lambda(lambda s, pair: pair[0])), X1,
         "pooled by 1 (MaxPool1d) into something other than one tensor"),
        (Lambda(lambda s, x: s.head(s.shared(x) + s.shared(torch.relu(s.pre(x)))), pre=nn.Conv1d(1, 1, 1), shared=nn.Conv1d(1, 4, 1),
                head=nn.Conv1d(4, 2, 1)), X1, "shared is called more than once"),  # once on the model's input
        # A flatten to a width written as a number: with fewer channels it would fold examples together (or fail).
        (Lambda(lambda s, x: s.b(s.a(x).flatten(1).flatten(1)), a=nn.Conv1d(1, 4, 1), b=nn.Linear(20, 2)), X1, "flattened by flatten_1"),
        (Lambda(lambda s, x: s.b(s.a(x).reshape(-1, 20)), a=nn.Conv1d(1, 4, 1), b=nn.Linear(20, 2)), X1, f"flattened by reshape {FIXED}"),
        (Lambda(lambda s, x: s.b((lambda h: h.view(h.size(0), 20))(s.a(x))), a=nn.Conv1d(1, 4, 1), b=nn.Linear(20, 2)), X1,
         f"flattened by view {FIXED}"),
        (Lambda(lambda s, x: s.b(torch.reshape(s.a(x), (-1, 20))), a=nn.Conv1d(1, 4, 1), b=nn.Linear(20, 2)), X1, f"flattened by reshape {FIXED}"),
        (Lambda(lambda s, x: s.b((lambda h: h.view((h.shape[0], 4 * 5)))(s.a(x))), a=nn.Conv1d(1, 4, 1), b=nn.Linear(20, 2)), X1,
         f"flattened by view {FIXED}"),
    ],
)  # fmt: skip
def test_what_would_change_the_output_when_shrunk_is_unprunable(model, x, blocked) -> None:
    first = channel_groups(model, x)[0]
    assert first.unprunable == blocked


@pytest.mark.parametrize(
    ("a", "x", "forward"),
    [
        (nn.Linear(5, 6), torch.zeros(1, 3, 4, 5), lambda s, x: s.b(s.a(x).mean((1, 2)))),  # two dims before the features go
        (nn.Linear(5, 6), torch.zeros(1, 3, 4, 5), lambda s, x: s.b(s.a(x).mean(1, True))),  # keepdim given by position
        (nn.Conv2d(2, 6, 3), torch.zeros(1, 2, 5, 5), lambda s, x: s.b(s.a(x).mean((-2, -1)))),  # negative dims after the channels
    ],
    ids=["two-dims-before", "keepdim-positional", "negative-dims"],
)
def test_a_reduction_over_other_dims_keeps_the_channels_where_the_next_layer_reads_them(a, x, forward) -> None:
    """The channels' dim after a reduction is their dim less the reduced dims before it (none with keepdim):
    where a Linear reads them (the last dim), so it consumes them rather than mixing them."""
    (group, _) = channel_groups(Lambda(forward, a=a, b=nn.Linear(6, 2)), x)
    assert group.prunable and group.consumers == [("b", 1)]


@pytest.mark.parametrize("name", ["view", "reshape"])
def test_a_flatten_layer_named_view_or_reshape_keeps_its_channels_prunable(name: str) -> None:
    """An nn.Flatten follows the channels whatever its name: one called ``reshape`` was taken
    for x.reshape(...) with a width written out, and left its channels whole."""
    model = Lambda(lambda s, x: s.b(getattr(s, name)(s.a(x))), a=nn.Conv1d(1, 4, 1), b=nn.Linear(20, 2), **{name: nn.Flatten()})
    first = channel_groups(model, X1)[0]
    assert first.prunable and first.consumers == [("b", 5)]


def test_a_layer_called_twice_makes_one_group_that_can_be_named() -> None:
    """Both calls make the rows of one weight: one group, read by what reads either call,
    listed once under the layer's name, where the layer is first called."""
    def forward(s, x):
        h = torch.relu(s.pre(x))
        return s.head(s.shared(s.a(h))) + s.head2(s.shared(s.b(h)))

    model = Lambda(forward, pre=nn.Conv1d(1, 5, 1), a=nn.Conv1d(5, 4, 1), b=nn.Conv1d(5, 4, 1), shared=nn.Conv1d(4, 3, 1),
                   head=nn.Conv1d(3, 2, 1), head2=nn.Conv1d(3, 2, 1))  # fmt: skip
    groups = channel_groups(model, X1)
    assert [g.name for g in groups] == ["pre", "a", "shared", "head", "b"]
    shared = groups[2]
    assert (shared.producers, shared.consumers, shared.unprunable) == (["shared"], [("head", 1), ("head2", 1)], "shared is called more than once")
    twice = Lambda(lambda s, x: s.head(s.bn(s.bn(s.a(x)))), a=nn.Conv1d(1, 4, 1), bn=nn.BatchNorm1d(4), head=nn.Conv1d(4, 2, 1))
    assert channel_groups(twice, X1)[0].norms == ["bn"]  # a layer listed once, whichever the calls
    read_twice = Lambda(lambda s, x: (lambda h: s.head(h) + s.head(h))(s.a(x)), a=nn.Conv1d(1, 4, 1), head=nn.Conv1d(4, 2, 1))
    assert channel_groups(read_twice, X1)[0].consumers == [("head", 1)]
    with pytest.raises(ValueError, match=r"^ratio given for 'shared', but the channels of shared cannot be removed: shared is called more than once$"):
        ChannelPruner(model, X1).prune(ratios={"shared": 0.5})


def test_a_join_keeps_the_depthwise_convolutions_and_readers_of_both_operands_in_call_order() -> None:
    """b's channels, through depthwise convolution dw2 and read by d, are added to a's, which pass dw and are
    read by c earlier: the group has both producers, both depthwise convolutions and its readers as they are called."""
    def forward(s, x):
        h, g = s.dw(s.a(x)), s.dw2(s.b(x))
        side = s.c(h) + s.d(g)
        return side + s.head(g + h)

    model = Lambda(forward, a=nn.Conv1d(1, 4, 1), dw=nn.Conv1d(4, 4, 3, padding=1, groups=4), b=nn.Conv1d(1, 4, 1),
                   dw2=nn.Conv1d(4, 4, 3, padding=1, groups=4), c=nn.Conv1d(4, 2, 1), d=nn.Conv1d(4, 2, 1), head=nn.Conv1d(4, 2, 1))  # fmt: skip
    group = channel_groups(model, X1)[0]
    assert (group.name, group.producers, group.depthwise, group.consumers, group.prunable) == (
        "a", ["a", "b"], ["dw", "dw2"], [("c", 1), ("d", 1), ("head", 1)], True
    )


def test_what_keeps_a_removed_channel_at_zero_stays_prunable() -> None:
    def forward(s, x):
        h = torch.relu(s.a(input=x)) * 2.0 - 0.0  # a keyword input, scaling, a zero shift
        return s.b(h.view(h.shape[0], -1) / h.size(-1))  # the batch size and the length read

    (group, _) = channel_groups(Lambda(forward, a=nn.Conv1d(1, 4, 3), b=nn.Linear(4 * 3, 2)), torch.zeros(1, 1, 5))
    assert group.prunable and group.consumers == [("b", 3)]


class ScaledByNumbers(nn.Module):
    """Channels scaled by a number on either side, and two branches added with torch.add's alpha."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c, self.head = nn.Linear(4, 6), nn.Linear(6, 5), nn.Linear(6, 5), nn.Linear(5, 2)

    def forward(self, x):
        h = 2.0 * self.a(x)
        return self.head(torch.add(self.b(h * 0.5), self.c(h), alpha=0.5))


def test_a_number_on_either_side_of_a_product_and_torch_adds_alpha_keep_channels_apart() -> None:
    groups = {g.name: g for g in channel_groups(ScaledByNumbers(), torch.zeros(2, 4))}
    assert groups["a"].prunable and groups["a"].consumers == [("b", 1), ("c", 1)]
    assert groups["b"].prunable and groups["b"].producers == ["b", "c"]  # joined by the addition


class DividedInto(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.head = nn.Linear(4, 6), nn.Linear(6, 2)

    def forward(self, x):
        return self.head(1.0 / self.a(x))


def test_a_number_divided_by_channels_blocks_them() -> None:
    """A removed channel is zero, and 1 / 0 is inf: the shrunk model could not match the masked one."""
    groups = {g.name: g for g in channel_groups(DividedInto(), torch.zeros(2, 4))}
    assert not groups["a"].prunable


def test_a_tensor_divisor_given_by_keyword_blocks_the_channels() -> None:
    """torch.div(x, other=y): removed channels would be 0 / 0 in the masked model, NaN, and gone in the small one."""
    model = Lambda(lambda s, x: s.head(torch.div(s.a(x), other=s.b(x))), a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(1, 4, 1), head=nn.Conv1d(4, 2, 1))
    assert channel_groups(model, X1)[0].unprunable == "divided by a tensor in div"


@pytest.mark.parametrize(
    ("forward", "blocked"),
    [
        (lambda s, x: s.a(x) + x, "combined by add with a tensor of another shape"),  # (2, 4, 3) + (2, 1, 3), broadcast
        (lambda s, x: s.a(x) + s.norm(s.b(x)), "combined by add with a tensor whose channels are not traced (they went through "
                                             "something that mixes channels, or are not made from the model's input)"),
        (lambda s, x: s.a(x) * s.weight, "combined by mul with a tensor whose channels are not traced (they went through "
                                        "something that mixes channels, or are not made from the model's input)"),
        (lambda s, x: s.a(x) - s.across(s.b(x)), "combined by sub with a tensor holding its channels otherwise (along another dim, or flattened)"),
        (lambda s, x: s.a(x).flatten(1) + s.wide(x.flatten(1)),
         "combined by add with a tensor holding its channels otherwise (along another dim, or flattened)"),  # 3 values per channel, or 1
    ],
    ids=["broadcast", "non-affine-batchnorm-shortcut", "parameter", "channels-along-another-dim", "flattened-and-not"],
)  # fmt: skip
def test_an_elementwise_join_blocks_channels_with_the_reason_it_cannot_follow_them(forward, blocked) -> None:
    """Of one shape, but one operand's channels untraced (a BatchNorm without scale and shift
    moves zero, a parameter is not made from the input) or laid out otherwise: each said as such."""
    model = Lambda(forward, a=nn.Conv1d(1, 4, 1), b=nn.Conv1d(1, 4, 1), norm=nn.BatchNorm1d(4, affine=False), across=nn.Linear(3, 3),
                   wide=nn.Linear(3, 12))  # fmt: skip
    model.weight = nn.Parameter(torch.ones(2, 4, 3))
    groups = {g.name: g for g in channel_groups(model, torch.zeros(2, 1, 3))}
    assert groups["a"].unprunable == blocked


class _OwnDropout(nn.Dropout):
    """A dropout fx traces through (not torch's own module): its call is recorded in training mode."""


class _OwnNorm(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("var", torch.ones(width))

    def forward(self, x):
        return nn.functional.batch_norm(x, self.mean, self.var, training=self.training)


def test_tracing_leaves_the_random_state_and_the_buffers_alone() -> None:
    model = nn.Sequential(nn.Linear(4, 6), _OwnNorm(6), nn.ReLU(), _OwnDropout(0.5), nn.Linear(6, 2)).eval()
    before = {name: b.clone() for name, b in model.named_buffers()}
    x = torch.randn(3, 4)
    state = torch.get_rng_state()
    channel_groups(model, x)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(b, before[name]) for name, b in model.named_buffers())
    assert not model.training


@pytest.mark.parametrize(
    "forward",
    [
        lambda s, x: s.b(torch.mean(input=s.a(x), dim=(2, 3))),
        lambda s, x: s.b(torch.div(input=s.a(x), other=2.0).mean((2, 3))),
        lambda s, x: s.b(torch.flatten(input=nn.functional.adaptive_avg_pool2d(s.a(x), 1), start_dim=1)),
    ],
    ids=["mean", "div", "flatten"],
)
def test_a_tensor_given_by_keyword_is_followed_as_a_positional_one(forward) -> None:
    """torch.mean(input=x, dim=...) and the like: the same channels, not a crash of the tracer."""
    model = Lambda(forward, a=nn.Conv2d(2, 6, 3), b=nn.Linear(6, 2))
    (group, _) = channel_groups(model, torch.zeros(1, 2, 5, 5))
    assert group.prunable and group.consumers == [("b", 1)]
