# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Batched Cholesky of small SPD blocks: the first compiled kernel.

Invariants (read before touching):
  * blocks: float64, C order, shape (n, m, m); only the lower triangle is read;
  * returns inv_chol (n, m, m), the inverse of each lower Cholesky factor
    (upper triangle zero), and sum over blocks of log det;
  * raises ArithmeticError (NotPositiveDefinite upstream) if a block is not
    positive definite; the input is not modified.
pattern_inverses_c is declared in _blocks.pxd for the driver (_driver.pyx).
Twin: xxmpy._core.twin (numpy).
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


cdef int pattern_inverses_c(const double* cov, Py_ssize_t r, const unsigned char* patterns,
                            Py_ssize_t K, double* W, double* ld, double* cond, double* work,
                            Py_ssize_t* obs) noexcept nogil:
    """pattern_inverses on raw pointers: W (K, r, r), ld (K,), cond (K,) overwritten;
    work: 2 r r doubles, obs: r. Returns 1 if a block is not positive definite."""
    cdef double* L = work
    cdef double* Li = L + r * r
    cdef Py_ssize_t k, i, j, t, m
    cdef double s, trace, frob
    for i in range(K * r * r):
        W[i] = 0.0
    for k in range(K):
        m = 0
        for i in range(r):
            if patterns[k * r + i]:
                obs[m] = i
                m = m + 1
        trace, ld[k] = 0.0, 0.0
        for i in range(m):
            trace = trace + cov[obs[i] * r + obs[i]]
            for j in range(i + 1):
                s = cov[obs[i] * r + obs[j]]
                for t in range(j):
                    s = s - L[i * m + t] * L[j * m + t]
                if i == j:
                    if not (s > 0.0):
                        return 1
                    L[i * m + i] = sqrt(s)
                    ld[k] = ld[k] + 2.0 * log(L[i * m + i])
                else:
                    L[i * m + j] = s / L[j * m + j]
        frob = 0.0
        for j in range(m):                  # Li = L^-1, lower
            for i in range(j):
                Li[i * m + j] = 0.0
            Li[j * m + j] = 1.0 / L[j * m + j]
            for i in range(j + 1, m):
                s = 0.0
                for t in range(j, i):
                    s = s - L[i * m + t] * Li[t * m + j]
                Li[i * m + j] = s / L[i * m + i]
            for i in range(j, m):
                frob = frob + Li[i * m + j] * Li[i * m + j]
        cond[k] = trace * frob
        for i in range(m):                  # W = Li' Li
            for j in range(i + 1):
                s = 0.0
                for t in range(i, m):
                    s = s + Li[t * m + i] * Li[t * m + j]
                W[k * r * r + obs[i] * r + obs[j]] = s
                W[k * r * r + obs[j] * r + obs[i]] = s
    return 0


def pattern_inverses(const double[:, ::1] cov, const unsigned char[:, ::1] patterns):
    """Inverse, log det and Frobenius condition of the observed block of cov for each pattern.

    cov (r, r) SPD (lower triangle read); patterns (K, r) 0/1. Returns W (K, r, r)
    with the inverse of cov[obs, obs] at the observed rows and columns and zeros
    elsewhere, logdet (K,) and cond (K,) = trace(S) ||L^-1||_F^2 >= cond_2(S)
    (0 for an empty pattern). Raises ArithmeticError if a block is not positive
    definite.
    """
    cdef Py_ssize_t K = patterns.shape[0], r = cov.shape[0]
    W_arr, logdet_arr, cond_arr = np.zeros((K, r, r)), np.zeros(K), np.zeros(K)
    if K == 0 or r == 0:
        return W_arr, logdet_arr, cond_arr
    cdef double[:, :, ::1] W = W_arr
    cdef double[::1] ld = logdet_arr
    cdef double[::1] cond = cond_arr
    cdef double[::1] work = np.zeros(2 * r * r)
    cdef Py_ssize_t[::1] obs = np.zeros(r, dtype=np.intp)
    cdef int bad
    with nogil:
        bad = pattern_inverses_c(&cov[0, 0], r, &patterns[0, 0], K, &W[0, 0, 0], &ld[0],
                                 &cond[0], &work[0], &obs[0])
    if bad:
        raise ArithmeticError("block not positive definite")
    return W_arr, logdet_arr, cond_arr
