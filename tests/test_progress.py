"""The sweep's progress bar: weighted by measured task costs, no time left until it can be
honest; and workers that print no bars."""
from __future__ import annotations

import pytest
from tqdm import tqdm

from memsim.sweeps.executors.local import LocalExecutor
from memsim.sweeps.progress import SweepProgress, run_task


def _progress(**counts) -> SweepProgress:
    bar = SweepProgress("t", workers=2, enabled=False)
    for kind, count in counts.items():
        bar.add(kind, count)
    return bar


def test_no_time_left_until_every_kind_still_to_run_was_measured():
    bar = _progress(evaluation=4, simulation=10)
    assert bar.seconds_left() is None
    bar.done("evaluation", 40.0)
    assert bar.seconds_left() is None  # simulations not measured: no guess from evaluations
    assert "time left: known after the first of each kind" in bar.status()
    bar.done("simulation", 2.0)
    assert bar.seconds_left() == pytest.approx((3 * 40.0 + 9 * 2.0) / 2)


def test_fill_is_weighted_by_the_measured_cost_of_each_kind():
    bar = _progress(evaluation=2, simulation=10)
    bar.done("evaluation", 30.0)
    bar.done("simulation", 1.0)
    # done: 30 + 1 of 2 * 30 + 10 * 1 seconds of work
    assert bar.fraction_done() == pytest.approx(31 / 70)
    assert bar.status().startswith("1/2 model evaluations, 1/10 simulations")


def test_failed_tasks_count_as_finished_without_a_duration():
    bar = _progress(simulation=2)
    bar.done("simulation", None)
    assert bar.seconds_left() is None and bar.finished["simulation"] == 1


def _bar_task(n: int) -> int:
    for _ in tqdm(range(n), desc="noisy worker bar", mininterval=0):
        pass
    return n


def test_tasks_run_in_workers_print_no_progress_bars(capfd):
    with LocalExecutor(1) as pool:
        [(_, plain)] = list(pool.run(_bar_task, [(3,)]))
    assert plain == 3 and "noisy worker bar" in capfd.readouterr().err  # the control
    with LocalExecutor(1) as pool:
        [(_, (quiet, seconds))] = list(pool.run(run_task, [(_bar_task, 3)]))
    assert quiet == 3 and seconds >= 0
    assert "noisy worker bar" not in capfd.readouterr().err
