"""Executors run a sweep's independent tasks on a pool of processes, local or on a cluster.

Each registers itself under its `--executor` name. The contract: `run(fn, args_list)` yields
`(index, result_or_exception)` as tasks finish, in any order; a task's exception is returned,
not raised, so one bad point does not stop the others. A dead worker surfaces as exceptions
for the tasks it took down; finished tasks have already written their files, so rerunning
the sweep resumes. Workers this machine starts die with the driver and ignore Ctrl-C (the
driver stops them): see `_worker.py`.
"""
from __future__ import annotations

import signal
import threading
from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from memsim.core.errors import Interrupted
from memsim.core.registry import Registry

EXECUTORS: Registry[type["Executor"]] = Registry("executor")


class Executor(ABC):
    """A pool of `workers` processes (or a cluster at `scheduler`)."""

    def __init__(self, workers: int, scheduler: str | None = None):
        self.workers, self.scheduler = workers, scheduler

    @abstractmethod
    def run(self, fn: Callable[..., Any], args_list: list[tuple]) -> Iterator[tuple[int, Any]]:
        """Run fn(*args) for each args; yield (index, result or exception) as they finish."""

    def close(self, abort: bool = False) -> None:
        """Release workers (and a cluster this executor started); `abort` (the driver is
        interrupted or terminated): stop them now, without waiting for running tasks."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(abort=exc_type is not None)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM raises Interrupted (exit status 143) in the main thread, so the
    driver stops its workers and writes its table as on Ctrl-C, instead of vanishing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted("terminated (SIGTERM)", 128 + signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
