"""Speed-up of `--workers 2` over `--workers 1` on a simulation-only sweep (target >= 1.9x
at 256-token points), and a check that both give identical results.

The sweep: synthetic Phi-3-Medium traces (dense and DIP 50%, 128 or 256 tokens) replayed on
the flagship preset at 12 DRAM sizes: 24 points. Traces are made once beforehand and copied
into each run's folder, so only the simulation stage is timed (pool start-up included).
Two figures put it in context: what this machine's cores give two processes on a
memory-bound numpy pass (the ceiling for such work), and the same point tasks on the bare
process pool, without the sweep driver's serial work (grid, checksums, table).
    python benchmarks/bench_sweep.py [--workers 2] [--tokens 128 256]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from memsim.sweeps.executors.local import LocalExecutor
from memsim.sweeps.runner import _warm_up, run_sweep, simulate_point
from memsim.sweeps.spec import expand, sweep_from_dict
from memsim.sweeps.table import read_results
from memsim.sweeps.trace_sources import trace_id, trace_job


def sweep(tokens: int) -> dict:
    return {"name": "bench", "base": {"hw": "flagship", "model": "phi-3-medium",
                                      "trace": {"source": "synthetic", "tokens": tokens,
                                                "windows": 1}},
            "axes": {"hw.dram.capacity_GB": [2.0 + 0.5 * i for i in range(12)],
                     "method": ["dense", "dip"], "density": [0.5]}}


def timed_run(spec, traces: Path, workers: int) -> tuple[float, list[dict]]:
    out = Path(tempfile.mkdtemp(prefix=f"bench_sweep_w{workers}_"))
    shutil.copytree(traces / "traces", out / "traces")
    start = time.perf_counter()
    report = run_sweep(spec, out, workers=workers, progress=False)
    wall = time.perf_counter() - start
    assert report.num_failed == 0 and report.num_done_before == 0
    rows = [{k: ("nan" if v != v else v) for k, v in r.items() if not k.endswith("_path")}
            for r in read_results(report.table_path).rows()]  # NaN == NaN for the check
    shutil.rmtree(out)
    return wall, rows


def _numpy_pass(repeats: int) -> float:
    words = np.ones(30_000_000 // 8, dtype=np.uint64)  # a Phi-3 trace's packed masks
    start = time.perf_counter()
    for _ in range(repeats):
        words.sum()
    return time.perf_counter() - start


def machine_scaling(workers: int, repeats: int = 100) -> float:
    """Throughput of `workers` processes over one on a memory-bound numpy pass."""
    import multiprocessing

    one = min(_numpy_pass(repeats) for _ in range(3))
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        start = time.perf_counter()
        pool.map(_numpy_pass, [repeats] * workers)
        many = time.perf_counter() - start
    return workers * one / many


def _timed_point(point, folder: str, trace_folder: str) -> float:
    start = time.perf_counter()
    simulate_point(point, folder, trace_folder)
    return time.perf_counter() - start


def bare_pool(spec, traces: Path, workers: int) -> float:
    """Wall seconds of the sweep's point tasks on the process pool alone."""
    points, _ = expand(spec)
    _warm_up(points[0])
    out = Path(tempfile.mkdtemp(prefix="bench_sweep_pool_"))
    args = [(p, str(out / p.point_id), str(traces / "traces" / trace_id(trace_job(p))))
            for p in points]
    start = time.perf_counter()
    with LocalExecutor(workers) as pool:
        for _, result in pool.run(_timed_point, args):
            assert not isinstance(result, BaseException), result
    wall = time.perf_counter() - start
    shutil.rmtree(out)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, nargs="+", default=[128, 256])
    args = parser.parse_args()
    if args.workers < 1 or args.repeats < 1 or min(args.tokens) < 1:
        parser.error("--workers, --repeats and --tokens must be at least 1")
    print(f"simulation-only sweep, 24 points, cores available: {os.cpu_count()}")
    print(f"this machine: a memory-bound numpy pass in {args.workers} processes gives "
          f"{machine_scaling(args.workers):.2f}x one process's throughput")
    for tokens in args.tokens:
        spec = sweep_from_dict(sweep(tokens), source="bench_sweep")
        warm = Path(tempfile.mkdtemp(prefix="bench_sweep_traces_"))
        run_sweep(spec, warm, workers=args.workers, progress=False)  # makes the traces
        ones = [timed_run(spec, warm, 1) for _ in range(args.repeats)]
        manys = [timed_run(spec, warm, args.workers) for _ in range(args.repeats)]
        pool_one = min(bare_pool(spec, warm, 1) for _ in range(args.repeats))
        pool_many = min(bare_pool(spec, warm, args.workers) for _ in range(args.repeats))
        shutil.rmtree(warm)
        same = all(rows == ones[0][1] for _, rows in ones + manys)
        one, many = min(w for w, _ in ones), min(w for w, _ in manys)
        print(f"{tokens}-token points: --workers 1: {one:.2f} s   --workers {args.workers}: "
              f"{many:.2f} s   speed-up {one / many:.2f}x   results identical: {same}")
        print(f"  the point tasks on the bare pool: {pool_one:.2f} s vs {pool_many:.2f} s, "
              f"speed-up {pool_one / pool_many:.2f}x")


if __name__ == "__main__":
    main()
