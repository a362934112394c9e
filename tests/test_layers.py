"""The import contracts in setup.cfg ([importlinter]): memsim's rooms import only down the
stack, memsim never imports torch, workloads/ uses memsim's public API. Run in the default
test run so an upward import fails CI, and shown to fail on a copy with one upward import."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter not installed")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the copy shadows the installed packages
    return subprocess.run([str(LINT), "--config", str(root / "setup.cfg"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_every_import_contract_is_kept():
    run = _lint(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def _copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("memsim", "workloads"):
        shutil.copytree(ROOT / name, root / name, ignore=ignore)
    shutil.copy(ROOT / "setup.cfg", root / "setup.cfg")
    return root


def test_an_upward_import_breaks_the_layers_contract(tmp_path):
    root = _copy_tree(tmp_path)
    bits = root / "memsim" / "traces" / "bits.py"  # traces sits below sim
    bits.write_text(bits.read_text() + "\nimport memsim.sim.engine  # noqa: upward\n")
    run = _lint(root)
    assert run.returncode != 0
    assert "memsim's rooms import only down the stack BROKEN" in run.stdout
    assert "memsim.traces.bits -> memsim.sim.engine" in run.stdout


def test_torch_in_memsim_breaks_the_no_torch_contract(tmp_path):
    root = _copy_tree(tmp_path)
    engine = root / "memsim" / "sim" / "engine.py"
    engine.write_text(engine.read_text() + "\nimport torch  # noqa: forbidden\n")
    run = _lint(root)
    assert run.returncode != 0
    assert "never imports torch" in run.stdout and "BROKEN" in run.stdout
