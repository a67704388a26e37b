"""Symbolic block elimination: lower the level DAG into integer index arrays.

The posterior precision ``C`` of all latent variables is block sparse: one
diagonal block per unit (size = the level's number of etas), off-diagonal
blocks between units that share a factor (a unit and its parents) or that
fill in during elimination. Levels are eliminated one at a time, children
before parents, the larger of incomparable levels first. Nested structures
never fill within a level. The first level whose elimination would couple
two units of one later level (a crossed design) is still eliminated block by
block, and every level after it forms one dense remainder matrix.

Nothing here depends on parameter values: the schedule is built once per
model and reused by every evaluation.

Layouts (all 0-based, C order):
  diag block of sparse level l:  diag[l][unit]            (m_l, m_l)
  relation (a, b), a before b:   rel[(a, b)][slot]         (m_a, m_b)
  dense remainder:               dense[dense_start[b][unit] + r, ...]

The remainder's units are placed in a fill-reducing order (compile/ordering.py),
which also gives the supernodes of its factor when that is sparse enough to pay.
"""
import functools
from dataclasses import dataclass, field

import numpy as np

from .budget import check_budget
from .grouping import changes
from .ordering import order_remainder


@dataclass
class Target:
    """Where a stack of blocks (n, r, c) at units (u of level s, v of level t) goes.

    kind 'diag': add to diag[level][units]          (u == v, sparse level)
    kind 'rel':  add to rel[key][slots], transposed if ``transpose``
    kind 'dense': add values at flat positions ``flat`` (n, r, c) and, when
                  ``flat_t`` is set, the same values again at ``flat_t``.
    """
    kind: str
    level: int = -1
    units: np.ndarray = None
    key: tuple = None
    slots: np.ndarray = None
    transpose: bool = False
    flat: np.ndarray = None
    flat_t: np.ndarray = None


@dataclass
class VectorTarget:
    """Where a stack of vectors (n, r) at units of level s goes: sparse rhs or dense rhs."""
    kind: str
    level: int = -1
    units: np.ndarray = None
    flat: np.ndarray = None


class EliminationStep:
    """Eliminating sparse level ``level``: its relations (keys (level, b)), a
    VectorTarget per relation and the pair updates they cause, ``pairs``: (key1, key2,
    idx1, idx2, Target). The pairs are built on first use: a level whose neighbours
    are all in the dense remainder is walked unit by unit by the compiled kernel
    (lowering.LoweredStep.fill), and only the numpy reference reads its pairs."""

    def __init__(self, level, relations, rhs_targets, pairs_of):
        self.level, self.relations, self.rhs_targets = level, relations, rhs_targets
        self._pairs_of, self._pairs = pairs_of, None

    @property
    def pairs(self):
        if self._pairs is None:
            self._pairs = self._pairs_of()
        return self._pairs


@dataclass
class Schedule:
    sizes: np.ndarray               # (n_levels,) units per level
    block: np.ndarray               # (n_levels,) etas per level
    sparse_order: list              # levels eliminated block by block
    dense_levels: list              # levels in the dense remainder, in order
    dense_start: dict               # level -> (n_l,) each unit's first row in the remainder
    n_dense: int
    relations: dict                 # key -> (rows, cols)
    assembly: dict                  # level c -> list of (i, j, Target) over scope pairs
    assembly_rhs: dict              # level c -> list of VectorTarget per scope slot
    steps: list = field(default_factory=list)
    supernodes: object = None       # ordering.Supernodes of the remainder's factor, or None

    def dense_rows(self, level, units=None):
        """(n, m) rows of the remainder that hold ``units`` (default all) of ``level``."""
        start = self.dense_start[level] if units is None else self.dense_start[level][units]
        return start[:, None] + np.arange(self.block[level])[None, :]

    def describe(self):
        return {"sparse_order": self.sparse_order, "dense_levels": self.dense_levels,
                "n_dense": self.n_dense,
                "relations": {k: len(v[0]) for k, v in self.relations.items()}}


def elimination_order(graph_levels, descendants, sizes, block, last=(), shared=()):
    """Levels with etas, children first; among available levels the largest first;
    the levels in ``last`` (flat levels: fixed effects) after all others, so that
    their block of the factor is the Schur complement X'V^-1X; the ``shared`` levels
    (kept in the dense remainder) just before them."""
    todo = [l for l in range(len(graph_levels)) if block[l] > 0]
    order = []
    while todo:
        ready = [l for l in todo if all(d in order or block[d] == 0 for d in descendants[l])]
        ready = [l for l in ready if l not in last and l not in shared] \
            or [l for l in ready if l not in last] or ready
        best = max(ready, key=lambda l: (sizes[l] * block[l], -l))
        order.append(best)
        todo.remove(best)
    return order


def _join_on_rows(rows1, rows2):
    """All index pairs (i, j) with rows1[i] == rows2[j]."""
    o2 = np.argsort(rows2, kind="stable")
    s2 = rows2[o2]
    lo = np.searchsorted(s2, rows1, "left")
    hi = np.searchsorted(s2, rows1, "right")
    counts = hi - lo
    i = np.repeat(np.arange(len(rows1)), counts)
    starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
    j = o2[starts + np.arange(counts.sum())]
    return i, j


def _distinct(codes):
    """np.unique of integer codes: O(n) when they are already in order (units listed
    group by group, as a moment collapse leaves them), else after a sort (numpy 2.4's
    np.unique of int64 codes spanning a wide range takes a hashing path: 1.0 s on the
    full-size grade design's 1.7 million student-instructor pairs, the sort 10 ms)."""
    if codes.size == 0:
        return codes
    new = changes(codes)
    if new is None:
        codes = np.sort(codes)
        new = changes(codes)
    return codes[new]


class _Builder:
    def __init__(self, sizes, block, scopes, order):
        self.sizes, self.block, self.scopes, self.order = sizes, block, scopes, order
        self.rank = {l: r for r, l in enumerate(order)}
        self.pending = {}           # key -> list of encoded (row, col) arrays

    def add_pairs(self, s, u, t, v):
        if self.rank[s] > self.rank[t]:
            s, u, t, v = t, v, s, u
        self.pending.setdefault((s, t), []).append(u.astype(np.int64) * self.sizes[t] + v)

    def finalize(self, key):
        """(rows, cols, codes) of the pairs of ``key``, codes sorted and distinct."""
        parts = self.pending.get(key, [])
        codes = _distinct(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
        n_b = self.sizes[key[1]]
        return codes // n_b, codes % n_b, codes


def build_schedule(sizes, block, scopes, order, memory_limit=None, names=None, last=(),
                   dense=None):
    """Plan the elimination.

    sizes, block: (n_levels,) unit counts and eta counts. scopes: for each level
    c, a list of (level, units (n_c,)) — the unit itself (if it has etas) and its
    parents with etas. order: elimination order from :func:`elimination_order`.
    memory_limit: bytes the plan may need (budget.py); names: level names, for
    its error; last: flat levels, kept at the end of the remainder. dense: None, or
    the levels the remainder must hold (a crossed shard's, which every shard lays out
    alike): they are never eliminated block by block and the remainder keeps its
    units in level order (no fill-reducing order: a shard never factors it); a
    crossed elimination before them raises ValueError.
    """
    sizes = np.asarray(sizes)
    block = np.asarray(block)
    b = _Builder(sizes, block, scopes, order)
    for c, scope in scopes.items():
        for i in range(len(scope)):
            for j in range(i + 1, len(scope)):
                b.add_pairs(scope[i][0], scope[i][1], scope[j][0], scope[j][1])
    relations, codes, sparse_order, dense_levels = {}, {}, [], []
    crossed_keys = []
    for pos, a in enumerate(order):
        if dense is not None and a in dense:
            dense_levels = order[pos:]
            break
        sparse_order.append(a)
        keys = sorted((k for k in b.pending if k[0] == a), key=lambda k: b.rank[k[1]])
        for k in keys:
            rows, cols, cd = b.finalize(k)
            relations[k], codes[k] = (rows, cols), cd
        # a unit coupling several units of one later level: that level fills in. With
        # the remainder forced (dense), only the remainder's levels may fill.
        watched = [k for k in keys if dense is None or k[1] not in dense]
        # (rows are in order: finalize's codes are sorted)
        crossed = [k for k in watched if np.any(relations[k][0][1:] == relations[k][0][:-1])]
        if crossed and dense is not None:
            label = (lambda l: names[l] if names else l)
            raise ValueError(f"eliminating level {label(a)!r} couples units of level "
                             f"{label(crossed[0][1])!r}, which is not among the shared "
                             f"levels {[label(l) for l in sorted(dense)]} (crossed within "
                             f"a shard)")
        if crossed:
            dense_levels = order[pos + 1:]
            crossed_keys = keys
            break
        for x in range(len(keys)):
            for y in range(x + 1, len(keys)):
                if dense is not None and keys[x][1] in dense and keys[y][1] in dense:
                    continue            # fill inside the remainder: the step's own pairs
                (r1, c1), (r2, c2) = relations[keys[x]], relations[keys[y]]
                i, j = _join_on_rows(r1, r2)
                b.add_pairs(keys[x][1], c1[i], keys[y][1], c2[j])
    n_dense = int(sum(sizes[lvl] * block[lvl] for lvl in dense_levels))
    check_budget(sizes, block, sparse_order, dense_levels, relations, n_dense, memory_limit,
                 names)
    start, supernodes = {}, None
    if dense_levels and dense is not None:
        start = _level_order_remainder(sizes, block, dense_levels)
    elif dense_levels:
        start, supernodes = _place_remainder(sizes, block, dense_levels, relations,
                                             crossed_keys, b.pending, last)
    sched = Schedule(sizes, block, sparse_order, dense_levels, start, n_dense,
                     relations, {}, {}, supernodes=supernodes)
    lookup = _TargetLookup(sched, b.rank, codes)
    for c, scope in scopes.items():
        sched.assembly[c] = [(i, j, lookup.block_target(scope[i][0], scope[i][1],
                                                         scope[j][0], scope[j][1]))
                             for i in range(len(scope)) for j in range(i, len(scope))]
        sched.assembly_rhs[c] = [lookup.vector_target(s, u) for s, u in scope]
    for a in sparse_order:
        sched.steps.append(_elimination_step(sched, lookup, a, b.rank))
    return sched


def _level_order_remainder(sizes, block, dense_levels):
    """{level: (n_l,) first row of each unit}: the remainder's units level by level in
    ``dense_levels`` order, each level's units in table order."""
    start, row = {}, 0
    for lvl in dense_levels:
        start[lvl] = row + block[lvl] * np.arange(sizes[lvl], dtype=np.intp)
        row += int(sizes[lvl] * block[lvl])
    return start


def _place_remainder(sizes, block, dense_levels, relations, crossed_keys, pending, last):
    """({level: (n_l,) first row of each unit}, Supernodes or None): the remainder's
    units in ordering.order_remainder's order. Its graph: the pairs already coupled
    (scopes, earlier fill) and, per unit of the crossed level, a clique of its
    neighbours (the fill its elimination makes)."""
    node0, N = {}, 0
    for lvl in dense_levels:
        node0[lvl], N = N, N + int(sizes[lvl])
    weight = np.concatenate([np.full(sizes[lvl], block[lvl]) for lvl in dense_levels])
    pair_u, pair_v = [np.zeros(0, np.intp)], [np.zeros(0, np.intp)]
    for (s, t), parts in pending.items():
        if s in node0 and t in node0:
            codes = _distinct(np.concatenate(parts))
            pair_u.append(node0[s] + codes // sizes[t])
            pair_v.append(node0[t] + codes % sizes[t])
    rows = np.concatenate([relations[k][0] for k in crossed_keys])
    nodes = np.concatenate([node0[k[1]] + relations[k][1] for k in crossed_keys])
    by_unit = np.argsort(rows, kind="stable")
    ptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=sizes[crossed_keys[0][0]]))])
    n_last = int(sum(sizes[lvl] for lvl in dense_levels if lvl in last))
    position, supernodes = order_remainder(weight, np.concatenate(pair_u),
                                           np.concatenate(pair_v), ptr, nodes[by_unit], n_last)
    by_place = np.argsort(position)
    row0 = np.empty(N, np.intp)
    row0[by_place] = np.concatenate([[0], np.cumsum(weight[by_place])[:-1]])
    return {lvl: row0[node0[lvl]:node0[lvl] + sizes[lvl]] for lvl in dense_levels}, supernodes


def _elimination_step(sched, lookup, a, rank):
    keys = sorted((k for k in sched.relations if k[0] == a), key=lambda k: rank[k[1]])
    rhs = [lookup.vector_target(k[1], sched.relations[k][1]) for k in keys]
    return EliminationStep(a, keys, rhs, functools.partial(_step_pairs, sched, lookup, keys))


def _step_pairs(sched, lookup, keys):
    pairs = []
    for x, k1 in enumerate(keys):
        for k2 in keys[x:]:
            (r1, c1), (r2, c2) = sched.relations[k1], sched.relations[k2]
            i, j = _join_on_rows(r1, r2)
            if k1 == k2:
                keep = i <= j
                i, j = i[keep], j[keep]
            target = lookup.block_target(k1[1], c1[i], k2[1], c2[j])
            pairs.append((k1, k2, i, j, target))
    return pairs


class _TargetLookup:
    def __init__(self, sched, rank, codes):
        self.s, self.rank, self.codes = sched, rank, codes

    def vector_target(self, level, units):
        if level in self.s.dense_start:
            return VectorTarget("dense", flat=self.s.dense_rows(level, units))
        return VectorTarget("sparse", level=level, units=units)

    def block_target(self, s, u, t, v):
        dense = self.s.dense_start
        if s in dense and t in dense:
            rows, cols = self.s.dense_rows(s, u), self.s.dense_rows(t, v)
            n = self.s.n_dense
            flat = rows[:, :, None] * n + cols[:, None, :]
            if s == t and np.array_equal(u, v):
                return Target("dense", flat=flat)
            flat_t = cols[:, None, :] * n + rows[:, :, None]
            if s == t:  # same level: diagonal pairs add once, others twice
                flat_t = np.where((u == v)[:, None, None], -1, flat_t)
            return Target("dense", flat=flat, flat_t=flat_t)
        if s == t:
            if not np.array_equal(u, v):
                raise AssertionError("within-level fill outside the dense remainder")
            return Target("diag", level=s, units=u)
        transpose = self.rank[s] > self.rank[t]
        if transpose:
            s, u, t, v = t, v, s, u
        codes = u.astype(np.int64) * self.s.sizes[t] + v
        slots = np.searchsorted(self.codes[(s, t)], codes)
        return Target("rel", key=(s, t), slots=slots, transpose=transpose)
