"""Block Cholesky of the latent precision along a Schedule: the numpy kernel.

Invariants (read before touching):
  * all arrays float64, C order; unit and slot indices 0-based intp;
  * ``BlockState`` holds the lower half of C as blocks: diag[l] (n_l, m, m)
    for sparse levels, rel[(a, b)] (nnz, m_a, m_b) for a eliminated before b,
    and the dense remainder (n_dense, n_dense), full (both triangles);
  * factor() overwrites the state; its Factor holds log|C| and z'z where
    C = L L' and z = L^-1 b, so that b' C^-1 b = z'z;
  * a profiled flat level (ML's fixed effects; ``profiled``, its index, or None) is
    eliminated last: its block of the factor is that of X'V^-1X, whose log det
    factor() leaves out of log|C| and whose covariance posterior() sets to 0 while
    the other levels' are computed (they are then given the fixed effects).
This module is the numpy reference that the compiled driver is tested against.
"""
from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular

from ...errors import NotPositiveDefinite
from . import blocks


class BlockState:
    """The matrix C and right-hand side b being assembled and factored."""

    def __init__(self, sched):
        self.sched = sched
        m = sched.block
        self.diag = {l: np.zeros((sched.sizes[l], m[l], m[l])) for l in sched.sparse_order}
        self.rhs = {l: np.zeros((sched.sizes[l], m[l])) for l in sched.sparse_order}
        self.rel = {k: np.zeros((len(rc[0]), m[k[0]], m[k[1]]))
                    for k, rc in sched.relations.items()}
        self.dense = np.zeros(sched.n_dense * sched.n_dense)
        self.dense_rhs = np.zeros(sched.n_dense)

    def add_blocks(self, target, blocks):
        """Add a stack of blocks (n, r, c) where ``target`` says."""
        if target.kind == "diag":
            np.add.at(self.diag[target.level], target.units, blocks)
        elif target.kind == "rel":
            np.add.at(self.rel[target.key], target.slots,
                      blocks.transpose(0, 2, 1) if target.transpose else blocks)
        else:
            self._add_dense(target.flat, blocks)
            if target.flat_t is not None:
                self._add_dense(target.flat_t, blocks)

    def _add_dense(self, flat, blocks):
        flat, vals = flat.ravel(), blocks.ravel()
        keep = flat >= 0
        self.dense += np.bincount(flat[keep], vals[keep], minlength=self.dense.size)

    def add_vectors(self, target, vecs):
        """Add a stack of vectors (n, r) to the right-hand side."""
        if target.kind == "sparse":
            np.add.at(self.rhs[target.level], target.units, vecs)
        else:
            self.dense_rhs += np.bincount(target.flat.ravel(), vecs.ravel(),
                                          minlength=self.dense_rhs.size)


def _cholesky(blocks, what):
    try:
        return np.linalg.cholesky(blocks)
    except np.linalg.LinAlgError as exc:
        raise NotPositiveDefinite(what) from exc


@dataclass
class Factor:
    """The block Cholesky factor C = L L' kept for the backward sweeps.

    steps[k] = (inv, z, w) for sched.steps[k]: inv (n_a, m, m) the inverse
    diagonal factors L_ii^-1, z (n_a, m) = L^-1 b on those units, w[key]
    (nnz, m_a, m_b) = L_ii^-1 C_ij, i.e. the transposed off-diagonal factor
    blocks L_ji'. chol/z_dense: the dense remainder's factor and L^-1 b there.
    """
    logdet: float
    zz: float
    steps: list
    chol: np.ndarray
    z_dense: np.ndarray


def factor(state, profiled=None):
    """Factor C in place along the schedule; return the Factor, whose log det leaves
    out the profiled flat level's log|X'V^-1X|."""
    sched = state.sched
    logdet, zz, kept = 0.0, 0.0, []
    for step in sched.steps:
        a = step.level
        try:
            inv, ld = blocks.chol_inverse_logdet(state.diag[a])
        except ArithmeticError as exc:
            raise NotPositiveDefinite("posterior precision") from exc
        logdet += 0.0 if a == profiled else ld
        z = np.einsum("nij,nj->ni", inv, state.rhs[a])
        zz += np.einsum("ni,ni->", z, z)
        w = {}
        for key, target in zip(step.relations, step.rhs_targets):
            rows = sched.relations[key][0]
            w[key] = np.matmul(inv[rows], state.rel[key])
            state.add_vectors(target, -np.einsum("nij,ni->nj", w[key], z[rows]))
        for k1, k2, i, j, target in step.pairs:
            state.add_blocks(target, -np.matmul(w[k1][i].transpose(0, 2, 1), w[k2][j]))
        kept.append((inv, z, w))
    chol = z_dense = None
    if sched.n_dense:
        dense = state.dense.reshape(sched.n_dense, sched.n_dense)
        chol = _cholesky(dense, "posterior precision (dense remainder)")
        keep = sched.n_dense - profiled_rows(sched, profiled)
        logdet += 2.0 * np.log(np.diagonal(chol)[:keep]).sum()
        z_dense = solve_triangular(chol, state.dense_rhs, lower=True)
        zz += z_dense @ z_dense
    return Factor(logdet, zz, kept, chol, z_dense)


def profiled_rows(sched, profiled):
    """Rows of the dense remainder that are the profiled flat level's (its last)."""
    if profiled is None or profiled not in sched.dense_levels:
        return 0
    return int(sched.sizes[profiled] * sched.block[profiled])


class Posterior:
    """Posterior mean C^-1 b and the selected blocks of C^-1 (same layout as BlockState).

    mean[l] (n_l, m_l) for sparse levels, mean_dense (n_dense,); cov.diag,
    cov.rel, cov.dense hold the blocks of C^-1 on the pattern of the factor.
    """

    def __init__(self, mean, mean_dense, cov):
        self.mean, self.mean_dense, self.cov = mean, mean_dense, cov

    def vectors(self, target):
        """Posterior means at a VectorTarget: (n, r)."""
        if target.kind == "sparse":
            return self.mean[target.level][target.units]
        return self.mean_dense[target.flat]

    def blocks(self, target):
        """Posterior covariance blocks at a Target: (n, r, c)."""
        return gather_blocks(self.cov, target)


def gather_blocks(state, target):
    """Read the blocks a Target addresses (the adjoint of BlockState.add_blocks)."""
    if target.kind == "diag":
        return state.diag[target.level][target.units]
    if target.kind == "rel":
        got = state.rel[target.key][target.slots]
        return got.transpose(0, 2, 1) if target.transpose else got
    return state.dense[target.flat]


def posterior_mean(sched, fac):
    """Back substitution: the posterior mean C^-1 b as (mean {level: (n_l, m_l)},
    mean_dense (n_dense,))."""
    mean = {l: np.zeros((sched.sizes[l], sched.block[l])) for l in sched.sparse_order}
    mean_dense = np.zeros(sched.n_dense)
    if sched.n_dense:
        mean_dense = solve_triangular(fac.chol, fac.z_dense, lower=True, trans="T")
    post = Posterior(mean, mean_dense, None)
    for step, (inv, z, w) in zip(reversed(sched.steps), reversed(fac.steps)):
        t = z.copy()
        for key, target in zip(step.relations, step.rhs_targets):
            rows = sched.relations[key][0]
            np.subtract.at(t, rows, np.einsum("nij,nj->ni", w[key], post.vectors(target)))
        mean[step.level] = np.einsum("nji,nj->ni", inv, t)
    return post


def posterior(sched, fac, profiled=None, flat_block=True):
    """Back substitution and selected inversion (Takahashi) over a Factor.

    Walks the steps in reverse: for unit block i with later neighbours J,
    Sigma_Ji = -Sigma_JJ L_Ji L_ii^-1 and
    Sigma_ii = L_ii^-T L_ii^-1 - Sigma_iJ L_Ji L_ii^-1; every Sigma_JJ block
    needed is a fill pair of the forward step, so nothing outside the
    factor's pattern is computed. With a profiled flat level the others' blocks
    are computed with its block 0 (given the fixed effects), and its block is then
    (X'V^-1X)^-1 when ``flat_block``, else 0.
    """
    post = posterior_mean(sched, fac)
    cov = post.cov = BlockState(sched)
    n = sched.n_dense
    keep = n - profiled_rows(sched, profiled)
    dense = np.zeros((n, n))
    if keep:
        dense[:keep, :keep] = _inverse_of_factor(fac.chol[:keep, :keep])
    cov.dense = dense.ravel()
    for step, (inv, z, w) in zip(reversed(sched.steps), reversed(fac.steps)):
        if step.level == profiled:              # one unit, no later blocks: later
            continue
        # T[key] = (Sigma_JJ L_Ji) for each relation entry: (nnz, m_b, m_a)
        acc = {key: np.zeros(w[key].shape[:1] + w[key].shape[:0:-1]) for key in step.relations}
        for k1, k2, i, j, target in step.pairs:
            S = gather_blocks(cov, target)
            np.add.at(acc[k1], i, np.matmul(S, w[k2][j].transpose(0, 2, 1)))
            off = (i != j) if k1 == k2 else np.ones(len(i), bool)
            if off.any():
                np.add.at(acc[k2], j[off], np.matmul(S[off].transpose(0, 2, 1),
                                                     w[k1][i[off]].transpose(0, 2, 1)))
        diag = np.matmul(inv.transpose(0, 2, 1), inv)
        for key in step.relations:
            rows = sched.relations[key][0]
            sigma_ji = -np.matmul(acc[key], inv[rows])             # (nnz, m_b, m_a)
            cov.rel[key] = sigma_ji.transpose(0, 2, 1).copy()      # Sigma_ij, (a, b) layout
            np.subtract.at(diag, rows, np.matmul(cov.rel[key],
                                                 np.matmul(w[key].transpose(0, 2, 1),
                                                           inv[rows])))
        cov.diag[step.level] = (diag + diag.transpose(0, 2, 1)) / 2
    if flat_block and profiled in sched.sparse_order:
        inv = fac.steps[sched.sparse_order.index(profiled)][0]
        cov.diag[profiled] = np.matmul(inv.transpose(0, 2, 1), inv)
    if flat_block and keep < n:
        dense[keep:, keep:] = _inverse_of_factor(fac.chol[keep:, keep:])
        cov.dense = dense.ravel()
    return post


def _inverse_of_factor(chol):
    """(L L')^-1 from a lower Cholesky factor L."""
    linv = solve_triangular(chol, np.eye(len(chol)), lower=True)
    return linv.T @ linv
