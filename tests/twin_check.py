"""Compiled kernels vs their numpy twins on one problem (used by several test modules).

Compiled: -2 log L and gradient from the driver (_core/_driver.pyx), the
posterior from the engine (_core/_engine.pyx). Twin: likelihood.py's numpy
path (terms.py, collapse.py, engines.NumpyEngine, gradient.py) with the twin
block kernels (_core/twin.py).
"""
from contextlib import contextmanager

import numpy as np
import pytest

from xxmpy._core import kernels, twin
from xxmpy.likelihood import deviance_and_gradient, latent_posterior


@contextmanager
def numpy_path(monkeypatch):
    """Within: no driver, no compiled engine, the twin block kernels."""
    with monkeypatch.context() as patch:
        patch.setattr(kernels, "engine", None)
        patch.setattr(kernels, "driver", None)
        patch.setattr(kernels, "chol_inverse_logdet", twin.chol_inverse_logdet)
        patch.setattr(kernels, "pattern_inverses", twin.pattern_inverses)
        yield


def evaluate_both(problem, theta, monkeypatch):
    """((f, g, posterior) compiled, (f, g, posterior) twin) at theta."""
    if kernels.engine is None or kernels.driver is None:
        pytest.fail("the compiled kernels are not built (or XXMPY_KERNEL=numpy is set)")
    compiled = deviance_and_gradient(problem, theta) + (latent_posterior(problem, theta),)
    with numpy_path(monkeypatch):
        numpy = deviance_and_gradient(problem, theta) + (latent_posterior(problem, theta),)
    return compiled, numpy


def assert_compiled_matches_twin(problem, theta, monkeypatch, rtol=1e-10):
    """f, g and the posterior agree to rtol (relative to each array's largest entry)."""
    (f_c, g_c, post_c), (f_t, g_t, post_t) = evaluate_both(problem, theta, monkeypatch)
    assert np.isfinite(f_c) and f_c == pytest.approx(f_t, rel=rtol)
    np.testing.assert_allclose(g_c, g_t, rtol=rtol, atol=rtol * np.abs(g_t).max())
    assert post_c.keys() == post_t.keys()
    for lvl in post_t:
        for got, want in zip(post_c[lvl], post_t[lvl]):
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


def assert_both_inadmissible(problem, theta, monkeypatch):
    """Both paths give -2 log L = inf and a NaN gradient at theta."""
    fc, gc = deviance_and_gradient(problem, theta)
    with numpy_path(monkeypatch):
        ft, gt = deviance_and_gradient(problem, theta)
    assert fc == ft == np.inf
    assert np.isnan(gc).all() and np.isnan(gt).all()
