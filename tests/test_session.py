"""Chat sessions (memsim/sim/session.py): turns, think time, the context the KV cache keeps,
the trace looped, the session's clock; bad session files name the key."""
from __future__ import annotations

import numpy as np
import pytest

from memsim.core.errors import ConfigError
from memsim.sim.session import ContextWindow, load_session, token_rows
from memsim.sim.simulator import simulate
from tests.helpers import REFERENCE, TINY, make_hw, random_trace

# Everything resident, compute free, writes free: a token is its DRAM bytes / 60 GB/s.
DRAM_ONLY = (REFERENCE, {"placement": {"mlp": "resident"}, "dram": {"capacity_GB": 1.0}})
CHAT = {"name": "chat", "turns": [{"prompt_tokens": 30, "answer_tokens": 7, "think_s": 0.0},
                                  {"prompt_tokens": 11, "answer_tokens": 5, "think_s": 2.5}],
        "repeat": 2, "max_context_tokens": 80}


def _token_s(kv_len):
    """Hand-computed decode step of TINY with every weight in DRAM: all layers' weights, the
    embedding row and LM head (4-bit), and the KV read (16-bit), at 60 GB/s."""
    m = TINY
    weights = m.num_hidden_layers * (m.attention_params_per_layer + m.mlp_params_per_layer)
    static = (weights + m.hidden_size + m.embedding_params) * 0.5
    kv = np.asarray(kv_len) * m.num_hidden_layers * m.kv_values_per_token_per_layer * 2
    return (static + kv) / 60e9


def test_session_plays_turns_with_the_context_the_kv_cache_keeps():
    """Turn lengths 30+7, 11+5, 30+7, 11+5 with an 80-token cap: contexts 0, 37, 53 -> 80
    would overflow (53 + 37 > 80): the oldest are dropped to 43, then 80 -> 64."""
    r = simulate(make_hw(*DRAM_ONLY), TINY, random_trace(T=9, seed=4, density=1.0), session=CHAT)
    contexts = [0, 37, 80 - 37, 80 - 16]
    kv = np.concatenate([c + p + np.arange(1, a + 1) for c, (p, a) in
                         zip(contexts, [(30, 7), (11, 5), (30, 7), (11, 5)])])
    # a token's time is end - start on a clock at seconds (think time): ~1e-16 s of rounding
    np.testing.assert_allclose(r.per_token["time_s"], _token_s(kv), rtol=1e-9)
    assert r.num_tokens == 24 and r.num_sequences == 4 and len(r.ttft_per_turn_s) == 4
    assert r.session == "chat"


def test_session_clock_is_think_plus_prefills_plus_answers():
    r = simulate(make_hw(*DRAM_ONLY), TINY, random_trace(T=9, seed=4, density=1.0), session=CHAT)
    expected = 2 * 2.5 + sum(r.ttft_per_turn_s) + sum(r.per_token["time_s"])
    assert r.simulated_time_s == pytest.approx(expected, rel=1e-12)
    starts = np.asarray(r.per_token["start_s"])
    assert starts[7] - (starts[6] + r.per_token["time_s"][6]) == pytest.approx(
        2.5 + r.ttft_per_turn_s[1], rel=1e-9)  # the second answer waits for think + prefill


def test_session_of_a_duration_ends_with_the_turn_in_progress():
    session = {"turns": [{"prompt_tokens": 4, "answer_tokens": 3, "think_s": 1.0}],
               "duration_s": 4.5, "max_context_tokens": 64}
    r = simulate(make_hw(*DRAM_ONLY), TINY, random_trace(T=9, seed=4, density=1.0), session=session)
    assert len(r.ttft_per_turn_s) == 5  # turns start at ~0, 1, 2, 3, 4 (< 4.5); the 6th not
    assert r.simulated_time_s > 4.5


def test_answers_loop_the_trace_then_replay_its_second_pass():
    np.testing.assert_array_equal(token_rows(0, 11, 4), [0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6])
    np.testing.assert_array_equal(token_rows(6, 3, 4), [6, 7, 4])


def test_context_window_drops_the_oldest_tokens():
    w = ContextWindow(100)
    assert w.admit(40, 20) == 0
    w.close(40, 20)
    assert w.admit(30, 20) == 50  # 60 kept would need 110
    np.testing.assert_array_equal(w.kv_lengths(30, 3), [81, 82, 83])


@pytest.mark.parametrize("data,key", [
    ({}, "turns"),
    ({"turns": []}, "turns"),
    ({"turns": [{"prompt_tokens": 0, "answer_tokens": 5}]}, "turns[0].prompt_tokens"),
    ({"turns": [{"prompt_tokens": 5, "answer_tokens": 5, "think_s": -1}]}, "turns[0].think_s"),
    ({"turns": [{"prompt_tokens": 5, "answer_tokens": 5}], "pause_s": 3}, "pause_s"),
    ({"turns": [{"prompt_tokens": 50, "answer_tokens": 60}], "max_context_tokens": 100},
     "turns[0]"),
    ({"turns": [{"prompt_tokens": 5, "answer_tokens": 5}], "duration_s": 0}, "duration_s"),
])
def test_bad_sessions_name_the_key(data, key):
    with pytest.raises(ConfigError) as err:
        load_session(data)
    assert err.value.key_path == key


def test_a_session_file_is_read_strictly(tmp_path):
    path = tmp_path / "chat.yaml"
    path.write_text("turns:\n  - {prompt_tokens: 5, answer_tokens: 5}\nrepeat: 2\nrepeat: 3\n")
    with pytest.raises(ConfigError, match="twice"):
        load_session(path)


def test_analytic_mode_has_no_clock_for_a_session():
    with pytest.raises(ConfigError) as err:
        simulate(make_hw(*DRAM_ONLY), TINY, random_trace(T=4), mode="analytic", session=CHAT)
    assert err.value.key_path == "mode"


def test_simulate_command_runs_a_session_with_heat_and_an_app(tmp_path, capfd):
    import json

    from memsim.cli import main
    from memsim.sim.result import read_per_token_csv

    trace = random_trace(T=6, seed=2)
    trace.save(tmp_path / "t.npz")
    (tmp_path / "chat.yaml").write_text(
        "name: chat\nturns:\n  - {prompt_tokens: 8, answer_tokens: 4, think_s: 1.0}\n"
        "repeat: 3\nmax_context_tokens: 64\n")
    argv = ["simulate", "--hw", "flagship", "--trace", str(tmp_path / "t.npz"),
            "--session", str(tmp_path / "chat.yaml"), "--thermal", "flagship_phone",
            "--background", "camera_preview", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    out = capfd.readouterr().out
    assert "sustained tokens/s" in out and "camera_preview" in out
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert len(result["ttft_per_turn_s"]) == 3 and result["session"] == "chat"
    columns = read_per_token_csv(tmp_path / "out" / "per_token.csv")
    assert {"start_s", "end_s", "temperature_C", "speed_factor"} <= set(columns)


@pytest.mark.parametrize("flag,value,message", [
    ("--session", "missing.yaml", "session file"),
    ("--thermal", "lukewarm", "no thermal preset"),
    ("--background", "camera", "no background preset"),
])
def test_simulate_command_names_a_bad_scenario_flag(tmp_path, capfd, flag, value, message):
    from memsim.cli import main

    random_trace(T=4).save(tmp_path / "t.npz")
    argv = ["simulate", "--hw", "flagship", "--trace", str(tmp_path / "t.npz"), flag,
            str(tmp_path / value) if flag == "--session" else value]
    assert main(argv) != 0
    err = capfd.readouterr().err
    assert message in err and err.count("\n") == 1
