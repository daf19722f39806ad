"""Elementwise importance criteria: one score per weight, larger means more important.

A criterion is called on runs of one flattened tensor so that the engine can stream
over a model without holding a score copy of it. The contract is small::

    class Criterion:
        def __call__(self, name, values, positions, out) -> Tensor: ...

``values`` are entries of the flattened weight ``name`` (flattened in memory order, which
is the usual row-major order unless the tensor is stored otherwise, e.g. channels_last) at
``positions`` (a ``slice`` of the flat index range, or an int64 tensor of flat indices).
The scores are written to ``out`` (same length; float32, or float64 when the tensors
selected together include a float64 one) and returned. Scores must depend only on the name,
the value and the position, so that the same entry always gets the same score, and must be
numbers above -inf: NaN and -inf are errors (-inf marks entries already pruned), except for
entries already pruned, whose scores are not read (their weights are zero, which e.g. log |w|
scores -inf).

Any callable of that form serves as ``Pruner.prune(..., criterion=...)``. For example,
magnitude relative to the layer's RMS, so that a global ranking compares layers on one scale:

>>> import torch, prunelab as pl
>>> from torch import nn
>>> class RelativeMagnitude:
...     def __init__(self, model):
...         self.rms = {n: float(p.detach().pow(2).mean().sqrt()) for n, p in model.named_parameters()}
...     def __call__(self, name, values, positions, out):
...         return out.copy_(values).abs_().div_(self.rms[name])
>>> def two_scales():  # the last layer's weights 100 times larger than the first's
...     model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
...     with torch.no_grad():
...         _ = model[2].weight.mul_(100)
...     return model
>>> _ = torch.manual_seed(0)  # the random first layer's weights, all below the last layer's
>>> magnitude, relative = pl.Pruner(two_scales()), pl.Pruner(model := two_scales())
>>> _ = magnitude.prune(0.5)
>>> _ = relative.prune(0.5, criterion=RelativeMagnitude(model))
>>> magnitude.layer_sparsity()  # all 40 pruned weights from the first layer
{'0.weight': 0.625, '2.weight': 0.0}
>>> relative.layer_sparsity()["2.weight"] > 0
True
"""

from __future__ import annotations

import numbers
import zlib
from typing import Protocol

import torch
from torch import Tensor

Positions = slice | Tensor


class Criterion(Protocol):
    """Scores of weights, larger kept: ``values`` of the tensor ``name`` at ``positions``,
    written to ``out`` and returned (the contract in full is in this module's docstring)."""

    def __call__(self, name: str, values: Tensor, positions: Positions, out: Tensor) -> Tensor: ...


class Magnitude:
    """|w|: the magnitude pruning criterion.

    >>> Magnitude()("fc.weight", torch.tensor([-3.0, 1.0]), slice(0, 2), torch.empty(2))
    tensor([3., 1.])
    """

    def __call__(self, name: str, values: Tensor, positions: Positions, out: Tensor) -> Tensor:
        if values.dtype != out.dtype:  # float16 / bfloat16 weights: widen exactly, then |.|
            return out.copy_(values).abs_()
        return torch.abs(values, out=out)

    def __repr__(self) -> str:
        return "Magnitude()"


# Odd multipliers below 2**63 (splitmix64-style mixing); int64 products wrap around.
_MIX1 = 0x632BE59BD9B4E019
_MIX2 = 0x5851F42D4C957F2D
_LOW33 = (1 << 33) - 1
_LOW31 = (1 << 31) - 1


def check_seed(seed: object) -> int:
    """``seed`` as a Python int (numpy's integers too) of 64 bits, as the random criteria hash
    it; anything else is a TypeError, a larger int a ValueError."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if not -(2**63) <= seed < 2**63:
        raise ValueError(f"seed must fit in 64 bits, in [-2**63, 2**63), got {seed}")
    return int(seed)


class Random:
    """Uniform random scores in [0, 1), fixed by ``seed``, the tensor name and the position.

    The score is a hash rather than a draw from a generator, so any run of positions can be
    scored on its own and the same weight always gets the same score: the engine may score a
    sample first and the whole tensor later. Global scope with this criterion is the seeds'
    global random baseline; per-layer ratios with it are the "preserve LPR" random baseline.

    >>> a = Random(0)("w", torch.zeros(4), slice(0, 4), torch.empty(4))
    >>> b = Random(0)("w", torch.zeros(2), slice(2, 4), torch.empty(2))
    >>> bool(torch.equal(a[2:], b))
    True
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = check_seed(seed)  # else None, 1.0 or True would hash as text, each its own mask

    def __call__(self, name: str, values: Tensor, positions: Positions, out: Tensor) -> Tensor:
        if isinstance(positions, slice):
            positions = torch.arange(positions.start, positions.stop, device=values.device)
        key = zlib.crc32(f"{self.seed}:{name}".encode()) * 0x9E3779B97F4A7C15 % (1 << 63)
        x = positions.to(torch.int64) * _MIX2 + key
        # Logical right shifts emulated with masks, since int64 >> is arithmetic in torch.
        x = (x ^ ((x >> 31) & _LOW33)) * _MIX1
        x = x ^ ((x >> 33) & _LOW31)
        # 24 random bits make an exactly representable float32 in [0, 1).
        return torch.mul((x >> 20) & 0xFFFFFF, 2.0**-24, out=out)

    def __repr__(self) -> str:
        return f"Random(seed={self.seed})"
