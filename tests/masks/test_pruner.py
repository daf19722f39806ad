"""Pruner masks against torch.nn.utils.prune, exact counts, nesting, criteria, persistence, errors."""

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils import prune as torch_prune

from prunelab.criteria import Random
from prunelab.masks import Pruner


class ConvNet(nn.Module):
    """Conv1d, Conv2d and Linear layers of different sizes (masks only; no forward needed)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1d = nn.Conv1d(3, 8, 5)
        self.conv2d = nn.Conv2d(8, 16, 3)
        self.bn = nn.BatchNorm2d(16)
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)


WEIGHTS = ["conv1d.weight", "conv2d.weight", "fc1.weight", "fc2.weight"]


def distinct_model(seed: int = 0) -> ConvNet:
    """A ConvNet whose prunable weights have pairwise distinct magnitudes (no ties anywhere)."""
    torch.manual_seed(seed)
    model = ConvNet()
    params = [model.get_parameter(n) for n in WEIGHTS]
    total = sum(p.numel() for p in params)
    magnitudes = (torch.randperm(total) + 1).float() / total
    signs = torch.randint(0, 2, (total,)).float() * 2 - 1
    with torch.no_grad():
        for p, values in zip(params, (magnitudes * signs).split([p.numel() for p in params])):
            p.copy_(values.view_as(p))
    return model


def torch_masks(model: nn.Module, amount: float | dict[str, float], scope: str = "global") -> dict[str, torch.Tensor]:
    """Reference masks from torch.nn.utils.prune, computed on a copy of the model."""
    model = copy.deepcopy(model)
    pairs = [(model.get_submodule(n.rsplit(".", 1)[0]), "weight") for n in WEIGHTS]
    if scope == "global":
        torch_prune.global_unstructured(pairs, pruning_method=torch_prune.L1Unstructured, amount=amount)
    else:
        for name, (module, _) in zip(WEIGHTS, pairs):
            ratio = amount[name] if isinstance(amount, dict) else amount
            torch_prune.l1_unstructured(module, "weight", amount=ratio)
    return {name: module.weight_mask.bool() for name, (module, _) in zip(WEIGHTS, pairs)}


def assert_masks_equal(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert list(actual) == list(expected)
    for name in expected:
        assert actual[name].dtype == torch.bool and torch.equal(actual[name], expected[name]), name


def total_weights(model: nn.Module) -> int:
    return sum(model.get_parameter(n).numel() for n in WEIGHTS)


# -- masks equal torch's on weights without ties -------------------------------------------------


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.9, 0.97])
@pytest.mark.parametrize("seed", [0, 1])
def test_global_matches_torch_global_unstructured(sparsity, seed):
    model = distinct_model(seed)
    expected = torch_masks(model, sparsity)
    pruner = Pruner(model)
    assert_masks_equal(pruner.prune(sparsity), expected)
    assert pruner.count_pruned() == round(sparsity * total_weights(model))
    for name, mask in expected.items():
        assert torch.equal(model.get_parameter(name) != 0, mask)  # pruned weights are zeroed in place


# 0.1875 of conv1d's 120 weights is 22.5: rounded half to even to 22, as Python's round and torch do.
@pytest.mark.parametrize("sparsity", [0.2, 0.75, 0.95, 0.1875])
def test_layerwise_matches_torch_l1_unstructured(sparsity):
    model = distinct_model(2)
    expected = torch_masks(model, sparsity, scope="layerwise")
    pruner = Pruner(model)
    assert_masks_equal(pruner.prune(sparsity, scope="layerwise"), expected)
    for name, ratio in pruner.layer_sparsity().items():
        n = model.get_parameter(name).numel()
        assert ratio * n == pytest.approx(round(sparsity * n))


def test_ratios_match_torch_l1_unstructured_per_layer():
    model = distinct_model(3)
    ratios = {"conv1d.weight": 0.3, "conv2d.weight": 0.6, "fc1.weight": 0.95, "fc2.weight": 0.5}
    expected = torch_masks(model, ratios, scope="layerwise")
    # Module names, parameter names and regexes all name layers.
    given = {"conv1d": 0.3, "conv2d.weight": 0.6, r"fc1": 0.95, r"fc[2-9]": 0.5}
    assert_masks_equal(Pruner(model).prune(ratios=given), expected)


def test_ratios_leave_other_layers_as_they_are():
    model = distinct_model()
    pruner = Pruner(model)
    pruner.prune(ratios={"fc1": 0.5})
    assert pruner.layer_sparsity() == {"conv1d.weight": 0.0, "conv2d.weight": 0.0, "fc1.weight": 0.5, "fc2.weight": 0.0}
    # Layers pruned before keep their masks, whether a later ratio leaves them out (conv2d) or
    # asks for the count they already have (fc1, which then chooses nothing).
    pruner.prune(ratios={"conv2d": 0.25})
    before = {name: mask.clone() for name, mask in pruner.masks.items()}
    pruner.prune(ratios={"fc1": 0.5, "fc2": 0.7})
    assert pruner.layer_sparsity() == {"conv1d.weight": 0.0, "conv2d.weight": 0.25, "fc1.weight": 0.5, "fc2.weight": 0.7}
    for name in ("conv1d.weight", "conv2d.weight", "fc1.weight"):
        assert torch.equal(pruner.masks[name], before[name]), name
        assert torch.equal(model.get_parameter(name) != 0, before[name]), name


# -- exact counts with ties ----------------------------------------------------------------------


def constant_model(value: float = 0.5) -> ConvNet:
    model = ConvNet()
    with torch.no_grad():
        for name in WEIGHTS:
            model.get_parameter(name).fill_(value)
    return model


@pytest.mark.parametrize("sparsity", [0.01, 0.3, 0.5, 0.9, 0.999])
@pytest.mark.filterwarnings("ignore:every weight of")  # ties broken by position empty the first layers
def test_global_ties_exact_count_earliest_first(sparsity):
    model = constant_model()
    pruner = Pruner(model)
    masks = pruner.prune(sparsity)
    n_prune = round(sparsity * total_weights(model))
    assert pruner.count_pruned() == n_prune
    flat = torch.cat([masks[n].reshape(-1) for n in WEIGHTS])
    assert not flat[:n_prune].any() and flat[n_prune:].all()  # model order, then flat index
    assert_masks_equal(Pruner(constant_model()).prune(sparsity), masks)  # deterministic


def test_layerwise_ties_exact_count_per_layer():
    model = constant_model()
    masks = Pruner(model).prune(0.45, scope="layerwise")
    for name in WEIGHTS:
        flat = masks[name].reshape(-1)
        n_prune = round(0.45 * flat.numel())
        assert not flat[:n_prune].any() and flat[n_prune:].all(), name


# -- nesting ---------------------------------------------------------------------------------


def train_steps(model: ConvNet, optimizer: torch.optim.Optimizer, steps: int) -> None:
    """A few steps on a loss of the prunable weights (the ConvNet has no forward)."""
    for _ in range(steps):
        optimizer.zero_grad()
        loss = sum(((model.get_parameter(n) - 0.3) ** 2).sum() for n in WEIGHTS)
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_masks_nest_over_prunes_with_training_in_between(scope):
    model = distinct_model()
    pruner = Pruner(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    pruner.attach(optimizer)
    previous = None
    for sparsity in (0.2, 0.5, 0.8, 0.9):
        masks = {n: m.clone() for n, m in pruner.prune(sparsity, scope=scope).items()}
        if scope == "global":
            assert pruner.count_pruned() == round(sparsity * total_weights(model))
        else:
            for name in WEIGHTS:
                assert pruner.count_pruned(name) == round(sparsity * masks[name].numel())
        if previous is not None:
            for name in WEIGHTS:
                assert not (masks[name] & ~previous[name]).any(), "a pruned weight regrew"
        previous = masks
        train_steps(model, optimizer, 3)


def test_nesting_holds_when_pruned_weights_come_back_nonzero():
    """After rewinding, pruned weights may be large; they must still stay pruned."""
    model = distinct_model()
    start = copy.deepcopy(model.state_dict())
    pruner = Pruner(model)
    first = {n: m.clone() for n, m in pruner.prune(0.5).items()}
    with torch.no_grad():  # rewrite the weights so that the old ranking is reversed
        for name in WEIGHTS:
            model.get_parameter(name).copy_(1 / start[name])
    second = pruner.prune(0.6)
    assert pruner.count_pruned() == round(0.6 * total_weights(model))
    for name in WEIGHTS:
        assert not (second[name] & ~first[name]).any()
        assert (model.get_parameter(name)[~second[name]] == 0).all()


def test_pruning_below_the_current_sparsity_is_an_error():
    pruner = Pruner(distinct_model())
    pruner.prune(0.5)
    pruner.prune(0.5)  # the same target again is fine and changes nothing
    with pytest.raises(ValueError, match="below the current sparsity"):
        pruner.prune(0.4)
    with pytest.raises(ValueError, match="below its current sparsity"):
        pruner.prune(0.1, scope="layerwise")
    with pytest.raises(ValueError, match="below its current sparsity"):
        pruner.prune(ratios={"fc2": 0.0})


# -- random criterion --------------------------------------------------------------------------


def lowest_random_scores(model: nn.Module, seed: int, sparsity: float) -> dict[str, torch.Tensor]:
    """Reference masks of the random criterion: Random(seed)'s scores (checked against the hash
    by hand in the criteria tests), the round(sparsity * n) lowest dropped by a stable sort."""
    weights = [model.get_parameter(n) for n in WEIGHTS]
    scores = torch.cat([Random(seed)(n, torch.zeros(w.numel()), slice(0, w.numel()), torch.empty(w.numel())) for n, w in zip(WEIGHTS, weights)])
    keep = torch.ones(scores.numel(), dtype=torch.bool)
    keep[torch.sort(scores, stable=True).indices[: round(sparsity * scores.numel())]] = False
    return {n: piece.view_as(w) for n, w, piece in zip(WEIGHTS, weights, keep.split([w.numel() for w in weights]))}


def test_global_random_exact_count_and_reproducible_by_seed():
    model = distinct_model()
    masks = {n: m.clone() for n, m in Pruner(model, criterion="random", seed=1).prune(0.7).items()}
    assert_masks_equal(masks, lowest_random_scores(model, 1, 0.7))  # the lowest scores of the pruner's own seed
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.7 * total_weights(model))
    assert_masks_equal(Pruner(distinct_model(), criterion="random", seed=1).prune(0.7), masks)
    other = Pruner(distinct_model(), criterion="random", seed=2).prune(0.7)
    assert any(not torch.equal(other[n], masks[n]) for n in WEIGHTS)


def test_global_random_is_uniform_over_layers_and_magnitudes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(200, 100), nn.Linear(100, 50), nn.Linear(50, 20))
    magnitudes = {n: p.detach().abs().clone() for n, p in model.named_parameters() if n.endswith("weight")}
    pruner = Pruner(model, criterion="random")
    masks = pruner.prune(0.6)
    for name, ratio in pruner.layer_sparsity().items():
        assert ratio == pytest.approx(0.6, abs=0.06), name  # 1,000 weights: sd of the ratio ~0.016
    pruned = torch.cat([magnitudes[n][~m] for n, m in masks.items()])
    kept = torch.cat([magnitudes[n][m] for n, m in masks.items()])
    # Magnitude plays no part: pruned and kept weights have about the same mean magnitude.
    assert pruned.mean().item() == pytest.approx(kept.mean().item(), rel=0.05)


def test_random_preserving_layerwise_ratios_of_a_magnitude_mask():
    model = distinct_model()
    magnitude = Pruner(model)
    magnitude_masks = magnitude.prune(0.8)
    lpr = magnitude.layer_sparsity()
    assert len(set(lpr.values())) > 1  # global magnitude pruning gave the layers different ratios

    baseline = Pruner(distinct_model(), criterion="random")
    random_masks = baseline.prune(ratios=lpr)
    for name in WEIGHTS:
        assert baseline.count_pruned(name) == magnitude.count_pruned(name)
    assert any(not torch.equal(random_masks[n], magnitude_masks[n]) for n in WEIGHTS)


def test_criterion_per_call_and_custom_criterion():
    model = distinct_model()
    pruner = Pruner(model, seed=3)
    masks = pruner.prune(0.3, criterion="random")  # by name: random under the pruner's own seed
    assert_masks_equal(masks, lowest_random_scores(model, 3, 0.3))

    def largest_first(name, values, positions, out):
        return torch.neg(values.abs(), out=out)

    model = distinct_model()
    magnitudes = torch.cat([model.get_parameter(n).detach().abs().reshape(-1) for n in WEIGHTS])
    masks = Pruner(model, criterion=largest_first).prune(0.1)
    pruned = torch.cat([~masks[n].reshape(-1) for n in WEIGHTS])
    assert magnitudes[pruned].min() > magnitudes[~pruned].max()


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_a_criterion_scoring_pruned_zeros_minus_infinity_prunes_on(scope):
    """log |w| is -inf where a weight was pruned to 0, and only there: not an error. It
    orders weights as |w| does, so it prunes as magnitude does."""

    def log_magnitude(name, values, positions, out):
        return torch.log(values.abs(), out=out)

    model, reference = distinct_model(), distinct_model()
    by_log, by_magnitude = Pruner(model, criterion=log_magnitude), Pruner(reference)
    for sparsity in (0.3, 0.6, 0.8):
        by_log.prune(sparsity, scope=scope)
        by_magnitude.prune(sparsity, scope=scope)
    assert_masks_equal(by_log.masks, by_magnitude.masks)
    with torch.no_grad():
        model.get_parameter(WEIGHTS[0]).view(-1)[by_log.masks[WEIGHTS[0]].view(-1).nonzero()[0]] = float("nan")
    with pytest.raises(ValueError, match=f"{WEIGHTS[0]} has NaN or -inf scores"):  # a kept weight's NaN still is
        by_log.prune(0.9, scope=scope)


# -- measurements and persistence ----------------------------------------------------------------


def test_sparsity_and_layer_sparsity():
    model = distinct_model()
    pruner = Pruner(model)
    assert pruner.sparsity() == 0.0 and pruner.count_pruned() == 0
    pruner.prune(ratios={"fc1": 0.5, "fc2": 0.25})
    assert pruner.layer_sparsity()["fc1.weight"] == 0.5 and pruner.layer_sparsity()["fc2.weight"] == 0.25
    assert pruner.count_pruned() == 64 * 32 // 2 + 32 * 10 // 4
    assert pruner.sparsity() == pruner.count_pruned() / total_weights(model)


def test_state_dict_round_trip_through_safetensors(tmp_path):
    model = distinct_model()
    dense = copy.deepcopy(model)
    pruner = Pruner(model)
    masks = pruner.prune(0.77)
    path = tmp_path / "masks.safetensors"
    save_file(pruner.state_dict(), path)
    for name, mask in masks.items():  # compact: 8 weights a byte
        assert pruner.state_dict()[f"mask:{name}"].numel() == -(-mask.numel() // 8)

    restored = Pruner(dense)
    restored.load_state_dict(load_file(path))
    assert_masks_equal(restored.masks, masks)
    assert restored.count_pruned() == pruner.count_pruned()
    for name in WEIGHTS:  # loading applies the masks to the model
        assert torch.equal(dense.get_parameter(name), model.get_parameter(name))


def test_the_state_of_a_pruner_that_has_not_pruned_round_trips_as_such():
    pruner = Pruner(distinct_model())
    pruner.prune(0.5)
    pruner.load_state_dict(Pruner(distinct_model()).state_dict())  # an empty state: back to no masks
    assert pruner.masks == {} and pruner.state_dict() == {} and pruner.count_pruned() == 0


def pruned_state(sparsity: float = 0.5) -> dict[str, torch.Tensor]:
    pruner = Pruner(distinct_model())
    pruner.prune(sparsity)
    return pruner.state_dict()


def test_loading_a_mask_for_a_missing_parameter_is_an_error():
    state = pruned_state()
    small = nn.Module()
    small.fc1 = nn.Linear(64, 32)
    with pytest.raises(ValueError, match="mask for 'conv1d.weight', but the model has no prunable parameter"):
        Pruner(small).load_state_dict(state)


def test_loading_a_mask_of_the_wrong_shape_is_an_error():
    state = pruned_state()
    other = ConvNet()
    other.fc2 = nn.Linear(32, 12)
    with pytest.raises(ValueError, match=r"mask for 'fc2.weight' has shape \(10, 32\).*\(12, 32\)"):
        Pruner(other).load_state_dict(state)


def test_loading_a_corrupt_state_is_an_error():
    state = pruned_state()
    with pytest.raises(ValueError, match="unexpected key"):
        Pruner(distinct_model()).load_state_dict({**state, "junk": torch.zeros(1)})
    with pytest.raises(ValueError, match="unexpected key 0 in a pruner state_dict"):
        Pruner(distinct_model()).load_state_dict({0: torch.zeros(1)})
    with pytest.raises(ValueError, match="unexpected key 'mask:' in a pruner state_dict"):  # a kind without a name
        Pruner(distinct_model()).load_state_dict({**state, "mask:": torch.zeros(1, dtype=torch.uint8)})
    state["mask:fc2.weight"] = state["mask:fc2.weight"][:-1]
    with pytest.raises(ValueError, match="mask:fc2.weight has 39 bytes of torch.uint8, expected 40 uint8"):
        Pruner(distinct_model()).load_state_dict(state)
    state["mask:fc2.weight"] = [255] * 40
    with pytest.raises(ValueError, match="mask:fc2.weight must be a tensor of 40 uint8 bytes .* got list"):
        Pruner(distinct_model()).load_state_dict(state)


def test_a_lazy_module_is_refused_until_it_has_run():
    model = nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.Linear(8, 2))
    pruner = Pruner(model)
    with pytest.raises(ValueError, match=r"0.weight belongs to a lazy module that has not run yet.*run the model on one batch first"):
        pruner.prune(0.5)
    model(torch.randn(3, 5))  # now 0.weight is 8 x 5
    pruner.prune(0.5)
    assert pruner.count_pruned() == round(0.5 * (8 * 5 + 8 * 2))


def test_a_model_on_the_meta_device_is_refused_until_materialized():
    state = pruned_state()
    with torch.device("meta"):
        model = ConvNet()
    pruner = Pruner(model)
    for act in (lambda: pruner.load_state_dict(state), lambda: pruner.prune(0.5)):
        with pytest.raises(ValueError, match=r"on the meta device, without values: materialize the model first"):
            act()
    model.to_empty(device="cpu")  # new parameters: the pruner finds them by name
    with torch.no_grad():
        for param in model.parameters():
            param.fill_(1.0)
    pruner.load_state_dict(state)
    assert pruner.state_dict().keys() == state.keys()
    assert all(torch.equal(pruner.state_dict()[key], state[key]) for key in state)
    assert all(bool((param[~pruner.masks[name]] == 0).all()) for name, param in pruner.parameters.items())


# -- argument errors ----------------------------------------------------------------------


@pytest.mark.parametrize("sparsity", [1.0, -0.1, 1.5, float("nan"), "0.5", True, False])
def test_sparsity_outside_unit_interval_is_an_error(sparsity):
    pruner = Pruner(distinct_model())
    with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\)"):
        pruner.prune(sparsity)
    with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\)"):
        pruner.prune(sparsity, scope="layerwise")
    assert pruner.count_pruned() == 0


def test_ratios_as_a_scope_or_a_list_are_errors_that_say_how():
    pruner = Pruner(distinct_model())
    with pytest.raises(ValueError, match=r"got 'ratios' \(per-layer ratios are given as prune\(ratios=\{name: ratio\}\)\)"):
        pruner.prune(0.5, scope="ratios")
    with pytest.raises(TypeError, match="ratios must be a mapping of names to ratios, got list"):
        pruner.prune(ratios=[("fc1", 0.5)])


def test_a_ratio_of_one_prunes_the_whole_layer_as_global_pruning_can():
    """Seed 002's preserve-LPR baseline copies the layerwise ratios of a global mask, which
    may have pruned a layer entirely (layer collapse)."""
    pruner = Pruner(distinct_model())
    pruner.prune(ratios={"fc1": 1.0, "conv2d": 0.5})
    assert pruner.layer_sparsity()["fc1.weight"] == 1.0
    assert pruner.layer_sparsity()["conv2d.weight"] == 0.5
    assert not pruner.model.get_parameter("fc1.weight").any()


def test_bad_prune_arguments_are_errors():
    pruner = Pruner(distinct_model())
    with pytest.raises(ValueError, match="not both or neither"):
        pruner.prune()
    with pytest.raises(ValueError, match="not both or neither"):
        pruner.prune(0.5, ratios={"fc1": 0.5})
    with pytest.raises(ValueError, match="scope must be one of"):
        pruner.prune(0.5, scope="local")
    with pytest.raises(ValueError, match=r"ratio for 'fc1' must be a number in \[0, 1\], got 1.5"):
        pruner.prune(ratios={"fc1": 1.5})
    with pytest.raises(ValueError, match="ratio given for 'bn', which names none of the prunable parameters"):
        pruner.prune(ratios={"bn": 0.5})
    with pytest.raises(TypeError, match="ratios are keyed by names or patterns"):
        pruner.prune(ratios={0: 0.5})
    with pytest.raises(ValueError, match="unknown criterion 'l2'"):
        pruner.prune(0.5, criterion="l2")
    with pytest.raises(ValueError, match="unknown criterion"):
        Pruner(distinct_model(), criterion="Magnitude")
    for scope in ("bogus", "layerwise", "global"):
        with pytest.raises(ValueError, match=f"scope='{scope}' does not apply to per-layer ratios"):
            pruner.prune(ratios={"fc1": 0.5}, scope=scope)
    with pytest.raises(ValueError, match=r"fc1.weight gets two ratios: 0.5 from 'fc1' and 0.6 from 'fc1.weight'"):
        pruner.prune(ratios={"fc1": 0.5, "fc1.weight": 0.6})
    assert pruner.count_pruned() == 0
    assert pruner.named_ratios({"fc1": 0.5, "fc1.weight": 0.5}) == {"fc1.weight": 0.5}  # one ratio, named twice: no conflict


def test_bad_constructor_and_attach_arguments_are_errors():
    with pytest.raises(TypeError, match="criterion must be one of"):
        Pruner(distinct_model(), criterion=None)
    with pytest.raises(TypeError, match="seed must be an int, got 'x'"):
        Pruner(distinct_model(), seed="x")
    assert Pruner(distinct_model(), seed=np.int64(3)).seed == 3 and type(Pruner(distinct_model(), seed=np.int64(3)).seed) is int
    with pytest.raises(ValueError, match=r"^seed must fit in 64 bits, in \[-2\*\*63, 2\*\*63\), got 18446744073709551616$"):
        Pruner(distinct_model(), seed=2**64)  # before a random criterion would overflow on it
    for seed in (2**63, -(2**63) - 1):
        with pytest.raises(ValueError, match="seed must fit in 64 bits"):
            Pruner(distinct_model(), seed=seed)
    assert Pruner(distinct_model(), seed=2**63 - 1).seed == 2**63 - 1
    lowest = Pruner(distinct_model(), criterion="random", seed=-(2**63))
    lowest.prune(0.5)
    assert lowest.sparsity() == pytest.approx(0.5, abs=1e-3)
    with pytest.raises(TypeError, match=r"^include holds 0, not a name or pattern \(a string\)$"):
        Pruner(distinct_model(), include=[0])
    for include, kind in ((5, "int"), ((name for name in ["fc1"]), "generator")):
        with pytest.raises(TypeError, match=rf"^include must be a list of names or patterns, got {kind}$"):
            Pruner(distinct_model(), include=include)
    with pytest.raises(TypeError, match=r"^load_state_dict needs a mapping, as state_dict\(\) gives .*, got str$"):
        Pruner(distinct_model()).load_state_dict("masks.safetensors")
    with pytest.raises(TypeError, match="Pruner needs an nn.Module, got dict"):
        Pruner({})
    model = distinct_model()
    with pytest.raises(TypeError, match="attach needs a torch.optim.Optimizer"):
        Pruner(model).attach(model)
    copy_optimizer = torch.optim.SGD(copy.deepcopy(model).parameters(), lr=0.1)
    pruner = Pruner(model)
    with pytest.raises(ValueError, match="the optimizer trains none of the weights this pruner prunes"):
        pruner.attach(copy_optimizer)
    assert not pruner._hooks  # nothing registered
    head_only = torch.optim.SGD(model.fc2.parameters(), lr=0.1)  # one optimizer per part of the model
    pruner.attach(head_only)
    with pytest.raises(ValueError, match="'fc3.weight' is not a prunable parameter"):
        Pruner(model).count_pruned("fc3.weight")


def test_loading_a_state_without_shapes_or_with_missing_masks_is_an_error():
    state = pruned_state()
    with pytest.raises(ValueError, match="has 'mask:fc2.weight' but not 'shape:fc2.weight'"):
        Pruner(distinct_model()).load_state_dict({k: v for k, v in state.items() if k != "shape:fc2.weight"})
    shapes_only = {k: v for k, v in state.items() if k.startswith("shape:")}
    with pytest.raises(ValueError, match="has 'shape:conv1d.weight' but not 'mask:conv1d.weight'"):
        Pruner(distinct_model()).load_state_dict(shapes_only)
    with pytest.raises(ValueError, match="the state has no mask for fc2.weight"):
        Pruner(distinct_model()).load_state_dict({k: v for k, v in state.items() if not k.endswith(":fc2.weight")})


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_zero_size_weights_count_as_unpruned():
    """... and are not an emptied layer either: pruning warns of no collapse."""
    model = nn.Sequential(nn.Linear(8, 0), nn.Linear(0, 4), nn.Linear(8, 4))
    pruner = Pruner(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pruner.prune(0.5)
    assert pruner.layer_sparsity() == {"0.weight": 0.0, "1.weight": 0.0, "2.weight": 0.5}


@pytest.mark.parametrize("shape", [torch.tensor(320), torch.tensor([10.0, 32.0]), [10, 32]], ids=["0-d", "float", "list"])
def test_loading_a_malformed_shape_is_an_error(shape):
    state = {**pruned_state(), "shape:fc2.weight": shape}
    with pytest.raises(ValueError, match="'shape:fc2.weight' must be a 1-d integer tensor"):
        Pruner(distinct_model()).load_state_dict(state)


def test_numpy_scalars_count_like_python_floats():
    np = pytest.importorskip("numpy")
    model = nn.Linear(700, 100, bias=False)  # 70,000 weights: past float16's largest number
    for sparsity in (np.float16(0.5), np.float32(0.3), np.float64(0.7)):
        pruner = Pruner(copy.deepcopy(model))
        pruner.prune(sparsity)
        assert pruner.count_pruned() == round(float(sparsity) * 70_000)
        pruner = Pruner(copy.deepcopy(model))
        pruner.prune(ratios={"weight": sparsity})
        assert pruner.count_pruned() == round(float(sparsity) * 70_000)


def test_an_invalid_regex_as_ratio_key_is_an_error():
    with pytest.raises(ValueError, match=r"ratios pattern 'fc\[' is not a valid regular expression"):
        Pruner(distinct_model()).prune(ratios={"fc[": 0.5})


def test_a_copy_of_an_attached_pruner_is_detached_and_can_be_attached():
    model = distinct_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    pruner = Pruner(model)
    pruner.prune(0.8)
    pruner.attach(optimizer)
    copied_model, copied_pruner, copied_optimizer = copy.deepcopy((model, pruner, optimizer))
    restored_pruner = pickle.loads(pickle.dumps(pruner))
    assert restored_pruner.sparsity() == pruner.sparsity()
    assert copied_pruner._hooks == {} and restored_pruner._hooks == {}  # none of the original's optimizer

    copied_pruner.attach(copied_optimizer)
    x = torch.randn(4, 3, 16)
    for _ in range(3):
        copied_optimizer.zero_grad()
        out = copied_model.conv2d(copied_model.conv1d(x).unsqueeze(2).expand(-1, -1, 3, -1))  # no forward of its own
        out.square().mean().backward()
        copied_optimizer.step()
    for name in ("conv1d.weight", "conv2d.weight"):  # the layers the forward above trains
        weight, mask = copied_model.get_parameter(name), copied_pruner.masks[name]
        assert (weight[~mask] == 0).all() and (weight.grad[~mask] == 0).all(), name
        assert (weight.grad[mask] != 0).any(), name
    assert copied_pruner.masks["conv2d.weight"].logical_not().any()
    assert len(pruner._hooks) == 1 and len(optimizer._optimizer_step_pre_hooks) == 1


def test_a_layer_emptied_by_global_pruning_is_warned_about_once():
    """Global pruning can take every weight of a small layer (layer collapse, seed 002);
    a ratio of 1 asks for it, and a layer emptied earlier is not news."""
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 5))
    with torch.no_grad():
        model[2].weight.mul_(1e-3)  # far smaller than the first layer's weights
    pruner = Pruner(model)
    with pytest.warns(UserWarning, match=r"every weight of 2.weight is pruned \(layer collapse\)"):
        pruner.prune(0.8)
    assert pruner.layer_sparsity()["2.weight"] == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pruner.prune(0.85)  # 2.weight was empty before
    with pytest.warns(UserWarning, match=r"every weight of 0.weight is pruned .* a sparsity of 0.75 rounds to all of a layer this small"):
        Pruner(nn.Sequential(nn.Linear(2, 1), nn.Linear(1, 8))).prune(0.75, scope="layerwise")  # round(1.5) = 2 of 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ratio of 1 asks for the empty layer: no warning
        Pruner(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))).prune(ratios={"0": 1.0})


def test_a_sparsity_or_ratio_may_be_a_one_element_real_tensor():
    """As a numpy scalar: floating or integer (torch.tensor(0), like numpy.int64(0)), 0-d or not."""
    pruner = Pruner(nn.Sequential(nn.Linear(10, 10)))
    pruner.prune(torch.tensor(0))
    assert pruner.count_pruned() == 0
    pruner.prune(torch.tensor(0.5, dtype=torch.float16))
    assert pruner.count_pruned() == 50
    pruner.prune(torch.tensor([0.6]))
    assert pruner.count_pruned() == 60
    pruner.prune(ratios={"0.weight": torch.tensor(1)})  # a ratio of 1 empties the layer
    assert pruner.count_pruned() == 100


@pytest.mark.parametrize(
    ("value", "what"),
    [(torch.tensor([0.6, 0.7]), r"torch.float32 tensor of shape \(2,\)"), (torch.tensor(False), r"torch.bool tensor of shape \(\)"),
     (torch.tensor(0.5 + 0j), r"torch.complex64 tensor of shape \(\)")],
)  # fmt: skip
def test_a_tensor_that_is_no_real_number_is_refused_as_sparsity_or_ratio(value, what):
    pruner = Pruner(nn.Sequential(nn.Linear(10, 10)))
    with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\), got a " + what):
        pruner.prune(value)
    with pytest.raises(ValueError, match=r"ratio for '0.weight' must be a number in \[0, 1\], got a " + what):
        pruner.prune(ratios={"0.weight": value})
    assert pruner.count_pruned() == 0


def test_state_dict_bytes_are_msb_first_and_zero_padded():
    """The on-disk mask format, pinned: 8 weights a byte, the first weight in the top bit, the
    last byte padded with zero bits (masks and checkpoints written earlier must still load)."""
    model = nn.Linear(9, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.arange(1.0, 10.0))  # |w| = 1..9: the first three are the smallest
    pruner = Pruner(model)
    pruner.prune(ratios={"weight": 3 / 9})
    state = pruner.state_dict()
    # kept = F F F T T T T T | T -> 0b00011111, 0b10000000
    assert state["mask:weight"].dtype == torch.uint8 and state["mask:weight"].tolist() == [0b00011111, 0b10000000]
    assert state["shape:weight"].tolist() == [1, 9]
    fresh = Pruner(nn.Linear(9, 1, bias=False))
    fresh.load_state_dict({"mask:weight": torch.tensor([0b10100000, 0b10000000], dtype=torch.uint8),
                           "shape:weight": torch.tensor([1, 9])})
    assert fresh.masks["weight"].view(-1).tolist() == [True, False, True, False, False, False, False, False, True]


def test_printing_the_pruner_counts_the_pruned_weights_not_zero_of_the_model_s_weights_now():
    """Weights loaded with assign=True replace the model's parameters: printing the pruner
    checks the new ones (all 32 pruned positions loaded as 0.5), not those it last saw."""
    model = nn.Linear(8, 8)
    pruner = Pruner(model)
    pruner.prune(0.5)
    model.load_state_dict({name: torch.full_like(value, 0.5) for name, value in model.state_dict().items()}, assign=True)
    assert repr(pruner) == "Pruner(1 tensor, 64 weights, 50.00% pruned, 32 pruned weights not zero: apply() zeroes them)"
    pruner.apply()
    assert repr(pruner) == "Pruner(1 tensor, 64 weights, 50.00% pruned)" and int(model.weight.count_nonzero()) == 32
    del model.weight
    model.weight = nn.Parameter(torch.ones(2, 2))
    assert repr(pruner) == "Pruner(1 tensor, 64 weights: weight was replaced by a parameter of shape (2, 2), not (8, 8))"


def test_printing_the_pruner_says_a_count_of_one_in_the_singular():
    model = nn.Linear(2, 2)
    pruner = Pruner(model)
    pruner.prune(0.25)
    with torch.no_grad():
        model.weight.fill_(0.5)
    assert repr(pruner) == "Pruner(1 tensor, 4 weights, 25.00% pruned, 1 pruned weight not zero: apply() zeroes them)"


def test_a_target_already_met_changes_nothing_and_chooses_nothing(monkeypatch):
    """A schedule's target given every step: between its updates the masks stay the same
    objects, no selection runs, and no mask is read for a layer the call emptied (a pass
    over every mask, which took a quarter of a LeNet-300-100 training step)."""
    from prunelab.masks import pruner as pruner_module

    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 4))
    pruner = Pruner(model)
    pruner.prune(0.5, scope="layerwise")  # 32 of 64 and 16 of 32: half of all too
    before = dict(pruner.masks)
    calls = []
    monkeypatch.setattr(pruner_module, "select", lambda *args, **kwargs: calls.append(args) or {})
    monkeypatch.setattr(Pruner, "_emptied", lambda self, name: calls.append(name))
    assert pruner.prune(0.5, scope="layerwise") is pruner.masks
    pruner.prune(0.5)
    pruner.prune(ratios={"1.weight": 0.5})
    assert calls == [] and all(pruner.masks[name] is mask for name, mask in before.items())


def test_a_tied_weights_mask_loads_under_any_of_its_names():
    """Saved from a model naming the shared weight ``a.weight`` first, loaded into one that names it ``b.weight`` first."""
    from collections import OrderedDict

    def tied(order: str) -> nn.Module:
        layers = OrderedDict((name, nn.Linear(6, 6, bias=False)) for name in order)
        layers[order[1]].weight = layers[order[0]].weight
        return nn.Sequential(layers)

    torch.manual_seed(0)
    saved_from = tied("ab")
    pruner = Pruner(saved_from)
    pruner.prune(0.5)
    state = pruner.state_dict()
    assert set(state) == {"mask:a.weight", "shape:a.weight"}
    loaded_into = tied("ba")
    other = Pruner(loaded_into)
    other.load_state_dict(state)
    assert list(other.masks) == ["b.weight"] and torch.equal(other.masks["b.weight"], pruner.masks["a.weight"])
    assert other.count_pruned("a.weight") == 18


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_compiled_model_is_pruned_under_its_own_names():
    """Masks saved from a pruner of the torch.compile wrapper load into one of the plain model."""
    model = distinct_model()
    pruner = Pruner(torch.compile(model))
    pruner.prune(0.5)
    assert pruner.model is model and list(pruner.masks) == list(Pruner(model).parameters)
    Pruner(distinct_model()).load_state_dict(pruner.state_dict())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_data_parallel_model_is_pruned_under_its_own_names():
    """DataParallel (and DistributedDataParallel) run the model as ``module``: its names, not
    ``module.0.weight``, in masks, patterns and state dicts; wrappers in wrappers too."""
    model = distinct_model()
    pruner = Pruner(torch.compile(nn.DataParallel(model)), exclude=["fc2"])
    pruner.prune(0.5)
    assert pruner.model is model and list(pruner.masks) == ["conv1d.weight", "conv2d.weight", "fc1.weight"]
    Pruner(distinct_model(), exclude=["fc2"]).load_state_dict(pruner.state_dict())
