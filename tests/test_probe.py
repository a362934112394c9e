"""`memsim hw probe`: the presets' flash models reproduce the published measurements, and the
probe prices requests exactly as a simulation does.

The published figures (PowerInfer-2's UFS 4.0 measurements for the flagship, UFS 3.1 figures
for the midrange) live in memsim/hw/probe.py PUBLISHED, each with its source; docs/flash_layout.md
prints the same list (benchmarks/flash_model_tables.py).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from memsim.cli import main
from memsim.hw import load_hw
from memsim.hw.probe import PUBLISHED, probe
from memsim.sim import simulate
from memsim.traces import ModelShape, Trace

PAGE = 4096


@pytest.mark.parametrize("published", PUBLISHED, ids=lambda p: f"{p.preset}: {p.what}")
def test_presets_reproduce_the_published_measurements(published):
    measured = published.measured(load_hw(published.preset))
    assert published.holds(measured), (published.what, measured, published.value)


def test_published_checks_can_fail():
    """A figure 20% off is refused (about), one above the bound too (below)."""
    about = next(p for p in PUBLISHED if p.relation == "about")
    below = next(p for p in PUBLISHED if p.relation == "below")
    assert not about.holds(about.value * 1.2) and not about.holds(about.value * 0.8)
    assert not below.holds(below.value * 1.01) and below.holds(below.value * 0.99)


def test_flagship_random_512k_is_slower_than_sequential_512k():
    hw = load_hw("flagship")
    assert probe(hw, 512, False, 8 * 2**30)[0] < probe(hw, 512, True, None)[0]


def test_flagship_4k_random_at_512mb_span_is_between_the_local_and_far_figures():
    hw = load_hw("flagship")
    mid = probe(hw, 4, False, 512 * 2**20)[0]
    assert probe(hw, 4, False, 8 * 2**30)[0] < mid < probe(hw, 4, False, 2**27)[0]


# ----- the probe prices what a simulation charges ---------------------------------------------

def one_region_model(columns: int) -> ModelShape:
    """One layer whose W_down columns are one 4 KiB page each at 8-bit weights."""
    return ModelShape(name="pages", num_hidden_layers=1, hidden_size=PAGE,
                      intermediate_size=columns, num_attention_heads=1, num_key_value_heads=1,
                      vocab_size=8)


def flagship_reading_pages(locality: str):
    hw = load_hw("flagship")
    return dataclasses.replace(
        hw, flash=dataclasses.replace(hw.flash, locality=locality),
        precision=dataclasses.replace(hw.precision, mlp_bits=8),
        cache=dataclasses.replace(hw.cache, impl="none"),
        dram=dataclasses.replace(hw.dram, capacity_GB=4.0))


@pytest.mark.parametrize("locality", ["region", "token", "file"])
@pytest.mark.parametrize("pages", [1, 2, 3, 4, 5, 8])  # across the floor/bandwidth crossover
def test_a_simulated_transfer_costs_what_the_probe_prices(pages, locality):
    """A token missing `requests` runs of `pages` pages (one unread page apart) in a 128 MiB
    W_down region: its flash time is the probe's price of `requests` such requests within
    the span the locality names (the region, its layer's MLP, or the whole file)."""
    columns, requests = 2**27 // PAGE, 100
    model = one_region_model(columns)
    down = np.zeros((1, 1, columns), bool)
    for i in range(requests):
        down[0, 0, i * (pages + 1):i * (pages + 1) + pages] = True
    trace = Trace(up=np.zeros((1, 1, PAGE), bool), down=down, model=model, method="dip")
    hw = flagship_reading_pages(locality)
    result = simulate(hw, model, trace)
    mlp = 3 * PAGE * columns  # W_up, W_gate, W_down at 8 bits
    span = {"region": 2**27, "token": mlp,
            "file": mlp + model.attention_params_per_layer * 0.5
            + model.embedding_params * 0.5 * (1 if model.tie_word_embeddings else 2)}[locality]
    probed = float(hw.flash.read_time_s(requests * pages * PAGE, requests, sequential=False,
                                        range_bytes=span))
    assert result.per_token["flash_requests"] == [requests]
    assert result.breakdown_s["flash"] == pytest.approx(probed, rel=1e-12)


@pytest.mark.parametrize("overhead_us", [0.0, 2.0, 50.0])
def test_a_request_costs_its_host_overhead_when_that_exceeds_the_iops_floor(overhead_us):
    """Hand-computed on the flagship (244 K IOPS within 128 MiB, 3.5 GB/s random): 100
    requests of 4 KiB (and of 64 KiB) within 1 MiB cost the latency plus 100 times
    max(1 / IOPS, host overhead, bytes / bandwidth)."""
    base = load_hw("flagship")
    hw = dataclasses.replace(base, flash=dataclasses.replace(
        base.flash, host_request_overhead_us=overhead_us))
    for size in (PAGE, 16 * PAGE):
        want = 100e-6 + 100 * max(1 / 244e3, overhead_us * 1e-6, size / 3.5e9)
        got = float(hw.flash.read_time_s(100 * size, 100, sequential=False, range_bytes=2**20))
        assert got == pytest.approx(want, rel=1e-12), (size, overhead_us)


def test_probe_command_prints_every_size_and_pattern(capsys):
    assert main(["hw", "probe", "flagship"]) == 0
    out = capsys.readouterr().out
    assert "| 4 KiB |" in out and "| 1024 KiB |" in out and "sequential" in out


def test_probe_of_an_unknown_preset_is_a_clean_error(capsys):
    assert main(["hw", "probe", "no-such-phone"]) == 2
    assert "no-such-phone" in capsys.readouterr().err


def test_an_unknown_locality_is_refused_naming_the_key_and_the_readings():
    from memsim.core.errors import ConfigError
    from memsim.core.schema import to_plain
    from memsim.hw.config import hw_from_dict

    data = to_plain(load_hw("flagship"))
    data["flash"]["locality"] = "layer"
    with pytest.raises(ConfigError) as err:
        hw_from_dict(data, source="phone.yaml")
    assert "flash.locality" in str(err.value) and "region, token, file" in str(err.value)
