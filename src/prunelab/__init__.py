"""prunelab: magnitude pruning done right, on PyTorch.

Here: ``Pruner`` (unstructured masks, kept through training by ``attach``), ``ChannelPruner``
(whole channels, ``shrink()`` to a small dense model), the criteria and the exact selection.
In the subpackages: ``schedules`` (GMP's sparsity, LR schedules, the retraining policies),
``analysis`` (MACs and speedup, LR range test, sensitivity, trainability, instability),
``models`` and ``data`` (registries), ``config`` (recipes) and ``runs`` (the experiment
harness the command line runs), ``report`` (tables and plots of finished runs).

>>> import prunelab as pl
>>> from torch import nn
>>> pruner = pl.Pruner(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)))
>>> _ = pruner.prune(0.75)
>>> pruner.sparsity()
0.75
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# The public names, by the module defining them: imported on first use, so that the command
# line's help answers without loading torch.
_EXPORTS = {
    "CRITERIA": "prunelab.criteria", "Magnitude": "prunelab.criteria", "Random": "prunelab.criteria",
    "get_criterion": "prunelab.criteria", "Pruner": "prunelab.masks", "find_prunable": "prunelab.masks",
    "select": "prunelab.masks", "ChannelPruner": "prunelab.structured",
}  # fmt: skip

__all__ = ["CRITERIA", "ChannelPruner", "Magnitude", "Pruner", "Random", "find_prunable", "get_criterion", "select"]

if TYPE_CHECKING:
    from prunelab.criteria import CRITERIA, Magnitude, Random, get_criterion
    from prunelab.masks import Pruner, find_prunable, select
    from prunelab.structured import ChannelPruner


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:  # a subpackage not imported yet, e.g. prunelab.models.register(...)
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'prunelab' has no attribute {name!r}") from None
    globals()[name] = value  # once: later lookups find it directly
    return value


#: The subpackages, reachable as attributes (``prunelab.schedules``) before they are imported
#: (``recipes`` holds the built-in recipes' YAML, no code).
SUBPACKAGES = tuple(module.name for module in pkgutil.iter_modules(__path__) if module.ispkg and module.name != "recipes")


def __dir__() -> list[str]:
    return sorted({*__all__, *SUBPACKAGES, "__version__"})
