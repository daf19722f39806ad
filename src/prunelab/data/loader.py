"""Mini-batches from in-memory tensors by plain indexing (no DataLoader workers: faster on CPU)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from prunelab.wording import counted


#: The label of the examples that pad an epoch to an equal share for every rank: the
#: ``ignore_index`` of ``torch.nn.functional.cross_entropy``.
PADDING = -100


class BatchIterator:
    """Iterable over ``(xb, yb)`` mini-batches of ``x`` and ``y``; every ``iter()`` is one epoch.

    With ``shuffle`` each epoch draws a fresh ``torch.randperm`` from ``generator`` (the
    global RNG if None), so a seeded generator makes the sequence of epochs reproducible.
    With ``world_size > 1`` each rank takes every ``world_size``-th position of the epoch's
    order, starting at ``rank``; the order is first padded by wrapping around so that all
    ranks get the same number of examples, and the padding's labels are :data:`PADDING`
    (which ``cross_entropy`` ignores; :meth:`real_examples` counts the others). Ranks must use
    identically seeded generators so that they share the permutation and their shards are
    disjoint.

    ``transform`` (e.g. data augmentation drawing from a generator of its own) maps the
    inputs of a batch to new inputs. It sees the whole batch of all ranks, of which each rank
    then keeps its share, so that its random draws for every example are those one process
    would make, and results match one process's.

    >>> x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    >>> batches = BatchIterator(x, y, batch_size=4, shuffle=False)
    >>> len(batches), [yb.tolist() for _, yb in batches]
    (3, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])
    >>> [yb.tolist() for _, yb in BatchIterator(x, y, 4, shuffle=False, rank=1, world_size=3)]
    [[1, 4, 7, -100]]
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x has {counted(len(x), 'example')} but y has {len(y)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.drop_last = drop_last
        self.rank, self.world_size = rank, world_size
        self.transform = transform
        self.examples_per_rank = math.ceil(len(x) / world_size)

    def __len__(self) -> int:
        if self.drop_last:
            return self.examples_per_rank // self.batch_size
        return math.ceil(self.examples_per_rank / self.batch_size)

    def epoch_order(self) -> Tensor:
        """The example indices of a new epoch, of all ranks (draws from the generator if
        shuffling); rank ``r`` takes every ``world_size``-th one, starting at ``r``."""
        n = len(self.x)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.world_size == 1:
            return order
        return order[torch.arange(self.examples_per_rank * self.world_size) % n]

    def real_examples(self, index: int) -> int:
        """How many examples of batch ``index``, over all ranks, are not padding."""
        size = self.batch_size * self.world_size
        return max(0, min(size, len(self.x) - index * size))

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = self.epoch_order()
        size = self.batch_size * self.world_size  # a batch of all ranks
        share = slice(self.rank, None, self.world_size)
        for i in range(len(self)):
            batch, real = order[i * size : (i + 1) * size], self.real_examples(i)
            labels = self.y[batch[share]]
            if real < len(batch):  # the last batch, over several ranks
                labels[torch.arange(len(batch))[share] >= real] = PADDING
            if self.transform is None:
                yield self.x[batch[share]], labels
            elif real == len(batch):
                yield self.transform(self.x[batch])[share], labels
            else:  # the padding is not augmented: the real examples get one process's draws
                yield torch.cat([self.transform(self.x[batch[:real]]), self.x[batch[real:]]])[share], labels
