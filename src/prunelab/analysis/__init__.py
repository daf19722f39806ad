"""Analyses of trained and pruned models."""

from prunelab.analysis.lr_range import LRRangeResult, check_lr_range, lr_range_test

__all__ = ["LRRangeResult", "check_lr_range", "lr_range_test"]
