"""One-shot pruning in a real run: accuracy right after pruning and after retraining, both recorded."""

from __future__ import annotations

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
