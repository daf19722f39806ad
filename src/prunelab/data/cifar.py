"""CIFAR-10 and CIFAR-100 from the official python pickle batches, read with a restricted unpickler."""

from __future__ import annotations

import functools
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from prunelab.data.augment import random_crop_flip
from prunelab.data.files import download_and_extract, not_found
from prunelab.data.registry import Dataset, DatasetFormatError, DatasetNotFoundError, check_labels, register
from prunelab.wording import counted

class ForbiddenGlobalError(pickle.UnpicklingError, DatasetFormatError):
    """A pickle asked for a global outside the CIFAR allow-list, or for a numpy array that
    is not a plain array of numbers."""


class _Dtype:
    """A dtype as a pickle describes it, recorded rather than built: numpy would apply any
    state a pickle gives (e.g. a 1-byte dtype claiming 3072-byte items, which reads memory
    outside the array's buffer). Resolved to a plain numeric dtype or refused."""

    def __init__(self, spec: object, *_flags: object) -> None:
        self.spec, self.byteorder = spec, "="

    def __setstate__(self, state: object) -> None:
        # numpy's dtype state: (version, byteorder, subarray, names, fields, elsize, alignment, flags)
        if not (isinstance(state, tuple) and len(state) >= 5 and state[1] in ("<", ">", "|", "=") and state[2:5] == (None,) * 3):
            raise ForbiddenGlobalError(f"refusing a dtype that is not a plain number type (state {state!r})")
        self.byteorder = state[1]

    def resolve(self) -> np.dtype:
        spec = self.spec.decode() if isinstance(self.spec, bytes) else self.spec
        try:  # text numpy cannot parse ("" or "ix": TypeError, "u1(3,)": ValueError) is refused too
            dtype = np.dtype(spec) if isinstance(spec, str) and spec[:1] in "biuf" else None
        except (TypeError, ValueError):
            dtype = None
        if dtype is None or dtype.kind not in "biuf":
            raise ForbiddenGlobalError(f"refusing an array of {self.spec!r}: only plain numbers, not an array of Python objects")
        return dtype.newbyteorder(self.byteorder) if self.byteorder in "<>" else dtype


class _Array:
    """A numpy array as a pickle describes it (protocols 2-4: ``_reconstruct`` then its state;
    protocol 5: ``_frombuffer``), built by :meth:`resolve` from its raw bytes, sizes checked."""

    def __init__(self, *_reconstruct_args: object) -> None:
        self.state: tuple | None = None

    def __setstate__(self, state: object) -> None:
        self.state = state  # (version, shape, dtype, is_fortran, raw bytes)

    @classmethod
    def from_buffer(cls, buffer: object, dtype: object, shape: object, order: object) -> _Array:
        array = cls()
        array.state = (1, shape, dtype, order == "F", buffer)
        return array

    def resolve(self) -> np.ndarray:
        if not (isinstance(self.state, tuple) and len(self.state) == 5):
            raise DatasetFormatError(f"an array without its data ({self.state!r})")
        _, shape, dtype, fortran, raw = self.state
        if not isinstance(dtype, _Dtype):
            raise ForbiddenGlobalError(f"refusing an array whose dtype is {type(dtype).__name__}")
        dtype = dtype.resolve()
        if not isinstance(raw, (bytes, bytearray)):  # a list: the items of an array of Python objects
            raise ForbiddenGlobalError("refusing an array of Python objects")
        if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
            raise DatasetFormatError(f"an array of shape {shape!r}")
        if len(raw) != math.prod(shape) * dtype.itemsize:
            raise DatasetFormatError(f"an array of shape {shape} and {dtype} holds {counted(len(raw), 'byte')}, not {math.prod(shape) * dtype.itemsize}")
        return np.frombuffer(bytes(raw), dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _latin1(text: object, encoding: object = "latin1") -> bytes:
    """``_codecs.encode``, as Python 3 pickles bytes at protocol 2: latin-1 text only."""
    if not (isinstance(text, str) and encoding in ("latin1", "latin-1")):
        raise ForbiddenGlobalError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


def _scalar(dtype: object, raw: object) -> _Array:
    """A numpy scalar (``numpy.int64(3)`` as a label), built as a 0-d array of its raw bytes."""
    return _Array.from_buffer(raw, dtype, (), "C")


def _empty_bytes(*args: object) -> bytes:
    """``bytes()``, as Python 3 pickles ``b""`` at protocol 2; with anything to convert, refused."""
    if args:
        raise ForbiddenGlobalError(f"refusing builtins.bytes({type(args[0]).__name__}): only bytes() of nothing, as b'' is pickled")
    return b""


_NOT_CALLABLE = object()  # numpy.ndarray: only named as _reconstruct's first argument, never called

# What the official batches (and the same data pickled by Python 3) need; containers and
# bytes come from pickle opcodes. Nothing here runs numpy on what the pickle says.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NOT_CALLABLE,
    ("numpy", "dtype"): _Dtype,
    ("numpy.core.multiarray", "_reconstruct"): _Array,
    ("numpy._core.multiarray", "_reconstruct"): _Array,
    ("numpy.core.numeric", "_frombuffer"): _Array.from_buffer,
    ("numpy._core.numeric", "_frombuffer"): _Array.from_buffer,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("_codecs", "encode"): _latin1,
    ("builtins", "bytes"): _empty_bytes,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR batches: only plain containers and numpy arrays of numbers,
    nothing executable.

    Any other global (``os.system``, ``builtins.eval``, ...) raises ``ForbiddenGlobalError``,
    a ``pickle.UnpicklingError`` and a :class:`DatasetFormatError`.

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
        return _ALLOWED_GLOBALS[key]

    def load(self) -> Any:
        try:
            return _resolve(super().load())
        except RecursionError:
            raise DatasetFormatError(f"{self.source}: containers nested too deeply for a CIFAR batch") from None
        except DatasetFormatError as error:  # named after the file, once
            message = str(error)
            raise type(error)(message if message.startswith(self.source) else f"{self.source}: {message}") from None


def _resolve(value: Any, done: dict[int, Any] | None = None) -> Any:
    """``value`` with the recorded arrays built, through dicts, lists and tuples. An object the
    pickle refers to more than once is built once (``done``, by id), as pickle itself shares
    it, so that a small file cannot expand to an exponential number of copies."""
    # Ids stay unique meanwhile: every object of the pickle lives on through its root.
    done = {} if done is None else done
    if id(value) in done:
        if done[id(value)] is _BUILDING:
            raise DatasetFormatError("a container that contains itself")
        return done[id(value)]
    if isinstance(value, _Dtype) or value is _NOT_CALLABLE or callable(value):
        raise ForbiddenGlobalError(f"refusing a bare {type(value).__name__} outside an array")
    if not isinstance(value, (_Array, dict, list, tuple)):
        return value
    done[id(value)] = _BUILDING
    if isinstance(value, _Array):
        built = value.resolve()
    elif isinstance(value, dict):
        built = {_resolve(k, done): _resolve(v, done) for k, v in value.items()}
    else:
        built = type(value)(_resolve(v, done) for v in value)
    done[id(value)] = built
    return built


_BUILDING = object()  # in done while an object's parts are built


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
        except DatasetFormatError:  # the file's layout, said by the unpickler
            raise
        except Exception as e:  # a corrupt pickle fails in many ways: opcodes, protocol, encoding
            raise DatasetFormatError(f"{path}: corrupt or truncated pickle ({type(e).__name__}: {e})") from e
    if not isinstance(batch, dict):
        raise DatasetFormatError(f"{path}: expected a dict with keys b'data' and {label_key!r}, got a {type(batch).__name__}")
    if b"data" not in batch or label_key not in batch:
        # CIFAR-10 batches label by b'labels', CIFAR-100 ones by b'fine_labels': a mixed-up file says which it is.
        other = {b"labels": " (a CIFAR-10 batch?)", b"fine_labels": " (a CIFAR-100 batch?)"}
        hint = next((text for key, text in other.items() if key != label_key and key in batch), "")
        keys = sorted(map(repr, batch))
        shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
        raise DatasetFormatError(f"{path}: expected a dict with keys b'data' and {label_key!r}, got keys {shown or 'none'}{hint}")
    data = batch[b"data"]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.shape[1:] == (3 * 32 * 32,)):
        got = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetFormatError(f"{path}: b'data' must be a uint8 array of shape (n, 3072), got a {got}")
    try:
        labels = np.asarray(batch[label_key])
    except ValueError as e:
        raise DatasetFormatError(f"{path}: the labels are not a flat list of integers ({e})") from e
    if labels.shape != (len(data),):
        raise DatasetFormatError(f"{path}: {counted(len(data), 'image')} but labels of shape {labels.shape}")
    return data.reshape(-1, 3, 32, 32), check_labels(labels, num_classes, path)


def _load(spec: _Cifar, data_dir: Path, download: bool) -> Dataset:
    folder = data_dir / spec.folder
    if download and not folder.exists():
        download_and_extract(spec.url, spec.md5, data_dir, spec.folder)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)

    def split(files: tuple[str, ...]) -> tuple[Tensor, Tensor]:
        paths = [folder / name for name in files]
        for path in paths:
            if not path.exists() and download:  # the folder exists, so it was not downloaded again
                raise DatasetNotFoundError(f"{spec.name}: {path} not found in an incomplete {folder}; remove the folder to download it again")
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


@register("cifar10", augmented=True)
def load_cifar10(data_dir: Path, download: bool = False) -> Dataset:
    """CIFAR-10 from ``data_dir/cifar-10-batches-py``; inputs ``(3, 32, 32)``, crop+flip augmentation.

    >>> ds = load_cifar10(Path("~/.cache/prunelab/data").expanduser())  # doctest: +SKIP
    >>> ds.x_train.shape, ds.num_classes  # doctest: +SKIP
    (torch.Size([50000, 3, 32, 32]), 10)
    """
    return _load(CIFAR10, data_dir, download)


@register("cifar100", augmented=True)
def load_cifar100(data_dir: Path, download: bool = False) -> Dataset:
    """CIFAR-100 (fine labels) from ``data_dir/cifar-100-python``; inputs ``(3, 32, 32)``, crop+flip.

    >>> ds = load_cifar100(Path("~/.cache/prunelab/data").expanduser())  # doctest: +SKIP
    >>> ds.num_classes  # doctest: +SKIP
    100
    """
    return _load(CIFAR100, data_dir, download)
