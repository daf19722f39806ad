"""Pruning methods: functions of a :class:`~prunelab.runs.session.Session` that drive training.

Each takes the session of one seed and returns the fields it adds to the seed's
``summary.json`` (``dense_acc``, ``pruned_acc``, ``final_acc``, ...). It changes the model only
through ``session.train`` and ``session.once``, so that a resumed run can replay it from the top.
"""

from prunelab.methods.gmp import gmp
from prunelab.methods.imp import bimp, imp
from prunelab.methods.oneshot import oneshot

METHODS = {"oneshot": oneshot, "gmp": gmp, "imp": imp, "bimp": bimp}

__all__ = ["METHODS", "bimp", "gmp", "imp", "oneshot"]
