"""Numbers exactly as the docs say them, and the Dask security note. The overflow fraction
applies to every resident read (the embedding row too); DRAM capacity is whole bytes, rounded
as docs/hardware_model.md writes it, and a budget of exactly k columns gives k; the KV
"average length" formula written in the config help, hw_config.md and hardware_model.md,
evaluated, gives what the code uses; CATS calibrates on windows disjoint from the evaluated
ones, for every corpus, and says where they came from."""
from __future__ import annotations

import ast
import dataclasses
import math
import operator
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memsim.hw.config import TimingConfig
from memsim.sim import simulate
from memsim.sim.costs import kv_lengths
from memsim.sim.footprint import Footprint
from memsim.sim.plan import kv_budget_tokens, plan_dram
from memsim.traces import Trace
from tests.badinput import record
from tests.helpers import TINY, make_hw, random_trace

DOCS = Path(__file__).resolve().parents[1] / "docs"


_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
               ast.Div: operator.truediv, ast.Pow: operator.pow}


def _evaluate(formula: str, **names: float) -> float:
    """A formula as a doc writes it (names, numbers, + - * / **, brackets, round()), evaluated
    without eval()."""
    def value(node):
        if isinstance(node, ast.BinOp):
            return _ARITHMETIC[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.Name):
            return names[node.id]
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "round":
            return round(value(node.args[0]))
        raise ValueError(f"not arithmetic: {formula!r}")
    return value(ast.parse(formula, mode="eval").body)


# ---------------------------------------------------------------- overflow
@pytest.mark.parametrize("mode", ["event", "analytic"])
def test_overflow_fraction_applies_to_every_resident_read_including_the_embedding_row(mode):
    """Everything resident, DRAM too small: flash reads per token are o x (attention +
    MLP per layer, LM head, one embedding row), as docs/hardware_model.md section 1 says."""
    T, L = 6, TINY.num_hidden_layers
    dense = Trace(up=np.ones((T, L, TINY.hidden_size), bool),
                  down=np.ones((T, L, TINY.intermediate_size), bool), model=TINY,
                  method="dense")
    roomy = make_hw({"placement": {"mlp": "resident"}})
    static = plan_dram(roomy, TINY, dense.groups(), kv_budget_tokens(roomy, 0, T))
    capacity = static.kv_bytes + 0.4 * static.resident_weight_bytes  # 60 % does not fit
    hw = make_hw({"placement": {"mlp": "resident"}, "dram": {"capacity_GB": capacity / 1e9}})
    fp = Footprint.of(TINY, hw)
    plan = plan_dram(hw, TINY, dense.groups(), kv_budget_tokens(hw, 0, T))
    o = plan.overflow_fraction
    assert 0 < o < 1
    expected = o * (L * (fp.attention_bytes_per_layer + fp.mlp_bytes_per_layer)
                    + fp.lm_head_bytes + fp.embedding_row_bytes)
    result = simulate(hw, TINY, dense, mode=mode)
    assert result.flash_bytes_per_token == pytest.approx(expected, rel=1e-12)


def test_a_streamed_embedding_row_comes_from_flash_and_a_fitting_one_from_dram():
    trace = random_trace(T=4)
    fits = simulate(make_hw(), TINY, trace)
    streamed = simulate(make_hw({"placement": {"embedding": "streamed"}}), TINY, trace)
    row = Footprint.of(TINY, make_hw()).embedding_row_bytes
    assert streamed.flash_bytes_per_token - fits.flash_bytes_per_token == pytest.approx(row)


# ---------------------------------------------------------------- capacity in whole bytes
def _capacity_for_columns(k: int, hw_overrides: dict) -> tuple[float, int]:
    """A capacity (GB, and its whole bytes) whose budget holds k W_down columns per layer
    and a fraction of a column more (equal split: up+gate get 2 shares, down 1)."""
    hw = make_hw(hw_overrides)
    plan = plan_dram(hw, TINY, random_trace(T=2).groups(), 0.0)
    vb = Footprint.of(TINY, hw).vector_bytes(TINY.hidden_size, 1)  # one W_down column
    assert vb == int(vb)
    static = plan.resident_weight_bytes + plan.kv_bytes
    capacity = math.ceil(static) + k * TINY.num_hidden_layers * int(vb) * 3
    return capacity / 1e9, capacity


@pytest.mark.parametrize("bits", [3, 4, 4.5, 8])
def test_a_budget_of_exactly_k_columns_gives_k_columns(bits):
    """Every k up to 40 (float arithmetic gave k - 1 for some of them)."""
    overrides = {"precision": {"mlp_bits": bits}}
    groups = random_trace(T=2).groups()
    for k in range(1, 41):
        capacity_GB, capacity_bytes = _capacity_for_columns(k, overrides)
        hw = make_hw(overrides, {"dram": {"capacity_GB": capacity_GB}})
        assert hw.dram.capacity_bytes == capacity_bytes  # rounded, not floored
        down = plan_dram(hw, TINY, groups, 0.0).capacities[-1]
        ok = bool((down == k).all())
        record("numbers as documented", "clean" if ok else "silent")
        assert ok, (k, bits, down)


def test_capacity_in_GB_becomes_whole_bytes_by_rounding():
    """Hand-computed cases: 1.2e-07 GB is 120 bytes (its float product with 1e9 is just below
    120, so flooring gave 119)."""
    assert make_hw({"dram": {"capacity_GB": 1.2e-07}}).dram.capacity_bytes == 120
    assert make_hw({"dram": {"capacity_GB": 0.03}}).dram.capacity_bytes == 30_000_000


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 64 * 10**9))
def test_a_capacity_of_whole_bytes_written_in_GB_reads_back_as_those_bytes(num_bytes):
    """Any whole number of bytes up to 64 GB, written as GB (n / 1e9 times 1e9 lands just below
    n for many n), is that many bytes, by the code and by the rule docs/hardware_model.md
    writes (`capacity` is whole bytes: `round(capacity_GB · 10^9)`), evaluated."""
    rule = re.search(r"`capacity` is whole bytes: `([^`]+)`",
                     (DOCS / "hardware_model.md").read_text()).group(1)
    capacity_GB = num_bytes / 1e9
    assert make_hw({"dram": {"capacity_GB": capacity_GB}}).dram.capacity_bytes == num_bytes
    assert _evaluate(rule.replace("·", "*").replace("^", "**"),
                     capacity_GB=capacity_GB) == num_bytes


# ---------------------------------------------------------------- KV average length
@pytest.mark.parametrize("P,lengths", [(0, (8,)), (5, (3, 7)), (17, (1, 2, 4))])
def test_the_average_kv_length_is_p_plus_n_plus_one_over_two_for_plan_and_tokens(P, lengths):
    hw = make_hw({"timing": {"kv_length": "average"}})
    n = max(lengths)
    assert kv_budget_tokens(hw, P, n) == P + (n + 1) / 2
    trace = random_trace(T=sum(lengths), prompt_len=P, sequence_lengths=lengths)
    expected = np.concatenate([np.full(m, P + (m + 1) / 2) for m in lengths])
    assert np.array_equal(kv_lengths(hw, trace), expected)
    actual = make_hw({"timing": {"kv_length": "actual"}})
    assert kv_budget_tokens(actual, P, n) == P + n


def _average_kv_formulas() -> dict[str, str]:
    """The `average` KV-length formula as each place writes it, cut out of its sentence."""
    help_text = next(f.metadata["help"] for f in dataclasses.fields(TimingConfig)
                     if f.name == "kv_length")
    after_prompt = r"prompt of P, ([^:]+):"  # "... after a prompt of P, <formula>: the ..."
    table_row = next(line for line in (DOCS / "hw_config.md").read_text().splitlines()
                     if line.startswith("| timing.kv_length |"))
    model_doc = (DOCS / "hardware_model.md").read_text()
    return {"config help": re.search(after_prompt, help_text).group(1),
            "hw_config.md": re.search(after_prompt, table_row).group(1),
            "hardware_model.md": re.search(r"or `([^`]+)` \(`average`", model_doc).group(1)}


@pytest.mark.parametrize("P,n", [(0, 1), (0, 8), (5, 7), (17, 4), (100, 255)])
def test_the_documented_average_kv_formula_computes_what_the_code_uses(P, n):
    """The formula each doc writes, evaluated, equals the code's: a doc that drifts from the
    code (or code that drifts from the docs) fails here."""
    hw = make_hw({"timing": {"kv_length": "average"}})
    priced = kv_lengths(hw, random_trace(T=n, prompt_len=P, sequence_lengths=(n,)))
    for where, formula in _average_kv_formulas().items():
        documented = _evaluate(formula, P=P, n=n)
        assert documented == kv_budget_tokens(hw, P, n), (where, formula, "DRAM plan")
        assert np.all(priced == documented), (where, formula, "per-token pricing")


# ---------------------------------------------------------------- CATS calibration
class _WordTokenizer:
    """One token per word: enough for window arithmetic."""

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [list(range(len(t.split()))) for t in texts]}


@settings(max_examples=60, deadline=None)
@given(num_docs=st.integers(1, 3), words=st.integers(40, 400), window_len=st.integers(2, 24),
       stride=st.integers(1, 24), evaluated=st.integers(1, 6), calibration=st.integers(1, 6),
       seed=st.integers(0, 100))
def test_calibration_windows_never_share_a_token_with_evaluated_windows(
        num_docs, words, window_len, stride, evaluated, calibration, seed):
    from memsim.core.errors import ConfigError
    from workloads.corpus import Corpus, make_windows

    corpus = Corpus("one.txt", {"all": [(f"doc{i}", "w " * (words + 37 * i))
                                        for i in range(num_docs)]})
    tok = _WordTokenizer()
    try:
        scored = make_windows(corpus, "all", tok, window_len, evaluated, seed, stride)
        calib = make_windows(corpus, "all", tok, window_len, calibration, seed + 1, stride,
                             exclude=scored)
    except ConfigError as exc:  # too few windows: said, not silently overlapping
        assert "windows" in str(exc)
        return
    for doc, start in calib.starts:
        for other, begin in scored.starts:
            assert doc != other or start + window_len <= begin or begin + window_len <= start


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    pytest.importorskip("torch")
    from workloads.model import load_model
    from workloads.testing import sample_text, save_tiny_checkpoint

    root = tmp_path_factory.mktemp("cats")
    (root / "one.txt").write_text(sample_text(1200, seed=4))
    (root / "many").mkdir()
    for i in range(3):
        (root / "many" / f"part{i}.txt").write_text(sample_text(500, seed=10 + i))
    return load_model(save_tiny_checkpoint(root / "llama", "llama")), root


@pytest.mark.parametrize("corpus", ["one.txt", "many"])
def test_cats_calibrates_on_windows_disjoint_from_the_evaluated_ones(tiny_model, corpus):
    import workloads

    loaded, root = tiny_model
    result = workloads.evaluate(loaded, "cats", {"density": 0.6}, corpus=str(root / corpus),
                                windows=4, window_len=16, stride=8, calibration_windows=4,
                                seed=0, progress=False)
    config = result.config
    calib = config["calibration"]
    assert calib["split"] == config["split"] == "all" and calib["is_eval_split"]
    assert "share no token with an evaluated window" in calib["source"]
    for doc, start in calib["windows"]:
        for other, begin in config["windows"]:
            assert doc != other or start + 16 <= begin or begin + 16 <= start
    assert math.isfinite(result.perplexity)


# ---------------------------------------------------------------- the Dask security note
def test_the_sweeps_docs_warn_that_a_dask_scheduler_runs_anyones_code():
    text = (DOCS / "sweeps.md").read_text()
    note = text[text.index("### Security"):]
    for needle in ("no authentication", "arbitrary", "127.0.0.1", "ssh -N -L", "--tls-ca-file",
                   "REQUIRE_ENCRYPTION"):
        assert needle in note, needle
    # every command line that starts a scheduler on a non-loopback host is in that section
    before = text[:text.index("### Security")]
    assert "dask scheduler --host 10." not in before and "0.0.0.0" not in before
