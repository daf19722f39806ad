"""Which parameters of a model are prunable."""

from __future__ import annotations

import re
import warnings
from collections.abc import Collection, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

CONVS: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
#: Modules whose ``weight`` is pruned by default; biases and normalisation layers are not.
PRUNABLE_MODULES: tuple[type[nn.Module], ...] = (*CONVS, nn.Linear)


def matches(pattern: str, parameter_name: str, names: Collection[str] = ()) -> bool:
    """Whether ``pattern`` names the parameter or a module that contains it.

    A pattern that is one of ``names`` (the model's module and parameter names, see
    :func:`model_names`) is that name exactly; any other is a regular expression matched
    against the whole name. So ``"1.0"`` in a model with a module ``1.0`` is that module,
    not also ``100`` and ``110``, which the regular expression would match.

    >>> matches("fc", "fc.weight"), matches("layer1", "layer1.0.conv1.weight")
    (True, True)
    >>> matches(r"layer\\d\\.0\\.conv1", "layer3.0.conv1.weight"), matches("fc", "fc2.weight")
    (True, False)
    >>> matches("1.0", "100.0.weight"), matches("1.0", "100.0.weight", names={"1.0", "100.0"})
    (True, False)
    """
    exact = pattern in names
    return any(pattern == prefix or (not exact and re.fullmatch(pattern, prefix)) for prefix in _prefixes(parameter_name))


def _prefixes(parameter_name: str) -> list[str]:
    """The names of the modules holding a parameter, outermost first, and its own."""
    parts = parameter_name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


#: The input projections of ``nn.MultiheadAttention``: packed, or one per query, key and value.
ATTENTION_INPUTS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")


def unwrapped(model: nn.Module) -> nn.Module:
    """The model a wrapper runs: ``torch.compile``'s (``_orig_mod``), ``DistributedDataParallel``'s
    and ``DataParallel``'s (``module``), whose parameters are the model's under its own names.

    >>> linear = nn.Linear(2, 2)
    >>> unwrapped(nn.DataParallel(linear)) is linear
    True
    """
    while True:
        if isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        elif isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        else:
            return model


def model_names(model: nn.Module) -> frozenset[str]:
    """Every module and parameter name of ``model`` (tied ones under each of their names),
    which patterns naming them mean exactly (see :func:`matches`)."""
    modules = (name for name, _ in model.named_modules(remove_duplicate=False) if name)
    return frozenset([*modules, *(name for name, _ in model.named_parameters(remove_duplicate=False))])


def parameter_names(model: nn.Module) -> dict[str, list[str]]:
    """Every name of each parameter, keyed by its first name (a tied weight has several).

    >>> embed = nn.Embedding(10, 4)
    >>> model = nn.Sequential(embed, nn.Linear(4, 10, bias=False))
    >>> model[1].weight = embed.weight
    >>> parameter_names(model)
    {'0.weight': ['0.weight', '1.weight']}
    """
    names: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(param), []).append(name)
    return {aliases[0]: aliases for aliases in names.values()}


def matches_any(pattern: str, aliases: Sequence[str], names: Collection[str] = ()) -> bool:
    """Whether ``pattern`` names any of a (tied) parameter's ``aliases``, or a module holding
    it; ``names`` as for :func:`matches`."""
    return any(matches(pattern, alias, names) for alias in aliases)


def find_prunable(
    model: nn.Module,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> dict[str, nn.Parameter]:
    """The prunable parameters of ``model`` by name, in the model's parameter order.

    By default these are the weights of every Conv1d/2d/3d and Linear module (subclasses
    included, e.g. the output projection of ``nn.MultiheadAttention``; its packed input
    projection ``in_proj_weight`` is a plain parameter, so name it in ``include`` to prune
    it: the default set warns that it leaves it dense). ``include`` picks instead: a pattern naming a module (``layer4``, ``layer4.*``) picks
    the Conv/Linear weights inside that module (not its biases or norm layers); one naming
    only parameters picks them, whatever they are (an embedding's weight,
    ``.*in_proj_weight``). ``exclude`` then removes parameters or modules. Names are exact
    where they name something of the model, else regular expressions (see :func:`matches`).
    A tied weight answers to each of its names. An include pattern that picks nothing, or an
    exclude pattern that names nothing of the model, is an error, because a typo there
    silently changes what gets pruned (excluding a module that would not be pruned anyway,
    such as an embedding, is not); so is a layer whose weight
    is computed (``weight_norm``, ``spectral_norm``, parametrizations) unless excluded.

    >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> list(find_prunable(model, exclude=["2"]))
    ['0.weight']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_patterns(include, exclude)
    if isinstance(model, torch.jit.ScriptModule):
        raise ValueError(
            "a scripted model (torch.jit.script) cannot be pruned: its layers are no Conv/Linear modules to Python, "
            "and its parameters cannot be looked up by name; prune the model, then script it"
        )
    parameters = dict(model.named_parameters())
    names, known = parameter_names(model), model_names(model)
    layers = {name: module for name, module in model.named_modules() if isinstance(module, PRUNABLE_MODULES)}
    layer_weights = {id(module.weight) for module in layers.values() if isinstance(module.weight, nn.Parameter)}
    # A weight computed from other parameters (weight_norm, spectral_norm, any parametrization)
    # cannot be zeroed in place: such a layer is an error unless excluded, never silently skipped.
    computed = [name for name, module in layers.items() if not isinstance(module.weight, nn.Parameter)]
    for layer in computed:
        if (include is None or any(matches(p, layer, known) for p in include)) and not any(
            matches(p, layer, known) for p in exclude or ()
        ):
            if hasattr(layers[layer], "weight_mask"):  # torch.nn.utils.prune's weight = weight_orig * weight_mask
                raise ValueError(
                    f"layer {layer!r} ({type(layers[layer]).__name__}) was pruned with torch.nn.utils.prune, which "
                    "computes its weight from weight_orig and weight_mask: call torch.nn.utils.prune.remove(module, "
                    "'weight') first (its pruned weights stay zero), or exclude the layer"
                )
            if not _computed(layers[layer]):
                raise ValueError(
                    f"layer {layer!r} ({type(layers[layer]).__name__}) holds its weight as a plain tensor or buffer, "
                    "not a parameter, so nothing trains it: exclude the layer, or make its weight an nn.Parameter"
                )
            raise ValueError(
                f"layer {layer!r} ({type(layers[layer]).__name__}) computes its weight from other parameters "
                "(weight_norm, spectral_norm or another parametrization), so it cannot be pruned in place: "
                "remove the parametrization first, exclude the layer, or name the parameter to prune in include"
            )

    def picks(pattern: str, name: str) -> bool:
        """``include`` semantics: layer weights by the name of a module holding them, any
        parameter by a name no module holding it answers to."""
        for alias in names[name]:
            if any(matches(pattern, module, known) for module in _prefixes(alias)[:-1]):
                if id(parameters[name]) in layer_weights:
                    return True
            elif matches(pattern, alias, known):
                return True
        return False

    if include is None:
        chosen = [name for name in names if id(parameters[name]) in layer_weights]
    else:
        picked = {pattern: {name for name in names if picks(pattern, name)} for pattern in include}
        for pattern, found in picked.items():
            if not found:
                raise ValueError(
                    f"include pattern {pattern!r} picks nothing: it must name a parameter, or a module "
                    f"holding Conv/Linear weights{_whole_names(pattern, known)}; parameters are: {', '.join(names)}"
                )
        chosen = [name for name in names if any(name in found for found in picked.values())]
    removed = {pattern: {name for name in chosen if matches_any(pattern, names[name], known)} for pattern in exclude or ()}
    for pattern, found in removed.items():
        # Excluding what would not be pruned anyway (an embedding, a head left out of include) is no mistake; a typo is.
        if not found and not any(matches(pattern, name, known) for name in known):
            raise ValueError(
                f"exclude pattern {pattern!r} matches no parameter or module of the model{_whole_names(pattern, known)}; "
                f"prunable parameters are: {', '.join(chosen) or '(none)'}"
            )
    chosen = [name for name in chosen if not any(name in found for found in removed.values())]
    if include is None:
        # nn.MultiheadAttention's input projections are plain parameters, its output projection a Linear.
        projections = [name for name in names if name.rsplit(".", 1)[-1] in ATTENTION_INPUTS
                       and not any(matches_any(pattern, names[name], known) for pattern in exclude or ())]  # fmt: skip
        if projections:
            warnings.warn(
                f"nn.MultiheadAttention's input projections ({', '.join(projections[:2])}{', ...' if len(projections) > 2 else ''}) "
                "are plain parameters, not Linear layers: the default set leaves them dense while it prunes the attention's "
                "output projections; to prune every weight matrix, name them in include (for nn.TransformerEncoder: "
                r"include=[r'.*in_proj_weight', r'.*out_proj', r'.*linear\d']); an include of your own, or an exclude naming them, also silences this",
                stacklevel=3,
            )
    if not chosen:
        raise ValueError("no prunable parameters: " + ("include is empty" if include is not None and not include else "the model has no Conv/Linear weights left to prune"))
    return {name: parameters[name] for name in chosen}


def _whole_names(pattern: str, names: Collection[str]) -> str:
    """A hint for a pattern that is part of names, as ``self_attn`` is of ``layers.0.self_attn``.

    >>> _whole_names("self_attn", {"layers.0.self_attn", "layers.0.self_attn.out_proj"})
    " (patterns match whole names: r'.*self_attn' matches layers.0.self_attn)"
    """
    parts = sorted(name for name in names if pattern in name.split("."))
    return f" (patterns match whole names: r'.*{pattern}' matches {parts[0]})" if parts else ""


def _computed(module: nn.Module) -> bool:
    """Whether ``module`` computes its weight: a parametrization, or the older hooks of
    ``weight_norm`` (``weight_g``, ``weight_v``), ``spectral_norm`` and torch's pruning (``weight_orig``)."""
    return parametrize.is_parametrized(module) or any(hasattr(module, name) for name in ("weight_orig", "weight_g", "weight_v"))


def check_patterns(include: Sequence[str] | None, exclude: Sequence[str] | None) -> None:
    """Raise if ``include`` or ``exclude`` is a bare string, no list at all, or holds an invalid
    regular expression."""
    for label, patterns in (("include", include), ("exclude", exclude)):
        if isinstance(patterns, str):
            raise TypeError(f"{label} must be a list of names or patterns, not the string {patterns!r}")
        if patterns is not None and not isinstance(patterns, Collection):  # e.g. a number, or a generator read once
            raise TypeError(f"{label} must be a list of names or patterns, got {type(patterns).__name__}")
        for pattern in patterns or ():
            compile_pattern(label, pattern)


def compile_pattern(label: str, pattern: str) -> None:
    """Raise a ValueError naming ``label`` if ``pattern`` is not a regular expression."""
    if not isinstance(pattern, str):
        raise TypeError(f"{label} holds {pattern!r}, not a name or pattern (a string)")
    try:
        re.compile(pattern)
    except re.error as error:
        raise ValueError(f"{label} pattern {pattern!r} is not a valid regular expression: {error}") from None
