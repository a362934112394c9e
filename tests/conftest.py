"""Session hooks: the bad-input tally (tests/badinput.py) is written where
MEMSIM_BADINPUT_TALLY points, if set."""
from __future__ import annotations


def pytest_sessionfinish(session, exitstatus):
    from tests.badinput import tally_path, write_tally

    path = tally_path()
    if path:
        write_tally(path)
