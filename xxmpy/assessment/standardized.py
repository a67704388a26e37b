"""The standardised solution (lavaan's std.lv, std.all, std.nox) with delta-method SEs.

Every free or non-zero fixed element of the model's matrices, for the ys of the
lowest level c and of the levels above it and the etas of all these levels
(the structure of reference_models._components). Standard deviations, at the
estimates:

  eta k of level l     sqrt of diag V_l, V_l = T_l Psi_l T_l' (its own level)
  y j in component l   sqrt of its variance in level l's component
                       (fit_measures.level_components: the part a level above
                       its own carries, or its own level's part)

  type           std_lv                        std_all
  lambda (l)     lam sd(eta)                   lam sd(eta) / sd_l(y)
  lambda (k<-l)  lam sd_l(eta)                 lam sd_l(eta) / sd_l(y)
  theta (l)      theta                         theta / sd_l(y)^2 on the diagonal,
                                               theta_ij / sqrt(theta_ii theta_jj) off it
  psi            psi / (sd(eta_i) sd(eta_j))   the same on the diagonal, off it
                                               psi_ij / sqrt(psi_ii psi_jj) (lavaan's:
                                               residual covariances as correlations)
  beta           beta sd(eta_k) / sd(eta_i)    the same (between: sd of the parent's eta)
  alpha          alpha / sd(eta)               the same
  gamma          gamma / sd(eta)               gamma sd(x) / sd(eta)
  kappa          kappa                         kappa sd(x) / sd_l(y) (l: the x's level;
                                               on a y's copy, regressor_ys: sd_l of that y)
  nu             nu                            nu / sd(y): for c's ys with one
                                               level above c its component's
                                               (lavaan's between intercepts), else
                                               the total's

std_nox (lavaan's std.nox) is std_all with the covariates x left in their own units:
gamma / sd(eta) and kappa / sd_l(y).

SEs: the Jacobian of std_* in the free parameters (central differences with
steps relative to each parameter's unit) times the parameter covariance; NaN
where a parameter it depends on has none (on a bound, not identified).
"""
import numpy as np
import pandas as pd

from ..spec.objects import BETWEEN_ROLES, SYMMETRIC_TYPES, WITHIN_ROLES
from .fit_measures import covariate_moments, level_components
from .implied import eta_variances


def _eta_sds(problem, theta, levels):
    """{level: (m,) standard deviations of its etas at their own level}."""
    return {level: np.sqrt(np.clip(np.diag(eta_variances(problem, theta, level)), 0.0, None))
            for level in levels}


def _elements(problem, theta, c, parents):
    """[(key, row, col)]: the free or non-zero fixed elements (lower triangle of a
    symmetric matrix) of the matrices of level c and its parents."""
    vals = problem.fill(theta)
    free = np.zeros(problem.slots.size + 2, bool)
    free[problem.slots.free_pos] = True
    out = []
    for key, shape in problem.slots.shape.items():
        child, parent, kind = key
        levels = [c] + list(parents)
        if child not in levels or (parent != -1 and parent not in levels):
            continue
        cells = problem.slots.cells(key, shape)
        for r in range(shape[0]):
            for col in range(shape[1]):
                if kind in SYMMETRIC_TYPES and col > r:
                    continue
                cell = cells[r, col]
                if free[cell] or vals[cell] != 0:
                    out.append((key, r, col))
    return out


def _standardize(problem, theta, c, parents, elements):
    """(3, len(elements)) std_lv, std_all and std_nox of ``elements`` at theta."""
    # sd[(component level, y level, j)] and the total over the components
    sd, variance = {}, {}
    for level, (variables, C, _, _, _) in level_components(problem, theta).items():
        for (k, j), v in zip(variables, np.clip(np.diag(C), 0.0, None)):
            sd[(level, k, j)] = np.sqrt(v)
            variance[(k, j)] = variance.get((k, j), 0.0) + v

    def sd_mean(k, j):
        if k == c and len(parents) == 1:
            return sd[(parents[0], k, j)]
        return np.sqrt(variance[(k, j)])
    sd_eta = _eta_sds(problem, theta, [c] + list(parents))
    sd_x, copies = {}, {}               # a y's copy (regressor_ys) has the y's sd
    for level in [c] + list(parents):
        lev = problem.levels[level]
        sd_x[level] = np.full(lev.q, np.nan)
        sd_x[level][lev.covariates] = np.sqrt(np.diag(covariate_moments(problem, level)[1]))
        for x, y in lev.regressor_ys:
            sd_x[level][x] = sd[(level, level, y)]
        copies[level] = {x for x, _ in lev.regressor_ys}
    mats = {key: problem.matrix(theta, key, problem.slots.shape[key])
            for key in {e[0] for e in elements}}
    out = np.full((3, len(elements)), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, ((child, parent, kind), r, col) in enumerate(elements):
            v = mats[(child, parent, kind)][r, col]
            eta_level = child if parent == -1 else parent
            nox = None                  # std_nox: std_all unless an x is standardised
            if kind == "lambda":        # y r of level child, in eta_level's component
                lv = v * sd_eta[eta_level][col]
                al = lv / sd[(eta_level, child, r)]
            elif kind == "theta" and r == col:
                lv, al = v, v / (sd[(child, child, r)] * sd[(child, child, col)])
            elif kind == "theta":           # a residual covariance: lavaan's correlation
                m = mats[(child, parent, kind)]
                lv, al = v, v / np.sqrt(m[r, r] * m[col, col])
            elif kind == "psi" and r == col:
                lv = al = v / (sd_eta[child][r] * sd_eta[child][col])
            elif kind == "psi":
                m = mats[(child, parent, kind)]
                lv = v / (sd_eta[child][r] * sd_eta[child][col])
                al = v / np.sqrt(m[r, r] * m[col, col])
            elif kind == "beta":
                lv = al = v * sd_eta[eta_level][col] / sd_eta[child][r]
            elif kind == "alpha":
                lv = al = v / sd_eta[child][r]
            elif kind == "nu":
                lv, al = v, v / sd_mean(child, r)
            elif kind == "gamma":           # eta on x: x in its own units for std_lv
                lv = v / sd_eta[child][r]
                nox = None if col in copies.get(eta_level, ()) else lv
                al = v * sd_x[eta_level][col] / sd_eta[child][r]
            else:                           # kappa (on a y's copy: std_nox = std_all)
                nox = None if col in copies.get(eta_level, ()) else \
                    v / sd[(eta_level, child, r)]
                lv, al = v, v * sd_x[eta_level][col] / sd[(eta_level, child, r)]
            out[:, i] = lv, al, al if nox is None else nox
    return out


def standardized_solution(fit, c, parents, ys, etas):
    """DataFrame: child, parent, type, row, col, label (None when fixed), estimate,
    se (NaN when fixed), std_lv, std_lv_se, std_all, std_all_se, std_nox, std_nox_se.
    ``ys``: {level
    index: y names} of the levels with ys; ``etas``: {level index: eta names}."""
    problem, theta = fit.problem, np.asarray(fit.record.estimate, float)
    names = problem.level_names
    elements = _elements(problem, theta, c, parents)
    std = _standardize(problem, theta, c, parents, elements)
    # delta method: central differences, steps relative to each parameter's unit
    k = theta.size
    J = np.zeros((3, len(elements), k))
    units = np.asarray(problem.param_units, float)
    steps = 1e-5 * np.maximum(np.abs(theta), units)
    for j in range(k):
        up, down = theta.copy(), theta.copy()
        up[j] += steps[j]
        down[j] -= steps[j]
        J[:, :, j] = (_standardize(problem, up, c, parents, elements)
                      - _standardize(problem, down, c, parents, elements)) / (2 * steps[j])
    vcov = fit.vcov.to_numpy()
    se = np.full((3, len(elements)), np.nan)
    for s in range(3):
        for i in range(len(elements)):
            # the parameters it depends on, judged in each parameter's unit
            effect = np.abs(J[s, i]) * units
            uses = np.flatnonzero(effect > 1e-9 * effect.max()) if effect.max() > 0 \
                else np.zeros(0, np.intp)
            V = vcov[np.ix_(uses, uses)]
            if uses.size == 0:
                se[s, i] = 0.0
            elif np.all(np.isfinite(V)):
                se[s, i] = np.sqrt(max(J[s, i, uses] @ V @ J[s, i, uses], 0.0))
    vals = problem.fill(theta)
    cell_param = problem.slots.cell_param
    forms = problem.forms                 # a scaled element's engine parameter -> (its
    scaled = {} if forms is None else {   # parameter, its coefficient)
        int(e): (int(p), float(c)) for e, p, c in zip(forms.scaled_index,
                                                      forms.scaled_param, forms.scaled_coef)}
    rows = []
    for i, ((child, parent, kind), r, col) in enumerate(elements):
        roles = WITHIN_ROLES[kind] if parent == -1 else BETWEEN_ROLES[kind]
        row_level, col_level = child, (child if parent == -1 else parent)

        def name(role, level, at):
            if role == "1":
                return "1"
            if role == "x":
                return fit.model.spec.submodels[names[level]].xs[at]
            return (ys[level] if role == "y" else etas[level])[at]
        key = (child, parent, kind)
        cell = problem.slots.cells(key, problem.slots.shape[key])[r, col]
        par, coef = scaled.get(cell_param[cell], (cell_param[cell], 1.0))
        label = None if par >= k else fit.labels[par] if coef == 1.0 else \
            f"{coef:g}*{fit.labels[par]}"
        rows.append({"child": names[child], "parent": names[col_level], "type": kind,
                     "row": name(roles[0], row_level, r), "col": name(roles[1], col_level, col),
                     "label": label, "estimate": vals[cell],
                     "se": abs(coef) * np.sqrt(vcov[par, par]) if par < k else np.nan,
                     "std_lv": std[0, i], "std_lv_se": se[0, i],
                     "std_all": std[1, i], "std_all_se": se[1, i],
                     "std_nox": std[2, i], "std_nox_se": se[2, i]})
    return pd.DataFrame(rows)
