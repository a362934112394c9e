"""The summary table `memsim sweep` and `memsim demo` print: a row per point, the series
named as in the figures (memsim.sweeps.grouping), sizes in the sweep's one unit, said in
the header. Columns a sweep lacks (perplexity, for synthetic traces) are left out, with a
line saying so. A searched setting (memsim/sweeps/best_of.py) gets a column naming the
candidate chosen at each point."""
from __future__ import annotations

import math

import numpy as np

from memsim.core.units import byte_unit
from memsim.sweeps.grouping import (
    dram_unit,
    dram_values,
    numbers,
    ordered_panels,
    panel_keys,
    series_of,
)
from memsim.sweeps.table import Table


def summary_lines(table: Table) -> list[str]:
    """The table as aligned text lines (header first)."""
    if not len(table) or "method" not in table or "capacity_GB" not in table:
        return ["(no rows to summarise)"]
    columns, notes = _columns(table)
    order = _row_order(table)
    cells = [[name for name, _, _ in columns]]
    cells += [[fmt(values[i]) for _, values, fmt in columns] for i in order]
    widths = [max(len(row[j]) for row in cells) for j in range(len(columns))]
    text_columns = {j for j, (_, values, _) in enumerate(columns) if values.dtype == object}
    lines = ["  ".join(c.ljust(w) if j in text_columns else c.rjust(w)
                       for j, (c, w) in enumerate(zip(row, widths))).rstrip() for row in cells]
    return lines + notes


def _columns(table: Table) -> tuple[list[tuple], list[str]]:
    """(header, per-row values, formatter) for each column the table can fill."""
    unit, series, panels = dram_unit(table), series_of(table), panel_keys(table)
    labels = np.array([series.labels[k] for k in series.keys], dtype=object)
    columns, notes = [], []
    if len(set(panels.tolist())) > 1:
        columns.append(("model on phone", panels, str))
    columns += [(f"DRAM {unit.name}", dram_values(table, unit), _number(".4g")),
                ("method", labels, str)]
    choices = [c for c in table.columns if c.endswith("_choice")]  # a search's pick
    columns += [("chosen" if len(choices) == 1 else f"{c[:-len('_choice')]} chosen",
                 table[c].astype(object), str) for c in choices]
    for header, column, fmt in (("perplexity", "perplexity", ".3f"),
                                ("tokens/s", "tokens_per_s", None),
                                ("sustained tokens/s", "sustained_tokens_per_s", None),
                                ("hit rate", "hit_rate", ".3f")):
        if column == "sustained_tokens_per_s" and not _over_time(table):
            continue
        if column in table and np.isfinite(numbers(table, column)).any():
            values = numbers(table, column)
            columns.append((header, values, _number(fmt or _decimals(values))))
        elif column == "perplexity":
            notes.append("perplexity: none (synthetic traces carry no accuracy)")
    if "flash_bytes_per_token" in table:
        flash = numbers(table, "flash_bytes_per_token")
        flash_unit = byte_unit(flash)
        digits = ".3f" if flash_unit.name == "GB" else ".2f"  # ~1 MB either way
        columns.append((f"flash {flash_unit.name}/token", flash_unit.of(flash), _number(digits)))
    return columns, notes


def _over_time(table: Table) -> bool:
    """Whether any point ran with something that changes speed over time (heat, a
    background app, a session): then sustained tokens/s differs from tokens/s."""
    return any(column in table and any(str(v) for v in table[column])
               for column in ("thermal", "background", "session"))


def _row_order(table: Table) -> list[int]:
    """By panel, then DRAM size, then series in the figures' order."""
    panels, series = panel_keys(table), series_of(table)
    panel_rank = {p: i for i, p in enumerate(ordered_panels(panels))}
    series_rank = {k: i for i, k in enumerate(series.order)}
    dram = numbers(table, "capacity_GB")
    return sorted(range(len(table)), key=lambda i: (panel_rank[panels[i]], dram[i],
                                                    series_rank[series.keys[i]]))


def _decimals(values: np.ndarray) -> str:
    """One decimal, or three when every value is below 1 (a large model's tokens/s)."""
    return ".3f" if np.nanmax(np.abs(values)) < 1 else ".1f"


def _number(spec: str):
    def fmt(value: float) -> str:
        return "-" if math.isnan(value) else format(value, spec)
    return fmt
