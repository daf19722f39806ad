"""Analyses of trained and pruned models."""

from prunelab.analysis.flops import count_macs, speedup
from prunelab.analysis.instability import Interpolation, interpolate
from prunelab.analysis.lr_range import LRRangeResult, check_lr_range, lr_range_test
from prunelab.analysis.sensitivity import (
    DEFAULT_SPARSITIES,
    LayerSensitivity,
    SensitivityResult,
    check_sparsities,
    max_sparsity_within,
    percent_labels,
    pruning_sensitivity,
)
from prunelab.analysis.trainability import first_lr_stage, trainability_accuracy

__all__ = [
    "DEFAULT_SPARSITIES", "Interpolation", "LRRangeResult", "LayerSensitivity", "SensitivityResult", "check_lr_range",
    "check_sparsities", "count_macs", "first_lr_stage", "interpolate", "lr_range_test", "max_sparsity_within",
    "percent_labels", "pruning_sensitivity", "speedup", "trainability_accuracy",
]  # fmt: skip
