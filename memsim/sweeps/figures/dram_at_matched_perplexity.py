"""Tokens/s against DRAM size for the points whose perplexity is within a tolerance of
dense's: how much DRAM each method needs for a throughput at (nearly) no loss of accuracy.

Drawn only when it can be drawn truthfully: dense rows exist to match against, and some
other method has a point within the tolerance. The title states the bound (dense's
perplexity + tolerance; with several models, each panel's dense perplexity is in its
title); each label gives the perplexity range of the very points its line draws; methods
without a matched point are named in the title with their best perplexity. Belady rows are
left out (an oracle is no method a phone can run).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from memsim.core.errors import ConfigError
from memsim.sweeps.figures.base import (
    FigureData,
    Line,
    PlotOptions,
    Skip,
    figure,
    needs_log_scale,
    title,
)
from memsim.sweeps.figures.common import dram_label, line_panels
from memsim.sweeps.figures.throughput_vs_perplexity import NO_PERPLEXITY
from memsim.sweeps.grouping import (
    context_line,
    dram_unit,
    dram_values,
    finite_rows,
    is_oracle,
    method_label,
    ordered_panels,
    panel_keys,
    series_of,
)
from memsim.sweeps.table import Table


@figure("dram_at_matched_perplexity", order=5,
        required=("point_id", "method", "capacity_GB", "perplexity", "tokens_per_s"))
def dram_at_matched_perplexity(table: Table, options: PlotOptions) -> FigureData:
    tolerance = check_tolerance(options.ppl_tolerance)
    rows, _ = finite_rows(table, ("perplexity", "tokens_per_s", "capacity_GB"))
    if not len(rows):
        raise Skip(NO_PERPLEXITY)
    rows = rows.select(~is_oracle(rows))
    panels = panel_keys(rows)
    references = _dense_perplexity(rows, panels)
    if not references:
        raise Skip("no dense rows with a perplexity to match against")
    bound = np.array([references.get(p, -np.inf) + tolerance for p in panels.tolist()])
    matched = rows["perplexity"] <= bound
    unmatched = _unmatched(rows, matched)
    if not (matched & (rows["method"] != "dense")).any():
        raise Skip(f"no method comes within {tolerance:g} of dense's perplexity "
                   f"({_said(references)}); best: {', '.join(unmatched)}")
    sizes = _sizes_by_series(rows, panels)
    series = series_of(rows).subset(matched)
    rows, panels = rows.select(matched), panels[matched]
    unit = dram_unit(rows)
    dram = dram_values(rows, unit)
    drawn = line_panels(rows, series, dram, rows["tokens_per_s"], dram)
    perplexity = dict(zip(rows["point_id"].astype(str), rows["perplexity"]))
    for panel in drawn:
        panel.lines = [_joined(_with_perplexity(line, perplexity),
                               sizes[(panel.title, line.key)], rows)
                       for line in panel.lines]
        if len(references) > 1:
            panel.title += f" (dense {references[panel.title]:.2f})"
    notes = [f"no point within: {', '.join(unmatched)}"] if unmatched else []
    headline = (f"Throughput vs DRAM size at matched perplexity (≤ dense "
                f"{_said(references)} + {tolerance:g})")
    return FigureData("dram_at_matched_perplexity", title(headline, context_line(rows), notes),
                      dram_label(unit), "throughput (tokens/s)", drawn,
                      log_y=needs_log_scale(rows["tokens_per_s"]), notes=notes)


def check_tolerance(tolerance: float) -> float:
    if not (isinstance(tolerance, (int, float)) and tolerance >= 0):
        raise ConfigError(f"must be a number >= 0, got {tolerance!r}", source="<plot>",
                          key_path="ppl_tolerance", allowed="a perplexity difference >= 0")
    return float(tolerance)


def _dense_perplexity(rows: Table, panels: np.ndarray) -> dict[str, float]:
    """Per panel with dense rows, dense's (lowest) perplexity."""
    dense = rows["method"] == "dense"
    return {p: float(np.min(rows["perplexity"][dense & (panels == p)]))
            for p in ordered_panels(panels) if (dense & (panels == p)).any()}


def _said(references: dict[str, float]) -> str:
    return f"{next(iter(references.values())):.2f}" if len(references) == 1 else "per panel"


def _unmatched(rows: Table, matched: np.ndarray) -> list[str]:
    """"DIP 68.05" for each method with no matched point: its best perplexity."""
    out = []
    for method in dict.fromkeys(rows["method"].astype(str)):
        here = rows["method"] == method
        if not (matched & here).any():
            out.append(f"{method_label(method)} {np.min(rows['perplexity'][here]):.2f}")
    return out


def _sizes_by_series(rows: Table, panels: np.ndarray) -> dict[tuple[str, str], list[float]]:
    """(panel, series) -> every DRAM size (GB) it was run at, matched or not."""
    keys, dram = series_of(rows).keys, rows["capacity_GB"]
    return {(p, k): sorted(set(dram[(panels == p) & (keys == k)].tolist()))
            for p, k in set(zip(panels.tolist(), keys.tolist()))}


def _joined(line: Line, sizes: list[float], rows: Table) -> Line:
    """The line, not bridging a DRAM size whose point fell outside the tolerance."""
    capacity = dict(zip(rows["point_id"].astype(str), rows["capacity_GB"]))
    rank = [sizes.index(capacity[pid]) for pid in line.point_ids]
    return dataclasses.replace(line, joined=tuple(b == a + 1 for a, b in zip(rank, rank[1:])))


def _with_perplexity(line: Line, perplexity: dict[str, float]) -> Line:
    """The line with its label saying the perplexity range of the points it draws."""
    values = [perplexity[pid] for pid in line.point_ids]
    low, high = f"{min(values):.2f}", f"{max(values):.2f}"
    span = low if low == high else f"{low}–{high}"
    return dataclasses.replace(line, label=f"{line.label}, perplexity {span}")
