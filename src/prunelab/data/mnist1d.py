"""MNIST-1D (Greydanus, 2020), generated offline with the ``mnist1d`` package and cached as ``.npz``."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import torch

from prunelab.data.files import CACHE_ERRORS, read_cache, save_cache
from prunelab.data.registry import Dataset, register

CACHE_FILE = "mnist1d.npz"
_KEYS = ("x", "y", "x_test", "y_test")


def _generate() -> dict[str, np.ndarray]:
    """The default MNIST-1D split (4000 train / 1000 test, length 40), as published."""
    # Imported here: the package pulls in matplotlib, which costs a second at import time.
    from mnist1d.data import get_dataset_args, make_dataset

    # make_dataset reseeds the global `random` and NumPy generators; restore them so that
    # loading data never changes the randomness of the caller.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return {key: data[key] for key in _KEYS}


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None (with a warning) if the file is not a complete cache: it
    is regenerated then, the data being the same every time."""
    try:
        arrays = read_cache(path, _KEYS)
        # The generated data exactly: 4000 training and 1000 test examples of 40 finite
        # values, integer labels 0-9 (anything else is a damaged or foreign file).
        for x, y, n in (("x", "y", 4000), ("x_test", "y_test", 1000)):
            if arrays[x].shape != (n, 40) or arrays[y].shape != (n,):
                raise ValueError(f"{x} and {y} of shapes {arrays[x].shape} and {arrays[y].shape}, not ({n}, 40) and ({n},)")
            if arrays[x].dtype.kind != "f" or not np.isfinite(arrays[x]).all():
                raise ValueError(f"{x} is not finite floats")
            if arrays[y].dtype.kind not in "iu" or arrays[y].min() < 0 or arrays[y].max() > 9:
                raise ValueError(f"{y} is not integer labels 0-9")
    except CACHE_ERRORS as error:
        warnings.warn(f"{path} is not a valid MNIST-1D cache ({error}); generating it again", stacklevel=4)
        return None
    return arrays


@register("mnist1d")
def load_mnist1d(data_dir: Path, download: bool = False) -> Dataset:
    """MNIST-1D with its raw (already centred and scaled) values, inputs of shape ``(1, 40)``.

    ``download`` is ignored: the data is generated locally and cached in
    ``data_dir/mnist1d.npz``, so the network is never used.

    >>> ds = load_mnist1d(Path("/tmp/prunelab-doctest"))  # doctest: +SKIP
    >>> ds.x_train.shape, ds.x_test.shape  # doctest: +SKIP
    (torch.Size([4000, 1, 40]), torch.Size([1000, 1, 40]))
    """
    path = data_dir / CACHE_FILE
    arrays = _read_cache(path) if path.exists() else None
    if arrays is None:
        arrays = _generate()
        save_cache(path, arrays, "MNIST-1D", "generated again")

    def inputs(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.float32)).unsqueeze(1)

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.int64))

    return Dataset(
        name="mnist1d",
        x_train=inputs(arrays["x"]),
        y_train=labels(arrays["y"]),
        x_test=inputs(arrays["x_test"]),
        y_test=labels(arrays["y_test"]),
        num_classes=10,
    )
