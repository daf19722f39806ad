"""Gradual magnitude pruning (seeds 000 and 001): stabilization, pruning, fine-tuning.

After the find phase, the eval phase runs three stages back to back: ``stabilization_epochs``
at the pruning LR with the model dense; ``pruning_epochs`` during which the sparsity rises
from ``init_sparsity`` to the target (with ``scope: ratios``, in each layer to its ratio)
along the cubic (or linear) schedule, updated ``updates_per_epoch`` times an epoch; and
fine-tuning at the final sparsity for the rest of the eval phase, where the eval LR
schedule should step down (e.g. multistep milestones there) and weight decay is off unless
``finetune_weight_decay``.
"""

from __future__ import annotations

import dataclasses

from prunelab.analysis.trainability import trainability_accuracy
from prunelab.config import Recipe
from prunelab.methods.common import epoch_steps, find, steps_per_epoch
from prunelab.runs.session import Session
from prunelab.schedules import Polynomial
from prunelab.train import Trainer
from prunelab.wording import counted

MIN_UPDATES = 30  # seed 000: "a minimum of 30 steps is a good rule"


def gmp_schedule(recipe: Recipe, train_size: int) -> Polynomial:
    """The sparsity schedule of the eval phase, in optimizer steps over ``train_size``
    training examples: ``pruning_epochs * updates_per_epoch`` updates (at most one a step)
    spread evenly over the pruning stage, the first at its start, the last (the target) one
    spacing before fine-tuning starts. With ``scope: ratios``, ``prune.sparsity`` is not read:
    the schedule stays at ``init_sparsity``, a template of steps and shape for
    :func:`layer_schedules`."""
    spec = recipe.prune
    steps = epoch_steps(train_size, recipe.eval.batch_size)
    begin, stage = spec.stabilization_epochs * steps, spec.pruning_epochs * steps
    updates = min(spec.pruning_epochs * spec.updates_per_epoch, stage)
    # Spread by integer division, not at a rounded interval, so that exactly this many fit.
    # The last update (the target) lies about one spacing before fine-tuning starts, inside
    # the pruning stage: the accuracy recorded at its end is at the final sparsity, and a
    # recipe without fine-tuning epochs still ends exactly at the target.
    return Polynomial(
        initial=spec.init_sparsity,
        final=spec.init_sparsity if spec.scope == "ratios" else spec.sparsity,
        update_steps=[begin + update * stage // updates for update in range(updates)],
        exponent=3 if spec.schedule == "cubic" else 1,
    )


def layer_schedules(session: Session, schedule: Polynomial) -> dict[str, Polynomial]:
    """With ``scope: ratios``, each named layer's own schedule: the same steps and shape,
    from ``init_sparsity`` (or the layer's ratio, if lower) to the layer's ratio (seed 000's
    sparsity per layer). Empty for the other scopes."""
    spec = session.recipe.prune
    if spec.scope != "ratios":
        return {}
    return {
        name: dataclasses.replace(schedule, initial=min(spec.init_sparsity, ratio), final=ratio)
        for name, ratio in session.pruner.named_ratios(spec.ratios).items()
    }


def planned_sparsity(session: Session, schedule: Polynomial, layers: dict[str, Polynomial], step: int) -> float:
    """The sparsity of all prunable weights after the update at ``step`` (``layers``: from
    :func:`layer_schedules`)."""
    if not layers:
        return schedule(step)
    sizes = {name: p.numel() for name, p in session.pruner.parameters.items()}
    return sum(layers[name](step) * sizes[name] for name in layers) / sum(sizes.values())


def finetune_epoch(session: Session) -> int:
    """The first epoch of the fine-tuning stage (counted from 0)."""
    return session.recipe.prune.stabilization_epochs + session.recipe.prune.pruning_epochs


def finetune_step(session: Session) -> int:
    """The first optimizer step of the fine-tuning stage."""
    return finetune_epoch(session) * steps_per_epoch(session, session.recipe.eval.batch_size)


def check_update_frequency(recipe: Recipe, train_size: int) -> list[str]:
    """Seed 000's guidance on the pruning update frequency: the warnings it gives, before any
    training."""
    spec, steps = recipe.prune, gmp_schedule(recipe, train_size).update_steps
    epoch = epoch_steps(train_size, recipe.eval.batch_size)
    messages = []
    if len(steps) < MIN_UPDATES:
        # More updates an epoch help only if the fewest that reach MIN_UPDATES leave a step between two of them:
        # a stage of more than MIN_UPDATES steps is not enough (4 epochs of 8 steps hold 28, then 32 every batch).
        needed = -(-MIN_UPDATES // spec.pruning_epochs)
        more = recipe.model_copy(update={"prune": spec.model_copy(update={"updates_per_epoch": needed})})
        remedy = (
            "raise prune.updates_per_epoch or prune.pruning_epochs" if not _every_batch(gmp_schedule(more, train_size).update_steps)
            else f"raise prune.pruning_epochs: {counted(spec.pruning_epochs, 'epoch')} of "
            f"{counted(epoch, 'step')} cannot hold {MIN_UPDATES} updates without one every batch"
        )
        messages.append(
            f"the pruning stage has only {counted(len(steps), 'sparsity update')}; at least "
            f"{MIN_UPDATES} are recommended ({remedy})"
        )
    if spec.updates_per_epoch > epoch:
        messages.append(
            f"prune.updates_per_epoch={spec.updates_per_epoch} asks for more updates than an epoch has steps ({epoch}): "
            f"the sparsity is updated after every batch ({counted(len(steps), 'update')}), which gives the network no time to "
            "recover between cuts; lower prune.updates_per_epoch"
        )
    elif _every_batch(steps):
        messages.append(
            "the sparsity is updated after every batch, which gives the network no time to recover "
            "between cuts; lower prune.updates_per_epoch"
        )
    return messages


def _every_batch(steps: tuple[int, ...]) -> bool:
    """Whether no step lies between any two of the update ``steps``."""
    return len(steps) > 1 and steps[-1] - steps[0] == len(steps) - 1


class GradualPruning:
    """Step hook: prune to the schedule's target at its update steps, and turn weight decay
    off once fine-tuning starts (every step, so a resumed run gets it too)."""

    def __init__(self, session: Session, schedule: Polynomial, layers: dict[str, Polynomial]) -> None:
        self.session, self.schedule, self.layers = session, schedule, layers
        self.updates = set(schedule.update_steps)
        self.finetune_step = finetune_step(session)
        self.weight_decay_off = not session.recipe.prune.finetune_weight_decay

    def __call__(self, trainer: Trainer, step: int) -> None:
        if step in self.updates:
            if self.layers:
                self.session.pruner.prune(ratios={name: layer(step) for name, layer in self.layers.items()})
            else:
                self.session.pruner.prune(self.schedule(step), scope=self.session.recipe.prune.scope)
        if self.weight_decay_off and step >= self.finetune_step:
            for group in trainer.optimizer.param_groups:
                group["weight_decay"] = 0.0


def gmp(session: Session) -> dict:
    """Seed 000/001's gradual magnitude pruning: the dense find phase, then one eval phase that
    stabilizes, prunes along the cubic schedule at its update steps and fine-tunes."""
    found = find(session)
    schedule = gmp_schedule(session.recipe, len(session.data.x_train))
    layers = layer_schedules(session, schedule)
    planned = session.once("gmp/plan", lambda: {
        "update_steps": list(schedule.update_steps),
        "sparsity": [planned_sparsity(session, schedule, layers, step) for step in schedule.update_steps],
        "warnings": check_update_frequency(session.recipe, len(session.data.x_train)),  # given before training
        "finetune_step": finetune_step(session),
    })
    evaluated = session.train("eval", session.recipe.eval, step_hooks=[GradualPruning(session, schedule, layers)])
    history = evaluated["history"]
    # The fine-tuning stage is GMP's retraining: seed 004's TA is read off its epochs and LRs.
    finetuning = {"history": history[finetune_epoch(session):], "lr_log": evaluated["lr_log"][finetune_step(session):]}
    return {
        "dense_acc": found["dense_acc"],
        "pruned_acc": history[finetune_epoch(session) - 1]["test_acc"],
        "final_acc": history[-1]["test_acc"],
        "trainability_acc": trainability_accuracy(finetuning),
        "sparsity_updates": len(planned["update_steps"]),
    }
