"""The summary table `memsim sweep` and `memsim demo` print."""
from __future__ import annotations

import re

from memsim.core.units import GB, MB, byte_unit, format_bytes
from memsim.sweeps.summary import summary_lines
from memsim.sweeps.table import table_from_rows
from tests.figure_rows import realizable_rows, synthetic_rows


def test_units_are_mb_below_a_gigabyte_and_gb_from_one():
    assert byte_unit([36e6, 72e6]) == MB and byte_unit([0.5e9, 1e9]) == GB
    assert format_bytes(35_974_656) == "35.975 MB" and format_bytes(6e9) == "6.000 GB"


def test_summary_names_series_as_the_figures_do_in_the_sweeps_unit():
    lines = summary_lines(table_from_rows(realizable_rows()))
    assert lines[0].split() == ["DRAM", "GB", "method", "perplexity", "tokens/s", "hit",
                                "rate", "flash", "MB/token"]
    first_gb = [line for line in lines[1:] if line.split()[0] == "1"]
    assert [re.split(r"\s{2,}", line.strip())[1] for line in first_gb] == [
        "Dense", "GLU pruning", "DIP (d=0.3)", "DIP (d=0.5)", "DIP-CA"]
    assert lines[1].split()[-4:] == ["20.000", "2.0", "0.300", "70.00"]
    assert len(lines) == 1 + len(realizable_rows())


def test_summary_of_a_synthetic_sweep_leaves_out_perplexity_and_says_why():
    rows = [{**r, "capacity_GB": r["capacity_GB"] / 100} for r in synthetic_rows()]
    lines = summary_lines(table_from_rows(rows))
    assert lines[0].startswith("DRAM MB") and "perplexity" not in lines[0]
    assert lines[-1] == "perplexity: none (synthetic traces carry no accuracy)"
