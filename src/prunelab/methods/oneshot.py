"""One-shot pruning: train (H_find), prune once to the target, retrain (H_eval)."""

from __future__ import annotations

from prunelab.methods.common import find, prune, pruning_outcome, retrain
from prunelab.runs.session import Session


def oneshot(session: Session) -> dict:
    """Train densely (H_find), prune once to the recipe's sparsity, retrain (H_eval)."""
    found = find(session)
    pruned = prune(session, "prune", sparsity=session.recipe.prune.sparsity)
    evaluated = retrain(session, "eval", found, pruned)
    return {"dense_acc": found["dense_acc"], **pruning_outcome(pruned, evaluated)}
