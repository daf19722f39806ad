"""Pruned weights, their gradients and their optimizer state stay exactly zero in training."""

import copy
import re
import shutil
from collections.abc import Callable

import pytest
import torch
from torch import nn

from prunelab.masks import Pruner

OPTIMIZERS: dict[str, Callable[[list[nn.Parameter]], torch.optim.Optimizer]] = {
    "sgd_nesterov_wd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True),
    "sgd_foreach": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-4, foreach=True),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2),
    "adam_amsgrad_wd": lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-3, amsgrad=True),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
}


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, step: int, dtype: torch.dtype = torch.float32) -> None:
    g = torch.Generator().manual_seed(step)
    x, y = torch.randn(64, 20, generator=g).to(dtype), torch.randint(0, 4, (64,), generator=g)
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x).float(), y).backward()
    optimizer.step()


def pruned_weights_are_zero(pruner: Pruner) -> bool:
    return all(bool((pruner.parameters[n][~m] == 0).all()) for n, m in pruner.masks.items())


def assert_pruned_entries_zero(pruner: Pruner, optimizer: torch.optim.Optimizer) -> None:
    """Pruned weights, their gradients and every per-weight optimizer state entry are exactly 0."""
    for name, mask in pruner.masks.items():
        param = pruner.parameters[name]
        assert (param[~mask] == 0).all(), f"{name}: pruned weight not zero"
        assert (param.grad[~mask] == 0).all(), f"{name}: gradient of a pruned weight not zero"
        state = {k: v for k, v in optimizer.state[param].items() if torch.is_tensor(v) and v.shape == param.shape}
        assert state, f"{name}: expected per-weight optimizer state"
        for key, value in state.items():
            assert (value[~mask] == 0).all(), f"{name}: optimizer state {key!r} of a pruned weight not zero"


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_pruned_weights_grads_and_state_stay_zero(make_optimizer):
    model = mlp()
    optimizer = make_optimizer(model.parameters())
    for step in range(3):  # dense warm-up: the optimizer state is non-zero everywhere
        train_step(model, optimizer, step)
    pruner = Pruner(model)
    pruner.attach(optimizer)
    pruner.prune(0.7)
    for step in range(3, 8):
        before = {name: p.detach().clone() for name, p in pruner.parameters.items()}
        train_step(model, optimizer, step)
        assert_pruned_entries_zero(pruner, optimizer)
        for name, mask in pruner.masks.items():
            changed = pruner.parameters[name][mask] != before[name][mask]
            assert changed.float().mean() > 0.9, f"{name}: kept weights should train"


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_pruning_again_while_attached_zeroes_state_of_newly_pruned(make_optimizer):
    model = mlp()
    optimizer = make_optimizer(model.parameters())
    pruner = Pruner(model)
    pruner.attach(optimizer)
    pruner.prune(0.3)
    for step in range(4):
        train_step(model, optimizer, step)
    old = {name: m.clone() for name, m in pruner.masks.items()}
    pruner.prune(0.8)
    newly_pruned = {name: old[name] & ~mask for name, mask in pruner.masks.items()}
    assert sum(int(m.sum()) for m in newly_pruned.values()) > 0
    for name, param in pruner.parameters.items():
        for value in optimizer.state[param].values():
            if torch.is_tensor(value) and value.shape == param.shape:
                assert (value[newly_pruned[name]] == 0).all(), "state of a newly pruned weight survived"
    for step in range(4, 8):
        train_step(model, optimizer, step)
        assert_pruned_entries_zero(pruner, optimizer)


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_a_layer_pruned_whole_stays_zero(make_optimizer):
    """A ratio of 1 prunes a whole layer: its weights, gradients and optimizer state stay zero
    as a partly pruned layer's do (after a dense warm-up, so that its state had values)."""
    model = mlp()
    optimizer = make_optimizer(model.parameters())
    for step in range(3):
        train_step(model, optimizer, step)
    pruner = Pruner(model)
    pruner.attach(optimizer)
    pruner.prune(ratios={"0": 0.5, "2": 1.0})
    for step in range(3, 6):
        train_step(model, optimizer, step)
        assert_pruned_entries_zero(pruner, optimizer)
    assert model[2].weight.count_nonzero() == 0 and model[2].weight.grad.count_nonzero() == 0


def test_gradient_accumulation_and_set_to_none():
    """Gradients that are None for some parameters, and accumulated over two backward passes."""
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    pruner = Pruner(model)
    pruner.prune(0.5)
    pruner.attach(optimizer)
    model[4].weight.requires_grad_(False)  # its grad stays None
    x = torch.randn(8, 20)
    model(x).sum().backward()
    model(x).sum().backward()
    optimizer.step()
    for name in ("0.weight", "2.weight"):
        mask = pruner.masks[name]
        assert (pruner.parameters[name][~mask] == 0).all() and (pruner.parameters[name].grad[~mask] == 0).all()
    assert model[4].weight.grad is None


class Drift(torch.optim.Optimizer):
    """An optimizer that moves every weight, even at zero gradient and zero state."""

    def __init__(self, params) -> None:
        super().__init__(params, {"lr": 0.01})

    @torch.no_grad()
    def step(self, closure=None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(group["lr"])


class SubclassedSGD(torch.optim.SGD):
    """A subclass may change the update (this one drifts every weight after SGD's step), so
    it is not trusted to keep zeros."""

    @torch.no_grad()
    def step(self, closure=None) -> None:
        super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(0.01)


@pytest.mark.parametrize("make_optimizer", [Drift, lambda p: SubclassedSGD(p, lr=0.1)], ids=["drift", "sgd_subclass"])
def test_any_optimizer_keeps_pruned_weights_zero(make_optimizer):
    """Optimizers outside ZERO_PRESERVING_OPTIMIZERS (subclasses included) get the weights
    masked again after their step."""
    model = mlp()
    optimizer = make_optimizer(model.parameters())
    pruner = Pruner(model)
    pruner.prune(0.6)
    pruner.attach(optimizer)
    for step in range(3):
        before = {name: p.detach().clone() for name, p in pruner.parameters.items()}
        train_step(model, optimizer, step)
        for name, mask in pruner.masks.items():
            param = pruner.parameters[name]
            assert (param[~mask] == 0).all() and (param.grad[~mask] == 0).all()
            assert (param[mask] != before[name][mask]).any()


def test_detach_stops_enforcement_and_attach_is_idempotent():
    model = mlp()
    optimizer = Drift(model.parameters())
    pruner = Pruner(model)
    pruner.prune(0.5)
    pruner.attach(optimizer)
    pruner.attach(optimizer)  # a second attach adds no second set of hooks
    assert len(optimizer._optimizer_step_pre_hooks) == 1 and len(optimizer._optimizer_step_post_hooks) == 1
    pruner.detach(optimizer)
    assert not optimizer._optimizer_step_pre_hooks and not optimizer._optimizer_step_post_hooks
    train_step(model, optimizer, 0)
    assert (model[0].weight[~pruner.masks["0.weight"]] != 0).any()  # nothing keeps them at zero now
    pruner.apply()
    assert (model[0].weight[~pruner.masks["0.weight"]] == 0).all()


def test_detaching_one_optimizer_keeps_the_others_attached():
    """Two optimizers each train part of the model (a drifting one would move pruned weights
    off zero); detaching one leaves the other's enforcement in place."""
    model = mlp()
    pruner = Pruner(model)
    pruner.prune(0.5)
    first, second = Drift(model[0].parameters()), Drift(model[2].parameters())
    pruner.attach(first)
    pruner.attach(second)
    pruner.detach(first)
    assert not first._optimizer_step_post_hooks and len(second._optimizer_step_post_hooks) == 1
    second.step()  # (its zeroing covers every pruned weight, so the detached one steps last)
    first.step()
    assert (model[0].weight[~pruner.masks["0.weight"]] != 0).all()  # no longer enforced
    assert (model[2].weight[~pruner.masks["2.weight"]] == 0).all()  # still enforced


def test_an_optimizer_dropped_is_let_go():
    """A new optimizer a level (a hand-written IMP loop): the ones dropped are collected, with
    their state, and the pruner keeps up only with the one in use."""
    import gc
    import weakref

    model = mlp()
    pruner = Pruner(model)
    dropped = []
    for level in range(1, 4):
        pruner.prune(1 - 0.5**level, scope="layerwise")
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        pruner.attach(optimizer)
        train_step(model, optimizer, level)
        dropped.append(weakref.ref(optimizer))
    del optimizer
    gc.collect()
    assert [ref() is None for ref in dropped] == [True, True, True]
    assert repr(pruner).endswith("pruned)") and pruner._hooks == {}  # attached to none
    current = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    pruner.attach(current)
    assert repr(pruner).endswith("attached to 1 optimizer)")
    train_step(model, current, 0)
    assert pruned_weights_are_zero(pruner)


def test_stale_masks_are_rebuilt_after_a_step_too():
    """The zeroing after the step of an optimizer not trusted to keep zeros recovers from
    masks that cannot multiply the weights, as the gradient masking before it does."""
    model = mlp()
    pruner = Pruner(model)
    pruner.prune(0.5)
    optimizer = Drift(model.parameters())
    pruner.attach(optimizer)
    pruner.mask_gradients = lambda: None  # only the zeroing after the step meets the stale masks
    pruner._enforced = [(param, mask.to(torch.complex64)) for param, mask in pruner._enforced]
    optimizer.step()
    assert {mask.dtype for _, mask in pruner._enforced} == {torch.float32}
    assert pruned_weights_are_zero(pruner)


@pytest.mark.parametrize("attached", [False, True], ids=["detached", "attached"])
def test_apply_after_rewinding_the_weights(attached):
    model = mlp()
    start = copy.deepcopy(model.state_dict())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    train_step(model, optimizer, 0)  # gradients and Adam moments everywhere
    pruner = Pruner(model)
    pruner.prune(0.6)
    if attached:
        pruner.attach(optimizer)
    model.load_state_dict(start)  # rewind: pruned weights are back
    train_step(model, torch.optim.SGD(model.parameters(), lr=0.0), 1)  # and their gradients
    assert (model[0].weight[~pruner.masks["0.weight"]] != 0).any()
    assert (model[0].weight.grad[~pruner.masks["0.weight"]] != 0).any()
    pruner.apply()
    for name, mask in pruner.masks.items():
        param = pruner.parameters[name]
        assert (param[~mask] == 0).all() and (param.grad[~mask] == 0).all(), name
        assert (param[mask] == start[name][mask]).all() and (param.grad[mask] != 0).any(), name
        moments = [v for v in optimizer.state[param].values() if v.shape == param.shape]
        assert len(moments) == 2 and all(((m[~mask] == 0).all() == attached) for m in moments), name


def test_model_is_left_plain():
    model = mlp()
    keys = list(model.state_dict())
    pruner = Pruner(model)
    pruner.prune(0.6)
    pruner.attach(torch.optim.Adam(model.parameters()))
    assert list(model.state_dict()) == keys
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())
    assert all(type(p) is nn.Parameter for p in model.parameters())
    clone = copy.deepcopy(model)
    for name, mask in pruner.masks.items():
        assert torch.equal(clone.get_parameter(name), model.get_parameter(name))
        assert (clone.get_parameter(name)[~mask] == 0).all()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside torch's compile stack
@pytest.mark.skipif(
    not any(shutil.which(c) for c in ("g++", "c++", "clang++")), reason="torch.compile needs a C++ compiler"
)
@pytest.mark.filterwarnings("ignore:every weight of")  # 90% empties the small last layer
def test_torch_compile_forward_equals_eager():
    model = mlp()
    pruner = Pruner(model)
    pruner.prune(0.5)
    compiled = torch.compile(model)
    x = torch.randn(16, 20)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
        pruner.prune(0.9)  # weights change in place: the compiled model sees them
        torch.testing.assert_close(compiled(x), model(x))


def test_masks_follow_the_model_when_it_is_cast_after_attaching():
    """``model.to(...)`` after pruning: steps keep the pruned entries at zero, and the masks
    are converted to the parameters' dtype (and device)."""
    model = mlp()
    pruner = Pruner(model)
    pruner.prune(0.7)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    pruner.attach(optimizer)
    train_step(model, optimizer, 0)
    model.to(torch.float64)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 20, generator=g, dtype=torch.float64), torch.randint(0, 4, (64,), generator=g)
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    assert_pruned_entries_zero(pruner, optimizer)
    pruner.apply()  # the float masks now match the weights' dtype
    assert {mask.dtype for _, mask in pruner._enforced} == {torch.float64}
    pruner.prune(0.8)  # pruning again works on the cast model
    assert round(pruner.sparsity(), 2) == 0.8


@pytest.mark.parametrize(
    ("make_optimizer", "dtype"),
    [
        (lambda p: torch.optim.Adam(p, lr=1e-3), torch.float16),  # eps 1e-8 is 0 in float16
        (lambda p: torch.optim.AdamW(p, lr=1e-3), torch.float16),
        (lambda p: torch.optim.Adam(p, lr=1e-3, eps=0.0), torch.float32),
        (lambda p: torch.optim.RMSprop(p, lr=1e-3), torch.float16),
        (lambda p: torch.optim.Adagrad(p, lr=1e-3), torch.float16),
    ],
    ids=["adam_fp16", "adamw_fp16", "adam_eps0", "rmsprop_fp16", "adagrad_fp16"],
)
def test_an_eps_that_vanishes_leaves_no_nan_in_pruned_weights(make_optimizer, dtype):
    """The update of a pruned entry is then 0 / (0 + 0): the weight is filled with 0 after
    the step, which a product with the mask (NaN * 0 = NaN) would not do."""
    model = mlp().to(dtype)
    pruner = Pruner(model)
    pruner.prune(0.5)
    optimizer = make_optimizer(model.parameters())
    pruner.attach(optimizer)
    for step in range(3):
        train_step(model, optimizer, step, dtype)
    # Kept weights whose gradient is 0 (a dead ReLU's) may be NaN too, as in dense training.
    assert pruned_weights_are_zero(pruner)


@pytest.mark.parametrize(("dtype", "eps"), [(torch.float16, 1e-5), (torch.float32, 1e-39)], ids=["fp16", "fp32"])
def test_an_eps_whose_reciprocal_overflows_leaves_no_nan_in_pruned_weights(dtype, eps):
    """RAdam's adaptive step is sqrt(v_hat) + eps inverted: 1 / 1e-5 is inf in float16 (eps
    itself is not 0 there), and a pruned entry's update 0 * inf is NaN, which a product with
    the mask after the step keeps. RAdam takes that step from its 6th on. In float16 the bits
    ANDed after the step zero the NaN anyway; float32's masks multiply, and only a fill does."""
    model = mlp().to(dtype)
    pruner = Pruner(model)
    pruner.prune(0.5)
    optimizer = torch.optim.RAdam(model.parameters(), lr=1e-3, eps=eps)
    pruner.attach(optimizer)
    for step in range(8):
        train_step(model, optimizer, step, dtype)
    assert pruned_weights_are_zero(pruner)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("make_optimizer", [*OPTIMIZERS.values(), lambda p: torch.optim.RMSprop(p, lr=1e-3, momentum=0.9, eps=1e-3)],
                         ids=[*OPTIMIZERS, "rmsprop"])  # fmt: skip; RMSprop: an eps not 0 in float16, whose 0 / 0 is another matter
def test_a_gradient_of_inf_or_nan_leaves_a_pruned_weight_and_its_state_at_zero(make_optimizer, dtype):
    """In 16 bits a gradient overflows easily: float16's largest is 65504. Here the pruned
    entry of a weight sees an input of 300 and an output gradient of 300 (a product of
    90,000: inf), its neighbour an input of 1; then a NaN. A product of the gradient with the
    mask would keep them (inf * 0 is NaN), and SGD would write NaN into the pruned weight."""
    model = nn.Linear(2, 2, bias=False).to(dtype)
    pruner = Pruner(model)
    pruner.masks = {"weight": torch.tensor([[False, True], [True, True]])}
    pruner.apply()
    optimizer = make_optimizer(model.parameters())
    pruner.attach(optimizer)
    for poison in (float("inf"), float("nan")):
        optimizer.zero_grad()
        out = model(torch.tensor([[300.0, 1.0]], dtype=dtype))
        out.backward(torch.full_like(out, 300.0))
        model.weight.grad[0, 0] = poison  # bfloat16 reaches 3e38 before inf: set it as float16 computed it
        optimizer.step()
        assert model.weight[0, 0].item() == 0 and model.weight.grad[0, 0].item() == 0
        assert all(value[0, 0].item() == 0 for value in optimizer.state[model.weight].values() if torch.is_tensor(value) and value.dim() == 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_an_eps_that_vanishes_after_a_cast_is_found_at_the_next_step(dtype):
    """From bfloat16 the masks keep their dtype (both 16-bit floats AND int16 bits): the cast shows in the weights' dtype only."""
    model = mlp().to(dtype)
    pruner = Pruner(model)
    pruner.prune(0.5)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    pruner.attach(optimizer)  # where eps 1e-8 is above 0
    model.half()  # eps checked again at the next step
    for step in range(2):
        train_step(model, optimizer, step, torch.float16)
    assert pruned_weights_are_zero(pruner)


@pytest.mark.parametrize("how", ["load_state_dict", "add_param_group"])
def test_an_eps_that_vanishes_by_a_change_of_the_optimizer_is_found(how):
    """An optimizer state loaded with eps 0, or a group of eps 0 added and apply() called."""
    model = mlp()
    pruner = Pruner(model)
    pruner.prune(0.5)
    assert pruner.count_pruned("4.weight") > 0  # the last layer, which the added group trains
    if how == "load_state_dict":
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        pruner.attach(optimizer)
        optimizer.load_state_dict(torch.optim.Adam(model.parameters(), lr=1e-2, eps=0.0).state_dict())
    else:
        optimizer = torch.optim.Adam([*model[0].parameters(), *model[2].parameters()], lr=1e-2)
        pruner.attach(optimizer)
        optimizer.add_param_group({"params": list(model[4].parameters()), "eps": 0.0})
        pruner.apply()
    for step in range(3):
        train_step(model, optimizer, step)
    assert pruned_weights_are_zero(pruner)


def test_apply_zeroes_a_pruned_weight_that_is_inf_or_nan():
    """A product with the mask would keep inf * 0 = NaN; apply fills."""
    model = mlp()
    pruner = Pruner(model)
    pruner.prune(ratios={"0": 1.0})
    with torch.no_grad():
        model[0].weight[0, :2] = torch.tensor([float("inf"), float("nan")])
    model[0].weight.grad = torch.full_like(model[0].weight, float("-inf"))
    pruner.apply()
    assert (model[0].weight == 0).all() and (model[0].weight.grad == 0).all()


def test_loading_an_empty_state_while_attached_stops_masking():
    """The state of a pruner that never pruned: nothing is pruned any more, and steps run."""
    model = mlp()
    pruner = Pruner(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    pruner.attach(optimizer)
    pruner.prune(0.5)
    pruner.load_state_dict(Pruner(mlp()).state_dict())
    assert pruner.masks == {} and pruner.sparsity() == 0
    before = model[0].weight.detach().clone()
    train_step(model, optimizer, 0)
    assert bool((model[0].weight[before == 0] != 0).all())  # the formerly pruned weights train again


def test_stale_masks_are_rebuilt_when_a_step_cannot_use_them():
    """A model moved to another device after attaching leaves the masks behind; the first
    product with them fails inside the step hook, which then rebuilds the masks where the
    parameters are and masks again. Here, with one device, masks of a dtype that cannot
    multiply a float gradient in place stand for masks on the old device."""
    model = mlp()
    pruner = Pruner(model)
    pruner.prune(0.7)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    pruner.attach(optimizer)
    pruner._enforced = [(param, mask.to(torch.complex64)) for param, mask in pruner._enforced]
    train_step(model, optimizer, 0)
    assert {mask.dtype for _, mask in pruner._enforced} == {torch.float32}
    assert_pruned_entries_zero(pruner, optimizer)


def test_attaching_zeroes_the_state_an_optimizer_already_has_for_pruned_weights():
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for step in range(2):  # momentum everywhere
        train_step(model, optimizer, step)
    pruner = Pruner(model)
    pruner.prune(0.7)  # not attached yet: the momentum of pruned weights is still there
    assert any((optimizer.state[p]["momentum_buffer"][~pruner.masks[n]] != 0).any() for n, p in pruner.parameters.items())
    pruner.attach(optimizer)
    train_step(model, optimizer, 2)
    assert_pruned_entries_zero(pruner, optimizer)


SPARSE_OPTIMIZERS: dict[str, Callable[[list[nn.Parameter]], torch.optim.Optimizer]] = {
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9),  # its momentum of a sparse gradient is sparse
    "sparse_adam": lambda p: torch.optim.SparseAdam(p, lr=0.5),
}


@pytest.mark.parametrize("make_optimizer", SPARSE_OPTIMIZERS.values(), ids=SPARSE_OPTIMIZERS.keys())
def test_an_embedding_with_sparse_gradients_is_pruned_and_kept_pruned(make_optimizer):
    """nn.Embedding(sparse=True) gives sparse gradients, which have no masked_fill_: pruning,
    attaching and rewinding while one is there zero its pruned entries by a product."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(50, 8, sparse=True), nn.Flatten(), nn.Linear(24, 4))
    optimizer = make_optimizer(list(model[0].parameters()))

    def step(seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(torch.randint(0, 50, (16, 3), generator=g)), torch.randint(0, 4, (16,), generator=g)).backward()
        optimizer.step()

    for seed in range(2):  # dense training: a sparse gradient (and SGD's sparse momentum) is there when pruning
        step(seed)
    pruner = Pruner(model, include=["0.weight"])
    pruner.prune(0.5)
    pruner.attach(optimizer)
    with torch.no_grad():
        model[0].weight.fill_(1.0)  # rewinding: masked by the next step's apply()
    for seed in range(2, 4):
        step(seed)
    weight, pruned = model[0].weight, ~pruner.masks["0.weight"]
    assert weight.grad.is_sparse and (weight.grad.to_dense()[pruned] == 0).all()
    assert (weight[pruned] == 0).all() and (weight[~pruned] != 0).all()
    for key, value in optimizer.state[weight].items():
        if torch.is_tensor(value) and value.shape == weight.shape:
            assert (value.to_dense()[pruned] == 0).all(), f"optimizer state {key!r} of a pruned weight not zero"


def test_loading_an_optimizer_state_keeps_the_pruned_entries_zero():
    """A state saved before pruning carries momentum for weights pruned since."""
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    train_step(model, optimizer, 0)
    dense_state = copy.deepcopy(optimizer.state_dict())
    pruner = Pruner(model)
    pruner.prune(0.7)
    pruner.attach(optimizer)
    optimizer.load_state_dict(dense_state)
    train_step(model, optimizer, 1)
    assert_pruned_entries_zero(pruner, optimizer)


def test_the_pruner_follows_parameters_replaced_in_the_model():
    """``load_state_dict(..., assign=True)`` puts new parameter objects into the model."""
    model = mlp()
    pruner = Pruner(model)
    pruner.prune(0.5)
    model.load_state_dict({k: torch.randn_like(v) for k, v in model.state_dict().items()}, assign=True)
    pruner.prune(0.6)
    for name, mask in pruner.masks.items():
        weight = model.get_parameter(name)
        assert pruner.parameters[name] is weight
        assert int((weight == 0).sum()) == int((~mask).sum())
    assert round(pruner.sparsity(), 2) == 0.6
    # mask_gradients, with no optimizer attached, finds parameters replaced again too.
    model.load_state_dict({k: v.clone() for k, v in model.state_dict().items()}, assign=True)
    model(torch.randn(8, 20)).sum().backward()
    pruner.mask_gradients()
    for name, mask in pruner.masks.items():
        grad = model.get_parameter(name).grad
        assert (grad[~mask] == 0).all() and (grad[mask] != 0).any(), name


def test_a_parameter_replaced_by_one_of_another_shape_is_an_error():
    model = mlp()
    pruner = Pruner(model)
    pruner.prune(0.5)
    model[0].weight = nn.Parameter(torch.randn(7, 20))
    with pytest.raises(ValueError, match=r"0.weight was replaced by a parameter of shape \(7, 20\), not \(32, 20\)"):
        pruner.apply()


@pytest.mark.parametrize("as_keyword", [False, True])
@pytest.mark.parametrize("make_optimizer", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_steps_with_a_closure_keep_pruned_entries_zero(make_optimizer, as_keyword):
    """``step(closure)`` computes the gradients inside the step, after the pre-step hook:
    the closure is wrapped so that its gradients are masked too."""
    model = mlp()
    pruner = Pruner(model)
    pruner.prune(0.7)
    optimizer = make_optimizer(model.parameters())
    pruner.attach(optimizer)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 20, generator=g), torch.randint(0, 4, (64,), generator=g)

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    losses = [float((optimizer.step(closure=closure) if as_keyword else optimizer.step(closure)).detach()) for _ in range(4)]
    assert_pruned_entries_zero(pruner, optimizer)
    assert losses[-1] < losses[0]  # and it trains


def test_an_lbfgs_history_from_before_pruning_moves_no_pruned_weight_inside_a_step():
    """LBFGS iterates inside one step along directions from its history, flat over all its
    parameters: a history from dense steps would move pruned weights there (the closure's
    losses and the line search would see them), so it begins anew; one made under the masks
    is kept through a resume."""
    model = mlp()
    optimizer = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5, history_size=5)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 20, generator=g), torch.randint(0, 4, (64,), generator=g)
    pruner = Pruner(model)
    seen = []  # the largest pruned weight each closure evaluates the model with

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        seen.append(max(float(pruner.parameters[n].detach()[~m].abs().max()) for n, m in pruner.masks.items()) if pruner.masks else 0.0)
        return loss

    optimizer.step(closure)  # dense: a history everywhere
    pruner.prune(0.7)
    pruner.attach(optimizer)
    seen.clear()
    for _ in range(2):
        optimizer.step(closure)
    assert len(seen) > 2 and max(seen) == 0
    saved = copy.deepcopy(optimizer.state_dict())
    resumed = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5, history_size=5)
    pruner.attach(resumed)
    resumed.load_state_dict(saved)
    assert resumed.state[next(iter(model.parameters()))]["old_dirs"], "a history made under the masks was dropped"


def test_an_lbfgs_history_with_any_flat_over_pruned_weights_begins_anew():
    """One part of the history that moves pruned weights is enough to restart it: here the last
    gradient is zero at the pruned weights (as if masked), the directions are not."""
    model = mlp()
    optimizer = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5, history_size=5)
    x, y = torch.randn(64, 20), torch.randint(0, 4, (64,))

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    pruner = Pruner(model)
    pruner.prune(0.7)
    state = optimizer.state[next(iter(model.parameters()))]
    kept = torch.cat([pruner.masks[n].reshape(-1) if n in pruner.masks else torch.ones(p.numel(), dtype=torch.bool)
                      for n, p in model.named_parameters()])  # fmt: skip
    state["prev_flat_grad"][~kept] = 0
    assert state["old_dirs"] and state["d"][~kept].any()
    pruner.attach(optimizer)
    assert not optimizer.state


def test_a_failed_attach_leaves_no_hook_behind():
    model = mlp()
    pruner = Pruner(model)
    pruner.prune(0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model[0].weight = nn.Parameter(torch.randn(7, 20))
    with pytest.raises(ValueError, match="was replaced by a parameter of shape"):
        pruner.attach(optimizer)
    assert not optimizer._optimizer_step_pre_hooks and not pruner._hooks


@pytest.mark.parametrize("attached", [False, True], ids=["detached", "attached"])
def test_mask_gradients_zeroes_an_overflowed_gradient_of_a_pruned_weight(attached):
    """float16's gradients overflow easily: inf * 0 is NaN, and a NaN left there makes a clipped norm NaN."""
    model = nn.Linear(2, 2, bias=False).half()
    pruner = Pruner(model)
    pruner.masks = {"weight": torch.tensor([[False, True], [True, True]])}
    pruner.apply()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    if attached:
        pruner.attach(optimizer)
    model.weight.grad = torch.tensor([[float("inf"), 1.0], [1.0, 1.0]], dtype=torch.float16)
    pruner.mask_gradients()
    assert bool(pruner._hooks) == attached
    assert model.weight.grad.tolist() == [[0.0, 1.0], [1.0, 1.0]]


def test_a_gradient_left_in_another_dtype_than_its_16_bit_weight_is_masked():
    """A weight swapped to float16 through .data keeps its float32 gradient: the weight's
    16-bit mask has no bits of the gradient's width to AND, so the gradient is masked by a
    fill, as a product masked it before."""
    model = nn.Linear(2, 2, bias=False)
    pruner = Pruner(model)
    pruner.masks = {"weight": torch.tensor([[False, True], [True, True]])}
    pruner.apply()
    model.weight.grad = torch.tensor([[5.0, 2.0], [3.0, 4.0]])
    model.weight.data = model.weight.data.half()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    pruner.attach(optimizer)
    assert [mask.dtype for _, mask in pruner._enforced] == [torch.int16]
    pruner.mask_gradients()
    assert model.weight.grad.dtype == torch.float32 and model.weight.grad.tolist() == [[0.0, 2.0], [3.0, 4.0]]
    model.weight.grad[0, 0] = float("inf")  # and in the optimizer's step
    before = model.weight.detach().clone()
    optimizer.step()
    assert model.weight.grad.tolist() == [[0.0, 2.0], [3.0, 4.0]]
    assert model.weight[0, 0].item() == 0.0  # the pruned weight untouched, the others moved by 0.5 x gradient (in float16)
    torch.testing.assert_close(model.weight.float(), before.float() - 0.5 * model.weight.grad, rtol=1e-3, atol=0.0)


@pytest.mark.parametrize("attached", [False, True], ids=["detached", "attached"])
def test_mask_gradients_lets_clipping_count_kept_weights_only(attached):
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    pruner = Pruner(model)
    pruner.prune(0.8)
    if attached:
        pruner.attach(optimizer)
    optimizer.zero_grad()
    x = torch.randn(64, 20, generator=torch.Generator().manual_seed(0))
    model(x).square().mean().backward()
    raw = {name: p.grad.clone() for name, p in model.named_parameters()}

    pruner.mask_gradients()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1e-3)

    kept = [raw[n] * pruner.masks[n] if n in pruner.masks else raw[n] for n in raw]
    expected_norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in kept]))
    full_norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in raw.values()]))
    assert norm.item() == pytest.approx(expected_norm.item(), rel=1e-6)
    assert expected_norm < 0.99 * full_norm  # the pruned gradients were large enough to matter
    for name, param in model.named_parameters():
        expected = kept[list(raw).index(name)] * (1e-3 / (expected_norm.item() + 1e-6))
        torch.testing.assert_close(param.grad, expected)


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_rewinding_while_attached_is_masked_by_the_next_step(make_optimizer):
    """IMP's rewind, ``model.load_state_dict(earlier)``, puts the pruned weights back; the
    next step sees the write (the weights' version counters) and zeroes them, their
    gradients and their state before it steps, with no apply() in the loop."""
    model = mlp()
    start = copy.deepcopy(model.state_dict())
    optimizer = make_optimizer(model.parameters())
    pruner = Pruner(model)
    pruner.attach(optimizer)
    for step in range(3):
        train_step(model, optimizer, step)
    pruner.prune(0.6)
    model.load_state_dict(start)
    assert not pruned_weights_are_zero(pruner)
    for step in range(3, 6):
        train_step(model, optimizer, step)
        assert_pruned_entries_zero(pruner, optimizer)
    assert "not zero" not in repr(pruner)


def test_masks_set_by_hand_are_enforced_after_apply():
    """Masks of one's own (an N:M pattern) put in ``masks`` while attached: apply() makes the
    step use them, not the products of the masks before."""
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    pruner = Pruner(model)
    pruner.prune(0.5)
    pruner.attach(optimizer)
    two_of_four = torch.zeros(32, 20, dtype=torch.bool)
    two_of_four[:, ::2] = True
    pruner.masks["0.weight"] = two_of_four
    pruner.apply()
    for step in range(3):
        train_step(model, optimizer, step)
        assert_pruned_entries_zero(pruner, optimizer)
    assert pruner.layer_sparsity()["0.weight"] == 0.5 and bool((model[0].weight[:, ::2] != 0).all())


def test_masks_set_by_hand_for_some_weights_leave_the_others_whole():
    """A pruner that never pruned, given a mask for its first layer only: after apply() it
    prunes further and saves its masks as one that pruned would (the other layers unpruned)."""
    model = mlp()
    pruner = Pruner(model)
    two_of_four = torch.zeros(32, 20, dtype=torch.bool)
    two_of_four[:, ::2] = True
    pruner.masks["0.weight"] = two_of_four
    pruner.apply()
    assert pruner.layer_sparsity() == {"0.weight": 0.5, "2.weight": 0.0, "4.weight": 0.0}
    pruner.prune(0.6)
    assert pruner.count_pruned() == round(0.6 * 1216) and not (pruner.masks["0.weight"] & ~two_of_four).any()
    restored = Pruner(model)
    restored.load_state_dict(pruner.state_dict())
    assert all(torch.equal(restored.masks[name], mask) for name, mask in pruner.masks.items())


@pytest.mark.parametrize("name, mask, expected", [
    ("0.weight", torch.ones(32, 20), "the mask of '0.weight' must be a bool tensor of shape (32, 20) (True = kept), got a torch.float32 tensor of shape (32, 20)"),
    ("0.weight", torch.ones(20, 32, dtype=torch.bool), "got a torch.bool tensor of shape (20, 32)"),
    ("0.weight", [True] * 640, "got list"),
    ("0.bias", torch.ones(32, dtype=torch.bool), "masks has '0.bias', which is no prunable parameter; prunable parameters are: 0.weight, 2.weight, 4.weight"),
])  # fmt: skip
def test_a_mask_set_by_hand_of_another_kind_is_named(name, mask, expected):
    pruner = Pruner(mlp())
    pruner.prune(0.5)
    pruner.masks[name] = mask
    with pytest.raises(ValueError, match=re.escape(expected)):
        pruner.apply()
    assert repr(pruner) == "Pruner(3 tensors, 1,216 weights, masks set by hand that apply() does not take)"  # printing still works


def test_printing_a_pruner_counts_pruned_weights_written_since():
    """Rewound with no optimizer attached, the weights are dense again under the masks: said."""
    model = mlp()
    start = copy.deepcopy(model.state_dict())
    pruner = Pruner(model)
    pruner.prune(0.5)
    assert "not zero" not in repr(pruner)
    model.load_state_dict(start)
    pruned = sum(int((~mask).sum()) for mask in pruner.masks.values())
    assert repr(pruner).endswith(f", 50.00% pruned, {pruned:,} pruned weights not zero: apply() zeroes them)")
    pruner.apply()
    assert repr(pruner) == f"Pruner(3 tensors, {sum(p.numel() for p in pruner.parameters.values()):,} weights, 50.00% pruned)"
