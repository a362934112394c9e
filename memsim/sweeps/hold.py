"""A hold for tests that interrupt a sweep: with `MEMSIM_TEST_HOLD=<file>` in the
environment, a point task of a sweep that has already finished a point creates
`<file>.held` and waits until `<file>` exists. A test that starts `memsim sweep` with it set
waits for `<file>.held` and then interrupts a sweep that provably has points left, however
fast the simulator is (tests/test_robust_sweeps.py). Unset (always, outside those tests), it
does nothing.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

HOLD_ENV = "MEMSIM_TEST_HOLD"
POLL_S = 0.02


def hold_if_asked(points_folder: Path, row_file: str) -> None:
    """Wait as the module docstring says, if asked and a point under `points_folder` is done."""
    hold = os.environ.get(HOLD_ENV)
    if not hold or not any(points_folder.glob(f"*/{row_file}")):
        return
    Path(hold + ".held").touch()
    while not Path(hold).exists():  # a state, not a duration: the test creates it
        time.sleep(POLL_S)
