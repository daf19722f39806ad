"""The learning-rate range test (seed 000, "learning rate analysis").

Starting from a trained model and a fresh optimizer, the LR rises exponentially from a tiny
value (1e-9) to at least 1, one training batch per value. After every step the loss is
measured on a fixed probe set of training examples, in eval mode with the trained model's
BatchNorm statistics, so the curve is free of batch-to-batch noise: flat while the steps are too small to move the model, then rising once the model
starts to leave its trained solution. That inflection point is seed 000's suggested pruning
LR. The test stops early once the loss has clearly diverged. Rises count against the trained
model's loss, or against :data:`LOSS_FLOOR` if that is lower: against a loss of 0, as a model
that fits its probe examples may have in float32, any rise at all would count.
"""

from __future__ import annotations

import copy
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from prunelab.config.schema import FLOAT32_MAX, OptimizerConfig
from prunelab.data import BatchIterator, Dataset
from prunelab.train import build_optimizer, epoch_generator


#: The loss that rises are measured against where the trained model's is lower: a mean
#: probability of about 0.99 on the true class (exp(-0.01)). A model that fits its probe
#: examples better has little left to lose, and against a loss of 0 any rise at all, float32
#: rounding included, would count.
LOSS_FLOOR = 0.01


def describe_rise(baseline: float, threshold: float) -> str:
    """The rise from ``baseline`` to ``threshold`` that counts as risen, in words: a share of
    the trained model's loss, or below :data:`LOSS_FLOOR` the amount and its share of the floor.

    >>> describe_rise(0.5, 0.55), describe_rise(0.003, 0.004)
    ('10%', '0.001 (10% of the loss floor 0.01)')
    """
    if baseline >= LOSS_FLOOR:
        return f"{threshold / baseline - 1:.0%}"
    return f"{threshold - baseline:.2g} ({(threshold - baseline) / LOSS_FLOOR:.0%} of the loss floor {LOSS_FLOOR:g})"


@dataclass
class LRRangeResult:
    """The LRs tried, the probe loss after the step at each, and what was read off them."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # probe loss after the step at lrs[i]
    baseline: float = math.nan  # probe loss of the trained model
    inflection_lr: float | None = None  # first LR whose loss exceeds the threshold: seed 000's pruning LR
    threshold: float = math.nan  # baseline + tolerance * max(baseline, LOSS_FLOOR): the loss that counts as risen


def check_lr_range(
    start_lr: float, end_lr: float, steps: int, tolerance: float = 0.1, stop_factor: float = 4.0, label_smoothing: float = 0.0
) -> None:
    """Raise a ValueError for a range the test cannot run (before the model is trained)."""
    settings = (("start_lr", start_lr), ("end_lr", end_lr), ("tolerance", tolerance), ("stop_factor", stop_factor),
                ("label_smoothing", label_smoothing))  # fmt: skip
    for name, value in settings:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"steps must be a whole number, got {steps!r}")
    if tolerance <= 0 or stop_factor <= 1 + tolerance:
        raise ValueError(f"need tolerance > 0 and stop_factor > 1 + tolerance, got tolerance={tolerance}, stop_factor={stop_factor}")
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    if not math.isfinite(end_lr / start_lr) or end_lr > FLOAT32_MAX:
        raise ValueError(f"end_lr / start_lr must be a finite ratio, and end_lr within float32, got start_lr={start_lr}, end_lr={end_lr}")
    if end_lr < 1:
        raise ValueError(f"end_lr must reach at least 1 (seed 000), got {end_lr}")
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")


def lr_range_test(
    model: nn.Module,
    data: Dataset,
    optimizer: OptimizerConfig | Mapping[str, object],
    *,
    batch_size: int = 128,
    start_lr: float = 1e-9,
    end_lr: float = 1.0,
    steps: int = 200,
    tolerance: float = 0.1,
    stop_factor: float = 4.0,
    probe_size: int = 1000,
    label_smoothing: float = 0.0,
    augment: bool = True,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> LRRangeResult:
    """Run the test on a copy of ``model`` (the model itself is not changed), with a new
    optimizer of ``optimizer``'s settings (an :class:`OptimizerConfig` or a mapping such
    as a recipe's ``find.optimizer``: ``{"name": "sgd", "momentum": 0.9}``). The steps and the
    probe take the loss the retraining minimises: cross-entropy with ``label_smoothing``. The
    copy trains without masks: seed 000 tests the trained dense model, and on a pruned one
    the pruned weights would move during the test.

    The LR grows geometrically over ``steps`` values from ``start_lr`` to ``end_lr``, one
    batch of ``batch_size`` training examples each (augmented if the data has an augmentation
    and ``augment``); ``seed`` fixes their order, their augmentation and the model's own
    random draws (dropout), and the caller's random state is left as it was. After each step
    the loss is measured in eval mode on the first ``probe_size`` training examples;
    BatchNorm statistics stay the trained model's. The inflection LR is the first whose probe
    loss exceeds the trained model's by more than ``tolerance`` (10%); the test stops once the
    loss exceeds ``stop_factor`` times it or is not finite. A trained model's loss below
    :data:`LOSS_FLOOR` counts as the floor in both rules: the loss must rise by ``tolerance *
    LOSS_FLOOR`` to inflect, by ``(stop_factor - 1) * LOSS_FLOOR`` to stop the test.

    >>> from prunelab.data import Dataset
    >>> x = torch.randn(256, 8); y = (x[:, 0] > 0).long()
    >>> data = Dataset("toy", x, y, x[:64], y[:64], num_classes=2)
    >>> result = lr_range_test(nn.Linear(8, 2), data, OptimizerConfig(momentum=0.0), steps=50, progress=False)
    >>> result.lrs[0], result.lrs[-1] >= 1.0 or result.losses[-1] > 4 * result.baseline
    (1e-09, True)
    """
    check_lr_range(start_lr, end_lr, steps, tolerance, stop_factor, label_smoothing)
    if isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError("optimizer: give the settings of the optimizer to build (e.g. {'name': 'sgd', 'momentum': 0.9}); "
                        "the test makes its own, at each LR")  # fmt: skip
    if not isinstance(optimizer, (OptimizerConfig, Mapping)):
        raise TypeError(f"optimizer must be an OptimizerConfig or a mapping of its settings, got {type(optimizer).__name__}")
    optimizer = optimizer if isinstance(optimizer, OptimizerConfig) else OptimizerConfig.model_validate(optimizer)
    for name, size in (("batch_size", batch_size), ("probe_size", probe_size)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"{name} must be a whole number of examples, at least 1, got {size!r}")
    if not any(param.requires_grad for param in model.parameters()):
        raise ValueError("the model has no parameter that requires grad: the test has nothing to train")
    device = torch.device(device)
    model = copy.deepcopy(model).to(device)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase):
            # The probe (eval mode) reads the running statistics: the steps must not move them, or
            # the loss would change at any LR, however small, and the inflection would come early.
            module.momentum = 0.0
    probe_x = data.x_train[:probe_size].to(device)
    probe_y = data.y_train[:probe_size].to(device)
    trainer_optimizer = build_optimizer(optimizer, model.parameters())
    baseline = _probe_loss(model, probe_x, probe_y, label_smoothing)
    if not math.isfinite(baseline):
        raise ValueError(f"the trained model's loss on the probe examples is {baseline}: the test needs a finite loss to start from")
    scale = max(baseline, LOSS_FLOOR)  # what the rises are fractions of
    result = LRRangeResult(baseline=baseline, threshold=baseline + tolerance * scale)
    diverged_above = baseline + (stop_factor - 1) * scale
    growth = (end_lr / start_lr) ** (1 / (steps - 1))
    batches = _endless_batches(data, batch_size, seed, augment)
    bar = tqdm(range(steps), desc="lr range test", disable=not progress, leave=False)
    # Draws inside the model (dropout) come from the seed, as the trainer's do, so that the same
    # seed gives the same curve; the caller's random state is left as it was.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(zlib.crc32(f"{seed}/lr-range-test/model".encode()))
        for step in bar:
            lr = end_lr if step == steps - 1 else start_lr * growth**step
            for group in trainer_optimizer.param_groups:
                group["lr"] = lr
            x, y = next(batches)
            model.train()
            loss = F.cross_entropy(model(x.to(device)), y.to(device), label_smoothing=label_smoothing)
            trainer_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            trainer_optimizer.step()
            probe = _probe_loss(model, probe_x, probe_y, label_smoothing)
            result.lrs.append(lr)
            result.losses.append(probe)
            bar.set_postfix_str(f"LR {lr:.2g}, probe loss {probe:.3f} (start {baseline:.3f})", refresh=False)
            # A loss that overflowed to inf or NaN has certainly risen (NaN compares false).
            diverged = not math.isfinite(probe)
            if result.inflection_lr is None and (diverged or probe > result.threshold):
                result.inflection_lr = lr
            if diverged or probe > diverged_above:
                break
    return result


@torch.no_grad()
def _probe_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, label_smoothing: float) -> float:
    model.eval()
    return float(F.cross_entropy(model(x), y, label_smoothing=label_smoothing))


def _endless_batches(data: Dataset, batch_size: int, seed: int, augment: bool):
    """The training batches, augmented as the retraining's are (draws seeded alike, as the trainer's)."""
    epoch = 0
    while True:
        draws = epoch_generator(seed, "lr-range-test", epoch)
        transform = None if data.augment is None or not augment else lambda x: data.augment(x, draws)
        generator = epoch_generator(seed, "lr-range-test", epoch)
        yield from BatchIterator(data.x_train, data.y_train, batch_size, shuffle=True, generator=generator, transform=transform)
        epoch += 1
