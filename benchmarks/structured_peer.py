"""Channel pruning side by side with Torch-Pruning, an independent implementation of the same criteria.

On the same weights, each model is pruned layerwise (every channel group loses a share s of
its channels) by :class:`prunelab.ChannelPruner` and by Torch-Pruning's ``MetaPruner``
(``global_pruning=False``, the last Linear layer in ``ignored_layers``; prunelab leaves the
model's outputs whole by itself), with scores summed over the layers of a residual-coupled
group on both sides (``group_reduction="sum"``, as prunelab's criteria and seed 002 do):

- ``filter_l1`` against Torch-Pruning's ``MagnitudeImportance(p=1)`` restricted to the
  filters (the output rows of the group's Conv/Linear layers): the same criterion, Li et al.'s;
- ``filter_l1`` against ``MagnitudeImportance(p=1)`` as it comes, which adds to the filters'
  norms the BatchNorm scales and the next layers' input columns (a group norm): another criterion;
- ``bn_scale`` against ``BNScaleImportance`` (network slimming).

Models: a plain conv net (Conv-4: convs 64-64-128-128 and Linear 256-256 units), VGG-16-BN and
ResNet-20, CIFAR-shaped, 10 classes, seeded; their BatchNorm scales, shifts and statistics
drawn at random, as if trained (untrained scales all tie at 1). Printed per model, criterion
and sparsity:

- **same layers**: the share of the model's Conv/Linear layers whose kept output channels are
  identical, first with each library counting the channels to remove its own way (prunelab
  ``round(s * n)``, as ``torch.nn.utils.prune`` does; Torch-Pruning keeps ``int(n * (1 - s))``),
  then with prunelab given Torch-Pruning's count of every group (``ratios``);
- **params** and **MACs** (:func:`prunelab.analysis.count_macs`) of both small models;
- **max |out diff|**: the largest difference of the two small models' outputs on one random
  batch of 8 in eval mode, at each library's own count and at Torch-Pruning's;
- **prune+shrink**: the time from the dense model to a small one, the dense model left as it
  was (prunelab: ``ChannelPruner``, ``prune``, ``shrink``; Torch-Pruning: a deep copy,
  ``MetaPruner``, ``step``), the median of each over ``--repeats`` rounds in which the two take
  turns, and the median (and range) of the rounds' ratios of prunelab's time over Torch-Pruning's.
  prunelab also checks the small model (its output shapes in both modes, its outputs against
  the dense model with the removed channels zeroed); nothing is asserted about times.

Torch-Pruning is no dependency of prunelab; install it (it needs only torch and numpy) with::

    python -m pip install --no-deps torch-pruning==1.6.1
    # or into a folder of its own, out of the way: --target DIR, then PYTHONPATH=DIR

Run from the repository root (about 1.5 minutes)::

    python benchmarks/structured_peer.py
    python benchmarks/structured_peer.py --models resnet20 --sparsities 0.5 --reduction first
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from prunelab import ChannelPruner
from prunelab.analysis import count_macs
from prunelab.models import build_model

try:
    import torch_pruning as tp
except ImportError:
    sys.exit(
        "structured_peer.py compares prunelab with Torch-Pruning, which is not installed (it is no dependency of "
        "prunelab): python -m pip install --no-deps torch-pruning==1.6.1 (or add --target DIR and run with PYTHONPATH=DIR)"
    )

INPUT_SHAPE = (3, 32, 32)
MODELS = ("conv4", "vgg16_bn", "resnet20")
SPARSITIES = (0.3, 0.5, 0.7)
LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
OUT_CHANNELS = (tp.prune_conv_out_channels, tp.prune_linear_out_channels)
Kept = dict[str, list[int]]  # kept output channels of every Conv/Linear layer, by name


class FilterImportance(tp.importance.GroupMagnitudeImportance):
    """Torch-Pruning's magnitude importance of the filters alone (the output rows of the
    group's Conv/Linear layers), leaving out its BatchNorm and input-column terms."""

    def __call__(self, group: tp.dependency.Group) -> torch.Tensor | None:
        filters = tp.dependency.Group()
        filters.items.extend(item for item in group.items if item.dep.handler in OUT_CHANNELS)
        return super().__call__(filters)


def peer_criteria(reduction: str) -> dict[str, list[tuple[str, str, Callable[[], object]]]]:
    """Per model kind, (prunelab criterion, label, Torch-Pruning importance factory) to compare."""
    filters = ("filter_l1", "TP filter L1", lambda: FilterImportance(p=1, group_reduction=reduction, normalizer=None))
    stock = ("filter_l1", "TP MagnitudeImportance(p=1)", lambda: tp.importance.MagnitudeImportance(p=1, group_reduction=reduction, normalizer=None))
    scales = ("bn_scale", "TP BNScaleImportance", lambda: tp.importance.BNScaleImportance(group_reduction=reduction, normalizer=None))
    return {"plain": [filters, stock], "batch_norm": [filters, stock, scales]}


def dense_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, input_shape=INPUT_SHAPE)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.weight.uniform_(0.1, 1.0)
                module.bias.uniform_(-0.1, 0.1)
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def all_kept(model: nn.Module) -> Kept:
    return {name: list(range(m.weight.shape[0])) for name, m in model.named_modules() if isinstance(m, LAYERS)}


def prunelab_prune(model: nn.Module, x: torch.Tensor, criterion: str, sparsity: float, counts: dict[str, int] | None = None) -> tuple[nn.Module, Kept]:
    """The small model and the kept channels of every layer; ``counts``: the channels to remove
    from each group (by the name of its first layer) instead of ``round(sparsity * n)``."""
    pruner = ChannelPruner(model, x, criterion=criterion)
    if counts is None:
        pruner.prune(sparsity, scope="layerwise")
    else:
        pruner.prune(ratios={g.name: counts[g.name] / g.size for g in pruner.groups})
    small = pruner.shrink()
    kept = all_kept(model)
    for group in pruner.groups:
        kept.update(dict.fromkeys(group.producers, pruner.keep[group.name].tolist()))
    return small, kept


def peer_prune(model: nn.Module, x: torch.Tensor, importance: object, sparsity: float) -> tuple[nn.Module, Kept]:
    """Torch-Pruning's small model (of a copy) and the kept channels of every layer, as its own groups couple them."""
    small = copy.deepcopy(model)
    names = {module: name for name, module in small.named_modules()}
    classifier = [m for m in small.modules() if isinstance(m, nn.Linear)][-1]
    pruner = tp.pruner.MetaPruner(small, x, importance=importance, pruning_ratio=sparsity, global_pruning=False, ignored_layers=[classifier])
    removed: dict[str, set[int]] = {}
    for group in pruner.step(interactive=True):
        for dep, indices in group:
            if dep.handler in OUT_CHANNELS:  # indices may be (index, index in the group's root) pairs
                removed[names[dep.target.module]] = {int(getattr(i, "idx", i)) for i in indices}
        group.prune()
    kept = {name: [c for c in channels if c not in removed.get(name, ())] for name, channels in all_kept(model).items()}
    return small.eval(), kept


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def same_layers(a: Kept, b: Kept) -> str:
    same = sum(a[name] == b[name] for name in a)
    return f"{same / len(a):4.0%} ({same}/{len(a)})"


def gap(a: nn.Module, b: nn.Module, batch: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(batch) - b(batch)).abs().max())


def timed(calls: list[Callable[[], object]], repeats: int) -> list[list[float]]:
    """Seconds of each call in each round; the calls take turns (the first one first in even rounds, last in odd ones)."""
    times: list[list[float]] = [[] for _ in calls]
    for round_ in range(repeats):
        order = range(len(calls)) if round_ % 2 == 0 else reversed(range(len(calls)))
        for i in order:
            start = time.perf_counter()
            calls[i]()
            times[i].append(time.perf_counter() - start)
    return times


def spread(ratios: list[float]) -> str:
    """The median of the rounds' ratios and their range: how much the machine moved."""
    return f"{statistics.median(ratios):.1f}x ({min(ratios):.1f}-{max(ratios):.1f})"


def compare(name: str, sparsities: list[float], args: argparse.Namespace) -> None:
    model = dense_model(name)
    x, batch = torch.randn(1, *INPUT_SHAPE), torch.randn(8, *INPUT_SHAPE)
    whole = all_kept(model)
    kind = "batch_norm" if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()) else "plain"
    for criterion, label, importance in peer_criteria(args.reduction)[kind]:
        for sparsity in sparsities:
            peer_small, peer_kept = peer_prune(model, x, importance(), sparsity)
            small, kept = prunelab_prune(model, x, criterion, sparsity)
            peer_counts = {layer: len(whole[layer]) - len(channels) for layer, channels in peer_kept.items()}
            matched_small, matched_kept = prunelab_prune(model, x, criterion, sparsity, peer_counts)
            ours, theirs = timed([lambda: prunelab_prune(model, x, criterion, sparsity), lambda: peer_prune(model, x, importance(), sparsity)], args.repeats)
            print(
                f"{name:<9} {criterion:<9} {label:<27} {sparsity:4.2f} {same_layers(kept, peer_kept):>13} {same_layers(matched_kept, peer_kept):>13} "
                f"{params(small):>9,} / {params(peer_small):<9,} {count_macs(small, x):>11,} / {count_macs(peer_small, x):<11,} "
                f"{gap(small, peer_small, batch):8.2g} / {gap(matched_small, peer_small, batch):<8.2g} "
                f"{1000 * statistics.median(ours):7.0f} / {1000 * statistics.median(theirs):<7.0f} {spread([a / b for a, b in zip(ours, theirs)]):>16}",
                flush=True,
            )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: conv4, vgg16_bn, resnet20 (any CIFAR-shaped model of the zoo)")
    parser.add_argument("--sparsities", default=",".join(map(str, SPARSITIES)), help="layerwise channel sparsities, comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of timed prune+shrink calls, one per library (one ratio per round)")
    parser.add_argument("--reduction", default="sum", help="Torch-Pruning's group_reduction (sum, as prunelab; first: the root layer's alone)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads, 0 for torch's default: 1 keeps the ratios steady on a shared machine (the work is mostly Python and forward passes of one example)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sparsities = [float(s) for s in args.sparsities.split(",")]

    print(f"{time.strftime('%Y-%m-%d')}, torch {torch.__version__}, Torch-Pruning {importlib.metadata.version('torch-pruning')}, "
          f"{torch.get_num_threads()} threads; layerwise, group_reduction={args.reduction!r}; same layers at each one's count / "
          f"at Torch-Pruning's; params, MACs, prune+shrink ms: prunelab / Torch-Pruning")  # fmt: skip
    header = (f"{'model':<9} {'criterion':<9} {'Torch-Pruning importance':<27} {'sp.':>4} {'same layers':>13} {'at TP count':>13} "
              f"{'params':>21} {'MACs':>25} {'max |out diff|':>19} {'prune+shrink ms':>17} {'ratio (range)':>16}")  # fmt: skip
    print(header)
    print("-" * len(header))
    peer_prune(dense_model("resnet20"), torch.randn(1, *INPUT_SHAPE), FilterImportance(p=1), 0.5)  # warm-up: first calls load code
    prunelab_prune(dense_model("resnet20"), torch.randn(1, *INPUT_SHAPE), "filter_l1", 0.5)
    for name in args.models.split(","):
        compare(name, sparsities, args)


if __name__ == "__main__":
    main()
