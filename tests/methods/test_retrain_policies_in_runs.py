"""The retraining LR policies of seed 003 in real (tiny) runs.

Every expected LR is computed here from the find phase's logged LRs (``lr_log.json``), with
the formulas of seed 003: FT the last LR; LRW the last T_rt steps replayed; SLR
``log[floor(t * T / T_rt)]``; CLR a cosine from eta_1 to 0; LLR a line from eta_1 to 0;
ALLR a line from ``d * eta_1``, ``d = max(d1, d2)``, ``d1 = ||theta - theta_p|| / (||theta||
sqrt(s))`` and ``d2 = T_rt / T``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from prunelab.methods.common import find_steps_in_steps_of
from prunelab.runs.runner import run_recipe
from prunelab.schedules import retrain_schedule

SPARSITY = 0.9


def expected_lrs(policy: str, log: list[float], t_rt: int, d: float | None = None) -> list[float]:
    """Seed 003's policies, written out for ``t_rt`` retraining steps after a log of ``len(log)``."""
    t, eta_1 = len(log), max(log)
    if policy == "ft":
        return [log[-1]] * t_rt
    if policy == "lrw":
        return log[t - t_rt:]
    if policy == "slr":
        return [log[math.floor(step * t / t_rt)] for step in range(t_rt)]
    if policy == "clr":
        return [eta_1 * (1 + math.cos(math.pi * step / t_rt)) / 2 for step in range(t_rt)]
    if policy == "llr":
        return [eta_1 * (1 - step / t_rt) for step in range(t_rt)]
    assert policy == "allr" and d is not None
    return [d * eta_1 * (1 - step / t_rt) for step in range(t_rt)]


def oneshot(make_recipe, out: Path, *overrides: str):
    recipe = make_recipe("prune.method=oneshot", f"prune.sparsity={SPARSITY}", *overrides)
    return recipe, run_recipe(recipe, out, progress=False) / "seed-0"


@pytest.mark.parametrize("policy", ["ft", "lrw", "slr", "clr", "llr"])
def test_policy_lrs_follow_seed_003(policy, make_recipe, shared_out, steps_per_epoch, read) -> None:
    recipe, seed = oneshot(make_recipe, shared_out, f"eval.lr_policy={policy}", "eval.epochs=2")
    logs = read(seed / "lr_log.json")
    find_log = logs["find"]
    assert len(find_log) == recipe.find.epochs * steps_per_epoch == 24
    assert len(set(find_log)) == 24  # a cosine: every step has its own LR, so indexing shows
    t_rt = 2 * steps_per_epoch
    expected = expected_lrs(policy, find_log, t_rt)
    assert logs["eval"] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    recorded = read(seed / "events.json")["eval/lr_policy"]
    assert recorded["policy"] == policy
    assert recorded["initial_lr"] == pytest.approx(expected[0], rel=1e-12)
    assert recorded["warmup_steps"] == 0
    assert recorded["d1"] is None and recorded["d2"] is None and recorded["d"] is None


@pytest.mark.parametrize(("sparsity", "epochs"), [(0.9, 1), (0.3, 2)])
def test_allr_starts_at_d_eta_1_with_d1_measured_on_the_prunable_weights(
    sparsity, epochs, make_recipe, shared_out, find_weights, load_masks, prunable_names, steps_per_epoch, read, hand_d1
) -> None:
    recipe = make_recipe(
        "prune.method=oneshot", f"prune.sparsity={sparsity}", "eval.lr_policy=allr", f"eval.epochs={epochs}"
    )
    seed = run_recipe(recipe, shared_out, progress=False) / "seed-0"
    theta = find_weights(shared_out, recipe)
    masks = load_masks(seed / "masks" / "prune.safetensors")
    total = sum(theta[n].numel() for n in prunable_names)
    s = sum(int((~masks[n]).sum()) for n in prunable_names) / total
    assert s == round(sparsity * total) / total
    d1 = hand_d1(theta, masks, prunable_names, s)
    find_log = read(seed / "lr_log.json")["find"]
    t_rt = epochs * steps_per_epoch
    d2 = t_rt / len(find_log)
    events = read(seed / "events.json")
    recorded = events["eval/lr_policy"]
    assert recorded["policy"] == "allr"
    assert recorded["d1"] == pytest.approx(d1, rel=1e-9)
    assert events["prune"]["d1"] == pytest.approx(d1, rel=1e-9)
    assert recorded["d2"] == pytest.approx(d2, rel=1e-12)
    assert recorded["d"] == pytest.approx(max(d1, d2), rel=1e-9)
    assert recorded["initial_lr"] == pytest.approx(max(d1, d2) * max(find_log), rel=1e-9)
    lrs = read(seed / "lr_log.json")["eval"]
    assert lrs == pytest.approx(expected_lrs("allr", find_log, t_rt, d=max(d1, d2)), rel=1e-9)
    # the two cases exercise both sides of max(d1, d2)
    assert (d1 > d2) == (sparsity == 0.9)


def test_allr_d1_of_an_imp_level_uses_the_fraction_of_the_remaining_weights(
    make_recipe, shared_out, load_masks, prunable_names, read, hand_d1, phase_ends
) -> None:
    recipe = make_recipe(
        "prune.method=imp", "prune.rate=0.2", "prune.levels=2", "eval.lr_policy=allr", "eval.epochs=1"
    )
    with phase_ends() as ends:
        seed = run_recipe(recipe, shared_out, progress=False) / "seed-0"
    level1 = load_masks(seed / "masks" / "level-1" / "prune.safetensors")
    level2 = load_masks(seed / "masks" / "level-2" / "prune.safetensors")
    theta = ends["level-1/eval"]  # the weights level 2 prunes
    newly = {n: level2[n] | ~level1[n] for n in prunable_names}  # False only where level 2 cut
    remaining = sum(int(level1[n].sum()) for n in prunable_names)
    s = sum(int((~newly[n]).sum()) for n in prunable_names) / remaining
    assert s == pytest.approx(0.2, abs=1 / remaining)
    d1, d2 = hand_d1(theta, newly, prunable_names, s), 8 / 24
    recorded = read(seed / "events.json")["level-2/eval/lr_policy"]
    assert recorded["d1"] == pytest.approx(d1, rel=1e-9)
    assert recorded["d2"] == pytest.approx(d2)
    assert recorded["d"] == pytest.approx(max(d1, d2), rel=1e-9)
    find_log = read(seed / "lr_log.json")["find"]
    assert read(seed / "lr_log.json")["level-2/eval"] == pytest.approx(
        expected_lrs("allr", find_log, 8, d=max(d1, d2)), rel=1e-9
    )


def test_warmup_fraction_ramps_the_first_tenth_up_linearly(make_recipe, shared_out, read) -> None:
    # eval batches of 100: 40 retraining steps, so the first round(0.1 * 40) = 4 are warmed up
    _, seed = oneshot(
        make_recipe, shared_out, "eval.lr_policy=llr", "eval.warmup_fraction=0.1", "eval.epochs=1",
        "eval.batch_size=100",
    )
    eta_1 = max(read(seed / "lr_log.json")["find"])
    lrs = read(seed / "lr_log.json")["eval"]
    assert len(lrs) == 40
    base = [eta_1 * (1 - step / 40) for step in range(40)]
    ramp = [(step + 1) / 4 for step in range(4)] + [1.0] * 36
    assert lrs == pytest.approx([b * r for b, r in zip(base, ramp)], rel=1e-12)
    assert lrs[0] < lrs[1] < lrs[2] < lrs[3]
    recorded = read(seed / "events.json")["eval/lr_policy"]
    assert recorded["warmup_steps"] == 4 and recorded["initial_lr"] == pytest.approx(eta_1)


def test_policies_count_epochs_when_find_and_eval_batch_sizes_differ(
    make_recipe, shared_out, find_weights, load_masks, prunable_names, read, hand_d1
) -> None:
    """One epoch of retraining in batches of 100 (40 steps) after 3 find epochs in batches of
    500 (24 steps): LRW replays the last find *epoch*, ALLR's d2 = T_rt / T = 1/3."""
    _, lrw = oneshot(make_recipe, shared_out, "eval.lr_policy=lrw", "eval.epochs=1", "eval.batch_size=100")
    find_log = read(lrw / "lr_log.json")["find"]
    assert len(find_log) == 24
    # eval step i of 40 is at i/40 of the last find epoch, i.e. find step 16 + floor(i * 8 / 40)
    assert read(lrw / "lr_log.json")["eval"] == [find_log[16 + i * 8 // 40] for i in range(40)]

    recipe, allr = oneshot(make_recipe, shared_out, "eval.lr_policy=allr", "eval.epochs=1", "eval.batch_size=100")
    recorded = read(allr / "events.json")["eval/lr_policy"]
    assert recorded["d2"] == pytest.approx(1 / 3)
    theta = find_weights(shared_out, recipe)
    masks = load_masks(allr / "masks" / "prune.safetensors")
    total = sum(theta[n].numel() for n in prunable_names)
    d1 = hand_d1(theta, masks, prunable_names, round(SPARSITY * total) / total)
    assert recorded["d"] == pytest.approx(max(d1, 1 / 3), rel=1e-9)
    assert read(allr / "lr_log.json")["eval"] == pytest.approx(
        [max(d1, 1 / 3) * max(find_log) * (1 - step / 40) for step in range(40)], rel=1e-9
    )


@pytest.mark.parametrize(
    ("find_steps", "eval_steps", "expected"),
    [
        (4, 4, [8, 7, 6, 5, 4, 3, 2, 1]),          # same batch size: the log as it is
        (4, 2, [8, 6, 4, 2]),                      # eval batches twice as large
        (4, 8, [8, 8, 7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1]),
    ],
)
def test_the_find_log_is_read_at_the_eval_phases_steps(find_steps, eval_steps, expected) -> None:
    log = [8, 7, 6, 5, 4, 3, 2, 1]  # two find epochs
    t = find_steps_in_steps_of({"lr_log": log, "steps_per_epoch": find_steps}, eval_steps)
    assert t == 2 * eval_steps
    # LRW over the whole find phase replays it at the eval phase's steps
    plan = retrain_schedule("lrw", log, t, log_steps=t)
    assert [plan.schedule(step) for step in range(t)] == expected


def test_ft_retrains_at_the_find_phases_last_lr_when_eval_batches_are_larger(make_recipe, shared_out, steps_per_epoch, read) -> None:
    """Eval batches of 1000 (4 steps an epoch) after find batches of 500 (8): reading the find
    log at every other step would skip its last LR; FT is that LR (seed 003's eta_T)."""
    _, seed = oneshot(make_recipe, shared_out, "eval.lr_policy=ft", "eval.epochs=1", "eval.batch_size=1000")
    logs = read(seed / "lr_log.json")
    assert len(logs["find"]) == 3 * steps_per_epoch == 24
    assert logs["eval"] == [logs["find"][23]] * 4
    assert logs["find"][22] != logs["find"][23]  # a cosine: the step skipped would show


def test_no_retraining_plans_no_lr_and_records_no_d2(make_recipe, tmp_path, read) -> None:
    """With eval.epochs=0 nothing retrains: no policy LR and no d2 = T_rt / T (0 here) is made up."""
    _, seed = oneshot(make_recipe, tmp_path, "eval.lr_policy=allr", "eval.epochs=0")
    assert "eval/lr_policy" not in read(seed / "events.json")
    assert read(seed / "lr_log.json")["eval"] == []
    summary = read(seed / "summary.json")
    assert summary["final_acc"] == summary["pruned_acc"]


def test_without_a_policy_seed_004s_halving_schedule_retrains_and_sets_the_trainability_stage(
    make_recipe, shared_out, steps_per_epoch, read
) -> None:
    """0.1 to 0.001 over 4 epochs (Appendix A's Rule 2): 2 epochs at 0.1, then 1 at 0.01 and 1
    at 0.001; TA (seed 004) averages the training accuracy of the first stage's 2 epochs."""
    _, seed = oneshot(
        make_recipe, shared_out, "eval.lr_policy=null", "eval.epochs=4", "eval.optimizer.lr=0.1",
        "eval.lr_schedule={name: halving, final_lr: 0.001}",
    )
    expected = [0.1] * (2 * steps_per_epoch) + [0.01] * steps_per_epoch + [0.001] * steps_per_epoch
    assert read(seed / "lr_log.json")["eval"] == pytest.approx(expected, rel=1e-12)
    train_accs = [row["train_acc"] for row in read(seed / "metrics.json") if row["phase"] == "eval"]
    assert read(seed / "summary.json")["trainability_acc"] == pytest.approx(sum(train_accs[:2]) / 2, rel=1e-12)
