"""Exact flash requests: which pages a token's missed columns make the device read.

A mask group's columns sit in flash in one region per layer (page-aligned), in the order of
the flash layout (default: model order), each column a slot of `vector bytes` (a bundle when
the group covers several matrices and the flash bundles them; else one region per matrix,
read with the same runs). Per (token, layer, group) transfer:
  * the missed columns, taken in flash order, form runs of adjacent slots;
  * each run spans the pages its bytes touch (alignment included: a 288-byte column may
    straddle two pages, a 17.5 KiB bundle spans 5 or 6);
  * runs become requests: two runs are one request when their pages touch or overlap (a page
    is never read twice; the block layer merges adjacent requests) or when the gap between
    them is at most `flash.merge_gap_KiB` (read through, "access collapse": the gap's bytes
    are over-read, costing device bytes, time and energy);
  * device bytes are whole pages; each request costs max(floor, pages * per-page time) and a
    transfer adds the latency once (memsim/hw/flash/base.py).
Byte-addressable flash (`simple`) has no pages: requests are the runs, device bytes the payload.
Reads of whole regions (dense groups, attention, head) are one request each, read in file
order (sequential); masked reads are random, priced within the span `flash.locality` names
(default: their region's).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memsim.hw import HardwareConfig
from memsim.hw.flash.base import short_units
from memsim.hw.layouts import Layout
from memsim.sim._count_plan import CountPlan, count_plan
from memsim.traces import MaskGroup

MAX_GAP_UNITS = 1 << 60  # "merge everything" (.inf) without overflowing int64


@dataclass(frozen=True)
class ReadGeometry:
    """How one mask group's columns sit in flash and what a request costs."""

    num_columns: int
    slot_bits: int  # one column in one region (a bundle of all matrices when bundled)
    regions: int  # matrices stored apart (1 when bundled)
    unit_bits: int  # the read unit: a page, or 1 bit on byte-addressable flash
    gap_units: int  # runs this many units apart (or fewer) are read as one request
    pos: np.ndarray  # (L, N) int32 column -> slot, or (0, 0) for model order
    order: np.ndarray  # (L, N) int32 slot -> column, or (0, 0)
    floor_s: float  # per request, whatever its size
    per_unit_s: float
    latency_s: float
    is_paged: bool
    is_sequential: bool

    @property
    def short_units(self) -> int:
        """The longest request (in units) that costs the floor (hw/flash/base.py)."""
        return short_units(self.floor_s, self.per_unit_s)

    @property
    def plan(self) -> CountPlan:
        """How the compiled kernels count this geometry's requests (memsim/sim/_count_plan.py)."""
        return count_plan(self.num_columns, self.slot_bits, self.unit_bits, self.gap_units,
                          self.short_units)

    def plan_arrays(self) -> tuple[np.ndarray, tuple]:
        """The plan as the kernels take it: (ints, tables) (memsim/sim/_flash_kernels.py)."""
        p = self.plan
        ints = np.array([p.path, p.num_units, p.word_phases, p.chunk_slots, p.chunk_phases,
                         p.period_units, p.rev_slots, p.rev_phases, p.rev_period, p.inc_base],
                        np.int64)
        return ints, (p.inc_values, p.inc_masks, p.start_values, p.start_masks, p.chunk_base,
                      p.chunk_table, p.rev_base, p.rev_table, p.slot_first, p.slot_last,
                      p.narrow_table)

    @property
    def unit_bytes(self) -> float:
        return self.unit_bits / 8

    @property
    def region_bytes(self) -> float:
        return self.num_columns * self.slot_bits * self.regions / 8


def locality_span_bytes(hw: HardwareConfig, groups: list[MaskGroup],
                        vector_bytes: list[float], num_layers: int,
                        file_bytes: float) -> float | None:
    """The span every masked read of a token is priced within (`flash.locality`): None for
    `region` (each transfer's own region), all layers' regions of every group for `token`,
    `file_bytes` (the whole weight file) for `file`."""
    locality = hw.flash.locality
    if locality == "token":
        return float(sum(g.num_columns * vb for g, vb in zip(groups, vector_bytes))
                     * num_layers)
    if locality == "file":
        return float(file_bytes)
    return None


def geometry(hw: HardwareConfig, group: MaskGroup, vector_bytes: float, layout: Layout | None,
             sequential: bool = False, span_bytes: float | None = None) -> ReadGeometry:
    """The read geometry of `group` on `hw` (one column = `vector_bytes`); its random reads
    are priced within `span_bytes` (None: the group's region in one layer)."""
    flash = hw.flash
    regions = group.num_matrices if (group.num_matrices > 1 and not flash.bundles_matrices) \
        else 1
    slot_bits = int(np.ceil(vector_bytes * 8 / regions - 1e-9))
    page = flash.page_bytes
    unit_bits = page * 8 if page else 1
    gap = flash.merge_gap_bytes * 8 / unit_bits
    gap_units = MAX_GAP_UNITS if gap >= MAX_GAP_UNITS else int(gap)
    pos, order = layout.positions(group.name) if layout is not None else (None, None)
    empty = np.zeros((0, 0), np.int32)
    span = group.num_columns * vector_bytes if span_bytes is None else span_bytes
    floor_s, per_unit_s = flash.request_cost(span, sequential)
    per_unit_s = per_unit_s * (unit_bits / 8 if not page else 1)  # simple: per byte -> per bit
    return ReadGeometry(group.num_columns, slot_bits, regions, unit_bits, gap_units,
                        empty if pos is None else pos, empty if order is None else order,
                        floor_s, per_unit_s, flash.latency_s, bool(page), sequential)


@dataclass(frozen=True)
class TransferReads:
    """Per (token, layer) flash figures of one group's transfers."""

    requests: np.ndarray  # (T, L) float
    device_bytes: np.ndarray  # (T, L) float: whole pages (or the payload)
    time_s: np.ndarray  # (T, L)


def request_stats(miss_words: np.ndarray, geom: ReadGeometry) -> np.ndarray:
    """(T, L, 4) int64 per transfer of one region: requests, units read, requests of at most
    `geom.short_units` units (they cost the floor), units of the longer ones; `miss_words`
    (T, L, W) packed missed columns (model order)."""
    from memsim.sim._flash_kernels import transfer_stats  # compiled on first use

    T, L, W = miss_words.shape
    stats = np.empty((T * L, 4), np.int64)
    transfer_stats(np.ascontiguousarray(miss_words).reshape(T * L, W), L, geom.pos,
                   geom.num_columns, geom.slot_bits, geom.unit_bits, geom.gap_units, geom.short_units,
                   *geom.plan_arrays(), stats)
    return stats.reshape(T, L, 4)


def transfer_reads(miss_words: np.ndarray, geom: ReadGeometry,
                   payload_bytes: np.ndarray) -> TransferReads:
    """Requests, device bytes and time of every transfer; `miss_words` (T, L, W) packed
    missed columns (model order), `payload_bytes` (T, L) their bytes. The time is
    `request_time` (hw/flash/base.py) summed over the requests, inlined: short requests cost
    the floor, longer ones their units."""
    stats = request_stats(miss_words, geom).astype(np.float64)
    requests, units, short, long_units = (stats[..., i] for i in range(4))
    if geom.is_paged:
        device = units * geom.unit_bytes * geom.regions
        pipelined = geom.regions * (short * geom.floor_s + long_units * geom.per_unit_s)
    else:  # byte-addressable: the payload, at the bandwidth (the authors' model)
        device = np.asarray(payload_bytes, np.float64)
        pipelined = device * 8 * geom.per_unit_s
    time = np.where(requests > 0, geom.latency_s + pipelined, 0.0)
    return TransferReads(requests * geom.regions, device, time)


def arrived_columns(miss_words: np.ndarray, geom: ReadGeometry) -> np.ndarray:
    """(L, W) packed model-order columns that arrive with one token's misses (L, W): the
    misses and every column whose slot lies wholly inside the pages (and merged gaps) read."""
    from memsim.sim._flash_kernels import arrived_slots

    out = np.zeros_like(miss_words)
    arrived_slots(np.ascontiguousarray(miss_words), geom.pos, geom.order, geom.num_columns,
                  geom.slot_bits, geom.unit_bits, geom.gap_units, *geom.plan_arrays(), out)
    return out
