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
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from memsim.core.errors import ConfigError
from memsim.core.files import atomic_write_text, read_json, remove_stale_temp_files
from memsim.sim.result import write_result
from memsim.sim.simulator import resolved_config, simulate
from memsim.sweeps.executors import EXECUTORS
from memsim.sweeps.spec import SweepPoint, SweepSpec, expand, require_points
from memsim.sweeps.trace_sources import (EVAL_FILE, TRACE_FILE, damaged_trace, make_trace,
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

    @property
    def can_resume(self) -> bool:
        """True when rerunning the same command may finish what failed: some task failed
        for another reason than bad input (a killed worker, a full disk, an interrupt)."""
        return any(getattr(f, "retryable", True) for f in self.failures)


class Failure(str):
    """One failed task, as one line; `retryable` unless it failed on bad input (a
    ConfigError: the same input fails the same way on every rerun)."""

    retryable: bool

    def __new__(cls, text: str, retryable: bool = True) -> "Failure":
        obj = super().__new__(cls, text)
        obj.retryable = retryable
        return obj


def run_sweep(sweep: SweepSpec, out_dir: str | Path, *, executor: str = "local",
              workers: int = 1, scheduler: str | None = None,
              progress: bool = True) -> SweepReport:
    """Make missing traces, then simulate missing points, on `executor`."""
    out = Path(out_dir)
    _remove_stale_temp_files(out)
    points, dropped = expand(sweep)
    require_points(sweep, points, dropped)
    atomic_write_text(out / "dropped.json", json.dumps(
        [{"axes": v, "reason": r} for v, r in dropped], indent=2, default=str))
    jobs = {p.point_id: trace_job(p) for p in points}
    discard_damaged(out, {trace_id(j) for j in jobs.values()}, points)
    traces = {trace_id(j): j for j in jobs.values()}
    todo_traces = [(j, str(out / "traces" / t), _hw_for_trace(points, jobs, t))
                   for t, j in traces.items() if not (out / "traces" / t / EVAL_FILE).exists()]
    todo_points = [p for p in points if not (out / "points" / p.point_id / ROW_FILE).exists()]
    failures = []
    bar = tqdm(total=len(todo_traces) + len(todo_points), desc=f"sweep {sweep.name}",
               unit="task", disable=not progress)
    try:
        with EXECUTORS.get(executor, key_path="executor")(workers, scheduler) as pool:
            failures += _run(pool, make_trace, todo_traces, bar, "trace")
            ready = [p for p in todo_points
                     if (out / "traces" / trace_id(jobs[p.point_id]) / EVAL_FILE).exists()]
            args = [(_point_args(p, jobs[p.point_id], out)) for p in ready]
            failures += _run(pool, simulate_point, args, bar, "point")
            failures += [Failure(f"point {p.point_id}: its trace failed", retryable=False)
                         for p in todo_points if p not in ready]  # the trace's line says
    finally:
        bar.close()
        table = write_table(points, out)
    return SweepReport(len(points), len(points) - len(todo_points), len(failures), table,
                       failures)


def _remove_stale_temp_files(out: Path) -> None:
    """A task killed mid-write leaves its temp file (never a half-written result): drop
    them, at every level of the folder."""
    remove_stale_temp_files(out)


def discard_damaged(out: Path, trace_ids: set[str], points: list[SweepPoint]) -> None:
    """Forget finished traces and points whose files are damaged (eval.json or row.json
    unreadable, trace.npz not the bytes recorded), so this run makes them again instead of
    failing the same points on every rerun; one line on stderr names each file."""
    for tid in sorted(trace_ids):
        folder = out / "traces" / tid
        if (folder / EVAL_FILE).exists():
            why = damaged_trace(folder)
            if why is not None:
                print(f"memsim: remaking trace {tid}: {why}", file=sys.stderr)
                (folder / EVAL_FILE).unlink(missing_ok=True)
    for point in points:
        row = out / "points" / point.point_id / ROW_FILE
        if row.exists() and _read_row(row) is None:
            print(f"memsim: recomputing point {point.point_id}: {row} is damaged",
                  file=sys.stderr)
            row.unlink(missing_ok=True)


def _read_row(path: Path) -> dict | None:
    """A point's row.json, or None if it is damaged (not JSON, not this point's row)."""
    try:
        row = read_json(path, what="row")
    except ConfigError:
        return None
    return row if row.get("point_id") == path.parent.name else None


def _run(pool, fn, args_list, bar, kind) -> list[str]:
    failures = []
    for i, outcome in pool.run(fn, args_list):
        if isinstance(outcome, BaseException):
            failures.append(Failure(f"{kind} {Path(str(args_list[i][1])).name}: "
                                    f"{type(outcome).__name__}: {outcome}",
                                    retryable=getattr(outcome, "retryable",
                                                      not isinstance(outcome, ConfigError))))
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
        row = _read_row(path) if path.exists() else None
        if row is not None:
            rows.append(row)
    return write_results(rows, out) if rows else None

