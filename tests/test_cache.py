"""Laws of the DRAM cache policies (memsim/cache/): small hand-made traces pin each policy's
eviction order; random traces with temporal reuse check the common rules and that every
vectorised `run_batch` gives exactly the counts of the stepwise reference loop."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from memsim.cache import POLICIES, CacheOutcome, CachePolicy, _lru_batch, count_runs, make_policy
from memsim.cache._lru_batch import add_lowest_columns, keep_lowest_bits
from memsim.cache._packed import count_runs as count_runs_packed
from memsim.core.errors import ConfigError
from memsim.traces.bits import pack_words, unpack_words

NAMES = ("none", "lru", "lfu", "belady")
CACHING = ("lru", "lfu", "belady")


# ---------------------------------------------------------------------------- helpers
def trace(num_columns: int, *tokens: tuple[int, ...]) -> np.ndarray:
    """(T, N) bool masks from the column indices each token uses."""
    out = np.zeros((len(tokens), num_columns), bool)
    for t, cols in enumerate(tokens):
        out[t, list(cols)] = True
    return out


def replay(name: str, seq: np.ndarray, capacity: int) -> tuple[list[set], list[set]]:
    """Hit sets and resident sets after each token of one segment."""
    policy = make_policy(name, seq.shape[1], capacity, future=seq)
    hits, resident = [], []
    for mask in seq:
        hits.append(set(np.flatnonzero(policy.access(mask)).tolist()))
        resident.append(set(np.flatnonzero(policy.resident()).tolist()))
    return hits, resident


def reuse_masks(rng: np.random.Generator, num_tokens: int, num_layers: int, width: int,
                keep: float, rho: float = 0.8) -> np.ndarray:
    """(T, L, N) bool with temporal reuse: top-k of per-column popularity + AR(1) noise."""
    k = int(round(keep * width))
    popularity = rng.standard_normal((num_layers, width))
    noise = rng.standard_normal((num_layers, width))
    out = np.zeros((num_tokens, num_layers, width), bool)
    for t in range(num_tokens):
        noise = rho * noise + np.sqrt(1 - rho**2) * rng.standard_normal(noise.shape)
        if k:
            top = np.argsort(-(popularity + noise), axis=1, kind="stable")[:, :k]
            np.put_along_axis(out[t], top, True, axis=1)
    return out


def random_case(seed: int) -> tuple[list[np.ndarray], list[np.ndarray], tuple[int, ...]]:
    """Two groups (64 and 200 columns), 3 layers, 3 sequences, capacities 0 to > width."""
    rng = np.random.default_rng(seed)
    T, L = 36, 3
    groups = [reuse_masks(rng, T, L, 64, rng.uniform(0.05, 0.7)),
              reuse_masks(rng, T, L, 200, rng.uniform(0.05, 0.5))]
    groups[1][rng.random(groups[1].shape) < 0.05] ^= True  # break the exact top-k structure
    capacities = [np.array([0, int(rng.integers(1, 20)), 70]),
                  np.array([int(rng.integers(0, 200)), 5, 200])]
    return groups, capacities, (15, 1, 20)


def stepwise(name: str, *args) -> CacheOutcome:
    """The reference: CachePolicy.run_batch, looping the stepwise policy."""
    return CachePolicy.run_batch.__func__(POLICIES.get(name), *args)


def assert_same(a: CacheOutcome, b: CacheOutcome) -> None:
    """Every count and every missed column identical."""
    for field in dataclasses.fields(CacheOutcome):
        if field.name == "miss_words":
            assert len(a.miss_words) == len(b.miss_words)
            for wa, wb in zip(a.miss_words, b.miss_words):
                np.testing.assert_array_equal(wa, wb, err_msg=field.name)
            continue
        np.testing.assert_array_equal(getattr(a, field.name), getattr(b, field.name),
                                      err_msg=field.name)


# ---------------------------------------------------------------------------- registry
def test_policies_register_under_their_names():
    assert set(NAMES) <= set(POLICIES.names())
    assert POLICIES.get("belady").is_offline and not POLICIES.get("lru").is_offline


def test_unknown_policy_name_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="lru"):
        make_policy("fifo", 8, 2)


# ---------------------------------------------------------------------------- none
def test_no_cache_never_hits_fills_or_holds_anything():
    seq = trace(6, (0, 1), (0, 1), (0, 1, 4))
    hits, resident = replay("none", seq, capacity=6)
    assert hits == [set()] * 3 and resident == [set()] * 3
    out = POLICIES.get("none").run_batch([seq[:, None]], [np.array([6])])
    assert not out.hits.any() and not out.fills.any() and not out.resident.any()
    np.testing.assert_array_equal(out.miss_runs[:, 0, 0], [1, 1, 2])


# ---------------------------------------------------------------------------- lru
def test_lru_evicts_least_recently_used_column():
    hits, resident = replay("lru", trace(4, (0,), (1,), (2,), (0,), (1,)), capacity=2)
    assert resident == [{0}, {0, 1}, {1, 2}, {0, 2}, {0, 1}]
    assert hits == [set(), set(), set(), set(), set()]


def test_lru_ties_evict_higher_index_first():
    _, resident = replay("lru", trace(4, (1, 3), (2,), (0,)), capacity=3)
    assert resident[-1] == {0, 1, 2}  # 1 and 3 last used together: 3 goes


def test_lru_oversize_mask_keeps_its_lowest_index_columns():
    hits, resident = replay("lru", trace(6, (1,), (1, 3, 5), (5,)), capacity=2)
    assert resident == [{1}, {1, 3}, {1, 5}]  # at t2, 1 and 3 tie on recency: 3 goes
    assert hits == [set(), {1}, set()]


def test_lru_cache_is_top_capacity_by_last_use_then_low_index():
    rng = np.random.default_rng(3)
    seq = reuse_masks(rng, 40, 1, 50, 0.3)[:, 0]
    seq[7] = True  # one oversize token
    last_use = np.full(50, -1)
    _, resident = replay("lru", seq, capacity=20)
    for t, mask in enumerate(seq):
        last_use[mask] = t
        used = np.flatnonzero(last_use >= 0)
        best = used[np.lexsort((used, -last_use[used]))][:20]
        assert resident[t] == set(best.tolist()), t


# ---------------------------------------------------------------------------- lfu
def test_lfu_evicts_least_frequently_used_column():
    _, resident = replay("lfu", trace(4, (0,), (0,), (1,), (2,)), capacity=2)
    assert resident[-1] == {0, 2}  # 1 used once, 0 twice


def test_lfu_ties_evict_least_recent_then_higher_index():
    _, resident = replay("lfu", trace(4, (0,), (1,), (2,)), capacity=2)
    assert resident[-1] == {1, 2}  # all used once: 0 is least recent
    _, resident = replay("lfu", trace(4, (2, 3), (0,), (1,)), capacity=3)
    assert resident[-1] == {0, 1, 2}  # 2 and 3 tie on uses and recency: 3 goes


def test_lfu_counts_uses_while_not_resident():
    # Column 2 misses the cache at t0 but its use counts, so at t1 it outranks column 1.
    _, resident = replay("lfu", trace(3, (0, 2), (1, 2)), capacity=1)
    assert resident == [{0}, {2}]


# ---------------------------------------------------------------------------- belady
def test_belady_evicts_column_used_farthest_in_future():
    hits, resident = replay("belady", trace(4, (0,), (1,), (2,), (0,), (1,)), capacity=2)
    assert resident[2] == {0, 2}  # 0 is used again at t3, 1 only at t4
    assert hits[3] == {0}


def test_belady_evicts_never_used_columns_first_higher_index_first():
    _, resident = replay("belady", trace(4, (0, 1), (2,), (3,), (2,)), capacity=2)
    assert resident[1] == {0, 2}  # 0 and 1 never come back: 1 goes
    assert resident[2] == {2, 3}


def test_belady_oversize_mask_keeps_columns_used_soonest():
    _, resident = replay("belady", trace(4, (0, 1, 3), (3,), (1,)), capacity=2)
    assert resident[0] == {1, 3}
    _, resident = replay("belady", trace(4, (0, 1, 3)), capacity=2)
    assert resident[0] == {0, 1}  # no next use at all: lower indices


def test_belady_needs_the_future_and_its_order():
    with pytest.raises(ValueError, match="offline"):
        make_policy("belady", 4, 2)
    policy = make_policy("belady", 4, 2, future=trace(4, (0,), (1,)))
    with pytest.raises(ValueError, match="in order"):
        policy.access(trace(4, (1,))[0])


# ---------------------------------------------------------------------------- common rules
def random_segments(seed: int, num: int = 4):
    """(masks (T, N), capacity) pairs with reuse, including oversize tokens."""
    rng = np.random.default_rng(seed)
    for _ in range(num):
        width = int(rng.integers(1, 90))
        seq = reuse_masks(rng, 25, 1, width, rng.uniform(0.1, 0.6))[:, 0]
        seq[rng.random(seq.shape) < 0.05] ^= True
        yield seq, int(rng.integers(0, width + 3))


@pytest.mark.parametrize("name", NAMES)
def test_cache_never_exceeds_capacity_and_starts_empty(name):
    for seq, capacity in random_segments(1):
        policy = make_policy(name, seq.shape[1], capacity, future=seq)
        assert not policy.resident().any()
        for mask in seq:
            policy.access(mask)
            assert policy.resident().sum() <= min(capacity, seq.shape[1])


@pytest.mark.parametrize("name", CACHING)
def test_current_token_columns_are_never_evicted(name):
    for seq, capacity in random_segments(2):
        policy = make_policy(name, seq.shape[1], capacity, future=seq)
        for mask in seq:
            policy.access(mask)
            if mask.sum() <= capacity:
                assert not (mask & ~policy.resident()).any()


@pytest.mark.parametrize("name", CACHING)
def test_oversize_mask_caches_capacity_of_its_columns_and_streams_the_rest(name):
    seq = trace(10, (0, 5), (1, 2, 3, 4, 5, 6, 7), (9,))
    policy = make_policy(name, 10, 3, future=seq)
    policy.access(seq[0])
    hit = policy.access(seq[1])
    after = policy.resident()
    assert after.sum() == 3 and not (after & ~seq[1]).any()
    assert hit.sum() == 1  # column 5; the other 6 stream from flash, 3 - |kept hits| filled


@pytest.mark.parametrize("name", NAMES)
def test_hits_and_misses_conserve_the_mask(name):
    groups, capacities, lengths = random_case(4)
    out = POLICIES.get(name).run_batch(groups, capacities, lengths)
    requested = np.stack([g.sum(axis=2) for g in groups], axis=1)  # (T, G, L)
    misses = requested - out.hits
    assert (out.hits >= 0).all() and (misses >= 0).all()
    assert (out.fills <= misses).all()
    assert ((out.miss_runs > 0) == (misses > 0)).all() and (out.miss_runs <= misses).all()


@pytest.mark.parametrize("name", CACHING)
def test_hit_mask_is_requested_and_was_resident_before(name):
    for seq, capacity in random_segments(5):
        policy = make_policy(name, seq.shape[1], capacity, future=seq)
        for mask in seq:
            before = policy.resident().copy()
            hit = policy.access(mask)
            np.testing.assert_array_equal(hit, mask & before)


def test_capacity_above_the_width_caches_everything_used():
    seq = trace(5, (0, 1), (2,), (3, 4), (0,))
    for name in CACHING:
        hits, resident = replay(name, seq, capacity=99)
        assert resident[-1] == {0, 1, 2, 3, 4} and hits[-1] == {0}


# ---------------------------------------------------------------------------- batch == loop
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_run_batch_equals_the_stepwise_loop(name, seed):
    groups, capacities, lengths = random_case(seed)
    assert_same(POLICIES.get(name).run_batch(groups, capacities, lengths),
                stepwise(name, groups, capacities, lengths))


@pytest.mark.parametrize("name", CACHING)
def test_run_batch_equals_the_stepwise_loop_on_odd_shapes(name):
    """Widths off the 64-column grid, one-token sequences, empty and full masks."""
    rng = np.random.default_rng(9)
    groups = [rng.random((9, 2, n)) < p for n, p in ((1, 0.5), (65, 0.3), (130, 0.9))]
    groups[1][3] = False
    groups[2][4] = True
    capacities = [np.array([0, 1]), np.array([64, 3]), np.array([129, 60])]
    lengths = (1, 4, 1, 3)
    assert_same(POLICIES.get(name).run_batch(groups, capacities, lengths),
                stepwise(name, groups, capacities, lengths))


@pytest.mark.parametrize("spill_all_fraction", [0.0, 0.25, 2.0])
def test_lru_run_batch_handles_long_and_short_windows_together(monkeypatch, spill_all_fraction):
    """Layers whose windows span many tokens next to ones that slide every token, with the
    suffix rebuilt for all layers at once, when enough spill, or layer by layer."""
    monkeypatch.setattr(_lru_batch, "SPILL_ALL_FRACTION", spill_all_fraction)
    rng = np.random.default_rng(11)
    masks = reuse_masks(rng, 60, 8, 300, 0.05, rho=0.95)
    masks[20:23, 1] = True  # a burst that empties a long window at once
    capacities = [np.array([290, 200, 20, 14, 40, 60, 25, 120])]
    assert_same(POLICIES.get("lru").run_batch([masks], capacities, (25, 35)),
                stepwise("lru", [masks], capacities, (25, 35)))
    groups, capacities, lengths = random_case(21)
    assert_same(POLICIES.get("lru").run_batch(groups, capacities, lengths),
                stepwise("lru", groups, capacities, lengths))


@pytest.mark.parametrize("name", CACHING)
def test_run_batch_equals_the_stepwise_loop_when_masks_overflow_every_layer(name):
    """DIP-like up/gate masks denser than the cache, with a few sparse tokens between."""
    rng = np.random.default_rng(10)
    masks = reuse_masks(rng, 30, 3, 130, 0.6)
    masks[[4, 5, 9, 17]] &= rng.random((4, 3, 130)) < 0.2  # these fit again
    capacities = [np.array([60, 65, 70])]
    assert_same(POLICIES.get(name).run_batch([masks], capacities, (12, 18)),
                stepwise(name, [masks], capacities, (12, 18)))


# ---------------------------------------------------------------------------- comparisons
def test_belady_hits_at_least_as_often_as_lru_and_lfu():
    for seed in range(3):
        groups, capacities, lengths = random_case(100 + seed)
        total = {name: POLICIES.get(name).run_batch(groups, capacities, lengths).hits.sum()
                 for name in CACHING}
        assert total["belady"] >= total["lru"] and total["belady"] >= total["lfu"]


@pytest.mark.parametrize("name", NAMES)
def test_same_input_gives_identical_output_and_leaves_input_alone(name):
    groups, capacities, lengths = random_case(7)
    copies = [g.copy() for g in groups]
    first = POLICIES.get(name).run_batch(groups, capacities, lengths)
    assert_same(first, POLICIES.get(name).run_batch(groups, capacities, lengths))
    for g, c in zip(groups, copies):
        np.testing.assert_array_equal(g, c)


# ---------------------------------------------------------------------------- packed helpers
def test_run_starts_counts_runs_across_word_boundaries():
    rng = np.random.default_rng(12)
    masks = rng.random((50, 200)) < 0.6
    masks[0] = True  # one run over four words
    masks[1, 60:70] = True  # a run across a word boundary
    np.testing.assert_array_equal(count_runs_packed(pack_words(masks)), count_runs(masks))


def test_keep_lowest_bits_keeps_exactly_the_lowest_set_bits():
    rng = np.random.default_rng(13)
    words = rng.integers(0, 2**63, 500, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    words[:3] = (0, 2**64 - 1, 2**63)
    keep = rng.integers(0, 70, 500)
    got = keep_lowest_bits(words, keep)
    for w, k, g in zip(words.tolist(), keep.tolist(), got.tolist()):
        bits = [b for b in range(64) if w >> b & 1][:k]
        assert g == sum(1 << b for b in bits)


def test_add_lowest_columns_adds_the_room_lowest_columns_of_each_row():
    rng = np.random.default_rng(14)
    masks = rng.random((6, 3, 150)) < 0.4
    masks[0, 0] = False  # an empty row
    masks[0, 1] = True  # a full row, the last word full too
    room = rng.integers(0, 70, (6, 3))
    room[1] = 200  # more room than columns
    states = pack_words(rng.random((6, 3, 150)) < 0.1)
    expect = (masks & (np.cumsum(masks, axis=-1) <= room[..., None])) | unpack_words(states, 150)
    gained = add_lowest_columns(states, pack_words(masks), room)
    np.testing.assert_array_equal(states, pack_words(expect))
    np.testing.assert_array_equal(gained, np.minimum(room, masks.sum(axis=-1)))
