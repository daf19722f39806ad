"""The recipe: typed hyperparameters, the single source of truth of a run.

A recipe names the data, the model, the training that finds the mask (``find``, H_find),
the pruning method (``prune``), and the training that evaluates the mask (``eval``, H_eval).
It validates input, names the run (:func:`prunelab.config.run_name`) and is written next to
every result. Unknown keys are errors.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from prunelab.criteria import CHANNEL_CRITERIA, CRITERIA, default_scope
from prunelab.data import AUGMENTED, DATASETS, dataset_loader
from prunelab.models import MODELS, check_options, model_options
from prunelab.schedules import POLICIES, RESTARTING, halving_milestones, imp_levels
from prunelab.wording import counted, plural


def _not_a_boolean(value: object) -> object:
    # pydantic would read true as 1 and false as 0 for a number: a typo, not a value.
    if isinstance(value, bool):
        raise ValueError(f"expected a number, not the boolean {str(value).lower()}")
    return value


Int = Annotated[int, BeforeValidator(_not_a_boolean)]
Float = Annotated[float, BeforeValidator(_not_a_boolean), Field(allow_inf_nan=False)]
Fraction = Annotated[Float, Field(ge=0, lt=1)]
#: The largest float32: an LR or weight decay above it cannot scale float32 weights' updates.
FLOAT32_MAX = 3.4028234663852886e38


def _within_float32(value: float) -> float:
    if value > FLOAT32_MAX:
        raise ValueError(f"must be at most {FLOAT32_MAX:.3g}, the largest float32 (the weights' updates are float32)")
    return value


Scale = Annotated[Float, AfterValidator(_within_float32)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: The validation context of a saved run's recipe (:func:`prunelab.config.load_run_recipe`):
#: reading its results needs neither its model nor its dataset, which may be the user's own,
#: registered by a module the reading command need not import.
RECORDED = {"recorded": True}


def _unregistered_as_recorded(name: str, registry: dict, info: ValidationInfo) -> bool:
    """Whether ``name``, missing from ``registry``, is taken as a saved run's recipe records it."""
    return name not in registry and bool(info.context and info.context.get("recorded"))


class DataConfig(Strict):
    """Which dataset; ``download`` only when asked, everything else is offline."""

    name: str = "mnist1d"
    data_dir: str | None = None
    download: bool = False
    augment: bool = True

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str, info: ValidationInfo) -> str:
        if not _unregistered_as_recorded(name, DATASETS, info):
            dataset_loader(name)  # raises for an unknown dataset
        return name


class ModelConfig(Strict):
    """A registered model and its constructor options (e.g. ``hidden_sizes: [300, 100]``).

    ``weights`` starts the run from trained weights instead of a random initialisation: a
    safetensors file or a PyTorch state dict (``.pt``, ``.pth``: a torchvision model's, say),
    for the model the recipe builds. The find phase trains on from them (``find.epochs: 0``
    prunes them as they are); the run is named by the file's contents, not its path (a relative
    path, or one starting with ``~``, is made absolute when the recipe is read). Scratch
    and reinitialised baselines start from random weights all the same."""

    name: str = "mnist1d_cnn"
    options: dict[str, object] = Field(default_factory=dict)
    weights: str | None = None

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str, info: ValidationInfo) -> str:
        if not _unregistered_as_recorded(name, MODELS, info):
            model_options(name)  # raises for an unknown model
        return name

    @field_validator("weights")
    @classmethod
    def _absolute(cls, weights: str | None) -> str | None:
        # The same file whatever the working directory: a resumed run, a seed added later.
        return None if weights is None else str(Path(weights).expanduser().resolve())

    @field_validator("options")
    @classmethod
    def _known_options(cls, options: dict[str, object], info: ValidationInfo) -> dict[str, object]:
        given = sorted(set(options) & {"num_classes", "input_shape"})
        if given:
            raise ValueError(f"{' and '.join(given)} come from the dataset (data.name), not from the model's options")
        # Unless the name itself was invalid, and said so, or is a saved run's unregistered model, whose options are unknown.
        if "name" in info.data and not _unregistered_as_recorded(info.data["name"], MODELS, info):
            check_options(info.data["name"], options)
        return options


class OptimizerConfig(Strict):
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: Scale = Field(0.1, gt=0)
    momentum: Float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: Scale = Field(0.0, ge=0)
    betas: tuple[Fraction, Fraction] = (0.9, 0.999)

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptimizerConfig:
        if self.nesterov and (self.name != "sgd" or self.momentum == 0):
            raise ValueError("nesterov needs the sgd optimizer with momentum > 0")
        return self


#: The optimizer options that only some optimizers read.
OPTIMIZER_ONLY = {"momentum": ("sgd",), "nesterov": ("sgd",), "betas": ("adam", "adamw")}


class LRScheduleConfig(Strict):
    """Learning-rate schedule over a phase, in epochs.

    ``constant``; ``step`` (x ``gamma`` every ``step_size`` epochs); ``multistep``
    (x ``gamma`` at each of ``milestones``); ``cosine`` and ``linear`` (to ``final_lr`` at
    the end of the phase); ``halving`` (x ``gamma`` from the LR down to ``final_lr``, each LR
    but the last for half the epochs left, at most ``max_stage_epochs``: seed 004's Rules 2
    and 3, which derive its fine-tuning and scratch schedules from their lengths). ``warmup_epochs`` ramps the LR of its first epochs linearly up
    from 0 (multiplying the schedule, whose decay keeps its timing, so that a decaying one
    peaks a little below ``optimizer.lr``), over the nearest whole number of optimizer steps;
    one that rounds to fewer than 2 steps, which would leave the LR as it is, is an error.
    """

    name: Literal["constant", "step", "multistep", "cosine", "linear", "halving"] = "constant"
    step_size: Int = Field(1, ge=1)
    milestones: tuple[Annotated[Int, Field(ge=1)], ...] = ()
    gamma: Float = Field(0.1, gt=0)
    final_lr: Float = Field(0.0, ge=0)
    max_stage_epochs: Int = Field(30, ge=1)
    warmup_epochs: Float = Field(0.0, ge=0)

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, milestones: tuple[int, ...]) -> tuple[int, ...]:
        if list(milestones) != sorted(set(milestones)):
            raise ValueError(f"milestones must be strictly increasing, got {list(milestones)}")
        return milestones

    def halving_stages(self, lr: float) -> int:
        """How many LRs a ``halving`` schedule steps through from ``lr``: lr, lr * gamma, ..., final_lr.

        >>> LRScheduleConfig(name="halving", final_lr=1e-5).halving_stages(0.1)
        5
        """
        return round(math.log(self.final_lr / lr) / math.log(self.gamma)) + 1


#: The options of ``lr_schedule`` that each schedule reads, besides its name and ``warmup_epochs``.
SCHEDULE_OPTIONS = {
    "constant": (),
    "step": ("step_size", "gamma"),
    "multistep": ("milestones", "gamma"),
    "cosine": ("final_lr",),
    "linear": ("final_lr",),
    "halving": ("final_lr", "gamma", "max_stage_epochs"),
}


class TrainConfig(Strict):
    """One training phase: epochs, batch size, optimizer and LR schedule.

    ``label_smoothing`` softens the training loss's targets (seed 002 trains its channel
    pruning with 0.1); test loss and accuracy are always against the true labels."""

    epochs: Int = Field(10, ge=0)
    batch_size: Int = Field(128, ge=1)
    optimizer: OptimizerConfig = OptimizerConfig()
    lr_schedule: LRScheduleConfig = LRScheduleConfig()
    label_smoothing: Fraction = 0.0
    #: Whether validation checks ``lr_schedule`` against ``optimizer.lr``; a recipe checks its
    #: find and eval phases' itself, knowing the schedule BIMP trains and whether an LR policy
    #: replaces the eval one (which reads neither).
    checks_lr_schedule: ClassVar[bool] = True

    @model_validator(mode="after")
    def _decays(self) -> TrainConfig:
        if self.checks_lr_schedule:
            self.check_lr_schedule()
        return self

    def check_lr_schedule(self) -> None:
        """Raise ``ValueError`` unless ``lr_schedule`` decays from ``optimizer.lr``: a cosine or
        linear one to a ``final_lr`` at most the LR, a halving one to the LR times a power of its
        ``gamma``, below 1."""
        schedule = self.lr_schedule
        if schedule.name in ("cosine", "linear") and schedule.final_lr > self.optimizer.lr:
            raise ValueError(
                f"lr_schedule.final_lr={schedule.final_lr} is above optimizer.lr={self.optimizer.lr}: "
                f"the {schedule.name} schedule would raise the LR, not decay it"
            )
        if schedule.name == "halving":
            self._check_halving()

    def _check_halving(self) -> None:
        schedule, lr = self.lr_schedule, self.optimizer.lr
        example = f"e.g. final_lr {lr * schedule.gamma ** 4:g}, {lr:g} x {schedule.gamma:g}^4"
        if schedule.gamma >= 1 or not 0 < schedule.final_lr < lr:
            raise ValueError(
                f"a halving lr_schedule steps the LR down from optimizer.lr={lr:g} by lr_schedule.gamma={schedule.gamma:g} "
                f"to lr_schedule.final_lr={schedule.final_lr:g}: it needs gamma below 1 and final_lr above 0 and below the LR ({example})"
            )
        stages = schedule.halving_stages(lr)
        if not math.isclose(lr * schedule.gamma ** (stages - 1), schedule.final_lr, rel_tol=1e-6):
            raise ValueError(
                f"lr_schedule.final_lr={schedule.final_lr:g} is not optimizer.lr={lr:g} times a power of lr_schedule.gamma="
                f"{schedule.gamma:g}, which a halving schedule steps down to ({example})"
            )
        # Whether its stages fit the phase is the recipe's check (Recipe._halving_stages_fit): a scratch budget lengthens the phase.


class FindConfig(TrainConfig):
    """The training that finds the mask (H_find).

    ``lpr_every`` keeps the weights every that many epochs, and the first pruning step then
    records the layerwise pruning ratios (LPR) that pruning each of them, and the initial
    weights, to its target would have given, and their distance from the LPR it gave: the
    mean over layers of the absolute difference (seed 002's Figures A18 and A19). Only where
    the weights choose the LPR: global weight pruning by magnitude after the find phase, so
    not GMP. 0 keeps none. Each kept copy takes the model's
    size on disk, in the shared find phase; a run deletes its own copies once recorded.

    ``stop_epoch`` ends the training after that many epochs of its LR schedule, which stays
    ``epochs`` long, so the mask is found early in the training (seed 002's Figure 9: pruning
    at epoch 50 or 70 of 110). None trains all ``epochs``."""

    lpr_every: Int = Field(0, ge=0)
    stop_epoch: Int | None = Field(None, ge=0)
    checks_lr_schedule: ClassVar[bool] = False  # Recipe._schedules_decay, knowing the schedule BIMP trains

    @property
    def trained_epochs(self) -> int:
        """The epochs this training runs: ``stop_epoch`` if given, else ``epochs``."""
        return self.epochs if self.stop_epoch is None else self.stop_epoch


REWIND = re.compile(r"none|init|reinit|epoch:\d+|step:\d+")


def rewind_target(rewind: str) -> tuple[str, int] | None:
    """(``"epoch"`` or ``"step"``, K) if ``rewind`` goes back into the find phase.

    >>> rewind_target("epoch:2"), rewind_target("init")
    (('epoch', 2), None)
    """
    kind, _, k = rewind.partition(":")
    return (kind, int(k)) if kind in ("epoch", "step") else None


class EvalConfig(TrainConfig):
    """Training that evaluates a mask (H_eval): where to start from and which LR to use.

    ``rewind``: ``none`` continues from the pruned weights (fine-tuning / LR rewinding),
    ``init`` rewinds to the initialisation (lottery ticket), ``epoch:K`` / ``step:K`` to the
    weights of the find phase after K epochs / optimizer steps (late rewinding), ``reinit``
    to new random weights, the mask kept (seed 002's random baselines are evaluated so).
    ``lr_policy`` replaces ``lr_schedule`` by a retraining policy of seed 003 derived from
    the find phase's LR log; ``warmup_fraction`` ramps its first steps linearly up from 0 (slr,
    clr, llr, allr; multiplying the policy's LR, and at least 2 steps, as ``warmup_epochs`` does).
    ``instability`` also trains a second copy from the same starting point with another
    data order and records the test-error barrier on the line between the two (seed 002's
    linear mode connectivity: about zero where training is stable); it doubles retraining,
    and needs one (``epochs`` above 0).

    ``budget`` sizes a one-shot run's training from scratch of the pruned architecture (``rewind:
    reinit``) as seed 004's scratch baselines do: ``epochs`` trains ``epochs``;
    ``scratch_e`` as many epochs as the pruning pipeline, ``find.epochs + epochs`` (of the
    find phase, those it trains: ``find.stop_epoch`` if given); ``scratch_b`` as many
    multiply-accumulates, ``round(find.epochs * speedup) + epochs`` (likewise),
    where the speedup is the pruned model's theoretical one.
    """

    checks_lr_schedule: ClassVar[bool] = False  # Recipe._schedules_decay, where no LR policy replaces it
    rewind: str = "none"
    lr_policy: Literal[POLICIES] | None = None  # type: ignore[valid-type]
    warmup_fraction: Fraction = 0.0
    instability: bool = False
    budget: Literal["epochs", "scratch_e", "scratch_b"] = "epochs"

    @field_validator("rewind")
    @classmethod
    def _rewind_form(cls, rewind: str) -> str:
        if not REWIND.fullmatch(rewind):
            raise ValueError(f"rewind must be none, init, reinit, epoch:K or step:K, got {rewind!r}")
        return rewind


class PruneBase(Strict):
    """What to prune and how far. ``scope``: ``global`` ranks all prunable weights together,
    ``layerwise`` prunes every layer to the same ratio, ``ratios`` to the given per-layer
    ratios, and ``lpr_of`` to the layerwise pruning ratios (LPR) of the masks of the
    finished run directory ``lpr_of``, pruning step by pruning step and seed by seed (seed
    002's "match LPR" runs: the LPR is fixed, the masks within each layer are this run's).
    ``masks_of`` takes the very masks of the finished run directory ``masks_of``, pruning
    step by pruning step and seed by seed (with ``eval.rewind: reinit``, seed 002's
    "preserve mask" control of a ticket); no criterion chooses them, so it stays ``magnitude``.

    ``criterion``: ``magnitude`` and ``random`` prune weights; ``filter_l1``, ``bn_scale``
    and ``random_channels`` prune whole channels (one-shot only: seed 002's Algorithm A2,
    seed 004's L1-norm filter pruning), and the model is then rebuilt small and dense
    without them. For channels, ``sparsity`` and ``ratios`` count channels, ``ratios`` and
    ``include``/``exclude`` name channel groups by their layers (``prunelab.structured``);
    ``sparsity_of: weights`` makes a global ``sparsity`` count the Conv/Linear weights the
    removed channels take out instead, as seed 002's Algorithm A2 ("prune p% of
    parameters"), so that runs whose scores rank channels differently reach one compression.
    The scope is ``global`` unless given, except for ``filter_l1`` and GMP: ``layerwise``."""

    sparsity: Fraction = 0.9
    scope: Literal["global", "layerwise", "ratios", "lpr_of", "masks_of"] = "global"
    ratios: dict[str, Fraction] | None = None
    lpr_of: str | None = None
    masks_of: str | None = None
    criterion: Literal[(*CRITERIA, *CHANNEL_CRITERIA)] = "magnitude"  # type: ignore[valid-type]
    sparsity_of: Literal["channels", "weights"] | None = None  # None: what the criterion prunes
    include: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)

    @field_validator("lpr_of", "masks_of")
    @classmethod
    def _absolute(cls, reference: str | None) -> str | None:
        # The same reference whatever the working directory, and one run name for it.
        return None if reference is None else str(Path(reference).expanduser().resolve())

    @model_validator(mode="before")
    @classmethod
    def _criterion_s_own_scope(cls, data: object) -> object:
        # As ChannelPruner by default (filter_l1 layer by layer); set only where it is not the
        # section's global, so that a scope a recipe leaves out is not taken as given.
        if isinstance(data, dict) and "scope" not in data and (scope := default_scope(data.get("criterion"))) != "global":
            return {**data, "scope": scope}
        return data

    @model_validator(mode="before")
    @classmethod
    def _sparsity_of_as_unset(cls, data: object) -> object:
        # What the criterion counts anyway, given or not, is one experiment with one run name.
        if isinstance(data, dict) and "sparsity_of" in data:
            counted = "channels" if data.get("criterion") in CHANNEL_CRITERIA else "weights"
            if data["sparsity_of"] == counted:
                return {key: value for key, value in data.items() if key != "sparsity_of"}
        return data

    @model_validator(mode="after")
    def _ratios_with_scope(self) -> PruneBase:
        if self.scope == "ratios" and self.ratios is None:
            raise ValueError("scope is ratios but ratios is not given: give each layer to prune its ratio, e.g. ratios: {fc1: 0.9}")
        if self.scope != "ratios" and self.ratios is not None:
            raise ValueError(f"ratios is given but scope is {self.scope}: set scope: ratios to prune each layer to its ratio, or leave ratios out")
        if self.ratios == {}:
            raise ValueError("ratios is empty: it would prune nothing; give each layer to prune its ratio, e.g. {fc1: 0.9}")
        if self.scope == "lpr_of" and self.lpr_of is None:
            raise ValueError("scope is lpr_of but lpr_of is not given: give the run directory whose LPR to copy")
        if self.scope != "lpr_of" and self.lpr_of is not None:
            raise ValueError(f"lpr_of is given but scope is {self.scope}: set scope: lpr_of to copy that run's LPR, or leave lpr_of out")
        if self.scope == "masks_of" and self.masks_of is None:
            raise ValueError("scope is masks_of but masks_of is not given: give the run directory whose masks to copy")
        if self.scope != "masks_of" and self.masks_of is not None:
            raise ValueError(f"masks_of is given but scope is {self.scope}: set scope: masks_of to copy that run's masks, or leave masks_of out")
        if self.prunes_channels:
            if getattr(self, "method", "oneshot") != "oneshot":
                raise ValueError(f"criterion {self.criterion!r} prunes whole channels, which only method 'oneshot' does")
            if self.scope == "lpr_of":
                raise ValueError(f"scope 'lpr_of' copies the LPR of weight masks; criterion {self.criterion!r} prunes channels")
            if self.scope == "masks_of":
                raise ValueError(f"scope 'masks_of' copies weight masks; criterion {self.criterion!r} prunes channels")
            if self.sparsity_of == "weights" and self.scope != "global":
                raise ValueError(f"sparsity_of: weights ranks channels across layers until the weights they take out reach "
                                 f"the sparsity: it needs scope 'global', not {self.scope!r}")  # fmt: skip
        elif self.sparsity_of == "channels":
            raise ValueError(f"sparsity_of: channels is for the channel criteria ({', '.join(CHANNEL_CRITERIA)}); "
                             f"criterion {self.criterion!r} prunes weights")  # fmt: skip
        elif self.scope == "masks_of" and self.criterion != "magnitude":
            raise ValueError(f"criterion {self.criterion!r} with scope masks_of: the masks are copied from masks_of, no criterion "
                             "chooses them; leave criterion out (for random masks at that run's LPR, use scope: lpr_of with "
                             "criterion: random)")  # fmt: skip
        return self

    @property
    def reference(self) -> str | None:
        """The run directory whose LPR (``lpr_of``) or masks (``masks_of``) this run copies; None if neither."""
        return self.lpr_of or self.masks_of

    @property
    def prunes_channels(self) -> bool:
        """Whether the criterion prunes whole channels (and the model is rebuilt without them)."""
        return self.criterion in CHANNEL_CRITERIA


class OneShotConfig(PruneBase):
    """Train (find), prune once to the target, retrain (eval)."""

    method: Literal["oneshot"] = "oneshot"


class GMPConfig(PruneBase):
    """Gradual magnitude pruning during the eval phase (seeds 000, 001): stabilization
    epochs, then ``init_sparsity`` to ``sparsity`` over ``pruning_epochs`` with the cubic (or
    linear) schedule, ``updates_per_epoch`` times an epoch, then fine-tuning to the end of
    the eval phase, without weight decay unless ``finetune_weight_decay``. The scope is ``layerwise`` unless
    given: seed 001 takes "the sparsity for all layers" along the schedule, layer by layer."""

    method: Literal["gmp"] = "gmp"
    scope: Literal["global", "layerwise", "ratios", "lpr_of", "masks_of"] = "layerwise"
    init_sparsity: Fraction = 0.05
    stabilization_epochs: Int = Field(1, ge=0)
    pruning_epochs: Int = Field(5, ge=1)
    schedule: Literal["cubic", "linear"] = "cubic"
    updates_per_epoch: Int = Field(6, ge=1)  # 30 updates over the default 5 epochs: seed 000's minimum
    finetune_weight_decay: bool = False

    @model_validator(mode="after")
    def _initial_below_final(self) -> GMPConfig:
        # With scope ratios, sparsity is not read: each layer rises to its ratio, from init_sparsity or the ratio if lower.
        if self.scope != "ratios" and self.init_sparsity > self.sparsity:
            raise ValueError(
                f"init_sparsity={self.init_sparsity} is above sparsity={self.sparsity}: the schedule rises from the first to "
                f"the second, so init_sparsity must be at most {self.sparsity} (seed 001 starts at 0.05)"
            )
        return self


#: The most IMP levels a run may have: each is a retraining, and seed 002's longest run has 30.
MAX_LEVELS = 1000


class IMPConfig(PruneBase):
    """Iterative magnitude pruning: prune ``rate`` of the remaining weights per level, then
    retrain with the eval phase, until ``sparsity`` (the last level stops exactly there) or,
    if ``levels`` is given, for that many levels (``sparsity`` is then not used). Seed 002's
    "20% per iteration ... 30 pruning iterations" is ``levels: 30`` (99.88%); ``sparsity:
    0.999`` instead adds a 31st, smaller level that stops at exactly 99.9%.

    ``masks_from``: which training gives the weights each level prunes. ``eval``: the
    previous level's retraining (IMP as in seed 003). ``find``: seed 002's Algorithm A1, where
    every level rewinds (as ``eval.rewind`` says) and trains the masked model with H_find,
    and H_eval only evaluates each level's mask."""

    method: Literal["imp"] = "imp"
    rate: Float = Field(0.2, gt=0, lt=1)
    levels: Int | None = Field(None, ge=1, le=MAX_LEVELS)
    masks_from: Literal["eval", "find"] = "eval"

    @property
    def level_count(self) -> int:
        """How many levels the run prunes: ``levels``, or as many as reach ``sparsity``."""
        return self.levels or imp_levels(self.sparsity, self.rate)

    @model_validator(mode="after")
    def _masks_found_or_copied(self) -> IMPConfig:
        if self.scope == "masks_of" and self.masks_from == "find":
            raise ValueError("masks_from: find trains H_find at every level to find the masks it prunes, but scope masks_of "
                             "copies them from masks_of; leave masks_from out")  # fmt: skip
        return self

    @model_validator(mode="after")
    def _levels_within_reason(self) -> IMPConfig:
        if self.levels is None and self.level_count > MAX_LEVELS:
            raise ValueError(
                f"rate={self.rate} takes {self.level_count:,} levels to reach sparsity={self.sparsity}; "
                f"at most {MAX_LEVELS} levels (each one a whole retraining) are run"
            )
        return self


class BIMPConfig(IMPConfig):
    """Budgeted IMP (seed 003): ``initial_epochs`` of linear-schedule training out of a total
    budget of ``budget_epochs``, then IMP with ALLR over the rest, split over the levels."""

    method: Literal["bimp"] = "bimp"
    budget_epochs: Int = Field(30, ge=2)
    initial_epochs: Int = Field(15, ge=1)

    @model_validator(mode="after")
    def _budget(self) -> BIMPConfig:
        if self.initial_epochs >= self.budget_epochs:
            raise ValueError(
                f"initial_epochs={self.initial_epochs} must be smaller than budget_epochs={self.budget_epochs}: "
                "bimp trains initial_epochs of its budget before it prunes, and prunes and retrains over the rest"
            )
        if self.masks_from != "eval":
            raise ValueError(f"masks_from must be eval for bimp, which prunes the weights its retraining leaves, got {self.masks_from}")
        return self


PruneConfig = Annotated[OneShotConfig | GMPConfig | IMPConfig | BIMPConfig, Field(discriminator="method")]


#: BIMP's retraining LR policy (seed 003), whatever ``eval.lr_policy`` says (which may only name it).
BIMP_POLICY = "allr"


class Recipe(Strict):
    """A whole experiment. ``seeds`` run one after another into the same run directory."""

    description: str = ""
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    find: FindConfig = FindConfig()
    prune: PruneConfig = OneShotConfig()
    eval: EvalConfig = EvalConfig()
    seeds: list[Int] = Field(default_factory=lambda: [0], min_length=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: CPU threads per process (``torch.set_num_threads``); None: torch's own count (the cores;
    #: 1 under torchrun, which sets OMP_NUM_THREADS=1).
    #: 1 when other work shares the cores: torch's threads wait for each other by spinning.
    threads: Int | None = Field(None, ge=1)

    @property
    def find_training(self) -> FindConfig:
        """The find phase a method trains: ``find``, except BIMP's initial training, which
        lasts ``prune.initial_epochs`` with a linear LR schedule (seed 003), from
        ``find.optimizer.lr`` to ``find.lr_schedule.final_lr`` (0 unless given)."""
        if self.prune.method != "bimp":
            return self.find
        linear = self.find.lr_schedule.model_copy(update={"name": "linear"})
        return self.find.model_copy(update={"epochs": self.prune.initial_epochs, "lr_schedule": linear, "stop_epoch": None})

    @property
    def eval_training(self) -> EvalConfig:
        """The eval phase a method trains: ``eval``, except BIMP's retraining, with ALLR (seed 003)."""
        if self.prune.method != "bimp":
            return self.eval
        return self.eval.model_copy(update={"lr_policy": BIMP_POLICY})

    @model_validator(mode="before")
    @classmethod
    def _oneshot_by_default(cls, data: object) -> object:
        # As with no prune section at all: a section without a method prunes once.
        prune = data.get("prune") if isinstance(data, dict) else None
        if isinstance(prune, dict) and "method" not in prune:
            return {**data, "prune": {**prune, "method": "oneshot"}}
        return data

    @model_validator(mode="after")
    def _method_fits(self) -> Recipe:
        """The method's own constraints on the other sections, so that impossible settings
        fail before any training."""
        prune, evaluation = self.prune, self.eval
        if prune.method in ("imp", "bimp") and prune.scope == "ratios":
            raise ValueError(f"prune.scope: {prune.method} prunes with scope global or layerwise, not ratios")
        if prune.method == "gmp" and prune.reference is not None:
            raise ValueError(f"prune.scope: gmp prunes gradually with scope global, layerwise or ratios, not {prune.scope}")
        if prune.method == "gmp":
            if misplaced := _misplaced_retraining(evaluation, allowed_policy=None):
                raise ValueError(
                    f"{misplaced}: gmp prunes while the eval phase trains, along eval.lr_schedule, "
                    "with no retraining for an LR policy or rewinding to apply to"
                )
            stages = prune.stabilization_epochs + prune.pruning_epochs
            if stages > evaluation.epochs:
                raise ValueError(
                    f"eval.epochs={evaluation.epochs} is shorter than prune.stabilization_epochs="
                    f"{prune.stabilization_epochs} + prune.pruning_epochs={prune.pruning_epochs}: the eval phase holds GMP's "
                    f"stages, so eval.epochs must be at least {stages}, and fine-tuning takes the epochs past it"
                )
        if evaluation.budget != "epochs" and (evaluation.rewind != "reinit" or prune.method != "oneshot"):
            # Seed 004 sizes scratch training against a pipeline that prunes once.
            raise ValueError(
                f"eval.budget: {evaluation.budget} sizes a training from scratch of the pruned model against a "
                f"one-shot pipeline; it needs eval.rewind: reinit and method oneshot (got rewind "
                f"{evaluation.rewind}, method {prune.method})"
            )
        if prune.method == "imp" and prune.masks_from == "eval" and evaluation.rewind == "reinit" and prune.scope != "masks_of":
            raise ValueError(
                "eval.rewind: reinit evaluates masks from new random weights, but with prune.masks_from eval "
                "IMP also finds its next mask on them; use prune.masks_from: find (or prune.scope: masks_of to "
                "evaluate the masks of another run)"
            )
        if prune.method in ("imp", "bimp") and prune.levels is None and prune.sparsity == 0:
            raise ValueError(f"prune.sparsity: {prune.method} without prune.levels needs a target sparsity above 0")
        if prune.method == "bimp":
            if misplaced := _misplaced_retraining(evaluation, allowed_policy=BIMP_POLICY):
                raise ValueError(f"{misplaced}: bimp retrains every level with ALLR from the weights the last level left (seed 003)")
            find = self.find
            if find.lr_schedule.final_lr > find.optimizer.lr:  # before _schedules_decay, which would name a linear schedule the recipe may not write
                raise ValueError(
                    f"find.lr_schedule.final_lr={find.lr_schedule.final_lr} is above find.optimizer.lr={find.optimizer.lr}: "
                    "bimp's initial training decays linearly from the one to the other, and would raise the LR instead"
                )
            levels = prune.level_count
            if prune.budget_epochs - prune.initial_epochs < levels:
                raise ValueError(
                    f"prune.budget_epochs - prune.initial_epochs = {counted(prune.budget_epochs - prune.initial_epochs, 'epoch')} "
                    f"cannot cover {counted(levels, 'IMP level')} (one epoch each at least)"
                )
        return self

    @property
    def find_length_setting(self) -> str:
        """The setting that says how many epochs the find phase trains (for messages)."""
        if self.prune.method == "bimp":
            return "prune.initial_epochs"
        return "find.epochs" if self.find.stop_epoch is None else "find.stop_epoch"

    @model_validator(mode="after")
    def _stop_within_the_schedule(self) -> Recipe:
        stop, epochs = self.find.stop_epoch, self.find.epochs
        if self.prune.method != "bimp" and stop is not None and stop > epochs:  # bimp does not read it: warned about
            raise ValueError(f"find.stop_epoch={stop} lies past the end of the find phase's LR schedule (find.epochs={epochs})")
        return self

    @model_validator(mode="after")
    def _retraining_fits(self) -> Recipe:
        """The retraining's LR policy, budget and rewind point against the find phase (the
        epochs it trains)."""
        evaluation = self.eval_training  # BIMP retrains with ALLR even where eval.lr_policy is unset
        find_epochs, length = self.find_training.trained_epochs, self.find_length_setting
        if evaluation.warmup_fraction and evaluation.lr_policy not in RESTARTING:
            raise ValueError(
                f"eval.warmup_fraction warms up the restarting LR policies {', '.join(RESTARTING)}; "
                f"eval.lr_policy is {evaluation.lr_policy}"
            )
        retrained = evaluation.epochs + (find_epochs if evaluation.budget != "epochs" else 0)  # a scratch budget's fewest
        if evaluation.instability and self.prune.method not in ("gmp", "bimp") and retrained == 0:  # GMP: unread; BIMP: >= 1 a level
            raise ValueError(
                f"eval.instability measures the barrier between two retrainings from one start, but eval.epochs="
                f"{evaluation.epochs} retrains nothing: the two copies, the same weights, would report 0 (stable); give eval.epochs or "
                "leave eval.instability out"
            )
        if evaluation.lr_policy is not None and find_epochs == 0:
            raise ValueError(
                f"eval.lr_policy: {evaluation.lr_policy} derives the retraining LR from the find phase's LR "
                f"schedule, but {length} is 0"
                + ("" if self.prune.method == "bimp" else ": retrain with eval's own lr_schedule (eval.lr_policy: null)")
            )
        if evaluation.lr_policy == "lrw" and evaluation.epochs > find_epochs:
            raise ValueError(
                f"eval.lr_policy lrw replays the last eval.epochs={evaluation.epochs} epochs of the find "
                f"phase, which trains only {length}={find_epochs}"
            )
        if evaluation.lr_policy == "lrw" and evaluation.budget != "epochs":
            raise ValueError(
                f"eval.budget: {evaluation.budget} adds the pipeline's epochs to the retraining, more than the "
                f"{counted(find_epochs, 'epoch')} of the find phase that eval.lr_policy lrw replays; use another LR policy"
            )
        kind, k = rewind_target(evaluation.rewind) or ("", 0)
        if kind == "epoch":
            if k > find_epochs:
                raise ValueError(f"eval.rewind={evaluation.rewind} lies past the end of the find phase ({length}={find_epochs})")
            if evaluation.lr_policy is None and evaluation.epochs <= k:
                raise ValueError(
                    f"eval.rewind={evaluation.rewind} resumes the eval LR schedule at epoch {k}, so eval.epochs="
                    f"{evaluation.epochs} leaves nothing to retrain (eval.epochs counts from the schedule's start)"
                )
        return self

    @model_validator(mode="after")
    def _warmups_fit(self) -> Recipe:
        """Each LR warmup ends within its phase's schedule: the find phase's is ``find.epochs`` long
        (``stop_epoch`` only ends the training early, which may stop it within its warmup)."""
        prune, evaluation = self.prune, self.eval
        find = self.find_training
        length = "prune.initial_epochs" if prune.method == "bimp" else "find.epochs"
        schedules = [("find", find.epochs, length, self.find.lr_schedule)]
        if evaluation.lr_policy is None and prune.method != "bimp" and evaluation.budget == "epochs":
            schedules.append(("eval", evaluation.epochs, "eval.epochs", evaluation.lr_schedule))  # else not read, or longer
        for phase, epochs, length, schedule in schedules:
            if 0 < epochs < schedule.warmup_epochs:
                raise ValueError(
                    f"{phase}.lr_schedule.warmup_epochs={schedule.warmup_epochs} is longer than the {phase} phase "
                    f"({length}={epochs}): the phase would end before its warmup"
                )
        return self

    @model_validator(mode="after")
    def _schedules_decay(self) -> Recipe:
        """Each LR schedule a phase reads decays from its LR (:meth:`TrainConfig.check_lr_schedule`):
        the find phase's as it trains (BIMP's linear one, whatever ``find.lr_schedule.name`` says), and
        the eval phase's unless an LR policy (BIMP's too) replaces it. What is not read is warned about
        as unused, not refused. Before :meth:`_halving_stages_fit`, which needs it."""
        phases = [("find", self.find_training), *([("eval", self.eval)] if self.eval_training.lr_policy is None else [])]
        for phase, config in phases:
            try:
                config.check_lr_schedule()
            except ValueError as error:
                raise ValueError(f"{phase}: {error}") from None
        return self

    @model_validator(mode="after")
    def _halving_stages_fit(self) -> Recipe:
        """Each halving LR schedule that a phase reads gives every one of its LRs an epoch of
        the phase's schedule: ``find.epochs`` (``stop_epoch`` only ends the training early), and
        for the eval phase ``eval.epochs``, or with a scratch budget the fewest epochs it can
        train, ``eval.epochs`` plus the find phase's (Scratch-B's speedup is at least 1)."""
        find, evaluation = self.find_training, self.eval_training
        phases = [("find", find, find.epochs, f"find.epochs={find.epochs}")]  # BIMP's linear initial training reads no halving
        if evaluation.lr_policy is None:  # else the policy sets the eval LR
            if evaluation.budget == "epochs":
                phases.append(("eval", evaluation, evaluation.epochs, f"eval.epochs={evaluation.epochs}"))
            else:
                epochs = evaluation.epochs + find.trained_epochs
                length = (f"eval.epochs + {self.find_length_setting} = {evaluation.epochs} + {find.trained_epochs} epochs, "
                          f"the fewest eval.budget {evaluation.budget} trains")  # fmt: skip
                phases.append(("eval", evaluation, epochs, length))
        for phase, training, epochs, length in phases:
            schedule, lr = training.lr_schedule, training.optimizer.lr
            if schedule.name != "halving" or not epochs:
                continue
            try:
                halving_milestones(epochs, schedule.halving_stages(lr), schedule.max_stage_epochs)
            except ValueError as error:
                raise ValueError(
                    f"{phase}.lr_schedule: a halving schedule from {phase}.optimizer.lr={lr:g} to final_lr={schedule.final_lr:g} "
                    f"over {length}: {error}"
                ) from None
        return self

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        if not all(0 <= seed < 2**63 for seed in seeds):
            raise ValueError(f"seeds must lie in [0, 2**63), got {seeds}")
        # A repeated seed would run once but count twice in the run's mean and std.
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds}")
        return seeds


def _misplaced_retraining(evaluation: EvalConfig, allowed_policy: str | None) -> str:
    """The LR policy and rewinding that a method retraining its own way (GMP, BIMP) refuses,
    named with their values and the value to give instead: a base recipe (the default's LLR)
    may have set them, so that "unset" would not say what to write. '' if there are none."""
    misplaced = [f"eval.lr_policy={evaluation.lr_policy} (use null)"] if evaluation.lr_policy not in (None, allowed_policy) else []
    misplaced += [f"eval.rewind={evaluation.rewind} (use none)"] if evaluation.rewind != "none" else []
    return " and ".join(misplaced)


def unread_settings(recipe: Recipe) -> dict[str, str]:
    """The settings (dotted keys) that ``recipe``'s method, LR policy and LR schedules never
    read, whatever their values, each with the reason. They cannot change a result, so they
    do not name the run (:func:`prunelab.config.run_name`), and are warned about if given.
    """
    prune, evaluation = recipe.prune, recipe.eval
    unread = {}
    if prune.scope == "ratios" or (prune.scope == "lpr_of" and prune.method == "oneshot"):
        unread["prune.sparsity"] = f"scope {prune.scope} sets each layer's ratio"
    elif prune.scope == "masks_of" and prune.method == "oneshot":
        unread["prune.sparsity"] = "scope masks_of takes the masks of prune.masks_of"
    elif prune.method in ("imp", "bimp") and prune.levels is not None:
        unread["prune.sparsity"] = f"prune.levels={prune.levels} sets how far IMP prunes"
    # IMP with scope lpr_of or masks_of does read it: the sparsity sets its number of levels.
    policy = recipe.eval_training.lr_policy
    if policy is not None:
        unread["eval.optimizer.lr"] = (
            f"the LR policy {policy} takes its learning rates from the find phase's LR log "
            f"(find.optimizer.lr={recipe.find.optimizer.lr})"
        )
        for option in LRScheduleConfig.model_fields:
            unread[f"eval.lr_schedule.{option}"] = f"the LR policy {policy} sets the eval phase's LR schedule"
    if prune.method == "gmp" and evaluation.instability:
        unread["eval.instability"] = "GMP prunes while it trains, it has no separate retraining to repeat"
    if prune.method == "gmp":
        unread["find.lpr_every"] = "GMP prunes while the eval phase trains, not the find phase's weights"
    elif prune.prunes_channels:
        unread["find.lpr_every"] = f"prune.criterion {prune.criterion} prunes channels, the LPR recorded is of weights"
    elif prune.criterion == "random":
        unread["find.lpr_every"] = "prune.criterion random does not read the weights"
    elif prune.scope != "global":
        unread["find.lpr_every"] = f"prune.scope {prune.scope} sets each layer's ratio whatever the weights"
    if prune.method == "bimp":  # its own initial training and retraining (Recipe.find_training, methods.imp.bimp)
        unread["find.epochs"] = f"bimp first trains prune.initial_epochs={counted(prune.initial_epochs, 'epoch')}"
        unread["find.stop_epoch"] = f"bimp trains all prune.initial_epochs={prune.initial_epochs} of its first training"
        unread["find.lr_schedule.name"] = "bimp first trains with a linear LR schedule"
        unread["eval.epochs"] = (
            "bimp splits the other prune.budget_epochs - prune.initial_epochs = "
            f"{counted(prune.budget_epochs - prune.initial_epochs, 'epoch')} over its levels"
        )
    if recipe.data.name in DATASETS and recipe.data.name not in AUGMENTED:  # a saved run's unregistered dataset: as recorded
        unread["data.augment"] = f"{recipe.data.name} comes without data augmentation"
    for phase in ("find", "eval"):
        optimizer = getattr(recipe, phase).optimizer.name
        for option, readers in OPTIMIZER_ONLY.items():
            if optimizer not in readers:
                unread[f"{phase}.optimizer.{option}"] = f"the {optimizer} optimizer does not read it"
    schedules = {"find": recipe.find_training.lr_schedule.name}
    if policy is None:
        schedules["eval"] = evaluation.lr_schedule.name
    for phase, name in schedules.items():
        reads = (*SCHEDULE_OPTIONS[name], "warmup_epochs")
        for option in LRScheduleConfig.model_fields:
            if option not in ("name", *reads):
                unread[f"{phase}.lr_schedule.{option}"] = f"a {name} LR schedule reads only {', '.join(reads)}"
    return unread


def fixed_settings(recipe: Recipe) -> dict[str, object]:
    """Settings the method fixes whatever the recipe says, with the values it uses (BIMP: a
    linear LR schedule over ``prune.initial_epochs`` first, ALLR retraining), which tables
    of runs show in their place.

    >>> fixed_settings(Recipe.model_validate({"prune": {"method": "bimp"}}))["eval.lr_policy"]
    'allr'
    """
    if recipe.prune.method != "bimp":
        return {}
    find = recipe.find_training
    return {"find.epochs": find.epochs, "find.lr_schedule.name": find.lr_schedule.name, "eval.lr_policy": recipe.eval_training.lr_policy}


def unused_settings(recipe: Recipe) -> list[str]:
    """Settings a recipe gives that cannot take effect, or that go against how its method is
    meant to be run: valid, but most likely not meant.

    >>> unused_settings(Recipe.model_validate({"find": {"epochs": 5, "lr_schedule": {"name": "multistep", "milestones": [3, 8]}}}))
    ['find.lr_schedule.milestones [8] lie at or past the end of the phase (find.epochs=5): they never apply']
    >>> unused_settings(Recipe.model_validate({"find": {"lr_schedule": {"name": "cosine", "gamma": 0.5}}}))
    ['find.lr_schedule.gamma=0.5 is not used: a cosine LR schedule reads only final_lr, warmup_epochs']
    """
    messages = []
    unread = unread_settings(recipe)
    for key, reason in {**unread, **_ineffective_settings(recipe)}.items():
        given, value = _setting(recipe, key)
        if given:
            shown = key if value is True else f"{key}={list(value) if isinstance(value, tuple) else value}"
            messages.append(f"{shown} is not used: {reason}")
    phases = []  # whose LR schedule the recipe's settings decide (BIMP sets its own)
    if recipe.prune.method != "bimp":
        phases.append(("find", recipe.find))
        if recipe.eval.lr_policy is None:
            phases.append(("eval", recipe.eval))
    for name, phase in phases:
        schedule = phase.lr_schedule
        late = [m for m in schedule.milestones if m >= phase.epochs] if schedule.name == "multistep" else []
        if phase.epochs and late:
            messages.append(
                f"{name}.lr_schedule.milestones {late} lie at or past the end of the phase ({name}.epochs={phase.epochs}): they never apply"
            )
        if phase.epochs and schedule.name == "step" and schedule.step_size >= phase.epochs:
            messages.append(
                f"{name}.lr_schedule.step_size={schedule.step_size} is not below {name}.epochs={phase.epochs}: the LR never steps"
            )
    find = recipe.find_training
    if find.lpr_every and find.lpr_every >= find.trained_epochs and "find.lpr_every" not in unread:
        messages.append(
            f"find.lpr_every={find.lpr_every} is not below {recipe.find_length_setting}={find.trained_epochs}: only the initial "
            "and final weights are compared"
        )
    if recipe.prune.method == "gmp":
        # The LR while pruning matters with or without fine-tuning.
        messages += _gmp_start_advice(recipe) + _gmp_fine_tuning_advice(recipe) + _gmp_lr_advice(recipe)
    rewind, policy = recipe.eval.rewind, recipe.eval.lr_policy
    schedule = find.lr_schedule
    ends_at_zero = schedule.name in ("cosine", "linear") and schedule.final_lr == 0 and find.trained_epochs == find.epochs
    if policy == "ft" and ends_at_zero and recipe.eval.epochs:
        messages.append(
            f"eval.lr_policy=ft retrains at the find phase's last LR, which its {schedule.name} schedule brings close to 0 "
            "(find.lr_schedule.final_lr=0): the retraining hardly moves the weights (seed 003's FT baseline; lrw, clr "
            "or llr retrain at larger LRs)"
        )
    if policy is not None and rewind not in ("none", "reinit") and recipe.eval.epochs:
        where = "their initial values" if rewind == "init" else f"{rewind.replace(':', ' ')} of the find phase"
        messages.append(
            f"eval.rewind={rewind} with eval.lr_policy={policy}: the weights go back to {where}, the LR does not "
            f"(the policy sets it over eval.epochs={recipe.eval.epochs}); to rewind both, as seed 002 and Renda et "
            "al. do, leave eval.lr_policy unset"
        )
    if recipe.prune.criterion == "filter_l1" and recipe.prune.scope == "global":
        messages.append(
            "prune.criterion filter_l1 with prune.scope global compares filter norms of layers with different fan-in "
            "(the layers with the fewest inputs lose nearly all their channels); Li et al. and seed 004 prune each "
            "layer alike: use prune.scope layerwise or ratios, or the bn_scale criterion"
        )
    return messages


def _ineffective_settings(recipe: Recipe) -> dict[str, str]:
    """Settings the run reads that another setting's value leaves without effect, each with
    the reason. Unlike :func:`unread_settings`, they name the run as they did before this was said."""
    ineffective = {}
    if recipe.prune.method == "gmp" and recipe.eval.optimizer.weight_decay == 0:
        ineffective["prune.finetune_weight_decay"] = (
            "eval.optimizer.weight_decay is 0, so fine-tuning has no weight decay to keep or turn off"
        )
    return ineffective


def _gmp_start_advice(recipe: Recipe) -> list[str]:
    """Seeds 000/001 start GMP from a trained network ("a trained network is used"), which
    stabilization only settles at the pruning LR; a find phase that trains nothing leaves GMP
    to prune a random one, as gradual pruning during training from scratch does."""
    if recipe.find_training.trained_epochs:
        return []
    length = recipe.find_length_setting
    return [
        f"{length}=0: the find phase trains nothing, so GMP stabilizes and prunes an untrained network, where seeds 000/001 "
        f"start from a trained one; give {length} the dense training's epochs (or, to prune while training from scratch, "
        "prune.stabilization_epochs long enough to train the network before it is pruned)"
    ]


def _gmp_fine_tuning_advice(recipe: Recipe) -> list[str]:
    """Seeds 000/001 fine-tune after GMP's last pruning step; an eval phase that ends there has no fine-tuning."""
    prune, epochs = recipe.prune, recipe.eval.epochs
    if epochs > prune.stabilization_epochs + prune.pruning_epochs:
        return []
    return [
        f"eval.epochs={epochs} ends with GMP's last pruning step (prune.stabilization_epochs={prune.stabilization_epochs} "
        f"+ prune.pruning_epochs={prune.pruning_epochs}): no fine-tuning, which seeds 000/001 need to recover accuracy "
        "(and no trainability accuracy, which is measured on it)"
    ]


def _gmp_lr_advice(recipe: Recipe) -> list[str]:
    """Seeds 000/001: GMP holds the LR through stabilization and pruning, then steps it down
    during fine-tuning ("it is vital to step the learning rate multiple times"). A warmup is
    taken to be part of the stabilization, which it must not outlast."""
    schedule, epochs = recipe.eval.lr_schedule, recipe.eval.epochs
    fine_tuning_start = recipe.prune.stabilization_epochs + recipe.prune.pruning_epochs
    if schedule.name in ("cosine", "linear"):  # lower the LR every step, unless final_lr is the LR itself
        decays = schedule.final_lr < recipe.eval.optimizer.lr
        while_pruning, in_fine_tuning = ("from the start", epochs - fine_tuning_start) if decays else ("", 0)
    else:
        if schedule.name == "constant" or schedule.gamma == 1:  # x 1 at every step or milestone: the LR never changes
            changes = []
        elif schedule.name == "step":
            changes = list(range(schedule.step_size, epochs, schedule.step_size))
        elif schedule.name == "halving":
            lr = recipe.eval.optimizer.lr
            changes = list(halving_milestones(epochs, schedule.halving_stages(lr), schedule.max_stage_epochs)) if epochs else []
        else:
            changes = [m for m in schedule.milestones if m < epochs]
        early = [str(epoch + 1) for epoch in changes if epoch < fine_tuning_start]  # counted from 1, as logs count
        while_pruning = f"at {plural(len(early), 'epoch')} {', '.join(early)}" if early else ""
        # A gamma above 1 raises the LR at each change: none of them steps it down.
        in_fine_tuning = sum(epoch >= fine_tuning_start for epoch in changes) if schedule.gamma < 1 else 0
    advice = []
    if while_pruning:
        advice.append(
            f"eval.lr_schedule ({schedule.name}) changes the LR {while_pruning}, before fine-tuning starts at "
            f"epoch {fine_tuning_start + 1}: GMP holds the LR while it prunes (seeds 000/001)"
        )
    stabilization = recipe.prune.stabilization_epochs
    if schedule.warmup_epochs > stabilization:
        advice.append(
            f"eval.lr_schedule.warmup_epochs={schedule.warmup_epochs:g} is longer than prune.stabilization_epochs={stabilization}: "
            "the LR still rises while GMP prunes, which it does at one LR (seeds 000/001); keep the warmup within the stabilization"
        )
    if epochs > fine_tuning_start and in_fine_tuning < 2:
        how_often = "never lowers the LR" if not in_fine_tuning else "lowers the LR only once"
        span = f"epoch {epochs}" if epochs == fine_tuning_start + 1 else f"epochs {fine_tuning_start + 1}-{epochs}"
        advice.append(
            f"eval.lr_schedule ({schedule.name}) {how_often} in fine-tuning ({span}): GMP "
            f"steps it down several times there, e.g. multistep with milestones from {fine_tuning_start} on and gamma 0.1 (seeds 000/001)"
        )
    return advice


def _setting(recipe: Recipe, key: str) -> tuple[bool, object]:
    """Whether ``recipe`` gives the setting ``key`` itself (rather than by default), and its value."""
    *sections, name = key.split(".")
    node = recipe
    for section in sections:
        node = getattr(node, section)
    return name in node.model_fields_set, getattr(node, name)
