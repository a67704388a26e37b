# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The optimiser's Cholesky coordinates, compiled (transform.Transform's hot path).

Invariants (read before touching): x, theta and gradients float64 C order,
parameter indices intp; each block's slots matrix is symmetric; nothing here
allocates per call but the returned arrays. Twin: Transform's numpy methods,
compared in tests/test_transform.py.
"""
import numpy as np
from libc.math cimport sqrt

from xxmpy.engine._linalg cimport idx
from xxmpy.engine._program cimport Arrays


cdef class CholeskyMap:
    """transform.Transform's Cholesky blocks compiled: coordinates x <-> parameters theta.

    blocks: [(slots (m, m) parameter indices, symmetric; mode)] as in transform._Block.
    Each block's lower factor L has L[r, c] = x[slots[r, c]] (r >= c), except
    L[1, 0] = x[slots[1, 0]] / L[0, 0] in mode 1 (a covariance held) and
    L[1, 0] = L[1, 1] rho / sqrt(1 - rho^2), rho = x[slots[1, 0]], in mode 2 (a
    correlation held); theta[slots] = L L'. Every other parameter is its own coordinate.
    Twin: Transform's numpy methods (tests/test_transform.py).
    """
    cdef Arrays mem
    cdef tuple args
    cdef idx n_blocks, k, widest
    cdef idx *m
    cdef idx *start
    cdef idx *slots
    cdef idx *mode
    cdef double *L
    cdef double *G

    def __init__(self, blocks, idx k):
        self.args = (blocks, k)
        mem = self.mem = Arrays()
        self.k, self.n_blocks = k, len(blocks)
        sizes = [len(s) for s, _ in blocks]
        self.widest = max(sizes + [1])
        self.m = mem.i(sizes)
        self.start = mem.i(np.cumsum([0] + [m * m for m in sizes])[:-1])
        self.slots = mem.i(np.concatenate([np.ravel(s) for s, _ in blocks] + [[]]))
        self.mode = mem.i([int(f) for _, f in blocks])
        self.L, self.G = mem.zeros(self.widest ** 2), mem.zeros(2 * self.widest ** 2)

    def __reduce__(self):
        return CholeskyMap, self.args

    cdef void _factor(self, idx b, const double* x) noexcept:
        cdef idx m = self.m[b], r, c
        cdef const idx* s = self.slots + self.start[b]
        for r in range(m):
            for c in range(m):
                self.L[r * m + c] = x[s[r * m + c]] if c <= r else 0.0
        if self.mode[b] == 1:
            self.L[m] = x[s[m]] / self.L[0]
        elif self.mode[b] == 2:
            self.L[m] = self.L[m + 1] * x[s[m]] / sqrt(1.0 - x[s[m]] * x[s[m]])

    def to_theta(self, const double[::1] x):
        """theta (k,) at coordinates x (k,)."""
        out = np.array(x, dtype=np.float64)
        cdef double[::1] theta = out
        cdef idx b, m, i, j, c
        cdef double a
        cdef const idx* s
        for b in range(self.n_blocks):
            self._factor(b, &x[0])
            m, s = self.m[b], self.slots + self.start[b]
            for i in range(m):
                for j in range(i + 1):
                    a = 0.0
                    for c in range(j + 1):
                        a += self.L[i * m + c] * self.L[j * m + c]
                    theta[s[i * m + j]] = a
        return out

    def pullback(self, const double[::1] x, g):
        """Gradient with respect to theta (..., k) -> with respect to x (..., k)."""
        src = np.ascontiguousarray(g, dtype=np.float64)
        out = src.copy()
        cdef double[:, ::1] gin = src.reshape(-1, self.k)
        cdef double[:, ::1] gout = out.reshape(-1, self.k)
        cdef idx b, m, i, j, c, row
        cdef double a, d10, rho
        cdef const idx* s
        for b in range(self.n_blocks):
            self._factor(b, &x[0])
            m, s = self.m[b], self.slots + self.start[b]
            for row in range(gin.shape[0]):
                # dL = (G * (2 on the diagonal, 1 off it)) L, kept on and below the diagonal
                for i in range(m):
                    for j in range(i + 1):
                        a = 0.0
                        for c in range(j, m):
                            a += gin[row, s[i * m + c]] * (2.0 if c == i else 1.0) * self.L[c * m + j]
                        self.G[i * m + j] = a
                for i in range(m):
                    for j in range(i + 1):
                        gout[row, s[i * m + j]] = self.G[i * m + j]
                d10 = self.G[m]
                if self.mode[b] == 1:     # L_10 = v / L_00: the coordinate at [1, 0] is v
                    gout[row, s[0]] -= d10 * self.L[m] / self.L[0]
                    gout[row, s[m]] = d10 / self.L[0]
                elif self.mode[b] == 2:   # L_10 = L_11 t(rho): the coordinate is rho
                    rho = x[s[m]]
                    gout[row, s[m + 1]] += d10 * self.L[m] / self.L[m + 1]
                    a = 1.0 - rho * rho
                    gout[row, s[m]] = d10 * self.L[m + 1] / (a * sqrt(a))
        return out
