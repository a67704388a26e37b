# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled likelihood kernel: assemble, factor and invert C on flat buffers.

Invariants (read before touching):
  * all float arrays float64 C order, all index arrays intp; layouts and the
    block-target convention (off, ld, tr) are those of compile/lowering.py;
  * the kernel sees only numpy arrays; nothing here knows about levels;
  * factor: on return the block buffer holds, in place, each eliminated unit's
    inverse Cholesky factor L_ii^-1 (lower), the w = L_ii^-1 C_ij blocks and
    the dense remainder's Cholesky factor (row-major lower triangle; the upper
    one is left as it was); the rhs buffer holds z = L^-1 b;
  * posterior: fills a second pair of buffers with the selected blocks of
    C^-1 and the mean C^-1 b (Takahashi recurrences, as in reference/elimination.py).
Each routine is a C function on raw pointers, declared in _elimination.pxd and
called by the per-evaluation driver (_program.pyx) only. Twin: the numpy
reference (engine/reference/assembly.py and elimination.py), compared in
tests/twin_check.py.
"""
from cpython.exc cimport PyErr_CheckSignals
from libc.math cimport log
from scipy.linalg.cython_blas cimport dgemm, dsyrk, dtrmm, dtrsm, dtrsv
from scipy.linalg.cython_lapack cimport dlauum, dpotrf, dtrtri

cdef enum:
    DENSE_BLOCK = 256          # rows per block of the dense Cholesky (Ctrl-C looked for between)
    UNITS_PER_CHECK = 65536    # eliminated units between looks for a pending Ctrl-C

from ._linalg cimport cholesky, matmul, triangular_inverse



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


cdef inline idx dense_target(idx ra, idx rb, idx base, idx nd, idx* tr) noexcept nogil:
    """Offset of the dense remainder's block at rows ra, columns rb (its lower triangle is
    kept: a block above the diagonal is stored transposed at its mirror, tr = 1)."""
    if ra >= rb:
        tr[0] = 0
        return base + ra * nd + rb
    tr[0] = 1
    return base + rb * nd + ra


cdef inline int chol_inverse(double* a, idx m, double* L, double* logdet) noexcept nogil:
    """Replace the SPD block a (m, m) by its inverse lower Cholesky factor; 1 if not PD."""
    if cholesky(a, m, L, logdet):
        return 1
    triangular_inverse(L, m, a)
    return 0


# ------------------------------------------------------------------ repeated units
# Units whose blocks are bit for bit those of the unit before them (balanced designs:
# clusters of one size and missing pattern) reuse its factor and its posterior blocks
# instead of recomputing them: the same inputs give the same outputs, so the result is
# unchanged to the last bit, and a balanced level costs one factorisation.

cdef inline bint same_lower(const double* a, const double* b, idx m) noexcept nogil:
    """The lower triangles of the (m, m) blocks a and b are equal."""
    cdef idx i, j
    for i in range(m):
        for j in range(i + 1):
            if a[i * m + j] != b[i * m + j]:
                return False
    return True


cdef inline bint same(const double* a, const double* b, idx size) noexcept nogil:
    cdef idx i
    for i in range(size):
        if a[i] != b[i]:
            return False
    return True


cdef inline void copy(const double* src, double* dst, idx size) noexcept nogil:
    cdef idx i
    for i in range(size):
        dst[i] = src[i]


cdef inline void edge_posterior(const double* F, double* Sg, idx d, idx eo, idx m, idx mb,
                                const double* Acc, double* T) noexcept nogil:
    """One edge of the selected inverse: Sigma_ij (m, mb) = -(Acc inv_u)' into Sg[eo],
    then Sg[d] (m, m) -= Sigma_ij w' inv_u. F holds inv_u at d and w at eo; Acc (mb, m)
    the sum of Sigma_JJ w' over the unit's parent blocks; T: mb m doubles."""
    cdef idx i, j, k
    cdef double a
    for i in range(m):
        for j in range(mb):
            a = 0.0
            for k in range(i, m):
                a += Acc[j * m + k] * F[d + k * m + i]
            Sg[eo + i * mb + j] = -a
    for i in range(mb):                 # T (mb, m) = w' inv_u
        for j in range(m):
            a = 0.0
            for k in range(j, m):
                a += F[eo + k * mb + i] * F[d + k * m + j]
            T[i * m + j] = a
    for i in range(m):
        for j in range(m):
            a = 0.0
            for k in range(mb):
                a += Sg[eo + i * mb + k] * T[k * m + j]
            Sg[d + i * m + j] -= a


cdef inline void inverse_from_factor(const double* Li, double* Sg, idx m) noexcept nogil:
    """Sg (m, m) = Li' Li: a unit's block of C^-1 from its inverse Cholesky factor Li
    (lower)."""
    cdef idx i, j, k
    cdef double a
    for i in range(m):
        for j in range(m):
            a = 0.0
            for k in range(max(i, j), m):
                a += Li[k * m + i] * Li[k * m + j]
            Sg[i * m + j] = a


cdef inline void symmetrize(double* X, idx m) noexcept nogil:
    """X (m, m) <- (X + X') / 2."""
    cdef idx i, j
    cdef double a
    for i in range(m):
        for j in range(i):
            a = 0.5 * (X[i * m + j] + X[j * m + i])
            X[i * m + j] = a
            X[j * m + i] = a


# ------------------------------------------------------------------ C routines
cdef double accumulate_c(const double* A, idx a_step, idx n, idx r, idx M, const double* d,
                         const double* W, const idx* pat, const double* wt, const idx* seg,
                         idx S, const idx* pair_i, const idx* pair_j, idx P,
                         const unsigned char* shared, const idx* off, const idx* ld,
                         const idx* tr, const idx* vec, double* buf, double* rhs,
                         double* work) noexcept nogil:
    """Add sum_n A_n' W_n A_n, A_n' W_n d_n into C and b; return sum_n d_n' W_n d_n.

    A (n, r, M), or (1, r, M) shared (a_step 0); W_n = wt[n] W[pat[n]], W (n_pat, r, r);
    shared: NULL, or (P,) pairs left out (a constant design's, added by add_moments_c).
    work: r M + r + M M + M doubles.
    """
    cdef double* WA = work
    cdef double* Wd = WA + r * M
    cdef double* G = Wd + r
    cdef double* h = G + M * M
    cdef const double* Au
    cdef const double* Wq
    cdef idx u, i, j, k, p, s, a0, a1, b0, b1
    cdef double acc, w, const = 0.0
    for u in range(n):
        Wq, w, Au = W + pat[u] * r * r, wt[u], A + u * a_step * r * M
        weigh_unit(Wq, w, d + u * r, Au, r, M, Wd, WA)
        for i in range(r):
            const += d[u * r + i] * Wd[i]
        for j in range(M):
            acc = 0.0
            for k in range(r):
                acc += Au[k * M + j] * Wd[k]
            h[j] = acc
        for p in range(P):
            if shared != NULL and shared[p]:
                continue
            a0, a1 = seg[pair_i[p]], seg[pair_i[p] + 1]
            b0, b1 = seg[pair_j[p]], seg[pair_j[p] + 1]
            for i in range(a0, a1):
                for j in range(b0, b1):
                    acc = 0.0
                    for k in range(r):
                        acc += Au[k * M + i] * WA[k * M + j]
                    G[(i - a0) * (b1 - b0) + j - b0] = acc
            add_block(buf, off[u * P + p], ld[u * P + p], tr[u * P + p], G,
                      a1 - a0, b1 - b0, 1.0)
        for s in range(S):
            for i in range(seg[s], seg[s + 1]):
                rhs[vec[u * S + s] + i - seg[s]] += h[i]
    return const


cdef double accumulate_shared_c(const double* A, idx n, idx r, idx M, const double* d,
                                const double* W, const idx* order, const idx* starts, idx K,
                                const double* wt, const idx* seg, idx S, const idx* pair_i,
                                const idx* pair_j, idx P, const idx* off, const idx* ld,
                                const idx* tr, const idx* vec, double* buf, double* rhs,
                                double* work) noexcept nogil:
    """accumulate_c for a design A (r, M) shared by every unit, units taken pattern by
    pattern (order, starts: the units of pattern k are order[starts[k]:starts[k + 1]]):
    A' W_k A is formed once per pattern and each unit adds wt[u] times its pair blocks.
    work: 2 r M + M M + r + M doubles."""
    cdef double* AW = work
    cdef double* G = AW + r * M
    cdef double* Wd = G + M * M
    cdef double* h = Wd + r
    cdef const double* Wq
    cdef idx q, t, u, i, j, k, p, s, a0, a1, b0, b1, size
    cdef double acc, w, const = 0.0
    for q in range(K):
        if starts[q] == starts[q + 1]:
            continue
        Wq = W + q * r * r
        matmul(A, Wq, AW, M, r, r, 1, 0, 0)            # A' W_k (M, r)
        size = 0                                       # each pair's block of A' W_k A
        for p in range(P):
            a0, a1 = seg[pair_i[p]], seg[pair_i[p] + 1]
            b0, b1 = seg[pair_j[p]], seg[pair_j[p] + 1]
            for i in range(a0, a1):
                for j in range(b0, b1):
                    acc = 0.0
                    for k in range(r):
                        acc += AW[i * r + k] * A[k * M + j]
                    G[size] = acc
                    size = size + 1
        for t in range(starts[q], starts[q + 1]):
            u, w = order[t], wt[order[t]]
            for i in range(r):
                acc = 0.0
                for k in range(r):
                    acc += Wq[i * r + k] * d[u * r + k]
                Wd[i] = w * acc
                const += d[u * r + i] * Wd[i]
            for j in range(M):
                acc = 0.0
                for k in range(r):
                    acc += A[k * M + j] * Wd[k]
                h[j] = acc
            size = 0
            for p in range(P):
                a0, a1 = seg[pair_i[p]], seg[pair_i[p] + 1]
                b0, b1 = seg[pair_j[p]], seg[pair_j[p] + 1]
                add_block(buf, off[u * P + p], ld[u * P + p], tr[u * P + p], G + size,
                          a1 - a0, b1 - b0, w)
                size = size + (a1 - a0) * (b1 - b0)
            for s in range(S):
                for i in range(seg[s], seg[s + 1]):
                    rhs[vec[u * S + s] + i - seg[s]] += h[i]
    return const


cdef int eliminate_c(double* B, double* R, idx m, idx n, const idx* diag, const idx* rhs_off,
                     idx E, const idx* e_row, const idx* e_off, const idx* e_mb,
                     const idx* e_nb, idx P, const idx* p_e1, const idx* p_e2,
                     const idx* p_off, const idx* p_ld, const idx* p_tr,
                     const DenseFill* fill, double* work, double* logdet,
                     double* zz) noexcept nogil:
    """Eliminate one sparse level's units in place, adding the step's log det and
    z'z; 1 if a diagonal block is not positive definite, 2 if interrupted (Ctrl-C). A
    unit whose diagonal block equals the previous unit's reuses its factor. The fill
    w1'w2 goes to the pairs' targets (p_*), or, with ``fill`` (every neighbour in the
    dense remainder), to the dense blocks of all pairs of each unit's entries. work:
    3 mb^2 + mb + m^2 doubles (mb the largest block)."""
    cdef idx mb_max = m
    cdef idx u, e, p, i, j, k, mb, mb2, e1, e2
    cdef double acc
    cdef int scalar = 1
    for e in range(E):
        if e_mb[e] != 1:
            scalar = 0
        if e_mb[e] > mb_max:
            mb_max = e_mb[e]
    cdef double* L = work
    cdef double* T = L + mb_max * mb_max
    cdef double* X = T + mb_max * mb_max
    cdef double* z = X + mb_max * mb_max
    cdef double* raw_d = z + mb_max
    cdef double ld_unit = 0.0
    for u in range(n):
        if u > 0 and same_lower(B + diag[u], raw_d, m):     # as the unit before
            copy(B + diag[u - 1], B + diag[u], m * m)
        else:
            copy(B + diag[u], raw_d, m * m)
            ld_unit = 0.0
            if chol_inverse(B + diag[u], m, L, &ld_unit):
                return 1
        logdet[0] += ld_unit
        if (u + 1) % UNITS_PER_CHECK == 0 and interrupted():
            return 2
        for i in range(m):
            acc = 0.0
            for k in range(i + 1):
                acc += B[diag[u] + i * m + k] * R[rhs_off[u] + k]
            z[i] = acc
        for i in range(m):
            R[rhs_off[u] + i] = z[i]
            zz[0] += z[i] * z[i]
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
    scalar = scalar and m == 1      # scalar random effects: 1 x 1 blocks throughout
    if fill != NULL:
        _dense_fill(B, n, e_off, e_mb, fill, m, scalar, X)
        return 0
    for p in range(P):
        fill_pair(B, e_off, e_mb, p_e1[p], p_e2[p], m, p_off[p], p_ld[p], p_tr[p], scalar,
                  X)
    return 0


cdef inline void fill_pair(double* B, const idx* e_off, const idx* e_mb, idx a, idx b, idx m,
                           idx off, idx ld, idx tr, bint scalar, double* X) noexcept nogil:
    """The fill of one pair of a unit's entries: B at (off, ld, tr) -= w_a' w_b (scalar:
    1 x 1 blocks)."""
    cdef idx i, j, k, mb, mb2
    cdef double acc
    if scalar:
        B[off] -= B[e_off[a]] * B[e_off[b]]
        return
    mb, mb2 = e_mb[a], e_mb[b]
    for i in range(mb):
        for j in range(mb2):
            acc = 0.0
            for k in range(m):
                acc += B[e_off[a] + k * mb + i] * B[e_off[b] + k * mb2 + j]
            X[i * mb2 + j] = acc
    add_block(B, off, ld, tr, X, mb, mb2, -1.0)


cdef void _dense_fill(double* B, idx n, const idx* e_off, const idx* e_mb,
                      const DenseFill* fill, idx m, bint scalar, double* X) noexcept nogil:
    """fill_pair for every pair a <= b of each unit's entries, into the dense remainder
    (no per-pair arrays: the targets follow from the entries' dense rows)."""
    cdef idx u, ia, ib, a, b, off, tr
    for u in range(n):
        for ia in range(fill.u_ptr[u], fill.u_ptr[u + 1]):
            a = fill.u_ent[ia]
            for ib in range(ia, fill.u_ptr[u + 1]):
                b = fill.u_ent[ib]
                off = dense_target(fill.row[a], fill.row[b], fill.base, fill.nd, &tr)
                fill_pair(B, e_off, e_mb, a, b, m, off, fill.nd, tr, scalar, X)


cdef object _pending = None       # the exception a signal handler raised in a kernel


cdef int interrupted() noexcept nogil:
    """1 when a signal handler (Ctrl-C's) raised: the exception is kept for
    take_interruption() to raise once the kernel has unwound."""
    global _pending
    with gil:
        try:
            PyErr_CheckSignals()
        except BaseException as exc:
            _pending = exc
            return 1
    return 0


cdef object take_interruption():
    """The exception kept by interrupted() (KeyboardInterrupt by default), cleared."""
    global _pending
    exc = _pending if _pending is not None else KeyboardInterrupt()
    _pending = None
    return exc


cdef int dense_cholesky(double* A, int n, int lda) noexcept nogil:
    """A (n, n) of leading dimension lda, row-major lower triangle = column-major
    upper: A = U'U in place, by block rows of DENSE_BLOCK (LAPACK's left-looking upper
    variant: syrk, potrf, gemm, trsm), looking for a pending signal between blocks so
    that Ctrl-C acts within a block's time. 0, 1 if not positive definite, 2 if
    interrupted."""
    cdef int k = 0, kb, rest, info = 0
    cdef double one = 1.0, minus = -1.0
    cdef char up = b'U', tr = b'T', nt = b'N', left = b'L'
    while k < n:
        kb = min(<int> DENSE_BLOCK, n - k)
        rest = n - k - kb
        if k:
            dsyrk(&up, &tr, &kb, &k, &minus, &A[k * lda], &lda, &one, &A[k + k * lda], &lda)
        dpotrf(&up, &kb, &A[k + k * lda], &lda, &info)
        if info != 0:
            return 1
        if rest:
            if k:
                dgemm(&tr, &nt, &kb, &rest, &k, &minus, &A[k * lda], &lda, &A[(k + kb) * lda],
                      &lda, &one, &A[k + (k + kb) * lda], &lda)
            dtrsm(&left, &up, &tr, &nt, &kb, &rest, &one, &A[k + k * lda], &lda,
                  &A[k + (k + kb) * lda], &lda)
            if interrupted():
                return 2
        k += kb
    return 0


cdef int factor_dense_c(double* buf, double* rhs, idx base, idx rbase, int n,
                        double* logdet, double* zz, bint factored) noexcept nogil:
    """Cholesky of the dense remainder in place (unless ``factored``: the supernodal
    one did it), z = L^-1 b in place; 1 if not PD, 2 if interrupted (Ctrl-C)."""
    cdef int one = 1, status
    cdef char up = b'U', tr = b'T', nd = b'N'
    cdef idx i
    if not factored:
        status = dense_cholesky(&buf[base], n, n)
        if status:
            return status
    for i in range(n):
        logdet[0] += 2.0 * log(buf[base + i * n + i])
    dtrsv(&up, &tr, &nd, &n, &buf[base], &n, &rhs[rbase], &one)
    for i in range(n):
        zz[0] += rhs[rbase + i] * rhs[rbase + i]
    return 0


cdef void mean_dense_c(const double* fac, const double* z, double* mean, idx base,
                       idx rbase, int n) noexcept nogil:
    """Dense remainder: the posterior mean L^-T z (after factor_dense_c)."""
    cdef int one = 1
    cdef char up = b'U', nd = b'N'
    cdef idx i
    for i in range(n):
        mean[rbase + i] = z[rbase + i]
    dtrsv(&up, &nd, &nd, &n, <double*>&fac[base], &n, &mean[rbase], &one)


cdef int dense_inverse(double* A, int n, int lda) noexcept nogil:
    """A (n, n) of leading dimension lda, column-major upper U of C = U'U (dense_cholesky's)
    -> the upper triangle of C^-1 = U^-1 U^-T in place, by blocks of DENSE_BLOCK
    columns (LAPACK's dpotri unrolled: dtrtri's then dlauum's blocked upper variants),
    looking for a pending signal between blocks. 0, 1 if U is singular, 2 if
    interrupted."""
    cdef int j = 0, jb, rest, info = 0
    cdef double one = 1.0, minus = -1.0
    cdef char up = b'U', tr = b'T', nt = b'N', left = b'L', right = b'R'
    while j < n:                          # W = U^-1, block column by block column
        jb = min(<int> DENSE_BLOCK, n - j)
        if j:
            dtrmm(&left, &up, &nt, &nt, &j, &jb, &one, A, &lda, &A[j * lda], &lda)
            dtrsm(&right, &up, &nt, &nt, &j, &jb, &minus, &A[j + j * lda], &lda, &A[j * lda],
                  &lda)
        dtrtri(&up, &nt, &jb, &A[j + j * lda], &lda, &info)
        if info != 0:
            return 1
        if interrupted():
            return 2
        j += jb
    j = 0
    while j < n:                          # W W', block column by block column
        jb = min(<int> DENSE_BLOCK, n - j)
        rest = n - j - jb
        if j:
            dtrmm(&right, &up, &tr, &nt, &j, &jb, &one, &A[j + j * lda], &lda, &A[j * lda],
                  &lda)
        dlauum(&up, &jb, &A[j + j * lda], &lda, &info)
        if rest:
            if j:
                dgemm(&nt, &tr, &j, &jb, &rest, &one, &A[(j + jb) * lda], &lda,
                      &A[j + (j + jb) * lda], &lda, &one, &A[j * lda], &lda)
            dsyrk(&up, &nt, &jb, &rest, &one, &A[j + (j + jb) * lda], &lda, &one,
                  &A[j + j * lda], &lda)
        if interrupted():
            return 2
        j += jb
    return 0


cdef int _inverse_block(const double* fac, double* sig, idx base, int n, int first,
                        int size) noexcept nogil:
    """sig's diagonal block of rows first..first+size (both triangles) = the inverse of
    the factor's block there, read as the Cholesky factor of a matrix of its own."""
    cdef int status
    cdef idx i, j, at = base + first * n + first
    for i in range(size):
        for j in range(i + 1):
            sig[at + i * n + j] = fac[at + i * n + j]
    status = dense_inverse(&sig[at], size, n)
    if status:
        return status
    for i in range(size):
        for j in range(i):
            sig[at + j * n + i] = sig[at + i * n + j]
    return 0


cdef int posterior_dense_c(const double* fac, double* sig, idx base, int n, int keep,
                           bint last) noexcept nogil:
    """Dense remainder: a covariance block (both triangles) into sig. Without ``last``,
    rows 0..keep: keep == n gives C^-1; keep < n (the last n - keep rows are a profiled
    flat level's) the inverse of the leading keep x keep block of C, the covariance of
    those rows given the last ones. With ``last``, rows keep..n: the inverse of their
    Schur complement, (X'V^-1X)^-1. 1 on failure, 2 if interrupted (Ctrl-C)."""
    if last:
        return _inverse_block(fac, sig, base, n, keep, n - keep) if keep < n else 0
    return _inverse_block(fac, sig, base, n, 0, keep) if keep else 0


cdef void mean_c(const double* F, const double* z, double* Mn, idx m, idx n,
                 const idx* diag, const idx* rhs_off, idx E, const idx* e_row,
                 const idx* e_off, const idx* e_mb, const idx* e_nb, double* t) noexcept nogil:
    """Back substitution for one sparse level (later levels' means done): the posterior
    means C^-1 b of its units into Mn. t: m doubles."""
    cdef idx u, e, i, j, k, mb
    cdef double a
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


cdef inline void posterior_pair(const double* F, const double* Sg, const idx* e_off,
                                const idx* e_mb, idx e1, idx e2, idx m, idx off, idx ld,
                                idx tr, bint scalar, double* S, double* Acc,
                                idx stride) noexcept nogil:
    """One pair's share of the selected inversion (the adjoint of fill_pair): with S
    the pair's block of Sigma at (off, ld, tr), Acc[e1] += S w2' and, off the
    diagonal, Acc[e2] += S' w1' (scalar: 1 x 1 blocks)."""
    cdef double a
    cdef idx mb, mb2
    if scalar:
        a = Sg[off]
        Acc[e1 * stride] += a * F[e_off[e2]]
        if e1 != e2:
            Acc[e2 * stride] += a * F[e_off[e1]]
        return
    mb, mb2 = e_mb[e1], e_mb[e2]
    get_block(Sg, off, ld, tr, S, mb, mb2)
    matmul(S, F + e_off[e2], &Acc[e1 * stride], mb, mb2, m, 0, 1, 1)     # += S w2'
    if e1 != e2:
        matmul(S, F + e_off[e1], &Acc[e2 * stride], mb2, mb, m, 1, 1, 1)     # += S' w1'


cdef void posterior_c(const double* F, double* Sg, idx m, idx n,
                      const idx* diag, idx E, const idx* e_row,
                      const idx* e_off, const idx* e_mb, idx P,
                      const idx* p_e1, const idx* p_e2, const idx* p_off, const idx* p_ld,
                      const idx* p_tr, const DenseFill* fill, idx max_block, double* work,
                      double* Acc) noexcept nogil:
    """Selected inversion for one sparse level (later levels done): the blocks of C^-1
    on the factor's pattern into Sg (the pairs as in eliminate_c). work: 3 max_block^2
    + max_block doubles; Acc: max(E, 1) m max_block (zeroed here)."""
    cdef double* S = work
    cdef double* T = S + max_block * max_block
    cdef double* D = T + max_block * max_block
    cdef double* t = D + max_block * max_block
    cdef idx u, e, p, i, e1, e2, ia, ib, off, tr, stride = m * max_block
    cdef int scalar = 1
    for i in range(max(E, 1) * stride):
        Acc[i] = 0.0
    for e in range(E):
        if e_mb[e] != 1:
            scalar = 0
    scalar = scalar and m == 1
    # Acc[e] (mb, m) = sum over pairs of Sigma_JJ w'
    if fill != NULL:
        for u in range(n):
            for ia in range(fill.u_ptr[u], fill.u_ptr[u + 1]):
                e1 = fill.u_ent[ia]
                for ib in range(ia, fill.u_ptr[u + 1]):
                    e2 = fill.u_ent[ib]
                    off = dense_target(fill.row[e1], fill.row[e2], fill.base, fill.nd, &tr)
                    posterior_pair(F, Sg, e_off, e_mb, e1, e2, m, off, fill.nd, tr, scalar,
                                   S, Acc, stride)
    else:
        for p in range(P):
            posterior_pair(F, Sg, e_off, e_mb, p_e1[p], p_e2[p], m, p_off[p], p_ld[p],
                           p_tr[p], scalar, S, Acc, stride)
    for u in range(n):
        if u > 0 and same(F + diag[u], F + diag[u - 1], m * m):
            copy(Sg + diag[u - 1], Sg + diag[u], m * m)
            continue
        inverse_from_factor(F + diag[u], Sg + diag[u], m)
    for e in range(E):
        edge_posterior(F, Sg, diag[e_row[e]], e_off[e], m, e_mb[e], &Acc[e * stride], T)
    for u in range(n):
        symmetrize(Sg + diag[u], m)


cdef inline void weigh_unit(const double* Wq, double w, const double* v, const double* Au,
                            idx r, idx M, double* Wv, double* WA) noexcept nogil:
    """One unit's weighted vector and design: Wv = w W v (r,), WA = w W A_u (r, M), with
    W (r, r) its missing-data pattern's weight."""
    cdef idx i, j, k
    cdef double acc
    for i in range(r):
        acc = 0.0
        for k in range(r):
            acc += Wq[i * r + k] * v[k]
        Wv[i] = w * acc
        for j in range(M):
            acc = 0.0
            for k in range(r):
                acc += Wq[i * r + k] * Au[k * M + j]
            WA[i * M + j] = w * acc


cdef inline void unit_residual(const double* Au, const double* du, idx r, idx M,
                               const idx* seg, idx S, const idx* vec_u, const double* mean,
                               double* mu, double* e) noexcept nogil:
    """One unit's residual e = d_u - A_u mu (r,), mu (M,) gathered from ``mean``: its
    scope's S segments, segment s at mean[vec_u[s]:]."""
    cdef idx i, k, s
    cdef double acc
    for s in range(S):
        for i in range(seg[s], seg[s + 1]):
            mu[i] = mean[vec_u[s] + i - seg[s]]
    for i in range(r):
        acc = du[i]
        for k in range(M):
            acc -= Au[i * M + k] * mu[k]
        e[i] = acc


cdef double residual_c(const double* A, idx a_step, idx n, idx r, idx M, const double* d,
                       const double* W, const idx* pat, const double* wt, const idx* seg,
                       idx S, const idx* vec, const double* mean, double* work) noexcept nogil:
    """sum_n wt_n e_n' W[pat_n] e_n, e_n = d_n - A_n mu_n with mu_n the posterior mean of
    unit n's scope etas: one factor family's share of the penalised residual sum of
    squares, summed directly (never as a difference of large numbers). work: M + r."""
    cdef double* mu = work
    cdef double* e = mu + M
    cdef const double* Au
    cdef const double* Wq
    cdef idx u, i, k
    cdef double acc, total = 0.0
    for u in range(n):
        Wq, Au = W + pat[u] * r * r, A + u * a_step * r * M
        unit_residual(Au, d + u * r, r, M, seg, S, vec + u * S, mean, mu, e)
        for i in range(r):
            acc = 0.0
            for k in range(r):
                acc += Wq[i * r + k] * e[k]
            total += wt[u] * e[i] * acc
    return total


cdef void term_gradient_c(const double* A, idx a_step, idx n, idx r, idx M, const double* d,
                          const double* W, const idx* pat, const double* wt, const idx* seg,
                          idx S, const idx* pair_i, const idx* pair_j, idx P, const idx* off,
                          const idx* ld, const idx* tr, const idx* vec, const double* sig,
                          const double* mean, double* gA, double* gd, double* wrw,
                          double* work) noexcept nogil:
    """Posterior moments of one factor family into gA (r, M), gd (n, r), wrw (r, r)
    (all overwritten). work: 2 M + 2 M M + 2 r + 2 r M doubles."""
    cdef double* mu = work
    cdef double* Sm = mu + M
    cdef double* We = Sm + M * M
    cdef double* WA = We + r
    cdef double* WAS = WA + r * M
    cdef double* blk = WAS + r * M
    cdef double* e = blk + M * M
    cdef const double* Au
    cdef const double* Wq
    cdef idx u, i, j, k, p, a0, a1, b0, b1
    cdef double acc, w
    for i in range(r * M):
        gA[i] = 0.0
    for i in range(r * r):
        wrw[i] = 0.0
    for u in range(n):
        Wq, w, Au = W + pat[u] * r * r, wt[u], A + u * a_step * r * M
        unit_residual(Au, d + u * r, r, M, seg, S, vec + u * S, mean, mu, e)
        for p in range(P):
            a0, a1 = seg[pair_i[p]], seg[pair_i[p] + 1]
            b0, b1 = seg[pair_j[p]], seg[pair_j[p] + 1]
            get_block(sig, off[u * P + p], ld[u * P + p], tr[u * P + p], blk, a1 - a0, b1 - b0)
            for i in range(a0, a1):
                for j in range(b0, b1):
                    Sm[i * M + j] = blk[(i - a0) * (b1 - b0) + j - b0]
                    Sm[j * M + i] = blk[(i - a0) * (b1 - b0) + j - b0]
        weigh_unit(Wq, w, e, Au, r, M, We, WA)
        for i in range(r):
            gd[u * r + i] = 2.0 * We[i]
        for i in range(r):
            for j in range(M):
                acc = 0.0
                for k in range(M):
                    acc += WA[i * M + k] * Sm[k * M + j]
                WAS[i * M + j] = acc
                gA[i * M + j] += -2.0 * (We[i] * mu[j] - acc)
        for i in range(r):          # d/d(W_pat^-1): one factor wt[u] fewer
            for j in range(r):
                acc = We[i] * We[j]
                for k in range(M):
                    acc += WAS[i * M + k] * WA[j * M + k]
                wrw[i * r + j] += acc / w


cdef void term_gradient_shared_c(const double* A, idx n, idx r, idx M, const double* d,
                                 const double* W, const idx* order, const idx* starts, idx K,
                                 const double* wt, const idx* seg, idx S, const idx* pair_i,
                                 const idx* pair_j, idx P, const idx* off, const idx* ld,
                                 const idx* tr, const idx* vec, const double* sig,
                                 const double* mean, double* gA, double* gd, double* wrw,
                                 double* work) noexcept nogil:
    """term_gradient_c for a design A (r, M) shared by every unit, units taken pattern by
    pattern (order, starts as in accumulate_shared_c). Per pattern k, with
    S_k = sum_u wt_u Sigma_u (the units' posterior covariances) and
    E_k = sum_u wt_u e_u e_u': gA += 2 W_k A S_k - 2 sum_u We_u mu_u',
    wrw += W_k (E_k + A S_k A') W_k; per unit only O(r^2 + M^2) work (S_k summed on
    the pairs' blocks and E_k on its lower triangle, both mirrored once per pattern).
    work: M + M M + 2 r + 2 r r + 2 r M doubles."""
    cdef double* mu = work
    cdef double* Ss = mu + M
    cdef double* e = Ss + M * M
    cdef double* We = e + r
    cdef double* Es = We + r
    cdef double* T = Es + r * r
    cdef double* AS = T + r * r
    cdef double* WAS = AS + r * M
    cdef const double* Wq
    cdef idx q, t, u, i, j, k, p, a0, a1, b0, b1, o, l
    cdef double acc, w
    for i in range(r * M):
        gA[i] = 0.0
    for i in range(r * r):
        wrw[i] = 0.0
    for q in range(K):
        if starts[q] == starts[q + 1]:
            continue
        Wq = W + q * r * r
        for i in range(M * M):
            Ss[i] = 0.0
        for i in range(r * r):
            Es[i] = 0.0
        for t in range(starts[q], starts[q + 1]):
            u, w = order[t], wt[order[t]]
            unit_residual(A, d + u * r, r, M, seg, S, vec + u * S, mean, mu, e)
            for p in range(P):
                a0, a1 = seg[pair_i[p]], seg[pair_i[p] + 1]
                b0, b1 = seg[pair_j[p]], seg[pair_j[p] + 1]
                o, l = off[u * P + p], ld[u * P + p]
                if tr[u * P + p] == 0:
                    for i in range(a0, a1):
                        for j in range(b0, b1):
                            Ss[i * M + j] += w * sig[o + (i - a0) * l + j - b0]
                else:
                    for i in range(a0, a1):
                        for j in range(b0, b1):
                            Ss[i * M + j] += w * sig[o + (j - b0) * l + i - a0]
            for i in range(r):
                acc = 0.0
                for k in range(r):
                    acc += Wq[i * r + k] * e[k]
                We[i] = w * acc
                gd[u * r + i] = 2.0 * We[i]
                for j in range(i + 1):
                    Es[i * r + j] += w * e[i] * e[j]
                for j in range(M):
                    gA[i * M + j] -= 2.0 * We[i] * mu[j]
        for p in range(P):          # mirror blocks (a diagonal block's lower triangle)
            a0, a1 = seg[pair_i[p]], seg[pair_i[p] + 1]
            b0, b1 = seg[pair_j[p]], seg[pair_j[p] + 1]
            for i in range(a0, a1):
                for j in range(b0, b1 if a0 != b0 else i):
                    Ss[j * M + i] = Ss[i * M + j]
        for i in range(r):
            for j in range(i):
                Es[j * r + i] = Es[i * r + j]
        matmul(A, Ss, AS, r, M, M, 0, 0, 0)             # A S_k (r, M)
        matmul(Wq, AS, WAS, r, r, M, 0, 0, 0)           # W_k A S_k
        for i in range(r * M):
            gA[i] += 2.0 * WAS[i]
        matmul(AS, A, Es, r, M, r, 0, 1, 1)             # E_k + A S_k A'
        matmul(Wq, Es, T, r, r, r, 0, 0, 0)
        matmul(T, Wq, wrw, r, r, r, 0, 0, 1)


cdef int eliminate_chain_c(double* B, double* R, idx m, idx n, const idx* diag,
                           const idx* rhs_off, const idx* e_off, const idx* e_mb,
                           const idx* e_nb, const idx* p_off, const idx* p_ld, const idx* p_tr,
                           bint stacked, double* work, double* logdet,
                           double* zz) noexcept nogil:
    """eliminate_c for a level whose unit u has exactly one parent block, edge u and pair
    (u, u) (nested designs). A unit whose diagonal and edge blocks equal the previous
    unit's reuses its inverse factor, w and update w'w. stacked: every unit updates one
    block (p_off[0], untransposed) and the w blocks lie one after another from
    e_off[0] (a flat level's fixed effects shared by every group): the updates are
    one rank-(n m) product W'W of the stacked w's (level-3 BLAS, lme4's RX'RX = X'X -
    RZX'RZX), its lower triangle mirrored. 1 if a diagonal block is not positive
    definite, 2 if interrupted. work: 4 mb^2 + mb doubles (mb the largest block)."""
    cdef idx mb_max = m
    cdef idx u, i, j, k, mb
    cdef double acc, ld_unit = 0.0
    for u in range(n):
        if e_mb[u] > mb_max:
            mb_max = e_mb[u]
    cdef double* L = work
    cdef double* raw_d = L + mb_max * mb_max
    cdef double* raw_e = raw_d + mb_max * mb_max
    cdef double* X = raw_e + mb_max * mb_max
    cdef double* z = X + mb_max * mb_max
    for u in range(n):
        mb = e_mb[u]
        if (u > 0 and mb == e_mb[u - 1] and same_lower(B + diag[u], raw_d, m)
                and same(B + e_off[u], raw_e, m * mb)):
            copy(B + diag[u - 1], B + diag[u], m * m)
            copy(B + e_off[u - 1], B + e_off[u], m * mb)
        else:
            copy(B + diag[u], raw_d, m * m)
            copy(B + e_off[u], raw_e, m * mb)
            ld_unit = 0.0
            if chol_inverse(B + diag[u], m, L, &ld_unit):
                return 1
            for i in range(m):              # w = L^-1 C_ij
                for j in range(mb):
                    acc = 0.0
                    for k in range(i + 1):
                        acc += B[diag[u] + i * m + k] * raw_e[k * mb + j]
                    B[e_off[u] + i * mb + j] = acc
            for i in range(mb if not stacked else 0):       # w'w
                for j in range(mb):
                    acc = 0.0
                    for k in range(m):
                        acc += B[e_off[u] + k * mb + i] * B[e_off[u] + k * mb + j]
                    X[i * mb + j] = acc
        logdet[0] += ld_unit
        if (u + 1) % UNITS_PER_CHECK == 0 and interrupted():
            return 2
        for i in range(m):                  # z = L^-1 b
            acc = 0.0
            for k in range(i + 1):
                acc += B[diag[u] + i * m + k] * R[rhs_off[u] + k]
            z[i] = acc
        for i in range(m):
            R[rhs_off[u] + i] = z[i]
            zz[0] += z[i] * z[i]
        for j in range(mb):
            acc = 0.0
            for i in range(m):
                acc += B[e_off[u] + i * mb + j] * z[i]
            R[e_nb[u] + j] -= acc
        if not stacked:
            add_block(B, p_off[u], p_ld[u], p_tr[u], X, mb, mb, -1.0)
    cdef char up = b'U', nt = b'N'
    cdef int nb_, kk, ldw, ldc
    cdef double one = 1.0, minus = -1.0
    if stacked and n:
        # row-major W (n m, mb) is column-major W' (mb, n m): C -= W'W in C's
        # column-major upper = row-major lower triangle
        nb_, kk, ldw, ldc = <int> e_mb[0], <int> (n * m), <int> e_mb[0], <int> p_ld[0]
        dsyrk(&up, &nt, &nb_, &kk, &minus, &B[e_off[0]], &ldw, &one, &B[p_off[0]], &ldc)
        for i in range(e_mb[0]):
            for j in range(i):
                B[p_off[0] + j * p_ld[0] + i] = B[p_off[0] + i * p_ld[0] + j]
    return 0


cdef void posterior_chain_c(const double* F, double* Sg, idx m, idx n, const idx* diag,
                            const idx* e_off, const idx* e_mb, const idx* p_off,
                            const idx* p_ld, const idx* p_tr, bint stacked, idx max_block,
                            double* work, double* acc_all) noexcept nogil:
    """posterior_c for a level eliminated by eliminate_chain_c (later levels done). A unit
    whose factor, w and parent block of Sigma equal the previous unit's copies its
    blocks. stacked (eliminate_chain_c): every unit's S w' from one product of the
    stacked w's with the shared block S into acc_all (n m mb doubles). work:
    4 max_block^2 + max_block doubles."""
    cdef double* S = work
    cdef double* S_prev = S + max_block * max_block
    cdef double* Acc = S_prev + max_block * max_block
    cdef double* T = Acc + max_block * max_block
    cdef idx u, i, j, k, mb
    cdef double a
    cdef char nt = b'N'
    cdef int nb_, kk
    cdef double one = 1.0, zero = 0.0
    if stacked and n:           # row-major (n m, mb) W S = column-major S W' (S symmetric)
        nb_, kk = <int> e_mb[0], <int> (n * m)
        get_block(Sg, p_off[0], p_ld[0], p_tr[0], S, e_mb[0], e_mb[0])
        dgemm(&nt, &nt, &nb_, &kk, &nb_, &one, S, &nb_, &F[e_off[0]], &nb_, &zero,
              acc_all, &nb_)
    for u in range(n):
        mb = e_mb[u]
        if stacked:
            for i in range(m):
                for j in range(mb):
                    Acc[j * m + i] = acc_all[(u * m + i) * mb + j]
        else:
            get_block(Sg, p_off[u], p_ld[u], p_tr[u], S, mb, mb)
            if (u > 0 and mb == e_mb[u - 1] and same(S, S_prev, mb * mb)
                    and same(F + diag[u], F + diag[u - 1], m * m)
                    and same(F + e_off[u], F + e_off[u - 1], m * mb)):
                copy(Sg + diag[u - 1], Sg + diag[u], m * m)
                copy(Sg + e_off[u - 1], Sg + e_off[u], m * mb)
                continue
            copy(S, S_prev, mb * mb)
            matmul(S, F + e_off[u], Acc, mb, mb, m, 0, 1, 0)       # Acc (mb, m) = S w'
        inverse_from_factor(F + diag[u], Sg + diag[u], m)
        edge_posterior(F, Sg, diag[u], e_off[u], m, mb, Acc, T)
        symmetrize(Sg + diag[u], m)


# ------------------------------------------------------------------ constant designs
# A factor family whose design holds no parameter (data and fixed values only: the ys
# of a mixed model, its fixed effects' columns) and some of whose pairs of scope
# segments land on one block for every unit (a flat level's fixed effects, shared by
# all groups) adds those pairs' sum_u wt_u A_u' W_k A_u from moments taken once at
# compile time, mom[k, i, j] = sum_u in pattern k wt_u A_u[i, a]' A_u[j, b] (lme4's
# X'X), instead of unit by unit; its gradient needs no dA.

cdef void add_moments_c(const double* W, idx K, idx r, const idx* seg, const idx* pair_i,
                        const idx* pair_j, idx P, const unsigned char* shared,
                        const idx* mom_off, const double* mom, const idx* off, const idx* ld,
                        const idx* tr, double* buf, double* work) noexcept nogil:
    """The shared pairs' blocks sum_k sum_kl W_k[k, l] mom_p[k, k, l] (unit 0's targets:
    every unit's). mom_p at mom + mom_off[p], (K, r, r, na, nb). work: M M doubles."""
    cdef idx p, q, k, l, i, na, nb
    cdef const double* Mq
    for p in range(P):
        if not shared[p]:
            continue
        na = seg[pair_i[p] + 1] - seg[pair_i[p]]
        nb = seg[pair_j[p] + 1] - seg[pair_j[p]]
        for i in range(na * nb):
            work[i] = 0.0
        for q in range(K):
            for k in range(r):
                for l in range(r):
                    Mq = mom + mom_off[p] + ((q * r + k) * r + l) * na * nb
                    for i in range(na * nb):
                        work[i] += W[q * r * r + k * r + l] * Mq[i]
        add_block(buf, off[p], ld[p], tr[p], work, na, nb, 1.0)


cdef void term_gradient_constant_c(const double* A, idx n, idx r, idx M, const double* d,
                                   const double* W, idx K, const idx* pat, const double* wt,
                                   const idx* seg, idx S, const idx* pair_i,
                                   const idx* pair_j, idx P, const unsigned char* shared,
                                   const idx* mom_off, const double* mom, const idx* off,
                                   const idx* ld, const idx* tr, const idx* vec,
                                   const double* sig, const double* mean, double* gA,
                                   double* gd, double* wrw, double* work) noexcept nogil:
    """term_gradient_c for a constant design: gA is 0 (no parameter in A); the shared
    pairs' share of wrw, sum_u wt_u W A_u Sigma A_u' W, comes from the moments:
    W_k Y_k W_k with Y_k[k, l] = sum_ij mom_p[k, k, l][i, j] Sigma_ab[i, j] (and Y_k'
    for the mirror block). work: M + 2 r + 2 r M + M M + 3 r r doubles."""
    cdef double* mu = work
    cdef double* e = mu + M
    cdef double* We = e + r
    cdef double* WA = We + r
    cdef double* WAS = WA + r * M
    cdef double* blk = WAS + r * M
    cdef double* Y = blk + M * M
    cdef double* T = Y + r * r
    cdef const double* Au
    cdef const double* Wq
    cdef const double* Mq
    cdef idx u, i, j, k, l, p, q, a0, a1, b0, b1, na, nb
    cdef double acc, w
    for i in range(r * M):
        gA[i] = 0.0
    for i in range(r * r):
        wrw[i] = 0.0
    for u in range(n):
        Wq, w, Au = W + pat[u] * r * r, wt[u], A + u * r * M
        unit_residual(Au, d + u * r, r, M, seg, S, vec + u * S, mean, mu, e)
        weigh_unit(Wq, w, e, Au, r, M, We, WA)
        for i in range(r):
            gd[u * r + i] = 2.0 * We[i]
        for i in range(r * M):
            WAS[i] = 0.0
        for p in range(P):              # WA Sigma over the pairs that are the unit's own
            if shared[p]:
                continue
            a0, a1 = seg[pair_i[p]], seg[pair_i[p] + 1]
            b0, b1 = seg[pair_j[p]], seg[pair_j[p] + 1]
            na, nb = a1 - a0, b1 - b0
            get_block(sig, off[u * P + p], ld[u * P + p], tr[u * P + p], blk, na, nb)
            for k in range(r):
                for j in range(nb):
                    acc = 0.0
                    for i in range(na):
                        acc += WA[k * M + a0 + i] * blk[i * nb + j]
                    WAS[k * M + b0 + j] += acc
                if a0 != b0:            # the mirror block Sigma_ba = Sigma_ab'
                    for i in range(na):
                        acc = 0.0
                        for j in range(nb):
                            acc += WA[k * M + b0 + j] * blk[i * nb + j]
                        WAS[k * M + a0 + i] += acc
        for i in range(r):
            for j in range(r):
                acc = We[i] * We[j]
                for k in range(M):
                    acc += WAS[i * M + k] * WA[j * M + k]
                wrw[i * r + j] += acc / w
    for p in range(P):
        if not shared[p]:
            continue
        a0, a1 = seg[pair_i[p]], seg[pair_i[p] + 1]
        b0, b1 = seg[pair_j[p]], seg[pair_j[p] + 1]
        na, nb = a1 - a0, b1 - b0
        get_block(sig, off[p], ld[p], tr[p], blk, na, nb)
        for q in range(K):
            Wq = W + q * r * r
            for k in range(r):
                for l in range(r):
                    Mq = mom + mom_off[p] + ((q * r + k) * r + l) * na * nb
                    acc = 0.0
                    for i in range(na * nb):
                        acc += Mq[i] * blk[i]
                    Y[k * r + l] = acc
            if a0 != b0:
                for k in range(r):
                    for l in range(k + 1):
                        acc = Y[k * r + l] + Y[l * r + k]
                        Y[k * r + l] = acc
                        Y[l * r + k] = acc
            matmul(Wq, Y, T, r, r, r, 0, 0, 0)
            matmul(T, Wq, wrw, r, r, r, 0, 0, 1)
