"""What a figure is before it is drawn: panels of lines, reference lines and bars, computed
from the results table alone, so tests can compare them (and the drawn artists) with it.

Each figure is one module that registers its `compute(table, options) -> FigureData` with
`@figure(name, order, required)`; `make_plots` skips a figure whose required columns are
missing, and a figure raises `Skip` (one line saying why) when the table holds nothing it
could draw truthfully.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from memsim.core.registry import Registry
from memsim.sweeps.table import Table


class Skip(Exception):
    """This table holds nothing the figure could show truthfully; the message says why."""


@dataclass(frozen=True)
class PlotOptions:
    """Choices a user makes for `memsim plot`."""

    points: tuple[str, ...] | None = None  # point_ids for the time breakdown (None: all)
    ppl_tolerance: float = 0.1  # perplexity above dense's still counted as matched


@dataclass(frozen=True)
class Line:
    """One series drawn as a line: its points, the table rows they are, how it is styled."""

    key: str  # series key (memsim.sweeps.grouping), also the artists' gid
    label: str  # legend text
    method: str  # picks the colour and marker
    style_index: int  # picks the line style (its settings other than the cache policy)
    x: np.ndarray
    y: np.ndarray
    point_ids: tuple[str, ...]  # the row of each (x, y)
    sizes: np.ndarray | None = None  # marker areas (pt²) when size encodes the DRAM size
    is_oracle: bool = False  # an offline cache policy (Belady): hollow markers, thinner line
    joined: tuple[bool, ...] | None = None  # per gap between points: drawn (None: all are)


@dataclass(frozen=True)
class Reference:
    """A horizontal (axis "y") or vertical ("x") reference line at `value`."""

    key: str
    label: str
    value: float
    axis: str = "y"


@dataclass(frozen=True)
class Bars:
    """Stacked bars: per part (flash, dram, ...) one height per bar, in bar order."""

    key: str  # series key
    parts: dict[str, np.ndarray]  # part -> heights
    part_labels: dict[str, str]
    ticklabels: tuple[str, ...]
    point_ids: tuple[str, ...]


@dataclass
class Panel:
    """One axes: a title and what is drawn on it."""

    title: str
    lines: list[Line] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    front: Line | None = None  # the Pareto front, when the figure has one
    bars: Bars | None = None


@dataclass
class FigureData:
    """A whole figure: its panels, axis labels, scale, keys and notes."""

    name: str  # file stem
    title: str
    xlabel: str
    ylabel: str
    panels: list[Panel]
    log_y: bool = False
    size_key: tuple[tuple[str, float], ...] = ()  # (DRAM label, marker area) pairs
    notes: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)

    def lines(self) -> list[Line]:
        return [line for panel in self.panels for line in panel.lines]


@dataclass(frozen=True)
class FigureKind:
    name: str
    order: int  # files are written (and listed) in this order
    required: tuple[str, ...]  # columns without which the figure is skipped
    compute: Callable[[Table, PlotOptions], FigureData]


FIGURES: Registry[FigureKind] = Registry("figure")


def figure(name: str, order: int, required: tuple[str, ...]):
    """Decorator: register `compute` as the figure `name`."""
    def register(compute: Callable[[Table, PlotOptions], FigureData]):
        FIGURES.register(name)(FigureKind(name, order, required, compute))
        return compute
    return register


def ordered_kinds() -> list[FigureKind]:
    return sorted((FIGURES.get(n) for n in FIGURES.names()), key=lambda k: k.order)


def needs_log_scale(values: np.ndarray) -> bool:
    """Log y when the positive values span more than 10x (one decade)."""
    positive = np.asarray(values, dtype=float)
    positive = positive[np.isfinite(positive) & (positive > 0)]
    return bool(len(positive) > 1 and positive.max() > 10 * positive.min())


def title(headline: str, context: str, notes: list[str]) -> str:
    return "\n".join(line for line in (headline, context, "; ".join(notes)) if line)
