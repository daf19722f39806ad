"""Comparison setups (seed 004, Table 2): how fair a comparison of finished runs is.

A pruning pipeline has three steps: the base model (pretraining, our find phase), the
pruning algorithm, and the retraining after the last sparsifying action. Seed 004's setups
add one shared step at a time, each implying the ones above it:

====== =====================================================================
S1     the same dataset and network, granularity (weights or channels), and
       compression (parameters) or speedup
S2     + the same base model (the same find phase and seeds)
S3.1   + the same retraining epochs
S3.2   + the same retraining LR schedule (and the other retraining settings)
S4.1   + the same pruning epochs
S4.2   + the same pruning LR schedule (and the other settings of that training)
====== =====================================================================

Runs that train along one LR schedule, with one recipe, from start to end, and differ only
in the epoch they prune at are S4.2 too, as in seed 004's Tab. 4 (their base models differ).

A run with new random weights (``eval.rewind: reinit``) that trains the network a pruning
run among them pruned to is that network's training from scratch: the same masks seed by
seed after weight pruning, the same small dense architecture (weights left in every layer)
after channel pruning. It leaves the S1-S4.2 ladder; against training from scratch, S2-S4.2
train it as the base model was trained, for as many epochs ("the scratch training employs
the same training recipe of obtaining the base (big) model", as most papers do; a find phase
stopped part-way into its LR schedule, ``find.stop_epoch``, was trained by a recipe of all
``find.epochs``, as Tab. 4's scratch training runs the whole schedule its rows prune in), SX-A asks
for the same epochs of pretraining, pruning and retraining in total, and SX-B for the same
multiply-accumulates. All three are judged only for the pruned network's own scratch
training: trained with the dense model's recipe (its settings and peak LR; only the length
differs) to the same final LR as the pruned model's retraining (Appendix A's Rule 1). Other
runs with new random weights (seed 002's random baselines: a random mask, or random masks
keeping another mask's LPR) are pruning methods, on the ladder like the rest, as is
rewinding to earlier weights of the base model (``init``, ``epoch:K``).

The setups are judged on what the runs did, their recorded LR of every step and their
epochs, not on how their recipes say it: an LR policy and an explicit schedule that give
the same LRs are the same schedule, and an adaptive policy (ALLR) that gives two masks two
LRs is two schedules.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from prunelab.config import run_settings
from prunelab.config.load import builder_defaults
from prunelab.config.schema import OPTIMIZER_ONLY
from prunelab.config.sweep import grid_label, grid_value
from prunelab.criteria import CHANNEL_CRITERIA
from prunelab.models import NO_DEFAULT
from prunelab.report.tables import format_table
from prunelab.runs.io import read_json

SETUPS = {
    "S1": "the same dataset, network, granularity and compression or speedup",
    "S2": "the same base model",
    "S3.1": "the same retraining epochs",
    "S3.2": "the same retraining LR schedule and settings",
    "S4.1": "the same pruning epochs",
    "S4.2": "the same pruning LR schedule and settings",
}

ONE_SCHEDULE = "one LR schedule and settings over the whole pipeline, pruned at different epochs (seed 004, Tab. 4)"

#: Compressions (all parameters over those left) or speedups closer than this ratio count as
#: the same; so do sparsities closer than this, in runs that did not record parameter counts.
RATE_TOLERANCE = 0.01
SPARSITY_TOLERANCE = 0.005

# Settings of a training that its recorded epochs and LR per step already cover, or that
# belong to the pruning method under comparison (rewinding) or to measurements.
_RECORDED = ("epochs", "optimizer.lr", "lr_schedule.", "lr_policy", "warmup_fraction", "stop_epoch")
_NOT_TRAINING = ("rewind", "budget", "instability", "lpr_every")


@dataclass(frozen=True)
class Stage:
    """A stretch of training: its epochs, the LR of each optimizer step, and the settings
    that its epochs and LRs do not cover (optimizer, batch size, augmentation)."""

    epochs: int = 0
    lrs: tuple[float, ...] = ()
    settings: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Pipeline:
    """One seed of a run in seed 004's terms. A run with new random weights (``eval.rewind:
    reinit``) has them too: its retraining is the training from scratch."""

    base: Stage
    pruning: Stage
    retraining: Stage
    speedup: float | None = None  # of this seed's pruned network; None in runs made before it was measured
    remaining: Mapping[str, int] | None = None  # weights left per pruned tensor; None in runs made before it was recorded
    masks: str | None = None  # digest of the final masks; None where the seed has none


@dataclass(frozen=True)
class RunRecord:
    """What the comparison of a run needs: its name, settings, results and pipelines."""

    name: str
    settings: dict[str, object]  # flattened recipe, as :func:`prunelab.config.run_settings`
    seeds: tuple[int, ...]
    sparsity: float
    speedup: float | None
    pipelines: dict[int, Pipeline]  # per seed
    compression: float | None = None  # all parameters over those left; None in runs made before it was recorded

    @property
    def reinit(self) -> bool:
        """Whether its retraining starts from new random weights."""
        return self.settings.get("eval.rewind") == "reinit"

    @property
    def granularity(self) -> str:
        return "channels" if self.settings.get("prune.criterion") in CHANNEL_CRITERIA else "weights"

    @property
    def pipeline(self) -> Pipeline:
        return self.pipelines[min(self.pipelines)]

    def pipeline_at(self, seed: int) -> Pipeline:
        """The pipeline of ``seed``, or the first seed's if the run has not that one (runs that
        share no seed are compared on their first seeds, :func:`_paired_seeds`)."""
        return self.pipelines.get(seed, self.pipeline)


@dataclass(frozen=True)
class Budget:
    """A pruning run against a run training its pruned network from scratch, seed by seed:
    S2-S4.2 ask for the epochs of the base model's recipe, SX-A for the same epochs in total, SX-B for the
    same multiply-accumulates, to within
    half an epoch of whichever side counts in coarser steps: the pruning run's pretraining
    ends at a whole epoch of the dense model (seed 004 squeezes it to 30 / 1.11 = 27), which
    costs ``speedup`` epochs of the pruned network."""

    pruned: str
    scratch: str
    pipeline_epochs: tuple[int, int, int]  # pretraining, pruning, retraining
    scratch_epochs: tuple[int, ...]  # per seed compared
    # The epochs of the base model's LR schedule: more than it trained if it stopped part-way (find.stop_epoch).
    base_recipe_epochs: int
    # The pruning pipeline's cost in epochs of the pruned network, per seed; empty if not
    # judged, for the reason given.
    equivalent_epochs: tuple[float, ...] = ()
    pretraining_epoch: tuple[float, ...] = ()  # what an epoch of pretraining costs, in the same epochs
    not_judged: str = ""
    # Why the run from scratch is not seed 004's scratch training of the pruned network, if
    # it is not: then no budget is judged.
    not_scratch: str = ""

    @property
    def base_epochs(self) -> bool:
        return all(self.base_recipe_epochs == epochs for epochs in self.scratch_epochs)

    @property
    def same_epochs(self) -> bool:
        return all(sum(self.pipeline_epochs) == epochs for epochs in self.scratch_epochs)

    @property
    def same_macs(self) -> bool | None:
        if not self.equivalent_epochs:
            return None
        steps = zip(self.scratch_epochs, self.equivalent_epochs, self.pretraining_epoch, strict=True)
        return all(abs(s - e) <= 0.5 * max(1.0, step) for s, e, step in steps)

    def row(self) -> dict[str, object]:
        """A table row: the epochs and the MACs (in epochs of the pruned network) of each side,
        for the seed farthest from its budget."""
        base, pruning, retraining = self.pipeline_epochs
        scratch = sorted(set(self.scratch_epochs))
        trained = str(scratch[0]) if len(scratch) == 1 else f"{scratch[0]}-{scratch[-1]}"
        of_recipe = "" if self.base_recipe_epochs == base else f" (of {self.base_recipe_epochs})"
        epochs = f"{base}{of_recipe} + {pruning} + {retraining} / {trained}"
        macs = f"not judged: {self.not_judged}"
        if self.equivalent_epochs:
            _, worst = max((abs(s - e), i) for i, (s, e) in enumerate(zip(self.scratch_epochs, self.equivalent_epochs)))
            alike = len(set(self.scratch_epochs)) == 1 and max(self.equivalent_epochs) - min(self.equivalent_epochs) < 0.05
            seeds = "" if alike else f" (the farthest of {len(self.scratch_epochs)} seeds)"
            macs = f"{self.equivalent_epochs[worst]:.1f} / {self.scratch_epochs[worst]}{seeds}"
        s2, sx_a, sx_b = _met(self.base_epochs), _met(self.same_epochs), "" if self.same_macs is None else _met(self.same_macs)
        if self.not_scratch:
            s2, sx_a, sx_b = f"not judged: {self.not_scratch}", "not judged", "not judged"
        return {"run": self.pruned, "from scratch": self.scratch, "epochs": epochs, "S2-S4.2": s2, "SX-A": sx_a,
                "MACs": macs, "SX-B": sx_b}  # fmt: skip


def _met(flag: bool) -> str:
    return "met" if flag else "not met"


@dataclass(frozen=True)
class Verdict:
    """The strictest setup the pruning runs meet and why the next one fails (setup None and
    a reason: not even S1; neither: fewer than two pruning runs), and the budgets of each
    pair of a pruning run and a run trained from scratch."""

    setup: str | None
    reason: str | None  # why the next setup fails
    budgets: tuple[Budget, ...] = ()
    one_schedule: bool = False  # S4.2 as in seed 004's Tab. 4: one training, pruned at different epochs

    def __str__(self) -> str:
        if self.setup is None:
            return "" if self.reason is None else f"not comparable, not even by S1: {self.reason}"
        if self.one_schedule:
            return f"S4.2: {SETUPS['S1']}; {ONE_SCHEDULE}"
        met = list(SETUPS)[: list(SETUPS).index(self.setup) + 1]
        text = f"{self.setup}: " + "; ".join(SETUPS[s] for s in met if not _implied(s, self.setup))
        return text + (f". Not {_next(self.setup)}: {self.reason}" if self.reason else "")


def _next(setup: str) -> str:
    names = list(SETUPS)
    return names[names.index(setup) + 1]


def _implied(setup: str, met: str) -> bool:
    """S3.1 (same epochs) goes without saying once S3.2 (same schedule) holds; S4.1 once S4.2 does."""
    return (setup, met) in {("S3.1", "S3.2"), ("S3.1", "S4.1"), ("S3.1", "S4.2"), ("S4.1", "S4.2")}


def comparison_setup(runs: Sequence[RunRecord]) -> Verdict:
    """The strictest of seed 004's setups that ``runs`` meet all together.

    Runs that train a pruning run's network from scratch (:func:`trained_from_scratch`) are
    left out of the S1-S4.2 ladder and judged against every pruning run by their budgets instead
    (:class:`Budget`: the base model's epochs of S2-S4.2, SX-A, SX-B).
    """
    pruned, scratch = _pruning_and_scratch(runs)
    budgets = tuple(budget for p in pruned if not p.reinit for s in scratch if (budget := _budget(p, s)))
    if len(pruned) < 2:
        return Verdict(None, None, budgets)
    failed = _first_difference(pruned)
    if failed is None:
        return Verdict("S4.2", None, budgets)
    setup, reason = failed
    if setup == "S2" and _one_schedule_pruned_at_different_epochs(pruned):
        return Verdict("S4.2", None, budgets, one_schedule=True)
    names = list(SETUPS)
    return Verdict(names[names.index(setup) - 1] if setup != "S1" else None, reason, budgets)


def _first_difference(runs: Sequence[RunRecord]) -> tuple[str, str] | None:
    """(the first setup the runs fail, why), or None if they meet them all."""
    checks = [
        ("S1", _task_difference),
        ("S2", _base_difference),
        ("S3.1", lambda rs: _epochs_difference(rs, lambda p: p.retraining, "retraining")),
        ("S3.2", lambda rs: _training_difference(rs, lambda p: p.retraining, "retraining")),
        ("S4.1", lambda rs: _epochs_difference(rs, lambda p: p.pruning, "pruning")),
        ("S4.2", lambda rs: _training_difference(rs, lambda p: p.pruning, "pruning")),
    ]
    for setup, check in checks:
        reason = check(runs)
        if reason:
            return setup, reason
    return None


def _one_schedule_pruned_at_different_epochs(runs: Sequence[RunRecord]) -> bool:
    """Seed 004's S4.2 of Tab. 4: "we are not allowed to change the LR schedule. The only
    thing we can change is the pruning epoch." The runs train alike from start to end, with
    the same settings and the same LR at every step, seed by seed, but prune at different
    epochs (so their base models differ)."""
    if len({tuple(sorted(r.seeds)) for r in runs}) > 1 or len({r.pipeline.base.epochs for r in runs}) == 1:
        return False
    # Tab. 4's rows continue one training; a run rewound (to init, or to an epoch) starts again.
    if any(r.settings.get("eval.rewind", "none") != "none" for r in runs):
        return False
    recipes = []
    for run in runs:
        stages = [s for p in run.pipelines.values() for s in (p.base, p.pruning, p.retraining) if s.epochs]
        recipes += [_recipe(s) for s in stages]
    if differing_settings(recipes):
        return False
    for seed in runs[0].seeds:
        whole = [p.base.lrs + p.pruning.lrs + p.retraining.lrs for p in (r.pipelines[seed] for r in runs)]
        if any(len(lrs) != len(whole[0]) or not all(map(math.isclose, lrs, whole[0])) for lrs in whole):
            return False
    return True


def _task_difference(runs: Sequence[RunRecord]) -> str | None:
    """Why the runs are not of one task (S1), or None: data, network, granularity, size. Every
    reason: with the first alone, runs that share it and differ in another seem alike."""
    reasons = []
    for prefix, what in (("data.", "datasets"), ("model.", "networks")):
        task = [{k: v for k, v in r.settings.items() if k.startswith(prefix) and k != "data.augment"} for r in runs]
        if differing := differing_settings(task):
            reasons.append(_describe(f"the {what} differ", task, differing))
    # Seed 004 counts an advantage of one granularity over another as none of the pruning method's.
    reasons.append(_difference([r.granularity for r in runs], "the sparsity granularities"))
    reasons.append(_size_difference(runs))
    return "; ".join(filter(None, reasons)) or None


def _size_difference(runs: Sequence[RunRecord]) -> str | None:
    """Why the runs are not of one compression or speedup, or None."""
    sparsities, compressions, speedups = [r.sparsity for r in runs], [r.compression for r in runs], [r.speedup for r in runs]
    percent = _values([f"{100 * s:.2f}%" for s in sparsities])
    if None in compressions:  # runs made before prunelab recorded parameter counts: the sparsity stands in
        same, compression = max(sparsities) - min(sparsities) <= SPARSITY_TOLERANCE, f"the sparsities ({percent})"
    else:
        same = _close(compressions)
        compression = f"the compressions (all parameters over those left: {_values([f'{c:.2f}x' for c in compressions])})"
    if same or (None not in speedups and _close(speedups)):
        return None
    if None in speedups:
        return f"{compression} differ"
    return f"{compression} and the speedups ({_values([f'{s:.2f}x' for s in speedups])}) differ" + (
        f"; sparsities {percent}" if None not in compressions else ""
    )


def _close(rates: list[float]) -> bool:
    return max(rates) <= min(rates) * (1 + RATE_TOLERANCE)


def _base_difference(runs: Sequence[RunRecord]) -> str | None:
    """Why the runs' base models differ: every reason, since the same seeds give the same base
    models only to find phases that train alike. With other epochs the LR schedules differ
    too, so only the settings that differ besides are named."""
    base = [r.pipeline.base for r in runs]
    epochs = _difference([b.epochs for b in base], "the base models' epochs")
    trained = "; ".join(filter(None, [epochs, _settings_difference(base, "base models'")])) if epochs else _training_difference(
        runs, lambda p: p.base, "base models'"
    )
    seeds = [sorted(r.seeds) for r in runs]
    if all(s == seeds[0] for s in seeds):
        return trained
    every = sorted(set().union(*seeds))
    if trained:
        return (f"{trained}; and the seeds differ ({_values(seeds)}): train their find phases alike and run them all "
                f"with --set seeds={every}")  # fmt: skip
    return f"the seeds differ ({_values(seeds)}), and with them the base models; run them all with --set seeds={every}"


def _settings_difference(stages: Sequence[Stage], what: str) -> str | None:
    settings = [s.settings for s in stages]
    if any(s.epochs for s in stages) and (differing := differing_settings(settings)):
        return _describe(f"the {what} settings differ", settings, differing)
    return None


def _compared_seeds(runs: Sequence[RunRecord]) -> list[list[int]]:
    """The seeds to compare the runs on, one list (a seed per run) at a time: each seed they
    share, or their first seeds if they share none."""
    shared = sorted(set.intersection(*(set(r.pipelines) for r in runs)))
    return [[seed] * len(runs) for seed in shared] or [[min(r.pipelines) for r in runs]]


def _epochs_difference(runs: Sequence[RunRecord], stage: Callable[[Pipeline], Stage], what: str) -> str | None:
    """Why one stage of the runs trained other epochs (None if it did not), seed by seed: a
    Scratch-B budget (``eval.budget: scratch_b``) gives each seed the epochs of its own speedup."""
    for i, seeds in enumerate(_compared_seeds(runs)):
        epochs = [stage(r.pipelines[s]).epochs for r, s in zip(runs, seeds)]
        if any(e != epochs[0] for e in epochs):
            where = f"; seed {seeds[0]}" if i else ""  # named once the runs agree on an earlier seed
            return f"the {what} epochs differ ({_values(epochs)}{where})"
    return None


def _training_difference(runs: Sequence[RunRecord], stage: Callable[[Pipeline], Stage], what: str) -> str | None:
    """Why one stage of the runs did not train alike (None if it did): alike is the same
    settings (if it trained at all) and the same LR at every step, seed by seed (adaptive policies give every seed its own).
    Runs that share no seed (their base models: S2 asks for the same seeds) are compared on
    their first seeds; a find phase's LRs do not depend on its seed."""
    if reason := _settings_difference([stage(r.pipeline) for r in runs], what):
        return reason
    for seeds in _compared_seeds(runs):
        schedules = [stage(r.pipelines[s]).lrs for r, s in zip(runs, seeds)]
        first = schedules[0]
        if any(len(lrs) != len(first) for lrs in schedules):
            return f"the {what} LR schedules differ: {_values([len(s) for s in schedules])} steps"
        # The first step where any schedule leaves the first one: where they stop being alike.
        steps = [next((i for i, (a, b) in enumerate(zip(first, lrs)) if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)), None)
                 for lrs in schedules[1:]]  # fmt: skip
        if any(i is not None for i in steps):
            step = min(i for i in steps if i is not None)
            where = f"seed {seeds[0]}" if len(set(seeds)) == 1 else f"seeds {_values(seeds)}"
            lrs = _distinct([s[step] for s in schedules])
            if len(runs) > 2:  # which LR is whose, the runs of one LR together
                whose: dict[str, list[str]] = {}
                for run, lr in zip(runs, lrs):
                    whose.setdefault(lr, []).append(run.name)
                lrs = [f"{' = '.join(names)}: {lr}" for lr, names in whose.items()]
            return f"the {what} LR schedules differ from step {step + 1} on ({_values(lrs)}; {where})"
    return None


def differing_settings(settings: Sequence[Mapping[str, object]]) -> list[str]:
    """The keys whose values are not the same in all of ``settings``.

    >>> differing_settings([{"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}])
    ['b', 'c']
    """
    keys = dict.fromkeys(key for one in settings for key in one)
    return [key for key in keys if len({repr(one.get(key)) for one in settings}) > 1]


def _describe(what: str, settings: Sequence[Mapping[str, object]], keys: list[str]) -> str:
    return f"{what}: " + ", ".join(f"{key} {_values([one.get(key) for one in settings])}" for key in keys)


def _difference(values: list, what: str) -> str | None:
    """``what`` differ, with the values; None if they are all equal."""
    return None if all(v == values[0] for v in values) else f"{what} differ ({_values(values)})"


def _values(values: Sequence[object]) -> str:
    """The runs' values in their order, a value that three or more runs next to each other
    share once with their count.

    >>> _values([1, 2, 2, 2, 1, 1]), _values([True, False, None])
    ('1 / 2 ×3 / 1 / 1', 'true / false / null')
    """
    repeated = [(value, len(list(same))) for value, same in itertools.groupby(str(grid_value(value)) for value in values)]
    return " / ".join(f"{value} ×{count}" if count > 2 else " / ".join([value] * count) for value, count in repeated)


def _distinct(numbers: Sequence[float]) -> list[str]:
    """``numbers`` to 4 significant digits, or as many more as show that they differ.

    >>> _distinct([0.1, 0.2]), _distinct([0.1, 0.09999997])
    (['0.1', '0.2'], ['0.1', '0.09999997'])
    """
    for digits in range(4, 17):
        texts = [f"{n:.{digits}g}" for n in numbers]
        if len(set(texts)) > 1:
            return texts
    return texts


def _budget(pruned: RunRecord, scratch: RunRecord) -> Budget | None:
    """The budgets of a pruning run and a run training its pruned network from scratch,
    on the seeds both have, or on their first seeds if they share none (None if the two are
    not of one task, as S1 asks)."""
    if _task_difference([pruned, scratch]):
        return None
    seeds = _paired_seeds(pruned, scratch)
    p = pruned.pipelines[seeds[0]]
    scratch_epochs = tuple(scratch.pipeline_at(seed).retraining.epochs for seed in seeds)
    budget = Budget(pruned.name, scratch.name, (p.base.epochs, p.pruning.epochs, p.retraining.epochs), scratch_epochs,
                    _base_recipe_epochs(pruned, p.base.epochs))
    if reason := _not_scratch_training(pruned, scratch, seeds):
        budget = replace(budget, not_scratch=reason)
    if p.pruning.epochs:  # its cost changes as the sparsity rises, which the runs do not record
        return replace(budget, not_judged="a pruning stage")
    equivalent, pretraining_epoch = [], []
    for seed in seeds:
        mine, theirs = pruned.pipelines[seed], scratch.pipeline_at(seed)
        if not (mine.speedup and theirs.speedup):
            return replace(budget, not_judged="no speedup recorded (a run made before it was measured)")
        # In epochs of the pruned network: pretraining costs the speedup per epoch, retraining one.
        equivalent.append(mine.base.epochs * theirs.speedup + mine.retraining.epochs * theirs.speedup / mine.speedup)
        pretraining_epoch.append(theirs.speedup)
    return replace(budget, equivalent_epochs=tuple(equivalent), pretraining_epoch=tuple(pretraining_epoch))


def _base_recipe_epochs(run: RunRecord, trained: int) -> int:
    """The epochs of the LR schedule of a run's find phase: all ``find.epochs`` if it stopped
    part-way (``find.stop_epoch``; BIMP's first training does not read it), else the ``trained``."""
    if run.settings.get("find.stop_epoch") is None or run.settings.get("prune.method") == "bimp":
        return trained
    return run.settings.get("find.epochs")


def _paired_seeds(a: RunRecord, b: RunRecord) -> list[int]:
    """The seeds two runs both have, or ``a``'s first if they share none (``b`` is then read
    at its first)."""
    return sorted(set(a.pipelines) & set(b.pipelines)) or [min(a.pipelines)]


def trained_from_scratch(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """The runs among ``runs`` that train the network a pruning run among them pruned to,
    from new random weights (``eval.rewind: reinit``): seed 004's training from scratch.
    Other runs with new random weights, such as seed 002's random baselines, prune a network
    of their own: they are pruning methods."""
    pruning = [run for run in runs if not run.reinit]
    return [run for run in runs if run.reinit and any(_trains_network_of(p, run) for p in pruning)]


def _pruning_and_scratch(runs: Sequence[RunRecord]) -> tuple[list[RunRecord], list[RunRecord]]:
    """The runs as pruning methods (on the ladder) and as training from scratch, in their order."""
    scratch = trained_from_scratch(runs)
    return [run for run in runs if run not in scratch], scratch


def _trains_network_of(pruned: RunRecord, scratch: RunRecord) -> bool:
    """Whether ``scratch`` trains the network ``pruned`` pruned to: of one task, and after
    weight pruning, on a seed both ran (other seeds find other masks), the same masks."""
    return not (_task_difference([pruned, scratch]) or _other_network(pruned, scratch, _paired_seeds(pruned, scratch)))


def _other_network(pruned: RunRecord, scratch: RunRecord, seeds: Sequence[int]) -> str:
    """Why ``scratch`` trains another network than the one ``pruned`` pruned to ('' if it
    does not, or the runs did not record it): other weights left in a layer (for channel
    pruning, another architecture), or after weight pruning, other masks on a seed both ran
    or a seed ``scratch`` did not run (other seeds find other masks)."""
    for seed in seeds:
        mine, theirs = pruned.pipelines[seed], scratch.pipeline_at(seed)
        if mine.remaining and theirs.remaining and mine.remaining != theirs.remaining:
            layer = next(k for k in {**mine.remaining, **theirs.remaining} if mine.remaining.get(k) != theirs.remaining.get(k))
            return (f"it trains another network ({layer}: {mine.remaining.get(layer)} / {theirs.remaining.get(layer)} "
                    f"weights left; seed {seed})")  # fmt: skip
        # Channels: the architecture is the network, whichever channels were kept.
        if pruned.granularity == "weights" and seed not in scratch.pipelines:
            return f"it trains another network (the masks of another seed; it did not run seed {seed})"
        if pruned.granularity == "weights" and mine.masks and theirs.masks and mine.masks != theirs.masks:
            return f"it trains another network (other masks; seed {seed})"
    return ""


def _recipe(stage: Stage) -> dict[str, object]:
    """A stage's settings without their phase (``find.batch_size`` as ``batch_size``), to
    compare trainings of different phases."""
    return {key.removeprefix("find.").removeprefix("eval."): value for key, value in stage.settings.items()}


def _not_scratch_training(pruned: RunRecord, scratch: RunRecord, seeds: Sequence[int]) -> str:
    """Why ``scratch`` is not seed 004's scratch training of ``pruned``'s network ('' if it
    is): "the network architecture of the pruned model ... trained from scratch using the
    same training recipe as training the dense model" (only its length may differ), ending
    at the same LR as the pruned model's retraining (Appendix A's Rule 1)."""
    if reason := _other_network(pruned, scratch, seeds):
        return reason
    for seed in seeds:
        mine, theirs = pruned.pipelines[seed], scratch.pipeline_at(seed)
        recipes = [_recipe(mine.base), _recipe(theirs.retraining)]
        if differing := differing_settings(recipes):
            return _describe("it does not train with the dense model's recipe", recipes, differing)
        if mine.base.lrs and theirs.retraining.lrs and not math.isclose(max(mine.base.lrs), max(theirs.retraining.lrs)):
            return f"its peak LR is not the dense model's ({max(mine.base.lrs):.4g} / {max(theirs.retraining.lrs):.4g})"
        if mine.retraining.lrs and theirs.retraining.lrs and not _same_final_lr(mine.retraining.lrs, theirs.retraining.lrs):
            ends = [f"{p.retraining.lrs[-1]:.4g}" for p in (mine, theirs)]
            return f"it ends at another LR than the pruned model's retraining ({_values(ends)}; seed 004's Rule 1)"
    return ""


def _same_final_lr(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two schedules end at one LR. A decay (linear, cosine) ends its last step a
    step above where it goes, at an LR that depends on its length, so the last LRs may differ
    by as much as either schedule's last step changes.

    >>> _same_final_lr([0.3, 0.2, 0.1], [0.2, 0.15, 0.1, 0.05]), _same_final_lr([0.1, 0.01, 0.01], [0.1, 0.1, 0.1])
    (True, False)
    """
    last_change = max(abs(lrs[-1] - lrs[-2]) if len(lrs) > 1 else 0.0 for lrs in (a, b))
    return abs(a[-1] - b[-1]) <= last_change + 1e-9 * max(a[-1], b[-1])


# -- reading finished run directories -------------------------------------------------


def default_model_options(settings: Mapping[str, object]) -> dict[str, object]:
    """The options the run's model took at its builder's defaults, as settings, for comparing
    runs of which another may give them (``model.options.batch_norm``).

    >>> default_model_options({"model.name": "mnist1d_cnn", "model.options.channels": 64})
    {'model.options.batch_norm': False}
    """
    defaults = builder_defaults(str(settings["model.name"]))
    return {f"model.options.{key}": value for key, value in defaults.items()
            if f"model.options.{key}" not in settings and value is not NO_DEFAULT}  # fmt: skip


def read_run_record(folder: str | Path) -> RunRecord:
    """The :class:`RunRecord` of a finished run directory."""
    folder = Path(folder)
    summary = read_json(folder / "summary.json")
    stats = summary["stats"]
    settings = run_settings(folder)
    settings.update(default_model_options(settings))
    return RunRecord(
        name=folder.name,
        settings=settings,
        seeds=tuple(summary["seeds"]),
        sparsity=stats["sparsity"]["mean"],
        speedup=stats.get("speedup", {}).get("mean"),
        compression=stats["parameters"]["mean"] / stats["remaining_parameters"]["mean"]
        if stats.get("remaining_parameters", {}).get("mean") and "parameters" in stats else None,
        pipelines={seed: read_pipeline(folder / f"seed-{seed}", settings) for seed in summary["seeds"]},
    )


def read_pipeline(seed_folder: Path, settings: dict[str, object]) -> Pipeline:
    """A seed's pipeline from its LR log, metrics and summary: the find phase is the base
    model, the last training the retraining, the trainings between them the pruning stage.
    GMP's eval phase is its pruning stage (stabilization and pruning epochs) and its
    retraining (the fine-tuning, without weight decay unless ``finetune_weight_decay``).
    Trainings that only measure do not count: second copies for instability, and the H_eval
    trainings of IMP's earlier levels with ``masks_from: find``, which only evaluate masks."""
    lr_log = read_json(seed_folder / "lr_log.json")
    rows = read_json(seed_folder / "metrics.json", list)
    speedup = read_json(seed_folder / "summary.json").get("speedup")
    counts, masks = seed_folder / "layer_sparsity.json", seed_folder / "masks.safetensors"
    remaining = {name: layer["remaining"] for name, layer in read_json(counts).items()}
    digest = hashlib.sha256(masks.read_bytes()).hexdigest() if masks.exists() else None
    phases = [phase for phase in lr_log if not phase.endswith("-copy")]
    if settings.get("prune.masks_from") == "find":
        phases = [phase for phase in phases if not phase.endswith("/eval") or phase == phases[-1]]

    def stage(phase: str, start: int = 0, stop: int | None = None) -> Stage:
        """The phase's epochs [start, stop) with the settings it trained with. A phase entered
        part-way into an epoch (rewinding to step K) has a shorter first epoch: the LRs are cut
        where its epochs ended (each metrics row's ``step``), not in equal shares."""
        ends = [row.get("step") for row in rows if row["phase"] == phase]
        epochs, log = len(ends), lr_log[phase]
        stop = epochs if stop is None else stop
        config = "find." if phase.endswith("find") else "eval."

        def at(epoch: int) -> int:  # the log's index where ``epoch`` epochs of the phase are done
            if epoch == 0:
                return 0
            if epoch == epochs:
                return len(log)
            if None in ends:  # runs made before the rows recorded their step: equal epochs
                return epoch * (len(log) // epochs)
            return ends[epoch - 1] - (ends[-1] - len(log))

        return Stage(stop - start, tuple(log[at(start) : at(stop)]), training_settings(settings, config))

    stages = [stage(phase) for phase in phases]
    if settings.get("prune.method") == "gmp":
        split = settings["prune.stabilization_epochs"] + settings["prune.pruning_epochs"]
        fine_tuning = stage(phases[-1], split)
        if not settings.get("prune.finetune_weight_decay"):
            fine_tuning = Stage(fine_tuning.epochs, fine_tuning.lrs, {**fine_tuning.settings, "eval.optimizer.weight_decay": 0.0})
        stages[-1:] = [stage(phases[-1], 0, split), fine_tuning]
    between = stages[1:-1]
    pruning = Stage(sum(s.epochs for s in between), tuple(lr for s in between for lr in s.lrs),
                    {k: v for s in between for k, v in s.settings.items()})  # fmt: skip
    return Pipeline(stages[0], pruning, stages[-1], speedup=speedup, remaining=remaining, masks=digest)


def training_settings(settings: Mapping[str, object], phase: str) -> dict[str, object]:
    """The settings of the ``find.`` or ``eval.`` training that its record (epochs, LR of
    every step) does not already cover, and the data augmentation; optimizer settings only
    if the optimizer reads them.

    >>> training_settings({"find.batch_size": 100, "find.epochs": 3, "find.optimizer.name": "sgd",
    ...                    "find.optimizer.betas": [0.9, 0.999], "data.augment": True}, "find.")
    {'find.batch_size': 100, 'find.optimizer.name': 'sgd', 'data.augment': True}
    """
    optimizer = settings.get(f"{phase}optimizer.name")
    chosen = {}
    for key, value in settings.items():
        rest = key.removeprefix(phase)
        read = optimizer in OPTIMIZER_ONLY.get(rest.removeprefix("optimizer."), (optimizer,))
        if key.startswith(phase) and not rest.startswith(_RECORDED) and rest not in _NOT_TRAINING and read:
            chosen[key] = value
    return {**chosen, **({"data.augment": settings["data.augment"]} if "data.augment" in settings else {})}


# -- text for compare, report and sweep tables ----------------------------------------

AGAINST_SCRATCH = (
    "Against training from scratch (S2-S4.2: the epochs of the base model's recipe, as most papers train it; "
    "SX-A: the same epochs of pretraining + pruning + retraining; "
    "SX-B: the same multiply-accumulates, counted in epochs of the pruned network; "
    # "3 + 0 + 2 / 5" read as a sum divided by 5.
    "epochs and MACs: the pruning run's / the run from scratch's):"
)


def task_groups(runs: Sequence[RunRecord]) -> list[list[RunRecord]]:
    """The runs in groups of one dataset, network, granularity and compression or speedup (S1),
    in their order; a run trained from scratch joins every group of its task."""
    pruned, scratch = _pruning_and_scratch(runs)
    groups: list[list[RunRecord]] = []
    for run in pruned:
        home = next((g for g in groups if not _task_difference([g[0], run])), None)
        if home is None:
            groups.append([run])
        else:
            home.append(run)
    for run in scratch:
        homes = [g for g in groups if not _task_difference([g[0], run])]
        for home in homes:
            home.append(run)
        if not homes:
            groups.append([run])
    order = {id(run): i for i, run in enumerate(runs)}
    return [sorted(g, key=lambda r: order[id(r)]) for g in groups]


def describe_setups(groups: Mapping[str, Sequence[RunRecord]]) -> str:
    """Markdown: the setup each labelled set of runs meets (split into groups of one task
    where they are not), and the budgets against runs trained from scratch, as a table."""
    entries, budgets, split = [], [], False  # (who, verdict) per group of one task
    pairs: list[str] = []
    unlisted = False  # groups too large to list their pairs
    for label, runs in groups.items():
        task = task_groups(runs)
        split |= len(task) > 1
        for group in task:
            verdict = comparison_setup(group)
            pruned, _ = _pruning_and_scratch(group)
            names = " vs ".join(r.name for r in pruned) if len(task) > 1 else ""  # names hold commas
            if str(verdict):
                entries.append((": ".join(filter(None, [label, names])), str(verdict)))
                for setup, setup_pairs in _stricter_pairs(group, verdict).items():
                    pairs.append(f"{label + ': ' if label else ''}{setup}: {'; '.join(setup_pairs)}")
                unlisted |= verdict.setup != list(SETUPS)[-1] and len(pruned) > MOST_PAIRED
            budgets += [{**({"column": label} if label else {}), **b.row()} for b in verdict.budgets]
    parts = []
    if not split and len(entries) == len(groups) and len({text for _, text in entries}) == 1:
        where = " in every column" if len(groups) > 1 else ""
        parts.append(f"Comparison setup (seed 004){where}: {entries[0][1]}")
    elif split and not entries and not budgets:
        reasons = {label: comparison_setup(runs).reason for label, runs in groups.items() if len(runs) > 1}
        why = "; ".join(f"{label + ': ' if label else ''}{reason}" for label, reason in reasons.items() if reason)
        parts.append("Comparison setup (seed 004): no two runs share a dataset, network, granularity and compression "
                     "or speedup (S1), so none are compared" + (f": {why}" if why else ""))  # fmt: skip
    elif entries:
        parts.append("Comparison setups (seed 004) of the runs at one dataset, network, granularity and compression or speedup:\n\n"
                     + "\n".join(f"- {who}: {text}" for who, text in entries))  # fmt: skip
    if pairs:
        parts.append("Pairs of them that meet a stricter setup:\n\n" + "\n".join(f"- {line}" for line in pairs))
    if unlisted:
        parts.append(f"Pairs of more than {MOST_PAIRED} runs are not judged one by one: compare fewer runs at a time "
                     "to see which of them meet a stricter setup.")  # fmt: skip
    if budgets:
        parts.append(f"{AGAINST_SCRATCH}\n\n" + format_table(budgets))
    return "\n\n".join(parts)


MOST_PAIRED = 8  # runs whose pairs are judged one by one (28 pairs)


def _stricter_pairs(runs: Sequence[RunRecord], together: Verdict) -> dict[str, list[str]]:
    """The pairs of 3 to MOST_PAIRED pruning runs that meet a stricter setup than all of them
    together (one run of other seeds makes every pair with it S1, not the others), by the
    setup they meet: ``{"S3.1": ["a vs b", ...]}``."""
    pruned, _ = _pruning_and_scratch(runs)
    if not 3 <= len(pruned) <= MOST_PAIRED:
        return {}
    rank = {setup: i for i, setup in enumerate([None, *SETUPS])}
    stricter: dict[str, list[str]] = {}
    for a, b in itertools.combinations(pruned, 2):
        setup = comparison_setup([a, b]).setup
        if rank[setup] > rank[together.setup]:
            stricter.setdefault(setup, []).append(f"{a.name} vs {b.name}")
    return dict(sorted(stricter.items(), key=lambda item: -rank[item[0]]))  # the strictest first


def describe_setup(folders: Sequence[str | Path], names: Sequence[str] | None = None) -> str:
    """:func:`describe_setups` of finished run directories, for ``compare`` and ``report``;
    the runs named by ``names`` (default: their folders' names)."""
    records = [read_run_record(folder) for folder in folders]
    return describe_setups({"": [replace(r, name=n) for r, n in zip(records, names)] if names else records})


def read_sweep_records(results: Sequence[tuple[Mapping[str, object], Path]]) -> list[tuple[Mapping[str, object], RunRecord]]:
    """A sweep's runs (the settings the grid gave, the run directory) with their records."""
    return [(assignment, read_run_record(folder)) for assignment, folder in results]


def describe_column_setups(records: Sequence[tuple[Mapping[str, object], RunRecord]], rows: str, columns: Sequence[str]) -> str:
    """:func:`describe_setups` of a sweep's runs, column by column (its table compares the
    rows within each column), each run named by its row. A table whose columns do not hold
    runs of one task (one sparsity in a row, say) is judged group by group of one task, each
    run named by its place in the grid (``records``: :func:`read_sweep_records`)."""
    groups = _by_column(records, rows, columns)
    if all(len(task_groups(runs)) == 1 for runs in groups.values()):
        return describe_setups(groups)
    return describe_setups({"": [replace(r, name=grid_label(a)) for a, r in records]})


def rows_of_other_tasks(records: Sequence[tuple[Mapping[str, object], RunRecord]], rows: str, columns: Sequence[str]) -> str | None:
    """What differs between the rows of the first column of a sweep's table whose rows are
    not runs of one task (S1), or None if every column's are."""
    for column, runs in _by_column(records, rows, columns).items():
        if len(task_groups(runs)) > 1:
            return (f"in column {column}, " if column else "") + (_task_difference(runs) or "they are not of one task")
    return None


def _by_column(records: Sequence[tuple[Mapping[str, object], RunRecord]], rows: str, columns: Sequence[str]) -> dict[str, list[RunRecord]]:
    """A sweep's runs by column of its table, each named by its row."""
    groups: dict[str, list[RunRecord]] = {}
    for assignment, record in records:
        groups.setdefault(grid_label({c: assignment[c] for c in columns}), []).append(replace(record, name=str(grid_value(assignment[rows]))))
    return groups
