"""Datasets as in-memory tensors, loaded by name, and a fast mini-batch iterator.

>>> from prunelab.data import BatchIterator, load_dataset
>>> ds = load_dataset("mnist1d")  # doctest: +SKIP
>>> batches = BatchIterator(ds.x_train, ds.y_train, 128, shuffle=True)  # doctest: +SKIP
"""

# The loader modules fill DATASETS when imported.
from prunelab.data import cifar, idx, mnist1d, tiny_imagenet  # noqa: F401
from prunelab.data.loader import BatchIterator
from prunelab.data.registry import (
    AUGMENTED,
    DATASETS,
    Dataset,
    DatasetFormatError,
    DatasetNotFoundError,
    dataset_loader,
    default_data_dir,
    load_dataset,
    register,
)

__all__ = [
    "AUGMENTED",
    "DATASETS",
    "BatchIterator",
    "Dataset",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "dataset_loader",
    "default_data_dir",
    "load_dataset",
    "register",
]
