"""Looking criteria up by name: one lookup for the weight and the channel registries."""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable

#: Functions and methods of C code (torch.abs, torch.Tensor.abs): torch's have no signature to
#: check, and none takes a criterion's arguments.
BUILTINS = (types.BuiltinFunctionType, types.MethodDescriptorType, types.WrapperDescriptorType, types.MethodWrapperType)


def from_registry(registry: dict[str, type], kind: str, criterion: str | Callable, seed: int, call: tuple[str, str]) -> Callable:
    """The criterion named ``criterion`` in ``registry`` (built with ``seed`` if it takes one),
    or ``criterion`` itself if it is a callable that can be called as the criteria of the
    registry are: ``call`` holds their arguments (``"name, values, positions, out"``) and the
    module that states the contract.

    >>> from prunelab.criteria import CRITERIA
    >>> from_registry(CRITERIA, "criterion", "l2", 0, ("name, values, positions, out", "m"))
    Traceback (most recent call last):
    ...
    ValueError: unknown criterion 'l2'; expected one of ['magnitude', 'random']
    >>> from_registry(CRITERIA, "criterion", lambda w: w.abs(), 0, ("name, values, positions, out", "prunelab.criteria.elementwise"))
    Traceback (most recent call last):
    ...
    TypeError: a criterion is called as criterion(name, values, positions, out), which this one, taking (w), cannot be (the contract, with an example: prunelab.criteria.elementwise)
    """
    if not isinstance(criterion, str):
        if not callable(criterion):
            raise TypeError(f"{kind} must be one of {sorted(registry)} or a callable criterion, got {criterion!r}")
        arguments, contract = call
        try:
            signature = inspect.signature(criterion)
        except (TypeError, ValueError):  # no signature to tell: a builtin such as torch.abs is a function of the weights
            if builtin := _builtin(criterion):
                raise TypeError(f"a {kind} is called as {kind.split()[-1]}({arguments}), which "
                                f"{builtin} cannot be (the contract, with an example: {contract})") from None  # fmt: skip
            return criterion  # found out when called
        try:
            signature.bind(*arguments.split(", "))
        except TypeError:
            raise TypeError(
                f"a {kind} is called as {kind.split()[-1]}({arguments}), which this one, taking "
                f"{str(signature).split(' ->')[0]}, cannot be (the contract, with an example: {contract})"
            ) from None
        return criterion
    if criterion not in registry:
        raise ValueError(f"unknown {kind} {criterion!r}; expected one of {sorted(registry)}")
    factory = registry[criterion]
    return factory(seed) if "seed" in inspect.signature(factory).parameters else factory()


def _builtin(criterion: Callable) -> str:
    """How to name ``criterion`` if it calls a builtin, seen through ``functools.partial``
    (``partial(torch.abs)`` has no signature either); '' if it does not.

    >>> import torch
    >>> _builtin(torch.Tensor.abs), _builtin(functools.partial(torch.abs)), _builtin(lambda w: w.abs())
    ('TensorBase.abs', 'functools.partial(abs)', '')
    """
    called = criterion
    while isinstance(called, functools.partial):
        called = called.func
    if not isinstance(called, BUILTINS):
        return ""
    owner = getattr(called, "__objclass__", None)  # a method's class: torch.Tensor.abs is TensorBase's
    name = f"{owner.__name__}.{called.__name__}" if owner else called.__name__
    return name if called is criterion else f"functools.partial({name})"
