"""The tiny run the run-directory tests share: the default recipe on a tiny budget, a narrow CNN
(8 channels) in batches of 500, many times faster than the default and the same code paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunelab.config import load_recipe
from prunelab.runs.runner import run_recipe


@pytest.fixture(scope="module")
def tiny_overrides(data_dir: Path) -> list[str]:
    """The tiny run's --set overrides; test_resume's reference run is the same. A large LR
    for its 16 steps, and layer by layer, so that it learns, no layer is emptied and
    retraining moves every layer's kept weights."""
    return ["find.epochs=2", "eval.epochs=2", "device=cpu", "model.options.channels=8", "find.batch_size=500",
            "eval.batch_size=500", "find.optimizer.lr=1.0", "prune.scope=layerwise", f"data.data_dir={data_dir}"]  # fmt: skip


@pytest.fixture(scope="module")
def recipe(tiny_overrides: list[str]):
    return load_recipe(None, tiny_overrides)


@pytest.fixture(scope="module")
def run(recipe, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Made once a test session and shared (read only) by the test modules: run_recipe of a
    # finished run returns at once.
    return run_recipe(recipe, tmp_path_factory.getbasetemp() / "shared-runs", progress=False)
