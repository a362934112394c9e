"""Speed-up of `--workers 2` over `--workers 1` on a simulation-only sweep (target >= 1.8x).

The sweep: synthetic Phi-3-Medium traces (dense and DIP 50%, 128 tokens) replayed on the
flagship preset at 12 DRAM sizes: 24 points. Traces are made once beforehand and copied into
each run's folder, so only the simulation stage is timed (pool start-up included).
    python benchmarks/bench_sweep.py [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from memsim.sweeps.runner import run_sweep
from memsim.sweeps.spec import sweep_from_dict

SWEEP = {"name": "bench", "base": {"hw": "flagship", "model": "phi-3-medium",
                                   "trace": {"source": "synthetic", "tokens": 128, "windows": 1}},
         "axes": {"hw.dram.capacity_GB": [2.0 + 0.5 * i for i in range(12)],
                  "method": ["dense", "dip"], "density": [0.5]}}


def timed_run(spec, traces: Path, workers: int) -> float:
    out = Path(tempfile.mkdtemp(prefix=f"bench_sweep_w{workers}_"))
    shutil.copytree(traces / "traces", out / "traces")
    start = time.perf_counter()
    report = run_sweep(spec, out, workers=workers, progress=False)
    wall = time.perf_counter() - start
    assert report.num_failed == 0 and report.num_done_before == 0
    shutil.rmtree(out)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    spec = sweep_from_dict(SWEEP, source="bench_sweep")
    warm = Path(tempfile.mkdtemp(prefix="bench_sweep_traces_"))
    run_sweep(spec, warm, workers=args.workers, progress=False)  # makes the traces
    one = min(timed_run(spec, warm, 1) for _ in range(args.repeats))
    many = min(timed_run(spec, warm, args.workers) for _ in range(args.repeats))
    shutil.rmtree(warm)
    print(f"simulation-only sweep, 24 points, cores available: {os.cpu_count()}")
    print(f"--workers 1: {one:.2f} s   --workers {args.workers}: {many:.2f} s   "
          f"speed-up {one / many:.2f}x")


if __name__ == "__main__":
    main()
