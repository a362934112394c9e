"""Throughput against perplexity, one axes per (model, phone): the paper's main view.

Each series (a method at one setting) is a line through its DRAM sizes, the marker size
growing with the DRAM size (key on the right); dense's perplexity is a vertical reference;
the Pareto front (no other point has both lower perplexity and more tokens/s) is circled,
over realizable cache policies only (Belady knows the future). Log y when tokens/s spans
more than 10x. Skipped when no row has a perplexity (synthetic traces carry none).
"""
from __future__ import annotations

import numpy as np

from memsim.sweeps.figures.base import (
    FigureData,
    Line,
    PlotOptions,
    Reference,
    Skip,
    figure,
    needs_log_scale,
    title,
)
from memsim.sweeps.figures.common import line_panels, marker_areas, size_key
from memsim.sweeps.grouping import (
    context_line,
    dram_unit,
    dram_values,
    finite_rows,
    is_oracle,
    pareto_front,
    series_of,
)
from memsim.sweeps.table import Table

FRONT_LABEL = "Pareto front (best trade-offs)"
NO_PERPLEXITY = "no row has a perplexity (synthetic traces carry none; `trace.source: model` " \
    "gives one)"


@figure("throughput_vs_perplexity", order=1,
        required=("point_id", "method", "capacity_GB", "perplexity", "tokens_per_s"))
def throughput_vs_perplexity(table: Table, options: PlotOptions) -> FigureData:
    rows, notes = finite_rows(table, ("perplexity", "tokens_per_s", "capacity_GB"))
    if not len(rows):
        raise Skip(NO_PERPLEXITY)
    unit = dram_unit(rows)
    dram = dram_values(rows, unit)
    areas, area_of = marker_areas(dram)
    series = series_of(rows)
    panels = line_panels(rows, series, rows["perplexity"], rows["tokens_per_s"], dram, areas)
    oracle = is_oracle(rows)
    for panel in panels:
        in_panel = {pid for line in panel.lines for pid in line.point_ids}
        mask = np.isin(rows["point_id"].astype(str), list(in_panel))
        panel.front = _front(rows.select(mask & ~oracle))
        panel.references += _dense_reference(rows.select(mask))
    if oracle.any():
        notes.append("the Pareto front leaves out Belady (an offline oracle)")
    return FigureData("throughput_vs_perplexity",
                      title("Decode throughput vs perplexity (marker size: DRAM size)",
                            context_line(rows), notes),
                      "perplexity (lower is better)", "throughput (tokens/s)", panels,
                      log_y=needs_log_scale(rows["tokens_per_s"]),
                      size_key=size_key(area_of, unit), notes=notes)


def _front(rows: Table) -> Line | None:
    if not len(rows):
        return None
    index = pareto_front(rows["perplexity"], rows["tokens_per_s"])
    return Line("front", FRONT_LABEL, "", 0, rows["perplexity"][index],
                rows["tokens_per_s"][index], tuple(rows["point_id"][index].astype(str).tolist()))


def _dense_reference(rows: Table) -> list[Reference]:
    dense = rows["method"] == "dense"
    if not dense.any():
        return []
    value = float(np.min(rows["perplexity"][dense]))
    return [Reference("dense_perplexity", f"dense perplexity ({value:.2f})", value, "x")]
