"""`select` against a sort-based reference, through every path: exact, sampled, chunked, widened."""

import math

import pytest
import torch

from prunelab.criteria import Magnitude, Random
from prunelab.masks import selection
from prunelab.masks.selection import select


def reference(weights, n_prune, prior=None):
    """Sort every magnitude (already pruned entries first); prune the n_prune lowest.

    A stable sort over the concatenation breaks ties by (tensor order, flat index).
    """
    scores = []
    for name, w in weights.items():
        s = w.abs().reshape(-1).clone()
        if prior is not None:
            s[~prior[name].reshape(-1)] = -math.inf
        scores.append(s)
    order = torch.sort(torch.cat(scores), stable=True).indices
    keep = torch.ones(order.numel(), dtype=torch.bool)
    keep[order[:n_prune]] = False
    pieces = keep.split([w.numel() for w in weights.values()])
    return {name: piece.view_as(w) for (name, w), piece in zip(weights.items(), pieces)}


def random_weights(sizes, seed=0, levels=None):
    """Normal weights of the given shapes; rounded to ``levels`` distinct magnitudes if given (ties)."""
    g = torch.Generator().manual_seed(seed)
    weights = {}
    for i, shape in enumerate(sizes):
        if levels is None:
            weights[f"t{i}"] = torch.randn(shape, generator=g)
        else:
            weights[f"t{i}"] = torch.randint(-levels, levels + 1, shape, generator=g).float()
    return weights


def assert_same(masks, expected):
    assert list(masks) == list(expected)
    for name in expected:
        assert masks[name].dtype == torch.bool
        assert masks[name].shape == expected[name].shape
        assert torch.equal(masks[name], expected[name]), name


SHAPES = [(30, 40), (7,), (16, 3, 5, 5), (2500,), (50, 60), (3, 4, 2, 3, 3)]  # ~9.9k entries


@pytest.mark.parametrize("fraction", [0.0001, 0.1, 0.5, 0.9, 0.999, 1.0])
@pytest.mark.parametrize("levels", [None, 3])  # distinct values, then heavy ties
def test_chunked_and_sampled_path_matches_sort(fraction, levels):
    weights = random_weights(SHAPES, levels=levels)
    total = sum(w.numel() for w in weights.values())
    n_prune = round(fraction * total)
    masks = select(weights, n_prune, Magnitude(), chunk_size=100, sample_size=64)
    assert_same(masks, reference(weights, n_prune))
    assert sum(int((~m).sum()) for m in masks.values()) == n_prune


@pytest.mark.parametrize("dtypes", [
    (torch.float64,) * 3,
    (torch.float16,) * 3,
    (torch.bfloat16,) * 3,
    (torch.float32, torch.float64, torch.bfloat16),  # one group of mixed precisions
])
def test_other_float_dtypes_match_sort(dtypes):
    """Tied magnitudes, pulled apart in float64 by offsets far below float32's resolution
    that reverse the index order: float32 scores would merge them into ties again."""
    weights = random_weights([(40, 30), (500,), (8, 3, 5)], levels=3)
    weights = {name: (w.double() - 1e-9 * torch.arange(w.numel()).view_as(w)).to(dtype)
               for (name, w), dtype in zip(weights.items(), dtypes)}
    as_float64 = {name: w.double() for name, w in weights.items()}  # exact for every dtype here
    for fraction in (0.3, 0.9):
        n_prune = round(fraction * sum(w.numel() for w in weights.values()))
        masks = select(weights, n_prune, Magnitude(), chunk_size=128, sample_size=64)
        assert_same(masks, reference(as_float64, n_prune))


@pytest.mark.parametrize("seed", range(4))
def test_result_does_not_depend_on_the_sample_seed(seed):
    weights = random_weights(SHAPES, seed=7)
    n_prune = 6000
    masks = select(weights, n_prune, Magnitude(), seed=seed, chunk_size=333, sample_size=128)
    assert_same(masks, reference(weights, n_prune))


def test_exact_path_when_everything_fits_in_the_sample():
    weights = random_weights([(10, 10), (5,), (3, 3)], levels=2)
    for n_prune in range(115):
        assert_same(select(weights, n_prune, Magnitude()), reference(weights, n_prune))


def test_band_widening_path(monkeypatch):
    """A band far too narrow to hold the threshold must be widened, with the same result."""
    passes = []
    split = selection._Stream.split

    def counting_split(self, lo, hi):
        passes.append((lo, hi))
        return split(self, lo, hi)

    monkeypatch.setattr(selection, "BAND_SIGMAS", (1e-6, math.inf))
    monkeypatch.setattr(selection._Stream, "split", counting_split)
    widened = 0
    for seed in range(10):
        weights = random_weights(SHAPES, seed=seed)
        passes.clear()
        masks = select(weights, 4321, Magnitude(), seed=seed, chunk_size=100, sample_size=64)
        assert_same(masks, reference(weights, 4321))
        widened += len(passes) > 1
    assert widened >= 5  # the widening pass really ran, in most cases


@pytest.mark.parametrize("n_prune", [4321, 8123])  # some, and every entry
def test_a_sample_that_misleads_every_finite_band_is_widened_to_every_key(monkeypatch, n_prune):
    """The last band spans every key, so select cannot miss: here the sample's scores lie
    above every entry's (a criterion that scores the sampled positions apart) and only the
    last band holds the threshold. The sample is large enough that the finite bands do not
    reach the ends of the order."""
    passes = []
    split = selection._Stream.split

    def counting_split(self, lo, hi):
        passes.append((lo, hi))
        return split(self, lo, hi)

    def misleading(name, values, positions, out):
        scores = torch.abs(values, out=out)
        return scores.fill_(math.inf) if isinstance(positions, torch.Tensor) else scores  # drawn positions come as a tensor

    weights = random_weights(SHAPES, seed=4)
    assert sum(w.numel() for w in weights.values()) == 8123
    monkeypatch.setattr(selection._Stream, "split", counting_split)
    masks = select(weights, n_prune, misleading, chunk_size=100, sample_size=4096)
    assert_same(masks, reference(weights, n_prune))
    assert len(passes) == len(selection.BAND_SIGMAS)


def test_prior_pruned_entries_stay_pruned_and_count():
    weights = random_weights(SHAPES, seed=3)
    g = torch.Generator().manual_seed(1)
    # Prior pruning that is NOT the lowest magnitudes (as after rewinding the weights).
    prior = {name: torch.rand(w.shape, generator=g) > 0.3 for name, w in weights.items()}
    already = sum(int((~p).sum()) for p in prior.values())
    for n_prune in (already, already + 1, already + 2000, sum(w.numel() for w in weights.values())):
        masks = select(weights, n_prune, Magnitude(), prior, chunk_size=100, sample_size=64)
        assert_same(masks, reference(weights, n_prune, prior))
        for name in prior:
            assert not (masks[name] & ~prior[name]).any()  # nothing regrows
            assert masks[name].data_ptr() != prior[name].data_ptr()  # new masks, also when nothing more is pruned


def test_all_equal_weights_prune_earlier_tensors_and_indices_first():
    weights = {"a": torch.ones(3, 4), "b": torch.full((10,), -1.0), "c": torch.ones(5)}
    masks = select(weights, 15, Magnitude(), chunk_size=4, sample_size=8)
    assert not masks["a"].any()
    assert masks["b"].tolist() == [False, False, False] + [True] * 7
    assert masks["c"].all()
    again = select(weights, 15, Magnitude(), seed=5, chunk_size=3, sample_size=4)
    assert_same(again, masks)  # deterministic whatever the sample and chunking


@pytest.mark.parametrize("fraction", [0.85, 0.9, 0.91])  # inside, at the end of, just past the zeros
def test_band_stays_small_when_most_weights_tie(monkeypatch, fraction):
    """With 90% exact zeros the threshold sits in or next to a huge tie; the band, whose
    entries cost memory, must still hold only a small share of the weights."""
    band_sizes = []
    split = selection._Stream.split

    def recording_split(self, lo, hi):
        masks, positions, scores = split(self, lo, hi)
        band_sizes.append(scores.numel())
        return masks, positions, scores

    monkeypatch.setattr(selection._Stream, "split", recording_split)
    g = torch.Generator().manual_seed(0)
    weights = {name: torch.randn(50_000, generator=g) * (torch.rand(50_000, generator=g) < 0.1) for name in "ab"}
    n_prune = round(fraction * 100_000)
    masks = select(weights, n_prune, Magnitude(), chunk_size=4096, sample_size=4096)
    assert_same(masks, reference(weights, n_prune))
    assert max(band_sizes) < 10_000  # the 4-sigma band is ~4.5% of the entries; ties alone are 90%


def test_large_all_equal_tensor_exact_count():
    weights = {"a": torch.zeros(20_000), "b": torch.zeros(100, 7)}
    masks = select(weights, 12_345, Magnitude(), chunk_size=1000, sample_size=256)
    assert int((~masks["a"]).sum()) == 12_345
    assert not masks["a"][:12_345].any() and masks["a"][12_345:].all() and masks["b"].all()


def test_non_contiguous_weights():
    base = random_weights([(40, 30), (6, 5, 4)], seed=2)
    weights = {"t": base["t0"].t(), "u": base["t1"].permute(2, 0, 1)}
    masks = select(weights, 700, Magnitude(), chunk_size=50, sample_size=32)
    assert_same(masks, reference(weights, 700))


def test_random_criterion_prunes_exactly_the_lowest_random_scores():
    weights = random_weights(SHAPES)
    criterion = Random(seed=3)
    masks = select(weights, 5000, criterion, chunk_size=100, sample_size=64)
    # Reference: the same scores, sorted.
    scores = {
        name: criterion(name, w.reshape(-1), slice(0, w.numel()), torch.empty(w.numel())).view_as(w)
        for name, w in weights.items()
    }
    assert_same(masks, reference(scores, 5000))


@pytest.mark.parametrize("n_prune", [-1, 101])
def test_impossible_counts_are_errors(n_prune):
    with pytest.raises(ValueError, match="cannot prune"):
        select({"a": torch.randn(100)}, n_prune, Magnitude())


def test_fewer_than_already_pruned_is_an_error():
    prior = {"a": torch.arange(10) >= 4}  # 4 already pruned
    with pytest.raises(ValueError, match="4 are already pruned"):
        select({"a": torch.randn(10)}, 3, Magnitude(), prior)


@pytest.mark.parametrize("sample_size", [100_000, 16])  # the sample holds every entry, or misses the NaN
def test_nan_weights_are_an_error_naming_the_tensor(sample_size):
    weights = random_weights(SHAPES)
    weights["t3"][1234] = math.nan
    with pytest.raises(ValueError, match="t3 has NaN or -inf scores"):
        select(weights, 5000, Magnitude(), chunk_size=100, sample_size=sample_size)


@pytest.mark.parametrize("fraction_nan", [0.001, 0.6, 1.0])
def test_a_nan_threshold_is_the_same_error(fraction_nan):
    """Pruning almost everything puts the threshold on a NaN when there are NaN weights."""
    weights = random_weights(SHAPES)
    n_nan = max(1, round(fraction_nan * weights["t2"].numel()))
    weights["t2"].view(-1)[:n_nan] = math.nan
    total = sum(w.numel() for w in weights.values())
    for sample_size in (100_000, 64):
        with pytest.raises(ValueError, match="t2 has NaN or -inf scores"):
            select(weights, total - 1, Magnitude(), chunk_size=100, sample_size=sample_size)


def test_infinite_weights_and_pruned_entries_together_are_not_mistaken_for_nan():
    """+inf weights (kept) and already pruned entries (scored -inf) make a chunk's score sum
    NaN, which the cheap check must not report as a NaN score."""
    weights = random_weights(SHAPES)
    weights["t0"][0, 0] = math.inf
    prior = {name: torch.ones_like(w, dtype=torch.bool) for name, w in weights.items()}
    prior["t0"][0, 1] = False
    masks = select(weights, 100, Magnitude(), prior, chunk_size=100, sample_size=64)
    assert_same(masks, reference(weights, 100, prior))


class LogMagnitude:
    """log|w|: exact zeros score -inf, which a criterion may not return."""

    def __call__(self, name, values, positions, out):
        return torch.log(values.abs(), out=out)


def test_minus_infinite_scores_are_an_error_naming_the_tensor():
    weights = random_weights(SHAPES)
    weights["t2"].view(-1)[:50] = 0.0
    with pytest.raises(ValueError, match="t2 has NaN or -inf scores"):
        select(weights, 100, LogMagnitude(), chunk_size=100, sample_size=64)


def test_scores_of_entries_already_pruned_are_not_checked():
    """The weights of entries already pruned are zero, which a criterion may score -inf
    (log |w|): those scores are never checked, even when a +inf score elsewhere (a kept +inf
    weight) makes the cheap check read the scores again. log is increasing, so the masks are
    those of magnitude."""
    weights = random_weights(SHAPES, seed=4)
    g = torch.Generator().manual_seed(2)
    prior = {name: torch.rand(w.shape, generator=g) > 0.2 for name, w in weights.items()}
    for name, w in weights.items():
        w[~prior[name]] = 0.0  # as the pruner leaves them
    weights["t3"][17] = math.inf
    prior["t3"][17] = True
    already = sum(int((~p).sum()) for p in prior.values())
    for n_prune in (already + 1, already + 1500):
        masks = select(weights, n_prune, LogMagnitude(), prior, chunk_size=100, sample_size=64)
        assert_same(masks, reference(weights, n_prune, prior))


def test_scores_far_below_float32_range_are_ranked():
    """Scores below float32's lowest value (from float64 weights) are ordinary scores."""
    weights = {name: w.double() for name, w in random_weights(SHAPES).items()}

    class Scaled:  # (|w| - 10) * 1e300: the order of |w|, at about -1e301
        def __call__(self, name, values, positions, out):
            return torch.sub(values.abs(), 10.0, out=out).mul_(1e300)

    for n_prune in (1, 5000, 8000):
        masks = select(weights, n_prune, Scaled(), chunk_size=100, sample_size=64)
        assert_same(masks, reference(weights, n_prune))


def test_channels_last_weights_are_read_in_place_and_masked_like_contiguous_ones():
    """A channels_last convolution weight is read through a view in memory order (no copy);
    its mask has the weight's shape and layout and, without ties, the same entries as for
    the contiguous weight."""
    g = torch.Generator().manual_seed(0)
    conv = torch.randn(8, 4, 3, 3, generator=g).to(memory_format=torch.channels_last)
    weights = {"conv": conv, "fc": torch.randn(30, 20, generator=g)}
    contiguous = {name: w.contiguous() for name, w in weights.items()}
    flat = selection._flat(conv, selection._memory_order(conv))
    assert flat.data_ptr() == conv.data_ptr() and flat.is_contiguous()
    masks = select(weights, 500, Magnitude(), chunk_size=64, sample_size=32)
    assert masks["conv"].stride() == conv.stride()
    assert_same({n: m.contiguous() for n, m in masks.items()}, reference(contiguous, 500))
    again = select(weights, 700, Magnitude(), prior=masks, chunk_size=64, sample_size=32)  # priors in that layout too
    assert_same({n: m.contiguous() for n, m in again.items()}, reference(contiguous, 700))


def test_empty_tensors_are_skipped():
    weights = {"empty": torch.empty(0, 5), **random_weights([(20, 10)])}
    masks = select(weights, 100, Magnitude(), chunk_size=64, sample_size=32)
    assert masks["empty"].shape == (0, 5)
    assert int((~masks["t0"]).sum()) == 100


def test_a_sample_too_small_to_reach_every_tensor_still_selects_exactly():
    """8 tensors of 10 entries and a sample of 2: each tensor's share rounds to 0 draws."""
    weights = random_weights([(10,)] * 8, seed=4)
    for n_prune in (1, 40, 79):
        assert_same(select(weights, n_prune, Magnitude(), chunk_size=3, sample_size=2), reference(weights, n_prune))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
@pytest.mark.parametrize("label", ["chunk_size", "sample_size"])
def test_chunk_and_sample_sizes_must_be_positive_whole_numbers(label, bad):
    """A chunk size of 0 or below would read no chunk at all (masks left uninitialised)."""
    with pytest.raises(ValueError, match=rf"{label} must be a whole number of entries of at least 1, got {bad}"):
        select({"a": torch.randn(100)}, 30, Magnitude(), **{label: bad})


def test_select_takes_a_criterion_by_name_and_names_bad_arguments():
    w = {"a": torch.tensor([0.5, -2.0, 1.0]), "b": torch.tensor([1.0, 0.1])}
    by_name = select(w, 3, "magnitude")
    assert {k: m.tolist() for k, m in by_name.items()} == {"a": [False, True, False], "b": [True, False]}
    with pytest.raises(TypeError, match=r"n_prune must be a whole number of entries, got 3\.0"):
        select(w, 3.0, "magnitude")
    with pytest.raises(TypeError, match=r"n_prune must be a whole number of entries, got True"):
        select(w, True, "magnitude")  # a bool is an int to Python, never a count here
    with pytest.raises(TypeError, match=r"weights must map names to tensors \(\{name: tensor\}\), got list"):
        select(list(w.values()), 3, "magnitude")
    with pytest.raises(TypeError, match=r"weights must map names to tensors \(\{name: tensor\}\), got list for 'a'"):
        select({"a": [1.0]}, 1, "magnitude")
    with pytest.raises(ValueError, match=r"prior must hold a bool mask of shape \(2,\) for b, got None"):
        select(w, 3, "magnitude", {"a": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"prior must hold a bool mask of shape \(3,\) for a"):
        select(w, 3, "magnitude", {"a": torch.ones(3), "b": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"prior must hold a bool mask of shape \(3,\) for a"):  # as many entries, another shape
        select(w, 3, "magnitude", {"a": torch.ones(1, 3, dtype=torch.bool), "b": torch.ones(2, dtype=torch.bool)})


def test_prior_pruned_entries_rank_below_kept_exact_zeros():
    """Entries already pruned count as the lowest of all, below kept weights that are exactly 0
    (which a magnitude criterion scores 0 too)."""
    weights = random_weights(SHAPES, seed=3)
    for w in weights.values():
        w.view(-1)[::7] = 0.0  # kept exact zeros, spread through every tensor
    g = torch.Generator().manual_seed(1)
    prior = {name: torch.rand(w.shape, generator=g) > 0.3 for name, w in weights.items()}
    already = sum(int((~p).sum()) for p in prior.values())
    for n_prune in (already + 1, already + 500):
        masks = select(weights, n_prune, Magnitude(), prior, chunk_size=100, sample_size=64)
        assert_same(masks, reference(weights, n_prune, prior))
        assert all(not (masks[n] & ~prior[n]).any() for n in prior)


def test_every_count_matches_sort_through_a_small_sample():
    """Every n_prune from 0 to all through the sampled path: at some counts the band's upper
    rank is the sample's size, one past its last entry, so the band must end at the top key."""
    weights = random_weights([(200,)], seed=7)
    for n_prune in range(201):
        assert_same(select(weights, n_prune, Magnitude(), chunk_size=64, sample_size=50), reference(weights, n_prune))
