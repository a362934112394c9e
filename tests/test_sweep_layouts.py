"""Sweeps that build flash layouts from calibration windows, and bundle axes."""
from __future__ import annotations

import json

import pytest
import yaml

from memsim.core.errors import ConfigError
from memsim.sweeps import trace_sources
from memsim.sweeps.runner import run_sweep
from memsim.sweeps.spec import expand, sweep_from_dict
from memsim.sweeps.table import read_results
from memsim.traces import load_model_shape, synth_trace

BEST = {"name": "best", "layout.method": "frequency", "hw.flash.merge_gap_KiB": 4}


def _sweep(axes: dict, **base) -> dict:
    return {"name": "layouts", "base": {"hw": "flagship", "model": "smollm2-135m",
                                        "trace": {"source": "model", "windows": 2,
                                                  "window_len": 16}, **base},
            "axes": axes}


@pytest.fixture
def fake_model_traces(monkeypatch):
    """Model traces without torch: a synthetic trace per job (seeded by its split), so the
    runner's calibration / layout / point plumbing is what is tested. Workers fork, so they
    inherit the patch."""
    def fake(job, out, hw_plain):
        t = job["trace"]
        seed = {"train": 1, "test": 2}.get(t.get("split") or "test", 3)
        trace = synth_trace(load_model_shape(job["model"]), t["window_len"] * t["windows"],
                            job["params"].get("density", 1.0), seed=seed,
                            method="dense" if job["method"] == "dense" else "dip",
                            num_sequences=t["windows"])
        trace.save(out / trace_sources.TRACE_FILE)
        return {"perplexity": 10.0 + seed, "trace_source": "fake", "split": t.get("split")}

    monkeypatch.setattr(trace_sources, "_from_model", fake)
    monkeypatch.setattr(trace_sources, "_prepare", lambda kind, name: None)  # no model load


def test_a_bundle_axis_applies_its_settings_together_and_names_the_row(tmp_path,
                                                                       fake_model_traces):
    spec = sweep_from_dict(_sweep({"method": ["dense", "dip"],
                                   "variant": [{"name": "naive"}, BEST]}))
    points, dropped = expand(spec)
    assert len(points) == 3  # dense once, dip naive and best
    assert "dense streaming reads whole regions" in dropped[0][1]
    best = next(p for p in points if dict(p.axis_values)["variant"]["name"] == "best")
    assert best.hw.flash.merge_gap_KiB == 4 and best.spec.layout.method == "frequency"
    report = run_sweep(spec, tmp_path / "out", workers=2, progress=False, echo=None)
    assert report.num_failed == 0
    table = read_results(report.table_path)
    assert sorted(table["variant"].tolist()) == ["best", "naive", "naive"]


def test_the_layout_is_built_on_calibration_windows_of_another_split(tmp_path,
                                                                      fake_model_traces):
    spec = sweep_from_dict(_sweep({"method": ["dip", "dip_ca"], "variant": [BEST]}))
    out = tmp_path / "out"
    report = run_sweep(spec, out, workers=1, progress=False, echo=None)
    assert report.num_failed == 0
    layouts = list(out.glob("layouts/*/layout.npz"))
    assert len(layouts) == 1  # DIP-CA reuses DIP's calibration pass and layout
    calibration = [p for p in out.glob("traces/*/eval.json")
                   if json.loads(p.read_text())["split"] == "train"]
    assert len(calibration) == 1  # one calibration trace
    from memsim.hw.layouts import load_layout
    built = load_layout(layouts[0]).built_from
    assert built["trace"] == str(calibration[0].parent / "trace.npz")
    for config in out.glob("points/*/resolved_config.yaml"):
        assert yaml.safe_load(config.read_text())["hw"]["flash"]["layout"] == str(layouts[0])


def test_a_layout_built_on_the_evaluated_split_or_a_synthetic_trace_is_dropped():
    same = sweep_from_dict(_sweep({"layout.split": ["test"]}, layout={"method": "frequency"}))
    _, dropped = expand(same)
    assert "disjoint" in dropped[0][1]
    synthetic = sweep_from_dict(_sweep({"variant": [BEST]}, trace={"source": "synthetic"}))
    with pytest.raises(ConfigError, match="calibration windows of a model trace"):
        run_sweep(synthetic, "/nonexistent-never-written", progress=False)


@pytest.mark.parametrize("axes, where", [
    ({"variant": [{"layout.method": "frequency"}]}, "axes.variant[0]"),
    ({"variant": [{"name": "a"}, {"name": "a"}]}, "axes.variant"),
    ({"variant": [{"name": "x", "no.such": 1}]}, "axes.variant.no.such")])
def test_bad_bundle_axes_are_clean_errors_naming_the_axis(axes, where):
    with pytest.raises(ConfigError) as info:
        sweep_from_dict(_sweep(axes))
    assert where in str(info.value) and "<" not in str(info.value).split(":")[0]


def test_bundle_values_are_checked_like_axes():
    with pytest.raises(ConfigError, match="merge_gap_KiB"):
        sweep_from_dict(_sweep({"variant": [{"name": "x", "hw.flash.merge_gap_KiB": -1}]}))
