"""Building blocks the line figures share: a panel per (model, phone), a line per series,
the DRAM size as a marker-size key."""
from __future__ import annotations

import numpy as np

from memsim.core.units import ByteUnit
from memsim.sweeps.figures.base import Line, Panel
from memsim.sweeps.grouping import Series, ordered_panels, panel_keys
from memsim.sweeps.table import Table

MIN_AREA, MAX_AREA = 25.0, 220.0  # marker areas (pt²) of the smallest and largest DRAM size
MAX_SIZE_KEY = 7  # entries in the DRAM size key; more sizes show a spread of them


def line_panels(table: Table, series: Series, x: np.ndarray, y: np.ndarray,
                sort_by: np.ndarray, sizes: np.ndarray | None = None) -> list[Panel]:
    """A panel per (model, phone), a line per series in it; `x`, `y`, `sort_by` and `sizes`
    hold one value per table row; each line runs in `sort_by` order."""
    panels, ids = panel_keys(table), table["point_id"].astype(str)
    out = []
    for panel_title in ordered_panels(panels):
        panel = Panel(panel_title)
        for key in series.order:
            index = np.flatnonzero((panels == panel_title) & (series.keys == key))
            if not len(index):
                continue
            index = index[np.lexsort((x[index], sort_by[index]))]
            panel.lines.append(Line(key, series.labels[key], series.methods[key],
                                    series.style_index[key], x[index], y[index],
                                    tuple(ids[index].tolist()),
                                    None if sizes is None else sizes[index],
                                    series.oracle[key]))
        out.append(panel)
    return out


def marker_areas(dram: np.ndarray) -> tuple[np.ndarray, dict[float, float]]:
    """Per row a marker area growing with the DRAM size's rank; and size -> area."""
    distinct = np.unique(dram[np.isfinite(dram)])
    steps = max(len(distinct) - 1, 1)
    area = {float(v): MIN_AREA + (MAX_AREA - MIN_AREA) * i / steps
            for i, v in enumerate(distinct)}
    return np.array([area.get(float(v), MIN_AREA) for v in dram]), area


def size_key(area: dict[float, float], unit: ByteUnit) -> tuple[tuple[str, float], ...]:
    """The DRAM sizes the key shows (all, or an even spread with the ends) and their areas."""
    sizes = sorted(area)
    if len(sizes) > MAX_SIZE_KEY:
        picks = np.linspace(0, len(sizes) - 1, MAX_SIZE_KEY).round().astype(int)
        sizes = [sizes[i] for i in dict.fromkeys(picks.tolist())]
    return tuple((f"{format_size(s)} {unit.name}", area[s]) for s in sizes)


def format_size(value: float) -> str:
    """A DRAM size in its sweep unit: 36, 0.5, 12."""
    return f"{value:.4g}"


def dram_label(unit: ByteUnit) -> str:
    return f"DRAM size ({unit.name})"
