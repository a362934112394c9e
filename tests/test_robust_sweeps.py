"""Sweep process hygiene: A killed driver (SIGKILL, SIGTERM) leaves
no worker alive and the resumed sweep equals an uninterrupted one; Ctrl-C is one line, also
with Dask; an unreachable scheduler is one line; "rerun to resume" only when a rerun can
help; a grid filtered to nothing, or an unknown model, is an error before any work.
LocalClusters here listen on 127.0.0.1 only (memsim's dask executor binds them there)."""
from __future__ import annotations

import copy
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memsim.sweeps import load_sweep, read_results, run_sweep
from memsim.sweeps.hold import HOLD_ENV
from tests.badinput import expect_clean, record, run_cli
from tests.robust_inputs import SYNTH_SWEEP, sweep_file

CAT = "sweep process hygiene"  # its category in the bad-input tally (tests/badinput.py)
ROOT = Path(__file__).resolve().parents[1]
# 32 points; started with a hold (memsim/sweeps/hold.py), the sweep finishes a point or two
# and then waits, so it is provably still running when the test strikes, however fast
SLOW = {"name": "slow", "base": {"hw": "flagship", "model": "phi-3-mini",
                                 "trace": {"source": "synthetic", "tokens": 192, "windows": 1}},
        "axes": {"hw.dram.capacity_GB": [1.0 + 0.25 * i for i in range(16)],
                 "method": ["dip", "dense"]}}
KEEP = ("point_id", "tokens_per_s", "hit_rate", "flash_bytes_per_token", "ttft_s",
        "dram_used_bytes", "time_per_token_s")


def _rows(out: Path) -> dict:
    return {r["point_id"]: tuple(r[k] for k in KEEP) for r in read_results(out).rows()}


@pytest.fixture(scope="module")
def slow_file(tmp_path_factory) -> Path:
    return sweep_file(tmp_path_factory.mktemp("slow"), SLOW)


@pytest.fixture(scope="module")
def uninterrupted(slow_file) -> dict:
    out = slow_file.parent / "clean"
    run_sweep(load_sweep(slow_file), out, workers=2, progress=False)
    return _rows(out)


def _start(argv: list[str], hold: Path, new_session: bool = False) -> subprocess.Popen:
    """`memsim ARGV` with a hold: its points wait at `hold` once one point is done. Ctrl-C
    is at its default in the child, as in a terminal: pytest run as a background job of a
    script (CI, `cmd &`) has SIGINT ignored, which a child would inherit."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", HOLD_ENV: str(hold)}
    return subprocess.Popen([sys.executable, "-m", "memsim", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=new_session, preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_until_held(out: Path, hold: Path, proc: subprocess.Popen) -> None:
    """Until a point task waits at the hold: a point is done, others are left (a state, not
    a duration; the sweep cannot finish before the hold file exists)."""
    while not Path(f"{hold}.held").exists():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    assert list(out.glob("points/*/row.json"))


def _messages(err: str) -> list[str]:
    """stderr without progress-bar redraws (tqdm writes `NN%|...|` lines)."""
    lines = (part.strip() for line in err.splitlines() for part in line.split("\r"))
    return [line for line in lines if line and not re.search(r"\d+%\|", line)]


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (workers, and anything they started)."""
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            children = task / "children"
            if children.exists():
                for child in map(int, children.read_text().split()):
                    if child not in found:
                        found.add(child)
                        todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _none_alive(pids: set[int], within_s: float = 5.0) -> bool:
    deadline = time.time() + within_s
    while time.time() < deadline:
        if not any(map(_alive, pids)):
            return True
        time.sleep(0.1)
    return not any(map(_alive, pids))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_driver_leaves_no_worker_and_the_resumed_sweep_equals_an_uninterrupted_one(
        slow_file, uninterrupted, tmp_path, sig):
    out, hold = tmp_path / "out", tmp_path / "release"
    proc = _start(["sweep", str(slow_file), "--out", str(out), "--workers", "2"], hold)
    try:
        _wait_until_held(out, hold, proc)
        workers = _descendants(proc.pid)
        assert workers and proc.poll() is None
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        hold.touch()  # lets any task still held finish if the test failed
    survivors = not _none_alive(workers)
    record(CAT, "traceback" if survivors or "Traceback" in err else "clean")
    assert not survivors, f"workers alive 5 s after {sig.name}: {workers}"
    if sig == signal.SIGTERM:  # the driver stops its workers, keeps its table, says so
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert _messages(err) == [
            "memsim: terminated (SIGTERM); finished points are kept: rerun the same command "
            "to resume"], err
    assert len(_rows(out) if (out / "results.parquet").exists() else {}) < len(uninterrupted)
    report = run_sweep(load_sweep(slow_file), out, workers=2, progress=False)
    assert report.num_failed == 0 and report.num_done_before >= 1
    assert _rows(out) == uninterrupted
    assert not list(out.rglob("*.tmp"))


@pytest.mark.parametrize("executor", ["local", pytest.param("dask", marks=pytest.mark.slow)])
def test_ctrl_c_prints_one_line_and_leaves_no_process(slow_file, tmp_path, executor):
    if executor == "dask":
        pytest.importorskip("dask.distributed")
    out, hold = tmp_path / "out", tmp_path / "release"
    proc = _start(["sweep", str(slow_file), "--out", str(out), "--workers",
                   "1" if executor == "dask" else "2", "--executor", executor], hold,
                  new_session=True)
    try:
        _wait_until_held(out, hold, proc)
        group = _descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does: the whole group
        _, err = proc.communicate(timeout=60)
    finally:
        hold.touch()
    one_line = _messages(err) == ["memsim: interrupted; finished points are kept: rerun the same "
                         "command to resume"]
    record(CAT, "clean" if one_line and "Traceback" not in err else "traceback")
    assert one_line, err
    assert proc.returncode == 130
    assert _none_alive(group), [p for p in group if _alive(p)]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


@pytest.mark.parametrize("address", ["closed port", "tcp://not a host:1", "bogus://x"])
def test_an_unreachable_scheduler_is_one_line(tmp_path, monkeypatch, address):
    pytest.importorskip("dask.distributed")
    import memsim.sweeps.executors.dask as dask_executor

    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT_S", 1.0)
    if address == "closed port":
        address = f"tcp://127.0.0.1:{_closed_port()}"
    start = time.time()
    run_cli(CAT, ["sweep", str(sweep_file(tmp_path)), "--out", str(tmp_path / "o"),
                  "--executor", "dask", "--scheduler", address], "--scheduler", address)
    assert time.time() - start < 30


def test_a_rerun_is_offered_only_when_it_can_help(tmp_path):
    """A point that fails on its input (a flash layout made for another model) fails the
    same way on a rerun: the sweep says to fix the input, not to rerun."""
    from memsim.hw.layouts import build_layout
    from memsim.traces import load_model_shape, synth_trace

    other = synth_trace(load_model_shape("phi-3-mini"), 2, 0.5)
    layout = build_layout(other, "frequency").save(tmp_path / "phi3_layout.npz")
    data = copy.deepcopy(SYNTH_SWEEP)
    data["axes"] = {"hw.flash.layout": [None, str(layout)], "method": ["dip"]}
    err = run_cli(CAT, ["sweep", str(sweep_file(tmp_path, data)), "--out",
                        str(tmp_path / "o")], "phi3_layout.npz",
                  "a rerun would fail the same way", marker="tasks failed")
    assert "rerun the same command to resume" not in err
    assert len(read_results(tmp_path / "o")) == 1  # the good point is kept


def test_a_point_whose_kv_cache_cannot_fit_is_refused_before_any_work(tmp_path):
    data = copy.deepcopy(SYNTH_SWEEP)
    data["axes"]["hw.dram.capacity_GB"] = [0.06, 1e-6]
    run_cli(CAT, ["sweep", str(sweep_file(tmp_path, data)), "--out", str(tmp_path / "o")],
            "hw.dram.capacity_GB=1e-06", "exceeds DRAM")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("axes,reason", [
    ({"method": ["cats"], "density": [0.2, 0.3]}, "reads W_gate in full"),
    ({"method": ["dip_ca"], "cache.impl": ["belady"]}, "offline oracle"),
    ({"method": ["glu", "cats"], "density": [0.1]}, "in full")])
def test_a_sweep_whose_every_point_is_filtered_says_why_and_makes_nothing(tmp_path, axes,
                                                                          reason):
    data = copy.deepcopy(SYNTH_SWEEP)
    data["base"]["trace"] = {"source": "model"}
    data["axes"] = axes
    out = tmp_path / "o"
    run_cli(CAT, ["sweep", str(sweep_file(tmp_path, data)), "--out", str(out)],
            "filtered out", reason)
    assert not out.exists()


MODEL_CASES = {
    "unknown base model": ({"model": "gpt-17"}, {}, "base.model"),
    "unknown model on an axis": ({}, {"model": ["smollm2-135m", "gpt-17"]}, "axes.model"),
    "no weights for a real pass": ({"model": "phi-3-mini", "trace": {"source": "model"}}, {},
                                   "base.model"),
    "missing corpus": ({"trace": {"source": "model", "corpus": "nowhere.txt"}}, {},
                       "corpus"),
    "missing adapter": ({"adapter": "no/such/adapter", "trace": {"source": "model"}}, {},
                        "adapter"),
    "config.json not JSON": ({"model": "BROKEN"}, {}, "config.json"),
}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_an_unknown_model_or_input_is_caught_before_any_work(tmp_path, case):
    base, axes, needle = MODEL_CASES[case]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{oops")
    data = copy.deepcopy(SYNTH_SWEEP)
    data["base"].update({k: (str(broken) if v == "BROKEN" else v) for k, v in base.items()})
    data["axes"].update(axes)
    path = sweep_file(tmp_path, data)
    expect_clean(CAT, lambda: load_sweep(path), str(path), needle)
    run_cli(CAT, ["sweep", str(path), "--out", str(tmp_path / "o")], needle)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flags,needle", [(["--workers", "0"], "--workers"),
                                          (["--executor", "spark"], "--executor"),
                                          (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler")])
def test_bad_sweep_flags_are_one_line_before_any_work(tmp_path, flags, needle):
    run_cli(CAT, ["sweep", str(sweep_file(tmp_path)), "--out", str(tmp_path / "o"), *flags],
            needle)
    assert not (tmp_path / "o").exists()


def _sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _sigterm_disposition(_: int):
    return signal.getsignal(signal.SIGTERM)


def test_local_workers_do_not_inherit_the_drivers_sigterm_handler():
    from memsim.sweeps.executors.base import sigterm_as_interrupt
    from memsim.sweeps.executors.local import LocalExecutor

    with sigterm_as_interrupt(), LocalExecutor(workers=2) as pool:
        results = [r for _, r in pool.run(_sigterm_disposition, [(0,), (1,)])]
    assert results == [signal.SIG_DFL, signal.SIG_DFL]


def test_a_worker_killed_while_the_other_works_fails_its_tasks_and_never_hangs():
    """The pool terminates the surviving worker when one dies; a worker that caught that
    SIGTERM (the driver's handler, inherited through fork) could keep the driver joining it
    forever. Whether the old bug hangs here depends on timing; the test above is the
    deterministic guard, this one checks the failure path end to end."""
    from concurrent.futures.process import BrokenProcessPool

    script = (
        "import os, signal, sys, threading, time\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from tests.test_robust_sweeps import _sleep_then_pid\n"
        "from memsim.sweeps.executors.base import sigterm_as_interrupt\n"
        "from memsim.sweeps.executors.local import LocalExecutor\n"
        "def kill(pool):\n"  # once both workers run a task: the partner is mid-task
        "    while len(pool.worker_pids()) < 2: time.sleep(0.05)\n"
        "    time.sleep(1.0)\n"
        "    os.kill(pool.worker_pids()[0], signal.SIGKILL)\n"
        "with sigterm_as_interrupt(), LocalExecutor(workers=2) as pool:\n"
        "    threading.Thread(target=kill, args=(pool,), daemon=True).start()\n"
        "    kinds = sorted({type(r).__name__ for _, r in pool.run(_sleep_then_pid, [(30,)] * 6)})\n"
        "print(kinds)\n")
    done = subprocess.run([sys.executable, "-c", script, str(ROOT)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)  # a hang: 6 tasks of 30 s
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str([BrokenProcessPool.__name__])
