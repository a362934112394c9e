"""A flash layout as a sweep axis: relative paths are taken from the sweep file's folder
(as `base.hw` is), and a missing file is an error before any work, naming that path."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from memsim.core.errors import ConfigError
from memsim.hw.layouts import build_layout
from memsim.sweeps.spec import expand, load_sweep
from memsim.traces.model_shape import load_model_shape
from memsim.traces.synth import synth_trace


def _sweep_file(folder, layouts):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump({
        "base": {"hw": "flagship", "model": "smollm2-135m", "method": "dip",
                 "trace": {"source": "synthetic", "tokens": 8, "windows": 1}},
        "axes": {"hw.flash.layout": layouts, "hw.flash.merge_gap_KiB": [0, 16]}}))
    return path


def test_a_relative_layout_axis_value_resolves_against_the_sweep_file(tmp_path, monkeypatch):
    trace = synth_trace(load_model_shape("smollm2-135m"), 16, 0.5, seed=0)
    build_layout(trace, "frequency").save(tmp_path / "sweeps" / "layouts" / "freq.npz")
    path = _sweep_file(tmp_path / "sweeps", ["layouts/freq.npz", None])
    monkeypatch.chdir(tmp_path)  # elsewhere: the path must not depend on the working folder
    points, dropped = expand(load_sweep(path))
    layouts = sorted({str(p.hw.flash.layout) for p in points})
    assert layouts == sorted([str((tmp_path / "sweeps/layouts/freq.npz").resolve()), "None"])
    assert len(points) == 4 and not dropped
    assert np.isclose(sorted({p.hw.flash.merge_gap_KiB for p in points})[-1], 16)


def test_a_missing_layout_file_is_an_error_naming_the_resolved_path(tmp_path):
    path = _sweep_file(tmp_path / "sweeps", ["nowhere.npz"])
    with pytest.raises(ConfigError, match="no layout file") as err:
        expand(load_sweep(path))
    assert str((tmp_path / "sweeps" / "nowhere.npz").resolve()) in err.value.message
    assert err.value.key_path == "hw.flash.layout"


def test_a_relative_layout_inside_a_bundle_resolves_against_the_sweep_file(tmp_path,
                                                                          monkeypatch):
    trace = synth_trace(load_model_shape("smollm2-135m"), 16, 0.5, seed=0)
    build_layout(trace, "frequency").save(tmp_path / "sweeps" / "freq.npz")
    path = _sweep_file(tmp_path / "sweeps", [None])
    data = yaml.safe_load(path.read_text())
    data["axes"] = {"variant": [{"name": "naive"},
                                {"name": "placed", "hw.flash.layout": "freq.npz"}]}
    path.write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    points, _ = expand(load_sweep(path))
    assert sorted(str(p.hw.flash.layout) for p in points) == sorted(
        ["None", str((tmp_path / "sweeps" / "freq.npz").resolve())])
