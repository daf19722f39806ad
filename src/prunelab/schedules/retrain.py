"""Learning-rate policies for retraining after a pruning step (Zimmer et al., ICLR 2023).

All policies are built from the per-step LR log of the original dense training
(length ``T``, ``eta_1 = max(log)``) and the retraining length ``T_rt`` in steps:

========  ==============================================================
``ft``    fine-tuning: the last LR of the log, constant
``lrw``   LR rewinding: replay the last ``T_rt`` entries of the log
``slr``   scaled LR restarting: the whole log compressed into ``T_rt`` steps,
          restarting at ``eta_1`` (a warmup's rise before the peak held at it)
``clr``   cyclic LR restarting: one cosine cycle ``eta_1 -> 0``
``llr``   linear LR restarting: linear ``eta_1 -> 0``
``allr``  adaptive LLR: linear ``d * eta_1 -> 0`` with ``d = max(d1, d2)``
========  ==============================================================

BIMP needs no extra policy: its initial training is ``Linear(lr, T_0)`` and its
prune-retrain cycles use ``allr``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from prunelab.schedules._validation import check_int, check_real, lr_tuple
from prunelab.schedules.lr import Constant, Cosine, Linear, Replay, Schedule, Warmup, round_warmup
from prunelab.wording import counted

POLICIES = ("ft", "lrw", "slr", "clr", "llr", "allr")
#: The policies that restart the LR from a peak, which a warmup can lead up to.
RESTARTING = ("slr", "clr", "llr", "allr")


@dataclass(frozen=True)
class RetrainPlan:
    """The LR schedule of one retraining phase and the quantities that chose it.

    ``initial_lr`` is the policy's LR at step 0 before any warmup. ``d1``, ``d2``
    and ``d`` are set for ``allr`` only.
    """

    schedule: Schedule
    policy: str
    initial_lr: float
    warmup_steps: int = 0
    d1: float | None = None
    d2: float | None = None
    d: float | None = None


def retrain_schedule(
    policy: str,
    lr_log: Sequence[float],
    retrain_steps: int,
    *,
    d1: float | None = None,
    warmup_fraction: float = 0.0,
    log_steps: int | None = None,
) -> RetrainPlan:
    """Build the retraining LR schedule of ``policy`` (one of ``POLICIES``).

    Args:
        policy: ``"ft"``, ``"lrw"``, ``"slr"``, ``"clr"``, ``"llr"`` or ``"allr"``.
        lr_log: the LR of every optimizer step of the original dense training.
        retrain_steps: length ``T_rt`` of the retraining phase in optimizer steps.
        d1: the pruning-impact factor from :func:`allr_d1`; required for
            ``allr`` and rejected for the other policies, which would ignore it.
        warmup_fraction: in [0, 1); the first ``round(warmup_fraction * retrain_steps)``
            steps, at least 2 (:func:`round_warmup`), are ramped up linearly from 0 (see
            :class:`Warmup`: the ramp multiplies the policy's LR). Only for the restarting
            policies ``slr``, ``clr``, ``llr`` and ``allr``: ``ft`` and ``lrw``
            continue from a small LR, so there is nothing to warm up to.
        log_steps: the length ``T`` of the original training in retraining steps, when
            those are of another batch size than ``lr_log``'s (default ``len(lr_log)``):
            LRW and SLR take the LR of the original step at the same point of training,
            while FT's last LR and ``eta_1`` stay those of the whole log, which reading it
            at fewer steps would skip.

    For ``allr``, ``d2 = min(1, T_rt / T)``: the paper keeps ``d`` in [0, 1], so a
    retraining longer than the original training restarts at ``eta_1``.

    >>> log = [0.1] * 20 + [0.01] * 12 + [0.001] * 8
    >>> plan = retrain_schedule("allr", log, 8, d1=0.5)
    >>> plan.d2, plan.d, plan.initial_lr
    (0.2, 0.5, 0.05)
    >>> retrain_schedule("slr", log, 8).schedule(4)
    0.01
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    log = lr_tuple("lr_log", lr_log)
    check_int("retrain_steps", retrain_steps, 1)
    check_real("warmup_fraction", warmup_fraction, 0.0, 1.0)
    steps = len(log) if log_steps is None else log_steps
    check_int("log_steps", steps, 1)
    if policy not in RESTARTING and warmup_fraction != 0:
        raise ValueError(
            f"warmup_fraction must be 0 for policy {policy!r}, got {warmup_fraction!r}; "
            "warmup applies only to the restarting policies slr, clr, llr and allr"
        )
    if d1 is not None and policy != "allr":
        raise ValueError(f"d1 is only used by policy 'allr', got d1={d1!r} for policy {policy!r}")

    eta_1 = max(log)
    d2: float | None = None
    d: float | None = None
    if policy == "ft":
        base: Schedule = Constant(log[-1])
    elif policy == "lrw":
        if retrain_steps > steps:
            raise ValueError(
                f"policy 'lrw' rewinds to step T - retrain_steps of the original training of T = {counted(steps, 'step')} "
                f"(len(lr_log), or log_steps), so retrain_steps must be <= {steps}, got {retrain_steps}"
            )
        base = Replay(tuple(log[(steps - retrain_steps + step) * len(log) // steps] for step in range(retrain_steps)))
    elif policy == "slr":
        # A restart from the peak: a warmup of the original training would restart low, and the
        # retraining's own warmup is warmup_fraction's (Zimmer et al.'s code holds those LRs at eta_1 too).
        peak = log.index(eta_1)
        restarted = (eta_1,) * peak + log[peak:]
        base = Replay(tuple(restarted[step * steps // retrain_steps * len(log) // steps] for step in range(retrain_steps)))
    elif policy == "clr":
        base = Cosine(eta_1, retrain_steps)
    elif policy == "llr":
        base = Linear(eta_1, retrain_steps)
    else:
        if d1 is None:
            raise ValueError("policy 'allr' requires d1 (compute it with allr_d1 right after pruning)")
        check_real("d1", d1, 0.0, 1.0, high_open=False)
        d2 = min(1.0, retrain_steps / steps)
        d = max(float(d1), d2)
        base = Linear(d * eta_1, retrain_steps)

    warmup_steps = round_warmup("warmup_fraction", warmup_fraction, retrain_steps, "the retraining")
    schedule = Warmup(base, warmup_steps) if warmup_steps else base
    return RetrainPlan(
        schedule=schedule,
        policy=policy,
        initial_lr=base(0),
        warmup_steps=warmup_steps,
        d1=None if d1 is None else float(d1),
        d2=d2,
        d=d,
    )


def allr_d1(
    theta: Sequence[torch.Tensor],
    theta_pruned: Sequence[torch.Tensor],
    pruned_fraction: float,
) -> float:
    """ALLR's pruning-impact factor ``d1 = ||theta - theta_p||_2 / (||theta||_2 * sqrt(s))``.

    ``theta`` are the prunable weights right before this pruning step and
    ``theta_pruned`` the same tensors right after it, in the same order: pass
    exactly the tensors the pruner masks (e.g. conv/linear weights), not biases
    or BatchNorm parameters, which are never pruned and would only dilute the
    norm. The norms are over all tensors together, accumulated in float64 per
    tensor rather than by concatenating them. ``pruned_fraction`` is ``s`` in
    (0, 1]: the fraction of the weights *remaining before this step* that this
    step prunes (0.2 for every IMP level at rate 0.2).

    Global magnitude pruning removes the smallest-magnitude ``s`` of the
    remaining weights, whose share of ``||theta||^2`` is at most ``s``, so
    ``d1 <= 1`` there. Other criteria (random, or layer-wise rates that hit
    large-magnitude layers hard) can remove more than an ``s`` share of the
    norm, so the result is clamped to 1 to keep ``d`` in [0, 1].

    >>> theta = [torch.tensor([3.0, 4.0])]
    >>> round(allr_d1(theta, [torch.tensor([0.0, 4.0])], pruned_fraction=0.5), 6)  # 3 / (5 * sqrt(0.5))
    0.848528
    """
    check_real("pruned_fraction", pruned_fraction, 0.0, 1.0, low_open=True, high_open=False)
    if len(theta) != len(theta_pruned):
        raise ValueError(
            f"theta and theta_pruned must hold the same tensors, got {len(theta)} and {len(theta_pruned)} tensors"
        )
    norm_sq = 0.0
    diff_sq = 0.0
    with torch.no_grad():
        for index, (weight, pruned) in enumerate(zip(theta, theta_pruned)):
            if weight.shape != pruned.shape:
                raise ValueError(
                    f"theta[{index}] and theta_pruned[{index}] must have the same shape, "
                    f"got {tuple(weight.shape)} and {tuple(pruned.shape)}"
                )
            weight64 = weight.to(torch.float64)
            norm_sq += weight64.square().sum().item()
            diff_sq += (weight64 - pruned.to(torch.float64)).square().sum().item()
    if norm_sq == 0.0:
        raise ValueError("theta has zero norm, so d1 is undefined; pass the weights from before pruning")
    return min(1.0, math.sqrt(diff_sq / (norm_sq * pruned_fraction)))
