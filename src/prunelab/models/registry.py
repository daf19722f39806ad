"""The registry of model builders and ``build_model``."""

from __future__ import annotations

import difflib
import functools
import inspect
import json
import numbers
import os
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import ConfigDict, PydanticUserError, TypeAdapter, ValidationError
from torch import nn

from prunelab.user_code import USER_ERRORS, user_error
from prunelab.wording import plural

ModelBuilder = Callable[..., nn.Module]
Initializer = Callable[[nn.Module], nn.Module]
MODELS: dict[str, ModelBuilder] = {}
INITIALIZERS: dict[str, Initializer] = {}  # a model's own weight scheme, applied after PyTorch's defaults
_REQUIRED = ("num_classes", "input_shape")


def register(name: str, init: Initializer | None = None) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator adding a builder ``(num_classes, input_shape, *, options...) -> nn.Module`` to ``MODELS``.

    ``init`` is the model's weight scheme (e.g. :func:`~prunelab.models.common.he_init`), applied by
    :func:`build_model` after the builder and by :func:`initialize`; without it, the
    layers keep PyTorch's default initialisation.

    >>> @register("doctest_linear")
    ... def linear(num_classes, input_shape):
    ...     '''A single linear layer.'''
    ...     return nn.Linear(input_shape[0], num_classes)
    >>> MODELS.pop("doctest_linear") is linear
    True
    """

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in MODELS and not same_definition(MODELS[name], builder):
            raise ValueError(f"model {name!r} is already registered")
        # Else the builder fails only when a run builds it, with "got an unexpected keyword argument".
        parameters = inspect.signature(builder).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()) and (
            missing := [required for required in _REQUIRED if required not in parameters]
        ):
            raise ValueError(f"model {name!r}: its builder must take {' and '.join(missing)} (it is called as "
                            f"builder(num_classes=..., input_shape=..., **model.options)); it takes ({', '.join(parameters)})")  # fmt: skip
        MODELS[name] = builder
        INITIALIZERS.pop(name, None)
        if init is not None:
            INITIALIZERS[name] = init
        return builder

    return decorator


def same_definition(registered: Callable, new: Callable) -> bool:
    """Whether ``new`` is ``registered`` defined again (a reloaded module, a notebook cell run
    twice), which may replace it, rather than another function claiming its name."""
    return _definition(registered) == _definition(new)


def _definition(builder: Callable) -> tuple[str, str]:
    """Where ``builder`` is defined: a partial's where its function is, a callable object's where its class is."""
    if isinstance(builder, functools.partial):  # a partial of a partial is flattened into one
        builder = builder.func
    if not hasattr(builder, "__qualname__"):
        builder = type(builder)
    return builder.__module__, builder.__qualname__


def built_in(function: Callable) -> bool:
    """Whether ``function`` is prunelab's own, whose errors say what is wrong themselves, not a user's."""
    return (function.__module__ or "").startswith("prunelab.")


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


#: The default of a builder option that has none a recipe could give: none at all (the option
#: must be given), or a value YAML cannot write (a class, a function).
NO_DEFAULT = _NoDefault()


def model_options(name: str) -> dict[str, Any]:
    """The options of model ``name`` (its builder's named parameters besides ``num_classes``
    and ``input_shape``) with their defaults as a recipe gives them (a tuple as a list), or
    :data:`NO_DEFAULT`.

    >>> model_options("resnet20")
    {'width': 16}
    """
    parameters = inspect.signature(_builder(name)).parameters.values()
    return {p.name: _as_setting(p.default) for p in parameters if p.name not in _REQUIRED and p.kind not in _VARIADIC}


_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _as_setting(default: object) -> object:
    if default is inspect.Parameter.empty:
        return NO_DEFAULT
    try:
        return json.loads(json.dumps(default))
    except (TypeError, ValueError):
        return NO_DEFAULT


def build_model(name: str, num_classes: int, input_shape: Sequence[int], **options: Any) -> nn.Module:
    """Build the registered model ``name`` for inputs of shape ``input_shape`` (without batch).

    >>> import torch
    >>> model = build_model("mlp", num_classes=10, input_shape=(1, 40), hidden_sizes=[100, 100])
    >>> model(torch.zeros(2, 1, 40)).shape
    torch.Size([2, 10])
    """
    builder = _builder(name)
    if isinstance(num_classes, numbers.Integral) and not isinstance(num_classes, bool):
        num_classes = int(num_classes)  # numpy's ints too, as a Dataset's num_classes may be
    check_options(name, {"num_classes": num_classes, **options})
    # A shape's mistakes would read as the builder's own (int is not iterable, say).
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence) or not all(
        isinstance(size, numbers.Integral) and not isinstance(size, bool) and size >= 1 for size in input_shape
    ):
        raise ValueError(f"model {name!r}: input_shape must be the shape of one example, positive ints without the batch (e.g. (3, 32, 32)), got {input_shape!r}")
    shape = tuple(map(int, input_shape))  # numpy's ints too
    try:
        model = builder(num_classes=num_classes, input_shape=shape, **options)
    except USER_ERRORS as error:
        # The shape is named too: an input too small for the model's poolings fails in torch's words alone.
        shown = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "no options"
        what = f"model {name!r} cannot be built for input_shape {shape} with {shown}"
        raise ValueError(f"{what}: {error}" if built_in(builder) else user_error(what, error)) from error
    if not isinstance(model, nn.Module):
        raise ValueError(f"model {name!r}: its builder returned a {type(model).__name__}, not an nn.Module")
    return INITIALIZERS.get(name, lambda m: m)(model)


def initialize(name: str, model: nn.Module) -> nn.Module:
    """New random weights for ``model``, a model of kind ``name`` of any layer widths (e.g.
    one with channels removed), drawn as :func:`build_model` draws them: every layer's
    PyTorch default for its shape (BatchNorm statistics reset too), then the model's own scheme.

    Seed 004: a pruned architecture trained from scratch must be initialised as a small
    dense model, since the initialisation depends on the layers' shapes.

    >>> import torch
    >>> from torch import nn
    >>> model = initialize("lenet_300_100", nn.Sequential(nn.Flatten(), nn.Linear(784, 30)))
    >>> round(model[1].weight.std().item(), 2)  # Glorot: sqrt(2 / (784 + 30))
    0.05
    """
    _builder(name)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return INITIALIZERS.get(name, lambda m: m)(model)


def check_options(name: str, options: dict[str, Any]) -> None:
    """Raise a ValueError naming any option that model ``name`` does not have, one of another
    type than its builder declares, or, for prunelab's own models, any size below 1.

    >>> check_options("resnet20", {"channels": 64})
    Traceback (most recent call last):
    ...
    ValueError: model 'resnet20' has no option 'channels'; its options are: width
    """
    allowed = model_options(name)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(_builder(name)).parameters.values())
    unknown = [] if takes_any else sorted(set(options) - {*allowed, "num_classes"})
    if unknown:
        raise ValueError(
            f"model {name!r} has no {plural(len(unknown), 'option')} {', '.join(map(repr, unknown))}; "
            f"its options are: {', '.join(allowed) or 'none'}"
        )
    hints = _option_types(_builder(name))
    for key, value in options.items():
        if (validator := _validator(hints.get(key))) is not None:
            try:
                validator.validate_python(value, strict=True)
            except ValidationError:
                raise ValueError(f"model {name!r}: {key} must be {_type_text(hints[key])}, got {value!r}") from None
    # Every integer option of prunelab's own models is a layer size; 0 builds a model that
    # fails only in its first forward pass, or silently ignores its input. A user's builder
    # may have integers of other meanings (a count of layers to skip, 0 allowed).
    if not built_in(_builder(name)):
        return
    for key, value in options.items():
        sizes = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, int) and not isinstance(v, bool) and v < 1 for v in sizes):
            raise ValueError(f"model {name!r}: {key} must be at least 1, got {value!r}")


def _option_types(builder: ModelBuilder) -> dict[str, Any]:
    """The type annotations of a builder's options (a class's: its ``__init__``'s), or none if
    they name what cannot be found at run time, as a type imported for type checkers only."""
    try:
        return typing.get_type_hints(builder.__init__ if isinstance(builder, type) else builder)
    except (NameError, TypeError):
        return {}


def _validator(hint: Any) -> TypeAdapter | None:
    """A validator of values of type ``hint`` (of a class pydantic does not know: an isinstance
    check), or None for no annotation."""
    if hint is None:
        return None
    try:
        return TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True))
    except PydanticUserError:  # a pydantic model, dataclass or TypedDict, which carries its own config
        return TypeAdapter(hint)


def _type_text(hint: Any) -> str:
    """A builder option's type annotation in words.

    >>> [_type_text(h) for h in (int, Sequence[int], int | None, Literal["a", "b"])]
    ['an int', 'a list of ints', 'an int or null', "one of 'a', 'b'"]
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_text(arg) for arg in args)
    if args:  # Sequence[int], list[int], tuple[int, ...]
        return f"a list of {getattr(args[0], '__name__', 'value')}s"
    name = getattr(hint, "__name__", str(hint))
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def close_name(name: object, known: typing.Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to a misspelt ``name``, if any is close.

    >>> close_name("resnet02", ["resnet20", "vgg16_bn"]), close_name("alexnet", ["resnet20"])
    (" (did you mean 'resnet20'?)", '')

    Of names alike, the one that begins as ``name`` does is meant; so is a name cut short:

    >>> close_name("resnet21", ["resnet20", "resnet32"]), close_name("lenet", ["lenet_300_100", "resnet56"])
    (" (did you mean 'resnet20'?)", " (did you mean 'lenet_300_100'?)")
    """
    name, known = str(name), list(known)
    # A name cut short (lenet for lenet_300_100) is too short to count as alike by difflib's score.
    alike = set(difflib.get_close_matches(name, known, n=3)) | {known_name for known_name in known if name and known_name.startswith(name)}
    if not alike:
        return ""

    def likeness(known_name: str) -> tuple[int, float]:
        return len(os.path.commonprefix([name, known_name])), difflib.SequenceMatcher(None, known_name, name).ratio()

    # In the known names' order, so that of names equally alike the first is meant (resnet: resnet20)
    best = max((known_name for known_name in known if known_name in alike), key=likeness)
    return f" (did you mean {best!r}?)"


def _builder(name: str) -> ModelBuilder:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}{close_name(name, MODELS)}; known models: {', '.join(sorted(MODELS))} (a model of your own is "
            "registered by its module with prunelab.models.register; on the command line: --import MODULE)"
        ) from None
