"""A first curvature for the search of an lmer fit, in closed form.

Each grouping factor's expected information taken alone, from its groups' Z'Z
(fit/information.py has the formulas; the terms between factors are left at 0):
exact for one factor, a preconditioner otherwise. fit_problem starts the search
from it and renews it over the first iterations (``curvature``), instead of
forward differences of the gradient (k evaluations): InstEval's ML fit 30 -> 18
evaluations when it came in.

And, at the end of the search, the gradient of q = r'V^-1 r (the quadratic part of
-2 log L, r the GLS residual) from the random effects' modes: V is homogeneous in
the variance parameters (V(c theta) = c V(theta)), so H theta = -g - grad q, which
gives the end Hessian's residual column without evaluating it (fit/optimize.py
``derived_hessian``): one evaluation of k fewer (10 s on the full-size grade design).
"""
import functools

import numpy as np

from ..engine import latent_posterior
from ..errors import NotPositiveDefinite
from ..fit.information import expected_information, quadratic_gradient as modes_gradient
from .to_xxm import RESIDUAL, psi_label


def _factor_labels(f):
    """[(label, r, c)] of factor f's psi parameters (within its blocks, lower triangle)."""
    names, out, pos = f.effect_names, [], 0
    for b in f.blocks:
        for r in range(pos, pos + len(b.names)):
            for c in range(pos, r + 1):
                out.append((psi_label(f.name, names, r, c), r, c))
        pos += len(b.names)
    return out


def _lmer_parameters(design, problem):
    """({label: index}, per factor [(label, r, c)]) when the problem's parameters are
    exactly 'Residual' and each factor's psi labels of ``design`` (a MixedDesign), else
    None."""
    labels = list(problem.params.labels)
    per_factor = [_factor_labels(f) for f in design.factors]
    want = [RESIDUAL] + [lab for fl in per_factor for lab, _, _ in fl]
    if sorted(labels) != sorted(want) or len(set(want)) != len(want):
        return None
    return {lab: i for i, lab in enumerate(labels)}, per_factor


def _psi(theta, at, factor_labels, q):
    """(q, q) a factor's Psi from theta."""
    psi = np.zeros((q, q))
    for lab, r, c in factor_labels:
        psi[r, c] = psi[c, r] = theta[at[lab]]
    return psi


def lmer_curvature(design, problem, theta):
    """(k, k) Hessian guess of -2 log L in the problem's parameters at theta (the
    search's start), or None unless they are lmer's (_lmer_parameters), with every Psi
    positive definite there."""
    got = _lmer_parameters(design, problem)
    if got is None:
        return None
    at, per_factor = got
    s2 = theta[at[RESIDUAL]]
    if not s2 > 0:
        return None
    blocks = [(f.moments(), _psi(theta, at, fl, len(f.effect_names)),
               [(at[lab], r, c) for lab, r, c in fl])
              for f, fl in zip(design.factors, per_factor)]
    return expected_information(len(at), at[RESIDUAL], s2, len(design.y), blocks)


def quadratic_gradient(design, reml, problem, theta, gradient):
    """(grad q (k,) in the problem's parameters, the residual's index, (k,) True: every
    parameter scales) at theta, or None: fit/information.quadratic_gradient over the
    factors' modes, m = n, or n - p for REML (``gradient``: -2 log L's at theta). The
    modes are the posterior's where the last evaluation left it (no evaluation; a pass
    over the rows, which it avoids, cost slope_1M more than the evaluation it saves).
    None unless the parameters are lmer's (_lmer_parameters)."""
    got = _lmer_parameters(design, problem)
    if got is None:
        return None
    at, per_factor = got
    try:
        post = latent_posterior(problem, theta)
    except NotPositiveDefinite:         # inadmissible there: no derived column
        return None
    factors = []
    for f, fl in zip(design.factors, per_factor):
        U = post[problem.level_names.index(f.name)][0]          # (G, q) modes
        factors.append((U, _psi(theta, at, fl, U.shape[1]),
                        [(at[lab], r, c) for lab, r, c in fl]))
    n, p = design.X.shape
    res = at[RESIDUAL]
    dq = modes_gradient(len(at), res, theta[res], n - p if reml else n,
                        float(theta @ gradient), factors)
    return None if dq is None else (dq, res, np.ones(len(at), bool))


class LmerCurvature:
    """lmer_curvature of ``design`` for fit_problem's ``curvature``, bound there to the
    compiled problem (its parameter order): fit_design need not compile the model
    before Model.fit does (each compile hashes the data to see whether they changed).
    scaling(problem): quadratic_gradient there, for the end Hessian (reml: the fitted
    criterion's)."""

    def __init__(self, design, reml=False):
        self.design, self.reml = design, bool(reml)

    def bind(self, problem):
        return functools.partial(lmer_curvature, self.design, problem)

    def scaling(self, problem):
        return functools.partial(quadratic_gradient, self.design, self.reml, problem)
