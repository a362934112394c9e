"""Figures from a sweep's results table (they read only the table), one per module:

  throughput_vs_perplexity    tokens/s against perplexity per (model, phone), a line per
                              method through its DRAM sizes (marker size = DRAM), Pareto front
  tokens_per_s_vs_dram        tokens/s against DRAM size, with dense streaming and
                              "everything in DRAM" as references
  hit_rate_vs_dram            cache hit rate against DRAM size
  time_breakdown              per-token flash / DRAM / compute / stall, stacked over DRAM sizes
  dram_at_matched_perplexity  tokens/s against DRAM size for points within a tolerance of
                              dense's perplexity (only when some method gets there)

A searched setting (memsim/sweeps/best_of.py) is named in every figure's title: the candidate
chosen at each DRAM size. Each is written as PNG and SVG. A figure whose columns are missing, or that has nothing it
could draw truthfully (no perplexity in a synthetic sweep), is skipped with one line saying
why, and a stale file of it from an earlier run is removed. Ignores: error bars across seeds
(one row per point) and interactive display.
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from memsim.core.errors import ConfigError
from memsim.core.registry import import_submodules
from memsim.sweeps.best_of import choice_notes
from memsim.sweeps.figures.base import (
    FIGURES,
    FigureData,
    PlotOptions,
    Skip,
    ordered_kinds,
)
from memsim.sweeps.figures.dram_at_matched_perplexity import check_tolerance
from memsim.sweeps.figures.draw import draw, save
from memsim.sweeps.figures.time_breakdown import point_indices
from memsim.sweeps.table import Table, read_results

import_submodules(__name__, __path__)  # each figure module registers itself


class PlotFiles(dict):
    """`make_plots`'s answer: figure name -> [png, svg] for each figure written.

    `.data` maps name -> FigureData, `.figures` name -> the matplotlib Figure (for reading
    back), `.skipped` name -> the one-line reason a figure was not drawn."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, FigureData] = {}
        self.figures: dict[str, Figure] = {}
        self.skipped: dict[str, str] = {}


def make_plots(results_path_or_dir: str | Path | Table, out_dir: str | Path,
               points: list[str] | None = None, *, ppl_tolerance: float = 0.1) -> PlotFiles:
    """Read the results table (or take a Table) and write every figure it supports into
    `out_dir` as PNG and SVG. Bad options are a ConfigError before any file is written."""
    table = (results_path_or_dir if isinstance(results_path_or_dir, Table)
             else read_results(results_path_or_dir))
    computed, skipped = figure_data(table, points, ppl_tolerance=ppl_tolerance)
    files = PlotFiles()
    files.skipped = skipped
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for data in computed.values():
        files.figures[data.name] = draw(data)
        data.paths = save(files.figures[data.name], data, out)
        files[data.name], files.data[data.name] = data.paths, data
    for name in skipped:  # an older run's file would show what this table does not
        for ext in ("png", "svg"):
            (out / f"{name}.{ext}").unlink(missing_ok=True)
    return files


def figure_data(table: Table, points: list[str] | None = None, *,
                ppl_tolerance: float = 0.1) -> tuple[dict[str, FigureData], dict[str, str]]:
    """What each figure would draw (name -> FigureData), and name -> why for those skipped;
    nothing is drawn. Bad options are a ConfigError."""
    if len(table) == 0:
        raise ConfigError("the results table has no rows; nothing to plot", source=table.source,
                          allowed="a table written by `memsim sweep` with at least one point")
    options = PlotOptions(tuple(points) if points else None, check_tolerance(ppl_tolerance))
    if options.points and "point_id" in table:
        point_indices(table, options.points)  # unknown ids: an error before any file
    computed, skipped = {}, {}
    for kind in ordered_kinds():
        missing = [c for c in kind.required if c not in table]
        try:
            if missing:
                raise Skip(f"the table has no {', '.join(missing)} column"
                           f"{'s' * (len(missing) > 1)}")
            computed[kind.name] = kind.compute(table, options)
        except Skip as why:
            skipped[kind.name] = str(why)
    notes = choice_notes(table) if computed else []  # what a search chose, at each point
    for data in computed.values():
        for note in notes:
            data.title += f"\n{note}"
            data.notes.append(note)
    return computed, skipped


__all__ = ["FIGURES", "FigureData", "PlotFiles", "PlotOptions", "Skip", "figure_data",
           "make_plots"]
