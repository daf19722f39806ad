"""Runs over several processes (torchrun, Gloo on CPU): the same results as one process, written once."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from prunelab.config import load_recipe, run_name
from prunelab.data import load_dataset
from prunelab.runs.runner import FIND_CACHE, run_recipe
from prunelab.runs.session import load_trained
from prunelab.train.trainer import evaluate

TINY = ["device=cpu", "seeds=[0]", "find.epochs=2", "find.batch_size=500", "eval.epochs=2", "eval.batch_size=500"]


def torchrun(*args: str, processes: int = 2, cwd: Path | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "prunelab", *args]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on two cores
    return subprocess.run(command, capture_output=True, text=True, env=environment, cwd=cwd, timeout=600, check=False)


@pytest.mark.parametrize(
    ("source", "extra"),
    [
        ("default", ["model.options={}", "prune.scope=layerwise"]),  # no layer emptied: retraining moves every layer
        # snapshots written and read, some deleted once the LPR record is made
        ("late_rewind", ["model.options={}", "prune.levels=2", "eval.rewind=epoch:1", "find.lpr_every=1"]),
        ("structured", ["model.options={channels: 16, batch_norm: true}"]),  # BatchNorm statistics, a shrunk model
    ],
)
def test_two_processes_give_the_results_of_one(source: str, extra: list[str], data_dir: Path, tmp_path: Path) -> None:
    overrides = [*TINY, f"data.data_dir={data_dir}", *extra]
    single = run_recipe(load_recipe(source, overrides), tmp_path / "one", progress=False) / "seed-0"
    done = torchrun("run", source, "--out", str(tmp_path / "two"), *(f"--set={o}" for o in overrides))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("| final_acc ") == 1  # the main process reports, once
    # its own run directory: BatchNorm statistics are per process, so results of two process
    # counts must not be averaged together, nor a find phase shared between them
    (run,) = (tmp_path / "two").glob(f"{single.parent.name}-2proc")
    (find_one,), (find_two,) = ((tmp_path / out / FIND_CACHE).iterdir() for out in ("one", "two"))
    assert find_one.name != find_two.name
    both = run / "seed-0"
    assert sorted(p.relative_to(both) for p in both.rglob("*")) == sorted(p.relative_to(single) for p in single.rglob("*"))
    assert not list((tmp_path / "two").rglob("*.tmp"))
    summary, expected = (json.loads((f / "summary.json").read_text()) for f in (both, single))
    if source == "structured":
        # BatchNorm normalises each process's half of the batch by its own statistics (as
        # DistributedDataParallel does), so training differs slightly from one process's.
        assert summary["channel_sparsity"] == expected["channel_sparsity"]
        assert summary["final_acc"] == pytest.approx(expected["final_acc"], abs=0.05)
        # Every process evaluates its part of the test set with the main process's statistics:
        # the reported numbers are those of the saved model.
        model, _ = load_trained(run)
        data = load_dataset("mnist1d", data_dir)
        loss, accuracy = evaluate(model, data.x_test, data.y_test, torch.device("cpu"))
        last = json.loads((both / "metrics.json").read_text())[-1]
        assert (last["test_loss"], last["test_acc"]) == pytest.approx((loss, accuracy), abs=1e-6)
        return
    # Gradients averaged over two halves of each batch are those of the whole batch, up to rounding.
    mine, theirs = load_file(str(both / "model.safetensors")), load_file(str(single / "model.safetensors"))
    for name in theirs:
        torch.testing.assert_close(mine[name], theirs[name], rtol=1e-4, atol=1e-5)
    masks, reference = load_file(str(both / "masks.safetensors")), load_file(str(single / "masks.safetensors"))
    assert masks.keys() == reference.keys() and all(torch.equal(masks[k], reference[k]) for k in masks)
    for key in ("dense_acc", "pruned_acc", "final_acc", "sparsity", "remaining_parameters", "speedup"):
        assert summary[key] == pytest.approx(expected[key], abs=2e-3), key


def test_the_main_process_downloads_and_augmentation_draws_as_one_process(tmp_path: Path) -> None:
    """CIFAR-10 fetched on first use (from a small archive at a file:// address): the main
    process downloads and extracts it alone, where two would collide on the same folder; and
    each example gets the random crop and flip one process gives it, so the results are one
    process's, up to rounding. Its 85 training examples do not split into equal shares: the
    example padding the last batch counts for nothing."""
    rng = np.random.default_rng(0)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, n in [*((f"data_batch_{i}", 17) for i in range(1, 6)), ("test_batch", 20)]:
            batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": rng.integers(0, 10, n).tolist()}
            content = pickle.dumps(batch, protocol=3)  # numpy arrays pickled as in the real files
            member = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    (tmp_path / "local_cifar.py").write_text(
        "import dataclasses\nimport prunelab.data.cifar as cifar\n"
        f"cifar.CIFAR10 = dataclasses.replace(cifar.CIFAR10, url={archive.as_uri()!r}, md5={md5!r})\n"
    )
    overrides = ["device=cpu", "seeds=[0]", "data.name=cifar10", "data.download=true", "model.name=mlp", "model.options={}",
                 "find.epochs=2", "find.batch_size=20", "eval.epochs=1", "eval.batch_size=20"]  # fmt: skip
    done = torchrun("run", "--import", "local_cifar", "--out", str(tmp_path / "two"),
                    *(f"--set={o}" for o in [*overrides, f"data.data_dir={tmp_path / 'data-two'}"]), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("downloading ") == 1
    assert sorted(p.name for p in (tmp_path / "data-two").iterdir()) == ["cifar-10-batches-py"]  # no leftovers
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "data-one", filter="data")
    recipe = load_recipe(None, [*overrides, "data.download=false", f"data.data_dir={tmp_path / 'data-one'}"])
    single = run_recipe(recipe, tmp_path / "one", progress=False) / "seed-0"
    (both,) = (tmp_path / "two").glob("*-2proc/seed-0")
    mine, theirs = load_file(str(both / "model.safetensors")), load_file(str(single / "model.safetensors"))
    for name in theirs:  # drawn for each process's own first examples, they differ by about 1e-2
        torch.testing.assert_close(mine[name], theirs[name], rtol=1e-4, atol=1e-5)
    rows, expected = (json.loads((folder / "metrics.json").read_text()) for folder in (both, single))
    assert [row["train_images"] for row in rows] == [row["train_images"] for row in expected] == [85, 85, 85]
    for row, reference in zip(rows, expected):
        assert (row["train_loss"], row["train_acc"]) == pytest.approx((reference["train_loss"], reference["train_acc"]), abs=1e-5)


def test_data_the_main_process_cannot_load_is_said_once(tmp_path: Path) -> None:
    """The main process loads first; when it fails, the others stop without a word of their own."""
    done = torchrun("run", "--out", str(tmp_path / "runs"), "--set=data.name=cifar10", f"--set=data.data_dir={tmp_path}",
                    "--set=model.name=mlp", "--set=model.options={}")  # fmt: skip
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("prunelab: error")]
    assert errors == [f"prunelab: error: cifar10: {tmp_path / 'cifar-10-batches-py' / 'data_batch_1'} not found. Pass download=True "
                      "(CLI: --set data.download=true) to fetch it, or put the files there (the data folder is set by data_dir "
                      "or $PRUNELAB_DATA)."]  # fmt: skip
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_batch_that_does_not_split_evenly_is_a_clear_error_before_training(data_dir: Path, tmp_path: Path) -> None:
    done = torchrun("run", "--out", str(tmp_path), *(f"--set={o}" for o in [*TINY, f"data.data_dir={data_dir}", "find.batch_size=499"]))
    assert done.returncode != 0
    assert not any(tmp_path.iterdir())  # checked before any training: nothing written
    assert done.stderr.count("prunelab: error: find.batch_size=499 does not split evenly over the 2 processes") == 1


def test_only_run_works_over_several_processes(tmp_path: Path) -> None:
    done = torchrun("show", str(tmp_path))
    # torchrun exits 1 for any failed process; its report gives each process's own code: the first to
    # fail exits with the 2 of a refused command, and a process still running then is stopped by SIGTERM
    assert done.returncode == 1
    failures, root_cause = done.stderr.split("Root Cause (first observed failure):")
    assert re.findall(r"exitcode\s*: (-?\d+)", root_cause) == ["2"]
    assert set(re.findall(r"exitcode\s*: (-?\d+)", failures)) <= {"2", f"-{signal.SIGTERM.value}"}
    assert done.stderr.count("only `prunelab run` works over several processes; run `prunelab show` without torchrun") == 1


def test_a_process_that_stops_stops_the_others_with_one_line_each(data_dir: Path, tmp_path: Path) -> None:
    """The main process fails to write (a folder where metrics.csv goes); the other, waiting
    for it, says that it stopped in one line, not with a traceback of its own."""
    overrides = [*TINY, f"data.data_dir={data_dir}", "model.options={}"]
    (tmp_path / f"{run_name(load_recipe(None, overrides))}-2proc" / "seed-0" / "metrics.csv").mkdir(parents=True)
    done = torchrun("run", "--out", str(tmp_path), "--no-progress", *(f"--set={o}" for o in overrides))
    assert done.returncode != 0
    ours = [line for line in done.stderr.splitlines() if line.startswith(("prunelab: running", "prunelab: error", "[rank"))]
    folder = tmp_path / f"{run_name(load_recipe(None, overrides))}-2proc"
    assert f"prunelab: error: cannot write {folder / 'seed-0' / 'metrics.csv'}: Is a directory" in ours
    stopped = [line for line in ours if line.startswith("prunelab: error: process 1 of 2 stopped: ")]
    # torchrun stops the processes still running once one ends (SIGTERM): the other may be stopped
    # before it said so, or after; its exit code in torchrun's report tells which
    other = re.search(r"rank\s*: 1 \(local_rank: 1\)\s*exitcode\s*: (-?\d+)", done.stderr)
    terminated = f"-{signal.SIGTERM.value}"
    assert (len(stopped), other and other[1]) in {(1, "1"), (1, terminated), (0, terminated)}, done.stderr[-3000:]
    assert len(ours) == 2 + len(stopped)  # and "running ..."
    assert "/prunelab/" not in done.stderr  # no traceback through prunelab's code (torchrun prints its own summary)


def test_a_process_besides_the_main_one_reads_nothing_of_the_find_phase_it_copies(tmp_path: Path, monkeypatch) -> None:
    """Process 1 may reach the copy before process 0 has written the find phase's checkpoint
    (which failed fresh 2-process runs now and then): it neither reads nor writes, it waits."""
    from prunelab.distributed import World
    from prunelab.runs import io, runner

    waited = []
    monkeypatch.setattr(runner, "world", lambda: World(1, 2, 1))
    monkeypatch.setattr(io, "world", lambda: World(1, 2, 1))
    monkeypatch.setattr(runner, "barrier", lambda: waited.append(True))
    runner.copy_shared_find(tmp_path / "run" / "seed-0", tmp_path / "not-written-yet")
    assert waited == [True] and not (tmp_path / "run").exists()


def test_every_process_has_read_a_checkpoint_before_the_main_one_may_replace_it(run: Path, recipe, monkeypatch) -> None:
    """A process that read the old journal and then the main one's next checkpoint (the model
    without the channels it removed) failed on the weights' shapes: a barrier follows the reads."""
    from prunelab.runs import session as session_module

    calls, load = [], session_module.load_checkpoint

    def read(*args):
        calls.append("read")
        return load(*args)

    monkeypatch.setattr(session_module, "load_checkpoint", read)
    monkeypatch.setattr(session_module, "barrier", lambda: calls.append("barrier"))
    session_module.Session(run / "seed-0", recipe, 0, session_module.recipe_data(recipe), torch.device("cpu"), progress=False)
    assert calls == ["read", "barrier"]


def test_a_sweep_over_several_processes_has_a_table_of_its_own(data_dir: Path, tmp_path: Path) -> None:
    """Its runs are not those of one process (other folders), so neither is its table; and
    the table says the command that made it, torchrun included."""
    sweep = ["--set=sweep.grid={prune.sparsity: [0.5, 0.6]}"]
    done = torchrun("run", "--out", str(tmp_path), "--no-progress", *(f"--set={o}" for o in [*TINY, f"data.data_dir={data_dir}"]), *sweep)
    assert done.returncode == 0, done.stderr[-3000:]
    (table,) = tmp_path.glob("*-table.md")
    assert table.name.endswith("-2proc-table.md")
    assert table.read_text().startswith("Made by `torchrun --nproc_per_node 2 -m prunelab run --set ")
    assert len(list(tmp_path.glob("*-2proc"))) == 2 and (tmp_path / table.name.replace("-table.md", "-report")).is_dir()


@pytest.mark.parametrize("case", ["out is a file", "import fails", "data_dir is a file", "damaged checkpoint"])
def test_trouble_every_process_meets_is_said_once(case: str, data_dir: Path, tmp_path: Path) -> None:
    """An unusable --out or data folder, a module that does not import, a damaged checkpoint:
    every process would meet them alike; the main process says it, the others say nothing."""
    overrides = [*TINY, f"data.data_dir={data_dir}", "model.options={}"]
    out, args = tmp_path / "runs", []
    if case == "out is a file":
        out.write_text("")
        expected = f"prunelab: error: --out {out} is a file, not a folder"
    elif case == "import fails":
        args, expected = ["--import", "no_such_module_here"], "prunelab: error: --import no_such_module_here: No module named"
    elif case == "data_dir is a file":
        (tmp_path / "data").write_text("")
        overrides.append(f"data.data_dir={tmp_path / 'data'}")
        expected = f"prunelab: error: data.data_dir={tmp_path / 'data'} is a file, not a folder"
    else:  # an interrupted seed whose checkpoint was cut short (a full disk, say)
        checkpoint = out / f"{run_name(load_recipe(None, overrides))}-2proc" / "seed-0" / "checkpoint.safetensors"
        checkpoint.parent.mkdir(parents=True)
        checkpoint.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
        expected = f"prunelab: error: {checkpoint} is damaged"
    done = torchrun("run", "--out", str(out), "--no-progress", *args, *(f"--set={o}" for o in overrides), cwd=tmp_path)
    assert done.returncode != 0
    assert done.stderr.count("prunelab: error") == 1 and expected in done.stderr, done.stderr[-3000:]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_torch_cannot_see_is_said_once_before_anything_is_written(data_dir: Path, tmp_path: Path) -> None:
    """The main process met it while telling what the run would do, the others when the run
    started: each said it."""
    done = torchrun("run", "--out", str(tmp_path), *(f"--set={o}" for o in [*TINY, f"data.data_dir={data_dir}", "device=cuda"]))
    assert done.returncode != 0
    assert done.stderr.count("prunelab: error") == 1, done.stderr[-3000:]
    assert "prunelab: error: device: cuda was asked for, but torch sees no CUDA device" in done.stderr
    assert not any(tmp_path.iterdir())



@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds torchrun's processes in /proc (Linux)")
def test_killing_torchrun_ends_the_processes_it_started(data_dir: Path, tmp_path: Path) -> None:
    """torchrun starts each process in a session of its own: a kill -9 of torchrun's process
    group reached torchrun alone, and the processes trained on (a run of hours, holding its
    locks: the command run again waited for them)."""
    sets = [f"--set={o}" for o in [*TINY, f"data.data_dir={data_dir}", "model.options={}", "find.epochs=1000"]]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "prunelab", "run",
               "--out", str(tmp_path), "--no-progress", *sets]  # fmt: skip
    job = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    workers, stop = [], threading.Timer(600, os.killpg, (job.pid, signal.SIGTERM))  # never waits for ever on torchrun's output
    stop.start()
    try:
        assert any(line.startswith("prunelab: running ") for line in job.stderr)  # they train
        workers = Path(f"/proc/{job.pid}/task/{job.pid}/children").read_text().split()
        os.killpg(job.pid, signal.SIGKILL)
        job.communicate(timeout=60)  # they write to torchrun's stderr: it ends when they have all ended
    except subprocess.TimeoutExpired:
        for pid in workers:
            os.kill(int(pid), signal.SIGKILL)
        pytest.fail(f"the processes torchrun started, {workers}, outlived it")
    finally:
        stop.cancel()
        if job.poll() is None:  # the test failed before the kill: torchrun ends its processes on SIGTERM
            os.killpg(job.pid, signal.SIGTERM)
        job.wait(timeout=60)
