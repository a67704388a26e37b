"""The compiled driver vs the numpy reference on one problem (used by several test modules).

Compiled: -2 log L, gradient and posterior from the driver (engine/_program.pyx
over _elimination.pyx). Reference: engine/reference/ (terms, contrasts,
assembly, elimination, gradient) on the same compiled Form.
"""
import numpy as np
import pytest

from xxmpy.engine import (backend, deviance_and_gradient, latent_posterior, posterior_form,
                          reference)
from xxmpy.errors import NotPositiveDefinite


def reference_values(problem, theta):
    """(f, g, posterior) by the numpy reference; (inf, NaNs, None) if inadmissible."""
    try:
        f, g = reference.evaluate(problem.form, theta, True)
        return f, g, reference.posterior(posterior_form(problem), theta)
    except NotPositiveDefinite:
        return np.inf, np.full(problem.params.n, np.nan), None


def evaluate_both(problem, theta):
    """((f, g, posterior) compiled, (f, g, posterior) reference) at theta."""
    if not backend.COMPILED:
        pytest.fail("the compiled kernels are not built (or XXMPY_KERNEL=numpy is set)")
    compiled = deviance_and_gradient(problem, theta) + (latent_posterior(problem, theta),)
    return compiled, reference_values(problem, theta)


def assert_compiled_matches_twin(problem, theta, monkeypatch=None, rtol=1e-10):
    """f, g and the posterior agree to rtol (relative to each array's largest entry;
    the posterior as assert_posteriors_match)."""
    (f_c, g_c, post_c), (f_t, g_t, post_t) = evaluate_both(problem, theta)
    assert np.isfinite(f_c) and f_c == pytest.approx(f_t, rel=rtol)
    np.testing.assert_allclose(g_c, g_t, rtol=rtol, atol=rtol * np.abs(g_t).max())
    assert_posteriors_match(post_c, post_t, rtol)


def assert_posteriors_match(got, want, rtol):
    """{level: (mean, cov)} posteriors agree to rtol of each array's largest entry, a
    mean's also of its largest posterior sd (a mean that is 0 up to rounding, as the
    flat level's of lmer's OLS residual, is compared on its own scale)."""
    assert got.keys() == want.keys()
    for lvl in want:
        mean, cov = want[lvl][:2]
        sd = np.sqrt(np.abs(np.diagonal(cov, axis1=-2, axis2=-1)).max(initial=0.0))
        scales = [max(np.abs(mean).max(initial=0.0), sd)] + \
            [np.abs(w).max(initial=0.0) for w in want[lvl][1:]]
        for g, w, scale in zip(got[lvl], want[lvl], scales):
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale)


def assert_both_inadmissible(problem, theta, monkeypatch=None):
    """Both paths give -2 log L = inf and a NaN gradient at theta."""
    fc, gc = deviance_and_gradient(problem, theta)
    ft, gt, _ = reference_values(problem, theta)
    assert fc == ft == np.inf
    assert np.isnan(gc).all() and np.isnan(gt).all()
