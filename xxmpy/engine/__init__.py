"""Stage 3, the engine: -2 log L, its gradient and the latent posterior of a compiled problem.

Exactly three ways compute these numbers:
  * the compiled driver (program.py over _program.pyx, _elimination.pyx and the
    shared small dense algebra _linalg.pxd): what the whole package uses;
  * the numpy reference (reference/): readable, compared with the driver in
    the tests, and selected for the whole package by ``XXMPY_KERNEL=numpy``;
  * the dense oracle (tests/dense_oracle.py, tests only): forms the N x N
    covariance for tiny problems.
Every function here takes a compile.Problem and a parameter vector theta (k,).
"""
import numpy as np

from ..errors import NotPositiveDefinite
from . import backend, reference
from .program import level_posterior


def deviance(problem, theta):
    """-2 log L (with the 2 pi constant) at parameters theta; +inf if inadmissible."""
    theta = problem.engine_theta(np.asarray(theta, float))
    if theta is None:
        return np.inf
    form = problem.form
    if form.program is not None:
        return form.program.evaluate(np.ascontiguousarray(theta, float))
    try:
        return reference.evaluate(form, theta, False)[0]
    except NotPositiveDefinite:
        return np.inf


def deviance_and_gradient(problem, theta):
    """(-2 log L, its gradient (k,)) at theta; (+inf, NaNs) if inadmissible."""
    inadmissible = np.inf, np.full(problem.params.n, np.nan)
    engine_theta = problem.engine_theta(np.asarray(theta, float))
    if engine_theta is None:
        return inadmissible
    form = problem.form
    if form.program is not None:
        grad = np.empty(problem.n_engine)
        value = form.program.evaluate(np.ascontiguousarray(engine_theta, float), grad)
        if value == np.inf:
            return inadmissible
    else:
        try:
            value, grad = reference.evaluate(form, engine_theta, True)
        except NotPositiveDefinite:
            return inadmissible
    return value, problem.engine_gradient(theta, grad)


def latent_posterior(problem, theta):
    """Posterior of every level's etas given the observed ys, at parameters theta.

    Returns {level index: (mean (n_l, m_l), covariance (n_l, m_l, m_l))} for
    the levels with etas: the conditional modes and covariances of each unit's
    etas (lme4's ranef and condVar; factor scores). A collapsed level's own
    units are read from the problem's row-by-row form. Raises
    NotPositiveDefinite when theta is inadmissible.
    """
    form = posterior_form(problem)
    theta = problem.engine_theta(np.asarray(theta, float))
    if theta is None:
        raise NotPositiveDefinite("the parameters are inadmissible (a covariance matrix "
                                  "written in another form has no covariance there)")
    if form.program is not None:
        got = level_posterior(form, theta)
        if got is None:
            raise NotPositiveDefinite("the parameters are inadmissible (a covariance matrix "
                                      "is not positive definite)")
        return got
    return reference.posterior(form, theta)


def posterior_form(problem):
    """The Form whose units the posterior is read from: the evaluated one, unless a
    collapsed level has etas of its own (then the row-by-row form)."""
    form = problem.form
    if any(problem.levels[pooled.level].n_etas for pooled in form.contrasts):
        return problem.row_form
    return form


__all__ = ["deviance", "deviance_and_gradient", "latent_posterior", "posterior_form",
           "backend"]
