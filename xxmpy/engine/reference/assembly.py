"""Assembly of C and b from the factor terms, and the posterior moments (numpy reference).

The engine takes every level's FactorTerms (terms.py), assembles C and b,
factors C (log|C|), and sums the penalised residual sum of squares
sum_i e_i' W_i e_i at the posterior mean. For the gradient it then gives, per
level and term, the posterior moments the Fisher identity needs (gradient.py):

  gA = -2 sum_i W_i (e_i mu_i' - A_i S_i)            (r, M)
  gd = 2 W_i e_i                                      (n, r)
  wrw = sum_i W_i (e_i e_i' + A_i S_i A_i') W_i / wt_i   (r, r)

with W_i = wt_i W_pat[pat_i], e_i = d_i - A_i mu_i and (mu_i, S_i) the posterior mean and covariance of
unit i's scope etas. The compiled driver does the same on the flat arrays
of compile/lowering.py (engine/_elimination.pyx); tests compare the two.
"""
from dataclasses import dataclass

import numpy as np

from .elimination import BlockState, factor, posterior, posterior_mean


@dataclass
class LevelFactors:
    """Summed factor products of one level: G (n, M, M), h (n, M)."""
    G: np.ndarray
    h: np.ndarray


def level_factors(units, lt, c):
    """Sum A'WA and A'Wd over level c's terms."""
    n = units.levels[c].n
    M = sum(units.levels[s].n_etas for s, _ in units.scopes[c])
    G, h = np.zeros((n, M, M)), np.zeros((n, M))
    for term in lt.terms:
        W, d = term.W, term.d
        A = np.broadcast_to(term.A, (n,) + term.A.shape[1:])
        WA = np.matmul(W, A)
        Wd = np.matmul(W, d[..., None])[..., 0] if W.ndim == 3 else d @ W.T
        G += np.matmul(A.transpose(0, 2, 1), WA)
        h += np.einsum("nrm,nr->nm", A, Wd)
    return LevelFactors(G, h)


def assemble(units, factors):
    """Scatter every level's factor products into a fresh BlockState."""
    sched = units.schedule
    state = BlockState(sched)
    for c, fac in factors.items():
        offs = units.scope_offsets[c]
        for i, j, target in sched.assembly[c]:
            state.add_blocks(target, fac.G[:, offs[i]:offs[i + 1], offs[j]:offs[j + 1]])
        for i, target in enumerate(sched.assembly_rhs[c]):
            state.add_vectors(target, fac.h[:, offs[i]:offs[i + 1]])
    return state


def scope_means(units, post, c):
    """Posterior mean (n, M) of level c's scope etas."""
    offs = units.scope_offsets[c]
    mu = np.zeros((units.levels[c].n, offs[-1]))
    for k, target in enumerate(units.schedule.assembly_rhs[c]):
        mu[:, offs[k]:offs[k + 1]] = post.vectors(target)
    return mu


def scope_moments(units, post, c):
    """Posterior mean (n, M) and covariance (n, M, M) of level c's scope etas."""
    offs = units.scope_offsets[c]
    n = units.levels[c].n
    mu, S = np.zeros((n, offs[-1])), np.zeros((n, offs[-1], offs[-1]))
    sched = units.schedule
    for k, target in enumerate(sched.assembly_rhs[c]):
        mu[:, offs[k]:offs[k + 1]] = post.vectors(target)
    for i, j, target in sched.assembly[c]:
        blk = post.blocks(target)
        S[:, offs[i]:offs[i + 1], offs[j]:offs[j + 1]] = blk
        if i != j:
            S[:, offs[j]:offs[j + 1], offs[i]:offs[i + 1]] = blk.transpose(0, 2, 1)
    return mu, S


class NumpyEngine:
    """Assembly, factor and posterior over ``units`` (compile/problem.Units), vectorised."""

    def __init__(self, units):
        self.units = units
        # a profiled flat level (ML's fixed effects), or None (elimination.py)
        self.profiled = next((c for c, lev in enumerate(units.levels) if lev.profiled), None)

    def level_posterior(self):
        """{level: (mean (n, m), covariance (n, m, m))} of every level with etas."""
        sched = self.units.schedule
        post = posterior(sched, self.fac, self.profiled)
        out = {lvl: (post.mean[lvl], post.cov.diag[lvl]) for lvl in sched.sparse_order}
        n = sched.n_dense
        for lvl in sched.dense_levels:
            rows = sched.dense_rows(lvl)
            out[lvl] = (post.mean_dense[rows],
                        post.cov.dense.reshape(n, n)[rows[:, :, None], rows[:, None, :]])
        return out

    def factor(self, terms):
        """Assemble and factor C; returns log|C|."""
        factors = {c: level_factors(self.units, lt, c) for c, lt in terms.items()}
        self.fac = factor(assemble(self.units, factors), self.profiled)
        return self.fac.logdet

    def residual(self, terms):
        """The penalised residual sum of squares sum_i e_i' W_i e_i, e_i = d_i - A_i mu_i at
        the posterior mean mu (summed from residuals, not as c - b'C^-1 b)."""
        post, total = posterior_mean(self.units.schedule, self.fac), 0.0
        for c, lt in terms.items():
            mu = scope_means(self.units, post, c)
            for term in lt.terms:
                A = np.broadcast_to(term.A, (len(term.d),) + term.A.shape[1:])
                e = term.d - np.einsum("nrm,nm->nr", A, mu)
                W = term.W
                We = e @ W.T if W.ndim == 2 else np.einsum("nrs,ns->nr", W, e)
                total += float(np.einsum("nr,nr->", e, We))
        return total

    def posterior_moments(self):
        post = posterior(self.units.schedule, self.fac, self.profiled, flat_block=False)
        cache = {}

        def moments(c, term):
            if c not in cache:
                cache[c] = scope_moments(self.units, post, c)
            mu, S = cache[c]
            A, W = np.broadcast_to(term.A, (len(term.d),) + term.A.shape[1:]), term.W
            e = term.d - np.einsum("nrm,nm->nr", A, mu)
            We = e @ W.T if W.ndim == 2 else np.einsum("nrs,ns->nr", W, e)
            WA = np.matmul(W, A)
            WAS = np.matmul(WA, S)
            gA = -2.0 * (We[:, :, None] * mu[:, None, :] - WAS).sum(axis=0)
            inv_wt = 1.0 / term.wt[:, None]       # d/d(W_pat^-1): one weight fewer
            wrw = (We * inv_wt).T @ We + np.einsum("nrm,nsm->rs", WAS * inv_wt[..., None], WA)
            return gA, 2.0 * We, wrw
        return moments
