"""Global magnitude selection: prunelab against the floor and against torch's ways of doing it.

Prunes 90% of N float32 weights spread over ~50 tensors of different sizes and reports, for
each method, the median time of 3 calls, its ratio to the floor (one L1-norm pass over the
same weights, the least any exact method must read) and its peak extra memory:

- ``floor``: ``torch.linalg.vector_norm(w, 1)`` over every tensor;
- ``prunelab``: :func:`prunelab.select` with the magnitude criterion (bool masks out);
- ``kthvalue``: concatenate the magnitudes, ``kthvalue``, compare every tensor (bool masks);
- ``global_unstructured``: ``torch.nn.utils.prune.global_unstructured`` with L1Unstructured.

Every method runs in a fresh subprocess so its peak memory is its own. A first, untimed call
warms up (this VM's first-touch page faults are slow, and libraries load code on first use);
the 3 timed calls after it each start with the memory freed by the previous call handed back
to the system (``malloc_trim``). Peak extra memory is the largest over those calls of the
peak resident set (VmHWM, reset through /proc/self/clear_refs) minus the resident set before
the call, minus the bytes of the masks the method returns (bool for prunelab and kthvalue,
float32 for global_unstructured).

Each subprocess gets an address-space limit (``--memory-budget-gb`` beyond the weights) so
a method that needs more memory fails with an allocation error instead of pushing the
machine into the out-of-memory killer; that is reported as "out of memory".

Run from the repository root::

    python benchmarks/global_selection.py --params 100M,500M --tensors 50

Linux only (/proc). Takes about 5 minutes for the default sizes.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn.utils import prune

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from prunelab import Magnitude, select  # noqa: E402

METHODS = ("floor", "prunelab", "kthvalue", "global_unstructured")
LABELS = {
    "floor": "one L1 pass (floor)",
    "prunelab": "prunelab select",
    "kthvalue": "concatenate + kthvalue",
    "global_unstructured": "torch global_unstructured",
}
MB = 1 << 20


# -- the methods ---------------------------------------------------------------------------


def run_floor(weights: list[torch.Tensor], sparsity: float) -> list[torch.Tensor]:
    total = sum(float(torch.linalg.vector_norm(w, 1)) for w in weights)
    assert total > 0  # use the result, so the pass cannot be skipped
    return []


def run_prunelab(weights: list[torch.Tensor], sparsity: float) -> list[torch.Tensor]:
    n_prune = round(sparsity * sum(w.numel() for w in weights))
    masks = select({str(i): w for i, w in enumerate(weights)}, n_prune, Magnitude())
    return list(masks.values())


def run_kthvalue(weights: list[torch.Tensor], sparsity: float) -> list[torch.Tensor]:
    scores = torch.cat([w.reshape(-1) for w in weights]).abs_()
    threshold = scores.kthvalue(round(sparsity * scores.numel())).values
    del scores
    return [w.abs() > threshold for w in weights]


def run_global_unstructured(weights: list[torch.Tensor], sparsity: float) -> list[torch.Tensor]:
    # Fresh holder modules each call; their parameters share the weights' storage.
    holders = []
    for w in weights:
        holder = torch.nn.Module()
        holder.weight = torch.nn.Parameter(w)
        holders.append(holder)
    prune.global_unstructured([(h, "weight") for h in holders], pruning_method=prune.L1Unstructured, amount=sparsity)
    return [h.weight_mask for h in holders]


RUNNERS: dict[str, Callable[[list[torch.Tensor], float], list[torch.Tensor]]] = {
    "floor": run_floor,
    "prunelab": run_prunelab,
    "kthvalue": run_kthvalue,
    "global_unstructured": run_global_unstructured,
}


# -- one method in this process --------------------------------------------------------------


def tensor_sizes(n: int, tensors: int) -> list[int]:
    """Sizes proportional to 1, 2, ..., ``tensors`` (models mix small and large layers), summing to n."""
    unit = n // (tensors * (tensors + 1) // 2)
    sizes = [unit * (i + 1) for i in range(tensors)]
    sizes[-1] += n - sum(sizes)
    return sizes


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def _release_freed_memory() -> None:
    """Hand memory freed by earlier calls back to the system, so a call's peak is its own."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or "memory" in str(error).lower()


def worker(method: str, n: int, tensors: int, sparsity: float, repeats: int, budget_gb: float) -> dict:
    """Time one method and measure its peak extra memory; the result as a JSON-able dict."""
    generator = torch.Generator().manual_seed(0)
    weights = [torch.randn(size, generator=generator) for size in tensor_sizes(n, tensors)]
    limit = _status_kb("VmSize") * 1024 + int(budget_gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    run = RUNNERS[method]
    try:
        masks = run(weights, sparsity)  # warm-up
        del masks
    except (MemoryError, RuntimeError) as error:
        if not _is_out_of_memory(error):
            raise
        return {"method": method, "n": n, "error": f"out of memory (> {budget_gb:g} GB budget)"}

    times, extra = [], []
    for _ in range(repeats):
        _release_freed_memory()
        _reset_peak_rss()
        before = _status_kb("VmRSS")
        start = time.perf_counter()
        masks = run(weights, sparsity)
        times.append(time.perf_counter() - start)
        mask_bytes = sum(m.numel() * m.element_size() for m in masks)
        extra.append(((_status_kb("VmHWM") - before) * 1024 - mask_bytes) / MB)
        del masks
    return {"method": method, "n": n, "seconds": statistics.median(times), "extra_mb": max(extra)}


# -- driver ------------------------------------------------------------------------------------


def parse_count(text: str) -> int:
    """'100M' -> 100_000_000; also K and G."""
    scale = {"K": 10**3, "M": 10**6, "G": 10**9}.get(text[-1].upper(), 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def run_in_subprocess(method: str, n: int, args: argparse.Namespace) -> dict:
    command = [
        sys.executable, __file__, "--worker", method, "--params", str(n), "--tensors", str(args.tensors),
        "--sparsity", str(args.sparsity), "--repeats", str(args.repeats),
        "--memory-budget-gb", str(args.memory_budget_gb),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        return {"method": method, "n": n, "error": f"failed: {tail[0]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="100M,500M", help="comma-separated parameter counts")
    parser.add_argument("--tensors", type=int, default=50)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after the warm-up")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument(
        "--memory-budget-gb", type=float, default=12.0, help="address space per method beyond the weights"
    )
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        result = worker(args.worker, int(args.params), args.tensors, args.sparsity, args.repeats, args.memory_budget_gb)
        print(json.dumps(result))
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; sparsity {args.sparsity}, "
          f"{args.tensors} tensors, median of {args.repeats} after a warm-up")  # fmt: skip
    header = f"{'params':>7}  {'method':<27} {'seconds':>8} {'x floor':>8} {'extra MB':>9} {'% weights':>9}"
    print(header)
    print("-" * len(header))
    results: dict[tuple[str, int], dict] = {}
    for n in map(parse_count, args.params.split(",")):
        floor = None
        for method in args.methods.split(","):
            r = results[method, n] = run_in_subprocess(method, n, args)
            if method == "floor" and "seconds" in r:
                floor = r["seconds"]
            if "error" in r:
                print(f"{n / 1e6:>6g}M  {LABELS[method]:<27} {r['error']}")
                continue
            ratio = f"{r['seconds'] / floor:8.1f}" if floor else f"{'-':>8}"
            share = f"{100 * r['extra_mb'] * MB / (4 * n):8.1f}%"
            print(f"{n / 1e6:>6g}M  {LABELS[method]:<27} {r['seconds']:8.3f} {ratio} {r['extra_mb']:9.0f} {share}")
    print()
    report_requirements(results)


def report_requirements(results: dict[tuple[str, int], dict]) -> None:
    """The issue's targets, checked against this run's figures."""

    def verdict(met: bool) -> str:
        return "ok" if met else "MISSED"

    for (method, n), r in results.items():
        if method != "prunelab" or "error" in r:
            continue
        name = f"{n / 1e6:g}M"
        floor, unstructured = results.get(("floor", n), {}), results.get(("global_unstructured", n), {})
        if "seconds" in floor:
            ratio = r["seconds"] / floor["seconds"]
            print(f"{name}: prunelab / floor = {ratio:.1f}x (target <= 8x): {verdict(ratio <= 8)}")
        if "seconds" in unstructured:
            speedup = unstructured["seconds"] / r["seconds"]
            print(f"{name}: global_unstructured / prunelab = {speedup:.0f}x (target >= 30x): {verdict(speedup >= 30)}")
        elif unstructured:
            print(f"{name}: global_unstructured: {unstructured['error']}")
        share = 100 * r["extra_mb"] * MB / (4 * n)
        print(f"{name}: prunelab extra memory {share:.1f}% of the weights (target < 10%): {verdict(share < 10)}")


if __name__ == "__main__":
    main()
