"""Wall-clock speedup of channel pruning: the dense model vs the small model ``shrink()`` builds.

For each model (ResNet-20, VGG-16-BN; CIFAR-shaped random input, 10 classes) the channels
are pruned by :class:`prunelab.ChannelPruner` with ``filter_l1`` scores and
``scope="layerwise"`` (every channel group loses round(s * n) of its n channels) at channel
sparsities 0.3, 0.5 and 0.7, and :meth:`~prunelab.ChannelPruner.shrink` builds each
physically smaller dense model. Measured on batches of 128:

- **inference**: one forward pass in eval mode under ``torch.no_grad()``;
- **training step**: ``zero_grad``, forward, cross-entropy, backward and ``optimizer.step()``
  of SGD (momentum 0.9, weight decay 5e-4) in train mode, each variant with its own copy of
  the model and its own optimizer.

The dense model and the small ones of one model run interleaved in blocks of calls, in a
rotating order, so that drift in the machine's speed (other processes, frequency changes)
falls on all of them alike; the dense model is the one baseline of every sparsity. Each
variant first makes untimed warm-up calls. Reported: the median time of each variant, the
theoretical speedup (:func:`prunelab.analysis.count_macs` of the dense model over the small
one's: Conv and Linear multiply-accumulates only), and the measured speedup: the median
over the rounds of the dense block median over the small one's within a round, so that a
slow spell of the machine, which lasts longer than one round, cancels out, with the
quartiles of the rounds' ratios. Nothing is asserted about times.

Run from the repository root (about 1.5 minutes on 2 idle cores, 3 on a busy machine)::

    python benchmarks/structured_speedup.py
    python benchmarks/structured_speedup.py --models resnet20 --repeats 9 --sparsities 0.5
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from prunelab import ChannelPruner
from prunelab.analysis import count_macs, speedup
from prunelab.models import build_model

BATCH = 128
INPUT_SHAPE = (3, 32, 32)
MODELS = ("resnet20", "vgg16_bn")
SPARSITIES = (0.3, 0.5, 0.7)


@dataclass
class Variant:
    """One model (dense, or small at one channel sparsity) and its times, one list per round."""

    sparsity: float  # 0.0 for the dense model
    model: nn.Module
    inference: list[list[float]] = field(default_factory=list)
    training: list[list[float]] = field(default_factory=list)


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def inference_runner(model: nn.Module, x: torch.Tensor) -> Callable[[int], list[float]]:
    model.eval()

    def run(calls: int) -> list[float]:
        times = []
        with torch.no_grad():
            for _ in range(calls):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
        return times

    return run


def training_runner(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[int], list[float]]:
    model = copy.deepcopy(model).train()  # the inference copy keeps its weights and statistics
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def run(calls: int) -> list[float]:
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
        return times

    return run


def interleave(runners: list[Callable[[int], list[float]]], rounds: int, block: int, warmup: int) -> list[list[list[float]]]:
    """Per runner, its block of times in each round; runners take turns in a rotating order."""
    for run in runners:
        run(warmup)
    blocks: list[list[list[float]]] = [[] for _ in runners]
    order = list(range(len(runners)))
    for round_ in range(rounds):
        k = round_ % len(order)  # rotate who goes first
        for i in order[k:] + order[:k]:
            blocks[i].append(runners[i](block))
    return blocks


def ratios(dense: list[list[float]], small: list[list[float]]) -> list[float]:
    """Dense block median over small block median, one per round."""
    return [statistics.median(d) / statistics.median(s) for d, s in zip(dense, small)]


def spread(ratios: list[float]) -> str:
    """The median of the rounds' ratios, and their quartiles: how much the machine moved."""
    if len(ratios) < 2:
        return f"{ratios[0]:.2f}x"
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    return f"{median:.2f}x ({q1:.2f}-{q3:.2f})"


def measure(name: str, sparsities: list[float], args: argparse.Namespace) -> list[dict[str, object]]:
    torch.manual_seed(0)
    dense = build_model(name, num_classes=10, input_shape=INPUT_SHAPE)
    x, y = torch.randn(BATCH, *INPUT_SHAPE), torch.randint(0, 10, (BATCH,))
    variants = [Variant(0.0, dense)]
    for sparsity in sparsities:
        pruner = ChannelPruner(dense, x[:1], criterion="filter_l1")
        pruner.prune(sparsity, scope="layerwise")
        variants.append(Variant(pruner.channel_sparsity(), pruner.shrink()))

    blocks = interleave([inference_runner(v.model, x) for v in variants], args.repeats, args.block_inference, args.warmup)
    for v, b in zip(variants, blocks):
        v.inference = b
    blocks = interleave([training_runner(v.model, x, y) for v in variants], args.repeats, args.block_training, args.warmup)
    for v, b in zip(variants, blocks):
        v.training = b

    dense_macs, dense_params = count_macs(dense, x[:1]), params(dense)
    rows = []
    for v in variants:
        rows.append({
            "model": name,
            "sparsity": v.sparsity,
            "macs": speedup(dense_macs, count_macs(v.model, x[:1])),
            "inference ms": 1000 * statistics.median(t for b in v.inference for t in b),
            "inference": ratios(variants[0].inference, v.inference),
            "training ms": 1000 * statistics.median(t for b in v.training for t in b),
            "training": ratios(variants[0].training, v.training),
            "params": f"{dense_params / 1e6:.3f}M / {params(v.model) / 1e6:.3f}M",
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: resnet20, vgg16_bn")
    parser.add_argument("--sparsities", default=",".join(map(str, SPARSITIES)), help="channel sparsities, comma-separated")
    parser.add_argument("--repeats", type=int, default=7, help="rounds of interleaved blocks (one ratio per round)")
    parser.add_argument("--block-inference", type=int, default=2, help="forward passes per variant before switching")
    parser.add_argument("--block-training", type=int, default=1, help="training steps per variant before switching")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per variant before each phase")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sparsities = [float(s) for s in args.sparsities.split(",")]

    print(f"{time.strftime('%Y-%m-%d')}, torch {torch.__version__}, {torch.get_num_threads()} threads; batch {BATCH}, "
          f"input {INPUT_SHAPE}, filter_l1 layerwise; {args.repeats} rounds of blocks of {args.block_inference} "
          f"forward passes / {args.block_training} training steps after {args.warmup} warm-up call(s)")  # fmt: skip
    header = (f"{'model':<9} {'channel sp.':>11} {'MACs speedup':>12} {'infer ms':>9} {'infer speedup (q1-q3)':>22} "
              f"{'train ms':>9} {'train speedup (q1-q3)':>22} {'params dense / small':>21}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for name in args.models.split(","):
        for r in measure(name, sparsities, args):
            label = "dense" if r["sparsity"] == 0 else f"{r['sparsity']:.2f}"
            print(f"{r['model']:<9} {label:>11} {r['macs']:11.2f}x {r['inference ms']:9.1f} {spread(r['inference']):>22} "
                  f"{r['training ms']:9.1f} {spread(r['training']):>22} {r['params']:>21}")  # fmt: skip


if __name__ == "__main__":
    main()
