"""Model-implied moments per level, variance components and R-squared.

For the observed ys of level c and its parent levels p (the structure whose
saturated model reference_models.py forms), at the estimates:

  eta variance at its own level      V_l = T_l Psi_l T_l',  T_l = (I - B_l)^-1
  within component of the ys         S_c = Lambda_c V_c Lambda_c' + Theta_c
  component of parent p              S_p = L_p Psi_p L_p',
                                     L_p = (Lambda_pc + Lambda_c T_c B_pc) T_p

(fit_measures.component_covariances); standardised estimates are in
standardized.py.
"""
import numpy as np
import pandas as pd

from .fit_measures import (component_covariances, covariate_loadings, covariate_moments,
                           level_loadings)


def eta_variances(problem, theta, level):
    """(m, m) covariance of level ``level``'s etas at their own level,
    T (Gamma S_x Gamma' + Psi) T' (S_x: covariate_moments of the level's xs)."""
    m = problem.levels[level].n_etas
    T = np.linalg.inv(np.eye(m) - problem.matrix(theta, (level, -1, "beta"), (m, m)))
    inner = problem.matrix(theta, (level, -1, "psi"), (m, m))
    q = problem.levels[level].x.shape[1]
    if q:
        gamma = problem.matrix(theta, (level, -1, "gamma"), (m, q))
        inner = inner + gamma @ covariate_moments(problem, level)[1] @ gamma.T
    return T @ inner @ T.T


def implied(problem, theta, c, parents, ys):
    """{level name: {'mean': Series, 'cov': DataFrame}}: each level's component of the
    ys' covariance; the means (nu + each level's alpha carried to the ys) on one entry,
    zeros on the others: with one level above c that level's (lavaan's between
    level), else the observed level's. ``parents``: the levels above c."""
    names = problem.level_names
    covs = component_covariances(problem, theta, c, parents)
    p = len(ys)
    mean = problem.matrix(theta, (c, -1, "nu"), (p, 1))[:, 0].copy()
    loads = level_loadings(problem, theta, c, parents)
    for level, load in loads.items():
        m = problem.levels[level].n_etas
        mean += load @ problem.matrix(theta, (level, -1, "alpha"), (m, 1))[:, 0]
    for level, K in covariate_loadings(problem, theta, c, parents, loads).items():
        mean += K @ covariate_moments(problem, level)[0]
    holder = names[parents[0]] if len(parents) == 1 else names[c]
    out = {}
    for level, cov in covs.items():
        at = mean if level == holder else np.zeros(p)
        out[level] = {"mean": pd.Series(at, index=ys, name="mean"),
                      "cov": pd.DataFrame(cov, index=ys, columns=ys)}
    return out


def variance_components(problem, theta, c, parents, ys):
    """DataFrame, one row per y: its implied variance in each level's component, the
    total, and each component's share (an ICC for a parent level)."""
    covs = component_covariances(problem, theta, c, parents)
    table = pd.DataFrame({level: np.diag(cov) for level, cov in covs.items()}, index=ys)
    table["total"] = table.sum(axis=1)
    for level in covs:
        table[f"share_{level}"] = table[level] / table["total"]
    table.index.name = "variable"
    return table.reset_index()


def r_squared(problem, theta, c, parents, ys, etas):
    """DataFrame (level, variable, r2): the ys of level c within (1 - theta_jj / S_c,jj);
    in each parent component 1 - (the part carried by etas loading on that y alone,
    its level's residual) / S_p,jj; etas regressed on others through beta: 1 - psi_mm /
    V_mm. ``etas``: {level index: names}."""
    names = problem.level_names
    covs = component_covariances(problem, theta, c, parents)
    p = len(ys)
    theta_c = problem.matrix(theta, (c, -1, "theta"), (p, p))
    rows = [(names[c], y, 1.0 - theta_c[j, j] / covs[names[c]][j, j])
            for j, y in enumerate(ys)]
    loads = level_loadings(problem, theta, c, parents)
    for q in parents:
        mq = problem.levels[q].n_etas
        load = loads[q]
        psi = problem.matrix(theta, (q, -1, "psi"), (mq, mq))
        own = (load != 0).sum(axis=0) == 1              # an eta reaching one y only
        for j, y in enumerate(ys):
            residual = sum(load[j, k] ** 2 * psi[k, k] for k in np.flatnonzero(own)
                           if load[j, k] != 0)
            rows.append((names[q], y, 1.0 - residual / covs[names[q]][j, j]))
    for level in [c] + list(parents):
        m, q = problem.levels[level].n_etas, problem.levels[level].x.shape[1]
        beta = problem.matrix(theta, (level, -1, "beta"), (m, m))
        gamma = problem.matrix(theta, (level, -1, "gamma"), (m, q))
        explained = beta.any(axis=1) | gamma.any(axis=1)
        if not explained.any():
            continue
        V = eta_variances(problem, theta, level)
        psi = problem.matrix(theta, (level, -1, "psi"), (m, m))
        for k in np.flatnonzero(explained):
            rows.append((names[level], etas[level][k], 1.0 - psi[k, k] / V[k, k]))
    return pd.DataFrame(rows, columns=["level", "variable", "r2"])
