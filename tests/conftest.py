"""Fixtures shared by all test folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from prunelab.data import load_dataset


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models train several times faster on one thread than on two busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with MNIST-1D generated once per test session (offline)."""
    path = tmp_path_factory.getbasetemp() / "prunelab-data"
    path.mkdir(exist_ok=True)
    load_dataset("mnist1d", path)
    return path
