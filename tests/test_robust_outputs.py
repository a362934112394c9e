"""Output locations: An --out that is a file (or a folder where a file
goes), a folder the user may not write, a full disk: every command says which path and why,
exits non-zero, and leaves nothing half-written.

Permissions are tested as a real unprivileged user (`nobody`, via setpriv) because root
bypasses mode bits; where that is impossible (no setpriv, or not root) the same commands run
in this process, which is then unprivileged itself. A full disk is a real tmpfs filled to
the brim where this machine lets the tests mount one, and always an ENOSPC injected into
memsim's writes.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.badinput import record, run_cli
from tests.robust_inputs import corpus_file, files_in, finished_sweep, sweep_file, trace_file

CAT = "output locations"  # its category in the bad-input tally (tests/badinput.py)
ROOT = Path(__file__).resolve().parents[1]
FOLDER_OUTPUTS = ("simulate", "sweep", "plot", "eval", "finetune", "demo")
FILE_OUTPUTS = ("trace synth", "trace calibrate", "layout build")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    return {"trace": trace_file(folder), "sweep": sweep_file(folder),
            "results": finished_sweep(folder), "corpus": corpus_file(folder)}


def argv_for(command: str, out: str, inputs: dict[str, Path]) -> list[str]:
    i = {k: str(v) for k, v in inputs.items()}
    return {"simulate": ["simulate", "--hw", "flagship", "--trace", i["trace"], "--out", out],
            "sweep": ["sweep", i["sweep"], "--out", out],
            "plot": ["plot", i["results"], "--out", out],
            "eval": ["eval", "--model", "smollm2-135m", "--corpus", i["corpus"], "--out", out],
            "finetune": ["finetune", "--model", "smollm2-135m", "--corpus", i["corpus"],
                         "--out", out],
            "demo": ["demo", "--out", out],
            "trace synth": ["trace", "synth", "--model", "smollm2-135m", "--tokens", "4",
                            "--out", out],
            "trace calibrate": ["trace", "calibrate", "--from", i["trace"], "--model",
                                "smollm2-135m", "--tokens", "4", "--seed", "0", "--out", out],
            "layout build": ["layout", "build", "--trace", i["trace"], "--method", "frequency",
                             "--out", out]}[command]


@pytest.mark.parametrize("command", FOLDER_OUTPUTS + FILE_OUTPUTS)
def test_out_where_a_file_or_folder_already_is_names_the_path(inputs, tmp_path, command):
    """A folder output given an existing file, a file output given an existing folder."""
    if command in FOLDER_OUTPUTS:
        out = tmp_path / "taken.txt"
        out.write_text("keep me")
    else:
        out = tmp_path / "taken.npz"
        out.mkdir()
    run_cli(CAT, argv_for(command, str(out), inputs), str(out), "--out")
    assert (out.read_text() == "keep me") if out.is_file() else not any(out.iterdir())


@pytest.mark.parametrize("command", FOLDER_OUTPUTS + FILE_OUTPUTS)
def test_out_inside_a_file_names_the_path(inputs, tmp_path, command):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    out = blocker / "sub" / ("out.npz" if command in FILE_OUTPUTS else "out")
    run_cli(CAT, argv_for(command, str(out), inputs), str(out), "is a file, not a folder")
    assert files_in(tmp_path) == ["notes.txt"]


# ---------------------------------------------------------------- no write permission
UNPRIVILEGED = 65534  # nobody
SCRIPT = """
import contextlib, io, json, sys
from memsim.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    except SystemExit as exc:
        code = exc.code
    except Exception as exc:
        code, err = "traceback", io.StringIO(repr(exc))
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""


def _can_drop_privileges() -> bool:
    return os.geteuid() == 0 and shutil.which("setpriv") is not None


def test_a_folder_without_write_permission_names_the_path_for_every_command(inputs):
    """As `nobody` (root bypasses mode bits): a read-only folder (0o500) and a new folder
    inside it, for every command; each exits non-zero naming the path, writes nothing."""
    if not _can_drop_privileges() and os.geteuid() == 0:
        pytest.skip("root without setpriv: mode bits cannot deny root")
    with tempfile.TemporaryDirectory(prefix="memsim-perm-") as tmp:
        base = Path(tmp)
        shared = base / "inputs"
        shutil.copytree(inputs["results"], shared / "results")
        for key in ("trace", "sweep", "corpus"):
            shutil.copy(inputs[key], shared / inputs[key].name)
        local = {"trace": shared / inputs["trace"].name, "sweep": shared / inputs["sweep"].name,
                 "corpus": shared / inputs["corpus"].name, "results": shared / "results"}
        locked = base / "locked"
        locked.mkdir(mode=0o500)
        home = base / "home"
        home.mkdir()
        os.chmod(home, 0o777)
        os.chmod(base, 0o755)
        for path in shared.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.chmod(shared, 0o755)
        why = _why_unprivileged_cannot_run(home, local["trace"])
        if why is not None:
            pytest.skip(why)
        cases = []
        for command in FOLDER_OUTPUTS + FILE_OUTPUTS:
            name = "out.npz" if command in FILE_OUTPUTS else "out"
            for out in (locked / name, locked / "new" / name):
                cases.append((command, out, argv_for(command, str(out), local)))
        results = _run_unprivileged([argv for _, _, argv in cases], home)
        for (command, out, _), (code, err) in zip(cases, results):
            outcome = ("traceback" if code == "traceback" or "Traceback" in err
                       else "silent" if code == 0 else "clean")
            record(CAT, outcome)
            assert outcome == "clean", (command, code, err)
            assert str(out.parent if out.parent.name == "new" else out) in err \
                or str(out) in err, (command, err)
            assert "ermission denied" in err, (command, err)
        assert not any(locked.iterdir())


PROBE = """
import sys
import numpy, memsim.cli  # the interpreter, its packages and the checkout
open(sys.argv[1], "rb").close()  # the copied inputs
"""


def _why_unprivileged_cannot_run(home: Path, an_input: Path) -> str | None:
    """Why the unprivileged user cannot run this test's commands at all (None: it can): the
    interpreter, numpy or the checkout out of its reach, as for a clone in a private folder
    (`mktemp -d` is 0700) or a venv under root's home. Then the test cannot tell a permission
    error memsim handles from one the setup causes, so it is skipped with that reason."""
    if not _can_drop_privileges():
        return None  # this process is the unprivileged user: it runs the commands itself
    proc = subprocess.run([*_drop_privileges(), sys.executable, "-c", PROBE, str(an_input)],
                          capture_output=True, text=True, env=_unprivileged_env(home),
                          cwd=str(home), timeout=120)
    if proc.returncode == 0:
        return None
    last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
    return (f"user {UNPRIVILEGED} cannot run {sys.executable} on the checkout {ROOT} "
            f"(a private folder or a venv it cannot reach?): {last}")


def _drop_privileges() -> list[str]:
    return ["setpriv", f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}", "--clear-groups"]


def _unprivileged_env(home: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(home),
            "NUMBA_CACHE_DIR": str(home / "numba"), "XDG_CACHE_HOME": str(home / "cache"),
            "TQDM_DISABLE": "1"}


def _run_unprivileged(argvs: list[list[str]], home: Path) -> list[list]:
    prefix = _drop_privileges() if _can_drop_privileges() else []
    proc = subprocess.run([*prefix, sys.executable, "-c", SCRIPT, json.dumps(argvs)],
                          capture_output=True, text=True, env=_unprivileged_env(home),
                          cwd=str(home), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- a full disk
DISK_COMMANDS = ("simulate", "sweep", "plot", "trace synth", "trace calibrate", "layout build")


class _FullFile:
    """A file object whose writes fail with ENOSPC after `room` bytes (half a file)."""

    def __init__(self, fh, room: int):
        self._fh, self._room = fh, room

    def write(self, data):
        if len(data) > self._room:
            self._fh.write(bytes(data[:self._room]))
            self._fh.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._fh.name)
        self._room -= len(data)
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


@pytest.fixture
def enospc(monkeypatch):
    """Every file memsim writes runs out of space after 100 bytes."""
    import builtins

    import memsim.core.files as files
    import memsim.sweeps.table as table

    def full_open(path, mode="r", *args, **kwargs):
        fh = builtins.open(path, mode, *args, **kwargs)
        return _FullFile(fh, 100) if "w" in mode else fh

    def full_table(tbl, path):
        Path(path).write_bytes(b"PAR1 half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(files, "open", full_open, raising=False)
    monkeypatch.setattr(table, "_write_parquet", full_table)
    monkeypatch.setattr(table, "_write_csv", full_table)


@pytest.mark.parametrize("command", DISK_COMMANDS)
def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing_half_written(
        inputs, tmp_path, enospc, command):
    out = tmp_path / ("out.npz" if command in FILE_OUTPUTS else "out")
    marker = "tasks failed" if command == "sweep" else ": error:"  # the workers' writes fail
    run_cli(CAT, argv_for(command, str(out), inputs), "No space left on device", marker=marker)
    _nothing_half_written(tmp_path)


def _nothing_half_written(folder: Path) -> None:
    """No temp files; what remains is whole: the sweep's small dropped.json (written before
    the disk filled) and nothing else."""
    left = files_in(folder)
    assert not [f for f in left if f.endswith(".tmp")], left
    assert set(left) <= {"out/dropped.json", "x/dropped.json"}, left
    for name in left:
        json.loads((folder / name).read_text())


def test_a_full_disk_in_a_sweep_worker_fails_its_points_and_says_rerun_can_help(
        inputs, tmp_path, monkeypatch):
    """Workers (forked, so they share the patch) hit ENOSPC writing traces: each failure is
    one line naming the file, and a rerun is offered (freeing space helps)."""
    import memsim.sweeps.trace_sources as sources

    monkeypatch.setattr(sources, "synth_trace", lambda *a, **k: _FailingTrace())
    err = run_cli(CAT, ["sweep", str(inputs["sweep"]), "--out", str(tmp_path / "o")],
                  "rerun the same command to resume", marker="tasks failed")
    assert "No space left on device" in err and str(tmp_path / "o" / "traces") in err
    assert not [f for f in files_in(tmp_path) if f.endswith(".tmp")]


class _FailingTrace:
    """What synth_trace returns when the disk is full: saving it fails half-way."""

    source = "synthetic"

    def save(self, path):
        from memsim.core.files import atomic_write_with

        def half(fh):
            fh.write(b"PK half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

        atomic_write_with(path, half)


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 192 KiB tmpfs, filled to the brim (needs root with mount rights)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode:
        pytest.skip("this machine does not let tests mount a tmpfs")
    try:
        (mount / "out").mkdir()
        with open(mount / "filler", "wb", buffering=0) as fh:
            for size in (4096, 512, 64, 8, 1):  # to the last byte
                try:
                    while True:
                        fh.write(b"\0" * size)
                except OSError:
                    pass
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


@pytest.mark.parametrize("command", DISK_COMMANDS + (pytest.param("eval",
                                                                 marks=pytest.mark.slow),))
def test_a_really_full_disk_is_one_line_and_leaves_nothing(inputs, tiny_disk, command,
                                                           tmp_path):
    """The same on a real full filesystem; `eval` runs on a tiny random checkpoint."""
    i = dict(inputs)
    if command == "eval":
        from workloads.testing import sample_text, save_tiny_checkpoint
        model = save_tiny_checkpoint(tmp_path / "tiny", "llama")
        (tmp_path / "text.txt").write_text(sample_text(2000, seed=1))
        argv = ["eval", "--model", str(model), "--corpus", str(tmp_path / "text.txt"),
                "--windows", "2", "--window-len", "16", "--no-progress", "--out",
                str(tiny_disk / "out" / "eval")]
    else:
        name = "x.npz" if command in FILE_OUTPUTS else "x"
        argv = argv_for(command, str(tiny_disk / "out" / name), i)
    run_cli(CAT, argv, "No space left on device")
    _nothing_half_written(tiny_disk / "out")
