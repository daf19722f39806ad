"""Pruning methods: functions of a :class:`~prunelab.runs.session.Session` that drive training."""

from prunelab.methods.oneshot import oneshot

METHODS = {"oneshot": oneshot}

__all__ = ["METHODS", "oneshot"]
