"""Damaged results tables and sweep folders. `memsim plot` names a
damaged table; a sweep finds damaged cached artefacts (checksums recorded when written),
makes them again, and ends with the table an undamaged run gives; temp files killed writers
left are removed at every level."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memsim.core.errors import ConfigError
from memsim.sweeps import load_sweep, read_results, run_sweep
from tests.badinput import expect_clean, record, run_cli
from tests.robust_inputs import finished_sweep, sweep_file

CAT = "damaged results and sweep folders"  # its category in the bad-input tally (tests/badinput.py)
FUZZ = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
NOT_PATHS = ("config_path", "trace_path", "result_path")


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> Path:
    """A finished sweep folder (results.parquet, traces/, points/), never modified."""
    return finished_sweep(tmp_path_factory.mktemp("done"))


def _table_rows(path: Path) -> list[dict]:
    """The table's rows without the path columns (they name the folder)."""
    return [{k: v for k, v in row.items() if k not in NOT_PATHS}
            for row in read_results(path).rows()]


def _same_rows(a: list[dict], b: list[dict]) -> bool:
    def norm(rows):
        return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
                for r in rows]
    return norm(a) == norm(b)


# ---------------------------------------------------------------- results tables
@FUZZ
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                      min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.floats(0, 1, exclude_max=True)))
def test_random_damage_to_results_parquet_is_named_or_harmless(done, tmp_path, edits, cut):
    data = bytearray((done / "results.parquet").read_bytes())
    for where, byte in edits:
        data[int(where * len(data))] = byte
    if cut is not None:
        data = data[:int(cut * len(data))]
    path = tmp_path / "results.parquet"
    path.write_bytes(bytes(data))
    try:
        rows = _table_rows(path)
    except ConfigError as exc:
        record(CAT, "clean")
        assert str(path) in str(exc)
        return
    except Exception as exc:  # noqa: BLE001
        record(CAT, "traceback")
        raise AssertionError(f"{type(exc).__name__}: {exc}") from exc
    if not _same_rows(rows, _table_rows(done / "results.parquet")):
        record(CAT, "silent")
        raise AssertionError("a damaged table was read as a different table")
    record(CAT, "clean")  # the damage hit bytes the reader ignores


def _damaged_tables(folder: Path, done: Path) -> dict[str, Path]:
    parquet = (done / "results.parquet").read_bytes()
    cases = {"parquet truncated": ("results.parquet", parquet[:len(parquet) // 2]),
             "parquet empty": ("results.parquet", b""),
             "parquet zeros": ("results.parquet", bytes(len(parquet))),
             "parquet is CSV": ("results.parquet", b"a,b\n1,2\n"),
             "csv not UTF-8": ("results.csv", b"point_id,tokens_per_s\np-1,\xff\xfe3.5\n"),
             "csv latin-1": ("results.csv", "method,tokens_per_s\ndéjà,3\n".encode("latin-1")),
             "csv NUL bytes": ("results.csv", b"point_id,x\np-1,\x00\x00\n"),
             "csv truncated row": ("results.csv", b"point_id,method,tokens_per_s\np-1,dip\n"),
             "csv empty": ("results.csv", b""),
             "csv repeated column": ("results.csv", b"a,a\n1,2\n")}
    out = {}
    for case, (name, data) in cases.items():
        sub = folder / case.replace(" ", "_")
        sub.mkdir()
        (sub / name).write_bytes(data)
        out[case] = sub / name
    return out


CASES = ["parquet truncated", "parquet empty", "parquet zeros", "parquet is CSV",
         "csv not UTF-8", "csv latin-1", "csv NUL bytes", "csv truncated row", "csv empty",
         "csv repeated column"]


@pytest.mark.parametrize("case", CASES)
def test_memsim_plot_names_a_damaged_results_table(done, tmp_path, case):
    path = _damaged_tables(tmp_path, done)[case]
    run_cli(CAT, ["plot", str(path), "--out", str(tmp_path / "plots")], str(path))
    run_cli(CAT, ["plot", str(path.parent), "--out", str(tmp_path / "plots")], str(path))
    assert not (tmp_path / "plots").exists() or not any((tmp_path / "plots").iterdir())


# ---------------------------------------------------------------- sweep folders
def _copy(done: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(done, out)
    return out


def _sweep_of(out: Path):
    return load_sweep(sweep_file(out.parent))


def _forget_points(out: Path) -> None:
    """As if the sweep had been killed after its traces, before its points."""
    for row in out.glob("points/*/row.json"):
        row.unlink()


def _damage(kind: str, out: Path) -> Path:
    trace_dir = next(out.glob("traces/t-*"))
    point_dir = next(out.glob("points/p-*"))
    if kind.startswith("trace.npz"):
        _forget_points(out)
        path = trace_dir / "trace.npz"
        data = bytearray(path.read_bytes())
        if kind == "trace.npz flipped byte":
            data[len(data) // 2] ^= 0xFF
        elif kind == "trace.npz truncated":
            data = data[:len(data) // 3]
        elif kind == "trace.npz missing":
            path.unlink()
            return path
        path.write_bytes(bytes(data))
        return path
    if kind.startswith("eval.json"):
        _forget_points(out)
        path = trace_dir / "eval.json"
        path.write_bytes({"eval.json truncated": path.read_bytes()[:7],
                          "eval.json not UTF-8": b"\xff\xfe{}",
                          "eval.json a list": b"[1, 2]",
                          "eval.json wrong checksum": json.dumps(
                              {**json.loads(path.read_text()), "trace_sha256": "0" * 64}
                          ).encode()}[kind])
        return path
    path = point_dir / "row.json"
    path.write_bytes({"row.json truncated": path.read_bytes()[:20],
                      "row.json not UTF-8": b"\xff\xfe",
                      "row.json another point": json.dumps({"point_id": "p-other"}).encode(),
                      "row.json a number": b"3"}[kind])
    return path


DAMAGE = ["trace.npz flipped byte", "trace.npz truncated", "trace.npz missing",
          "eval.json truncated", "eval.json not UTF-8", "eval.json a list",
          "eval.json wrong checksum", "row.json truncated", "row.json not UTF-8",
          "row.json another point", "row.json a number"]


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_sweep_remakes_damaged_cached_artefacts_and_ends_with_the_same_table(
        done, tmp_path, capsys, kind):
    out = _copy(done, tmp_path)
    damaged = _damage(kind, out)
    capsys.readouterr()
    try:
        report = run_sweep(_sweep_of(out), out, progress=False)
    except Exception as exc:  # noqa: BLE001
        record(CAT, "traceback")
        raise AssertionError(f"{type(exc).__name__}: {exc}") from exc
    err = capsys.readouterr().err
    if report.num_failed:
        record(CAT, "traceback")  # the same points would fail on every rerun
        raise AssertionError(report.failures)
    if str(damaged.parent) not in err:
        record(CAT, "silent")
        raise AssertionError(f"the damaged {damaged} was not reported: {err!r}")
    record(CAT, "clean")
    assert _same_rows(_table_rows(out), _table_rows(done))
    assert Path(damaged).exists()


def test_temp_files_left_by_killed_writers_are_removed_at_every_level(done, tmp_path):
    out = _copy(done, tmp_path)
    trace_dir, point_dir = next(out.glob("traces/t-*")), next(out.glob("points/p-*"))
    temps = [out / ".results.parquet.abc123.tmp", out / ".dropped.json.77.tmp",
             trace_dir / ".trace.npz.12.tmp", trace_dir / ".eval.json.12.tmp",
             point_dir / ".row.json.99.tmp", point_dir / ".result.json.99.tmp",
             out / "traces" / ".t-half.tmp" / "trace.npz", out / "plots" / ".fig.png.5.tmp"]
    deeper = point_dir / "user" / "data" / ".notes.tmp"  # not a level memsim writes: kept
    for temp in [*temps, deeper]:
        temp.parent.mkdir(parents=True, exist_ok=True)
        temp.write_bytes(b"half")
    report = run_sweep(_sweep_of(out), out, progress=False)
    assert report.num_failed == 0
    assert list(out.rglob("*.tmp")) == [deeper], list(out.rglob("*.tmp"))
    assert _same_rows(_table_rows(out), _table_rows(done))


def test_a_damaged_statistics_or_layout_file_is_named(tmp_path):
    """The other files memsim reads back: calibration statistics (.json) and flash layouts
    (.npz)."""
    from memsim.hw.layouts import load_layout
    from memsim.traces.calibrated import TraceStatistics

    for data in (b"", b"{not json", b"\xff\xfe", b"[1]"):
        path = tmp_path / "stats.json"
        path.write_bytes(data)
        expect_clean(CAT, lambda: TraceStatistics.load(path), str(path))
    for data in (b"", b"PK\x03\x04 half a zip", b"\x93NUMPY"):
        path = tmp_path / "layout.npz"
        path.write_bytes(data)
        expect_clean(CAT, lambda: load_layout(path), str(path))
