"""Masks: which weights are prunable, exact selection of the pruned ones, and enforcement."""

from prunelab.masks.pruner import Pruner
from prunelab.masks.selection import select
from prunelab.masks.targets import PRUNABLE_MODULES, find_prunable, matches

__all__ = ["PRUNABLE_MODULES", "Pruner", "find_prunable", "matches", "select"]
