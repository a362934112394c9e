"""Flash layouts (memsim/hw/layouts/) and over-read admission (memsim/sim/overread.py)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from memsim.cli import main
from memsim.core.errors import ConfigError
from memsim.hw.layouts import Layout, build_layout, load_layout
from memsim.sim import simulate
from memsim.traces import ModelShape, Trace
from tests.helpers import TINY, random_trace
from tests.test_flash_reads import PAGE, down_trace, hw_for, model_with_down_slot


def _permuted_layout(trace: Trace, seed: int) -> Layout:
    """A random permutation per layer for every group `trace` reads."""
    rng = np.random.default_rng(seed)
    return Layout(trace.model, {g.name: np.stack([rng.permutation(g.num_columns)
                                                  for _ in range(trace.num_layers)])
                                .astype(np.int32) for g in trace.groups()}, "random")


def _into_slots(trace: Trace, layout: Layout) -> Trace:
    """The trace relabelled so that column c of layer l becomes column pos[l, c]: read in model
    order it asks for exactly the slots the layout stores the original columns in."""
    def moved(mask: np.ndarray, order: np.ndarray) -> np.ndarray:
        return np.take_along_axis(mask, order[None], axis=2)  # slot s <- column order[l, s]

    return Trace(up=moved(trace.up, layout.orders["up_gate"]),
                 down=moved(trace.down, layout.orders["down"]), model=trace.model,
                 method=trace.method)


@pytest.mark.parametrize("gap_KiB", [0, 4])
def test_a_layout_reads_what_model_order_reads_of_the_trace_moved_into_its_slots(tmp_path,
                                                                                gap_KiB):
    """An independent reference: moving the masks into slot order by hand must give the same
    requests, bytes and times as the simulator applying the layout (no cache: every used
    column is read, so only placement decides; 8-bit weights: a W_down column is 1 KiB)."""
    model = ModelShape(name="wide", num_hidden_layers=2, hidden_size=1024, intermediate_size=96,
                       num_attention_heads=1, num_key_value_heads=1, vocab_size=8)
    trace = random_trace(T=6, density=0.3, seed=3, model=model)  # W_down column: 1 KiB
    layout = _permuted_layout(trace, seed=4)
    path = layout.save(tmp_path / "random.npz")
    hw = hw_for({"merge_gap_KiB": gap_KiB})
    with_layout = dataclasses.replace(hw, flash=dataclasses.replace(hw.flash, layout=str(path)))
    applied = simulate(with_layout, None, trace)
    by_hand = simulate(hw, None, _into_slots(trace, layout))
    plain = simulate(hw, None, trace)
    for key in ("flash_requests", "flash_device_bytes", "time_s"):
        assert applied.per_token[key] == by_hand.per_token[key], key
    assert applied.per_token["flash_requests"] != plain.per_token["flash_requests"]  # it moves


def test_a_layout_that_orders_none_of_a_group_the_trace_reads_is_an_error_naming_it(tmp_path):
    """A DIP layout (up_gate, down) used on a CATS trace (up_rows, gate, down) or a predictor
    trace (neurons) would otherwise leave those groups in model order without a word."""
    dip = random_trace(T=4, seed=1)
    path = build_layout(dip, "frequency").save(tmp_path / "dip_layout.npz")
    I, H, L = TINY.intermediate_size, TINY.hidden_size, TINY.num_hidden_layers
    rng = np.random.default_rng(0)
    cats = Trace(up_rows=rng.random((4, L, I)) < 0.5, gate=np.ones((4, L, H), bool),
                 down=rng.random((4, L, I)) < 0.5, model=TINY, method="cats")
    predictor = Trace(neurons=rng.random((4, L, I)) < 0.5, model=TINY, method="predictor")
    hw = hw_for()
    hw = dataclasses.replace(hw, flash=dataclasses.replace(hw.flash, layout=str(path)))
    for trace, group in ((cats, "up_rows"), (predictor, "neurons")):
        with pytest.raises(ConfigError, match=f"no order for mask group '{group}'") as err:
            simulate(hw, None, trace)
        assert err.value.source == str(path)
    cats_path = cats.save(tmp_path / "cats.npz")
    assert main(["simulate", "--hw", "flagship", "--model", str(_config(tmp_path)),
                 "--trace", str(cats_path), "--layout", str(path)]) == 2


def test_frequency_layout_puts_the_most_used_columns_first():
    masks = np.zeros((4, TINY.num_hidden_layers, TINY.intermediate_size), bool)
    masks[:, :, 7] = True  # used by every token
    masks[:2, :, 3] = True  # by two
    trace = Trace(up=np.ones((4, TINY.num_hidden_layers, TINY.hidden_size), bool), down=masks,
                  model=TINY)
    order = build_layout(trace, "frequency").orders["down"]
    assert order[0, 0] == 7 and order[0, 1] == 3 and sorted(order[0]) == list(range(160))


def test_coactivation_layout_places_columns_that_fire_together_side_by_side():
    rng = np.random.default_rng(0)
    T, N = 64, 40
    pairs = rng.permutation(N).reshape(-1, 2)  # 20 pairs, each always used together
    down = np.zeros((T, 1, N), bool)
    for t in range(T):
        for a, b in pairs[rng.random(len(pairs)) < 0.3]:
            down[t, 0, [a, b]] = True
    model = ModelShape(name="pairs", num_hidden_layers=1, hidden_size=8, intermediate_size=N,
                       num_attention_heads=1, num_key_value_heads=1, vocab_size=8)
    trace = Trace(up=np.ones((T, 1, 8), bool), down=down, model=model)
    order = list(build_layout(trace, "coactivation").orders["down"][0])
    adjacent = sum(abs(order.index(a) - order.index(b)) == 1 for a, b in pairs)
    assert adjacent >= 15  # greedy joins most pairs; model order joins almost none
    assert build_layout(trace, "coactivation").orders["down"].tolist() == [order]  # determinism


def test_a_layout_is_checked_on_load_and_against_the_model(tmp_path):
    good = build_layout(random_trace(T=3), "frequency")
    bad = dict(good.orders)
    bad["down"] = bad["down"].copy()
    bad["down"][0, 0] = bad["down"][0, 1]  # a duplicate slot: not a permutation
    with pytest.raises(ConfigError, match="permutation"):
        Layout(TINY, bad, "x")
    with pytest.raises(ConfigError, match="shape"):
        Layout(TINY, {"down": good.orders["down"][:, :10]}, "x")
    other = ModelShape(name="other", num_hidden_layers=2, hidden_size=64, intermediate_size=96,
                       num_attention_heads=4, num_key_value_heads=2, vocab_size=100)
    path = good.save(tmp_path / "tiny.npz")
    with pytest.raises(ConfigError, match="built for tiny"):
        load_layout(path).check_model(other, source=str(path))
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ConfigError, match="junk.npz"):
        load_layout(tmp_path / "junk.npz")
    trace_path = random_trace(T=3).save(tmp_path / "a_trace.npz")  # the same container
    with pytest.raises(ConfigError, match="not a layout file"):
        load_layout(trace_path)


def test_layout_build_and_simulate_with_it_from_the_command_line(tmp_path, capsys):
    trace_path = random_trace(T=8, seed=1).save(tmp_path / "cal.npz")
    out = tmp_path / "lay.npz"
    assert main(["layout", "build", "--trace", str(trace_path), "--method", "coactivation",
                 "--out", str(out)]) == 0
    assert main(["simulate", "--hw", "flagship", "--model", str(_config(tmp_path)),
                 "--trace", str(trace_path), "--layout", str(out)]) == 0
    assert "flash requests/token" in capsys.readouterr().out
    assert main(["layout", "build", "--trace", str(trace_path), "--method", "nope",
                 "--out", str(out)]) == 2
    assert "coactivation, frequency, identity" in capsys.readouterr().err


def _config(tmp_path):
    import json
    path = tmp_path / "config.json"
    path.write_text(json.dumps({k: getattr(TINY, k) for k in (
        "num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
        "num_key_value_heads", "vocab_size")}))
    return path


def test_overread_columns_enter_the_cache_only_when_admission_is_on():
    model = model_with_down_slot(1000, columns=32)  # four whole slots per 4 KiB page
    trace = down_trace(model, (0,), (1,))
    off = simulate(hw_for(impl="lru"), None, trace)
    on = simulate(hw_for(impl="lru", admit_overread=True), None, trace)
    # token 0 reads page 0: columns 0..3 arrive (slot 4 straddles into page 1)
    assert off.per_token["flash_requests"] == [1, 1]
    assert on.per_token["flash_requests"] == [1, 0]  # column 1 arrived with column 0
    assert on.hit_rate == 0.5 and off.hit_rate == 0.0
    assert on.dram_write_bytes_per_token > off.dram_write_bytes_per_token  # the fills
    assert on.flash_device_bytes_total == PAGE  # no extra flash read


@pytest.mark.parametrize("name", ["lru", "lfu", "belady"])
def test_admitted_extra_columns_never_displace_the_token_s_own(name):
    from memsim.cache import make_policy
    rng = np.random.default_rng(7)
    seq = rng.random((12, 50)) < 0.3
    extras = rng.random((12, 50)) < 0.3
    policy = make_policy(name, 50, 15, future=seq)
    for mask, extra in zip(seq, extras):
        before = policy.resident().copy()
        policy.access(mask, extra=extra)
        after = policy.resident()
        assert after.sum() <= 15
        if mask.sum() <= 15:
            assert (after[mask]).all()  # the token's columns all stay
        assert not (after & ~before & ~mask & ~extra).any()  # nothing else comes in
