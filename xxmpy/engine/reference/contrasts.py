"""The pooled within-group contrasts of a collapsed level (the numpy reference).

sum_k K_k log|Sigma_k| + tr(Sigma_k^-1 S_k), Sigma_w = Theta + Lambda T Psi T' Lambda',
T = (I - B)^-1 (compile/collapse.py), and its gradient cells. The compiled
driver's _Contrast (engine/_program.pyx) is its twin.
"""
import numpy as np

from .terms import pattern_inverses


def contrast_deviance(vals, pooled, with_gradient):
    """sum_k K_k log|Sigma_k| + tr(Sigma_k^-1 S_k) and its gradient cells.

    vals: the problem's filled matrix vector (compile/slots.py).
    Returns (value, [(cells, d value / d vals), ...]) for theta, lambda, psi
    and beta of the level (the list empty when the gradient is not asked).
    Raises NotPositiveDefinite when some Sigma_k is not positive definite.
    """
    p, m = pooled.p, pooled.m
    cells = pooled.cells
    sigma = vals[cells["theta"]]
    if m:
        lam = vals[cells["lambda"]]
        T = np.linalg.inv(np.eye(m) - vals[cells["beta"]])
        P = T @ vals[cells["psi"]] @ T.T
        sigma = sigma + lam @ P @ lam.T
    inv, logdet = pattern_inverses(sigma, pooled.patterns, "the within-group covariance",
                                   max_condition=np.inf)
    value = float(pooled.count @ logdet + np.vdot(inv, pooled.scatter))
    if not with_gradient:
        return value, []
    G = (pooled.count @ inv.reshape(len(inv), -1)).reshape(p, p) - \
        (inv @ pooled.scatter @ inv).sum(axis=0)
    grads = [(cells["theta"].ravel(), G.ravel())]
    if m:
        LGL = lam.T @ G @ lam
        grads += [(cells["lambda"].ravel(), (2.0 * G @ lam @ P).ravel()),
                  (cells["psi"].ravel(), (T.T @ LGL @ T).ravel()),
                  (cells["beta"].ravel(), (2.0 * T.T @ LGL @ P).ravel())]
    return value, grads
