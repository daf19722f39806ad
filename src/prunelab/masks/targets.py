"""Which parameters of a model are prunable."""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

#: Modules whose ``weight`` is pruned by default; biases and normalisation layers are not.
PRUNABLE_MODULES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def matches(pattern: str, parameter_name: str) -> bool:
    """Whether ``pattern`` names the parameter or a module that contains it.

    A pattern is an exact name or a regular expression matched against the whole name.

    >>> matches("fc", "fc.weight"), matches("layer1", "layer1.0.conv1.weight")
    (True, True)
    >>> matches(r"layer\\d\\.0\\.conv1", "layer3.0.conv1.weight"), matches("fc", "fc2.weight")
    (True, False)
    """
    parts = parameter_name.split(".")
    prefixes = (".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return any(pattern == name or re.fullmatch(pattern, name) for name in prefixes)


def find_prunable(
    model: nn.Module,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> dict[str, nn.Parameter]:
    """The prunable parameters of ``model`` by name, in the model's parameter order.

    By default these are the weights of every Conv1d/2d/3d and Linear module (subclasses
    included, e.g. the output projection of ``nn.MultiheadAttention``). ``include`` picks
    instead: a parameter's own name picks any parameter (e.g. an embedding's weight), a
    module name picks the Conv/Linear weights inside that module (not its biases or norm
    layers). ``exclude`` then removes parameters or modules. A pattern that matches nothing is an error, because a
    typo there silently changes what gets pruned.

    >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> list(find_prunable(model, exclude=["2"]))
    ['0.weight']
    """
    for label, patterns in (("include", include), ("exclude", exclude)):
        if isinstance(patterns, str):
            raise TypeError(f"{label} must be a list of names or patterns, not the string {patterns!r}")
    parameters = dict(model.named_parameters())
    weights = {
        id(module.weight)
        for module in model.modules()
        if isinstance(module, PRUNABLE_MODULES) and isinstance(module.weight, nn.Parameter)
    }
    # Names and order from named_parameters, which lists a shared weight once.
    candidates = {name: p for name, p in parameters.items() if id(p) in weights}
    if include is not None:
        _check_all_match("include", include, parameters)
        candidates = {
            n: p for n, p in parameters.items()
            if any(_names(pattern, n) or (n in candidates and matches(pattern, n)) for pattern in include)
        }
    if exclude:
        _check_all_match("exclude", exclude, candidates)
        candidates = {n: p for n, p in candidates.items() if not any(matches(pat, n) for pat in exclude)}
    if not candidates:
        raise ValueError("no prunable parameters: the model has no Conv/Linear weights left to prune")
    return candidates


def _names(pattern: str, name: str) -> bool:
    return pattern == name or re.fullmatch(pattern, name) is not None


def _check_all_match(label: str, patterns: Sequence[str], names: dict) -> None:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"{label} pattern {pattern!r} is not a valid regular expression: {error}") from None
        if not any(matches(pattern, name) for name in names):
            raise ValueError(
                f"{label} pattern {pattern!r} matches no prunable parameter or module; "
                f"prunable parameters are: {', '.join(names) or '(none)'}"
            )
