"""Analytic gradient of -2 log L by Fisher's identity (engine.md, section 3).

The gradient of log p(y) is the posterior expectation of the gradient of the
complete-data log density log p(y, eta). Each level contributes factor terms
d_i = A_i eta_scope + e_i, e_i ~ N(0, W^-1) (see likelihood.FactorTerm);
with the posterior mean mu_i and covariance S_i of eta over the unit's scope,
the expected residual is ebar_i = d_i - A_i mu_i and

  d(-2 log L)/dA_i     = -2 W (ebar_i mu_i' - A_i S_i)
  d(-2 log L)/dd_i     =  2 W ebar_i
  d(-2 log L)/dW^-1    =  W - W (ebar_i ebar_i' + A_i S_i A_i') W     (summed over units)

plus 2 (I - B)^-T from the -2 log|I - B| term. The chain rule then maps these
matrix gradients onto the matrices' free elements and the parameters. S_i
are blocks of the selected inverse of C, read with the same targets that
assembled C; the engines (engines.py) compute the sums over units.
"""
import numpy as np


class _MatrixGradients:
    """Accumulates d(-2 log L)/d(matrix) per (child, parent, type), then maps to theta."""

    def __init__(self, problem):
        self.problem, self.grads = problem, {}

    def add(self, key, g):
        if key in self.problem.matrices:
            self.grads[key] = self.grads.get(key, 0.0) + g

    def to_parameters(self):
        out = np.zeros(self.problem.params.n)
        for key, g in self.grads.items():
            emap = self.problem.matrices[key].emap
            np.add.at(out, emap.free_param, g[emap.free_rows, emap.free_cols])
        return out


def gradient(problem, mats, terms, moments, extra=None):
    """d(-2 log L)/d theta, (k,), from the level terms and their posterior moments.

    terms: {level: likelihood.LevelTerms}; moments(c, term) -> (gA, gd, wrw)
    as defined in engines.py; extra: further d/d(matrix) to add, by key
    (the pooled contrasts of collapse.py).
    """
    acc = _MatrixGradients(problem)
    for key, g in (extra or {}).items():
        acc.add(key, g)
    levels = problem.levels
    for c, lt in terms.items():
        lev = levels[c]
        slots = [s for s, _ in problem.scopes[c]]
        offs = problem.scope_offsets(c)
        for term in lt.terms:
            gA, gd, wrw = moments(c, term)
            W_pat = term.W_pat
            counts = np.bincount(term.pat, minlength=len(W_pat))
            w_sum = np.einsum("k,krs->rs", counts, W_pat)
            kind = "lambda" if term.kind == "y" else "beta"
            sign = 1.0 if term.kind == "y" else -1.0   # A = [Lambda ...] or [I - B, -B_cp ...]
            for k, s in enumerate(slots):
                acc.add((c, -1 if s == c else s, kind), sign * gA[:, offs[k]:offs[k + 1]])
            if term.kind == "y":
                acc.add((c, -1, "theta"), w_sum - wrw)
                _intercepts(acc, problem, c, -gd, "nu", "kappa")
            else:
                acc.add((c, -1, "psi"), w_sum - wrw)
                _intercepts(acc, problem, c, gd, "alpha", "gamma")
                ib = np.eye(lev.n_etas) - mats.within(c, "beta", (lev.n_etas, lev.n_etas))
                inv_t = np.linalg.inv(ib).swapaxes(-1, -2)
                acc.add((c, -1, "beta"), 2.0 * (inv_t.sum(axis=0) if inv_t.ndim == 3
                                                 else lev.n * inv_t))
    return acc.to_parameters()


def _intercepts(acc, problem, c, g_offset, vec_type, cov_type):
    """Gradients of the offset v + K x_i + sum_p K_cp x_pi(i), given d/d offset (n, r)."""
    lev = problem.levels[c]
    acc.add((c, -1, vec_type), g_offset.sum(axis=0)[:, None])
    if lev.q:
        acc.add((c, -1, cov_type), g_offset.T @ lev.x)
    for p, units in zip(lev.parents, lev.parent_units):
        par = problem.levels[p]
        if par.q:
            acc.add((c, p, cov_type), g_offset.T @ par.x[units])
