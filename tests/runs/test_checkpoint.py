"""One checkpoint file: model, masks, optimizer state (tensors and plain values) and journal."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from prunelab.masks import Pruner
from prunelab.runs.checkpoint import load_checkpoint, read_journal, save_checkpoint


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
