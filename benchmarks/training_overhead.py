"""Training-step overhead of keeping pruned weights at zero: prunelab vs torch.nn.utils.prune.

Five copies of the same model train side by side on the same random MNIST-shaped batches
(batch 128, SGD with momentum 0.9 and weight decay 5e-4):

- ``dense``: no pruning, the baseline every ratio is relative to;
- ``dense again``: a second dense copy, the control: its distance from 1.000 is how far
  apart two identical copies land in this run, the harness's resolution;
- ``prunelab``: 90% global magnitude masks kept by :meth:`prunelab.Pruner.attach`
  (gradients masked before ``optimizer.step()``; SGD then leaves pruned weights at zero);
- ``torch prune``: the same sparsity by ``torch.nn.utils.prune.global_unstructured``, which
  re-parametrises each weight as ``weight_orig * weight_mask`` in a forward pre-hook;
- ``after step``: the same masks multiplied into the weights after every ``optimizer.step()``,
  the scheme of the project's reference measurement (1.02-1.03x). It is one pass per step
  like prunelab's, but weaker: momentum builds up on pruned weights, which every step moves
  off zero before they are zeroed again.

By default the batches are made beforehand and the timed step is only the step itself, the
strictest measure: the data pipeline's time, the same for every variant, would dilute the
overhead. ``--feed`` times the fetch of each batch too, from 60,000 random MNIST-shaped
examples shuffled every epoch: ``prunelab`` by prunelab's own
:class:`prunelab.data.BatchIterator`, as its trainer feeds a step, and ``dataloader`` by a
``torch.utils.data.DataLoader`` with its default collation, the usual training loop, as the
reference measured (1.4 s per epoch of 60,000 images: about 3 ms a step, on its machine).

The variants run interleaved in blocks of steps, in a rotating order, so that drift in the
machine's speed (other processes, frequency changes) falls on all of them alike. Reported:
the median step time of each after a warm-up, and its ratio to dense: the median over the
rounds of the ratio of the block medians within a round, so that a slow spell of the
machine, which lasts longer than one round, cancels out.

Run from the repository root::

    python benchmarks/training_overhead.py            # LeNet-300-100 and a small CNN, 1000 steps each
    python benchmarks/training_overhead.py --steps 3000 --models lenet_300_100
    python benchmarks/training_overhead.py --feed dataloader   # each step's batch fetched by a DataLoader
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from prunelab import Pruner
from prunelab.data import BatchIterator

SPARSITY = 0.9
BATCH = 128
EXAMPLES = 60_000  # an epoch of MNIST, for the batches fetched in the timed step


def lenet_300_100() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)
    )


def small_cnn() -> nn.Module:
    """Two 5x5 convolutions (16, 32 channels) with max-pooling, then 512-128-10 (about 80k weights)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(512, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip


MODELS: dict[str, Callable[[], nn.Module]] = {"lenet_300_100": lenet_300_100, "small_cnn": small_cnn}


@torch.no_grad()
def _multiply(masked: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for weight, mask in masked:
        weight.mul_(mask)


class Variant:
    """One model copy with its optimizer and its step times."""

    def __init__(self, name: str, base: nn.Module) -> None:
        self.name = name
        self.model = copy.deepcopy(base)
        if name == "prunelab":
            pruner = Pruner(self.model)
            pruner.prune(SPARSITY)
        elif name == "after step":
            pruner = Pruner(self.model)
            pruner.prune(SPARSITY)
            masked = [(pruner.parameters[n], mask.float()) for n, mask in pruner.masks.items()]
        elif name == "torch prune":
            pairs = [(m, "weight") for m in self.model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
            torch_prune.global_unstructured(pairs, pruning_method=torch_prune.L1Unstructured, amount=SPARSITY)
        # After pruning: torch's re-parametrisation renames each weight to weight_orig.
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        if name == "prunelab":
            pruner.attach(self.optimizer)
        elif name == "after step":
            self.optimizer.register_step_post_hook(lambda *_: _multiply(masked))
        self.blocks: list[list[float]] = []  # step times, one list per round

    def run(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], fetched: bool, steps: int) -> list[float]:
        """Time ``steps`` steps on the next batches; ``fetched``: the fetch of a batch is timed too."""
        times = []
        for _ in range(steps):
            if not fetched:
                x, y = next(batches)
            start = time.perf_counter()
            if fetched:
                x, y = next(batches)
            self.optimizer.zero_grad()
            nn.functional.cross_entropy(self.model(x), y).backward()
            self.optimizer.step()
            times.append(time.perf_counter() - start)
        return times


def batch_stream(feed: str, data: tuple[torch.Tensor, torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches of ``data``: its first 8 in turn (``memory``), or its shuffled epochs
    by prunelab's batch iterator or torch's DataLoader; every stream in the same order."""
    x, y = data
    if feed == "memory":
        made = [(x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, 8 * BATCH, BATCH)]
        while True:
            yield from made
    generator = torch.Generator().manual_seed(1)
    if feed == "prunelab":
        epochs = BatchIterator(x, y, BATCH, shuffle=True, generator=generator)
    else:
        epochs = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), BATCH, shuffle=True, generator=generator)
    while True:
        yield from epochs


def measure(model_name: str, feed: str, steps: int, block: int, warmup: int) -> dict[str, tuple[float, list[float]]]:
    """Per variant: median step time (seconds) and its ratio to dense in each round."""
    torch.manual_seed(0)
    base = MODELS[model_name]()
    names = ("dense", "dense again", "prunelab", "after step", "torch prune")
    examples = 8 * BATCH if feed == "memory" else EXAMPLES
    data = torch.randn(examples, 1, 28, 28), torch.randint(0, 10, (examples,))
    runs = [(Variant(name, base), batch_stream(feed, data)) for name in names]
    fetched = feed != "memory"
    for variant, batches in runs:
        variant.run(batches, fetched, warmup)
    for round_ in range(-(-steps // block)):
        k = round_ % len(runs)  # rotate who goes first
        for variant, batches in runs[k:] + runs[:k]:
            variant.blocks.append(variant.run(batches, fetched, block))
    variants = [variant for variant, _ in runs]
    dense = [statistics.median(times) for times in variants[0].blocks]
    return {
        v.name: (
            statistics.median(t for times in v.blocks for t in times),
            [statistics.median(times) / d for times, d in zip(v.blocks, dense)],
        )
        for v in variants
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--steps", type=int, default=1000, help="timed steps per variant")
    parser.add_argument("--block", type=int, default=10, help="steps per variant before switching")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps per variant first")
    parser.add_argument("--feed", choices=("memory", "prunelab", "dataloader"), default="memory",
                        help="batches made beforehand, outside the timed step (default), or fetched inside it from "
                             f"{EXAMPLES:,} examples by prunelab's BatchIterator or torch's DataLoader")  # fmt: skip
    args = parser.parse_args()

    fed = "batches made beforehand" if args.feed == "memory" else f"each batch fetched in the step ({args.feed})"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {BATCH}, sparsity {SPARSITY}, {fed}, "
          f"median of {args.steps} steps after {args.warmup} warm-up, interleaved in blocks of {args.block}")  # fmt: skip
    header = f"{'model':<15} {'variant':<12} {'ms/step':>8} {'x dense':>8} {'quartiles of the rounds':>24}"
    print(header)
    print("-" * len(header))
    for model_name in args.models.split(","):
        results = measure(model_name, args.feed, args.steps, args.block, args.warmup)
        for name, (seconds, ratios) in results.items():
            q1, median, q3 = statistics.quantiles(ratios, n=4)
            print(f"{model_name:<15} {name:<12} {1000 * seconds:8.3f} {median:8.3f} {f'{q1:.3f} - {q3:.3f}':>24}")
        ratio, after_step, control = (
            statistics.quantiles(results[name][1], n=4)[1] for name in ("prunelab", "after step", "dense again")
        )
        print(f"{model_name}, {args.feed}: prunelab / dense = {ratio:.3f} (target <= 1.03): {'ok' if ratio <= 1.03 else 'MISSED'}"
              f"; prunelab / after step = {ratio / after_step:.3f}"
              f"; identical copies land {abs(control - 1):.3f} apart")  # fmt: skip


if __name__ == "__main__":
    main()
