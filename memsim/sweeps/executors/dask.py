"""`dask`: tasks on a Dask cluster: an existing one (`--scheduler tcp://host:8786`) or a
LocalCluster this executor starts, bound to 127.0.0.1 only (no dashboard on other
interfaces). Needs `pip install -e '.[dist]'`. Dask retries a task whose worker died on
another worker; a task that keeps killing workers comes back as KilledWorker.

Hygiene: the LocalCluster's workers are started with SIGINT ignored (Ctrl-C goes to the
driver only, which then stops them: one line on the terminal, not a traceback per worker)
and die with the driver through Dask's own parent pipe. A scheduler
that cannot be reached within `CONNECT_TIMEOUT_S` is a one-line error. Security: a Dask
scheduler runs any code sent to it; see docs/sweeps.md before listening beyond 127.0.0.1.
"""
from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager

from memsim.core.errors import ConfigError
from memsim.sweeps.executors.base import EXECUTORS, Executor

CONNECT_TIMEOUT_S = 10.0


@EXECUTORS.register("dask")
class DaskExecutor(Executor):
    """dask.distributed Client over a LocalCluster or a given scheduler."""

    def __init__(self, workers: int, scheduler: str | None = None):
        super().__init__(workers, scheduler)
        try:
            from dask.distributed import LocalCluster
        except ImportError:
            raise ConfigError("the dask executor needs dask[distributed]", key_path="executor",
                              allowed="pip install -e '.[dist]', or --executor local") from None
        self._cluster = None
        if scheduler is None:
            with _children_ignore_sigint():
                self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                             processes=True, host="127.0.0.1",
                                             dashboard_address="127.0.0.1:0",
                                             worker_dashboard_address=None)
        self._client = _connect(self._cluster if scheduler is None else scheduler)

    def run(self, fn, args_list):
        from dask.distributed import as_completed

        futures = [self._client.submit(fn, *args, pure=False) for args in args_list]
        index = {f.key: i for i, f in enumerate(futures)}
        for future in as_completed(futures):
            try:
                yield index[future.key], future.result()
            except Exception as exc:  # noqa: BLE001 - reported per task, the sweep goes on
                yield index[future.key], exc

    def worker_pids(self) -> list[int]:
        """Process ids of the LocalCluster's workers (none for an external scheduler)."""
        if self._cluster is None:
            return []
        pids = []
        for nanny in list(self._cluster.workers.values()):
            process = getattr(getattr(nanny, "process", None), "process", None)
            if process is not None and process.pid:
                pids.append(process.pid)
        return pids

    def close(self, abort: bool = False) -> None:
        if abort:  # interrupted: kill the workers first, and say nothing of their ends
            for name in ("distributed", "tornado", "asyncio"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
            _kill(self.worker_pids())
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def _connect(address):
    """A Client; an unreachable or malformed scheduler address is a one-line ConfigError."""
    from dask.distributed import Client

    try:
        return Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"cannot reach the Dask scheduler at {address!r} within "
                          f"{CONNECT_TIMEOUT_S:g} s: {reason}", key_path="--scheduler",
                          allowed="the address `dask scheduler` prints (tcp://host:8786), "
                                  "or no --scheduler for a local cluster") from None


@contextmanager
def _children_ignore_sigint():
    """Processes started inside inherit SIGINT ignored (kept across exec, so Python and
    asyncio in the worker never install a handler for it); the driver's own handler is back
    on exit. Only the main thread may change signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _kill(pids: list[int]) -> None:
    import os

    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
