"""The dataset container, the registry of dataset loaders and ``load_dataset``."""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from prunelab.models.registry import built_in, close_name, same_definition
from prunelab.user_code import USER_ERRORS, user_error
from prunelab.wording import counted

DATA_ENV_VAR = "PRUNELAB_DATA"


class DatasetNotFoundError(FileNotFoundError):
    """The files of a dataset are not where they were looked for."""


class DatasetFormatError(ValueError):
    """A dataset file exists but is corrupt, truncated or of an unexpected layout."""


def check_labels(labels: np.ndarray, num_classes: int, source: object) -> np.ndarray:
    """``labels`` as int64 if they are integers in ``[0, num_classes)``, else an error naming ``source``.

    >>> check_labels(np.array([0, 9], dtype=np.uint8), 10, "labels-idx1-ubyte")
    array([0, 9])
    >>> check_labels(np.array([1.5]), 10, "labels-idx1-ubyte")
    Traceback (most recent call last):
    ...
    prunelab.data.registry.DatasetFormatError: labels-idx1-ubyte: labels must be integers, got float64
    """
    if not np.issubdtype(labels.dtype, np.integer):
        raise DatasetFormatError(f"{source}: labels must be integers, got {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetFormatError(f"{source}: labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}")
    return labels.astype(np.int64)


# eq=False: field-wise == on tensors is ambiguous, so compare datasets by identity.
@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification dataset held in memory as ready-to-use tensors.

    ``x_*`` are float32 of shape ``(N, *input_shape)`` and already normalized, ``y_*`` are
    int64 class indices. ``augment`` (train only) maps a batch and a ``torch.Generator`` to
    an augmented batch of the same shape.

    >>> ds = Dataset("toy", torch.zeros(4, 1, 3), torch.zeros(4, dtype=torch.long),
    ...              torch.zeros(2, 1, 3), torch.zeros(2, dtype=torch.long), num_classes=2)
    >>> ds.input_shape
    (1, 3)
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, numbers.Integral) or self.num_classes < 1:
            raise ValueError(f"{self.name}: num_classes must be a positive int, got {self.num_classes!r}")
        for field in ("x_train", "y_train", "x_test", "y_test"):
            value = getattr(self, field)
            if not isinstance(value, Tensor):  # else a numpy array's float32 reads as the wrong dtype
                convert = "torch.from_numpy(...)" if isinstance(value, np.ndarray) else "torch.as_tensor(...)"
                raise DatasetFormatError(f"{self.name}: {field} must be a torch.Tensor, got {type(value).__name__} ({convert})")
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if y.dim() == 2 and y.shape[1] == self.num_classes > 1:  # .long() alone would leave the shape wrong
                raise DatasetFormatError(f"{self.name} {split}: y_{split} of shape {tuple(y.shape)} holds a row per example (one-hot "
                                         f"or class probabilities); need one class index per example, int64 of shape ({len(y)},): .argmax(1)")  # fmt: skip
            if x.dtype != torch.float32:
                raise DatasetFormatError(f"{self.name} {split}: x_{split} must be float32, got {x.dtype} (.float())")
            if y.dtype != torch.int64:
                raise DatasetFormatError(f"{self.name} {split}: y_{split} must be int64 class indices, got {y.dtype} (.long())")
            # Else the loss fails at the first step, deep inside torch (labels of shape (N, 1), say).
            if x.dim() < 2 or y.dim() != 1:
                raise ValueError(f"{self.name} {split}: need inputs of shape (N, ...) and labels of shape (N,), one class index "
                                 f"per example; got {tuple(x.shape)} and {tuple(y.shape)}")  # fmt: skip
            if not bool(torch.isfinite(x).all()):  # else training fails later, seemingly for the weights
                raise DatasetFormatError(f"{self.name} {split}: the inputs hold NaN or infinite values")
            if len(x) != len(y):
                raise ValueError(f"{self.name} {split}: {counted(len(x), 'input')} but {counted(len(y), 'label')}")
            if not len(y):  # nothing to train on or to measure: a damaged or foreign file
                raise ValueError(f"{self.name} {split}: the split is empty")
            if not 0 <= int(y.min()) <= int(y.max()) < self.num_classes:  # which end is off: num_classes, or labels from 1
                raise ValueError(f"{self.name} {split}: labels outside [0, {self.num_classes}): they run {int(y.min())}..{int(y.max())}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(f"{self.name}: train inputs {tuple(self.x_train.shape[1:])} "
                             f"differ from test inputs {tuple(self.x_test.shape[1:])}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, without the batch dimension."""
        return tuple(self.x_train.shape[1:])


DatasetLoader = Callable[[Path, bool], Dataset]
DATASETS: dict[str, DatasetLoader] = {}
#: The datasets whose loaders give an ``augment`` (read by recipes' ``data.augment``).
AUGMENTED: set[str] = set()


def register(name: str, augmented: bool = False) -> Callable[[DatasetLoader], DatasetLoader]:
    """Decorator adding a loader ``(data_dir, download) -> Dataset`` to ``DATASETS``;
    ``augmented`` if the datasets it loads come with an ``augment``.

    >>> @register("doctest_toy")
    ... def toy(data_dir, download):
    ...     ...
    >>> DATASETS.pop("doctest_toy") is toy
    True
    """

    def decorator(loader: DatasetLoader) -> DatasetLoader:
        if name in DATASETS and not same_definition(DATASETS[name], loader):
            raise ValueError(f"dataset {name!r} is already registered")
        DATASETS[name] = loader
        AUGMENTED.discard(name)
        if augmented:
            AUGMENTED.add(name)
        return loader

    return decorator


def default_data_dir() -> Path:
    """``$PRUNELAB_DATA`` if set, else ``~/.cache/prunelab/data``."""
    env = os.environ.get(DATA_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "prunelab" / "data"


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = False) -> Dataset:
    """Load the registered dataset ``name`` from ``data_dir`` (default: ``default_data_dir()``).

    With ``download=True`` missing files are fetched from the official sources first;
    otherwise they raise ``DatasetNotFoundError`` saying where they were looked for.

    >>> ds = load_dataset("mnist1d", data_dir="/tmp/prunelab-doctest")  # doctest: +SKIP
    >>> ds.x_train.shape, ds.num_classes  # doctest: +SKIP
    (torch.Size([4000, 1, 40]), 10)
    """
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"data_dir must be a folder's path (a str or a Path), got {data_dir!r}")
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    loader = dataset_loader(name)
    try:
        data = loader(root, download)
    except USER_ERRORS as error:
        if built_in(loader):
            raise
        raise ValueError(user_error(f"dataset {name!r} cannot be loaded", error)) from error
    if not isinstance(data, Dataset):
        raise ValueError(
            f"dataset {name!r}: its loader returned {type(data).__name__}, not a prunelab.data.Dataset: return "
            "Dataset(name, x_train, y_train, x_test, y_test, num_classes) of in-memory tensors (a torch Dataset's "
            "examples stacked, e.g. torch.stack([x for x, _ in dataset]))"
        )
    return data


def dataset_loader(name: str) -> DatasetLoader:
    """The registered loader of ``name``; an unknown name is a ValueError listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}{close_name(name, DATASETS)}; known datasets: {', '.join(sorted(DATASETS))} (a dataset of your own is "
            "registered by its module with prunelab.data.register; on the command line: --import MODULE)"
        ) from None
