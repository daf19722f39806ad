"""Runs over several processes (torchrun, Gloo on CPU): the same results as one process, written once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from prunelab.config import load_recipe, run_name
from prunelab.runs.runner import FIND_CACHE, run_recipe

TINY = ["device=cpu", "seeds=[0]", "find.epochs=2", "find.batch_size=500", "eval.epochs=2", "eval.batch_size=500"]


def torchrun(*args: str, processes: int = 2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "prunelab", *args]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on two cores
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600, check=False)


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
        return
    # Gradients averaged over two halves of each batch are those of the whole batch, up to rounding.
    mine, theirs = load_file(str(both / "model.safetensors")), load_file(str(single / "model.safetensors"))
    for name in theirs:
        torch.testing.assert_close(mine[name], theirs[name], rtol=1e-4, atol=1e-5)
    masks, reference = load_file(str(both / "masks.safetensors")), load_file(str(single / "masks.safetensors"))
    assert masks.keys() == reference.keys() and all(torch.equal(masks[k], reference[k]) for k in masks)
    for key in ("dense_acc", "pruned_acc", "final_acc", "sparsity", "remaining_parameters", "speedup"):
        assert summary[key] == pytest.approx(expected[key], abs=2e-3), key


def test_a_batch_that_does_not_split_evenly_is_a_clear_error_before_training(data_dir: Path, tmp_path: Path) -> None:
    done = torchrun("run", "--out", str(tmp_path), *(f"--set={o}" for o in [*TINY, f"data.data_dir={data_dir}", "find.batch_size=499"]))
    assert done.returncode != 0
    assert not any(tmp_path.iterdir())  # checked before any training: nothing written
    assert done.stderr.count("prunelab: error: find.batch_size=499 does not split evenly over the 2 processes") == 1


def test_only_run_works_over_several_processes(tmp_path: Path) -> None:
    done = torchrun("show", str(tmp_path))
    assert done.returncode != 0
    assert "only `prunelab run` works over several processes; run `prunelab show` without torchrun" in done.stderr


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
    assert sum(line.startswith("prunelab: error: process 1 of 2 stopped: ") for line in ours) == 1
    assert len(ours) == 3  # and "running ..."
    assert "/prunelab/" not in done.stderr  # no traceback through prunelab's code (torchrun prints its own summary)
