"""Elementwise criteria: magnitude, and hashed random scores that do not depend on chunking."""

import re
import zlib

import pytest
import torch

from prunelab.criteria import CRITERIA, Magnitude, Random, RandomChannels, get_criterion


def score(criterion, name, values, positions):
    return criterion(name, values, positions, torch.empty(values.numel()))


def test_magnitude_is_absolute_value_written_into_out():
    values = torch.tensor([-3.0, 0.0, 2.5, -1e-3])
    out = torch.full((4,), 7.0)
    result = Magnitude()("w", values, slice(0, 4), out)
    assert result.data_ptr() == out.data_ptr()
    assert torch.equal(result, torch.tensor([3.0, 0.0, 2.5, 1e-3]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_magnitude_of_16_bit_weights_is_written_exactly_into_a_float32_out(dtype):
    values = torch.tensor([-3.5, 2**-20, -256.0], dtype=dtype)  # each exact in both types
    assert Magnitude()("w", values, slice(0, 3), torch.empty(3)).tolist() == [3.5, 2**-20, 256.0]


def test_random_scores_do_not_depend_on_how_positions_are_read():
    random = Random(seed=4)
    values = torch.randn(1000)
    whole = score(random, "w", values, slice(0, 1000))
    pieces = torch.cat(
        [score(random, "w", values[i : i + 128], slice(i, min(i + 128, 1000))) for i in range(0, 1000, 128)]
    )
    assert torch.equal(whole, pieces)
    picked = torch.tensor([999, 3, 500, 3])
    assert torch.equal(score(random, "w", values[picked], picked), whole[picked])


def test_random_scores_depend_on_seed_and_name_not_on_values():
    values = torch.randn(500)
    base = score(Random(1), "w", values, slice(0, 500))
    assert torch.equal(score(Random(1), "w", torch.zeros(500), slice(0, 500)), base)
    assert not torch.equal(score(Random(2), "w", values, slice(0, 500)), base)
    assert not torch.equal(score(Random(1), "v", values, slice(0, 500)), base)


@pytest.mark.parametrize("seed", [None, 1.0, True, "1"])
@pytest.mark.parametrize("criterion", [Random, RandomChannels])
def test_a_random_criterion_takes_only_an_int_seed(criterion, seed):
    # Hashed as text, 1.0 or True gave other masks than 1, and None one of its own, without a word.
    with pytest.raises(TypeError, match=f"^seed must be an int, got {re.escape(repr(seed))}$"):
        criterion(seed)


def test_random_scores_are_roughly_uniform_in_unit_interval():
    scores = score(Random(0), "layer.weight", torch.zeros(200_000), slice(0, 200_000))
    assert scores.dtype == torch.float32
    assert scores.min() >= 0 and scores.max() < 1
    counts = torch.histc(scores, bins=10, min=0, max=1)
    assert ((counts / scores.numel() - 0.1).abs() < 0.005).all()  # sd per bin ~0.0007
    # Neighbouring positions are not correlated.
    assert torch.corrcoef(torch.stack([scores[:-1], scores[1:]]))[0, 1].abs() < 0.01


def test_get_criterion():
    assert isinstance(get_criterion("magnitude"), Magnitude)
    random = get_criterion("random", seed=9)
    assert isinstance(random, Random) and random.seed == 9
    custom = Magnitude()
    assert get_criterion(custom) is custom
    assert set(CRITERIA) >= {"magnitude", "random"}
    with pytest.raises(ValueError, match=r"unknown criterion 'abs'; expected one of \['magnitude', 'random'\]"):
        get_criterion("abs")


@pytest.mark.parametrize(
    ("criterion", "got"),
    [
        (lambda name, values, positions, out: values.abs()[:3], "a torch.float32 tensor of shape (3,)"),
        (lambda name, values, positions, out: None, "NoneType"),
        (lambda name, values, positions, out: values.abs().numpy(), "ndarray"),
        (lambda name, values, positions, out: values.abs().long(), "a torch.int64 tensor of shape (12,)"),
    ],
)
def test_a_criterion_that_breaks_the_contract_is_named(criterion, got):
    """Your own criterion's mistake is an error that says what it returned and what is expected."""
    from prunelab import Pruner

    pruner = Pruner(torch.nn.Linear(4, 3))
    with pytest.raises(ValueError, match=rf"^criterion <lambda> returned {re.escape(got)} for 12 values of weight: a criterion returns"):
        pruner.prune(0.5, criterion=criterion)


def test_a_channel_criterion_given_to_the_weight_pruner_points_to_channel_pruner():
    with pytest.raises(ValueError, match=r"'filter_l1' scores whole channels: use prunelab.ChannelPruner\(model, example_input, criterion='filter_l1'\)"):
        get_criterion("filter_l1")


def unsigned_hash_score(seed: int, name: str, position: int) -> float:
    """The documented mixing in unsigned 64-bit arithmetic (Python ints mod 2**64), with logical
    shifts; the score is bits 20 to 43 over 2**24."""
    key = zlib.crc32(f"{seed}:{name}".encode()) * 0x9E3779B97F4A7C15 % (1 << 63)
    x = (position * 0x5851F42D4C957F2D + key) % (1 << 64)
    x = (x ^ (x >> 31)) * 0x632BE59BD9B4E019 % (1 << 64)
    x ^= x >> 33
    return ((x >> 20) & 0xFFFFFF) / 2**24


def test_random_scores_are_the_unsigned_64_bit_hash_they_emulate():
    """torch's int64 wraps like unsigned 64-bit integers but shifts arithmetically: the scores are
    those of unsigned arithmetic, so a saved run's random masks stay reproducible."""
    positions = [0, 1, 2, 1000, 2**31 + 5, 2**40 + 12345]
    for seed, name in ((0, "w"), (7, "layer.weight"), (-3, "fc")):
        scores = Random(seed)(name, torch.zeros(len(positions)), torch.tensor(positions), torch.empty(len(positions)))
        assert scores.tolist() == [unsigned_hash_score(seed, name, p) for p in positions]


def test_seeds_of_64_bits_are_taken_and_larger_ones_are_errors():
    assert Random(2**63 - 1).seed == 2**63 - 1 and Random(-(2**63)).seed == -(2**63)
    for seed in (2**63, -(2**63) - 1):
        with pytest.raises(ValueError, match=r"seed must fit in 64 bits"):
            Random(seed)
