"""A first curvature for the search in closed form: random-effects models' expected information.

The search starts from a Hessian guess (fit/optimize.py); by default forward
differences of the gradient at the start values, k evaluations. Far from the
optimum that observed Hessian is a poor preconditioner (its residual terms
depend on how far off the start is); the expected information is a good one.
For a response y (one per unit of the lowest level) with residual variance
sigma^2 and random effects of parent levels loaded by Z (fixed values or data
columns), one factor taken alone has it in closed form. With Psi (q x q) the
factor's covariance, Z_g (n_g x q) group g's rows, M_g = Z_g'Z_g,
V_g = sigma^2 I + Z_g Psi Z_g' and C_g = (sigma^2 Psi^-1 + M_g)^-1:

    A_g = Z_g'V_g^-1 Z_g  = (M_g - M_g C_g M_g) / sigma^2
    B_g = Z_g'V_g^-2 Z_g  = (M_g - 2 M C M + M C M C M)_g / sigma^4
    tr V_g^-2 = (n_g - 2 tr(C M) + tr(C M C M))_g / sigma^4

and, E_p = dPsi/dp (a unit variance or a symmetric unit covariance),

    d2/dp dq          sum_g tr(E_p A_g E_q A_g)
    d2/dp dsigma2     sum_g tr(E_p B_g)
    d2/dsigma2^2      N / sigma^4 + sum over factors of sum_g (tr V_g^-2 - n_g / sigma^4)

(the terms between factors left at 0). Only a preconditioner: the search corrects
it (fit_problem renews it where the search is over its first iterations); the
polish and the standard errors measure the Hessian at the optimum. lmm/curvature.py
builds it for xm.lmer's models, ``random_effects_curvature`` for an xxM model of
that shape, its mean parameters' block by forward differences (exact: -2 log L is
quadratic in them). Where V is homogeneous in the variance parameters it also gives
the end Hessian its residual column without an evaluation
(RandomEffectsCurvature.quadratic_gradient, fit/optimize.derived_hessian).
"""
import numpy as np

from ..compile.grouping import group_runs, group_sums
from ..engine import deviance_and_gradient, latent_posterior
from ..errors import NotPositiveDefinite
from . import stacks
from .optimize import same_point, mean_parameters


def group_moments(codes, Z, G, rows=None):
    """(G, q, q) M_g = Z_g'Z_g of Z (n, q) over the groups ``codes`` (n,) (only
    ``rows``, a bool mask, when given): compile/grouping's sums."""
    if rows is not None:
        codes, Z = codes[rows], Z[rows]
    runs = group_runs(codes, G)
    q = Z.shape[1]
    M = np.empty((G, q, q))
    for a in range(q):
        for b in range(a, q):
            M[:, a, b] = M[:, b, a] = group_sums(Z[:, a] * Z[:, b], codes, G, runs)
    return M


def add_factor(H, res, s2, M, psi, slots):
    """Add one factor's blocks (module docstring) to H (k, k) in place. slots: [(parameter
    index, r, c)] of psi's free elements (lower triangle). False (H untouched) when Psi
    is not positive definite. The groups' q x q algebra runs entries first
    (fit/stacks.py); sum_g tr(E_p A_g E_q A_g) contracts the E's with
    S[j, k, l, i] = sum_g A_g[j, k] A_g[l, i], one product of (q^2, G) matrices."""
    try:
        np.linalg.cholesky(psi)
        psi_inv = np.linalg.inv(psi)
    except np.linalg.LinAlgError:
        return False
    q = psi.shape[0]
    Mt = stacks.entries_first(M)
    C, ok = stacks.spd_inverse(Mt + (s2 * psi_inv)[:, :, None])
    if not ok.all():
        return False
    MC = stacks.product(Mt, C)
    MCM = stacks.product(MC, Mt)
    CM = MC.transpose(1, 0, 2)                       # C, M symmetric: (MC)' = CM
    A = ((Mt - MCM) / s2).reshape(q * q, -1)
    B = np.sum(Mt - 2.0 * MCM + stacks.product(MCM, CM), axis=2) / s2 ** 2
    H[res, res] += (-2.0 * np.sum(C * Mt) + np.sum(CM * MC)) / s2 ** 2
    S = (A @ A.T).reshape(q, q, q, q)
    E = np.zeros((len(slots), q, q))
    for p, (_, r, c) in enumerate(slots):
        E[p, r, c] = E[p, c, r] = 1.0
    idx = [k for k, _, _ in slots]
    H[np.ix_(idx, idx)] += np.einsum("pij,jkli,qkl->pq", E, S, E)
    H[idx, res] += np.einsum("pij,ji->p", E, B)
    H[res, idx] = H[idx, res]
    return True


def expected_information(k, res, s2, n, factors):
    """(k, k) the closed form at residual variance s2 (parameter ``res``) over n observed
    values and ``factors`` [(M (G, q, q), Psi (q, q), slots)] (add_factor); None when a
    Psi is not positive definite or the result is not finite."""
    H = np.zeros((k, k))
    H[res, res] = n / s2 ** 2
    for M, psi, slots in factors:
        if not add_factor(H, res, s2, M, psi, slots):
            return None
    return H if np.all(np.isfinite(H)) else None


class RandomEffectsCurvature:
    """theta -> (k, k) Hessian guess of -2 log L for an xxM model of random-effects shape
    (random_effects_curvature): each factor's closed form at theta; the mean
    parameters' block by forward differences of the gradient, measured at the first
    call (1 + k_mean evaluations) and kept (X'V^-1 X changes slowly: only a
    preconditioner); the blocks between means and variances 0, as in the expected
    information."""

    def __init__(self, problem, res, n, factors, means, levels=None):
        self.problem, self.res, self.n = problem, res, n
        self.factors, self.means = factors, means
        self.levels = levels        # each factor's level, where V is homogeneous (scaling)
        self.mean_block = None
        self.evaluations = 0        # the engine evaluations the mean block took
        self.memo = [None]          # the search's last (theta, -2 log L, gradient)

    def share(self, memo):
        """Read the search's evaluations (Objective.memo): the mean block's differences
        start from the gradient at the start values the search already has."""
        self.memo = memo

    def __call__(self, theta):
        theta = np.asarray(theta, float)
        s2 = theta[self.res]
        if not s2 > 0:
            return None
        blocks = []
        for M, emap, slots in self.factors:
            psi = emap.base.copy()
            psi[emap.free_rows, emap.free_cols] = theta[emap.free_param]
            blocks.append((M, psi, slots))
        H = expected_information(self.problem.params.n, self.res, s2, self.n, blocks)
        if H is None:
            return None
        if self.means.size:
            if self.mean_block is None:
                last = self.memo[0]
                known = last[1:] if last is not None and same_point(theta, last[0]) \
                    else None
                self.mean_block = _mean_block(self.problem, theta, self.means, known)
                self.evaluations += (known is None) + self.means.size
                if self.mean_block is None:
                    return None
            H[np.ix_(self.means, self.means)] = self.mean_block
        return H

    def scaling(self, problem):
        """quadratic_gradient's hook for the end Hessian (fit/optimize.derived_hessian),
        or None where V is not homogeneous in the variance parameters."""
        return None if self.levels is None else self.quadratic_gradient

    def quadratic_gradient(self, theta, gradient):
        """scaling's hook: quadratic_gradient (below) at theta with the means held (the
        etas' prior mean is 0), m the observed values; the posterior is the one the
        last evaluation left."""
        theta = np.asarray(theta, float)
        try:
            post = latent_posterior(self.problem, theta)
        except NotPositiveDefinite:
            return None
        factors = []
        scaled = np.zeros(theta.size, bool)
        scaled[self.res] = True
        for (_, emap, slots), level in zip(self.factors, self.levels):
            psi = emap.base.copy()
            psi[emap.free_rows, emap.free_cols] = theta[emap.free_param]
            factors.append((post[level][0], psi, slots))
            scaled[[p for p, _, _ in slots]] = True
        got = quadratic_gradient(theta.size, self.res, theta[self.res], self.n,
                                 float(theta[scaled] @ gradient[scaled]), factors)
        return None if got is None else (got, self.res, scaled)


def quadratic_gradient(k, res, s2, m, theta_g, factors):
    """(k,) the gradient of q = r'V^-1 r (the quadratic part of -2 log L) in the
    variance parameters, or None, from the random effects' posterior means.

    q = |e|^2 / sigma^2 + sum_g u_g' Psi^-1 u_g (Henderson: u_g the modes, e the
    conditional residuals); its gradient is -(Psi^-1 U'U Psi^-1)_rc (twice that off
    the diagonal) for a factor's Psi and -|e|^2 / sigma^4 for the residual variance
    (parameter ``res``, value s2). No pass over the rows: where V(c theta_v) =
    c V(theta_v), -2 log L changes along theta_v by m log c and q / c, so theta_v.g_v =
    m - q (``theta_g``; m the observed values, less the fixed effects for REML), and
    |e|^2 = sigma^2 (q - sum_g u_g' Psi^-1 u_g). factors: [(U (G, q) posterior means
    less their prior mean, Psi (q, q), slots [(parameter, r, c)])]. None where a Psi is
    singular or |e|^2 comes out negative."""
    out = np.zeros(k)
    penalty = 0.0
    for U, psi, slots in factors:
        try:
            W = U @ np.linalg.inv(psi)                          # Psi^-1 u_g, by rows
        except np.linalg.LinAlgError:
            return None
        penalty += float(np.sum(W * U))
        A = W.T @ W
        for p, r, c in slots:
            out[p] = -A[r, c] * (1.0 if r == c else 2.0)
    ee = s2 * (m - theta_g - penalty)                           # |e|^2
    out[res] = -ee / s2 ** 2
    return out if np.all(np.isfinite(out)) and ee >= 0 else None


def random_effects_curvature(problem):
    """A RandomEffectsCurvature of ``problem``, or None unless it has the shape: one level
    holds the ys (one y, a free residual variance theta, no etas); every level with
    etas is its direct parent, loads its etas onto the y by a between lambda of fixed
    values or ``data.`` columns, and has a psi whose free elements are each their own
    label (fixed elements 0 or values); every other free parameter is a mean (nu,
    kappa, alpha)."""
    levels, params = problem.levels, problem.params
    if problem.forms is not None:
        return None
    with_ys = [c for c, lev in enumerate(levels) if lev.y.shape[1]]
    if len(with_ys) != 1:
        return None
    low = levels[with_ys[0]]
    if low.y.shape[1] != 1 or low.n_etas or low.weight is not None or low.flat:
        return None
    names = [lev.name for lev in levels]
    maps = params.element_maps
    k = params.n
    owner = np.zeros(k, int)                  # how many elements each parameter has
    for emap in maps.values():
        np.add.at(owner, emap.free_param, 1)
    residual = maps.get((low.name, None, "theta"))
    if residual is None or len(residual.free_param) != 1 or residual.scaled \
            or owner[residual.free_param[0]] != 1:
        return None
    res = int(residual.free_param[0])
    observed = low.observed[:, 0]
    covered = np.zeros(k, bool)
    covered[res] = True
    factors, factor_levels = [], []
    for (child, parent, kind), emap in maps.items():
        if kind != "psi" or not len(emap.free_param):
            continue
        f = names.index(child)
        if f not in low.parents or levels[f].flat or emap.scaled or parent is not None:
            return None
        loads = maps.get((low.name, child, "lambda"))
        if loads is None or len(loads.free_param) or loads.base.shape[0] != 1:
            return None
        Z = np.tile(loads.base[0], (low.n, 1))
        for c, col in zip(loads.data_cols, loads.data_columns):
            Z[:, c] = low.columns[col]
        lower = emap.free_rows >= emap.free_cols
        slots = [(int(p), int(r), int(c)) for p, r, c in
                 zip(emap.free_param[lower], emap.free_rows[lower], emap.free_cols[lower])]
        if any(owner[p] != (1 if r == c else 2) for p, r, c in slots):
            return None             # a label shared with other elements
        units = low.parent_units[low.parents.index(f)]
        factors.append((group_moments(units, Z, levels[f].n, observed), emap, slots))
        factor_levels.append(f)
        covered[[p for p, _, _ in slots]] = True
    means = mean_parameters(problem)
    if not factors or not (covered | means).all():
        return None
    return RandomEffectsCurvature(problem, res, int(observed.sum()), factors,
                                  np.flatnonzero(means & ~covered),
                                  _homogeneous(problem, factors, factor_levels))


def _homogeneous(problem, factors, levels):
    """``levels`` (each factor's level index) where V(c theta_v) = c V(theta_v) and the
    etas' prior mean is 0 (no psi element fixed at a nonzero value, no alpha or gamma
    on a factor's level), else None: where RandomEffectsCurvature.quadratic_gradient
    holds."""
    names = {problem.levels[f].name for f in levels}
    if any(emap.base.any() for _, emap, _ in factors):
        return None
    for (child, _, kind), m in problem.params.element_maps.items():
        if child in names and kind in ("alpha", "gamma") and (len(m.free_param)
                                                             or m.base.any()):
            return None
    return levels


def _mean_block(problem, theta, means, known=None):
    """(k_mean, k_mean) the mean parameters' block of the Hessian at theta by forward
    differences of the gradient: exact, -2 log L being quadratic in them; None if theta
    is inadmissible. known: (-2 log L, gradient) at theta, when evaluated already."""
    f0, g0 = deviance_and_gradient(problem, theta) if known is None else known
    if not np.isfinite(f0):
        return None
    units = np.asarray(problem.param_units, float)
    block = np.empty((means.size, means.size))
    for a, j in enumerate(means):
        h = 1e-3 * max(abs(theta[j]), units[j])
        up = theta.copy()
        up[j] += h
        g = deviance_and_gradient(problem, up)[1]
        if not np.all(np.isfinite(g)):
            return None
        block[:, a] = (g[means] - g0[means]) / h
    return (block + block.T) / 2
