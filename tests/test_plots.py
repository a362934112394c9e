"""The results table and the figures drawn from it: what each figure shows, skips and says.
(tests/test_figure_readback.py reads the drawn figures back against the table.)"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

import memsim
from memsim.cli import main
from memsim.core.errors import ConfigError
from memsim.sweeps import table as results_table
from memsim.sweeps.figures import figure_data, make_plots
from memsim.sweeps.grouping import pareto_front, series_of
from memsim.sweeps.table import read_results, table_from_rows, write_results
from tests.figure_rows import LABELS, realizable_rows, row, sweep_rows, synthetic_rows

ALL = ["throughput_vs_perplexity", "tokens_per_s_vs_dram", "hit_rate_vs_dram",
       "time_breakdown", "dram_at_matched_perplexity"]


@pytest.fixture(params=["parquet", "csv"])
def backend(request, monkeypatch):
    if request.param == "parquet" and not results_table.HAS_PYARROW:
        pytest.skip("pyarrow not installed")
    monkeypatch.setattr(results_table, "HAS_PYARROW", request.param == "parquet")
    return request.param


def _plots(tmp_path, rows, **kwargs):
    """Draw and write every figure (slow: a few tests only)."""
    write_results(rows, tmp_path)
    return make_plots(tmp_path, tmp_path / "plots", **kwargs)


def _data(rows, **kwargs) -> SimpleNamespace:
    """What each figure would draw (.data) and why others are skipped (.skipped), undrawn."""
    data, skipped = figure_data(table_from_rows(rows), **kwargs)
    return SimpleNamespace(data=data, skipped=skipped)


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


def test_load_results_gives_pandas_the_same_table(tmp_path, backend):
    pytest.importorskip("pandas")
    write_results(sweep_rows(), tmp_path)
    frame, table = memsim.load_results(tmp_path), read_results(tmp_path)
    assert list(frame.columns) == table.columns and len(frame) == len(table)
    for name in table.columns:
        if table[name].dtype == float:
            np.testing.assert_array_equal(frame[name].to_numpy(dtype=float), table[name])
        else:
            assert frame[name].tolist() == table[name].tolist()


def test_load_results_without_pandas_is_a_clear_error(tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas":
            raise ImportError("no pandas")
        return real_import(name, *args, **kwargs)
    write_results(sweep_rows(), tmp_path)
    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(ConfigError, match="needs pandas.*pip install"):
        memsim.load_results(tmp_path)


# ---------------------------------------------------------------------- make_plots
def test_plot_cli_prints_each_file_and_one_line_per_skipped_figure(tmp_path, capsys):
    write_results(synthetic_rows(), tmp_path)
    assert main(["plot", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    written = [line for line in lines if not line.startswith("skipped")]
    assert len(written) == 6 and all(p.startswith(str(tmp_path / "plots")) for p in written)
    assert lines[6:] == [
        "skipped throughput_vs_perplexity: no row has a perplexity (synthetic traces carry "
        "none; `trace.source: model` gives one)",
        "skipped dram_at_matched_perplexity: no row has a perplexity (synthetic traces carry "
        "none; `trace.source: model` gives one)"]


def test_plot_cli_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys):
    write_results(sweep_rows(), tmp_path)
    assert main(["plot", str(tmp_path), "--ppl-tolerance", "-1"]) == 2
    assert main(["plot", str(tmp_path), "--points", "nope"]) == 2
    assert main(["plot", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "--ppl-tolerance" in err[0] and "nope" in err[1] \
        and "no results table" in err[2]
    assert not (tmp_path / "plots").exists()


def test_synthetic_sweep_skips_accuracy_figures_and_draws_no_empty_panel(tmp_path):
    files = _data(synthetic_rows())
    assert list(files.data) == ["tokens_per_s_vs_dram", "hit_rate_vs_dram", "time_breakdown"]
    assert set(files.skipped) == {"throughput_vs_perplexity", "dram_at_matched_perplexity"}
    for data in files.data.values():
        assert data.panels and all(p.lines or p.bars is not None for p in data.panels)


def test_a_missing_column_skips_only_the_figures_that_need_it(tmp_path):
    files = _data([{k: v for k, v in r.items() if k != "hit_rate"}
                              for r in sweep_rows()])
    assert files.skipped == {"hit_rate_vs_dram": "the table has no hit_rate column"}
    assert len(files.data) == 4


def test_columns_added_later_leave_the_figures_working(tmp_path):
    rows = [{**r, "flash_requests_per_token": 12.0, "flash_payload_bytes": 3e6,
             "breakdown_queue_s": 0.0} for r in sweep_rows()]
    files = _data(rows)
    assert list(files.data) == ALL
    assert list(files.data["time_breakdown"].panels[0].bars.parts) == \
        ["flash", "dram", "compute", "stall", "queue"]


def test_skipped_figure_removes_its_file_from_an_earlier_run(tmp_path):
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "throughput_vs_perplexity.png").write_bytes(b"an older figure")
    files = _plots(tmp_path, synthetic_rows())
    assert "throughput_vs_perplexity" in files.skipped
    assert not (tmp_path / "plots" / "throughput_vs_perplexity.png").exists()


def test_empty_table_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no rows"):
        _data([])


def test_text_in_a_numeric_column_is_a_config_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="hit_rate"):
        make_plots(table_from_rows([{**r, "hit_rate": "n/a"} for r in sweep_rows()]),
                   tmp_path)


# ---------------------------------------------------------------------- series and labels
def test_a_series_is_a_method_plus_the_settings_that_vary_within_it():
    series = series_of(table_from_rows(sweep_rows()))
    assert [series.labels[k] for k in series.order] == list(LABELS)
    assert series.oracle[next(k for k in series.order if "belady" in k)]


def test_a_new_setting_column_becomes_part_of_the_label():
    rows = realizable_rows() + [{**r, "point_id": r["point_id"] + "-rows",
                                 "flash_layout": "rows"} for r in realizable_rows()
                                if r["method"] == "dip_ca"]
    labels = set(series_of(table_from_rows(rows)).labels.values())
    assert {"DIP-CA (default layout)", "DIP-CA (layout=rows)", "DIP (d=0.5)"} <= labels


def test_belady_is_named_only_when_plotted(tmp_path):
    files = _data(realizable_rows())
    for data in files.data.values():
        text = data.title + " ".join(line.label for line in data.lines())
        assert "Belady" not in text and "upper bound" not in text
    with_oracle = _data(sweep_rows())
    assert "Belady" in with_oracle.data["hit_rate_vs_dram"].title
    assert "leaves out Belady" in with_oracle.data["throughput_vs_perplexity"].title


# ---------------------------------------------------------------------- throughput vs perplexity
def test_pareto_front_keeps_only_points_no_other_beats_on_both_axes():
    perplexity = np.array([20.0, 20.5, 21.0, 20.5, 22.0, 19.5, 21.0])
    tokens_per_s = np.array([3.0, 5.0, 4.0, 6.0, 9.0, 1.0, 9.0])
    # 19.5/1 (lowest ppl), 20/3, 20.5/6 (beats 20.5/5), 21/9 (beats 22/9 and 21/4)
    assert list(pareto_front(perplexity, tokens_per_s)) == [5, 0, 3, 6]


def test_throughput_vs_perplexity_is_one_axes_with_a_line_per_series(tmp_path):
    data = _data(sweep_rows()).data["throughput_vs_perplexity"]
    assert len(data.panels) == 1
    panel = data.panels[0]
    assert [line.label for line in panel.lines] == [k for k in LABELS if k != "CATS"]
    # Belady rows excluded; DIP d=0.3 at 4 GB (21.5, 11) is beaten by DIP-CA (20.09, 12)
    assert panel.front.point_ids == ("dense-1-lru-4", "dip-0.5-lru-4", "dip_ca-0.5-lru-4")
    assert "1 row without perplexity left out" in data.title
    assert [label for label, _ in data.size_key] == ["1 GB", "2 GB", "4 GB"]
    assert data.log_y is False  # 2 to 12 tokens/s: within a decade


def test_tokens_per_s_spanning_more_than_ten_times_gets_a_log_axis(tmp_path):
    rows = sweep_rows() + [row("dense", 1.0, 8.0, "lru", 20.0, 400.0, 1.0)]
    data = _data(rows).data
    assert data["throughput_vs_perplexity"].log_y and data["tokens_per_s_vs_dram"].log_y


# ---------------------------------------------------------------------- units
def test_one_unit_per_sweep_mb_below_a_gigabyte(tmp_path):
    rows = [{**r, "capacity_GB": r["capacity_GB"] / 100} for r in realizable_rows()]
    data = _data(rows).data
    assert data["tokens_per_s_vs_dram"].xlabel == "DRAM size (MB)"
    np.testing.assert_allclose(data["hit_rate_vs_dram"].lines()[0].x, [10, 20, 40])
    assert data["time_breakdown"].panels[0].bars.ticklabels == ("10", "20", "40")
    assert [label for label, _ in data["throughput_vs_perplexity"].size_key] == \
        ["10 MB", "20 MB", "40 MB"]


# ---------------------------------------------------------------------- matched perplexity
def test_matched_perplexity_keeps_only_points_within_tolerance_and_says_the_bound(tmp_path):
    data = _data(sweep_rows(), ppl_tolerance=0.1).data["dram_at_matched_perplexity"]
    assert "(≤ dense 20.00 + 0.1)" in data.title
    lines = {line.label: line.point_ids for line in data.lines()}
    assert lines == {"Dense, perplexity 20.00": ("dense-1-lru-1", "dense-1-lru-2",
                                                  "dense-1-lru-4"),
                     "DIP (d=0.5), perplexity 20.08": ("dip-0.5-lru-1", "dip-0.5-lru-2",
                                                       "dip-0.5-lru-4"),
                     "DIP-CA, perplexity 20.09": ("dip_ca-0.5-lru-4",)}
    assert "no point within: GLU pruning 23.00" in data.title


def test_matched_perplexity_label_gives_the_range_of_its_own_points(tmp_path):
    data = _data(sweep_rows(), ppl_tolerance=0.6).data["dram_at_matched_perplexity"]
    labels = [line.label for line in data.lines()]
    assert "DIP-CA, perplexity 20.09–20.50" in labels


def test_matched_line_does_not_bridge_a_dram_size_outside_the_tolerance():
    rows = [{**r, "perplexity": {1.0: 20.05, 2.0: 20.5, 4.0: 20.09}[r["capacity_GB"]]}
            if r["method"] == "dip_ca" else r for r in realizable_rows()]
    data = _data(rows, ppl_tolerance=0.1).data["dram_at_matched_perplexity"]
    (dip_ca,) = [line for line in data.lines() if line.method == "dip_ca"]
    assert dip_ca.point_ids == ("dip_ca-0.5-lru-1", "dip_ca-0.5-lru-4")
    assert dip_ca.joined == (False,)
    assert all(all(line.joined) for line in data.lines() if line.method != "dip_ca")


def test_matched_perplexity_is_skipped_when_no_method_gets_there(tmp_path):
    rows = [r for r in realizable_rows() if r["method"] in ("dense", "glu")]
    files = _data(rows, ppl_tolerance=0.1)
    assert files.skipped["dram_at_matched_perplexity"] == (
        "no method comes within 0.1 of dense's perplexity (20.00); best: GLU pruning 23.00")


# ---------------------------------------------------------------------- time breakdown
def test_breakdown_has_a_panel_per_series_and_bars_over_dram(tmp_path):
    data = _data(realizable_rows()).data["time_breakdown"]
    assert [p.title for p in data.panels] == ["Dense", "GLU pruning", "CATS", "DIP (d=0.3)",
                                              "DIP (d=0.5)", "DIP-CA"]
    dip = data.panels[4].bars
    assert dip.ticklabels == ("1", "2", "4") and data.xlabel == "DRAM size (GB)"
    np.testing.assert_allclose(sum(dip.parts.values()), [250.0, 1000 / 6, 1000 / 9])


def test_breakdown_points_option_keeps_only_those_points(tmp_path):
    files = _data(sweep_rows(), points=["dip-0.5-lru-1", "dense-1-belady-4"])
    bars = [p.bars for p in files.data["time_breakdown"].panels]
    assert [b.point_ids for b in bars] == [("dense-1-belady-4",), ("dip-0.5-lru-1",)]


def test_analytic_rows_are_left_out_of_the_breakdown_with_a_note(tmp_path):
    rows = [{**r, "mode": "analytic", **{f"breakdown_{p}_s": math.nan for p in
                                         ("flash", "dram", "compute", "stall")}}
            if r["method"] == "glu" else r for r in realizable_rows()]
    data = _data(rows).data["time_breakdown"]
    assert "3 rows without a breakdown left out (analytic mode has no timeline)" in data.title
    everything = [{**r, "breakdown_flash_s": math.nan, "mode": "analytic"}
                  for r in realizable_rows()]
    skipped = _data(everything).skipped["time_breakdown"]
    assert skipped.startswith("no row has a time breakdown") and "analytic" in skipped
