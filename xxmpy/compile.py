"""Compile a validated model into a frozen numeric problem: arrays only.

Compilation runs once per model; the objective, the optimiser and the
profile CIs reuse the result and never recompile.
"""
import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .params import build_parameter_table
from .schedule import build_schedule, elimination_order


@dataclass
class LevelData:
    """One level's data as arrays; units are rows in the order of the level's table.

    y: (n, p) with 0 where missing; observed: (n, p) bool; x: (n, q).
    parents: level indices of the declared parents; parent_units[k]: (n,) the
    parent unit (row of that level) of every unit. patterns: (n_pat, p) bool
    observed patterns, pattern_of: (n,) the pattern of each unit.
    """
    name: str
    ids: pd.Index
    y: np.ndarray
    observed: np.ndarray
    x: np.ndarray
    parents: list
    parent_units: list
    columns: dict
    patterns: np.ndarray
    pattern_of: np.ndarray
    n_etas: int
    weight: np.ndarray = None    # (n,) per-unit weights of a collapsed level (collapse.py)
    flat: bool = False           # etas with a flat prior (no eta factor, no log|psi|)

    @property
    def n(self):
        return self.y.shape[0]

    @property
    def p(self):
        return self.y.shape[1]

    @property
    def q(self):
        return self.x.shape[1]


@dataclass
class CompiledMatrix:
    """A matrix lowered to arrays; ``data`` is (n_child, k) for its data. elements."""
    child: int
    parent: int          # -1 for within-level matrices
    type: str
    emap: object         # params.ElementMap
    data: np.ndarray

    def materialize(self, theta):
        """(r, c) matrix at parameters theta, or (n_child, r, c) with data. elements."""
        mat = self.emap.base.copy()
        mat[self.emap.free_rows, self.emap.free_cols] = theta[self.emap.free_param]
        if self.data.shape[1] == 0:
            return mat
        out = np.repeat(mat[None], self.data.shape[0], axis=0)
        out[:, self.emap.data_rows, self.emap.data_cols] = self.data
        return out


@dataclass
class Problem:
    """Everything the likelihood needs, as arrays; see docs/internals.md."""
    level_names: list
    levels: list                 # LevelData per level, user order
    matrices: dict               # (child, parent, type) -> CompiledMatrix
    params: object               # params.ParameterTable
    scopes: dict                 # level -> [(level, units)] own first, then parents
    schedule: object             # schedule.Schedule
    n_observed: int
    n_components: int
    structure: str
    descendants: list = None     # level -> levels below it (for re-planning)

    @functools.cached_property
    def n_flat(self):
        """Number of flat-prior etas (fixed effects integrated out; REML when > 0)."""
        return int(sum(lev.n * lev.n_etas for lev in self.levels if lev.flat))

    def scope_offsets(self, c):
        """(S+1,) where each scope slot of level c starts among its M scope etas (cached)."""
        cache = self.__dict__.setdefault("_scope_offsets", {})
        if c not in cache:
            offs = np.concatenate([[0], np.cumsum([self.levels[s].n_etas
                                                   for s, _ in self.scopes[c]])]).astype(np.intp)
            offs.flags.writeable = False
            cache[c] = offs
        return cache[c]

    def matrix(self, theta, child, parent, type_, shape):
        cm = self.matrices.get((child, parent, type_))
        return np.zeros(shape) if cm is None else cm.materialize(theta)


def compile_model(checked):
    """CheckedModel -> Problem."""
    spec = checked.spec
    names = list(spec.levels)
    index = {name: k for k, name in enumerate(names)}
    ids = {name: pd.Index(spec.submodels[name].data[name]) for name in names}
    levels = [_level_data(spec.submodels[name], ids, index) for name in names]
    params = build_parameter_table(checked.matrices)
    matrices = {}
    for m in checked.matrices:
        c = index[m.child]
        p = -1 if m.parent is None else index[m.parent]
        emap = params.element_maps[(m.child, m.parent, m.type)]
        data = np.column_stack([levels[c].columns[col] for col in emap.data_columns]) \
            if emap.data_columns else np.zeros((levels[c].n, 0))
        matrices[(c, p, m.type)] = CompiledMatrix(c, p, m.type, emap, data)
    descendants = [[index[d] for d in checked.graph.descendants(name)] for name in names]
    scopes, schedule = plan(levels, descendants)
    sizes = np.array([lev.n for lev in levels])
    return Problem(names, levels, matrices, params, scopes, schedule,
                   int(sum(lev.observed.sum() for lev in levels)),
                   _count_components(levels, sizes), checked.graph.structure, descendants)


def plan(levels, descendants):
    """Scopes (level -> [(level, units)], own etas first) and the elimination Schedule."""
    scopes = {}
    for c, lev in enumerate(levels):
        scope = [(c, np.arange(lev.n))] if lev.n_etas else []
        scope += [(p, u) for p, u in zip(lev.parents, lev.parent_units) if levels[p].n_etas]
        scopes[c] = scope
    sizes = np.array([lev.n for lev in levels])
    block = np.array([lev.n_etas for lev in levels])
    order = elimination_order(range(len(levels)), descendants, sizes, block)
    return scopes, build_schedule(sizes, block, scopes, order)


def _level_data(sub, ids, index):
    data = sub.data
    n = len(data)
    y = data[sub.ys].to_numpy(dtype=float).reshape(n, len(sub.ys))
    observed = ~np.isnan(y)
    x = data[sub.xs].to_numpy(dtype=float).reshape(n, len(sub.xs))
    parents = [index[p] for p in sub.parents]
    parent_units = [ids[p].get_indexer(data[p]).astype(np.intp) for p in sub.parents]
    numeric = [c for c in data.columns if pd.api.types.is_numeric_dtype(data[c])]
    columns = {c: data[c].to_numpy(dtype=float) for c in numeric}
    if y.shape[1]:
        keys, pattern_of = unique_rows(list(observed.T.astype(np.intp)))
        patterns = keys.astype(bool)
    else:
        patterns, pattern_of = np.ones((1, 0), bool), np.zeros(n, np.intp)
    return LevelData(sub.level, ids[sub.level], np.where(observed, y, 0.0), observed, x,
                     parents, parent_units, columns, patterns,
                     pattern_of.ravel(), len(sub.etas), flat=sub.flat)


def unique_rows(cols):
    """Distinct rows of the table whose columns are the non-negative integer arrays
    ``cols``, in np.unique(axis=0) order, and the row index of each unit:
    (keys (G, len(cols)), group (n,)). The columns are packed into one integer
    when they fit (a 1-d unique is far faster than a row-wise one on large tables)."""
    sizes = [int(col.max()) + 1 if col.size else 1 for col in cols]
    if np.prod([float(k) for k in sizes]) < 2.0 ** 62:
        codes, group = np.unique(np.ravel_multi_index(cols, sizes), return_inverse=True)
        return np.column_stack(np.unravel_index(codes, sizes)), group.ravel()
    keys, group = np.unique(np.column_stack(cols), axis=0, return_inverse=True)
    return keys, group.ravel()


def _count_components(levels, sizes):
    """Independent groups of units: connected components of the unit graph."""
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    rows, cols = [], []
    for c, lev in enumerate(levels):
        for p, units in zip(lev.parents, lev.parent_units):
            rows.append(offsets[c] + np.arange(lev.n))
            cols.append(offsets[p] + units)
    total = int(offsets[-1])
    if not rows:
        return total
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(total, total))
    return int(connected_components(graph, directed=False)[0])
