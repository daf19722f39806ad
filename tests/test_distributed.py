"""The collectives of data-parallel runs, in two processes of a Gloo group (the runs themselves,
over torchrun, are in runs/test_distributed.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import astuple

import pytest
import torch
from torch import nn

from prunelab.distributed import World, agree, all_sum, barrier, broadcast_buffers, join_from_environment, main_first, share, world


def test_each_process_knows_its_place(two_processes) -> None:
    def place(find: Callable[[], World]) -> Callable[[], tuple]:
        return lambda: (*astuple(find()), find().is_main)

    places = [(0, 2, 0, True), (1, 2, 1, False)]  # rank, size, local rank, main
    assert two_processes(place(world)) == places
    assert two_processes(place(join_from_environment)) == places  # joined already: it keeps the group


def test_a_process_group_joined_without_torchrun_s_local_rank_is_the_first_on_its_machine(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        assert world() == World(rank=0, size=1, local_rank=0)
    finally:
        torch.distributed.destroy_process_group()


def test_all_sum_adds_every_process_s_tensor(two_processes) -> None:
    sums = two_processes(lambda: all_sum(torch.tensor([world().rank + 1.0, 10.0])))
    for total in sums:
        assert torch.equal(total, torch.tensor([3.0, 20.0]))


def test_every_process_gets_the_main_process_s_decision(two_processes) -> None:
    assert two_processes(lambda: agree([world().rank, "seeds"])) == [[0, "seeds"], [0, "seeds"]]


def test_a_barrier_waits_for_the_main_process(two_processes, tmp_path) -> None:
    """The main process writes a file late, then reaches the barrier; the other finds it after its own."""
    written = tmp_path / "written"

    def wait_and_look() -> bool:
        if world().is_main:
            time.sleep(0.2)  # the other reaches the barrier first
            written.touch()
        barrier()
        return written.exists()

    assert two_processes(wait_and_look) == [True, True]


def test_main_first_runs_the_work_in_the_others_after_it_succeeded_in_the_main_process(two_processes, tmp_path) -> None:
    cache = tmp_path / "cache"

    def fill_or_find() -> tuple[int, bool]:
        found = cache.exists()
        if world().is_main:
            time.sleep(0.2)  # a download: the others must not look before it ended
            cache.touch()
        return world().rank, found

    assert two_processes(lambda: main_first(fill_or_find)) == [(0, False), (1, True)]


def test_when_the_main_process_fails_first_the_others_stop_without_doing_the_work(two_processes) -> None:
    def fail_in_main() -> str:
        if world().is_main:
            raise OSError("no space left on device")
        return "done"

    def attempt() -> tuple[str, str]:
        try:
            return "returned", main_first(fail_in_main)
        except Exception as error:
            return type(error).__name__, str(error)

    assert two_processes(attempt) == [("OSError", "no space left on device"), ("MainProcessFailed", "the main process failed")]


def test_each_process_takes_an_equal_share_of_a_batch(two_processes) -> None:
    def shares() -> tuple[int, str]:
        with pytest.raises(ValueError) as uneven:
            share(7, "find.batch_size")
        return share(8), str(uneven.value)

    expected = (4, "find.batch_size=7 does not split evenly over the 2 processes (each trains on an equal share of every batch)")
    assert two_processes(shares) == [expected, expected]


def test_every_process_gets_the_main_process_s_buffers(two_processes) -> None:
    def buffers() -> list[torch.Tensor]:
        model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
        with torch.no_grad():
            for buffer in model.buffers():
                buffer.fill_(10 * world().rank + 1)  # running mean and variance, number of batches
        broadcast_buffers(model)
        return [buffer.clone() for buffer in model.buffers()]

    for buffers_of_a_process in two_processes(buffers):
        assert [b.tolist() for b in buffers_of_a_process] == [[1.0] * 3, [1.0] * 3, 1]
