# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The dense remainder's Cholesky and selected inverse, a supernode at a time.

The remainder C (n, n) is stored dense, column-major upper (engine/_elimination's
layout: row-major lower); its factor U (C = U'U) is sparse in the order
compile/ordering.py chose. Supernode J owns rows J = start[J]..start[J+1] and its
block row of U is nonzero only at its own columns and at the later rows R =
r_idx[r_ptr[J]:r_ptr[J+1]]. Everything outside that pattern stays exactly 0 (the
triangular solves over the whole dense block then stay exact).

Cholesky (right-looking): U_JJ = chol(C_JJ); U_JR = U_JJ^-T C_JR; C_RR -= U_JR'U_JR.
Selected inverse S = C^-1 on the pattern (Takahashi's equations), last supernode
first, from U S = U^-T:  Y = U_JJ^-1 U_JR,  S_JR = -Y S_RR,
S_JJ = (U_JJ'U_JJ)^-1 - S_JR Y'. S_RR is on the pattern (R is a clique of it).
Numpy reference: the dense factor and inverse (engine/reference/elimination.py).
"""
from scipy.linalg.cython_blas cimport dgemm, dsymm, dsyrk, dtrsm
from ._elimination cimport dense_cholesky, dense_inverse, interrupted

# flops between looks for a pending Ctrl-C
cdef double CHECK_FLOPS = 2e7


cdef int supernodal_cholesky(double* A, int n, const Supernodal* s) noexcept nogil:
    """A (n, n) column-major upper = C -> U in place. 0, 1 if C is not positive
    definite, 2 if interrupted."""
    cdef idx J, k, i, a, b, j0, cb
    cdef int w, r, info = 0
    cdef const idx* R
    cdef double one = 1.0, zero = 0.0, done = 0.0
    cdef char up = b'U', tr = b'T', nt = b'N', left = b'L'
    cdef double* P = s.panel
    cdef double* T = s.square
    for J in range(s.ns):
        j0 = s.start[J]
        w = <int> (s.start[J + 1] - j0)
        R = &s.r_idx[s.r_ptr[J]]
        r = <int> (s.r_ptr[J + 1] - s.r_ptr[J])
        info = dense_cholesky(&A[j0 + j0 * n], w, n)    # blocked: Ctrl-C acts inside
        if info:
            return info
        if r:
            for k in range(r):
                for i in range(w):
                    P[k * w + i] = A[R[k] * n + j0 + i]
            dtrsm(&left, &up, &tr, &nt, &w, &r, &one, &A[j0 + j0 * n], &n, P, &w)
            for k in range(r):
                for i in range(w):
                    A[R[k] * n + j0 + i] = P[k * w + i]
            dsyrk(&up, &tr, &r, &w, &one, P, &w, &zero, T, &r)
            for b in range(r):
                cb = R[b] * n
                for a in range(b + 1):
                    A[R[a] + cb] -= T[a + b * r]
        done += (<double> w) * w * w / 3.0 + (<double> w) * r * (w + r)
        if done > CHECK_FLOPS:
            done = 0.0
            if interrupted():
                return 2
    return 0


cdef int supernodal_inverse(const double* U, double* S, int n, int keep,
                            const Supernodal* s) noexcept nogil:
    """S (n, n) <- C^-1 on the factor's pattern (both triangles), rows 0..keep only:
    with keep < n (the last rows a profiled flat level's, a supernode of their own)
    the inverse of C's leading keep x keep block. Other entries are not touched.
    0, 1 if U is singular, 2 if interrupted."""
    cdef idx J, k, i, j, a, b, j0
    cdef int w, r, info = 0
    cdef const idx* R
    cdef double one = 1.0, minus = -1.0, zero = 0.0, done = 0.0
    cdef char up = b'U', nt = b'N', tr = b'T', left = b'L', right = b'R'
    cdef double* Y = s.panel
    cdef double* T = s.other
    cdef double* G = s.square
    cdef double* Sd
    for J in range(s.ns - 1, -1, -1):
        j0 = s.start[J]
        if j0 >= keep:
            continue
        w = <int> (s.start[J + 1] - j0)
        R = &s.r_idx[s.r_ptr[J]]
        r = 0
        while r < s.r_ptr[J + 1] - s.r_ptr[J] and R[r] < keep:
            r += 1
        Sd = &S[j0 + j0 * n]                     # S_JJ = (U_JJ'U_JJ)^-1 (upper), in place
        for j in range(w):
            for i in range(j + 1):
                Sd[i + j * n] = U[j0 + i + (j0 + j) * n]
        info = dense_inverse(Sd, w, n)           # blocked: Ctrl-C acts inside
        if info:
            return info
        if r:
            for k in range(r):
                for i in range(w):
                    Y[k * w + i] = U[R[k] * n + j0 + i]
            dtrsm(&left, &up, &nt, &nt, &w, &r, &one, &U[j0 + j0 * n], &n, Y, &w)
            for b in range(r):
                for a in range(b + 1):
                    G[a + b * r] = S[R[a] + R[b] * n]
            dsymm(&right, &up, &w, &r, &minus, G, &r, Y, &w, &zero, T, &w)
            # S_JJ -= T Y' (both triangles; the upper one is mirrored below)
            dgemm(&nt, &tr, &w, &w, &r, &minus, T, &w, Y, &w, &one, Sd, &n)
            for k in range(r):
                for i in range(w):
                    S[R[k] * n + j0 + i] = T[k * w + i]
                    S[R[k] + (j0 + i) * n] = T[k * w + i]
        for j in range(w):
            for i in range(j):
                Sd[j + i * n] = Sd[i + j * n]
        done += (<double> w) * w * w + 2.0 * w * r * (w + r)
        if done > CHECK_FLOPS:
            done = 0.0
            if interrupted():
                return 2
    return 0
