"""local_pool.local_map: the standard library's process pool behind parallel profile CIs
(forked workers that inherit the shared object, results in task order)."""
import os

import pytest

from xxmpy.inference import local_pool

pytestmark = pytest.mark.skipif(not local_pool.available(), reason="needs fork (POSIX)")


def square_and_pid(shared, task):
    return shared["scale"] * task * task, os.getpid()


def fail_in_workers(parent, task):
    if os.getpid() != parent:
        raise ValueError(f"bad task {task}")
    return task


def crash_in_workers(parent, task):
    if os.getpid() != parent:
        os._exit(3)                                  # a crash in the worker
    return task


def test_results_come_back_in_task_order_whoever_ran_them():
    out = local_pool.local_map(square_and_pid, {"scale": 2}, list(range(40)), n_jobs=3)
    assert [value for value, _ in out] == [2 * t * t for t in range(40)]
    assert os.getpid() not in {pid for _, pid in out}      # workers, sharing by fork
    assert len({pid for _, pid in out}) >= 2


def test_each_result_is_announced_once():
    ticks = []
    local_pool.local_map(square_and_pid, {"scale": 1}, list(range(7)), n_jobs=2,
                         on_result=lambda: ticks.append(1))
    assert len(ticks) == 7


def test_a_failing_task_in_a_worker_is_raised_here_with_its_traceback():
    with pytest.raises(RuntimeError, match=r"a worker failed on task 0:(.|\n)*"
                                           r"ValueError: bad task 0"):
        local_pool.local_map(fail_in_workers, os.getpid(), list(range(6)), n_jobs=2)


def test_a_worker_that_dies_is_reported_not_waited_for():
    with pytest.raises(RuntimeError, match="ended without answering"):
        local_pool.local_map(crash_in_workers, os.getpid(), list(range(6)), n_jobs=2)


def test_one_job_runs_here():
    assert local_pool.local_map(square_and_pid, {"scale": 1}, [3], n_jobs=1)[0] == \
        (9, os.getpid())
