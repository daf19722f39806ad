"""Steps shared by the pruning methods: the find phase, one pruning step, retraining."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Sequence
from copy import deepcopy
from pathlib import Path

import torch

from prunelab.analysis.instability import interpolate
from prunelab.analysis.trainability import trainability_accuracy
from prunelab.config.schema import EvalConfig, FindConfig, PruneBase, Recipe, rewind_target, unread_settings
from prunelab.distributed import agree
from prunelab.runs.io import read_json, read_tensors
from prunelab.runs.session import SaveWeightsAt, Session, recipe_pruner
from prunelab.schedules import allr_d1, retrain_schedule
from prunelab.structured import ChannelPruner
from prunelab.train.optim import build_schedule
from prunelab.train.trainer import StepHook
from prunelab.wording import counted

#: The journal keys of a seed's first pruning step: one-shot's (and GMP's), IMP's and BIMP's first level.
FIRST_PRUNING_STEPS = ("prune", "level-1/prune")


def late_rewinding(find_phase: FindConfig, evaluation: EvalConfig, train_size: int) -> tuple[int, int] | None:
    """For ``evaluation.rewind`` epoch:K or step:K: the find step whose weights are kept, and
    the eval step where the eval LR schedule resumes (the same point of training when the
    two phases' batch sizes differ). Raises if either lies outside its phase, so that runs
    can check it before any training."""
    target = rewind_target(evaluation.rewind)
    if target is None:
        return None
    kind, k = target
    find_steps, eval_steps = epoch_steps(train_size, find_phase.batch_size), epoch_steps(train_size, evaluation.batch_size)
    step = k * find_steps if kind == "epoch" else k
    if step > find_phase.trained_epochs * find_steps:
        raise ValueError(
            f"eval.rewind={evaluation.rewind} lies past the end of the find phase "
            f"({counted(find_phase.trained_epochs, 'epoch')} of {counted(find_steps, 'step')})"
        )
    start = k * eval_steps if kind == "epoch" else round(k * eval_steps / find_steps)
    if evaluation.lr_policy is None and start >= evaluation.epochs * eval_steps:
        raise ValueError(
            f"eval.rewind={evaluation.rewind} resumes the eval LR schedule at step {start} of "
            f"{evaluation.epochs * eval_steps} (eval.epochs={evaluation.epochs} of {counted(eval_steps, 'step')}), which "
            "leaves nothing to retrain (eval.epochs counts from the schedule's start)"
        )
    return step, start


def lpr_epochs(recipe: Recipe) -> list[int] | None:
    """The epochs of the find phase whose LPR the first pruning step records
    (``find.lpr_every``), its start and end included; None if it records none.

    >>> lpr_epochs(Recipe.model_validate({"find": {"epochs": 7, "lpr_every": 3}}))
    [0, 3, 6, 7]
    """
    find_phase = recipe.find_training
    if not find_phase.lpr_every or "find.lpr_every" in unread_settings(recipe):
        return None
    return [*range(0, find_phase.trained_epochs, find_phase.lpr_every), find_phase.trained_epochs]


def lpr_snapshot_epochs(recipe: Recipe) -> list[int]:
    """The epochs after which the find phase keeps its weights for the LPR record: those of
    :func:`lpr_epochs` but its start and end, whose weights are kept anyway."""
    epochs = lpr_epochs(recipe)
    return epochs[1:-1] if epochs else []


def lpr_snapshot_name(epoch: int) -> str:
    """The name of the weights kept after ``epoch`` epochs of the find phase (0: the initial ones)."""
    return "init" if epoch == 0 else f"find-epoch-{epoch}"


def find(session: Session) -> dict:
    """Train the find phase (H_find), keeping the weights that late rewinding and the LPR
    record (``find.lpr_every``) will need; its training's record, with the dense model's test
    accuracy as ``dense_acc``: its last epoch's, or, for weights of ``model.weights`` trained
    no further, theirs (None for random weights trained no further)."""
    recipe = session.recipe
    rewinding = late_rewinding(recipe.find_training, recipe.eval, len(session.data.x_train))
    hooks = [] if rewinding is None else [SaveWeightsAt(session, rewinding[0], "rewind")]
    steps = steps_per_epoch(session, recipe.find_training.batch_size)
    hooks += [SaveWeightsAt(session, epoch * steps, lpr_snapshot_name(epoch)) for epoch in lpr_snapshot_epochs(recipe)]
    result = train_find(session, "find", step_hooks=hooks)
    if rewinding is not None:
        # A unit of its own, right after the find phase: the weights are still the find
        # phase's end here, even in a resumed run; later, a lost snapshot is a damaged run.
        session.once("find/rewind-snapshot", lambda: _keep_rewind_weights(session, rewinding[0]))
    dense_acc = last_test_acc(result)
    if dense_acc is None and recipe.model.weights is not None:
        dense_acc = session.once("find/start-accuracy", lambda: {"test_acc": session.evaluate()[1]})["test_acc"]
    return {**result, "dense_acc": dense_acc}


def _keep_rewind_weights(session: Session, step: int) -> dict:
    if not agree(session.has_weights("rewind")):
        session.save_weights("rewind")  # K was the very end of the find phase, where no step hook runs
    return {"step": step}


def train_find(session: Session, phase: str, *, step_hooks: Sequence[StepHook] = (), start_step: int = 0) -> dict:
    """Train H_find as ``phase``: its first ``find.stop_epoch`` epochs, if given, of the LR
    schedule of all its ``epochs``."""
    config = session.recipe.find_training
    schedule = None
    if config.stop_epoch is not None:
        steps = steps_per_epoch(session, config.batch_size)
        schedule = build_schedule(config.lr_schedule, config.optimizer.lr, config.epochs, steps)
        config = config.model_copy(update={"epochs": config.stop_epoch})
    return session.train(phase, config, schedule=schedule, step_hooks=step_hooks, start_step=start_step)


def last_test_acc(trained: dict) -> float | None:
    """The test accuracy at the end of a training (None if it had no epochs)."""
    return trained["history"][-1]["test_acc"] if trained["history"] else None


def pruning_outcome(pruned: dict, evaluated: dict) -> dict:
    """What a pruning step and its retraining came to: the accuracy right after pruning, the
    final one (the same if nothing was retrained), seed 004's TA, and the instability if
    measured."""
    final = last_test_acc(evaluated)
    return {
        "pruned_acc": pruned["test_acc_after_prune"],
        "final_acc": pruned["test_acc_after_prune"] if final is None else final,
        "trainability_acc": trainability_accuracy(evaluated),
        **({"instability": evaluated["instability"]} if "instability" in evaluated else {}),
    }


def prune(session: Session, key: str, sparsity: float) -> dict:
    """Prune once to ``sparsity`` in the recipe's scope (or to its ratios), as a unit of the
    run: records the sparsity, accuracy right after pruning, ALLR's d1 and the LPR, and
    keeps the masks as ``masks/<key>.safetensors``. With ``find.lpr_every``, the first
    pruning step also records :func:`lpr_during_find`, then deletes the seed's copies of the
    find phase's weights it read (after its checkpoint, so that a resumed run finds the record)."""

    if session.recipe.prune.prunes_channels:
        return session.once(key, lambda: prune_channels(session))

    def compute() -> dict:
        pruner = session.pruner
        squares = squared_norm(pruner.parameters.values())
        total = sum(p.numel() for p in pruner.parameters.values())
        remaining_before = total - pruner.count_pruned()
        spec = session.recipe.prune
        if spec.scope == "ratios":
            pruner.prune(ratios=spec.ratios)
        elif spec.scope == "lpr_of":
            pruner.prune(ratios=reference_lpr(session, key))
        elif spec.scope == "masks_of":
            pruner.load_state_dict(reference_masks(session, key))
        else:
            pruner.prune(sparsity, scope=spec.scope)
        newly_pruned = remaining_before - (total - pruner.count_pruned())
        fraction = newly_pruned / remaining_before if remaining_before else 0.0
        d1 = pruning_d1(squares, squared_norm(pruner.parameters.values()), fraction) if fraction else 0.0
        session.save_masks(key)
        loss, acc = session.evaluate()
        result = {
            "sparsity": pruner.sparsity(),
            "pruned_fraction_of_remaining": fraction,
            "d1": d1,
            "test_loss_after_prune": loss,
            "test_acc_after_prune": acc,
            "layer_sparsity": pruner.layer_sparsity(),
        }
        epochs = lpr_epochs(session.recipe)
        if epochs is not None and key in FIRST_PRUNING_STEPS:
            result["lpr_during_find"] = lpr_during_find(session, epochs, sparsity, result["layer_sparsity"])
        return result

    result = session.once(key, compute)
    if "lpr_during_find" in result:  # recorded: the run's copies of the find phase's weights have served
        session.drop_weights([lpr_snapshot_name(epoch) for epoch in lpr_snapshot_epochs(session.recipe)])
    return result


def squared_norm(tensors: Iterable[torch.Tensor], chunk_size: int = 1 << 20) -> float:
    """The squared L2 norm of ``tensors`` together, summed in float64 a chunk at a time: a
    float64 copy of a whole layer, and of its square, would take four times the layer's memory."""
    total = 0.0
    with torch.no_grad():
        for tensor in tensors:
            for chunk in tensor.detach().reshape(-1).split(chunk_size):
                total += float(chunk.double().square().sum())
    return total


def pruning_d1(squares: float, kept: float, fraction: float) -> float:
    """ALLR's d1 of a pruning step, from the squared norms of the prunable weights before
    (``squares``) and after it (``kept``). Pruning zeroes or removes weights and leaves the
    others as they were, so ||theta - theta_p||^2 is the difference of the two: d1 from
    two-entry vectors (removed, kept norms), without a copy of the weights before pruning."""
    removed_norm, kept_norm = max(squares - kept, 0.0) ** 0.5, kept**0.5
    norms = torch.tensor([removed_norm, kept_norm], dtype=torch.float64)  # float32 would round d1 in its 8th digit
    return allr_d1([norms], [torch.tensor([0.0, kept_norm], dtype=torch.float64)], fraction)


def first_lpr_record(events: dict) -> dict | None:
    """The LPR record of ``find.lpr_every`` among a seed's events (``events.json``), if its
    first pruning step made one: ``epochs``, ``layer_sparsity`` (a list per layer) and ``distance``."""
    step = next((events[key] for key in FIRST_PRUNING_STEPS if key in events), {})
    return step.get("lpr_during_find")


def lpr_during_find(session: Session, epochs: list[int], sparsity: float, final: dict[str, float]) -> dict:
    """Seed 002's Figures A18 and A19: the LPR that pruning the find phase's weights of each
    of ``epochs`` to ``sparsity`` (globally) would have given, and each one's distance from
    ``final``, the LPR pruning at the end gave: the mean over layers of the absolute difference."""
    model = deepcopy(session.model)
    lprs = []
    for epoch in epochs[:-1]:
        model.load_state_dict(session.read_weights(lpr_snapshot_name(epoch)))
        pruner = recipe_pruner(session.recipe, model, session.seed)
        with warnings.catch_warnings():  # a layer these would-be masks empty shows as a ratio of 1, not as the run's collapse
            warnings.filterwarnings("ignore", message="every weight of .* is pruned", category=UserWarning)
            pruner.prune(sparsity, scope="global")
        lprs.append(pruner.layer_sparsity())
    lprs.append(final)
    return {
        "epochs": epochs,
        "layer_sparsity": {layer: [lpr[layer] for lpr in lprs] for layer in final},
        "distance": [sum(abs(lpr[layer] - final[layer]) for layer in final) / len(final) for lpr in lprs],
    }


def prune_channels(session: Session) -> dict:
    """Prune whole channels by the recipe's channel criterion and rebuild the model small and
    dense without them (seed 002's Algorithm A2, seed 004's L1-norm filter pruning). Records
    what :func:`prune` does, plus the channels removed per group, but keeps no masks: the small
    model has none to keep, and its kept channels are the run's ``channels.json``."""
    channels = session.channel_pruner()
    choose_channels(channels, session.recipe.prune)
    squares = squared_norm(session.pruner.parameters.values())
    session.shrink(channels)
    fraction = session.sparsity()
    d1 = pruning_d1(squares, squared_norm(session.pruner.parameters.values()), fraction) if fraction else 0.0
    loss, acc = session.evaluate()
    return {
        "sparsity": fraction,
        "pruned_fraction_of_remaining": fraction,
        "d1": d1,
        "test_loss_after_prune": loss,
        "test_acc_after_prune": acc,
        "layer_sparsity": {name: layer["sparsity"] for name, layer in session.layer_counts().items()},
        "channel_sparsity": channels.channel_sparsity(),
        "group_sparsity": channels.group_sparsity(),
    }


def choose_channels(channels: ChannelPruner, spec: PruneBase) -> None:
    """Prune ``channels`` as a recipe's prune section says: to its ratios, or to its sparsity in its scope."""
    if spec.scope == "ratios":
        channels.prune(ratios=spec.ratios)
        return
    with warnings.catch_warnings():  # a recipe's filter_l1 with scope global is warned about as the run starts
        warnings.filterwarnings("ignore", message="filter_l1 ranked globally", category=UserWarning)
        channels.prune(spec.sparsity, scope=spec.scope, sparsity_of=spec.sparsity_of or "channels")


def pruning_steps(recipe: Recipe) -> list[str]:
    """The units in which ``recipe``'s method prunes (one-shot once, IMP/BIMP once a level)."""
    spec = recipe.prune
    if spec.method == "oneshot":
        return ["prune"]
    if spec.method in ("imp", "bimp"):
        return [f"level-{level}/prune" for level in range(1, spec.level_count + 1)]
    return []


def check_reference(recipe: Recipe, prunable: dict[str, tuple[int, ...]]) -> None:
    """Before any training: the run ``prune.lpr_of`` or ``prune.masks_of`` has every seed of
    ``recipe``, prunes the same tensors (``prunable``: name -> shape) and has exactly the same
    pruning steps; for ``masks_of``, it kept the masks of each of them, of those shapes."""
    spec = recipe.prune
    field = f"prune.{spec.scope}"
    copied, are = ("LPR", "is") if spec.scope == "lpr_of" else ("masks", "are")
    reference = Path(spec.reference)
    if not reference.is_dir():
        raise ValueError(f"{field}: {reference} is not a folder; give the run directory whose {copied} to copy (e.g. runs/oneshot-...)")
    if not (reference / "recipe.yaml").is_file():  # a folder of runs, say
        raise ValueError(f"{field}: {reference} is not a run directory (it has no recipe.yaml)")
    steps = pruning_steps(recipe)
    sizes = {name: math.prod(shape) for name, shape in prunable.items()}
    for seed in recipe.seeds:
        folder = reference / f"seed-{seed}"
        if not (folder / "events.json").exists() or not (folder / "layer_sparsity.json").exists():
            raise ValueError(f"{field}: {reference} has no finished seed {seed}; run that recipe with this seed first")
        theirs = {name: layer["numel"] for name, layer in read_json(folder / "layer_sparsity.json").items()}
        if theirs != sizes:
            raise ValueError(
                f"{field}: {reference} prunes {theirs}, this run {sizes} (name: size): the {copied} of "
                "another model or other include/exclude cannot be copied"
            )
        recorded = [key for key in read_json(folder / "events.json") if re.fullmatch(r"(level-\d+/)?prune", key)]
        if sorted(recorded) != sorted(steps):
            if not recorded:
                fix = f"it copies the {copied} of a one-shot, IMP or BIMP run, pruning step by pruning step"
            elif recorded == ["prune"]:
                fix = f"a one-shot run's {copied} {are} copied by a one-shot run (prune.method=oneshot)"
            elif spec.method in ("imp", "bimp"):
                fix = f"set prune.levels={len(recorded)} (or rate and sparsity to match)"
            else:
                fix = f"an IMP run's {copied} {are} copied by IMP with as many levels (prune.method=imp, prune.levels={len(recorded)})"
            raise ValueError(f"{field}: {reference} (seed {seed}) {_steps(recorded)}, this run {_steps(steps)}: {fix}")
        if spec.scope == "masks_of":
            _check_step_masks(reference, seed, steps, prunable)


def _check_step_masks(reference: Path, seed: int, steps: list[str], prunable: dict[str, tuple[int, ...]]) -> None:
    """The seed ``seed`` of the run ``reference`` kept the weight masks of each pruning step, of the shapes ``prunable`` has."""
    folder = reference / f"seed-{seed}"
    if (folder / "channels.json").is_file():
        raise ValueError(f"prune.masks_of: {reference} prunes whole channels, and keeps no weight masks to copy; give a run "
                         "whose criterion prunes weights (magnitude or random)")  # fmt: skip
    for key in steps:
        path = reference_masks_path(reference, seed, key)
        if not path.is_file():
            raise ValueError(f"prune.masks_of: {reference} (seed {seed}) has not kept the masks of its pruning step {key} "
                             f"({path} is missing): remove its folder seed-{seed} and run that recipe again, which keeps them")  # fmt: skip
        shapes = {name.removeprefix("shape:"): tuple(value.tolist()) for name, value in read_tensors(path).items() if name.startswith("shape:")}
        if shapes != prunable:
            raise ValueError(f"prune.masks_of: {reference} (seed {seed}) has masks of {shapes} at {key}, this run prunes "
                             f"{prunable} (name: shape): the masks of another model cannot be copied")  # fmt: skip


def _steps(steps: list[str]) -> str:
    """What a run's pruning steps are, in words."""
    if not steps:
        return "prunes along a schedule (GMP), in no pruning step of its own"
    if steps == ["prune"]:
        return "prunes once (one-shot)"
    return f"prunes in {counted(len(steps), 'IMP level')}"


def reference_lpr(session: Session, key: str) -> dict[str, float]:
    """The LPR that the run ``prune.lpr_of`` recorded at its pruning step ``key``, for this
    seed (``prune.scope: lpr_of``; :func:`check_reference` has checked it before training)."""
    events = Path(session.recipe.prune.lpr_of) / f"seed-{session.seed}" / "events.json"
    return read_json(events)[key]["layer_sparsity"]


def reference_masks_path(reference: Path, seed: int, key: str) -> Path:
    """Where the run ``reference`` kept the masks of its pruning step ``key`` for ``seed``."""
    return reference / f"seed-{seed}" / "masks" / f"{key}.safetensors"


def reference_masks(session: Session, key: str) -> dict[str, torch.Tensor]:
    """The masks (bit-packed, :meth:`Pruner.state_dict`) that the run ``prune.masks_of`` kept
    at its pruning step ``key``, for this seed (``prune.scope: masks_of``; :func:`check_reference`
    has checked them before training)."""
    return read_tensors(reference_masks_path(Path(session.recipe.prune.masks_of), session.seed, key))


def rewind(session: Session, to: str) -> bool:
    """Put the weights back as ``eval.rewind`` says: ``init``, ``epoch:K``/``step:K`` (the
    find phase's weights kept then), ``reinit`` (new random weights); False for ``none``."""
    if to == "init":
        session.load_weights("init")
    elif to == "reinit":
        session.reinitialize()
    elif rewind_target(to) is not None:
        session.load_weights("rewind")
    else:
        return False
    return True


def retrain(session: Session, phase: str, find_result: dict, pruned: dict, config: EvalConfig | None = None) -> dict:
    """Rewind as ``eval.rewind`` says, then train with H_eval (or ``config``), using its LR
    policy if it names one: the policy's original schedule is the find phase's LR log."""
    config = scratch_budget(session, phase, config or session.recipe.eval)
    target = rewind_target(config.rewind)

    def put_back() -> dict:
        rewind(session, config.rewind)
        if config.instability:
            session.save_weights(f"{phase}-start".replace("/", "-"))
        return {"rewind": config.rewind}

    session.once(f"{phase}/rewind", put_back)
    plan = None
    start_step = 0
    eval_steps = steps_per_epoch(session, config.batch_size)
    if config.lr_policy is not None and config.epochs:  # no retraining, no LR to plan (nor a d2 to record)
        plan = retrain_schedule(
            config.lr_policy,
            find_result["lr_log"],
            config.epochs * eval_steps,
            d1=pruned["d1"] if config.lr_policy == "allr" else None,
            warmup_fraction=config.warmup_fraction,
            log_steps=find_steps_in_steps_of(find_result, eval_steps),
        )
        session.once(f"{phase}/lr_policy", lambda: {
            "policy": plan.policy, "initial_lr": plan.initial_lr, "warmup_steps": plan.warmup_steps,
            "d1": plan.d1, "d2": plan.d2, "d": plan.d,
        })
    elif target is not None and config.lr_policy is None:
        # Late rewinding restores the LR position too.
        start_step = late_rewinding(session.recipe.find_training, config, len(session.data.x_train))[1]
    schedule = plan.schedule if plan else None
    result = session.train(phase, config, schedule=schedule, start_step=start_step)
    if not config.instability:
        return result
    return {**result, "instability": instability(session, phase, config, schedule, start_step)["barrier"]}


def scratch_budget(session: Session, phase: str, config: EvalConfig) -> EvalConfig:
    """``config`` with the epochs its ``budget`` gives a training from scratch (seed 004's
    Scratch-E and Scratch-B: as many epochs, or multiply-accumulates, as the pruning pipeline)."""
    if config.budget == "epochs":
        return config

    def size() -> dict:
        pipeline = session.recipe.find_training.trained_epochs
        extra = pipeline if config.budget == "scratch_e" else round(pipeline * session.speedup())
        return {"budget": config.budget, "epochs": config.epochs + extra}

    return config.model_copy(update={"epochs": session.once(f"{phase}/budget", size)["epochs"]})


def instability(session: Session, phase: str, config: EvalConfig, schedule, start_step: int) -> dict:
    """Seed 002's linear mode connectivity of the retraining ``phase``: train a second copy
    from the same starting point (same mask, LR schedule, hyperparameters; its own data
    order), then measure the test error along the line between the two results. The model
    is left as the first copy ended, so the run continues from it."""
    snapshot = phase.replace("/", "-")

    def start_copy() -> dict:
        session.save_weights(f"{snapshot}-end")
        session.load_weights(f"{snapshot}-start")
        return {}

    session.once(f"{phase}-copy/start", start_copy)
    session.train(f"{phase}-copy", config, schedule=schedule, start_step=start_step)  # another phase name: another data order

    def measure() -> dict:
        copy = deepcopy(session.model)
        session.load_weights(f"{snapshot}-end")
        line = interpolate(session.model, copy, session.data.x_test, session.data.y_test, device=session.device)
        return {"alphas": line.alphas, "errors": line.errors, "barrier": line.barrier}

    result = session.once(f"{phase}/instability", measure)
    # Measured (and checkpointed): nothing reads the two copies' start and end again, and an
    # IMP run would otherwise keep two copies of the model a level.
    session.drop_weights([f"{snapshot}-start", f"{snapshot}-end"])
    return result


def find_steps_in_steps_of(find_result: dict, steps_per_epoch: int) -> int:
    """The length T of the find phase in steps of ``steps_per_epoch`` an epoch (the eval phase's).

    Seed 003's policies measure T and T_rt in epochs (LRW rewinds to epoch T - T_rt, ALLR's
    d2 = T_rt / T), while ``retrain_schedule`` counts optimizer steps; when H_find and H_eval
    differ in batch size (seed 002), its ``log_steps`` spreads the find phase's LR log over
    this many eval steps: ``len(lr_log)`` when the step counts agree.

    >>> find_steps_in_steps_of({"lr_log": [4, 3, 2, 1], "steps_per_epoch": 2}, 3)
    6
    """
    length = len(find_result["lr_log"])
    find_steps = find_result.get("steps_per_epoch", steps_per_epoch)
    return length * steps_per_epoch // find_steps


def epoch_steps(train_size: int, batch_size: int) -> int:
    """Optimizer steps in an epoch of ``train_size`` examples (the last batch may be short)."""
    return -(-train_size // batch_size)


def steps_per_epoch(session: Session, batch_size: int) -> int:
    """Optimizer steps in an epoch of the session's training data."""
    return epoch_steps(len(session.data.x_train), batch_size)
