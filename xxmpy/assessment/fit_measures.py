"""Fit measures against the saturated and baseline models, as lavaan defines them.

With -2 log L of the model (D), of the saturated model (D1, npar1) and of the
baseline (D0, npar0), N the number of lowest-level rows (lavaan's ntotal):

  chisq = max(D - D1, 0), df = npar1 - npar, pvalue = P(chi2_df > chisq)
  baseline_chisq = max(D0 - D1, 0), baseline_df = npar1 - npar0
  cfi  = 1 - max(chisq - df, 0) / max(chisq - df, bchisq - bdf, 0)     (1 when 0 / 0)
  rni  = 1 - (chisq - df) / (bchisq - bdf)
  tli  = (bchisq / bdf - chisq / df) / (bchisq / bdf - 1)             (not truncated)
  nfi  = (bchisq - chisq) / bchisq,  rfi = (bchisq / bdf - chisq / df) / (bchisq / bdf)
  ifi  = (bchisq - chisq) / (bchisq - df)
  rmsea = sqrt(max(chisq - df, 0) / (N df)); its 90% CI from the noncentrality
          lambda with P(chi2_df(lambda) <= chisq) = 0.95 and 0.05, sqrt(lambda / (N df));
          rmsea_pvalue = P(chi2_df(N df 0.05^2) > chisq)
  srmr_<level> = sqrt(mean over the lower triangle, diagonal included, of
          (cor(S) - cor(Sigma))^2), S the saturated model's and Sigma the model's
          covariance of that level's component (joint_covariances: the parts of
          the ys below it, its own ys, its xs with their block fixed at the
          data's, as lavaan's fixed.x); srmr their sum. A one-level model has
          lavaan's srmr_bentler instead: residuals (S - Sigma) / sqrt(s_ii s_jj) and
          mean residuals / sqrt(s_ii), root mean square over p(p + 1)/2 + p
  aic = D + 2 npar, bic = D + npar log N, bic2 = D + npar log((N + 2) / 24)
(lavaan 0.6: lav_fit_measures, lav_fit_srmr_twolevel).
"""
import numpy as np
import pandas as pd
from scipy import optimize, stats

from ..spec.graph import levels_above


def copy_paths(problem, theta, level):
    """(p, p) B: the effect of a level's ys' values on its ys through the xs holding
    them (LevelData.regressor_ys): B[:, j] = kappa[:, x] + Lambda T Gamma[:, x] for the
    copy x of y j (directly, and through the level's etas regressed on it)."""
    lev = problem.levels[level]
    B = np.zeros((lev.p, lev.p))
    if lev.regressor_ys:
        m = lev.n_etas
        kappa = problem.matrix(theta, (level, -1, "kappa"), (lev.p, lev.q))
        through = problem.matrix(theta, (level, -1, "lambda"), (lev.p, m)) @ \
            np.linalg.inv(np.eye(m) - problem.matrix(theta, (level, -1, "beta"), (m, m))) @ \
            problem.matrix(theta, (level, -1, "gamma"), (m, lev.q))
        for x, y in lev.regressor_ys:
            B[:, y] = kappa[:, x] + through[:, x]
    return B


def outcome_paths(problem, theta, level):
    """(p, p) M = (I - B)^-1 (B: copy_paths): a level's ys are M times what explains
    them otherwise. The identity without regressions on observed ys."""
    lev = problem.levels[level]
    if not lev.regressor_ys:
        return np.eye(lev.p)
    return np.linalg.inv(np.eye(lev.p) - copy_paths(problem, theta, level))


def level_loadings(problem, theta, c, ancestors):
    """{level index: (p, m_l)} how the ys of level c load on the eta residuals zeta_l
    of level c and of each ancestor l: E_l T_l, T_l = (I - B_l)^-1, where E_c =
    Lambda_c and for an ancestor E_l = Lambda_{l->c} (when l is a parent of c) + the
    sum over its children k on the way down of E_k T_k B_{l->k}."""
    p = problem.levels[c].p
    levels = [c] + list(ancestors)

    def mat(key, shape):
        return problem.matrix(theta, key, shape)

    def T(level):
        m = problem.levels[level].n_etas
        return np.linalg.inv(np.eye(m) - mat((level, -1, "beta"), (m, m)))

    effect = {}

    def E(level):                                   # effect of the etas of ``level``
        if level not in effect:
            m = problem.levels[level].n_etas
            if level == c:
                out = mat((c, -1, "lambda"), (p, m))
            else:
                out = mat((c, level, "lambda"), (p, m)) if level in \
                    problem.levels[c].parents else np.zeros((p, m))
                for k in levels:
                    if k != level and level in problem.levels[k].parents:
                        mk = problem.levels[k].n_etas
                        out = out + E(k) @ T(k) @ mat((k, level, "beta"), (mk, m))
            effect[level] = out
        return effect[level]

    M = outcome_paths(problem, theta, c)
    return {level: M @ E(level) @ T(level) for level in levels}


def covariate_loadings(problem, theta, c, ancestors, loads=None):
    """{level index: (p, q_l)} how the ys of level c move with the covariates of level l
    (c or an ancestor, levels with covariates only; LevelData.covariates): M kappa
    (within for c, between l -> c; M = outcome_paths) + the path through l's etas
    (loads[l] Gamma_l, loads holding M) + through the etas of each level k below l
    that l's xs reach by a between gamma (loads[k] Gamma_{l->k})."""
    loads = loads if loads is not None else level_loadings(problem, theta, c, ancestors)
    p = problem.levels[c].p
    levels = [c] + list(ancestors)
    M = outcome_paths(problem, theta, c)
    out = {}
    for level in levels:
        q = problem.levels[level].x.shape[1]
        keep = problem.levels[level].covariates
        if not keep.any():
            continue
        m = problem.levels[level].n_etas
        key = (c, -1, "kappa") if level == c else (c, level, "kappa")
        total = M @ problem.matrix(theta, key, (p, q)) + \
            loads[level] @ problem.matrix(theta, (level, -1, "gamma"), (m, q))
        for k in levels:
            if k != level and level in problem.levels[k].parents:
                mk = problem.levels[k].n_etas
                total = total + loads[k] @ problem.matrix(theta, (k, level, "gamma"), (mk, q))
        out[level] = total[:, keep]
    return out


def covariate_moments(problem, level):
    """(mean (q,), covariance (q, q)) of level ``level``'s covariates (its xs but the
    copies of ys, LevelData.covariates) over its units (divided by the number of
    units; a lowest-level covariate's variance is all its own, centred at its grand
    mean, as lavaan treats a within-only covariate)."""
    x = problem.levels[level].x[:, problem.levels[level].covariates]
    mean = x.mean(axis=0)
    return mean, (x - mean).T @ (x - mean) / len(x)


def levels_above_in(problem, k):
    """Level indices above level k of a compiled problem (parents, theirs, ...)."""
    return sorted(levels_above(k, lambda level: problem.levels[level].parents))


def level_components(problem, theta):
    """{level index: (variables, cov, K, S, A)} of every level whose component holds ys:
    variables [(y level k, y index j)] are the parts it carries of the ys of every
    level below it (their intercepts there), then its own ys (their part within it);
    cov = A Psi A' + Theta (own ys) + K S K' over them (A: their loadings on the
    level's eta residuals, level_loadings; K: on its xs, covariate_loadings; S: the
    xs' covariance, covariate_moments; K, S None without xs)."""
    y_levels = [k for k, lev in enumerate(problem.levels) if lev.p]
    above = {k: levels_above_in(problem, k) for k in y_levels}
    loads = {k: level_loadings(problem, theta, k, above[k]) for k in y_levels}
    xloads = {k: covariate_loadings(problem, theta, k, above[k], loads[k]) for k in y_levels}
    out = {}
    for level, lev in enumerate(problem.levels):
        parts = [k for k in y_levels if level in above[k]] + ([level] if lev.p else [])
        if not parts:
            continue
        variables = [(k, j) for k in parts for j in range(problem.levels[k].p)]
        m, q = lev.n_etas, int(lev.covariates.sum())
        A = np.vstack([loads[k][level] for k in parts])
        C = A @ problem.matrix(theta, (level, -1, "psi"), (m, m)) @ A.T
        if lev.p:
            M = outcome_paths(problem, theta, level)
            C[-lev.p:, -lev.p:] += M @ problem.matrix(theta, (level, -1, "theta"),
                                                      (lev.p, lev.p)) @ M.T
        K = S = None
        if q:
            K = np.vstack([xloads[k].get(level, np.zeros((problem.levels[k].p, q)))
                           for k in parts])
            S = covariate_moments(problem, level)[1]
            C = C + K @ S @ K.T
        out[level] = (variables, C, K, S, A)
    return out


def joint_covariances(problem, theta):
    """{level name: covariance of that level's component (level_components), joint
    with the level's xs when it has some: their block fixed at the data's covariance,
    as lavaan's fixed.x; K S beside the ys' block}."""
    names = problem.level_names
    out = {}
    for level, (_, C, K, S, _) in level_components(problem, theta).items():
        out[names[level]] = C if K is None else np.block([[C, K @ S], [S @ K.T, S]])
    return out


def _srmr(S, Sigma):
    def cor(a):
        d = np.sqrt(np.diag(a))
        return a / np.outer(d, d)
    if not (np.all(np.diag(S) > 0) and np.all(np.diag(Sigma) > 0)):
        return np.nan
    R = cor(S) - cor(Sigma)
    return float(np.sqrt(np.sum(R[np.tril_indices(len(R))] ** 2) / (len(R) * (len(R) + 1) / 2)))


def _srmr_bentler(S, Sigma, mean_gap):
    """lavaan's srmr (srmr_bentler) of a one-level model with a mean structure: the
    residuals (S - Sigma) / sqrt(s_ii s_jj) over the lower triangle with the diagonal,
    and the ys' mean residuals / sqrt(s_ii) (the xs' are 0, fixed.x), their root mean
    square over p(p + 1)/2 + p."""
    d = np.sqrt(np.diag(S))
    if not np.all(d > 0):
        return np.nan
    R = (S - Sigma) / np.outer(d, d)
    n = len(S)
    means = np.zeros(n)
    means[:mean_gap.size] = mean_gap / d[:mean_gap.size]
    squares = np.sum(R[np.tril_indices(n)] ** 2) + np.sum(means ** 2)
    return float(np.sqrt(squares / (n * (n + 1) / 2 + n)))


def _noncentrality(chisq, df, prob):
    """lambda >= 0 with P(chi2_df(lambda) <= chisq) = prob (0 when even lambda = 0
    leaves it below)."""
    def gap(lam):
        if lam > 0:
            return stats.ncx2.cdf(chisq, df, lam) - prob
        return stats.chi2.cdf(chisq, df) - prob
    if gap(0.0) <= 0:
        return 0.0
    hi = max(chisq, 1.0)
    while gap(hi) > 0:
        hi *= 2
    return optimize.brentq(gap, 0.0, hi, xtol=1e-12, rtol=1e-12)


def fit_measures(fit, saturated, baseline, c):
    """pandas Series of the fit measures (module docstring) of FitResult ``fit`` given
    the fitted saturated and baseline FitResults; c: the index of the lowest level of
    ys (its rows are N)."""
    problem = fit.problem
    N = int(problem.levels[c].n)
    D, D1, D0 = fit.deviance, saturated.deviance, baseline.deviance
    npar, npar1, npar0 = fit.n_parameters, saturated.n_parameters, baseline.n_parameters
    chisq, df = max(D - D1, 0.0), npar1 - npar
    bchisq, bdf = max(D0 - D1, 0.0), npar1 - npar0
    out = {"npar": npar, "ntotal": N, "logl": -D / 2, "unrestricted_logl": -D1 / 2,
           "baseline_logl": -D0 / 2, "chisq": chisq, "df": df,
           "pvalue": float(stats.chi2.sf(chisq, df)) if df > 0 else np.nan,
           "baseline_chisq": bchisq, "baseline_df": bdf,
           "baseline_pvalue": float(stats.chi2.sf(bchisq, bdf)) if bdf > 0 else np.nan}
    numerator = max(chisq - df, 0.0)
    denominator = max(chisq - df, bchisq - bdf, 0.0)
    out["cfi"] = 1.0 - numerator / denominator if denominator > 0 else 1.0
    out["tli"] = (bchisq / bdf - chisq / df) / (bchisq / bdf - 1.0) if df > 0 else np.nan
    out["nfi"] = (bchisq - chisq) / bchisq if bchisq > 0 else np.nan
    out["rfi"] = (bchisq / bdf - chisq / df) / (bchisq / bdf) if df > 0 and bchisq > 0 \
        else np.nan
    out["ifi"] = (bchisq - chisq) / (bchisq - df) if bchisq != df else np.nan
    out["rni"] = 1.0 - (chisq - df) / (bchisq - bdf) if bchisq != bdf else np.nan
    if df > 0:
        out["rmsea"] = float(np.sqrt(numerator / (N * df)))
        out["rmsea_ci_lower"] = float(np.sqrt(_noncentrality(chisq, df, 0.95) / (N * df)))
        out["rmsea_ci_upper"] = float(np.sqrt(_noncentrality(chisq, df, 0.05) / (N * df)))
        out["rmsea_pvalue"] = float(stats.ncx2.sf(chisq, df, N * df * 0.05 ** 2))
    else:
        out.update(rmsea=0.0, rmsea_ci_lower=0.0, rmsea_ci_upper=0.0, rmsea_pvalue=np.nan)
    model = joint_covariances(problem, fit.record.estimate)
    sat = joint_covariances(saturated.problem, saturated.record.estimate)
    if not levels_above_in(problem, c) and len(model) == 1:     # one level: Bentler's
        from .implied import y_means          # (implied.py imports this module)
        level = problem.level_names[c]
        gap = y_means(saturated.problem, saturated.record.estimate)[0] - \
            y_means(problem, fit.record.estimate)[c]
        out["srmr"] = _srmr_bentler(sat[level], model[level], gap)
    else:
        for level in model:
            out[f"srmr_{level}"] = _srmr(sat[level], model[level])
        out["srmr"] = sum(out[f"srmr_{level}"] for level in model)
    out.update(aic=D + 2 * npar, bic=D + npar * np.log(N),
               bic2=D + npar * np.log((N + 2) / 24))
    return pd.Series(out, name="fit measures")
