"""The co-activation layout's fast greedy path (memsim/hw/layouts/coactivation.py) gives the
plain scan's order exactly: the same tie rules, on masks full of ties."""
from __future__ import annotations

import numpy as np
import pytest

from memsim.hw.layouts import build_layout
from memsim.hw.layouts.coactivation import (
    CHUNK,
    coactivation_order,
    coactivation_order_reference,
)
from memsim.traces.bits import num_words, pack_words
from tests.helpers import random_trace


def packed(used: np.ndarray) -> np.ndarray:
    """(T, N) bool -> (T, W) words (T may be 0)."""
    if used.shape[0] == 0:
        return np.zeros((0, num_words(used.shape[1])), np.uint64)
    return pack_words(used)


def test_greedy_path_follows_the_most_shared_then_most_used_then_lowest_index():
    tokens = [{0, 1, 2, 3}, {0, 1}, {0, 1, 2}, {2, 3}, {0, 1, 2}, {0, 1, 3}]
    used = np.array([[t in col for col in tokens] for t in range(4)])
    # start at 0 (most used); 2, 4, 5 share 3 tokens with it and are used 3 times: lowest
    # index 2; then 4 (shares 3); from 4, columns 1 and 5 share 2: 5 is more used; then 1, 3
    expected = [0, 2, 4, 5, 1, 3]
    assert coactivation_order_reference(packed(used), 6).tolist() == expected
    assert coactivation_order(packed(used), 6).tolist() == expected


def masks_with_ties(seed: int) -> np.ndarray:
    """(T, N) random masks of a random shape, often with duplicated, empty or full columns."""
    rng = np.random.default_rng(seed)
    T, N = int(rng.integers(0, 150)), int(rng.integers(1, 3 * CHUNK + 7))
    used = rng.random((T, N)) < rng.choice([0.02, 0.3, 0.5, 0.9])
    if seed % 3 == 0 and N > 1:  # two copies of every column: ties on shared and uses
        used[:, N // 2:] = used[:, : N - N // 2]
    if seed % 4 == 0:
        used[:, rng.random(N) < 0.2] = False  # never used
    if seed % 5 == 0:
        used[:, rng.random(N) < 0.2] = True  # always used
    return used


@pytest.mark.parametrize("seed", range(40))
def test_fast_greedy_path_equals_the_plain_scan_on_masks_full_of_ties(seed):
    used = masks_with_ties(seed)
    fast = coactivation_order(packed(used), used.shape[1])
    reference = coactivation_order_reference(packed(used), used.shape[1])
    assert fast.dtype == reference.dtype == np.int32
    np.testing.assert_array_equal(fast, reference)


@pytest.mark.parametrize("T", [0, 1, 2])
def test_few_tokens_tie_almost_every_column(T):
    used = np.random.default_rng(T).random((T, 2 * CHUNK + 3)) < 0.5
    np.testing.assert_array_equal(coactivation_order(packed(used), used.shape[1]),
                                  coactivation_order_reference(packed(used), used.shape[1]))


def test_a_built_layout_holds_the_plain_scans_order_for_every_group_and_layer():
    trace = random_trace(T=40, seed=5)
    layout = build_layout(trace, "coactivation")
    for group in trace.groups():
        for layer in range(trace.num_layers):
            words = np.ascontiguousarray(group.bits.words[:, layer])
            np.testing.assert_array_equal(
                layout.orders[group.name][layer],
                coactivation_order_reference(words, group.num_columns))
