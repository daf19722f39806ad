"""Errors raised in the user's own code (registered models and datasets, ``--import`` modules),
said in one line with where they were raised, since the command line shows no traceback."""

from __future__ import annotations

import sysconfig
import traceback
from pathlib import Path

#: Where library code lives (prunelab's own, the standard library's, installed packages'),
#: not the user's: the line of the user's code that led to an error says more than torch's.
LIBRARIES = tuple(str(Path(path).resolve()) for path in {str(Path(__file__).parent), *(sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib"))})


#: What a slip in the user's code raises (a wrong shape, key or attribute name), said by
#: :func:`user_error` in one line; other errors keep their traceback.
USER_ERRORS = (TypeError, ValueError, RuntimeError, KeyError, IndexError, AttributeError)


def user_error(what: str, error: BaseException) -> str:
    """``what`` failed with ``error``, with its type and the file and line that raised it: the
    last line of the user's own code on the way, if any (e.g. a model's forward that called
    torch with the wrong shape), else the line that raised it.

    >>> try:
    ...     {}["x_train"]
    ... except KeyError as error:
    ...     print(user_error("dataset 'mine' cannot be loaded", error))  # doctest: +ELLIPSIS
    dataset 'mine' cannot be loaded: KeyError: 'x_train' (<doctest ...>, line 2)
    """
    return f"{what}: {named(error)}{raised_at(error)}"


def named(error: BaseException) -> str:
    """The error's type and text; its type alone if it has no text (``raise KeyError()``).

    >>> named(KeyError("x_train")), named(KeyError())
    ("KeyError: 'x_train'", 'KeyError')
    """
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def raised_at(error: BaseException) -> str:
    """`` (file, line N)``: where ``error`` was raised, the last line of the user's own code
    on the way if any (see :func:`user_error`); empty for an error never raised."""
    frames = traceback.extract_tb(error.__traceback__)
    # "<string>": code made at run time, such as a dataclass's __init__ calling its checks.
    own = [frame for frame in frames if not frame.filename.startswith("<") and not _in_library(frame.filename)]
    return f" ({(own or frames)[-1].filename}, line {(own or frames)[-1].lineno})" if frames else ""


def _in_library(filename: str) -> bool:
    # Inside one of the folders, not merely named alike: src/prunelab is no prefix of src/prunelab_models.
    path = Path(filename).resolve()
    return any(path.is_relative_to(library) for library in LIBRARIES)
