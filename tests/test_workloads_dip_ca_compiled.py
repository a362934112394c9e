"""DIP-CA's compiled LRU walk (workloads/masks/_cache_aware.py) gives exactly the stepwise
loop's masks, hits and cache state: ties at the cut, signed zeros, infinities, k >= N,
empty and oversize caches, walks split over many calls."""
from __future__ import annotations

import numpy as np
import pytest

from memsim.cache import make_policy
from workloads.masks import _cache_aware, dip_ca
from workloads.masks.dip_ca import cache_aware_topk, stepwise_cache_aware_topk


def scores_with_ties(rng: np.random.Generator, T: int, N: int, dtype) -> np.ndarray:
    """(T, N) scores drawn from few values (ties everywhere), some negative, zero or inf."""
    kind = rng.integers(4)
    if kind == 0:
        return rng.standard_normal((T, N)).astype(dtype)  # almost no ties
    if kind == 1:
        return rng.integers(0, 4, (T, N)).astype(dtype)  # heavy ties
    values = np.array([0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, 3.0], dtype)
    return rng.choice(values[: 4 if kind == 2 else 7], (T, N))


@pytest.fixture(autouse=True)
def stepwise_calls(monkeypatch) -> list:
    """Counts the calls cache_aware_topk hands to the stepwise loop."""
    calls = []

    def counted(*args):
        calls.append(1)
        return stepwise_cache_aware_topk(*args)

    monkeypatch.setattr(dip_ca, "stepwise_cache_aware_topk", counted)
    return calls


def walk_both(scores, low, k, capacity, splits, policy_name="lru"):
    """Run the walk in pieces (`splits`: token offsets) on twin policies; compare all."""
    N = scores.shape[1]
    fast, slow = make_policy(policy_name, N, capacity), make_policy(policy_name, N, capacity)
    for lo, hi in zip(splits[:-1], splits[1:]):
        got = cache_aware_topk(scores[lo:hi], low[lo:hi], k, fast)
        want = stepwise_cache_aware_topk(scores[lo:hi], low[lo:hi], k, slow)
        np.testing.assert_array_equal(got[0], want[0], err_msg=f"masks of tokens {lo}:{hi}")
        np.testing.assert_array_equal(got[1], want[1], err_msg=f"hits of tokens {lo}:{hi}")
        np.testing.assert_array_equal(fast.resident(), slow.resident())
        assert (fast._last_use == slow._last_use).all() and fast._now == slow._now
    return fast


@pytest.mark.parametrize("seed", range(30))
def test_compiled_lru_walk_equals_the_stepwise_loop(seed, stepwise_calls):
    rng = np.random.default_rng(seed)
    T, N = int(rng.integers(1, 40)), int(rng.integers(1, 80 if seed % 3 else 700))
    dtype = np.float32 if seed % 2 else np.float64
    scores = scores_with_ties(rng, T, N, dtype)
    gamma = rng.choice([0.0, 0.3, 1.0])  # 0: every uncached score ties at 0
    with np.errstate(invalid="ignore"):  # inf * 0, replaced: no NaN reaches the walk
        low = np.where(np.isinf(scores), scores, scores * dtype(gamma)).astype(dtype)
    k = int(rng.integers(1, N + 2))  # k >= N keeps every column
    capacity = int(rng.choice([0, 1, N // 2, N, N + 3]))
    cuts = np.sort(rng.choice(np.arange(1, T), min(T - 1, 3), replace=False)) if T > 1 else []
    walk_both(scores, low, k, capacity, [0, *cuts, T])
    assert not stepwise_calls  # every piece took the compiled walk


def test_token_by_token_calls_carry_the_cache_between_calls():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 3, (50, 64)).astype(np.float32)
    policy = walk_both(scores, scores * np.float32(0.2), 16, 24, list(range(51)))
    assert policy.resident().sum() == 24


def test_nan_scores_and_other_policies_take_the_stepwise_loop(stepwise_calls):
    scores = np.random.default_rng(2).random((6, 20)).astype(np.float32)
    scores[2, 5] = np.nan
    walk_both(scores, scores * np.float32(0.5), 7, 10, [0, 6])
    walk_both(scores[:2], scores[:2] * np.float32(0.5), 7, 10, [0, 2], policy_name="lfu")
    assert len(stepwise_calls) == 2


@pytest.mark.parametrize("kind", ["normal", "few values", "half zeros", "sorted", "reversed",
                                  "all equal"])
def test_selection_finds_the_kth_key_whatever_the_order_and_ties(kind):
    rng = np.random.default_rng(len(kind))
    for n in (1, 2, 63, 64, 65, 200, 1536, 3000):
        values = {"normal": rng.standard_normal(n), "few values": rng.integers(0, 3, n) * 1.0,
                  "half zeros": np.abs(rng.standard_normal(n)) * (rng.random(n) < 0.5),
                  "sorted": np.sort(rng.standard_normal(n)),
                  "reversed": -np.sort(rng.standard_normal(n)), "all equal": np.ones(n)}[kind]
        keys = np.empty(n, np.uint64)
        _cache_aware._order_keys(values.view(np.uint64), keys)
        assert (np.argsort(keys, kind="stable") == np.argsort(values, kind="stable")).all()
        scratch = np.empty(n, np.uint64)
        for rank in sorted({0, n // 3, n // 2, n - 1}):
            assert _cache_aware._kth_smallest(keys, rank, scratch) == np.sort(keys)[rank]
