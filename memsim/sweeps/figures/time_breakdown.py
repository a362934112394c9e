"""Per-token decode time split into flash / DRAM / compute / stall (the engine's critical
path, PAPER.md section 4): stacked bars over the DRAM sizes, one axes per method and
setting, all on one y scale so they compare by eye; each bar's total (ms) is written on it.
`--points` keeps only the given points. Rows of analytic mode have no breakdown (no
timeline) and are left out, said in the title; with nothing left the figure is skipped.
Breakdown columns added later (`breakdown_<part>_s`) are stacked too.
"""
from __future__ import annotations

import numpy as np

from memsim.core.errors import ConfigError
from memsim.sweeps.figures.base import (
    Bars,
    FigureData,
    Panel,
    PlotOptions,
    Skip,
    figure,
    title,
)
from memsim.sweeps.figures.common import dram_label, format_size
from memsim.sweeps.grouping import (
    context_line,
    dram_unit,
    dram_values,
    numbers,
    ordered_panels,
    panel_keys,
    series_of,
)
from memsim.sweeps.table import Table

KNOWN_PARTS = {"flash": "flash read", "dram": "DRAM read", "compute": "compute",
               "stall": "stall"}


@figure("time_breakdown", order=4, required=("point_id", "method", "capacity_GB"))
def time_breakdown(table: Table, options: PlotOptions) -> FigureData:
    parts = breakdown_parts(table)
    if not parts:
        raise Skip("the table has no breakdown_<part>_s columns")
    rows = table.select(point_indices(table, options.points))
    has_all = np.all([np.isfinite(numbers(rows, f"breakdown_{p}_s")) for p in parts], axis=0)
    notes = []
    if not has_all.all():
        analytic = "mode" in rows and (rows["mode"][~has_all] == "analytic").all()
        count = int((~has_all).sum())
        notes.append(f"{count} row{'s' * (count != 1)} without a breakdown left out"
                     + (" (analytic mode has no timeline)" if analytic else ""))
    rows = rows.select(has_all & np.isfinite(numbers(rows, "capacity_GB")))
    if not len(rows):
        raise Skip("no row has a time breakdown" + (f" ({notes[0]})" if notes else ""))
    unit = dram_unit(rows)
    return FigureData("time_breakdown",
                      title("Per-token decode time breakdown", context_line(rows), notes),
                      dram_label(unit), "time per token (ms)",
                      _panels(rows, parts, dram_values(rows, unit)), notes=notes)


def breakdown_parts(table: Table) -> list[str]:
    """Parts with a `breakdown_<part>_s` column: the known four in order, then any other."""
    found = [c[len("breakdown_"):-2] for c in table.columns
             if c.startswith("breakdown_") and c.endswith("_s")]
    return [p for p in KNOWN_PARTS if p in found] + [p for p in found if p not in KNOWN_PARTS]


def point_indices(table: Table, ids: tuple[str, ...] | None) -> np.ndarray:
    """Indices of the rows `ids` names (every row when None); unknown ids are an error."""
    if ids is None:
        return np.arange(len(table))
    position = {str(pid): i for i, pid in enumerate(table["point_id"])}
    unknown = [pid for pid in ids if pid not in position]
    if unknown:
        raise ConfigError(f"unknown point_id(s) {', '.join(unknown)}", source=table.source,
                          key_path="points", allowed=", ".join(list(position)[:20])
                          + (" ..." if len(position) > 20 else ""))
    return np.array([position[pid] for pid in ids], dtype=int)


def _panels(rows: Table, parts: list[str], dram: np.ndarray) -> list[Panel]:
    series, groups = series_of(rows), panel_keys(rows)
    multiple = len(set(groups.tolist())) > 1
    panels = []
    for group in ordered_panels(groups):
        for key in series.order:
            index = np.flatnonzero((groups == group) & (series.keys == key))
            if not len(index):
                continue
            index = index[np.argsort(dram[index], kind="stable")]
            bars = Bars(key, {p: numbers(rows, f"breakdown_{p}_s")[index] * 1e3 for p in parts},
                        {p: KNOWN_PARTS.get(p, p) for p in parts},
                        tuple(format_size(v) for v in dram[index]),
                        tuple(rows["point_id"][index].astype(str).tolist()))
            name = series.labels[key] + (f"\n{group}" if multiple else "")
            panels.append(Panel(name, bars=bars))
    return panels
