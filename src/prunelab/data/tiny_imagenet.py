"""Tiny ImageNet-200 (Le & Yang, 2015) from the official JPEG folders, decoded once into a ``.npz`` cache."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from prunelab.data.augment import random_resized_crop_flip
from prunelab.data.files import CACHE_ERRORS, download_and_extract, not_found, read_cache, save_cache
from prunelab.data.registry import Dataset, DatasetFormatError, DatasetNotFoundError, register
from prunelab.wording import counted

NAME = "tiny_imagenet"
FOLDER = "tiny-imagenet-200"
CACHE_FILE = "tiny_imagenet.npz"
# The official address serves plain HTTP only; the MD5 check guards integrity.
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
SIDE = 64
_KEYS = ("x_train", "y_train", "x_test", "y_test", "wnids")


def read_image(path: Path) -> np.ndarray:
    """The 64x64 image at ``path`` as uint8 ``(3, 64, 64)`` RGB (greyscale ones repeated over
    the three channels); a file that is not such an image is an error naming it, a missing one
    a FileNotFoundError."""
    try:
        with Image.open(path) as image:
            if image.size == (SIDE, SIDE):  # checked before decoding: a header may claim any size
                return np.asarray(image.convert("RGB")).transpose(2, 0, 1)
            width, height = image.size
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:  # what Pillow raises for a corrupt file
        raise DatasetFormatError(f"{path}: not a readable image ({error})") from None
    raise DatasetFormatError(f"{path}: a {width}x{height} image; Tiny ImageNet's are {SIDE}x{SIDE}")


def channel_stats(images: np.ndarray) -> tuple[Tensor, Tensor]:
    """Per-channel mean and standard deviation of uint8 ``images`` ``(N, C, H, W)`` scaled to
    [0, 1]; exact, from integer sums of the values and of their squares (the squares taken a few
    thousand images at a time: no float copy of them all).

    >>> channel_stats(np.array([[[[0, 255]], [[51, 51]]]], dtype=np.uint8))
    (tensor([0.5000, 0.2000]), tensor([0.5000, 0.0000]))
    """
    axes, chunk = (0, 2, 3), 4096
    count = images.size // images.shape[1]
    mean = images.sum(axis=axes, dtype=np.uint64) / count
    squares = sum(np.square(images[i : i + chunk], dtype=np.uint16).sum(axis=axes, dtype=np.uint64) for i in range(0, len(images), chunk))
    std = np.sqrt(squares / count - mean**2)
    return torch.tensor(mean / 255, dtype=torch.float32), torch.tensor(std / 255, dtype=torch.float32)


def _classes(folder: Path, missing: Callable[[Path], Exception]) -> list[str]:
    """The WordNet ids of ``wnids.txt``, sorted: class ``i`` is the ``i``-th, as torchvision's ImageFolder orders them."""
    path = folder / "wnids.txt"
    if not path.exists():
        raise missing(path)
    wnids = path.read_text().split()
    if not wnids:
        raise DatasetFormatError(f"{path}: no WordNet ids")
    if len(set(wnids)) != len(wnids):
        raise DatasetFormatError(f"{path}: {sorted({w for w in wnids if wnids.count(w) > 1})} appear more than once")
    return sorted(wnids)


def _listing(folder: Path, wnids: list[str], missing: Callable[[Path], Exception]) -> dict[str, tuple[list[Path], list[int]]]:
    """The image files and class indices of the train split and of the labelled val split."""
    index = {wnid: i for i, wnid in enumerate(wnids)}
    train = folder / "train"
    if not train.is_dir():
        raise missing(train)
    for entry in sorted(train.iterdir()):
        if entry.is_dir() and entry.name not in index:
            raise DatasetFormatError(f"{entry}: {entry.name!r} is not one of the {counted(len(wnids), 'class', 'classes')} of {folder / 'wnids.txt'}")
    train_paths, train_labels = [], []
    for wnid in wnids:
        images = train / wnid / "images"
        if not images.is_dir():
            raise missing(images)
        paths = sorted(images.glob("*.JPEG"))
        train_paths += paths
        train_labels += [index[wnid]] * len(paths)
    annotations = folder / "val" / "val_annotations.txt"
    if not annotations.exists():
        raise missing(annotations)
    val_paths, val_labels = [], []
    for number, line in enumerate(annotations.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise DatasetFormatError(f"{annotations}, line {number}: expected a file name and a WordNet id separated by a tab, got {line!r}")
        if fields[1] not in index:
            raise DatasetFormatError(f"{annotations}, line {number}: {fields[1]!r} is not one of the "
                                     f"{counted(len(wnids), 'class', 'classes')} of {folder / 'wnids.txt'}")  # fmt: skip
        val_paths.append(folder / "val" / "images" / fields[0])
        val_labels.append(index[fields[1]])
    return {"train": (train_paths, train_labels), "test": (val_paths, val_labels)}


def _decode(folder: Path, missing: Callable[[Path], Exception]) -> dict[str, np.ndarray]:
    """Every image of the train and val splits, decoded: the arrays of the cache."""
    wnids = _classes(folder, missing)
    listing = _listing(folder, wnids, missing)
    print(f"decoding {counted(sum(len(paths) for paths, _ in listing.values()), 'image')} of {folder} "
          "(once: later loads read them decoded from the data folder)", file=sys.stderr)  # fmt: skip
    arrays = {"wnids": np.array(wnids)}
    for split, (paths, labels) in listing.items():
        images = np.empty((len(paths), 3, SIDE, SIDE), np.uint8)
        for i, path in enumerate(tqdm(paths, desc=f"{NAME} {split}", unit="image", disable=None, leave=False)):  # None: not in a log file
            try:
                images[i] = read_image(path)
            except FileNotFoundError:
                raise missing(path) from None
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images, np.array(labels, dtype=np.int64)
    return arrays


def _read_cache(path: Path, folder: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None (with a warning) if the file is not a complete cache or is one
    of other classes than ``folder/wnids.txt`` lists: the images are decoded again then."""
    try:
        arrays = read_cache(path, _KEYS)
        wnids = arrays["wnids"]
        if wnids.dtype.kind != "U" or wnids.ndim != 1 or not len(wnids) or list(wnids) != sorted(set(wnids)):
            raise ValueError("wnids is not a sorted list of distinct WordNet ids")
        for split in ("train", "test"):
            x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (3, SIDE, SIDE) or not len(x):
                raise ValueError(f"x_{split} is {x.dtype} of shape {x.shape}, not uint8 (N, 3, {SIDE}, {SIDE}), N > 0")
            if y.dtype != np.int64 or y.shape != (len(x),) or y.min() < 0 or y.max() >= len(wnids):
                raise ValueError(f"y_{split} is not {counted(len(x), 'label')} in [0, {len(wnids)})")
        listed = folder / "wnids.txt"
        if listed.exists() and sorted(listed.read_text().split()) != list(wnids):
            raise ValueError(f"its classes are not those of {listed}")
    except CACHE_ERRORS as error:
        warnings.warn(f"{path} is not a valid Tiny ImageNet cache ({error}); decoding the images again", stacklevel=4)
        return None
    return arrays


@register(NAME, augmented=True)
def load_tiny_imagenet(data_dir: Path, download: bool = False) -> Dataset:
    """Tiny ImageNet-200 from ``data_dir/tiny-imagenet-200``: 200 classes, inputs ``(3, 64, 64)``,
    100,000 training images and, as the test split, the 10,000 labelled validation images (the
    usual practice: the test images' labels were never released).

    Class ``i`` is the ``i``-th WordNet id of ``wnids.txt`` in sorted order, as torchvision's
    ImageFolder numbers them. Inputs are normalized per channel by the mean and std of the
    training pixels, computed at each load. Augmentation: seed 002's, torchvision's
    RandomResizedCrop (8% to 100% of the image, aspect ratios 3/4 to 4/3, resized to 64x64) and
    a horizontal flip.

    The JPEGs are decoded once (a minute or more) into ``data_dir/tiny_imagenet.npz`` (1.4 GB of
    uint8), read at later loads instead; the folder may be deleted then. In memory the float32
    training images take 4.9 GB, the test ones 0.5 GB.

    >>> ds = load_tiny_imagenet(Path("~/.cache/prunelab/data").expanduser())  # doctest: +SKIP
    >>> ds.x_train.shape, ds.x_test.shape, ds.num_classes  # doctest: +SKIP
    (torch.Size([100000, 3, 64, 64]), torch.Size([10000, 3, 64, 64]), 200)
    """
    folder, cache = data_dir / FOLDER, data_dir / CACHE_FILE
    arrays = _read_cache(cache, folder) if cache.exists() else None
    if arrays is None:
        if download and not folder.exists():
            download_and_extract(URL, MD5, data_dir, FOLDER)

        def missing(path: Path) -> DatasetNotFoundError:
            if download:  # the folder exists, so it was not downloaded again
                return DatasetNotFoundError(f"{NAME}: {path} not found in an incomplete {folder}; remove the folder to download it again")
            return not_found(NAME, path)

        arrays = _decode(folder, missing)
        save_cache(cache, arrays, "Tiny ImageNet", "decoded again")
    mean, std = (stat.view(1, 3, 1, 1) for stat in channel_stats(arrays["x_train"]))

    def inputs(images: np.ndarray) -> Tensor:
        return torch.from_numpy(images).float().div_(255.0).sub_(mean).div_(std)

    return Dataset(
        name=NAME,
        x_train=inputs(arrays["x_train"]),
        y_train=torch.from_numpy(arrays["y_train"]),
        x_test=inputs(arrays["x_test"]),
        y_test=torch.from_numpy(arrays["y_test"]),
        num_classes=len(arrays["wnids"]),
        augment=random_resized_crop_flip,
    )
