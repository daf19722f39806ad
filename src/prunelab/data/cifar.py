"""CIFAR-10 and CIFAR-100 from the official python pickle batches, read with a restricted unpickler."""

from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from prunelab.data.files import download_and_extract, not_found
from prunelab.data.registry import Dataset, DatasetFormatError, check_labels, register

# numpy's array reconstructor, taken from ndarray.__reduce__ so that neither NumPy 1 nor 2
# warns about the module path (numpy.core became numpy._core).
_reconstruct = np.empty(0).__reduce__()[0]
# The official batches need nothing else: containers and bytes come from pickle opcodes.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
}


class ForbiddenGlobalError(pickle.UnpicklingError):
    """A pickle asked for a global outside the CIFAR allow-list."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR batches: only plain containers and numpy arrays, nothing executable.

    Any other global (``os.system``, ``builtins.eval``, ...) raises ``ForbiddenGlobalError``,
    a ``pickle.UnpicklingError``.

    >>> import io
    >>> RestrictedUnpickler(io.BytesIO(pickle.dumps({b"labels": [3, 1]}))).load()
    {b'labels': [3, 1]}
    """

    def __init__(self, file: Any, source: str = "<stream>") -> None:
        # The batches were written by Python 2: its str keys and array buffers must stay bytes.
        super().__init__(file, encoding="bytes")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        key = ("builtins" if module == "__builtin__" else module, name)
        if key not in _ALLOWED_GLOBALS:
            raise ForbiddenGlobalError(f"{self.source}: refusing to load global {module}.{name}")
        return self._plain_dtype if key == ("numpy", "dtype") else _ALLOWED_GLOBALS[key]

    def _plain_dtype(self, *args: Any) -> np.dtype:
        dtype = np.dtype(*args)
        if dtype.hasobject:  # arrays of Python objects would carry whatever the pickle builds
            raise ForbiddenGlobalError(f"{self.source}: refusing an array of Python objects ({dtype})")
        return dtype


@dataclass(frozen=True)
class _Cifar:
    name: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    url: str
    md5: str


# Per-channel mean and std of the training pixels in [0, 1]. The CIFAR-10 std seen in many
# repositories, (0.2023, 0.1994, 0.2010), is not the std of the data.
CIFAR10 = _Cifar(
    name="cifar10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    label_key=b"labels",
    num_classes=10,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
)
CIFAR100 = _Cifar(
    name="cifar100",
    folder="cifar-100-python",
    train_files=("train",),
    test_files=("test",),
    label_key=b"fine_labels",
    num_classes=100,
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85",
)


def read_batch(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 3, 32, 32)`` uint8 and labels ``(n,)`` int64 of one CIFAR pickle batch.

    >>> x, y = read_batch(Path("cifar-10-batches-py/test_batch"), b"labels", 10)  # doctest: +SKIP
    >>> x.shape, y.shape  # doctest: +SKIP
    ((10000, 3, 32, 32), (10000,))
    """
    with open(path, "rb") as f:
        try:
            batch = RestrictedUnpickler(f, source=str(path)).load()
        except ForbiddenGlobalError:
            raise
        except Exception as e:  # a corrupt pickle fails in many ways: opcodes, protocol, encoding
            raise DatasetFormatError(f"{path}: corrupt or truncated pickle ({type(e).__name__}: {e})") from e
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise DatasetFormatError(f"{path}: expected a dict with keys b'data' and {label_key!r}")
    data = batch[b"data"]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.shape[1:] == (3 * 32 * 32,)):
        raise DatasetFormatError(f"{path}: b'data' must be a uint8 array of shape (n, 3072)")
    try:
        labels = np.asarray(batch[label_key])
    except ValueError as e:
        raise DatasetFormatError(f"{path}: the labels are not a flat list of integers ({e})") from e
    if labels.shape != (len(data),):
        raise DatasetFormatError(f"{path}: {len(data)} images but labels of shape {labels.shape}")
    return data.reshape(-1, 3, 32, 32), check_labels(labels, num_classes, path)


def random_crop_flip(
    x: Tensor, generator: torch.Generator, padding: int = 4, fill: Tensor | None = None
) -> Tensor:
    """Per-example random crop (after padding each side by ``padding``) and horizontal flip.

    ``x`` is a batch ``(N, C, H, W)``; the padding value per channel is ``fill`` (default 0).
    The same generator state gives the same result.

    >>> x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    >>> random_crop_flip(x, torch.Generator().manual_seed(0), padding=1).shape
    torch.Size([2, 3, 4, 4])
    """
    n, c, h, w = x.shape
    padded = x.new_zeros(n, c, h + 2 * padding, w + 2 * padding)
    if fill is not None:
        padded += fill.to(x).view(1, c, 1, 1)
    padded[:, :, padding : padding + h, padding : padding + w] = x
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    rows = top[:, None] + torch.arange(h)
    cols = left[:, None] + torch.arange(w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    return padded[
        torch.arange(n)[:, None, None, None],
        torch.arange(c)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


def _load(spec: _Cifar, data_dir: Path, download: bool) -> Dataset:
    folder = data_dir / spec.folder
    if download and not folder.exists():
        download_and_extract(spec.url, spec.md5, data_dir, spec.folder)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)

    def split(files: tuple[str, ...]) -> tuple[Tensor, Tensor]:
        paths = [folder / name for name in files]
        for path in paths:
            if not path.exists():
                raise not_found(spec.name, path)
        batches = [read_batch(path, spec.label_key, spec.num_classes) for path in paths]
        x = torch.from_numpy(np.concatenate([images for images, _ in batches]).astype(np.float32))
        y = torch.from_numpy(np.concatenate([labels for _, labels in batches]))
        return x.div_(255.0).sub_(mean).div_(std), y

    x_train, y_train = split(spec.train_files)
    x_test, y_test = split(spec.test_files)
    # Pad with black pixels as seen after normalization, like RandomCrop before Normalize.
    black = (-mean / std).flatten()
    return Dataset(
        name=spec.name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=spec.num_classes,
        augment=functools.partial(random_crop_flip, padding=4, fill=black),
    )


@register("cifar10")
def load_cifar10(data_dir: Path, download: bool = False) -> Dataset:
    """CIFAR-10 from ``data_dir/cifar-10-batches-py``; inputs ``(3, 32, 32)``, crop+flip augmentation.

    >>> ds = load_cifar10(Path("~/.cache/prunelab/data").expanduser())  # doctest: +SKIP
    >>> ds.x_train.shape, ds.num_classes  # doctest: +SKIP
    (torch.Size([50000, 3, 32, 32]), 10)
    """
    return _load(CIFAR10, data_dir, download)


@register("cifar100")
def load_cifar100(data_dir: Path, download: bool = False) -> Dataset:
    """CIFAR-100 (fine labels) from ``data_dir/cifar-100-python``; inputs ``(3, 32, 32)``, crop+flip.

    >>> ds = load_cifar100(Path("~/.cache/prunelab/data").expanduser())  # doctest: +SKIP
    >>> ds.num_classes  # doctest: +SKIP
    100
    """
    return _load(CIFAR100, data_dir, download)
