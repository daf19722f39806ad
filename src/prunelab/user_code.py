"""Errors raised in the user's own code (registered models and datasets, ``--import`` modules),
said in one line with where they were raised, since the command line shows no traceback."""

from __future__ import annotations

import traceback


def user_error(what: str, error: BaseException) -> str:
    """``what`` failed with ``error``, with its type and the file and line that raised it.

    >>> try:
    ...     {}["x_train"]
    ... except KeyError as error:
    ...     print(user_error("dataset 'mine' cannot be loaded", error))  # doctest: +ELLIPSIS
    dataset 'mine' cannot be loaded: KeyError: 'x_train' (<doctest ...>, line 2)
    """
    frames = traceback.extract_tb(error.__traceback__)
    where = f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    return f"{what}: {type(error).__name__}: {error}{where}"
