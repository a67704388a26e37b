"""Distributed evaluation of crossed designs and of flat levels (issue #22,
xxmpy/distributed/crossed.py): shards of one level's units, every other level shared;
each shard eliminates its own units and returns its part of the shared levels' dense
remainder, which is added up and factored once, and the shards finish their gradient
terms from its posterior.

Reference: the whole model compiled and evaluated in this process (the engine, itself
checked against the dense oracle in test_oracle.py): equal to 1e-12 relative.
"""
import numpy as np
import pandas as pd
import pytest

import factories
import reference_models as ref
import xxmpy as xm
from xxmpy.compile import compile_problem
from xxmpy.distributed import ShardedLikelihood
from xxmpy.distributed.crossed import crossed_shard_models, crossed_split
from xxmpy.distributed.shards import with_tables
from xxmpy.engine import deviance_and_gradient
from xxmpy.spec.validate import validate

PENICILLIN = "diameter ~ 1 + (1 | plate) + (1 | sample)"


def penicillin():
    return pd.read_csv(ref.DATA / "Penicillin.csv")


def sleepstudy():
    return pd.read_csv(ref.DATA / "sleepstudy.csv")


def penicillin_model():
    """Penicillin through the Pythonic API (models/penicillin): plates crossed with
    samples, a mean parameter."""
    obs = penicillin().assign(obs=lambda d: np.arange(len(d)))
    return (xm.Model(["obs", "plate", "sample"], name="Penicillin")
            .level("obs", parents=["plate", "sample"], ys=["diameter"], data=obs)
            .level("plate", etas=["p"], data=pd.DataFrame({"plate": obs.plate.unique()}))
            .level("sample", etas=["s"], data=pd.DataFrame({"sample": obs["sample"].unique()}))
            .within("obs", "nu", [[1]], [[20.0]], [["mean"]])
            .within("obs", "theta", [[1]], [[1.0]], [["residual"]])
            .within("plate", "psi", [[1]], [[1.0]], [["plate_var"]])
            .within("sample", "psi", [[1]], [[1.0]], [["sample_var"]])
            .between("plate", "obs", "lambda", [[0]], [[1.0]])
            .between("sample", "obs", "lambda", [[0]], [[1.0]]))


def lmer_models():
    """lmer's models: flat fixed effects (REML integrates them out, ML profiles them),
    crossed (Penicillin) and nested (sleepstudy's random slopes)."""
    return {"penicillin REML": xm.lmer(PENICILLIN, penicillin()).model,
            "penicillin ML": xm.lmer(PENICILLIN, penicillin(), REML=False).model,
            "sleepstudy REML": xm.lmer("Reaction ~ Days + (Days | Subject)",
                                       sleepstudy()).model,
            "sleepstudy ML": xm.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy(),
                                     REML=False).model}


def assert_same(sharded, problem, theta):
    f, g = sharded.deviance_and_gradient(theta)
    f0, g0 = deviance_and_gradient(problem, theta)
    assert f == pytest.approx(f0, rel=1e-12)
    np.testing.assert_allclose(g, g0, rtol=1e-12, atol=1e-12 * np.abs(g0).max())
    assert sharded.deviance(theta) == pytest.approx(f0, rel=1e-12)


CROSSED = [factories.crossed_bivariate, factories.crossed_with_etas_at_bottom,
           factories.three_crossed]


@pytest.mark.parametrize("factory", CROSSED, ids=lambda f: f.__name__)
def test_crossed_shards_sum_to_the_whole_models_likelihood_and_gradient(factory):
    """Crossed raters and targets with missing values and two etas each; responses with
    their own factor, crossed, targets in groups (sharded by group: responses and
    targets local, raters shared); InstEval's shape with a covariate (sharded by
    student): at the start values and at random parameters, for 1, 2, 3 and 8
    shards."""
    model = factory()
    problem = model.compile()
    rng = np.random.default_rng(4)
    for n_shards in (1, 2, 3, 8):
        sharded = ShardedLikelihood(model, n_shards)
        assert sharded.crossed and sharded.labels == list(problem.params.labels)
        assert_same(sharded, problem, problem.params.start)
        assert_same(sharded, problem, factories.random_theta(problem, rng))


@pytest.mark.parametrize("name", ["penicillin REML", "penicillin ML", "sleepstudy REML",
                                  "sleepstudy ML"])
def test_flat_levels_are_shared_by_every_shard(name):
    """The fixed effects: a flat level shared by all shards, integrated out (REML) or
    profiled (ML: log|X'V^-1X| taken off the summed remainder's factor, and the
    gradient from the other etas' covariance given the fixed effects)."""
    model = lmer_models()[name]
    problem = model.compile()
    rng = np.random.default_rng(7)
    for n_shards in (1, 3, 8):
        sharded = ShardedLikelihood(model, n_shards)
        assert "(fixed)" in crossed_split(model.spec)[2]
        # (sleepstudy is balanced: its two-stage start is the REML optimum itself, where
        # the gradient is rounding; compared off it)
        assert_same(sharded, problem, problem.params.start * 1.2)
        assert_same(sharded, problem, factories.random_theta(problem, rng))


def replicated_responses(copies=4, seed=1):
    """factories.crossed_with_etas_at_bottom with every response repeated (new ys): the
    responses, a level with etas, collapse, and their posterior is read from the
    row-by-row form (engine.posterior_form)."""
    model = factories.crossed_with_etas_at_bottom()
    sub = model.spec.submodels["response"]
    rows = pd.concat([sub.data] * copies, ignore_index=True)
    rng = np.random.default_rng(seed)
    for k in range(3):
        rows[f"y{k}"] = rng.normal(size=len(rows))
    rows["response"] = np.arange(len(rows))
    return with_tables(model, {**{name: s.data for name, s in model.spec.submodels.items()},
                               "response": rows}, "replicated responses")


@pytest.mark.parametrize("name", ["permuted remainder", "penicillin ML",
                                  "collapsed level with etas"])
def test_the_shards_posterior_is_the_whole_models(name):
    """Each shard's posterior of its own units given the shared levels' posterior (and
    the shared levels' blocks) equal the whole model's latent posterior; the shards'
    remainder in another order than the common layout, profiled fixed effects (the
    other levels' covariances given them), a collapsed local level with etas (read
    from the row-by-row form's program)."""
    from xxmpy.engine import latent_posterior, posterior_form
    # departments listed before the lecturers: the shards' remainder (largest level
    # first) is permuted into the common layout (levels in the model's order)
    model = {"permuted remainder": lambda: factories.three_crossed(dept_first=True),
             "collapsed level with etas": replicated_responses}.get(
        name, lambda: lmer_models()[name])()
    problem = model.compile()
    if name == "collapsed level with etas":
        assert posterior_form(problem) is not problem.form
    theta = factories.random_theta(problem, np.random.default_rng(5))
    sharded = ShardedLikelihood(model, 3)
    if name == "permuted remainder":
        assert all(shard.where is not None for shard in sharded.shards)
    assert_same(sharded, problem, theta)
    whole = latent_posterior(problem, theta)
    mean, sigma = sharded.remainder_posterior(theta)
    for shard in sharded.shards:
        for level, (m, c) in shard.posterior(theta, mean, sigma).items():
            k = problem.level_names.index(level)
            rows = problem.levels[k].ids.get_indexer(
                shard.problem.levels[shard.problem.level_names.index(level)].ids)
            np.testing.assert_allclose(m, whole[k][0][rows], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(c, whole[k][1][rows], rtol=1e-10, atol=1e-12)


def test_the_split_shares_the_fewest_etas_and_keeps_every_row_once():
    """InstEval's shape is split by student (lecturers and departments shared), a
    grouped crossed design by its groups (raters shared); every local row in exactly
    one shard, every shared table whole in each; the same split again."""
    top, local, shared, _ = crossed_split(factories.three_crossed().spec)
    assert (top, shared) == ("s", ["d", "dept"])
    model = factories.crossed_with_etas_at_bottom()
    top, local, shared, reach = crossed_split(model.spec)
    assert top == "group" and shared == ["rater"] and set(local) == {"group", "target",
                                                                      "response"}
    shards, shared = crossed_shard_models(model, 3)
    again, _ = crossed_shard_models(model, 3)
    for level, sub in model.spec.submodels.items():
        sizes = [len(s.spec.submodels[level].data) for s in shards]
        if level in shared:
            assert sizes == [len(sub.data)] * 3
        else:
            assert sum(sizes) == len(sub.data)
        for a, b in zip(shards, again):
            assert a.spec.submodels[level].data.equals(b.spec.submodels[level].data)


def test_a_level_crossed_inside_a_shard_is_refused_at_compile():
    """Forcing a remainder that a local level's elimination would fill elsewhere: the
    schedule names the levels instead of laying out a wrong remainder."""
    model = factories.crossed_with_etas_at_bottom()
    with pytest.raises(ValueError, match="couples units of level 'rater', which is not "
                                         r"among the shared levels \['group'\]"):
        compile_problem(validate(model.spec), shared_levels=("group",))


def test_a_crossed_fit_on_shards_is_the_in_process_fit():
    """Model.fit(shards=...) and xm.lmer(..., shards=...) on crossed designs and flat
    levels: the in-process estimates, -2 log L and SEs."""
    fit_whole = xm.lmer(PENICILLIN, penicillin(), REML=False)
    fit_shards = xm.lmer(PENICILLIN, penicillin(), REML=False, shards=3)
    assert fit_shards.deviance == pytest.approx(fit_whole.deviance, rel=1e-10)
    np.testing.assert_allclose(fit_shards.fit_result.record.estimate,
                               fit_whole.fit_result.record.estimate, rtol=1e-5, atol=1e-6)
    whole = penicillin_model().fit()
    sharded = penicillin_model().fit(shards=3)
    assert sharded.converged and whole.converged
    assert sharded.deviance == pytest.approx(whole.deviance, rel=1e-10)
    np.testing.assert_allclose(sharded.estimates.se.to_numpy(),
                               whole.estimates.se.to_numpy(), rtol=1e-4)


def test_crossed_shards_on_a_dask_local_cluster(dask_client):
    """Two worker processes hold the shards; the two rounds give the in-process shards'
    numbers bit for bit (sums in shard order) and the whole model's to 1e-12 (also
    with missing values, and with profiled fixed effects); after a worker is killed
    between evaluations, or between the two rounds, the lost shards are rebuilt and
    the numbers repeat; a REML lmer fit with executor= the Client is the in-process
    fit."""
    import os
    import signal
    model = factories.three_crossed()
    problem = model.compile()
    theta = factories.random_theta(problem, np.random.default_rng(9))
    local = ShardedLikelihood(model, 4)
    remote = ShardedLikelihood(model, 4, client=dask_client)
    f, g = remote.deviance_and_gradient(theta)
    f_local, g_local = local.deviance_and_gradient(theta)
    assert f == f_local and np.array_equal(g, g_local)
    assert_same(remote, problem, theta)
    assert ShardedLikelihood(model, client=dask_client).n_shards == 2     # one a worker
    assert ShardedLikelihood(model).n_shards == 1
    for other in (factories.crossed_bivariate(), lmer_models()["sleepstudy ML"]):
        other_problem = other.compile()        # missing values; a profiled flat level
        at = factories.random_theta(other_problem, np.random.default_rng(2))
        assert_same(ShardedLikelihood(other, 3, client=dask_client), other_problem, at)
    victim = sorted(dask_client.scheduler_info()["workers"])[0]
    os.kill(dask_client.run(os.getpid, workers=[victim])[victim], signal.SIGKILL)
    f_after, g_after = remote.deviance_and_gradient(theta)
    assert f_after == f and np.array_equal(g_after, g)
    # a worker lost between the two rounds: its shards are rebuilt elsewhere and redo
    # round 1 before round 2 (their state went with the worker)
    from xxmpy.distributed.crossed import combine
    from xxmpy.distributed.likelihood import _finish_many, _to_dense_many
    dask_client.wait_for_workers(2)
    total, mean, sigma = combine(remote._run(_to_dense_many, theta), 0, True)
    victim = sorted(dask_client.scheduler_info()["workers"])[0]
    os.kill(dask_client.run(os.getpid, workers=[victim])[victim], signal.SIGKILL)
    f_rounds, g_rounds = total, np.zeros(len(g))
    for r2, gs in remote._run(_finish_many, theta, mean, sigma):   # as _crossed adds
        f_rounds += r2
        g_rounds += gs
    assert f_rounds == f and np.array_equal(g_rounds, g)
    on_workers = xm.lmer(PENICILLIN, penicillin(), executor=dask_client, shards=3)
    whole = xm.lmer(PENICILLIN, penicillin())
    assert on_workers.deviance == pytest.approx(whole.deviance, rel=1e-10)


def test_dask_dataframes_of_crossed_designs_are_sharded_on_the_workers(dask_client):
    """Tables as Dask DataFrames: the local levels' tables hashed on the sharded level's
    ID on the workers, the shared levels' brought to the client and sent whole to each
    shard. -2 log L and the gradient equal the in-memory model's to 1e-12 (InstEval's
    shape, Penicillin by ML with profiled fixed effects) with the whole data's counts;
    the fit is the in-memory fit; factor scores of local levels (one partition a
    shard) and of shared ones equal the in-memory posterior; a local table without the
    sharded level's ID is refused, naming it."""
    from test_distributed import _as_dask

    from xxmpy.assessment.factor_scores import factor_scores
    from xxmpy.distributed.partitions import PartitionedModel
    rng = np.random.default_rng(11)
    for model in (factories.three_crossed(), lmer_models()["penicillin ML"]):
        problem = model.compile()
        built = PartitionedModel(_as_dask(model), dask_client, 3)
        assert built.likelihood.crossed and built.n_observed == problem.n_observed
        assert built.level_units == {lev.name: lev.n for lev in problem.levels}
        assert_same(built.likelihood, problem, problem.params.start)
        assert_same(built.likelihood, problem, factories.random_theta(problem, rng))
    model = penicillin_model()
    memory = model.fit()
    fit = _as_dask(model).fit(executor=dask_client, shards=3)
    assert fit.converged and fit.deviance == pytest.approx(memory.deviance, rel=1e-10)
    np.testing.assert_allclose(fit.estimates["se"], memory.estimates["se"], rtol=1e-4)
    wanted = ["plate_var", "mean"]                   # profile CIs, evaluated on the shards
    ours = fit.profile_ci(parameters=wanted).estimates.set_index("label").loc[wanted]
    theirs = memory.profile_ci(parameters=wanted, n_jobs=1).estimates.set_index(
        "label").loc[wanted]
    np.testing.assert_allclose(ours[["lower", "upper"]], theirs[["lower", "upper"]],
                               rtol=1e-5)
    assert {level: frame.npartitions for level, frame in fit.factor_scores().items()} == \
        {"plate": 3, "sample": 1}
    ml = lmer_models()["penicillin ML"]          # the fixed effects profiled: shared, flat
    ml_fit = _as_dask(ml).fit(executor=dask_client, shards=3)
    for on_shards, whole in ((fit, model), (ml_fit, ml)):
        problem = whole.compile()
        for level, frame in on_shards.factor_scores().items():
            etas = list(whole.spec.submodels[level].etas)
            got = frame.compute().sort_index()
            want = factor_scores(problem, on_shards.record.estimate, etas, level).sort_index()
            assert got.index.equals(want.index)
            np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-9,
                                       atol=1e-12)
    with pytest.raises(ValueError) as info:
        _as_dask(factories.crossed_with_etas_at_bottom(), drop=["group"]).fit(
            executor=dask_client)
    assert "level 'response': its table has no column 'group'" in str(info.value)


@pytest.mark.parametrize("form", ["ggm", "prec", "chol"])
def test_other_forms_and_inadmissible_parameters_on_crossed_shards(form):
    """The shared targets' psi written as a network, a precision or a Cholesky factor:
    each shard maps theta to the engine's parameters and pulls its gradient back (the
    whole model's numbers to 1e-12); a negative variance is +inf with NaN gradients,
    as in-process."""
    model = factories.crossed_bivariate()
    model.spec.matrices = [m for m in model.spec.matrices
                           if not (m.child == "target" and m.type == "psi")]
    model.within("target", "psi", np.ones((2, 2)), [[0.7, -0.1], [-0.1, 0.7]], form=form)
    problem = model.compile()
    assert problem.forms is not None
    sharded = ShardedLikelihood(model, 3)
    assert_same(sharded, problem, factories.random_theta(problem, np.random.default_rng(3)))
    bad = problem.params.start.copy()
    bad[np.flatnonzero(problem.params.is_variance)[0]] = -1.0
    f, g = sharded.deviance_and_gradient(bad)
    assert f == np.inf and np.isnan(g).all() and sharded.deviance(bad) == np.inf
    assert deviance_and_gradient(problem, bad)[0] == np.inf


@pytest.mark.parametrize("factory", [factories.three_crossed, factories.three_level],
                         ids=["crossed", "nested"])
def test_tables_are_validated_before_they_are_split(factory):
    """A row whose parent ID is missing from the parent's table: the split would drop
    it or fail deep inside numpy; the whole model is validated first and the
    in-memory message is raised."""
    from xxmpy.errors import SpecificationError
    model = factory()
    low = model.spec.levels[0]
    sub = model.spec.submodels[low]
    rows = sub.data.copy()
    parent = sub.parents[0]
    rows[parent] = rows[parent].astype(object)
    rows.loc[0, parent] = "nowhere"
    broken = with_tables(model, {**{n: s.data for n, s in model.spec.submodels.items()},
                                 low: rows}, "broken")
    with pytest.raises(SpecificationError) as in_memory:
        broken.compile()
    with pytest.raises(SpecificationError) as on_shards:
        ShardedLikelihood(broken, 2)
    assert str(on_shards.value) == str(in_memory.value)
    assert "IDs that are not in the data of level" in str(on_shards.value)


def test_a_shard_copied_between_the_rounds_redoes_round_one():
    """dask may move or replicate a shard between the two rounds (work stealing,
    a lost worker's replica): the copy's Program has fresh buffers, so it must not
    take round 1 as done. Round 2 on pickled copies gives the originals' numbers bit
    for bit (without CrossedShard.__getstate__ it read empty buffers)."""
    import pickle

    from xxmpy.distributed.crossed import combine
    model = factories.three_crossed()
    problem = model.compile()
    theta = factories.random_theta(problem, np.random.default_rng(1))
    shards = ShardedLikelihood(model, 3).shards
    total, mean, sigma = combine([s.to_dense(theta) for s in shards], 0, True)
    copies = [pickle.loads(pickle.dumps(s)) for s in shards]
    for original, copy in zip(shards, copies):
        (r2, g), (r2_copy, g_copy) = original.finish(theta, mean, sigma), \
            copy.finish(theta, mean, sigma)
        assert r2_copy == r2 and np.array_equal(g_copy, g)


def test_lmer_on_a_dask_dataframe_says_what_to_do():
    """xm.lmer builds its design in memory: a Dask DataFrame is refused naming it as
    such (not 'got DataFrame') and pointing to the xxM API on Dask tables."""
    from xxmpy.errors import SpecificationError
    dd = pytest.importorskip("dask.dataframe")
    with pytest.raises(SpecificationError, match="got dask.DataFrame. lmer builds its design "
                                                 "in memory: compute"):
        xm.lmer("Reaction ~ Days + (Days | Subject)", dd.from_pandas(sleepstudy(),
                                                                     npartitions=2))


def test_a_worker_killed_during_a_crossed_fit_is_recovered_from(dask_client):
    """A worker SIGKILLed while the fit's third evaluation is on the cluster (in one of
    its two rounds): the lost shards are rebuilt on the live worker, redo their round
    1, and the fit ends where the undisturbed fit does; nothing hangs."""
    import os
    import signal
    import threading

    from xxmpy.fit.optimize import fit_problem
    model = penicillin_model()
    problem = model.compile()
    whole = fit_problem(problem)
    sharded = ShardedLikelihood(model, 4, client=dask_client)
    victim = sorted(dask_client.scheduler_info()["workers"])[0]
    pid = dask_client.run(os.getpid, workers=[victim])[victim]
    calls = []

    def evaluate(theta):
        calls.append(1)
        if len(calls) == 3:                   # kill it while this evaluation runs
            threading.Timer(0.005, os.kill, (pid, signal.SIGKILL)).start()
        return sharded.deviance_and_gradient(theta)

    record = fit_problem(problem, evaluate=evaluate)
    with pytest.raises(ProcessLookupError):      # the worker did die
        os.kill(pid, 0)
    assert len(calls) > 3 and record.converged
    assert record.deviance == pytest.approx(whole.deviance, rel=1e-10)
    np.testing.assert_allclose(record.estimate, whole.estimate, rtol=1e-5, atol=1e-6)
