"""Training: optimizers and schedules from the config, the epoch loop, evaluation."""

from prunelab.train.optim import build_optimizer, build_schedule
from prunelab.train.trainer import PhaseState, Trainer, TrainingDiverged, epoch_generator, evaluate

__all__ = ["PhaseState", "Trainer", "TrainingDiverged", "build_optimizer", "build_schedule", "epoch_generator", "evaluate"]
