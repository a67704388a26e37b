"""-2 log L, its gradient and the latent posterior in numpy: the reference path.

For every level c, each unit contributes two Gaussian factors over its
"scope" (its own etas, then its parents' etas):

  y-factor:   y_i  - n_i = A_y,i eta_scope + eps,   eps ~ N(0, Theta)
  eta-factor: a_i        = A_e,i eta_scope + zeta,  zeta ~ N(0, Psi)

with A_y = [Lambda | Lambda_cp ...], A_e = [I - B | -B_cp ...], n_i and a_i
the intercepts plus covariate terms. Summing A'WA, A'Wd and d'Wd over the
factors gives C, b and c; then

  -2 log L = N log 2pi + log|Theta| + log|Psi| - 2 log|I - B| + log|C| + c - b'C^-1 b

(engine.md, section 2). C is factored by block elimination along the
schedule; the N x N covariance is never formed. Readable and vectorised over
units; the compiled driver (engine/_program.pyx) computes the same numbers
and the tests compare the two (tests/twin_check.py).
"""
from .assembly import NumpyEngine
from .contrasts import contrast_deviance
from .gradient import gradient
from .terms import level_terms


def evaluate(form, theta, with_gradient):
    """(-2 log L, gradient (k,) or None) of a compile/form.Form at theta.

    Raises NotPositiveDefinite at an inadmissible point.
    """
    plan = form.plan
    vals, terms = level_terms(plan, theta)
    total, extra = form.constant, []
    for pooled in form.contrasts:
        value, grads = contrast_deviance(vals, pooled, with_gradient)
        total += value
        extra += grads
    engine = NumpyEngine(form.units)
    logdet = engine.factor(terms)
    # the penalised residual sum of squares from the residuals at the posterior mean:
    # c - b'C^-1 b would be a difference of large numbers when the data sit far from 0
    total += logdet + engine.residual(terms) + sum(t.logdets for t in terms.values())
    if not with_gradient:
        return float(total), None
    return float(total), gradient(plan, terms, engine.posterior_moments(), extra)


def posterior(form, theta):
    """{level index: (mean (n_l, m_l), covariance (n_l, m_l, m_l))} of every level
    with etas in ``form``'s units, at theta. Raises NotPositiveDefinite."""
    engine = NumpyEngine(form.units)
    engine.factor(level_terms(form.plan, theta)[1])
    return engine.level_posterior()
