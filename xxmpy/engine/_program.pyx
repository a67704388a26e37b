# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""One compiled call per evaluation of -2 log L and its gradient.

``Program`` holds, as plain arrays taken once at construction, everything an
evaluation walks: the flat matrix vector's fill (compile/slots.py), every
factor family's gathers (compile/plan.py), the pooled within-group contrasts
(compile/collapse.py), the elimination steps and scope targets
(compile/lowering.py). Its
``evaluate(theta, grad)`` then runs, without returning to Python:

  vals = base, vals[free_pos] = theta[free_par]
  per term: A, d, the pattern inverses of theta / psi, I - B and their log dets
  per pooled contrast: Sigma_w, its pattern inverses, value and gradient
  accumulate C and b, eliminate (sparse steps, dense remainder)
  posterior (selected inverse), term moments, and every gradient value added
  to its cell's parameter (cell_param; fixed cells go to a spare bin).

Invariants (read before touching):
  * float arrays float64 and index arrays intp, C order, held by the Program
    (``_keep``) for its lifetime; the pointers below point into them;
  * an inadmissible point (a block not positive definite, an ill-conditioned
    theta / psi, a singular I - B) gives +inf and leaves the gradient undefined;
  * the penalised residual sum of squares is c - b'C^-1 b only while that
    difference's rounding (eps sqrt(rows) c) is below CANCELLATION of it; else it
    is summed from the residuals at the posterior mean (residual_c), so no result
    is a difference of large numbers;
  * nothing here knows about levels or pandas; the arrays come from
    engine/program.py. Twin: the numpy reference (engine/reference/),
    compared in tests/twin_check.py.
"""
cimport numpy as cnp
import numpy as np
from libc.float cimport DBL_EPSILON
from libc.math cimport INFINITY, log, sqrt

from ._elimination cimport (DenseFill, accumulate_c, accumulate_shared_c,
                            add_moments_c, eliminate_c, eliminate_chain_c, factor_dense_c,
                            interrupted, mean_c, mean_dense_c, posterior_c, posterior_chain_c,
                            posterior_dense_c, residual_c, take_interruption, term_gradient_c,
                            term_gradient_constant_c, term_gradient_shared_c)
from ._linalg cimport cholesky, idx, inverse, matmul, triangular_inverse
from ._supernodal cimport Supernodal, supernodal_cholesky, supernodal_inverse

cnp.import_array()

# c - b'C^-1 b carries the rounding of sums of order c over the rows: about
# eps sqrt(rows) c (1.7 million rows with y near 3 and c / r2 = 22: 1e-3 of -2 log L).
# Kept while that is below this fraction of r2 (-2 log L's last reliable digits, as
# the optimiser's ROUNDING), else the residuals are summed (_elimination.residual_c)
cdef double CANCELLATION = 1e-12


cdef inline double* _d(cnp.ndarray a) noexcept:
    return <double*> cnp.PyArray_DATA(a)


cdef inline idx* _i(cnp.ndarray a) noexcept:
    return <idx*> cnp.PyArray_DATA(a)


cdef class Arrays:
    """Keeps arrays alive and hands out their data pointers (contiguous copies when
    needed); shared with the other compiled modules through _program.pxd."""

    def __init__(self):
        self.keep = []

    cdef double* f(self, a):
        arr = np.ascontiguousarray(a, dtype=np.float64).ravel()
        if arr.size == 0:
            arr = np.zeros(1)
        self.keep.append(arr)
        return _d(arr)

    cdef idx* i(self, a):
        arr = np.ascontiguousarray(a, dtype=np.intp).ravel()
        if arr.size == 0:
            arr = np.zeros(1, np.intp)
        self.keep.append(arr)
        return _i(arr)

    cdef double* zeros(self, idx size):
        return self.f(np.zeros(max(size, 1)))


# ------------------------------------------------------------------ pattern inverses
cdef int pattern_inverses_c(const double* cov, idx r, const unsigned char* patterns, idx K,
                            double* W, double* ld, double* cond, double* work,
                            idx* obs) noexcept nogil:
    """For each missing pattern k: W[k] (r, r) the inverse of cov's observed block at the
    observed rows and columns (zeros elsewhere), ld[k] its log det, cond[k] = m
    ||L^-1 D^1/2||_F^2 >= cond_2(R), R = D^-1/2 S D^-1/2 its correlation (D = diag S,
    m observed; 0 for an empty pattern): a condition blind to the variables' units.
    work: 3 r r doubles, obs: r.
    Returns 1 if a block is not positive definite. Numpy form:
    reference/blocks.pattern_inverses."""
    cdef double* S = work
    cdef double* L = S + r * r
    cdef double* Li = L + r * r
    cdef idx k, i, j, m
    cdef double frob
    for i in range(K * r * r):
        W[i] = 0.0
    for k in range(K):
        m = 0
        for i in range(r):
            if patterns[k * r + i]:
                obs[m] = i
                m = m + 1
        ld[k] = 0.0
        for i in range(m):
            for j in range(i + 1):
                S[i * m + j] = cov[obs[i] * r + obs[j]]
        if cholesky(S, m, L, &ld[k]):
            return 1
        triangular_inverse(L, m, Li)
        frob = 0.0
        for i in range(m):
            for j in range(i + 1):
                frob = frob + Li[i * m + j] * Li[i * m + j] * cov[obs[j] * r + obs[j]]
        cond[k] = m * frob
        matmul(Li, Li, S, m, m, m, 1, 0, 0)         # Li' Li
        for i in range(m):
            for j in range(m):
                W[k * r * r + obs[i] * r + obs[j]] = S[i * m + j]
    return 0


# ------------------------------------------------------------------ constant designs
MOMENTS_MAX = 1 << 22       # doubles of moments a term may keep (32 MB)
MOMENTS_CHUNK = 4096        # units per step of the moments' sum


def _shared_moments(t, scope, slots):
    """(shared (P,) uint8, offsets (P,), moments) of a factor family whose design holds
    no parameter and some of whose pairs land on one block for every unit (see
    _elimination's constant designs): for each such pair p (segments a, b) the moments
    mom_p (K, r, r, na, nb) = sum_u in pattern k wt_u A_u[k, a]' A_u[l, b]; None when
    no pair is shared, A holds a parameter, or they would take over MOMENTS_MAX."""
    r, M = t.a_index.shape
    n, P = t.X.shape[0], len(scope.pair_i)
    cells = np.asarray(t.a_index).ravel()
    signs = np.asarray(t.a_sign).ravel()
    if n < 2 or P == 0 or np.isin(cells[signs != 0], np.asarray(slots.free_pos)).any():
        return None
    off = np.asarray(scope.blk.off).reshape(n, P)
    ld = np.asarray(scope.blk.ld).reshape(n, P)
    tr = np.asarray(scope.blk.tr).reshape(n, P)
    shared = np.array([np.all(off[:, p] == off[0, p]) and np.all(ld[:, p] == ld[0, p])
                       and np.all(tr[:, p] == tr[0, p]) for p in range(P)])
    if not shared.any():
        return None
    seg, K = np.asarray(scope.seg), t.patterns.shape[0]
    sizes = [(seg[scope.pair_i[p] + 1] - seg[scope.pair_i[p]],
              seg[scope.pair_j[p] + 1] - seg[scope.pair_j[p]]) for p in range(P)]
    if sum(K * r * r * na * nb for (na, nb), s in zip(sizes, shared) if s) > MOMENTS_MAX:
        return None
    base = np.asarray(t.a_const, float).ravel() + signs * np.asarray(slots.base)[cells]
    pos, data = np.asarray(t.a_data_pos), np.asarray(t.a_data, float).reshape(n, -1)
    pat, wt = np.asarray(t.pat), np.asarray(t.wt, float)
    pairs = np.flatnonzero(shared)
    cols = {p: (np.arange(seg[scope.pair_i[p]], seg[scope.pair_i[p] + 1]),
                np.arange(seg[scope.pair_j[p]], seg[scope.pair_j[p] + 1])) for p in pairs}
    moms = {p: np.zeros((K, r, r, len(a), len(b))) for p, (a, b) in cols.items()}
    for start in range(0, n, MOMENTS_CHUNK):        # each chunk's A built once
        stop = min(n, start + MOMENTS_CHUNK)
        A = np.tile(base, (stop - start, 1))
        A[:, pos] += data[start:stop]
        A = A.reshape(-1, r, M)
        for k in np.unique(pat[start:stop]):
            rows = pat[start:stop] == k
            Ak, wk = A[rows], wt[start:stop][rows]
            for p, (a, b) in cols.items():   # sum_u w_u A_u[k, a_i] A_u[l, b_j]: one product
                left = (Ak[:, :, a] * wk[:, None, None]).reshape(len(wk), -1)
                prod = left.T @ Ak[:, :, b].reshape(len(wk), -1)
                moms[p][k] += prod.reshape(r, len(a), r, len(b)).transpose(0, 2, 1, 3)
    mom_off, at = np.zeros(P, np.intp), 0
    for p in pairs:
        mom_off[p] = at
        at += moms[p].size
    return shared.astype(np.uint8), mom_off, np.concatenate([moms[p].ravel() for p in pairs])


# ------------------------------------------------------------------ one factor family
cdef class _Term:
    """One factor family d_i = A_i eta_scope + e_i (compile/plan.TermPlan) and where its
    scope goes (compile/lowering.LoweredScope); buffers for its values at one theta."""
    cdef Arrays mem
    cdef idx r, M, n, ncol, K, kd, a_step, S, P, m_b, nb, kb
    cdef double d_sign, logdet_const, max_condition
    cdef idx *a_index
    cdef idx *c_index
    cdef idx *cov_cells
    cdef idx *pat
    cdef idx *order
    cdef idx *starts
    cdef bint constant
    cdef unsigned char *shared
    cdef idx *mom_off
    cdef double *mom
    cdef idx *a_data_pos
    cdef idx *seg
    cdef idx *pair_i
    cdef idx *pair_j
    cdef idx *off
    cdef idx *ld
    cdef idx *tr
    cdef idx *vec
    cdef idx *beta_cells
    cdef idx *beta_data_pos
    cdef double *a_sign
    cdef double *a_const
    cdef double *a_data
    cdef double *X
    cdef double *d0
    cdef double *counts
    cdef double *wt
    cdef double *beta_data
    cdef unsigned char *patterns
    cdef double *A
    cdef double *d
    cdef double *W
    cdef double *logdet
    cdef double *cond
    cdef double *cov
    cdef double *coef
    cdef double *gA
    cdef double *gd
    cdef double *wrw
    cdef double *ib_inv

    def __init__(self, t, scope, double max_condition, slots=None):
        """t: compile/plan.TermPlan; scope: compile/lowering.LoweredScope of its level;
        slots: compile/slots.MatrixSlots (which cells of A hold parameters)."""
        m = self.mem = Arrays()
        self.r, self.M = t.a_index.shape
        self.n, self.ncol = t.X.shape
        self.K = t.patterns.shape[0]
        self.d_sign, self.logdet_const, self.max_condition = t.d_sign, t.logdet_const, max_condition
        self.a_index, self.a_sign, self.a_const = m.i(t.a_index), m.f(t.a_sign), m.f(t.a_const)
        self.kd = 0 if t.a_data_pos is None else len(t.a_data_pos)
        self.a_step = 1 if self.kd else 0
        if self.kd:
            self.a_data_pos, self.a_data = m.i(t.a_data_pos), m.f(t.a_data)
        self.X, self.c_index, self.d0 = m.f(t.X), m.i(t.c_index), m.f(t.d0)
        self.cov_cells, self.pat, self.counts, self.wt = (m.i(t.cov_cells), m.i(t.pat),
                                                          m.f(t.counts), m.f(t.wt))
        pats = np.ascontiguousarray(t.patterns, dtype=np.uint8)
        m.keep.append(pats)
        self.patterns = <unsigned char*> cnp.PyArray_DATA(pats)
        pat = np.asarray(t.pat, np.intp)         # the units pattern by pattern
        self.order = m.i(np.argsort(pat, kind="stable"))
        self.starts = m.i(np.searchsorted(np.sort(pat), np.arange(self.K + 1)))
        self.S, self.P = len(scope.seg) - 1, len(scope.pair_i)
        self.constant = False
        moments = _shared_moments(t, scope, slots) if self.kd and slots is not None \
            else None
        if moments is not None:
            shared, mom_off, mom = moments
            self.constant = True
            self.mom_off, self.mom = m.i(mom_off), m.f(mom)
            arr = np.ascontiguousarray(shared, dtype=np.uint8)
            m.keep.append(arr)
            self.shared = <unsigned char*> cnp.PyArray_DATA(arr)
        self.seg, self.pair_i, self.pair_j = m.i(scope.seg), m.i(scope.pair_i), m.i(scope.pair_j)
        self.off, self.ld, self.tr = m.i(scope.blk.off), m.i(scope.blk.ld), m.i(scope.blk.tr)
        self.vec = m.i(scope.vec)
        self.m_b = self.nb = self.kb = 0
        if t.beta_cells is not None:
            self.m_b = len(t.beta_cells)
            self.beta_cells = m.i(t.beta_cells)
            self.nb = 1
            if t.beta_data_pos is not None:
                self.nb, self.kb = self.n, len(t.beta_data_pos)
                self.beta_data_pos, self.beta_data = m.i(t.beta_data_pos), m.f(t.beta_data)
            self.ib_inv = m.zeros(self.nb * self.m_b * self.m_b)
        r, M, n = self.r, self.M, self.n
        self.A = m.zeros((n if self.kd else 1) * r * M)
        self.d, self.W = m.zeros(n * r), m.zeros(self.K * r * r)
        self.logdet, self.cond, self.cov = m.zeros(self.K), m.zeros(self.K), m.zeros(r * r)
        self.coef, self.gA = m.zeros(r * self.ncol), m.zeros(r * M)
        self.gd, self.wrw = m.zeros(n * r), m.zeros(r * r)

    def work_size(self):
        """Doubles of shared work the term's routines need."""
        r, M, mb = self.r, self.M, self.m_b
        return max(r * M + r + M * M + M, 2 * M + 2 * M * M + 2 * r + 2 * r * M,
                   3 * r * r, 2 * mb * mb, 2 * r * M + M * M + r + M,
                   M + M * M + 2 * r + 2 * r * r + 2 * r * M,
                   M + 2 * r + 2 * r * M + M * M + 3 * r * r)

    cdef int build(self, const double* vals, double* work, idx* obs, double* logdets) noexcept:
        """A, d, W and the log dets (log|cov| share - 2 log|I - B|, added to logdets)
        at vals; 1 if inadmissible."""
        cdef idx r = self.r, M = self.M, n = self.n, nc = self.ncol, i, k, u, b, mb = self.m_b
        cdef double s, ld_ib = 0.0
        cdef double* Au
        for i in range(r * M):
            self.A[i] = self.a_const[i] + self.a_sign[i] * vals[self.a_index[i]]
        if self.kd:
            for u in range(n - 1, -1, -1):
                Au = self.A + u * r * M
                for i in range(r * M):
                    Au[i] = self.A[i]
                for k in range(self.kd):
                    Au[self.a_data_pos[k]] += self.a_data[u * self.kd + k]
        for i in range(r * nc):
            self.coef[i] = vals[self.c_index[i]]
        for u in range(n):
            for i in range(r):
                s = 0.0
                for k in range(nc):
                    s += self.X[u * nc + k] * self.coef[i * nc + k]
                self.d[u * r + i] = self.d0[u * r + i] + self.d_sign * s
        for i in range(r * r):
            self.cov[i] = vals[self.cov_cells[i]]
        if pattern_inverses_c(self.cov, r, self.patterns, self.K, self.W, self.logdet,
                              self.cond, work, obs):
            return 1
        s = self.logdet_const
        for k in range(self.K):
            if r > 1 and self.cond[k] > self.max_condition:
                return 1
            s += self.counts[k] * self.logdet[k]
        logdets[0] += s
        if mb:
            for b in range(self.nb):
                for i in range(mb * mb):
                    work[i] = -vals[self.beta_cells[i]]
                for i in range(mb):
                    work[i * mb + i] += 1.0
                for k in range(self.kb):
                    work[self.beta_data_pos[k]] += self.beta_data[b * self.kb + k]
                if inverse(work, mb, self.ib_inv + b * mb * mb, work + mb * mb, &ld_ib):
                    return 1
            logdets[0] -= 2.0 * ld_ib * (n // self.nb)
        return 0

    cdef void gradient(self, const idx* cell_param, double* grad) noexcept:
        """Add the term's gradient values (after term_gradient_c filled gA, gd, wrw)."""
        cdef idx r = self.r, M = self.M, n = self.n, nc = self.ncol, i, j, k, u, b
        cdef idx mb = self.m_b
        cdef double s
        for i in range(r * M):
            grad[cell_param[self.a_index[i]]] += self.a_sign[i] * self.gA[i]
        for i in range(r):
            for k in range(nc):
                s = 0.0
                for u in range(n):
                    s += self.gd[u * r + i] * self.X[u * nc + k]
                grad[cell_param[self.c_index[i * nc + k]]] += self.d_sign * s
        for i in range(r * r):
            s = -self.wrw[i]
            for k in range(self.K):
                s += self.counts[k] * self.W[k * r * r + i]
            grad[cell_param[self.cov_cells[i]]] += s
        if mb:      # -2 log|I - B|: d/dB = 2 (I - B)^-T, n times for a shared I - B
            for i in range(mb):
                for j in range(mb):
                    s = 0.0
                    for b in range(self.nb):
                        s += self.ib_inv[b * mb * mb + j * mb + i]
                    grad[cell_param[self.beta_cells[i * mb + j]]] += 2.0 * (n // self.nb) * s


# ------------------------------------------------------------------ pooled contrasts
cdef class _Contrast:
    """sum_k K_k log|Sigma_k| + tr(Sigma_k^-1 S_k), Sigma_w = Theta + Lambda T Psi T' Lambda',
    T = (I - B)^-1 (compile/collapse.PooledContrasts), and its gradient."""
    cdef Arrays mem
    cdef idx p, m, K
    cdef idx *theta
    cdef idx *lam
    cdef idx *beta
    cdef idx *psi
    cdef unsigned char *patterns
    cdef double *count
    cdef double *scatter
    cdef double *sigma
    cdef double *W
    cdef double *logdet
    cdef double *cond
    cdef double *T
    cdef double *P
    cdef double *L

    def __init__(self, pooled, cells):
        """pooled: compile/collapse.PooledContrasts; cells: its {'theta', 'lambda', 'beta', 'psi'} cells."""
        mem = self.mem = Arrays()
        self.p, self.m, self.K = pooled.p, pooled.m, len(pooled.count)
        self.theta, self.lam = mem.i(cells["theta"]), mem.i(cells["lambda"])
        self.beta, self.psi = mem.i(cells["beta"]), mem.i(cells["psi"])
        pats = np.ascontiguousarray(pooled.patterns, dtype=np.uint8)
        mem.keep.append(pats)
        self.patterns = <unsigned char*> cnp.PyArray_DATA(pats)
        self.count, self.scatter = mem.f(pooled.count), mem.f(pooled.scatter)
        p, m = self.p, self.m
        self.sigma, self.W = mem.zeros(p * p), mem.zeros(self.K * p * p)
        self.logdet, self.cond = mem.zeros(self.K), mem.zeros(self.K)
        self.T, self.P, self.L = mem.zeros(m * m), mem.zeros(m * m), mem.zeros(p * m)

    def work_size(self):
        """Doubles of shared work value() and gradient() need (generously)."""
        return 4 * (self.p + self.m) ** 2 + 8

    cdef int value(self, const double* vals, double* work, idx* obs, double* out) noexcept:
        """Add the contrasts' -2 log L share to out; 1 if Sigma_w is inadmissible."""
        cdef idx p = self.p, m = self.m, i, k
        cdef double ld = 0.0, s = 0.0
        for i in range(p * p):
            self.sigma[i] = vals[self.theta[i]]
        if m:
            for i in range(p * m):
                self.L[i] = vals[self.lam[i]]
            for i in range(m * m):
                work[i] = -vals[self.beta[i]]
            for i in range(m):
                work[i * m + i] += 1.0
            if inverse(work, m, self.T, work + m * m, &ld):
                return 1
            for i in range(m * m):
                work[i] = vals[self.psi[i]]
            matmul(self.T, work, work + m * m, m, m, m, 0, 0, 0)             # T Psi
            matmul(work + m * m, self.T, self.P, m, m, m, 0, 1, 0)           # T Psi T'
            matmul(self.L, self.P, work, p, m, m, 0, 0, 0)                   # Lambda P
            matmul(work, self.L, work + p * m, p, m, p, 0, 1, 0)             # Lambda P Lambda'
            for i in range(p * p):
                self.sigma[i] += work[p * m + i]
        if pattern_inverses_c(self.sigma, p, self.patterns, self.K, self.W, self.logdet,
                              self.cond, work, obs):
            return 1
        for k in range(self.K):
            s += self.count[k] * self.logdet[k]
        for i in range(self.K * p * p):
            s += self.W[i] * self.scatter[i]
        out[0] += s
        return 0

    cdef void gradient(self, const idx* cell_param, double* grad, double* work) noexcept:
        """Add the gradient of the value (after value() at the same vals)."""
        cdef idx p = self.p, m = self.m, pp = p * p, i, k
        cdef double* G = work
        cdef double* X = G + pp
        cdef double* Y = X + pp
        for i in range(pp):
            G[i] = 0.0
        for k in range(self.K):          # G = sum_k K_k W_k - W_k S_k W_k
            matmul(self.W + k * pp, self.scatter + k * pp, X, p, p, p, 0, 0, 0)
            matmul(X, self.W + k * pp, Y, p, p, p, 0, 0, 0)
            for i in range(pp):
                G[i] += self.count[k] * self.W[k * pp + i] - Y[i]
        for i in range(pp):
            grad[cell_param[self.theta[i]]] += G[i]
        if not m:
            return
        cdef double* GL = G + pp
        cdef double* LGL = GL + p * m
        cdef double* U = LGL + m * m
        cdef double* V = U + m * m
        matmul(G, self.L, GL, p, p, m, 0, 0, 0)                 # G Lambda
        matmul(self.L, GL, LGL, m, p, m, 1, 0, 0)               # Lambda' G Lambda
        matmul(GL, self.P, U, p, m, m, 0, 0, 0)                 # G Lambda P
        for i in range(p * m):
            grad[cell_param[self.lam[i]]] += 2.0 * U[i]
        matmul(self.T, LGL, U, m, m, m, 1, 0, 0)                # T' LGL
        matmul(U, self.T, V, m, m, m, 0, 0, 0)                  # T' LGL T
        for i in range(m * m):
            grad[cell_param[self.psi[i]]] += V[i]
        matmul(U, self.P, V, m, m, m, 0, 0, 0)                  # T' LGL P
        for i in range(m * m):
            grad[cell_param[self.beta[i]]] += 2.0 * V[i]


# ------------------------------------------------------------------ elimination steps
cdef class _Step:
    """One sparse level's elimination (compile/lowering.LoweredStep)."""
    cdef Arrays mem
    cdef idx m, n, E, P
    cdef bint chain, stacked
    cdef idx *diag
    cdef idx *rhs
    cdef idx *e_row
    cdef idx *e_off
    cdef idx *e_mb
    cdef idx *e_nb
    cdef idx *p_e1
    cdef idx *p_e2
    cdef idx *p_off
    cdef idx *p_ld
    cdef idx *p_tr
    cdef DenseFill dense
    cdef DenseFill* fill

    def __init__(self, st, idx dense_base=0, idx n_dense=0):
        mem = self.mem = Arrays()
        self.m, self.n, self.E, self.P = st.m, len(st.diag), len(st.e_row), len(st.p_e1)
        self.diag, self.rhs = mem.i(st.diag), mem.i(st.rhs)
        self.e_row, self.e_off, self.e_mb = mem.i(st.e_row), mem.i(st.e_off), mem.i(st.e_mb)
        self.e_nb, self.p_e1, self.p_e2 = mem.i(st.e_nb), mem.i(st.p_e1), mem.i(st.p_e2)
        self.p_off, self.p_ld, self.p_tr = mem.i(st.p.off), mem.i(st.p.ld), mem.i(st.p.tr)
        self.fill = NULL
        if st.fill is not None:         # pairs of each unit's entries into the dense block
            self.dense.u_ptr, self.dense.u_ent = mem.i(st.fill[0]), mem.i(st.fill[1])
            self.dense.row, self.dense.base, self.dense.nd = mem.i(st.fill[2]), dense_base, n_dense
            self.fill = &self.dense
        # a nested level: unit u's one parent block is edge u and pair (u, u) (scalar
        # levels keep eliminate_c's 1 x 1 shortcut)
        own = np.arange(self.n)
        self.chain = (self.n > 0 and self.E == self.n and self.P == self.n
                      and np.array_equal(st.e_row, own) and np.array_equal(st.p_e1, own)
                      and np.array_equal(st.p_e2, own)
                      and not (self.m == 1 and np.all(np.asarray(st.e_mb) == 1)))
        # ... all of them updating one block, their w blocks one after another
        mb, e_off = np.asarray(st.e_mb), np.asarray(st.e_off)
        p_off, p_ld, p_tr = np.asarray(st.p.off), np.asarray(st.p.ld), np.asarray(st.p.tr)
        self.stacked = bool(self.chain and self.n > 1 and np.all(mb == mb[0])
                            and np.all(p_off == p_off[0]) and np.all(p_ld == p_ld[0])
                            and np.all(p_tr == 0)
                            and np.all(np.diff(e_off) == self.m * mb[0]))


# ------------------------------------------------------------------ the program
cdef class Program:
    """-2 log L and its gradient of one compiled problem in one call.

    Built by engine/program.py from a Form's EvaluationPlan, its Lowered
    schedule and pooled contrasts; constant: the part of -2 log L that
    does not depend on theta (N log 2 pi and the collapse's Jacobian).
    Not re-entrant: an evaluation writes the Program's buffers, so two threads
    must not evaluate one problem at once (forked workers each hold a copy).
    """
    cdef Arrays mem
    cdef tuple args
    cdef list terms, contrasts, steps
    cdef idx n_vals, n_free, n_params, size, rhs_size, dense_base, rhs_dense_base, max_block
    cdef int n_dense, stop, profiled_rows
    cdef double root_rows
    cdef bint profiled_step
    # sig and mean hold the posterior (flat block aside) of the last gradient's theta
    cdef bint posterior_ready
    cdef object ready_theta
    cdef Supernodal sn
    cdef double constant
    cdef double *base
    cdef double *vals
    cdef double *buf
    cdef double *rhs
    cdef double *sig
    cdef double *mean
    cdef double *work
    cdef double *acc
    cdef double *grad
    cdef idx *free_pos
    cdef idx *free_par
    cdef idx *cell_param
    cdef idx *obs

    def __init__(self, slots, terms, contrasts, lowered, double constant):
        """slots: compile/slots.MatrixSlots; terms: [(TermPlan, LoweredScope,
        max_condition)] in evaluation order; contrasts: [compile/collapse.PooledContrasts];
        lowered: compile/lowering.Lowered."""
        self.args = (slots, terms, contrasts, lowered, constant)
        mem = self.mem = Arrays()
        self.n_vals, self.n_free, self.n_params = len(slots.base), len(slots.free_pos), slots.n_params
        self.base, self.vals = mem.f(slots.base), mem.zeros(self.n_vals)
        self.free_pos, self.free_par = mem.i(slots.free_pos), mem.i(slots.free_par)
        self.cell_param = mem.i(slots.cell_param)
        self.grad = mem.zeros(self.n_params + 1)
        self.terms = [_Term(t, scope, max_condition, slots)
                      for t, scope, max_condition in terms]
        self.contrasts = [_Contrast(pooled, pooled.cells) for pooled in contrasts]
        self.steps = [_Step(st, lowered.dense_base, lowered.n_dense) for st in lowered.steps]
        self.size, self.rhs_size = lowered.size, lowered.rhs_size
        self.dense_base, self.rhs_dense_base = lowered.dense_base, lowered.rhs_dense_base
        self.n_dense, self.max_block = lowered.n_dense, lowered.max_block
        self.profiled_step, self.profiled_rows = lowered.profiled_step, lowered.profiled_rows
        self.constant = constant
        self.root_rows = sqrt(max(sum(t.X.shape[0] for t, _, _ in terms), 1))
        self.buf, self.rhs = mem.zeros(self.size), mem.zeros(self.rhs_size)
        self.sig, self.mean = mem.zeros(self.size), mem.zeros(self.rhs_size)
        mb = self.max_block
        need = [4 * mb * mb + mb] + [t.work_size() for t in self.terms] + \
               [c.work_size() for c in self.contrasts]
        self.work = mem.zeros(max(need))
        self.acc = mem.zeros(max([max(len(s.e_row), 1) * s.m * mb for s in lowered.steps] + [1]))
        widest = max([t.a_index.shape[0] for t, _, _ in terms] + [c.p for c in contrasts] + [1])
        self.obs = mem.i(np.zeros(widest, np.intp))
        self.sn.ns = 0
        if lowered.supernodes is not None:
            self._supernodes(lowered.supernodes)

    def _supernodes(self, sn):
        """The remainder's factor a supernode at a time (compile/ordering.py)."""
        mem = self.mem
        rows = int(np.diff(sn.start).max())
        reach = int(np.diff(sn.r_ptr).max())
        self.sn.ns = len(sn.start) - 1
        self.sn.start, self.sn.r_ptr = mem.i(sn.start), mem.i(sn.r_ptr)
        self.sn.r_idx = mem.i(sn.r_idx)
        self.sn.panel, self.sn.other = mem.zeros(rows * reach + 1), mem.zeros(rows * reach + 1)
        self.sn.square = mem.zeros(reach * reach + 1)

    def __reduce__(self):
        """Pickled as its construction arguments (the buffers are rebuilt)."""
        return Program, self.args

    def evaluate(self, const double[::1] theta, double[::1] grad=None):
        """-2 log L at theta (n_params,); +inf if inadmissible. When ``grad`` (n_params,)
        is given, it receives the gradient (undefined at an inadmissible point)."""
        if theta.shape[0] != self.n_params or (grad is not None and grad.shape[0] != self.n_params):
            raise ValueError(f"theta and grad must have {self.n_params} entries")
        value = self._value(&theta[0] if self.n_params else NULL, grad is not None)
        if grad is not None and value < INFINITY and not self.stop:
            self._gradient(&grad[0] if self.n_params else NULL)
            if not self.stop:
                self.posterior_ready, self.ready_theta = True, np.array(theta, copy=True)
        self._raise_if_interrupted()
        return value

    def _raise_if_interrupted(self):
        """A Ctrl-C seen inside a kernel: the evaluation stopped; nothing persists
        between evaluations, so the Program (and the model) stay usable."""
        if self.stop:
            self.stop = 0
            raise take_interruption()

    def posterior(self, const double[::1] theta, const idx[::1] dense_entries=None):
        """(sig, mean (rhs_size,)) at theta: the selected blocks of C^-1 and the posterior
        mean C^-1 b in the Lowered layouts; None if theta is inadmissible. sig is
        (size,), or, given dense_entries (flat indices into the n_dense x n_dense
        block), (dense_base + len(dense_entries),): the sparse blocks, then only those
        entries of the dense block (a full copy of which is 520 MB on the full-size
        grade design)."""
        if theta.shape[0] != self.n_params:
            raise ValueError(f"theta must have {self.n_params} entries")
        if self.posterior_ready and np.array_equal(self.ready_theta, np.asarray(theta)):
            # the last evaluation's gradient left the selected inverse at this theta (a
            # fit's last Newton step: the full-size grade design's 11 s); only the flat
            # block is missing. Used once: the flat block is then filled.
            self.posterior_ready = False
            self._flat_block()
        else:
            value = self._value(&theta[0] if self.n_params else NULL, True)
            self._raise_if_interrupted()
            if value == INFINITY:
                return None
            self._posterior(True)
        self._raise_if_interrupted()
        return self.held(dense_entries)

    def held(self, const idx[::1] dense_entries=None):
        """(sig, mean) as posterior() returns them, of the posterior the Program holds
        now (after posterior(), or after finish() given the remainder's covariance)."""
        cdef idx i, base = self.dense_base
        if dense_entries is not None:
            for i in range(dense_entries.shape[0]):
                if dense_entries[i] < 0 or dense_entries[i] >= self.n_dense * self.n_dense:
                    raise ValueError("dense_entries must index the dense block")
        if dense_entries is None:
            sig = np.empty(self.size)
        else:
            sig = np.empty(base + dense_entries.shape[0])
        mean = np.empty(self.rhs_size)
        cdef double[::1] sig_v = sig, mean_v = mean
        if dense_entries is None:
            for i in range(self.size):
                sig_v[i] = self.sig[i]
        else:
            for i in range(base):
                sig_v[i] = self.sig[i]
            for i in range(dense_entries.shape[0]):
                sig_v[base + i] = self.sig[base + dense_entries[i]]
        for i in range(self.rhs_size):
            mean_v[i] = self.mean[i]
        return sig, mean

    def to_dense(self, const double[::1] theta):
        """Phase 1 of a crossed shard's evaluation (distributed/crossed.py): everything
        up to the dense remainder's factor. None if theta is inadmissible, else (parts
        (4,): total (the constant and the terms' log-determinants), the sparse
        eliminations' log-determinant and z'z, c (the data's weighted squares); C, the
        remainder's lower triangle packed by rows (n_dense (n_dense + 1) / 2,: entry
        (i, j <= i) at i (i + 1) / 2 + j); b (n_dense,), its right-hand side). The
        shard keeps its sparse factor for finish()."""
        cdef double sums[4]
        cdef idx i, j, n = self.n_dense
        if theta.shape[0] != self.n_params:
            raise ValueError(f"theta must have {self.n_params} entries")
        if self.profiled_step:
            raise ValueError("Program.to_dense: a profiled flat level eliminated block by "
                             "block; compile the shard with it shared")
        status = self._sparse_part(&theta[0] if self.n_params else NULL, sums)
        self._raise_if_interrupted()
        if status:
            return None
        parts = np.array([sums[0], sums[1], sums[2], sums[3]])
        dense = np.empty(n * (n + 1) // 2)
        rhs = np.empty(n)
        cdef double[::1] d = dense
        cdef double[::1] r = rhs
        cdef idx at = 0
        for i in range(n):
            for j in range(i + 1):
                d[at + j] = self.buf[self.dense_base + i * n + j]
            at += i + 1
            r[i] = self.rhs[self.rhs_dense_base + i]
        return parts, dense, rhs

    def finish(self, const double[::1] mean, const double[::1] sigma=None,
               bint residuals=True, double[::1] grad=None):
        """Phase 2, after to_dense at the same theta: with the remainder's posterior mean
        (n_dense,) (and its covariance sigma, the lower triangle packed as to_dense
        packs C, for the gradient) computed from every shard's sum, back-substitute
        this shard's sparse means. Returns the penalised residual sum of squares of
        this shard's terms (NaN unless ``residuals``); ``grad`` (n_params,) receives
        this shard's gradient terms when sigma is given."""
        cdef idx i, j, at, n = self.n_dense
        if mean.shape[0] != n or (sigma is not None and sigma.shape[0] != n * (n + 1) // 2):
            raise ValueError(f"mean must have {n} entries and sigma {n * (n + 1) // 2}")
        if sigma is not None and (grad is None or grad.shape[0] != self.n_params):
            raise ValueError(f"grad must have {self.n_params} entries")
        for i in range(n):
            self.mean[self.rhs_dense_base + i] = mean[i]
        self._sparse_means()
        r2 = self._residual_r2() if residuals else np.nan
        if sigma is not None:
            for i in range(self.dense_base):
                self.sig[i] = 0.0
            at = 0
            for i in range(n):
                for j in range(i + 1):
                    self.sig[self.dense_base + i * n + j] = sigma[at + j]
                    self.sig[self.dense_base + j * n + i] = sigma[at + j]
                at += i + 1
            self._sparse_posterior(len(self.steps))
            if not self.stop:
                self._term_gradients(&grad[0] if self.n_params else NULL)
        self._raise_if_interrupted()
        return r2

    cdef int _sparse_part(self, const double* theta, double* sums):
        """Everything before the dense remainder's factor: the factors' terms, the
        accumulation and the sparse eliminations. sums (4,) receives total (the
        constant and the terms' log-determinants), the eliminations' logdet and z'z,
        and c (the weighted squares of the data); buf / rhs hold the dense block and
        its right-hand side, not yet factored. 1 if inadmissible or interrupted."""
        cdef idx i
        cdef int status
        cdef double total = self.constant, logdet = 0.0, zz = 0.0, const = 0.0
        cdef _Term t
        cdef _Contrast c
        cdef _Step st
        self.stop = 0
        self.posterior_ready = False
        for i in range(self.n_vals):
            self.vals[i] = self.base[i]
        for i in range(self.n_free):
            self.vals[self.free_pos[i]] = theta[self.free_par[i]]
        for t in self.terms:
            if t.build(self.vals, self.work, self.obs, &total):
                return 1
        for c in self.contrasts:
            if c.value(self.vals, self.work, self.obs, &total):
                return 1
        for i in range(self.size):
            self.buf[i] = 0.0
        for i in range(self.rhs_size):
            self.rhs[i] = 0.0
        for t in self.terms:
            if t.n and t.a_step == 0:
                const += accumulate_shared_c(t.A, t.n, t.r, t.M, t.d, t.W, t.order, t.starts,
                                             t.K, t.wt, t.seg, t.S, t.pair_i, t.pair_j, t.P,
                                             t.off, t.ld, t.tr, t.vec, self.buf, self.rhs,
                                             self.work)
            elif t.n:
                const += accumulate_c(t.A, t.a_step, t.n, t.r, t.M, t.d, t.W, t.pat, t.wt,
                                      t.seg, t.S, t.pair_i, t.pair_j, t.P,
                                      t.shared if t.constant else NULL, t.off, t.ld, t.tr,
                                      t.vec, self.buf, self.rhs, self.work)
                if t.constant:
                    add_moments_c(t.W, t.K, t.r, t.seg, t.pair_i, t.pair_j, t.P, t.shared,
                                  t.mom_off, t.mom, t.off, t.ld, t.tr, self.buf, self.work)
        for st in self.steps:
            if st.chain:
                status = eliminate_chain_c(self.buf, self.rhs, st.m, st.n, st.diag, st.rhs,
                                           st.e_off, st.e_mb, st.e_nb, st.p_off, st.p_ld,
                                           st.p_tr, st.stacked, self.work, &logdet, &zz)
            else:
                status = eliminate_c(self.buf, self.rhs, st.m, st.n, st.diag, st.rhs, st.E,
                                     st.e_row, st.e_off, st.e_mb, st.e_nb, st.P, st.p_e1,
                                     st.p_e2, st.p_off, st.p_ld, st.p_tr, st.fill, self.work,
                                     &logdet, &zz)
            if status == 0 and interrupted():
                status = 2
            if status:
                self.stop = status == 2
                return 1
        sums[0], sums[1], sums[2], sums[3] = total, logdet, zz, const
        return 0

    cdef double _value(self, const double* theta, bint means):
        """-2 log L at theta; leaves the factor in buf / rhs, and the posterior means in
        mean when ``means`` (the gradient and the posterior need them). The penalised
        residual sum of squares r2 = c - b'C^-1 b is a difference of large numbers when
        the data sit far from 0: unless its rounding, eps sqrt(rows) c, is within
        CANCELLATION of r2, r2 is summed from the residuals at the posterior mean."""
        cdef int status
        cdef double sums[4]
        cdef double total, logdet, zz, const, r2
        if self._sparse_part(theta, sums):
            return INFINITY
        total, logdet, zz, const = sums[0], sums[1], sums[2], sums[3]
        if self.n_dense:
            status = 0
            if self.sn.ns:
                status = supernodal_cholesky(&self.buf[self.dense_base], self.n_dense, &self.sn)
            if status == 0:
                status = factor_dense_c(self.buf, self.rhs, self.dense_base,
                                        self.rhs_dense_base, self.n_dense, &logdet, &zz,
                                        self.sn.ns > 0)
            if status:
                self.stop = status == 2
                return INFINITY
        logdet -= self._profiled_logdet()
        r2 = const - zz
        cheap = r2 > 0 and DBL_EPSILON * self.root_rows * const <= CANCELLATION * r2
        if means or not cheap:
            if self.n_dense:
                mean_dense_c(self.buf, self.rhs, self.mean, self.dense_base,
                             self.rhs_dense_base, self.n_dense)
            self._sparse_means()
        if not cheap:
            r2 = self._residual_r2()
        return total + logdet + r2

    cdef void _sparse_means(self):
        """The sparse levels' posterior means, back-substituted (the dense ones set)."""
        cdef _Step st
        for st in reversed(self.steps):
            mean_c(self.buf, self.rhs, self.mean, st.m, st.n, st.diag, st.rhs, st.E,
                   st.e_row, st.e_off, st.e_mb, st.e_nb, self.work)

    cdef double _residual_r2(self):
        """The penalised residual sum of squares, summed term by term at the mean."""
        cdef double r2 = 0.0
        cdef _Term t
        for t in self.terms:
            if t.n:
                r2 += residual_c(t.A, t.a_step, t.n, t.r, t.M, t.d, t.W, t.pat, t.wt,
                                 t.seg, t.S, t.vec, self.mean, self.work)
        return r2

    cdef double _profiled_logdet(self) noexcept:
        """log|X'V^-1X| of a profiled flat level (ML's fixed effects, eliminated last),
        from its block of the factor: what turns the REML criterion into the ML
        deviance at the GLS fixed effects (0 without such a level)."""
        cdef idx i, at, n = self.n_dense
        cdef double s = 0.0
        cdef _Step st
        if self.profiled_step:
            st = self.steps[len(self.steps) - 1]    # the one unit's inverse factor Li: -2 log|Li|
            for i in range(st.m):
                s -= 2.0 * log(self.buf[st.diag[0] + i * st.m + i])
        for i in range(n - self.profiled_rows, n):
            at = self.dense_base + i * n + i
            s += 2.0 * log(self.buf[at])
        return s

    cdef void _posterior(self, bint flat_block) noexcept:
        """The selected inverse into sig (after _value, which left the means). With a
        profiled flat level the other levels' blocks are their covariances given the
        fixed effects (the flat level's block 0 while they are computed: what the ML
        gradient needs); ``flat_block`` then fills its block with (X'V^-1X)^-1."""
        cdef idx i, n_sparse = len(self.steps) - self.profiled_step
        cdef int status = 0
        for i in range(self.size):
            self.sig[i] = 0.0
        if self.sn.ns:
            status = supernodal_inverse(&self.buf[self.dense_base], &self.sig[self.dense_base],
                                        self.n_dense, self.n_dense - self.profiled_rows,
                                        &self.sn)
        elif self.n_dense:
            status = posterior_dense_c(self.buf, self.sig, self.dense_base, self.n_dense,
                                       self.n_dense - self.profiled_rows, False)
        if status == 2:
            self.stop = 1
            return
        if interrupted():
            self.stop = 1
            return
        self._sparse_posterior(n_sparse)
        if flat_block and not self.stop:
            self._flat_block()

    cdef void _sparse_posterior(self, idx n_sparse) noexcept:
        """The selected inverse of the first n_sparse sparse levels' blocks, from the
        later blocks of sig (the dense remainder's written)."""
        cdef _Step st
        for st in reversed(self.steps[:n_sparse]):
            if st.chain:
                posterior_chain_c(self.buf, self.sig, st.m, st.n, st.diag, st.e_off, st.e_mb,
                                  st.p_off, st.p_ld, st.p_tr, st.stacked, self.max_block,
                                  self.work, self.acc)
            else:
                posterior_c(self.buf, self.sig, st.m, st.n, st.diag, st.E, st.e_row,
                            st.e_off, st.e_mb, st.P, st.p_e1, st.p_e2, st.p_off, st.p_ld,
                            st.p_tr, st.fill, self.max_block, self.work, self.acc)
            if interrupted():
                self.stop = 1
                return

    cdef void _flat_block(self) noexcept:
        """A profiled flat level's block of sig, (X'V^-1X)^-1, after _posterior(False)."""
        cdef _Step st
        if self.profiled_step:                  # one unit, no later blocks: Li'Li
            st = self.steps[len(self.steps) - 1]
            posterior_c(self.buf, self.sig, st.m, st.n, st.diag, st.E, st.e_row, st.e_off,
                        st.e_mb, st.P, st.p_e1, st.p_e2, st.p_off, st.p_ld, st.p_tr, st.fill,
                        self.max_block, self.work, self.acc)
        if self.profiled_rows and posterior_dense_c(self.buf, self.sig, self.dense_base,
                                                    self.n_dense,
                                                    self.n_dense - self.profiled_rows,
                                                    True) == 2:
            self.stop = 1

    cdef void _gradient(self, double* out):
        self._posterior(False)
        if self.stop:
            return
        self._term_gradients(out)

    cdef void _term_gradients(self, double* out):
        """The gradient (n_params,) from sig and mean (the posterior at theta)."""
        cdef idx i
        cdef _Term t
        cdef _Contrast c
        for i in range(self.n_params + 1):
            self.grad[i] = 0.0
        for t in self.terms:
            if t.n and t.a_step == 0:
                term_gradient_shared_c(t.A, t.n, t.r, t.M, t.d, t.W, t.order, t.starts, t.K,
                                       t.wt, t.seg, t.S, t.pair_i, t.pair_j, t.P, t.off, t.ld,
                                       t.tr, t.vec, self.sig, self.mean, t.gA, t.gd, t.wrw,
                                       self.work)
            elif t.n and t.constant:
                term_gradient_constant_c(t.A, t.n, t.r, t.M, t.d, t.W, t.K, t.pat, t.wt,
                                         t.seg, t.S, t.pair_i, t.pair_j, t.P, t.shared,
                                         t.mom_off, t.mom, t.off, t.ld, t.tr, t.vec,
                                         self.sig, self.mean, t.gA, t.gd, t.wrw, self.work)
            elif t.n:
                term_gradient_c(t.A, t.a_step, t.n, t.r, t.M, t.d, t.W, t.pat, t.wt, t.seg,
                                t.S, t.pair_i, t.pair_j, t.P, t.off, t.ld, t.tr, t.vec,
                                self.sig, self.mean, t.gA, t.gd, t.wrw, self.work)
            else:
                for i in range(t.r * t.M):
                    t.gA[i] = 0.0
                for i in range(t.r * t.r):
                    t.wrw[i] = 0.0
            t.gradient(self.cell_param, self.grad)
        for c in self.contrasts:
            c.gradient(self.cell_param, self.grad, self.work)
        for i in range(self.n_params):
            out[i] = self.grad[i]
