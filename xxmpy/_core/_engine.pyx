# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled likelihood kernel: assemble, factor and invert C on flat buffers.

Invariants (read before touching):
  * all float arrays float64 C order, all index arrays intp; layouts and the
    block-target convention (off, ld, tr) are those of lowering.py;
  * the kernel sees only numpy arrays; nothing here knows about levels;
  * factor: on return the block buffer holds, in place, each eliminated unit's
    inverse Cholesky factor L_ii^-1 (lower), the w = L_ii^-1 C_ij blocks and
    the dense remainder's Cholesky factor (row-major lower triangle; the upper
    one is left as it was); the rhs buffer holds z = L^-1 b;
  * posterior: fills a second pair of buffers with the selected blocks of
    C^-1 and the mean C^-1 b (Takahashi recurrences, as in elimination.py).
Twin: xxmpy._core.elimination (numpy), compared in tests/test_engine.py.
"""
import numpy as np
from libc.math cimport log, sqrt
from scipy.linalg.cython_blas cimport dtrsv
from scipy.linalg.cython_lapack cimport dpotrf, dpotri

ctypedef Py_ssize_t idx


cdef inline void add_block(double* buf, idx off, idx ld, idx tr,
                           const double* X, idx r, idx c, double alpha) noexcept nogil:
    """buf <- buf + alpha X at a block target."""
    cdef idx i, j
    if tr == 0:
        for i in range(r):
            for j in range(c):
                buf[off + i * ld + j] += alpha * X[i * c + j]
    else:
        for i in range(r):
            for j in range(c):
                buf[off + j * ld + i] += alpha * X[i * c + j]


cdef inline void get_block(const double* buf, idx off, idx ld, idx tr,
                           double* X, idx r, idx c) noexcept nogil:
    """X (r, c) <- the block at a target."""
    cdef idx i, j
    if tr == 0:
        for i in range(r):
            for j in range(c):
                X[i * c + j] = buf[off + i * ld + j]
    else:
        for i in range(r):
            for j in range(c):
                X[i * c + j] = buf[off + j * ld + i]


cdef inline void add_sigma_wt(double* acc, const double* S, idx s_ld, idx tr, const double* w,
                              idx rows, idx inner, idx m) noexcept nogil:
    """acc (rows, m) += op(S) w', op(S) (rows, inner) = S or S' (tr), w (m, inner)."""
    cdef idx i, j, k
    cdef double a
    for i in range(rows):
        for j in range(m):
            a = 0.0
            for k in range(inner):
                a += (S[k * s_ld + i] if tr else S[i * s_ld + k]) * w[j * inner + k]
            acc[i * m + j] += a


cdef inline int chol_inverse(double* a, idx m, double* L, double* logdet) noexcept nogil:
    """Replace the SPD block a (m, m) by its inverse lower Cholesky factor; 1 if not PD."""
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
    for i in range(m * m):
        a[i] = 0.0
    for j in range(m):
        a[j * m + j] = 1.0 / L[j * m + j]
        for i in range(j + 1, m):
            s = 0.0
            for k in range(j, i):
                s -= L[i * m + k] * a[k * m + j]
            a[i * m + j] = s / L[i * m + i]
    return 0


cdef idx _a_step(idx n_a, idx n) except -1:
    """1 if A holds one block per unit, 0 if one block is shared by all units."""
    if n_a == n:
        return 1
    if n_a == 1:
        return 0
    raise ValueError(f"A has {n_a} blocks for {n} units; expected {n} or 1")


def accumulate(const double[:, :, ::1] A, const double[:, ::1] d, const double[:, :, ::1] W,
               const idx[::1] pat, const double[::1] wt, const idx[::1] seg, const idx[::1] pair_i,
               const idx[::1] pair_j, const idx[:, ::1] off, const idx[:, ::1] ld,
               const idx[:, ::1] tr, const idx[:, ::1] vec,
               double[::1] buf, double[::1] rhs):
    """Add sum_n A_n' W A_n, A_n' W d_n into C and b; return sum_n d_n' W d_n.

    A (n, r, M) or (1, r, M) shared by all units, d (n, r), W (n_pat, r, r)
    with unit n using wt[n] W[pat[n]];
    the scope slots of M are seg (S+1,), its pairs pair_i <= pair_j (P,).
    """
    cdef idx n = d.shape[0], r = A.shape[1], M = A.shape[2]
    cdef idx P = pair_i.shape[0], S = seg.shape[0] - 1
    cdef idx a_step = _a_step(A.shape[0], n)
    work = np.zeros(r * M + r + M * M + M)
    cdef double[::1] wk = work
    cdef double* WA = &wk[0]
    cdef double* Wd = WA + r * M
    cdef double* G = Wd + r
    cdef double* h = G + M * M
    cdef idx u, ua, i, j, k, p, q, s, a0, a1, b0, b1
    cdef double acc, w, const = 0.0
    with nogil:
        for u in range(n):
            q, w, ua = pat[u], wt[u], u * a_step
            for i in range(r):
                acc = 0.0
                for k in range(r):
                    acc += W[q, i, k] * d[u, k]
                Wd[i] = w * acc
                const += d[u, i] * w * acc
                for j in range(M):
                    acc = 0.0
                    for k in range(r):
                        acc += W[q, i, k] * A[ua, k, j]
                    WA[i * M + j] = w * acc
            for j in range(M):
                acc = 0.0
                for k in range(r):
                    acc += A[ua, k, j] * Wd[k]
                h[j] = acc
            for p in range(P):
                a0, a1 = seg[pair_i[p]], seg[pair_i[p] + 1]
                b0, b1 = seg[pair_j[p]], seg[pair_j[p] + 1]
                for i in range(a0, a1):
                    for j in range(b0, b1):
                        acc = 0.0
                        for k in range(r):
                            acc += A[ua, k, i] * WA[k * M + j]
                        G[(i - a0) * (b1 - b0) + j - b0] = acc
                add_block(&buf[0], off[u, p], ld[u, p], tr[u, p], G,
                          a1 - a0, b1 - b0, 1.0)
            for s in range(S):
                for i in range(seg[s], seg[s + 1]):
                    rhs[vec[u, s] + i - seg[s]] += h[i]
    return const


def eliminate_step(double[::1] buf, double[::1] rhs, idx m, const idx[::1] diag,
                   const idx[::1] rhs_off, const idx[::1] e_row, const idx[::1] e_off,
                   const idx[::1] e_mb, const idx[::1] e_nb, const idx[::1] p_e1,
                   const idx[::1] p_e2, const idx[::1] p_off, const idx[::1] p_ld,
                   const idx[::1] p_tr, idx max_block):
    """Eliminate one sparse level's units in place; return (log det, z'z) of the step."""
    cdef idx n = diag.shape[0], E = e_row.shape[0], P = p_e1.shape[0]
    work = np.zeros(3 * max_block * max_block + max_block)
    cdef double[::1] wk = work
    cdef double* L = &wk[0]
    cdef double* T = L + max_block * max_block
    cdef double* X = T + max_block * max_block
    cdef double* z = X + max_block * max_block
    cdef double* B = &buf[0]
    cdef double* R = &rhs[0]
    cdef idx u, e, p, i, j, k, mb, mb2, e1, e2
    cdef double acc, logdet = 0.0, zz = 0.0
    cdef int bad = 0, scalar = 1
    for e in range(E):
        if e_mb[e] != 1:
            scalar = 0
    with nogil:
        for u in range(n):
            if chol_inverse(B + diag[u], m, L, &logdet):
                bad = 1
                break
            for i in range(m):
                acc = 0.0
                for k in range(i + 1):
                    acc += B[diag[u] + i * m + k] * R[rhs_off[u] + k]
                z[i] = acc
            for i in range(m):
                R[rhs_off[u] + i] = z[i]
                zz += z[i] * z[i]
        if not bad:
            for e in range(E):
                u, mb = e_row[e], e_mb[e]
                for i in range(m):
                    for j in range(mb):
                        acc = 0.0
                        for k in range(i + 1):
                            acc += B[diag[u] + i * m + k] * B[e_off[e] + k * mb + j]
                        T[i * mb + j] = acc
                for i in range(m * mb):
                    B[e_off[e] + i] = T[i]
                for j in range(mb):
                    acc = 0.0
                    for i in range(m):
                        acc += T[i * mb + j] * R[rhs_off[u] + i]
                    R[e_nb[e] + j] -= acc
            if m == 1 and scalar:       # scalar random effects: 1 x 1 blocks throughout
                for p in range(P):
                    B[p_off[p]] -= B[e_off[p_e1[p]]] * B[e_off[p_e2[p]]]
                P = 0
            for p in range(P):
                e1, e2 = p_e1[p], p_e2[p]
                mb, mb2 = e_mb[e1], e_mb[e2]
                for i in range(mb):
                    for j in range(mb2):
                        acc = 0.0
                        for k in range(m):
                            acc += B[e_off[e1] + k * mb + i] * B[e_off[e2] + k * mb2 + j]
                        X[i * mb2 + j] = acc
                add_block(B, p_off[p], p_ld[p], p_tr[p], X, mb, mb2, -1.0)
    if bad:
        raise ArithmeticError("posterior precision is not positive definite")
    return logdet, zz


def factor_dense(double[::1] buf, double[::1] rhs, idx base, idx rbase, int n):
    """Cholesky of the dense remainder in place; z = L^-1 b in place; (log det, z'z)."""
    cdef int info = 0, one = 1
    cdef char up = b'U', tr = b'T', nd = b'N'
    cdef idx i
    cdef double logdet = 0.0, zz = 0.0
    with nogil:
        dpotrf(&up, &n, &buf[base], &n, &info)
        if info == 0:
            for i in range(n):
                logdet += 2.0 * log(buf[base + i * n + i])
            dtrsv(&up, &tr, &nd, &n, &buf[base], &n, &rhs[rbase], &one)
            for i in range(n):
                zz += rhs[rbase + i] * rhs[rbase + i]
    if info != 0:
        raise ArithmeticError("dense remainder of the posterior precision is not positive definite")
    return logdet, zz


def posterior_dense(const double[::1] fac, const double[::1] z, double[::1] sig,
                    double[::1] mean, idx base, idx rbase, int n):
    """Dense remainder: mean = L^-T z and its full covariance block (both triangles)."""
    cdef int info = 0, one = 1
    cdef char up = b'U', nd = b'N'
    cdef idx i, j
    with nogil:
        for i in range(n):
            mean[rbase + i] = z[rbase + i]
            for j in range(i + 1):
                sig[base + i * n + j] = fac[base + i * n + j]
        dtrsv(&up, &nd, &nd, &n, <double*>&fac[base], &n, &mean[rbase], &one)
        dpotri(&up, &n, &sig[base], &n, &info)
        for i in range(n):
            for j in range(i):
                sig[base + j * n + i] = sig[base + i * n + j]
    if info != 0:
        raise ArithmeticError("dense remainder could not be inverted")


def posterior_step(const double[::1] fac, const double[::1] z, double[::1] sig,
                   double[::1] mean, idx m, const idx[::1] diag, const idx[::1] rhs_off,
                   const idx[::1] e_row, const idx[::1] e_off, const idx[::1] e_mb,
                   const idx[::1] e_nb, const idx[::1] p_e1, const idx[::1] p_e2,
                   const idx[::1] p_off, const idx[::1] p_ld, const idx[::1] p_tr,
                   idx max_block):
    """Back substitution and selected inversion for one sparse level (later levels done)."""
    cdef idx n = diag.shape[0], E = e_row.shape[0], P = p_e1.shape[0]
    acc_arr = np.zeros(max(E, 1) * m * max_block)
    work = np.zeros(3 * max_block * max_block + max_block)
    cdef double[::1] Acc = acc_arr
    cdef double[::1] wk = work
    cdef double* S = &wk[0]
    cdef double* T = S + max_block * max_block
    cdef double* D = T + max_block * max_block
    cdef double* t = D + max_block * max_block
    cdef const double* F = &fac[0]
    cdef double* Sg = &sig[0]
    cdef double* Mn = &mean[0]
    cdef idx u, e, p, i, j, k, mb, mb2, e1, e2, stride = m * max_block
    cdef double a
    cdef int scalar = 1
    for e in range(E):
        if e_mb[e] != 1:
            scalar = 0
    with nogil:
        for u in range(n):
            for i in range(m):
                Mn[rhs_off[u] + i] = z[rhs_off[u] + i]
        for e in range(E):
            u, mb = e_row[e], e_mb[e]
            for i in range(m):
                a = 0.0
                for j in range(mb):
                    a += F[e_off[e] + i * mb + j] * Mn[e_nb[e] + j]
                Mn[rhs_off[u] + i] -= a
        for u in range(n):
            for i in range(m):
                a = 0.0
                for k in range(i, m):
                    a += F[diag[u] + k * m + i] * Mn[rhs_off[u] + k]
                t[i] = a
            for i in range(m):
                Mn[rhs_off[u] + i] = t[i]
        # Acc[e] (mb, m) = sum over pairs of Sigma_JJ w'
        if m == 1 and scalar:
            for p in range(P):
                e1, e2 = p_e1[p], p_e2[p]
                a = Sg[p_off[p]]
                Acc[e1 * stride] += a * F[e_off[e2]]
                if e1 != e2:
                    Acc[e2 * stride] += a * F[e_off[e1]]
            P = 0
        for p in range(P):
            e1, e2 = p_e1[p], p_e2[p]
            mb, mb2 = e_mb[e1], e_mb[e2]
            get_block(Sg, p_off[p], p_ld[p], p_tr[p], S, mb, mb2)
            add_sigma_wt(&Acc[e1 * stride], S, mb2, 0, F + e_off[e2], mb, mb2, m)
            if e1 != e2:
                add_sigma_wt(&Acc[e2 * stride], S, mb2, 1, F + e_off[e1], mb2, mb, m)
        for u in range(n):
            for i in range(m):
                for j in range(m):
                    a = 0.0
                    for k in range(max(i, j), m):
                        a += F[diag[u] + k * m + i] * F[diag[u] + k * m + j]
                    Sg[diag[u] + i * m + j] = a
        for e in range(E):
            u, mb = e_row[e], e_mb[e]
            # Sigma_ij (m, mb) = -(Acc[e] inv_u)'
            for i in range(m):
                for j in range(mb):
                    a = 0.0
                    for k in range(i, m):
                        a += Acc[e * stride + j * m + k] * F[diag[u] + k * m + i]
                    Sg[e_off[e] + i * mb + j] = -a
            # T (mb, m) = w' inv_u
            for i in range(mb):
                for j in range(m):
                    a = 0.0
                    for k in range(j, m):
                        a += F[e_off[e] + k * mb + i] * F[diag[u] + k * m + j]
                    T[i * m + j] = a
            for i in range(m):
                for j in range(m):
                    a = 0.0
                    for k in range(mb):
                        a += Sg[e_off[e] + i * mb + k] * T[k * m + j]
                    Sg[diag[u] + i * m + j] -= a
        for u in range(n):
            for i in range(m):
                for j in range(i):
                    a = 0.5 * (Sg[diag[u] + i * m + j] + Sg[diag[u] + j * m + i])
                    Sg[diag[u] + i * m + j] = a
                    Sg[diag[u] + j * m + i] = a


def term_gradient(const double[:, :, ::1] A, const double[:, ::1] d, const double[:, :, ::1] W,
                  const idx[::1] pat, const double[::1] wt, const idx[::1] seg, const idx[::1] pair_i,
                  const idx[::1] pair_j, const idx[:, ::1] off, const idx[:, ::1] ld,
                  const idx[:, ::1] tr, const idx[:, ::1] vec,
                  const double[::1] sig, const double[::1] mean):
    """Posterior moments of one factor family: (gA (r, M), gd (n, r), wrw (r, r)).

    With mu, S the posterior mean and covariance of unit n's scope, e = d - A mu:
    gA = -2 sum W (e mu' - A S), gd = 2 W e, wrw = sum W (e e' + A S A') W / wt
    with W = wt W_pat (wrw is the derivative by W_pat^-1, not by W^-1).
    A (n, r, M) or (1, r, M) shared by all units.
    """
    cdef idx n = d.shape[0], r = A.shape[1], M = A.shape[2]
    cdef idx a_step = _a_step(A.shape[0], n)
    cdef idx P = pair_i.shape[0], S_ = seg.shape[0] - 1
    gA_arr = np.zeros((r, M))
    gd_arr = np.zeros((n, r))
    wrw_arr = np.zeros((r, r))
    work = np.zeros(M + M * M + r + 2 * r * M + M * M + r)
    cdef double[:, ::1] gA = gA_arr
    cdef double[:, ::1] gd = gd_arr
    cdef double[:, ::1] wrw = wrw_arr
    cdef double[::1] wk = work
    cdef double* mu = &wk[0]
    cdef double* S = mu + M
    cdef double* We = S + M * M
    cdef double* WA = We + r
    cdef double* WAS = WA + r * M
    cdef double* blk = WAS + r * M
    cdef double* e = blk + M * M
    cdef idx u, ua, i, j, k, p, s, a0, a1, b0, b1, q
    cdef double acc
    with nogil:
        for u in range(n):
            q, ua = pat[u], u * a_step
            for s in range(S_):
                for i in range(seg[s], seg[s + 1]):
                    mu[i] = mean[vec[u, s] + i - seg[s]]
            for p in range(P):
                a0, a1 = seg[pair_i[p]], seg[pair_i[p] + 1]
                b0, b1 = seg[pair_j[p]], seg[pair_j[p] + 1]
                get_block(&sig[0], off[u, p], ld[u, p], tr[u, p], blk, a1 - a0, b1 - b0)
                for i in range(a0, a1):
                    for j in range(b0, b1):
                        S[i * M + j] = blk[(i - a0) * (b1 - b0) + j - b0]
                        S[j * M + i] = blk[(i - a0) * (b1 - b0) + j - b0]
            for i in range(r):
                acc = d[u, i]
                for k in range(M):
                    acc -= A[ua, i, k] * mu[k]
                e[i] = acc
            for i in range(r):
                acc = 0.0
                for k in range(r):
                    acc += W[q, i, k] * e[k]
                We[i] = wt[u] * acc
                gd[u, i] = 2.0 * wt[u] * acc
                for j in range(M):
                    acc = 0.0
                    for k in range(r):
                        acc += W[q, i, k] * A[ua, k, j]
                    WA[i * M + j] = wt[u] * acc
            for i in range(r):
                for j in range(M):
                    acc = 0.0
                    for k in range(M):
                        acc += WA[i * M + k] * S[k * M + j]
                    WAS[i * M + j] = acc
                    gA[i, j] += -2.0 * (We[i] * mu[j] - acc)
            for i in range(r):          # d/d(W_pat^-1): one factor wt[u] fewer
                for j in range(r):
                    acc = We[i] * We[j]
                    for k in range(M):
                        acc += WAS[i * M + k] * WA[j * M + k]
                    wrw[i, j] += acc / wt[u]
    return gA_arr, gd_arr, wrw_arr
