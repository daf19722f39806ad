"""MACs of Conv and Linear layers against hand-computed counts, dense, masked and shrunk."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from prunelab import ChannelPruner, Pruner
from prunelab.analysis import count_macs, speedup
from prunelab.models import build_model


def test_lenet_300_100_dense_and_masked() -> None:
    model = build_model("lenet_300_100", num_classes=10, input_shape=(1, 28, 28))
    x = torch.zeros(5, 1, 28, 28)
    assert count_macs(model, x) == 784 * 300 + 300 * 100 + 100 * 10
    pruner = Pruner(model)
    pruner.prune(0.9)
    assert count_macs(model, x, pruner.masks) == 266_200 - round(0.9 * 266_200)
    assert speedup(count_macs(model, x), count_macs(model, x, pruner.masks)) == pytest.approx(266_200 / 26_620)


def test_conv2_counts_every_output_position() -> None:
    model = build_model("conv2", num_classes=10, input_shape=(3, 32, 32))
    conv = 64 * 32 * 32 * (3 * 9) + 64 * 32 * 32 * (64 * 9)  # padding 1 keeps 32x32
    dense = 64 * 16 * 16 * 256 + 256 * 256 + 256 * 10  # after one 2x2 max-pool
    assert count_macs(model, torch.zeros(1, 3, 32, 32)) == conv + dense


def test_resnet20_and_its_shrunk_copy() -> None:
    model = build_model("resnet20", num_classes=10, input_shape=(3, 32, 32))
    x = torch.zeros(1, 3, 32, 32)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    stem = 16 * 32 * 32 * 27
    stage1 = 6 * 16 * 32 * 32 * 16 * 9
    stage2 = 32 * 16 * 16 * 16 * 9 + 5 * 32 * 16 * 16 * 32 * 9 + 32 * 16 * 16 * 16  # + 1x1 shortcut
    stage3 = 64 * 8 * 8 * 32 * 9 + 5 * 64 * 8 * 8 * 64 * 9 + 64 * 8 * 8 * 32
    assert count_macs(model, x) == stem + stage1 + stage2 + stage3 + 64 * 10
    # run in eval mode: the BatchNorm statistics are not moved by the example
    assert all(torch.equal(value, before[key]) for key, value in model.state_dict().items())
    pruner = ChannelPruner(model, x, include=[r"stage\d\.\d\.conv1"])
    pruner.prune(0.5, scope="layerwise")  # half the inner channels of every block: those two convs cost half
    inner = 3 * 16 * 32 * 32 * 16 * 9 * 2 + (32 * 16 * 16 * 16 * 9 + 32 * 16 * 16 * 32 * 9) + 2 * 2 * 32 * 16 * 16 * 32 * 9
    inner += 64 * 8 * 8 * 32 * 9 + 64 * 8 * 8 * 64 * 9 + 2 * 2 * 64 * 8 * 8 * 64 * 9
    assert count_macs(model, x) - count_macs(pruner.shrink(), x) == inner // 2
    assert model.training  # left as it was


def test_a_model_without_work_has_no_speedup() -> None:
    with pytest.raises(ValueError, match="no finite speedup"):
        speedup(10, 0)
    no_layers = count_macs(nn.Sequential(nn.ReLU()), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="a dense model of 0 MACs has no speedup to give: are there Conv, Linear or attention layers"):
        speedup(no_layers, no_layers)


@pytest.mark.parametrize(("example", "shape"), [(torch.zeros(0, 4), r"\(0, 4\)"), (torch.tensor(1.0), r"\(\)"), ([0.0] * 4, "list")])
def test_an_example_input_that_is_not_a_batch_is_an_error(example, shape) -> None:
    with pytest.raises(ValueError, match=f"example_input must be a batch of at least one example, batch first; got {shape}"):
        count_macs(nn.Linear(4, 2), example)


def test_masks_that_name_no_weight_or_have_another_shape_are_errors() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    x = torch.zeros(1, 4)
    with pytest.raises(ValueError, match=r"^masks: the model has no parameter '0\.wieght'"):
        count_macs(model, x, {"0.wieght": torch.ones(3, 4, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"^masks: the mask of 0\.weight has shape \(2,\), not the weight's shape \(3, 4\)"):
        count_macs(model, x, {"0.weight": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"^masks: the mask of 0\.weight is torch\.float32, not bool"):
        count_macs(model, x, {"0.weight": torch.full((3, 4), 0.5)})


class _PerStep(nn.Module):
    """A Linear applied to each of 10 time steps by folding them into rows, and a Conv1d
    applied to each of 2 channel groups folded likewise."""

    def __init__(self) -> None:
        super().__init__()
        self.step = nn.Linear(4, 3)
        self.conv = nn.Conv1d(1, 2, 3)

    def forward(self, x):
        per_step = self.step(x.reshape(-1, 4))  # (n * 10, 3)
        return self.conv(per_step.reshape(-1, 1, 15))  # (n * 2, 2, 13)


def test_a_layer_applied_to_rows_the_model_folds_from_one_example_counts_every_row() -> None:
    # 10 rows x 3 x 4 weights; 2 rows x 13 positions x 2 filters x 3 weights
    model, inputs = _PerStep(), []
    model.register_forward_pre_hook(lambda _module, args: inputs.append(tuple(args[0].shape)))
    assert count_macs(model, torch.zeros(7, 40)) == 10 * 12 + 2 * 13 * 6
    assert inputs == [(1, 40)]  # one example run, however many are given


def test_a_tied_weight_is_masked_under_any_of_its_names() -> None:
    """Two Linear layers sharing one weight: a mask given by the second name counts for both."""
    first, second = nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False)
    second.weight = first.weight
    model = nn.Sequential(first, second)
    half = torch.arange(16).reshape(4, 4) % 2 == 0
    assert count_macs(model, torch.zeros(1, 4)) == 32
    assert count_macs(model, torch.zeros(1, 4), {"1.weight": half}) == 16


def test_masked_conv_costs_its_kept_weights_at_every_output_position() -> None:
    """A strided, padded Conv2d then a Linear, each masked: the conv's 3 x 2 x 3 x 3 = 54
    weights meet a 7x9 input with stride 2 and padding 1, so 4x5 = 20 output positions
    ((7 + 2 - 3) // 2 + 1 = 4, (9 + 2 - 3) // 2 + 1 = 5); the Linear (60 -> 4, 240 weights)
    applies each weight once. Kept: 23 conv weights, every third Linear weight (80)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 5, 4))
    x = torch.zeros(1, 2, 7, 9)
    conv_mask = (torch.arange(54) < 23).reshape(3, 2, 3, 3)
    linear_mask = (torch.arange(240) % 3 == 0).reshape(4, 60)
    masks = {"0.weight": conv_mask, "3.weight": linear_mask}
    dense, pruned = count_macs(model, x), count_macs(model, x, masks)
    assert dense == 54 * 20 + 240
    assert pruned == 23 * 20 + 80
    assert speedup(dense, pruned) == pytest.approx(1320 / 540)


def test_a_grouped_dilated_conv_costs_the_weights_of_its_groups_and_no_bias() -> None:
    """6 filters of 4 / 2 groups = 2 channels x 3 x 3 (108 weights), dilated by 2 over a 9x9
    input: 9 - 2 * (3 - 1) = 5, so 5x5 = 25 positions; the bias adds no multiplication."""
    assert count_macs(nn.Conv2d(4, 6, 3, groups=2, dilation=2), torch.zeros(1, 4, 9, 9)) == 108 * 25


def test_attention_counts_its_projections_with_their_masks() -> None:
    """MultiheadAttention applies its projection weights itself (no Linear forward runs), and
    in eval without gradients torch would take a fused path: both must still be counted."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, batch_first=True).eval()
    tokens = 5
    # q, k, v and the output projection (16 x 16 each), then the two feed-forward layers
    assert count_macs(layer, torch.zeros(1, tokens, 16)) == tokens * (4 * 16 * 16 + 2 * 16 * 32)
    pruner = Pruner(layer, include=["self_attn.in_proj_weight", "self_attn.out_proj", "linear1", "linear2"])
    pruner.prune(ratios={"self_attn.in_proj_weight": 0.5, "self_attn.out_proj": 0.75, "linear1": 0.0, "linear2": 0.0})
    in_proj = pruner.masks["self_attn.in_proj_weight"]
    by_projection = [int(in_proj[i * 16:(i + 1) * 16].sum()) for i in range(3)]  # kept weights of q, k, v
    assert sum(by_projection) == 3 * 16 * 16 // 2
    expected = tokens * (sum(by_projection) + 16 * 16 // 4 + 2 * 16 * 32)
    assert count_macs(layer, torch.zeros(1, tokens, 16), pruner.masks) == expected


def test_cross_attention_counts_queries_keys_and_values_by_their_own_lengths() -> None:
    attention = nn.MultiheadAttention(16, 2, kdim=8, vdim=12, batch_first=True)

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = attention

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            memory_keys, memory_values = torch.zeros(1, 6, 8), torch.zeros(1, 6, 12)
            return self.attention(x, key=memory_keys, value=memory_values)[0]

    # 4 queries through q (16 x 16) and the output (16 x 16); 6 keys (16 x 8) and values (16 x 12)
    assert count_macs(Decoder(), torch.zeros(1, 4, 16)) == 4 * 256 + 6 * 16 * 8 + 6 * 16 * 12 + 4 * 256


def test_sequence_first_attention_cut_to_one_position_is_warned_about() -> None:
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32)  # batch_first=False
    with pytest.warns(UserWarning, match=r"batch_first=False takes the sequence first: this cut it to one position"):
        assert count_macs(layer, torch.zeros(5, 1, 16)) == 1 * (4 * 16 * 16 + 2 * 16 * 32)  # 1 of 5 positions


def test_a_batch_norm_without_running_statistics_counts_one_example() -> None:
    """In eval mode such a BatchNorm normalises by the batch's statistics, which one example
    (a 1x1 conv output, a Linear's row) cannot give: the count is still of one example."""
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4, track_running_stats=False), nn.Flatten(),  # 3x3 input: one output position
        nn.Linear(4, 3), nn.BatchNorm1d(3, track_running_stats=False), nn.ReLU(), nn.Linear(3, 2),
    )
    dense = 4 * 2 * 9 + 4 * 3 + 3 * 2
    assert count_macs(model, torch.zeros(1, 2, 3, 3)) == dense
    assert count_macs(model, torch.zeros(5, 2, 3, 3)) == dense
    masks = {"3.weight": torch.tensor([[True, False, False, False]] * 3)}
    assert count_macs(model, torch.zeros(1, 2, 3, 3), masks) == dense - 9
    assert model.training and model[1].training  # left as it was
    assert count_macs(model.eval(), torch.zeros(1, 2, 3, 3)) == dense  # an eval-mode model too: it still needs a batch


def test_sequence_first_attention_given_one_position_is_not_warned_about() -> None:
    """Nothing is cut from an input of one position: 3 sequences x (q, k, v, out: 16 x 16 each; 16 x 32 and 32 x 16)."""
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32)  # batch_first=False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert count_macs(layer, torch.zeros(1, 3, 16)) == 3 * (4 * 16 * 16 + 2 * 16 * 32)


class _UnbatchedAttention(nn.Module):
    """A sequence-first attention given each example's tokens unbatched, (tokens, features)."""

    def __init__(self) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(8, 2)  # batch_first=False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x[0]
        return self.attention(tokens, tokens, tokens)[0]


def test_unbatched_attention_is_not_warned_about() -> None:
    """An unbatched query has no batch dimension to take for the sequence: example_input[:1]
    cut nothing from it. 5 tokens x (q, k, v, out: 8 x 8 each)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert count_macs(_UnbatchedAttention(), torch.zeros(3, 5, 8)) == 5 * 4 * 8 * 8


class _PaddedEncoder(nn.Module):
    """Two encoder layers given a padding mask, as a text model pads its shorter sequences."""

    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padding = torch.zeros(x.shape[:2], dtype=torch.bool)
        padding[:, -2:] = True
        return self.encoder(x, src_key_padding_mask=padding)


def test_an_encoder_given_a_padding_mask_is_counted_and_the_fast_path_setting_kept() -> None:
    """On torch's fast path, a padding mask runs the layers on nested tensors, whose sizes the
    hooks cannot read: the count takes the plain path, then leaves the setting as it found it.
    2 layers x 5 tokens (the padded ones are computed too) x (q, k, v, out: 16 x 16 each; 16 x 32 and 32 x 16)."""
    encoder, x = _PaddedEncoder().eval(), torch.zeros(1, 5, 16)
    enabled = torch.backends.mha.get_fastpath_enabled()
    try:
        for setting in (True, False):
            torch.backends.mha.set_fastpath_enabled(setting)
            assert count_macs(encoder, x) == 2 * 5 * (4 * 16 * 16 + 2 * 16 * 32)
            assert torch.backends.mha.get_fastpath_enabled() == setting
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)
