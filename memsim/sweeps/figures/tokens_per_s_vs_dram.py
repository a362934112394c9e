"""Tokens/s against DRAM size, one axes per (model, phone), a line per method and setting
(density etc. by line style), with two references the sweep computes for each phone:
dense decode with every MLP weight streamed from flash (no cache), and with every weight in
DRAM ("everything fits"). Log y when tokens/s spans more than 10x.
"""
from __future__ import annotations

import numpy as np

from memsim.sweeps.figures.base import (
    FigureData,
    PlotOptions,
    Reference,
    Skip,
    figure,
    needs_log_scale,
    title,
)
from memsim.sweeps.figures.common import dram_label, line_panels
from memsim.sweeps.grouping import (
    context_line,
    dram_unit,
    dram_values,
    finite_rows,
    numbers,
    panel_keys,
    series_of,
)
from memsim.sweeps.table import Table

REFERENCES = {  # column the runner writes -> what it is
    "ref_dense_streaming_tokens_per_s": "dense, MLP streamed from flash",
    "ref_all_in_dram_tokens_per_s": "dense, everything in DRAM",
}


@figure("tokens_per_s_vs_dram", order=2,
        required=("point_id", "method", "capacity_GB", "tokens_per_s"))
def tokens_per_s_vs_dram(table: Table, options: PlotOptions) -> FigureData:
    rows, notes = finite_rows(table, ("tokens_per_s", "capacity_GB"))
    if not len(rows):
        raise Skip("no row has both tokens_per_s and capacity_GB")
    unit = dram_unit(rows)
    dram = dram_values(rows, unit)
    panels = line_panels(rows, series_of(rows), dram, rows["tokens_per_s"], dram)
    keys = panel_keys(rows)
    for panel in panels:
        panel.references += references(rows.select(keys == panel.title))
    if not all(column in rows for column in REFERENCES):
        notes.append("no reference lines (the table predates them: rerun `memsim sweep`)")
    drawn = np.concatenate([rows["tokens_per_s"]] + [
        np.array([r.value for r in p.references]) for p in panels])
    return FigureData("tokens_per_s_vs_dram",
                      title("Decode throughput vs DRAM size", context_line(rows), notes),
                      dram_label(unit), "throughput (tokens/s)", panels,
                      log_y=needs_log_scale(drawn), notes=notes)


def references(rows: Table) -> list[Reference]:
    """Each distinct finite value of each reference column, labelled with it."""
    out = []
    for column, what in REFERENCES.items():
        if column not in rows:
            continue
        values = numbers(rows, column)
        for value in np.unique(values[np.isfinite(values)]):
            out.append(Reference(column, f"{what}: {rate_text(value)} tokens/s", float(value)))
    return out


def rate_text(tokens_per_s: float) -> str:
    """Three significant figures, never in exponent form: 1095, 62.0, 0.214."""
    if tokens_per_s >= 100:
        return f"{tokens_per_s:.0f}"
    return f"{tokens_per_s:.3g}" if tokens_per_s < 10 else f"{tokens_per_s:.1f}"
