import errno
import os
import stat
import time
from pathlib import Path

import pytest

from prunelab import atomic
from prunelab.atomic import atomic_write


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt("Ctrl-C")], ids=["full disk", "Ctrl-C"])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, error: BaseException) -> None:
    target = tmp_path / "summary.json"
    target.write_bytes(b"old")
    with pytest.raises(type(error), match=str(error)), atomic_write(target) as file:
        file.write(b"half of the new")
        raise error
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_the_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "masks.safetensors"
    for content in (b"first", b"second, longer"):
        with atomic_write(target) as file:
            file.write(content)
        assert target.read_bytes() == content
    assert list(target.parent.iterdir()) == [target]


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX's")
def test_a_written_file_is_readable_as_any_other_under_the_umask(tmp_path: Path) -> None:
    """Runs are shared by copying and reading their folders: a file written atomically gets
    the mode of any new file (0o666 less the umask), not a private temporary file's 0o600."""
    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "summary.json") as file:
            file.write(b"{}")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "summary.json").stat().st_mode) == 0o644


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX's")
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444], ids=oct)
def test_a_rewritten_file_keeps_the_mode_it_was_given(tmp_path: Path, mode: int) -> None:
    """A user who made a result private (``chmod 600``), or read-only, finds it so after a
    rerun rewrites it, as an editor leaves a file it saves; the content is the new one."""
    target = tmp_path / "summary.json"
    target.write_bytes(b"old")
    target.chmod(mode)
    umask = os.umask(0o022)
    try:
        with atomic_write(target) as file:
            file.write(b"new")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert target.read_bytes() == b"new"


def test_a_killed_write_s_temporary_is_hidden_and_removed_by_the_next_write(tmp_path: Path) -> None:
    """The temporary file a write makes is hidden beside its target and, if a kill leaves it
    (here: made again under its name once the write is done), the next write removes it."""
    target = tmp_path / "summary.json"
    with atomic_write(target) as file:
        (temporary,) = tmp_path.iterdir()
        file.write(b"{}")
    assert temporary.name.startswith(".summary.json.")
    temporary.write_bytes(b"half")
    os.utime(temporary, (atomic.STARTED - 60, atomic.STARTED - 60))
    with atomic_write(target) as file:
        file.write(b"{}")
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.skipif(os.name != "posix", reason="flock is POSIX's")
def test_two_writes_of_one_file_at_once_each_keep_their_own_temporary(tmp_path: Path) -> None:
    """Two commands side by side writing their run's recipe: each write has a temporary file
    of its own, and one begun before this process started (a stalled download, say) is no
    kill's leftover to the other write, since its writer holds a lock on it. The last rename wins."""
    target = tmp_path / "recipe.yaml"
    with atomic_write(target) as first:
        first.write(b"first")
        (temporary,) = tmp_path.iterdir()
        os.utime(temporary, (atomic.STARTED - 60, atomic.STARTED - 60))
        with atomic_write(target) as second:
            second.write(b"second")
        assert temporary.exists() and target.read_bytes() == b"second"
    assert target.read_bytes() == b"first"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.skipif(os.name != "posix", reason="folders can be opened and flushed on POSIX only")
def test_the_file_then_the_rename_in_its_folder_are_flushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flushed = []
    fsync = os.fsync

    def record(handle: int) -> None:  # what is flushed, how much of it, and whether the rename was made
        flushed.append((os.fstat(handle).st_ino, os.fstat(handle).st_size, target.exists()))
        fsync(handle)

    monkeypatch.setattr(os, "fsync", record)
    target = tmp_path / "metrics.json"
    with atomic_write(target) as file:
        file.write(b"{}")
    assert [(ino, made) for ino, _, made in flushed] == [(target.stat().st_ino, False), (tmp_path.stat().st_ino, True)]
    assert flushed[0][1] == 2  # the file's bytes, all of them out of Python's buffer


@pytest.mark.skipif(os.name != "posix", reason="folders can be opened and flushed on POSIX only")
@pytest.mark.parametrize("refusal", [errno.EINVAL, errno.ENOTSUP], ids=errno.errorcode.get)
def test_a_folder_its_file_system_cannot_flush_does_not_fail_the_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: int) -> None:
    fsync = os.fsync
    folder = tmp_path.stat().st_ino

    def refuse_folders(handle: int) -> None:
        if os.fstat(handle).st_ino == folder:
            raise OSError(refusal, os.strerror(refusal))
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
    os.utime(killed, (time.time(), atomic.STARTED - 60))  # read since (by a backup, say): written before all the same
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
    leftover is removed, not that of a file the pattern would match (``table1.md``), nor those
    of files whose names begin or end as its own does."""
    own = tmp_path / ".table[1].md.badf00d.tmp"
    lookalikes = [tmp_path / f".{name}.badf00d.tmp" for name in ("table1.md", "table[1].mdx", "xtable[1].md")]
    for leftover in (own, *lookalikes):
        leftover.write_bytes(b"half")
        os.utime(leftover, (atomic.STARTED - 60, atomic.STARTED - 60))
    with atomic_write(tmp_path / "table[1].md") as file:
        file.write(b"whole")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([path.name for path in lookalikes] + ["table[1].md"])


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the open files of a process are listed in /proc on Linux")
def test_a_write_leaves_no_file_open(tmp_path: Path) -> None:
    """A run writes thousands of files: each write closes all it opened (the folder it flushes,
    the leftovers it looks at), or the run would stop at the limit of open files."""
    leftover = tmp_path / ".table.md.badf00d.tmp"
    leftover.write_bytes(b"half")
    os.utime(leftover, (atomic.STARTED - 60, atomic.STARTED - 60))
    before = sorted(os.listdir("/proc/self/fd"))
    with atomic_write(tmp_path / "table.md") as file:
        file.write(b"whole")
    assert sorted(os.listdir("/proc/self/fd")) == before
    assert not leftover.exists()


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
