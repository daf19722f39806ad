"""Optimizers and LR schedules built from a phase's typed hyperparameters."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from prunelab.config.schema import LRScheduleConfig, OptimizerConfig
from prunelab.schedules import (
    Constant,
    Cosine,
    Linear,
    MultiStep,
    Schedule,
    Step,
    Warmup,
    halving_milestones,
    round_warmup,
)


def build_optimizer(config: OptimizerConfig, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """SGD (momentum, nesterov), Adam or AdamW, as the config says.

    >>> build_optimizer(OptimizerConfig(name="adamw", lr=1e-3), [torch.nn.Parameter(torch.zeros(2))])
    ... # doctest: +ELLIPSIS
    AdamW (...
    """
    if config.name == "sgd":
        return torch.optim.SGD(
            parameters, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
    kind = torch.optim.Adam if config.name == "adam" else torch.optim.AdamW
    return kind(parameters, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)


def build_schedule(config: LRScheduleConfig, lr: float, epochs: int, steps_per_epoch: int) -> Schedule:
    """The per-step LR schedule of a phase of ``epochs`` epochs. Its warmup lasts
    ``warmup_epochs`` of ``steps_per_epoch`` rounded to whole steps, at least 2 (see
    :func:`~prunelab.schedules.round_warmup`).

    >>> s = build_schedule(LRScheduleConfig(name="multistep", milestones=(2,)), 0.1, 4, 10)
    >>> s(19), s(20)
    (0.1, 0.010000000000000002)
    """
    total = max(1, epochs * steps_per_epoch)
    if config.name == "constant":
        schedule: Schedule = Constant(lr)
    elif config.name == "step":
        schedule = Step(lr, config.step_size * steps_per_epoch, config.gamma)
    elif config.name == "multistep":
        schedule = MultiStep(lr, tuple(m * steps_per_epoch for m in config.milestones), config.gamma)
    elif config.name == "halving":
        milestones = halving_milestones(epochs, config.halving_stages(lr), config.max_stage_epochs) if epochs else ()
        schedule = MultiStep(lr, tuple(m * steps_per_epoch for m in milestones), config.gamma)
    elif config.name == "cosine":
        schedule = Cosine(lr, total, config.final_lr)
    else:
        schedule = Linear(lr, total, config.final_lr)
    warmup_steps = round_warmup("warmup_epochs", config.warmup_epochs, steps_per_epoch, "an epoch")
    return Warmup(schedule, warmup_steps) if warmup_steps else schedule
