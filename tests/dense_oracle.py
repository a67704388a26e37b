"""Brute-force -2 log L: build the full covariance V of all observed ys (tests only).

Stacks every unit's etas and ys, forms Bfull, Lfull, Psifull, Thetafull and
the mean vectors explicitly, then

    V = Lfull (I - Bfull)^-1 Psifull (I - Bfull)^-T Lfull' + Thetafull

and evaluates the multivariate normal density with numpy. Only for tiny
problems (a few hundred observed values).
"""
import numpy as np

from xxmpy.compile.problem import LOG_2PI


def _unit(mat, i):
    return mat[i] if mat.ndim == 3 else mat


def dense_system(problem, theta):
    """Stacked (B, a, Psi, L, n, Theta, observed, y, eta offsets) of the whole model."""
    def within(c, t, shape):
        return problem.matrix(theta, (c, -1, t), shape, per_unit=True)

    def between(c, pp, t, shape):
        return problem.matrix(theta, (c, pp, t), shape, per_unit=True)

    levels = problem.levels
    eta_off = np.cumsum([0] + [lev.n * lev.n_etas for lev in levels])
    y_off = np.cumsum([0] + [lev.n * lev.p for lev in levels])
    ne, ny = eta_off[-1], y_off[-1]
    B, a, Psi = np.zeros((ne, ne)), np.zeros(ne), np.zeros((ne, ne))
    L, nvec, Theta = np.zeros((ny, ne)), np.zeros(ny), np.zeros((ny, ny))
    observed = np.zeros(ny, bool)
    yvec = np.zeros(ny)
    for c, lev in enumerate(levels):
        m, p = lev.n_etas, lev.p
        w = {t: within(c, t, s) for t, s in (
            ("nu", (p, 1)), ("alpha", (m, 1)), ("lambda", (p, m)), ("beta", (m, m)),
            ("gamma", (m, lev.q)), ("kappa", (p, lev.q)), ("theta", (p, p)), ("psi", (m, m)))}
        btw = {(pp, t): between(c, pp, t, s) for pp in lev.parents for t, s in (
            ("lambda", (p, levels[pp].n_etas)), ("beta", (m, levels[pp].n_etas)),
            ("kappa", (p, levels[pp].q)), ("gamma", (m, levels[pp].q)))}
        for i in range(lev.n):
            e = slice(eta_off[c] + i * m, eta_off[c] + (i + 1) * m)
            yy = slice(y_off[c] + i * p, y_off[c] + (i + 1) * p)
            B[e, e] = _unit(w["beta"], i)
            Psi[e, e] = w["psi"]
            a[e] = _unit(w["alpha"], i)[:, 0] + _unit(w["gamma"], i) @ lev.x[i]
            L[yy, e] = _unit(w["lambda"], i)
            Theta[yy, yy] = w["theta"]
            nvec[yy] = _unit(w["nu"], i)[:, 0] + _unit(w["kappa"], i) @ lev.x[i]
            observed[yy] = lev.observed[i]
            yvec[yy] = lev.y[i]
            for pp, units in zip(lev.parents, lev.parent_units):
                par, u = levels[pp], units[i]
                pe = slice(eta_off[pp] + u * par.n_etas, eta_off[pp] + (u + 1) * par.n_etas)
                B[e, pe] = _unit(btw[(pp, "beta")], i)
                a[e] += _unit(btw[(pp, "gamma")], i) @ par.x[u]
                L[yy, pe] = _unit(btw[(pp, "lambda")], i)
                nvec[yy] += _unit(btw[(pp, "kappa")], i) @ par.x[u]
    return B, a, Psi, L, nvec, Theta, observed, yvec, eta_off


def dense_deviance(problem, theta):
    B, a, Psi, L, nvec, Theta, observed, yvec, _ = dense_system(problem, theta)
    inv_ib = np.linalg.inv(np.eye(len(a)) - B)
    mean = nvec + L @ inv_ib @ a
    V = L @ inv_ib @ Psi @ inv_ib.T @ L.T + Theta
    o = np.flatnonzero(observed)
    V, r = V[np.ix_(o, o)], yvec[o] - mean[o]
    sign, logdet = np.linalg.slogdet(V)
    assert sign > 0
    return float(len(o) * LOG_2PI + logdet + r @ np.linalg.solve(V, r))


def dense_posterior(problem, theta):
    """Mean (ne,) and covariance (ne, ne) of all etas given the observed ys.

    Etas are stacked level by level (user order), unit by unit.
    """
    B, a, Psi, L, nvec, Theta, observed, yvec, _ = dense_system(problem, theta)
    inv_ib = np.linalg.inv(np.eye(len(a)) - B)
    mu_eta = inv_ib @ a
    cov_eta = inv_ib @ Psi @ inv_ib.T
    o = np.flatnonzero(observed)
    Lo = L[o]
    V = Lo @ cov_eta @ Lo.T + Theta[np.ix_(o, o)]
    K = cov_eta @ Lo.T @ np.linalg.inv(V)
    mean = mu_eta + K @ (yvec[o] - nvec[o] - Lo @ mu_eta)
    return mean, cov_eta - K @ Lo @ cov_eta
