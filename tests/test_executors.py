"""The executor seam (issue #22): profile CIs on a concurrent.futures executor or a
dask.distributed Client give exactly the in-process intervals.

Reference: the same CIs computed in this process (n_jobs=1); the limits are compared
bit for bit, since every task runs the same arithmetic on the same inputs.
"""
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pandas as pd
import pytest

import reference_models as ref
import xxmpy as xm
from xxmpy.inference.executors import executor_map

COLUMNS = ["lower", "upper", "lower_status", "upper_status", "lower_rise", "upper_rise"]


@pytest.fixture(scope="module")
def sleep_fit():
    d = pd.read_csv(ref.DATA / "sleepstudy.csv")
    return xm.lmer("Reaction ~ Days + (Days | Subject)", d, REML=False).fit_result


@pytest.fixture(scope="module")
def in_process(sleep_fit):
    return sleep_fit.profile_ci(n_jobs=1, progress=False).estimates[COLUMNS]


def same(a, b):
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True),
                                  check_exact=True)


def test_profile_cis_on_a_process_or_thread_pool_equal_the_in_process_ones(sleep_fit,
                                                                           in_process):
    for pool in (ProcessPoolExecutor(2), ThreadPoolExecutor(3)):
        with pool:
            ci = sleep_fit.profile_ci(executor=pool, progress=False)
        same(ci.estimates[COLUMNS], in_process)
    assert ci.n_jobs == 3


def test_profile_cis_on_a_dask_local_cluster_equal_the_in_process_ones(sleep_fit, in_process,
                                                                       dask_client):
    """Two worker processes, as a user's cluster would run them; the xxM function
    xxmCI takes the Client too."""
    ci = sleep_fit.profile_ci(executor=dask_client, progress=False)
    assert ci.n_jobs == 2
    same(ci.estimates[COLUMNS], in_process)
    # the xxM functions on lmer's model, refitted by xxmRun (from its own first
    # curvature, not lmer's: the same optimum to rounding, so compared with its own
    # in-process CIs)
    d = pd.read_csv(ref.DATA / "sleepstudy.csv")
    model = xm.lmer("Reaction ~ Days + (Days | Subject)", d, REML=False).model
    xm.xxmRun(model)
    xm.xxmCI(model, n_jobs=1, progress=False)
    local = model.result.profile.estimates[COLUMNS].copy()
    xm.xxmCI(model, executor=dask_client, progress=False)
    same(model.result.profile.estimates[COLUMNS], local)
    pd.testing.assert_frame_equal(local[["lower", "upper"]].reset_index(drop=True),
                                  in_process[["lower", "upper"]].reset_index(drop=True),
                                  rtol=1e-6)


def _fails_on_three(shared, task):
    if task == 3:
        raise ValueError(f"task {task} of {shared}")
    return shared + task


def test_executor_map_keeps_task_order_and_raises_a_tasks_error():
    with ThreadPoolExecutor(4) as pool:
        assert executor_map(pool, _fails_on_three, 10, [0, 1, 2]) == [10, 11, 12]
        with pytest.raises(ValueError, match="task 3 of 10"):
            executor_map(pool, _fails_on_three, 10, range(6))
    with pytest.raises(TypeError, match="executor= must be a concurrent.futures.Executor"):
        executor_map(object(), _fails_on_three, 1, [0])
