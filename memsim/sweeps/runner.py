"""Run a sweep: make the traces it needs, simulate every point, keep a results table.

Output folder:
    traces/<trace id>/   trace.npz, eval.json (perplexity; written last: the done marker)
    points/<point id>/   result.json, per_token.csv, resolved_config.yaml, row.json (last)
    results.parquet      one row per point of the current sweep file (CSV without pyarrow)
    dropped.json         grid points filtered out, with the reason
Resumable: every file is written atomically and a task is done only once its marker exists,
so a sweep killed at any moment (Ctrl-C, SIGKILL, a dead worker) resumes by running the same
command; a point whose configuration changed has a new id and is recomputed, the others
are skipped. The results table is rebuilt from the points' row.json files.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from memsim.core.files import atomic_write_text
from memsim.sim.result import write_result
from memsim.sim.simulator import resolved_config, simulate
from memsim.sweeps.executors import EXECUTORS
from memsim.sweeps.spec import SweepPoint, SweepSpec, expand
from memsim.sweeps.trace_sources import (EVAL_FILE, TRACE_FILE, make_trace, prepare_sources,
                                         trace_id, trace_job)
from memsim.traces.model_shape import load_model_shape
from memsim.traces.trace import Trace

ROW_FILE = "row.json"


@dataclass(frozen=True)
class SweepReport:
    num_points: int
    num_done_before: int
    num_failed: int
    table_path: Path | None
    failures: list[str]


def run_sweep(sweep: SweepSpec, out_dir: str | Path, *, executor: str = "local",
              workers: int = 1, scheduler: str | None = None,
              progress: bool = True) -> SweepReport:
    """Make missing traces, then simulate missing points, on `executor`."""
    out = Path(out_dir)
    _remove_stale_temp_files(out)
    points, dropped = expand(sweep)
    atomic_write_text(out / "dropped.json", json.dumps(
        [{"axes": v, "reason": r} for v, r in dropped], indent=2, default=str))
    jobs = {p.point_id: trace_job(p) for p in points}
    traces = {trace_id(j): j for j in jobs.values()}
    todo_traces = [(j, str(out / "traces" / t), _hw_for_trace(points, jobs, t))
                   for t, j in traces.items() if not (out / "traces" / t / EVAL_FILE).exists()]
    todo_points = [p for p in points if not (out / "points" / p.point_id / ROW_FILE).exists()]
    failures = []
    bar = tqdm(total=len(todo_traces) + len(todo_points), desc=f"sweep {sweep.name}",
               unit="task", disable=not progress)
    try:
        with EXECUTORS.get(executor, key_path="executor")(workers, scheduler) as pool:
            prepare_sources(pool, [job for job, _, _ in todo_traces])  # models, corpora
            failures += _run(pool, make_trace, todo_traces, bar, "trace")
            ready = [p for p in todo_points
                     if (out / "traces" / trace_id(jobs[p.point_id]) / EVAL_FILE).exists()]
            args = [(_point_args(p, jobs[p.point_id], out)) for p in ready]
            failures += _run(pool, simulate_point, args, bar, "point")
            failures += [f"point {p.point_id}: its trace failed" for p in todo_points
                         if p not in ready]
    finally:
        bar.close()
        table = write_table(points, out)
    return SweepReport(len(points), len(points) - len(todo_points), len(failures), table,
                       failures)


def _remove_stale_temp_files(out: Path) -> None:
    """A task killed mid-write leaves its temp file (never a half-written result): drop it."""
    for tmp in out.glob("*/*/.*.tmp"):
        tmp.unlink(missing_ok=True)


def _run(pool, fn, args_list, bar, kind) -> list[str]:
    failures = []
    for i, outcome in pool.run(fn, args_list):
        if isinstance(outcome, BaseException):
            failures.append(f"{kind} {Path(str(args_list[i][1])).name}: "
                            f"{type(outcome).__name__}: {outcome}")
        bar.update(1)
    return failures


def _hw_for_trace(points: list[SweepPoint], jobs: dict, tid: str) -> dict:
    """The hardware of (the first) point using trace `tid` (DIP-CA sizes its cache by it)."""
    point = next(p for p in points if trace_id(jobs[p.point_id]) == tid)
    return point.config["hw"]


def _point_args(point: SweepPoint, job: dict, out: Path) -> tuple:
    return (point, str(out / "points" / point.point_id),
            str(out / "traces" / trace_id(job)))


def simulate_point(point: SweepPoint, folder: str, trace_folder: str) -> dict:
    """Task: simulate one point on its trace; row.json written last (the done marker)."""
    trace = Trace.load(Path(trace_folder) / TRACE_FILE)
    figures = json.loads((Path(trace_folder) / EVAL_FILE).read_text())
    model = load_model_shape(point.spec.model) if point.spec.trace.source == "model" \
        else trace.model
    result = simulate(point.hw, model, trace, mode=point.spec.mode)
    config = {**resolved_config(point.hw, model, trace, point.spec.mode),
              "point": point.config["point"], "axes": dict(point.axis_values)}
    write_result(result, folder, config)
    row = table_row(point, result, figures, folder, trace_folder)
    atomic_write_text(Path(folder) / ROW_FILE, json.dumps(row, indent=2))
    return row


def table_row(point: SweepPoint, result, figures: dict, folder: str, trace_folder: str) -> dict:
    """One results-table row: axis values, accuracy, throughput, traffic, memory, paths."""
    s = point.spec
    row = {"point_id": point.point_id, "hw_name": result.hw_name, "model": s.model,
           "method": s.method, "density": s.density, "capacity_GB": point.hw.dram.capacity_GB,
           "cache_impl": point.hw.cache.impl,
           "gamma": s.dip_ca.gamma if s.method == "dip_ca" else math.nan,
           "adapter": "" if s.adapter == "none" else s.adapter,
           "perplexity": _nan(figures.get("perplexity")),
           "trace_source": figures.get("trace_source", ""), "mode": s.mode}
    row.update({k: getattr(result, k) for k in (
        "tokens_per_s", "time_per_token_s", "ttft_s", "hit_rate", "flash_bytes_per_token",
        "dram_read_bytes_per_token", "dram_write_bytes_per_token", "dram_used_bytes")})
    row["energy_per_token_J"] = _nan(result.energy_per_token_J)
    row.update({f"breakdown_{k}_s": v for k, v in result.breakdown_s.items()})
    row.update({axis: _axis_value(point, axis, value) for axis, value in point.axis_values})
    row.update(config_path=str(Path(folder) / "resolved_config.yaml"),
               trace_path=str(Path(trace_folder) / TRACE_FILE),
               result_path=str(Path(folder) / "result.json"))
    return row


def _axis_value(point: SweepPoint, axis: str, value):
    """The value an axis had at this point, blank where the method ignores it."""
    if axis.startswith("dip_ca.") and point.spec.method != "dip_ca":
        return None
    if axis == "density":
        return point.spec.density  # 1.0 for dense, which reads every column
    return value


def _nan(value) -> float:
    return math.nan if value is None else float(value)


def write_table(points: list[SweepPoint], out: Path) -> Path | None:
    """results.parquet (or .csv) from the finished points of this sweep, in grid order."""
    from memsim.sweeps.table import write_results

    rows = []
    for p in points:
        path = out / "points" / p.point_id / ROW_FILE
        if path.exists():
            rows.append(json.loads(path.read_text()))
    return write_results(rows, out) if rows else None

