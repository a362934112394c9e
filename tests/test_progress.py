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


def test_time_left_is_given_only_for_kinds_already_timed():
    bar = _progress(evaluation=4, simulation=10)
    assert bar.seconds_left() is None
    assert bar.status().endswith("time left: known once one of the model evaluations or "
                                 "simulations is done")
    bar.done("evaluation", 40.0)
    assert bar.seconds_left() is None  # simulations untimed: no guess from evaluations
    assert bar.status() == ("1/4 model evaluations, 0/10 simulations; ~1 min 00 s for the "
                            "model evaluations, then 10 simulations (not yet timed)")
    bar.done("simulation", 2.0)
    assert bar.seconds_left() == pytest.approx((3 * 40.0 + 9 * 2.0) / 2)
    assert bar.status().endswith("~1 min 09 s left")


def test_a_kinds_cost_is_its_latest_tasks_so_one_time_loading_fades_out():
    bar = _progress(evaluation=6)  # two workers: the last two timings count
    for seconds in (100.0, 100.0, 40.0, 44.0):
        bar.done("evaluation", seconds)
    assert bar.timed("evaluation") == pytest.approx(42.0)
    assert bar.seconds_left() == pytest.approx(2 * 42.0 / 2)


def test_fill_is_weighted_by_measured_costs_and_a_prior_for_untimed_kinds():
    bar = _progress(evaluation=2, simulation=10)
    bar.done("evaluation", 30.0)
    # simulations untimed: each weighs 1/30 of an evaluation (PRIOR_COST), i.e. 1 s
    assert bar.fraction_done() == pytest.approx(30 / 70)
    bar.done("simulation", 3.0)
    assert bar.fraction_done() == pytest.approx(33 / 90)
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
