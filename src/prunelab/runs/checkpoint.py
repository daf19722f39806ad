"""One-file checkpoints: model, masks, optimizer state and the run's journal, replaced atomically.

Everything lives in a single safetensors file (tensors, plus JSON in its metadata), so a
kill at any moment leaves either the previous checkpoint or the new one.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from prunelab.masks import Pruner
from prunelab.runs.io import DamagedRunError, load_model_weights, save_tensors


def save_checkpoint(
    path: Path, model: nn.Module, pruner: Pruner, optimizer: torch.optim.Optimizer | None, journal: dict
) -> None:
    """Write the model, the masks, the optimizer's state (None between phases) and the journal
    to ``path`` as one file, atomically."""
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"pruner/{k}": v for k, v in pruner.state_dict().items()})
    optimizer_meta: dict = {}
    if optimizer is not None:
        state = optimizer.state_dict()
        scalars: dict = {}
        for index, entries in state["state"].items():
            for key, value in entries.items():
                if torch.is_tensor(value):
                    tensors[f"optimizer/{index}/{key}"] = value
                else:
                    scalars.setdefault(str(index), {})[key] = value
        optimizer_meta = {"param_groups": state["param_groups"], "scalars": scalars}
    metadata = {"journal": json.dumps(journal), "optimizer": json.dumps(optimizer_meta)}
    save_tensors(tensors, path, metadata)


def _open(path: Path) -> safe_open:
    """The checkpoint at ``path`` opened for reading; a damaged one (e.g. cut short) is a DamagedRunError naming it."""
    try:
        return safe_open(str(path), framework="pt")
    except SafetensorError as error:
        # Nothing else depends on it: without it, the run trains that part (a seed, a find phase) again.
        raise DamagedRunError(f"{path} is damaged ({error}); remove it to train again what it held") from None


def read_journal(path: Path) -> dict:
    """The journal of a checkpoint, without loading its tensors."""
    with _open(path) as file:
        return json.loads(file.metadata()["journal"])


def load_checkpoint(path: Path, model: nn.Module, pruner: Pruner) -> tuple[dict, dict | None]:
    """Load model weights and masks in place; return the journal and the optimizer state
    dict (None if the checkpoint has none), to be loaded once the optimizer exists."""
    groups: dict[str, dict] = {"model": {}, "pruner": {}, "optimizer": {}}
    with _open(path) as file:
        metadata = file.metadata()
        for key in file.keys():
            group, _, name = key.partition("/")
            groups[group][name] = file.get_tensor(key)
    load_model_weights(model, groups["model"], path)
    pruner.load_state_dict(groups["pruner"])
    optimizer_meta = json.loads(metadata["optimizer"])
    if not optimizer_meta:
        return json.loads(metadata["journal"]), None
    state: dict[int, dict] = {}
    for name, value in groups["optimizer"].items():
        index, _, key = name.partition("/")
        state.setdefault(int(index), {})[key] = value
    for index, entries in optimizer_meta["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    return json.loads(metadata["journal"]), {"state": state, "param_groups": optimizer_meta["param_groups"]}
