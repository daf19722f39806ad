"""Iterative magnitude pruning (seeds 002, 003) and budgeted IMP (BIMP, seed 003).

IMP prunes ``rate`` of the remaining weights per level (globally or in every layer), and
retrains after each level with H_eval, after rewinding as ``eval.rewind`` says: to the
initialisation (lottery ticket), to epoch/step K of the find phase (late rewinding), or not
at all (fine-tuning, or LR rewinding with ``eval.lr_policy: lrw``). Without ``levels`` it
runs until ``sparsity``; the last level stops exactly there. One Shot IMP is ``levels: 1``
with ``rate`` equal to the target.

With ``prune.masks_from: find`` (seed 002, Algorithm A1) the next level prunes not the
retrained weights but those of a new H_find training of the masked model, after the same
rewinding; each level's retraining with H_eval only evaluates its mask.
"""

from __future__ import annotations

from prunelab.config.schema import EvalConfig
from prunelab.methods.common import (
    find,
    late_rewinding,
    prune,
    pruning_outcome,
    retrain,
    rewind,
    train_find,
)
from prunelab.runs.session import Session
from prunelab.schedules import imp_levels, imp_sparsity


def level_targets(rate: float, target: float, levels: int | None) -> list[float]:
    """Sparsity after each level: ``1 - (1 - rate) ** level``; without ``levels``, as many
    levels as reach ``target``, the last one capped at it.

    >>> [round(s, 3) for s in level_targets(0.2, 0.6, None)]
    [0.2, 0.36, 0.488, 0.59, 0.6]
    >>> level_targets(0.5, 0.6, 3)
    [0.5, 0.75, 0.875]
    """
    if levels is not None:
        return [imp_sparsity(level, rate) for level in range(1, levels + 1)]
    return [min(target, imp_sparsity(level, rate)) for level in range(1, imp_levels(target, rate) + 1)]


def imp(session: Session) -> dict:
    """After the find phase, each level prunes a share of the remaining weights, then rewinds
    and retrains as the recipe's eval section says."""
    return _iterate(session, find(session), session.recipe.eval)


def _iterate(session: Session, found: dict, eval_config: EvalConfig, epochs_per_level: list[int] | None = None) -> dict:
    spec = session.recipe.prune
    targets = level_targets(spec.rate, spec.sparsity, spec.levels)
    levels = []
    for level, target in enumerate(targets, start=1):
        if spec.masks_from == "find" and level > 1:
            find_again(session, level)
        pruned = prune(session, f"level-{level}/prune", sparsity=target)
        if spec.masks_from == "find" and session.recipe.eval.rewind == "none" and level < len(targets):
            keep_pruned_weights(session, level)
        config = eval_config if epochs_per_level is None else eval_config.model_copy(
            update={"epochs": epochs_per_level[level - 1]}
        )
        evaluated = retrain(session, f"level-{level}/eval", found, pruned, config)
        outcome = pruning_outcome(pruned, evaluated)
        budget = {} if epochs_per_level is None else {"epochs": config.epochs}  # BIMP's share of its budget
        levels.append({"level": level, "sparsity": pruned["sparsity"], **budget, **outcome})
    return {"dense_acc": found["dense_acc"], **outcome, "levels": levels}


def keep_pruned_weights(session: Session, level: int) -> None:
    """Keep the weights just pruned at ``level``: with ``eval.rewind: none`` the next level's
    H_find training continues from them, not from what the evaluation trained (and deletes them
    once restored)."""

    def keep() -> dict:
        session.save_weights(f"level-{level}-pruned")
        return {}

    session.once(f"level-{level}/keep", keep)


def find_again(session: Session, level: int) -> dict:
    """Seed 002, Algorithm A1, lines 6 and 4 for ``level``: rewind as ``eval.rewind`` says
    (to the initialisation, also for ``reinit``, whose new weights only evaluate masks; to
    epoch/step K of the find phase and its LR position there; with ``none``, to the weights
    pruned at the previous level), then train the masked model with H_find. Its weights
    are the ones this level prunes."""
    recipe = session.recipe
    phase = f"level-{level}/find"

    def restore() -> dict:
        if recipe.eval.rewind == "reinit":
            session.load_weights("init")
        elif not rewind(session, recipe.eval.rewind):
            session.load_weights(f"level-{level - 1}-pruned")
        return {"rewind": recipe.eval.rewind}

    session.once(f"{phase}/rewind", restore)
    if recipe.eval.rewind == "none":  # restored: the weights pruned at the previous level have served
        session.drop_weights([f"level-{level - 1}-pruned"])
    rewinding = late_rewinding(recipe.find_training, recipe.eval, len(session.data.x_train))
    return train_find(session, phase, start_step=0 if rewinding is None else rewinding[0])


def bimp(session: Session) -> dict:
    """Train ``initial_epochs`` with a linear LR schedule (see ``Recipe.find_training``), then IMP with
    ALLR (``Recipe.eval_training``) over the rest of ``budget_epochs``, split evenly over the levels (earlier levels get
    the remainder). Seed 003 writes T both for the original training and for the whole
    budget; ALLR's d2 = T_rt / T takes the original training, the initial epochs, whose LR
    log is the one ALLR reads."""
    spec = session.recipe.prune
    count = spec.level_count
    remaining = spec.budget_epochs - spec.initial_epochs  # >= count: checked by the recipe schema
    per_level = [remaining // count + (1 if i < remaining % count else 0) for i in range(count)]
    return _iterate(session, find(session), session.recipe.eval_training, per_level)
