"""`memsim demo` with a timeline: where a run's time goes, process by process.

Runs the demo in this process with the sweep runner's steps wrapped (nothing else changes):
every pool task (its kind, method, process, start, wall and CPU seconds, CPU of the programs
it started such as `pip download` included), the kernel warm-up (wherever it runs) and the
driver's phases are appended to LOG as JSON lines; `summary(LOG)` turns them into lines.
benchmarks/bench_demo.py --breakdown runs it for the fresh round; alone:
    MEMSIM_CACHE_DIR=... NUMBA_CACHE_DIR=... python benchmarks/demo_timeline.py OUT LOG
        [--workers N]
The estimate it prints for two quiet cores is a model, not a measurement: the driver's own
CPU, plus the busier of the two cores if every process had its CPU time alone (the workers'
tasks and the warm-up process spread over both cores, and no worker faster than its tasks).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import sys
import time
from pathlib import Path

START = time.perf_counter()
LOG: Path | None = None


def cpu_s() -> float:
    """CPU seconds of this process and of the programs it started and waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def record(**event) -> None:
    with open(LOG, "a") as fh:
        fh.write(json.dumps(event) + "\n")


def timed_task(fn, *args):
    """runner.run_task with a record of the task."""
    from memsim.sweeps.progress import quiet_worker

    quiet_worker()
    wall, cpu = time.perf_counter(), cpu_s()
    result = fn(*args)
    job = args[0] if args and isinstance(args[0], dict) else {}
    record(task=fn.__name__, method=job.get("method", ""), pid=os.getpid(),
           start=wall - START, wall=time.perf_counter() - wall, cpu=cpu_s() - cpu)
    return result, time.perf_counter() - wall


def timed_prepare(kind: str, name: str) -> None:
    """trace_sources._prepare with a record."""
    from workloads.sweep_task import prepare_for_sweep

    wall, cpu = time.perf_counter(), cpu_s()
    prepare_for_sweep(kind, name)
    record(task="prepare", method=kind, pid=os.getpid(), start=wall - START,
           wall=time.perf_counter() - wall, cpu=cpu_s() - cpu)


def phase(name: str, fn):
    """fn, recording each call's wall and CPU seconds in the calling process (its own CPU
    only: the driver's children are the pool's workers, whose tasks are recorded apart)."""
    def wrapped(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            record(phase=name, pid=os.getpid(), start=wall - START,
                   wall=time.perf_counter() - wall, cpu=time.process_time() - cpu)
    return wrapped


def run(out: Path, workers: int | None) -> int:
    import memsim.sweeps.figures as figures
    import memsim.sweeps.runner as runner
    import memsim.sweeps.trace_sources as trace_sources
    from memsim.demo import run_demo

    record(phase="imports", pid=os.getpid(), start=0.0, wall=time.perf_counter() - START,
           cpu=time.process_time())
    runner.run_task = timed_task
    trace_sources._prepare = timed_prepare
    runner._warm_up = phase("kernel warm-up", runner._warm_up)
    runner.prepare_sources = phase("prepare", runner.prepare_sources)
    runner._run = phase("pool", runner._run)
    runner.write_table = phase("table", runner.write_table)
    figures.make_plots = phase("plots", figures.make_plots)
    code = phase("total", run_demo)(out, workers=workers, progress=False)
    return code


def summary(log: Path) -> list[str]:
    """Lines: the driver's phases, the tasks by kind, CPU totals and the 2-core estimate."""
    events = [json.loads(line) for line in log.read_text().splitlines()]
    phases = [e for e in events if "phase" in e]
    tasks = [e for e in events if "task" in e]
    driver = next(e["pid"] for e in phases if e["phase"] == "total")
    lines = ["  driver and warm-up (start s, wall s, CPU s):"]
    for e in phases:
        where = "" if e["pid"] == driver else " (a process beside the pool)"
        lines.append(f"    {e['phase']:15s} {e['start']:6.1f} {e['wall']:6.1f} "
                     f"{e['cpu']:6.1f}{where}")
    kinds = collections.defaultdict(lambda: [0, 0.0, 0.0])
    for e in tasks:
        key = f"{e['task']} {e['method']}".strip()
        kinds[key][0] += 1
        kinds[key][1] += e["wall"]
        kinds[key][2] += e["cpu"]
    lines.append("  pool tasks (count, wall s summed, CPU s summed):")
    for key, (n, wall, cpu) in sorted(kinds.items(), key=lambda kv: -kv[1][2]):
        lines.append(f"    {key:28s} {n:3d} {wall:7.1f} {cpu:7.1f}")
    lines += estimate(phases, tasks, driver)
    return lines


def estimate(phases: list[dict], tasks: list[dict], driver: int) -> list[str]:
    per_worker = collections.Counter()
    for e in tasks:
        per_worker[e["pid"]] += e["cpu"]
    beside = sum(e["cpu"] for e in phases if e["pid"] != driver)
    total = next(e for e in phases if e["phase"] == "total" and e["pid"] == driver)
    driver_cpu = total["cpu"] + next(e["cpu"] for e in phases if e["phase"] == "imports")
    pool = max(max(per_worker.values(), default=0.0),
               (sum(per_worker.values()) + beside) / 2)
    return [f"  CPU: driver {driver_cpu:.1f} s, workers {sum(per_worker.values()):.1f} s "
            f"({len(per_worker)} processes), warm-up beside the pool {beside:.1f} s",
            f"  estimate on 2 quiet cores (a model, see benchmarks/demo_timeline.py): "
            f"{driver_cpu + pool:.1f} s"]


def main() -> None:
    global LOG
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("log", type=Path)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    LOG = args.log
    sys.exit(run(args.out, args.workers))


if __name__ == "__main__":
    main()
