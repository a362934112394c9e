"""Sweeps: a sweep file (spec.py) expanded into points, run resumably (runner.py, with one
honest progress bar: progress.py) on an executor (executors/), with traces from a generator
or a real model (trace_sources.py) and dense reference throughputs (references.py), into one
results table (table.py) that the summary (summary.py) and the figures (figures/) read,
grouping rows into panels and series the same way (grouping.py).

May import: memsim.core, memsim.traces, memsim.cache, memsim.hw, memsim.sim (and workloads/,
lazily, in trace_sources.py only).
"""
from memsim.sweeps.runner import SweepReport, run_sweep
from memsim.sweeps.spec import (
           SweepPoint,
           SweepSpec,
           expand,
           load_sweep,
           sweep_from_dict,
)
from memsim.sweeps.table import read_results, write_results

__all__ = ["SweepPoint", "SweepReport", "SweepSpec", "expand", "load_sweep", "read_results",
           "run_sweep", "sweep_from_dict", "write_results"]
