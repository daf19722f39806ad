"""Commands side by side on one ``--out``: a seed or a shared find phase another process is
running is waited for, not trained twice, and a killed holder leaves no stale lock."""

from __future__ import annotations

import logging
import re
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from prunelab.config import load_recipe, recipe_yaml
from prunelab.runs import lock
from prunelab.runs.lock import LOCK, exclusive
from prunelab.runs.runner import FIND_CACHE, find_key, interrupted_seeds, resolve_device, run_recipe
from prunelab.train import Trainer

fcntl = pytest.importorskip("fcntl")

HOLDER = """
import fcntl, os, socket, sys
handle = open(sys.argv[1], "a+")
fcntl.flock(handle, fcntl.LOCK_EX)
handle.truncate(0)
handle.write(f"{os.getpid()} {socket.gethostname()}")
handle.flush()
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path: Path):
    """Another process holding the lock of ``tmp_path / "work"`` until its stdin closes."""
    folder = tmp_path / "work"
    folder.mkdir()
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder / LOCK)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "held\n"
    yield folder, process
    process.kill()
    process.wait()


def test_a_folder_another_process_holds_is_not_taken_until_it_lets_go(holder) -> None:
    folder, process = holder
    with exclusive(folder, "seed 0", wait=False) as mine:
        assert mine is False
    process.stdin.close()
    process.wait()
    with exclusive(folder, "seed 0", wait=False) as mine:
        assert mine is True


def test_a_killed_holder_leaves_no_stale_lock(holder) -> None:
    folder, process = holder
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with exclusive(folder, "seed 0", wait=False) as mine:
        assert mine is True


def test_a_waiting_process_says_for_whom_and_takes_the_lock_once_free(holder, monkeypatch, caplog) -> None:
    folder, process = holder
    naps = []

    def nap(seconds: float) -> None:  # the holder finishes during the second wait
        naps.append(seconds)
        if len(naps) == 2:
            process.stdin.close()
            process.wait()

    monkeypatch.setattr(lock.time, "sleep", nap)
    with caplog.at_level(logging.WARNING, logger="prunelab"), exclusive(folder, "seed 3 run") as mine:
        assert mine is True
        with exclusive(folder, "seed 3 run", wait=False) as again:  # held now: by this process
            assert again is False
    assert naps == [lock.POLL_SECONDS] * 2
    assert [r.getMessage() for r in caplog.records] == [f"seed 3 run: waiting for process {process.pid} on {os.uname().nodename}, which is running it in {folder}"]


def test_the_lock_is_signed_by_its_holder_alone(tmp_path: Path) -> None:
    """The signature a waiting command names the holder by replaces an earlier holder's, even a
    longer one, rather than running on from it into a signature of no process."""
    (tmp_path / LOCK).write_text("4194304 an-earlier-holder-s-long-host-name")
    with exclusive(tmp_path, "seed 0") as mine:
        assert mine is True
        assert (tmp_path / LOCK).read_text() == f"{os.getpid()} {socket.gethostname()}"


def hold(folder: Path):
    """The lock of ``folder``, taken as another process would: flock on its own open file."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK, "a+")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle


@pytest.mark.parametrize("finished_meanwhile", [True, False], ids=["finished-by-the-other", "left-unfinished"])
def test_a_seed_another_command_is_running_comes_last_and_is_not_run_twice(recipe, run: Path, tmp_path: Path, monkeypatch, finished_meanwhile) -> None:
    two = recipe.model_copy(update={"seeds": [0, 1]})
    folder = tmp_path / run.name
    other = hold(folder / "seed-0")
    trained = []
    real = Trainer.train_epoch

    def recording(self, epoch, **kwargs):
        trained.append((self.seed, self.phase, epoch))
        return real(self, epoch, **kwargs)

    orphan = folder / "seed-0" / ".checkpoint.safetensors.1a2b3c4d.tmp"

    def other_lets_go(seconds: float) -> None:
        # the other command, of seed 0 alone, wrote its recipe after this one's
        (folder / "recipe.yaml").write_text(recipe_yaml(recipe.model_copy(update={"seeds": [0]})))
        if finished_meanwhile:  # seed 0 as the other command left it: the shared run's, finished
            shutil.copytree(run / "seed-0", folder / "seed-0", dirs_exist_ok=True)
        else:  # killed in the middle of a write, after this command started
            orphan.write_bytes(b"half a checkpoint")
        other.close()

    monkeypatch.setattr(Trainer, "train_epoch", recording)
    monkeypatch.setattr(lock.time, "sleep", other_lets_go)
    assert run_recipe(two, tmp_path, progress=False) == folder
    seed1 = [(1, "find", 0), (1, "find", 1), (1, "eval", 0), (1, "eval", 1)]
    assert trained == (seed1 if finished_meanwhile else seed1 + [(0, p, e) for _, p, e in seed1])
    if finished_meanwhile:
        assert (folder / "seed-0" / "summary.json").read_bytes() == (run / "seed-0" / "summary.json").read_bytes()
    assert (folder / "summary.json").exists() and sorted(p.parent.name for p in folder.glob("seed-*/summary.json")) == ["seed-0", "seed-1"]
    assert not orphan.exists()  # under the lock, no write of another command can be going on
    assert load_recipe(folder / "recipe.yaml").seeds == [0, 1]  # both commands' seeds


def test_a_seed_another_command_is_running_is_not_said_to_be_interrupted(recipe, run: Path, tmp_path: Path) -> None:
    shutil.copytree(run.parent, tmp_path, dirs_exist_ok=True)
    (tmp_path / run.name / "seed-0" / "summary.json").unlink()  # its checkpoint stays: interrupted
    assert interrupted_seeds(tmp_path, recipe) == [0]
    other = hold(tmp_path / run.name / "seed-0")
    assert interrupted_seeds(tmp_path, recipe) == []
    other.close()
    assert interrupted_seeds(tmp_path, recipe) == [0]


def test_a_file_system_without_locks_runs_unlocked_with_a_warning(tmp_path: Path, monkeypatch) -> None:
    def refuse(handle, operation):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(lock.fcntl, "flock", refuse)
    with pytest.warns(UserWarning, match=r"\.lock cannot be locked .*Function not implemented.*may train the same seed twice"):
        with exclusive(tmp_path, "seed 0", wait=False) as mine:
            assert mine is True


def test_a_find_phase_another_command_is_training_is_waited_for(recipe, run: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    found = tmp_path / FIND_CACHE / find_key(recipe, resolve_device(recipe.device)) / "seed-0"
    other = hold(found)
    trained = []
    real = Trainer.train_epoch

    def recording(self, epoch, **kwargs):
        trained.append((self.phase, epoch))
        return real(self, epoch, **kwargs)

    def other_finishes(seconds: float) -> None:  # the find phase as the other command leaves it
        shutil.copytree(run.parent / FIND_CACHE, tmp_path / FIND_CACHE, dirs_exist_ok=True)
        other.close()

    monkeypatch.setattr(Trainer, "train_epoch", recording)
    monkeypatch.setattr(lock.time, "sleep", other_finishes)
    with caplog.at_level(logging.WARNING, logger="prunelab"):
        run_recipe(recipe, tmp_path, progress=False)
    assert trained == [("eval", 0), ("eval", 1)]  # the find phase is the other command's
    assert any(r.getMessage().startswith("seed 0 find: waiting for another process, which is running it in") for r in caplog.records)


@pytest.mark.parametrize("signature", [b"4194304", b"\xff\xfe\xfd"], ids=["cut short", "not text"])
def test_a_holder_whose_signature_was_cut_short_is_waited_for_as_another_process(tmp_path: Path, monkeypatch, caplog, signature) -> None:
    (tmp_path / LOCK).write_bytes(signature)  # its host name never written (a full disk, say), or damaged
    other = hold(tmp_path)
    monkeypatch.setattr(lock.time, "sleep", lambda seconds: other.close())
    with caplog.at_level(logging.WARNING, logger="prunelab"), exclusive(tmp_path, "seed 0 run") as mine:
        assert mine is True
    assert [r.getMessage() for r in caplog.records] == [f"seed 0 run: waiting for another process, which is running it in {tmp_path}"]


def test_a_folder_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OSError, match=rf"^cannot write in {re.escape(str(blocker / 'seed-0'))}: Not a directory$"):
        with exclusive(blocker / "seed-0", "seed 0"):
            pass


def read_only(monkeypatch) -> None:
    """The lock module's files as on a read-only run folder (a read-only mount, another user's
    runs): opened to read, and refused for writing with EROFS, as root too."""
    import builtins
    import errno

    def refuse_writes(path, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return builtins.open(path, mode, *args, **kwargs)

    monkeypatch.setattr(lock, "open", refuse_writes, raising=False)


def test_a_look_at_a_read_only_folder_s_lock_needs_no_write(holder, monkeypatch) -> None:
    """busy() only looks: a run folder one cannot write is looked at, held or not."""
    folder, process = holder
    read_only(monkeypatch)
    assert lock.busy(folder) is True
    process.stdin.close()
    process.wait()
    assert lock.busy(folder) is False


def test_a_look_beside_another_look_or_at_a_folder_never_locked_sees_no_holder(tmp_path: Path) -> None:
    """Two shows at once look at a run's seeds together: neither takes the other for a holder.
    A folder no command has locked (no lock file) has no holder either."""
    assert lock.busy(tmp_path) is False
    (tmp_path / LOCK).write_text("")
    with open(tmp_path / LOCK, "rb") as other:
        fcntl.flock(other, fcntl.LOCK_SH)  # the other show's look, going on
        assert lock.busy(tmp_path) is False


def test_without_flock_folders_are_not_locked_and_never_look_busy(tmp_path: Path, monkeypatch) -> None:
    """Windows has no flock: the block runs unlocked, even beside another, and no folder looks
    busy, whatever lock file is there (copied from a machine with flock, say)."""
    with hold(tmp_path):
        monkeypatch.setattr(lock, "fcntl", None)
        with exclusive(tmp_path, "seed 0", wait=False) as mine, exclusive(tmp_path, "seed 0", wait=False) as again:
            assert (mine, again) == (True, True)
        assert lock.busy(tmp_path) is False


def test_on_a_file_system_without_locks_no_folder_looks_busy(tmp_path: Path, monkeypatch) -> None:
    """Where flock fails (some network mounts) no command can hold a lock: an interrupted seed
    there is said to be interrupted, not to be running."""
    import errno

    (tmp_path / LOCK).write_text("4194304 a-host")

    def refuse(handle, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(lock.fcntl, "flock", refuse)
    assert lock.busy(tmp_path) is False


def test_show_reads_a_read_only_run_with_an_interrupted_seed(recipe, run: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """A run whose second seed was interrupted (by a full disk, say), on a read-only mount: show
    prints the finished seed and says the other is interrupted, not errno's words about a lock."""
    from prunelab import cli

    folder = tmp_path / run.name
    shutil.copytree(run, folder)
    (folder / "recipe.yaml").write_text(recipe_yaml(recipe.model_copy(update={"seeds": [0, 1]})))
    (folder / "seed-1").mkdir()
    (folder / "seed-1" / LOCK).write_text("")  # as the command interrupted in seed 1 left it
    read_only(monkeypatch)
    assert cli.main(["show", str(folder)]) == 0
    captured = capsys.readouterr()
    assert "seed 1 interrupted (run its command again to finish it)" in captured.err and "Errno" not in captured.err
    assert f"{run.name} (seeds [0])" in captured.out


def test_compare_says_which_unfinished_seeds_are_running_and_which_were_interrupted(recipe, run: Path, tmp_path: Path, capsys) -> None:
    from prunelab import cli

    folder = tmp_path / run.name
    shutil.copytree(run, folder)
    (folder / "recipe.yaml").write_text(recipe_yaml(recipe.model_copy(update={"seeds": [0, 1, 2]})))
    (folder / "seed-2").mkdir()
    (folder / "seed-2" / LOCK).write_text("")  # as the command interrupted in seed 2 left it
    with hold(folder / "seed-1"):  # seed 1: another command is running it
        assert cli.main(["compare", str(folder)]) == 0
    assert capsys.readouterr().err == (f"prunelab: {folder}: the results are of the finished seeds only: seed 1 still running in another "
                                       "command; seed 2 interrupted (run its command again to finish it)\n")  # fmt: skip


def test_a_lock_that_cannot_be_signed_on_a_full_disk_is_named(tmp_path: Path, monkeypatch) -> None:
    """Signing the lock with this process needs a block of the disk: on a full one the error
    names the lock file, not errno's words alone, and the lock is let go."""
    import errno
    import io

    class Full(io.FileIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def full_disk(path, mode="r", *args, **kwargs):
        return Full(path, mode.replace("b", ""))  # unbuffered, as a full disk answers a flush

    monkeypatch.setattr(lock, "open", full_disk, raising=False)
    with pytest.raises(OSError, match=rf"^cannot write {re.escape(str(tmp_path / LOCK))}: No space left on device$"):
        with exclusive(tmp_path, "seed 0"):
            pass
    monkeypatch.undo()
    with exclusive(tmp_path, "seed 0", wait=False) as mine:
        assert mine is True
