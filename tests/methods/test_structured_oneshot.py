"""One-shot channel pruning in real runs (seed 002's Algorithm A2, seed 004's L1-norm filter
pruning): the channels chosen, the small dense model retrained, rewinding and resuming."""

from __future__ import annotations

import json
import math
import shutil
import warnings
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from prunelab import Pruner
from prunelab.config import RecipeError, unused_settings
from prunelab.models import MODELS, build_model, initialize, register
from prunelab.report.setups import comparison_setup, read_run_record
from prunelab.runs.checkpoint import load_checkpoint
from prunelab.runs.io import DamagedRunError
from prunelab.runs.runner import FIND_CACHE, find_key, run_recipe
from prunelab.runs.session import load_trained
from prunelab.structured import ChannelPruner
from prunelab.train import Trainer, evaluate

BN = ["model.options={channels: 16, batch_norm: true}", "prune.method=oneshot", "prune.criterion=bn_scale", "prune.sparsity=0.5"]
CONVS = ["features.0", "features.3", "features.6"]  # with BatchNorm at 1, 4, 7


def dense_model(data, batch_norm: bool = True) -> nn.Module:
    return build_model("mnist1d_cnn", num_classes=data.num_classes, input_shape=data.input_shape, channels=16, batch_norm=batch_norm)


def small_model(data, weights: dict, channels: dict) -> nn.Module:
    """The user's way back to a run's small model: the dense model, its kept channels, its weights."""
    pruner = ChannelPruner(dense_model(data), torch.zeros(1, *data.input_shape))
    pruner.load_state_dict(channels)
    small = pruner.shrink()
    small.load_state_dict(weights)
    return small


def find_state(out: Path, recipe, data) -> dict:
    model = dense_model(data)
    folder = out / FIND_CACHE / find_key(recipe, torch.device("cpu")) / "seed-0"
    load_checkpoint(folder / "checkpoint.safetensors", model, Pruner(model))
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def bn_run(make_recipe, shared_out: Path):
    recipe = make_recipe(*BN)
    return recipe, run_recipe(recipe, shared_out, progress=False) / "seed-0"


def test_channels_are_those_of_smallest_summed_gamma(bn_run, shared_out, data, read) -> None:
    recipe, seed = bn_run
    state = find_state(shared_out, recipe, data)
    gammas = torch.cat([state[f"features.{i}.weight"].abs() for i in (1, 4, 7)])  # three groups of 16
    removed = set(torch.sort(gammas, stable=True).indices[:24].tolist())  # round(0.5 * 48), globally
    channels = read(seed / "channels.json")
    kept = {16 * g + c for g, name in enumerate(CONVS) for c in channels[name]}
    assert kept == set(range(48)) - removed


def test_a_sparsity_of_weights_counts_the_weights_the_channels_take(bn_run, make_recipe, shared_out, data, read) -> None:
    """Seed 002's A2 ("prune p% of parameters"): the run's sparsity, counted on its small
    model, reaches the target, by channels in the same order of gamma as the count's run."""
    recipe = make_recipe(*BN, "prune.sparsity_of=weights")
    seed = run_recipe(recipe, shared_out, progress=False) / "seed-0"
    summary, channels = read(seed / "summary.json"), read(seed / "channels.json")
    by_count = read(bn_run[1] / "summary.json")
    assert by_count["sparsity"] > 0.5 + 0.05  # half the channels take most of the weights: 16 -> 8 wide, a quarter of each conv
    dense = dense_model(data)
    weights = sum(m.weight.numel() for m in dense.modules() if isinstance(m, (nn.Conv1d, nn.Linear)))
    small = small_model(data, load_file(str(seed / "model.safetensors")), channels)
    left = sum(m.weight.numel() for m in small.modules() if isinstance(m, (nn.Conv1d, nn.Linear)))
    assert summary["sparsity"] == pytest.approx(1 - left / weights) and 0.5 <= summary["sparsity"] < 0.55  # a channel takes up to 3%
    state = find_state(shared_out, recipe, data)
    gammas = torch.cat([state[f"features.{i}.weight"].abs() for i in (1, 4, 7)])
    kept = {16 * g + c for g, name in enumerate(CONVS) for c in channels[name]}
    removed = torch.sort(gammas, stable=True).indices[: 48 - len(kept)].tolist()
    assert kept == set(range(48)) - set(removed)


def test_pruned_and_final_accuracies_are_those_of_the_small_model(bn_run, shared_out, data, read) -> None:
    recipe, seed = bn_run
    summary, channels = read(seed / "summary.json"), read(seed / "channels.json")
    # Right after pruning: the dense find weights with the removed channels' BatchNorm scale and
    # shift zeroed (their conv filters feed only the zeroed BatchNorm), as in seed 002's theta * M.
    state = find_state(shared_out, recipe, data)
    for conv, norm in zip(CONVS, ("features.1", "features.4", "features.7")):
        gone = sorted(set(range(16)) - set(channels[conv]))
        state[f"{norm}.weight"][gone] = 0
        state[f"{norm}.bias"][gone] = 0
    zeroed = dense_model(data)
    zeroed.load_state_dict(state)
    _, acc = evaluate(zeroed, data.x_test, data.y_test, torch.device("cpu"))
    assert summary["pruned_acc"] == pytest.approx(acc, abs=1e-9)
    # At the end: the saved small model, rebuilt from channels.json.
    final = small_model(data, load_file(str(seed / "model.safetensors")), channels)
    _, acc = evaluate(final, data.x_test, data.y_test, torch.device("cpu"))
    assert summary["final_acc"] == acc
    assert final.features[0].out_channels == len(channels["features.0"]) < 16


def test_load_trained_gives_the_small_model(bn_run, data, read, tmp_path) -> None:
    _, seed = bn_run
    model, pruner = load_trained(seed.parent)
    expected = small_model(data, load_file(str(seed / "model.safetensors")), read(seed / "channels.json"))
    assert [type(m) for m in model.modules()] == [type(m) for m in expected.modules()]
    assert all(torch.equal(value, expected.state_dict()[key]) for key, value in model.state_dict().items())
    assert model.state_dict().keys() == expected.state_dict().keys()
    assert pruner.count_pruned() == 0  # whole channels went; no weight of the small model is masked
    assert evaluate(model, data.x_test, data.y_test, torch.device("cpu"))[1] == read(seed / "summary.json")["final_acc"]
    damaged = Path(shutil.copytree(seed.parent, tmp_path / seed.parent.name))
    (damaged / "seed-0" / "channels.json").unlink()
    with pytest.raises(DamagedRunError, match=r"channels.json is missing"):
        load_trained(damaged)


def test_summary_counts_the_removed_channels(bn_run, data, read) -> None:
    _, seed = bn_run
    summary, channels = read(seed / "summary.json"), read(seed / "channels.json")
    # every retraining epoch reports the sparsity of the dense model's weights, as the summary does
    assert {row["sparsity"] for row in read(seed / "metrics.json") if row["phase"] == "eval"} == {summary["sparsity"]}
    k0, k1, k2 = (len(channels[c]) for c in CONVS)
    # MNIST-1D: length 40 -> 19 -> 10 -> 5 after three stride-2 convolutions, then 16 x 5 -> 10
    dense_weights = 16 * 5 + 16 * 16 * 3 * 2 + 16 * 5 * 10
    small_weights = k0 * 5 + k1 * k0 * 3 + k2 * k1 * 3 + k2 * 5 * 10
    assert summary["sparsity"] == pytest.approx(1 - small_weights / dense_weights)
    assert summary["channel_sparsity"] == 0.5
    assert summary["parameters"] == sum(p.numel() for p in dense_model(data).parameters())
    assert summary["remaining_parameters"] == small_weights + 10 + 2 * (k0 + k1 + k2)  # + fc bias, BatchNorm
    dense_macs = 16 * 19 * 5 + 16 * 10 * 48 + 16 * 5 * 48 + 800  # the classifier: each weight once
    small_macs = k0 * 19 * 5 + k1 * 10 * 3 * k0 + k2 * 5 * 3 * k1 + k2 * 5 * 10
    assert summary["speedup"] == pytest.approx(dense_macs / small_macs)
    layers = read(seed / "layer_sparsity.json")
    assert layers["features.3.weight"] == {"numel": 768, "remaining": k1 * k0 * 3, "sparsity": 1 - k1 * k0 * 3 / 768}


@pytest.mark.parametrize("rewind", ["init", "epoch:1"])
def test_rewinding_takes_the_kept_channels_of_the_dense_weights(rewind, make_recipe, shared_out, data, read, find_snapshot) -> None:
    recipe = make_recipe(*BN, f"eval.rewind={rewind}", "eval.epochs=0")  # the final weights are the rewound ones
    seed = run_recipe(recipe, shared_out, progress=False) / "seed-0"
    dense = find_snapshot(shared_out, recipe, "init" if rewind == "init" else "rewind")
    channels = read(seed / "channels.json")
    final = load_file(str(seed / "model.safetensors"))
    k0, k1 = torch.tensor(channels["features.0"]), torch.tensor(channels["features.3"])
    assert torch.equal(final["features.3.weight"], dense["features.3.weight"][k1][:, k0])
    assert torch.equal(final["features.1.running_var"], dense["features.1.running_var"][k0])


def test_per_group_ratios_remove_each_groups_share(make_recipe, shared_out, read) -> None:
    """``scope: ratios`` for channels: each group, named by its conv, keeps round((1 - r) * 16)
    of its 16 channels, and the summary's channel sparsity is their mean share."""
    ratios = {"features.0": 0.25, "features.3": 0.5, "features.6": 0.75}
    recipe = make_recipe(*BN, "prune.scope=ratios", f"prune.ratios={ratios}", "eval.epochs=0")
    seed = run_recipe(recipe, shared_out, progress=False) / "seed-0"
    channels = read(seed / "channels.json")
    assert {conv: len(channels[conv]) for conv in CONVS} == {"features.0": 12, "features.3": 8, "features.6": 4}
    assert read(seed / "summary.json")["channel_sparsity"] == pytest.approx((4 + 8 + 12) / 48)


def test_reinit_draws_a_small_dense_model(make_recipe, shared_out, data, read) -> None:
    """Seed 004: a pruned architecture trained from scratch is initialised for its own shapes.
    PyTorch's default conv init is uniform within 1/sqrt(fan_in); the small layers' smaller
    fan-in shows as weights beyond the dense layers' bound."""
    recipe = make_recipe(*BN, "eval.rewind=reinit", "eval.epochs=0")
    seed = run_recipe(recipe, shared_out, progress=False) / "seed-0"
    channels = read(seed / "channels.json")
    weight = load_file(str(seed / "model.safetensors"))["features.3.weight"]
    fan_in = 3 * len(channels["features.0"])
    assert weight.abs().max() <= 1 / math.sqrt(fan_in)
    assert weight.abs().max() > 1 / math.sqrt(3 * 16)
    expected = small_model(data, load_file(str(seed / "model.safetensors")), channels)
    torch.manual_seed(zlib.crc32(b"0/reinit"))  # and it is the drawing of a fresh small model
    initialize("mnist1d_cnn", expected)
    assert torch.equal(expected.features[3].weight, weight)


def test_interrupted_after_pruning_resumes_to_the_same_result(make_recipe, tmp_path: Path, monkeypatch) -> None:
    recipe = make_recipe(*BN, "eval.lr_policy=allr")
    reference = run_recipe(recipe, tmp_path / "reference", progress=False) / "seed-0"
    real = Trainer.train_epoch

    def fail_in_eval(self, epoch, **kwargs):
        if self.phase == "eval" and epoch == 1:
            raise KeyboardInterrupt
        return real(self, epoch, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "train_epoch", fail_in_eval)
        with pytest.raises(KeyboardInterrupt):
            run_recipe(recipe, tmp_path / "resumed", progress=False)
    resumed = run_recipe(recipe, tmp_path / "resumed", progress=False) / "seed-0"
    for name in ("model.safetensors", "masks.safetensors"):
        a, b = load_file(str(resumed / name)), load_file(str(reference / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for name in ("channels.json", "events.json", "layer_sparsity.json"):
        assert json.loads((resumed / name).read_text()) == json.loads((reference / name).read_text())
    summary = json.loads((resumed / "summary.json").read_text())
    timed = ("wall_seconds", "images_per_second")
    assert {k: v for k, v in summary.items() if k not in timed} == {
        k: v for k, v in json.loads((reference / "summary.json").read_text()).items() if k not in timed
    }


def test_an_unscorable_group_is_said_once_over_a_run_its_resumption_and_load_trained(make_recipe, tmp_path: Path, monkeypatch) -> None:
    """bn_scale cannot score a hidden Linear layer without BatchNorm: the run says so when it
    chooses the channels, not when its check before training, the resumed run or load_trained
    rebuild the small model."""

    def bn_conv_hidden_fc(num_classes, input_shape):
        return nn.Sequential(nn.Conv1d(input_shape[0], 8, 3), nn.BatchNorm1d(8), nn.ReLU(), nn.Flatten(),
                             nn.Linear(8 * (input_shape[-1] - 2), 16), nn.ReLU(), nn.Linear(16, num_classes))  # fmt: skip

    real = Trainer.train_epoch

    def fail_in_eval(self, epoch, **kwargs):
        if self.phase == "eval" and epoch == 1:
            raise KeyboardInterrupt
        return real(self, epoch, **kwargs)

    register("test_bn_conv_hidden_fc")(bn_conv_hidden_fc)
    try:
        recipe = make_recipe("model.name=test_bn_conv_hidden_fc", *BN[1:])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with monkeypatch.context() as patch:
                patch.setattr(Trainer, "train_epoch", fail_in_eval)
                with pytest.raises(KeyboardInterrupt):
                    run_recipe(recipe, tmp_path, progress=False)
            folder = run_recipe(recipe, tmp_path, progress=False)
            model, _ = load_trained(folder)
    finally:
        MODELS.pop("test_bn_conv_hidden_fc", None)
    assert model[4].out_features == 16 and model[0].out_channels == 4  # the Linear group whole, half the conv's channels gone
    said = [str(w.message) for w in caught if "cannot score" in str(w.message)]
    assert said == ["criterion BatchNormScale() cannot score the channel groups 4 (no BatchNorm follows them): "
                    "they stay whole, and sparsities count the other groups' channels"]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["prune.method=imp"], "criterion 'bn_scale' prunes whole channels, which only method 'oneshot' does"),
        (["prune.exclude=[fc]"], "prune .criterion bn_scale.: exclude pattern 'fc' matches no layer making channels"),
        (["prune.sparsity=0.99"], r"prune \(criterion bn_scale\): sparsity 0.99 removes 48 of 48 channels"),
        (["prune.scope=ratios", "prune.ratios={features.9: 0.5}"], r"prune \(criterion bn_scale\): ratio given for 'features.9', which names none of the channel groups"),
        (["model.options={channels: 16}"], "criterion bn_scale needs BatchNorm layers after the pruned layers"),
    ],
)
def test_bad_channel_recipes_fail_before_any_training(overrides, message, make_recipe, tmp_path: Path) -> None:
    with pytest.raises((RecipeError, ValueError), match=message):
        run_recipe(make_recipe(*BN, *overrides), tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


def test_show_lists_the_kept_channels_of_each_group(bn_run, read, capsys) -> None:
    from prunelab import cli

    _, seed = bn_run
    assert cli.main(["show", str(seed.parent)]) == 0
    out = capsys.readouterr().out
    assert "channels (seed-0):" in out and "| speedup " in out
    channels, groups = read(seed / "channels.json"), read(seed / "events.json")["prune"]["group_sparsity"]
    for name in CONVS:
        row = next(line for line in out.splitlines() if line.startswith(f"| {name} "))
        kept, removed = (cell.strip() for cell in row.strip("|").split("|")[1:])
        assert kept == f"{len(channels[name])} of 16" and removed == f"{100 * groups[name]:.2f}%"  # channels: 16 each


@pytest.mark.parametrize("budget", ["scratch_e", "scratch_b"])
def test_scratch_budgets_match_the_pipeline_in_epochs_or_work(budget, make_recipe, shared_out, read) -> None:
    """Seed 004's SX-A / SX-B: the pruned architecture trained from scratch for as many epochs
    as pretraining plus retraining, or for as many multiply-accumulates (the dense model's
    find epochs count speedup times over for the small model)."""
    recipe = make_recipe(*BN, "eval.rewind=reinit", f"eval.budget={budget}")
    seed = run_recipe(recipe, shared_out, progress=False) / "seed-0"
    summary = read(seed / "summary.json")
    extra = recipe.find.epochs if budget == "scratch_e" else round(recipe.find.epochs * summary["speedup"])
    rows = [r for r in read(seed / "metrics.json") if r["phase"] == "eval"]
    assert len(rows) == recipe.eval.epochs + extra == read(seed / "events.json")["eval/budget"]["epochs"]
    assert summary["speedup"] > 2  # so Scratch-B's budget is really longer than Scratch-E's
    # it is the scratch training of the pruned network, so the budget is judged, and met
    pruned = run_recipe(make_recipe(*BN), shared_out, progress=False)
    (sx,) = comparison_setup([read_run_record(pruned), read_run_record(seed.parent)]).budgets
    assert sx.not_scratch == ""
    assert sx.same_epochs if budget == "scratch_e" else sx.same_macs


def test_a_scratch_budget_needs_a_training_from_scratch(make_recipe) -> None:
    with pytest.raises(RecipeError, match="eval.budget: scratch_b sizes a training from scratch of the pruned model against a one-shot pipeline; it needs eval.rewind: reinit"):
        make_recipe(*BN, "eval.budget=scratch_b")
    # seed 004 sizes scratch training against a pipeline that prunes once
    with pytest.raises(RecipeError, match=r"it needs eval.rewind: reinit and method oneshot \(got rewind reinit, method imp\)"):
        make_recipe("prune.method=imp", "prune.masks_from=find", "eval.rewind=reinit", "eval.budget=scratch_e")


def test_filter_l1_ranked_globally_is_said_as_the_run_starts_and_only_then(make_recipe, shared_out: Path) -> None:
    """Seed 004 and Li et al. prune filters by L1-norm layer by layer: a recipe that ranks them
    globally hears so before its find phase trains, once, and not again when it prunes."""
    recipe = make_recipe("prune.criterion=filter_l1", "prune.scope=global", source="structured")
    layerwise = make_recipe("prune.criterion=filter_l1", "prune.scope=layerwise", source="structured")
    assert not any("filter_l1" in message for message in unused_settings(layerwise))
    trained_after = []  # the warnings said when the first training starts
    real_init = Trainer.__init__

    def init(self, *args, **kwargs):
        trained_after.append([str(w.message) for w in caught])
        real_init(self, *args, **kwargs)

    with warnings.catch_warnings(record=True) as caught, pytest.MonkeyPatch.context() as patch:
        warnings.simplefilter("always")
        patch.setattr(Trainer, "__init__", init)
        run_recipe(recipe, shared_out, progress=False)
    said = [str(w.message) for w in caught if "filter_l1" in str(w.message)]
    assert said and said[0] in trained_after[0]
    assert said == [
        "prune.criterion filter_l1 with prune.scope global compares filter norms of layers with different fan-in "
        "(the layers with the fewest inputs lose nearly all their channels); Li et al. and seed 004 prune each "
        "layer alike: use prune.scope layerwise or ratios, or the bn_scale criterion"
    ]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_channel_pruning_records_the_weight_fraction_and_allr_s_d1(make_recipe, shared_out, data, read) -> None:
    """Seed 003's d1 after channel pruning, by hand: ||theta - theta_p|| / (||theta|| sqrt(s)) over
    the Conv/Linear weights, theta_p the dense find weights with the removed channels' rows and
    columns zeroed, s the share of those weights removed; ALLR starts at d * eta_1."""
    recipe = make_recipe(*BN, "eval.lr_policy=allr")
    seed = run_recipe(recipe, shared_out, progress=False) / "seed-0"
    events, channels = read(seed / "events.json"), read(seed / "channels.json")
    dense = dense_model(data)
    dense.load_state_dict(find_state(shared_out, recipe, data))
    pruner = ChannelPruner(dense, torch.zeros(1, *data.input_shape))
    pruner.load_state_dict(channels)
    small = pruner.shrink()
    layers = [n for n, m in dense.named_modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
    norm = sum(float(dense.get_submodule(n).weight.double().square().sum()) for n in layers)
    kept = sum(float(small.get_submodule(n).weight.double().square().sum()) for n in layers)
    s = 1 - sum(small.get_submodule(n).weight.numel() for n in layers) / sum(dense.get_submodule(n).weight.numel() for n in layers)
    assert events["prune"]["sparsity"] == pytest.approx(s, abs=1e-12)
    assert events["prune"]["pruned_fraction_of_remaining"] == pytest.approx(s, abs=1e-12)
    d1 = min(1.0, math.sqrt((norm - kept) / (norm * s)))
    assert events["prune"]["d1"] == pytest.approx(d1, rel=1e-9)
    policy = events["eval/lr_policy"]
    assert policy["d1"] == pytest.approx(d1, rel=1e-9)
    assert policy["initial_lr"] == pytest.approx(max(policy["d1"], policy["d2"]) * max(read(seed / "lr_log.json")["find"]), rel=1e-12)
