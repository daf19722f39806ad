"""MNIST and Fashion-MNIST from the standard IDX files (plain or ``.gz``)."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from prunelab.data.files import download, not_found
from prunelab.data.registry import Dataset, DatasetFormatError, check_labels, register
from prunelab.wording import counted

# IDX type codes (third byte of the magic number); multi-byte values are big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

_GZIP_MAGIC = b"\x1f\x8b"

_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_MNIST_MD5 = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
# The zalando S3 website endpoint serves plain HTTP only; the MD5 check guards integrity.
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_FASHION_MD5 = {
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file into an array; gzip-compressed if its content starts with gzip's magic
    bytes, whatever its name (an IDX file starts with two zero bytes).

    Raises ``DatasetFormatError`` naming the file if it is not valid IDX or is truncated.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
    >>> _ = path.write_bytes(struct.pack(">HBBI", 0, 0x08, 1, 3) + bytes([7, 1, 4]))
    >>> read_idx(path).tolist()
    [7, 1, 4]
    """
    raw = path.read_bytes()
    # A browser or a tool may keep the compressed bytes but drop the .gz from the name, or
    # decompress them while saving and keep it.
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DatasetFormatError(f"{path}: corrupt or truncated gzip file ({e})") from e
    if len(raw) < 4:
        raise DatasetFormatError(f"{path}: {counted(len(raw), 'byte')} is too short for an IDX header")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise DatasetFormatError(
            f"{path}: not an IDX file (magic number 0x{raw[:4].hex()}; expected 0x0000, a type code "
            f"{', '.join(f'0x{known:02x}' for known in _IDX_DTYPES)} and a dimension count of at least 1)"
        )
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise DatasetFormatError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:offset])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = offset + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise DatasetFormatError(
            f"{path}: header promises shape {shape} ({counted(expected, 'byte')}) but the file has {counted(len(raw), 'byte')}"
        )
    return np.frombuffer(raw, dtype, offset=offset).reshape(shape)


def _find(folder: Path, name: str, dataset: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise not_found(dataset, folder / name, what="or .gz")


def _load(
    dataset: str,
    data_dir: Path,
    download_missing: bool,
    url: str,
    md5s: dict[str, str],
    mean: float,
    std: float,
) -> Dataset:
    folder = data_dir / dataset
    if download_missing:
        for name in _FILES.values():
            if not (folder / name).exists() and not (folder / f"{name}.gz").exists():
                download(f"{url}{name}.gz", folder / f"{name}.gz", md5s[name])
    paths = {key: _find(folder, name, dataset) for key, name in _FILES.items()}

    splits = {}
    for split in ("train", "test"):
        x_path, y_path = paths[f"x_{split}"], paths[f"y_{split}"]
        images, labels = read_idx(x_path), read_idx(y_path)
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8 or not len(images):
            raise DatasetFormatError(
                f"{x_path}: expected uint8 images (N, 28, 28), N > 0, got {images.dtype} of shape {images.shape}"
            )
        if labels.ndim != 1 or len(labels) != len(images):
            raise DatasetFormatError(f"{y_path}: expected {counted(len(images), 'label')}, got shape {labels.shape}")
        x = torch.from_numpy(images.astype(np.float32)).unsqueeze(1)
        splits[f"x_{split}"] = x.div_(255.0).sub_(mean).div_(std)
        splits[f"y_{split}"] = torch.from_numpy(check_labels(labels, 10, y_path))
    return Dataset(name=dataset, num_classes=10, **splits)


@register("mnist")
def load_mnist(data_dir: Path, download: bool = False) -> Dataset:
    """MNIST from ``data_dir/mnist``, inputs ``(1, 28, 28)`` normalized with mean 0.1307, std 0.3081.

    >>> ds = load_mnist(Path("~/.cache/prunelab/data").expanduser())  # doctest: +SKIP
    >>> ds.x_train.shape  # doctest: +SKIP
    torch.Size([60000, 1, 28, 28])
    """
    return _load("mnist", data_dir, download, _MNIST_URL, _MNIST_MD5, mean=0.1307, std=0.3081)


@register("fashion_mnist")
def load_fashion_mnist(data_dir: Path, download: bool = False) -> Dataset:
    """Fashion-MNIST from ``data_dir/fashion_mnist``, normalized with mean 0.2860, std 0.3530.

    >>> ds = load_fashion_mnist(Path("~/.cache/prunelab/data").expanduser())  # doctest: +SKIP
    >>> ds.x_test.shape  # doctest: +SKIP
    torch.Size([10000, 1, 28, 28])
    """
    return _load("fashion_mnist", data_dir, download, _FASHION_URL, _FASHION_MD5, mean=0.2860, std=0.3530)
