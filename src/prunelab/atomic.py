"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half
of one, even if the writer is killed or the disk fills up."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


#: Temporary files last written before this process started are a kill's leftovers, not a write going on beside it.
STARTED = time.time()


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[BinaryIO]:
    """Open a new temporary file beside ``path`` for binary writing. When the block ends, the
    file is flushed to disk and renamed to ``path``, and the rename is flushed too; if anything
    fails, the temporary file is removed and the error passes through, leaving ``path`` as it was.
    A file replaced keeps its mode. Temporary files of earlier writes to ``path`` that a kill
    left are removed first.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "x.bin"
    >>> with atomic_write(target) as f:
    ...     _ = f.write(b"abc")
    >>> target.read_bytes()
    b'abc'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # Mode 0o666 under the umask, as any other file: not tempfile.mkstemp's private 0o600.
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        _keep_mode(path, handle)
        if fcntl is not None:  # held while the write goes on (a stalled download too); the OS drops it with a killed writer
            with contextlib.suppress(OSError):  # a file system without locks (some network mounts): unmarked, it still writes
                fcntl.flock(handle, fcntl.LOCK_EX)
        with os.fdopen(handle, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _keep_mode(path: Path, handle: int) -> None:
    """Give the new file the mode of the one it replaces, as an editor does: a result file
    made private (``chmod 600``) stays private when a rerun rewrites it."""
    if not hasattr(os, "fchmod"):  # Windows before Python 3.13: its files have no such modes
        return
    with contextlib.suppress(FileNotFoundError):  # nothing to replace: a new file's mode stays
        os.fchmod(handle, stat.S_IMODE(path.stat().st_mode))


def _remove_leftovers(path: Path) -> None:
    """Remove the temporary files of writes to ``path`` that a kill left: older than this
    process and locked by no writer. Without ``flock`` (Windows) they cannot be told from a
    write going on, and stay, as they do on a file system without locks."""
    if fcntl is None:
        return
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):  # renamed or removed meanwhile by the write it belongs to
            if leftover.stat().st_mtime >= STARTED:
                continue
            handle = os.open(leftover, os.O_RDONLY)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                leftover.unlink()
            except OSError:  # its writer is still at it, or a file system without locks cannot tell: it stays
                pass
            finally:
                os.close(handle)


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries, so that a power cut cannot undo a rename made in it."""
    if os.name != "posix":  # other systems cannot open a folder; their renames are journalled
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    except OSError as error:  # some network and FUSE file systems cannot flush a folder: the file is written all the same
        if error.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(handle)
