"""Model-implied moments per level, variance components and R-squared.

Each level's component (fit_measures.level_components) holds the parts it
carries of the ys below it and its own ys; with T_l = (I - B_l)^-1 and the
ys' loadings A on the level's eta residuals, its covariance is
A Psi_l A' + Theta_l (own ys) + the covariates' part. An eta's variance at its
own level is T_l (Gamma S_x Gamma' + Psi_l) T_l'. Standardised estimates are
in standardized.py.
"""
import numpy as np
import pandas as pd

from .fit_measures import (covariate_loadings, covariate_moments, level_components,
                           level_loadings, levels_above_in, outcome_paths)


def eta_variances(problem, theta, level):
    """(m, m) covariance of level ``level``'s etas at their own level,
    T (Gamma S_x Gamma' + Psi) T' (S_x: covariate_moments of the level's covariates).
    Etas regressed on the level's observed ys (copies, LevelData.regressor_ys) move
    with those ys' own-level parts: eta = P_z zeta + P_e eps + P_x x with
    P_z = T + T G_c (M Lambda T)_c, P_e = T G_c M_c, P_x = T G_r + T G_c (M K_r)_c
    (G_c, G_r: gamma on the copies and on the covariates; M = outcome_paths; _c: the
    copied ys' rows)."""
    lev = problem.levels[level]
    m, q, p = lev.n_etas, lev.q, lev.p
    T = np.linalg.inv(np.eye(m) - problem.matrix(theta, (level, -1, "beta"), (m, m)))
    psi = problem.matrix(theta, (level, -1, "psi"), (m, m))
    gamma = problem.matrix(theta, (level, -1, "gamma"), (m, q))
    keep = lev.covariates
    S = covariate_moments(problem, level)[1] if keep.any() else np.zeros((0, 0))
    P_z, P_x = T, T @ gamma[:, keep]
    V = np.zeros((m, m))
    if lev.regressor_ys:
        copies = [x for x, _ in lev.regressor_ys]
        rows = [y for _, y in lev.regressor_ys]
        M = outcome_paths(problem, theta, level)
        lam = problem.matrix(theta, (level, -1, "lambda"), (p, m))
        kappa = problem.matrix(theta, (level, -1, "kappa"), (p, q))[:, keep]
        G_c = T @ gamma[:, copies]
        P_z = T + G_c @ (M @ lam @ T)[rows]
        P_e = G_c @ M[rows]
        P_x = P_x + G_c @ (M @ kappa)[rows]
        V += P_e @ problem.matrix(theta, (level, -1, "theta"), (p, p)) @ P_e.T
    V += P_z @ psi @ P_z.T
    if keep.any():
        V += P_x @ S @ P_x.T
    return V


def variable_names(problem, y_names):
    """{(y level k, j): name}: the y's name, or '<level>.<y>' where a name is used at
    several levels."""
    pairs = [(k, j) for k in y_names for j in range(len(y_names[k]))]
    counts = pd.Series([y_names[k][j] for k, j in pairs]).value_counts()
    return {(k, j): (y_names[k][j] if counts[y_names[k][j]] == 1
                     else f"{problem.level_names[k]}.{y_names[k][j]}") for k, j in pairs}


def y_means(problem, theta):
    """{y level k: (p_k,) the ys' model-implied means}: nu + each level's alpha and
    the xs' means carried to them."""
    out = {}
    for k, lev in enumerate(problem.levels):
        if not lev.p:
            continue
        above = levels_above_in(problem, k)
        loads = level_loadings(problem, theta, k, above)
        mean = outcome_paths(problem, theta, k) @ problem.matrix(theta, (k, -1, "nu"),
                                                                 (lev.p, 1))[:, 0]
        for level, load in loads.items():
            m = problem.levels[level].n_etas
            mean += load @ problem.matrix(theta, (level, -1, "alpha"), (m, 1))[:, 0]
        for level, K in covariate_loadings(problem, theta, k, above, loads).items():
            mean += K @ covariate_moments(problem, level)[0]
        out[k] = mean
    return out


def implied(problem, theta, c, parents, y_names):
    """{level name: {'mean': Series, 'cov': DataFrame}}: each level's component
    (fit_measures.level_components: the intercepts of the ys below it, its own ys).
    A y's mean sits on one entry, zeros on the others: for the lowest level's ys with
    one level above, that level's (lavaan's between level), else the lowest level's;
    an upper level's ys on their own level's. ``y_names``: {y level: names}."""
    names = problem.level_names
    labels = variable_names(problem, y_names)
    means = y_means(problem, theta)

    def holder(k):
        return (parents[0] if len(parents) == 1 else c) if k == c else k
    out = {}
    for level, (variables, C, _, _, _) in level_components(problem, theta).items():
        index = [labels[v] for v in variables]
        mean = [means[k][j] if holder(k) == level else 0.0 for k, j in variables]
        out[names[level]] = {"mean": pd.Series(mean, index=index, name="mean"),
                             "cov": pd.DataFrame(C, index=index, columns=index)}
    return out


def variance_components(problem, theta, c, ys):
    """DataFrame, one row per y of level c: its implied variance in each level's
    component (level_components), the total, and each component's share (an ICC for
    a level above)."""
    names = problem.level_names
    columns = {}
    for level, (variables, C, _, _, _) in level_components(problem, theta).items():
        rows = [i for i, (k, _) in enumerate(variables) if k == c]
        if rows:
            columns[names[level]] = np.diag(C)[rows]
    table = pd.DataFrame(columns, index=ys)
    table["total"] = table.sum(axis=1)
    for level in columns:
        table[f"share_{level}"] = table[level] / table["total"]
    table.index.name = "variable"
    return table.reset_index()


def r_squared(problem, theta, c, parents, y_names, etas):
    """DataFrame (level, variable, r2): in each level's component, its own ys
    1 - theta_jj / var, the ys below 1 - (the part carried by etas reaching that y
    alone, its level's residual) / var; etas explained through beta or gamma:
    1 - psi_mm / V_mm. ``y_names``: {y level: names}; ``etas``: {level: names}."""
    names = problem.level_names
    labels = variable_names(problem, y_names)
    rows = []
    for level, (variables, C, _, _, A) in level_components(problem, theta).items():
        m, p = problem.levels[level].n_etas, problem.levels[level].p
        psi = problem.matrix(theta, (level, -1, "psi"), (m, m))
        own_theta = problem.matrix(theta, (level, -1, "theta"), (p, p))
        alone = (A != 0).sum(axis=0) == 1               # an eta reaching one y only
        for i, (k, j) in enumerate(variables):
            if k == level:
                residual = own_theta[j, j]
            else:
                residual = sum(A[i, e] ** 2 * psi[e, e] for e in np.flatnonzero(alone)
                               if A[i, e] != 0)
            rows.append((names[level], labels[(k, j)], 1.0 - residual / C[i, i]))
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
