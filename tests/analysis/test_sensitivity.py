"""Pruning sensitivity: each layer alone pruned by magnitude, checked against zeroing its
smallest weights by hand; the model left alone; the tolerance helper; bad arguments."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunelab.analysis import (
    DEFAULT_SPARSITIES,
    LayerSensitivity,
    SensitivityResult,
    max_sparsity_within,
    percent_labels,
    pruning_sensitivity,
)
from prunelab.analysis import sensitivity as sensitivity_module
from prunelab.data import Dataset
from prunelab.report import plots


def distinct_weights(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Weights whose magnitudes all differ (0.1, 0.2, ... in random places, random signs),
    so which ones are the smallest is never a matter of tie-breaking."""
    n = math.prod(shape)
    magnitudes = (torch.randperm(n, generator=generator) + 1).float() / n
    signs = torch.randint(0, 2, (n,), generator=generator).float() * 2 - 1
    return (magnitudes * signs).view(shape)


@pytest.fixture
def model() -> nn.Sequential:
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.copy_(distinct_weights(tuple(layer.weight.shape), generator))
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * 0.1)
    return model


@pytest.fixture
def data(model: nn.Sequential) -> Dataset:
    """Test labels from the dense model itself, with a few flipped: dense accuracy is known
    and below 1, and pruning a layer can only move it."""
    generator = torch.Generator().manual_seed(1)
    x_test = torch.randn(200, 6, generator=generator)
    with torch.no_grad():
        y_test = model(x_test).argmax(1)
    y_test[:20] = (y_test[:20] + 1) % 3
    x_train = torch.randn(10, 6, generator=generator)  # read by the default split only
    return Dataset("toy", x_train, torch.zeros(10, dtype=torch.long), x_test, y_test, num_classes=3)


def by_hand(model: nn.Module, data: Dataset, name: str, sparsity: float) -> tuple[float, float]:
    """Test loss and accuracy with the round(sparsity * n) smallest-|w| entries of ``name`` zeroed."""
    pruned = copy.deepcopy(model)
    weight = pruned.get_parameter(name)
    smallest = weight.detach().abs().flatten().argsort()[: round(sparsity * weight.numel())]
    with torch.no_grad():
        weight.view(-1)[smallest] = 0.0
        logits = pruned(data.x_test)
    return float(F.cross_entropy(logits, data.y_test)), int((logits.argmax(1) == data.y_test).sum()) / len(data.y_test)


def test_each_layer_alone_matches_zeroing_its_smallest_weights_by_hand(model, data) -> None:
    result = pruning_sensitivity(model, data, split="test", progress=False)
    assert result.split == "test" and list(result.layers) == ["0.weight", "2.weight"]
    for name, curve in result.layers.items():
        assert curve.size == model.get_parameter(name).numel()
        assert curve.sparsities == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]  # the documented default
        for sparsity, loss, accuracy in zip(curve.sparsities, curve.losses, curve.accuracies, strict=True):
            expected_loss, expected_accuracy = by_hand(model, data, name, sparsity)
            assert loss == pytest.approx(expected_loss, rel=1e-5)
            assert accuracy == expected_accuracy
    # The check means something only if pruning did move the accuracy.
    assert any(a < result.dense_accuracy - 0.1 for curve in result.layers.values() for a in curve.accuracies)


def test_by_default_the_first_training_examples_are_measured_as_many_as_the_test_set_has(model, data) -> None:
    """The analysis chooses sparsities: by default it reads training examples, never the test
    set. A training set that begins with the test examples, then 300 others, gives exactly the
    test set's numbers; the hand reference is on those first 200 examples."""
    others = torch.randn(300, 6, generator=torch.Generator().manual_seed(3))
    x_train, y_train = torch.cat([data.x_test, others]), torch.cat([data.y_test, torch.zeros(300, dtype=torch.long)])
    held_out = torch.randn(200, 6, generator=torch.Generator().manual_seed(4))  # a test set it must not read
    leading = Dataset("toy", x_train, y_train, held_out, torch.zeros(200, dtype=torch.long), num_classes=3)
    result = pruning_sensitivity(model, leading, [0.0, 0.5, 0.9], progress=False)
    assert result.split == "train" and result.dense_accuracy == 0.9
    for name, curve in result.layers.items():
        for sparsity, loss, accuracy in zip(curve.sparsities, curve.losses, curve.accuracies, strict=True):
            expected_loss, expected_accuracy = by_hand(model, data, name, sparsity)
            assert loss == pytest.approx(expected_loss, rel=1e-5) and accuracy == expected_accuracy
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'validation'"):
        pruning_sensitivity(model, leading, [0.5], split="validation", progress=False)
    with pytest.raises(ValueError, match="batch_size must be a whole number of at least 1, got 0"):
        pruning_sensitivity(model, leading, [0.5], batch_size=0, progress=False)


def test_sparsity_zero_is_the_dense_model(model, data) -> None:
    """In batches of 64 of the 200 examples, the dense model's too: no forward pass takes more,
    and sparsity 0 gives the dense numbers exactly."""
    rows = []
    model.register_forward_pre_hook(lambda _module, args: rows.append(len(args[0])))  # kept by the analysis's copy
    result = pruning_sensitivity(model, data, [0.0, 0.5], split="test", batch_size=64, progress=False)
    assert rows and max(rows) == 64
    with torch.no_grad():
        logits = model(data.x_test)
    assert result.dense_loss == pytest.approx(float(F.cross_entropy(logits, data.y_test)), rel=1e-6)
    assert result.dense_accuracy == 0.9  # 20 of the 200 labels flipped
    for curve in result.layers.values():
        assert curve.losses[0] == result.dense_loss and curve.accuracies[0] == result.dense_accuracy


def test_the_model_is_left_bit_identical(model, data) -> None:
    before = {key: value.clone() for key, value in model.state_dict().items()}
    parameters = list(model.parameters())
    model.train()
    pruning_sensitivity(model, data, progress=False)
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[key], before[key]) for key in before)
    assert list(model.parameters()) == parameters  # the same tensors, not replaced
    assert model.training


def test_an_interrupted_analysis_leaves_the_model_alone_too(model, data, monkeypatch) -> None:
    before = {key: value.clone() for key, value in model.state_dict().items()}
    real, calls = sensitivity_module.evaluate, []

    def interrupted(evaluated, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the dense model, then 0.weight at the first sparsity, then stop at the second
            raise KeyboardInterrupt
        return real(evaluated, *args, **kwargs)

    monkeypatch.setattr(sensitivity_module, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pruning_sensitivity(model, data, [0.0, 0.9], progress=False)
    assert all(torch.equal(value, before[key]) for key, value in model.state_dict().items())

def test_only_the_layer_under_analysis_is_pruned_at_each_evaluation(model, data, monkeypatch) -> None:
    """Every evaluation sees the dense model but for the one layer, pruned to the sparsity at hand."""
    dense = {key: value.clone() for key, value in model.state_dict().items()}
    seen = []

    real = sensitivity_module.evaluate

    def spy(evaluated, *args, **kwargs):
        seen.append({key: value.clone() for key, value in evaluated.state_dict().items()})
        return real(evaluated, *args, **kwargs)

    monkeypatch.setattr(sensitivity_module, "evaluate", spy)
    sparsities = [0.0, 0.25, 0.5, 0.9]
    pruning_sensitivity(model, data, sparsities, progress=False)
    expected = [(None, 0.0)] + [(name, s) for name in ("0.weight", "2.weight") for s in sparsities]
    assert len(seen) == len(expected)
    for state, (name, sparsity) in zip(seen, expected, strict=True):
        for key, value in state.items():
            if key != name:
                assert torch.equal(value, dense[key]), f"{key} changed while {name} was analysed"
        if name is not None:
            kept = state[name] != 0
            assert int((~kept).sum()) == round(sparsity * kept.numel())
            assert torch.equal(state[name][kept], dense[name][kept])


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 6)
        self.aXweight = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.aXweight(self.a(x))


def test_names_that_read_as_regexes_of_each_other_prune_one_tensor(data) -> None:
    """As a regex, "a.weight" also matches the module "aXweight": the analysis of layer
    "a.weight" must leave "aXweight.weight" dense."""
    model = TwoLayers()
    with torch.no_grad():
        model.a.weight.copy_(distinct_weights((6, 6), torch.Generator().manual_seed(2)))
    result = pruning_sensitivity(model, data, [0.0, 0.5, 0.9], split="test", progress=False)
    for sparsity, loss in zip(result.layers["a.weight"].sparsities, result.layers["a.weight"].losses, strict=True):
        assert loss == pytest.approx(by_hand(model, data, "a.weight", sparsity)[0], rel=1e-5)


def test_layers_include_and_exclude_choose_the_tensors(model, data) -> None:
    assert list(pruning_sensitivity(model, data, [0.5], layers=["2.weight"], progress=False).layers) == ["2.weight"]
    # named out of order and twice: each once, in the model's order, each with its own hand-computed curve
    result = pruning_sensitivity(model, data, [0.0, 0.5], layers=["2.weight", "0.weight", "2.weight"], split="test", progress=False)
    assert list(result.layers) == ["0.weight", "2.weight"]
    for name, curve in result.layers.items():
        assert curve.accuracies == [by_hand(model, data, name, sparsity)[1] for sparsity in (0.0, 0.5)]
    assert list(pruning_sensitivity(model, data, [0.5], exclude=["0"], progress=False).layers) == ["2.weight"]
    # include: a bias is prunable when named, and then analysed like any weight
    result = pruning_sensitivity(model, data, [0.0, 0.5], include=["2.bias"], progress=False)
    assert list(result.layers) == ["2.bias"] and result.layers["2.bias"].size == 3


def test_the_tolerance_helper_on_hand_made_numbers() -> None:
    def layer(*accuracies: float) -> LayerSensitivity:
        sparsities = [0.0, 0.5, 0.9, 0.99][: len(accuracies)]
        return LayerSensitivity(10, sparsities, [0.0] * len(accuracies), list(accuracies))

    result = SensitivityResult(0.5, 0.90, {
        "steady": layer(0.90, 0.90, 0.90, 0.90),   # every sparsity within
        "falls": layer(0.90, 0.895, 0.80, 0.10),   # within up to 0.5
        "edge": layer(0.90, 0.89, 0.88, 0.10),     # exactly 1 point down at 0.5 (0.90 - 0.89 > 0.01 in floats)
        "recovers": layer(0.90, 0.70, 0.90, 0.90),  # a recovery after a drop does not count
        "none": layer(0.85, 0.90),                 # even the lowest sparsity loses too much
        "nan": layer(0.90, math.nan, 0.90),        # a NaN accuracy is never within
    })  # fmt: skip
    assert max_sparsity_within(result, 0.01) == {
        "steady": 0.99, "falls": 0.5, "edge": 0.5, "recovers": 0.0, "none": None, "nan": 0.0,
    }  # fmt: skip
    assert max_sparsity_within(result, 0.0)["falls"] == 0.0
    assert max_sparsity_within(result, 0.02)["edge"] == 0.9
    assert max_sparsity_within(result, 1.0)["recovers"] == 0.99


@pytest.mark.parametrize(
    ("sparsities", "error", "match"),
    [
        ([], ValueError, "empty"),
        ([0.5, 0.2], ValueError, "strictly increasing"),
        ([0.2, 0.2], ValueError, "strictly increasing"),
        ([0.5, 1.0], ValueError, r"\[0, 1\)"),
        ([-0.1], ValueError, r"\[0, 1\)"),
        ([math.nan], ValueError, r"\[0, 1\)"),
        ([True], TypeError, "numbers"),
        (["0.5"], TypeError, "numbers"),
        (0.5, TypeError, "list of numbers"),
        ("0.5", TypeError, "list of numbers"),
    ],
)
def test_bad_sparsities_are_errors(sparsities, error, match, model, data) -> None:
    with pytest.raises(error, match=match):
        pruning_sensitivity(model, data, sparsities, progress=False)


@pytest.mark.parametrize(
    ("layers", "error", "match"),
    [
        (["2.weight", "9.weight"], ValueError, "not prunable parameters: 9.weight; prunable parameters are: 0.weight, 2.weight"),
        (["2.bias"], ValueError, "not prunable parameters: 2.bias"),
        ([], ValueError, "layers is empty"),
        ("2.weight", TypeError, "not the string"),
    ],
)
def test_bad_layer_names_are_errors(layers, error, match, model, data) -> None:
    with pytest.raises(error, match=match):
        pruning_sensitivity(model, data, [0.5], layers=layers, progress=False)


def test_data_that_is_no_prunelab_dataset_is_named(model, data) -> None:
    # A TensorDataset or a DataLoader failed with "object has no attribute 'x_train'".
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data.x_test, data.y_test))
    for wrong, kind in ((loader, "DataLoader"), ((data.x_test, data.y_test), "tuple")):
        with pytest.raises(TypeError, match=rf"^data must be a prunelab.data.Dataset, got {kind}: Dataset\(name, x_train, y_train, x_test, y_test, num_classes\)"):
            pruning_sensitivity(model, wrong, [0.5], progress=False)


@pytest.mark.parametrize(("tolerance", "error"), [(-0.01, ValueError), (math.nan, ValueError), ("0.01", TypeError)])
def test_bad_tolerances_are_errors(tolerance, error) -> None:
    with pytest.raises(error, match="tolerance"):
        max_sparsity_within(SensitivityResult(0.0, 1.0, {}), tolerance)


def test_the_plot_shows_accuracy_against_the_weights_each_layer_keeps(tmp_path, figures, band_heights) -> None:
    """On a linear sparsity axis, 80% to 99%, where layers differ, took a fifth of the width:
    a log axis of the weights remaining, as the accuracy plots of runs have."""
    curves = {"0.weight": ([0.0, 0.5, 0.9], [0.9, 0.85, 0.5]), "2.weight": ([0.0, 0.5, 0.9], [0.9, 0.9, 0.8])}
    within, sizes = {"0.weight": None, "2.weight": 0.5}, {"0.weight": 320, "2.weight": 12288}
    path = plots.plot_sensitivity(curves, 0.9, tmp_path / "sensitivity.png", "oneshot-x, seed 0", 0.01, within, sizes, "training")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (fig,) = figures
    (ax,) = fig.axes
    by_label = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines}
    assert by_label["0.weight: 320 weights"] == (pytest.approx([100, 50, 10]), pytest.approx([90, 85, 50]))
    assert by_label["2.weight: 12,288 weights"] == (pytest.approx([100, 50, 10]), pytest.approx([90, 90, 80]))
    assert by_label["dense: 90.00%"][1] == pytest.approx([90, 90])
    assert ax.get_xscale() == "log" and ax.xaxis_inverted()  # dense on the left
    # each layer's highest sparsity within the tolerance circled on its curve (none for 0.weight)
    (circled,) = ax.collections
    assert circled.get_label() == "highest sparsity within 1 point" and circled.get_offsets().tolist() == [[50, 90]]
    bands = [(patch.get_label(), *band_heights(patch)) for patch in ax.patches]
    assert bands == [("within 1 point of dense", pytest.approx(89), pytest.approx(90))]  # the summary's tolerance, shaded
    assert ax.get_ylabel() == "training accuracy (%)"
    assert ax.get_title().endswith("\noneshot-x, seed 0")


def test_cli_analyses_only_the_weights_the_recipe_prunes(data_dir, tmp_path, capsys) -> None:
    """``prunelab sensitivity`` with a recipe whose ``prune.include`` names the feature layers
    and the classifier's bias, and whose ``prune.exclude`` removes the middle conv: of the
    MNIST-1D CNN's conv weights (found by listing its Conv1d layers here), the first and last
    are analysed, then that bias; neither the middle conv nor the classifier's weight."""
    import json

    from prunelab.cli import main
    from prunelab.models import build_model

    overrides = ["find.epochs=1", "find.batch_size=1000", "device=cpu", "model.options.channels=8",
                 f"data.data_dir={data_dir}", "prune.include=[features, classifier.0.bias]", "prune.exclude=[features.2]"]  # fmt: skip
    args = [arg for item in overrides for arg in ("--set", item)]
    assert main(["sensitivity", "--out", str(tmp_path), "--no-progress", "--sparsities", "0,0.5", *args]) == 0
    saved = json.loads((next(tmp_path.glob("sensitivity-*")) / "sensitivity.json").read_text())
    cnn = build_model("mnist1d_cnn", num_classes=10, input_shape=(1, 40), channels=8)
    convs = [f"{name}.weight" for name, m in cnn.named_modules() if isinstance(m, nn.Conv1d)]
    assert convs == ["features.0.weight", "features.2.weight", "features.4.weight"]
    assert list(saved["layers"]) == ["features.0.weight", "features.4.weight", "classifier.0.bias"]
    assert saved["layers"]["classifier.0.bias"]["size"] == 10
    out = capsys.readouterr().out
    assert "classifier.0.weight" not in out and "features.2.weight" not in out


def test_percent_labels_tell_close_sparsities_apart() -> None:
    assert percent_labels(DEFAULT_SPARSITIES) == ["0%", "10%", "20%", "30%", "40%", "50%", "60%", "70%", "80%", "90%", "95%", "99%"]
    assert percent_labels([0.123456]) == ["12.3456%"]  # 6 digits, though fewer would tell it apart
    assert percent_labels([0.9, 0.9000001]) == ["90%", "90.00001%"]  # the same 6 digits
    assert percent_labels([0.07, 0.0700000001]) == ["7%", "7.00000001%"]  # no float error (100 * 0.07 is 7.000000000000001)
    assert percent_labels([0.5, 0.9999999]) == ["50%", "99.99999%"]  # not 100%: every weight would be gone
    close = [0.9, math.nextafter(0.9, 1)]  # one float apart: 0.9 and 0.9000000000000001
    assert percent_labels(close) == ["90%", "90.00000000000001%"]
    # one float above 0.07 needs 16 digits, at which 0.07's float (7.00000000000000066...%) would show as 7.000000000000001%
    assert percent_labels([0.07, math.nextafter(0.07, 1)]) == ["7%", "7.000000000000002%"]
