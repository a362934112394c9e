"""Over-read admission (memsim/sim/overread.py): the compiled LRU replay gives exactly the
counts and misses of the stepwise LRUPolicy replayed token by token (the reference)."""
from __future__ import annotations

import numpy as np
import pytest

from memsim.cache.lru import LRUPolicy
from memsim.sim.flash_reads import MAX_GAP_UNITS, ReadGeometry
from memsim.sim.overread import replay_admitting_overread, stepwise_admitting_overread
from memsim.traces import MaskGroup
from tests.helpers import reuse_masks

PAGE_BITS = 4096 * 8


def geometry(rng, N: int, L: int, slot_bytes: int, gap_units: int, layout: bool):
    pos = np.stack([rng.permutation(N) for _ in range(L)]).astype(np.int32)
    empty = np.zeros((0, 0), np.int32)
    return ReadGeometry(N, slot_bytes * 8, 1, PAGE_BITS, gap_units, pos if layout else empty,
                        np.argsort(pos, axis=1).astype(np.int32) if layout else empty,
                        4.1e-6, 1.17e-6, 1e-4, True, False)


def assert_same(a, b) -> None:
    for name in ("hits", "fills", "resident"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for x, y in zip(a.miss_words, b.miss_words):
        assert np.array_equal(x, y), "miss_words"


@pytest.mark.parametrize("seed", range(6))
def test_compiled_lru_admission_equals_the_stepwise_replay(seed):
    rng = np.random.default_rng(seed)
    T, L = 14, 2
    lengths = (5, 9) if seed % 2 else (T,)  # sequences start cold
    groups, caps, geoms = [], [], []
    for g, (N, slot_bytes) in enumerate(((int(rng.integers(40, 300)), 1000),
                                         (int(rng.integers(40, 300)),
                                          int(rng.choice([288, 2560, 4096, 6000, 17920]))))):
        masks = reuse_masks(rng, T, L, N, rng.uniform(0.05, 0.6), rng.uniform(0.3, 0.9))
        groups.append(MaskGroup.from_mask(f"g{g}", masks, 8, 1, "up"))
        caps.append(rng.integers(0, N + 5, L))  # none, some, more than the masks, all
        gap = int(rng.choice([0, 1, 3, 70, MAX_GAP_UNITS]))
        geoms.append(geometry(rng, N, L, slot_bytes, gap, layout=bool(rng.random() < 0.5)))
    fast = replay_admitting_overread(LRUPolicy, groups, caps, lengths, geoms)
    slow = stepwise_admitting_overread(LRUPolicy, groups, caps, lengths, geoms)
    assert_same(fast, slow)
    assert fast.fills.sum() > 0


def test_admission_changes_the_lru_replay():
    """Not a no-op: with pages holding four columns, arrived columns become hits later."""
    rng = np.random.default_rng(3)
    masks = reuse_masks(rng, 10, 1, 64, 0.15, 0.2)
    group = MaskGroup.from_mask("down", masks, 8, 1, "down")
    geom = geometry(rng, 64, 1, 1000, 0, layout=False)
    admitted = replay_admitting_overread(LRUPolicy, [group], [np.array([40])], (10,), [geom])
    plain = LRUPolicy.run_batch([group.bits], [np.array([40])], (10,))
    assert admitted.hits.sum() > plain.hits.sum()
