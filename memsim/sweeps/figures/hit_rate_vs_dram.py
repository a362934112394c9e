"""Cache hit rate (fraction of requested MLP columns served from DRAM) against DRAM size,
one axes per (model, phone), a line per method and setting; Belady, when swept, is the
offline optimum and so the upper bound for its method."""
from __future__ import annotations

from memsim.sweeps.figures.base import FigureData, PlotOptions, Skip, figure, title
from memsim.sweeps.figures.common import dram_label, line_panels
from memsim.sweeps.grouping import (
    context_line,
    dram_unit,
    dram_values,
    finite_rows,
    is_oracle,
    series_of,
)
from memsim.sweeps.table import Table


@figure("hit_rate_vs_dram", order=3,
        required=("point_id", "method", "capacity_GB", "hit_rate"))
def hit_rate_vs_dram(table: Table, options: PlotOptions) -> FigureData:
    rows, notes = finite_rows(table, ("hit_rate", "capacity_GB"))
    if not len(rows):
        raise Skip("no row has both hit_rate and capacity_GB")
    unit = dram_unit(rows)
    dram = dram_values(rows, unit)
    panels = line_panels(rows, series_of(rows), dram, rows["hit_rate"], dram)
    headline = "Cache hit rate vs DRAM size"
    if is_oracle(rows).any():
        headline += " (Belady: the offline optimum, an upper bound)"
    return FigureData("hit_rate_vs_dram", title(headline, context_line(rows), notes),
                      dram_label(unit), "hit rate (fraction of MLP columns from DRAM)",
                      panels, notes=notes)
