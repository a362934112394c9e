"""The LRU eviction queue (memsim/cache/_lru_queue.py) steps exactly like LRUPolicy.access."""
from __future__ import annotations

import numpy as np
import pytest

from memsim.cache import LruQueue, lru_queue_access, make_policy


def step_both(masks: np.ndarray, capacity: int, queue_tokens: set[int]) -> None:
    """Step one policy with `access` and a twin through a queue opened afresh at each token
    in `queue_tokens` (so `of` rebuilds the order every time); compare after every token."""
    N = masks.shape[1]
    plain, twin = make_policy("lru", N, capacity), make_policy("lru", N, capacity)
    for t, mask in enumerate(masks):
        hit = plain.access(mask)
        if t in queue_tokens:
            q = LruQueue.of(twin)
            hits = lru_queue_access(q, np.flatnonzero(mask), t)
            q.close(twin, 1)
        else:
            hits = int(np.count_nonzero(twin.access(mask)))
        assert hits == hit.sum(), f"token {t}"
        np.testing.assert_array_equal(twin.resident(), plain.resident(), err_msg=f"token {t}")
        np.testing.assert_array_equal(twin._last_use, plain._last_use)


@pytest.mark.parametrize("seed", range(12))
def test_the_queue_evicts_like_the_policy_with_ties_and_oversize_masks(seed):
    rng = np.random.default_rng(seed)
    T, N = 40, int(rng.integers(1, 90))
    capacity = int(rng.choice([0, 1, N // 3, N // 2, N, N + 5]))
    sizes = rng.integers(0, N + 1, T)  # some masks larger than the capacity
    masks = np.zeros((T, N), bool)
    for t, k in enumerate(sizes):
        masks[t, rng.permutation(N)[:k]] = True
    every_other = set(range(0, T, 2)) if seed % 2 else set(range(T))
    step_both(masks, capacity, every_other)


def test_a_queue_kept_open_over_many_tokens_compacts_and_still_matches():
    rng = np.random.default_rng(7)
    T, N, capacity = 300, 50, 30
    masks = rng.random((T, N)) < 0.3
    plain, twin = make_policy("lru", N, capacity), make_policy("lru", N, capacity)
    q = LruQueue.of(twin)
    for t, mask in enumerate(masks):  # 300 tokens x ~15 entries overflow 4N + 4 slots
        assert lru_queue_access(q, np.flatnonzero(mask), t) == plain.access(mask).sum()
        np.testing.assert_array_equal(q.resident, plain.resident())
    q.close(twin, T)
    assert twin._now == plain._now
    mask = masks[0]  # the policy goes on with `access` where the queue stopped
    np.testing.assert_array_equal(twin.access(mask), plain.access(mask))
    np.testing.assert_array_equal(twin.resident(), plain.resident())
