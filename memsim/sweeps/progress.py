"""One progress bar per sweep that tells the truth, and silence in the workers.

A sweep mixes tasks whose costs differ by orders of magnitude: a real model evaluation takes
tens of seconds, a simulation a second or two. Each kind of task is timed as it finishes
(the mean of its last `workers` tasks, so a worker's one-time model loading fades out) and
the bar's fill is weighted by those costs; a kind not yet timed is weighed by PRIOR_COST
relative to the kinds that are. The time left is shown only for kinds already timed: "~2 min
10 s for the model evaluations, then 18 simulations (not yet timed)" until every kind still
to run has been timed, so no estimate is taken from the wrong kind of task. Workers never
draw bars: `run_task` silences tqdm (and so transformers' and huggingface_hub's bars) in the
process that runs the task.
Ignores: tasks in flight (counted as not started), unequal costs within one kind.
"""
from __future__ import annotations

import os
import time
from functools import partialmethod
from typing import Any, Callable

from tqdm import tqdm

KIND_NAMES = {"evaluation": "model evaluations", "trace": "synthetic traces",
              "layout": "flash layouts", "reference": "references",
              "simulation": "simulations"}
# relative cost of a task kind before it is timed: SmolLM2, 8 windows of 256 tokens, on the
# 2-core development machine: an evaluation ~45 s, a point's simulation ~1.5 s, a synthetic
# trace ~1 s, a frequency layout from 4 windows well under 1 s, the dense references ~0.1 s
# (they replay one window, no cache)
PRIOR_COST = {"evaluation": 30.0, "trace": 0.7, "layout": 0.5, "reference": 0.07,
              "simulation": 1.0}
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
    def timed(self, kind: str) -> float | None:
        """Seconds per `kind` task: the mean of its last `workers` timings; None if untimed."""
        recent = self.seconds.get(kind, [])[-self.workers:]
        return sum(recent) / len(recent) if recent else None

    def weight(self, kind: str) -> float:
        """A kind's cost per task: timed, else its prior scaled by the timed kinds' ratio."""
        timed = self.timed(kind)
        if timed is not None:
            return timed
        scales = [self.timed(k) / PRIOR_COST.get(k, 1.0) for k in self.seconds if self.seconds[k]]
        return PRIOR_COST.get(kind, 1.0) * (sum(scales) / len(scales) if scales else 1.0)

    def fraction_done(self) -> float:
        total = sum(n * self.weight(k) for k, n in self.total.items())
        done = sum(n * self.weight(k) for k, n in self.finished.items())
        return done / total if total else 1.0

    def seconds_left(self) -> float | None:
        """Time left on `workers` workers, or None while a kind still to run is untimed."""
        left = self._left()
        if any(self.timed(k) is None for k in left):
            return None
        return sum(n * self.timed(k) for k, n in left.items()) / self.workers

    def status(self) -> str:
        counts = ", ".join(f"{self.finished[k]}/{n} {KIND_NAMES.get(k, k)}"
                           for k, n in self.total.items())
        left = self._left()
        timed = {k: n for k, n in left.items() if self.timed(k) is not None}
        untimed = [f"{n} {KIND_NAMES.get(k, k)}" for k, n in left.items() if k not in timed]
        if not left:
            return counts
        if not timed:
            kinds = " or ".join(KIND_NAMES.get(k, k) for k in left)
            return f"{counts}; time left: known once one of the {kinds} is done"
        seconds = sum(n * self.timed(k) for k, n in timed.items()) / self.workers
        if not untimed:
            return f"{counts}; ~{_duration(seconds)} left"
        names = " and ".join(KIND_NAMES.get(k, k) for k in timed)
        return (f"{counts}; ~{_duration(seconds)} for the {names}, then "
                f"{' and '.join(untimed)} (not yet timed)")

    def _left(self) -> dict[str, int]:
        return {k: n - self.finished[k] for k, n in self.total.items() if n > self.finished[k]}

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
