"""Drawing a FigureData on an Agg canvas (no display), saved as PNG and SVG.

Colour and marker name the method (dense, the reference, in black), line style its setting
(density, ...), hollow markers an offline cache policy (Belady). Every drawn artist carries a
gid naming what it shows (`line:<series key>`, `points:<key>`, `ref:<key>`, `front`,
`bar:<part>:<point_id>`, `total:<point_id>`), so tests read figures back from the artists (or
the SVG, where gids become ids). All panels of a figure share their y scale so they compare
by eye; the legend sits outside the axes.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from memsim.core.files import atomic_write_with
from memsim.sweeps.figures.base import FigureData, Line, Panel

METHOD_COLORS = {"dense": "#222222", "glu": "C1", "cats": "C2", "dip": "C3", "dip_ca": "C4",
                 "dip_ra": "C0"}
SPARE_COLORS = ("C0", "C5", "C6", "C8", "C9", "C7")  # methods added later, by name
METHOD_MARKERS = {"dense": "o", "glu": "s", "cats": "^", "dip": "D", "dip_ca": "v", "dip_ra": "P"}
SPARE_MARKERS = "PXh*p<>"
LINE_STYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
PART_COLORS = {"flash": "#d62728", "dram": "#1f77b4", "compute": "#2ca02c",
               "stall": "#7f7f7f"}
SPARE_PART_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#bcbd22")
REFERENCE_STYLES = ((0, (2, 2)), (0, (6, 2)), (0, (1, 3)))
FRONT_MARKER_PT = 20  # a ring around the largest DRAM marker (common.MAX_AREA = 14.8² pt²)
PANEL_COLUMNS = 3  # wider grids make each panel unreadably narrow
TITLE_CHARS_PER_IN = 8  # at figure.titlesize 13 pt, so a long title wraps, never clips
STYLE = {"font.size": 11, "axes.titlesize": 11, "axes.labelsize": 11, "legend.fontsize": 9,
         "figure.titlesize": 13, "svg.hashsalt": "memsim"}  # stable SVG ids across runs


def draw(data: FigureData) -> Figure:
    """The figure for `data` (Agg canvas); `save` writes it."""
    with matplotlib.rc_context(STYLE):
        width_in, height_in = _size(data)
        fig = Figure(figsize=(width_in, height_in), layout="constrained")
        FigureCanvasAgg(fig)
        grid = _grid(fig, len(data.panels), sharex=not _has_bars(data))
        axes = list(grid.flat)
        for ax in axes[len(data.panels):]:
            ax.set_visible(False)
        handles: dict[str, Line2D] = {}
        for ax, panel in zip(axes, data.panels):
            if panel.bars is not None:
                _draw_bars(ax, panel, handles)
            else:
                _draw_lines(ax, panel, handles)
            said = len(data.panels) == 1 and panel.title in data.title  # said once, above
            _decorate(ax, "" if said else panel.title, data)
        if _has_bars(data):  # room above the tallest bar for its total (axes share y)
            axes[0].set_ylim(0, 1.1 * max(_bar_total(p).max() for p in data.panels))
        for row in grid:
            row[0].set_ylabel(data.ylabel)
        _legends(fig, data, handles)
        fig.suptitle(_wrap(data.title, int(width_in * TITLE_CHARS_PER_IN)))
    return fig


def save(fig: Figure, data: FigureData, out_dir: Path) -> list[Path]:
    """Write `fig` as `<name>.png` and `<name>.svg` in `out_dir`; return the two paths."""
    paths = [out_dir / f"{data.name}.{ext}" for ext in ("png", "svg")]
    with matplotlib.rc_context(STYLE):
        for path in paths:  # atomic: a full disk leaves no half-written figure
            atomic_write_with(path, lambda fh, p=path: fig.savefig(
                fh, dpi=150, format=p.suffix[1:],
                metadata={"Date": None} if p.suffix == ".svg" else None))
    return paths


# ---------------------------------------------------------------------- layout
def _has_bars(data: FigureData) -> bool:
    return any(p.bars is not None for p in data.panels)


def _size(data: FigureData) -> tuple[float, float]:
    columns = min(len(data.panels), PANEL_COLUMNS)
    rows = -(-len(data.panels) // PANEL_COLUMNS)
    if _has_bars(data):
        return (max(8.0, max(3.2, 0.55 * _max_bars(data) + 1.2) * columns + 2.2),
                1.6 + 3.8 * rows)
    width_in = 5.4 * columns + 4.0  # 4 in: the legend, right of the axes
    # the legend is centred on the figure's height: each title line past two (0.22 in at
    # 13 pt) grows the figure, so a tall legend never reaches up into a long title
    title_lines = _wrap(data.title, int(width_in * TITLE_CHARS_PER_IN)).count("\n") + 1
    return width_in, 1.6 + 4.2 * rows + 0.44 * max(0, title_lines - 2)


def _max_bars(data: FigureData) -> int:
    return max(len(p.bars.ticklabels) for p in data.panels if p.bars is not None)


def _grid(fig: Figure, count: int, sharex: bool) -> np.ndarray:
    columns = min(count, PANEL_COLUMNS)
    return fig.subplots(-(-count // columns), columns, squeeze=False, sharey=True,
                        sharex=sharex)


def _wrap(text: str, width_chars: int) -> str:
    return "\n".join(textwrap.fill(line, width_chars) for line in text.splitlines())


def _decorate(ax, panel_title: str, data: FigureData) -> None:
    ax.set_title(panel_title)
    ax.set_xlabel(data.xlabel)
    ax.grid(alpha=0.3, which="major")
    if data.log_y:  # ticks at 1-2-5 steps written as plain numbers, not 10^k
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())


# ---------------------------------------------------------------------- styles
def method_color(method: str) -> str:
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return SPARE_COLORS[sum(map(ord, method)) % len(SPARE_COLORS)]


def method_marker(method: str) -> str:
    if method in METHOD_MARKERS:
        return METHOD_MARKERS[method]
    return SPARE_MARKERS[sum(map(ord, method)) % len(SPARE_MARKERS)]


def line_style(line: Line) -> dict:
    """Colour and marker: the method; line style: its other settings; hollow: an oracle."""
    style = {"color": method_color(line.method), "marker": method_marker(line.method),
             "ls": LINE_STYLES[line.style_index % len(LINE_STYLES)], "lw": 1.8, "ms": 6}
    if line.is_oracle:
        style.update(mfc="white", lw=1.1)
    return style


# ---------------------------------------------------------------------- lines
def _broken(line: Line) -> tuple[np.ndarray, np.ndarray]:
    """x, y with a NaN in each gap the line must not bridge (points left out between)."""
    if line.joined is None or all(line.joined):
        return line.x, line.y
    x, y = [line.x[0]], [line.y[0]]
    for joined, xi, yi in zip(line.joined, line.x[1:], line.y[1:]):
        x, y = x + ([] if joined else [np.nan]) + [xi], y + ([] if joined else [np.nan]) + [yi]
    return np.array(x), np.array(y)


def _draw_lines(ax, panel: Panel, handles: dict) -> None:
    for line in panel.lines:
        style = line_style(line)
        if line.sizes is None:
            ax.plot(*_broken(line), label=line.label, gid=f"line:{line.key}", **style)
        else:  # the line without markers, the markers sized by DRAM on top
            ax.plot(line.x, line.y, label=line.label, gid=f"line:{line.key}",
                    **{**style, "marker": "none"})
            ax.scatter(line.x, line.y, s=line.sizes, marker=style["marker"], zorder=3,
                       facecolors="white" if line.is_oracle else style["color"],
                       edgecolors=style["color"] if line.is_oracle else "white",
                       linewidths=1.0 if line.is_oracle else 0.5, gid=f"points:{line.key}")
        handles.setdefault(line.label, Line2D([], [], **style))
    for i, ref in enumerate(panel.references):
        style = {"color": "#777777", "lw": 1.0, "ls": REFERENCE_STYLES[i % 3]}
        (ax.axvline if ref.axis == "x" else ax.axhline)(ref.value, label=ref.label,
                                                        gid=f"ref:{ref.key}", **style)
        handles.setdefault(ref.label, Line2D([], [], **style))
    if panel.front is not None and len(panel.front.x):
        style = {"ls": "--", "color": "black", "marker": "o", "mfc": "none",
                 "ms": FRONT_MARKER_PT, "lw": 0.8}
        ax.plot(panel.front.x, panel.front.y, label=panel.front.label, gid="front", **style)
        handles.setdefault(panel.front.label, Line2D([], [], **{**style, "ms": 10}))


# ---------------------------------------------------------------------- bars
def part_color(part: str, index: int) -> str:
    return PART_COLORS.get(part, SPARE_PART_COLORS[index % len(SPARE_PART_COLORS)])


def _bar_total(panel: Panel) -> np.ndarray:
    return np.sum(list(panel.bars.parts.values()), axis=0)


def _draw_bars(ax, panel: Panel, handles: dict) -> None:
    bars = panel.bars
    x = np.arange(len(bars.ticklabels), dtype=float)
    bottom = np.zeros(len(x))
    for i, (part, heights) in enumerate(bars.parts.items()):
        color = part_color(part, i)
        drawn = ax.bar(x, heights, bottom=bottom, width=0.7, color=color,
                       label=bars.part_labels[part])
        for patch, pid in zip(drawn.patches, bars.point_ids):
            patch.set_gid(f"bar:{part}:{pid}")
        handles.setdefault(bars.part_labels[part],
                           Patch(color=color, label=bars.part_labels[part]))
        bottom = bottom + heights
    for xi, total, pid in zip(x, bottom, bars.point_ids):
        ax.annotate(f"{total:.3g}", (xi, total), xytext=(0, 2), textcoords="offset points",
                    ha="center", va="bottom", fontsize=8, gid=f"total:{pid}")
    ax.set_xticks(x, bars.ticklabels)


# ---------------------------------------------------------------------- legends
def _legends(fig: Figure, data: FigureData, handles: dict) -> None:
    """One legend right of the axes: the series and references, then the DRAM size key."""
    if not handles:
        return
    handles = dict(handles)
    if data.size_key:
        handles["DRAM size:"] = Line2D([], [], ls="none")  # a heading for the size key
        for label, area in data.size_key:
            handles[label] = Line2D([], [], ls="none", marker="o", color="#888888",
                                    markersize=float(np.sqrt(area)))
    fig.legend(list(handles.values()), list(handles), loc="outside right center",
               labelspacing=0.9 if data.size_key else 0.5)
