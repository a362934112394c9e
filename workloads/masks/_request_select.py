"""Which flash pages to read for one token's columns: a greedy pass over page ranges.

The problem (docs/request_aware.md): choose k of N columns to maximise the summed scores of
the kept columns minus `weight` x sigma x (request time / time of a lone one-page request).
Cached columns cost nothing; sigma is the k-th largest score (the marginal column's); the
request time is what memsim charges the transfer's requests (memsim.sim.request_estimate):
per request max(floor, pages x per-page time) (the floor up to `short` pages), runs of pages
at most `gap` pages apart read as one request with the gap. The transfer's latency (once if
anything is read) is left out: a fixed cost makes the choice all-or-nothing (read nothing
once the cache holds k columns, so the cache, and the mask, freeze; docs/request_aware.md).

The pass: start from the cached columns; repeatedly read the range of at most `span_max`
adjacent pages ("cells"; a column's slot may straddle two, a large bundle spans several)
with the best net gain: the worth of the columns it makes readable (those whose every cell
is then read, gaps read through included) minus weight x sigma x the increase of the
transfer's request time. A column's worth is its score while fewer than k columns are
readable, then its score above the k-th best readable one (what it would displace). Stop
when k columns are readable and no range gains. Keep the top k readable columns.

What that buys: a page already read (or inside a gap read through) costs nothing; a page
next to a request extends it (free up to `short` pages, then per page); a lone page opens a
request (the floor). What it ignores: a range is
judged alone (greedy, not a global optimum); a page read early for columns that later fall
below the k-th best stays read only if it keeps one (the estimate of the chosen mask, not of
the plan, is what is reported). weight 0 is never run here: the caller takes the plain top k
(DIP-CA).

Speed shortcut: compiled (numba, memsim.core.jit), one call per token, layer and group;
each step is linear in the columns plus the cells, and a step reads at least one cell.
"""
from __future__ import annotations

import numpy as np

from memsim.core.jit import kernel


@kernel
def _request_cost(n: int, short: int, floor: float, cell: float, paged: bool) -> float:
    """Time of one request of n cells in one region (0 cells: 0), as flash_reads.py charges
    it: the floor up to `short` cells, then cells x per-cell time."""
    if n <= 0:
        return 0.0
    if paged and n <= short:
        return floor
    return n * cell


@kernel
def _requests(read: np.ndarray, gap: int, short: int, floor: float, cell: float, paged: bool,
              start: np.ndarray, end: np.ndarray, csum: np.ndarray, req_of: np.ndarray,
              next_read: np.ndarray, prev_read: np.ndarray) -> int:
    """The requests of the read cells (runs joined across gaps of at most `gap` cells, the
    gaps then read too: `read` is updated): their first/last cells, prefix sums of their
    costs, each read cell's request, and the next/previous read cell of every cell."""
    U = read.shape[0]
    n = 0
    last = -(1 << 40)
    for u in range(U):
        if not read[u]:
            continue
        if n > 0 and u - last - 1 <= gap:
            for g in range(last + 1, u):
                read[g] = True
                req_of[g] = n - 1
            end[n - 1] = u
        else:
            start[n] = u
            end[n] = u
            n += 1
        req_of[u] = n - 1
        last = u
    csum[0] = 0.0
    for i in range(n):
        csum[i + 1] = csum[i] + _request_cost(end[i] - start[i] + 1, short, floor, cell, paged)
    nxt = U
    for u in range(U - 1, -1, -1):
        if read[u]:
            nxt = u
        next_read[u] = nxt
    prv = -1
    for u in range(U):
        if read[u]:
            prv = u
        prev_read[u] = prv
    return n


@kernel
def _added_time(f: int, l: int, gap: int, short: int, floor: float, cell: float, paged: bool,
                start: np.ndarray, end: np.ndarray, csum: np.ndarray, req_of: np.ndarray,
                next_read: np.ndarray, prev_read: np.ndarray) -> float:
    """Increase of the transfer's request time (one region) when cells f..l are read too:
    the requests within `gap` + 1 cells of the range join it into one request."""
    U = next_read.shape[0]
    lo, hi = max(0, f - gap - 1), min(U - 1, l + gap + 1)
    x = next_read[lo]
    if x > hi:  # a request of its own
        return _request_cost(l - f + 1, short, floor, cell, paged)
    i, j = req_of[x], req_of[prev_read[hi]]
    a, b = min(f, start[i]), max(l, end[j])
    return _request_cost(b - a + 1, short, floor, cell, paged) - (csum[j + 1] - csum[i])


@kernel
def _net(f: int, l: int, scores: np.ndarray, avail: np.ndarray, first: np.ndarray,
         last: np.ndarray, by_cell: np.ndarray, cell_start: np.ndarray, read: np.ndarray,
         tau: float, tiny: float, scale: float, gap: int, short: int, floor: float,
         cell: float, paged: bool, start: np.ndarray, end: np.ndarray, csum: np.ndarray,
         req_of: np.ndarray, next_read: np.ndarray, prev_read: np.ndarray) -> float:
    """Net gain of reading cells f..l (unread at both ends): the worth above tau of the
    unreadable columns whose unread cells all lie in the range, minus scale x the added
    time; -inf when it brings nothing (`tiny`: a positive floor against rounding)."""
    if read[f] or read[l]:
        return -np.inf
    gain = 0.0
    for u in range(f, l + 1):
        for i in range(cell_start[u], cell_start[u + 1]):
            c = by_cell[i]
            if avail[c] or scores[c] <= tau:
                continue
            a, b = first[c], last[c]
            while read[a]:
                a += 1
            while read[b]:
                b -= 1
            if a == u and b <= l:  # counted once, at its first unread cell
                gain += scores[c] - tau
    if gain <= tiny:
        return -np.inf
    return gain - scale * _added_time(f, l, gap, short, floor, cell, paged, start, end, csum,
                                      req_of, next_read, prev_read)


@kernel
def request_aware_select(scores: np.ndarray, cached: np.ndarray, first: np.ndarray,
                         last: np.ndarray, by_cell: np.ndarray, cell_start: np.ndarray,
                         k: int, span_max: int, gap: int, short: int, floor: float,
                         cell: float, paged: bool, weight: float, out: np.ndarray) -> bool:
    """out = a request-aware choice of k columns (scores (N,) >= 0, cached (N,), first/last
    (N,) cells of each column's slot; by_cell[cell_start[u]:cell_start[u+1]]: the columns
    touching cell u). Returns False, leaving `out` unset, when the plain top k is the
    answer (weight 0, no cost to weigh, k outside 1..N-1).

    Speed shortcut (exact): a range's net gain is recomputed only near the request that
    just grew (elsewhere its added time is unchanged) or when picked; the k-th best readable
    score only rises, so a stale net gain is an upper bound and the best fresh one wins
    (lazy greedy)."""
    N = scores.shape[0]
    U = cell_start.shape[0] - 1
    if weight <= 0 or k >= N or k <= 0:
        return False
    order = np.argsort(-scores, kind="mergesort")  # best first; ties: lower index first
    sigma = scores[order[k - 1]]  # the k-th largest: the marginal column
    unit = _request_cost(1, short, floor, cell, paged)
    if not sigma > 0 or unit <= 0:
        return False
    scale = weight * sigma / unit
    tiny = 1e-9 * sigma
    read = np.zeros(U, np.bool_)
    was_read = np.zeros(U, np.bool_)
    avail = cached.copy()
    start, end = np.zeros(U, np.int64), np.zeros(U, np.int64)
    csum = np.zeros(U + 1)
    req_of, next_read, prev_read = (np.zeros(U, np.int64), np.full(U, U, np.int64),
                                    np.full(U, -1, np.int64))
    net = np.full((U, span_max), -np.inf)  # net gain of reading cells [f, f+s]
    fresh = np.zeros((U, span_max), np.bool_)  # computed at the current tau
    count = 0  # readable columns
    for c in range(N):
        count += avail[c]
    tau = 0.0
    lo, hi = 0, U - 1  # first pass: every range
    for _ in range(U + 1):
        for f in range(max(lo, 0), min(hi, U - 1) + 1):
            for s in range(span_max):
                net[f, s] = -np.inf if f + s >= U else _net(
                    f, f + s, scores, avail, first, last, by_cell, cell_start, read, tau,
                    tiny, scale, gap, short, floor, cell, paged, start, end, csum, req_of,
                    next_read, prev_read)
                fresh[f, s] = True
        while True:  # lazy: the best net gain, recomputed until it is fresh
            flat = int(np.argmax(net))
            best_f, best_s = flat // span_max, flat % span_max
            if fresh[best_f, best_s] or net[best_f, best_s] == -np.inf:
                break
            net[best_f, best_s] = _net(
                best_f, best_f + best_s, scores, avail, first, last, by_cell, cell_start,
                read, tau, tiny, scale, gap, short, floor, cell, paged, start, end, csum,
                req_of, next_read, prev_read)
            fresh[best_f, best_s] = True
        best = net[best_f, best_s]
        if best == -np.inf or (count >= k and best <= 0):
            break
        # read the range; update requests and readable columns
        was_read[:] = read
        read[best_f:best_f + best_s + 1] = True
        _requests(read, gap, short, floor, cell, paged, start, end, csum, req_of, next_read,
                  prev_read)
        r = req_of[best_f]
        a, b = start[r], end[r]  # the request now holding the range
        for u in range(a, b + 1):
            if read[u] and not was_read[u]:
                for i in range(cell_start[u], cell_start[u + 1]):
                    c = by_cell[i]
                    if not avail[c]:
                        ok = True
                        for v in range(first[c], last[c] + 1):
                            ok = ok and read[v]
                        avail[c] = ok
                        count += ok
        if count >= k:  # the k-th best readable score: worths only fall as it rises
            seen, new_tau = 0, 0.0
            for i in range(N):
                if avail[order[i]]:
                    seen += 1
                    if seen == k:
                        new_tau = scores[order[i]]
                        break
            if new_tau != tau:
                tau = new_tau
                fresh[:, :] = False
        net[max(a - span_max + 1, 0):b + 1, :] = -np.inf  # ranges on read cells
        lo, hi = a - gap - span_max, b + gap + 1
    out[:] = False
    kept = 0
    for i in range(N):  # top k of the readable, ties to the lower index
        c = order[i]
        if avail[c] and kept < k:
            out[c] = True
            kept += 1
    for i in range(N):  # fewer readable (only zero scores were left to read): the best
        c = order[i]
        if not out[c] and kept < k:
            out[c] = True
            kept += 1
    return True
