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


# ------------------------------------------------------------------ Dask DataFrames
def _as_dask(model, partitions=3, drop=()):
    """``model`` with every table a Dask DataFrame of ``partitions`` partitions (columns
    ``drop`` left out)."""
    dd = pytest.importorskip("dask.dataframe")
    from xxmpy.distributed.shards import with_tables
    return with_tables(model, {name: dd.from_pandas(s.data.drop(columns=[c for c in drop
                                                                         if c in s.data]),
                                                    npartitions=partitions)
                               for name, s in model.spec.submodels.items()}, "on dask")


def _two_level_cfa(seed=5, clusters=150):
    """A two-level CFA (4 indicators, a factor per level) in lavaan syntax, clusters of
    3 to 9 rows, 5% of the values missing."""
    from xxmpy.syntax import build, parse
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 10, clusters)
    g = np.repeat(np.arange(clusters), sizes) + 1000
    f = rng.normal(size=g.size) + rng.normal(0, 0.6, clusters)[g - 1000]
    data = pd.DataFrame({f"y{j}": (0.7 + 0.1 * j) * f + rng.normal(0, 0.6, g.size) + j
                         + rng.normal(0, 0.4, clusters)[g - 1000] for j in range(4)})
    data = data.mask(rng.random(data.shape) < 0.05)
    data["g"] = g
    syntax = ("level: 1\n fw =~ y0 + y1 + y2 + y3\nlevel: 2\n fb =~ y0 + y1 + y2 + y3")
    return build(parse(syntax), data, "g").model


def test_dask_dataframes_are_sharded_on_the_workers_with_the_same_numbers(dask_client):
    """Tables as Dask DataFrames: hashed on the top level's ID into shards built and
    compiled on the workers; -2 log L and the gradient equal the in-memory model's to
    1e-12 (two and three levels, missing values, random slopes); the fit equals the
    in-memory fit (same -2 log L, estimates, SEs and profile CIs to the optimiser's
    tolerance) with the whole data's counts; factor scores, computed on the workers,
    equal the in-memory posterior at the same estimates; what needs the data is
    refused, naming the method."""
    from xxmpy.distributed.partitions import PartitionedModel, ShardedFitResult
    rng = np.random.default_rng(9)
    for factory, n_shards in ((factories.three_level, 3), (factories.random_slopes, 2),
                              (_two_level_cfa, 4)):
        model = factory()
        problem = model.compile()
        built = PartitionedModel(_as_dask(model), dask_client, n_shards)
        assert built.likelihood.labels == list(problem.params.labels)
        assert built.n_observed == problem.n_observed
        assert built.level_units == {lev.name: lev.n for lev in problem.levels}
        assert_same(built.likelihood, problem, problem.params.start)
        assert_same(built.likelihood, problem, factories.random_theta(problem, rng))

    model = _two_level_cfa()        # more clusters than the skeleton's sample of 100
    memory = model.fit(start="auto")
    fit = _as_dask(model).fit(executor=dask_client, shards=3, start="auto")
    assert isinstance(fit, ShardedFitResult) and fit.converged and memory.converged
    assert fit.deviance == pytest.approx(memory.deviance, rel=1e-10)
    np.testing.assert_allclose(fit.params, memory.params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fit.estimates["se"], memory.estimates["se"], rtol=1e-4)
    assert fit.n_observations == memory.n_observations and fit.bic == pytest.approx(memory.bic)
    text = str(fit.summary())
    assert "row (" + str(memory.problem.levels[0].n) + " units)" in text
    wanted = ["fw=~y1", "fb~~fb.l2"]          # a within loading, a between variance
    assert set(wanted) <= set(fit.labels)
    ours = fit.profile_ci(parameters=wanted).estimates.set_index("label").loc[wanted]
    theirs = memory.profile_ci(parameters=wanted, n_jobs=1).estimates.set_index(
        "label").loc[wanted]
    statuses = ["lower_status", "upper_status"]
    assert ours[statuses].equals(theirs[statuses])
    assert (ours.loc["fw=~y1", statuses] == "ok").all()
    np.testing.assert_allclose(ours[["lower", "upper"]], theirs[["lower", "upper"]],
                               rtol=1e-5, atol=1e-7)
    brim = ref.brim()                   # a correlation's profile (psi21 / theta21)
    on_shards = _as_dask(brim).fit(executor=dask_client, shards=2).correlation_ci()
    in_memory = brim.fit().correlation_ci()
    assert list(on_shards["label"]) == list(in_memory["label"]) == ["student_theta_2_1",
                                                                 "teacher_psi_2_1"]
    np.testing.assert_allclose(on_shards[["estimate", "lower", "upper"]],
                               in_memory[["estimate", "lower", "upper"]], rtol=1e-5)
    from xxmpy.assessment.factor_scores import factor_scores
    scores = fit.factor_scores()
    assert set(scores) == {"row", "g"}
    for level, frame in scores.items():        # Dask DataFrames: one partition a shard
        etas = list(model.spec.submodels[level].etas)
        got = frame.compute().sort_index()
        want = factor_scores(memory.problem, fit.record.estimate, etas, level).sort_index()
        assert frame.npartitions == 3 and got.index.equals(want.index)
        np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-9, atol=1e-12)
    for call in (fit.fit_measures,
                 lambda: fit.summary(fit_measures=True)):
        with pytest.raises(NotImplementedError, match="partitioned data"):
            call()


def test_dask_dataframes_are_refused_with_the_reason(dask_client):
    """No client, a table without the top level's ID column (each named), compile() on
    Dask tables; a shard's validation problem arrives with the in-memory message."""
    model = factories.three_level()
    on_dask = _as_dask(model)
    with pytest.raises(TypeError, match="executor= a dask.distributed.Client"):
        on_dask.fit()
    with pytest.raises(TypeError, match="compiled shard by shard"):
        on_dask.compile()
    with pytest.raises(ValueError) as info:
        _as_dask(model, drop=["school"]).fit(executor=dask_client)
    message = str(info.value)
    assert "level 'student'" in message and "level 'teacher'" in message
    assert "no column 'school'" in message
    no_table = _as_dask(model)
    no_table.spec.submodels["teacher"] = no_table.spec.submodels["teacher"].__class__(
        **{**vars(no_table.spec.submodels["teacher"]), "data": None})
    with pytest.raises(ValueError, match="level 'teacher': no table"):
        no_table.fit(executor=dask_client)
    bad = factories.three_level()
    bad.spec.submodels["student"] = bad.spec.submodels["student"].__class__(
        **{**vars(bad.spec.submodels["student"]), "ys": ["y0", "y1", "missing_y"]})
    with pytest.raises(Exception) as in_memory:
        bad.compile()
    with pytest.raises(type(in_memory.value)) as on_workers:
        _as_dask(bad).fit(executor=dask_client)
    assert str(on_workers.value) == str(in_memory.value)


def test_shards_built_from_dask_dataframes_are_rebuilt_after_a_worker_dies(dask_client):
    """A worker SIGKILLed after a fit on Dask DataFrames: the lost shards are rebuilt
    from their lineage (read, shuffle, compile) on the live worker; the next evaluation
    gives the same numbers, bit for bit."""
    import os
    import signal
    from xxmpy.distributed import PartitionedModel
    model = factories.three_level_factor(n_top=40)
    theta = model.compile().params.start
    built = PartitionedModel(_as_dask(model), dask_client, 4)
    f, g = built.likelihood.deviance_and_gradient(theta)
    held = dask_client.has_what()
    victim = next(w for w in sorted(held)
                  if {s.key for s in built.likelihood.shards if s.key} & set(held[w]))
    os.kill(dask_client.run(os.getpid, workers=[victim])[victim], signal.SIGKILL)
    f_after, g_after = built.likelihood.deviance_and_gradient(theta)
    assert f_after == f and np.array_equal(g_after, g)


def test_a_partitioned_fit_says_when_its_client_is_closed():
    """Profile CIs and factor scores of a fit on Dask DataFrames need the shards: once
    the Client is closed they raise a RuntimeError saying so (no dask traceback)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        fit = _as_dask(ref.brim()).fit(executor=client, shards=2)
    for call in (fit.profile_ci, fit.correlation_ci, fit.factor_scores):
        with pytest.raises(RuntimeError, match="Client the fit ran on, which is closed"):
            call()
