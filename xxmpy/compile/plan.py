"""Index arrays that build every level's factor terms from the flat matrix vector.

Each factor family of a level (y-factors and eta-factors, engine.md section 2)
is a few gathers from the flat vector ``vals`` of compile/slots.py:

  A_i   = a_const + a_sign * vals[a_index]   (r, M); data. cells of unit i added
  d_i   = d0_i + d_sign * Coef x_i,  Coef = vals[c_index] (r, ncol),
          x_i = [1, own xs, parents' xs]; data. cells of the offset matrices are in d0
  W_k   = the inverse of missing pattern k's block of theta (psi for etas)

and the gradient runs the same maps backwards. Built once per problem, at
compile time; nothing here depends on parameter values. The compiled driver
(engine/_program.pyx) and the numpy reference (engine/reference/terms.py)
both walk these arrays.
"""
from dataclasses import dataclass

import numpy as np

# theta / psi blocks more ill-conditioned than this are inadmissible: the
# precision form would lose its digits
MAX_CONDITION = 1e9


@dataclass(frozen=True)
class TermPlan:
    """Index arrays that build one factor family of level ``name`` from ``vals``.

    r rows (ys or etas), M scope etas, n units, ncol offset columns.
    a_index / a_sign / a_const: (r, M); a_data_pos: (kd,) flat cells of A set
    per unit to a_data (n, kd) (data. elements, sign included), or None.
    X: (n, ncol) offset design; c_index: (r, ncol); d0: (n, r); d_sign: +-1.
    cov_cells: (r, r) theta or psi; patterns: (n_pat, r) uint8; pat: (n,);
    counts: (n_pat,) units per pattern; wt: (n,); logdet_const: the weights'
    share of the log-determinant. beta_cells: (m, m) of the within beta (eta
    terms that have one) and beta_data_pos / beta_data (sign included) as for A.
    """
    kind: str
    name: str
    a_index: np.ndarray
    a_sign: np.ndarray
    a_const: np.ndarray
    a_data_pos: np.ndarray
    a_data: np.ndarray
    X: np.ndarray
    c_index: np.ndarray
    d0: np.ndarray
    d_sign: float
    cov_cells: np.ndarray
    patterns: np.ndarray
    pat: np.ndarray
    counts: np.ndarray
    wt: np.ndarray
    unweighted: bool
    logdet_const: float
    what: str                    # "theta at level 'x'", for errors
    beta_cells: np.ndarray = None
    beta_data_pos: np.ndarray = None
    beta_data: np.ndarray = None

    @property
    def grad_cells(self):
        """The cells gradient_values fills, in its order (A, offset, theta/psi, beta)."""
        cells = [self.a_index.ravel(), self.c_index.ravel(), self.cov_cells.ravel()]
        if self.beta_cells is not None:
            cells.append(self.beta_cells.ravel())
        return np.concatenate(cells)


def _data_cells(units, key, width, col0, sign):
    """(flat cells within an (r, width) block starting at column col0, values (n, kd))
    of the data. elements of matrix ``key``, or None."""
    cm = units.matrices.get(key)
    if cm is None or cm.data.shape[1] == 0:
        return None
    return cm.emap.data_rows * width + col0 + cm.emap.data_cols, sign * cm.data


def _design(units, slots, c, kind):
    """a_index, a_sign, a_const (r, M) and the data. cells of A for level c's ``kind`` term."""
    lev = units.levels[c]
    r = lev.p if kind == "y" else lev.n_etas
    mat_type, sign = ("lambda", 1.0) if kind == "y" else ("beta", -1.0)
    offs = units.scope_offsets[c]
    M = int(offs[-1])
    a_index = np.full((r, M), slots.zero, np.intp)
    a_sign, a_const = np.zeros((r, M)), np.zeros((r, M))
    data_pos, data_val = [], []
    for k, (s, _) in enumerate(units.scopes[c]):
        key = (c, -1 if s == c else s, mat_type)
        cols = slice(offs[k], offs[k + 1])
        if key in slots.start:
            a_index[:, cols] = slots.cells(key, (r, offs[k + 1] - offs[k]))
            a_sign[:, cols] = sign
            got = _data_cells(units, key, M, offs[k], sign)
            if got is not None:
                data_pos.append(got[0])
                data_val.append(got[1])
        if kind == "eta" and s == c:
            a_const[:, cols] += np.eye(r)
    if not data_pos:
        return a_index, a_sign, a_const, None, None
    return a_index, a_sign, a_const, np.concatenate(data_pos), np.column_stack(data_val)


def _offset(units, slots, c, kind):
    """X (n, ncol), c_index (r, ncol) and the fixed offset F (n, r) of data. elements:
    offset_i = Coef x_i + F_i with Coef = [v | K | K_cp ...] (nu, kappa or alpha, gamma)."""
    lev = units.levels[c]
    r = lev.p if kind == "y" else lev.n_etas
    vec_type, cov_type = ("nu", "kappa") if kind == "y" else ("alpha", "gamma")
    blocks = [((c, -1, vec_type), np.ones((lev.n, 1)))]
    if lev.q:
        blocks.append(((c, -1, cov_type), lev.x))
    for p, parent_rows in zip(lev.parents, lev.parent_units):
        par = units.levels[p]
        if par.q and (c, p, cov_type) in units.matrices:
            blocks.append(((c, p, cov_type), par.x[parent_rows]))
    X = np.ascontiguousarray(np.column_stack([b for _, b in blocks]))
    c_index = np.concatenate([slots.cells(key, (r, b.shape[1])) for key, b in blocks], axis=1)
    F = np.zeros((lev.n, r))
    for key, b in blocks:
        cm = units.matrices.get(key)
        if cm is not None and cm.data.shape[1]:
            for j, (row, col) in enumerate(zip(cm.emap.data_rows, cm.emap.data_cols)):
                F[:, row] += b[:, col] * cm.data[:, j]
    return X, c_index, F


def _term_plan(units, slots, c, kind):
    lev = units.levels[c]
    wt = np.ones(lev.n) if lev.weight is None else np.asarray(lev.weight, float)
    log_wt = np.log(wt)
    a_index, a_sign, a_const, a_pos, a_data = _design(units, slots, c, kind)
    X, c_index, F = _offset(units, slots, c, kind)
    if kind == "y":
        patterns, pat = lev.patterns, np.ascontiguousarray(lev.pattern_of, dtype=np.intp)
        d0, d_sign = lev.y - F, -1.0
        cov_key = (c, -1, "theta")
        logdet_const = -float(lev.patterns[pat].sum(axis=1) @ log_wt)
    else:
        patterns, pat = np.ones((1, lev.n_etas), bool), np.zeros(lev.n, np.intp)
        d0, d_sign = F, 1.0
        cov_key = (c, -1, "psi")
        logdet_const = -lev.n_etas * float(log_wt.sum())
    r = patterns.shape[1]
    beta_key, beta = (c, -1, "beta"), {}
    if kind == "eta" and beta_key in slots.start:
        beta["beta_cells"] = slots.cells(beta_key, (r, r))
        got = _data_cells(units, beta_key, r, 0, -1.0)     # I - B
        if got is not None:
            beta["beta_data_pos"], beta["beta_data"] = got
    return TermPlan(kind, lev.name, a_index, a_sign, a_const, a_pos, a_data, X, c_index,
                    np.ascontiguousarray(d0), d_sign, slots.cells(cov_key, (r, r)),
                    patterns.astype(np.uint8),
                    pat, np.bincount(pat, minlength=len(patterns)).astype(float),
                    np.ascontiguousarray(wt), lev.weight is None, logdet_const,
                    f"{cov_key[2]} at level '{lev.name}'", **beta)


class EvaluationPlan:
    """The MatrixSlots and every level's TermPlans over one set of Units; grad_cells:
    the cells of all terms' gradient values, level by level, term by term;
    grad_params: the parameter of each of those cells."""

    def __init__(self, units, slots):
        self.units, self.slots = units, slots
        self.levels = {}
        for c, lev in enumerate(units.levels):
            kinds = (["y"] if lev.p else []) + (["eta"] if lev.n_etas and not lev.flat else [])
            self.levels[c] = [_term_plan(units, self.slots, c, kind) for kind in kinds]
        cells = [tp.grad_cells for plans in self.levels.values() for tp in plans]
        self.grad_cells = np.concatenate(cells) if cells else np.zeros(0, np.intp)
        self.grad_params = self.slots.cell_param[self.grad_cells]
