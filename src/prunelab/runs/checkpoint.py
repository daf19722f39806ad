"""One-file checkpoints: model, masks, optimizer state and the run's journal, replaced atomically.

Everything lives in a single safetensors file (tensors, plus JSON in its metadata), so a
kill at any moment leaves either the previous checkpoint or the new one. The journal's LR
logs (one number per optimizer step, millions in a long IMP run) are tensors of the file,
since safetensors caps its metadata at 100 MB.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from prunelab.masks import Pruner
from prunelab.runs.io import DamagedRunError, load_model_weights, save_tensors

LR_LOGS = "lr_log"
#: The tensors of a checkpoint, by the prefix of their names.
GROUPS = ("model", "pruner", "optimizer", LR_LOGS)


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
    logs: list[torch.Tensor] = []
    metadata = {"journal": json.dumps(_lr_logs_out(journal, logs)), "optimizer": json.dumps(optimizer_meta)}
    tensors.update({f"{LR_LOGS}/{index}": log for index, log in enumerate(logs)})
    save_tensors(tensors, path, metadata)


def _lr_logs_out(value: object, logs: list[torch.Tensor]) -> object:
    """``value`` with each ``lr_log`` list moved to ``logs`` (float64: the LRs exactly), in
    its place the name of its tensor."""
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key == "lr_log" and isinstance(item, list):
            logs.append(torch.tensor(item, dtype=torch.float64))
            item = {"tensor": f"{LR_LOGS}/{len(logs) - 1}"}
        out[key] = _lr_logs_out(item, logs)
    return out


def _lr_logs_in(value: object, file: safe_open, path: Path) -> object:
    """The journal with its LR logs read back from ``file``."""
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key == "lr_log" and isinstance(item, dict):
            try:
                item = file.get_tensor(item["tensor"]).tolist()
            except (KeyError, TypeError, SafetensorError) as error:
                raise _damaged(path, f"an LR log of its journal is missing ({error})") from None
        out[key] = _lr_logs_in(item, file, path)
    return out


def _damaged(path: Path, what: str) -> DamagedRunError:
    # Nothing else depends on it: without it, the run trains that part (a seed, a find phase) again.
    return DamagedRunError(f"{path} is damaged ({what}); remove it to train again what it held")


def _open(path: Path) -> safe_open:
    """The checkpoint at ``path`` opened for reading; a damaged one (e.g. cut short) is a DamagedRunError naming it."""
    try:
        return safe_open(str(path), framework="pt")
    except SafetensorError as error:
        raise _damaged(path, str(error)) from None


def _metadata(file: safe_open, path: Path) -> tuple[dict, dict]:
    """The journal (its LR logs read back) and the optimizer's metadata, checked to be as
    :func:`save_checkpoint` writes them."""
    metadata = file.metadata() or {}
    try:
        journal, optimizer = json.loads(metadata["journal"]), json.loads(metadata["optimizer"])
    except KeyError as error:
        raise _damaged(path, f"its metadata lack {error}: not a checkpoint prunelab writes") from None
    except json.JSONDecodeError as error:
        raise _damaged(path, f"its metadata are not valid JSON: {error}") from None
    phase = journal.get("phase", False) if isinstance(journal, dict) else False
    if (
        not isinstance(journal, dict) or not isinstance(journal.get("done"), dict)
        or not (phase is None or (isinstance(phase, dict) and {"name", "state"} <= phase.keys()))
        or not isinstance(optimizer, dict) or (optimizer and not {"param_groups", "scalars"} <= optimizer.keys())
    ):  # fmt: skip
        raise _damaged(path, "its journal or optimizer metadata are not as prunelab writes them")
    others = sorted({key.partition("/")[0] for key in file.keys()} - set(GROUPS))
    if others:
        raise _damaged(path, f"it holds tensors of {', '.join(map(repr, others))}, which prunelab does not write")
    return _lr_logs_in(journal, file, path), optimizer


def read_journal(path: Path) -> dict:
    """The journal of a checkpoint, without loading its weights."""
    with _open(path) as file:
        return _metadata(file, path)[0]


def load_checkpoint(path: Path, model: nn.Module, pruner: Pruner) -> tuple[dict, dict | None]:
    """Load model weights and masks in place; return the journal and the optimizer state
    dict (None if the checkpoint has none), to be loaded once the optimizer exists."""
    groups: dict[str, dict] = {group: {} for group in GROUPS}
    with _open(path) as file:
        journal, optimizer_meta = _metadata(file, path)
        for key in file.keys():
            group, _, name = key.partition("/")
            if group != LR_LOGS:
                groups[group][name] = file.get_tensor(key)
    load_model_weights(model, groups["model"], path)
    pruner.load_state_dict(groups["pruner"])
    if not optimizer_meta:
        return journal, None
    state: dict[int, dict] = {}
    for name, value in groups["optimizer"].items():
        index, _, key = name.partition("/")
        state.setdefault(int(index), {})[key] = value
    for index, entries in optimizer_meta["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    return journal, {"state": state, "param_groups": optimizer_meta["param_groups"]}
