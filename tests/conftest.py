"""Session hooks: the bad-input tally (tests/badinput.py) is written where
MEMSIM_BADINPUT_TALLY points, if set. Shared fixtures: `one_torch_thread`."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a module of tiny-model tests (workloads.testing.single_thread:
    on a busy 2-core machine their thread pool spins); a module asks for it with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    from workloads.testing import single_thread

    with single_thread():
        yield


def pytest_sessionfinish(session, exitstatus):
    from tests.badinput import tally_path, write_tally

    path = tally_path()
    if path:
        write_tally(path)
