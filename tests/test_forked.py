"""forked.forked_map: the worker processes behind parallel profile CIs."""
import os

import pytest

from xxmpy.inference import forked

pytestmark = pytest.mark.skipif(not forked.available(), reason="needs os.fork (POSIX)")


def test_results_come_back_in_task_order_whoever_ran_them():
    pids = forked.forked_map(lambda t: (t * t, os.getpid()), list(range(40)), n_jobs=3)
    assert [value for value, _ in pids] == [t * t for t in range(40)]
    assert len({pid for _, pid in pids}) >= 2          # this process and a worker took part


def test_each_result_is_announced_once():
    ticks = []
    forked.forked_map(lambda t: t, list(range(7)), n_jobs=2, on_result=lambda: ticks.append(1))
    assert len(ticks) == 7


def test_a_failing_task_in_a_worker_is_raised_here_with_its_traceback():
    parent = os.getpid()

    def fn(t):
        if os.getpid() != parent:
            raise ValueError(f"bad task {t}")
        return t

    with pytest.raises(RuntimeError, match=r"a worker failed on task 0:(.|\n)*"
                                           r"ValueError: bad task 0"):
        forked.forked_map(fn, list(range(6)), n_jobs=2)


def test_a_worker_that_dies_is_reported_not_waited_for():
    parent = os.getpid()

    def fn(t):
        if os.getpid() != parent:
            os._exit(3)                                  # a crash in the worker
        return t

    with pytest.raises(RuntimeError, match="ended without answering"):
        forked.forked_map(fn, list(range(6)), n_jobs=2)
