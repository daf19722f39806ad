"""prunelab: magnitude pruning done right, on PyTorch.

>>> import prunelab as pl
>>> from torch import nn
>>> pruner = pl.Pruner(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)))
>>> _ = pruner.prune(0.75)
>>> pruner.sparsity()
0.75
"""

from prunelab.criteria import CRITERIA, Magnitude, Random, get_criterion
from prunelab.masks import Pruner, find_prunable, select
from prunelab.structured import ChannelPruner

__version__ = "0.1.0"

__all__ = ["CRITERIA", "ChannelPruner", "Magnitude", "Pruner", "Random", "find_prunable", "get_criterion", "select"]
