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

The variants run interleaved in blocks of steps, in a rotating order, so that drift in the
machine's speed (other processes, frequency changes) falls on all of them alike. Reported:
the median step time of each after a warm-up, and its ratio to dense: the median over the
rounds of the ratio of the block medians within a round, so that a slow spell of the
machine, which lasts longer than one round, cancels out.

Run from the repository root::

    python benchmarks/training_overhead.py            # LeNet-300-100 and a small CNN, 1000 steps each
    python benchmarks/training_overhead.py --steps 3000 --models lenet_300_100
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from prunelab import Pruner

SPARSITY = 0.9
BATCH = 128


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

    def run(self, batches: list[tuple[torch.Tensor, torch.Tensor]], steps: int) -> list[float]:
        times = []
        for step in range(steps):
            x, y = batches[step % len(batches)]
            start = time.perf_counter()
            self.optimizer.zero_grad()
            nn.functional.cross_entropy(self.model(x), y).backward()
            self.optimizer.step()
            times.append(time.perf_counter() - start)
        return times


def measure(model_name: str, steps: int, block: int, warmup: int) -> dict[str, tuple[float, list[float]]]:
    """Per variant: median step time (seconds) and its ratio to dense in each round."""
    torch.manual_seed(0)
    base = MODELS[model_name]()
    variants = [Variant(name, base) for name in ("dense", "dense again", "prunelab", "after step", "torch prune")]
    batches = [(torch.randn(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))) for _ in range(8)]
    for variant in variants:
        variant.run(batches, warmup)
    for round_ in range(-(-steps // block)):
        k = round_ % len(variants)  # rotate who goes first
        for variant in variants[k:] + variants[:k]:
            variant.blocks.append(variant.run(batches, block))
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
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {BATCH}, sparsity {SPARSITY}, "
          f"median of {args.steps} steps after {args.warmup} warm-up, interleaved in blocks of {args.block}")  # fmt: skip
    header = f"{'model':<15} {'variant':<12} {'ms/step':>8} {'x dense':>8} {'quartiles of the rounds':>24}"
    print(header)
    print("-" * len(header))
    for model_name in args.models.split(","):
        results = measure(model_name, args.steps, args.block, args.warmup)
        for name, (seconds, ratios) in results.items():
            q1, median, q3 = statistics.quantiles(ratios, n=4)
            print(f"{model_name:<15} {name:<12} {1000 * seconds:8.3f} {median:8.3f} {f'{q1:.3f} - {q3:.3f}':>24}")
        ratio, after_step, control = (
            statistics.quantiles(results[name][1], n=4)[1] for name in ("prunelab", "after step", "dense again")
        )
        print(f"{model_name}: prunelab / dense = {ratio:.3f} (target <= 1.03): {'ok' if ratio <= 1.03 else 'MISSED'}"
              f"; prunelab / after step = {ratio / after_step:.3f}"
              f"; identical copies land {abs(control - 1):.3f} apart")  # fmt: skip


if __name__ == "__main__":
    main()
