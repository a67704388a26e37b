"""Two back ends over the same factor terms: the compiled kernel and its numpy twin.

(-2 log L and its gradient run in the compiled driver, driver.py, when it is
built; the numpy engine is then its twin's back end and the compiled engine
serves the latent posterior, ``likelihood.latent_posterior``.)

An engine takes every level's FactorTerms (terms.py), assembles
C and b, factors C and returns (c, log|C|, z'z) where c = sum d'Wd and
b'C^-1 b = z'z. For the gradient it then gives, per level and term, the
posterior moments the Fisher identity needs (gradient.py):

  gA = -2 sum_i W_i (e_i mu_i' - A_i S_i)            (r, M)
  gd = 2 W_i e_i                                      (n, r)
  wrw = sum_i W_i (e_i e_i' + A_i S_i A_i') W_i / wt_i   (r, r)

with W_i = wt_i W_pat[pat_i], e_i = d_i - A_i mu_i and (mu_i, S_i) the posterior mean and covariance of
unit i's scope etas. ``CompiledEngine`` walks the flat index arrays of
_core/lowering.py in _core/_engine.pyx (factor and posterior; the moments are
computed in the driver); ``NumpyEngine`` runs the vectorised
numpy code of _core/elimination.py. Tests compare the two to 1e-10.
"""
from dataclasses import dataclass

import numpy as np

from ._core import kernels
from ._core.elimination import BlockState, factor, posterior
from ._core.lowering import lower


def engine_for(problem):
    """The compiled engine when it is built and not disabled (XXMPY_KERNEL=numpy)."""
    return CompiledEngine(problem) if kernels.engine is not None else NumpyEngine(problem)


# ------------------------------------------------------------------ numpy twin
@dataclass
class LevelFactors:
    """Summed factor products of one level: G (n, M, M), h (n, M), const."""
    G: np.ndarray
    h: np.ndarray
    const: float


def level_factors(problem, lt, c):
    """Sum A'WA, A'Wd and d'Wd over level c's terms."""
    n = problem.levels[c].n
    M = sum(problem.levels[s].n_etas for s, _ in problem.scopes[c])
    G, h, const = np.zeros((n, M, M)), np.zeros((n, M)), 0.0
    for term in lt.terms:
        W, d = term.W, term.d
        A = np.broadcast_to(term.A, (n,) + term.A.shape[1:])
        WA = np.matmul(W, A)
        Wd = np.matmul(W, d[..., None])[..., 0] if W.ndim == 3 else d @ W.T
        G += np.matmul(A.transpose(0, 2, 1), WA)
        h += np.einsum("nrm,nr->nm", A, Wd)
        const += np.einsum("nr,nr->", d, Wd)
    return LevelFactors(G, h, const)


def assemble(problem, factors):
    """Scatter every level's factor products into a fresh BlockState."""
    sched = problem.schedule
    state = BlockState(sched)
    for c, fac in factors.items():
        offs = problem.scope_offsets(c)
        for i, j, target in sched.assembly[c]:
            state.add_blocks(target, fac.G[:, offs[i]:offs[i + 1], offs[j]:offs[j + 1]])
        for i, target in enumerate(sched.assembly_rhs[c]):
            state.add_vectors(target, fac.h[:, offs[i]:offs[i + 1]])
    return state


def _dense_rows(sched, lvl):
    m, size = sched.block[lvl], sched.sizes[lvl]
    return sched.dense_offset[lvl] + np.arange(size * m).reshape(size, m)


def scope_moments(problem, post, c):
    """Posterior mean (n, M) and covariance (n, M, M) of level c's scope etas."""
    offs = problem.scope_offsets(c)
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
    return mu, S


class NumpyEngine:
    """The pure-numpy twin (vectorised over units)."""

    def __init__(self, problem):
        self.problem = problem

    def level_posterior(self):
        """{level: (mean (n, m), covariance (n, m, m))} of every level with etas."""
        sched, post = self.problem.schedule, posterior(self.problem.schedule, self.fac)
        out = {lvl: (post.mean[lvl], post.cov.diag[lvl]) for lvl in sched.sparse_order}
        n = sched.n_dense
        for lvl in sched.dense_levels:
            rows = _dense_rows(sched, lvl)
            out[lvl] = (post.mean_dense[rows],
                        post.cov.dense.reshape(n, n)[rows[:, :, None], rows[:, None, :]])
        return out

    def factor(self, terms):
        factors = {c: level_factors(self.problem, lt, c) for c, lt in terms.items()}
        self.fac = factor(assemble(self.problem, factors))
        return sum(f.const for f in factors.values()), self.fac.logdet, self.fac.zz

    def posterior_moments(self):
        post = posterior(self.problem.schedule, self.fac)
        cache = {}

        def moments(c, term):
            if c not in cache:
                cache[c] = scope_moments(self.problem, post, c)
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


# ------------------------------------------------------------------ compiled kernel
def lowered(problem):
    """The problem's flat index arrays, built on first use and kept on the problem."""
    low = getattr(problem, "_lowered", None)
    if low is None:
        low = problem._lowered = lower(problem)
    return low


class CompiledEngine:
    """Assembly, elimination, selected inversion and moments in _core/_engine.pyx."""

    def __init__(self, problem):
        self.problem, self.low = problem, lowered(problem)

    def factor(self, terms):
        k, low = kernels.engine, self.low
        buf, rhs = np.zeros(low.size), np.zeros(low.rhs_size)
        const = 0.0
        for c, lt in terms.items():
            sc = low.scopes[c]
            for t in lt.terms:      # terms.py builds C-contiguous float64 / intp arrays
                const += k.accumulate(t.A, t.d, t.W_pat, t.pat, t.wt, sc.seg, sc.pair_i, sc.pair_j,
                                      sc.blk.off, sc.blk.ld, sc.blk.tr, sc.vec,
                                      buf, rhs)
        logdet = zz = 0.0
        for st in low.steps:
            ld, z2 = k.eliminate_step(buf, rhs, st.m, st.diag, st.rhs, st.e_row, st.e_off,
                                      st.e_mb, st.e_nb, st.p_e1, st.p_e2, st.p.off, st.p.ld,
                                      st.p.tr, low.max_block)
            logdet, zz = logdet + ld, zz + z2
        if low.n_dense:
            ld, z2 = k.factor_dense(buf, rhs, low.dense_base, low.rhs_dense_base, low.n_dense)
            logdet, zz = logdet + ld, zz + z2
        self.buf, self.rhs, self.terms = buf, rhs, terms
        return const, logdet, zz

    def level_posterior(self):
        """{level: (mean (n, m), covariance (n, m, m))} of every level with etas."""
        sig, mean = self._posterior()
        sched, out = self.problem.schedule, {}
        for lvl, st in zip(sched.sparse_order, self.low.steps):
            m = np.arange(st.m)
            out[lvl] = (mean[st.rhs[:, None] + m],
                        sig[st.diag[:, None, None] + m[:, None] * st.m + m[None, :]])
        n = sched.n_dense
        for lvl in sched.dense_levels:
            rows = _dense_rows(sched, lvl)
            dense = sig[self.low.dense_base:].reshape(n, n)
            out[lvl] = (mean[self.low.rhs_dense_base + rows],
                        dense[rows[:, :, None], rows[:, None, :]])
        return out

    def _posterior(self):
        k, low = kernels.engine, self.low
        sig, mean = np.zeros(low.size), np.zeros(low.rhs_size)
        if low.n_dense:
            k.posterior_dense(self.buf, self.rhs, sig, mean, low.dense_base,
                              low.rhs_dense_base, low.n_dense)
        for st in reversed(low.steps):
            k.posterior_step(self.buf, self.rhs, sig, mean, st.m, st.diag, st.rhs, st.e_row,
                             st.e_off, st.e_mb, st.e_nb, st.p_e1, st.p_e2, st.p.off, st.p.ld,
                             st.p.tr, low.max_block)
        return sig, mean
