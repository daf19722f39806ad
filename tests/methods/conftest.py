"""Shared fixtures of the method tests: MNIST-1D cached once per test session, tiny recipes.

Every run uses the reference MNIST-1D CNN (25 channels) and batches of 500, so an epoch of
the 4000 MNIST-1D training examples is ``STEPS_PER_EPOCH = 8`` optimizer steps, and the find
phase lasts 3 epochs (24 steps, cosine LR from the default recipe). Runs that may share a
find phase go to one session-wide folder (``shared_out``); tests that count trainings use
their own.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from prunelab.config import Recipe, load_recipe
from prunelab.criteria import Random
from prunelab.data import Dataset, load_dataset
from prunelab.masks import Pruner
from prunelab.models import build_model
from prunelab.runs.checkpoint import load_checkpoint
from prunelab.runs.runner import FIND_CACHE, find_key
from prunelab.runs.session import Session

BASE = [
    "device=cpu",
    "model.name=mnist1d_cnn",
    "model.options={}",  # the reference CNN (25 channels, 5,210 parameters), whatever the default recipe says
    "seeds=[0]",
    "find.epochs=3",
    "find.batch_size=500",
    "eval.epochs=2",
    "eval.batch_size=500",
]


@pytest.fixture(scope="session")
def data(data_dir: Path) -> Dataset:
    return load_dataset("mnist1d", data_dir)


@pytest.fixture(scope="session")
def make_recipe(data_dir: Path) -> Callable[..., Recipe]:
    """``make_recipe("prune.method=imp", ...)``: the default recipe, made tiny, with overrides."""

    def make(*overrides: str, source: str | None = None) -> Recipe:
        return load_recipe(source, [*BASE, f"data.data_dir={data_dir}", *overrides])

    return make


@pytest.fixture
def refused_before_training(tmp_path: Path) -> Callable[[list[tuple[Recipe, str]]], None]:
    """``refused_before_training([(recipe, message), ...])``: each recipe's run fails with a
    ValueError matching its message, and none trains an epoch first."""
    from prunelab.runs.runner import run_recipe
    from prunelab.train import Trainer

    def check(cases: list[tuple[Recipe, str]]) -> None:
        trained: list[str] = []
        original = Trainer.train_epoch
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Trainer, "train_epoch", lambda self, epoch, **_: trained.append(self.phase) or original(self, epoch, **_))
            for recipe, message in cases:
                with pytest.raises(ValueError, match=message):
                    run_recipe(recipe, tmp_path, progress=False)
        assert trained == []

    return check


@pytest.fixture(scope="session")
def shared_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run folder for runs whose find phases may be shared (the ``.find`` cache)."""
    return tmp_path_factory.mktemp("method-runs")


STEPS_PER_EPOCH = 8  # 4000 training examples in batches of 500


@pytest.fixture(scope="session")
def steps_per_epoch() -> int:
    return STEPS_PER_EPOCH


def _model(recipe: Recipe, data: Dataset) -> nn.Module:
    return build_model(recipe.model.name, num_classes=data.num_classes, input_shape=data.input_shape)


@pytest.fixture(scope="session")
def prunable_names(data: Dataset) -> list[str]:
    """The weights of the Conv1d and Linear layers of the MNIST-1D CNN, found independently
    of the Pruner (which prunes exactly these by default)."""
    model = build_model("mnist1d_cnn", num_classes=data.num_classes, input_shape=data.input_shape)
    names = [f"{name}.weight" for name, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
    assert len(names) == 4
    return names


@pytest.fixture(scope="session")
def numel(prunable_names: list[str], data: Dataset) -> dict[str, int]:
    """Size of each prunable weight of the MNIST-1D CNN."""
    params = dict(build_model("mnist1d_cnn", num_classes=data.num_classes, input_shape=data.input_shape).named_parameters())
    return {name: params[name].numel() for name in prunable_names}


@pytest.fixture(scope="session")
def find_weights(data: Dataset) -> Callable[[Path, Recipe], dict[str, Tensor]]:
    """The weights at the end of the find phase, from the run folder's ``.find`` cache."""

    def load(out: Path, recipe: Recipe) -> dict[str, Tensor]:
        folder = Path(out) / FIND_CACHE / find_key(recipe, torch.device("cpu")) / "seed-0"
        model = _model(recipe, data)
        journal, _ = load_checkpoint(folder / "checkpoint.safetensors", model, Pruner(model))
        assert "find" in journal["done"], "the find phase of the cache is not finished"
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    return load


@pytest.fixture(scope="session")
def find_snapshot() -> Callable[[Path, Recipe, str], dict[str, Tensor]]:
    """``find_snapshot(out, recipe, name)``: the weights the shared find phase of ``recipe`` in
    ``out`` kept as ``name`` (init, rewind, find-epoch-<e>), which its runs rewind to; a seed's
    own copies are deleted once it has finished."""

    def load(out: Path, recipe: Recipe, name: str) -> dict[str, Tensor]:
        folder = Path(out) / FIND_CACHE / find_key(recipe, torch.device("cpu")) / "seed-0"
        return load_file(str(folder / "snapshots" / f"{name}.safetensors"))

    return load


@pytest.fixture(scope="session")
def load_masks(data: Dataset) -> Callable[[Path], dict[str, Tensor]]:
    """Bool masks (True = kept) of a saved ``masks/*.safetensors``, through Pruner.load_state_dict."""

    def load(path: Path, model_name: str = "mnist1d_cnn") -> dict[str, Tensor]:
        model = build_model(model_name, num_classes=data.num_classes, input_shape=data.input_shape)
        pruner = Pruner(model)
        pruner.load_state_dict(load_file(str(path)))
        return {name: mask.clone() for name, mask in pruner.masks.items()}

    return load


@pytest.fixture(scope="session")
def lowest_random_scores() -> Callable[..., dict[str, Tensor]]:
    """``lowest_random_scores(shapes, seed, sparsity=s)`` or ``(..., ratios={name: r})``: the
    masks of the random criterion worked out without a Pruner. The scores are Random(seed)'s
    (the hash checked against its unsigned arithmetic in the criteria tests); a stable sort
    drops the round(s * n) lowest of all layers together (ties by layer, then position), or
    round(r * n) within each layer."""

    def masks(shapes: dict[str, torch.Size], seed: int, sparsity: float | None = None, ratios: dict[str, float] | None = None) -> dict[str, Tensor]:
        scores = {name: Random(seed)(name, torch.zeros(shape.numel()), slice(0, shape.numel()), torch.empty(shape.numel()))
                  for name, shape in shapes.items()}  # fmt: skip
        groups = [(list(shapes), sparsity)] if ratios is None else [([name], ratios[name]) for name in shapes]
        kept = {}
        for names, fraction in groups:
            flat = torch.cat([scores[name] for name in names])
            keep = torch.ones(flat.numel(), dtype=torch.bool)
            keep[torch.sort(flat, stable=True).indices[: round(fraction * flat.numel())]] = False
            kept |= {name: piece.view(shapes[name]) for name, piece in zip(names, keep.split([shapes[n].numel() for n in names]))}
        return kept

    return masks


def read_json(path: Path):
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="session")
def read() -> Callable[[Path], object]:
    return read_json


@pytest.fixture(scope="session")
def hand_d1() -> Callable[[dict[str, Tensor], dict[str, Tensor], list[str], float], float]:
    """ALLR's d1 by hand (seed 003): ||theta - theta_p|| / (||theta|| sqrt(s)) over the
    prunable weights only, theta_p being theta with the newly pruned entries (False in
    ``masks``) zeroed and s the fraction of the remaining weights they were."""

    def d1(theta: dict[str, Tensor], masks: dict[str, Tensor], names: list[str], s: float) -> float:
        diff = sum(float((theta[n].double() * (~masks[n]).double()).pow(2).sum()) for n in names)
        norm = sum(float(theta[n].double().pow(2).sum()) for n in names)
        return math.sqrt(diff) / (math.sqrt(norm) * math.sqrt(s))

    return d1


@pytest.fixture(scope="session")
def phase_ends() -> Callable[[], contextlib.AbstractContextManager[dict[str, dict[str, Tensor]]]]:
    """``with phase_ends() as ends:`` runs inside record the model's weights at the end of
    each training phase, by phase (what the next pruning step prunes)."""

    @contextlib.contextmanager
    def watch():
        ends: dict[str, dict[str, Tensor]] = {}
        train = Session.train

        def watched(self, phase, config, **kwargs):
            result = train(self, phase, config, **kwargs)
            ends[phase] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            return result

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Session, "train", watched)
            yield ends

    return watch

