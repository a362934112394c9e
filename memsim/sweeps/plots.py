"""Figures from a sweep's results table (issue 4 section 3); they read only the table.

Four figures, each written as PNG and SVG:
  throughput_vs_perplexity    tokens/s against perplexity, a curve per method, one panel per DRAM
                              size, with the Pareto front (max tokens/s, min perplexity) marked:
                              the paper's main figure (PAPER.md, DIP-CA results)
  hit_rate_vs_dram            cache hit rate against DRAM size, a line per (method, cache policy);
                              Belady, the offline optimum, is the upper bound
  dram_at_matched_perplexity  DRAM used against tokens/s for the points of each method whose
                              perplexity is within a tolerance of dense's: the memory-saving view
  time_breakdown              per-token time split into flash / DRAM / compute / stall for chosen
                              points (stacked bars, ms)
Each figure is computed first as a `PlotData` (the series drawn, the Pareto points, notes), so
tests check the data rather than pixels. Ignores: error bars across seeds (one row per point),
and interactive display (Agg canvas only).
"""
from __future__ import annotations

import argparse
import logging
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from memsim.core.errors import ConfigError
from memsim.core.files import atomic_write_with, check_output_dir
from memsim.sweeps.table import Table, read_results

log = logging.getLogger(__name__)

METHOD_ORDER = ("dense", "glu", "cats", "dip", "dip_ca")
METHOD_LABELS = {"dense": "Dense", "glu": "GLU pruning", "cats": "CATS", "dip": "DIP",
                 "dip_ca": "DIP-CA"}
CACHE_LABELS = {"none": "no cache", "lru": "LRU", "lfu": "LFU", "belady": "Belady"}
CACHE_ORDER = ("", "none", "lru", "lfu", "belady")
CACHE_LINESTYLES = {"lru": "-", "lfu": "-.", "belady": ":", "none": "--"}
ORACLE_CACHE = "belady"  # knows the future: an upper bound, never on the Pareto front
BREAKDOWN_PARTS = {"flash": "flash read", "dram": "DRAM", "compute": "compute", "stall": "stall"}
BREAKDOWN_COLORS = {"flash": "#d62728", "dram": "#1f77b4", "compute": "#2ca02c",
                    "stall": "#7f7f7f"}
REQUIRED_COLUMNS = {
    "throughput_vs_perplexity": ("method", "capacity_GB", "perplexity", "tokens_per_s"),
    "hit_rate_vs_dram": ("method", "capacity_GB", "hit_rate"),
    "dram_at_matched_perplexity": ("method", "capacity_GB", "perplexity", "tokens_per_s",
                                   "dram_used_bytes"),
    "time_breakdown": ("point_id", "method", "capacity_GB",
                       *(f"breakdown_{part}_s" for part in BREAKDOWN_PARTS)),
}
TITLE_CHARS_PER_IN = 8  # at figure.titlesize 13 pt, so a long title wraps instead of clipping
STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 9,
         "figure.titlesize": 13}


@dataclass(frozen=True)
class Series:
    """One drawn line (or bar segment): x, y and the point_id of each (x, y)."""

    label: str  # legend text
    x: np.ndarray
    y: np.ndarray
    point_ids: tuple[str, ...] = ()  # per (x, y); for a mean line, every row averaged
    y_low: np.ndarray | None = None  # band (min over rows sharing an x), when there are several
    y_high: np.ndarray | None = None


@dataclass
class PlotData:
    """What one figure shows: panel title -> series key -> Series, plus Pareto fronts."""

    name: str  # file stem
    title: str
    xlabel: str
    ylabel: str
    panels: dict[str, dict[str, Series]]
    fronts: dict[str, Series] = field(default_factory=dict)  # per panel
    ticklabels: tuple[str, ...] = ()  # bar labels (time breakdown only)
    notes: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)


class PlotFiles(dict):
    """`make_plots`'s answer: plot name -> [png, svg]; `.data` maps plot name -> PlotData."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, PlotData] = {}


# ---------------------------------------------------------------------- entry points
def make_plots(results_path_or_dir: str | Path, out_dir: str | Path,
               points: list[str] | None = None, *, ppl_tolerance: float = 0.1) -> PlotFiles:
    """Read the results table and write every figure as PNG and SVG into `out_dir`."""
    table = read_results(results_path_or_dir)
    check_plottable(table)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = [throughput_vs_perplexity_data(table), hit_rate_vs_dram_data(table),
               matched_perplexity_data(table, ppl_tolerance), time_breakdown_data(table, points)]
    files = PlotFiles()
    for data in figures:  # all computed first: a bad --points writes nothing
        data.paths = draw(data, out)
        files[data.name], files.data[data.name] = data.paths, data
    return files


def check_plottable(table: Table) -> None:
    """A ConfigError if the table is empty or lacks a column any figure needs (all named)."""
    if len(table) == 0:
        raise ConfigError("the results table has no rows; nothing to plot", source=table.source,
                          allowed="a table written by `memsim sweep` with at least one point")
    missing = {name: [c for c in cols if c not in table] for name, cols in REQUIRED_COLUMNS.items()}
    missing = {name: cols for name, cols in missing.items() if cols}
    if missing:
        columns = sorted({c for cols in missing.values() for c in cols})
        needs = "; ".join(f"{name} needs {', '.join(cols)}" for name, cols in missing.items())
        raise ConfigError(f"the results table lacks column(s) {', '.join(columns)} ({needs})",
                          source=table.source, key_path=", ".join(columns),
                          allowed="columns present: " + ", ".join(table.columns))


def add_plot_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `memsim plot DIR [--out DIR] [--points ID ...]`."""
    parser.add_argument("results", metavar="DIR",
                        help="sweep folder holding results.parquet/results.csv, or the file")
    parser.add_argument("--out", default=None, help="where to write the figures "
                        "(default: DIR/plots)")
    parser.add_argument("--points", nargs="+", default=None, metavar="ID",
                        help="point_ids for the time breakdown (default: per method, the "
                             "point at the median DRAM size)")
    parser.add_argument("--ppl-tolerance", type=float, default=0.1,
                        help="perplexity above dense's still counted as matched (default 0.1)")


def run_plot(args: argparse.Namespace) -> int:
    """Run `memsim plot`: write the figures and print their paths."""
    source = Path(args.results)
    out = Path(args.out) if args.out else (source if source.is_dir() else source.parent) / "plots"
    if source.exists():  # (else the missing table is the error, and nothing is created)
        check_output_dir(out, "--out")  # before drawing anything
    files = make_plots(source, out, args.points, ppl_tolerance=args.ppl_tolerance)
    for paths in files.values():
        for path in paths:
            print(path)
    return 0


# ---------------------------------------------------------------------- the four figures
def throughput_vs_perplexity_data(table: Table) -> PlotData:
    """Tokens/s against perplexity per method, a panel per DRAM size, Pareto front marked."""
    rated, notes = _drop_missing(table, ("perplexity", "tokens_per_s", "capacity_GB"))
    panels, fronts = {}, {}
    for capacity in np.unique(rated["capacity_GB"]):
        rows = rated.select(rated["capacity_GB"] == capacity)
        panel = f"DRAM {capacity:g} GB"
        panels[panel] = _curves(rows, "perplexity", "tokens_per_s")
        fronts[panel] = _front(rows)
    return PlotData("throughput_vs_perplexity",
                    _title("Decode throughput vs perplexity", table, notes),
                    "perplexity (lower is better)", "throughput (tokens/s)",
                    panels or {"no rows with perplexity": {}}, fronts, notes=notes)


def hit_rate_vs_dram_data(table: Table) -> PlotData:
    """Hit rate against DRAM size, a line per (method, cache policy); mean and range per x."""
    rows, notes = _drop_missing(table, ("hit_rate", "capacity_GB"))
    keys = _keys(rows, always_impl=True)
    series = {key: _mean_line(rows.select(keys == key), "capacity_GB", "hit_rate", key)
              for key in _ordered(set(keys))}
    if any(s.y_low is not None for s in series.values()):
        notes.append("line: mean over density/γ, band: their range")
    return PlotData("hit_rate_vs_dram",
                    _title("Cache hit rate vs DRAM size (Belady = offline optimum, "
                           "the upper bound)", table, notes),
                    "DRAM size (GB)", "cache hit rate (fraction of MLP columns)",
                    {"": series}, notes=notes)


def matched_perplexity_data(table: Table, tolerance: float = 0.1) -> PlotData:
    """Per method and DRAM size, the fastest point within `tolerance` of dense's perplexity."""
    if not tolerance >= 0:
        raise ConfigError("must be >= 0", source="<api>", key_path="ppl_tolerance",
                          allowed="a perplexity difference >= 0")
    rated, notes = _drop_missing(table, ("perplexity", "tokens_per_s", "dram_used_bytes",
                                         "capacity_GB"))
    rows = _without_oracle(rated)
    reference, what = _reference_perplexity(rows)
    keys = _keys(rows)
    series = {key: _matched_series(rows.select(keys == key), key, reference + tolerance)
              for key in _ordered(set(keys))}
    notes.append(f"perplexity ≤ {what} {reference:.2f} + {tolerance:g}" if len(rows) else
                 "no rows with perplexity")
    return PlotData("dram_at_matched_perplexity",
                    _title("DRAM used vs throughput at matched perplexity", table, notes),
                    "DRAM used (GB)", "throughput (tokens/s)", {"": series}, notes=notes)


def time_breakdown_data(table: Table, points: list[str] | None = None) -> PlotData:
    """Stacked ms per token (flash / DRAM / compute / stall) for `points` (or the defaults)."""
    ids = list(points) if points else default_breakdown_points(table)
    index = _row_indices(table, ids)
    rows = table.select(np.array(index, dtype=int))
    x = np.arange(len(ids), dtype=float)
    segments = {part: Series(label, x, rows[f"breakdown_{part}_s"] * 1e3, tuple(ids))
                for part, label in BREAKDOWN_PARTS.items()}
    return PlotData("time_breakdown", _title("Per-token decode time breakdown", table, []),
                    "", "time per token (ms)", {"": segments},
                    ticklabels=tuple(_point_label(row) for row in rows.rows()))


# ---------------------------------------------------------------------- selection rules
def pareto_front(perplexity: np.ndarray, tokens_per_s: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both (lower perplexity, more tokens/s),
    in order of rising perplexity; of identical points only the first is kept."""
    order = np.lexsort((-np.asarray(tokens_per_s), np.asarray(perplexity)))
    keep, best = [], -np.inf
    for i in order:
        if tokens_per_s[i] > best:
            keep.append(i)
            best = tokens_per_s[i]
    return np.array(keep, dtype=int)


def default_breakdown_points(table: Table) -> list[str]:
    """Per method: at its median DRAM size (lower median), a realizable cache policy, its
    median density; the first such row."""
    ids = []
    for method in _ordered(set(table["method"])):
        rows = _without_oracle(table.select(table["method"] == method))
        rows = _at_lower_median(_at_lower_median(rows, "capacity_GB"), "density")
        ids.append(str(rows["point_id"][0]))
    return ids


def _at_lower_median(rows: Table, column: str) -> Table:
    """The rows whose `column` is the lower median of its distinct finite values (all rows
    when it has none)."""
    values = _numbers(rows, column) if column in rows else np.full(len(rows), np.nan)
    distinct = np.unique(values[np.isfinite(values)])
    if not len(distinct):
        return rows
    return rows.select(values == distinct[(len(distinct) - 1) // 2])


def _matched_series(rows: Table, key: str, budget: float) -> Series:
    """Per DRAM size the fastest row with perplexity <= budget; with none at any size, the
    row closest to it (lowest perplexity) per size, said in the label."""
    within, label = rows["perplexity"] <= budget, _legend_label(key)
    if within.any():
        picks = [_fastest(rows, within & (rows["capacity_GB"] == c))
                 for c in np.unique(rows["capacity_GB"][within])]
    else:
        label += f" (closest: ppl {np.min(rows['perplexity']):.3g})"
        picks = [_lowest_perplexity(rows, rows["capacity_GB"] == c)
                 for c in np.unique(rows["capacity_GB"])]
    picked = rows.select(np.array(picks, dtype=int))
    order = np.argsort(picked["dram_used_bytes"], kind="stable")
    return Series(label, picked["dram_used_bytes"][order] / 1e9,
                  picked["tokens_per_s"][order], _ids(picked, order))


def _fastest(rows: Table, mask: np.ndarray) -> int:
    """Index of the most tokens/s among `mask` (ties: less DRAM used)."""
    candidates = np.flatnonzero(mask)
    order = np.lexsort((rows["dram_used_bytes"][candidates], -rows["tokens_per_s"][candidates]))
    return int(candidates[order[0]])


def _lowest_perplexity(rows: Table, mask: np.ndarray) -> int:
    """Index of the lowest perplexity among `mask` (ties: more tokens/s)."""
    candidates = np.flatnonzero(mask)
    order = np.lexsort((-rows["tokens_per_s"][candidates], rows["perplexity"][candidates]))
    return int(candidates[order[0]])


def _reference_perplexity(rows: Table) -> tuple[float, str]:
    """Dense's perplexity (its lowest), else the lowest in the table."""
    if len(rows) == 0:
        return np.nan, "reference"
    dense = rows["method"] == "dense"
    if dense.any():
        return float(np.min(rows["perplexity"][dense])), "dense"
    return float(np.min(rows["perplexity"])), "best in table (no dense rows)"


def _front(rows: Table) -> Series:
    """The Pareto front of one panel over realizable cache policies (Belady excluded)."""
    rows = _without_oracle(rows)
    index = pareto_front(rows["perplexity"], rows["tokens_per_s"])
    return Series("Pareto front (excl. Belady)", rows["perplexity"][index],
                  rows["tokens_per_s"][index], _ids(rows, index))


def _without_oracle(rows: Table) -> Table:
    """Rows whose cache policy is realizable (not Belady), unless that leaves none."""
    if "cache_impl" not in rows:
        return rows
    realizable = rows["cache_impl"] != ORACLE_CACHE
    return rows.select(realizable) if realizable.any() else rows


def _row_indices(table: Table, ids: list[str]) -> list[int]:
    position = {str(pid): i for i, pid in enumerate(table["point_id"])}
    unknown = [pid for pid in ids if pid not in position]
    if unknown:
        raise ConfigError(f"unknown point_id(s) {', '.join(unknown)}", source=table.source,
                          key_path="points", allowed=", ".join(list(position)[:20])
                          + (" ..." if len(position) > 20 else ""))
    return [position[pid] for pid in ids]


# ---------------------------------------------------------------------- grouping helpers
def _drop_missing(table: Table, columns: tuple[str, ...]) -> tuple[Table, list[str]]:
    """Rows where every column in `columns` is a finite number; a note per column skipped."""
    keep, notes = np.ones(len(table), dtype=bool), []
    for column in columns:
        finite = np.isfinite(_numbers(table, column))
        if (keep & ~finite).any():
            count = int((keep & ~finite).sum())
            notes.append(f"{count} row{'s' * (count != 1)} without {column} skipped")
            log.warning("%s: %s", table.source, notes[-1])
        keep &= finite
    return table.select(keep), notes


def _numbers(table: Table, column: str) -> np.ndarray:
    try:
        return table[column].astype(float)
    except ValueError:
        raise ConfigError("a column the plots read as numbers holds text", source=table.source,
                          key_path=column, allowed="numbers, empty for missing") from None


def _keys(rows: Table, always_impl: bool = False) -> np.ndarray:
    """Series key per row: the method, plus "/impl" when the method has several cache
    policies in `rows` (or always)."""
    methods = rows["method"].astype(str)
    impls = rows["cache_impl"].astype(str) if "cache_impl" in rows else np.full(len(rows), "none")
    keys = np.empty(len(rows), dtype=object)
    for method in set(methods.tolist()):
        here = methods == method
        split = always_impl or len(set(impls[here])) > 1
        keys[here] = [f"{method}/{impl}" if split else method for impl in impls[here].tolist()]
    return keys


def _curves(rows: Table, x: str, y: str) -> dict[str, Series]:
    """A line per series key, its points sorted by x."""
    keys, out = _keys(rows), {}
    for key in _ordered(set(keys)):
        sub = rows.select(keys == key)
        order = np.lexsort((sub[y], sub[x]))
        out[key] = Series(_legend_label(key), sub[x][order], sub[y][order], _ids(sub, order))
    return out


def _mean_line(rows: Table, x: str, y: str, key: str) -> Series:
    """Mean of y at each x; a min-max band when some x has several rows."""
    xs = np.unique(rows[x])
    groups = [rows[y][rows[x] == value] for value in xs]
    has_band = any(len(g) > 1 for g in groups)
    ids = _ids(rows, np.argsort(rows[x], kind="stable"))
    return Series(_legend_label(key), xs, np.array([g.mean() for g in groups]), ids,
                  np.array([g.min() for g in groups]) if has_band else None,
                  np.array([g.max() for g in groups]) if has_band else None)


def _ordered(keys: set[str]) -> list[str]:
    """Series keys in the paper's method order, then by cache policy (Belady last), name."""
    def rank(key: str) -> tuple:
        method, _, impl = key.partition("/")
        return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER),
                method, CACHE_ORDER.index(impl) if impl in CACHE_ORDER else 3.5, impl)
    return sorted(keys, key=rank)


def _ids(rows: Table, index: np.ndarray) -> tuple[str, ...]:
    return tuple(str(pid) for pid in rows["point_id"][index]) if "point_id" in rows else ()


# ---------------------------------------------------------------------- labels and titles
def _legend_label(key: str) -> str:
    method, _, impl = key.partition("/")
    label = METHOD_LABELS.get(method, method)
    if impl:
        label += f" ({CACHE_LABELS.get(impl, impl)}"
        label += ", upper bound)" if impl == ORACLE_CACHE else ")"
    return label


def _point_label(row: dict) -> str:
    parts = [f"{row['capacity_GB']:g} GB"]
    if isinstance(row.get("density"), float) and np.isfinite(row["density"]):
        parts.append(f"d={row['density']:g}")
    if row.get("cache_impl"):
        parts.append(CACHE_LABELS.get(row["cache_impl"], row["cache_impl"]))
    return f"{METHOD_LABELS.get(row['method'], row['method'])}\n{', '.join(parts)}"


def _title(headline: str, table: Table, notes: list[str]) -> str:
    """Headline; model on phone · trace source (synthetic traces said as recorded); notes."""
    def values(column: str) -> str:
        found = dict.fromkeys(table[column].astype(str)) if column in table else {}
        return ", ".join(v for v in found if v)
    who = " on ".join(v for v in (values("model"), values("hw_name")) if v)
    source = values("trace_source")
    context = " · ".join(v for v in (who, f"traces: {source}" if source else "") if v)
    return "\n".join(line for line in (headline, context, "; ".join(notes)) if line)


# ---------------------------------------------------------------------- drawing
PANEL_COLUMNS = 3  # wider grids make each panel unreadably narrow
def draw(data: PlotData, out_dir: Path) -> list[Path]:
    """Draw `data` on an Agg canvas and save it as PNG and SVG; return the two paths."""
    with matplotlib.rc_context(STYLE):
        width_in, height_in = _figure_size(data)
        fig = Figure(figsize=(width_in, height_in), layout="constrained")
        FigureCanvasAgg(fig)
        (_draw_bars if data.ticklabels else _draw_lines)(data, fig)
        fig.suptitle(_wrap(data.title, int(width_in * TITLE_CHARS_PER_IN)))
        paths = [out_dir / f"{data.name}.{ext}" for ext in ("png", "svg")]
        for path in paths:  # atomic: a full disk leaves no half-written figure
            atomic_write_with(path, lambda fh, p=path: fig.savefig(fh, dpi=150,
                                                                   format=p.suffix[1:]))
    return paths


def _figure_size(data: PlotData) -> tuple[float, float]:
    if data.ticklabels:
        return (max(6.0, 1.5 * len(data.ticklabels) + 2.5), 5.0)
    columns = min(len(data.panels), PANEL_COLUMNS)
    rows = -(-len(data.panels) // PANEL_COLUMNS)
    return (max(9.0, 4.2 * columns + 2.8), 1.2 + 3.6 * rows)


def _wrap(title: str, width_chars: int) -> str:
    return "\n".join(textwrap.fill(line, width_chars) for line in title.splitlines())


def _draw_lines(data: PlotData, fig: Figure) -> None:
    # panels wrap into rows; each has its own y range (tokens/s spans decades across sizes)
    columns = min(len(data.panels), PANEL_COLUMNS)
    grid = fig.subplots(-(-len(data.panels) // columns), columns, squeeze=False)
    axes = list(grid.flat)
    for ax in axes[len(data.panels):]:
        ax.set_visible(False)
    handles = {}
    for ax, (panel, series) in zip(axes, data.panels.items()):
        for key, s in series.items():
            style = _line_style(key)
            (line,) = ax.plot(s.x, s.y, label=s.label, **style)
            if s.y_low is not None:
                ax.fill_between(s.x, s.y_low, s.y_high, color=style["color"], alpha=0.15)
            handles.setdefault(s.label, line)
        front = data.fronts.get(panel)
        if front is not None and len(front.x):
            (line,) = ax.plot(front.x, front.y, ls="--", color="black", marker="o", mfc="none",
                              ms=12, lw=1, label=front.label)
            handles.setdefault(front.label, line)
        _decorate(ax, panel, data.xlabel, bool(series))
    for row in grid:
        row[0].set_ylabel(data.ylabel)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside right center")


def _decorate(ax, panel: str, xlabel: str, has_data: bool) -> None:
    ax.set_title(panel)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    if not has_data:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)


def _line_style(key: str) -> dict:
    method, _, impl = key.partition("/")
    rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else \
        len(METHOD_ORDER) + sum(map(ord, method)) % 5
    return {"color": f"C{rank % 10}", "marker": "os^Dv<>ph*"[rank % 10],
            "ls": CACHE_LINESTYLES.get(impl, "-"), "lw": 1.8, "ms": 6}


def _draw_bars(data: PlotData, fig: Figure) -> None:
    ax = fig.subplots()
    bottom = np.zeros(len(data.ticklabels))
    for part, s in data.panels[""].items():
        ax.bar(s.x, s.y, bottom=bottom, label=s.label, color=BREAKDOWN_COLORS[part], width=0.6)
        bottom = bottom + s.y
    ax.set_xticks(np.arange(len(data.ticklabels)), data.ticklabels)
    ax.set_ylabel(data.ylabel)
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside right center")  # outside, so it never hides a bar
