"""A searched bundle value (`best_of`, memsim/sweeps/best_of.py): per point, the fastest of
its candidates, named in the table, the summary and the figures."""
from __future__ import annotations

import copy
import dataclasses

import pytest

from memsim.core.errors import ConfigError
from memsim.hw.config import load_hw
from memsim.sim import simulate
from memsim.sweeps.best_of import search_groups
from memsim.sweeps.figures import figure_data
from memsim.sweeps.runner import ROW_FILE, run_sweep, write_table
from memsim.sweeps.spec import expand, sweep_from_dict
from memsim.sweeps.summary import summary_lines
from memsim.sweeps.table import read_results
from memsim.traces import Trace

CAPACITIES_GB = (1.5, 2.5)
CANDIDATES = [{"name": "model order"},
              {"name": "merge 4 KiB", "hw.flash.merge_gap_KiB": 4},
              {"name": "merge 64 KiB", "hw.flash.merge_gap_KiB": 64}]
GAP_KIB = {"model order": 0, "merge 4 KiB": 4, "merge 64 KiB": 64}


def _sweep(variants: list, methods=("dense", "dip")) -> dict:
    return {"name": "search", "base": {"hw": "flagship", "model": "phi-3-mini",
                                       "trace": {"source": "synthetic", "tokens": 24,
                                                 "windows": 1}},
            "axes": {"hw.dram.capacity_GB": list(CAPACITIES_GB), "method": list(methods),
                     "variant": variants}}


SEARCHED = [{"name": "naive"}, {"name": "searched", "best_of": CANDIDATES}]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "out"
    spec = sweep_from_dict(_sweep(copy.deepcopy(SEARCHED)))
    report = run_sweep(spec, out, workers=1, progress=False, echo=None)
    assert report.num_failed == 0
    return spec, out, read_results(report.table_path)


def _by_hand(trace_path: str, capacity_GB: float, gap_KiB: float) -> float:
    """The candidate simulated directly, outside the sweep: the independent reference."""
    hw = load_hw("flagship")
    hw = dataclasses.replace(hw, dram=dataclasses.replace(hw.dram, capacity_GB=capacity_GB),
                             flash=dataclasses.replace(hw.flash, merge_gap_KiB=gap_KiB))
    return simulate(hw, None, Trace.load(trace_path)).tokens_per_s


def test_a_searched_value_is_its_fastest_candidate_at_each_point_and_names_it(searched):
    _, _, table = searched
    rows = [r for r in table.rows() if r["variant"] == "searched"]
    assert sorted(r["capacity_GB"] for r in rows) == list(CAPACITIES_GB)  # one per point
    for row in rows:
        rates = {name: _by_hand(row["trace_path"], row["capacity_GB"], gap)
                 for name, gap in GAP_KIB.items()}
        assert row["variant_choice"] == max(rates, key=rates.get)
        assert row["tokens_per_s"] == max(rates.values())
        assert row["method"] == "dip" and row["point_id"].startswith("b-")
        for name, rate in rates.items():
            assert f"{name}: {rate:.6g}" in row["variant_candidates"]
    assert len(set(rates.values())) > 1  # the candidates differ: the choice means something


def test_a_search_whose_every_candidate_is_another_points_configuration_adds_no_row(searched):
    """Dense streaming ignores flash settings: its candidates are all its naive point."""
    _, _, table = searched
    dense = [r for r in table.rows() if r["method"] == "dense"]
    assert [r["variant"] for r in dense] == ["naive"] * len(CAPACITIES_GB)
    assert len(table) == 3 * len(CAPACITIES_GB)  # dense, dip naive, dip searched


def test_the_summary_and_every_figure_name_the_candidate_chosen_at_each_point(searched):
    _, _, table = searched
    lines = summary_lines(table)
    assert "chosen" in lines[0]
    chosen = {r["capacity_GB"]: r["variant_choice"] for r in table.rows()
              if r["variant"] == "searched"}
    searched_lines = [line for line in lines if "DIP (searched)" in line]
    assert [c for c in chosen.values()] == [next(c for c in GAP_KIB if c in line)
                                           for line in searched_lines]
    computed, _ = figure_data(table)
    for data in computed.values():
        note = next(n for n in data.notes if n.startswith("DIP (searched): "))
        assert note in data.title
        for capacity, choice in chosen.items():
            assert choice in note and f"{capacity:g}" in note


def test_a_tie_goes_to_the_first_candidate_listed(tmp_path):
    same = [{"name": "a", "hw.flash.merge_gap_KiB": 4}, {"name": "b", "hw.flash.merge_gap_KiB": 4}]
    for order, first in ((same, "a"), (same[::-1], "b")):
        spec = sweep_from_dict(_sweep([{"name": "s", "best_of": order}], methods=("dip",)))
        report = run_sweep(spec, tmp_path / first, progress=False, echo=None)
        assert set(read_results(report.table_path)["variant_choice"]) == {first}


def test_a_search_is_shown_only_once_every_candidate_has_finished(searched, tmp_path):
    spec, out, table = searched
    groups = search_groups(spec)
    points, _ = expand(spec)
    one = next(g for g in groups.values() if len(set(g.candidates.values())) > 1)
    row = out / "points" / one.candidates["merge 64 KiB"] / ROW_FILE
    kept = row.read_text()
    row.unlink()
    try:
        partial = read_results(write_table(points, out, groups))
    finally:
        row.write_text(kept)
        write_table(points, out, groups)
    assert one.key not in partial["point_id"].tolist()
    assert len(partial) == len(table) - 1


def test_a_reused_point_shows_the_name_this_sweep_gives_it(tmp_path):
    """The same configuration under a renamed bundle: its row.json is reused, its name is
    this sweep's (a stale name would label a fixed setting with what it used to be called)."""
    for name in ("best", "merge 4 KiB"):
        spec = sweep_from_dict(_sweep([{"name": name, "hw.flash.merge_gap_KiB": 4}],
                                      methods=("dip",)))
        report = run_sweep(spec, tmp_path / "out", progress=False, echo=None)
    assert report.num_done_before == len(CAPACITIES_GB)
    assert set(read_results(report.table_path)["variant"]) == {"merge 4 KiB"}


@pytest.mark.parametrize("value,key", [
    ({"name": "s", "best_of": []}, "axes.variant[1].best_of"),
    ({"name": "s", "best_of": "merge"}, "axes.variant[1].best_of"),
    ({"name": "s", "best_of": [{"hw.flash.merge_gap_KiB": 4}]}, "axes.variant[1].best_of[0]"),
    ({"name": "s", "best_of": [{"name": "a"}, {"name": "a"}]}, "axes.variant[1].best_of"),
    ({"name": "s", "best_of": [{"name": "a", "best_of": []}]}, "axes.variant[1].best_of[0]"),
    ({"name": "s", "best_of": [{"name": "a"}], "hw.flash.merge_gap_KiB": 4},
     "axes.variant[1].hw.flash.merge_gap_KiB"),
    ({"name": "s", "choice": "a"}, "axes.variant[1].choice"),
    ({"name": "s", "best_of": [{"name": "a", "hw.flash.merge_gap_KiB": -1}]}, "axes.variant"),
])
def test_a_malformed_search_is_an_error_naming_the_key(value, key):
    with pytest.raises(ConfigError) as err:
        sweep_from_dict(_sweep([{"name": "naive"}, value]))
    assert err.value.key_path == key, str(err.value)


def test_two_searched_axes_are_an_error():
    data = _sweep(copy.deepcopy(SEARCHED))
    data["axes"]["other"] = [{"name": "x", "best_of": [{"name": "y"}]}]
    with pytest.raises(ConfigError, match="more than one axis"):
        sweep_from_dict(data)
