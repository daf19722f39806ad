"""Comparison setups (seed 004, Table 2): how fair a comparison of finished runs is.

A pruning pipeline has three steps: the base model (pretraining, our find phase), the
pruning algorithm, and the retraining after the last sparsifying action. Seed 004's setups
add one shared step at a time, each implying the ones above it:

====== =====================================================================
S1     the same dataset and network, at the same sparsity or speedup
S2     + the same base model (the same find phase and seeds)
S3.1   + the same retraining epochs
S3.2   + the same retraining LR schedule (and the other retraining settings)
S4.1   + the same pruning epochs
S4.2   + the same pruning LR schedule
====== =====================================================================

Against training from scratch (``eval.rewind: reinit``), SX-A asks for the same epochs of
pretraining, pruning and retraining in total, and SX-B for the same multiply-accumulates.

The setups are judged on what the runs did, their recorded LR of every step and their
epochs, not on how their recipes say it: an LR policy and an explicit schedule that give
the same LRs are the same schedule, and an adaptive policy (ALLR) that gives two masks two
LRs is two schedules.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prunelab.config import run_settings
from prunelab.report.tables import format_table

SETUPS = {
    "S1": "the same dataset and network at the same sparsity or speedup",
    "S2": "the same base model",
    "S3.1": "the same retraining epochs",
    "S3.2": "the same retraining LR schedule",
    "S4.1": "the same pruning epochs",
    "S4.2": "the same pruning LR schedule",
}

#: Sparsities closer than this, or speedups closer than this ratio, count as the same.
SPARSITY_TOLERANCE = 0.005
SPEEDUP_TOLERANCE = 0.01

# Settings of a training that its recorded epochs and LR per step already cover, or that
# belong to the pruning method under comparison (rewinding) or to measurements.
_RECORDED = ("epochs", "optimizer.lr", "lr_schedule.", "lr_policy", "warmup_fraction")
_NOT_TRAINING = ("rewind", "budget", "instability")


@dataclass(frozen=True)
class Stage:
    """A stretch of training: its epochs and the LR of each optimizer step."""

    epochs: int = 0
    lrs: tuple[float, ...] = ()


@dataclass(frozen=True)
class Pipeline:
    """One seed of a run in seed 004's terms. A run trained from scratch has no base model
    and no pruning stage; its retraining is the training from scratch."""

    base: Stage | None
    pruning: Stage
    retraining: Stage


@dataclass(frozen=True)
class RunRecord:
    """What the comparison of a run needs: its name, settings, results and pipelines."""

    name: str
    settings: dict[str, object]  # flattened recipe, as :func:`prunelab.config.run_settings`
    seeds: tuple[int, ...]
    sparsity: float
    speedup: float | None  # None in runs made before prunelab measured it
    pipelines: dict[int, Pipeline]  # per seed

    @property
    def scratch(self) -> bool:
        return self.settings.get("eval.rewind") == "reinit"

    @property
    def pipeline(self) -> Pipeline:
        return self.pipelines[min(self.pipelines)]

    def training_settings(self, phase: str) -> dict[str, object]:
        """The settings of the ``find.`` or ``eval.`` training that its record (epochs, LR per
        step) does not already cover. GMP fine-tunes without weight decay unless told to."""
        settings = {key: value for key, value in self.settings.items() if _is_training_setting(key, phase)}
        if phase == "eval." and self.settings.get("prune.method") == "gmp" and not self.settings.get("prune.finetune_weight_decay"):
            settings["eval.optimizer.weight_decay"] = 0.0
        return settings


@dataclass(frozen=True)
class Budget:
    """A pruning run against a run training its pruned network from scratch: SX-A asks for
    the same epochs in total, SX-B for the same multiply-accumulates."""

    pruned: str
    scratch: str
    pipeline_epochs: tuple[int, int, int]  # pretraining, pruning, retraining
    scratch_epochs: int
    # The pruning pipeline's cost in epochs of the pruned network; None when it has a pruning
    # stage, whose cost changes as the sparsity rises (which the runs do not record).
    equivalent_epochs: float | None

    @property
    def same_epochs(self) -> bool:
        return sum(self.pipeline_epochs) == self.scratch_epochs

    @property
    def same_macs(self) -> bool | None:
        if self.equivalent_epochs is None:
            return None
        return abs(self.scratch_epochs - self.equivalent_epochs) <= 0.5  # Scratch-B rounds to whole epochs

    def row(self) -> dict[str, object]:
        """A table row: the epochs and the MACs (in epochs of the pruned network) of each side."""
        base, pruning, retraining = self.pipeline_epochs
        macs = "not judged (pruning stage)" if self.equivalent_epochs is None else f"{self.equivalent_epochs:.1f} / {self.scratch_epochs}"
        return {
            "run": self.pruned, "from scratch": self.scratch,
            "epochs": f"{base} + {pruning} + {retraining} / {self.scratch_epochs}", "SX-A": _met(self.same_epochs),
            "MACs": macs, "SX-B": "" if self.same_macs is None else _met(self.same_macs),
        }  # fmt: skip


def _met(flag: bool) -> str:
    return "met" if flag else "not met"


@dataclass(frozen=True)
class Verdict:
    """The strictest setup the pruning runs meet and why the next one fails (setup None and
    a reason: not even S1; neither: fewer than two pruning runs), and the budgets of each
    pair of a pruning run and a run trained from scratch."""

    setup: str | None
    unmet: str | None
    budgets: tuple[Budget, ...] = ()

    def __str__(self) -> str:
        if self.setup is None:
            return "" if self.unmet is None else f"not comparable, not even by S1: {self.unmet}"
        met = list(SETUPS)[: list(SETUPS).index(self.setup) + 1]
        text = f"{self.setup}: " + "; ".join(SETUPS[s] for s in met if not _implied(s, self.setup))
        return text + (f". Not {_next(self.setup)}: {self.unmet}" if self.unmet else "")


def _next(setup: str) -> str:
    names = list(SETUPS)
    return names[names.index(setup) + 1]


def _implied(setup: str, met: str) -> bool:
    """S3.1 (same epochs) goes without saying once S3.2 (same schedule) holds; S4.1 once S4.2 does."""
    return (setup, met) in {("S3.1", "S3.2"), ("S3.1", "S4.1"), ("S3.1", "S4.2"), ("S4.1", "S4.2")}


def comparison_setup(runs: Sequence[RunRecord]) -> Verdict:
    """The strictest of seed 004's setups that every pair of ``runs`` meets.

    Runs trained from scratch (``eval.rewind: reinit``) have no base model: they are left
    out of the S1-S4.2 ladder and judged against every pruning run by SX-A and SX-B instead.
    """
    pruned = [run for run in runs if not run.scratch]
    budgets = tuple(budget for p in pruned for s in runs if s.scratch and (budget := _budget(p, s)))
    if len(pruned) < 2:
        return Verdict(None, None, budgets)
    unmet = _first_difference(pruned)
    if unmet is None:
        return Verdict("S4.2", None, budgets)
    setup, reason = unmet
    names = list(SETUPS)
    return Verdict(names[names.index(setup) - 1] if setup != "S1" else None, reason, budgets)


def _first_difference(runs: Sequence[RunRecord]) -> tuple[str, str] | None:
    """(the first setup the runs fail, why), or None if they meet them all."""
    checks = [
        ("S1", _same_task),
        ("S2", _same_base),
        ("S3.1", lambda rs: _same([r.pipeline.retraining.epochs for r in rs], "the retraining epochs")),
        ("S3.2", _same_retraining),
        ("S4.1", lambda rs: _same([r.pipeline.pruning.epochs for r in rs], "the pruning epochs")),
        ("S4.2", lambda rs: _same_lrs(rs, lambda p: p.pruning, "pruning")),
    ]
    for setup, check in checks:
        reason = check(runs)
        if reason:
            return setup, reason
    return None


def _same_task(runs: Sequence[RunRecord]) -> str | None:
    for prefix, what in (("data.", "datasets"), ("model.", "networks")):
        reason = _same_settings([{k: v for k, v in r.settings.items() if k.startswith(prefix)} for r in runs], f"the {what}")
        if reason:
            return reason
    sparsities, speedups = [r.sparsity for r in runs], [r.speedup for r in runs]
    if max(sparsities) - min(sparsities) <= SPARSITY_TOLERANCE:
        return None
    if None in speedups:
        return f"the sparsities differ ({_values([f'{100 * s:.2f}%' for s in sparsities])})"
    if max(speedups) <= min(speedups) * (1 + SPEEDUP_TOLERANCE):
        return None
    return (f"the sparsities ({_values([f'{100 * s:.2f}%' for s in sparsities])}) and the speedups "
            f"({_values([f'{s:.2f}x' for s in speedups])}) differ")  # fmt: skip


def _same_base(runs: Sequence[RunRecord]) -> str | None:
    return (
        _same([list(r.seeds) for r in runs], "the seeds, and with them the base models")
        or _same_settings([r.training_settings("find.") for r in runs], "the base models' training")
        or _same([r.pipeline.base.epochs for r in runs], "the base models' epochs")
        or _same_lrs(runs, lambda p: p.base, "base models'")
    )


def _same_retraining(runs: Sequence[RunRecord]) -> str | None:
    return _same_settings([r.training_settings("eval.") for r in runs], "the retraining settings") or _same_lrs(
        runs, lambda p: p.retraining, "retraining"
    )


def _is_training_setting(key: str, phase: str) -> bool:
    """A setting of the ``phase`` training that its record does not already cover."""
    if not key.startswith(phase):
        return False
    rest = key.removeprefix(phase)
    return not rest.startswith(_RECORDED) and rest not in _NOT_TRAINING


def _same_settings(settings: Sequence[dict[str, object]], what: str) -> str | None:
    keys = dict.fromkeys(key for one in settings for key in one)
    differing = [key for key in keys if len({repr(one.get(key)) for one in settings}) > 1]
    if not differing:
        return None
    return f"{what} differ: " + ", ".join(f"{key} {_values([one.get(key) for one in settings])}" for key in differing)


def _same(values: list, what: str) -> str | None:
    return None if all(v == values[0] for v in values) else f"{what} differ ({_values(values)})"


def _same_lrs(runs: Sequence[RunRecord], stage, what: str) -> str | None:
    """Whether the runs' LR schedules of one stage agree, seed by seed (adaptive policies
    give every seed its own)."""
    for seed in sorted(set.intersection(*(set(r.pipelines) for r in runs))):
        schedules = [stage(r.pipelines[seed]).lrs for r in runs]
        first = schedules[0]
        for lrs in schedules[1:]:
            if len(lrs) != len(first):
                return f"the {what} LR schedules differ: {_values([len(s) for s in schedules])} steps"
            step = next((i for i, (a, b) in enumerate(zip(first, lrs)) if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)), None)
            if step is not None:
                return f"the {what} LR schedules differ from step {step + 1} on ({_values([f'{s[step]:.4g}' for s in schedules])}; seed {seed})"
    return None


def _values(values: Sequence[object]) -> str:
    return " / ".join(str(v) for v in values)


def _budget(pruned: RunRecord, scratch: RunRecord) -> Budget | None:
    """SX-A and SX-B of a pruning run and a run training its pruned network from scratch
    (None if the two are not of one dataset, network and sparsity or speedup)."""
    if _same_task([pruned, scratch]):
        return None
    p = pruned.pipeline
    equivalent = None
    if not p.pruning.epochs and pruned.speedup and scratch.speedup:
        # In epochs of the pruned network: pretraining costs the speedup per epoch, retraining one.
        equivalent = p.base.epochs * scratch.speedup + p.retraining.epochs * scratch.speedup / pruned.speedup
    return Budget(pruned.name, scratch.name, (p.base.epochs, p.pruning.epochs, p.retraining.epochs),
                  scratch.pipeline.retraining.epochs, equivalent)  # fmt: skip


# -- reading finished run directories -------------------------------------------------


def read_run_record(folder: str | Path) -> RunRecord:
    """The :class:`RunRecord` of a finished run directory."""
    folder = Path(folder)
    summary = json.loads((folder / "summary.json").read_text())
    settings = run_settings(folder)
    pipelines = {seed: read_pipeline(folder / f"seed-{seed}", settings) for seed in summary["seeds"]}
    return RunRecord(
        name=folder.name,
        settings=settings,
        seeds=tuple(summary["seeds"]),
        sparsity=summary["stats"]["sparsity"]["mean"],
        speedup=summary["stats"].get("speedup", {}).get("mean"),
        pipelines=pipelines,
    )


def read_pipeline(seed_folder: Path, settings: dict[str, object]) -> Pipeline:
    """A seed's pipeline from its LR log and metrics: the find phase is the base model, the
    last training the retraining, the trainings between them the pruning stage; GMP's eval
    phase is its pruning stage (stabilization and pruning epochs) and its retraining (the
    fine-tuning). Second copies of a retraining (instability) measure, so they do not count."""
    lr_log = json.loads((seed_folder / "lr_log.json").read_text())
    rows = json.loads((seed_folder / "metrics.json").read_text())
    phases = [phase for phase in lr_log if not phase.endswith("-copy")]
    epochs = {phase: sum(row["phase"] == phase for row in rows) for phase in phases}
    stages = [Stage(epochs[phase], tuple(lr_log[phase])) for phase in phases]
    if settings.get("prune.method") == "gmp":
        eval_stage = stages.pop()
        split = settings["prune.stabilization_epochs"] + settings["prune.pruning_epochs"]
        steps = len(eval_stage.lrs) // eval_stage.epochs * split if eval_stage.epochs else 0
        stages += [Stage(split, eval_stage.lrs[:steps]), Stage(eval_stage.epochs - split, eval_stage.lrs[steps:])]
    retraining = stages[-1]
    if settings.get("eval.rewind") == "reinit":
        return Pipeline(base=None, pruning=Stage(), retraining=retraining)
    between = stages[1:-1]
    pruning = Stage(sum(s.epochs for s in between), tuple(lr for s in between for lr in s.lrs))
    return Pipeline(base=stages[0], pruning=pruning, retraining=retraining)


AGAINST_SCRATCH = (
    "Against training from scratch (SX-A: the same epochs of pretraining + pruning + retraining; "
    "SX-B: the same multiply-accumulates, counted in epochs of the pruned network):"
)


def describe_setup(folders: Sequence[str | Path]) -> str:
    """Markdown for ``compare`` and ``report``: the setup the runs meet, and the budgets of
    each pair of a pruning run and a run trained from scratch, as a table."""
    verdict = comparison_setup([read_run_record(folder) for folder in folders])
    parts = [f"Comparison setup (seed 004): {verdict}"] if str(verdict) else []
    if verdict.budgets:
        parts.append(f"{AGAINST_SCRATCH}\n\n" + format_table([budget.row() for budget in verdict.budgets]))
    return "\n\n".join(parts)


def describe_column_setups(results: Sequence[tuple[Mapping[str, object], Path]], columns: Sequence[str]) -> str:
    """Markdown under a sweep's table, whose rows are compared within each column: the
    setup each column's runs meet, and the budgets against runs trained from scratch."""
    groups: dict[str, list[Path]] = {}
    for assignment, folder in results:
        groups.setdefault(", ".join(f"{c}={assignment[c]}" for c in columns), []).append(folder)
    verdicts = {label: comparison_setup([read_run_record(f) for f in folders]) for label, folders in groups.items() if len(folders) > 1}
    texts = {label: str(verdict) for label, verdict in verdicts.items() if str(verdict)}
    parts = []
    if len(set(texts.values())) == 1 and len(texts) == len(verdicts):
        where = "in every column" if columns else "of the rows"
        parts.append(f"Comparison setup (seed 004), {where}: {next(iter(texts.values()))}")
    elif texts:
        parts.append("Comparison setup (seed 004) of the rows in each column:\n\n" + "\n".join(f"- {label}: {text}" for label, text in texts.items()))
    rows = [{**({"column": label} if columns else {}), **budget.row()} for label, verdict in verdicts.items() for budget in verdict.budgets]
    if rows:
        parts.append(f"{AGAINST_SCRATCH}\n\n" + format_table(rows))
    return "\n\n".join(parts)
