# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The limit search's quasi-Newton bookkeeping on k x k matrices, compiled.

A limit takes 2-9 steps, each of which updates the Hessian model B and its
inverse H and reads the profile's quadratic model from H; with k ~ 10 numpy's
per-call cost is most of a step. Twin: limit_search._damped_bfgs and the H
branch of limit_search._model (numpy), compared in tests/test_profile.py.
Small dense algebra from engine/_linalg.pxd.
"""
import numpy as np

from xxmpy.engine._linalg cimport idx, matmul


cdef double _matvec(const double[:, ::1] A, const double* x, double* out) noexcept:
    """out = A x (A (k, k)); returns x'A x."""
    cdef idx k = A.shape[0], i
    cdef double quad = 0.0
    matmul(&A[0, 0], x, out, k, k, 1, 0, 0, 0)
    for i in range(k):
        quad += x[i] * out[i]
    return quad


def damped_bfgs(double[:, ::1] B, double[:, ::1] H, const double[::1] s, const double[::1] r):
    """BFGS update of B and H = B^-1, in place, with step s and gradient change r,
    damped (Powell) so that B stays positive definite; nothing changes when s'Bs <= 0."""
    cdef idx k = s.shape[0], i, j
    cdef double[::1] work = np.empty(3 * k + 1)
    cdef double* Bs = &work[0]
    cdef double* rd = Bs + k
    cdef double* Hr = rd + k
    cdef double sBs = _matvec(B, &s[0], Bs), sr = 0.0, rHr, phi, c
    for i in range(k):
        sr += s[i] * r[i]
        rd[i] = r[i]
    if not sBs > 0:
        return
    if sr < 0.2 * sBs:
        phi = 0.8 * sBs / (sBs - sr)
        sr = 0.0
        for i in range(k):
            rd[i] = phi * r[i] + (1.0 - phi) * Bs[i]
            sr += s[i] * rd[i]
    rHr = _matvec(H, rd, Hr)
    # B - Bs Bs'/sBs + r r'/sr;  H + c s s' - (s Hr' + Hr s')/sr,  c = (1 + r'Hr/sr)/sr
    c = (1.0 + rHr / sr) / sr
    for i in range(k):
        for j in range(k):
            B[i, j] += rd[i] * rd[j] / sr - Bs[i] * Bs[j] / sBs
            H[i, j] += c * s[i] * s[j] - (s[i] * Hr[j] + Hr[i] * s[j]) / sr


def profile_model(const double[:, ::1] H, const double[::1] g, idx j):
    """The profile's quadratic model in coordinate j from H = B^-1 and the gradient g
    when every other coordinate moves: (w, u, decrement, slope, curvature) with
    w = B_FF^-1 g_F and u = B_FF^-1 B_Fj on the others (w_j = 0, u_j = -1), where
    B_FF^-1 = H_FF - H_Fj H_jF / H_jj and B_FF^-1 B_Fj = -H_Fj / H_jj."""
    cdef idx k = g.shape[0], i, c
    w_arr, u_arr = np.empty(k), np.empty(k)
    cdef double[::1] w = w_arr
    cdef double[::1] u = u_arr
    cdef double a, hj, hjj = H[j, j], decrement = 0.0
    for i in range(k):          # h = H gz (gz: g with g_j = 0), kept in w for now
        a = 0.0
        for c in range(k):
            if c != j:
                a += H[i, c] * g[c]
        w[i] = a
    hj = w[j]
    for i in range(k):
        w[i] -= H[i, j] * (hj / hjj)
        u[i] = -H[i, j] / hjj
        if i != j:
            decrement += g[i] * w[i]
    w[j], u[j] = 0.0, -1.0
    return w_arr, u_arr, decrement, g[j] + hj / hjj, 1.0 / hjj
