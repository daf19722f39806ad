"""Runs starting from trained weights (``model.weights``): loaded safely, checked before any
training, pruned as they are, and named by the file's contents."""

from __future__ import annotations

import argparse
import copy
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils import prune as torch_prune

from prunelab.config import RecipeError, load_recipe, run_name
from prunelab.data import load_dataset
from prunelab.models import build_model
from prunelab.runs import runner
from prunelab.runs.runner import run_recipe
from prunelab.runs.session import Session, finished_seeds, load_trained

START = ["seeds=[0]", "model.options={}", "find.epochs=0", "eval.epochs=1", "eval.lr_policy=null", "prune.sparsity=0.8", "threads=1"]


@pytest.fixture(scope="module")
def trained(data_dir: Path) -> nn.Module:
    """The default model trained by hand for a few hundred steps, well above chance."""
    data = load_dataset("mnist1d", data_dir)
    torch.manual_seed(3)
    model = build_model("mnist1d_cnn", data.num_classes, data.input_shape)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(200):
        batch = torch.randint(0, len(data.x_train), (128,))
        loss = nn.functional.cross_entropy(model(data.x_train[batch]), data.y_train[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def recipe(weights: Path, data_dir: Path, *extra: str):
    return load_recipe(None, [*START, f"data.data_dir={data_dir}", f"model.weights={weights}", *extra])


def test_a_run_prunes_the_weights_it_is_given(trained: nn.Module, data_dir: Path, tmp_path: Path) -> None:
    """A training checkpoint of DataParallel's names (a dict keeping the state dict, "module."
    before every name): the dense accuracy is theirs, and the masks are torch's global L1 masks
    of them."""
    weights = tmp_path / "trained.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in trained.state_dict().items()}}, weights)
    run = run_recipe(recipe(weights, data_dir), tmp_path / "runs", progress=False) / "seed-0"
    data = load_dataset("mnist1d", data_dir)
    with torch.no_grad():
        accuracy = (trained(data.x_test).argmax(1) == data.y_test).float().mean().item()
    assert accuracy > 0.5
    assert json.loads((run / "summary.json").read_text())["dense_acc"] == pytest.approx(accuracy, abs=1e-6)
    reference = {name: module for name, module in copy.deepcopy(trained).named_modules() if isinstance(module, (nn.Conv1d, nn.Linear))}
    torch_prune.global_unstructured([(m, "weight") for m in reference.values()], torch_prune.L1Unstructured, amount=0.8)
    masks = load_trained(run.parent)[1].masks
    assert masks.keys() == {f"{name}.weight" for name in reference}
    for name, module in reference.items():
        assert torch.equal(masks[f"{name}.weight"], module.weight_mask.bool()), name


def test_a_checkpoint_keeps_its_state_dict_beside_tensors_of_its_own(trained: nn.Module, data_dir: Path, tmp_path: Path) -> None:
    """A best accuracy kept as a tensor, first, does not make the checkpoint's dict the state dict."""
    weights = tmp_path / "checkpoint.pt"
    torch.save({"best_acc": torch.tensor(0.9), "state_dict": trained.state_dict()}, weights)
    session = Session(tmp_path / "seed-0", recipe(weights, data_dir), 0, load_dataset("mnist1d", data_dir), torch.device("cpu"), progress=False)
    for name, value in trained.state_dict().items():
        assert torch.equal(session.model.state_dict()[name], value), name


def test_a_run_is_named_by_the_contents_of_its_weights(trained: nn.Module, data_dir: Path, tmp_path: Path) -> None:
    weights = tmp_path / "trained.safetensors"
    save_file(trained.state_dict(), weights)
    name = run_name(recipe(weights, data_dir))
    assert name != run_name(load_recipe(None, [*START, f"data.data_dir={data_dir}"]))
    moved = shutil.copy(weights, tmp_path / "moved.safetensors")
    assert run_name(recipe(moved, data_dir)) == name  # the same weights elsewhere: the same experiment
    save_file({k: v + 1 for k, v in trained.state_dict().items()}, weights)
    assert run_name(recipe(weights, data_dir)) != name  # other weights in the same file: another one


def test_scratch_and_reinitialised_baselines_start_from_random_weights(trained: nn.Module, data_dir: Path, tmp_path: Path) -> None:
    """Reinitialised, a run from trained weights has the random weights a run without them has."""
    weights = tmp_path / "trained.safetensors"
    save_file(trained.state_dict(), weights)
    data = load_dataset("mnist1d", data_dir)
    given, random = (
        Session(tmp_path / folder, start, 0, data, torch.device("cpu"), progress=False)
        for folder, start in [("given", recipe(weights, data_dir)), ("random", load_recipe(None, [*START, f"data.data_dir={data_dir}"]))]
    )
    for name, value in trained.state_dict().items():
        assert torch.equal(given.model.state_dict()[name], value), name
    given.reinitialize(), random.reinitialize()
    for name, value in random.model.state_dict().items():
        assert torch.equal(given.model.state_dict()[name], value), name
    assert not torch.equal(given.model.features[0].weight, trained.features[0].weight)


def test_batchnorm_statistics_that_are_not_finite_are_refused_before_anything_is_written(data_dir: Path, tmp_path: Path) -> None:
    model = build_model("mnist1d_cnn", 10, (1, 40), batch_norm=True)
    with torch.no_grad():
        model.features[1].running_var[3] = float("inf")
    weights = tmp_path / "diverged.pt"
    torch.save(model.state_dict(), weights)
    with pytest.raises(RecipeError, match=f"model.weights: {weights} holds NaN or infinite values in features.1.running_var: "):
        run_recipe(recipe(weights, data_dir, "model.options={batch_norm: true}"), tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists()


def test_batchnorm_weights_saved_without_step_counts_load(data_dir: Path, tmp_path: Path) -> None:
    """torchvision's first ImageNet weights predate BatchNorm's num_batches_tracked."""
    torch.manual_seed(0)
    model = build_model("mnist1d_cnn", 10, (1, 40), batch_norm=True)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.uniform_(-1, 1), module.weight.uniform_(0.5, 1.5)
    weights = tmp_path / "old.pth"
    torch.save({k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}, weights)
    start = recipe(weights, data_dir, "model.options={batch_norm: true}")
    session = Session(tmp_path / "seed-0", start, 0, load_dataset("mnist1d", data_dir), torch.device("cpu"), progress=False)
    for name, value in model.state_dict().items():
        assert torch.equal(session.model.state_dict()[name], value), name


class Unsafe:
    """Pickled, this runs code when loaded without weights_only."""

    def __reduce__(self):
        return (print, ("code ran",))


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (None, "model.weights: no file {path}"),
        (lambda path, model: torch.save({**model.state_dict(), "classifier.0.bias": torch.zeros(1000)}, path),
         r"model.weights: {path} holds weights of another model than 'mnist1d_cnn' builds for mnist1d "
         r"\(classifier.0.bias has shape \(1000,\) in the file, \(10,\) in the model\)$"),
        (lambda path, model: torch.save({"features.0.weight": torch.zeros(3, 1, 5)}, path),
         r"\(features.0.weight has shape \(3, 1, 5\) in the file, \(25, 1, 5\) in the model; 7 more differences\)"),
        (lambda path, model: torch.save({"weights": Unsafe()}, path), r"model.weights: {path} holds more than tensors \(print\)"),
        (lambda path, model: torch.save({"args": argparse.Namespace(lr=0.1), "state_dict": model.state_dict()}, path),
         r"model.weights: {path} holds more than tensors \(argparse.Namespace\), which loading it safely \(weights_only=True\) "
         r"refuses: if you trust the file, save the state dict alone \(torch.save\(state_dict, file\)\)$"),
        (lambda path, model: torch.save(list(model.state_dict().values()), path), r"model.weights: {path} holds no state dict \(.*\)$"),
        (lambda path, model: torch.save({"net": model.state_dict(), "acc": 0.9}, path),
         r"model.weights: {path} holds no state dict \(.*\); its keys: 'net', 'acc'$"),
        (lambda path, model: path.write_text("weights"), r"model.weights: {path} is not a PyTorch file of tensors"),
        (lambda path, model: torch.save({k: v.mul(float("nan")) for k, v in model.state_dict().items()}, path),
         r"model.weights: {path} holds NaN or infinite values in features.0.weight, features.0.bias"),
    ],
    ids=["missing", "other-classes", "another-model", "code", "training-arguments", "not-a-state-dict", "under-a-key-of-its-own", "not-torch", "nan"],
)
def test_weights_that_cannot_start_a_run_are_refused_before_anything_is_written(write, message, trained, data_dir, tmp_path, capsys) -> None:
    weights = tmp_path / "trained.pt"
    if write is not None:
        write(weights, trained)
    with pytest.raises(RecipeError, match=message.format(path=weights)):
        run_recipe(recipe(weights, data_dir), tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists()
    assert "code ran" not in capsys.readouterr().out


def test_a_safetensors_file_that_is_not_one_is_said_so(data_dir: Path, tmp_path: Path) -> None:
    weights = tmp_path / "trained.safetensors"
    weights.write_bytes(pickle.dumps({"weight": 1}))
    with pytest.raises(RecipeError, match=f"model.weights: {weights} is not a safetensors file"):
        run_recipe(recipe(weights, data_dir), tmp_path / "runs", progress=False)


def test_the_same_weights_by_another_path_run_into_the_same_run(trained: nn.Module, data_dir: Path, tmp_path: Path) -> None:
    """A copy of the file elsewhere has the run name of the original, and its run directory
    takes the command's seeds (not an error of other settings for the path that differs)."""
    weights = tmp_path / "trained.safetensors"
    save_file(trained.state_dict(), weights)
    first = run_recipe(recipe(weights, data_dir), tmp_path / "runs", progress=False)
    copy = shutil.copy(weights, tmp_path / "copy.safetensors")
    again = run_recipe(recipe(copy, data_dir, "seeds=[0, 1]"), tmp_path / "runs", progress=False)
    assert again == first
    assert finished_seeds(first) == [0, 1]


def test_a_relative_or_home_path_names_the_same_file_from_any_folder(trained: nn.Module, data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """Read from the folder the recipe was given in; the run, resumed or given seeds later from
    another folder, still starts from that file (its recipe.yaml records where it is)."""
    (tmp_path / "home" / "weights").mkdir(parents=True)
    save_file(trained.state_dict(), tmp_path / "home" / "weights" / "trained.safetensors")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "home")
    relative, home = recipe(Path("weights/trained.safetensors"), data_dir), recipe(Path("~/weights/trained.safetensors"), data_dir)
    monkeypatch.chdir(tmp_path)
    data = load_dataset("mnist1d", data_dir)
    for given in (relative, home):
        session = Session(tmp_path / "seed-0", given, 0, data, torch.device("cpu"), progress=False)
        assert torch.equal(session.model.features[0].weight, trained.features[0].weight)
        shutil.rmtree(tmp_path / "seed-0")


def test_weights_changed_while_the_run_runs_start_no_more_of_its_seeds(trained: nn.Module, data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """A file a training still saves to: the next seed would start from other weights than the run is named by."""
    weights = tmp_path / "trained.safetensors"
    save_file(trained.state_dict(), weights)
    run_seed = runner.run_seed

    def then_overwrite(*args, **kwargs) -> bool:
        ran = run_seed(*args, **kwargs)
        save_file({k: v + 1 for k, v in trained.state_dict().items()}, weights)
        return ran

    monkeypatch.setattr(runner, "run_seed", then_overwrite)
    with pytest.raises(RecipeError, match=f"model.weights: {weights} changed while this run ran"):
        run_recipe(recipe(weights, data_dir, "seeds=[0, 1]"), tmp_path / "runs", progress=False)
    (run,) = (tmp_path / "runs").glob("oneshot-*")
    assert finished_seeds(run) == [0] and not (run / "seed-1" / "checkpoint.safetensors").exists()
    assert len(list((tmp_path / "runs" / ".find").iterdir())) == 1  # no find phase trained from the new contents


def test_imp_rewinds_to_the_given_weights(trained: nn.Module, data_dir: Path, tmp_path: Path) -> None:
    """The initialisation a rewind to init restores is the file's weights, not random ones."""
    weights = tmp_path / "trained.safetensors"
    save_file(trained.state_dict(), weights)
    start = recipe(weights, data_dir, "prune.method=imp", "prune.levels=2", "eval.rewind=init")
    session = Session(tmp_path / "seed-0", start, 0, load_dataset("mnist1d", data_dir), torch.device("cpu"), progress=False)
    init = session.read_weights("init")
    assert init.keys() == trained.state_dict().keys()
    for name, value in trained.state_dict().items():
        assert torch.equal(init[name], value), name


def test_channel_pruning_ranks_the_given_batchnorm_scales(data_dir: Path, tmp_path: Path) -> None:
    """Network slimming of given weights: the channels kept are those of the largest |gamma| of
    the file over all layers (global scope), whatever the random initialisation would have had."""
    torch.manual_seed(1)
    model = build_model("mnist1d_cnn", 10, (1, 40), batch_norm=True)
    norms = {name: module for name, module in model.named_modules() if isinstance(module, nn.BatchNorm1d)}
    with torch.no_grad():
        for norm in norms.values():
            norm.weight.uniform_(-2, 2)
    weights = tmp_path / "slim.safetensors"
    save_file(model.state_dict(), weights)
    extra = ["model.options={batch_norm: true}", "prune.method=oneshot", "prune.criterion=bn_scale", "prune.sparsity=0.5"]
    run = run_recipe(recipe(weights, data_dir, *extra), tmp_path / "runs", progress=False)
    kept = json.loads((run / "seed-0" / "channels.json").read_text())
    convolution = {name: str(int(name) - 1) for name in ("1", "4", "7")}  # each BatchNorm scales the convolution before it
    scales = [(norm.weight[i].abs().item(), f"features.{convolution[name.split('.')[1]]}", i) for name, norm in norms.items() for i in range(25)]
    largest = sorted(scales, reverse=True)[: sum(map(len, kept.values()))]
    assert {(layer, i) for _, layer, i in largest} == {(layer, i) for layer, indices in kept.items() for i in indices}
    assert 0 < sum(map(len, kept.values())) < 75


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_start_a_float32_model(trained: nn.Module, data_dir: Path, tmp_path: Path, dtype: torch.dtype) -> None:
    """Weights shared in half precision: the model trains in float32, from their values."""
    weights = tmp_path / "half.safetensors"
    save_file({name: value.to(dtype) for name, value in trained.state_dict().items()}, weights)
    session = Session(tmp_path / "seed-0", recipe(weights, data_dir), 0, load_dataset("mnist1d", data_dir), torch.device("cpu"), progress=False)
    for name, value in trained.state_dict().items():
        assert session.model.state_dict()[name].dtype == torch.float32, name
        assert torch.equal(session.model.state_dict()[name], value.to(dtype).float()), name
