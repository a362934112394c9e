"""The results table: one row per sweep point, written by the sweep and read by the plots.

Stored as `DIR/results.parquet` when pyarrow is importable, else `DIR/results.csv`; either is
written whole to a temporary file and moved into place with `os.replace`, so a reader never
sees half a table. Columns are the union of the rows' keys, in first-seen order. A column is
text when it is a known text column (`point_id`, `method`, `*_path`, ...) or holds any string;
otherwise it is numeric and stored as float, with NaN for missing (None) cells. Missing text is
"". Ignores: column types other than text and numbers (lists, dicts are written as their str),
and appending (the writer rewrites the whole table; a sweep's tables are small). pandas is not
needed, except by `load_results`, which hands the same table to pandas users as a DataFrame.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import numbers
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from memsim.core.errors import ConfigError
from memsim.core.files import as_path, output_error

try:  # optional (the `dist` extra); tests flip this flag to exercise the CSV path
    import pyarrow as pa
    import pyarrow.parquet as pq
    HAS_PYARROW = True
except ImportError:  # pragma: no cover - depends on the environment
    pa = pq = None
    HAS_PYARROW = False

RESULTS_STEM = "results"
DIGEST_KEY = b"memsim.sha256"  # Parquet metadata: table_digest of the contents
# Text even when every value looks like a number (a hashed point_id can read as "1e5").
TEXT_COLUMNS = frozenset({"point_id", "hw_name", "model", "method", "cache_impl", "adapter",
                          "trace_source", "config_path", "trace_path", "result_path", "impl",
                          "name", "thermal", "background", "session"})


class Table:
    """Equal-length columns: numbers as float arrays (NaN = missing), text as object arrays.

    `table[col]` gives a column, `table.columns` their names, `len(table)` the row count and
    `table.rows()` one dict per row. `source` names the file it came from (for errors).
    """

    def __init__(self, columns: dict[str, np.ndarray], source: str = "<api>"):
        lengths = {len(values) for values in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of unequal lengths {sorted(lengths)}")
        self._columns = {name: np.asarray(values) for name, values in columns.items()}
        self._num_rows = lengths.pop() if lengths else 0
        self.source = source

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def __len__(self) -> int:
        return self._num_rows

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._columns:
            raise ConfigError("no such column in the results table", source=self.source,
                              key_path=name, allowed=", ".join(self.columns) or "(no columns)")
        return self._columns[name]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per row with Python scalars (float or str)."""
        lists = {name: values.tolist() for name, values in self._columns.items()}
        return [{name: lists[name][i] for name in lists} for i in range(self._num_rows)]

    def select(self, keep: np.ndarray) -> Table:
        """The rows where the boolean array `keep` is true (or at the given indices)."""
        return Table({name: values[keep] for name, values in self._columns.items()},
                     source=self.source)

    def require(self, names: Iterable[str], purpose: str) -> None:
        """Raise a ConfigError naming every column in `names` the table lacks."""
        missing = [name for name in names if name not in self._columns]
        if missing:
            raise ConfigError(f"{purpose} needs column(s) {', '.join(missing)}, which the "
                              "results table lacks", source=self.source,
                              key_path=", ".join(missing),
                              allowed="columns present: " + (", ".join(self.columns) or "none"))


# ---------------------------------------------------------------------- column typing
def is_text_column(name: str) -> bool:
    """Known text columns (by the last part of a dotted name, e.g. `cache.impl`)."""
    last = name.rsplit(".", 1)[-1]
    return last in TEXT_COLUMNS or last.endswith(("_path", "_choice", "_candidates"))


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, (numbers.Real, np.bool_)) and not isinstance(value, str)


def _typed_column(name: str, values: list[Any]) -> np.ndarray:
    """Float array (NaN for missing) unless the column is text; then str, "" for missing."""
    present = [v for v in values if not _is_missing(v)]
    if not is_text_column(name) and all(_is_number(v) for v in present):
        return np.array([math.nan if _is_missing(v) else float(v) for v in values], dtype=float)
    return np.array(["" if _is_missing(v) else str(v) for v in values], dtype=object)


def table_from_rows(rows: list[dict[str, Any]], source: str = "<api>") -> Table:
    """Columns are the union of the rows' keys in first-seen order; absent keys are missing."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    return Table({name: _typed_column(name, [row.get(name) for row in rows]) for name in names},
                 source=source)


# ---------------------------------------------------------------------- writing
def results_path(out_dir: str | Path) -> Path:
    """The file `write_results` writes in `out_dir` (parquet if pyarrow is importable)."""
    return Path(out_dir) / f"{RESULTS_STEM}.{'parquet' if HAS_PYARROW else 'csv'}"


def write_results(rows: list[dict[str, Any]], out_dir: str | Path) -> Path:
    """Write `rows` as the results table in `out_dir`, atomically; return the file's path."""
    path = results_path(out_dir)
    table = table_from_rows(rows, source=str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    os.close(fd)
    try:
        (_write_parquet if path.suffix == ".parquet" else _write_csv)(table, Path(tmp_name))
        os.replace(tmp_name, path)
    except BaseException as exc:
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # a full disk, a vanished folder: say which file
            raise output_error(path, exc) from None
        raise
    return path


def _write_parquet(table: Table, path: Path) -> None:
    arrays = {}
    for name in table.columns:
        values = table[name]
        if values.dtype == object:
            arrays[name] = pa.array(values.tolist(), type=pa.string())
        else:  # NaN is stored as null so other readers see "missing", not a number
            arrays[name] = pa.array(values, type=pa.float64(), mask=np.isnan(values))
    arrow = pa.table(arrays).replace_schema_metadata({DIGEST_KEY: table_digest(table)})
    pq.write_table(arrow, path)
    _fsync(path)


def _write_csv(table: Table, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(table.columns)
        for row in table.rows():
            writer.writerow([_csv_cell(value) for value in row.values()])
        f.flush()
        os.fsync(f.fileno())


def _csv_cell(value: Any) -> str:
    if isinstance(value, float):  # repr round-trips exactly; NaN is an empty cell
        return "" if math.isnan(value) else repr(value)
    return value


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- reading
def read_results(path_or_dir: str | Path) -> Table:
    """Read a results table: a .parquet or .csv file, or a folder holding results.*."""
    path = _find_results_file(as_path(path_or_dir, "results table or sweep folder"))
    if path.suffix == ".parquet":
        if not HAS_PYARROW:
            raise ConfigError("reading Parquet needs pyarrow", source=str(path),
                              allowed="pip install -e '.[dist]', or a results.csv")
        return _read_or_explain(_read_parquet, path)
    return _read_or_explain(_read_csv, path)


def _read_or_explain(read, path: Path) -> Table:
    """`read(path)`, with a damaged file (truncated, corrupted, not UTF-8, not a table) as a
    ConfigError naming it and how to make it again."""
    try:
        return read(path)
    except ConfigError:
        raise
    except UnicodeDecodeError as exc:
        why = f"not UTF-8 text (byte {exc.start})"
    except Exception as exc:  # noqa: BLE001 - pyarrow/csv raise many types on damage
        why = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    raise ConfigError(f"cannot read the results table ({why}); the file is damaged",
                      source=str(path), allowed="rerun `memsim sweep` with the same file and "
                      "--out: it rebuilds the table from the finished points")


def _find_results_file(path: Path) -> Path:
    if path.is_file():
        if path.suffix not in (".parquet", ".csv"):
            raise ConfigError("not a results table", source=str(path), allowed=".parquet or .csv")
        return path
    preferred = ("parquet", "csv") if HAS_PYARROW else ("csv", "parquet")
    for suffix in preferred:
        candidate = path / f"{RESULTS_STEM}.{suffix}"
        if candidate.is_file():
            return candidate
    raise ConfigError("no results table found", source=str(path),
                      allowed=f"a folder with {RESULTS_STEM}.parquet or {RESULTS_STEM}.csv "
                              "(written by `memsim sweep`), or the file itself")


def _read_parquet(path: Path) -> Table:
    arrow = pq.read_table(path)
    recorded = (arrow.schema.metadata or {}).get(DIGEST_KEY)
    columns = {}
    for name, column in zip(arrow.column_names, arrow.columns):
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            columns[name] = np.array(["" if v is None else v for v in column.to_pylist()],
                                     dtype=object)
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind) \
                or pa.types.is_boolean(kind) or pa.types.is_null(kind):
            columns[name] = np.array([math.nan if v is None else float(v)
                                      for v in column.to_pylist()], dtype=float)
        else:  # anything else (lists, structs) as text, so plots can still ignore it
            columns[name] = np.array([str(v) for v in column.to_pylist()], dtype=object)
    table = Table(columns, source=str(path))
    if recorded is not None and recorded.decode("ascii", "replace") != table_digest(table):
        raise ConfigError("the table's contents do not match the checksum written with them "
                          "(damaged)", source=str(path))
    return table


def table_digest(table: Table) -> str:
    """sha256 of a table's column names and values (NaN normalised), written into a Parquet
    file's metadata so that damage the format itself does not detect (a changed byte in a
    value or a column name) is found on reading."""
    digest = hashlib.sha256()
    for name in table.columns:
        values = table[name]
        digest.update(json.dumps(name).encode() + b"\x00")
        if values.dtype == object:
            digest.update(b"T" + json.dumps([str(v) for v in values]).encode())
        else:
            digest.update(b"F" + np.where(np.isnan(values), np.nan, values).astype("<f8")
                          .tobytes())
    return digest.hexdigest()


def _read_csv(path: Path) -> Table:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        cells = list(reader)
    _check_rectangular(path, header, cells)
    columns = {name: _parse_csv_column(name, [row[i] if i < len(row) else "" for row in cells])
               for i, name in enumerate(header)}
    return Table(columns, source=str(path))


def _check_rectangular(path: Path, header: list[str], cells: list[list[str]]) -> None:
    """Every row has the header's cells (a truncated or edited file does not)."""
    if not header or len(set(header)) != len(header):
        raise ConfigError("the header row is empty or repeats a column", source=str(path),
                          allowed="a results table written by memsim")
    for number, row in enumerate([header, *cells], start=1):
        if number > 1 and len(row) != len(header):
            raise ConfigError(f"line {number} has {len(row)} cells, the header {len(header)} "
                              "(truncated or damaged)", source=str(path),
                              allowed="rerun `memsim sweep` to rebuild the table")
        if any("\x00" in cell for cell in row):  # never written by memsim: zeroed blocks
            raise ConfigError(f"line {number} holds NUL bytes (damaged)", source=str(path),
                              allowed="rerun `memsim sweep` to rebuild the table")


def _parse_csv_column(name: str, cells: list[str]) -> np.ndarray:
    """Float (empty = NaN) when every non-empty cell parses as a number, else text."""
    if not is_text_column(name):
        try:
            return np.array([float(c) if c != "" else math.nan for c in cells], dtype=float)
        except ValueError:
            pass
    return np.array(cells, dtype=object)


# ---------------------------------------------------------------------- pandas
def load_results(path_or_dir: str | Path):
    """The results table as a pandas DataFrame: a column per table column, in order; numbers
    as float64 (NaN = missing), text as str ("" = missing). Needs pandas (the `all` extra)."""
    return to_dataframe(read_results(path_or_dir))


def to_dataframe(table: Table):
    """`table` as a pandas DataFrame (same columns, same values)."""
    try:
        import pandas as pd
    except ImportError:
        raise ConfigError("memsim.load_results needs pandas", source=table.source,
                          allowed="pip install pandas, or pip install -e '.[all]'; without "
                                  "pandas, memsim.sweeps.read_results gives the same table"
                          ) from None
    return pd.DataFrame({name: table[name] for name in table.columns})
