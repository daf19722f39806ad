"""MNIST-1D: generated offline once, then read from the .npz cache."""

from __future__ import annotations

from pathlib import Path

import mnist1d.data
import numpy as np
import pytest
import torch

from prunelab.data import Dataset, load_dataset


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Dataset, float, float]:
    """One real generation (~3 s) shared by the tests, plus the global NumPy draws around it."""
    data_dir = tmp_path_factory.mktemp("data")
    np.random.seed(123)
    expected_draw = np.random.RandomState(123).random_sample()
    ds = load_dataset("mnist1d", data_dir)
    return data_dir, ds, expected_draw, np.random.random_sample()


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
    _, _, expected_draw, actual_draw = generated
    assert actual_draw == expected_draw


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
def test_a_damaged_cache_is_generated_again(generated, tmp_path: Path, damage) -> None:
    data_dir, first, _, _ = generated
    cache = tmp_path / "mnist1d.npz"
    cache.write_bytes(damage((data_dir / "mnist1d.npz").read_bytes()))
    with pytest.warns(UserWarning, match="not a valid MNIST-1D cache"):
        again = load_dataset("mnist1d", tmp_path)
    assert torch.equal(again.x_train, first.x_train) and torch.equal(again.y_test, first.y_test)
    assert load_dataset("mnist1d", tmp_path).x_test.shape == first.x_test.shape  # repaired: no second warning
