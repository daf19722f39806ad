"""Counts in messages, in the number they ask for: '1 epoch', '2 epochs', never '1 epochs'."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``noun`` for a count of one, else ``nouns`` (``noun`` + "s" unless given).

    >>> plural(1, "epoch"), plural(0, "epoch"), plural(2, "process", "processes")
    ('epoch', 'epochs', 'processes')
    """
    return noun if count == 1 else nouns or noun + "s"


def counted(count: int, noun: str, nouns: str | None = None) -> str:
    """``count``, thousands separated, and its noun (see :func:`plural`).

    >>> counted(1, "epoch"), counted(1000, "weight")
    ('1 epoch', '1,000 weights')
    """
    return f"{count:,} {plural(count, noun, nouns)}"
