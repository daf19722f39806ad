"""MNIST-1D: generated offline once, then read from the .npz cache."""

from __future__ import annotations

import random
from pathlib import Path

import mnist1d.data
import numpy as np
import pytest
import torch

from prunelab.data import Dataset, load_dataset


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Dataset, dict, dict]:
    """One real generation (~3 s) shared by the tests, plus the draws of the global NumPy and
    Python ``random`` generators after it, and those that seeding alone gives (mnist1d's
    ``make_dataset`` reseeds both)."""
    data_dir = tmp_path_factory.mktemp("data")
    np.random.seed(123)
    random.seed(456)
    expected = {"numpy": np.random.RandomState(123).random_sample(), "random": random.Random(456).random()}
    ds = load_dataset("mnist1d", data_dir)
    return data_dir, ds, expected, {"numpy": np.random.random_sample(), "random": random.random()}


def test_shapes_and_classes(generated) -> None:
    _, ds, _, _ = generated
    assert ds.name == "mnist1d" and ds.num_classes == 10 and ds.augment is None
    assert ds.x_train.shape == (4000, 1, 40) and ds.x_test.shape == (1000, 1, 40)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert set(ds.y_train.unique().tolist()) == set(range(10))


def test_values_are_the_raw_mnist1d_ones(generated) -> None:
    _, ds, _, _ = generated
    # make_dataset centres and scales the whole set itself; we add no normalization.
    everything = torch.cat([ds.x_train, ds.x_test])
    assert abs(everything.mean().item()) < 0.01 and abs(everything.std().item() - 1) < 0.01


def test_global_numpy_rng_is_left_alone(generated) -> None:
    _, _, expected, actual = generated
    assert actual["numpy"] == expected["numpy"]


def test_global_python_random_is_left_alone(generated) -> None:
    _, _, expected, actual = generated
    assert actual["random"] == expected["random"]


def test_second_load_hits_the_cache(generated, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir, first, _, _ = generated
    calls = []
    monkeypatch.setattr(mnist1d.data, "make_dataset", lambda *args, **kwargs: calls.append(args))
    second = load_dataset("mnist1d", data_dir)
    assert calls == []
    assert (data_dir / "mnist1d.npz").exists()
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[: len(raw) // 2],  # a half-written file
        lambda raw: b"",  # an empty one
        lambda raw: b"not a cache",  # numpy would suggest loading it with pickle: never
    ],
)
def test_a_damaged_cache_is_generated_again(generated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage) -> None:
    """(Generation is replaced by the known arrays, which keeps the test fast.)"""
    data_dir, first, _, _ = generated
    arrays = {
        "x": first.x_train.squeeze(1).numpy(), "y": first.y_train.numpy(),
        "x_test": first.x_test.squeeze(1).numpy(), "y_test": first.y_test.numpy(),
    }  # fmt: skip
    cache = tmp_path / "mnist1d.npz"
    cache.write_bytes(damage((data_dir / "mnist1d.npz").read_bytes()))
    calls = []
    monkeypatch.setattr(mnist1d.data, "make_dataset", lambda *args, **kwargs: calls.append(args) or dict(arrays))
    with pytest.warns(UserWarning, match="not a valid MNIST-1D cache") as warned:
        again = load_dataset("mnist1d", tmp_path)
    assert [warning.filename for warning in warned] == [__file__]  # the line that loads the data, not one inside prunelab
    assert len(calls) == 1
    assert torch.equal(again.x_train, first.x_train) and torch.equal(again.y_test, first.y_test)
    assert load_dataset("mnist1d", tmp_path).x_test.shape == first.x_test.shape  # repaired: no second warning


@pytest.mark.parametrize(
    "shapes",
    [
        {"x": (4000, 39)},  # inputs of another length
        {"x": (3999, 40)},  # fewer inputs than labels
        {"x_test": (1000, 40, 1)},  # test inputs of another rank
        {"y_test": (999,)},  # fewer test labels than test inputs
    ],
    ids=["length", "train-count", "test-rank", "test-count"],
)
def test_a_cache_of_wrong_shapes_is_generated_again(generated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shapes) -> None:
    """A readable .npz whose arrays do not have MNIST-1D's shapes is not a cache either.
    (Generation is replaced by the known arrays, which keeps the test fast.)"""
    _, first, _, _ = generated
    arrays = {
        "x": first.x_train.squeeze(1).numpy(), "y": first.y_train.numpy(),
        "x_test": first.x_test.squeeze(1).numpy(), "y_test": first.y_test.numpy(),
    }
    wrong = {key: np.zeros(shapes.get(key, value.shape), dtype=value.dtype) for key, value in arrays.items()}
    np.savez(tmp_path / "mnist1d.npz", **wrong)
    calls = []
    monkeypatch.setattr(mnist1d.data, "make_dataset", lambda *args, **kwargs: calls.append(args) or dict(arrays))
    with pytest.warns(UserWarning, match="not a valid MNIST-1D cache"):
        again = load_dataset("mnist1d", tmp_path)
    assert len(calls) == 1
    assert torch.equal(again.x_train, first.x_train) and torch.equal(again.y_test, first.y_test)
    with np.load(tmp_path / "mnist1d.npz") as repaired:  # the cache was written anew
        assert repaired["x"].shape == (4000, 40) and repaired["y_test"].shape == (1000,)


@pytest.mark.parametrize(
    "damage",
    [
        lambda a: {**a, "y": a["y"] + 1},  # labels counted from 1: the last one past the classes
        lambda a: {**a, "y_test": a["y_test"] - 1},  # labels counted from -1
        lambda a: {**a, "y": a["y"].astype(np.float64) / 2},  # labels that are not integers, in range
        lambda a: {**a, "y_test": a["y_test"][:, None]},  # labels of another rank
        lambda a: {**a, "x": np.where(np.arange(40) == 3, np.nan, a["x"])},  # NaN inputs
        lambda a: {**a, "x": a["x"].astype(np.int64)},  # inputs rounded to integers
        lambda a: {key: value[:1] for key, value in a.items()},  # a cache of one example
        lambda a: {key: value for key, value in a.items() if key != "y_test"},  # an array missing
        lambda a: a["x"],  # one array saved as .npy under the cache's name
    ],
    ids=["label-range", "negative-labels", "float-labels", "label-rank", "nan-inputs", "int-inputs", "one-example", "missing-array", "npy"],
)
def test_a_cache_of_wrong_contents_is_generated_again(generated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage) -> None:
    _, first, _, _ = generated
    arrays = {
        "x": first.x_train.squeeze(1).numpy(), "y": first.y_train.numpy(),
        "x_test": first.x_test.squeeze(1).numpy(), "y_test": first.y_test.numpy(),
    }  # fmt: skip
    wrong = damage(arrays)
    with open(tmp_path / "mnist1d.npz", "wb") as f:
        np.save(f, wrong) if isinstance(wrong, np.ndarray) else np.savez(f, **wrong)
    monkeypatch.setattr(mnist1d.data, "make_dataset", lambda *args, **kwargs: dict(arrays))
    with pytest.warns(UserWarning, match="not a valid MNIST-1D cache"):
        again = load_dataset("mnist1d", tmp_path)
    assert torch.equal(again.x_train, first.x_train) and torch.equal(again.y_train, first.y_train)


def test_arrays_are_those_of_the_published_default_generation(generated) -> None:
    """Independent reference: ``mnist1d.data.make_dataset(get_dataset_args())`` called here
    directly (the package's default arguments, seed 42). prunelab adds no normalisation, only
    a channel dim and float32 inputs / int64 labels, so labels match exactly and inputs match
    the reference cast to float32."""
    _, ds, _, _ = generated
    py_state, np_state = random.getstate(), np.random.get_state()  # make_dataset reseeds both
    try:
        reference = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    for x, y, inputs, labels in (("x", "y", ds.x_train, ds.y_train), ("x_test", "y_test", ds.x_test, ds.y_test)):
        assert inputs.shape == (len(reference[x]), 1, 40) and labels.shape == reference[y].shape
        assert torch.equal(labels, torch.from_numpy(reference[y].astype(np.int64))), y
        assert torch.equal(inputs.squeeze(1), torch.from_numpy(reference[x].astype(np.float32))), x


def test_a_folder_the_cache_cannot_be_written_to_still_gives_the_data(generated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only data folder (a shared mount, a full disk): the generated data is used, with
    a warning naming the folder, and nothing is left behind."""
    import errno
    import os

    import prunelab.data.files as module

    _, first, _, _ = generated
    arrays = {
        "x": first.x_train.squeeze(1).numpy(), "y": first.y_train.numpy(),
        "x_test": first.x_test.squeeze(1).numpy(), "y_test": first.y_test.numpy(),
    }  # fmt: skip
    monkeypatch.setattr(mnist1d.data, "make_dataset", lambda *args, **kwargs: dict(arrays))

    def read_only(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(module, "atomic_write", read_only)
    with pytest.warns(UserWarning, match=r"could not cache MNIST-1D as .*mnist1d\.npz \(Read-only file system\); it is generated again") as warned:
        ds = load_dataset("mnist1d", tmp_path)
    assert [warning.filename for warning in warned] == [__file__]
    assert torch.equal(ds.x_train, first.x_train) and torch.equal(ds.y_test, first.y_test)
    assert list(tmp_path.iterdir()) == []
