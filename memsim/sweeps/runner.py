"""Run a sweep: make the traces it needs, simulate every point, keep a results table.

Output folder:
    traces/<trace id>/     trace.npz, eval.json (perplexity; written last: the done marker)
    layouts/<layout id>/   layout.npz, built from a calibration trace (`layout.method`)
    references/<ref id>/   reference.json: dense streaming / everything-in-DRAM tokens/s
    points/<point id>/     result.json, per_token.csv, resolved_config.yaml, row.json (last)
    results.parquet        one row per point of the current sweep file (CSV without pyarrow)
    dropped.json           grid points filtered out, with the reason
Resumable: every file is written atomically and a task is done only once its marker exists,
so a sweep killed at any moment (Ctrl-C, SIGKILL, a dead worker) resumes by running the same
command, which says how many points were already done; a point whose configuration changed
has a new id and is recomputed, the others are skipped. The results table is rebuilt from the
points' row.json files (and the references), so it may gain columns on a rerun.
"""
from __future__ import annotations

import json
import math
import multiprocessing
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from memsim.core.errors import ConfigError
from memsim.core.files import atomic_write_text, read_json, remove_stale_temp_files
from memsim.core.jit import disk_cached
from memsim.hw.config import with_flash_layout
from memsim.sim.result import write_result
from memsim.sim.simulator import resolved_config, simulate
from memsim.sweeps.best_of import Search, is_candidate, search_groups, searched_row
from memsim.sweeps.executors import EXECUTORS
from memsim.sweeps.hold import hold_if_asked
from memsim.sweeps.layout_sources import (
    LAYOUT_FILE,
    build_layout_task,
    calibration_job,
    damaged_layout,
    layout_id,
    layout_job,
)
from memsim.sweeps.progress import SweepProgress, run_task
from memsim.sweeps.references import (
    REFERENCE_FILE,
    reference_id,
    reference_job,
    simulate_references,
)
from memsim.sweeps.spec import SweepPoint, SweepSpec, expand, require_points
from memsim.sweeps.trace_sources import (
    EVAL_FILE,
    TRACE_FILE,
    damaged_trace,
    make_trace,
    prepare_sources,
    trace_id,
    trace_job,
)
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


@dataclass(frozen=True)
class _Task:
    kind: str  # a key of progress.KIND_NAMES: weighs the progress bar
    fn: Callable
    args: tuple
    name: str  # for failure messages


def run_sweep(sweep: SweepSpec, out_dir: str | Path, *, executor: str = "local",
              workers: int = 1, scheduler: str | None = None, progress: bool = True,
              echo: Callable[[str], None] | None = print) -> SweepReport:
    """Make missing traces and references, then simulate missing points, on `executor`.
    `echo` (None: silent) receives one line when some points were already done."""
    out = Path(out_dir)
    remove_stale_temp_files(out)  # a killed writer's temp files, at every level a sweep writes
    points, dropped = expand(sweep)
    require_points(sweep, points, dropped)
    atomic_write_text(out / "dropped.json", json.dumps(
        [{"axes": v, "reason": r} for v, r in dropped], indent=2, default=str))
    jobs = {p.point_id: trace_job(p) for p in points}
    layouts = {p.point_id: layout_job(p) for p in points}
    all_traces = _all_traces(points, jobs)
    discard_damaged(out, set(all_traces), points)
    _discard_damaged_layouts(out, layouts)
    first = _trace_tasks(all_traces, out)
    references = _reference_tasks(points, out)  # need no trace: they run beside the points
    todo_points = [p for p in points if not (out / "points" / p.point_id / ROW_FILE).exists()]
    done_before = len(points) - len(todo_points)
    if echo is not None and done_before:
        echo(f"{out}: {done_before} of {len(points)} points already done"
             + ("" if todo_points or first or references else "; nothing to run"))
    bar = SweepProgress(f"sweep {sweep.name}", workers,
                        enabled=progress and bool(first or references or todo_points))
    layout_tasks = _layout_tasks(layouts, out)
    for task in first + layout_tasks + references:
        bar.add(task.kind, 1)
    bar.add("simulation", len(todo_points))
    failures = []
    warming = _warm_up_beside(todo_points[0]) if executor == "local" and todo_points else None
    try:
        with EXECUTORS.get(executor, key_path="executor")(workers, scheduler) as pool:
            prepare_sources(pool, [t.args[0] for t in first])  # models, corpora: once each
            failures += _run(pool, first, bar)
            failures += _run(pool, [t for t in layout_tasks if _traced(out, t.args[0]
                                                                        ["calibration"])], bar)
            if warming is not None:
                warming.join()  # the points find the kernels in numba's disk cache
            ready = [p for p in todo_points if _traced(out, trace_id(jobs[p.point_id]))
                     and _layout_ready(out, layouts[p.point_id])]
            failures += _run(pool, references + [_point_task(p, jobs[p.point_id],
                                                             layouts[p.point_id], out)
                                                 for p in ready], bar)
            failures += [Failure(f"point {p.point_id}: its trace or layout failed",
                                 retryable=False)
                         for p in todo_points if p not in ready]  # the task's line says
    finally:
        bar.close()
        table = write_table(points, out, search_groups(sweep))
    return SweepReport(len(points), done_before, len(failures), table, failures)


def _warm_up_beside(point: SweepPoint) -> multiprocessing.Process | None:
    """Ready the simulator's compiled kernels for the local pool's workers. With numba's disk
    cache, in a forked process that runs while the pool makes traces (compiling them on a
    fresh machine takes seconds: no longer before the traces start); the workers load them
    from disk. Without one, here, before the pool forks, so that its workers inherit them."""
    if not disk_cached():
        _warm_up(point)
        return None
    process = multiprocessing.get_context("fork").Process(target=_warm_up, args=(point,),
                                                          daemon=True)
    process.start()
    return process


def _warm_up(point: SweepPoint) -> None:
    """Ready the simulator's compiled kernels in this process (a layout-free copy of the
    point's phone; failures are the tasks' to say)."""

    from memsim.sim.warmup import warm_up

    hw = point.hw
    try:
        warm_up(with_flash_layout(hw, None))
    except Exception:  # noqa: BLE001 - a bad point fails in its own task, with its own message
        pass


def _all_traces(points: list[SweepPoint], jobs: dict) -> dict[str, tuple[dict, dict]]:
    """trace id -> (job, hardware of the first point using it), the points' own traces and
    the calibration traces their layouts are built from."""
    out: dict[str, tuple[dict, dict]] = {}
    for p in points:
        for job in (jobs[p.point_id], calibration_job(p)):
            if job is not None:
                out.setdefault(trace_id(job), (job, p.config["hw"]))  # DIP-CA sizes by it
    return out


def _trace_tasks(traces: dict[str, tuple[dict, dict]], out: Path) -> list[_Task]:
    """A task per trace not yet made: a model evaluation, or a synthetic trace."""
    return [_Task("evaluation" if j["trace"]["source"] == "model" else "trace", make_trace,
                  (j, str(out / "traces" / t), hw), f"trace {t}")
            for t, (j, hw) in traces.items() if not _traced(out, t)]


def _traced(out: Path, tid: str) -> bool:
    return (out / "traces" / tid / EVAL_FILE).exists()


def _layout_tasks(layouts: dict, out: Path) -> list[_Task]:
    """A task per layout not yet built (it runs once its calibration trace exists)."""
    jobs = {layout_id(j): j for j in layouts.values() if j is not None}
    return [_Task("layout", build_layout_task,
                  (j, str(out / "traces" / j["calibration"]), str(out / "layouts" / lid)),
                  f"layout {lid}")
            for lid, j in jobs.items() if not (out / "layouts" / lid / LAYOUT_FILE).exists()]


def _layout_ready(out: Path, job: dict | None) -> bool:
    return job is None or (out / "layouts" / layout_id(job) / LAYOUT_FILE).exists()


def _discard_damaged_layouts(out: Path, layouts: dict) -> None:
    """Built layouts that no longer read back are built again (one line names each)."""
    for lid in sorted({layout_id(j) for j in layouts.values() if j is not None}):
        path = out / "layouts" / lid / LAYOUT_FILE
        if path.exists():
            why = damaged_layout(path)
            if why is not None:
                print(f"memsim: rebuilding layout {lid}: {why}", file=sys.stderr)
                path.unlink(missing_ok=True)


def _reference_tasks(points: list[SweepPoint], out: Path) -> list[_Task]:
    """A task per phone whose references are not yet simulated."""
    jobs = {reference_id(j): j for j in map(reference_job, points)}
    return [_Task("reference", simulate_references, (j, str(out / "references" / r)),
                  f"reference {r}")
            for r, j in jobs.items() if not (out / "references" / r / REFERENCE_FILE).exists()]


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
    for ref in sorted({out / "references" / reference_id(reference_job(p)) / REFERENCE_FILE
                       for p in points}):
        if ref.exists() and _read_reference(ref) is None:
            print(f"memsim: recomputing references: {ref} is damaged", file=sys.stderr)
            ref.unlink(missing_ok=True)


def _read_reference(path: Path) -> dict | None:
    """A phone's reference.json (numbers by column name), or None if missing or damaged."""
    try:
        values = read_json(path, what="reference")
    except ConfigError:
        return None
    ok = all(isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
             for k, v in values.items())
    return values if ok else None


def _read_row(path: Path) -> dict | None:
    """A point's row.json, or None if it is damaged (not JSON, not this point's row)."""
    try:
        row = read_json(path, what="row")
    except ConfigError:
        return None
    return row if row.get("point_id") == path.parent.name else None


def _run(pool, tasks: list[_Task], bar: SweepProgress) -> list[str]:
    """Run `tasks` on the pool (bars silenced in the workers); the failures, one line each."""
    failures = []
    for i, outcome in pool.run(run_task, [(t.fn, *t.args) for t in tasks]):
        if isinstance(outcome, BaseException):
            failures.append(Failure(f"{tasks[i].name}: {type(outcome).__name__}: {outcome}",
                                    retryable=getattr(outcome, "retryable",
                                                      not isinstance(outcome, ConfigError))))
            bar.done(tasks[i].kind, None)
        else:
            bar.done(tasks[i].kind, outcome[1])
    return failures


def _point_task(point: SweepPoint, job: dict, layout: dict | None, out: Path) -> _Task:
    layout_path = None if layout is None else \
        str(out / "layouts" / layout_id(layout) / LAYOUT_FILE)
    return _Task("simulation", simulate_point, (point, str(out / "points" / point.point_id),
                                                str(out / "traces" / trace_id(job)),
                                                layout_path), f"point {point.point_id}")


def simulate_point(point: SweepPoint, folder: str, trace_folder: str,
                   layout_path: str | None = None) -> dict:
    """Task: simulate one point on its trace (with the layout the sweep built for it, if
    any); row.json written last (the done marker)."""
    hold_if_asked(Path(folder).parent, ROW_FILE)  # tests only: memsim/sweeps/hold.py
    trace = Trace.load(Path(trace_folder) / TRACE_FILE)
    figures = read_json(Path(trace_folder) / EVAL_FILE, what="trace record")
    model = load_model_shape(point.spec.model) if point.spec.trace.source == "model" \
        else trace.model
    hw = point.hw
    if layout_path is not None:
        hw = with_flash_layout(hw, layout_path)
    result = simulate(hw, model, trace, mode=point.spec.mode, session=point.spec.session)
    config = {**resolved_config(hw, model, trace, point.spec.mode),
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
           "gamma": s.dip_ca.gamma if s.method in ("dip_ca", "dip_ra") else math.nan,
           "adapter": "" if s.adapter == "none" else s.adapter,
           "perplexity": _nan(figures.get("perplexity")),
           "trace_source": figures.get("trace_source", ""), "mode": s.mode}
    row.update({k: getattr(result, k) for k in (
        "tokens_per_s", "time_per_token_s", "ttft_s", "hit_rate", "flash_bytes_per_token",
        "dram_read_bytes_per_token", "dram_write_bytes_per_token", "dram_used_bytes")})
    row["energy_per_token_J"] = _nan(result.energy_per_token_J)
    row.update({k: getattr(result, k) for k in (
        "burst_tokens_per_s", "sustained_tokens_per_s", "latency_p50_s", "latency_p99_s")})
    row.update(time_to_first_throttle_s=_nan(result.time_to_first_throttle_s),
               peak_temperature_C=_nan(result.peak_temperature_C),
               thermal=point.hw.thermal.name if point.hw.thermal else "",
               background=", ".join(result.background), session=result.session or "")
    timeline = s.mode != "analytic"  # the closed form has no timeline to break down
    row.update({f"breakdown_{k}_s": v if timeline else math.nan
                for k, v in result.breakdown_s.items()})
    row.update(_axis_columns(point))
    row.update(config_path=str(Path(folder) / "resolved_config.yaml"),
               trace_path=str(Path(trace_folder) / TRACE_FILE),
               result_path=str(Path(folder) / "result.json"))
    return row


def _axis_columns(point: SweepPoint) -> dict:
    """The point's axis values as this sweep names them (a row.json reused from a run whose
    bundle had another name for the same configuration says the old name)."""
    return {axis: _axis_value(point, axis, value) for axis, value in point.axis_values}


def _axis_value(point: SweepPoint, axis: str, value):
    """The value an axis had at this point, blank where the method ignores it."""
    if axis.startswith("dip_ca.") and point.spec.method not in ("dip_ca", "dip_ra"):
        return None
    if axis.startswith("dip_ra.") and point.spec.method != "dip_ra":
        return None
    if axis == "density":
        return point.spec.density  # 1.0 for dense, which reads every column
    if isinstance(value, dict):  # a bundle axis (or a mapping: a thermal model): its name
        return value.get("name")
    if isinstance(value, list):  # a list of background apps: their names
        return ", ".join(v.get("name", "?") if isinstance(v, dict) else str(v)
                         for v in value) or "none"
    return value


def _nan(value) -> float:
    return math.nan if value is None else float(value)


def write_table(points: list[SweepPoint], out: Path,
                searches: dict[str, Search] | None = None) -> Path | None:
    """results.parquet (or .csv) from the finished points of this sweep, in grid order, each
    row with its phone's reference tokens/s where they exist; a search's candidates become
    one row, the fastest (memsim/sweeps/best_of.py), where its first candidate is."""
    from memsim.sweeps.table import write_results

    finished, references = {}, {}
    for p in points:
        path = out / "points" / p.point_id / ROW_FILE
        row = _read_row(path) if path.exists() else None
        if row is not None:
            ref = out / "references" / reference_id(reference_job(p)) / REFERENCE_FILE
            if ref not in references:
                references[ref] = _read_reference(ref) or {}
            finished[p.point_id] = {**row, **references[ref], **_axis_columns(p)}
    search_of = {pid: s for s in (searches or {}).values() for pid in s.candidates.values()}
    rows, shown = [], set()
    for p in points:
        search = search_of.get(p.point_id) if _is_candidate_point(p) else None
        if search is None:
            rows += [finished[p.point_id]] if p.point_id in finished else []
        elif search.key not in shown:
            shown.add(search.key)
            row = searched_row(search, finished)
            rows += [row] if row is not None else []
    return write_results(rows, out) if rows else None


def _is_candidate_point(point: SweepPoint) -> bool:
    return any(is_candidate(value) for _, value in point.axis_values)
