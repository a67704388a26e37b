"""Distributed evaluation (issue #22, xxmpy/distributed/): a nested model's -2 log L and
gradient as a sum over shards of whole top-level units, compiled where they are
evaluated, in this process or on a dask LocalCluster's two worker processes.

Reference: the whole model compiled and evaluated in this process (the engine, itself
checked against the dense oracle in test_oracle.py): equal to 1e-12 relative.
"""
import numpy as np
import pandas as pd
import pytest

import factories
import reference_models as ref
import xxmpy as xm
from xxmpy.distributed import ShardedLikelihood, shard_models
from xxmpy.engine import deviance_and_gradient

NESTED = [factories.nested_bivariate, factories.three_level, factories.random_slopes,
          factories.latent_slope_within, factories.pastes_like, factories.data_offsets]


def assert_same(sharded, problem, theta):
    f, g = sharded.deviance_and_gradient(theta)
    f0, g0 = deviance_and_gradient(problem, theta)
    assert f == pytest.approx(f0, rel=1e-12)
    np.testing.assert_allclose(g, g0, rtol=1e-12, atol=1e-12 * np.abs(g0).max())


@pytest.mark.parametrize("factory", NESTED, ids=lambda f: f.__name__)
def test_shards_sum_to_the_whole_models_likelihood_and_gradient(factory):
    """Nested two- and three-level models, missing values, random slopes (data.
    loadings), latent slopes: at the start values and at random parameters, for 1, 3
    and 8 shards."""
    model = factory()
    problem = model.compile()
    rng = np.random.default_rng(4)
    for n_shards in (1, 3, 8):
        sharded = ShardedLikelihood(model, n_shards)
        assert sharded.labels == list(problem.params.labels)
        assert_same(sharded, problem, problem.params.start)
        assert_same(sharded, problem, factories.random_theta(problem, rng))


def test_the_split_depends_on_the_data_and_the_shard_count_only():
    """Whole top units per shard, largest first to the least loaded shard; every row in
    exactly one shard."""
    model = factories.three_level()
    spec = model.spec
    shards = shard_models(model, 3)
    assert len(shards) == 3
    for level in spec.levels:
        sizes = [len(s.spec.submodels[level].data) for s in shards]
        assert sum(sizes) == len(spec.submodels[level].data)
    again = shard_models(model, 3)
    for a, b in zip(shards, again):
        for level in spec.levels:
            assert a.spec.submodels[level].data.equals(b.spec.submodels[level].data)


def test_crossed_and_flat_models_are_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"\['rater', 'target'\], not one top level"):
        shard_models(factories.crossed_bivariate(), 2)
    reml = xm.lmer("Reaction ~ Days + (Days | Subject)",
                   pd.read_csv(ref.DATA / "sleepstudy.csv")).model
    with pytest.raises(ValueError, match="are flat"):
        shard_models(reml, 2)


def test_shards_on_a_dask_local_cluster_give_the_same_likelihood(dask_client):
    """Two worker processes; the compiled shards stay on the workers, an evaluation
    sends theta and adds the returned parts in shard order: the same numbers as the
    in-process shards, bit for bit, and as the whole model to 1e-12; a fit with
    executor= the Client is the in-process fit."""
    model = factories.three_level()
    problem = model.compile()
    theta = factories.random_theta(problem, np.random.default_rng(9))
    local = ShardedLikelihood(model, 4)
    remote = ShardedLikelihood(model, 4, client=dask_client)
    f, g = remote.deviance_and_gradient(theta)
    held = dask_client.has_what()
    assert sum(len(keys) for keys in held.values()) >= 4     # the shards stay there
    on_workers = factories.three_level_factor(n_top=40).fit(executor=dask_client, shards=4)
    whole = factories.three_level_factor(n_top=40).fit()
    assert on_workers.converged
    assert on_workers.deviance == pytest.approx(whole.deviance, rel=1e-10)
    np.testing.assert_allclose(on_workers.estimates.se.to_numpy(),
                               whole.estimates.se.to_numpy(), rtol=1e-4)
    f_local, g_local = local.deviance_and_gradient(theta)
    assert f == f_local and np.array_equal(g, g_local)
    assert_same(local, problem, theta)


def test_a_fit_on_shards_is_the_in_process_fit():
    """Model.fit(shards=...) evaluates in shards (here in this process; executor= a dask
    Client puts them on its workers): the same estimates, -2 log L and SEs as the
    in-process fit, to the optimiser's rounding."""
    whole = factories.three_level_factor(n_top=40).fit()
    sharded = factories.three_level_factor(n_top=40).fit(shards=3)
    assert sharded.converged and whole.converged
    assert sharded.deviance == pytest.approx(whole.deviance, rel=1e-10)
    np.testing.assert_allclose(sharded.record.estimate, whole.record.estimate, rtol=1e-5,
                               atol=1e-6)
    se = whole.estimates.se.to_numpy()
    np.testing.assert_allclose(sharded.estimates.se.to_numpy(), se, rtol=1e-4)
    with pytest.raises(TypeError, match="executor= must be a dask.distributed.Client"):
        factories.three_level().fit(executor=object())


def test_a_killed_worker_is_recovered_from_with_the_same_numbers(dask_client):
    """Killing a worker process between evaluations (SIGKILL, as a crash would): dask
    rebuilds the lost shards from their tasks on a live worker, and the next
    evaluation gives the same numbers, bit for bit; nothing hangs."""
    import os
    import signal
    model = factories.three_level_factor(n_top=40)
    theta = model.compile().params.start
    sharded = ShardedLikelihood(model, 4, client=dask_client)
    f, g = sharded.deviance_and_gradient(theta)
    victim = sorted(dask_client.scheduler_info()["workers"])[0]
    os.kill(dask_client.run(os.getpid, workers=[victim])[victim], signal.SIGKILL)
    f_after, g_after = sharded.deviance_and_gradient(theta)
    assert f_after == f and np.array_equal(g_after, g)
