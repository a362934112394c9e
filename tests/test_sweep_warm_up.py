"""A local sweep readies the simulator's kernels beside its pool (numba's disk cache) or, with
no disk cache, in the driver before the pool forks: the same results either way."""
from __future__ import annotations

import os

import pytest

from memsim.sweeps import runner
from memsim.sweeps.runner import run_sweep
from memsim.sweeps.spec import sweep_from_dict
from memsim.sweeps.table import read_results

SWEEP = {"name": "w", "base": {"hw": "flagship", "model": "smollm2-135m",
                               "trace": {"source": "synthetic", "tokens": 16, "windows": 1}},
         "axes": {"hw.dram.capacity_GB": [0.03, 0.05]}}


@pytest.mark.parametrize("cached", [True, False])
def test_kernels_are_warmed_beside_the_pool_only_with_a_disk_cache(tmp_path, monkeypatch,
                                                                   cached):
    real = runner._warm_up

    def recorded(point):
        (tmp_path / f"warmed-in-{os.getpid()}").touch()  # seen here from a forked child too
        real(point)

    monkeypatch.setattr(runner, "disk_cached", lambda: cached)
    monkeypatch.setattr(runner, "_warm_up", recorded)
    report = run_sweep(sweep_from_dict(SWEEP), tmp_path / "out", workers=2, progress=False)
    assert report.num_failed == 0
    warmed_in = [int(p.name.split("-")[-1]) for p in tmp_path.glob("warmed-in-*")]
    assert len(warmed_in) == 1 and (warmed_in[0] != os.getpid()) == cached
    rows = read_results(report.table_path).rows()
    assert len(rows) == 2 and all(r["tokens_per_s"] > 0 for r in rows)
