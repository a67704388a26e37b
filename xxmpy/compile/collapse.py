"""Identical leaf siblings collapse to sufficient statistics (the Helmert rotation).

Units of a leaf level that share all their parents and their missing-data
pattern, and whose matrices have no ``data.`` elements and no covariates of
their own, are exchangeable. Rotating each such group of n_g units by the
orthogonal Helmert matrix splits it into

  * its mean, which carries all the links to the parents: one unit with
    y = ybar_g whose residual and eta-residual precisions are n_g Theta^-1 and
    n_g Psi^-1 (a per-unit weight), plus the Jacobian p_obs log n_g of
    sqrt(n_g) ybar_g -> ybar_g;
  * n_g - 1 contrasts, independent of everything above the level and
    identically N(0, Sigma_w), Sigma_w = Lambda T Psi T' Lambda' + Theta with
    T = (I - B)^-1. Pooled over groups they enter -2 log L only through
    K_k = sum (n_g - 1) and the scatter S_k = sum (y_i - ybar_g)(y_i - ybar_g)'
    of each missing-data pattern k:  K_k log|Sigma_k| + tr(Sigma_k^-1 S_k).

-2 log L is unchanged (exactly, not approximately); each evaluation then costs
O(groups) instead of O(rows). The statistics are computed once, at compile time.

A leaf level without etas whose units are *not* exchangeable, because its
matrices have ``data.`` elements (random slopes) or it has covariates of its
own, is collapsed through its moments instead. Every unit's design A_i is
affine in u_i = [1, z_i, x_i, y_i] (z: its data. columns), so each group's
contributions sum_i A_i' W A_i, A_i' W d_i, d_i' W d_i are fixed linear
functions of the group's moment matrix M_g = sum_i u_i u_i' (r x r). Any r
weighted pseudo-units with sum_t w_t u_t u_t' = M_g and u_t[0] = 1 reproduce
them: take a square root S'S = M_g, reflect it (Householder) so that its
first column is constant, sqrt(n_g / r), and read the rows as pseudo-units of
weight n_g / r. The residual log-determinant then counts r units instead of
n_g: the pooled contrasts add (n_g - r) log|Theta| (with no scatter) and the
constant r p_obs log(n_g / r) restores the weights' Jacobian. Groups with at
most r units stay as they are.
"""
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .problem import build_units, unique_rows

MIN_REDUCTION = 0.75     # collapse only when groups <= 75% of the units
ROUNDING_EIGENVALUE = 1e-12   # of an equilibrated moment matrix, relative to its largest


@dataclass(frozen=True)
class PooledContrasts:
    """Within-group contrasts of a collapsed level (p ys, m etas), one row per
    missing pattern k: patterns (K, p) uint8, count (K,) the K_k, scatter
    (K, p, p) the S_k (zero rows and columns where unobserved). cells: the
    level's 'theta', 'lambda', 'beta' and 'psi' cells in the MatrixSlots."""
    level: int
    p: int
    m: int
    patterns: np.ndarray
    count: np.ndarray
    scatter: np.ndarray
    cells: dict

    @classmethod
    def from_lists(cls, lev, c, obs, count, scatter, slots):
        """From the observed indices, K_k and S_k (observed block) of each pattern."""
        patterns = np.zeros((len(obs), lev.p), np.uint8)
        full = np.zeros((len(obs), lev.p, lev.p))
        for k, (idx, S) in enumerate(zip(obs, scatter)):
            patterns[k, idx] = 1
            full[k][np.ix_(idx, idx)] = S
        p, m = lev.p, lev.n_etas
        cells = {t: slots.cells((c, -1, t), shape) for t, shape in (
            ("theta", (p, p)), ("lambda", (p, m)), ("beta", (m, m)), ("psi", (m, m)))}
        return cls(c, p, m, patterns, np.asarray(count, float), full, cells)


def collapsible(units, c):
    """Whether leaf level c of ``units`` qualifies (see the module docstring)."""
    lev = units.levels[c]
    if lev.p == 0 or lev.q or lev.weight is not None:
        return False
    if any(c in lv.parents for lv in units.levels):
        return False
    return not any(k[0] == c and m.data.shape[1] for k, m in units.matrices.items())


def moment_collapsible(units, c):
    """Whether leaf level c qualifies for the moment collapse (module docstring)."""
    lev = units.levels[c]
    if lev.p == 0 or lev.n_etas or lev.weight is not None or lev.flat:
        return False
    if any(c in lv.parents for lv in units.levels):
        return False
    return bool(lev.q) or any(k[0] == c and m.data.shape[1] for k, m in units.matrices.items())


def _groups(lev):
    """Units that share every parent unit and the missing-data pattern: (keys (G,
    n_parents + 1): the parent units and pattern of each group, group (n,) of each unit)."""
    return unique_rows(list(lev.parent_units) + [lev.pattern_of])


def collapse(units, descendants, slots, memory_limit=None):
    """(reduced Units, pooled contrasts, the constant sum p_obs log n_g), or None when
    no level gains from it. slots: the problem's MatrixSlots."""
    levels, matrices, contrasts, constant = list(units.levels), dict(units.matrices), [], 0.0
    for c, lev in enumerate(units.levels):
        if collapsible(units, c):
            uniq, group = _groups(lev)
            if len(uniq) > MIN_REDUCTION * lev.n:
                continue
            levels[c], pooled, const = _collapse_level(lev, uniq, group)
        elif moment_collapsible(units, c):
            got = _moment_collapse_level(units, c)
            if got is None:
                continue
            levels[c], data, pooled, const = got
            for key, values in data.items():
                matrices[key] = replace(matrices[key], data=values)
        else:
            continue
        contrasts.append(PooledContrasts.from_lists(lev, c, *pooled, slots))
        constant += const
    if not contrasts:
        return None
    return build_units(levels, matrices, descendants, memory_limit), tuple(contrasts), constant


def _moment_collapse_level(units, c):
    """(level, {matrix key: pseudo data}, pooled contrasts, constant), or None."""
    lev = units.levels[c]
    keys = [k for k, m in units.matrices.items() if k[0] == c and m.data.shape[1]]
    z = [units.matrices[k].data for k in keys]
    U = np.column_stack([np.ones(lev.n)] + z + [lev.x, lev.y])
    r = U.shape[1]
    uniq, group = _groups(lev)
    n_g = np.bincount(group)
    big = n_g > r
    if (n_g[big].size * r + n_g[~big].sum()) > MIN_REDUCTION * lev.n:
        return None
    # moments of the big groups about their means (raw moments of data with a large
    # mean lose digits to cancellation), one bincount per element of the upper triangle
    big_ids = np.flatnonzero(big)
    G = big_ids.size
    mean = np.column_stack([np.bincount(group, U[:, k], minlength=n_g.size) / n_g
                            for k in range(r)])
    mean[:, 0] = 0.0
    Uc = U - mean[group]
    M = np.empty((G, r, r))
    for k in range(r):
        for j in range(k, r):
            M[:, k, j] = M[:, j, k] = np.bincount(group, Uc[:, k] * Uc[:, j],
                                                  minlength=n_g.size)[big_ids]
    # S'S = M from the eigen-decomposition of M equilibrated to unit diagonal: the
    # columns' scales differ by many orders (a y in the millions beside a 0/1 dummy),
    # and eigh's absolute error would swamp the small columns' directions; eigenvalues
    # at rounding level (constant or duplicated columns) are
    # dropped, since their square roots (~1e-8) would put noise into every pseudo-unit,
    # and columns with no spread (a constant covariate) get exact zeros
    d = np.sqrt(np.einsum("gii->gi", M))
    constant = d == 0
    d = np.where(constant, 1.0, d)
    lam, V = np.linalg.eigh(M / (d[:, :, None] * d[:, None, :]))
    lam = np.where(lam > ROUNDING_EIGENVALUE * lam[:, -1:], lam, 0.0)
    S = np.sqrt(lam)[:, :, None] * V.transpose(0, 2, 1) * d[:, None, :]
    S[np.broadcast_to(constant[:, None, :], S.shape)] = 0.0
    w = n_g[big] / r
    target = np.sqrt(w)[:, None] * np.ones((1, r))
    v = S[:, :, 0] - target
    vv = np.einsum("gi,gi->g", v, v)
    safe = vv > 1e-300 * np.maximum(n_g[big], 1)
    coef = np.where(safe, 2.0 / np.where(safe, vv, 1.0), 0.0)
    P = S - coef[:, None, None] * v[:, :, None] * np.einsum("gi,gij->gj", v, S)[:, None, :]
    pseudo = (P / np.sqrt(w)[:, None, None] + mean[big_ids][:, None, :]).reshape(G * r, r)
    pseudo[:, 0] = 1.0
    # units of the small groups stay
    keep = np.flatnonzero(~big[group])
    unit_group = np.concatenate([np.repeat(big_ids, r), group[keep]])
    data_rows = np.concatenate([pseudo, U[keep]])
    weight = np.concatenate([np.repeat(w, r), np.ones(keep.size)])
    pattern_of = uniq[unit_group, -1].astype(np.intp)
    cols, out_data, at = {}, {}, 1
    for key, block in zip(keys, z):
        k = block.shape[1]
        out_data[key] = np.ascontiguousarray(data_rows[:, at:at + k])
        for j, name in enumerate(units.matrices[key].emap.data_columns):
            cols[name] = out_data[key][:, j]
        at += k
    x = data_rows[:, at:at + lev.q]
    y = data_rows[:, at + lev.q:] * lev.patterns[pattern_of]
    reduced = replace(
        lev, ids=pd.RangeIndex(len(unit_group)), y=np.ascontiguousarray(y),
        observed=lev.patterns[pattern_of], x=np.ascontiguousarray(x),
        parent_units=tuple(uniq[unit_group, j].astype(np.intp) for j in range(len(lev.parents))),
        columns=cols, pattern_of=pattern_of, weight=weight)
    obs, count, scatter = [], [], []
    p_obs = lev.patterns.sum(axis=1)
    big_pattern = uniq[big, -1].astype(np.intp)
    for k, pattern in enumerate(lev.patterns):
        idx = np.flatnonzero(pattern)
        K = int(np.sum(n_g[big][big_pattern == k] - r))
        if idx.size and K:
            obs.append(idx)
            count.append(K)
            scatter.append(np.zeros((idx.size, idx.size)))
    constant = float(np.sum(r * p_obs[big_pattern] * np.log(w)))
    return reduced, out_data, (obs, count, scatter), constant


def _collapse_level(lev, uniq, group):
    n_g = np.bincount(group).astype(float)
    means = np.zeros((len(uniq), lev.p))
    np.add.at(means, group, lev.y)
    means /= n_g[:, None]
    resid = lev.y - means[group]
    pattern_of = uniq[:, -1].astype(np.intp)
    obs, count, scatter = [], [], []
    for k, pattern in enumerate(lev.patterns):
        idx = np.flatnonzero(pattern)
        rows = pattern_of[group] == k
        K = int(rows.sum() - (pattern_of == k).sum())
        if idx.size == 0 or K == 0:
            continue
        r = resid[np.ix_(rows, idx)]
        obs.append(idx)
        count.append(K)
        scatter.append(r.T @ r)
    p_obs = lev.patterns[pattern_of].sum(axis=1)
    reduced = replace(
        lev, ids=pd.RangeIndex(len(uniq)), y=means, observed=lev.patterns[pattern_of],
        x=np.zeros((len(uniq), 0)), parent_units=tuple(uniq[:, j].astype(np.intp)
                                                      for j in range(len(lev.parents))),
        columns={}, pattern_of=pattern_of, weight=n_g)
    return reduced, (obs, count, scatter), float(p_obs @ np.log(n_g))
