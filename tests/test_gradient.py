"""Analytic gradient and posterior moments of the engine.

References: central finite differences of the engine's -2 log L (checked
against the dense oracle in test_oracle.py) and the dense oracle's posterior
of the etas given y (tests/dense_oracle.py).
"""
import numpy as np
import pytest

import factories
import reference_models as ref
from dense_oracle import dense_posterior
from twin_check import assert_both_inadmissible, assert_compiled_matches_twin
from xxmpy.engine import deviance, deviance_and_gradient, latent_posterior

REFERENCE = [ref.one_way, ref.pastes, ref.penicillin, ref.sleepstudy, ref.brim]


def central_differences(problem, theta, rel=1e-5):
    out = np.zeros_like(theta)
    for k in range(theta.size):
        h = rel * max(1.0, abs(theta[k]))
        up, dn = theta.copy(), theta.copy()
        up[k] += h
        dn[k] -= h
        out[k] = (deviance(problem, up) - deviance(problem, dn)) / (2 * h)
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
