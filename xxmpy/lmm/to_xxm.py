"""Lower a MixedDesign to an xxM model: every LMM is an inspectable xxM model.

Levels: one unit per observation (the response, residual variance theta),
one level per grouping factor (its random effects are the level's etas,
psi their covariance, loaded onto the observations by a between lambda whose
elements are the Z columns: ``data.`` labels, or a fixed 1 for intercepts),
and one flat level holding the fixed effects as etas loaded by the X columns:
integrated out for REML (flat=True), profiled out for ML (flat="ml": the
optimiser searches the variance parameters only, as lme4 does). The ML form
with the fixed effects as kappa (observation-level covariates X, free
parameters) is built with ``profiled=False``: the fixed effects' profile CIs
need them as parameters. The flat forms fit the OLS residual y - X b_OLS instead
of y (the same REML and profiled ML criteria, with their digits kept); their
flat level's posterior mean is then the fixed effects minus b_OLS.
"""
import numpy as np
import pandas as pd

from ..api.model import Model
from ..compile.grouping import group_runs, group_sums
from ..fit import stacks

RESIDUAL = "Residual"
TAU2_FLOOR = 0.01       # a factor's start variance: at least this share of the total
FIXED_LEVEL = "(fixed)"


def unique_name(base, taken):
    name = base
    while name in taken:
        name = "_" + name
    return name


def variance_label(factor, a, b=None):
    return f"var[{factor}:{a}]" if b is None else f"cov[{factor}:{a},{b}]"


def psi_label(factor, names, r, c):
    """Label of psi[r, c] of a factor whose effects are ``names`` (one per pair)."""
    if r == c:
        return variance_label(factor, names[r])
    return variance_label(factor, names[min(r, c)], names[max(r, c)])


def build_model(design, reml, start=None, profiled=True):
    """The xxM Model of ``design``: the fixed effects as a flat level, integrated out
    (REML) or profiled out (ML); as kappa parameters for ML with ``profiled=False``.

    start: optional {label: value} start values (e.g. a previous fit's estimates).
    """
    taken = {f.name for f in design.factors}
    obs = unique_name("observation", taken)
    fixed = unique_name(FIXED_LEVEL, taken | {obs})
    n, p = design.X.shape
    label = f"lmer({design.formula}){' REML' if reml else ''}"
    # the fixed effects as a flat level (none without fixed effects: REML is ML then)
    flat = (True if reml else "ml") if p and (reml or profiled) else False
    levels = [obs] + [f.name for f in _bottom_up(design.factors)] + ([fixed] if flat else [])
    m = Model(levels, name=label)
    # the observation table's working columns: named apart from every level (ID
    # column) name, whatever the user's variables and factors are called
    names = set(levels)
    y_col = _fresh("y", names)
    x_cols = [_fresh(f"x{k}", names) for k in range(p)]
    Zs = [f.Z for f in design.factors]       # stacked from the blocks at each access
    z_cols = [[_fresh(f"z{j}_{k}", names) for k in range(Z.shape[1])]
              for j, Z in enumerate(Zs)]
    beta, resid = _ols(design)
    # a flat level's criterion (REML, profiled ML) is unchanged by y -> y - X c: fitted to
    # the OLS residual, -2 log L keeps its digits (of y itself, sums of squares of the
    # order n mean^2 cancel down to it: the full grade design lost 1e-3), and the flat
    # level's posterior mean is the fixed effects minus beta (LmerResult adds it back)
    data = {obs: np.arange(n), y_col: resid if flat else design.y}
    data.update({col: design.X[:, k] for k, col in enumerate(x_cols)})
    for f, Z, cols in zip(design.factors, Zs, z_cols):
        data[f.name] = f.codes
        data.update({col: Z[:, k] for k, col in enumerate(cols)})
    obs_parents = [f.name for f in design.factors] + ([fixed] if flat else [])
    if flat:
        data[fixed] = np.zeros(n, dtype=int)
    m.level(obs, parents=obs_parents, ys=[y_col], xs=[] if flat else x_cols,
            data=pd.DataFrame(data, copy=False))   # columns of the design, not copied
    s2, tau2, psi = _moment_starts(design, resid, Zs)
    start = start or {}
    m.within(obs, "theta", [[1]], [[start.get(RESIDUAL, s2)]], [[RESIDUAL]])
    if flat:
        m.level(fixed, etas=design.fixed_names, data=pd.DataFrame({fixed: [0]}), flat=flat)
        m.between(fixed, obs, "lambda", np.zeros((1, p)), *_loadings(design.X, x_cols))
    elif p:
        m.within(obs, "kappa", np.ones((1, p)),
                 [[start.get(name, b) for name, b in zip(design.fixed_names, beta)]],
                 [design.fixed_names])
    for j, f in enumerate(design.factors):
        _factor_level(m, design, Zs[j], z_cols[j], f, obs, tau2[j], psi[j], start)
    return m


def _fresh(base, taken):
    """``base``, or an underscored variant not in ``taken``; added to ``taken``."""
    name = unique_name(base, taken)
    taken.add(name)
    return name


def _bottom_up(factors):
    """Factors ordered so that each comes before the factor it nests in."""
    out, placed = [], set()
    while len(out) < len(factors):
        for f in factors:
            if f.name not in placed and all(g.parent != f.name or g.name in placed
                                            for g in factors):
                out.append(f)
                placed.add(f.name)
    return out


def response_offset(design):
    """(p,) what the flat (fixed-effects) level's posterior mean lacks of the fixed
    effects: the OLS estimates, whose fit build_model subtracts from y."""
    if not design.X.shape[1]:
        return np.zeros(0)
    if design.ols is not None:
        return design.ols
    from scipy.linalg import lstsq
    return lstsq(design.X, design.y, lapack_driver="gelsy")[0]    # pivoted QR


def _ols(design):
    """(OLS fixed effects (p,), residuals (n,)); no fixed effects: (empty, y)."""
    beta = response_offset(design)
    return (beta, design.y - design.X @ beta) if beta.size else (beta, design.y)


def _moment_starts(design, r, Zs, sweeps=3):
    """Start values by moments of the OLS residuals: (residual variance, per factor tau^2,
    per factor a Psi start or None: _two_stage_psi for factors with several effects).

    tau^2 of a factor: variance of its group means of the residuals minus the
    part the residual variance explains (s^2 mean(1/n_g)), floored at TAU2_FLOOR
    of the total. With several factors the means are taken by backfitting: each
    factor's means are of the residuals less the other factors' shrunken means
    (n_g tau^2 / (n_g tau^2 + s^2) of their group means), a few sweeps, coarsest
    factor first, so that a nested or crossed factor's means do not count the
    others' variance (an instructor's mean holds its department's effect). The residual variance is
    what the factors leave, floored at 10% of the total; a factor with several effects
    (random slopes) starts from the two-stage estimator (_two_stage_psi), whose residual
    variance within groups, net of their slopes, bounds the residual variance's start.
    """
    total = max(float(np.mean(r ** 2)), 1e-8 * float(np.var(design.y)))
    factors = design.factors
    counts = [np.bincount(f.codes, minlength=len(f.groups)).astype(float) for f in factors]
    effects = [np.zeros(len(r)) for _ in factors]
    tau2, s2 = [0.0] * len(factors), total
    coarse_first = sorted(range(len(factors)), key=lambda j: len(factors[j].groups))
    for _ in range(sweeps if len(factors) > 1 else 1):
        rest = r - sum(effects)
        for j in coarse_first:
            f, n_g = factors[j], counts[j]
            own = rest + effects[j]
            means = np.bincount(f.codes, weights=own, minlength=len(f.groups)) / n_g
            between = float(np.mean(means ** 2)) - s2 * float(np.mean(1.0 / n_g))
            tau2[j] = max(between, TAU2_FLOOR * total)
            effects[j] = (n_g * tau2[j] / (n_g * tau2[j] + s2) * means)[f.codes]
            rest = own - effects[j]
        s2 = max(total - sum(tau2), 0.1 * total)
    two_stage = [_two_stage_psi(f, Z, r - sum(effects) + effects[j], counts[j],
                                TAU2_FLOOR * total) if Z.shape[1] > 1 else None
                 for j, (f, Z) in enumerate(zip(factors, Zs))]
    within = [got[1] for got in two_stage if got is not None]
    if within:            # the residual variance within groups, net of their slopes
        s2 = max(min([s2] + within), 0.1 * total)
    return s2, tau2, [None if got is None else got[0] for got in two_stage]


def _two_stage_psi(f, Z, own, n_g, floor):
    """(Psi start (q, q), the residual variance within groups) for factor f (Z (n, q),
    q > 1), or None when fewer than q + 2 groups have more units than effects and a
    well-conditioned Z_g'Z_g. The two-stage moment estimator: each such group's least
    squares b_g of ``own`` (its share of the residuals) on its Z_g, the pooled residual
    variance s2 of those regressions, and Psi = cov(b_g) - s2 mean((Z_g'Z_g)^-1); its
    variances floored at ``floor`` over mean(z^2), its correlations kept inside (-0.9,
    0.9) and shrunk until the matrix is clearly positive definite."""
    G, q = len(f.groups), Z.shape[1]
    M = f.moments()
    runs = group_runs(f.codes, G)
    c = group_sums(Z * own[:, None], f.codes, G, runs)
    ok = (n_g > q) & _well_conditioned(M, 1e8)
    if ok.sum() < q + 2:
        return None
    M_inv, pivots_ok = stacks.spd_inverse(stacks.entries_first(M[ok]))
    if not pivots_ok.all():
        return None
    c = c[ok]
    b = stacks.product(M_inv, np.ascontiguousarray(c.T)[:, None, :])[:, 0, :].T
    ss = group_sums(own * own, f.codes, G, runs)[ok]
    s2 = max(float(np.sum(ss - np.einsum("gi,gi->g", c, b)) / np.sum(n_g[ok] - q)), 0.0)
    psi = np.cov(b, rowvar=False) - s2 * np.mean(M_inv, axis=2)
    z2 = np.mean(Z ** 2, axis=0)
    var = np.maximum(np.diag(psi), floor / np.where(z2 > 0, z2, 1.0))
    scale = np.sqrt(np.abs(np.diag(psi)))
    corr = np.clip(psi / (np.outer(scale, scale) + 1e-300), -0.9, 0.9)
    np.fill_diagonal(corr, 1.0)
    for _ in range(10):
        if np.linalg.eigvalsh(corr)[0] > 0.05:
            break
        corr = 0.5 * corr + 0.5 * np.eye(q)
    return corr * np.sqrt(np.outer(var, var)), s2


def _well_conditioned(M, limit):
    """(G,) bool: the condition number of each M_g (G, q, q) scaled to unit diagonal
    below ``limit``. From N_g^-1's trace t (fit/stacks.py): the condition lies in
    [t / q, q t], so only groups between those bounds take an eigenvalue solve."""
    q = M.shape[1]
    d = np.sqrt(np.maximum(np.einsum("gii->gi", M), 1e-300))
    N = M / (d[:, :, None] * d[:, None, :])
    inverse, ok = stacks.spd_inverse(stacks.entries_first(N))
    trace = np.where(ok, np.einsum("iig->g", inverse), np.inf)
    out = q * trace < limit
    unsure = np.flatnonzero(~out & (trace / q < limit))
    if unsure.size:
        lam = np.linalg.eigvalsh(N[unsure])
        out[unsure] = lam[:, 0] > lam[:, -1] / limit
    return out


def _loadings(Z, columns):
    """(value, label) of a 1 x k lambda: a fixed 1 for all-ones columns, else ``data.``
    labels of the observation table's ``columns`` (k,)."""
    k = Z.shape[1]
    value, label = np.zeros((1, k)), np.full((1, k), None, dtype=object)
    for c in range(k):
        if np.all(Z[:, c] == 1.0):
            value[0, c] = 1.0
        else:
            label[0, c] = f"data.{columns[c]}"
    return value, label


def _factor_level(m, design, Z, z_cols, f, obs, tau2, psi0, start):
    names = f.effect_names
    k = len(names)
    parents = [f.parent] if f.parent else []
    m.level(f.name, parents=parents, etas=names,
            data=pd.DataFrame({f.name: np.arange(len(f.groups)),
                               **({f.parent: _parent_codes(design, f)} if f.parent else {})}))
    pattern, value, label = np.zeros((k, k)), np.zeros((k, k)), np.full((k, k), None, object)
    pos = 0
    for b in f.blocks:
        idx = range(pos, pos + len(b.names))
        for r in idx:
            for c in idx:
                pattern[r, c] = 1
                label[r, c] = psi_label(f.name, names, r, c)
                if psi0 is not None:
                    value[r, c] = start.get(label[r, c], psi0[r, c])
                elif r == c:
                    z2 = float(np.mean(Z[:, r] ** 2))
                    value[r, c] = start.get(label[r, c], tau2 / z2 if z2 > 0 else tau2)
                else:
                    value[r, c] = start.get(label[r, c], 0.0)
        pos += len(b.names)
    m.within(f.name, "psi", pattern, value, label)
    m.between(f.name, obs, "lambda", np.zeros((1, k)), *_loadings(Z, z_cols))


def _parent_codes(design, f):
    parent = next(g for g in design.factors if g.name == f.parent)
    codes = np.zeros(len(f.groups), dtype=np.intp)
    codes[f.codes] = parent.codes
    return codes
