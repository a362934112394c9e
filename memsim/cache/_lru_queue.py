"""An LRU policy's state as an eviction queue, for compiled walks that step one segment token
by token (workloads' cache-aware masking decides each token's mask from the cache state).

`LRUPolicy.access` (lru.py) keeps the mask plus the most recent other residents, evicting the
oldest last use first and, among equal ones, the higher column index first. Since last uses
only grow, that order is a queue: residents sorted by (last use, -index), each token appending
its columns in descending index order. A column used again leaves a stale entry behind
(skipped: `pos` remembers each column's latest entry). `lru_queue_access` is `access(mask)`
on this queue, in O(columns requested + evicted) per token instead of a sort; tests compare
it with the policy step by step. What it ignores: `extra` (over-read admission), which
cache-aware masking never passes.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from memsim.cache.lru import LRUPolicy
from memsim.core.jit import kernel


class LruQueue(NamedTuple):
    """The live state of one LRU segment (numba takes it as one argument)."""

    resident: np.ndarray  # (N,) bool, the policy's own array (updated in place)
    last_use: np.ndarray  # (N,) int64, the policy's own array: 2t + 1 for token t
    queue: np.ndarray  # (4N + 4,) int64 columns in eviction order, from cursor[0]
    pos: np.ndarray  # (N,) int64 index of each column's latest queue entry
    cursor: np.ndarray  # (3,) int64 head, tail, number resident
    capacity: int
    now: int  # index in the sequence of the next token when the queue was opened

    @staticmethod
    def supports(policy) -> bool:
        """Whether `policy` is exactly an LRUPolicy (a subclass may step differently)."""
        return type(policy) is LRUPolicy

    @classmethod
    def of(cls, policy) -> "LruQueue":
        """The queue of an LRUPolicy's current state (its arrays, shared, not copied)."""
        resident, last_use = policy._resident, policy._last_use
        columns = np.flatnonzero(resident)
        columns = columns[np.lexsort((-columns, last_use[columns]))]  # eviction order
        N = resident.shape[0]
        queue = np.zeros(4 * N + 4, np.int64)
        queue[:columns.size] = columns
        pos = np.full(N, -1, np.int64)
        pos[columns] = np.arange(columns.size)
        cursor = np.array([0, columns.size, columns.size], np.int64)
        return cls(resident, last_use, queue, pos, cursor, policy.capacity_columns,
                   policy._now)

    def close(self, policy, num_tokens: int) -> None:
        """Hand the state back after `num_tokens` accesses made with `lru_queue_access`."""
        policy._resident, policy._last_use = self.resident, self.last_use
        policy._now += num_tokens


@kernel
def lru_queue_access(q: LruQueue, requested: np.ndarray, now: int) -> int:
    """`LRUPolicy.access` of token `now` (its index in the sequence) for the columns
    `requested` (ascending): update q in place, return the hits."""
    hits = 0
    for c in requested:
        hits += q.resident[c]
        q.last_use[c] = 2 * now + 1
    if requested.shape[0] > q.capacity:  # oversize: only its lowest `capacity` columns stay
        _evict_all(q)
        requested = requested[:q.capacity]
    _compact_if_full(q, requested.shape[0])
    head, tail, count = q.cursor[0], q.cursor[1], q.cursor[2]
    for i in range(requested.shape[0] - 1, -1, -1):  # higher index nearer the head
        c = requested[i]
        count += not q.resident[c]
        q.resident[c] = True
        q.queue[tail] = c
        q.pos[c] = tail
        tail += 1
    while count > q.capacity:  # the token's own entries are at the tail: never reached
        c = q.queue[head]
        live = (q.pos[c] == head) & q.resident[c]  # branch-free: stale entries are common
        q.resident[c] = q.resident[c] & ~live
        count -= live
        head += 1
    q.cursor[0], q.cursor[1], q.cursor[2] = head, tail, count
    return hits


@kernel
def _evict_all(q: LruQueue) -> None:
    for i in range(q.cursor[0], q.cursor[1]):
        q.resident[q.queue[i]] = False
    q.cursor[0], q.cursor[1], q.cursor[2] = 0, 0, 0


@kernel
def _compact_if_full(q: LruQueue, room: int) -> None:
    """Drop stale entries when `room` more would not fit (live ones <= N, room <= N)."""
    if q.cursor[1] + room <= q.queue.shape[0]:
        return
    kept = 0
    for i in range(q.cursor[0], q.cursor[1]):
        c = q.queue[i]
        live = (q.pos[c] == i) & q.resident[c]
        q.queue[kept] = c  # overwritten unless live (kept <= i)
        q.pos[c] = kept if live else q.pos[c]
        kept += live
    q.cursor[0], q.cursor[1] = 0, kept
