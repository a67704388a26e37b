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
from xxmpy.likelihood import deviance, deviance_and_gradient, latent_posterior

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
    """The compiled engine (_engine.pyx over lowered arrays) vs the numpy twin: f, g, posterior."""
    from xxmpy._core import kernels, twin
    if kernels.engine is None:
        pytest.fail("the compiled kernels are not built (or XXMPY_KERNEL=numpy is set)")
    problem = factory().compile()
    for seed in (8, 9):
        theta = factories.random_theta(problem, np.random.default_rng(seed))
        f_c, g_c = deviance_and_gradient(problem, theta)
        post_c = latent_posterior(problem, theta)
        with monkeypatch.context() as patch:
            patch.setattr(kernels, "engine", None)
            patch.setattr(kernels, "chol_inverse_logdet", twin.chol_inverse_logdet)
            patch.setattr(kernels, "pattern_inverses", twin.pattern_inverses)
            f_t, g_t = deviance_and_gradient(problem, theta)
            post_t = latent_posterior(problem, theta)
        assert np.isfinite(f_c) and f_c == pytest.approx(f_t, rel=1e-10)
        np.testing.assert_allclose(g_c, g_t, rtol=1e-10, atol=1e-10 * np.abs(g_t).max())
        assert post_c.keys() == post_t.keys()
        for lvl in post_t:
            for got, want in zip(post_c[lvl], post_t[lvl]):
                np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
