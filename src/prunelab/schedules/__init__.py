"""Pure step -> value schedules: learning rates, target sparsities and retraining LR policies.

A step is a 0-based optimizer step; every schedule is a frozen dataclass called
as ``schedule(step)``, with no coupling to a torch optimizer.
"""

from prunelab.schedules.lr import (
    Constant,
    Cosine,
    Linear,
    MultiStep,
    Replay,
    Schedule,
    Step,
    Warmup,
    halving_milestones,
    round_warmup,
)
from prunelab.schedules.retrain import (
    POLICIES,
    RESTARTING,
    RetrainPlan,
    allr_d1,
    retrain_schedule,
)
from prunelab.schedules.sparsity import Polynomial, imp_levels, imp_sparsity

__all__ = [
    "POLICIES",
    "RESTARTING",
    "Constant",
    "Cosine",
    "Linear",
    "MultiStep",
    "Polynomial",
    "Replay",
    "RetrainPlan",
    "Schedule",
    "Step",
    "Warmup",
    "allr_d1",
    "halving_milestones",
    "imp_levels",
    "imp_sparsity",
    "retrain_schedule",
    "round_warmup",
]
