"""Pruning sensitivity analysis (seed 000: choosing the sparsity of each layer).

For a trained model, each prunable tensor in turn is pruned alone by magnitude to each of a
list of sparsities, without retraining, and the loss and accuracy are measured: by default on
training examples, because the analysis is for choosing each layer's sparsity, and a choice
read off the test set would flatter the test accuracy it is then judged by. Layers
whose accuracy holds up to a high sparsity can be pruned harder than those whose accuracy
falls at once. The model passed in is never changed: the analysis prunes a copy.
"""

from __future__ import annotations

import copy
import itertools
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Context, Decimal

import torch
from torch import nn
from tqdm.auto import tqdm

from prunelab.data import Dataset
from prunelab.masks.pruner import Pruner
from prunelab.train import evaluate

DEFAULT_SPARSITIES: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


@dataclass
class LayerSensitivity:
    size: int  # weights in the tensor
    sparsities: list[float]
    losses: list[float]  # loss with only this tensor pruned to sparsities[i]
    accuracies: list[float]  # accuracy, likewise


@dataclass
class SensitivityResult:
    dense_loss: float
    dense_accuracy: float
    layers: dict[str, LayerSensitivity]  # by prunable parameter name, in the model's order
    split: str = "train"  # the examples measured: see pruning_sensitivity


def check_sparsities(sparsities: Sequence[float]) -> None:
    """Raise for a list of sparsities the analysis cannot use (before any model is trained):
    it must be non-empty, strictly increasing, of numbers in [0, 1).

    >>> check_sparsities([0.5, 0.2])
    Traceback (most recent call last):
    ...
    ValueError: sparsities must be strictly increasing, got [0.5, 0.2]
    """
    if isinstance(sparsities, str) or not isinstance(sparsities, Sequence):
        raise TypeError(f"sparsities must be a list of numbers, got {sparsities!r}")
    if not sparsities:
        raise ValueError("sparsities is empty: give at least one sparsity")
    for value in sparsities:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"sparsities must be numbers, got {value!r}")
        if not 0 <= value < 1:  # NaN fails this too
            raise ValueError(f"sparsities must lie in [0, 1), got {value!r}")
    if any(later <= earlier for earlier, later in itertools.pairwise(sparsities)):
        raise ValueError(f"sparsities must be strictly increasing, got {list(sparsities)}")


def percent_labels(sparsities: Sequence[float]) -> list[str]:
    """The sparsities as percentages, for a table's columns: to 6 significant digits, or as
    many more as tell them apart (and tell one below 1 from 100%).

    >>> percent_labels([0.5, 0.9, 0.95]), percent_labels([0.9, 0.9000001]), percent_labels([0.9999999])
    (['50%', '90%', '95%'], ['90%', '90.00001%'], ['99.99999%'])
    """
    # In decimal from each float's shortest repr, so that no float error shows among the digits.
    percents = [Decimal(repr(float(sparsity))).scaleb(2) for sparsity in sparsities]
    for digits in range(6, 18):  # at 17, every repr is shown whole: distinct sparsities always differ
        labels = [f"{Context(prec=digits).plus(percent).normalize():f}%" for percent in percents]
        if len(set(labels)) == len(labels) and "100%" not in labels:
            break
    return labels


def pruning_sensitivity(
    model: nn.Module,
    data: Dataset,
    sparsities: Sequence[float] = DEFAULT_SPARSITIES,
    *,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    split: str = "train",
    batch_size: int = 1000,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> SensitivityResult:
    """Loss and accuracy with each prunable tensor alone pruned by magnitude to each
    sparsity, no retraining. The tensors are those ``Pruner(model, include, exclude)`` finds,
    or the ``layers`` named among them (prunable parameter names), in the model's order.
    ``model`` is not changed. ``split`` is ``"train"`` (the first training examples, as many
    as the test set has: the same cost, and nothing seen of the test set) or ``"test"`` (the
    test set).

    >>> from prunelab.data import Dataset
    >>> x = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -0.5], [-0.5, 1.0]])
    >>> y = (x.sum(1) > 0).long()                     # class 1 iff x0 + x1 > 0
    >>> data = Dataset("toy", x, y, x, y, num_classes=2)
    >>> model = nn.Linear(2, 2, bias=False)
    >>> _ = model.weight.data.copy_(torch.tensor([[-1.0, -0.8], [0.5, 0.3]]))
    >>> result = pruning_sensitivity(model, data, [0.0, 0.5, 0.75], split="test", progress=False)
    >>> result.dense_accuracy, result.layers["weight"].size, result.layers["weight"].accuracies
    (1.0, 4, [1.0, 1.0, 0.75])
    >>> max_sparsity_within(result, tolerance=0.0)
    {'weight': 0.5}
    """
    check_sparsities(sparsities)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
    x, y = _examples(data, split)
    device = torch.device(device)
    # Pruning a copy leaves the model exactly as it was, even if the analysis is interrupted.
    work = copy.deepcopy(model).to(device)
    prunable = Pruner(work, include, exclude).parameters
    if layers is None:
        layers = list(prunable)
    elif isinstance(layers, str):
        raise TypeError(f"layers must be a list of parameter names, not the string {layers!r}")
    elif not layers:
        raise ValueError("layers is empty: name at least one prunable parameter, or leave it out for all")
    unknown = [name for name in layers if name not in prunable]
    if unknown:
        raise ValueError(f"not prunable parameters: {', '.join(map(str, unknown))}; prunable parameters are: {', '.join(prunable)}")
    layers = [name for name in prunable if name in layers]  # in the model's order, each once, as the result promises
    dense_loss, dense_accuracy = evaluate(work, x, y, device, batch_size)
    result = SensitivityResult(dense_loss, dense_accuracy, {}, split)
    bar = tqdm(total=len(layers) * len(sparsities), desc="sensitivity", disable=not progress, leave=False)
    for name in layers:
        weight = prunable[name]
        original = weight.detach().clone()
        curve = LayerSensitivity(weight.numel(), [float(s) for s in sparsities], [], [])
        for sparsity in sparsities:
            # A fresh pruner each time: masks never shrink, and each sparsity starts from the dense
            # weights. The escaped name matches this one tensor only, never another as a regex.
            Pruner(work, include, exclude).prune(ratios={re.escape(name): sparsity})
            loss, accuracy = evaluate(work, x, y, device, batch_size)
            curve.losses.append(loss)
            curve.accuracies.append(accuracy)
            with torch.no_grad():
                weight.copy_(original)  # dense again before the next sparsity or layer
            bar.update()
        result.layers[name] = curve
    bar.close()
    return result


def _examples(data: Dataset, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(data, Dataset):  # else an AttributeError for x_train, from inside the analysis
        raise TypeError(f"data must be a prunelab.data.Dataset, got {type(data).__name__}: "
                        "Dataset(name, x_train, y_train, x_test, y_test, num_classes) of in-memory tensors")  # fmt: skip
    if split == "test":
        return data.x_test, data.y_test
    if split == "train":
        return data.x_train[: len(data.x_test)], data.y_train[: len(data.x_test)]
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def max_sparsity_within(result: SensitivityResult, tolerance: float) -> dict[str, float | None]:
    """Per layer, the highest sparsity up to which the accuracy stays within ``tolerance``
    (a fraction: 0.01 is one point) of the dense accuracy: that sparsity and every lower one
    measured lose at most ``tolerance``. None if even the lowest sparsity measured loses more.

    >>> curve = LayerSensitivity(100, [0.5, 0.9, 0.99], [0.3, 0.4, 2.0], [0.90, 0.89, 0.50])
    >>> result = SensitivityResult(0.3, 0.90, {"fc.weight": curve})
    >>> max_sparsity_within(result, 0.01), max_sparsity_within(result, 0.005)
    ({'fc.weight': 0.9}, {'fc.weight': 0.5})
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real):
        raise TypeError(f"tolerance must be a number, got {tolerance!r}")
    if not tolerance >= 0:  # NaN fails this too
        raise ValueError(f"tolerance must be at least 0, got {tolerance!r}")
    best: dict[str, float | None] = {}
    for name, curve in result.layers.items():
        best[name] = None
        for sparsity, accuracy in zip(curve.sparsities, curve.accuracies):
            # A drop of exactly the tolerance is within it, though 0.90 - 0.89 > 0.01 in floats;
            # written as `not <=` so that a NaN accuracy ends the run of tolerated sparsities.
            if not result.dense_accuracy - accuracy <= tolerance + 1e-12:
                break
            best[name] = sparsity
    return best
