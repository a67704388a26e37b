# cython: language_level=3
# Small dense linear algebra on raw row-major float64 pointers, shared by every
# compiled module (cimported, inlined; scikit-learn shares its BLAS helpers the
# same way). The blocks are tiny (a level's etas, a unit's ys): loops beat BLAS
# calls there. Numpy counterparts: engine/reference/blocks.py.
#
# Invariants (read before touching): row-major (i, j) at [i * cols + j]; outputs
# never alias inputs unless a routine says so; nothing allocates; nogil.
from libc.math cimport fabs, log, sqrt

ctypedef Py_ssize_t idx


cdef inline int cholesky(const double* a, idx m, double* L, double* logdet) noexcept nogil:
    """Lower Cholesky factor L (m, m) of the SPD a (lower triangle read; L's upper
    triangle is left as it was); adds log det a to logdet. 1 if a is not positive
    definite. a and L may be the same array."""
    cdef idx i, j, k
    cdef double s
    for i in range(m):
        for j in range(i + 1):
            s = a[i * m + j]
            for k in range(j):
                s -= L[i * m + k] * L[j * m + k]
            if i == j:
                if not (s > 0.0):
                    return 1
                L[i * m + i] = sqrt(s)
                logdet[0] += 2.0 * log(L[i * m + i])
            else:
                L[i * m + j] = s / L[j * m + j]
    return 0


cdef inline void triangular_inverse(const double* L, idx m, double* Li) noexcept nogil:
    """Li (m, m) = L^-1 of the lower triangular L, zeros above the diagonal."""
    cdef idx i, j, k
    cdef double s
    for j in range(m):
        for i in range(j):
            Li[i * m + j] = 0.0
        Li[j * m + j] = 1.0 / L[j * m + j]
        for i in range(j + 1, m):
            s = 0.0
            for k in range(j, i):
                s -= L[i * m + k] * Li[k * m + j]
            Li[i * m + j] = s / L[i * m + i]


cdef inline void matmul(const double* A, const double* B, double* C, idx a, idx b, idx c,
                        int ta, int tb, int accumulate) noexcept nogil:
    """C (a, c) = op(A) op(B), or += when ``accumulate``; op(A) (a, b) is A, or A'
    stored as (b, a) when ``ta``; op(B) (b, c) likewise with ``tb``."""
    cdef idx i, j, k
    cdef double s
    for i in range(a):
        for j in range(c):
            s = 0.0
            for k in range(b):
                s += (A[k * a + i] if ta else A[i * b + k]) * (B[j * b + k] if tb else B[k * c + j])
            if accumulate:
                C[i * c + j] += s
            else:
                C[i * c + j] = s


cdef inline int inverse(const double* a, idx m, double* inv, double* work,
                        double* logabsdet) noexcept nogil:
    """inv = a^-1 (m, m) of a general matrix (Gauss-Jordan, partial pivoting); adds
    log|det a| to logabsdet. work: m m doubles. 1 if a is singular."""
    cdef idx i, j, k, piv
    cdef double t, best
    for i in range(m * m):
        work[i] = a[i]
        inv[i] = 0.0
    for i in range(m):
        inv[i * m + i] = 1.0
    for k in range(m):
        piv, best = k, fabs(work[k * m + k])
        for i in range(k + 1, m):
            if fabs(work[i * m + k]) > best:
                piv, best = i, fabs(work[i * m + k])
        if best == 0.0:
            return 1
        if piv != k:
            for j in range(m):
                t = work[k * m + j]
                work[k * m + j] = work[piv * m + j]
                work[piv * m + j] = t
                t = inv[k * m + j]
                inv[k * m + j] = inv[piv * m + j]
                inv[piv * m + j] = t
        logabsdet[0] += log(best)
        t = 1.0 / work[k * m + k]
        for j in range(m):
            work[k * m + j] *= t
            inv[k * m + j] *= t
        for i in range(m):
            if i != k and work[i * m + k] != 0.0:
                t = work[i * m + k]
                for j in range(m):
                    work[i * m + j] -= t * work[k * m + j]
                    inv[i * m + j] -= t * inv[k * m + j]
    return 0
