"""load_dataset: names, data folder resolution and the Dataset container."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from prunelab.data import (
    AUGMENTED,
    DATASETS,
    Dataset,
    DatasetFormatError,
    DatasetNotFoundError,
    default_data_dir,
    load_dataset,
)
from prunelab.data.registry import check_labels


def test_registered_names() -> None:
    assert set(DATASETS) == {"mnist1d", "mnist", "fashion_mnist", "cifar10", "cifar100", "tiny_imagenet"}


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'") as info:
        load_dataset("imagenet")
    assert all(name in str(info.value) for name in DATASETS)


def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRUNELAB_DATA", str(tmp_path / "env-data"))
    assert default_data_dir() == tmp_path / "env-data"
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "env-data" / "mnist")):
        load_dataset("mnist")


def test_a_data_dir_starting_with_a_tilde_is_in_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(tmp_path / "data" / "mnist"))):
        load_dataset("mnist", "~/data")


def test_a_data_dir_that_is_no_path_is_named() -> None:
    # pathlib's own error named neither the argument nor the value.
    with pytest.raises(TypeError, match=r"^data_dir must be a folder's path \(a str or a Path\), got 5$"):
        load_dataset("mnist", data_dir=5)


def test_default_data_dir_without_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRUNELAB_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / ".cache" / "prunelab" / "data"
    monkeypatch.setenv("PRUNELAB_DATA", "")  # set but empty (`export PRUNELAB_DATA=`): not the current folder
    assert default_data_dir() == tmp_path / ".cache" / "prunelab" / "data"
    monkeypatch.setenv("PRUNELAB_DATA", "~/datasets")
    assert default_data_dir() == tmp_path / "datasets"


def test_check_labels_accepts_exactly_the_class_indices() -> None:
    assert check_labels(np.array([0, 9], dtype=np.uint8), 10, "f").dtype == np.int64
    assert check_labels(np.array([], dtype=np.uint8), 10, "f").tolist() == []
    for labels, ends in (([0, 10], "0..10"), ([-1, 3], "-1..3")):
        with pytest.raises(DatasetFormatError, match=rf"^f: labels must lie in \[0, 10\), got {ends}$"):
            check_labels(np.array(labels, dtype=np.int8), 10, "f")


def test_dataset_checks_its_tensors() -> None:
    x, y = torch.zeros(4, 2), torch.tensor([0, 1, 1, 0])
    assert Dataset("ok", x, y, x, y, num_classes=2).input_shape == (2,)
    with pytest.raises(ValueError, match="3 labels"):
        Dataset("short", x, y[:3], x, y, num_classes=2)
    with pytest.raises(ValueError, match=r"^labels train: labels outside \[0, 2\): they run 1..2$"):  # classes counted from 1
        Dataset("labels", x, y + 1, x, y, num_classes=2)
    with pytest.raises(ValueError, match=r"^labels test: labels outside \[0, 2\): they run -1..0$"):
        Dataset("labels", x, y, x, y - 1, num_classes=2)
    with pytest.raises(DatasetFormatError, match=r"^dtype train: x_train must be float32, got torch.float64 \(.float\(\)\)$"):
        Dataset("dtype", x.double(), y, x, y, num_classes=2)
    with pytest.raises(DatasetFormatError, match=r"^dtype test: y_test must be int64 class indices, got torch.float32 \(.long\(\)\)$"):
        Dataset("dtype", x, y, x, y.float(), num_classes=2)
    with pytest.raises(DatasetFormatError, match="nan test: the inputs hold NaN or infinite values"):
        Dataset("nan", x, y, torch.tensor([[0.0, float("nan")]] * 4), y, num_classes=2)
    with pytest.raises(ValueError, match="empty test: the split is empty"):
        Dataset("empty", x, y, x[:0], y[:0], num_classes=2)


def test_dataset_shapes_and_class_count_are_checked_before_any_training() -> None:
    # Labels of shape (N, 1) or a class count given as text failed at the first step, inside torch's loss.
    x, y = torch.zeros(4, 2), torch.tensor([0, 1, 1, 0])
    with pytest.raises(ValueError, match=r"column train: need inputs of shape \(N, ...\) and labels of shape \(N,\), one class index per example; got \(4, 2\) and \(4, 1\)"):
        Dataset("column", x, y[:, None], x, y, num_classes=2)
    with pytest.raises(ValueError, match=r"flat test: .* got \(4,\) and \(4,\)"):
        Dataset("flat", x, y, x[:, 0], y, num_classes=2)
    with pytest.raises(ValueError, match=r"one class train: need inputs of shape \(N, ...\) and labels of shape \(N,\)"):  # a column, not one-hot
        Dataset("one class", x, torch.zeros(4, 1, dtype=torch.long), x, y * 0, num_classes=1)
    with pytest.raises(ValueError, match=r"^sizes: train inputs \(2,\) differ from test inputs \(3,\)$"):
        Dataset("sizes", x, y, torch.zeros(4, 3), y, num_classes=2)
    for count in ("2", 0, 2.0, True):
        with pytest.raises(ValueError, match=f"classes: num_classes must be a positive int, got {re.escape(repr(count))}"):
            Dataset("classes", x, y, x, y, num_classes=count)


def test_a_dataset_of_numpy_arrays_or_one_hot_labels_is_told_what_to_convert() -> None:
    # A numpy array's float32 and int64 were reported as the wrong dtypes, and one-hot labels
    # were told to become .long(), which then failed on their shape.
    x, y = torch.zeros(4, 2), torch.tensor([0, 1, 2, 0])
    with pytest.raises(DatasetFormatError, match=r"^arrays: x_train must be a torch.Tensor, got ndarray \(torch.from_numpy\(...\)\)$"):
        Dataset("arrays", x.numpy(), y.numpy(), x.numpy(), y.numpy(), num_classes=3)
    with pytest.raises(DatasetFormatError, match=r"^lists: y_test must be a torch.Tensor, got list \(torch.as_tensor\(...\)\)$"):
        Dataset("lists", x, y, x, [0, 1, 2, 0], num_classes=3)
    one_hot = torch.eye(3)[y]
    for labels in (one_hot, one_hot.long()):
        with pytest.raises(DatasetFormatError, match=r"^onehot train: y_train of shape \(4, 3\) holds a row per example .* int64 of shape \(4,\): .argmax\(1\)$"):
            Dataset("onehot", x, labels, x, y, num_classes=3)


def test_a_loader_defined_again_replaces_itself_but_no_other() -> None:
    from prunelab.data import register

    def define(size: int):
        @register("doctest_again")
        def again(data_dir, download):
            x = torch.zeros(size, 4)
            return Dataset("doctest_again", x, torch.zeros(size, dtype=torch.long), x, torch.zeros(size, dtype=torch.long), num_classes=2)

        return again

    try:
        register("doctest_again", augmented=True)(define(3))
        assert "doctest_again" in AUGMENTED
        assert define(5) is DATASETS["doctest_again"]
        assert "doctest_again" not in AUGMENTED  # the new definition says it has no augment
        with pytest.raises(ValueError, match="dataset 'doctest_again' is already registered"):
            register("doctest_again")(lambda data_dir, download: None)
    finally:
        DATASETS.pop("doctest_again")


def test_a_user_loader_that_fails_or_returns_no_dataset_is_named() -> None:
    from prunelab.data import register

    @register("test_none")
    def returns_none(data_dir, download):
        return None

    @register("test_key")
    def raises(data_dir, download):
        return {}["x_train"]

    try:
        with pytest.raises(ValueError, match=r"^dataset 'test_none': its loader returned NoneType, not a prunelab.data.Dataset: return Dataset\(name, x_train, y_train, x_test, y_test, num_classes\) of in-memory tensors"):
            load_dataset("test_none")
        with pytest.raises(ValueError, match=rf"^dataset 'test_key' cannot be loaded: KeyError: 'x_train' \({re.escape(__file__)}, line \d+\)$"):
            load_dataset("test_key")
    finally:
        DATASETS.pop("test_none")
        DATASETS.pop("test_key")
