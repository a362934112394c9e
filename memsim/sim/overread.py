"""Cache replay with over-read admission (`cache.admit_overread: true`).

A flash read brings whole pages, and a merged request the gap between two runs: columns
nobody asked for arrive in DRAM anyway. With admission on, they are offered to the cache
under the policy's own ranking (memsim/cache/base.py `access(mask, extra)`): LRU files them
as used just below the token's own columns, LFU by their counts so far, Belady by their next
use; the token's requested columns are never displaced. Each admitted column is a fill (a
DRAM write), never an extra flash read. Which columns arrive depends on the misses, which
depend on the cache, so the replay goes token by token. LRU runs compiled (speed shortcut:
memsim/sim/_overread_lru.py, a fraction of a second for a Phi-3-Medium trace); the other
policies replay their stepwise Python (seconds), the reference the compiled LRU is checked
against (tests/test_overread.py).
"""
from __future__ import annotations

import numpy as np

from memsim.cache import CacheOutcome
from memsim.cache.lru import LRUPolicy
from memsim.sim.flash_reads import ReadGeometry, arrived_columns
from memsim.traces import MaskGroup
from memsim.traces.bits import pack_words, unpack_words


def replay_admitting_overread(policy_cls, groups: list[MaskGroup], capacities,
                              lengths: tuple[int, ...],
                              geometries: list[ReadGeometry]) -> CacheOutcome:
    """Like `policy_cls.run_batch`, with over-read columns offered to the cache."""
    if policy_cls is LRUPolicy:
        return _lru_admitting_overread(groups, capacities, lengths, geometries)
    return stepwise_admitting_overread(policy_cls, groups, capacities, lengths, geometries)


def _lru_admitting_overread(groups, capacities, lengths, geometries) -> CacheOutcome:
    """The compiled LRU replay (memsim/sim/_overread_lru.py), group by group."""
    from memsim.sim._overread_lru import lru_admit_group  # compiled on first use

    T, L = groups[0].bits.words.shape[:2]
    lengths = np.array(lengths or (T,), np.int64)
    hits, fills, resident = (np.zeros((T, len(groups), L), np.int64) for _ in range(3))
    misses = []
    for g, (group, caps, geom) in enumerate(zip(groups, capacities, geometries)):
        words = np.ascontiguousarray(group.bits.words)
        capacity = np.minimum(np.asarray(caps, np.int64), group.num_columns)
        counts = [np.zeros((T, L), np.int64) for _ in range(3)]
        missed = np.empty_like(words)
        lru_admit_group(words, capacity, lengths, geom.pos, geom.order, geom.num_columns,
                        geom.slot_bits, geom.unit_bits, geom.gap_units, *geom.plan_arrays(),
                        *counts, missed)
        hits[:, g], fills[:, g], resident[:, g] = counts
        misses.append(missed)
    return CacheOutcome(hits, fills, resident, tuple(misses))


def stepwise_admitting_overread(policy_cls, groups: list[MaskGroup], capacities,
                                lengths: tuple[int, ...],
                                geometries: list[ReadGeometry]) -> CacheOutcome:
    """The reference replay: the stepwise policy, token by token, any policy."""
    T, L = groups[0].bits.words.shape[:2]
    hits, fills, resident = (np.zeros((T, len(groups), L), np.int64) for _ in range(3))
    misses = []
    for g, (group, caps, geom) in enumerate(zip(groups, capacities, geometries)):
        masks = group.bits.unpack()  # (T, L, N)
        missed = np.zeros(masks.shape, bool)
        start = 0
        for n in lengths:
            seq = masks[start:start + n]
            policies = [policy_cls(group.num_columns, int(caps[layer]), future=seq[:, layer])
                        for layer in range(L)]
            for t in range(n):
                counts = _step(policies, seq[t], geom, missed[start + t])
                hits[start + t, g], fills[start + t, g], resident[start + t, g] = counts
            start += n
        misses.append(pack_words(missed))
    return CacheOutcome(hits, fills, resident, tuple(misses))


def _step(policies, mask: np.ndarray, geom: ReadGeometry, missed_out: np.ndarray):
    """One token, every layer of a group: serve, then offer what arrived; (hits, fills,
    resident), each (L,). Writes the token's misses into `missed_out` (L, N)."""
    before = np.stack([p.resident() for p in policies])
    np.logical_and(mask, ~before, out=missed_out)
    arrived = unpack_words(arrived_columns(pack_words(missed_out), geom), mask.shape[1])
    extra = arrived & ~mask & ~before
    for layer, policy in enumerate(policies):
        policy.access(mask[layer], extra=extra[layer])
    after = np.stack([p.resident() for p in policies])
    fills = ((missed_out | extra) & after).sum(axis=1)
    return (mask & before).sum(axis=1), fills, after.sum(axis=1)
