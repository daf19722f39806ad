"""Pruning methods: functions of a :class:`~prunelab.runs.session.Session` that drive training."""

from prunelab.methods.gmp import gmp
from prunelab.methods.imp import bimp, imp
from prunelab.methods.oneshot import oneshot

METHODS = {"oneshot": oneshot, "gmp": gmp, "imp": imp, "bimp": bimp}

__all__ = ["METHODS", "bimp", "gmp", "imp", "oneshot"]
