"""The results table and the figures drawn from it: checked on the data, not the pixels."""
from __future__ import annotations

import argparse
import math

import numpy as np
import pytest

from memsim.core.errors import ConfigError
from memsim.sweeps import table as results_table
from memsim.sweeps.plots import (
    add_plot_arguments,
    default_breakdown_points,
    hit_rate_vs_dram_data,
    make_plots,
    matched_perplexity_data,
    pareto_front,
    run_plot,
    throughput_vs_perplexity_data,
    time_breakdown_data,
)
from memsim.sweeps.table import read_results, table_from_rows, write_results

SOURCE = "synthetic (calibrated on smollm2-135m)"
CAPACITIES_GB = (1.0, 2.0, 4.0)


def _row(method, density, capacity_GB, impl, perplexity, tokens_per_s, hit_rate, **extra):
    time_s = 1.0 / tokens_per_s
    return {
        "point_id": f"{method}-{density:g}-{impl}-{capacity_GB:g}", "hw_name": "test-phone",
        "model": "smollm2-135m", "method": method, "density": density,
        "capacity_GB": capacity_GB, "cache_impl": impl, "gamma": extra.pop("gamma", None),
        "adapter": "", "perplexity": perplexity, "tokens_per_s": tokens_per_s,
        "time_per_token_s": time_s, "ttft_s": 0.5, "hit_rate": hit_rate,
        "flash_bytes_per_token": 1e8 * (1 - hit_rate), "dram_read_bytes_per_token": 2e8,
        "dram_write_bytes_per_token": 1e7, "dram_used_bytes": 0.9e9 * capacity_GB,
        "energy_per_token_J": None, "breakdown_flash_s": 0.6 * time_s,
        "breakdown_dram_s": 0.1 * time_s, "breakdown_compute_s": 0.2 * time_s,
        "breakdown_stall_s": 0.1 * time_s, "trace_source": SOURCE,
        "config_path": "points/x/config.yaml", "trace_path": "traces/x.npz",
        "result_path": "points/x/result.json", "hw.dram.capacity_GB": capacity_GB, **extra}


def _curve(method, density, impl, perplexities, speeds, hits):
    return [_row(method, density, c, impl, p, s, h)
            for c, p, s, h in zip(CAPACITIES_GB, perplexities, speeds, hits)]


def sweep_rows() -> list[dict]:
    """Dense 20.0 is the reference; DIP d=0.5 is within 0.1 of it, d=0.3 is not; DIP-CA only
    at 4 GB; GLU never; CATS has no perplexity (a simulation-only point)."""
    return [
        *_curve("dense", 1.0, "lru", [20.0] * 3, [2.0, 3.0, 6.0], [0.3, 0.5, 0.9]),
        *_curve("dense", 1.0, "belady", [20.0] * 3, [2.5, 3.5, 6.5], [0.4, 0.6, 0.95]),
        *_curve("dip", 0.5, "lru", [20.08] * 3, [4.0, 6.0, 9.0], [0.5, 0.7, 0.9]),
        *_curve("dip", 0.5, "belady", [20.08] * 3, [5.0, 7.0, 10.0], [0.6, 0.8, 0.96]),
        *_curve("dip", 0.3, "lru", [21.5] * 3, [6.0, 8.0, 11.0], [0.7, 0.9, 0.98]),
        *_curve("dip_ca", 0.5, "lru", [20.5, 20.3, 20.09], [7.0, 9.0, 12.0], [0.8, 0.9, 0.99]),
        *_curve("glu", 0.5, "lru", [23.0] * 3, [3.0, 4.0, 7.0], [0.4, 0.6, 0.9]),
        _row("cats", 0.5, 2.0, "lru", math.nan, 5.0, 0.65),
    ]


@pytest.fixture()
def table():
    return table_from_rows(sweep_rows())


@pytest.fixture(params=["parquet", "csv"])
def backend(request, monkeypatch):
    if request.param == "parquet" and not results_table.HAS_PYARROW:
        pytest.skip("pyarrow not installed")
    monkeypatch.setattr(results_table, "HAS_PYARROW", request.param == "parquet")
    return request.param


# ---------------------------------------------------------------------- the table
def test_results_table_round_trips_rows_with_missing_cells(tmp_path, backend):
    rows = [{"point_id": "1e5", "method": "dip", "tokens_per_s": 3.25, "gamma": None},
            {"point_id": "007", "method": "dense", "tokens_per_s": 1, "extra.axis": "a"}]
    path = write_results(rows, tmp_path)
    assert path.name == f"results.{backend}"
    table = read_results(tmp_path)
    assert table.columns == ["point_id", "method", "tokens_per_s", "gamma", "extra.axis"]
    assert len(table) == 2
    assert list(table["point_id"]) == ["1e5", "007"]  # text stays text, even if numeric-looking
    assert table["tokens_per_s"].dtype == float and list(table["tokens_per_s"]) == [3.25, 1.0]
    assert np.isnan(table["gamma"]).all()
    assert table.rows()[0]["extra.axis"] == "" and table.rows()[1]["extra.axis"] == "a"


def test_failed_write_keeps_the_previous_table_and_no_temp_file(tmp_path, monkeypatch):
    monkeypatch.setattr(results_table, "HAS_PYARROW", False)
    write_results([{"point_id": "a", "tokens_per_s": 1.0}], tmp_path)

    def crash(table, path):
        path.write_text("half a tab")
        raise KeyboardInterrupt
    monkeypatch.setattr(results_table, "_write_csv", crash)
    with pytest.raises(KeyboardInterrupt):
        write_results([{"point_id": "b", "tokens_per_s": 2.0}], tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]
    assert list(read_results(tmp_path)["point_id"]) == ["a"]


def test_missing_results_table_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no results table"):
        read_results(tmp_path)


# ---------------------------------------------------------------------- make_plots
def test_make_plots_writes_png_and_svg_of_every_figure(tmp_path, backend):
    write_results(sweep_rows(), tmp_path)
    files = make_plots(tmp_path, tmp_path / "plots")
    assert set(files) == {"throughput_vs_perplexity", "hit_rate_vs_dram",
                          "dram_at_matched_perplexity", "time_breakdown"}
    for name, paths in files.items():
        assert [p.suffix for p in paths] == [".png", ".svg"]
        assert all(p.is_file() and p.stat().st_size > 1000 for p in paths)
        assert files.data[name].paths == paths
    panels = files.data["throughput_vs_perplexity"].panels
    assert list(panels) == ["DRAM 1 GB", "DRAM 2 GB", "DRAM 4 GB"]


def test_plot_cli_writes_into_dir_plots_and_prints_the_paths(tmp_path, capsys):
    write_results(sweep_rows(), tmp_path)
    parser = argparse.ArgumentParser()
    add_plot_arguments(parser)
    assert run_plot(parser.parse_args([str(tmp_path), "--points", "dip-0.5-lru-1"])) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 8 and all(p.startswith(str(tmp_path / "plots")) for p in printed)


def test_missing_columns_raise_a_config_error_naming_them(tmp_path):
    rows = [{k: v for k, v in row.items() if k not in ("hit_rate", "perplexity")}
            for row in sweep_rows()]
    write_results(rows, tmp_path)
    with pytest.raises(ConfigError, match="hit_rate, perplexity") as err:
        make_plots(tmp_path, tmp_path / "plots")
    assert "hit_rate_vs_dram needs hit_rate" in str(err.value)
    assert not (tmp_path / "plots").exists()


def test_empty_table_is_a_config_error(tmp_path):
    write_results([], tmp_path)
    with pytest.raises(ConfigError, match="no rows"):
        make_plots(tmp_path, tmp_path / "plots")


# ---------------------------------------------------------------------- throughput vs perplexity
def test_pareto_front_keeps_only_points_no_other_beats_on_both_axes():
    perplexity = np.array([20.0, 20.5, 21.0, 20.5, 22.0, 19.5, 21.0])
    tokens_per_s = np.array([3.0, 5.0, 4.0, 6.0, 9.0, 1.0, 9.0])
    # 19.5/1 (lowest ppl), 20/3, 20.5/6 (beats 20.5/5), 21/9 (beats 22/9 and 21/4)
    assert list(pareto_front(perplexity, tokens_per_s)) == [5, 0, 3, 6]


def test_throughput_panel_has_a_curve_per_method_and_a_front_without_belady(table):
    data = throughput_vs_perplexity_data(table)
    panel = data.panels["DRAM 2 GB"]
    assert list(panel) == ["dense/lru", "dense/belady", "glu", "dip/lru", "dip/belady", "dip_ca"]
    assert list(panel["dip/lru"].x) == [20.08, 21.5] and list(panel["dip/lru"].y) == [6.0, 8.0]
    assert "upper bound" in panel["dip/belady"].label
    front = data.fronts["DRAM 2 GB"]
    assert front.point_ids == ("dense-1-lru-2", "dip-0.5-lru-2", "dip_ca-0.5-lru-2")


def test_rows_without_perplexity_are_skipped_with_a_note(table):
    data = throughput_vs_perplexity_data(table)
    assert all("cats" not in panel for panel in data.panels.values())
    assert "1 row without perplexity skipped" in data.title


def test_titles_say_the_traces_are_synthetic_as_recorded(table):
    for data in (throughput_vs_perplexity_data(table), hit_rate_vs_dram_data(table),
                 matched_perplexity_data(table), time_breakdown_data(table)):
        assert f"traces: {SOURCE}" in data.title
        assert "smollm2-135m on test-phone" in data.title


# ---------------------------------------------------------------------- hit rate vs DRAM
def test_hit_rate_has_a_line_per_method_and_policy_averaging_densities(table):
    data = hit_rate_vs_dram_data(table)
    lines = data.panels[""]
    assert set(lines) == {"dense/lru", "dense/belady", "dip/lru", "dip/belady", "dip_ca/lru",
                          "glu/lru", "cats/lru"}
    dip = lines["dip/lru"]  # densities 0.5 and 0.3 at each size
    assert list(dip.x) == [1.0, 2.0, 4.0]
    np.testing.assert_allclose(dip.y, [0.6, 0.8, 0.94])
    np.testing.assert_allclose(dip.y_low, [0.5, 0.7, 0.9])
    np.testing.assert_allclose(dip.y_high, [0.7, 0.9, 0.98])
    assert lines["glu/lru"].y_low is None
    assert "Belady" in data.title and "upper bound" in data.title


# ---------------------------------------------------------------------- matched perplexity
def test_matched_perplexity_picks_the_fastest_point_within_tolerance_of_dense(table):
    series = matched_perplexity_data(table, tolerance=0.1).panels[""]
    assert set(series) == {"dense", "dip", "dip_ca", "glu"}  # Belady rows left out
    assert series["dip"].point_ids == ("dip-0.5-lru-1", "dip-0.5-lru-2", "dip-0.5-lru-4")
    assert series["dip_ca"].point_ids == ("dip_ca-0.5-lru-4",)
    np.testing.assert_allclose(series["dip"].x, [0.9, 1.8, 3.6])  # DRAM used, GB
    np.testing.assert_allclose(series["dip"].y, [4.0, 6.0, 9.0])


def test_matched_perplexity_looser_tolerance_admits_the_faster_sparser_point(table):
    series = matched_perplexity_data(table, tolerance=2.0).panels[""]
    assert series["dip"].point_ids == ("dip-0.3-lru-1", "dip-0.3-lru-2", "dip-0.3-lru-4")


def test_matched_perplexity_falls_back_to_the_closest_perplexity(table):
    series = matched_perplexity_data(table, tolerance=0.1).panels[""]
    assert "closest: ppl 23" in series["glu"].label
    assert series["glu"].point_ids == ("glu-0.5-lru-1", "glu-0.5-lru-2", "glu-0.5-lru-4")


# ---------------------------------------------------------------------- time breakdown
def test_default_breakdown_points_are_each_methods_median_dram_size(table):
    assert default_breakdown_points(table) == [
        "dense-1-lru-2", "glu-0.5-lru-2", "cats-0.5-lru-2", "dip-0.3-lru-2", "dip_ca-0.5-lru-2"]


def test_breakdown_bars_stack_to_the_time_per_token_in_ms(table):
    data = time_breakdown_data(table, ["dip-0.5-lru-1", "dense-1-belady-4"])
    parts = data.panels[""]
    assert list(parts) == ["flash", "dram", "compute", "stall"]
    np.testing.assert_allclose(sum(s.y for s in parts.values()), [1000 / 4.0, 1000 / 6.5])
    assert data.ticklabels[0].startswith("DIP\n1 GB")


def test_unknown_breakdown_point_is_a_config_error(table):
    with pytest.raises(ConfigError, match="unknown point_id.*nope"):
        time_breakdown_data(table, ["nope"])


def test_simulation_only_sweep_still_plots_throughput_free_figures(tmp_path):
    write_results([{**row, "perplexity": None} for row in sweep_rows()], tmp_path)
    files = make_plots(tmp_path, tmp_path / "plots")
    assert all(p.is_file() for paths in files.values() for p in paths)
    assert files.data["throughput_vs_perplexity"].panels == {"no rows with perplexity": {}}
    assert files.data["dram_at_matched_perplexity"].panels == {"": {}}
    assert len(files.data["hit_rate_vs_dram"].panels[""]) == 7


def test_text_in_a_numeric_column_is_a_config_error_naming_it():
    table = table_from_rows([{**row, "hit_rate": "n/a"} for row in sweep_rows()])
    with pytest.raises(ConfigError, match="hit_rate"):
        hit_rate_vs_dram_data(table)


def test_bad_points_write_no_figure(tmp_path):
    write_results(sweep_rows(), tmp_path)
    with pytest.raises(ConfigError, match="nope"):
        make_plots(tmp_path, tmp_path / "plots", points=["nope"])
    assert not list((tmp_path / "plots").glob("*.png"))
