"""Fixtures shared by all test folders."""

from __future__ import annotations

import datetime
import itertools
import os
import sys

# One thread for every run of the tests, in this process and in the commands they start, which
# inherit the variable (set before torch loads): a second thread buys the tiny models nothing
# on idle cores and costs them several times the time on busy ones, where the threads wait for
# each other by spinning; and runs compared across processes train alike. A variable the
# caller set is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from prunelab.data import load_dataset


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with MNIST-1D generated once per test session (offline)."""
    path = tmp_path_factory.getbasetemp() / "prunelab-data"
    path.mkdir(exist_ok=True)
    load_dataset("mnist1d", path)
    return path


@pytest.fixture(scope="session", autouse=True)
def quiet_cores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Runs in tests see idle cores: the machine's load (other jobs on CI) would add a warning
    to what some tests read. For the whole session, so that runs shared by many tests (made
    by session fixtures) see them too. The warning's own tests set the load they mean."""
    from prunelab.runs import runner

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "LOADAVG", tmp_path_factory.getbasetemp() / "no-loadavg")
        yield


@pytest.fixture(scope="session", autouse=True)
def unflushed_writes() -> Iterator[None]:
    """Files written in this process are not flushed to disk: ``os.fsync`` only checks its file
    descriptor. Only a power cut could tell the difference, and the runs' 10,000 flushes took
    5 s of the suite on an idle disk, 30 s on a busy one. Tests of the flushes put their own
    ``os.fsync`` on top; the commands the tests start flush as they do for users."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", os.fstat)
        yield


@pytest.fixture(autouse=True)
def closed_figures() -> Iterator[None]:
    """Figures a test keeps open (its own ``_save`` that does not close them) are closed after
    it, so that tests do not pile up figures in pyplot (its warning past 20)."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """The figures prunelab's plots make, to inspect after they are written and closed."""
    from prunelab.report import plots

    kept = []
    save = plots._save

    def keep(fig, path):
        kept.append(fig)
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return kept


@pytest.fixture
def band_heights() -> Callable:
    """The data heights, lower and upper, of a band ``ax.axhspan`` drew: a Rectangle from
    matplotlib 3.9 on, a Polygon before."""

    def heights(band) -> tuple[float, float]:
        ys = band.get_patch_transform().transform(band.get_path().vertices)[:, 1]
        return ys.min(), ys.max()

    return heights


@pytest.fixture
def two_processes(tmp_path: Path) -> Callable[[Callable[[], object]], list]:
    """Runs ``work()`` in two processes of a Gloo process group, as torchrun would (rank 0 the
    main one), and gives what each returned, by rank. The processes are forked from this one:
    a fresh Python each, as torchrun starts, takes seconds to load torch. A collective that
    waits for a process that never comes fails after a minute, not after Gloo's 30."""
    import torch._dynamo  # noqa: F401  (DistributedDataParallel loads it: seconds, paid here once, not in every process)

    groups = itertools.count()

    def run(work: Callable[[], object]) -> list:
        folder = tmp_path / f"group-{next(groups)}"
        folder.mkdir()
        torch.multiprocessing.start_processes(_in_group, args=(work, folder), nprocs=2, start_method="fork")
        return [torch.load(folder / f"rank-{rank}.pt", weights_only=True) for rank in range(2)]

    return run


def _in_group(rank: int, work: Callable[[], object], folder: Path) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")  # as torchrun sets them
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{folder / 'rendezvous'}", rank=rank, world_size=2, timeout=datetime.timedelta(minutes=1)
    )
    try:
        torch.save(work(), folder / f"rank-{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()
