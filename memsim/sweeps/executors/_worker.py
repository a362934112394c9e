"""What every local worker process of a sweep does first: die with the driver, leave Ctrl-C
to it (Dask's LocalCluster workers get the same from Dask's parent pipe and from
`dask._children_ignore_sigint`).

A worker that outlives its driver (killed by SIGKILL, SIGTERM, an OOM killer) would hold a
core and memory forever, and a pool's forked workers never notice on their own: they wait on
a pipe they hold open themselves. Each worker therefore
  * asks Linux to SIGKILL it when its parent dies (prctl PR_SET_PDEATHSIG), and
  * watches its parent id in a daemon thread (any POSIX system; the parent's death
    reparents the worker, within `POLL_S`), in case the first is unavailable;
  * ignores SIGINT: Ctrl-C reaches the whole foreground process group, and the driver
    alone decides what an interrupt means (it stops the workers itself), so the terminal
    shows one line, not a traceback per worker;
  * dies on SIGTERM: a forked worker inherits the driver's SIGTERM handler (which raises
    Interrupted), and a worker that caught it as a task error would outlive the pool's
    `terminate()` after another worker died, leaving the driver joining it forever.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # linux/prctl.h
POLL_S = 0.5


def die_with_parent(parent_pid: int) -> None:
    """Worker initializer: see the module docstring."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _parent_death_signal()
    if os.getppid() != parent_pid:  # the driver died before we got here
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                     name="memsim-watch-driver").start()


def _parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the watcher thread does the job
        pass


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_S)
    os._exit(1)

