"""One progress bar per sweep that tells the truth, and silence in the workers.

A sweep mixes tasks whose costs differ by orders of magnitude: a real model evaluation takes
tens of seconds, a simulation about one. The bar's fill is weighted by each kind's measured
mean duration (until a kind is measured it weighs as much as the mean of those measured, or
1), and the time left is shown only once every kind still to run has been measured, so the
first estimate is not one taken from the wrong kind of task. Task counts per kind are shown
beside the bar. Workers never draw bars: `quiet_worker` silences tqdm (and so transformers'
and huggingface_hub's bars) in the process that runs a task.
Ignores: tasks in flight (counted as not started), unequal costs within one kind.
"""
from __future__ import annotations

import os
import time
from functools import partialmethod
from typing import Any, Callable

from tqdm import tqdm

KIND_NAMES = {"evaluation": "model evaluations", "trace": "synthetic traces",
              "simulation": "simulations"}
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}{postfix}]"


class SweepProgress:
    """The sweep's bar: `add(kind, n)` before, `done(kind, seconds)` per finished task."""

    def __init__(self, desc: str, workers: int, enabled: bool = True):
        self.workers = max(1, workers)
        self.total: dict[str, int] = {}
        self.finished: dict[str, int] = {}
        self.seconds: dict[str, list[float]] = {}
        self.bar = tqdm(total=1.0, desc=desc, bar_format=BAR_FORMAT, disable=not enabled,
                        dynamic_ncols=True)

    def add(self, kind: str, count: int) -> None:
        if count:
            self.total[kind] = self.total.get(kind, 0) + count
            self.finished.setdefault(kind, 0)
            self._refresh()

    def done(self, kind: str, seconds: float | None) -> None:
        self.finished[kind] += 1
        if seconds is not None:
            self.seconds.setdefault(kind, []).append(seconds)
        self._refresh()

    def close(self) -> None:
        self.bar.close()

    # ------------------------------------------------------------------ estimates
    def weight(self, kind: str) -> float:
        """Mean seconds of a `kind` task, measured; else the mean over measured kinds, or 1."""
        if self.seconds.get(kind):
            return sum(self.seconds[kind]) / len(self.seconds[kind])
        measured = [sum(v) / len(v) for v in self.seconds.values() if v]
        return sum(measured) / len(measured) if measured else 1.0

    def fraction_done(self) -> float:
        total = sum(n * self.weight(k) for k, n in self.total.items())
        done = sum(n * self.weight(k) for k, n in self.finished.items())
        return done / total if total else 1.0

    def seconds_left(self) -> float | None:
        """Time left on `workers` workers, or None while a kind still to run is unmeasured."""
        left = {k: self.total[k] - self.finished[k] for k in self.total}
        if any(n and not self.seconds.get(k) for k, n in left.items()):
            return None
        return sum(n * self.weight(k) for k, n in left.items()) / self.workers

    def status(self) -> str:
        counts = ", ".join(f"{self.finished[k]}/{n} {KIND_NAMES.get(k, k)}"
                           for k, n in self.total.items())
        left = self.seconds_left()
        if left is None:
            return f"{counts}; time left: known after the first of each kind"
        return f"{counts}; ~{_duration(left)} left" if left > 0 else counts

    def _refresh(self) -> None:
        self.bar.n = round(self.fraction_done(), 6)
        self.bar.set_postfix_str(self.status(), refresh=False)
        self.bar.refresh()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def quiet_worker() -> None:
    """No progress bars from this process: tqdm disabled (every subclass, e.g. tqdm.auto's,
    which transformers uses) and the libraries' own switches set for anything they start."""
    os.environ["TQDM_DISABLE"] = "1"  # read by tqdm in processes started from here
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if not getattr(tqdm.__init__, "_memsim_quiet", False):
        quiet = partialmethod(tqdm.__init__, disable=True)
        quiet._memsim_quiet = True
        tqdm.__init__ = quiet


def run_task(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """In a worker: run `fn(*args)` without progress bars; its result and wall seconds."""
    quiet_worker()
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start
