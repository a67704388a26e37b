# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Minimum degree on the dense remainder's unit graph (compile/ordering.py's kernel).

The graph's N nodes are the remainder's units, held as bit sets (N rows of
ceil(N / 64) words): eliminating a node joins its live neighbours into a clique,
which is exactly the fill of the Cholesky factor, so the neighbours at
elimination are the structure of its factor column. Deterministic: ties go to
the lowest node.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint64_t

ctypedef Py_ssize_t idx

cdef extern from *:
    int popcount "__builtin_popcountll"(unsigned long long) nogil
    int trailing_zeros "__builtin_ctzll"(unsigned long long) nogil


cdef inline void _set(uint64_t* adj, idx W, idx u, idx v) noexcept nogil:
    if u != v:
        adj[u * W + v // 64] |= (<uint64_t> 1) << (v % 64)
        adj[v * W + u // 64] |= (<uint64_t> 1) << (u % 64)


cdef idx _degree(const uint64_t* row, const uint64_t* alive, idx W) noexcept nogil:
    cdef idx k, d = 0
    for k in range(W):
        d += popcount(row[k] & alive[k])
    return d


def minimum_degree(idx N, const idx[::1] pair_u, const idx[::1] pair_v,
                   const idx[::1] clique_ptr, const idx[::1] clique_idx, idx n_last,
                   double tail_density):
    """Order the N nodes by minimum degree; the last n_last nodes (a profiled flat
    level's) are eliminated last, in their order.

    Edges: pair_u[k]-pair_v[k], and all pairs within each clique
    clique_idx[clique_ptr[c]:clique_ptr[c + 1]]. Once the smallest live degree is
    at least tail_density x (live nodes - 1), the rest is taken as one dense tail
    in node order (its factor is dense whatever the order).
    Returns (order (N,), s_ptr (N - n_tail + 1,), s_idx, n_tail): order[p] the
    node eliminated p-th; s_idx[s_ptr[p]:s_ptr[p + 1]] its live neighbours then
    (unsorted), for the first N - n_tail positions.
    """
    cdef idx W = (N + 63) // 64, k, c, i, j, u, v, best, p = 0, n_alive = N, n_tail
    cdef idx first_last = N - n_last, n_s = 0, cap = 4 * N + 16
    cdef uint64_t bits, word
    cdef cnp.ndarray[cnp.uint64_t, ndim=1] adj_a = np.zeros(max(N * W, 1), np.uint64)
    cdef cnp.ndarray[cnp.uint64_t, ndim=1] alive_a = np.zeros(max(W, 1), np.uint64)
    cdef cnp.ndarray[cnp.uint64_t, ndim=1] mask_a = np.zeros(max(W, 1), np.uint64)
    cdef cnp.ndarray[cnp.intp_t, ndim=1] deg_a = np.zeros(max(N, 1), np.intp)
    cdef cnp.ndarray[cnp.intp_t, ndim=1] order = np.zeros(N, np.intp)
    cdef cnp.ndarray[cnp.intp_t, ndim=1] s_ptr = np.zeros(N + 1, np.intp)
    cdef cnp.ndarray[cnp.intp_t, ndim=1] s_idx = np.zeros(cap, np.intp)
    cdef uint64_t* adj = <uint64_t*> adj_a.data
    cdef uint64_t* alive = <uint64_t*> alive_a.data
    cdef uint64_t* mask = <uint64_t*> mask_a.data
    cdef idx* deg = <idx*> deg_a.data
    cdef idx* nb
    for u in range(N):
        alive[u // 64] |= (<uint64_t> 1) << (u % 64)
    for k in range(pair_u.shape[0]):
        _set(adj, W, pair_u[k], pair_v[k])
    for c in range(clique_ptr.shape[0] - 1):
        for i in range(clique_ptr[c], clique_ptr[c + 1]):
            for j in range(i + 1, clique_ptr[c + 1]):
                _set(adj, W, clique_idx[i], clique_idx[j])
    for u in range(N):
        deg[u] = _degree(&adj[u * W], alive, W)
    while n_alive:
        best = -1
        for u in range(N if n_alive <= n_last else first_last):
            if (alive[u // 64] >> (u % 64)) & 1 and (best < 0 or deg[u] < deg[best]):
                best = u
        if deg[best] >= tail_density * (n_alive - 1) and n_alive > 1:
            break
        v = best
        order[p] = v
        if n_s + deg[v] > cap:
            cap = 2 * (n_s + deg[v])
            s_idx = np.resize(s_idx, cap)
        nb = <idx*> s_idx.data
        for k in range(W):
            mask[k] = adj[v * W + k] & alive[k]
            word = mask[k]
            while word:
                bits = word & (~word + 1)
                nb[n_s] = k * 64 + trailing_zeros(word)
                n_s += 1
                word ^= bits
        s_ptr[p + 1] = n_s
        alive[v // 64] &= ~((<uint64_t> 1) << (v % 64))
        n_alive -= 1
        for i in range(s_ptr[p], n_s):
            u = nb[i]
            for k in range(W):
                adj[u * W + k] |= mask[k]
            adj[u * W + u // 64] &= ~((<uint64_t> 1) << (u % 64))
        for i in range(s_ptr[p], n_s):
            u = nb[i]
            deg[u] = _degree(&adj[u * W], alive, W)
        p += 1
    n_tail = n_alive
    for u in range(first_last):                 # the tail: live nodes in node order
        if (alive[u // 64] >> (u % 64)) & 1:
            order[p] = u
            p += 1
    for u in range(first_last, N):
        if (alive[u // 64] >> (u % 64)) & 1:
            order[p] = u
            p += 1
    return order, s_ptr[:N - n_tail + 1].copy(), s_idx[:n_s].copy(), n_tail
