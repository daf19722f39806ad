"""Iterative magnitude pruning (seeds 002, 003) and budgeted IMP (BIMP, seed 003).

IMP prunes ``rate`` of the remaining weights per level (globally or in every layer), and
retrains after each level with H_eval, after rewinding as ``eval.rewind`` says: to the
initialisation (lottery ticket), to epoch/step K of the find phase (late rewinding), or not
at all (fine-tuning, or LR rewinding with ``eval.lr_policy: lrw``). Without ``levels`` it
runs until ``sparsity``; the last level stops exactly there. One Shot IMP is ``levels: 1``
with ``rate`` equal to the target.
"""

from __future__ import annotations

from prunelab.config.schema import EvalConfig
from prunelab.methods.common import find, prune, retrain
from prunelab.runs.session import Session
from prunelab.schedules import imp_levels, imp_sparsity


def level_targets(rate: float, target: float, levels: int | None) -> list[float]:
    """Sparsity after each level: ``1 - (1 - rate) ** level``, capped at ``target``.

    >>> [round(s, 3) for s in level_targets(0.2, 0.6, None)]
    [0.2, 0.36, 0.488, 0.59, 0.6]
    >>> level_targets(0.5, 0.99, 2)
    [0.5, 0.75]
    """
    count = imp_levels(target, rate) if levels is None else levels
    return [min(target, imp_sparsity(level, rate)) for level in range(1, count + 1)]


def imp(session: Session) -> dict:
    return _iterate(session, find(session), session.recipe.eval)


def _iterate(session: Session, found: dict, eval_config: EvalConfig, epochs_per_level: list[int] | None = None) -> dict:
    spec = session.recipe.prune
    if spec.scope == "ratios":
        raise ValueError("prune.scope: imp prunes with scope global or layerwise, not ratios")
    targets = level_targets(spec.rate, spec.sparsity, spec.levels)
    levels = []
    for level, target in enumerate(targets, start=1):
        pruned = prune(session, f"level-{level}/prune", sparsity=target)
        config = eval_config if epochs_per_level is None else eval_config.model_copy(
            update={"epochs": epochs_per_level[level - 1]}
        )
        evaluated = retrain(session, f"level-{level}/eval", found, pruned, config)
        history = evaluated["history"]
        levels.append({
            "level": level,
            "sparsity": pruned["sparsity"],
            "pruned_acc": pruned["test_acc_after_prune"],
            "final_acc": history[-1]["test_acc"] if history else pruned["test_acc_after_prune"],
        })
    return {
        "dense_acc": found["history"][-1]["test_acc"] if found["history"] else None,
        "pruned_acc": levels[-1]["pruned_acc"],
        "final_acc": levels[-1]["final_acc"],
        "levels": levels,
    }


def bimp(session: Session) -> dict:
    """Train ``initial_epochs`` with a linear LR schedule (see ``find_config``), then IMP with
    ALLR over the rest of ``budget_epochs``, split evenly over the levels (earlier levels get
    the remainder)."""
    spec, recipe = session.recipe.prune, session.recipe
    if recipe.eval.lr_policy not in (None, "allr") or recipe.eval.rewind != "none":
        raise ValueError("bimp retrains with eval.lr_policy allr and eval.rewind none; leave them unset or set so")
    eval_config = recipe.eval.model_copy(update={"lr_policy": "allr"})
    count = len(level_targets(spec.rate, spec.sparsity, spec.levels))
    remaining = spec.budget_epochs - spec.initial_epochs
    if remaining < count:
        raise ValueError(
            f"prune.budget_epochs - prune.initial_epochs = {remaining} epochs cannot cover {count} levels"
        )
    per_level = [remaining // count + (1 if i < remaining % count else 0) for i in range(count)]
    return _iterate(session, find(session), eval_config, per_level)
