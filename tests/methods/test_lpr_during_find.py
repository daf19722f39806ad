"""``find.lpr_every``: the LPR that pruning the find phase's weights after each kept epoch
would have given, and its distance from the LPR of pruning at the end (seed 002, Figures
A18 and A19), checked against torch.nn.utils.prune's global L1 masks of the kept weights."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from prunelab.cli import main
from prunelab.config import load_recipe, run_name, unused_settings
from prunelab.config.schema import unread_settings
from prunelab.methods.common import lpr_epochs
from prunelab.models import build_model
from prunelab.report.runs import write_report
from prunelab.runs.runner import find_key, run_recipe
from prunelab.runs.session import Session


def torch_global_lpr(weights: dict[str, torch.Tensor], sparsity: float) -> dict[str, float]:
    """Per-layer pruned share of torch's global L1 pruning of the MNIST-1D CNN's Conv1d/Linear weights."""
    model = build_model("mnist1d_cnn", num_classes=10, input_shape=(1, 40))
    model.load_state_dict(weights)
    layers = {f"{name}.weight": m for name, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Linear))}
    torch_prune.global_unstructured([(m, "weight") for m in layers.values()], torch_prune.L1Unstructured, amount=sparsity)
    return {name: int((m.weight_mask == 0).sum()) / m.weight_mask.numel() for name, m in layers.items()}


def events(run: Path) -> dict:
    return json.loads((run / "seed-0" / "events.json").read_text())


def test_oneshot_records_the_lpr_of_every_kept_epoch(make_recipe, shared_out, tmp_path, capsys, find_snapshot) -> None:
    recipe = make_recipe("prune.sparsity=0.8", "eval.epochs=1", "find.lpr_every=1", "seeds=[0, 1]")
    retraining_starts_with = []
    train = Session.train

    def watched(self, phase, config, **kwargs):
        if phase == "eval":
            retraining_starts_with.append(sorted(path.name for path in (self.folder / "snapshots").iterdir()))
        return train(self, phase, config, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Session, "train", watched)
        run = run_recipe(recipe, shared_out, progress=False)
    pruned = events(run)["prune"]
    record = pruned["lpr_during_find"]
    assert record["epochs"] == [0, 1, 2, 3]
    # the run's copies of the kept weights are deleted once recorded; the shared find phase keeps them
    assert retraining_starts_with == [["init.safetensors"]] * 2
    for epoch, name in [(0, "init"), (1, "find-epoch-1"), (2, "find-epoch-2")]:
        expected = torch_global_lpr(find_snapshot(shared_out, recipe, name), 0.8)
        assert {layer: ratios[epoch] for layer, ratios in record["layer_sparsity"].items()} == pytest.approx(expected, abs=1e-12)
    final = pruned["layer_sparsity"]
    assert {layer: ratios[-1] for layer, ratios in record["layer_sparsity"].items()} == final
    for i in range(4):
        by_hand = sum(abs(record["layer_sparsity"][layer][i] - final[layer]) for layer in final) / len(final)
        assert record["distance"][i] == pytest.approx(by_hand, abs=1e-15)
    assert record["distance"][-1] == 0 and record["distance"][0] > 0.001  # the initial weights rank layers otherwise
    assert (run / "seed-0" / "lpr_during_find.png").read_bytes().startswith(b"\x89PNG")

    assert main(["show", str(run)]) == 0
    shown = ", ".join(f"{e}: {100 * d:.2f}" for e, d in zip(record["epochs"], record["distance"]))
    assert f"points (seed-0; lpr_during_find.png shows the layers): {shown}\n" in capsys.readouterr().out

    page = write_report([run], tmp_path).read_text()
    assert "## Layerwise pruning ratios during the find phase" in page
    section = page.split("## Layerwise pruning ratios during the find phase")[1].split("\n## ")[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("|")][2:]  # header, rule
    assert [int(epoch) for epoch, _ in rows] == [0, 1, 2, 3]
    other = json.loads((run / "seed-1" / "events.json").read_text())["prune"]["lpr_during_find"]["distance"]
    assert other != record["distance"]  # the report's mean over seeds
    mean = [100 * (a + b) / 2 for a, b in zip(record["distance"], other)]
    std = [100 * abs(a - b) / 2**0.5 for a, b in zip(record["distance"], other)]  # of two values: |a - b| / sqrt(2)
    cells = [[float(part) for part in cell.split("±")] for _, cell in rows]
    assert [m for m, *_ in cells] == pytest.approx(mean, abs=0.005)
    assert [s[0] if s else 0.0 for _, *s in cells] == pytest.approx(std, abs=0.005)
    assert (tmp_path / "lpr_distance.png").exists()


def test_the_weights_kept_are_the_find_phase_s_at_the_end_of_each_epoch(make_recipe, tmp_path, find_snapshot) -> None:
    recipe = make_recipe("eval.epochs=0", "find.lpr_every=1")
    at_epoch_end = {}
    checkpoint_phase = Session._checkpoint_phase

    def watched(self, trainer):
        if trainer.phase == "find":
            at_epoch_end[trainer.state.epoch] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        checkpoint_phase(self, trainer)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Session, "_checkpoint_phase", watched)
        run_recipe(recipe, tmp_path, progress=False)  # a folder of its own: the find phase trains here, watched
    assert sorted(at_epoch_end) == [1, 2, 3]
    for epoch in (1, 2):
        kept = find_snapshot(tmp_path, recipe, f"find-epoch-{epoch}")
        assert kept.keys() == at_epoch_end[epoch].keys()
        assert all(torch.equal(kept[k], at_epoch_end[epoch][k]) for k in kept), epoch


def test_imp_records_it_at_its_first_level_only(make_recipe, shared_out, find_snapshot) -> None:
    recipe = make_recipe("prune.method=imp", "prune.rate=0.5", "prune.levels=2", "eval.epochs=1", "find.lpr_every=2")
    run = run_recipe(recipe, shared_out, progress=False)
    recorded = events(run)
    record = recorded["level-1/prune"]["lpr_during_find"]
    assert record["epochs"] == [0, 2, 3]
    for i, name in [(0, "init"), (1, "find-epoch-2")]:  # pruned to the first level's target, 50%
        expected = torch_global_lpr(find_snapshot(shared_out, recipe, name), 0.5)
        assert {layer: ratios[i] for layer, ratios in record["layer_sparsity"].items()} == pytest.approx(expected, abs=1e-12)
    final = recorded["level-1/prune"]["layer_sparsity"]
    assert len(final) != len(record["epochs"])  # a mean over layers, not over the 3 points
    for i in range(3):
        by_hand = sum(abs(record["layer_sparsity"][layer][i] - final[layer]) for layer in final) / len(final)
        assert record["distance"][i] == pytest.approx(by_hand, abs=1e-15)
    assert "lpr_during_find" not in recorded["level-2/prune"]


def test_find_phases_keep_the_keys_they_had_before_these_settings_existed() -> None:
    """The key of the default recipe's find phase on one CPU process, as prunelab computed it
    before lpr_every, stop_epoch and max_stage_epochs: its cached find phases stay shared."""
    cpu = torch.device("cpu")
    assert find_key(load_recipe(None, []), cpu) == "a59fe9129613"
    assert find_key(load_recipe(None, ["find.stop_epoch=40"]), cpu) == "a59fe9129613"  # all 40 epochs
    assert find_key(load_recipe(None, ["find.stop_epoch=39"]), cpu) != "a59fe9129613"
    halving = ["find.lr_schedule={name: halving, final_lr: 0.001}"]
    assert find_key(load_recipe(None, [*halving, "find.lr_schedule.max_stage_epochs=10"]), cpu) != find_key(load_recipe(None, halving), cpu)


def test_the_find_phase_is_shared_unless_it_keeps_weights_for_the_record(make_recipe) -> None:
    cpu = torch.device("cpu")
    plain = find_key(make_recipe(), cpu)
    assert find_key(make_recipe("find.lpr_every=3"), cpu) == plain  # 3 of 3 epochs: only its start and end
    assert find_key(make_recipe("find.lpr_every=3", "prune.scope=layerwise"), cpu) == plain
    assert find_key(make_recipe("find.lpr_every=1"), cpu) != plain


@pytest.mark.parametrize(
    ("source", "overrides", "reason"),
    [
        ("gmp", [], "GMP prunes while the eval phase trains"),
        (None, ["prune.scope=layerwise"], "prune.scope layerwise sets each layer's ratio"),
        (None, ["prune.criterion=random"], "does not read the weights"),
        ("structured", [], "prunes channels"),
    ],
)
def test_recipes_whose_lpr_cannot_change_record_none(source, overrides, reason) -> None:
    recipe = load_recipe(source, [*overrides, "find.lpr_every=2"])
    assert reason in unread_settings(recipe)["find.lpr_every"]
    assert lpr_epochs(recipe) is None
    assert any(message.startswith("find.lpr_every=2 is not used") for message in unused_settings(recipe))
    assert run_name(recipe) == run_name(load_recipe(source, overrides))


def test_an_interval_past_the_find_phase_is_warned_about() -> None:
    recipe = load_recipe(None, ["find.epochs=4", "find.lpr_every=4"])
    assert lpr_epochs(recipe) == [0, 4]
    assert "find.lpr_every=4 is not below find.epochs=4: only the initial and final weights are compared" in unused_settings(recipe)
    bimp = load_recipe("bimp", ["find.lpr_every=30"])
    assert any("find.lpr_every=30 is not below prune.initial_epochs=30" in message for message in unused_settings(bimp))
    at_init = load_recipe(None, ["find.stop_epoch=0", "eval.lr_policy=null", "find.lpr_every=2"])
    assert lpr_epochs(at_init) == [0]
    assert "find.lpr_every=2 is not below find.stop_epoch=0: only the initial and final weights are compared" in unused_settings(at_init)
    with pytest.raises(ValueError, match=re.escape("find.lpr_every: Input should be greater than or equal to 0 (got -1)")):
        load_recipe(None, ["find.lpr_every=-1"])


def test_a_layer_only_the_would_be_masks_empty_is_no_collapse_warning(make_recipe, shared_out) -> None:
    recipe = make_recipe("prune.sparsity=0.9", "eval.epochs=0", "find.lpr_every=3")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = run_recipe(recipe, shared_out, progress=False)
    record = events(run)["prune"]["lpr_during_find"]
    at_init, at_end = record["layer_sparsity"]["classifier.0.weight"]
    assert at_init == 1 and at_end < 1  # the run's own masks keep some of it
    assert not [w for w in caught if "layer collapse" in str(w.message)]
