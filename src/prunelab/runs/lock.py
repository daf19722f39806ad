"""One process at a time in a folder of work.

Commands started side by side on the same ``--out`` (two terminals, two jobs of a cluster
sharing a disk) take turns on a seed of a run, or on a find phase their runs share, instead
of training it twice and writing over each other's checkpoints.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from prunelab.distributed import agree, world

try:
    import fcntl
except ImportError:  # Windows: no flock; folders are not locked there
    fcntl = None

log = logging.getLogger(__name__)

LOCK = ".lock"
#: Seconds between two looks at a lock another process holds.
POLL_SECONDS = 2.0


@contextlib.contextmanager
def exclusive(folder: Path, what: str, wait: bool = True) -> Iterator[bool]:
    """Hold ``folder``'s lock inside the block and yield True. If another process holds it,
    wait until it lets go (saying once what waits, and for which process), or, unless
    ``wait``, yield False at once.

    The lock is ``flock`` on ``folder/.lock``, which the operating system drops when its
    process ends, killed or not, so an interrupted run leaves no stale lock behind. Where the
    platform has no ``flock`` (Windows) the block runs unlocked. In a run over several
    processes (torchrun) the main process holds the lock for all of them.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with exclusive(Path(folder), "seed 0") as mine, exclusive(Path(folder), "seed 0", wait=False) as again:
    ...         print(mine, again)
    True False
    """
    handle = None
    if world().is_main and fcntl is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # Unbuffered: a signature the disk has no room for fails in _take, not again at close.
            handle = open(folder / LOCK, "a+b", buffering=0)
        except OSError as error:  # a read-only --out, say: named, not errno's words alone
            raise OSError(f"cannot write in {folder}: {error.strerror or error}") from None
    try:
        held = agree(handle is None or _take(handle))
        if not held and wait:
            if handle is not None:
                log.warning("%s: waiting for %s, which is running it in %s", what, _holder(handle), folder)
            while not held:
                time.sleep(POLL_SECONDS)
                held = agree(handle is None or _take(handle))
        yield held
    finally:
        if handle is not None:
            handle.close()  # lets go of the lock


def busy(folder: Path) -> bool:
    """Whether another process holds ``folder``'s lock now: a look, not a wait (and no
    collective call, so that one process of several may look). The lock file is opened to
    read and locked shared, so that ``show`` looks at a run folder it cannot write (a
    read-only mount, another user's runs), and two looks never take each other for a holder."""
    if fcntl is None:
        return False
    try:
        handle = open(folder / LOCK, "rb")
    except OSError:  # none there (no command has run it), or not ours to read: no holder to tell of
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:  # a file system without locks: no command holds one there
            return False
        return False


def _take(handle: IO[bytes]) -> bool:
    """Take the lock if no other process holds it, and sign it with this process. A file
    system without locks (some network mounts) runs unlocked, with a warning; a signature
    the disk has no room for is an error naming the lock file."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        warnings.warn(f"{handle.name} cannot be locked ({error}): commands side by side on this --out may train "
                      "the same seed twice", stacklevel=2)  # fmt: skip
        return True
    try:
        handle.truncate(0)
        handle.write(f"{os.getpid()} {socket.gethostname()}".encode())
    except OSError as error:  # a full disk, say: named, not errno's words alone
        raise OSError(f"cannot write {handle.name}: {error.strerror or error}") from None
    return True


def _holder(handle: IO[bytes]) -> str:
    handle.seek(0)
    signature = handle.read().decode(errors="replace").split()
    return f"process {signature[0]} on {signature[1]}" if len(signature) == 2 else "another process"
