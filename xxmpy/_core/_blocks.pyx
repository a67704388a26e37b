# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Batched Cholesky of small SPD blocks: the first compiled kernel.

Invariants (read before touching):
  * blocks: float64, C order, shape (n, m, m); only the lower triangle is read;
  * returns inv_chol (n, m, m), the inverse of each lower Cholesky factor
    (upper triangle zero), and sum over blocks of log det;
  * raises ArithmeticError (NotPositiveDefinite upstream) if a block is not
    positive definite; the input is not modified.
Twin: xxmpy._core.twin.chol_inverse_logdet (numpy).
"""
import numpy as np
from libc.math cimport log, sqrt


def chol_inverse_logdet(const double[:, :, ::1] blocks):
    cdef Py_ssize_t n = blocks.shape[0], m = blocks.shape[1]
    out_arr = np.zeros((n, m, m))
    work_arr = np.zeros((m, m))
    cdef double[:, :, ::1] out = out_arr
    cdef double[:, ::1] L = work_arr
    cdef Py_ssize_t b, i, j, k
    cdef double s, logdet = 0.0
    cdef int bad = 0
    with nogil:
        for b in range(n):
            for i in range(m):
                for j in range(i + 1):
                    s = blocks[b, i, j]
                    for k in range(j):
                        s = s - L[i, k] * L[j, k]
                    if i == j:
                        if not (s > 0.0):
                            bad = 1
                            break
                        L[i, i] = sqrt(s)
                        logdet = logdet + 2.0 * log(L[i, i])
                    else:
                        L[i, j] = s / L[j, j]
                if bad:
                    break
            if bad:
                break
            # invert the lower triangular factor column by column
            for j in range(m):
                out[b, j, j] = 1.0 / L[j, j]
                for i in range(j + 1, m):
                    s = 0.0
                    for k in range(j, i):
                        s = s - L[i, k] * out[b, k, j]
                    out[b, i, j] = s / L[i, i]
    if bad:
        raise ArithmeticError("block not positive definite")
    return out_arr, logdet
