"""Typed recipes: schema, YAML loading with overrides, run names."""

from prunelab.config.load import (
    RecipeError,
    apply_override,
    builtin_recipes,
    experiment_settings,
    flat,
    load_recipe,
    load_run_recipe,
    recipe_yaml,
    run_name,
    run_settings,
    validate,
)
from prunelab.config.schema import (
    BIMPConfig,
    DataConfig,
    EvalConfig,
    FindConfig,
    GMPConfig,
    IMPConfig,
    LRScheduleConfig,
    ModelConfig,
    OneShotConfig,
    OptimizerConfig,
    Recipe,
    TrainConfig,
    unused_settings,
)

__all__ = [
    "BIMPConfig", "DataConfig", "EvalConfig", "FindConfig", "GMPConfig", "IMPConfig", "LRScheduleConfig", "ModelConfig",
    "OneShotConfig", "OptimizerConfig", "Recipe", "RecipeError", "TrainConfig", "apply_override",
    "builtin_recipes", "experiment_settings", "flat", "load_recipe", "load_run_recipe", "recipe_yaml", "run_name", "run_settings", "unused_settings", "validate",
]
