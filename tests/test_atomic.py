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
    write to that file removes it; one written since this process started may be a write
    going on beside this one, and the files of other targets are not this write's to remove."""
    killed, ongoing, other = (tmp_path / name for name in (".table.md.0badf00d.tmp", ".table.md.1badf00d.tmp", ".report.md.2badf00d.tmp"))
    for leftover in (killed, ongoing, other):
        leftover.write_bytes(b"half")
    for old in (killed, other):
        os.utime(old, (atomic.STARTED - 60, atomic.STARTED - 60))
    with atomic.atomic_write(tmp_path / "table.md") as file:
        file.write(b"whole")
    assert (tmp_path / "table.md").read_bytes() == b"whole"
    assert not killed.exists() and ongoing.exists() and other.exists()
