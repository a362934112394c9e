"""How a results table's rows group into what a reader compares: panels, series and labels.

Shared by the figures and the summary table, so both name a row the same way.
- A *panel* is one (model, phone): `model`, `hw_name` and any hardware axis other than the
  DRAM size and the cache policy (`hw.flash.read_bandwidth_GBps`, ...).
- A *series* is one setting of one method: the method plus whichever setting columns vary
  among that method's rows (density, gamma, cache policy, adapter, mode, a `variant` or
  `flash_layout` column, any non-hardware axis), so a column added later that tells settings
  apart becomes part of the label without code changes. A column that splits the rows no
  further than the ones before it (`hw.cache.impl` beside `cache_impl`) is left out.
- The x of most figures is the DRAM size, in one unit for the whole sweep (memsim.core.units).
Ignores: columns that vary within a series but are not settings (metrics, paths).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from memsim.core.errors import ConfigError
from memsim.core.units import ByteUnit, byte_unit
from memsim.sweeps.table import Table

DRAM_COLUMN = "capacity_GB"
METHOD_ORDER = ("dense", "glu", "cats", "dip", "dip_ca", "dip_ra")
METHOD_LABELS = {"dense": "Dense", "glu": "GLU pruning", "cats": "CATS", "dip": "DIP",
                 "dip_ca": "DIP-CA", "dip_ra": "DIP-RA"}
CACHE_ORDER = ("none", "lru", "lfu", "belady")
CACHE_LABELS = {"none": "no cache", "lru": "LRU", "lfu": "LFU", "belady": "Belady"}
ORACLE_CACHES = ("belady",)  # know the future: upper bounds, never on a Pareto front
PANEL_COLUMNS = ("model", "hw_name")
# setting columns, in label order; dotted axis columns (dip_ca.gamma, trace.windows) follow
SETTING_COLUMNS = ("variant", "flash_layout", "density", "gamma", "cache_impl", "adapter",
                   "mode")
NOT_SETTINGS = ("hw.dram.capacity_GB",)  # the x axis itself
SETTING_NAMES = {"density": "d", "gamma": "γ", "flash_layout": "layout"}


# ---------------------------------------------------------------------- numbers and units
def numbers(table: Table, column: str) -> np.ndarray:
    """A column as floats (NaN = missing); a ConfigError naming it if it holds text."""
    try:
        return table[column].astype(float)
    except ValueError:
        raise ConfigError("a column read as numbers holds text", source=table.source,
                          key_path=column, allowed="numbers, empty for missing") from None


def dram_unit(table: Table) -> ByteUnit:
    """The one unit for DRAM sizes across the sweep (MB below 1 GB, else GB)."""
    return byte_unit(numbers(table, DRAM_COLUMN) * 1e9)


def dram_values(table: Table, unit: ByteUnit) -> np.ndarray:
    """DRAM size of each row in `unit`."""
    return unit.of(numbers(table, DRAM_COLUMN) * 1e9)


def is_oracle(table: Table) -> np.ndarray:
    """Rows whose cache policy knows the future (Belady)."""
    if "cache_impl" not in table:
        return np.zeros(len(table), dtype=bool)
    return np.isin(table["cache_impl"].astype(str), ORACLE_CACHES)


# ---------------------------------------------------------------------- panels
def panel_columns(table: Table) -> list[str]:
    """Columns that pick the panel: model, phone, hardware axes other than DRAM and cache."""
    hw_axes = [c for c in table.columns if c.startswith("hw.") and c not in NOT_SETTINGS
               and not c.startswith("hw.cache.")]
    return [c for c in (*PANEL_COLUMNS, *hw_axes) if c in table]


def panel_keys(table: Table) -> np.ndarray:
    """Per row, its panel's title: "model on phone" plus any varying hardware axis."""
    columns = panel_columns(table)
    varying = [c for c in columns[2:] if len(set(_cells(table, c))) > 1]
    titles = []
    for i in range(len(table)):
        who = " on ".join(v for v in (_cell(table, c, i) for c in columns[:2]
                                      if c in PANEL_COLUMNS) if v)
        extra = ", ".join(f"{c[3:]}={_cell(table, c, i)}" for c in varying)
        titles.append(" · ".join(v for v in (who, extra) if v))
    return np.array(titles, dtype=object)


def ordered_panels(keys: np.ndarray) -> list[str]:
    """Panel titles in first-seen order."""
    return list(dict.fromkeys(keys.tolist()))


# ---------------------------------------------------------------------- series
@dataclass(frozen=True)
class Series:
    """Which series each row belongs to, and how each series is named and drawn."""

    keys: np.ndarray  # per row, the series key
    order: tuple[str, ...]  # series keys: paper's method order, then by setting
    labels: dict[str, str]  # key -> legend text
    methods: dict[str, str]  # key -> method
    style_index: dict[str, int]  # key -> line style: rank of its non-cache settings
    oracle: dict[str, bool]  # key -> its cache policy is an oracle (drawn hollow)

    def subset(self, keep: np.ndarray) -> "Series":
        """The same series, for the rows `keep` selects (labels unchanged)."""
        keys = self.keys[keep]
        present = set(keys.tolist())
        return Series(keys, tuple(k for k in self.order if k in present), self.labels,
                      self.methods, self.style_index, self.oracle)


def series_of(table: Table) -> Series:
    """Group rows into series: a method plus the setting columns that vary within it."""
    methods = table["method"].astype(str)
    settings = setting_columns(table)
    keys, oracles = np.empty(len(table), dtype=object), is_oracle(table)
    labels, method_of, sort_key, oracle, look = {}, {}, {}, {}, {}
    for method in set(methods.tolist()):
        here = np.flatnonzero(methods == method)
        varying = _splitting_columns(table, settings, here)
        if oracles[here].all() and not any(map(_is_cache, varying)):
            varying.append("cache_impl")  # an oracle is always said
        for i in here:
            values = tuple((c, _value(table, c, i)) for c in varying)
            key = "|".join([method, *(f"{c}={_text(v)}" for c, v in values)])
            keys[i] = key
            if key not in labels:
                labels[key] = series_label(method, values)
                method_of[key] = method
                sort_key[key] = (_method_rank(method), method,
                                 tuple(_value_rank(c, v) for c, v in values))
                oracle[key] = bool(oracles[i])  # a varying policy is a setting: one per series
                look[key] = (method, tuple(v for c, v in values if not _is_cache(c)))
    order = tuple(sorted(labels, key=lambda k: sort_key[k]))
    return Series(keys, order, labels, method_of, _style_ranks(order, look), oracle)


def _style_ranks(order: tuple[str, ...], look: dict[str, tuple]) -> dict[str, int]:
    """Per series, the rank of its settings other than the cache policy among its method's
    (density 0.3 -> 0, 0.5 -> 1): series that differ only in policy share a line style."""
    ranks: dict[tuple, int] = {}
    for key in order:
        method = look[key][0]
        ranks.setdefault(look[key], sum(1 for other in ranks if other[0] == method))
    return {key: ranks[look[key]] for key in order}


def _is_cache(column: str) -> bool:
    return column in ("cache_impl", "hw.cache.impl")


def setting_columns(table: Table) -> list[str]:
    """Columns that may tell settings of one method apart, in label order."""
    dotted = [c for c in table.columns if "." in c and c not in NOT_SETTINGS
              and (not c.startswith("hw.") or c.startswith("hw.cache."))]
    return [c for c in (*SETTING_COLUMNS, *dotted) if c in table]


def _splitting_columns(table: Table, columns: list[str], rows: np.ndarray) -> list[str]:
    """Columns that split `rows` further than the ones before them."""
    chosen, groups = [], 1
    combos = [() for _ in rows]
    for column in columns:
        trial = [c + (_text(_value(table, column, i)),) for c, i in zip(combos, rows)]
        if len(set(trial)) > groups:
            chosen.append(column)
            combos, groups = trial, len(set(trial))
    return chosen


def series_label(method: str, values: tuple[tuple[str, object], ...]) -> str:
    """"DIP (d=0.5, LRU)": the method's name and each setting that tells its series apart."""
    name = METHOD_LABELS.get(method, method)
    parts = [setting_text(column, value) for column, value in values]
    return f"{name} ({', '.join(parts)})" if parts else name


def setting_text(column: str, value: object) -> str:
    """How one setting reads in a label: "d=0.5", "γ=0.3", "LRU", "layout=rows"."""
    last = column.rsplit(".", 1)[-1]
    name = SETTING_NAMES.get(last, last)
    if isinstance(value, float) and math.isnan(value):
        return f"no {name}"
    if column in ("cache_impl", "hw.cache.impl"):
        text = CACHE_LABELS.get(str(value), str(value))
        return f"{text}, upper bound" if value in ORACLE_CACHES else text
    if value == "":
        return f"default {name}" if last != "adapter" else "no adapter"
    if last == "variant":
        return str(value)
    return f"{name} {value}" if last == "adapter" else f"{name}={_text(value)}"


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


# ---------------------------------------------------------------------- selection rules
def pareto_front(perplexity: np.ndarray, tokens_per_s: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both (lower perplexity, more tokens/s),
    in order of rising perplexity; of identical points only the first is kept."""
    order = np.lexsort((-np.asarray(tokens_per_s), np.asarray(perplexity)))
    keep, best = [], -np.inf
    for i in order:
        if tokens_per_s[i] > best:
            keep.append(i)
            best = tokens_per_s[i]
    return np.array(keep, dtype=int)


def finite_rows(table: Table, columns: tuple[str, ...]) -> tuple[Table, list[str]]:
    """Rows where every column is a finite number; a note per column that dropped rows."""
    keep, notes = np.ones(len(table), dtype=bool), []
    for column in columns:
        finite = np.isfinite(numbers(table, column))
        dropped = int((keep & ~finite).sum())
        if dropped:
            notes.append(f"{dropped} row{'s' * (dropped != 1)} without {column} left out")
        keep &= finite
    return table.select(keep), notes


def context_line(table: Table) -> str:
    """"model on phone · traces: source", each listing the distinct values in the table."""
    def values(column: str) -> str:
        found = dict.fromkeys(table[column].astype(str)) if column in table else {}
        return ", ".join(v for v in found if v)
    who = " on ".join(v for v in (values("model"), values("hw_name")) if v)
    source = values("trace_source")
    return " · ".join(v for v in (who, f"traces: {source}" if source else "") if v)


# ---------------------------------------------------------------------- cells
def _cells(table: Table, column: str) -> list[str]:
    return [_text(v) for v in table[column].tolist()]


def _cell(table: Table, column: str, i: int) -> str:
    return _text(table[column][i])


def _value(table: Table, column: str, i: int):
    value = table[column][i]
    return float(value) if isinstance(value, (float, np.floating)) else str(value)


def _text(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else f"{float(value):g}"
    return str(value)


def _method_rank(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def _value_rank(column: str, value) -> tuple:
    """Cache policies in CACHE_ORDER (oracles last), numbers ascending, text by name."""
    if column in ("cache_impl", "hw.cache.impl") and value in CACHE_ORDER:
        return (0, CACHE_ORDER.index(value), "")
    if isinstance(value, float):
        return (1, -math.inf if math.isnan(value) else value, "")
    return (2, 0, str(value))
