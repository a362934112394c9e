"""DIP-RA (request-aware DIP) and the flash-cost estimate it chooses by.

The estimate (memsim.sim.request_estimate) must count what memsim counts (transfer_reads),
the method's own count of its chosen masks must equal memsim's replay of its trace, weight 0
must be DIP-CA exactly, and a higher weight must buy cheaper reads."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import yaml

from memsim import load_hw, load_model_shape
from memsim.core.errors import ConfigError
from memsim.hw.config import hw_from_dict
from memsim.hw.layouts import Layout
from memsim.sim import dip_placements, estimate_reads
from memsim.sim.costs import cache_outcome, group_geometries
from memsim.sim.flash_reads import transfer_reads
from memsim.sim.simulator import _kv_budget_tokens, plan_dram
from memsim.traces import Trace
from tests.helpers import BASE_HW, UFS, merge
from workloads.cli import main
from workloads.evaluation import EvalConfig, _trace, cache_params_from_hw
from workloads.masks import build_generator
from workloads.masks._request_select import request_aware_select
from workloads.masks.dip_ra import columns_by_cell
from workloads.model import load_model
from workloads.perplexity import score_window
from workloads.testing import sample_text, save_tiny_checkpoint, single_thread

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

SMOL = load_model_shape("smollm2-135m")
GROUPS = [("up_gate", "up", 2), ("down", "down", 1)]


def _random_layout(model, seed: int) -> Layout:
    rng = np.random.default_rng(seed)
    L, H, I = model.num_hidden_layers, model.hidden_size, model.intermediate_size
    return Layout(model, {g: np.stack([rng.permutation(n) for _ in range(L)]).astype(np.int32)
                          for g, n in (("up_gate", H), ("down", I))})


def _with_flash(hw, **changes):
    return dataclasses.replace(hw, flash=dataclasses.replace(hw.flash, **changes))


def _memsim_count(hw, model, layout, misses: dict[str, np.ndarray]) -> dict:
    """What the simulator charges (group_geometries, then transfer_reads: memsim's exact
    count, priced within the span flash.locality names) for (T, L, N) missed columns of DIP's
    groups, `misses` = {"up": ..., "down": ...}: group name -> TransferReads."""
    trace = Trace(up=misses["up"], down=misses["down"], model=model)
    plan = plan_dram(hw, model, trace.groups(), _kv_budget_tokens(hw, trace))
    geometries = group_geometries(hw, trace, plan, layout)
    return {g.name: transfer_reads(trace.words[g.mask_name], geom,
                                   trace.column_counts(g.mask_name) * vb)
            for g, geom, vb in zip(trace.groups(), geometries, plan.vector_bytes)}


# ------------------------------------------------------------ the estimate is memsim's count
# With the presets' ranges every span of SmolLM2 (a layer's region ~0.4-0.8 MiB, a token's
# MLP ~38 MiB, the file ~64 MiB) is "local"; these ranges put the three spans on three
# different IOPS, so a mask pricing the wrong span is seen.
NARROW_RANGES = {"local_range_MiB": 0.25, "far_range_GiB": 0.05}
CASES = ([("flagship", gap, bundled, with_layout, "region") for gap in (0.0, 4.0, float("inf"))
          for bundled in (True, False) for with_layout in (False, True)]
         + [("midrange", 16.0, True, True, "region"), ("paper_reference", 0.0, True, False,
                                                       "region"),
            ("paper_reference", 0.0, True, True, "region")]
         + [(preset, gap, bundled, with_layout, locality) for locality in ("token", "file")
            for preset, gap, bundled, with_layout in (
                ("flagship", 0.0, True, True), ("flagship", 4.0, False, False),
                ("flagship", float("inf"), True, False), ("midrange", 16.0, True, True))])


def _test_hw(preset: str, gap_KiB: float, bundled: bool, locality: str):
    hw = load_hw(preset)
    if hw.flash.page_bytes:  # byte-addressable flash has no gap, bundling or span to set
        hw = _with_flash(hw, merge_gap_KiB=gap_KiB, bundle_up_gate=bundled, locality=locality,
                         **NARROW_RANGES)
    return hw


@pytest.mark.parametrize("preset,gap_KiB,bundled,with_layout,locality", CASES)
def test_estimate_equals_memsims_exact_count(preset, gap_KiB, bundled, with_layout, locality):
    hw = _test_hw(preset, gap_KiB, bundled, locality)
    layout = _random_layout(SMOL, 1) if with_layout else None
    placements = dip_placements(hw, SMOL, layout)
    rng = np.random.default_rng(7)
    L = SMOL.num_hidden_layers
    for density in (0.01, 0.2, 0.7):
        misses = {mask: rng.random((3, L, placements[name].num_columns)) < density
                  for name, mask, _ in GROUPS}
        ref = _memsim_count(hw, SMOL, layout, misses)
        for name, mask, _ in GROUPS:
            est = estimate_reads(misses[mask], placements[name], np.arange(L))
            np.testing.assert_array_equal(est.requests, ref[name].requests)
            np.testing.assert_allclose(est.device_bytes, ref[name].device_bytes, rtol=1e-12)
            np.testing.assert_allclose(est.time_s, ref[name].time_s, rtol=1e-12)


def test_the_localities_price_a_request_differently():
    """The test above sees a wrong span: with its ranges each locality has its own floor."""
    floors = {locality: {name: p.request_s for name, p in dip_placements(
        _test_hw("flagship", 0.0, True, locality), SMOL).items()}
        for locality in ("region", "token", "file")}
    for name, _, _ in GROUPS:
        assert len({floors[loc][name] for loc in floors}) == 3, floors
    assert floors["region"]["down"] < floors["token"]["down"] < floors["file"]["down"]


def test_estimate_of_known_sets():
    """Closed form on SmolLM2's W_down (288-byte columns, 4 KiB pages, model order)."""
    p = dip_placements(load_hw("flagship"), SMOL)["down"]
    miss = np.zeros((4, SMOL.intermediate_size), bool)
    miss[1, [0, 1]] = True  # one page
    miss[2, [0, 14]] = True  # 14 x 288 = 4032: column 14 straddles pages 0 and 1 -> one request
    miss[3, [0, 100]] = True  # pages 0 and 7: two requests
    est = estimate_reads(miss, p, 0)
    assert est.requests.tolist() == [0, 1, 1, 2]
    assert est.device_bytes.tolist() == [0, 4096, 8192, 8192]
    assert est.time_s[0] == 0 and est.time_s[3] == pytest.approx(p.latency_s + 2 * p.request_s)


# ------------------------------------------------------------ the selection itself
def _select(scores, cached, first, last, k, weight, *, gap=0, short=3, floor=4e-6, cell=1e-6):
    first, last = np.asarray(first, np.int64), np.asarray(last, np.int64)
    by_cell, starts = columns_by_cell(first, last, int(last.max()) + 1)
    out = np.zeros(len(scores), bool)
    chosen = request_aware_select(np.asarray(scores, float), np.asarray(cached, bool), first,
                                  last, by_cell, starts, k, int((last - first).max()) + 1, gap,
                                  short, floor, cell, True, float(weight), out)
    return chosen, out


def test_a_column_on_a_page_already_read_beats_a_slightly_better_lone_one():
    # column 0 (best) and 1 share page 0; column 2, a little better than 1, is alone on page 2
    scores, first = [10.0, 5.0, 5.1, 0.1], [0, 0, 2, 3]
    chosen, out = _select(scores, [False] * 4, first, first, k=2, weight=1.0)
    assert chosen and out.tolist() == [True, True, False, False]
    chosen, out = _select(scores, [False] * 4, first, first, k=2, weight=0.0)
    assert not chosen  # weight 0: the caller's plain top k, columns 0 and 2


def test_a_gap_read_through_is_cheap_and_a_cached_column_free():
    # pages 0 and 2 are read for the two best; with a one-page merge gap, page 1 comes along
    scores, first = [10.0, 9.0, 1.0, 1.2, 0.5], [0, 2, 1, 5, 7]
    chosen, out = _select(scores, [False] * 5, first, first, k=3, weight=1.0, gap=1)
    assert out.tolist() == [True, True, True, False, False]
    # without a gap, page 1 joins pages 0 and 2 into one short request: cheaper, not dearer
    chosen, out = _select(scores, [False] * 5, first, first, k=3, weight=1.0, gap=0)
    assert out.tolist() == [True, True, True, False, False]
    # a cached column (free) beats a slightly better one alone on page 6
    scores, first = [10.0, 9.0, 1.2, 1.1], [0, 1, 6, 9]
    chosen, out = _select(scores, [False, False, False, True], first, first, k=3, weight=1.0)
    assert out.tolist() == [True, True, False, True]


def test_a_column_whose_slot_straddles_two_pages_needs_both():
    # column 1 spans pages 0-1: reading page 0 alone does not make it readable
    scores, first, last = [10.0, 6.0, 5.0, 5.5], [0, 0, 5, 9], [0, 1, 5, 9]
    chosen, out = _select(scores, [False] * 4, first, last, k=2, weight=1.0, short=1)
    assert out.sum() == 2 and out[0]


def test_a_higher_weight_buys_cheaper_reads_for_less_score():
    p = dip_placements(load_hw("flagship"), SMOL)["down"]
    first, last = p.cell_first[0], p.cell_last[0]
    by_cell, starts = columns_by_cell(first, last, p.num_cells)
    rng = np.random.default_rng(3)
    k, N = 539, SMOL.intermediate_size
    rows = [(rng.standard_normal(N) ** 2, rng.random(N) < 0.25) for _ in range(20)]
    times, kept = [], []
    for weight in (0.0, 1.0, 10.0, 100.0):
        t_sum = s_sum = 0.0
        for scores, cached in rows:
            out = np.zeros(N, bool)
            if not request_aware_select(scores, cached, first, last, by_cell, starts, k, 2,
                                        p.gap_cells, p.short_cells, p.request_s, p.cell_s, True,
                                        weight, out):
                out = np.zeros(N, bool)
                out[np.argsort(-scores, kind="stable")[:k]] = True
            assert out.sum() == k
            t_sum += estimate_reads(out & ~cached, p, 0).time_s
            s_sum += scores[out].sum()
        times.append(t_sum)
        kept.append(s_sum)
    assert times == sorted(times, reverse=True) and times[-1] < 0.8 * times[0]
    assert kept == sorted(kept, reverse=True)


# ------------------------------------------------------------ on a real (tiny) model
TINY_FLASH = merge(UFS, {"page_size_KiB": 0.5})  # tiny columns: 96-byte up/gate bundles
PARAMS = {"density": 0.5, "gamma": 0.3}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("ra")
    (root / "text.txt").write_text(sample_text(2000, seed=4))
    return {"root": root, "model": load_model(save_tiny_checkpoint(root / "llama", "llama"),
                                              dtype="float64")}


def _windows(loaded, n: int = 2, length: int = 24, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 300, length) for _ in range(n)]


def _hw_file(root, name: str, cache_fraction: float, loaded, **flash) -> tuple[str, dict]:
    """A UFS phone whose DRAM leaves `cache_fraction` of the tiny MLP as column cache."""
    shape = loaded.shape
    probe = hw_from_dict(merge(BASE_HW, {"flash": {**TINY_FLASH, **flash}}))
    from memsim.sim.footprint import Footprint
    from memsim.sim.plan import resident_weight_bytes
    fp = Footprint.of(shape, probe)
    static = resident_weight_bytes(probe, shape, fp) + 24 * fp.kv_bytes_per_token_per_layer \
        * shape.num_hidden_layers
    mlp = shape.num_hidden_layers * fp.mlp_bytes_per_layer
    data = merge(BASE_HW, {"flash": {**TINY_FLASH, **flash},
                           "dram": {"capacity_GB": (static + cache_fraction * mlp) / 1e9},
                           "cache": {"impl": "lru", "split": "equal"}})
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path), data


def _run(loaded, method: str, params: dict, hw: str | None, windows):
    config = EvalConfig(method=method, method_params=params, hw=hw, window_len=24)
    generator = build_generator(method, cache_params_from_hw(config, loaded) if hw else params,
                                loaded.shape)
    scored = [score_window(loaded, generator, ids) for ids in windows]
    return generator, scored, _trace(loaded, generator, scored)


@pytest.mark.parametrize("gamma", [0.3, 1.0])
def test_weight_zero_is_dip_ca_and_with_gamma_one_dip(tiny, gamma):
    loaded = tiny["model"]
    hw, _ = _hw_file(tiny["root"], "hw40", 0.4, loaded)
    params = {**PARAMS, "gamma": gamma}
    windows = _windows(loaded)
    _, ra, ra_trace = _run(loaded, "dip_ra", {**params, "request_weight": 0.0}, hw, windows)
    _, ca, ca_trace = _run(loaded, "dip_ca", params, hw, windows)
    for name in ("up", "down"):
        np.testing.assert_array_equal(ra_trace.words[name], ca_trace.words[name])
    assert [w.nll_sum for w in ra] == [w.nll_sum for w in ca]
    for a, b in zip(ra, ca):
        np.testing.assert_array_equal(a.stats["cache_hits"], b.stats["cache_hits"])
    if gamma == 1.0:
        _, _, dip_trace = _run(loaded, "dip", {"density": 0.5}, None, windows)
        for name in ("up", "down"):
            np.testing.assert_array_equal(ra_trace.words[name], dip_trace.words[name])


@pytest.fixture(scope="module")
def tiny_plain(tmp_path_factory):
    """A plain FFN (OPT: no W_gate), whose `up` group is one matrix, not an up/gate pair."""
    root = tmp_path_factory.mktemp("ra_plain")
    return {"root": root, "model": load_model(save_tiny_checkpoint(root / "opt", "opt"),
                                              dtype="float64")}


@pytest.mark.parametrize("arch,cache_fraction,flash,with_layout", [
    ("llama", 0.0, {}, False),  # no cache, model order: the case
    ("llama", 0.4, {}, False),
    ("llama", 0.4, {"merge_gap_KiB": 0.5}, True),
    ("llama", 0.6, {"merge_gap_KiB": 1.0, "bundle_up_gate": False}, True),
    ("llama", 0.4, {"locality": "token", "local_range_MiB": 1e-3, "far_range_GiB": 1e-5}, False),
    ("opt", 0.4, {}, False),
])
def test_the_methods_own_estimate_equals_memsims_count_of_its_trace(request, arch,
                                                                    cache_fraction, flash,
                                                                    with_layout, tmp_path):
    loaded = request.getfixturevalue("tiny" if arch == "llama" else "tiny_plain")["model"]
    hw_path, data = _hw_file(tmp_path, "hw", cache_fraction, loaded, **flash)
    params = {**PARAMS, "request_weight": 2.0}
    if with_layout:
        params["layout"] = str(_random_layout(loaded.shape, 5).save(tmp_path / "layout.npz"))
    generator, scored, trace = _run(loaded, "dip_ra", params, hw_path, _windows(loaded, 3))
    hw = hw_from_dict(data)
    if with_layout:
        hw = _with_flash(hw, layout=params["layout"])
    plan = plan_dram(hw, loaded.shape, trace.groups(), _kv_budget_tokens(hw, trace))
    geometries = group_geometries(hw, trace, plan, _layout_of(hw, loaded))
    outcome = cache_outcome(hw, trace, plan, geometries)
    estimate = np.concatenate([w.stats["flash_requests_estimate"] for w in scored])  # (T, G, L)
    bytes_estimate = np.concatenate([w.stats["flash_device_bytes_estimate"] for w in scored])
    assert estimate.sum() > 0
    np.testing.assert_array_equal(outcome.hits, np.concatenate(
        [w.stats["cache_hits"] for w in scored]))
    for g, geom in enumerate(geometries):
        count = trace.column_counts(trace.groups()[g].mask_name)
        reads = transfer_reads(outcome.miss_words[g], geom,
                               (count - outcome.hits[:, g]) * plan.vector_bytes[g])
        np.testing.assert_array_equal(estimate[:, g], reads.requests)
        np.testing.assert_allclose(bytes_estimate[:, g], reads.device_bytes, rtol=1e-12)


def _layout_of(hw, loaded):
    from memsim.hw.layouts import load_layout
    return None if hw.flash.layout is None else load_layout(hw.flash.layout)


def test_request_aware_masks_read_cheaper_than_dip_ca_at_the_same_density(tmp_path):
    """memsim's replay of the traces (not the method's estimate): fewer requests, fewer
    device bytes, the same density. A wider MLP than the other tests' model, so that a
    layer's columns spread over many pages (as SmolLM2's do)."""
    from memsim import simulate
    with single_thread():
        loaded = load_model(save_tiny_checkpoint(tmp_path / "wide", "llama",
                                                 intermediate_size=512), dtype="float64")
    hw_path, data = _hw_file(tmp_path, "hw", 0.3, loaded)
    windows = _windows(loaded, 3)
    _, _, ca_trace = _run(loaded, "dip_ca", PARAMS, hw_path, windows)
    _, _, ra_trace = _run(loaded, "dip_ra", {**PARAMS, "request_weight": 20.0}, hw_path,
                          windows)
    np.testing.assert_allclose(ra_trace.mlp_density(), ca_trace.mlp_density())
    ca, ra = (simulate(hw_from_dict(data), None, t) for t in (ca_trace, ra_trace))
    assert ra.flash_requests_per_token < 0.6 * ca.flash_requests_per_token
    assert ra.flash_device_bytes_per_token < 0.95 * ca.flash_device_bytes_per_token
    assert ra.tokens_per_s > ca.tokens_per_s


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize("params,needle", [
    ({"request_weight": -1}, "dip_ra.request_weight"),
    ({"request_weight": "lots"}, "dip_ra.request_weight"),
    ({"flash_hw": "no-such-phone"}, "no-such-phone"),
    ({"layout": "/no/such/layout.npz"}, "no such layout file"),
    ({"cache_fraction": 2.0}, "dip_ra.cache_fraction"),
    ({"mode": "threshold"}, "dip_ra.mode"),
])
def test_bad_parameters_name_the_field(params, needle):
    with pytest.raises(ConfigError) as err:
        build_generator("dip_ra", {"density": 0.5, **params}, SMOL)
    assert needle in str(err.value)


def test_a_layout_of_another_model_is_refused(tmp_path):
    path = _random_layout(load_model_shape("phi-3-medium"), 0).save(tmp_path / "phi.npz")
    with pytest.raises(ConfigError, match="layout was built for"):
        build_generator("dip_ra", {"density": 0.5, "layout": str(path)}, SMOL)


@pytest.mark.parametrize("argv,needle", [
    (["--request-weight", "-1"], "--request-weight: bad value -1"),
    (["--layout", "/no/such.npz"], "no such layout file"),
    (["--param", "flash_hw=nowhere"], "nowhere"),
])
def test_cli_bad_input_is_one_line_and_exit_code_2(tiny, tmp_path, capsys, argv, needle):
    folder = save_tiny_checkpoint(tmp_path / "m", "llama")
    (tmp_path / "t.txt").write_text(sample_text(500, seed=1))
    code = main(["--model", str(folder), "--corpus", str(tmp_path / "t.txt"), "--method",
                 "dip_ra", "--window-len", "16", "--no-progress", "--out",
                 str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("memsim eval:")]
    assert code == 2 and len(lines) == 1 and needle in lines[0] and "Traceback" not in err


def test_cli_runs_dip_ra_with_hw_and_layout(tiny, tmp_path, capsys):
    folder = save_tiny_checkpoint(tmp_path / "m", "llama")
    (tmp_path / "t.txt").write_text(sample_text(800, seed=2))
    hw_path, _ = _hw_file(tmp_path, "hw", 0.3, tiny["model"])
    layout = _random_layout(tiny["model"].shape, 2).save(tmp_path / "layout.npz")
    code = main(["--model", str(folder), "--corpus", str(tmp_path / "t.txt"), "--method",
                 "dip_ra", "--density", "0.5", "--request-weight", "2", "--hw", hw_path,
                 "--layout", str(layout), "--windows", "2", "--window-len", "16",
                 "--no-progress", "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    from memsim.traces import Trace
    params = Trace.load(tmp_path / "out" / "trace.npz").method_params
    assert params["flash_hw"] == hw_path and params["layout"] == str(layout)
    assert params["request_weight"] == 2.0 and "up_gate_capacity" in params


def test_the_mask_runs_batch_of_one_only(tiny):
    generator = build_generator("dip_ra", {"density": 0.5, "up_gate_capacity": 4,
                                           "down_capacity": 4}, tiny["model"].shape)
    with pytest.raises(ValueError, match="one sequence"):
        generator.up_mask(0, torch.ones(2, 3, tiny["model"].shape.hidden_size))


# ------------------------------------------------------------ a sweep method
def _sweep_spec(axes: dict, trace: dict | None = None, base: dict | None = None) -> dict:
    trace = trace or {"source": "model", "windows": 2, "window_len": 16}
    return {"name": "ra", "base": {"hw": "flagship", "model": "smollm2-135m", "trace": trace,
                                   **(base or {})}, "axes": axes}


def test_sweep_points_key_dip_ra_traces_on_cache_and_flash():
    from memsim.sweeps.spec import expand, sweep_from_dict
    from memsim.sweeps.trace_sources import trace_id, trace_job

    spec = sweep_from_dict(_sweep_spec({"method": ["dip_ca", "dip_ra"],
                                        "dip_ra.request_weight": [1.0, 2.0],
                                        "hw.flash.merge_gap_KiB": [0.0, 4.0]}))
    points, dropped = expand(spec)
    ra = [p for p in points if p.spec.method == "dip_ra"]
    ca = [p for p in points if p.spec.method == "dip_ca"]
    assert len(ra) == 4 and len(ca) == 2
    jobs = [trace_job(p) for p in ra]
    assert len({trace_id(j) for j in jobs}) == 4  # weight and merge gap both change masks
    assert all(j["params"]["request_weight"] in (1.0, 2.0) and "cache" in j and "flash" in j
               for j in jobs)
    assert len({trace_id(trace_job(p)) for p in ca}) == 1  # DIP-CA ignores the flash
    assert all("flash" not in trace_job(p) for p in ca)
    assert any("dip_ra parameters do not apply to dip_ca" in r for _, r in dropped)


def test_sweep_drops_dip_ra_with_a_layout_built_inside_the_sweep():
    from memsim.sweeps.spec import expand, sweep_from_dict

    spec = sweep_from_dict(_sweep_spec({"method": ["dip", "dip_ra"],
                                        "layout.method": ["frequency"]}))
    points, dropped = expand(spec)
    assert [p.spec.method for p in points] == ["dip"]
    assert "hw.flash.layout" in dropped[0][1]


def test_a_sweep_runs_dip_ra_on_a_model(tmp_path):
    from memsim.sweeps.runner import run_sweep
    from memsim.sweeps.spec import sweep_from_dict
    from memsim.sweeps.table import read_results
    from memsim.traces import Trace

    model = save_tiny_checkpoint(tmp_path / "tiny", "llama")
    corpus = tmp_path / "text.txt"
    corpus.write_text(sample_text(2000))
    trace = {"source": "model", "corpus": str(corpus), "windows": 2, "window_len": 16}
    spec = sweep_from_dict({"name": "ra", "base": {"hw": "flagship", "model": str(model),
                                                   "trace": trace},
                            "axes": {"hw.dram.capacity_GB": [0.003], "method": ["dip_ra"],
                                     "dip_ra.request_weight": [0.0, 2.0]}})
    report = run_sweep(spec, tmp_path / "run", workers=1, progress=False, echo=None)
    assert report.num_failed == 0 and report.num_points == 2
    rows = read_results(report.table_path).rows()
    assert sorted(row["dip_ra.request_weight"] for row in rows) == [0.0, 2.0]
    for row in rows:
        params = Trace.load(row["trace_path"]).method_params
        assert params["request_weight"] == row["dip_ra.request_weight"]
        assert params["flash_hw"].endswith("hw.yaml") and params["up_gate_capacity"]
