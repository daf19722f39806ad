"""Analyses of trained and pruned models."""

from prunelab.analysis.flops import count_macs, speedup
from prunelab.analysis.instability import Interpolation, interpolate
from prunelab.analysis.lr_range import LRRangeResult, check_lr_range, lr_range_test
from prunelab.analysis.trainability import first_lr_stage, trainability_accuracy

__all__ = [
    "Interpolation", "LRRangeResult", "check_lr_range", "count_macs", "first_lr_stage", "interpolate",
    "lr_range_test", "speedup", "trainability_accuracy",
]  # fmt: skip
