"""Executors run a sweep's independent tasks on a pool of processes, local or on a cluster.

Each registers itself under its `--executor` name. The contract: `run(fn, args_list)` yields
`(index, result_or_exception)` as tasks finish, in any order; a task's exception is returned,
not raised, so one bad point does not stop the others. A dead worker surfaces as exceptions
for the tasks it took down; finished tasks have already written their files, so rerunning
the sweep resumes.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Iterator

from memsim.core.registry import Registry

EXECUTORS: Registry[type["Executor"]] = Registry("executor")


class Executor(ABC):
    """A pool of `workers` processes (or a cluster at `scheduler`)."""

    def __init__(self, workers: int, scheduler: str | None = None):
        self.workers, self.scheduler = workers, scheduler

    @abstractmethod
    def run(self, fn: Callable[..., Any], args_list: list[tuple]) -> Iterator[tuple[int, Any]]:
        """Run fn(*args) for each args; yield (index, result or exception) as they finish."""

    def close(self) -> None:
        """Release workers (and a cluster this executor started)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
