"""The epoch loop of one training phase: per-step LR, evaluation every epoch, resumable state."""

from __future__ import annotations

import itertools
import logging
import math
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from prunelab.config.schema import FLOAT32_MAX, TrainConfig
from prunelab.data import BatchIterator, Dataset
from prunelab.data.loader import PADDING
from prunelab.distributed import all_sum, broadcast_buffers, share, world
from prunelab.masks import Pruner
from prunelab.models.common import evaluating
from prunelab.schedules import Schedule
from prunelab.train.optim import build_optimizer, build_schedule


log = logging.getLogger(__name__)

#: Seconds between two epoch lines of the log (the last epoch of a phase is always logged).
LOG_EVERY = 30.0
#: The phase, the bar and its times, then the last epoch's numbers, test accuracy first: a
#: narrow terminal cuts the line's end, which took the progress itself when the numbers came first.
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]{postfix}"


class StepHook(Protocol):
    """Called before every optimizer step, e.g. to raise the sparsity during GMP."""

    def __call__(self, trainer: Trainer, step: int) -> None: ...


@dataclass
class PhaseState:
    """Everything a phase needs besides weights, masks and optimizer state to resume."""

    epoch: int = 0
    step: int = 0
    lr_log: list[float] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)


def epoch_generator(seed: int, phase: str, epoch: int) -> torch.Generator:
    """The generator of one epoch's shuffling and augmentation: resuming at any epoch
    replays exactly the batches an uninterrupted run would have seen."""
    return torch.Generator().manual_seed(zlib.crc32(f"{seed}/{phase}/{epoch}".encode()))


class TrainingDiverged(ValueError):
    """The training loss became NaN or infinite: nothing the phase trains on from there is of use."""


class Trainer:
    """Trains ``model`` on ``data`` for ``config.epochs`` epochs and evaluates every epoch.

    The LR of every step is ``schedule(step)`` (by default the config's schedule) and is
    recorded in ``state.lr_log``, because LR rewinding replays it later. An attached
    ``pruner`` keeps pruned weights at zero. The progress bar shows ``label`` (by default
    the phase), the epoch, and the test accuracy, sparsity and training loss; the ``prunelab`` logger
    has the same at level INFO, every :data:`LOG_EVERY` seconds and at the phase's end (the
    command line shows it where no progress bar can).

    >>> from prunelab.data import Dataset
    >>> data = Dataset("toy", torch.randn(64, 4), torch.randint(0, 2, (64,)),
    ...                torch.randn(16, 4), torch.randint(0, 2, (16,)), num_classes=2)
    >>> trainer = Trainer(nn.Linear(4, 2), data, TrainConfig(epochs=2, batch_size=16),
    ...                   seed=0, progress=False)
    >>> history = trainer.run()
    >>> len(history), len(trainer.state.lr_log)
    (2, 8)
    """

    def __init__(
        self,
        model: nn.Module,
        data: Dataset,
        config: TrainConfig,
        *,
        seed: int,
        phase: str = "train",
        device: torch.device | str = "cpu",
        pruner: Pruner | None = None,
        schedule: Schedule | None = None,
        step_hooks: Sequence[StepHook] = (),
        augment: bool = True,
        progress: bool = True,
        label: str | None = None,
        sparsity: Callable[[], float] | None = None,
    ) -> None:
        self.model, self.data, self.config = model, data, config
        self.seed, self.phase, self.device = seed, phase, torch.device(device)
        self.pruner = pruner
        # What each epoch's row reports as sparsity: the pruner's, unless the caller knows
        # better (a model rebuilt without channels has pruned weights the pruner never sees).
        self.sparsity = sparsity or (pruner.sparsity if pruner is not None else lambda: 0.0)
        self.step_hooks = list(step_hooks)
        self.augment = data.augment if augment else None
        self.world = world()
        self.progress = progress and self.world.is_main
        self.label = label or phase  # of the progress bar
        self.batch_size = share(config.batch_size)  # this process's part of every batch
        # Several processes: each steps the same model on its share of the batch, gradients averaged.
        self.network = model if self.world.size == 1 else DistributedDataParallel(model)
        self.optimizer = build_optimizer(config.optimizer, model.parameters())
        self.steps_per_epoch = len(self._batches(0))
        self.schedule = schedule or build_schedule(
            config.lr_schedule, config.optimizer.lr, config.epochs, self.steps_per_epoch
        )
        if pruner is not None:
            pruner.attach(self.optimizer)
        self.state = PhaseState()

    def _batches(self, epoch: int) -> BatchIterator:
        """The epoch's batches of this process, augmented if the data has an augmentation, its
        draws from a generator of their own (seeded alike), the same with any number of processes."""
        augment, draws = self.augment, epoch_generator(self.seed, self.phase, epoch)
        return BatchIterator(
            self.data.x_train, self.data.y_train, self.batch_size, shuffle=True,
            generator=epoch_generator(self.seed, self.phase, epoch), rank=self.world.rank, world_size=self.world.size,
            transform=None if augment is None else lambda x: augment(x, draws),
        )  # fmt: skip

    def run(self, on_epoch_end: Callable[[Trainer], None] | None = None) -> list[dict]:
        """Train the remaining epochs; ``on_epoch_end`` runs after each (e.g. a checkpoint)."""
        # Steps, so that a long epoch shows it moves; a resumed phase shows where it stands. Each
        # phase leaves its last line (its final accuracy) on the terminal, as a log would.
        total, done = self.config.epochs * self.steps_per_epoch, self.state.step
        with tqdm(desc=self.label, unit="step", disable=not self.progress, leave=True, total=total, initial=done,
                  bar_format=BAR_FORMAT) as bar:
            logged = time.monotonic()
            for epoch in range(self.state.epoch, self.config.epochs):
                bar.set_description_str(f"{self.label}, epoch {epoch + 1}/{self.config.epochs}")
                started = time.perf_counter()
                train_loss, train_acc, images = self.train_epoch(epoch, on_step=bar.update)
                if not math.isfinite(train_loss):
                    raise TrainingDiverged(
                        f"{self.label}: the training loss was {train_loss} in epoch {epoch + 1} (LR up to "
                        f"{max(self.state.lr_log[-self.steps_per_epoch:], default=0):.4g}): training diverged; a lower LR "
                        "for this phase (its optimizer.lr) usually helps"
                    )
                train_seconds = time.perf_counter() - started
                test_loss, test_acc = self.evaluate()
                metrics = {
                    "phase": self.phase,
                    "epoch": epoch + 1,
                    "step": self.state.step,
                    "lr": self.state.lr_log[-1] if self.state.lr_log else None,
                    "train_loss": train_loss,
                    "train_acc": train_acc,
                    "test_loss": test_loss,
                    "test_acc": test_acc,
                    "sparsity": self.sparsity(),
                    "train_images": images,
                    "train_seconds": train_seconds,
                    "seconds": time.perf_counter() - started,
                }
                self.state.history.append(metrics)
                self.state.epoch = epoch + 1
                bar.set_postfix_str(f"test acc {test_acc:.2%}, sparsity {metrics['sparsity']:.1%}, train loss {train_loss:.3f}")
                if self.world.is_main and (epoch + 1 == self.config.epochs or time.monotonic() - logged >= LOG_EVERY):
                    log.info(
                        "%s: epoch %d/%d, test accuracy %.2f%%, training loss %.3f, sparsity %.1f%%",
                        self.label, epoch + 1, self.config.epochs, 100 * test_acc, train_loss, 100 * metrics["sparsity"],
                    )  # fmt: skip
                    logged = time.monotonic()
                if on_epoch_end is not None:
                    on_epoch_end(self)
        return self.state.history

    def train_epoch(self, epoch: int, on_step: Callable[[], object] | None = None) -> tuple[float, float, int]:
        """One epoch of SGD steps (``on_step()`` after each, e.g. a progress bar's update);
        returns the mean training loss and accuracy, and the number of training examples
        seen (over all processes).

        An epoch entered part-way (``state.step`` past its start, as after rewinding to a
        step) trains only its remaining batches, so the phase ends with its schedule.
        """
        self.model.train()
        total_loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = 0  # a tensor over several processes, where padding is counted out on the device
        done = max(0, self.state.step - epoch * self.steps_per_epoch)
        # Random draws inside the model (dropout) come from the epoch's own seed, as its batches
        # do, so that a resumed epoch draws what an uninterrupted run drew; the caller's
        # random state is left as it was.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(zlib.crc32(f"{self.seed}/{self.phase}/{epoch}/model/{self.world.rank}".encode()))
            # The skipped batches are drawn and augmented too, so that the rest get the random
            # draws of an epoch trained whole (after a rewind to a step within the epoch).
            batches = self._batches(epoch)
            for index, (x, y) in enumerate(itertools.islice(batches, done, None), start=done):
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                for hook in self.step_hooks:
                    hook(self, self.state.step)
                lr = self.schedule(self.state.step)
                if not 0 <= lr <= FLOAT32_MAX:  # e.g. gamma > 1 compounded: no optimizer step can take it
                    raise TrainingDiverged(
                        f"{self.label}: the LR schedule gives {lr:g} at step {self.state.step}; an LR must be from 0 "
                        f"to {FLOAT32_MAX:.3g}, the largest float32"
                    )
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                logits = self.network(x)
                loss, summed, count = self._loss(logits, y, batches.real_examples(index))
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.state.lr_log.append(lr)
                self.state.step += 1
                total_loss += summed
                correct += (logits.argmax(1) == y).sum()
                seen += count
                if on_step is not None:
                    on_step()
        broadcast_buffers(self.model)
        totals = all_sum(torch.stack([total_loss.double(), correct.double(), torch.as_tensor(seen, dtype=torch.float64, device=self.device)]))
        total, right, count = totals.tolist()
        return total / max(count, 1), right / max(count, 1), int(count)

    def _loss(self, logits: Tensor, y: Tensor, real_examples: int) -> tuple[Tensor, Tensor, Tensor | int]:
        """The loss to step on, its sum over this process's real examples (detached), and their
        number. Over several processes, the loss makes DDP's average of the gradients the mean
        over the batch's real examples of all processes: the examples that pad an epoch to an
        equal share each (label :data:`PADDING`) count for nothing."""
        smoothing = self.config.label_smoothing
        if self.world.size == 1:
            loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
            return loss, loss.detach() * len(y), len(y)
        summed = F.cross_entropy(logits, y, reduction="sum", label_smoothing=smoothing)
        return summed * self.world.size / real_examples, summed.detach(), (y != PADDING).sum()

    @torch.no_grad()
    def evaluate(self, batch_size: int = 1000) -> tuple[float, float]:
        """Test loss and top-1 accuracy; over N processes, each evaluates every N-th test
        example (from its rank on) and the sums are combined."""
        if self.world.size == 1:
            return evaluate(self.model, self.data.x_test, self.data.y_test, self.device, batch_size)
        part = slice(self.world.rank, None, self.world.size)
        x, y = self.data.x_test[part], self.data.y_test[part]
        loss, accuracy = evaluate(self.model, x, y, self.device, batch_size) if len(y) else (0.0, 0.0)
        sums = all_sum(torch.tensor([loss * len(y), round(accuracy * len(y)), len(y)], dtype=torch.float64, device=self.device))
        total_loss, correct, count = sums.tolist()
        return total_loss / count, correct / count


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, device: torch.device, batch_size: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and top-1 accuracy of ``model`` on ``(x, y)``."""
    total_loss, correct = 0.0, 0
    with evaluating(model):
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(device)
            yb = y[start : start + batch_size].to(device)
            logits = model(xb)
            total_loss += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
    return total_loss / len(x), correct / len(x)
