"""-2 log L of a compiled problem by the latent-precision (PLS) form.

For every level c, each unit contributes two Gaussian factors over its
"scope" (its own etas, then its parents' etas):

  y-factor:   y_i  - n_i = A_y,i eta_scope + eps,   eps ~ N(0, Theta)
  eta-factor: a_i        = A_e,i eta_scope + zeta,  zeta ~ N(0, Psi)

with A_y = [Lambda | Lambda_cp ...], A_e = [I - B | -B_cp ...], n_i and a_i
the intercepts plus covariate terms. Summing A'WA, A'Wd and d'Wd over the
factors gives C, b and c; then

  -2 log L = N log 2pi + log|Theta| + log|Psi| - 2 log|I - B| + log|C| + c - b'C^-1 b

(engine.md, section 2). C is factored by block elimination along the
problem's schedule; the N x N covariance is never formed. The factor terms
are gathered from the parameters by index arrays built once (terms.py).

With the compiled kernels built, one call of the driver (driver.py,
_core/_driver.pyx) does all of an evaluation; the Python path below
(``_evaluate``: terms.py, collapse.py, an engine, gradient.py) is its twin.
"""
import numpy as np

from ._core import kernels
from ._core.elimination import NotPositiveDefinite
from .collapse import collapse, contrast_deviance
from .driver import LOG_2PI, build_program, constant_part  # noqa: F401  (LOG_2PI: the dense oracle)
from .engines import NumpyEngine, engine_for
from .gradient import gradient
from .terms import plan_for

class ModelMatrices:
    """All matrices of a problem at one parameter vector, looked up by level
    (the dense oracle and the start-value checks; evaluations use terms.py)."""

    def __init__(self, problem, theta):
        self.problem, self.theta = problem, np.asarray(theta, dtype=float)

    def within(self, c, type_, shape):
        return self.problem.matrix(self.theta, c, -1, type_, shape)

    def between(self, c, p, type_, shape):
        return self.problem.matrix(self.theta, c, p, type_, shape)


def deviance(problem, theta):
    """-2 log L (with the 2 pi constant) at parameters theta; inf if inadmissible."""
    if kernels.driver is not None:
        return program_for(problem).evaluate(np.ascontiguousarray(theta, float))
    try:
        return _evaluate(problem, theta, False)[0]
    except NotPositiveDefinite:
        return np.inf


def deviance_and_gradient(problem, theta):
    """(-2 log L, its gradient (k,)) at theta; (inf, NaNs) if inadmissible."""
    if kernels.driver is not None:
        grad = np.empty(problem.params.n)
        value = program_for(problem).evaluate(np.ascontiguousarray(theta, float), grad)
        if value == np.inf:
            grad.fill(np.nan)
        return value, grad
    try:
        return _evaluate(problem, theta, True)
    except NotPositiveDefinite:
        return np.inf, np.full(problem.params.n, np.nan)


def reduced(problem):
    """The problem with identical leaf siblings collapsed (collapse.py), or None.

    Built on first use and kept on the problem; set ``problem._collapsed =
    False`` to evaluate row by row.
    """
    got = getattr(problem, "_collapsed", None)
    if got is None:
        got = problem._collapsed = collapse(problem) or False
    return got or None


def program_for(problem):
    """The problem's compiled driver Program (through its reduced form), built once."""
    got = getattr(problem, "_program", None)
    if got is None:
        got = problem._program = build_program(problem, reduced(problem))
    return got


def _evaluate(problem, theta, with_gradient):
    """The numpy path (the driver's twin): (-2 log L, gradient or None)."""
    red = reduced(problem)
    work = red.problem if red else problem
    plan = plan_for(work)
    vals, terms = plan.terms(theta)
    total, extra = constant_part(problem, red), []
    if red:
        for pooled in red.contrasts:
            value, grads = contrast_deviance(plan.slots, vals, pooled, with_gradient)
            total += value
            extra += grads
    engine = NumpyEngine(work)
    const, logdet, zz = engine.factor(terms)
    r2 = const - zz          # the penalised residual sum of squares: >= 0 in exact arithmetic
    if r2 < -1e-8 * max(1.0, const):
        raise NotPositiveDefinite("precision lost: the penalised residual sum of squares "
                                  "came out negative (near-singular covariance matrices)")
    total += logdet + r2 + sum(t.logdets for t in terms.values())
    if not with_gradient:
        return float(total), None
    return float(total), gradient(plan, terms, engine.posterior_moments(), extra)


def latent_posterior(problem, theta):
    """Posterior of every level's etas given the observed ys, at parameters theta.

    Returns {level index: (mean (n_l, m_l), covariance (n_l, m_l, m_l))} for
    the levels with etas: the conditional modes and conditional covariances
    of each unit's etas (lme4's ranef and its condVar).
    """
    engine = engine_for(problem)
    engine.factor(plan_for(problem).terms(theta)[1])
    return engine.level_posterior()
