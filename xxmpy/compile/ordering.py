"""Fill-reducing order and supernodes of the dense remainder.

After a crossed level is eliminated, the units of the later levels form one
remainder matrix, stored dense (compile/lowering.py). Its factor need not be
dense: InstEval's lecturers are coupled only through shared students, and in a
minimum-degree order their factor has a fifth of a dense one's flops. This
module orders the remainder's units by minimum degree (compile/_ordering.pyx,
which also gives each factor column's structure), postorders the elimination
tree and groups consecutive rows into supernodes, relaxed as CHOLMOD does (a
few explicit zeros buy wide blocks). The kernel (engine/_supernodal.pyx) then
factors and selectively inverts the dense-stored matrix a supernode at a time.

Invariants: a supernode J owns rows start[J]..start[J+1] and its factor block
reaches the later rows r_idx[r_ptr[J]:r_ptr[J+1]] (sorted); those rows form a
clique of the factor's pattern, which contains the matrix's, so the selected
inverse on the pattern has every entry an evaluation reads. Flat levels stay
last (a profiled level's block is the trailing Schur complement), and a
supernode never straddles them. Nothing depends on parameter values.
"""
import os
from dataclasses import dataclass

import numpy as np

from ._ordering import minimum_degree

INT = np.intp
# the supernodal path is taken when its Cholesky needs at most this share of the dense
# one's flops (its blocks are smaller, so each flop costs more)
SPARSE_SHARE = 0.5
# once the smallest live degree is this share of the live units, the rest is dense
TAIL_DENSITY = 0.9
# relaxed supernodes (CHOLMOD's defaults): merging is allowed while the merged block has
# at most RELAX_ROWS[k] rows and a share of explicit zeros below RELAX_ZEROS[k]
RELAX_ROWS = (4, 16, 48)
RELAX_ZEROS = (1.0, 0.8, 0.1, 0.05)
# "auto": by SPARSE_SHARE; "always" / "never" (tests; XXMPY_REMAINDER sets it per run)
MODE = os.environ.get("XXMPY_REMAINDER", "auto")


@dataclass
class Supernodes:
    """start (ns + 1,) first row of each supernode, start[-1] = n; r_ptr (ns + 1,),
    r_idx: the later rows each supernode's factor block reaches, sorted; flops of
    the supernodal Cholesky and of the dense one."""
    start: np.ndarray
    r_ptr: np.ndarray
    r_idx: np.ndarray
    flops: float
    dense_flops: float


def order_remainder(weight, pair_u, pair_v, clique_ptr, clique_idx, n_last):
    """(position (N,), Supernodes or None) for the remainder's N units.

    weight (N,) rows per unit; edges pair_u-pair_v and the cliques
    clique_idx[clique_ptr[c]:clique_ptr[c + 1]] (the neighbours of each unit of the
    eliminated crossed level); the last n_last units (flat levels) stay last.
    position[u] is unit u's place in the remainder; the supernodes are None when the
    dense factor is as cheap (then units keep their order)."""
    weight = np.asarray(weight, INT)
    N = len(weight)
    identity = np.arange(N, dtype=INT)
    if MODE == "never" or N < 2:
        return identity, None
    order, s_ptr, s_idx, n_tail = minimum_degree(
        N, _ints(pair_u), _ints(pair_v), _ints(clique_ptr), _ints(clique_idx), int(n_last),
        TAIL_DENSITY)
    post, struct = _postorder(order, s_ptr, s_idx, n_tail)
    position = np.empty(N, INT)
    position[order[post]] = identity
    sn = _supernodes(weight[order[post]], struct, N - int(n_last))
    if MODE == "auto" and sn.flops > SPARSE_SHARE * sn.dense_flops:
        return identity, None
    return position, sn


def _ints(a):
    return np.ascontiguousarray(a, dtype=INT)


def _postorder(order, s_ptr, s_idx, n_tail):
    """Postorder of the elimination tree (the same fill, subtrees contiguous): (post
    (N,) old places in new order, struct: each new place's later neighbours, sorted
    new places). The tail is a chain, each unit's structure the units after it."""
    N = len(order)
    n_sparse = N - n_tail
    place = np.empty(N, INT)
    place[order] = np.arange(N)
    cols = [np.sort(place[s_idx[s_ptr[p]:s_ptr[p + 1]]]) for p in range(n_sparse)]
    parent = np.full(N, -1, INT)
    for p in range(n_sparse):
        if len(cols[p]):
            parent[p] = cols[p][0]
    parent[n_sparse:N - 1] = np.arange(n_sparse + 1, N)
    children = [[] for _ in range(N)]
    for p in range(N - 1, -1, -1):      # each list decreasing: popped smallest first
        if parent[p] >= 0:
            children[parent[p]].append(p)
    post = []
    for root in np.flatnonzero(parent < 0).tolist():   # the last unit's tree ends it
        stack = [(root, False)]
        while stack:
            p, done = stack.pop()
            if done:
                post.append(p)
                continue
            stack.append((p, True))
            stack.extend((c, False) for c in children[p])
    post = np.asarray(post, INT)
    new = np.empty(N, INT)
    new[post] = np.arange(N)
    struct = [np.sort(new[cols[p]]) if p < n_sparse else np.arange(new[p] + 1, N)
              for p in post]
    return post, struct


def _supernodes(weight, struct, flat_from):
    """Relaxed supernodes over units in factor order (weight (N,) rows, struct their
    later neighbours); units from flat_from on start a supernode of their own."""
    N = len(weight)
    row0 = np.concatenate([[0], np.cumsum(weight)]).astype(INT)
    reach = np.array([weight[s].sum() for s in struct], float)
    true = weight * (weight + 1) / 2 + weight * reach        # a unit's factor entries
    parent = np.array([s[0] if len(s) else -1 for s in struct], INT)
    first, nnz = [0], true[0]
    for q in range(1, N):
        a = first[-1]
        rows = row0[q + 1] - row0[a]
        stored = rows * (rows + 1) / 2 + rows * reach[q]
        zeros = 1.0 - (nnz + true[q]) / stored
        if parent[q - 1] == q and q != flat_from and _relaxed(rows, zeros):
            nnz += true[q]
            continue
        first.append(q)
        nnz = true[q]
    first.append(N)
    start = row0[first]
    r_parts, flops = [], 0.0
    for J in range(len(first) - 1):
        last = first[J + 1] - 1
        units = struct[last]
        rows = [np.arange(row0[u], row0[u + 1]) for u in units]
        r = np.concatenate(rows) if rows else np.zeros(0, INT)
        r_parts.append(r.astype(INT))
        w, nr = float(start[J + 1] - start[J]), float(len(r))
        flops += w ** 3 / 3 + w * w * nr + w * nr * nr
    r_ptr = np.concatenate([[0], np.cumsum([len(r) for r in r_parts])]).astype(INT)
    r_idx = np.concatenate(r_parts).astype(INT) if r_parts else np.zeros(0, INT)
    n = float(row0[-1])
    return Supernodes(start, r_ptr, r_idx, flops, n ** 3 / 3)


def _relaxed(rows, zeros):
    if rows <= RELAX_ROWS[0]:
        return zeros < RELAX_ZEROS[0]
    for limit, share in zip(RELAX_ROWS[1:], RELAX_ZEROS[1:]):
        if rows <= limit:
            return zeros < share
    return zeros < RELAX_ZEROS[-1]
