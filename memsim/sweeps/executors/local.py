"""`local`: a process pool on this machine (one process per core by default).

Uses fork: the parent (the sweep driver) never imports torch, so forking it is safe, and
workers start in milliseconds rather than re-importing numpy and SimPy. Workers die with the
driver and ignore Ctrl-C (`_worker.py`); an interrupted driver kills them at once rather than
waiting for their running tasks.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from memsim.sweeps.executors._worker import die_with_parent
from memsim.sweeps.executors.base import EXECUTORS, Executor


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """concurrent.futures process pool."""

    def __init__(self, workers: int, scheduler: str | None = None):
        super().__init__(workers, scheduler)
        self._pool = ProcessPoolExecutor(max_workers=workers,
                                         mp_context=multiprocessing.get_context("fork"),
                                         initializer=die_with_parent,
                                         initargs=(os.getpid(),))

    def run(self, fn, args_list):
        futures = {self._pool.submit(fn, *args): i for i, args in enumerate(args_list)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                exc = future.exception()
                yield futures[future], exc if exc is not None else future.result()

    def worker_pids(self) -> list[int]:
        return [p.pid for p in list((self._pool._processes or {}).values()) if p.pid]

    def close(self, abort: bool = False) -> None:
        if abort:  # kill first: shutdown would wait for the running tasks to end
            for process in list((self._pool._processes or {}).values()):
                if process.is_alive():
                    process.kill()
        self._pool.shutdown(wait=not abort, cancel_futures=True)
