"""-2 log L of a compiled problem by the latent-precision (PLS) form.

For every level c, each unit contributes two Gaussian factors over its
"scope" (its own etas, then its parents' etas):

  y-factor:   y_i  - n_i = A_y,i eta_scope + eps,   eps ~ N(0, Theta)
  eta-factor: a_i        = A_e,i eta_scope + zeta,  zeta ~ N(0, Psi)

with A_y = [Lambda | Lambda_cp ...], A_e = [I - B | -B_cp ...], n_i and a_i
the intercepts plus covariate terms. Summing A'WA, A'Wd and d'Wd over the
factors gives C, b and c; then

  -2 log L = N log 2pi + log|Theta| + log|Psi| - 2 log|I - B| + log|C| + c - b'C^-1 b

(engine.md, section 2). C is factored by block elimination along the
problem's schedule; the N x N covariance is never formed.
"""
from dataclasses import dataclass

import numpy as np

from ._core import kernels
from ._core.elimination import NotPositiveDefinite
from .collapse import collapse, contrast_deviance
from .engines import engine_for
from .gradient import gradient

LOG_2PI = np.log(2.0 * np.pi)
# theta / psi blocks more ill-conditioned than this (judged from their Cholesky
# diagonal) are treated as inadmissible: the precision form would lose its digits.
MAX_CONDITION = 1e9


@dataclass
class FactorTerm:
    """One family of Gaussian factors of a level: d_i = A_i eta_scope + e_i, e_i ~ N(0, W_i^-1).

    kind 'y' (residuals of ys) or 'eta' (residuals of etas). A: (n, r, M);
    d: (n, r); W_pat: (n_pat, r, r) the distinct inverse residual covariances
    (zero rows and columns where a y is missing); pat: (n,) intp, unit i uses
    wt[i] W_pat[pat[i]].
    """
    kind: str
    A: np.ndarray
    d: np.ndarray
    W_pat: np.ndarray
    pat: np.ndarray
    wt: np.ndarray               # (n,) unit weights (1, or n_g for a collapsed group)

    @property
    def W(self):
        """Per-unit weights (n, r, r), or the one (r, r) matrix of an unweighted eta term."""
        if self.kind == "eta" and np.all(self.wt == 1.0):
            return self.W_pat[0]
        return self.W_pat[self.pat] * self.wt[:, None, None]


@dataclass
class LevelTerms:
    """A level's factor terms and the log-determinants its likelihood adds."""
    terms: list
    logdet_theta: float
    logdet_psi: float
    logdet_ib: float

    @property
    def logdets(self):
        return self.logdet_theta + self.logdet_psi - 2.0 * self.logdet_ib


def _mv(mat, vecs):
    """(r, c) or (n, r, c) matrix times (n, c) vectors -> (n, r)."""
    return np.matmul(mat, vecs[..., None])[..., 0]


def inverse_and_logdet(mat, what):
    """(inverse, log det) of one SPD matrix through the block kernel."""
    try:
        inv_chol, logdet = kernels.chol_inverse_logdet(np.ascontiguousarray(mat)[None])
    except ArithmeticError as exc:
        raise NotPositiveDefinite(f"{what} is not positive definite") from exc
    # Frobenius condition number trace(S) ||L^-1||_F^2 >= cond_2(S); the ratio of the
    # Cholesky diagonal alone misses ill-conditioning carried by a large off-diagonal
    if mat.shape[0] > 1 and np.trace(mat) * np.sum(inv_chol[0] ** 2) > MAX_CONDITION:
        raise NotPositiveDefinite(f"{what} is numerically singular (condition > 1e9)")
    return inv_chol[0].T @ inv_chol[0], logdet


class ModelMatrices:
    """All matrices of a problem at one parameter vector, looked up by level."""

    def __init__(self, problem, theta):
        self.problem, self.theta = problem, np.asarray(theta, dtype=float)

    def within(self, c, type_, shape):
        return self.problem.matrix(self.theta, c, -1, type_, shape)

    def between(self, c, p, type_, shape):
        return self.problem.matrix(self.theta, c, p, type_, shape)


def _scope_columns(problem, mats, c, between_type, sign, n_rows, own):
    """Design [own | sign * between(parent) ...] over the level's scope, (n, r, M)."""
    levels = problem.levels
    blocks = [own if s == c else sign * mats.between(c, s, between_type,
                                                     (n_rows, levels[s].n_etas))
              for s, _ in problem.scopes[c]]
    n = levels[c].n
    return np.concatenate([np.broadcast_to(b, (n,) + b.shape[-2:]) for b in blocks], axis=2) \
        if blocks else np.zeros((n, n_rows, 0))


def _covariate_offset(problem, mats, c, vec_type, cov_type, n_rows):
    """Intercept plus covariate terms: (n, r) = v + K x_i + sum_p K_cp x_pi(i)."""
    lev = problem.levels[c]
    out = np.broadcast_to(mats.within(c, vec_type, (n_rows, 1))[..., 0], (lev.n, n_rows)).copy()
    if lev.q:
        out += _mv(mats.within(c, cov_type, (n_rows, lev.q)), lev.x)
    for p, units in zip(lev.parents, lev.parent_units):
        par = problem.levels[p]
        if par.q and (c, p, cov_type) in problem.matrices:
            out += _mv(mats.between(c, p, cov_type, (n_rows, par.q)), par.x[units])
    return out


def _y_weights(lev, theta_mat):
    """Inverse residual covariance per missing-data pattern (zeros where missing), log det."""
    if len(lev.patterns) == 1 and lev.patterns[0].all():      # complete data: one pattern
        inv, ld = inverse_and_logdet(theta_mat, f"theta at level '{lev.name}'")
        return inv[None], lev.n * ld
    w_pat = np.zeros((len(lev.patterns), lev.p, lev.p))
    logdet = 0.0
    counts = np.bincount(lev.pattern_of, minlength=len(lev.patterns))
    for k, obs in enumerate(lev.patterns):
        idx = np.flatnonzero(obs)
        if idx.size == 0:
            continue
        inv, ld = inverse_and_logdet(theta_mat[np.ix_(idx, idx)], f"theta at level '{lev.name}'")
        w_pat[k][np.ix_(idx, idx)] = inv
        logdet += counts[k] * ld
    return w_pat, logdet


def level_terms(problem, mats, c):
    """The factor terms of level c and its log-determinants (see LevelTerms)."""
    lev = problem.levels[c]
    terms, ld_theta, ld_psi, ld_ib = [], 0.0, 0.0, 0.0
    wt = np.ones(lev.n) if lev.weight is None else lev.weight
    log_wt = 0.0 if lev.weight is None else np.log(lev.weight)
    if lev.p:
        lam = mats.within(c, "lambda", (lev.p, lev.n_etas))
        A = _scope_columns(problem, mats, c, "lambda", 1.0, lev.p, lam)
        d = lev.y - _covariate_offset(problem, mats, c, "nu", "kappa", lev.p)
        W_pat, ld_theta = _y_weights(lev, mats.within(c, "theta", (lev.p, lev.p)))
        terms.append(FactorTerm("y", A, d, W_pat, lev.pattern_of, wt))
        ld_theta -= float(np.sum(lev.patterns[lev.pattern_of].sum(axis=1) * log_wt))
    if lev.n_etas and not lev.flat:
        m = lev.n_etas
        ib = np.eye(m) - mats.within(c, "beta", (m, m))
        A = _scope_columns(problem, mats, c, "beta", -1.0, m, ib)
        d = _covariate_offset(problem, mats, c, "alpha", "gamma", m)
        W, ld = inverse_and_logdet(mats.within(c, "psi", (m, m)), f"psi at level '{lev.name}'")
        terms.append(FactorTerm("eta", A, d, W[None], np.zeros(lev.n, np.intp), wt))
        ld_psi = lev.n * ld - m * float(np.sum(log_wt))
        sign, ld_b = np.linalg.slogdet(ib)
        if np.any(sign == 0):
            raise NotPositiveDefinite(f"I - beta at level '{lev.name}' is singular")
        ld_ib = float(np.sum(ld_b)) * (1 if ib.ndim == 3 else lev.n)
    return LevelTerms(terms, ld_theta, ld_psi, ld_ib)


def deviance(problem, theta):
    """-2 log L (with the 2 pi constant) at parameters theta; inf if inadmissible."""
    try:
        return _evaluate(problem, theta, False)[0]
    except NotPositiveDefinite:
        return np.inf


def deviance_and_gradient(problem, theta):
    """(-2 log L, its gradient (k,)) at theta; (inf, NaNs) if inadmissible."""
    try:
        return _evaluate(problem, theta, True)
    except NotPositiveDefinite:
        return np.inf, np.full(problem.params.n, np.nan)


def _all_terms(problem, theta):
    mats = ModelMatrices(problem, theta)
    return mats, {c: level_terms(problem, mats, c) for c in range(len(problem.levels))}


def reduced(problem):
    """The problem with identical leaf siblings collapsed (collapse.py), or None.

    Built on first use and kept on the problem; set ``problem._collapsed =
    False`` to evaluate row by row.
    """
    got = getattr(problem, "_collapsed", None)
    if got is None:
        got = problem._collapsed = collapse(problem) or False
    return got or None


def _evaluate(problem, theta, with_gradient):
    red = reduced(problem)
    work = red.problem if red else problem
    mats, terms = _all_terms(work, theta)
    total, extra = (problem.n_observed - problem.n_flat) * LOG_2PI, {}
    if red:
        total += red.constant
        for pooled in red.contrasts:
            try:
                value, grads = contrast_deviance(work, mats, pooled, with_gradient)
            except np.linalg.LinAlgError as exc:
                raise NotPositiveDefinite("within-group covariance") from exc
            total += value
            for key, g in grads.items():
                extra[key] = extra.get(key, 0.0) + g
    engine = engine_for(work)
    const, logdet, zz = engine.factor(terms)
    r2 = const - zz          # the penalised residual sum of squares: >= 0 in exact arithmetic
    if r2 < -1e-8 * max(1.0, const):
        raise NotPositiveDefinite("precision lost: the penalised residual sum of squares "
                                  "came out negative (near-singular covariance matrices)")
    total += logdet + r2 + sum(t.logdets for t in terms.values())
    if not with_gradient:
        return float(total), None
    return float(total), gradient(work, mats, terms, engine.posterior_moments(), extra)


def latent_posterior(problem, theta):
    """Posterior of every level's etas given the observed ys, at parameters theta.

    Returns {level index: (mean (n_l, m_l), covariance (n_l, m_l, m_l))} for
    the levels with etas: the conditional modes and conditional covariances
    of each unit's etas (lme4's ranef and its condVar).
    """
    engine = engine_for(problem)
    engine.factor(_all_terms(problem, theta)[1])
    return engine.level_posterior()
