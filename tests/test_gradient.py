"""Analytic gradient and posterior moments of the engine.

References: central finite differences of the engine's -2 log L (checked
against the dense oracle in test_oracle.py) and the dense oracle's posterior
of the etas given y (tests/dense_oracle.py).
"""
import numpy as np
import pandas as pd
import pytest

import factories
import reference_models as ref
from dense_oracle import dense_posterior
from twin_check import assert_both_inadmissible, assert_compiled_matches_twin
from xxmpy.engine import deviance, deviance_and_gradient, latent_posterior

REFERENCE = [ref.one_way, ref.pastes, ref.penicillin, ref.sleepstudy, ref.brim]


def central_differences(problem, theta, rel=1e-5, value=None):
    """Central differences of -2 log L (or of ``value``, theta -> float) at theta."""
    value = value or (lambda t: deviance(problem, t))
    out = np.zeros_like(theta)
    for k in range(theta.size):
        h = rel * max(1.0, abs(theta[k]))
        up, dn = theta.copy(), theta.copy()
        up[k] += h
        dn[k] -= h
        out[k] = (value(up) - value(dn)) / (2 * h)
    return out


def assert_gradient_matches(problem, theta):
    f, g = deviance_and_gradient(problem, theta)
    assert f == pytest.approx(deviance(problem, theta), rel=1e-13)
    fd = central_differences(problem, theta)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6 * max(1.0, np.abs(fd).max()))


@pytest.mark.parametrize("factory", factories.ALL, ids=lambda f: f.__name__)
def test_gradient_matches_finite_differences_at_random_parameters(factory):
    problem = factory().compile()
    rng = np.random.default_rng(11)
    for _ in range(2):
        assert_gradient_matches(problem, factories.random_theta(problem, rng))


@pytest.mark.parametrize("factory", REFERENCE, ids=lambda f: f.__name__)
def test_gradient_matches_finite_differences_on_reference_data(factory):
    problem = factory().compile()
    assert_gradient_matches(problem, problem.params.start)


def test_gradient_vanishes_at_the_fitted_optimum():
    result = ref.pastes().fit()
    _, g = deviance_and_gradient(result.problem, result.record.estimate)
    # predicted further drop of -2 log L from a Newton step, scale free
    assert g @ np.linalg.solve(result.record.hessian, g) < 1e-6


@pytest.mark.parametrize("factory", factories.ALL, ids=lambda f: f.__name__)
def test_posterior_blocks_match_dense_oracle(factory):
    problem = factory().compile()
    theta = factories.random_theta(problem, np.random.default_rng(5))
    mean, cov = dense_posterior(problem, theta)
    offset = np.cumsum([0] + [lev.n * lev.n_etas for lev in problem.levels])
    for lvl, (mu, S) in latent_posterior(problem, theta).items():
        n, m = mu.shape
        rows = offset[lvl] + np.arange(n * m).reshape(n, m)
        np.testing.assert_allclose(mu, mean[rows], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(S, cov[rows[:, :, None], rows[:, None, :]],
                                   rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("factory", factories.ALL + REFERENCE, ids=lambda f: f.__name__)
def test_compiled_kernel_and_numpy_twin_agree(factory, monkeypatch):
    """Compiled vs the numpy reference: f and g (the driver, _program.pyx) and the posterior
    (the driver's posterior sweep); both inadmissible at a negative variance."""
    problem = factory().compile()
    for seed in (8, 9):
        theta = factories.random_theta(problem, np.random.default_rng(seed))
        assert_compiled_matches_twin(problem, theta, monkeypatch)
    theta[np.flatnonzero(problem.params.is_variance)[0]] = -0.5
    assert_both_inadmissible(problem, theta, monkeypatch)


def test_blocked_dense_inverse_matches_the_twin_across_several_blocks():
    """A crossed model whose dense remainder (the targets) spans three DENSE_BLOCK
    blocks of the compiled Cholesky and inverse (dense_inverse: dpotri unrolled by
    blocks, interruptible): f, g and the posterior against the numpy twin."""
    problem = factories.crossed_bivariate(n_raters=262, n_targets=262).compile()
    assert problem.schedule.n_dense >= 2 * 256 + 1
    theta = factories.random_theta(problem, np.random.default_rng(3))
    assert_compiled_matches_twin(problem, theta, rtol=1e-9)


def _runs_of_equal_clusters(seed=4):
    """A two-level CFA (3 indicators, a factor at each level) whose clusters come in runs
    of equal size and missing pattern, broken by other sizes and by a missing value:
    consecutive units with bit-identical blocks, and neighbours without."""
    from xxmpy.syntax import build
    from xxmpy.syntax import parse
    rng = np.random.default_rng(seed)
    sizes = [4, 4, 4, 6, 6, 4, 3, 3, 3, 3, 5, 4, 4, 6, 6, 6]
    g = np.repeat(np.arange(len(sizes)), sizes)
    f = rng.normal(size=g.size) + rng.normal(0, 0.7, len(sizes))[g]
    data = pd.DataFrame({f"y{j}": (0.8 + 0.1 * j) * f + rng.normal(0, 0.6, g.size)
                         for j in range(3)})
    data["g"] = g
    data.loc[np.flatnonzero(g == 12)[1], "y1"] = np.nan      # breaks the run 11, 12
    syntax = "level: 1\n fw =~ y0 + y1 + y2\nlevel: 2\n fb =~ y0 + y1 + y2"
    return build(parse(syntax), data, "g").model


def test_repeated_units_reuse_factors_exactly(monkeypatch):
    """Units whose blocks equal the previous unit's reuse its factor and posterior blocks
    (engine/_elimination eliminate_chain_c, posterior_chain_c; the top level's diagonal
    blocks in eliminate_c / posterior_c): f, g and the posterior equal the numpy
    reference, which factors every unit, at several parameter values."""
    problem = _runs_of_equal_clusters().compile()
    for seed in (1, 2, 3):
        theta = factories.random_theta(problem, np.random.default_rng(seed))
        assert_compiled_matches_twin(problem, theta, monkeypatch)


def _constant_design_model(seed=6, groups=25, two_flat=True):
    """Two ys (missing in 15% each: three patterns), a group intercept and one or two
    flat levels of fixed effects (REML's form), one of them with a data. loading: a
    design without parameters whose flat pairs land on one block for every row."""
    import xxmpy as xm
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 7, groups)
    g = np.repeat(np.arange(groups), sizes)
    x = rng.normal(size=g.size)
    u = rng.normal(0, 0.7, groups)[g]
    rows = pd.DataFrame({"row": np.arange(g.size), "g": g, "x": x,
                         "y1": 1 + u + rng.normal(size=g.size),
                         "y2": 0.5 * x + u + rng.normal(size=g.size)})
    rows.loc[rng.random(g.size) < 0.15, "y1"] = np.nan
    rows.loc[rng.random(g.size) < 0.15, "y2"] = np.nan
    rows = rows.dropna(how="all", subset=["y1", "y2"])
    flats = ["fa", "fb"] if two_flat else ["fa"]
    m = xm.Model(["row", "g"] + flats)
    for f in flats:
        rows[f] = 0
    m.level("row", parents=["g"] + flats, ys=["y1", "y2"], data=rows)
    m.level("g", etas=["u"], data=pd.DataFrame({"g": np.arange(groups)}))
    m.level("fa", etas=["b0", "b1"], flat=True, data=pd.DataFrame({"fa": [0]}))
    if two_flat:
        m.level("fb", etas=["c0"], flat=True, data=pd.DataFrame({"fb": [0]}))
    m.within("row", "theta", np.ones((2, 2)), [[1.0, 0.2], [0.2, 1.0]])
    m.within("g", "psi", [[1]], [[0.5]])
    m.between("g", "row", "lambda", [[0], [0]], [[1.0], [1.0]])
    m.between("fa", "row", "lambda", np.zeros((2, 2)), [[1.0, 0.0], [0.0, 0.0]],
              [[None, None], [None, "data.x"]])
    if two_flat:
        m.between("fb", "row", "lambda", np.zeros((2, 1)), [[0.0], [1.0]])
    return m


def test_constant_designs_add_shared_blocks_from_moments(monkeypatch):
    """A factor family whose A holds no parameter adds the pairs every unit shares (the
    flat levels' blocks, on- and off-diagonal) from moments taken at compile time, and
    its gradient takes their share of wrw from them (engine/_elimination constant
    designs): f, g and the posterior equal the numpy reference, which builds every
    unit's blocks."""
    from xxmpy.engine._program import _shared_moments
    for two_flat in (False, True):
        problem = _constant_design_model(two_flat=two_flat).compile()
        scope = problem.form.lowered.scopes[0]
        term = next(t for t in problem.form.plan.levels[0] if t.kind == "y")
        shared = _shared_moments(term, scope, problem.slots)[0].astype(bool)
        pairs = np.column_stack([scope.pair_i, scope.pair_j])[shared]
        assert len(term.patterns) == 3 and term.a_index.shape[0] == 2
        assert (pairs[:, 0] != pairs[:, 1]).any() == two_flat
        for seed in (1, 2, 3):
            theta = factories.random_theta(problem, np.random.default_rng(seed))
            assert_compiled_matches_twin(problem, theta, monkeypatch)


def _two_level_factor(data, labels, class_variance=None):
    """A two-level factor model on y1..y3 (students in classes) with the given labels on
    the within loadings of y2 and y3 (free) and the between loading of y3 (y1's fixed at
    1, y2 has no between part)."""
    import xxmpy as xm
    from xxmpy.spec.objects import scaled_label
    start = [0.8 * scaled_label(lab)[0] for lab in labels]    # each label's own start
    rows = data[["student", "klass", "y1", "y2", "y3"]]
    classes = pd.DataFrame({"klass": np.sort(data.klass.unique())})
    return (xm.Model(["student", "klass"])
            .level("student", parents=["klass"], ys=["y1", "y2", "y3"], etas=["f"],
                   data=rows)
            .level("klass", etas=["g"], data=classes)
            .within("student", "nu", np.ones((3, 1)), np.zeros((3, 1)))
            .within("student", "lambda", [[0], [1], [1]], [[1.0], [start[0]], [start[1]]],
                    [[None], [labels[0]], [labels[1]]])
            .within("student", "theta", np.eye(3), np.eye(3))
            .within("student", "psi", [[1]], [[1.0]])
            .within("klass", "psi", [[1]], [[0.5]], [[class_variance]])
            .between("klass", "student", "lambda", [[0], [0], [1]],
                     [[1.0], [0.0], [start[2]]],
                     [[None], [None], [labels[2]]]))


def test_scaled_labels_are_multiples_of_one_parameter():
    """'-a' and '0.5*a' make free elements -1 and 0.5 times parameter a (FormMap's scaled
    engine parameters). Checks: negating y2's column with '-a' on it is the model with
    'a' on the column as given (the same -2 log L, a's estimate); doubling y3's column
    with '0.5*a' on its loadings is the model with 'a' on the doubled column, whose
    -2 log L is larger by 2 N log 2 (the Jacobian); the gradient matches central
    differences; a scaled label on a variance is refused."""
    import pandas as pd
    import xxmpy as xm
    rng = np.random.default_rng(3)
    klass = np.repeat(np.arange(40), 8)
    f = rng.normal(size=klass.size) + rng.normal(0, 0.7, 40)[klass]
    y = np.outer(f, [1.0, 0.7, 0.7]) + rng.normal(0, 0.6, (klass.size, 3))
    data = pd.DataFrame(dict(student=np.arange(klass.size), klass=klass, y1=y[:, 0],
                             y2=y[:, 1], y3=y[:, 2]))
    plain = _two_level_factor(data, ["a", "a", "b"]).fit()
    flipped = data.assign(y2=-data.y2)
    negated = _two_level_factor(flipped, ["-a", "a", "b"]).fit()
    assert negated.converged and plain.converged
    assert negated.deviance == pytest.approx(plain.deviance, abs=1e-6)
    assert negated.params["a"] == pytest.approx(plain.params["a"], rel=1e-5)
    doubled = data.assign(y3=2 * data.y3)
    half = _two_level_factor(data, ["a", "0.5*a", "0.5*b"]).fit()
    whole = _two_level_factor(doubled, ["a", "a", "b"]).fit()
    assert half.converged and whole.converged
    assert whole.deviance - half.deviance == pytest.approx(2 * len(data) * np.log(2),
                                                           abs=1e-6)
    assert half.params[["a", "b"]].to_numpy() == pytest.approx(        # 2 (0.5 a) = a
        whole.params[["a", "b"]].to_numpy(), rel=1e-5)
    problem = _two_level_factor(data, ["-a", "0.5*a", "-b"]).compile()
    assert_gradient_matches(problem, problem.params.start + 0.1)
    model = _two_level_factor(data, ["a", "a", "b"], class_variance="-v")
    model.between("klass", "student", "beta", [[0]], [[0.0]], [["-d"]])
    with pytest.raises(xm.SpecificationError) as err:
        model.fit()
    assert "labelled '-v', a multiple of 'v'; scaled labels are for" in str(err.value)
    assert "labelled '-d' but is fixed" in str(err.value)
