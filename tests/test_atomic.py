import errno
import os
from pathlib import Path

import pytest

from prunelab import atomic
from prunelab.atomic import atomic_write


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    target.write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"), atomic_write(target) as file:
        file.write(b"half of the new")
        raise OSError("disk full")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_the_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "masks.safetensors"
    for content in (b"first", b"second, longer"):
        with atomic_write(target) as file:
            file.write(content)
        assert target.read_bytes() == content
    assert list(target.parent.iterdir()) == [target]


@pytest.mark.skipif(os.name != "posix", reason="folders can be opened and flushed on POSIX only")
def test_the_file_then_the_rename_in_its_folder_are_flushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flushed = []
    fsync = os.fsync

    def record(handle: int) -> None:
        flushed.append(os.fstat(handle).st_ino)
        fsync(handle)

    monkeypatch.setattr(os, "fsync", record)
    target = tmp_path / "metrics.json"
    with atomic_write(target) as file:
        file.write(b"{}")
    assert flushed == [target.stat().st_ino, tmp_path.stat().st_ino]


@pytest.mark.skipif(os.name != "posix", reason="folders can be opened and flushed on POSIX only")
def test_a_folder_its_file_system_cannot_flush_does_not_fail_the_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fsync = os.fsync
    folder = tmp_path.stat().st_ino

    def refuse_folders(handle: int) -> None:
        if os.fstat(handle).st_ino == folder:
            raise OSError(errno.EINVAL, "Invalid argument")
        fsync(handle)

    monkeypatch.setattr(os, "fsync", refuse_folders)
    with atomic_write(tmp_path / "summary.json") as file:
        file.write(b"{}")
    assert (tmp_path / "summary.json").read_bytes() == b"{}"


def test_a_folder_flush_failing_otherwise_is_an_error(tmp_path, monkeypatch):
    """Only EINVAL / ENOTSUP (file systems that cannot flush a folder) are forgiven; an I/O
    error flushing the rename is reported."""
    fsync, folder = os.fsync, tmp_path.stat().st_ino

    def failing(handle):
        if os.fstat(handle).st_ino == folder:
            raise OSError(errno.EIO, "Input/output error")
        fsync(handle)

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError, match="Input/output error"), atomic_write(tmp_path / "summary.json") as file:
        file.write(b"{}")


def test_a_write_removes_what_a_killed_write_to_its_file_left(tmp_path: Path) -> None:
    """A kill between the temporary file and the rename leaves the temporary file: the next
    write to that file removes it. Not a write still going on (its writer holds a lock on it,
    even stalled since before this process started, as a download waiting for the network),
    nor one written since this process started, nor the files of other targets."""
    import fcntl

    killed, stalled, recent, other = (tmp_path / f".{name}.{i}badf00d.tmp" for i, name in enumerate(("table.md",) * 3 + ("report.md",)))
    for leftover in (killed, stalled, recent, other):
        leftover.write_bytes(b"half")
    for old in (killed, stalled, other):
        os.utime(old, (atomic.STARTED - 60, atomic.STARTED - 60))
    writer = os.open(stalled, os.O_WRONLY)
    fcntl.flock(writer, fcntl.LOCK_EX)
    try:
        with atomic.atomic_write(tmp_path / "table.md") as file:
            file.write(b"whole")
    finally:
        os.close(writer)
    assert (tmp_path / "table.md").read_bytes() == b"whole"
    assert [path.exists() for path in (killed, stalled, recent, other)] == [False, True, True, True]


def test_leftovers_are_told_by_the_exact_name_of_their_file(tmp_path: Path) -> None:
    """A name with characters glob reads as a pattern (``[1]``) matches itself only: its own
    leftover is removed, not that of a file the pattern would match (``table1.md``)."""
    own, lookalike = tmp_path / ".table[1].md.badf00d.tmp", tmp_path / ".table1.md.badf00d.tmp"
    for leftover in (own, lookalike):
        leftover.write_bytes(b"half")
        os.utime(leftover, (atomic.STARTED - 60, atomic.STARTED - 60))
    with atomic_write(tmp_path / "table[1].md") as file:
        file.write(b"whole")
    assert sorted(path.name for path in tmp_path.iterdir()) == [lookalike.name, "table[1].md"]


def test_a_file_system_without_locks_still_writes_and_keeps_what_it_cannot_tell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """flock failing with ENOLCK (some network mounts): the write is made whole, with no
    temporary left, and an old leftover stays, since a write going on cannot be told from it."""

    def no_locks(_fd: int, _operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    leftover = tmp_path / ".table.md.badf00d.tmp"
    leftover.write_bytes(b"half")
    os.utime(leftover, (atomic.STARTED - 60, atomic.STARTED - 60))
    monkeypatch.setattr(atomic.fcntl, "flock", no_locks)
    with atomic_write(tmp_path / "table.md") as file:
        file.write(b"whole")
    assert (tmp_path / "table.md").read_bytes() == b"whole"
    assert sorted(path.name for path in tmp_path.iterdir()) == [leftover.name, "table.md"]
