"""Gradual magnitude pruning (seeds 000, 001): stabilization dense, the cubic (or linear)
schedule updated ``updates_per_epoch`` times an epoch, fine-tuning without weight decay,
exactly the target at the end, the update-frequency warnings, the logged and plotted plan."""

from __future__ import annotations

import importlib
import math
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from prunelab.config import RecipeError, unused_settings
from prunelab.masks import Pruner
from prunelab.methods.gmp import (
    GradualPruning,
    check_update_frequency,
    gmp_schedule,
    layer_schedules,
)
from prunelab.runs.runner import check_plan, run_recipe
from prunelab.train import Trainer

SPARSITY, INIT = 0.8, 0.05
STABILIZATION, PRUNING, EPOCHS, UPDATES_PER_EPOCH = 1, 2, 4, 4
WEIGHT_DECAY = 1e-3
GMP = [
    "prune.method=gmp",
    "prune.scope=global",  # one exact count over all layers, which these tests check step by step
    f"prune.sparsity={SPARSITY}",
    f"prune.init_sparsity={INIT}",
    f"prune.stabilization_epochs={STABILIZATION}",
    f"prune.pruning_epochs={PRUNING}",
    f"prune.updates_per_epoch={UPDATES_PER_EPOCH}",
    f"eval.epochs={EPOCHS}",
    "eval.lr_policy=null",
    f"eval.optimizer.weight_decay={WEIGHT_DECAY}",
    "eval.lr_schedule={name: multistep, milestones: [3]}",
]


def cubic(step: int, begin: int, end: int, initial: float = INIT, final: float = SPARSITY, exponent: int = 3) -> float:
    """Zhu & Gupta by hand: s_t = s_f + (s_i - s_f) (1 - (t - t_0) / (t_end - t_0))^3."""
    return final + (initial - final) * (1 - (step - begin) / (end - begin)) ** exponent


def run_watching_steps(recipe, out: Path) -> tuple[Path, list[dict], list]:
    """Run ``recipe``, watching every optimizer step of the eval phase through the GMP hook:
    the run folder, each step's pruned count and weight decay, and the warnings given."""
    steps: list[dict] = []
    original = GradualPruning.__call__

    def watched(self, trainer: Trainer, step: int) -> None:
        original(self, trainer, step)
        pruner = self.session.pruner
        zeros_where_pruned = all(
            bool(torch.all(p.detach()[~pruner.masks[n]] == 0)) for n, p in pruner.parameters.items() if n in pruner.masks
        )
        steps.append({
            "step": step,
            "pruned": pruner.count_pruned(),
            "weight_decay": [g["weight_decay"] for g in trainer.optimizer.param_groups],
            "zeros_where_pruned": zeros_where_pruned,
        })

    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        patch.setattr(GradualPruning, "__call__", watched)
        folder = run_recipe(recipe, out, progress=False)
    return folder, steps, [w for w in caught if w.category is UserWarning]


@pytest.fixture(scope="module")
def gmp_run(make_recipe, shared_out: Path, steps_per_epoch: int):
    """One GMP run, watching every optimizer step of the eval phase through the GMP hook."""
    recipe = make_recipe(*GMP)
    folder, steps, caught = run_watching_steps(recipe, shared_out)
    frequency = steps_per_epoch // UPDATES_PER_EPOCH
    finetune = (STABILIZATION + PRUNING) * steps_per_epoch
    return SimpleNamespace(
        recipe=recipe, seed=folder / "seed-0", steps=steps, warnings=caught,
        begin=STABILIZATION * steps_per_epoch, finetune=finetune, frequency=frequency,
        end=finetune - frequency,  # the last update, at the target, is inside the pruning stage
    )


@pytest.fixture(scope="module")
def total(prunable_names, data) -> int:
    from prunelab.models import build_model

    model = build_model("mnist1d_cnn", num_classes=data.num_classes, input_shape=data.input_shape)
    params = dict(model.named_parameters())
    return sum(params[n].numel() for n in prunable_names)


def test_the_plan_is_the_cubic_schedule_updated_updates_per_epoch_times(gmp_run, read) -> None:
    plan = read(gmp_run.seed / "events.json")["gmp/plan"]
    begin, end = gmp_run.begin, gmp_run.end
    assert plan["update_steps"] == [8, 10, 12, 14, 16, 18, 20, 22]  # 4 an epoch for 2 epochs
    assert plan["finetune_step"] == (STABILIZATION + PRUNING) * 8  # 8 steps an epoch; training.png marks it
    assert plan["sparsity"][0] == pytest.approx(INIT)
    assert plan["sparsity"][-1] == SPARSITY
    for step, sparsity in zip(plan["update_steps"], plan["sparsity"]):
        assert sparsity == pytest.approx(cubic(step, begin, end), abs=1e-12)
    increments = [b - a for a, b in zip(plan["sparsity"], plan["sparsity"][1:])]
    assert all(x > y for x, y in zip(increments, increments[1:]))  # cubic: big cuts first


def test_stabilization_is_dense_then_every_step_has_the_sparsity_of_the_last_update(gmp_run, total) -> None:
    steps = gmp_run.steps
    assert [s["step"] for s in steps] == list(range(EPOCHS * 8))  # the hook saw every step
    last_update = None
    for record in steps:
        step = record["step"]
        if step < gmp_run.begin:
            assert record["pruned"] == 0, f"step {step} of the stabilization stage is not dense"
            continue
        if step >= gmp_run.end:
            expected = round(SPARSITY * total)
        else:
            if (step - gmp_run.begin) % gmp_run.frequency == 0:
                last_update = step
            expected = round(cubic(last_update, gmp_run.begin, gmp_run.end) * total)
        assert record["pruned"] == expected, f"step {step}"
        assert record["zeros_where_pruned"], f"step {step}: a pruned weight is not zero"
    pruned = [s["pruned"] for s in steps]
    assert pruned == sorted(pruned)  # masks only grow


def test_weight_decay_is_off_in_fine_tuning_only(gmp_run) -> None:
    for record in gmp_run.steps:
        expected = 0.0 if record["step"] >= gmp_run.finetune else WEIGHT_DECAY
        assert record["weight_decay"] == [expected], f"step {record['step']}"


def test_gmp_reaches_exactly_the_target(gmp_run, total, load_masks, prunable_names, read) -> None:
    seed = gmp_run.seed
    masks = load_masks(seed / "masks.safetensors")
    pruned = sum(int((~masks[n]).sum()) for n in prunable_names)
    assert pruned == round(SPARSITY * total)
    summary = read(seed / "summary.json")
    assert summary["sparsity"] == pruned / total
    assert summary["sparsity_updates"] == PRUNING * UPDATES_PER_EPOCH
    final = load_file(str(seed / "model.safetensors"))
    assert sum(int((final[n][~masks[n]] != 0).sum()) for n in prunable_names) == 0


def test_metrics_follow_the_three_stages(gmp_run, total, read) -> None:
    rows = [r for r in read(gmp_run.seed / "metrics.json") if r["phase"] == "eval"]
    assert len(rows) == EPOCHS
    assert rows[0]["sparsity"] == 0.0  # stabilization
    # after epoch 2 (steps 8..15) the last update was at step 14
    assert rows[1]["sparsity"] == round(cubic(14, 8, 22) * total) / total
    # the pruning stage ends at the target: its last epoch is measured at the final sparsity
    assert rows[2]["sparsity"] == rows[3]["sparsity"] == round(SPARSITY * total) / total
    summary = read(gmp_run.seed / "summary.json")
    assert summary["pruned_acc"] == rows[STABILIZATION + PRUNING - 1]["test_acc"]
    assert summary["final_acc"] == rows[-1]["test_acc"]
    # fine-tuning steps the LR down (multistep at epoch 3)
    lrs = read(gmp_run.seed / "lr_log.json")["eval"]
    assert lrs[:24] == [0.1] * 24 and lrs[24:] == pytest.approx([0.01] * 8)


def test_too_few_updates_warn_and_are_logged(gmp_run, read) -> None:
    messages = [str(w.message) for w in gmp_run.warnings]
    updates = [m for m in messages if "sparsity updates" in m]
    assert len(updates) == 1 and "only 8 sparsity updates" in updates[0] and "30" in updates[0]
    assert read(gmp_run.seed / "events.json")["gmp/plan"]["warnings"] == updates
    # the other warning is the recipe's: this tiny GMP steps its LR down once in fine-tuning
    (advice,) = (m for m in messages if m not in updates)
    assert advice.startswith("eval.lr_schedule (multistep) lowers the LR only once in fine-tuning")


def test_the_schedule_plot_gets_the_plan_and_the_stage_boundaries(make_recipe, tmp_path, read, monkeypatch) -> None:
    from prunelab.runs import runner

    calls, real = [], runner.plot_sparsity_schedule
    monkeypatch.setattr(runner, "plot_sparsity_schedule", lambda *args: calls.append(args) or real(*args))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seed = run_recipe(make_recipe(*GMP), tmp_path, progress=False) / "seed-0"
    plan = read(seed / "events.json")["gmp/plan"]
    ((steps, sparsity, finetune, end, path, epochs, schedule),) = calls
    assert (steps, sparsity) == (plan["update_steps"], plan["sparsity"])
    assert (finetune, end, epochs) == (3 * 8, 4 * 8, 4)  # (stabilization + pruning) epochs, all eval epochs, of 8 steps
    assert schedule == "cubic"
    assert path == seed / "sparsity_schedule.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- the schedule, its warnings and the hook without training ----------------------------


def _session(recipe, model: nn.Module | None = None, train_size: int = 4000):
    model = model or nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 10))
    return SimpleNamespace(
        recipe=recipe, data=SimpleNamespace(x_train=range(train_size)), model=model, pruner=Pruner(model),
    )


def test_linear_schedule_prunes_the_same_amount_at_every_update(make_recipe) -> None:
    recipe = make_recipe(*GMP, "prune.schedule=linear", "prune.pruning_epochs=3", "eval.epochs=5")
    schedule = gmp_schedule(recipe, 4000)
    steps = schedule.update_steps
    assert steps == (8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)  # 3 epochs, 4 an epoch
    values = [schedule(t) for t in steps]
    assert values == pytest.approx([cubic(t, 8, 30, exponent=1) for t in steps], abs=1e-12)
    increments = [b - a for a, b in zip(values, values[1:])]
    assert increments == pytest.approx([increments[0]] * len(increments))
    # between updates the target holds, before the stage it is dense
    assert schedule(9) == schedule(8) and schedule(7) == 0.0 and schedule(1000) == SPARSITY


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["prune.updates_per_epoch=8"], ["only 16 sparsity", "after every batch, which gives"]),  # a cut every step, as asked
        (["prune.updates_per_epoch=9"], ["only 16 sparsity", "updates_per_epoch=9 asks for more updates than an epoch has steps (8): "
                                          "the sparsity is updated after every batch (16 updates)"]),  # at most one a step
        (["prune.updates_per_epoch=1"], ["only 2 sparsity"]),    # 2 epochs, once an epoch
        (["prune.pruning_epochs=8", "eval.epochs=10"], []),      # 32 updates, every 2 steps: fine
        # 15 updates over 24 steps: steps 8, 9, 11, 12, 14, ..., the first two adjacent, but not every batch
        (["prune.updates_per_epoch=5", "prune.pruning_epochs=3", "eval.epochs=5"], ["only 15 sparsity"]),
        # 6 updates over 8 steps: steps 8, 9, 10, 12, 13, 14, a single step left out is enough
        (["prune.updates_per_epoch=6", "prune.pruning_epochs=1", "eval.epochs=3"], ["only 6 sparsity"]),
    ],
)
def test_update_frequency_guidance(make_recipe, overrides, expected) -> None:
    messages = check_update_frequency(make_recipe(*GMP, *overrides), 4000)
    assert len(messages) == len(expected)
    for message, fragment in zip(messages, expected):
        assert fragment in message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # 4 epochs of 16 steps: 8 updates an epoch make 32, every other step
        (["prune.updates_per_epoch=1", "prune.pruning_epochs=4", "eval.epochs=6", "eval.batch_size=250"],
         "only 4 sparsity updates; at least 30 are recommended (raise prune.updates_per_epoch or prune.pruning_epochs)"),
        # 4 epochs of 8 steps: 7 updates an epoch make 28, 8 are one every batch (the stage's 32 steps are not enough)
        (["prune.updates_per_epoch=1", "prune.pruning_epochs=4", "eval.epochs=6"],
         "only 4 sparsity updates; at least 30 are recommended (raise prune.pruning_epochs: 4 epochs of 8 steps cannot "
         "hold 30 updates without one every batch)"),
        # 2 epochs of 8 steps: 30 updates would be one every batch, whatever updates_per_epoch says
        (["prune.updates_per_epoch=1"],
         "only 2 sparsity updates; at least 30 are recommended (raise prune.pruning_epochs: 2 epochs of 8 steps cannot "
         "hold 30 updates without one every batch)"),
        (["prune.updates_per_epoch=1", "prune.pruning_epochs=1", "eval.epochs=3"],
         "only 1 sparsity update; at least 30 are recommended (raise prune.pruning_epochs: 1 epoch of 8 steps cannot "
         "hold 30 updates without one every batch)"),
    ],
)
def test_too_few_updates_name_the_setting_that_can_add_them(make_recipe, overrides, expected) -> None:
    """Seed 000's minimum of 30 updates, none of them after every batch: more updates an
    epoch get there only where the fewest that reach 30 leave a step between two updates,
    else only more pruning epochs can."""
    recipe = make_recipe(*GMP, *overrides)
    (message,) = check_update_frequency(recipe, 4000)
    assert message == f"the pruning stage has {expected}"
    if "raise prune.updates_per_epoch" in message:  # the remedy named gives enough updates, and no other warning
        needed = -(-30 // recipe.prune.pruning_epochs)
        assert check_update_frequency(make_recipe(*GMP, *overrides, f"prune.updates_per_epoch={needed}"), 4000) == []


def test_the_guidance_comes_as_the_run_starts_before_any_training(make_recipe, tmp_path: Path, monkeypatch) -> None:
    """With the recipe's other warnings, as the run starts: not while check_plan checks every
    recipe of a sweep, before any is said to start."""
    from prunelab.runs import runner

    recipe = make_recipe(*GMP, "prune.updates_per_epoch=1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = check_plan([("gmp", recipe)], tmp_path)
    assert not caught and not any(tmp_path.iterdir())

    def training(*_args, **_kwargs):
        raise RuntimeError("training started")

    monkeypatch.setattr(runner, "run_seed", training)
    for checked in (*data.values(), None):  # the data check_plan loaded, or none: the run loads its own
        with pytest.warns(UserWarning, match="the pruning stage has only 2 sparsity updates"), pytest.raises(RuntimeError, match="training started"):
            run_recipe(recipe, tmp_path, data=checked)


def test_every_batch_warning_comes_with_enough_updates(make_recipe) -> None:
    recipe = make_recipe(*GMP, "prune.updates_per_epoch=8", "prune.pruning_epochs=4", "eval.epochs=6")
    schedule = gmp_schedule(recipe, 4000)
    assert schedule.update_steps == tuple(range(8, 40))  # 32 updates, one every step
    (message,) = check_update_frequency(recipe, 4000)
    assert "every batch" in message


@pytest.mark.parametrize(
    ("batch_size", "updates_per_epoch", "updates"),
    [(100, 6, 30), (100, 7, 35), (300, 4, 20), (500, 3, 15), (500, 8, 40), (500, 9, 40)],
)
def test_the_configured_number_of_updates_lands_exactly(make_recipe, batch_size, updates_per_epoch, updates) -> None:
    """pruning_epochs * updates_per_epoch updates, spread over the pruning stage even where
    an epoch's steps do not divide by updates_per_epoch (40 steps / 6 rounds to 7, which
    gave 29 updates); at most one a step (with 8 steps an epoch, 9 updates an epoch give 8)."""
    recipe = make_recipe(*GMP, f"eval.batch_size={batch_size}", "prune.pruning_epochs=5",
                         f"prune.updates_per_epoch={updates_per_epoch}", "eval.epochs=7")  # fmt: skip
    epoch_steps = -(-4000 // batch_size)
    begin, finetune = epoch_steps, 6 * epoch_steps
    schedule = gmp_schedule(recipe, 4000)
    steps = schedule.update_steps
    assert len(steps) == updates
    spacing = 5 * epoch_steps / updates
    assert steps[0] == begin and finetune - math.ceil(spacing) <= steps[-1] < finetune  # the last, one spacing before fine-tuning
    assert all(int(spacing) <= b - a <= math.ceil(spacing) for a, b in zip(steps, steps[1:]))  # evenly spread
    assert [schedule(t) for t in steps] == pytest.approx([cubic(t, begin, steps[-1]) for t in steps], abs=1e-12)


def test_seed_000s_minimum_is_met_by_the_default_updates_at_40_steps_an_epoch(make_recipe) -> None:
    recipe = make_recipe("prune.method=gmp", "eval.lr_policy=null", "eval.epochs=10", "eval.batch_size=100")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert check_update_frequency(recipe, 4000) == []
    assert not caught


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["prune.pruning_epochs=4"], r"eval.epochs=4 is shorter than prune.stabilization_epochs=1 \+ prune.pruning_epochs=4: "
                                     "the eval phase holds GMP's stages, so eval.epochs must be at least 5"),
        (["prune.init_sparsity=0.85"], "init_sparsity=0.85 is above sparsity=0.8: the schedule rises from the first to the second, "
                                       r"so init_sparsity must be at most 0.8 \(seed 001 starts at 0.05\)"),
        (["prune.scope=lpr_of", "prune.lpr_of=elsewhere"], "gmp prunes gradually with scope global, layerwise or ratios"),
        (["eval.lr_policy=llr"], r"- eval.lr_policy=llr \(use null\): gmp prunes while the eval phase trains, along eval.lr_schedule"),
        (["eval.rewind=init"], r"- eval.rewind=init \(use none\): gmp prunes"),
        (["eval.lr_policy=llr", "eval.rewind=epoch:1"], r"eval.lr_policy=llr \(use null\) and eval.rewind=epoch:1 \(use none\): gmp"),
    ],
)
def test_impossible_gmp_settings_are_recipe_errors(make_recipe, overrides, match) -> None:
    # The recipe itself is refused, so nothing trains before the error.
    with pytest.raises(RecipeError, match=match):
        make_recipe(*GMP, *overrides)


def test_with_ratios_an_init_sparsity_above_the_unread_sparsity_is_allowed(make_recipe) -> None:
    """scope ratios takes each layer to its ratio, from init_sparsity or the ratio if lower:
    prune.sparsity (0.8) is not read, so an init_sparsity of 0.9 above it is no error."""
    recipe = make_recipe(*GMP, "prune.scope=ratios", "prune.ratios={'0.weight': 0.95, '2.weight': 0.3}", "prune.init_sparsity=0.9")
    assert "prune.sparsity=0.8 is not used: scope ratios sets each layer's ratio" in unused_settings(recipe)
    session = _session(recipe)
    schedule = gmp_schedule(recipe, len(session.data.x_train))
    hook = GradualPruning(session, schedule, layer_schedules(session, schedule))
    for step in range(EPOCHS * 8):
        hook(_FakeTrainer(session.model, 0.0), step)
        first = cubic(step - (step - 8) % 2, 8, 22, initial=0.9, final=0.95) if 8 <= step < 22 else (0.0 if step < 8 else 0.95)
        assert session.pruner.count_pruned("0.weight") == round(first * 600), step
        assert session.pruner.count_pruned("2.weight") == (round(0.3 * 300) if step >= 8 else 0), step  # its ratio, below 0.9, from the start
    with pytest.raises(RecipeError, match="init_sparsity=0.9 is above sparsity=0.8"):
        make_recipe(*GMP, "prune.scope=layerwise", "prune.init_sparsity=0.9")


class _FakeTrainer:
    def __init__(self, model: nn.Module, weight_decay: float) -> None:
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=weight_decay)


@pytest.mark.parametrize(("keep", "expected"), [(False, 0.0), (True, WEIGHT_DECAY)])
def test_finetune_weight_decay_keeps_it(make_recipe, keep, expected) -> None:
    session = _session(make_recipe(*GMP, f"prune.finetune_weight_decay={str(keep).lower()}"))
    schedule = gmp_schedule(session.recipe, len(session.data.x_train))
    hook = GradualPruning(session, schedule, layer_schedules(session, schedule))
    trainer = _FakeTrainer(session.model, WEIGHT_DECAY)
    for step in (22, 23):  # the last update, then the last step of the pruning stage
        hook(trainer, step)
        assert session.pruner.sparsity() == pytest.approx(SPARSITY, abs=1e-3)
        assert trainer.optimizer.param_groups[0]["weight_decay"] == WEIGHT_DECAY
    hook(trainer, 24)
    assert trainer.optimizer.param_groups[0]["weight_decay"] == expected


@pytest.mark.parametrize("finetune_epochs", [1, 0])
def test_layerwise_gmp_prunes_every_layer_to_the_schedule(make_recipe, finetune_epochs) -> None:
    """Driven step by step through the hook; without a fine-tuning stage (eval.epochs =
    stabilization + pruning) the last step still trains at exactly the target."""
    torch.manual_seed(0)
    epochs = STABILIZATION + PRUNING + finetune_epochs
    session = _session(make_recipe(*GMP, "prune.scope=layerwise", f"eval.epochs={epochs}"))
    schedule = gmp_schedule(session.recipe, len(session.data.x_train))
    hook = GradualPruning(session, schedule, layer_schedules(session, schedule))
    trainer = _FakeTrainer(session.model, 0.0)
    for step in range(epochs * 8):
        hook(trainer, step)
        target = cubic(step - (step - 8) % 2, 8, 22) if 8 <= step < 22 else (0.0 if step < 8 else SPARSITY)
        for name, p in session.pruner.parameters.items():
            assert session.pruner.count_pruned(name) == round(target * p.numel()), (step, name)
    assert all(
        session.pruner.count_pruned(n) == round(SPARSITY * p.numel()) for n, p in session.pruner.parameters.items()
    )


def test_per_layer_ratios_each_follow_their_own_cubic_schedule(make_recipe, tmp_path, numel, read) -> None:
    """Seed 000's sparsity per layer: with ``scope: ratios`` every named layer rises from
    init_sparsity to its own ratio on the cubic schedule; the others stay dense."""
    ratios = {"features.0.weight": 0.3, "classifier.0.weight": 0.9, "features.2.weight": 0.02}  # the last below init
    recipe = make_recipe(*GMP, "prune.scope=ratios", f"prune.ratios={ratios}")
    seen: dict[int, dict[str, int]] = {}
    original = GradualPruning.__call__

    def watched(self, trainer: Trainer, step: int) -> None:
        original(self, trainer, step)
        pruner = self.session.pruner
        seen[step] = {name: pruner.count_pruned(name) for name in pruner.parameters}

    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        patch.setattr(GradualPruning, "__call__", watched)
        seed = run_recipe(recipe, tmp_path, progress=False) / "seed-0"
    plan = read(seed / "events.json")["gmp/plan"]
    begin, end = 8, 22  # as in the global run above: same epochs and updates
    assert plan["update_steps"] == [8, 10, 12, 14, 16, 18, 20, 22]
    for step in plan["update_steps"]:
        for name, size in numel.items():
            ratio = ratios.get(name, 0.0)
            expected = cubic(step, begin, end, initial=min(INIT, ratio), final=ratio) if name in ratios else 0.0
            assert abs(seen[step][name] - expected * size) <= 0.5 + 1e-9, (step, name)  # the count rounds it
        overall = sum(cubic(step, begin, end, min(INIT, r), r) * numel[n] for n, r in ratios.items()) / sum(numel.values())
        assert plan["sparsity"][plan["update_steps"].index(step)] == pytest.approx(overall, abs=1e-12)
    final = read(seed / "layer_sparsity.json")
    for name, size in numel.items():
        assert final[name]["numel"] - final[name]["remaining"] == round(ratios.get(name, 0.0) * size), name


def test_every_summary_value_of_gmp_says_what_it_is(gmp_run, read) -> None:
    from prunelab.config.sweep import summary_meanings

    stats = read(gmp_run.seed.parent / "summary.json")["stats"]
    assert "sparsity_updates" in stats and set(stats) <= set(summary_meanings("gmp"))


def test_trainability_is_that_of_the_fine_tuning_stage(gmp_run, read) -> None:
    """GMP's retraining is its fine-tuning (epoch 4, after the milestone at 3, at one LR):
    seed 004's TA is that epoch's training accuracy, not the pruning stage's."""
    summary = read(gmp_run.seed / "summary.json")
    evals = [row for row in read(gmp_run.seed / "metrics.json") if row["phase"] == "eval"]
    assert len(evals) == EPOCHS == STABILIZATION + PRUNING + 1
    assert summary["trainability_acc"] == evals[-1]["train_acc"]
    assert summary["trainability_acc"] != pytest.approx(sum(r["train_acc"] for r in evals) / len(evals))


def test_the_summary_reads_the_end_of_pruning_and_the_last_epoch_not_the_best(make_recipe, monkeypatch) -> None:
    """The eval phase stubbed with known rows: the pruned accuracy is that of the pruning
    stage's last epoch (3), the final one the last epoch's even where an earlier one was better."""
    gmp_module = importlib.import_module("prunelab.methods.gmp")  # the package's name gmp is the function

    session = _session(make_recipe(*GMP))
    session.once = lambda _key, make: make()
    accuracies = [0.5, 0.6, 0.9, 0.7]  # epoch 3 ends the pruning stage and is the best
    history = [{"test_acc": acc, "train_acc": acc / 2, "step": 8 * (k + 1)} for k, acc in enumerate(accuracies)]
    session.train = lambda phase, config, step_hooks: {"history": history, "lr_log": [0.1] * 32}
    monkeypatch.setattr(gmp_module, "find", lambda _session: {"dense_acc": 0.95})
    assert gmp_module.gmp(session) == {
        "dense_acc": 0.95, "pruned_acc": 0.9, "final_acc": 0.7, "trainability_acc": 0.35, "sparsity_updates": 8,
    }


def test_fine_tuning_starts_after_the_pruning_epochs_of_eval_steps(make_recipe, tmp_path, total, read) -> None:
    """Without stabilization the first update, to init_sparsity, comes at step 0, before the
    first batch. Fine-tuning starts after the 2 pruning epochs of the eval phase's 8 steps (batches
    of 500), not of the find phase's 16 (of 250): weight decay is off from step 16, and seed 004's
    TA is the mean training accuracy of fine-tuning's first LR stage, epochs 3 and 4 before the
    milestone at 4; the milestone at 1, while pruning, is no part of it."""
    recipe = make_recipe(*GMP, "prune.stabilization_epochs=0", "find.epochs=1", "find.batch_size=250", "eval.epochs=5",
                         "eval.lr_schedule={name: multistep, milestones: [1, 4]}")  # fmt: skip
    folder, steps, _ = run_watching_steps(recipe, tmp_path)
    assert steps[0]["step"] == 0 and steps[0]["pruned"] == round(INIT * total)
    finetune = PRUNING * 8
    assert [s["weight_decay"] for s in steps] == [[WEIGHT_DECAY]] * finetune + [[0.0]] * (5 * 8 - finetune)
    assert read(folder / "seed-0" / "events.json")["gmp/plan"]["finetune_step"] == finetune
    evals = [row for row in read(folder / "seed-0" / "metrics.json") if row["phase"] == "eval"]
    assert read(folder / "seed-0" / "summary.json")["trainability_acc"] == pytest.approx((evals[2]["train_acc"] + evals[3]["train_acc"]) / 2)


def test_show_names_gmps_stages(gmp_run, capsys) -> None:
    from prunelab.cli import main

    assert main(["show", str(gmp_run.seed.parent)]) == 0
    assert f"of pruning ({STABILIZATION} stabilizing, dense, then {PRUNING} along the schedule)" in capsys.readouterr().out
