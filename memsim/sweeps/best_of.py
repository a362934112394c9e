"""A searched bundle value: per point, the fastest of a few named settings (`best_of`).

    axes:
      variant:
        - {name: naive}
        - name: searched                    # per point: the fastest of these
          best_of:
            - {name: "model order, no merging"}
            - {name: "merge 4 KiB", hw.flash.merge_gap_KiB: 4}
            - {name: "frequency + merge 4 KiB", layout.method: frequency,
               hw.flash.merge_gap_KiB: 4}

Each candidate is an ordinary bundle value (its own point, hashed, simulated, resumable;
one equal to another point's configuration runs once, as always). The results table holds
one row per search and point of the other axes: the candidate with the most tokens/s (the
first listed on a tie), its axis value the search's name, `<axis>_choice` the candidate
chosen and `<axis>_candidates` every candidate's tokens/s, so the table, the summary and
the figures name what was chosen at each point. The row's `point_id` names the search
(`b-...`); its paths are the chosen point's. A search is shown only once every candidate
has finished. A search whose candidates all resolve to another point's configuration (dense
streaming ignores flash settings) adds no row: that point's row already says it.
Ignores: any measure but tokens/s; searching over more than one axis at a time.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from memsim.core.errors import ConfigError

SEARCH_KEY = "best_of"
CHOICE_KEY = "choice"  # in an expanded candidate: the candidate's own name
MEASURE = "tokens_per_s"


def check_search(axis: str, index: int, value: dict, source: str) -> None:
    """A `best_of` value: a name and a non-empty list of named, distinct candidates."""
    where = f"axes.{axis}[{index}]"
    extra = sorted(set(value) - {"name", SEARCH_KEY})
    if extra:
        raise ConfigError(f"a searched value holds only `name` and `{SEARCH_KEY}`, not "
                          f"{extra[0]!r} (put settings in each candidate)", source=source,
                          key_path=f"{where}.{extra[0]}", allowed=f"name, {SEARCH_KEY}")
    candidates = value[SEARCH_KEY]
    if not isinstance(candidates, list) or not candidates:
        raise ConfigError(f"`{SEARCH_KEY}` is a non-empty list of named settings",
                          source=source, key_path=f"{where}.{SEARCH_KEY}",
                          allowed="[{name: label, <axis>: value, ...}, ...]")
    names = []
    for i, candidate in enumerate(candidates):
        if not isinstance(candidate, dict) or not isinstance(candidate.get("name"), str) \
                or not candidate["name"] or SEARCH_KEY in candidate or CHOICE_KEY in candidate:
            raise ConfigError("every candidate is a mapping with a `name` and settings (no "
                              "nested search)", source=source,
                              key_path=f"{where}.{SEARCH_KEY}[{i}]",
                              allowed="{name: label, <axis>: value, ...}")
        names.append(candidate["name"])
    if len(set(names)) != len(names):
        raise ConfigError(f"candidate names repeat: {names}", source=source,
                          key_path=f"{where}.{SEARCH_KEY}", allowed="distinct names")


def is_search(value: Any) -> bool:
    return isinstance(value, dict) and SEARCH_KEY in value


def is_candidate(value: Any) -> bool:
    return isinstance(value, dict) and CHOICE_KEY in value


def check_one_search(axes: dict[str, list], source: str) -> None:
    """At most one axis searches (a search over a product of axes is not supported)."""
    searching = [axis for axis, values in axes.items() if any(map(is_search, values))]
    if len(searching) > 1:
        raise ConfigError(f"more than one axis has a `{SEARCH_KEY}` value: "
                          f"{', '.join(searching)}", source=source,
                          key_path=f"axes.{searching[1]}", allowed="one searched axis")


def expand_searches(values: list) -> list:
    """An axis's values with each searched value replaced by its candidates, each keeping the
    search's name (what the table shows) and its own name as `choice`."""
    out = []
    for value in values:
        if is_search(value):
            out += [{**{k: v for k, v in c.items() if k != "name"}, "name": value["name"],
                     CHOICE_KEY: c["name"]} for c in value[SEARCH_KEY]]
        else:
            out.append(value)
    return out


@dataclass
class Search:
    """One search at one point of the other axes: candidate name -> point id, in order."""

    key: str  # digest of the other axes' values and the search's name
    axis: str
    name: str  # the search's name: the axis value its row shows
    candidates: dict[str, str]


def search_groups(sweep) -> dict[str, Search]:
    """Every search of the sweep, at every combination of the other axes where its points
    make sense (`sweep` is a memsim.sweeps.spec.SweepSpec)."""
    from memsim.sweeps.spec import _apply, invalid_reason  # spec imports this module

    names = list(sweep.axes)
    groups: dict[str, Search] = {}
    for combo in itertools.product(*(sweep.axes[n] for n in names)):
        searched = [(n, v) for n, v in zip(names, combo) if is_candidate(v)]
        if not searched:
            continue
        point = _apply(sweep, tuple(zip(names, combo)))
        if invalid_reason(point) is not None:
            continue
        key = _digest([(n, {"name": v["name"], SEARCH_KEY: True} if is_candidate(v) else v)
                       for n, v in zip(names, combo)])
        axis, value = searched[0]
        group = groups.setdefault(key, Search(key, axis, value["name"], {}))
        group.candidates.setdefault(value[CHOICE_KEY], point.point_id)
    return groups


def _digest(data) -> str:
    text = json.dumps(data, sort_keys=True, default=str)
    return "b-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def searched_row(search: Search, rows: dict[str, dict]) -> dict | None:
    """The search's table row (its fastest candidate's row, relabelled), or None until every
    candidate has a row."""
    found = {name: rows.get(pid) for name, pid in search.candidates.items()}
    if any(row is None for row in found.values()):
        return None
    chosen = max(found, key=lambda name: (found[name][MEASURE],
                                          -list(found).index(name)))
    return {**found[chosen], "point_id": search.key, search.axis: search.name,
            f"{search.axis}_choice": chosen,
            f"{search.axis}_candidates": "; ".join(
                f"{name}: {row[MEASURE]:.6g}" for name, row in found.items())}


def choice_notes(table) -> list[str]:
    """Per searched series, which candidate won at which DRAM sizes, for the figures:
    "DIP (searched): model order, no merging at 36-42 MB; merge 4 KiB at 48-72 MB"."""
    from memsim.sweeps.grouping import dram_unit, dram_values, series_of

    columns = [c for c in table.columns if c.endswith("_choice")]
    if not columns or "capacity_GB" not in table:
        return []
    series, unit = series_of(table), dram_unit(table)
    dram = dram_values(table, unit)
    notes = []
    for key in series.order:
        rows = [i for i in range(len(table)) if series.keys[i] == key
                and any(table[c][i] for c in columns)]
        rows.sort(key=lambda i: dram[i])
        runs: list[tuple[str, list[float]]] = []
        for i in rows:
            choice = ", ".join(str(table[c][i]) for c in columns if table[c][i])
            if runs and runs[-1][0] == choice:
                runs[-1][1].append(dram[i])
            else:
                runs.append((choice, [dram[i]]))
        if runs:
            notes.append(f"{series.labels[key]}: " + "; ".join(
                f"{choice} at {_sizes(sizes)} {unit.name}" for choice, sizes in runs))
    return notes


def _sizes(values: list[float]) -> str:
    """"36" , "36, 42" or "48-72": a run of DRAM sizes of the grid."""
    text = [f"{v:.4g}" for v in values]
    return ", ".join(text) if len(text) <= 2 else f"{text[0]}-{text[-1]}"
