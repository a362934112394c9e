"""Sweeps: grid expansion and filtering, resuming after a kill, local == Dask."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from memsim.core.errors import ConfigError
from memsim.sweeps.runner import run_sweep
from memsim.sweeps.spec import expand, sweep_from_dict
from memsim.sweeps.table import read_results

SYNTH = {"source": "synthetic", "tokens": 24, "windows": 2}


def _sweep(axes: dict, model: str = "smollm2-135m", trace: dict = SYNTH) -> dict:
    return {"name": "t", "base": {"hw": "flagship", "model": model, "trace": trace},
            "axes": axes}


def test_grid_is_the_product_of_axes_minus_stated_invalid_points():
    spec = sweep_from_dict(_sweep({"hw.dram.capacity_GB": [0.03, 0.05],
                                   "method": ["dense", "dip", "dip_ca"],
                                   "density": [0.3, 0.5], "dip_ca.gamma": [0.1, 0.3]}))
    points, dropped = expand(spec)
    assert len(points) + len(dropped) == 2 * 3 * 2 * 2
    # dense: 1 per capacity; dip: 2 densities; dip_ca: synthetic traces do not exist
    assert sorted(p.spec.method for p in points) == ["dense"] * 2 + ["dip"] * 4
    reasons = {r for _, r in dropped}
    assert any("density does not apply" in r for r in reasons)
    assert any("dip_ca parameters do not apply to dip" in r for r in reasons)
    assert any("synthetic traces exist for" in r for r in reasons)
    assert len({p.point_id for p in points}) == len(points)


def test_belady_with_cache_aware_masking_is_filtered_with_a_reason():
    spec = sweep_from_dict(_sweep({"method": ["dip_ca"], "cache.impl": ["lru", "belady"]},
                                  trace={"source": "model"}))
    points, dropped = expand(spec)
    assert [p.hw.cache.impl for p in points] == ["lru"]
    assert "offline oracle" in dropped[0][1]


def test_a_window_setting_under_another_cache_policy_runs_once():
    """window_tokens changes nothing for LRU: its two LRU points are one configuration."""
    spec = sweep_from_dict(_sweep({"cache.impl": ["window", "lru"],
                                   "cache.window_tokens": [1, 3]}))
    points, dropped = expand(spec)
    assert sorted((p.hw.cache.impl, p.hw.cache.window_tokens) for p in points) == [
        ("lru", 5), ("window", 1), ("window", 3)]  # LRU's reset to the default
    assert [d["hw.cache.impl"] for d, _ in dropped] == ["lru"]
    assert "same configuration" in dropped[0][1]


def test_points_are_frozen_configs_applied_to_fresh_copies():
    spec = sweep_from_dict(_sweep({"hw.dram.capacity_GB": [0.03, 0.05]}))
    a, b = expand(spec)[0]
    assert (a.hw.dram.capacity_GB, b.hw.dram.capacity_GB) == (0.03, 0.05)
    assert a.hw.dram.capacity_bytes == 0.03e9  # derived fields recomputed per point
    assert spec.base_hw["dram"]["capacity_GB"] == 6.0  # the base is untouched


@pytest.mark.parametrize("axes,key", [({"gpu.cores": [1]}, "gpu"),
                                      ({"hw.dram.size_GB": [1]}, "dram.size_GB"),
                                      ({"method": ["magic"]}, "method"),
                                      ({"hw.dram.capacity_GB": [-1]}, "capacity_GB"),
                                      ({"cache.impl": ["fifo"]}, "cache.impl"),
                                      ({"density": []}, "axes")])
def test_bad_axes_give_a_clear_error(axes, key):
    with pytest.raises(ConfigError) as info:
        sweep_from_dict(_sweep(axes), source="sweep.yaml")
    assert key in str(info.value) and str(info.value).startswith("sweep.yaml")


def _rows_by_id(out: Path) -> dict:
    table = read_results(out)
    keep = ("tokens_per_s", "hit_rate", "flash_bytes_per_token", "ttft_s", "dram_used_bytes")
    return {r["point_id"]: tuple(r[k] for k in keep) for r in table.rows()}


def test_rerun_skips_finished_points_and_recomputes_changed_ones(tmp_path):
    spec = sweep_from_dict(_sweep({"hw.dram.capacity_GB": [0.03, 0.05], "method": ["dip"]}))
    first = run_sweep(spec, tmp_path, workers=1, progress=False)
    assert (first.num_points, first.num_done_before, first.num_failed) == (2, 0, 0)
    again = run_sweep(spec, tmp_path, workers=1, progress=False)
    assert again.num_done_before == 2
    changed = sweep_from_dict(_sweep({"hw.dram.capacity_GB": [0.03, 0.06], "method": ["dip"]}))
    third = run_sweep(changed, tmp_path, workers=1, progress=False)
    assert third.num_done_before == 1 and len(read_results(tmp_path)) == 2


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def test_sweep_killed_mid_run_resumes_with_no_point_lost_or_duplicated(tmp_path):
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(_sweep(
        {"hw.dram.capacity_GB": [1.0 + 0.25 * i for i in range(12)], "method": ["dip", "dense"]},
        model="phi-3-mini", trace={"source": "synthetic", "tokens": 96, "windows": 1})))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "memsim", "sweep", str(sweep_file), "--out", str(out),
           "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(list(out.glob("points/*/row.json"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert workers and proc.poll() is None, "sweep finished before it could be killed"
    os.kill(workers[0], signal.SIGKILL)  # a worker dies mid-run
    _, stderr = proc.communicate(timeout=120)
    done_after_kill = len(list(out.glob("points/*/row.json")))
    assert proc.returncode == 1 and "rerun the same command" in stderr
    assert done_after_kill < 24
    for done in out.glob("points/*/*.json"):  # files under their final names are whole
        json.loads(done.read_text())
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert not list(out.rglob(".*.tmp"))  # a killed write's temp file is cleaned up
    assert f"({done_after_kill} already done)" in resumed.stdout
    table = read_results(out)
    assert len(table) == 24 and len(set(table["point_id"])) == 24
    clean = tmp_path / "clean"
    run_sweep(sweep_from_dict(yaml.safe_load(sweep_file.read_text())), clean, progress=False)
    assert _rows_by_id(out) == _rows_by_id(clean)  # nothing lost, nothing changed


def test_local_and_dask_executors_give_identical_tables(tmp_path):
    pytest.importorskip("dask.distributed")
    spec = sweep_from_dict(_sweep({"hw.dram.capacity_GB": [0.03, 0.06],
                                   "method": ["dense", "dip"]}))
    run_sweep(spec, tmp_path / "local", executor="local", workers=2, progress=False)
    report = run_sweep(spec, tmp_path / "dask", executor="dask", workers=2, progress=False)
    assert report.num_failed == 0
    assert _rows_by_id(tmp_path / "local") == _rows_by_id(tmp_path / "dask")
    assert len(_rows_by_id(tmp_path / "dask")) == 4


def test_densities_a_method_cannot_reach_are_filtered_with_a_reason():
    spec = sweep_from_dict(_sweep({"method": ["glu", "cats", "dip"],
                                   "density": [0.3, 0.5, 0.7]}, trace={"source": "model"}))
    points, dropped = expand(spec)
    kept = sorted((p.spec.method, p.spec.density) for p in points)
    assert kept == [("cats", 0.5), ("cats", 0.7), ("dip", 0.3), ("dip", 0.5), ("dip", 0.7),
                    ("glu", 0.7)]
    assert all("in full" in reason for _, reason in dropped)


def test_settings_dense_streaming_ignores_share_one_pair_of_references(tmp_path):
    """Merge gap, cache split and policy do not change dense streaming or all-in-DRAM: one
    reference task for the whole grid, every row reading the same two figures."""
    spec = sweep_from_dict(_sweep({"hw.dram.capacity_GB": [0.03, 0.06],
                                   "method": ["dense", "dip"],
                                   "hw.flash.merge_gap_KiB": [0, 16],
                                   "cache.split": ["equal", "proportional"]}))
    run_sweep(spec, tmp_path, progress=False)
    assert len(list((tmp_path / "references").iterdir())) == 1
    table = read_results(tmp_path)
    assert len(set(table["ref_dense_streaming_tokens_per_s"])) == 1
