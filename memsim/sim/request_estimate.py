"""What a set of missed columns costs to read from flash, for masks that choose by it.

A request-aware mask (workloads/masks/dip_ra.py) needs, per mask group and layer, where each
column sits in flash: the read units ("cells") its slot spans, how far apart two runs may be
and still be read as one request, and what a request of n cells costs. `ColumnPlacement`
holds that, derived from the same geometries the simulator builds (costs.read_geometries),
so a mask and the simulator agree on pages, alignment, layout, merge gap, per-request floor
and the span (`flash.locality`) that floor is judged by.

Cells are the flash's pages; on byte-addressable flash (no pages) they are the columns'
slots, with the merge gap in whole slots (a gap of g bits joins runs at most floor(g / slot)
slots apart, exactly as flash_reads.py's bit offsets do). `estimate_reads` counts requests,
device bytes and time of missed-column sets the way `transfer_reads` does; it is plain numpy
(no compiled kernel), for the mask's own bookkeeping and tests, not for the simulator.

What this ignores: the same as flash_reads.py (mapping-cache state between transfers, other
I/O on the queue); it prices one transfer alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memsim.core.errors import ConfigError
from memsim.hw import HardwareConfig
from memsim.hw.layouts import Layout, load_layout
from memsim.sim.costs import read_geometries
from memsim.sim.flash_reads import ReadGeometry
from memsim.sim.plan import plan_dram
from memsim.traces import ModelShape, Trace

GROUP_NAMES = ("up_gate", "down")  # DIP's two mask groups, in memsim.Trace.groups() order


@dataclass(frozen=True)
class ColumnPlacement:
    """Where one mask group's columns sit in flash, per layer, and what reading them costs."""

    name: str
    cell_first: np.ndarray  # (L, N) int64: first cell of each column's slot (model order)
    cell_last: np.ndarray  # (L, N) int64: last cell
    num_cells: int  # cells of one layer's region
    gap_cells: int  # runs at most this many cells apart are one request (gap read through)
    short_cells: int  # requests of at most this many cells cost the floor
    request_s: float  # the per-request floor (0 on byte-addressable flash)
    cell_s: float  # time per cell of the longer requests
    latency_s: float  # once per transfer that reads anything
    regions: int  # matrices stored apart (each read with the same runs)
    cell_bytes: float  # device bytes of one cell in one region (0: byte-addressable)
    vector_bytes: float  # payload bytes of one column (all regions)
    bit_s: float = 0.0  # byte-addressable flash: time per payload bit (0 when paged)

    @property
    def is_paged(self) -> bool:
        return self.cell_bytes > 0

    @property
    def num_columns(self) -> int:
        return self.cell_first.shape[1]

    def request_time_s(self, cells: np.ndarray) -> np.ndarray:
        """Time of requests of `cells` cells each, in one region: the floor for short ones."""
        cells = np.asarray(cells)
        if not self.is_paged:
            return cells * self.cell_s
        return np.where(cells <= self.short_cells, self.request_s, cells * self.cell_s)


def column_placement(geom: ReadGeometry, name: str, vector_bytes: float,
                     num_layers: int) -> ColumnPlacement:
    """The placement of group `name` read with `geom` (one column = `vector_bytes`): the
    geometry of a masked (random) read, as the simulator builds it (costs.read_geometries)."""
    N = geom.num_columns
    pos = (np.broadcast_to(np.arange(N, dtype=np.int64), (num_layers, N))
           if geom.pos.shape[0] == 0 else geom.pos.astype(np.int64))
    if geom.is_paged:
        first = (pos * geom.slot_bits) // geom.unit_bits
        last = ((pos + 1) * geom.slot_bits - 1) // geom.unit_bits
        num_cells = int(last.max()) + 1 if N else 0
        gap, short = geom.gap_units, geom.short_units
        cell_s, cell_bytes, bit_s = geom.per_unit_s, geom.unit_bytes, 0.0
    else:  # byte-addressable: a cell is a slot; g bits of gap join runs floor(g/slot) apart
        first = last = pos
        num_cells = N
        gap, short = geom.gap_units // geom.slot_bits, 0
        cell_s, cell_bytes, bit_s = geom.slot_bits * geom.per_unit_s, 0.0, geom.per_unit_s
    return ColumnPlacement(name, np.ascontiguousarray(first),
                           np.ascontiguousarray(last), num_cells, int(min(gap, num_cells)),
                           int(min(short, num_cells)), geom.floor_s, cell_s, geom.latency_s,
                           geom.regions, cell_bytes, float(vector_bytes), bit_s)


def dip_placements(hw: HardwareConfig, model: ModelShape,
                   layout: Layout | str | None = None) -> dict[str, ColumnPlacement]:
    """Placements of DIP's two mask groups on `hw`, keyed `up_gate` (the H inputs: a column of
    W_up and of W_gate each; of W_up alone in a plain FFN, where memsim names the group `up`)
    and `down` (the I columns of W_down). `layout`: a Layout, a layout file, or None for
    `hw.flash.layout` (model order when that is unset too)."""
    if layout is None and hw.flash.layout is not None:
        layout = hw.flash.layout
    if isinstance(layout, str):
        source = layout
        layout = load_layout(layout)
        layout.check_model(model, source=source)
    L, H, I = model.num_hidden_layers, model.hidden_size, model.intermediate_size
    # the groups, vector bytes and geometries the simulator gives a DIP trace of this model
    groups = Trace(up=np.zeros((1, L, H), bool), down=np.zeros((1, L, I), bool),
                   model=model).groups()
    plan = plan_dram(hw, model, groups, 0.0)  # vector bytes do not depend on the budget
    geometries = read_geometries(hw, model, groups, plan.vector_bytes, layout)
    return {role: column_placement(geom, g.name, vb, L)
            for role, g, geom, vb in zip(GROUP_NAMES, groups, geometries, plan.vector_bytes,
                                         strict=True)}


@dataclass(frozen=True)
class ReadEstimate:
    """Per row (e.g. token x layer), the flash figures of its missed columns."""

    requests: np.ndarray  # counted over all regions, as TransferReads.requests
    device_bytes: np.ndarray
    time_s: np.ndarray


def estimate_reads(miss: np.ndarray, placement: ColumnPlacement,
                   layers: np.ndarray | int) -> ReadEstimate:
    """Requests, device bytes and time of reading the missed columns `miss` (..., N) bool
    (model order) of layer(s) `layers` (an int, or an int array broadcast with miss[..., 0]).

    Columns are taken in flash order (cell order; columns sharing a cell sort together, and
    their order inside it does not change which cells are read): a missed column starts a
    request unless its first cell is at most gap + 1 past the last cell read so far."""
    miss = np.asarray(miss, bool)
    if miss.shape[-1] != placement.num_columns:
        raise ConfigError(f"mask has {miss.shape[-1]} columns, the group {placement.num_columns}",
                          key_path=placement.name, allowed=str(placement.num_columns))
    shape = miss.shape[:-1]
    layers = np.broadcast_to(np.asarray(layers, np.int64), shape).reshape(-1)
    rows = miss.reshape(-1, miss.shape[-1])
    first = placement.cell_first[layers]  # (M, N)
    last = placement.cell_last[layers]
    order = np.argsort(np.where(rows, first, np.iinfo(np.int64).max), axis=1, kind="stable")
    f = np.take_along_axis(np.where(rows, first, -1), order, axis=1)
    la = np.take_along_axis(np.where(rows, last, -1), order, axis=1)
    missed = f >= 0  # the row's misses come first, in flash order
    reach = np.maximum.accumulate(la, axis=1)  # last cell read so far
    prev = np.concatenate([np.full((len(rows), 1), -(1 << 60)), reach[:, :-1]], axis=1)
    starts = missed & (f > prev + 1 + placement.gap_cells)
    ends = missed & np.concatenate([starts[:, 1:] | ~missed[:, 1:],
                                    np.ones((len(rows), 1), bool)], axis=1)
    r_start, c_start = np.nonzero(starts)  # row-major: the k-th start pairs with the k-th end
    r_end, c_end = np.nonzero(ends)
    sizes = reach[r_end, c_end] - f[r_start, c_start] + 1  # cells per request
    requests = np.bincount(r_start, minlength=len(rows)).astype(np.float64)
    units = np.bincount(r_start, weights=sizes, minlength=len(rows))
    R = placement.regions
    if placement.is_paged:
        is_short = sizes <= placement.short_cells
        short = np.bincount(r_start, weights=is_short, minlength=len(rows))
        long_units = np.bincount(r_start, weights=np.where(is_short, 0, sizes),
                                 minlength=len(rows))
        device = units * placement.cell_bytes * R
        pipelined = R * (short * placement.request_s + long_units * placement.cell_s)
    else:  # the payload at the bandwidth, as flash_reads.py prices byte-addressable reads
        device = rows.sum(axis=1) * placement.vector_bytes
        pipelined = device * 8 * placement.bit_s
    time = np.where(requests > 0, placement.latency_s + pipelined, 0.0)
    return ReadEstimate((requests * R).reshape(shape), device.reshape(shape),
                        time.reshape(shape))
