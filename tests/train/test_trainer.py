"""The Trainer: determinism, the LR of every step, optimizers, weight decay, per-epoch evaluation, several processes."""

from __future__ import annotations

import copy
import logging
import re
import time
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunelab.config.schema import LRScheduleConfig, OptimizerConfig, TrainConfig
from prunelab.data import Dataset, load_dataset
from prunelab.masks import Pruner
from prunelab.models import build_model
from prunelab.train import Trainer, TrainingDiverged, build_optimizer, build_schedule, evaluate

STEPS_PER_EPOCH = 6  # 96 training examples, batches of 16


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return x + 0.1 * torch.randn(x.shape, generator=generator)


def toy_data(augment: bool = False) -> Dataset:
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(120, 8, generator=g)
    y = (x[:, :3].argmax(1)).long()
    return Dataset("toy", x[:96], y[:96], x[96:], y[96:], num_classes=3, augment=_augment if augment else None)


def toy_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def config(epochs: int = 3, **optimizer) -> TrainConfig:
    schedule = optimizer.pop("lr_schedule", LRScheduleConfig())
    return TrainConfig(epochs=epochs, batch_size=16, optimizer=OptimizerConfig(**optimizer), lr_schedule=schedule)


def train(model: nn.Module, cfg: TrainConfig, seed: int = 0, data: Dataset | None = None, **kwargs) -> Trainer:
    trainer = Trainer(model, data or toy_data(), cfg, seed=seed, progress=False, **kwargs)
    trainer.run()
    return trainer


def without_time(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("seconds", "train_seconds")} for row in history]


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- determinism ------------------------------------------------------------------------------


def test_dropout_draws_are_the_epoch_s_own_so_a_resumed_epoch_draws_the_same() -> None:
    """A resumed run starts its next epoch in a fresh process, whatever the global random
    state; the epoch's dropout masks must not depend on it. The caller's state is kept."""

    def dropout_model() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))

    through, resumed = (Trainer(dropout_model(), toy_data(), config(epochs=2), seed=0, progress=False) for _ in range(2))
    through.train_epoch(0)
    through.train_epoch(1)
    resumed.train_epoch(0)
    torch.manual_seed(12345)  # another process's random state
    before = torch.get_rng_state()
    resumed.train_epoch(1)
    assert torch.equal(torch.get_rng_state(), before)
    assert same_weights(through.model, resumed.model)


class Draws(nn.Module):
    """Records, at every training step, the random numbers a dropout layer would draw."""

    def __init__(self) -> None:
        super().__init__()
        self.drawn: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.drawn.append(torch.rand(4))
        return x


def test_every_epoch_draws_its_own_dropout_masks() -> None:
    """An epoch's own seed must not give every epoch the same masks, batch after batch."""
    model = nn.Sequential(toy_model(), Draws())
    train(model, config(epochs=2))
    drawn = model[1].drawn
    assert len(drawn) == 2 * STEPS_PER_EPOCH
    assert not any(torch.equal(a, b) for a, b in zip(drawn[:STEPS_PER_EPOCH], drawn[STEPS_PER_EPOCH:]))


@pytest.mark.parametrize("augment", [False, True])
def test_same_seed_same_weights_and_metrics(augment: bool) -> None:
    data = toy_data(augment)
    a = train(toy_model(), config(), seed=7, data=data)
    b = train(toy_model(), config(), seed=7, data=data)
    assert same_weights(a.model, b.model)
    assert without_time(a.state.history) == without_time(b.state.history)
    assert a.state.lr_log == b.state.lr_log


def test_different_seed_differs() -> None:
    # same initial weights: the seed of the trainer alone changes the order of the batches
    init = toy_model()
    a = train(copy.deepcopy(init), config(), seed=0)
    b = train(copy.deepcopy(init), config(), seed=1)
    assert not same_weights(a.model, b.model)
    assert without_time(a.state.history) != without_time(b.state.history)


def training_orders(trainer: Trainer) -> list[list[int]]:
    """Run ``trainer`` and return, per epoch, the training examples in the order the model
    saw them (indices into ``x_train``, found by matching the input rows)."""
    x_train = trainer.data.x_train
    seen: list[int] = []

    def record(module: nn.Module, args: tuple) -> None:
        if module.training:  # not the evaluation after each epoch
            matches = (args[0][:, None, :] == x_train[None]).all(-1)
            assert (matches.sum(1) == 1).all()  # every input is exactly one training example
            seen.extend(matches.int().argmax(1).tolist())

    handle = trainer.model.register_forward_pre_hook(record)
    trainer.run()
    handle.remove()
    n = len(x_train)
    return [seen[i : i + n] for i in range(0, len(seen), n)]


def test_every_epoch_has_its_own_batch_order_and_a_rerun_repeats_them() -> None:
    """Each epoch of a phase is shuffled anew (a fixed order would be seen every epoch),
    and the same seed and phase give the same sequence of orders again; another phase of the
    seed (the eval phase after the find phase) has orders of its own."""
    orders = training_orders(Trainer(toy_model(), toy_data(), config(epochs=3), seed=3, progress=False))
    assert len(orders) == 3
    for order in orders:  # each epoch is one pass over the whole training set
        assert sorted(order) == list(range(96))
    assert orders[0] != orders[1] and orders[1] != orders[2] and orders[0] != orders[2]
    assert orders[0] != list(range(96))  # shuffled at all
    again = training_orders(Trainer(toy_model(), toy_data(), config(epochs=3), seed=3, progress=False))
    assert again == orders
    other_phase = training_orders(Trainer(toy_model(), toy_data(), config(epochs=3), seed=3, phase="eval", progress=False))
    assert all(a != b for a, b in zip(other_phase, orders))


def test_augmentation_is_seeded_and_can_be_switched_off() -> None:
    data = toy_data(augment=True)
    init = toy_model()
    plain = train(copy.deepcopy(init), config(), data=data, augment=False)
    augmented = train(copy.deepcopy(init), config(), data=data)
    assert augmented.augment is not None and plain.augment is None
    assert not same_weights(plain.model, augmented.model)
    assert same_weights(plain.model, train(copy.deepcopy(init), config(), data=toy_data(augment=False)).model)


@pytest.fixture(scope="module")
def mnist1d(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    data_dir = tmp_path_factory.getbasetemp() / "prunelab-data"  # shared by the test modules
    data_dir.mkdir(exist_ok=True)
    return load_dataset("mnist1d", data_dir)


def test_determinism_on_the_real_model_and_data(mnist1d: Dataset) -> None:
    cfg = TrainConfig(epochs=1, batch_size=100, optimizer=OptimizerConfig(lr=0.05, weight_decay=1e-4))

    def one(seed: int) -> Trainer:
        torch.manual_seed(seed)
        model = build_model("mnist1d_cnn", num_classes=10, input_shape=mnist1d.input_shape)
        return train(model, cfg, seed=seed, data=mnist1d)

    a, b, c = one(0), one(0), one(1)
    assert same_weights(a.model, b.model) and without_time(a.state.history) == without_time(b.state.history)
    assert not same_weights(a.model, c.model)
    assert a.state.history[0]["test_acc"] > 0.15  # it learns something in one epoch (chance: 0.1)


def test_resuming_from_the_state_and_optimizer_state_is_exact() -> None:
    """What a session checkpoint holds (weights, PhaseState, optimizer state) is enough."""
    cfg = config(epochs=4, lr_schedule=LRScheduleConfig(name="cosine"), weight_decay=1e-3)
    straight = train(toy_model(), cfg)

    class Stop(Exception):
        pass

    def stop_after_two(trainer: Trainer) -> None:
        if trainer.state.epoch == 2:
            raise Stop

    first = Trainer(toy_model(), toy_data(), cfg, seed=0, progress=False)
    with pytest.raises(Stop):
        first.run(on_epoch_end=stop_after_two)
    assert first.state.epoch == 2
    saved_state = copy.deepcopy(first.state)
    saved_weights = copy.deepcopy(first.model.state_dict())
    saved_optimizer = copy.deepcopy(first.optimizer.state_dict())

    model = toy_model(seed=99)  # different weights, replaced by the saved ones
    model.load_state_dict(saved_weights)
    second = Trainer(model, toy_data(), cfg, seed=0, progress=False)
    second.state = saved_state
    second.optimizer.load_state_dict(saved_optimizer)
    second.run()
    assert same_weights(second.model, straight.model)
    assert without_time(second.state.history) == without_time(straight.state.history)
    assert second.state.lr_log == straight.state.lr_log


# -- the LR of every step ---------------------------------------------------------------------


class RecordingLR:
    """Step hook reading the LR the optimizer actually used, via an optimizer step pre-hook."""

    def __init__(self, trainer: Trainer) -> None:
        self.used: list[float] = []
        trainer.optimizer.register_step_pre_hook(lambda opt, *_: self.used.append(opt.param_groups[0]["lr"]))


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (LRScheduleConfig(name="constant"), lambda s: 0.1),
        (LRScheduleConfig(name="multistep", milestones=(1, 3), gamma=0.5),
         lambda s: 0.1 * 0.5 ** ((s >= STEPS_PER_EPOCH) + (s >= 3 * STEPS_PER_EPOCH))),
        (LRScheduleConfig(name="step", step_size=2, gamma=0.1), lambda s: 0.1 * 0.1 ** (s // (2 * STEPS_PER_EPOCH))),
        (LRScheduleConfig(name="linear", final_lr=0.0), lambda s: 0.1 * (1 - s / (4 * STEPS_PER_EPOCH))),
        # warmup: a linear ramp over the first epoch in front of the constant LR
        (LRScheduleConfig(name="constant", warmup_epochs=1),
         lambda s: 0.1 * min(1.0, (s + 1) / STEPS_PER_EPOCH)),
        (LRScheduleConfig(name="multistep", milestones=(2,), warmup_epochs=0.5),
         lambda s: 0.1 * (0.1 if s >= 2 * STEPS_PER_EPOCH else 1.0) * min(1.0, (s + 1) / (STEPS_PER_EPOCH // 2))),
        # the shortest warmup: 0.3 of an epoch's 6 steps rounds to 2, half the LR then all of it
        (LRScheduleConfig(name="constant", warmup_epochs=0.3), lambda s: 0.05 if s == 0 else 0.1),
    ],
    ids=["constant", "multistep", "step", "linear", "warmup", "multistep+warmup", "warmup-of-2-steps"],
)
def test_every_step_lr_is_recorded_and_follows_the_schedule(schedule: LRScheduleConfig, expected) -> None:
    cfg = config(epochs=4, lr_schedule=schedule)
    trainer = Trainer(toy_model(), toy_data(), cfg, seed=0, progress=False)
    recorder = RecordingLR(trainer)
    trainer.run()
    total = 4 * STEPS_PER_EPOCH
    assert trainer.steps_per_epoch == STEPS_PER_EPOCH
    assert len(trainer.state.lr_log) == total and trainer.state.step == total
    assert trainer.state.lr_log == pytest.approx([expected(s) for s in range(total)], rel=1e-12, abs=1e-15)
    assert recorder.used == trainer.state.lr_log  # the recorded LR is the one the optimizer used
    for row in trainer.state.history:  # each epoch's row shows the LR of its last step
        assert row["lr"] == trainer.state.lr_log[row["step"] - 1]


def test_a_given_schedule_replaces_the_configs() -> None:
    cfg = config(epochs=2, lr_schedule=LRScheduleConfig(name="cosine"))
    trainer = train(toy_model(), cfg, schedule=lambda step: 0.01 * (step + 1))
    assert trainer.state.lr_log == pytest.approx([0.01 * (s + 1) for s in range(2 * STEPS_PER_EPOCH)])


def test_build_schedule_speaks_epochs() -> None:
    schedule = build_schedule(LRScheduleConfig(name="multistep", milestones=(2, 3)), 1.0, 4, 10)
    assert [schedule(s) for s in (0, 19, 20, 29, 30, 39)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    cosine = build_schedule(LRScheduleConfig(name="cosine", final_lr=0.1), 1.0, 2, 5)
    assert cosine(0) == 1.0 and cosine(10) == pytest.approx(0.1)
    halving = build_schedule(LRScheduleConfig(name="halving", final_lr=0.001), 1.0, 10, 3)  # 1, 0.1, 0.01, 0.001: stages of 5, 3, 1, 1 epochs
    assert [halving(s) for s in (0, 14, 15, 23, 24, 26, 27, 29)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_build_schedule_reads_every_option_of_its_schedule() -> None:
    """Options of other values than their defaults, against the LRs by hand (1.0 at first)."""
    step = build_schedule(LRScheduleConfig(name="step", step_size=2, gamma=0.5), 1.0, 5, 3)  # x 0.5 every 6 steps
    assert [step(s) for s in (0, 5, 6, 11, 12)] == pytest.approx([1, 1, 0.5, 0.5, 0.25])
    linear = build_schedule(LRScheduleConfig(name="linear", final_lr=0.01), 1.0, 2, 5)
    assert [linear(s) for s in (0, 5, 10)] == pytest.approx([1, 0.505, 0.01])
    # 1, 0.5, 0.25, 0.125 over 10 epochs: halves of the epochs left, 5, 4 and 2, are cut to 3, 3 and 2
    halving = build_schedule(LRScheduleConfig(name="halving", gamma=0.5, final_lr=0.125, max_stage_epochs=3), 1.0, 10, 2)
    assert [halving(s) for s in (5, 6, 11, 12, 15, 16, 19)] == pytest.approx([1, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125])


@pytest.mark.parametrize(("warmup_epochs", "rounded"), [(0.1, 1), (0.05, 0)])
def test_a_warmup_that_rounds_to_fewer_than_2_steps_is_refused_not_dropped(warmup_epochs: float, rounded: int) -> None:
    """A ramp of one step is the full LR, and one of none no ramp: the warmup asked for would not happen."""
    cfg = config(epochs=2, lr_schedule=LRScheduleConfig(warmup_epochs=warmup_epochs))
    with pytest.raises(ValueError, match=re.escape(
        f"warmup_epochs={warmup_epochs} of an epoch's 6 optimizer steps rounds to {rounded}, and a warmup of fewer than "
        "2 steps leaves the LR as it is; 0.333 is 2 steps (0: no warmup)"
    )):  # fmt: skip
        Trainer(toy_model(), toy_data(), cfg, seed=0, progress=False)


@pytest.mark.parametrize(("warmup_epochs", "warmup_steps"), [(0.24, 2), (0.26, 3)])
def test_warmup_lasts_the_nearest_whole_number_of_steps(warmup_epochs: float, warmup_steps: int) -> None:
    warmup = build_schedule(LRScheduleConfig(warmup_epochs=warmup_epochs), 1.0, 1, 10)
    assert [warmup(s) for s in range(4)] == pytest.approx([min(1.0, (s + 1) / warmup_steps) for s in range(4)])


@pytest.mark.parametrize("name", ["constant", "step", "multistep", "cosine", "linear", "halving"])
def test_a_phase_of_no_epochs_has_a_schedule(name: str) -> None:
    assert build_schedule(LRScheduleConfig(name=name, final_lr=0.01), 0.1, 0, 5)(0) == pytest.approx(0.1)


# -- optimizers and weight decay -------------------------------------------------------------


@pytest.mark.parametrize(
    ("optimizer", "kind"),
    [
        ({"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}, torch.optim.SGD),
        ({"name": "sgd", "lr": 0.1, "momentum": 0.0}, torch.optim.SGD),
        ({"name": "adam", "lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 1e-4}, torch.optim.Adam),
        ({"name": "adamw", "lr": 0.01, "weight_decay": 0.05}, torch.optim.AdamW),
    ],
    ids=["sgd-nesterov", "sgd-plain", "adam", "adamw"],
)
def test_optimizers_are_built_as_configured_and_train(optimizer: dict, kind: type) -> None:
    cfg = config(epochs=3, **optimizer)
    init = toy_model()
    trainer = train(copy.deepcopy(init), cfg)
    assert type(trainer.optimizer) is kind
    group = trainer.optimizer.param_groups[0]
    assert group["weight_decay"] == optimizer.get("weight_decay", 0.0)
    if kind is torch.optim.SGD:
        assert group["momentum"] == optimizer["momentum"] and group["nesterov"] == optimizer.get("nesterov", False)
    else:
        assert tuple(group["betas"]) == tuple(optimizer.get("betas", (0.9, 0.999)))
    assert not same_weights(trainer.model, init)
    losses = [row["train_loss"] for row in trainer.state.history]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    ("optimizer", "torch_s"),
    [
        (OptimizerConfig(name="sgd", lr=0.3, momentum=0.8, nesterov=True, weight_decay=1e-3),
         lambda p: torch.optim.SGD(p, lr=0.3, momentum=0.8, nesterov=True, weight_decay=1e-3)),
        (OptimizerConfig(name="adam", lr=0.02, betas=(0.8, 0.9), weight_decay=1e-3),
         lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.8, 0.9), weight_decay=1e-3)),
        (OptimizerConfig(name="adamw", lr=0.02, betas=(0.8, 0.9), weight_decay=0.05),
         lambda p: torch.optim.AdamW(p, lr=0.02, betas=(0.8, 0.9), weight_decay=0.05)),
    ],
    ids=["sgd", "adam", "adamw"],
)
def test_build_optimizer_gives_torch_s_optimizer_as_configured(optimizer: OptimizerConfig, torch_s) -> None:
    parameters = [nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(3))]
    built, expected = build_optimizer(optimizer, parameters), torch_s(parameters)
    assert type(built) is type(expected) and built.state_dict() == expected.state_dict()


def test_adam_and_adamw_differ_with_weight_decay() -> None:
    init = toy_model()
    adam = train(copy.deepcopy(init), config(name="adam", lr=0.01, weight_decay=0.1))
    adamw = train(copy.deepcopy(init), config(name="adamw", lr=0.01, weight_decay=0.1))
    assert not same_weights(adam.model, adamw.model)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_weight_decay_changes_the_result(name: str) -> None:
    init = toy_model()
    lr = 0.1 if name == "sgd" else 0.01
    plain = train(copy.deepcopy(init), config(name=name, lr=lr, weight_decay=0.0))
    decayed = train(copy.deepcopy(init), config(name=name, lr=lr, weight_decay=0.05))
    assert not same_weights(plain.model, decayed.model)
    norm = lambda m: sum(float(p.detach().norm() ** 2) for p in m.parameters())
    assert norm(decayed.model) < norm(plain.model)


# -- evaluation every epoch --------------------------------------------------------------------


@pytest.mark.parametrize("epochs", [0, 1, 3])
def test_evaluates_every_epoch(epochs: int, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = Trainer.evaluate
    monkeypatch.setattr(Trainer, "evaluate", lambda self, *a, **k: calls.append(self.state.step) or real(self, *a, **k))
    ended = []
    trainer = Trainer(toy_model(), toy_data(), config(epochs=epochs), seed=0, progress=False)
    history = trainer.run(on_epoch_end=lambda t: ended.append(t.state.epoch))
    assert len(history) == epochs == len(calls) == len(ended)
    assert ended == list(range(1, epochs + 1))
    assert [row["epoch"] for row in history] == list(range(1, epochs + 1))
    assert [row["step"] for row in history] == calls == [STEPS_PER_EPOCH * e for e in range(1, epochs + 1)]
    for row in history:
        assert row["phase"] == "train" and 0 <= row["test_acc"] <= 1 and 0 <= row["train_acc"] <= 1
        assert row["test_loss"] > 0 and row["train_loss"] > 0 and row["sparsity"] == 0.0
    if epochs:
        data = toy_data()
        loss, acc = evaluate(trainer.model, data.x_test, data.y_test, torch.device("cpu"))
        assert (history[-1]["test_loss"], history[-1]["test_acc"]) == pytest.approx((loss, acc))
    rows = list(history)  # run() gives the state's own list: compare with a copy
    assert trainer.run() == rows and trainer.state.step == STEPS_PER_EPOCH * epochs  # nothing left to train


def bn_model() -> nn.Module:
    """A model with BatchNorm whose running statistics are far from a batch's own: a
    forward pass in training mode would both score differently and move them."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    bn = model[1]
    with torch.no_grad():
        bn.running_mean.copy_(torch.linspace(-1.0, 1.0, 16))
        bn.running_var.copy_(torch.linspace(0.5, 3.0, 16))
        bn.weight.copy_(torch.linspace(0.5, 1.5, 16))
        bn.bias.copy_(torch.linspace(-0.2, 0.2, 16))
    return model


def bn_reference(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Loss and accuracy computed by hand with BatchNorm's running statistics (eval mode)."""
    linear1, bn, _, linear2 = model
    with torch.no_grad():
        h = x @ linear1.weight.T + linear1.bias
        h = (h - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
        logits = torch.relu(h) @ linear2.weight.T + linear2.bias
        return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


@pytest.mark.parametrize("training", [True, False])
def test_evaluate_scores_batchnorm_with_its_running_statistics(training: bool) -> None:
    """Evaluation is in eval mode: the test data neither normalizes itself nor changes the
    running statistics, so evaluating twice gives the same numbers; and the model is left
    in the mode it was in (a model in eval mode must not be switched to training)."""
    data = toy_data()
    model = bn_model()
    model.train(training)
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    expected_loss, expected_acc = bn_reference(model, data.x_test, data.y_test)
    first = evaluate(model, data.x_test, data.y_test, torch.device("cpu"), batch_size=10)
    assert model.training is training
    after = model.state_dict()  # running_mean, running_var, num_batches_tracked: unchanged
    assert after.keys() == stats.keys() and all(torch.equal(after[k], stats[k]) for k in stats)
    second = evaluate(model, data.x_test, data.y_test, torch.device("cpu"), batch_size=10)
    assert first == second
    assert first == (pytest.approx(expected_loss, rel=1e-5), pytest.approx(expected_acc))
    assert model.training is training


def test_a_model_handed_over_in_eval_mode_trains_in_training_mode() -> None:
    """BatchNorm learns its running statistics from the training batches, one update a step,
    even where the caller left the model in eval mode (as after scoring it)."""
    model = bn_model().eval()
    before = model[1].running_mean.clone()
    train(model, config(epochs=1))
    assert int(model[1].num_batches_tracked) == STEPS_PER_EPOCH
    assert not torch.equal(model[1].running_mean, before)


def test_pruned_weights_stay_zero_and_sparsity_is_recorded() -> None:
    model = toy_model()
    pruner = Pruner(model)
    pruner.prune(0.5)
    masks = {name: mask.clone() for name, mask in pruner.masks.items()}
    trainer = train(model, config(epochs=2, weight_decay=1e-3), pruner=pruner, phase="eval")
    for name, param in pruner.parameters.items():
        assert torch.all(param[~masks[name]] == 0)
        assert torch.any(param[masks[name]] != 0)
    assert [row["sparsity"] for row in trainer.state.history] == [pytest.approx(0.5, abs=0.01)] * 2
    assert {row["phase"] for row in trainer.state.history} == {"eval"}


def test_a_given_sparsity_is_what_each_epoch_reports() -> None:
    """A model rebuilt without channels has pruned weights its pruner never sees: the caller's
    sparsity is reported, not the pruner's."""
    pruner = Pruner(toy_model())
    pruner.prune(0.5)
    trainer = train(pruner.model, config(epochs=2), pruner=pruner, sparsity=lambda: 0.75)
    assert [row["sparsity"] for row in trainer.state.history] == [0.75, 0.75]


def test_step_hooks_run_before_every_step() -> None:
    seen, also = [], []
    hooks = [lambda t, step: seen.append((step, len(t.state.lr_log))), lambda t, step: also.append(step)]
    trainer = train(toy_model(), config(epochs=2), step_hooks=hooks)
    assert seen == [(s, s) for s in range(2 * STEPS_PER_EPOCH)]  # before the step's LR is logged
    assert also == list(range(2 * STEPS_PER_EPOCH))  # every hook, not only the first
    assert trainer.state.step == 2 * STEPS_PER_EPOCH


def test_epoch_metrics_and_evaluation_match_a_direct_computation() -> None:
    """Loss and accuracy of an epoch, over batches of uneven size (96 examples in batches of
    20), and of ``evaluate`` in batches of 10 (24 examples), against one pass over everything.
    An LR of 1e-30 leaves the weights as they are, so every batch sees the same model."""
    data = toy_data()
    model = toy_model()
    with torch.no_grad():
        logits = model(data.x_train)
        train_loss = F.cross_entropy(logits, data.y_train).item()
        train_acc = (logits.argmax(1) == data.y_train).float().mean().item()
        test_logits = model(data.x_test)
        test_loss = F.cross_entropy(test_logits, data.y_test).item()
        test_acc = (test_logits.argmax(1) == data.y_test).float().mean().item()
    cfg = TrainConfig(epochs=1, batch_size=20, optimizer=OptimizerConfig(lr=1e-30, momentum=0.0))
    row = train(model, cfg).state.history[0]
    assert row["train_loss"] == pytest.approx(train_loss, rel=1e-5)
    assert row["train_acc"] == pytest.approx(train_acc)
    assert row["test_loss"] == pytest.approx(test_loss, rel=1e-5) and row["test_acc"] == pytest.approx(test_acc)
    assert evaluate(model, data.x_test, data.y_test, torch.device("cpu"), batch_size=10) == (
        pytest.approx(test_loss, rel=1e-5), pytest.approx(test_acc),
    )
    assert 0 < train_acc < 1 and 0 < test_acc < 1  # neither trivially all right nor all wrong


def test_an_epoch_whose_steps_are_all_done_trains_nothing_and_counts_no_examples() -> None:
    """As after rewinding to the step that ends it: nothing to average, no division by zero."""
    trainer = Trainer(toy_model(), toy_data(), config(epochs=2), seed=0, progress=False)
    trainer.state.step = STEPS_PER_EPOCH
    assert trainer.train_epoch(0) == (0.0, 0.0, 0)
    assert same_weights(trainer.model, toy_model())  # no step taken


def test_an_epoch_entered_part_way_reports_the_examples_it_trained_on() -> None:
    """As after rewinding to step 2: the epoch trains its last 4 batches of 16, and its row
    counts and averages those 64 examples only. An LR of 1e-30 leaves the weights as they are."""
    data, model = toy_data(), toy_model()
    cfg = TrainConfig(epochs=1, batch_size=16, optimizer=OptimizerConfig(lr=1e-30, momentum=0.0))
    trainer = Trainer(model, data, cfg, seed=0, progress=False)
    trainer.state.step = 2
    (order,) = training_orders(trainer)  # the examples the model was trained on
    with torch.no_grad():
        logits = model(data.x_train[order])
    (row,) = trainer.state.history
    assert len(set(order)) == 64 == row["train_images"] and row["step"] == STEPS_PER_EPOCH
    assert row["train_loss"] == pytest.approx(F.cross_entropy(logits, data.y_train[order]).item(), rel=1e-5)
    assert row["train_acc"] == pytest.approx((logits.argmax(1) == data.y_train[order]).float().mean().item())


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.4])
def test_label_smoothing_trains_on_softened_targets_and_evaluates_on_the_labels(smoothing: float) -> None:
    """The epoch's training loss with label smoothing e against its formula, (1 - e) times the
    cross-entropy plus e times the mean over classes of -log p, by hand; the test loss
    stays the plain cross-entropy. An LR of 1e-30 leaves the weights as they are."""
    data = toy_data()
    model = toy_model()
    with torch.no_grad():
        log_p = model(data.x_train).log_softmax(1)
        nll = -log_p[torch.arange(len(data.y_train)), data.y_train]
        smoothed = ((1 - smoothing) * nll - smoothing * log_p.mean(1)).mean().item()
        test_loss = -model(data.x_test).log_softmax(1)[torch.arange(len(data.y_test)), data.y_test].mean().item()
    cfg = TrainConfig(epochs=1, batch_size=16, optimizer=OptimizerConfig(lr=1e-30, momentum=0.0), label_smoothing=smoothing)
    row = train(model, cfg).state.history[0]
    assert row["train_loss"] == pytest.approx(smoothed, rel=1e-5)
    assert row["test_loss"] == pytest.approx(test_loss, rel=1e-5)
    assert row["train_images"] == 96


def test_label_smoothing_is_a_fraction() -> None:
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainConfig(label_smoothing=1.0)


def test_the_log_has_a_line_every_log_every_seconds_and_at_the_end(caplog: pytest.LogCaptureFixture, monkeypatch) -> None:
    """With LOG_EVERY longer than the phase, only the phase's last epoch is logged; with
    LOG_EVERY at 0, every epoch."""
    import prunelab.train.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "LOG_EVERY", float("inf"))
    with caplog.at_level(logging.INFO, logger="prunelab"):
        history = train(toy_model(), config(epochs=3), label="seed 0 find").state.history
    last = history[-1]
    assert [r.getMessage() for r in caplog.records] == [
        f"seed 0 find: epoch 3/3, test accuracy {100 * last['test_acc']:.2f}%, training loss {last['train_loss']:.3f}, sparsity 0.0%"
    ]
    caplog.clear()
    monkeypatch.setattr(trainer_module, "LOG_EVERY", 0.0)
    with caplog.at_level(logging.INFO, logger="prunelab"):
        train(toy_model(), config(epochs=3))
    assert [r.getMessage().split(",")[0] for r in caplog.records] == [f"train: epoch {k}/3" for k in (1, 2, 3)]


def test_the_log_waits_log_every_seconds_from_its_last_line(caplog: pytest.LogCaptureFixture, monkeypatch) -> None:
    """A clock that moves 20 seconds at each epoch's end and LOG_EVERY of 30: epoch 3 is logged
    (40 s after the start), epoch 4 not (20 s after that line), epoch 5 is (40 s after it), and
    the last epoch always."""
    import prunelab.train.trainer as trainer_module

    clock = [0.0]
    monkeypatch.setattr(trainer_module, "LOG_EVERY", 30.0)
    monkeypatch.setattr(trainer_module, "time", SimpleNamespace(monotonic=lambda: clock[0], perf_counter=time.perf_counter))
    trainer = Trainer(toy_model(), toy_data(), config(epochs=6), seed=0, progress=False)
    with caplog.at_level(logging.INFO, logger="prunelab"):
        trainer.run(on_epoch_end=lambda _: clock.__setitem__(0, clock[0] + 20.0))
    assert [r.getMessage().split(",")[0] for r in caplog.records] == [f"train: epoch {k}/6" for k in (3, 5, 6)]


def test_the_progress_bar_names_its_numbers(capsys) -> None:
    """The bar's numbers say what they are, the test accuracy (the metric that matters) first."""
    trainer = Trainer(toy_model(), toy_data(), config(epochs=2), seed=0, progress=True, label="find")
    history = trainer.run()
    last = history[-1]
    numbers = f", test acc {last['test_acc']:.2%}, sparsity 0.0%, train loss {last['train_loss']:.3f}"
    err = capsys.readouterr().err
    line = err.split("\r")[-1].rstrip("\n")
    # after the bar and its times, as a narrow terminal cuts the line's end; and the phase's last
    # line stays: the bar's final state, ended by a new line, not wiped
    assert err.endswith("\n") and line.startswith("find, epoch 2/2: 100%|") and line.endswith(f"]{numbers}"), repr(err[-300:])


def test_a_resumed_phase_s_bar_counts_the_steps_done_before(capsys) -> None:
    """Resumed after its first epoch, the bar starts at that epoch's steps and ends full."""
    trainer = Trainer(toy_model(), toy_data(), config(epochs=3), seed=0, progress=True, label="find")
    trainer.state.epoch, trainer.state.step = 1, STEPS_PER_EPOCH
    trainer.run()
    frames = capsys.readouterr().err.split("\r")
    total = 3 * STEPS_PER_EPOCH
    assert f" {STEPS_PER_EPOCH}/{total} [" in frames[1] and "100%|" in frames[-1] and f" {total}/{total} [" in frames[-1]


def test_without_progress_nothing_is_shown(capsys) -> None:
    train(toy_model(), config(epochs=1))
    assert capsys.readouterr() == ("", "")


def test_a_training_that_diverges_stops_after_its_first_epoch_and_says_so() -> None:
    epochs = []
    trainer = Trainer(toy_model(), toy_data(), config(epochs=3, lr=1e30), seed=0, progress=False, label="seed 0 find")
    with pytest.raises(TrainingDiverged, match=r"seed 0 find: the training loss was (nan|inf) in epoch 1 \(LR up to 1e\+30\): training diverged"):
        trainer.run(on_epoch_end=lambda t: epochs.append(t.state.epoch))
    assert epochs == []  # nothing checkpointed: the phase trains anew with a better LR


def test_an_infinite_training_loss_is_divergence_too() -> None:
    """Finite logits far apart overflow the cross-entropy to inf, not NaN (its gradient stays
    finite): that loss is no more use than NaN."""
    model = nn.Linear(8, 3)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([3e38, -3e38, 0.0]))  # a label 1 costs 3e38 - (-3e38): inf in float32
    trainer = Trainer(model, toy_data(), config(epochs=2), seed=0, progress=False, label="find")
    with pytest.raises(TrainingDiverged, match=r"find: the training loss was inf in epoch 1 "):
        trainer.run()


def test_a_diverged_epoch_names_the_highest_lr_it_trained_with() -> None:
    """The LR that broke the training may be past by the epoch's end (a warmup's peak, say)."""
    peak = lambda step: 1e30 if step == 2 else 1e-3
    trainer = Trainer(toy_model(), toy_data(), config(epochs=2), seed=0, progress=False, schedule=peak, label="find")
    with pytest.raises(TrainingDiverged, match=r"find: the training loss was (nan|inf) in epoch 1 \(LR up to 1e\+30\)"):
        trainer.run()


def test_a_schedule_may_reach_an_lr_of_zero() -> None:
    """An LR of 0 (a linear schedule's end, a schedule of one's own) takes no step: no error."""
    trainer = train(toy_model(), config(epochs=1), schedule=lambda step: 0.0)
    assert trainer.state.lr_log == [0.0] * STEPS_PER_EPOCH and same_weights(trainer.model, toy_model())


def test_a_schedule_that_outgrows_float32_stops_with_the_step_it_did() -> None:
    schedule = LRScheduleConfig(name="step", step_size=1, gamma=1e200)
    trainer = Trainer(toy_model(), toy_data(), config(epochs=3, lr_schedule=schedule), seed=0, progress=False, label="find")
    with pytest.raises(TrainingDiverged, match=rf"find: the LR schedule gives 1e\+199 at step {STEPS_PER_EPOCH}; an LR must be from 0 to 3.4e\+38"):
        trainer.run()


def test_a_schedule_that_goes_below_zero_stops_with_the_step_it_did() -> None:
    """A negative LR would climb the loss: said at once, as the wrong LR it is, not as a float32 overflow."""
    trainer = Trainer(toy_model(), toy_data(), config(epochs=1), seed=0, progress=False, schedule=lambda step: 0.1 - 0.05 * step)
    with pytest.raises(TrainingDiverged, match=r"the LR schedule gives -0.05 at step 3; an LR must be from 0 to 3.4e\+38, the largest float32"):
        trainer.run()
    assert trainer.state.lr_log == [0.1, 0.05, 0.0]


# -- over several processes (two, forked, in a Gloo group) ------------------------------------


def uneven_data() -> Dataset:
    """91 training examples (the second process's share of the last batch is padded by one)
    and 23 test examples, which split unevenly over two processes too."""
    data = toy_data()
    return Dataset("toy", data.x_train[:91], data.y_train[:91], data.x_test[:23], data.y_test[:23], num_classes=3)


def test_two_processes_report_the_epoch_of_the_whole_data(two_processes) -> None:
    """Each process trains on its half of every batch and evaluates its part of the test set;
    both report the numbers of all examples, each counted once (not the padding), as one pass
    over everything computes them. An LR of 1e-30 leaves the weights as they are."""
    data, model = uneven_data(), toy_model()
    with torch.no_grad():
        logits, test_logits = model(data.x_train), model(data.x_test)
    expected = {
        "train_loss": pytest.approx(F.cross_entropy(logits, data.y_train).item(), rel=1e-5),
        "train_acc": pytest.approx((logits.argmax(1) == data.y_train).float().mean().item()),
        "train_images": 91,
        "test_loss": pytest.approx(F.cross_entropy(test_logits, data.y_test).item(), rel=1e-5),
        "test_acc": pytest.approx((test_logits.argmax(1) == data.y_test).float().mean().item()),
    }
    cfg = TrainConfig(epochs=1, batch_size=16, optimizer=OptimizerConfig(lr=1e-30, momentum=0.0))
    rows = two_processes(lambda: train(model, cfg, data=data).state.history[0])
    for row in rows:
        assert {key: row[key] for key in expected} == expected


@pytest.mark.parametrize("start_step", [0, 2])
def test_two_processes_train_the_weights_one_process_trains(two_processes, start_step: int) -> None:
    """Gradients averaged over the halves of each batch, the padding counted out, are the
    whole batch's: the weights end as one process's, up to rounding, in both processes; also
    from a step within the first epoch (as after a rewind), whose last batch is still the padded one."""
    data, cfg = uneven_data(), config(epochs=2, lr=0.2)

    def trained() -> dict:
        trainer = Trainer(toy_model(), data, cfg, seed=0, progress=False)
        trainer.state.step = start_step
        trainer.run()
        return trainer.model.state_dict()

    alone = trained()
    for weights in two_processes(trained):
        for name in alone:
            torch.testing.assert_close(weights[name], alone[name], rtol=1e-5, atol=1e-6)


def test_every_process_goes_on_with_the_main_process_s_batchnorm_statistics(two_processes) -> None:
    """Each process's statistics come from its own half of the batches; after the epoch, all
    hold the main process's, those of the model it saves."""
    results = two_processes(lambda: train(bn_model(), config(epochs=1)).model.state_dict())
    main, other = results
    assert not torch.equal(main["1.running_mean"], bn_model()[1].running_mean)  # they moved
    for name in ("1.running_mean", "1.running_var", "1.num_batches_tracked"):
        assert torch.equal(other[name], main[name])


def test_each_process_draws_its_own_dropout_masks(two_processes) -> None:
    """The processes train on different examples: they must not drop the same units of each."""

    def draws() -> list[torch.Tensor]:
        model = nn.Sequential(toy_model(), Draws())
        train(model, config(epochs=1))
        return model[1].drawn

    main, other = two_processes(draws)
    assert len(main) == len(other) == STEPS_PER_EPOCH
    assert not any(torch.equal(a, b) for a, b in zip(main, other))


def test_only_the_main_process_shows_progress_and_logs(two_processes, caplog: pytest.LogCaptureFixture) -> None:
    def shown() -> tuple[bool, list[str]]:
        with caplog.at_level(logging.INFO, logger="prunelab"):
            trainer = Trainer(toy_model(), toy_data(), config(epochs=1), seed=0, progress=True, label="find")
            trainer.run()
        return trainer.progress, [record.getMessage().split(",")[0] for record in caplog.records]

    assert two_processes(shown) == [(True, ["find: epoch 1/1"]), (False, [])]
