"""BatchIterator: coverage, determinism and sharding."""

from __future__ import annotations

import itertools
import re

import pytest
import torch

from prunelab.data import BatchIterator
from prunelab.data.loader import PADDING


def make(n: int = 103, **kwargs) -> BatchIterator:
    x = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    return BatchIterator(x, torch.arange(n), **kwargs)


def epoch_labels(batches: BatchIterator) -> list[int]:
    return [label for _, yb in batches for label in yb.tolist()]


@pytest.mark.parametrize("shuffle", [False, True])
def test_each_example_exactly_once_per_epoch(shuffle: bool) -> None:
    batches = make(batch_size=10, shuffle=shuffle, generator=torch.Generator().manual_seed(0))
    assert len(batches) == 11
    for _ in range(2):
        seen = list(batches)
        assert len(seen) == len(batches)
        assert [len(yb) for _, yb in seen] == [10] * 10 + [3]
        assert sorted(label for _, yb in seen for label in yb.tolist()) == list(range(103))
        assert all(torch.equal(xb.squeeze(1).long(), yb) for xb, yb in seen)


def test_drop_last() -> None:
    batches = make(batch_size=10, shuffle=True, drop_last=True)
    assert len(batches) == 10
    assert [len(yb) for _, yb in batches] == [10] * 10


def test_deterministic_given_the_generator() -> None:
    def two_epochs(seed: int) -> list[list[int]]:
        batches = make(batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(seed))
        return [epoch_labels(batches), epoch_labels(batches)]

    first, second = two_epochs(3)
    assert [first, second] == two_epochs(3)
    assert first != second  # a new permutation each epoch
    assert first != two_epochs(4)[0]


def test_no_shuffle_keeps_order() -> None:
    assert epoch_labels(make(n=7, batch_size=3, shuffle=False)) == list(range(7))


def test_shards_are_disjoint_and_cover_the_epoch() -> None:
    shards = [
        epoch_labels(make(n=100, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(1),
                          rank=rank, world_size=4))
        for rank in range(4)
    ]
    assert all(len(shard) == 25 for shard in shards)
    assert sorted(label for shard in shards for label in shard) == list(range(100))


def test_uneven_shards_are_padded_by_wrapping() -> None:
    iterators = [make(n=10, batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(2),
                      rank=rank, world_size=3) for rank in range(3)]
    assert [len(it) for it in iterators] == [2, 2, 2]
    shards = [epoch_labels(it) for it in iterators]
    assert [len(shard) for shard in shards] == [4, 4, 4]
    labels = [label for shard in shards for label in shard]
    # the 10 examples once each, and 2 of padding, marked so that the loss ignores them
    assert sorted(labels) == [PADDING, PADDING, *range(10)]
    assert [it.real_examples(i) for it in iterators[:1] for i in range(2)] == [9, 1]
    # the padding repeats the epoch's first examples, whose inputs still pass through the model
    ((xb, yb),) = make(n=10, batch_size=4, shuffle=False, rank=1, world_size=3)
    assert xb.squeeze(1).tolist() == [1, 4, 7, 0] and yb.tolist() == [1, 4, 7, PADDING]


@pytest.mark.parametrize("n", [42, 41], ids=["even-shares", "padded"])
def test_a_transform_draws_for_the_batch_of_all_ranks_as_one_process_would(n: int) -> None:
    """Augmentation under several processes: each rank's examples get the draws one process
    gives them, not the draws of the first examples of the batch (the same for every rank);
    the padding of a last batch that does not split evenly draws nothing."""

    def batches(rank: int, world_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Two epochs: the padding must not take draws the next epoch's examples would get."""
        noise = torch.Generator().manual_seed(5)  # each process seeds its own alike
        epochs = make(n=n, batch_size=12 // world_size, shuffle=True, generator=torch.Generator().manual_seed(3),
                      rank=rank, world_size=world_size, transform=lambda x: x + torch.rand(x.shape, generator=noise))  # fmt: skip
        return list(epochs) + list(epochs)

    alone = batches(0, 1)
    ranks = [batches(rank, 3) for rank in range(3)]
    assert len(alone) == len(ranks[0]) == 2 * 4  # the last batch short: 6 examples (or 5 and a padding), 2 a rank
    for i, (x, y) in enumerate(alone):
        for rank, shard in enumerate(ranks):
            real = shard[i][1] != PADDING
            assert torch.equal(shard[i][0][real], x[rank::3]) and torch.equal(shard[i][1][real], y[rank::3])
    assert sum(int((shard[3][1] == PADDING).sum()) for shard in ranks) == 42 - n
    assert all(not torch.equal(x, x.round()) for x, _ in alone)  # the transform did draw


def test_batches_after_skipped_ones_get_the_draws_of_a_whole_epoch() -> None:
    """As a training that starts within an epoch (rewound to a step) skips batches."""

    def epoch() -> BatchIterator:
        noise = torch.Generator().manual_seed(5)
        return make(n=40, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(3),
                    transform=lambda x: x + torch.rand(x.shape, generator=noise))  # fmt: skip

    whole, rest = list(epoch()), list(itertools.islice(epoch(), 2, None))
    assert len(rest) == 3 and all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(whole[2:], rest))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size must be positive, got 0"),
        ({"rank": 2, "world_size": 2}, "need 0 <= rank < world_size, got rank=2"),
        ({"rank": -1}, "need 0 <= rank < world_size, got rank=-1"),
    ],
)
def test_invalid_arguments(kwargs, match) -> None:
    with pytest.raises(ValueError, match=re.escape(match)):
        make(**{"batch_size": 4, "shuffle": False, **kwargs})


def test_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="x has 3 examples but y has 4"):
        BatchIterator(torch.zeros(3, 1), torch.zeros(4), batch_size=2, shuffle=False)
