"""A first curvature for the search of an lmer fit, in closed form.

The quasi-Newton search starts from a Hessian of -2 log L at the start values
(fit/optimize.py); by default it takes forward differences of the gradient, k
evaluations. The expected information of one grouping factor taken alone is
known in closed form. With sigma^2 the residual variance, Psi (q x q) the
factor's random-effects covariance, Z_g (n_g x q) group g's columns,
M_g = Z_g'Z_g, V_g = sigma^2 I + Z_g Psi Z_g' and C_g = (sigma^2 Psi^-1 + M_g)^-1:

    A_g = Z_g'V_g^-1 Z_g  = (M_g - M_g C_g M_g) / sigma^2
    B_g = Z_g'V_g^-2 Z_g  = (M_g - 2 M C M + M C M C M)_g / sigma^4
    tr V_g^-2 = (n_g - 2 tr(C M) + tr(C M C M))_g / sigma^4

and, E_p = dPsi/dp (a unit variance or a symmetric unit covariance),

    d2/dp dq          sum_g tr(E_p A_g E_q A_g)
    d2/dp dsigma2     sum_g tr(E_p B_g)
    d2/dsigma2^2      N / sigma^4 + sum over factors of sum_g (tr V_g^-2 - n_g / sigma^4)

(for a random intercept: n_g^2 / d^2, n_g / d^2, (N - groups) / sigma^4 +
sum 1 / d^2 with d = sigma^2 + n_g tau^2), the terms between factors left at 0.
Only a preconditioner: the search corrects it, the polish and the standard
errors use finite differences at the optimum. InstEval's ML fit: 30 -> 18
evaluations.
"""
import numpy as np

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


def lmer_curvature(design, problem, theta):
    """(k, k) Hessian guess of -2 log L in the problem's parameters at theta (the
    search's start), or None unless they are exactly 'Residual' and each factor's psi
    labels of ``design`` (a MixedDesign), with every Psi positive definite there."""
    labels = list(problem.params.labels)
    per_factor = [_factor_labels(f) for f in design.factors]
    want = [RESIDUAL] + [lab for fl in per_factor for lab, _, _ in fl]
    if sorted(labels) != sorted(want) or len(set(want)) != len(want):
        return None
    at = {lab: i for i, lab in enumerate(labels)}
    s2 = theta[at[RESIDUAL]]
    if not s2 > 0:
        return None
    H = np.zeros((len(labels), len(labels)))
    res = at[RESIDUAL]
    H[res, res] = len(design.y) / s2 ** 2
    for f, fl in zip(design.factors, per_factor):
        q = len(f.effect_names)
        psi = np.zeros((q, q))
        for lab, r, c in fl:
            psi[r, c] = psi[c, r] = theta[at[lab]]
        M = f.moments()
        try:
            np.linalg.cholesky(psi)
            C = np.linalg.inv(s2 * np.linalg.inv(psi) + M)
        except np.linalg.LinAlgError:
            return None
        MC = M @ C
        MCM = MC @ M
        A = (M - MCM) / s2
        B = (M - 2.0 * MCM + MCM @ C @ M) / s2 ** 2
        CM = C @ M
        H[res, res] += np.sum(-2.0 * np.trace(CM, axis1=1, axis2=2)
                              + np.einsum("gij,gji->g", CM, CM)) / s2 ** 2
        E = np.zeros((len(fl), q, q))
        for p, (_, r, c) in enumerate(fl):
            E[p, r, c] = E[p, c, r] = 1.0
        idx = [at[lab] for lab, _, _ in fl]
        H[np.ix_(idx, idx)] = np.einsum("pij,gjk,qkl,gli->pq", E, A, E, A, optimize=True)
        H[idx, res] = H[res, idx] = np.einsum("pij,gji->p", E, B)
    return H if np.all(np.isfinite(H)) else None
