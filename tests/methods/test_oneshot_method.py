"""One-shot pruning in a real run: accuracy right after pruning and after retraining, both recorded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from prunelab.models import build_model
from prunelab.runs.runner import run_recipe
from prunelab.train import evaluate

SPARSITY = 0.9


@pytest.fixture(scope="module")
def oneshot_run(make_recipe, shared_out: Path):
    recipe = make_recipe("prune.method=oneshot", f"prune.sparsity={SPARSITY}", "eval.epochs=2")
    return recipe, run_recipe(recipe, shared_out, progress=False) / "seed-0"


def _model_with(weights, data):
    model = build_model("mnist1d_cnn", num_classes=data.num_classes, input_shape=data.input_shape)
    model.load_state_dict(weights)
    return model


def test_accuracy_after_pruning_is_that_of_the_trained_weights_with_the_mask(
    oneshot_run, shared_out, data, find_weights, load_masks, prunable_names, read
) -> None:
    recipe, seed = oneshot_run
    weights = find_weights(shared_out, recipe)
    masks = load_masks(seed / "masks" / "prune.safetensors")
    assert sorted(masks) == sorted(prunable_names)
    pruned = {k: v * masks[k] if k in masks else v for k, v in weights.items()}
    loss, acc = evaluate(_model_with(pruned, data), data.x_test, data.y_test, torch.device("cpu"))

    summary, events = read(seed / "summary.json"), read(seed / "events.json")
    assert events["prune"]["test_acc_after_prune"] == acc
    assert events["prune"]["test_loss_after_prune"] == pytest.approx(loss, rel=1e-6)
    assert summary["pruned_acc"] == acc
    # the dense accuracy is that of the find phase's last epoch
    find_rows = [r for r in read(seed / "metrics.json") if r["phase"] == "find"]
    assert len(find_rows) == recipe.find.epochs
    assert summary["dense_acc"] == find_rows[-1]["test_acc"]
    dense_loss, dense_acc = evaluate(_model_with(weights, data), data.x_test, data.y_test, torch.device("cpu"))
    assert dense_acc == find_rows[-1]["test_acc"]


def test_accuracy_after_retraining_is_that_of_the_final_weights(oneshot_run, data, read) -> None:
    recipe, seed = oneshot_run
    final = load_file(str(seed / "model.safetensors"))
    _, acc = evaluate(_model_with(final, data), data.x_test, data.y_test, torch.device("cpu"))
    eval_rows = [r for r in read(seed / "metrics.json") if r["phase"] == "eval"]
    assert len(eval_rows) == recipe.eval.epochs
    summary = read(seed / "summary.json")
    assert summary["final_acc"] == eval_rows[-1]["test_acc"] == acc
    # both accuracies also reach the run's aggregate
    stats = read(seed.parent / "summary.json")["stats"]
    assert stats["pruned_acc"]["mean"] == summary["pruned_acc"]
    assert stats["final_acc"]["mean"] == summary["final_acc"]


def test_exactly_the_target_is_pruned_by_global_magnitude(
    oneshot_run, shared_out, find_weights, load_masks, prunable_names, read
) -> None:
    recipe, seed = oneshot_run
    weights = find_weights(shared_out, recipe)
    masks = load_masks(seed / "masks" / "prune.safetensors")
    total = sum(weights[n].numel() for n in prunable_names)
    pruned = sum(int((~masks[n]).sum()) for n in prunable_names)
    assert pruned == round(SPARSITY * total)
    assert read(seed / "events.json")["prune"]["sparsity"] == pruned / total
    assert read(seed / "summary.json")["sparsity"] == pruned / total
    # global magnitude: no pruned weight is larger than a kept one, in any layer
    dropped = torch.cat([weights[n][~masks[n]].abs().flatten() for n in prunable_names])
    kept = torch.cat([weights[n][masks[n]].abs().flatten() for n in prunable_names])
    assert dropped.max() <= kept.min()
    # the final weights are zero wherever the mask says pruned
    final = load_file(str(seed / "model.safetensors"))
    for name in prunable_names:
        assert torch.all(final[name][~masks[name]] == 0)


def _saved_masks(seed_folder: Path) -> dict[str, torch.Tensor]:
    """The run's masks by name, unpacked without a Pruner (the bit layout of Pruner.state_dict)."""
    state = load_file(str(seed_folder / "masks" / "prune.safetensors"))
    masks = {}
    for key, packed in state.items():
        if key.startswith("mask:"):
            shape = tuple(state[f"shape:{key[5:]}"].tolist())
            bits = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)
            flat = (packed.view(-1, 1) & bits).ne(0).view(-1)[: torch.Size(shape).numel()]
            masks[key[5:]] = flat.view(shape)
    return masks


def test_the_recipe_s_criterion_include_exclude_and_ratios_reach_the_pruner(make_recipe, shared_out, data, prunable_names, lowest_random_scores) -> None:
    """Recipe options end to end: random criterion (its scores depend only on the seed, the
    name and the position, so the masks can be worked out from them alone), exclude, and ratios."""
    runs = {
        "random": make_recipe("prune.criterion=random", "prune.sparsity=0.8", "eval.epochs=1", "seeds=[0, 1]"),
        "exclude": make_recipe("prune.exclude=[classifier]", "prune.sparsity=0.8", "eval.epochs=1"),
        "ratios": make_recipe(
            "prune.scope=ratios", "prune.ratios={features.0: 0.5, features.2.weight: 0.75, classifier: 0.9}",
            "eval.epochs=1",
        ),
    }
    folders = {name: run_recipe(recipe, shared_out, progress=False) for name, recipe in runs.items()}
    model = build_model("mnist1d_cnn", num_classes=data.num_classes, input_shape=data.input_shape)
    shapes = {name: model.get_parameter(name).shape for name in prunable_names}
    for seed in (0, 1):
        expected = lowest_random_scores(shapes, seed, sparsity=0.8)
        saved = _saved_masks(folders["random"] / f"seed-{seed}")
        assert saved.keys() == expected.keys() and all(torch.equal(saved[n], expected[n]) for n in saved)
    assert not torch.equal(*(_saved_masks(folders["random"] / f"seed-{s}")["features.2.weight"] for s in (0, 1)))
    excluded = _saved_masks(folders["exclude"] / "seed-0")
    assert "classifier.0.weight" not in excluded
    assert sum(int((~m).sum()) for m in excluded.values()) == round(0.8 * sum(m.numel() for m in excluded.values()))
    ratios = _saved_masks(folders["ratios"] / "seed-0")
    for name, ratio in {"features.0.weight": 0.5, "features.2.weight": 0.75, "features.4.weight": 0.0,
                        "classifier.0.weight": 0.9}.items():
        assert int((~ratios[name]).sum()) == round(ratio * ratios[name].numel()), name


PRUNING_PEAK = """
import resource, sys, torch
from pathlib import Path
from prunelab.config import load_recipe
from prunelab.data import load_dataset
from prunelab.methods.common import prune
from prunelab.runs.session import Session
folder, data_dir = Path(sys.argv[1]), sys.argv[2]
recipe = load_recipe(None, ["model.name=mlp", "model.options={hidden_sizes: [2000, 2000]}", "device=cpu", f"data.data_dir={data_dir}"])
session = Session(folder, recipe, 0, load_dataset("mnist1d", data_dir), torch.device("cpu"), progress=False)
size = sum(p.numel() * p.element_size() for p in session.pruner.parameters.values())
in_use = int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()
before = max(in_use, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
prune(session, "prune", 0.9)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before) / size)
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the memory in use from Linux's /proc")
def test_a_pruning_step_holds_no_copy_of_the_weights_for_d1(data_dir: Path, tmp_path: Path) -> None:
    """d1 needs two norms, not the weights from before pruning: the step of a 16 MB model (most
    of it one 4M-weight layer) took 5 times the weights more memory than the run had needed
    before (a copy of them, then float64 copies of the largest layer and of its square); now
    less than half that, if any (the packed masks and the checkpoint are written after it)."""
    done = subprocess.run([sys.executable, "-c", PRUNING_PEAK, str(tmp_path / "seed-0"), str(data_dir)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert float(done.stdout.splitlines()[-1]) < 2.5
