"""The files of a run directory: written atomically by the main process only, and read back
with errors that name the file when a run folder is damaged."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import pickle
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from typing_extensions import Required, TypedDict  # pydantic reads typing.TypedDict only from Python 3.12

from pydantic import ConfigDict, Field, StrictFloat, StrictInt, TypeAdapter, ValidationError, create_model

from safetensors import SafetensorError
from safetensors.torch import load_file, save
import torch
from torch import Tensor, nn

from prunelab.atomic import atomic_write
from prunelab.config.sweep import SUMMARY_VALUES
from prunelab.distributed import world

#: What to do about a damaged file of a run directory.
RUN_AGAIN = ("the run folder is damaged: remove that file if it is there, then run the run's command again, which "
             "rebuilds a seed's results from its checkpoint (a seed without one trains anew)")


class DamagedRunError(ValueError):
    """A file of a run directory (or of the find phases under ``<out>/.find``) that is missing
    or not as prunelab writes it: cut short by a full disk, say, or edited by hand."""


Number = StrictFloat  # an int or a float; not a bool, not a number written as text
Count = StrictInt


class _Stat(TypedDict):
    mean: Number
    std: Number


class _RunSummary(TypedDict):
    run: str
    seeds: list[Count]
    stats: dict[str, _Stat]


class _LayerCounts(TypedDict):
    numel: Count
    remaining: Count
    sparsity: Number


class _MetricsRow(TypedDict, total=False):
    phase: Required[str]
    test_acc: Number
    sparsity: Number


class _Environment(TypedDict):
    device: str
    threads: Count
    processes: Count
    torch: str
    prunelab: str


class _Level(TypedDict, total=False):  # IMP's and BIMP's, with the summary values each level has
    level: Required[Count]
    sparsity: Required[Number]
    final_acc: Required[Number]


_SeedSummary = create_model(
    "_SeedSummary", __config__=ConfigDict(extra="allow"),
    **{key: (Number | None, None) for key in SUMMARY_VALUES},
    environment=(_Environment | None, None), levels=(list[_Level] | None, None),
)  # fmt: skip

class _LprRecord(TypedDict):  # find.lpr_every's, at the first pruning step
    epochs: list[Count]
    layer_sparsity: dict[str, list[Number]]
    distance: list[Number]


class _Step(TypedDict, total=False):  # what a step of events.json recorded: the entries show and report read, by type
    layer_sparsity: dict[str, Number]
    group_sparsity: dict[str, Annotated[Number, Field(ge=0, lt=1)]]  # a group keeps a channel: below 1
    lpr_during_find: _LprRecord


#: The files of a run directory as prunelab writes them, by name: a file of another shape
#: (edited by hand) is named when read, not a TypeError from deep inside whatever reads it.
SHAPES: dict[str, TypeAdapter] = {
    "lr_log.json": TypeAdapter(dict[str, list[Number]]),
    "layer_sparsity.json": TypeAdapter(dict[str, _LayerCounts]),
    "metrics.json": TypeAdapter(list[_MetricsRow]),
    "events.json": TypeAdapter(dict[str, _Step]),  # what each step recorded, by step
    "channels.json": TypeAdapter(dict[str, list[Count]]),
}


def _shape(path: Path) -> TypeAdapter | None:
    if path.name == "summary.json":  # a seed's, or its run directory's over the seeds
        return TypeAdapter(_SeedSummary) if path.parent.name.startswith("seed-") else TypeAdapter(_RunSummary)
    return SHAPES.get(path.name)


def read_json(path: str | Path, kind: type[dict | list] = dict, keys: Sequence[str] = ()) -> Any:
    """The JSON object (or array, as ``kind`` says) in ``path``, with ``keys`` and, for the
    files of a run directory, of the shape prunelab writes (:data:`SHAPES`); else a
    DamagedRunError naming the file (json's own errors do not)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))  # binary garbage: invalid JSON
    except FileNotFoundError:
        raise DamagedRunError(f"{path} is missing: {RUN_AGAIN}") from None
    except json.JSONDecodeError as error:
        raise DamagedRunError(f"{path} is not valid JSON (line {error.lineno}, column {error.colno}): {RUN_AGAIN}") from None
    if not isinstance(data, kind):
        raise DamagedRunError(f"{path} is not a JSON {'object' if kind is dict else 'array'}: {RUN_AGAIN}")
    missing = [key for key in keys if key not in data]
    if missing:
        raise DamagedRunError(f"{path} lacks {', '.join(map(repr, missing))}: {RUN_AGAIN}")
    shape = _shape(path)
    if shape is not None:
        try:
            shape.validate_python(data)
        except ValidationError as error:
            errors = error.errors()
            if all(e["type"] == "missing" for e in errors):
                raise DamagedRunError(f"{path} lacks {', '.join(repr('.'.join(map(str, e['loc']))) for e in errors)}: {RUN_AGAIN}") from None
            first = next(e for e in errors if e["type"] != "missing")
            where = ".".join(map(str, first["loc"]))
            raise DamagedRunError(f"{path} holds {where} that is not as prunelab writes it ({first['msg']}): {RUN_AGAIN}") from None
    return data


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    In a run over several processes, only the main one writes (they all hold the same results).
    A file that already holds ``data`` is left alone: a finished run shown again on a full or
    read-only disk writes nothing.
    """
    if not world().is_main or _holds(path, data):
        return
    try:
        with atomic_write(path) as file:
            file.write(data)
    except OSError as error:  # named after the file meant, not the temporary one (a full disk, say)
        raise OSError(f"cannot write {path}: {error.strerror or error}") from None


def _holds(path: str | Path, data: bytes, chunk: int = 1 << 20) -> bool:
    """Whether the file at ``path`` holds ``data``, read only up to the first difference (a
    checkpoint's header differs at once); False if it is not there or cannot be read."""
    with contextlib.suppress(OSError):
        if Path(path).stat().st_size != len(data):
            return False
        with open(path, "rb") as file:
            view = memoryview(data)
            return all(file.read(chunk) == view[start : start + chunk] for start in range(0, len(data), chunk))
    return False


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | Path, data: object) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | Path, rows: Sequence[Mapping[str, object]]) -> None:
    """Rows as CSV with the union of their keys as columns, in first-seen order."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def read_tensors(path: str | Path, device: str = "cpu") -> dict[str, Tensor]:
    """The tensors of a safetensors file of a run; a missing or damaged one is a
    DamagedRunError naming it."""
    try:
        return load_file(str(path), device=device)
    except FileNotFoundError:
        raise DamagedRunError(f"{path} is missing: {RUN_AGAIN}") from None
    except SafetensorError as error:
        raise DamagedRunError(f"{path} is damaged ({error}): {RUN_AGAIN}") from None


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The weights of a file the user gives (``model.weights``): a safetensors file, or a
    PyTorch file read with ``weights_only=True`` (no code of the file runs) holding a state
    dict, or a checkpoint keeping one under "state_dict" or "model". The "module." prefix
    ``DataParallel`` gives every name is dropped. Anything else is a ValueError naming the file."""
    path = Path(path)
    try:
        state = load_file(str(path)) if path.suffix == ".safetensors" else torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"no file {path}") from None
    except (SafetensorError, pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
        # A refused object: torch's message names it past its first line, on loading the file unsafely.
        if refused := re.search(r"Unsupported global: GLOBAL (\S+)", str(error)):
            raise ValueError(f"{path} holds more than tensors ({refused[1]}), which loading it safely (weights_only=True) "
                             "refuses: if you trust the file, save the state dict alone (torch.save(state_dict, file))") from None  # fmt: skip
        kind = "safetensors file" if path.suffix == ".safetensors" else "PyTorch file of tensors (safe to load)"
        raise ValueError(f"{path} is not a {kind}: {str(error).splitlines()[0]}") from None
    if isinstance(state, dict) and not all(isinstance(value, Tensor) for value in state.values()):
        state = next((state[key] for key in ("state_dict", "model") if isinstance(state.get(key), dict)), state)
    if not isinstance(state, dict) or not state or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        # A checkpoint keeping it under a key of its own: its keys show which.
        keys = f"; its keys: {', '.join(map(repr, list(state)[:8]))}" if isinstance(state, dict) and state else ""
        raise ValueError(f"{path} holds no state dict (parameter names to tensors, as model.state_dict() gives){keys}")
    if all(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): value for key, value in state.items()}
    return state


def weight_differences(model: nn.Module, state: Mapping[str, Tensor]) -> list[str]:
    """What keeps ``state`` from loading into ``model``: names only one has, and shapes that differ.

    >>> weight_differences(nn.Linear(2, 3), {"weight": torch.zeros(3, 4)})
    ['weight has shape (3, 4) in the file, (3, 2) in the model', "the model's bias is not in the file"]
    """
    mine = model.state_dict()
    # Shapes first: a classifier for another number of classes is the likeliest difference.
    differences = [
        f"{key} has shape {tuple(state[key].shape)} in the file, {tuple(value.shape)} in the model"
        for key, value in mine.items() if key in state and state[key].shape != value.shape
    ]  # fmt: skip
    differences += [f"{key} is not in the model" for key in state if key not in mine]
    differences += [f"the model's {key} is not in the file" for key in mine if key not in state]
    return differences


def load_model_weights(model: nn.Module, state: Mapping[str, Tensor], path: str | Path) -> None:
    """``model.load_state_dict(state)`` for weights read from ``path``; weights of another
    model than ``model`` (its builder or the builder's defaults changed since they were saved)
    are a ValueError naming the file and the first difference."""
    if differences := weight_differences(model, state):
        raise ValueError(
            f"{path} holds the weights of another model than the recipe builds now ({differences[0]}): the model's "
            "builder or its defaults changed since. Run directories and the shared find phases in <out>/.find are "
            "named by the recipe's settings, not by code: run into another --out, or remove what was trained before"
        )
    model.load_state_dict(state)


def save_tensors(tensors: Mapping[str, Tensor], path: str | Path, metadata: Mapping[str, str] | None = None) -> None:
    """A safetensors file of ``tensors`` (on the CPU, contiguous), written atomically."""
    prepared, storages = {}, set()
    for name, tensor in tensors.items():
        tensor = tensor.detach().cpu().contiguous()
        # safetensors refuses tensors that share memory (tied weights, views of one buffer): a
        # copy of those only, as a copy of every tensor was one more model (and optimizer state)
        # in memory at every checkpoint.
        storage = tensor.untyped_storage().data_ptr()
        prepared[name] = tensor.clone() if storage in storages else tensor
        storages.add(storage)
    write_bytes(path, save(prepared, metadata=dict(metadata) if metadata else None))
