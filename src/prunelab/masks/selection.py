"""Exact selection of the lowest-scoring weights over many tensors, streamed in chunks.

Pruning ``k`` of ``N`` weights globally needs the k-th smallest score of the whole model.
Concatenating and sorting the model costs a copy of it and a sort; this module never does
either. It follows Floyd and Rivest's selection:

1. score a uniform sample of the entries and read off a narrow band ``[lo, hi]`` that
   holds the k-th score with overwhelming probability;
2. stream once over every tensor in chunks, writing ``score > hi`` straight into the new
   mask and collecting the few entries inside the band (their positions and scores);
3. find the exact threshold inside the band and switch on the band entries above it.

Entries tied at the threshold are pruned in a fixed order (earlier tensor first, then lower
flat index; for a tensor stored in another memory order, e.g. channels_last, the index in
memory order, which lets it be read without a copy), so the count is exact and the result
deterministic. To that end entries are
ordered by the key (score, global index), where the global index counts through the tensors
in order; keys are all distinct, so the band holds a small share of the entries even when
most of them tie (e.g. a model that already has many exact zeros). If the band misses
(rare), it is widened and the pass repeated; the last widening spans every key, so it cannot
miss. Extra memory is a few chunk buffers plus the band (about 0.5% of the entries).
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Mapping

import torch
from torch import Tensor

from prunelab.criteria import Criterion, get_criterion
from prunelab.wording import counted

CHUNK_SIZE = 1 << 19  # 512k entries: ~7 MB of work buffers
SAMPLE_SIZE = 1 << 18
# Band half-widths in standard deviations of the sample rank; the last one takes every value.
BAND_SIGMAS = (4.0, 16.0, math.inf)

#: An entry's place in the selection order: (score, global index).
Key = tuple[float, int]


def select(
    weights: Mapping[str, Tensor],
    n_prune: int,
    criterion: Criterion | str,
    prior: Mapping[str, Tensor] | None = None,
    *,
    seed: int = 0,
    chunk_size: int = CHUNK_SIZE,
    sample_size: int = SAMPLE_SIZE,
) -> dict[str, Tensor]:
    """Bool masks (True = kept) pruning exactly ``n_prune`` entries of ``weights`` in total.

    The pruned entries are those with the lowest scores; entries already pruned in
    ``prior`` (same names, bool, True = kept) stay pruned and count toward ``n_prune``.
    ``criterion`` is a criterion or its name. ``seed`` fixes the sample, never the result
    (and the scores of a random criterion given by name).

    >>> from prunelab.criteria import Magnitude
    >>> w = {"a": torch.tensor([0.5, -2.0, 1.0]), "b": torch.tensor([1.0, 0.1])}
    >>> {k: m.tolist() for k, m in select(w, 3, Magnitude()).items()}  # the first tied 1.0 goes
    {'a': [False, True, False], 'b': [True, False]}
    """
    if isinstance(criterion, str):
        criterion = get_criterion(criterion, seed)
    if isinstance(n_prune, bool) or not isinstance(n_prune, numbers.Integral):
        raise TypeError(f"n_prune must be a whole number of entries, got {n_prune!r}")
    for label, size in (("chunk_size", chunk_size), ("sample_size", sample_size)):
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"{label} must be a whole number of entries of at least 1, got {size!r}")
    if not isinstance(weights, Mapping):
        raise TypeError(f"weights must map names to tensors ({{name: tensor}}), got {type(weights).__name__}")
    for name, weight in weights.items():
        if not isinstance(weight, Tensor):
            raise TypeError(f"weights must map names to tensors ({{name: tensor}}), got {type(weight).__name__} for {name!r}")
    for name, weight in weights.items() if prior is not None else ():
        mask = prior.get(name)
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != weight.shape:
            raise ValueError(f"prior must hold a bool mask of shape {tuple(weight.shape)} for {name}, got {mask!r:.80}")
    names = list(weights)
    orders = [_memory_order(weights[name]) for name in names]
    flats = [_flat(weights[name].detach(), order) for name, order in zip(names, orders)]
    priors = [None if prior is None else _flat(prior[name], order) for name, order in zip(names, orders)]
    total = sum(f.numel() for f in flats)
    already = sum(p.numel() - int(p.count_nonzero()) for p in priors if p is not None)
    if not already <= n_prune <= total:
        raise ValueError(f"cannot prune {counted(n_prune, 'entry', 'entries')}: {already} are already pruned of {total}")
    if n_prune == already:
        masks = [torch.ones_like(f, dtype=torch.bool) if p is None else p.clone() for f, p in zip(flats, priors)]
        return {name: _unflat(m, weights[name], order) for name, m, order in zip(names, masks, orders)}

    stream = _Stream(names, flats, priors, criterion, chunk_size)
    exact = total <= sample_size
    sample_scores, sample_index = stream.sample(sample_size, seed, exact)
    if bool(sample_scores.isnan().any()):  # a NaN threshold cannot be selected: name the tensor now
        stream.check_all_scores()
    for sigmas in BAND_SIGMAS:
        lo, hi = _band(sample_scores, sample_index, n_prune, total, 0.0 if exact else sigmas)
        masks, positions, scores = stream.split(lo, hi)
        below = total - sum(int(m.count_nonzero()) for m in masks) - scores.numel()
        rank = n_prune - below  # 1-based rank of the threshold inside the band
        if 1 <= rank <= scores.numel():
            _switch_on_band(masks, positions, scores, rank)
            return {name: _unflat(m, weights[name], order) for name, m, order in zip(names, masks, orders)}
    raise RuntimeError("the widest band holds every entry, so it cannot miss the threshold")


class _Stream:
    """Scores of the flattened tensors, read in chunks through reusable buffers."""

    def __init__(self, names, flats, priors, criterion: Criterion, chunk_size: int) -> None:
        self.names, self.flats, self.priors = names, flats, priors
        # Global index of each tensor's first entry.
        self.offsets = list(itertools.accumulate((f.numel() for f in flats[:-1]), initial=0))
        self.criterion = criterion
        self.chunk_size = chunk_size
        # float32 scores hold every float32, float16 and bfloat16 weight exactly; float64
        # weights get float64 scores, and so does the whole group, to compare like with like.
        self.dtype = torch.float64 if any(f.dtype == torch.float64 for f in flats) else torch.float32
        self._buffers: dict[torch.device, _Buffers] = {}

    def _scores(self, i: int, positions: slice | Tensor, buffers: _Buffers, sums: list[Tensor]) -> Tensor:
        """Scores of entries ``positions`` of tensor ``i``, -inf for those already pruned; the
        sum of the criterion's own scores goes to ``sums`` for :meth:`_check_scores`."""
        n = buffers.n
        scores = self.criterion(self.names[i], self.flats[i][positions], positions, buffers.scores[:n])
        if not isinstance(scores, Tensor) or scores.shape != (n,) or not scores.is_floating_point():
            got = f"a {scores.dtype} tensor of shape {tuple(scores.shape)}" if isinstance(scores, Tensor) else type(scores).__name__
            name = getattr(self.criterion, "__name__", type(self.criterion).__name__)
            raise ValueError(
                f"criterion {name} returned {got} for {counted(n, 'value')} of {self.names[i]}: a criterion returns a 1-d "
                "floating-point tensor of one score per value (see prunelab.criteria.elementwise)"
            )
        if self.priors[i] is not None:
            pruned = torch.logical_not(self.priors[i][positions], out=buffers.flags[:n])
            # Scores of entries already pruned are not checked: the weights there are zero,
            # which a criterion may well score as -inf (log |w|) or NaN (|w| / 0).
            sums.append(scores.masked_fill_(pruned, 0.0).sum())
            scores.masked_fill_(pruned, -math.inf)
        else:
            sums.append(scores.sum())
        return scores

    def _check_scores(self, i: int, sums: list[Tensor]) -> None:
        """Scores must be comparable and above -inf, which marks entries already pruned. A
        sum is NaN or -inf if a score is (or if +inf and -inf both occur): the cheap test,
        without a sync per chunk; only then are the scores read again."""
        if sums and not bool(torch.stack(sums).isfinite().all()) and self._has_bad_score(i):
            self._bad_scores(i)

    def check_all_scores(self) -> None:
        """Raise for the first tensor with a NaN or -inf score."""
        for i in range(len(self.flats)):
            if self._has_bad_score(i):
                self._bad_scores(i)

    def _bad_scores(self, i: int) -> None:
        raise ValueError(
            f"{self.names[i]} has NaN or -inf scores under {self.criterion!r}: scores must be numbers "
            "above -inf (are its weights finite?)"
        )

    def _has_bad_score(self, i: int) -> bool:
        flat = self.flats[i]
        for start in range(0, flat.numel(), self.chunk_size):
            stop = min(start + self.chunk_size, flat.numel())
            buffers = self._buffers_for(flat.device, stop - start)
            scores = self.criterion(self.names[i], flat[start:stop], slice(start, stop), buffers.scores[: stop - start])
            bad = scores.isnan() | scores.isneginf()
            if self.priors[i] is not None:
                bad &= self.priors[i][start:stop]
            if bool(bad.any()):
                return True
        return False

    def _buffers_for(self, device: torch.device, n: int) -> _Buffers:
        buffers = self._buffers.get(device)
        if buffers is None or buffers.capacity < n:
            buffers = self._buffers[device] = _Buffers(n, device, self.dtype)
        buffers.n = n
        return buffers

    def sample(self, size: int, seed: int, exact: bool) -> tuple[Tensor, Tensor]:
        """Scores and global indices of every entry if ``exact``, else of about ``size`` entries
        drawn uniformly within each tensor in proportion to its size (stratified sampling)."""
        total = sum(f.numel() for f in self.flats)
        generator = torch.Generator().manual_seed(seed)
        scores, indices = [], []
        for i, flat in enumerate(self.flats):
            if not flat.numel():
                continue
            if exact:
                drawn: slice | Tensor = slice(0, flat.numel())
                index = torch.arange(flat.numel())
            else:
                index = torch.randint(flat.numel(), (round(size * flat.numel() / total),), generator=generator)
                drawn = index.to(flat.device)
            if index.numel():
                buffers = self._buffers_for(flat.device, index.numel())
                # The sample's scores are not checked: split() checks every entry.
                scores.append(self._scores(i, drawn, buffers, []).cpu().clone())
                indices.append(index + self.offsets[i])
        if not scores:  # a sample smaller than the number of tensors may draw from none: the band then spans every key
            return torch.empty(0, dtype=self.dtype), torch.empty(0, dtype=torch.int64)
        return torch.cat(scores), torch.cat(indices)

    def split(self, lo: Key, hi: Key) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """One pass: masks of ``key > hi``, and positions and scores of ``lo <= key <= hi``."""
        masks, positions, scores = [], [], []
        for i, flat in enumerate(self.flats):
            mask = torch.empty_like(flat, dtype=torch.bool)
            in_band: list[Tensor] = [torch.empty(0, dtype=torch.int64, device=flat.device)]
            sums: list[Tensor] = []
            for start in range(0, flat.numel(), self.chunk_size):
                chunk = slice(start, min(start + self.chunk_size, flat.numel()))
                buffers = self._buffers_for(flat.device, chunk.stop - start)
                chunk_scores = self._scores(i, chunk, buffers, sums)
                above, at_least = buffers.above, buffers.at_least
                # Comparisons into float and one cast to bool are several times faster on
                # CPU than comparisons written straight to bool.
                first = self.offsets[i] + start
                _greater(chunk_scores, hi, first, out=above)
                mask[chunk].copy_(above)
                # key >= lo is key > (lo score, lo index - 1), global indices being integers.
                _greater(chunk_scores, (lo[0], lo[1] - 1), first, out=at_least).sub_(above)
                buffers.band.copy_(at_least)
                index = _nonzero(buffers.band_words())
                in_band.append(index + start)
                scores.append(chunk_scores[index])
            # A NaN score compares false with everything and would count as pruned.
            self._check_scores(i, sums)
            masks.append(mask)
            positions.append(torch.cat(in_band))
        all_scores = torch.cat([s.cpu() for s in scores]) if scores else torch.empty(0)
        return masks, positions, all_scores


class _Buffers:
    """Chunk-sized work buffers on one device; ``n`` is the length of the current chunk."""

    def __init__(self, capacity: int, device: torch.device, dtype: torch.dtype) -> None:
        self.capacity = capacity
        self.n = capacity
        padded = -(-capacity // 8) * 8  # room to read the band flags as whole 64-bit words
        self.scores = torch.empty(capacity, dtype=dtype, device=device)
        self._above = torch.empty(capacity, dtype=torch.float32, device=device)
        self._at_least = torch.empty(capacity, dtype=torch.float32, device=device)
        self.flags = torch.empty(capacity, dtype=torch.bool, device=device)
        self._band = torch.zeros(padded, dtype=torch.bool, device=device)

    @property
    def above(self) -> Tensor:
        return self._above[: self.n]

    @property
    def at_least(self) -> Tensor:
        return self._at_least[: self.n]

    @property
    def band(self) -> Tensor:
        return self._band[: self.n]

    def band_words(self) -> Tensor:
        """The band flags padded with False to a multiple of 8 entries."""
        padded = -(-self.n // 8) * 8
        self._band[self.n : padded] = False
        return self._band[:padded]


def _memory_order(tensor: Tensor) -> list[int]:
    """Dimensions from outermost to innermost in memory (``[0, 1, ...]`` when contiguous)."""
    return sorted(range(tensor.dim()), key=lambda d: -tensor.stride(d))


def _flat(tensor: Tensor, order: list[int]) -> Tensor:
    """``tensor``'s entries in the memory order ``order``: a view when its storage is dense."""
    return tensor.permute(order).reshape(-1)


def _unflat(flat: Tensor, like: Tensor, order: list[int]) -> Tensor:
    """Inverse of :func:`_flat`: ``flat`` shaped like ``like``, laid out like it in memory."""
    return flat.view([like.shape[d] for d in order]).permute([order.index(d) for d in range(like.dim())])


def _nonzero(flags: Tensor) -> Tensor:
    """Positions of the True entries of a sparse bool vector whose length is a multiple of 8.

    Scanning 64-bit words first and only the few non-zero words byte by byte is several
    times faster than ``flags.nonzero()`` when few entries are set.
    """
    words = flags.view(torch.int64).nonzero().view(-1)
    hits = flags.view(-1, 8)[words].nonzero()
    return words[hits[:, 0]] * 8 + hits[:, 1]


def _greater(scores: Tensor, key: Key, first: int, out: Tensor) -> Tensor:
    """Whether each entry's key is above ``key``, for scores at global indices ``first, first + 1, ...``:
    a higher score, or the same score at a later index."""
    value, index = key
    later = min(max(index + 1 - first, 0), scores.numel())  # entries from here on come after ``index``
    torch.gt(scores[:later], value, out=out[:later])
    torch.ge(scores[later:], value, out=out[later:])
    return out


def _band(scores: Tensor, index: Tensor, n_prune: int, total: int, sigmas: float) -> tuple[Key, Key]:
    """Key band around the ``n_prune``-th smallest key, read from the sample's scores and global
    indices (``sigmas=0``: the sample is every entry and the band is the exact threshold)."""
    # Every real score is above -inf; entries already pruned score -inf and sort below ``lowest``.
    lowest, highest = (-math.inf, total), (math.inf, total)
    if math.isinf(sigmas):
        return lowest, highest
    size = scores.numel()
    if sigmas == 0:
        lo = hi = _kth(scores, index, n_prune - 1)
    else:
        fraction = n_prune / total
        centre = fraction * size
        half = sigmas * math.sqrt(size * fraction * (1 - fraction)) + 1
        lo_rank, hi_rank = math.floor(centre - half), math.ceil(centre + half)
        lo = _kth(scores, index, lo_rank) if lo_rank >= 0 else lowest
        hi = _kth(scores, index, hi_rank) if hi_rank < size else highest
    return max(lo, lowest), max(hi, lowest)


def _kth(scores: Tensor, index: Tensor, rank: int) -> Key:
    """The key of 0-based ``rank`` in ascending (score, index) order (a selection, not a sort)."""
    value = scores.kthvalue(rank + 1).values
    tied = index[scores == value]
    return float(value), int(tied.kthvalue(rank + 1 - int((scores < value).sum())).values)


def _switch_on_band(masks: list[Tensor], positions: list[Tensor], scores: Tensor, rank: int) -> None:
    """Keep band entries above the rank-th band score and ties past the first pruned ones."""
    threshold = scores.kthvalue(rank).values
    keep = scores > threshold
    ties = (scores == threshold).nonzero().view(-1)
    n_tied_pruned = rank - int((scores < threshold).sum())
    keep[ties[n_tied_pruned:]] = True
    start = 0
    for mask, position in zip(masks, positions):
        stop = start + position.numel()
        kept = keep[start:stop].to(position.device)
        mask[position[kept]] = True
        start = stop
