"""Every level's factor terms at a parameter vector (the numpy reference).

Walks the index arrays of compile/plan.py: A, d and the pattern inverses of
theta / psi of every factor family at ``vals``, and the gradient values that
the same maps carry back to the matrix cells. The compiled driver does the
same in engine/_program.pyx; tests compare the two.
"""
from dataclasses import dataclass

import numpy as np

from ...compile.plan import MAX_CONDITION
from ...errors import NotPositiveDefinite
from . import blocks


@dataclass
class FactorTerm:
    """One family of Gaussian factors of a level: d_i = A_i eta_scope + e_i, e_i ~ N(0, W_i^-1).

    kind 'y' (residuals of ys) or 'eta' (residuals of etas). A: (n, r, M), or
    (1, r, M) when all units share it; d: (n, r); W_pat: (n_pat, r, r) the
    distinct inverse residual covariances (zero rows and columns where a y is
    missing); pat: (n,) intp, unit i uses wt[i] W_pat[pat[i]].
    """
    kind: str
    A: np.ndarray
    d: np.ndarray
    W_pat: np.ndarray
    pat: np.ndarray
    wt: np.ndarray               # (n,) unit weights (1, or n_g for a collapsed group)
    plan: object = None          # the TermPlan that built it
    ib: np.ndarray = None        # I - B, (1, m, m) or (n, m, m), of an eta term with a within beta

    @property
    def W(self):
        """Per-unit weights (n, r, r), or the one (r, r) matrix of an unweighted eta term."""
        if self.kind == "eta" and self.plan.unweighted:
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


def inverse_and_logdet(mat, what):
    """(inverse, log det) of one SPD matrix; NotPositiveDefinite when it is not
    or when its condition number exceeds MAX_CONDITION."""
    pattern = np.ones((1, mat.shape[0]), bool)
    inv, logdet = pattern_inverses(np.asarray(mat, float), pattern, what)
    return inv[0], float(logdet[0])


def pattern_inverses(cov, patterns, what, max_condition=MAX_CONDITION):
    """Inverse and log det of the observed block of ``cov`` (r, r) for every pattern.

    patterns: (n_pat, r) uint8 (or bool). Returns W (n_pat, r, r) with zero rows
    and columns where a pattern has no observation, and log dets (n_pat,).
    Raises NotPositiveDefinite when a block is not positive definite or the
    Frobenius condition number of its correlation, m ||L^-1 D^1/2||_F^2 (>= its
    2-norm condition; blind to the variables' units, so rescaling a y can
    neither make a point inadmissible nor admit one; the ratio of the Cholesky
    diagonal alone misses ill-conditioning carried by a large off-diagonal),
    exceeds ``max_condition``.
    """
    if not (cov.flags.c_contiguous and cov.dtype == np.float64):
        cov = np.ascontiguousarray(cov, dtype=float)
    if not (patterns.flags.c_contiguous and patterns.dtype == np.uint8):
        patterns = np.ascontiguousarray(patterns, dtype=np.uint8)
    try:
        W, logdet, cond = blocks.pattern_inverses(cov, patterns)
    except ArithmeticError as exc:
        raise NotPositiveDefinite(f"{what} is not positive definite") from exc
    if cov.shape[0] > 1 and len(cond) and cond.max() > max_condition:
        raise NotPositiveDefinite(f"{what} is numerically singular (the condition number "
                                  f"of its correlation exceeds {max_condition:g})")
    return W, logdet


def build_term(tp, vals):
    """The FactorTerm of TermPlan ``tp`` at ``vals`` and its (log|theta or psi| share,
    log|I - B|)."""
    A = _per_unit(tp.a_const + tp.a_sign * vals[tp.a_index], tp.a_data_pos,
                  tp.a_data)
    d = tp.d0 + tp.d_sign * (tp.X @ vals[tp.c_index].T)
    W_pat, logdet = pattern_inverses(vals[tp.cov_cells], tp.patterns, tp.what)
    ld_cov = float(tp.counts @ logdet) + tp.logdet_const
    term = FactorTerm(tp.kind, A, d, W_pat, tp.pat, tp.wt, tp)
    ld_ib = 0.0
    if tp.beta_cells is not None:
        ib = _per_unit(np.eye(len(tp.beta_cells)) - vals[tp.beta_cells],
                       tp.beta_data_pos, tp.beta_data)
        sign, ld_b = np.linalg.slogdet(ib)
        if np.any(sign == 0):
            raise NotPositiveDefinite(f"I - beta at level '{tp.name}' is singular")
        ld_ib = float(np.sum(ld_b)) * (len(tp.d0) // len(ib))   # a shared I - B: n times
        term.ib = ib
    return term, ld_cov, ld_ib


def gradient_values(tp, term, gA, gd, wrw):
    """d(-2 log L)/d vals at ``tp.grad_cells`` for the TermPlan ``tp``, given its
    term and posterior moments (assembly.py): gA (r, M), gd (n, r), wrw (r, r)."""
    w_sum = tp.counts @ term.W_pat.reshape(len(tp.counts), -1)
    values = [(tp.a_sign * gA).ravel(), tp.d_sign * (gd.T @ tp.X).ravel(),
              w_sum - wrw.ravel()]
    if tp.beta_cells is not None:        # -2 log|I - B|: d/dB = 2 (I - B)^-T
        inv_t = np.linalg.inv(term.ib).swapaxes(-1, -2)
        values.append(2.0 * (len(tp.d0) // len(inv_t)) * inv_t.sum(axis=0).ravel())
    return values


def _per_unit(block, data_pos, data):
    """(1, r, c) ``block`` shared by all units, or (n, r, c) with each unit's data.
    values (n, kd) added at the flat cells data_pos (kd,)."""
    if data_pos is None:
        return block[None]
    out = np.repeat(block.reshape(1, -1), len(data), axis=0)
    out[:, data_pos] += data
    return out.reshape((len(data),) + block.shape)


def level_terms(plan, theta):
    """(vals, {level: LevelTerms}) of an EvaluationPlan at parameters theta."""
    vals = plan.slots.fill(np.asarray(theta, float))
    out = {}
    for c, plans in plan.levels.items():
        terms, lds = [], {"y": 0.0, "eta": 0.0}
        ld_ib = 0.0
        for tp in plans:
            term, ld, ld_b = build_term(tp, vals)
            terms.append(term)
            lds[tp.kind] += ld
            ld_ib += ld_b
        out[c] = LevelTerms(terms, lds["y"], lds["eta"], ld_ib)
    return vals, out
