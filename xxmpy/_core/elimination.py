"""Block Cholesky of the latent precision along a Schedule: the numpy kernel.

Invariants (read before touching):
  * all arrays float64, C order; unit and slot indices 0-based intp;
  * ``BlockState`` holds the lower half of C as blocks: diag[l] (n_l, m, m)
    for sparse levels, rel[(a, b)] (nnz, m_a, m_b) for a eliminated before b,
    and the dense remainder (n_dense, n_dense), full (both triangles);
  * eliminate() overwrites the state; it returns log|C| and z'z where
    C = L L' and z = L^-1 b, so that b' C^-1 b = z'z.
This module is the pure-numpy twin that the compiled kernel is tested against.
"""
import numpy as np
from scipy.linalg import solve_triangular

from . import kernels


class NotPositiveDefinite(ArithmeticError):
    """A matrix that must be positive definite is not (at these parameters)."""


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


def eliminate(state):
    """Factor C in place along the schedule; return (log|C|, z'z)."""
    sched = state.sched
    logdet, zz = 0.0, 0.0
    for step in sched.steps:
        a = step.level
        try:
            inv, ld = kernels.chol_inverse_logdet(state.diag[a])
        except ArithmeticError as exc:
            raise NotPositiveDefinite("posterior precision") from exc
        logdet += ld
        z = np.einsum("nij,nj->ni", inv, state.rhs[a])
        zz += np.einsum("ni,ni->", z, z)
        w = {}
        for key, target in zip(step.relations, step.rhs_targets):
            rows = sched.relations[key][0]
            w[key] = np.matmul(inv[rows], state.rel[key])
            state.add_vectors(target, -np.einsum("nij,ni->nj", w[key], z[rows]))
        for k1, k2, i, j, target in step.pairs:
            state.add_blocks(target, -np.matmul(w[k1][i].transpose(0, 2, 1), w[k2][j]))
    if sched.n_dense:
        dense = state.dense.reshape(sched.n_dense, sched.n_dense)
        chol = _cholesky(dense, "posterior precision (dense remainder)")
        logdet += 2.0 * np.log(np.diagonal(chol)).sum()
        z = solve_triangular(chol, state.dense_rhs, lower=True)
        zz += z @ z
    return logdet, zz
