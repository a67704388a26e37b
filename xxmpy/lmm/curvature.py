"""A first curvature for the search of a random-intercept model's fit.

The quasi-Newton search starts from a Hessian of -2 log L at the start values
(fit/optimize.py); by default it takes forward differences of the gradient, k
evaluations. For a model whose every random-effects term is an intercept the
expected information of each factor taken alone is known in closed form (one-way
random effects: with sigma^2 the residual variance, tau^2 the factor's and n_g
rows in group g, d = sigma^2 + n_g tau^2):

    d2/dtau2^2        sum_g n_g^2 / d^2
    d2/dtau2 dsigma2  sum_g n_g / d^2
    d2/dsigma2^2      (N - groups) / sigma^4 + sum over factors of sum_g 1 / d^2

with the terms between factors left at 0. Only a preconditioner: the search
corrects it, the polish and the standard errors use finite differences at the
optimum. InstEval's ML fit: 30 -> 18 evaluations.
"""
import numpy as np


def intercept_curvature(design, problem):
    """(k, k) Hessian guess of -2 log L in the problem's parameters at its start values,
    or None unless the parameters are exactly 'Residual' and one 'var[f:(Intercept)]'
    per factor of ``design`` (a MixedDesign) with an intercept only."""
    labels = list(problem.params.labels)
    want = ["Residual"] + [f"var[{f.name}:(Intercept)]" for f in design.factors]
    if sorted(labels) != sorted(want) or any(f.effect_names != ["(Intercept)"]
                                             for f in design.factors):
        return None
    start = problem.params.start
    res = labels.index("Residual")
    s2 = start[res]
    if not s2 > 0:
        return None
    H = np.zeros((len(labels), len(labels)))
    groups, residual = 0, 0.0
    for f in design.factors:
        j = labels.index(f"var[{f.name}:(Intercept)]")
        n = np.bincount(f.codes, minlength=len(f.groups)).astype(float)
        n = n[n > 0]
        d2 = (s2 + n * start[j]) ** 2
        H[j, j] = np.sum(n * n / d2)
        H[j, res] = H[res, j] = np.sum(n / d2)
        residual += np.sum(1.0 / d2)
        groups += len(n)
    H[res, res] = max(len(design.y) - groups, 0) / s2 ** 2 + residual
    return H if np.all(np.isfinite(H)) else None
