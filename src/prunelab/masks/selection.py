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
flat index), so the count is exact and the result deterministic. If the band misses (rare),
it is widened and the pass repeated; the last widening spans every value, so it cannot miss.
Extra memory is a few chunk buffers plus the band (about 0.5% of the entries).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from prunelab.criteria import Criterion

CHUNK_SIZE = 1 << 20
SAMPLE_SIZE = 1 << 18
# Band half-widths in standard deviations of the sample rank; the last one takes every value.
BAND_SIGMAS = (4.0, 16.0, math.inf)
_LOWEST = torch.finfo(torch.float32).min


def select(
    weights: Mapping[str, Tensor],
    n_prune: int,
    criterion: Criterion,
    prior: Mapping[str, Tensor] | None = None,
    *,
    seed: int = 0,
    chunk_size: int = CHUNK_SIZE,
    sample_size: int = SAMPLE_SIZE,
) -> dict[str, Tensor]:
    """Bool masks (True = kept) pruning exactly ``n_prune`` entries of ``weights`` in total.

    The pruned entries are those with the lowest scores; entries already pruned in
    ``prior`` (same names, bool, True = kept) stay pruned and count toward ``n_prune``.
    ``seed`` only fixes the sample, never the result.

    >>> from prunelab.criteria import Magnitude
    >>> w = {"a": torch.tensor([0.5, -2.0, 1.0]), "b": torch.tensor([1.0, 0.1])}
    >>> {k: m.tolist() for k, m in select(w, 3, Magnitude()).items()}  # the first tied 1.0 goes
    {'a': [False, True, False], 'b': [True, False]}
    """
    names = list(weights)
    flats = [weights[name].detach().reshape(-1) for name in names]
    priors = [None if prior is None else prior[name].reshape(-1) for name in names]
    total = sum(f.numel() for f in flats)
    already = sum(p.numel() - int(p.count_nonzero()) for p in priors if p is not None)
    if not already <= n_prune <= total:
        raise ValueError(f"cannot prune {n_prune} entries: {already} are already pruned of {total}")
    if n_prune == already:
        return {
            name: torch.ones_like(f, dtype=torch.bool).view_as(weights[name]) if p is None
            else p.clone().view_as(weights[name])
            for name, f, p in zip(names, flats, priors)
        }

    stream = _Stream(names, flats, priors, criterion, chunk_size)
    exact = total <= sample_size
    ranked = stream.sample(sample_size, seed, exact)
    for sigmas in BAND_SIGMAS:
        lo, hi = _band(ranked, n_prune, total, 0.0 if exact else sigmas)
        masks, positions, scores = stream.split(lo, hi)
        below = total - sum(int(m.count_nonzero()) for m in masks) - scores.numel()
        rank = n_prune - below  # 1-based rank of the threshold inside the band
        if 1 <= rank <= scores.numel():
            _switch_on_band(masks, positions, scores, rank)
            return {name: m.view_as(weights[name]) for name, m in zip(names, masks)}
    raise ValueError("the scores contain NaN: are some weights not finite?")


class _Stream:
    """Scores of the flattened tensors, read in chunks through reusable buffers."""

    def __init__(self, names, flats, priors, criterion: Criterion, chunk_size: int) -> None:
        self.names, self.flats, self.priors = names, flats, priors
        self.criterion = criterion
        self.chunk_size = chunk_size
        self._buffers: dict[torch.device, _Buffers] = {}

    def _scores(self, i: int, positions: slice | Tensor, buffers: _Buffers) -> Tensor:
        n = buffers.n
        scores = self.criterion(self.names[i], self.flats[i][positions], positions, buffers.scores[:n])
        if self.priors[i] is not None:
            pruned = torch.logical_not(self.priors[i][positions], out=buffers.flags[:n])
            scores.masked_fill_(pruned, -math.inf)
        return scores

    def _buffers_for(self, device: torch.device, n: int) -> _Buffers:
        buffers = self._buffers.get(device)
        if buffers is None or buffers.capacity < n:
            buffers = self._buffers[device] = _Buffers(n, device)
        buffers.n = n
        return buffers

    def sample(self, size: int, seed: int, exact: bool) -> Tensor:
        """Scores of every entry if ``exact``, else of about ``size`` entries drawn uniformly
        within each tensor in proportion to its size (stratified sampling)."""
        total = sum(f.numel() for f in self.flats)
        generator = torch.Generator().manual_seed(seed)
        parts = []
        for i, flat in enumerate(self.flats):
            if exact:
                drawn: slice | Tensor = slice(0, flat.numel())
                n = flat.numel()
            else:
                n = round(size * flat.numel() / total)
                drawn = torch.randint(flat.numel(), (n,), generator=generator).to(flat.device)
            if n:
                parts.append(self._scores(i, drawn, self._buffers_for(flat.device, n)).cpu().clone())
        return torch.cat(parts)

    def split(self, lo: float, hi: float) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """One pass: masks of ``score > hi``, and positions and scores of ``lo <= score <= hi``."""
        masks, positions, scores = [], [], []
        for i, flat in enumerate(self.flats):
            mask = torch.empty_like(flat, dtype=torch.bool)
            in_band = []
            for start in range(0, flat.numel(), self.chunk_size):
                chunk = slice(start, min(start + self.chunk_size, flat.numel()))
                buffers = self._buffers_for(flat.device, chunk.stop - start)
                chunk_scores = self._scores(i, chunk, buffers)
                above, at_least = buffers.above, buffers.at_least
                # Comparisons into float and one cast to bool are several times faster on
                # CPU than comparisons written straight to bool.
                torch.gt(chunk_scores, hi, out=above)
                mask[chunk].copy_(above)
                torch.ge(chunk_scores, lo, out=at_least).sub_(above)
                buffers.band.copy_(at_least)
                index = _nonzero(buffers.band_words())
                in_band.append(index + start)
                scores.append(chunk_scores[index])
            masks.append(mask)
            positions.append(torch.cat(in_band))
        all_scores = torch.cat([s.cpu() for s in scores]) if scores else torch.empty(0)
        return masks, positions, all_scores


class _Buffers:
    """Chunk-sized work buffers on one device; ``n`` is the length of the current chunk."""

    def __init__(self, capacity: int, device: torch.device) -> None:
        self.capacity = capacity
        self.n = capacity
        padded = -(-capacity // 8) * 8  # room to read the band flags as whole 64-bit words
        self.scores = torch.empty(capacity, dtype=torch.float32, device=device)
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


def _nonzero(flags: Tensor) -> Tensor:
    """Positions of the True entries of a sparse bool vector whose length is a multiple of 8.

    Scanning 64-bit words first and only the few non-zero words byte by byte is several
    times faster than ``flags.nonzero()`` when few entries are set.
    """
    words = flags.view(torch.int64).nonzero().view(-1)
    hits = flags.view(-1, 8)[words].nonzero()
    return words[hits[:, 0]] * 8 + hits[:, 1]


def _band(ranked: Tensor, n_prune: int, total: int, sigmas: float) -> tuple[float, float]:
    """Score band around the ``n_prune``-th smallest score, read from the sample scores
    (``sigmas=0``: the sample is every score and the band is the exact threshold)."""
    if math.isinf(sigmas):
        return _LOWEST, math.inf
    size = ranked.numel()
    if sigmas == 0:
        lo = hi = _kth(ranked, n_prune - 1)
    else:
        fraction = n_prune / total
        centre = fraction * size
        half = sigmas * math.sqrt(size * fraction * (1 - fraction)) + 1
        lo_rank, hi_rank = math.floor(centre - half), math.ceil(centre + half)
        lo = _kth(ranked, lo_rank) if lo_rank >= 0 else _LOWEST
        hi = _kth(ranked, hi_rank) if hi_rank < size else math.inf
    # Already-pruned entries score -inf and are always below the band, never in it.
    return max(lo, _LOWEST), max(hi, _LOWEST)


def _kth(scores: Tensor, rank: int) -> float:
    """The score of 0-based ``rank`` in ascending order (a selection, not a sort)."""
    return float(scores.kthvalue(rank + 1).values)


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
