"""The LR range test (seed 000): exponential LR from 1e-9 to at least 1, the inflection point,
the model left alone, and ``prunelab lr-range-test``."""

from __future__ import annotations

import copy
import json
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunelab.analysis import lr_range_test
from prunelab.cli import main
from prunelab.config import OptimizerConfig, TrainConfig
from prunelab.data import Dataset
from prunelab.models import build_model
from prunelab.train import Trainer

STEPS = 60


@pytest.fixture(scope="module")
def trained(data):
    torch.manual_seed(0)
    model = build_model("mnist1d_cnn", num_classes=data.num_classes, input_shape=data.input_shape)
    config = TrainConfig(epochs=3, batch_size=100, optimizer=OptimizerConfig(lr=0.1, momentum=0.9))
    Trainer(model, data, config, seed=0, progress=False).run()
    return model


@pytest.fixture(scope="module")
def curve(trained, data):
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    training_flag = trained.training
    result = lr_range_test(trained, data, OptimizerConfig(lr=0.1, momentum=0.9), batch_size=100, steps=STEPS, progress=False)
    return result, before, training_flag


def test_the_lr_rises_exponentially_from_1e_9_to_1_or_stops_on_divergence(curve) -> None:
    result, _, _ = curve
    lrs, losses = result.lrs, result.losses
    assert lrs[0] == 1e-9 and len(lrs) == len(losses) >= 2
    growth = (1.0 / 1e-9) ** (1 / (STEPS - 1))
    for step, lr in enumerate(lrs[:-1] if len(lrs) == STEPS else lrs):
        assert lr == pytest.approx(1e-9 * growth**step, rel=1e-9)
    if len(lrs) == STEPS:
        assert lrs[-1] >= 1.0
        assert all(math.isfinite(x) and x <= 4 * result.baseline for x in losses[:-1])
    else:  # stopped early: only once the loss had clearly diverged
        assert not math.isfinite(losses[-1]) or losses[-1] > 4 * result.baseline
        assert all(x <= 4 * result.baseline for x in losses[:-1])


def test_the_baseline_is_the_trained_models_probe_loss(curve, trained, data) -> None:
    result, before, _ = curve
    model = build_model("mnist1d_cnn", num_classes=data.num_classes, input_shape=data.input_shape)
    model.load_state_dict(before)
    model.eval()
    with torch.no_grad():
        baseline = float(F.cross_entropy(model(data.x_train[:1000]), data.y_train[:1000]))
    assert result.baseline == pytest.approx(baseline, rel=1e-5)
    assert baseline < math.log(10) * 0.8  # the model did learn: the test starts from a trained solution
    # at 1e-9 the step is too small to move the model
    assert result.losses[0] == pytest.approx(baseline, rel=1e-4)


def test_with_label_smoothing_the_test_takes_the_smoothed_loss(trained, data, monkeypatch) -> None:
    """Steps and probe minimise what a label-smoothed retraining does: (1 - e) CE + e mean(-log p)."""
    smoothing, real = [], F.cross_entropy

    def spy(*args, **kwargs):
        smoothing.append(kwargs.get("label_smoothing", 0.0))
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "cross_entropy", spy)
    result = lr_range_test(trained, data, OptimizerConfig(lr=0.1, momentum=0.9), batch_size=100, steps=3,
                           label_smoothing=0.1, progress=False)  # fmt: skip
    monkeypatch.undo()
    assert smoothing == [0.1] * (1 + 2 * 3)  # the baseline's probe, then each step's training loss and probe
    model = copy.deepcopy(trained).eval()  # the fixture's model stays as it is
    with torch.no_grad():
        log_p = F.log_softmax(model(data.x_train[:1000]), dim=1)
    by_hand = 0.9 * float(F.nll_loss(log_p, data.y_train[:1000])) + 0.1 * float(-log_p.mean())
    assert result.baseline == pytest.approx(by_hand, rel=1e-5)
    plain = lr_range_test(trained, data, OptimizerConfig(lr=0.1, momentum=0.9), batch_size=100, steps=3, progress=False)
    assert plain.baseline < result.baseline
    with pytest.raises(ValueError, match=r"label_smoothing must lie in \[0, 1\), got 1.0"):
        lr_range_test(trained, data, OptimizerConfig(), label_smoothing=1.0, progress=False)


def test_the_inflection_lr_is_where_the_loss_first_exceeds_the_baseline_by_the_tolerance(curve) -> None:
    result, _, _ = curve
    above = [i for i, loss in enumerate(result.losses) if loss > result.baseline * 1.1]
    assert above, "the curve never left the trained solution: the test cannot check the inflection"
    assert result.inflection_lr == result.lrs[above[0]]
    assert 1e-6 < result.inflection_lr < 1.0
    assert all(loss <= result.baseline * 1.1 for loss in result.losses[: above[0]])


def test_the_model_passed_in_is_unchanged(curve, trained) -> None:
    _, before, training_flag = curve
    after = trained.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert trained.training == training_flag


def test_a_larger_tolerance_moves_the_inflection_to_a_larger_lr(trained, data, curve) -> None:
    """The tolerance only picks a point of the same curve: with tolerance 1.0 the inflection
    is the first LR at which the default run's probe loss exceeded twice its baseline."""
    result, _, _ = curve
    relaxed = lr_range_test(
        trained, data, OptimizerConfig(lr=0.1, momentum=0.9), batch_size=100, steps=STEPS, tolerance=1.0, progress=False,
    )
    # the same sweep, step for step (the stop depends on stop_factor, not on the tolerance)
    assert relaxed.baseline == result.baseline
    assert relaxed.lrs == result.lrs and relaxed.losses == result.losses
    doubled = [i for i, loss in enumerate(result.losses) if loss > 2.0 * result.baseline]
    assert doubled, "the loss never doubled: the test cannot tell the two tolerances apart"
    # and it first rose past 1.1x well before it doubled, so the two inflections differ
    assert result.inflection_lr < result.lrs[doubled[0]]
    assert relaxed.inflection_lr == result.lrs[doubled[0]]
    assert relaxed.inflection_lr > result.inflection_lr


def test_the_sweep_stops_at_the_first_loss_above_stop_factor_times_the_baseline(trained, data, curve) -> None:
    """A finite loss that rose past stop_factor times the baseline ends the sweep there: the
    same sweep cut short after that LR (the default run's curve may never reach 4x, so this
    stop is checked with stop_factor 1.5)."""
    result, _, _ = curve
    first = next((i for i, loss in enumerate(result.losses) if loss > 1.5 * result.baseline), None)
    assert first is not None and first < len(result.losses) - 1, "the loss never rose past 1.5x before the end: nothing to stop"
    assert math.isfinite(result.losses[first])  # the stop on a finite loss, not on a NaN one
    stopped = lr_range_test(
        trained, data, OptimizerConfig(lr=0.1, momentum=0.9), batch_size=100, steps=STEPS, stop_factor=1.5, progress=False,
    )
    assert stopped.lrs == result.lrs[: first + 1] and stopped.losses == result.losses[: first + 1]


def toy_data(n: int = 8) -> Dataset:
    """``n`` examples of two features, labelled by the sign of the first."""
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    return Dataset("toy", x, (x[:, 0] > 0).long(), x, (x[:, 0] > 0).long(), num_classes=2)


def test_each_step_is_one_sgd_step_at_its_lr_and_the_probe_the_loss_after_it() -> None:
    """Plain SGD on full batches of a linear model, by hand: w <- w - lr * (the batch's gradient
    at w) at the LRs 0.1, 0.1 ** 0.5 and 1, the probe loss being that of the weights after each."""
    data = toy_data()
    model = nn.Linear(2, 2)
    result = lr_range_test(model, data, OptimizerConfig(momentum=0.0), batch_size=8, start_lr=0.1, steps=3, progress=False)
    x, y = data.x_train, data.y_train
    weight, bias = (p.detach().clone().requires_grad_() for p in model.parameters())
    expected = []
    for lr in (0.1, 0.1**0.5, 1.0):
        grads = torch.autograd.grad(F.cross_entropy(x @ weight.T + bias, y), (weight, bias))
        with torch.no_grad():
            weight -= lr * grads[0]
            bias -= lr * grads[1]
            expected.append(float(F.cross_entropy(x @ weight.T + bias, y)))
    assert result.lrs == pytest.approx([0.1, 0.1**0.5, 1.0], rel=1e-12)
    assert result.losses == pytest.approx(expected, rel=1e-5)


def test_a_loss_at_the_threshold_or_at_stop_factor_times_the_baseline_has_not_risen_past_it(monkeypatch) -> None:
    """A scripted probe curve from a baseline of 1: 1.1 is the threshold itself, so the inflection
    is at the next LR (1.2); 4 is stop_factor times the baseline, so the test goes on to 4.5, the
    first loss above it, and stops there without trying the last two LRs."""
    from prunelab.analysis import lr_range

    probe = iter([1.0, 1.0, 1.1, 1.2, 4.0, 4.5, 9.0, 9.0])  # the baseline, then one per step
    monkeypatch.setattr(lr_range, "_probe_loss", lambda *args: next(probe))
    result = lr_range_test(nn.Linear(2, 2), toy_data(), OptimizerConfig(momentum=0.0), batch_size=8, steps=7, progress=False)
    assert result.threshold == 1.1
    assert result.losses == [1.0, 1.1, 1.2, 4.0, 4.5]
    assert result.inflection_lr == result.lrs[2] == pytest.approx(1e-9 * 1e9 ** (2 / 6))


def test_every_epoch_of_the_steps_visits_each_training_example_once_in_a_fresh_order() -> None:
    """Examples numbered 0 to 7 in batches of 4, for 6 steps: 3 epochs, each of all 8 examples, in 3 orders."""
    seen = []

    def record(x, generator):
        seen.extend(x[:, 0].tolist())
        return x

    numbers, labels = torch.arange(8.0)[:, None], torch.arange(8) % 2
    data = Dataset("toy", numbers, labels, numbers, labels, num_classes=2, augment=record)
    lr_range_test(nn.Linear(1, 2), data, OptimizerConfig(momentum=0.0), batch_size=4, steps=6, progress=False)
    epochs = [tuple(seen[i : i + 8]) for i in (0, 8, 16)]
    assert len(seen) == 24 and all(sorted(epoch) == list(range(8)) for epoch in epochs)
    assert len(set(epochs)) == 3


def test_a_loss_that_turns_nan_is_the_inflection_point(trained, data) -> None:
    """Two steps, the second at an LR of 1e30: the probe loss becomes NaN, which compares
    false with any threshold but is as divergent as a loss can be."""
    result = lr_range_test(
        trained, data, OptimizerConfig(lr=0.1, momentum=0.9), batch_size=100, steps=2, end_lr=1e30, progress=False,
    )
    assert not math.isfinite(result.losses[-1])
    assert result.inflection_lr == result.lrs[-1] == 1e30


def test_from_a_loss_of_0_the_rises_count_against_the_loss_floor() -> None:
    """A linear model whose margins of 40 and more make its float32 loss exactly 0, which weight
    decay shrinks as the LR grows: the loss turns positive at some LR and keeps rising. Against
    0 itself, the first positive loss would be the inflection and stop the test; against the
    floor of 0.01, the inflection is the first loss above 0.1 * 0.01, the stop above 3 * 0.01."""
    generator = torch.Generator().manual_seed(0)
    x0 = (torch.rand(200, generator=generator) + 1) * torch.where(torch.rand(200, generator=generator) < 0.5, -1.0, 1.0)
    x = torch.stack([x0, torch.randn(200, generator=generator)], 1)
    data = Dataset("toy", x, (x0 > 0).long(), x, (x0 > 0).long(), num_classes=2)
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-20.0, 0.0], [20.0, 0.0]]))
    result = lr_range_test(model, data, OptimizerConfig(momentum=0.0, weight_decay=1.0), batch_size=50, steps=100, progress=False)
    assert result.baseline == 0.0 and result.threshold == pytest.approx(0.001)
    positive = [i for i, loss in enumerate(result.losses) if loss > 0]
    above = [i for i, loss in enumerate(result.losses) if loss > 0.001]
    assert positive and above and positive[0] < above[0], "no loss between 0 and the threshold: the test cannot tell the rules apart"
    assert result.inflection_lr == result.lrs[above[0]]
    assert all(loss <= 0.03 for loss in result.losses[:-1]) and result.losses[-1] > 0.03  # stopped once above 3 * the floor


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"end_lr": 0.5}, "at least 1"), ({"start_lr": 2.0}, "start_lr"), ({"steps": 1}, "at least 2"),
     ({"start_lr": 1.0}, "need 0 < start_lr < end_lr, got start_lr=1.0, end_lr=1.0"), ({"end_lr": 1e39}, "end_lr within float32"),
     ({"tolerance": 0.0}, "need tolerance > 0"), ({"stop_factor": 1.05}, "stop_factor > 1 \\+ tolerance")],
)
def test_bad_ranges_are_errors(kwargs, match, data) -> None:
    model = build_model("mnist1d_cnn", num_classes=data.num_classes, input_shape=data.input_shape)
    with pytest.raises(ValueError, match=match):
        lr_range_test(model, data, OptimizerConfig(), progress=False, **kwargs)


def test_bad_settings_and_models_the_test_cannot_start_from_are_errors(trained, data) -> None:
    for kwargs, match in (({"end_lr": math.inf}, "end_lr must be finite, got inf"), ({"start_lr": math.nan}, "start_lr must be finite"),
                          ({"probe_size": 0}, "probe_size must be a whole number of examples, at least 1, got 0"),
                          ({"batch_size": 1.5}, "batch_size must be a whole number of examples, at least 1, got 1.5")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            lr_range_test(trained, data, OptimizerConfig(), progress=False, **kwargs)
    frozen = copy.deepcopy(trained).requires_grad_(False)
    with pytest.raises(ValueError, match="the model has no parameter that requires grad"):
        lr_range_test(frozen, data, OptimizerConfig(), progress=False)
    broken = copy.deepcopy(trained)
    with torch.no_grad():
        next(broken.parameters()).fill_(math.nan)
    with pytest.raises(ValueError, match="the trained model's loss on the probe examples is nan"):
        lr_range_test(broken, data, OptimizerConfig(), progress=False)


def test_batchnorm_statistics_stay_the_trained_models_so_tiny_lrs_leave_the_loss_flat(data) -> None:
    """Steps at LRs of 1e-9 barely move the weights; if they moved the running statistics
    (small batches, whose statistics differ most from the training set's), the probe loss
    would change anyway and the inflection would come far too early."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv1d(1, 8, 5), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 36, 10)
    )
    Trainer(model, data, TrainConfig(epochs=1, batch_size=50, optimizer=OptimizerConfig(lr=0.05, momentum=0.9)), seed=0, progress=False).run()
    result = lr_range_test(model, data, OptimizerConfig(momentum=0.9), batch_size=2, steps=STEPS, progress=False)
    tiny = [loss for lr, loss in zip(result.lrs, result.losses) if lr < 1e-7]
    assert len(tiny) >= 10
    assert all(loss == pytest.approx(result.baseline, rel=1e-4) for loss in tiny)
    assert result.inflection_lr is not None and result.inflection_lr > 1e-5


def test_the_steps_train_on_augmented_batches_as_the_retraining_does(data) -> None:
    """With the data's augmentation and ``augment`` (the recipe's data.augment), every step's
    batch goes through it; without, none does."""
    import dataclasses

    seen = []

    def augment(x, generator):
        seen.append((x.shape, isinstance(generator, torch.Generator)))
        return x

    augmented = dataclasses.replace(data, augment=augment)
    model = build_model("mnist1d_cnn", num_classes=data.num_classes, input_shape=data.input_shape)
    lr_range_test(model, augmented, OptimizerConfig(), batch_size=100, steps=5, progress=False)
    assert seen == [((100, *data.input_shape), True)] * 5
    seen.clear()
    lr_range_test(model, augmented, OptimizerConfig(), batch_size=100, steps=5, augment=False, progress=False)
    assert seen == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"steps": 5.5}, "steps must be a whole number, got 5.5"), ({"end_lr": "1"}, "end_lr must be a number, got '1'"),
     ({"optimizer": torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)}, "give the settings of the optimizer"),
     ({"optimizer": [("name", "sgd")]}, "optimizer must be an OptimizerConfig or a mapping of its settings, got list")],
)
def test_arguments_of_the_wrong_type_are_named(kwargs, match, data) -> None:
    model = build_model("mnist1d_cnn", num_classes=data.num_classes, input_shape=data.input_shape)
    with pytest.raises(TypeError, match=match):
        lr_range_test(model, data, **{"optimizer": OptimizerConfig(), "progress": False, **kwargs})


def test_the_optimizer_may_be_given_as_a_mapping_of_settings(trained, data) -> None:
    """A recipe's optimizer section, as written: the same test as with its OptimizerConfig."""
    settings = {"name": "sgd", "lr": 0.1, "momentum": 0.9}
    a, b = (lr_range_test(trained, data, optimizer, batch_size=100, steps=5, progress=False)
            for optimizer in (settings, OptimizerConfig(**settings)))  # fmt: skip
    assert a.lrs == b.lrs and a.losses == b.losses


def test_cli_prints_a_suggested_lr_and_writes_the_curve(data_dir, tmp_path, capsys) -> None:
    code = main([
        "lr-range-test", "--set", f"data.data_dir={data_dir}", "--set", "device=cpu", "--set", "model.options={}",
        "--set", "find.epochs=2", "--set", "find.batch_size=100", "--set", "eval.batch_size=100",
        "--steps", "40", "--out", str(tmp_path), "--no-progress",
    ])
    assert code == 0
    out = capsys.readouterr().out
    folders = list(tmp_path.glob("lr-range-test-*"))
    assert len(folders) == 1
    saved = json.loads((folders[0] / "lr_range_test.json").read_text())
    assert (folders[0] / "lr_range_test.png").read_bytes()[:4] == b"\x89PNG"
    assert saved["lrs"][0] == 1e-9 and len(saved["lrs"]) == len(saved["losses"])
    above = [i for i, loss in enumerate(saved["losses"]) if loss > saved["baseline"] * 1.1]
    assert saved["inflection_lr"] == saved["lrs"][above[0]]
    printed = re.search(r"suggested pruning LR: ([^,]+), the inflection point", out)
    assert printed and float(printed.group(1)) == pytest.approx(saved["inflection_lr"], rel=5e-3)
    # The table: the first LR of every decade, and the inflection point with the LRs just before it.
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in out.splitlines() if re.match(r"\| +\d", line)]
    at = above[0]
    wanted = sorted({0, *range(max(0, at - 3), at + 1)} | {
        i for i in range(1, len(saved["lrs"]))
        if math.floor(math.log10(saved["lrs"][i])) != math.floor(math.log10(saved["lrs"][i - 1]))
    })
    assert [float(row[0]) for row in rows] == pytest.approx([saved["lrs"][i] for i in wanted], rel=5e-3)
    assert f"{len(wanted)} of the {len(saved['lrs'])} LRs tried (probe loss: the loss on the first training examples after the steps up to that LR):" in out
    stopped = len(saved["lrs"]) < 40  # the loss diverged before the last LR
    assert (f"stopped at LR {saved['lrs'][-1]:.2e} of 1: the loss had diverged" in out) == stopped
    assert [row[2] for row in rows] == ["<- inflection" if i == at else "" for i in wanted]
    assert [row[1] for row in rows] == [f"{saved['losses'][i]:#.3g}" for i in wanted]  # 3 figures: a rise of 10% shows
    # The default recipe retrains under LLR, which sets the eval LR: the hint turns it off.
    assert f"\n  e.g. --set eval.lr_policy=null --set eval.optimizer.lr={saved['inflection_lr']:.3g}, in place of the recipe's LR policy llr\n" in out
    # it ran on the trained find phase, cached for the runs of the same recipe
    assert list(tmp_path.glob(".find/*/seed-0/checkpoint.safetensors"))


def test_cli_names_the_rise_against_the_floor_for_a_loss_below_it(data_dir, tmp_path, monkeypatch, capsys) -> None:
    """A trained loss of 0: the suggestion says the rise it took, not "10%" of 0."""
    import prunelab.analysis
    from prunelab.analysis import LRRangeResult

    curve = LRRangeResult(lrs=[1e-9, 1e-4, 0.1], losses=[0.0, 0.0005, 0.002], baseline=0.0, inflection_lr=0.1, threshold=0.001)
    monkeypatch.setattr(prunelab.analysis, "lr_range_test", lambda *args, **kwargs: curve)
    overrides = [f"data.data_dir={data_dir}", "device=cpu", "model.options={}", "find.epochs=1", "eval.lr_policy=null"]
    assert main(["lr-range-test", *(a for item in overrides for a in ("--set", item)), "--steps", "3", "--out", str(tmp_path), "--no-progress"]) == 0
    assert "suggested pruning LR: 0.1, the inflection point, where the probe loss is 0.001 (10% of the loss floor 0.01) " \
        "above the trained model's (seed 000)" in capsys.readouterr().out


def test_cli_says_when_the_loss_never_rose_or_diverged_before_the_end(data_dir, tmp_path, monkeypatch, capsys) -> None:
    """Hand-made curves: one within a single decade (--end-lr is at least 1) whose loss never
    rose, its first LR still shown; one that stopped on divergence before the last of its steps."""
    import prunelab.analysis
    from prunelab.analysis import LRRangeResult

    baseline = 1.23456  # 4 figures shown: 1.235
    flat = LRRangeResult(lrs=[2.0, 4.0, 8.0], losses=[1.24, 1.25, 1.26], baseline=baseline, inflection_lr=None, threshold=1.1 * baseline)
    diverged = LRRangeResult(lrs=[1e-3, 1e-2], losses=[1.3, 9.0], baseline=baseline, inflection_lr=1e-2, threshold=1.1 * baseline)
    overrides = [f"data.data_dir={data_dir}", "device=cpu", "model.options={}", "find.epochs=1", "eval.lr_policy=null"]
    for curve, lr_range in ((flat, ["2", "8"]), (diverged, ["1e-3", "1"])):
        monkeypatch.setattr(prunelab.analysis, "lr_range_test", lambda *args, curve=curve, **kwargs: curve)
        before = set(tmp_path.glob("lr-range-test-*"))
        assert main(["lr-range-test", *(a for item in overrides for a in ("--set", item)), "--start-lr", lr_range[0], "--end-lr", lr_range[1],
                     "--steps", "3", "--out", str(tmp_path), "--no-progress"]) == 0  # fmt: skip
        out = capsys.readouterr().out
        (folder,) = set(tmp_path.glob("lr-range-test-*")) - before
        rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in out.splitlines() if re.match(r"\| +\d", line)]
        assert "\ntrained model's loss: 1.235\n" in out
        assert out.endswith(f"\ncurve and plot in {folder}\n")
        if curve is flat:
            assert out.startswith("1 of the 3 LRs tried")
            assert rows == [["2.00e+00", "1.24", ""]]
            assert "the loss never rose by 10%: the model tolerates every LR up to the end; try a larger --end-lr\n" in out
            assert "stopped at LR" not in out
        else:
            assert out.startswith("2 of the 2 LRs tried")
            assert rows == [["1.00e-03", "1.30", ""], ["1.00e-02", "9.00", "<- inflection"]]
            assert "\nstopped at LR 1.00e-02 of 1: the loss had diverged\n" in out
            assert "suggested pruning LR: 0.01, the inflection point" in out


def test_cli_tests_with_the_eval_optimizer_and_batch_size_not_the_find_ones(data_dir, tmp_path, monkeypatch) -> None:
    """The LR suggested is for the pruning (eval) phase: a recipe whose find phase uses SGD
    in batches of 1000 and whose eval phase uses Adam (lr 0.003, betas 0.8/0.99) in batches
    of 250 must reach the test with the eval settings written here."""
    import prunelab.analysis
    import prunelab.report.plots

    real, calls = prunelab.analysis.lr_range_test, []
    plot, titles = prunelab.report.plots.plot_lr_range, []

    def spy(model, data, optimizer, **kwargs):
        calls.append((optimizer, kwargs["batch_size"], kwargs["label_smoothing"], kwargs["seed"], kwargs["augment"]))
        return real(model, data, optimizer, **kwargs)

    def plotted(lrs, losses, inflection_lr, path, title, **kwargs):
        titles.append(title)
        return plot(lrs, losses, inflection_lr, path, title, **kwargs)

    monkeypatch.setattr(prunelab.analysis, "lr_range_test", spy)
    monkeypatch.setattr(prunelab.report.plots, "plot_lr_range", plotted)
    overrides = [
        f"data.data_dir={data_dir}", "device=cpu", "model.options={}", "find.epochs=1", "find.batch_size=1000",
        "find.optimizer={name: sgd, lr: 0.05, momentum: 0.5}", "eval.batch_size=250", "eval.lr_policy=null",
        "eval.optimizer={name: adam, lr: 0.003, betas: [0.8, 0.99]}", "find.label_smoothing=0.2", "eval.label_smoothing=0.1",
        "seeds=[3, 4]", "data.augment=false",
    ]
    code = main(["lr-range-test", *(a for item in overrides for a in ("--set", item)), "--steps", "3",
                 "--out", str(tmp_path), "--no-progress"])  # fmt: skip
    assert code == 0
    assert len(calls) == 1
    optimizer, batch_size, label_smoothing, seed, augment = calls[0]
    assert (batch_size, label_smoothing, seed, augment) == (250, 0.1, 3, False)  # the recipe's first seed, its data's augmentation
    assert len(titles) == 1 and titles[0].endswith(", seed 3")
    assert (optimizer.name, optimizer.lr, tuple(optimizer.betas)) == ("adam", 0.003, (0.8, 0.99))
    assert len(json.loads(next(tmp_path.glob("lr-range-test-*/lr_range_test.json")).read_text())["lrs"]) == 3
    # another range: a folder of its own, the first kept
    assert main(["lr-range-test", *(a for item in overrides for a in ("--set", item)), "--steps", "4",
                 "--out", str(tmp_path), "--no-progress"]) == 0  # fmt: skip
    runs = sorted(len(json.loads(path.read_text())["lrs"]) for path in tmp_path.glob("lr-range-test-*/lr_range_test.json"))
    assert runs == [3, 4]


def test_dropout_draws_come_from_the_seed_and_the_callers_random_state_is_left_alone(data) -> None:
    """A model with dropout: the same seed gives the same curve whatever the caller's random
    state, another seed another curve, and the caller's random state is as it was (as the
    trainer leaves it)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(40, 64), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(64, 10))
    curves = []
    for caller_seed, seed in ((1, 0), (2, 0), (1, 5)):
        torch.manual_seed(caller_seed)
        state = torch.get_rng_state()
        result = lr_range_test(model, data, OptimizerConfig(momentum=0.0), batch_size=100, start_lr=1e-2, steps=8, seed=seed, progress=False)
        assert torch.equal(torch.get_rng_state(), state)
        curves.append(result.losses)
    assert curves[0] == curves[1]
    assert curves[0] != curves[2]


def test_cli_suggests_no_lr_when_the_loss_rose_already_at_the_first_lr(data_dir, tmp_path, capsys) -> None:
    """From 1e20 the first step makes the loss NaN: the curve has no flat stretch, the
    inflection point lies below the range, and 1e20 is no pruning LR to suggest."""
    code = main([
        "lr-range-test", "--set", f"data.data_dir={data_dir}", "--set", "device=cpu", "--set", "model.options={}",
        "--set", "find.epochs=1", "--start-lr", "1e20", "--end-lr", "1e30", "--steps", "3", "--out", str(tmp_path), "--no-progress",
    ])
    assert code == 0
    out = capsys.readouterr().out
    saved = json.loads(next(tmp_path.glob("lr-range-test-*/lr_range_test.json")).read_text())
    assert saved["lrs"] == [1e20] and not math.isfinite(saved["losses"][0])
    assert "the loss rose by more than 10% already at the first LR, 1.00e+20: no pruning LR to suggest; try a smaller --start-lr" in out
    assert "suggested pruning LR" not in out
