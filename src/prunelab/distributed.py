"""Data-parallel runs over the processes ``torchrun`` starts: one process per device.

Every process holds the whole model and trains on its share of each batch; gradients are
averaged across processes by :class:`~torch.nn.parallel.DistributedDataParallel`, so the
weights, and thereby the masks every process computes from them, stay identical. Only the
main process (rank 0) writes files and prints. A plain ``prunelab run`` is a world of one.

>>> world()
World(rank=0, size=1, local_rank=0)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """This process's place among the processes of the run."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return World(0, 1, 0)


def join_from_environment() -> World:
    """Join the process group ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1),
    over NCCL with CUDA and Gloo without; otherwise stay a world of one."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return world()


def leave() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process gets here (e.g. until the main one has written a file)."""
    if world().size > 1:
        dist.barrier()


def wait_until_main_leaves() -> None:
    """In a process other than the main one, wait until the main process has left the process
    group: for a process that ends on an error the main process says for all of them (a bad
    setting, the main process's failed ``main_first`` work). torchrun stops the processes still
    running once one ends: a process that ended first stopped the main one, now and then, before
    it had said why. The main process leaves after it has said it, as ``prunelab`` commands do."""
    if world().size > 1 and not world().is_main:
        with contextlib.suppress(RuntimeError):  # the main process never joins: its leaving (or torchrun, once it ended) ends the wait
            dist.barrier()


T = TypeVar("T")


def agree(decision: T) -> T:
    """The main process's ``decision`` (a flag, a list of seeds), for every process: for
    decisions that lead into collective work (a barrier, a training phase, loading the data),
    which must not rest on each process's own look at files the main process may be writing
    at that moment."""
    if world().size == 1:
        return decision
    shared = [decision]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]


class MainProcessFailed(RuntimeError):
    """Raised in the other processes when work the main process does first failed there
    (the main process reports why)."""


def main_first(work: Callable[[], T]) -> T:
    """``work()`` in the main process, then, once it succeeded there, in the others: for work
    that may write files they share, such as a download or a cache, which the main process
    then writes alone and the others find done. The others wait in a collective call, so the
    work must end within the process group's timeout (30 minutes by default).

    >>> main_first(lambda: 42)
    42
    """
    if world().size == 1:
        return work()
    if world().is_main:
        try:
            result = work()
        except BaseException:
            with contextlib.suppress(RuntimeError):  # the others gone already: this error is the one to tell
                agree(False)
            raise
        agree(True)
        return result
    main_succeeded = agree(False)  # the main process's word: this process's own is not read
    if not main_succeeded:
        raise MainProcessFailed("the main process failed")
    return work()


def share(batch_size: int, label: str = "batch_size") -> int:
    """Each process's share of a batch of ``batch_size`` examples (the whole batch in a world of one).

    >>> share(128)
    128
    """
    processes = world().size
    if batch_size % processes:
        raise ValueError(
            f"{label}={batch_size} does not split evenly over the {processes} processes "
            "(each trains on an equal share of every batch)"
        )
    return batch_size // processes


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over the processes (in place; ``tensor`` itself in a world of one)."""
    if world().size > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Give every process the main one's buffers (e.g. BatchNorm running statistics), which
    each process's last training step updated from its own share of the batch: so that all
    evaluate, and go on with, the model the main process saves. The buffers must be on the
    device of the process group's backend (the model's, as DistributedDataParallel has it)."""
    if world().size > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)
