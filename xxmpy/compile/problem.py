"""The compiled problem: arrays only, frozen, complete.

``compile_problem`` (compile/__init__.py) builds one ``Problem`` from a
validated specification; nothing adds to it later. Its data are copies of the
user's tables taken at compile time. The structure, stage by stage:

  Problem          what every later stage reads (parameters, matrices, units, the form)
    .params        ParameterTable: one row per free element, one parameter per label
    .slots         MatrixSlots: the one map theta -> matrices
    .units         Units: every level's units, row by row, and their elimination plan
    .form          Form: what one evaluation walks (the units collapsed to sufficient
                   statistics where possible, the index arrays, the compiled Program)
"""
import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..spec.ids import id_positions
from .form import Form, build_form
from .schedule import build_schedule, elimination_order


@dataclass(frozen=True)
class LevelData:
    """One level's data as read-only arrays; units are rows in the order of the level's table.

    y: (n, p) with 0 where missing; observed: (n, p) bool; x: (n, q).
    parents: level indices of the declared parents; parent_units[k]: (n,) the
    parent unit (row of that level) of every unit. columns: numeric column
    name -> (n,) values (for ``data.`` elements). patterns: (n_pat, p) bool
    observed patterns, pattern_of: (n,) the pattern of each unit. weight: (n,)
    unit weights of a collapsed level (compile/collapse.py), else None. flat:
    etas with a flat prior (no eta factor, no log|psi|); profiled: a flat level
    maximised over (ML) instead of integrated out (REML); shared: kept in the dense
    remainder, never eliminated block by block (a crossed shard's levels that every
    shard holds whole: distributed/crossed.py).
    """
    name: str
    ids: pd.Index
    y: np.ndarray
    observed: np.ndarray
    x: np.ndarray
    parents: tuple
    parent_units: tuple
    columns: dict
    patterns: np.ndarray
    pattern_of: np.ndarray
    n_etas: int
    weight: np.ndarray = None
    flat: bool = False
    regressor_ys: tuple = ()    # ((x index, y index), ...): xs holding ys' values
    profiled: bool = False
    shared: bool = False

    @property
    def covariates(self):
        """(q,) bool: the xs that are covariates (not the copy of a y, regressor_ys)."""
        keep = np.ones(self.q, bool)
        keep[[i for i, _ in self.regressor_ys]] = False
        return keep

    @property
    def n(self):
        return self.y.shape[0]

    @property
    def p(self):
        return self.y.shape[1]

    @property
    def q(self):
        return self.x.shape[1]


@dataclass(frozen=True)
class CompiledMatrix:
    """A matrix lowered to arrays: its ElementMap (compile/params.py) and ``data``
    (n_child, kd), each unit's values of its ``data.`` elements."""
    child: int
    parent: int          # -1 for within-level matrices
    type: str
    emap: object
    data: np.ndarray


@dataclass(frozen=True)
class Units:
    """Every level's units and the elimination plan over them (no parameter values).

    levels: LevelData per level (user order); matrices: (child, parent, type)
    (level indices, parent -1 within) -> CompiledMatrix; scopes: level -> [(level,
    units (n,))], the blocks a unit's factors touch (its own etas, then its
    parents'); scope_offsets: level -> (S+1,) where each scope slot starts among
    the scope's etas; schedule: compile/schedule.Schedule, planned when first asked
    (a problem whose leaves collapse evaluates another Units: its row-by-row one
    plans only for a posterior read from it, engine.posterior_form); plan_args: what
    build_schedule plans it from.
    """
    levels: tuple
    matrices: dict
    scopes: dict
    scope_offsets: tuple
    plan_args: tuple

    @functools.cached_property
    def schedule(self):
        """The elimination plan (ProblemTooLarge above the memory limit)."""
        return build_schedule(*self.plan_args)


def build_units(levels, matrices, descendants, memory_limit=None):
    """Units over ``levels`` (LevelData) and ``matrices``, with scopes and schedule
    (planned when first asked: then ProblemTooLarge when it needs more than
    ``memory_limit`` bytes)."""
    scopes = {}
    for c, lev in enumerate(levels):
        scope = [(c, np.arange(lev.n))] if lev.n_etas else []
        scope += [(p, u) for p, u in zip(lev.parents, lev.parent_units) if levels[p].n_etas]
        scopes[c] = scope
    offsets = []
    for c in range(len(levels)):
        offs = np.concatenate([[0], np.cumsum([levels[s].n_etas for s, _ in scopes[c]])])
        offsets.append(_frozen(offs.astype(np.intp)))
    sizes = np.array([lev.n for lev in levels])
    block = np.array([lev.n_etas for lev in levels])
    flat = {c for c, lev in enumerate(levels) if lev.flat}
    # a crossed shard's shared levels (flat ones among them) stay in the remainder
    shared = {c for c, lev in enumerate(levels) if lev.shared and lev.n_etas}
    order = elimination_order(range(len(levels)), descendants, sizes, block, flat, shared)
    return Units(tuple(levels), dict(matrices), scopes, tuple(offsets),
                 (sizes, block, scopes, order, memory_limit, [lev.name for lev in levels],
                  flat, shared or None))


@dataclass(frozen=True)
class Problem:
    """Everything the likelihood, the optimiser and the results need; see docs/internals.md.

    level_names: level names (user order, lowest first); params: ParameterTable;
    slots: MatrixSlots; units: the row-by-row Units; form: the evaluated Form;
    n_observed: observed values; n_flat: flat-prior etas (REML when > 0, unless
    they are profiled: n_profiled, the flat etas maximised over, ML);
    n_components: independent groups of units; structure: 'nested' or
    'cross-classified'; descendants: level -> levels below it; cholesky_blocks:
    (child, parent, type) -> (m, m) parameter indices of the covariance matrices
    the optimiser searches through their Cholesky factors (fit/transform.py);
    param_units: (k,) each parameter's natural unit from the data (scales.py),
    which the optimiser's floors and step scales are relative to; forms: the
    FormMap of covariance matrices written in another form (forms.py), or None:
    the engine then evaluates at engine_theta(theta), k_engine >= k parameters.
    ``row_form`` (built on first use, by this class only) is the Form over the
    uncollapsed units: the posterior of a collapsed level's own etas needs it.
    """
    level_names: list
    params: object
    slots: object
    units: Units
    form: Form
    n_observed: int
    n_flat: int
    structure: str
    descendants: tuple
    cholesky_blocks: dict
    param_units: np.ndarray
    forms: object = None
    n_profiled: int = 0

    @functools.cached_property
    def n_components(self):
        """Independent groups of units (count_components; computed when first asked)."""
        return count_components(self.levels, np.array([lev.n for lev in self.levels]))

    @property
    def estimator(self):
        """'REML' when flat etas are integrated out, else 'ML'."""
        return "REML" if self.n_flat > self.n_profiled else "ML"

    @property
    def n_integrated(self):
        """Flat etas integrated out: the rows the normal constant leaves out."""
        return self.n_flat - self.n_profiled

    @property
    def n_engine(self):
        """The engine's parameters: k, plus each form matrix's Sigma elements."""
        return self.params.n if self.forms is None else self.forms.n_engine

    def engine_theta(self, theta):
        """(n_engine,) the engine's parameters at theta (k,); None when a form matrix
        has no covariance there (inadmissible)."""
        return theta if self.forms is None else self.forms.expand(theta)

    def engine_gradient(self, theta, g_engine):
        """(k,) the gradient in theta from the engine's gradient (n_engine,)."""
        return g_engine if self.forms is None else self.forms.pullback(theta, g_engine)

    def fill(self, theta):
        """The flat matrix vector (MatrixSlots.fill) at parameters theta (k,)."""
        return self.slots.fill(self.engine_theta(theta))

    @property
    def levels(self):
        return self.units.levels

    @property
    def matrices(self):
        return self.units.matrices

    @property
    def scopes(self):
        return self.units.scopes

    @property
    def schedule(self):
        return self.units.schedule

    @functools.cached_property
    def row_form(self):
        """The Form over the row-by-row units (the evaluated form when nothing collapses)."""
        if not self.form.collapsed:
            return self.form
        return build_form(self.units, (), normal_constant(self.n_observed, self.n_integrated),
                          self.slots)

    def matrix(self, theta, key, shape, per_unit=False):
        """Matrix ``key`` at parameters theta (zeros of ``shape`` when absent); with
        ``per_unit``, an (n_child, r, c) stack carrying each unit's ``data.`` values."""
        cm = self.units.matrices.get(key)
        data = cm.data if (per_unit and cm is not None) else None
        return self.slots.matrix(self.fill(theta), key, shape, data)


LOG_2PI = float(np.log(2.0 * np.pi))


def normal_constant(n_observed, n_flat):
    """(N - flat rows) log 2 pi: -2 log L's constant before any collapse's Jacobian."""
    return (n_observed - n_flat) * LOG_2PI


def _frozen(a):
    a.flags.writeable = False
    return a


def _float_columns(data, names):
    """(n, len(names)) a float copy of the columns ``names`` of ``data`` (missing values
    NaN), a column at a time (selecting a list of columns builds a DataFrame first)."""
    out = np.empty((len(data), len(names)))
    for j, name in enumerate(names):
        out[:, j] = data[name].to_numpy(dtype=float, na_value=np.nan)
    return out


def level_data(sub, ids, index, read=None):
    """LevelData of a validated submodel: copies of its table's values, read-only;
    columns: the numeric columns in ``read`` (those data. elements read; all when
    None)."""
    data = sub.data
    n = len(data)
    y = _float_columns(data, sub.ys)
    observed = ~np.isnan(y)
    x = _float_columns(data, sub.xs)
    parents = tuple(index[p] for p in sub.parents)
    parent_units = tuple(_frozen(id_positions(ids[p], data[p])) for p in sub.parents)
    numeric = [c for c in data.columns if (read is None or c in read)
               and pd.api.types.is_numeric_dtype(data[c])]
    columns = {c: _frozen(data[c].to_numpy(dtype=float, copy=True)) for c in numeric}
    if y.shape[1] and observed.all():        # one pattern: nothing missing
        patterns, pattern_of = np.ones((1, y.shape[1]), bool), np.zeros(n, np.intp)
    elif y.shape[1]:
        keys, pattern_of = unique_rows(list(observed.T.astype(np.intp)))
        patterns = keys.astype(bool)
    else:
        patterns, pattern_of = np.ones((1, 0), bool), np.zeros(n, np.intp)
    return LevelData(sub.level, ids[sub.level], _frozen(np.where(observed, y, 0.0)),
                     _frozen(observed), _frozen(x), parents, parent_units, columns,
                     _frozen(patterns), _frozen(pattern_of.ravel()), len(sub.etas),
                     flat=bool(sub.flat), profiled=sub.profiled,
                     regressor_ys=tuple((sub.xs.index(x), sub.ys.index(y))
                                        for x, y in sub.regressor_ys.items()))


def unique_rows(cols):
    """Distinct rows of the table whose columns are the non-negative integer arrays
    ``cols``, in np.unique(axis=0) order, and the row index of each unit:
    (keys (G, len(cols)), group (n,)). The columns are packed into one integer
    when they fit (a 1-d unique is far faster than a row-wise one on large tables),
    and counted rather than sorted when the packed codes are few (at most 4 per row:
    the same keys and groups in O(n)). Where one column varies and holds every code
    0..G-1, it is the groups itself (returned, not copied)."""
    varying = [j for j, col in enumerate(cols) if col.any()]
    if len(varying) == 1 and cols[varying[0]].size:   # one column varies (the others 0)
        col = cols[varying[0]]
        present = np.bincount(col) > 0
        if present.all():                 # its codes 0..G-1 all occur: they are the groups
            keys = np.zeros((present.size, len(cols)), col.dtype)
            keys[:, varying[0]] = np.arange(present.size)
            return keys, col
    sizes = [int(col.max()) + 1 if col.size else 1 for col in cols]
    total = np.prod([float(k) for k in sizes])
    if total < 2.0 ** 62:
        packed = np.ravel_multi_index(cols, sizes)
        if total <= 4 * max(packed.size, 1):
            present = np.bincount(packed, minlength=int(total)) > 0
            codes = np.flatnonzero(present)
            lookup = np.cumsum(present) - 1
            return np.column_stack(np.unravel_index(codes, sizes)), lookup[packed]
        codes, group = np.unique(packed, return_inverse=True)
        return np.column_stack(np.unravel_index(codes, sizes)), group.ravel()
    keys, group = np.unique(np.column_stack(cols), axis=0, return_inverse=True)
    return keys, group.ravel()


def count_components(levels, sizes):
    """Independent groups of units: connected components of the unit graph. When every
    level has at most one parent the graph is a forest, one tree per unit without a
    parent; otherwise they are counted on the graph."""
    if all(len(lev.parents) <= 1 for lev in levels):
        return int(sum(lev.n for lev in levels if not lev.parents))
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
