"""Analyses of trained and pruned models."""

from prunelab.analysis.lr_range import LRRangeResult, lr_range_test

__all__ = ["LRRangeResult", "lr_range_test"]
