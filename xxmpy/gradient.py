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
are blocks of the selected inverse of C (elimination.posterior), read with
the same targets that assembled C.
"""
import numpy as np


def scope_moments(problem, post, c):
    """Posterior mean (n, M) and covariance (n, M, M) of level c's scope etas."""
    scope = problem.scopes[c]
    offs = np.concatenate([[0], np.cumsum([problem.levels[s].n_etas for s, _ in scope])])
    n = problem.levels[c].n
    mu, S = np.zeros((n, offs[-1])), np.zeros((n, offs[-1], offs[-1]))
    sched = problem.schedule
    for k, target in enumerate(sched.assembly_rhs[c]):
        mu[:, offs[k]:offs[k + 1]] = post.vectors(target)
    for i, j, target in sched.assembly[c]:
        blk = post.blocks(target)
        S[:, offs[i]:offs[i + 1], offs[j]:offs[j + 1]] = blk
        if i != j:
            S[:, offs[j]:offs[j + 1], offs[i]:offs[i + 1]] = blk.transpose(0, 2, 1)
    return mu, S, offs


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


def _weighted(W, v):
    """W v for W (r, r) or (n, r, r) and v (n, r) -> (n, r)."""
    return v @ W.T if W.ndim == 2 else np.einsum("nrs,ns->nr", W, v)


def gradient(problem, mats, factors, post):
    """d(-2 log L)/d theta, (k,), from the level factors and the posterior."""
    acc = _MatrixGradients(problem)
    levels = problem.levels
    for c, fac in factors.items():
        lev = levels[c]
        mu, S, offs = scope_moments(problem, post, c)
        slots = [s for s, _ in problem.scopes[c]]
        for term in fac.terms:
            A, W = term.A, term.W
            e = term.d - np.einsum("nrm,nm->nr", A, mu)
            We = _weighted(W, e)
            WA = np.matmul(W, A)
            WAS = np.matmul(WA, S)
            gA = -2.0 * (We[:, :, None] * mu[:, None, :] - WAS).sum(axis=0)
            gd = 2.0 * We
            wrw = We.T @ We + np.einsum("nrm,nsm->rs", WAS, WA)
            w_sum = W.sum(axis=0) if W.ndim == 3 else lev.n * W
            kind = "lambda" if term.kind == "y" else "beta"
            sign = 1.0 if term.kind == "y" else -1.0   # A = [Lambda ...] or [I - B, -B_cp ...]
            for k, s in enumerate(slots):
                block = sign * gA[:, offs[k]:offs[k + 1]]
                acc.add((c, -1 if s == c else s, kind), block)
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
