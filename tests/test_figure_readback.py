"""Each drawn figure, read back from its artists (and its SVG), shows the table's values:
every plotted point equals the row it stands for, and every label names what it labels."""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.lines import Line2D
from matplotlib.text import Annotation

from memsim.sweeps.figures import draw, figure_data, make_plots
from memsim.sweeps.figures.tokens_per_s_vs_dram import rate_text
from memsim.sweeps.table import read_results, write_results
from tests.figure_rows import REFERENCES, sweep_rows

METHODS = {"Dense": "dense", "GLU pruning": "glu", "CATS": "cats", "DIP": "dip",
           "DIP-CA": "dip_ca"}
CACHES = {"LRU": "lru", "Belady": "belady"}


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """Every figure of the fixture sweep, drawn once; and the table read back from disk."""
    out = tmp_path_factory.mktemp("readback")
    write_results(sweep_rows(), out)
    return make_plots(out, out / "plots", ppl_tolerance=0.1), read_results(out)


def test_make_plots_writes_png_and_svg_of_every_figure_in_order(drawn):
    files, _ = drawn
    assert list(files) == ["throughput_vs_perplexity", "tokens_per_s_vs_dram",
                           "hit_rate_vs_dram", "time_breakdown", "dram_at_matched_perplexity"]
    assert not files.skipped
    for paths in files.values():
        assert [p.suffix for p in paths] == [".png", ".svg"]
        assert all(p.is_file() and p.stat().st_size > 1000 for p in paths)


def _rows_named(table, label: str) -> np.ndarray:
    """The rows a legend label names: "DIP (d=0.5, Belady, upper bound), perplexity 20.08"
    -> method dip, density 0.5, cache belady (parsed here, independently of the figures)."""
    name, _, settings = label.split(", perplexity")[0].partition(" (")
    keep = table["method"] == METHODS[name]
    for part in settings.rstrip(")").split(", ") if settings else []:
        if part.startswith("d="):
            keep &= table["density"] == float(part[2:])
        elif part in CACHES:
            keep &= table["cache_impl"] == CACHES[part]
        else:
            assert part == "upper bound" and "Belady" in settings, f"unexpected {part!r}"
    return keep


def _data_lines(fig) -> list[Line2D]:
    return [a for ax in fig.axes for a in ax.lines if (a.get_gid() or "").startswith("line:")]


def _legend(fig) -> dict[str, object]:
    legend = fig.legends[0]
    return {t.get_text(): h for t, h in zip(legend.get_texts(), legend.legend_handles)}


def _assert_points(line_xy, table, rows, x, y):
    """The (x, y) drawn are exactly the rows' (x, y), as sets (NaN: a gap in the line)."""
    drawn = sorted((a, b) for a, b in zip(*line_xy) if np.isfinite(a) and np.isfinite(b))
    expected = sorted(zip(x[rows], y[rows]))
    assert len(drawn) == len(expected)
    np.testing.assert_allclose(drawn, expected, rtol=1e-12)


@pytest.mark.parametrize("name,x_column,y_column", [
    ("throughput_vs_perplexity", "perplexity", "tokens_per_s"),
    ("tokens_per_s_vs_dram", "capacity_GB", "tokens_per_s"),
    ("hit_rate_vs_dram", "capacity_GB", "hit_rate"),
    ("dram_at_matched_perplexity", "capacity_GB", "tokens_per_s")])
def test_every_line_draws_exactly_the_rows_its_label_names(drawn, name, x_column, y_column):
    files, table = drawn
    fig = files.figures[name]
    x, y = table[x_column].astype(float), table[y_column].astype(float)
    finite = np.isfinite(x) & np.isfinite(y)
    if name == "dram_at_matched_perplexity":  # only points within 0.1 of dense, no oracle
        finite &= (table["perplexity"] <= 20.0 + 0.1) & (table["cache_impl"] != "belady")
    lines = _data_lines(fig)
    assert lines and set(_legend(fig)) >= {line.get_label() for line in lines}
    covered = np.zeros(len(table), bool)
    for line in lines:
        rows = _rows_named(table, line.get_label()) & finite
        _assert_points(line.get_data(), table, rows, x, y)
        assert not (covered & rows).any(), "two lines draw the same row"
        covered |= rows
        if ", perplexity " in line.get_label():  # the range of the very points drawn
            low, high = table["perplexity"][rows].min(), table["perplexity"][rows].max()
            said = line.get_label().split(", perplexity ")[1]
            assert said == (f"{low:.2f}" if f"{low:.2f}" == f"{high:.2f}"
                            else f"{low:.2f}–{high:.2f}")
    assert covered.sum() == finite.sum(), "a row with values is drawn by no line"


def test_marker_sizes_match_the_dram_size_key(drawn):
    files, table = drawn
    fig = files.figures["throughput_vs_perplexity"]
    key = {float(label.split()[0]): handle.get_markersize() ** 2
           for label, handle in _legend(fig).items() if re.fullmatch(r"[\d.]+ GB", label)}
    assert sorted(key) == [1.0, 2.0, 4.0] and key[1.0] < key[2.0] < key[4.0]
    scatters = [c for ax in fig.axes for c in ax.collections if isinstance(c, PathCollection)]
    assert scatters
    for points in scatters:
        for (ppl, tps), area in zip(points.get_offsets(), points.get_sizes()):
            row = (table["perplexity"] == ppl) & (table["tokens_per_s"] == tps)
            assert row.sum() == 1
            assert area == pytest.approx(key[float(table["capacity_GB"][row][0])])


def test_pareto_front_circles_exactly_the_undominated_realizable_points(drawn):
    files, table = drawn
    (front,) = [a for ax in files.figures["throughput_vs_perplexity"].axes for a in ax.lines
                if a.get_gid() == "front"]
    ok = np.isfinite(table["perplexity"]) & (table["cache_impl"] != "belady")
    ppl, tps = table["perplexity"][ok], table["tokens_per_s"][ok]
    undominated = [(p, t) for p, t in zip(ppl, tps)
                   if not ((ppl <= p) & (tps >= t) & ((ppl < p) | (tps > t))).any()]
    assert sorted(zip(*front.get_data())) == sorted(undominated)


def test_reference_lines_sit_at_and_say_the_tables_values(drawn):
    files, table = drawn
    fig = files.figures["tokens_per_s_vs_dram"]
    refs = {a.get_gid(): a for ax in fig.axes for a in ax.lines
            if (a.get_gid() or "").startswith("ref:")}
    for column, value in REFERENCES.items():
        line = refs[f"ref:{column}"]
        assert set(line.get_ydata()) == {table[column][0]} == {value}
        assert f"{rate_text(value)} tokens/s" in line.get_label()
    (dense_ppl,) = [a for ax in files.figures["throughput_vs_perplexity"].axes
                    for a in ax.lines if a.get_gid() == "ref:dense_perplexity"]
    value = table["perplexity"][table["method"] == "dense"].min()
    assert set(dense_ppl.get_xdata()) == {value}
    assert dense_ppl.get_label() == f"dense perplexity ({value:.2f})"


def test_breakdown_bars_stack_the_tables_times_under_their_panel_and_tick(drawn):
    files, table = drawn
    fig = files.figures["time_breakdown"]
    index = {pid: i for i, pid in enumerate(table["point_id"])}
    seen = set()
    for ax in fig.axes:
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        tops = {}
        for patch in ax.patches:
            _, part, pid = patch.get_gid().split(":", 2)
            i = index[pid]
            assert patch.get_height() == pytest.approx(table[f"breakdown_{part}_s"][i] * 1e3)
            assert patch.get_y() == pytest.approx(tops.get(pid, 0.0))  # stacked in order
            tops[pid] = patch.get_y() + patch.get_height()
            assert ticks[round(patch.get_x() + patch.get_width() / 2)] == \
                f"{table['capacity_GB'][i]:g}"
            assert _rows_named(table, ax.get_title())[i], (ax.get_title(), pid)
            seen.add(pid)
        for text in ax.texts:
            if isinstance(text, Annotation) and (text.get_gid() or "").startswith("total:"):
                pid = text.get_gid()[len("total:"):]
                assert text.get_text() == f"{table['time_per_token_s'][index[pid]] * 1e3:.3g}"
    assert seen == set(table["point_id"])


def test_axis_labels_and_titles_say_units_and_bounds(drawn):
    files, _ = drawn
    for name in ("tokens_per_s_vs_dram", "hit_rate_vs_dram", "dram_at_matched_perplexity",
                 "time_breakdown"):
        assert files.figures[name].axes[0].get_xlabel() == "DRAM size (GB)"
    title = files.figures["dram_at_matched_perplexity"]._suptitle.get_text()
    assert "≤ dense 20.00 + 0.1" in title.replace("\n", " ")


def test_the_svg_holds_every_drawn_series(drawn):
    files, _ = drawn
    for name, fig in files.figures.items():
        svg = files[name][1].read_text()
        gids = {a.get_gid() for ax in fig.axes for a in [*ax.lines, *ax.collections,
                                                          *ax.patches] if a.get_gid()}
        assert gids and all(f'id="{gid}"' in svg for gid in gids), name


@pytest.mark.parametrize("extra_title_lines", [0, 2, 4])
def test_the_legend_stays_clear_of_the_title_and_inside_the_figure(drawn, extra_title_lines):
    """A search's notes add title lines (`memsim demo`: two per method); the figure grows
    with them, so the legend, centred on the figure's height, never reaches into the title."""
    _, table = drawn
    computed, _ = figure_data(table, ppl_tolerance=0.1)
    note = "DIP (searched): model order, merge 4 KiB at 42, 48 MB; co-activation layout"
    for name, data in computed.items():
        data = dataclasses.replace(data, title=data.title + f"\n{note}" * extra_title_lines)
        fig = draw(data)
        renderer = fig.canvas.get_renderer()
        fig.draw(renderer)
        title = fig._suptitle.get_window_extent(renderer)
        page = fig.bbox
        for legend in fig.legends:
            box = legend.get_window_extent(renderer)
            assert not box.overlaps(title), (name, extra_title_lines, box, title)
            assert page.y0 <= box.y0 and box.y1 <= page.y1, (name, box, page)
