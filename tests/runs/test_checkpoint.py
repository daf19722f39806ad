"""One checkpoint file: model, masks, optimizer state (tensors and plain values) and journal."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from prunelab.masks import Pruner
from prunelab.runs.checkpoint import load_checkpoint, read_journal, save_checkpoint
from prunelab.runs.io import DamagedRunError, save_tensors


class Counting(torch.optim.SGD):
    """SGD that also keeps plain numbers per weight, as some optimizers do."""

    @torch.no_grad()
    def step(self, closure=None):
        super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["count"] = state.get("count", 0) + 1
                state["scale"] = 0.5


def test_round_trip_of_weights_masks_optimizer_state_and_journal(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    pruner = Pruner(model)
    pruner.prune(0.5)
    optimizer = Counting(model.parameters(), lr=0.1, momentum=0.9)
    pruner.attach(optimizer)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(4, 6)).sum().backward()
        optimizer.step()
    journal = {"phase": None, "done": {"find": {"epochs": 2}}}
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(path, model, pruner, optimizer, journal)

    torch.manual_seed(1)
    other = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    other_pruner = Pruner(other)
    loaded_journal, state = load_checkpoint(path, other, other_pruner)
    assert loaded_journal == journal == read_journal(path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    assert other_pruner.masks.keys() == pruner.masks.keys()
    assert all(torch.equal(other_pruner.masks[n], pruner.masks[n]) for n in pruner.masks)
    restored = Counting(other.parameters(), lr=0.5, momentum=0.0)
    restored.load_state_dict(state)
    expected = optimizer.state_dict()
    assert restored.state_dict()["param_groups"] == expected["param_groups"]
    for index, entries in expected["state"].items():
        mine = restored.state_dict()["state"][index]
        assert mine.keys() == entries.keys() and mine["count"] == 2 and mine["scale"] == 0.5
        assert torch.equal(mine["momentum_buffer"], entries["momentum_buffer"])


def test_between_phases_there_is_no_optimizer_state(tmp_path: Path) -> None:
    model = nn.Linear(3, 2)
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(path, model, Pruner(model), None, {"phase": None, "done": {}})
    assert load_checkpoint(path, nn.Linear(3, 2), Pruner(nn.Linear(3, 2)))[1] is None


def test_lr_logs_are_tensors_of_the_file_not_its_metadata(tmp_path: Path) -> None:
    """safetensors caps metadata at 100 MB: millions of logged steps must not go there."""
    model = nn.Linear(3, 2)
    steps = [0.1 * 0.999**k for k in range(100_000)]
    journal = {
        "done": {"find": {"history": [{"epoch": 1}], "lr_log": steps, "steps_per_epoch": 10}, "level-1/eval": {"lr_log": []}},
        "phase": {"name": "level-2/eval", "state": {"epoch": 1, "step": 3, "lr_log": [0.5, 0.25, 0.125], "history": []}},
    }
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(path, model, Pruner(model), None, journal)
    assert read_journal(path) == journal == load_checkpoint(path, nn.Linear(3, 2), Pruner(nn.Linear(3, 2)))[0]
    with safe_open(str(path), framework="pt") as file:
        assert len(file.metadata()["journal"]) < 1000
        assert file.get_tensor("lr_log/0").dtype == torch.float64


@pytest.mark.parametrize(
    ("metadata", "tensors", "problem"),
    [
        (None, {}, "its metadata lack 'journal'"),
        ({"journal": '{"done": {}, "phase": null}'}, {}, "its metadata lack 'optimizer'"),
        ({"journal": "{", "optimizer": "{}"}, {}, "its metadata are not valid JSON"),
        ({"journal": "[]", "optimizer": "{}"}, {}, "its journal or optimizer metadata are not as prunelab writes them"),
        ({"journal": '{"phase": null}', "optimizer": "{}"}, {}, "its journal or optimizer metadata are not as prunelab writes them"),
        ({"journal": '{"done": {}}', "optimizer": "{}"}, {}, "its journal or optimizer metadata are not as prunelab writes them"),
        ({"journal": '{"done": {}, "phase": {"name": "eval"}}', "optimizer": "{}"}, {}, "its journal or optimizer metadata are not as prunelab writes them"),
        ({"journal": '{"done": {}, "phase": null}', "optimizer": '{"scalars": {}}'}, {}, "its journal or optimizer metadata are not as prunelab writes them"),
        ({"journal": '{"done": {}, "phase": null}', "optimizer": "{}"}, {"foo/bar": torch.zeros(1)}, "it holds tensors of 'foo', which prunelab does not write"),
        ({"journal": '{"done": {"find": {"lr_log": {"tensor": "lr_log/0"}}}, "phase": null}', "optimizer": "{}"}, {}, "an LR log of its journal is missing"),
    ],
)
def test_a_checkpoint_of_other_metadata_is_named_as_damaged(tmp_path: Path, metadata, tensors, problem) -> None:
    path = tmp_path / "checkpoint.safetensors"
    save_file({"model/weight": torch.zeros(2, 3), **tensors}, str(path), metadata=metadata)
    for read in (lambda: read_journal(path), lambda: load_checkpoint(path, nn.Linear(3, 2, bias=False), Pruner(nn.Linear(3, 2)))):
        with pytest.raises(DamagedRunError, match=re.escape(f"{path} is damaged ({problem}")):
            read()


def test_tensors_that_share_memory_are_saved_each_as_it_shows(tmp_path: Path) -> None:
    """Tied weights (one tensor under two names), views of one buffer and a transposed view:
    safetensors refuses tensors that share memory, so these go in as copies."""
    torch.manual_seed(0)
    tied, buffer = torch.randn(3, 4), torch.arange(12.0)
    tensors = {"tied.a": tied, "tied.b": tied, "first": buffer[:6], "second": buffer[6:], "transposed": tied.t()}
    save_tensors(tensors, tmp_path / "shared.safetensors")
    loaded = load_file(str(tmp_path / "shared.safetensors"))
    assert loaded.keys() == tensors.keys()
    for name, value in tensors.items():
        assert torch.equal(loaded[name], value), name


PEAK_MEMORY = """
import resource, sys, torch
from pathlib import Path
from safetensors.torch import save
from prunelab.runs.io import save_tensors
tensors = {"weight": torch.ones(8 << 20), "momentum": torch.ones(8 << 20)}  # 64 MB, a model and its optimizer state
size = sum(t.numel() * t.element_size() for t in tensors.values())
in_use = int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()
before = max(in_use, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
save_tensors(tensors, sys.argv[1]) if sys.argv[1:] else save(tensors)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before) / size)
"""


def peak_memory(*path: str) -> float:
    """The peak memory that writing the tensors of PEAK_MEMORY to ``path`` takes beyond them, in
    their size; without a path, that of safetensors' own serialization of them to bytes."""
    done = subprocess.run([sys.executable, "-c", PEAK_MEMORY, *path], capture_output=True, text=True, check=True)
    return float(done.stdout)


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the memory in use from Linux's /proc")
def test_writing_a_checkpoint_copies_the_tensors_no_more_than_its_serialization_does(tmp_path: Path) -> None:
    """Beyond the tensors, writing them takes the file's bytes, which safetensors builds and
    hands over (twice their size at the peak, three times before safetensors 0.8); a copy of
    every tensor before that added their size once more: one more model and optimizer state
    in memory at every checkpoint."""
    assert peak_memory(str(tmp_path / "checkpoint.safetensors")) < peak_memory() + 0.5
