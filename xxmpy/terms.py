"""Every level's factor terms at a parameter vector, through index arrays built once.

All matrices of a problem share one flat vector ``vals`` (``MatrixSlots``):
vals = base, vals[free_pos] = theta[free_par], and two constant cells, 0 and
1, at the end. Each factor family of a level (likelihood.py's y- and
eta-factors) is then a few gathers from ``vals`` (``TermPlan``):

  A_i   = a_const + a_sign * vals[a_index]   (r, M); data. cells of unit i added
  d_i   = d0_i + d_sign * Coef x_i,  Coef = vals[c_index] (r, ncol),
          x_i = [1, own xs, parents' xs]; data. cells of the offset matrices are in d0
  W_k   = the inverse of missing pattern k's block of theta (psi for etas)

and the gradient runs the same maps backwards: each gradient value lands on
its cell's parameter (``cell_param``), d/d theta = bincount(cell_param[cells],
values). Built once per problem (``plan_for``); an evaluation costs a few
numpy calls per level.
"""
from dataclasses import dataclass

import numpy as np

from ._core import kernels
from ._core.elimination import NotPositiveDefinite

# theta / psi blocks more ill-conditioned than this are inadmissible: the
# precision form would lose its digits
MAX_CONDITION = 1e9


class MatrixSlots:
    """Where every matrix of a problem lives in the flat vector ``vals``.

    size: cells of all matrices; vals has size + 2 cells, the last two the
    constants 0 (``zero``) and 1. free_pos / free_par: (F,) the cell and the
    parameter of every free element (both triangles of a symmetric matrix);
    cell_param: (size + 2,) the parameter of every cell, n_params where fixed.
    """

    def __init__(self, problem):
        self.start, self.shape, base, pos, par = {}, {}, [], [], []
        at = 0
        for key, cm in problem.matrices.items():
            rows, cols = cm.emap.base.shape
            self.start[key], self.shape[key] = at, (rows, cols)
            base.append(cm.emap.base.ravel())
            pos.append(at + cm.emap.free_rows * cols + cm.emap.free_cols)
            par.append(cm.emap.free_param)
            at += rows * cols
        self.size, self.zero, self.n_params = at, at, problem.params.n
        self.base = np.concatenate(base + [[0.0, 1.0]])
        self.free_pos = np.concatenate(pos + [np.zeros(0, np.intp)]).astype(np.intp)
        self.free_par = np.concatenate(par + [np.zeros(0, np.intp)]).astype(np.intp)
        # the parameter of every cell; n_params (a spare bin) for fixed cells
        self.cell_param = np.full(self.size + 2, self.n_params, np.intp)
        self.cell_param[self.free_pos] = self.free_par

    def fill(self, theta):
        vals = self.base.copy()
        vals[self.free_pos] = theta[self.free_par]
        return vals

    def cells(self, key, shape):
        """(rows, cols) cell indices of matrix ``key`` (all ``zero`` when it is absent)."""
        if key not in self.start:
            return np.full(shape, self.zero, np.intp)
        rows, cols = self.shape[key]
        return self.start[key] + np.arange(rows * cols, dtype=np.intp).reshape(rows, cols)


@dataclass
class FactorTerm:
    """One family of Gaussian factors of a level: d_i = A_i eta_scope + e_i, e_i ~ N(0, W_i^-1).

    kind 'y' (residuals of ys) or 'eta' (residuals of etas). A: (n, r, M), or
    (1, r, M) when all units share it; d: (n, r); W_pat: (n_pat, r, r) the
    distinct inverse residual covariances (zero rows and columns where a y is
    missing); pat: (n,) intp, unit i uses wt[i] W_pat[pat[i]].
    """
    kind: str
    A: np.ndarray
    d: np.ndarray
    W_pat: np.ndarray
    pat: np.ndarray
    wt: np.ndarray               # (n,) unit weights (1, or n_g for a collapsed group)
    plan: object = None          # the TermPlan that built it
    ib: np.ndarray = None        # I - B, (1, m, m) or (n, m, m), of an eta term with a within beta

    @property
    def W(self):
        """Per-unit weights (n, r, r), or the one (r, r) matrix of an unweighted eta term."""
        if self.kind == "eta" and self.plan.unweighted:
            return self.W_pat[0]
        return self.W_pat[self.pat] * self.wt[:, None, None]


@dataclass
class LevelTerms:
    """A level's factor terms and the log-determinants its likelihood adds."""
    terms: list
    logdet_theta: float
    logdet_psi: float
    logdet_ib: float

    @property
    def logdets(self):
        return self.logdet_theta + self.logdet_psi - 2.0 * self.logdet_ib


def inverse_and_logdet(mat, what):
    """(inverse, log det) of one SPD matrix; NotPositiveDefinite when it is not
    or when its condition number exceeds MAX_CONDITION."""
    pattern = np.ones((1, mat.shape[0]), bool)
    inv, logdet = pattern_inverses(np.asarray(mat, float), pattern, what)
    return inv[0], float(logdet[0])


def pattern_inverses(cov, patterns, what, max_condition=MAX_CONDITION):
    """Inverse and log det of the observed block of ``cov`` (r, r) for every pattern.

    patterns: (n_pat, r) uint8 (or bool). Returns W (n_pat, r, r) with zero rows
    and columns where a pattern has no observation, and log dets (n_pat,).
    Raises NotPositiveDefinite when a block is not positive definite or its
    Frobenius condition number trace(S) ||L^-1||_F^2 (>= cond_2(S); the ratio of
    the Cholesky diagonal alone misses ill-conditioning carried by a large
    off-diagonal) exceeds ``max_condition``.
    """
    if not (cov.flags.c_contiguous and cov.dtype == np.float64):
        cov = np.ascontiguousarray(cov, dtype=float)
    if not (patterns.flags.c_contiguous and patterns.dtype == np.uint8):
        patterns = np.ascontiguousarray(patterns, dtype=np.uint8)
    try:
        W, logdet, cond = kernels.pattern_inverses(cov, patterns)
    except ArithmeticError as exc:
        raise NotPositiveDefinite(f"{what} is not positive definite") from exc
    if cov.shape[0] > 1 and len(cond) and cond.max() > max_condition:
        raise NotPositiveDefinite(f"{what} is numerically singular (condition > 1e9)")
    return W, logdet


@dataclass
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

    def build(self, vals):
        """The FactorTerm at ``vals`` and its (log|theta or psi| share, log|I - B|)."""
        A = _per_unit(self.a_const + self.a_sign * vals[self.a_index], self.a_data_pos,
                      self.a_data)
        d = self.d0 + self.d_sign * (self.X @ vals[self.c_index].T)
        W_pat, logdet = pattern_inverses(vals[self.cov_cells], self.patterns, self.what)
        ld_cov = float(self.counts @ logdet) + self.logdet_const
        term = FactorTerm(self.kind, A, d, W_pat, self.pat, self.wt, self)
        ld_ib = 0.0
        if self.beta_cells is not None:
            ib = _per_unit(np.eye(len(self.beta_cells)) - vals[self.beta_cells],
                           self.beta_data_pos, self.beta_data)
            sign, ld_b = np.linalg.slogdet(ib)
            if np.any(sign == 0):
                raise NotPositiveDefinite(f"I - beta at level '{self.name}' is singular")
            ld_ib = float(np.sum(ld_b)) * (len(self.d0) // len(ib))   # a shared I - B: n times
            term.ib = ib
        return term, ld_cov, ld_ib

    @property
    def grad_cells(self):
        """The cells gradient_values fills, in its order (A, offset, theta/psi, beta)."""
        cells = [self.a_index.ravel(), self.c_index.ravel(), self.cov_cells.ravel()]
        if self.beta_cells is not None:
            cells.append(self.beta_cells.ravel())
        return np.concatenate(cells)

    def gradient_values(self, term, gA, gd, wrw):
        """d(-2 log L)/d vals at ``grad_cells`` for this term, given its posterior
        moments (engines.py): gA (r, M), gd (n, r), wrw (r, r)."""
        w_sum = self.counts @ term.W_pat.reshape(len(self.counts), -1)
        values = [(self.a_sign * gA).ravel(), self.d_sign * (gd.T @ self.X).ravel(),
                  w_sum - wrw.ravel()]
        if self.beta_cells is not None:        # -2 log|I - B|: d/dB = 2 (I - B)^-T
            inv_t = np.linalg.inv(term.ib).swapaxes(-1, -2)
            values.append(2.0 * (len(self.d0) // len(inv_t)) * inv_t.sum(axis=0).ravel())
        return values


def _per_unit(block, data_pos, data):
    """(1, r, c) ``block`` shared by all units, or (n, r, c) with each unit's data.
    values (n, kd) added at the flat cells data_pos (kd,)."""
    if data_pos is None:
        return block[None]
    out = np.repeat(block.reshape(1, -1), len(data), axis=0)
    out[:, data_pos] += data
    return out.reshape((len(data),) + block.shape)


def _data_cells(problem, key, width, col0, sign):
    """(flat cells within an (r, width) block starting at column col0, values (n, kd))
    of the data. elements of matrix ``key``, or None."""
    cm = problem.matrices.get(key)
    if cm is None or cm.data.shape[1] == 0:
        return None
    return cm.emap.data_rows * width + col0 + cm.emap.data_cols, sign * cm.data


def _design(problem, slots, c, kind):
    """a_index, a_sign, a_const (r, M) and the data. cells of A for level c's ``kind`` term."""
    lev = problem.levels[c]
    r = lev.p if kind == "y" else lev.n_etas
    mat_type, sign = ("lambda", 1.0) if kind == "y" else ("beta", -1.0)
    offs = problem.scope_offsets(c)
    M = int(offs[-1])
    a_index = np.full((r, M), slots.zero, np.intp)
    a_sign, a_const = np.zeros((r, M)), np.zeros((r, M))
    data_pos, data_val = [], []
    for k, (s, _) in enumerate(problem.scopes[c]):
        key = (c, -1 if s == c else s, mat_type)
        cols = slice(offs[k], offs[k + 1])
        if key in slots.start:
            a_index[:, cols] = slots.cells(key, (r, offs[k + 1] - offs[k]))
            a_sign[:, cols] = sign
            got = _data_cells(problem, key, M, offs[k], sign)
            if got is not None:
                data_pos.append(got[0])
                data_val.append(got[1])
        if kind == "eta" and s == c:
            a_const[:, cols] += np.eye(r)
    if not data_pos:
        return a_index, a_sign, a_const, None, None
    return a_index, a_sign, a_const, np.concatenate(data_pos), np.column_stack(data_val)


def _offset(problem, slots, c, kind):
    """X (n, ncol), c_index (r, ncol) and the fixed offset F (n, r) of data. elements:
    offset_i = Coef x_i + F_i with Coef = [v | K | K_cp ...] (nu, kappa or alpha, gamma)."""
    lev = problem.levels[c]
    r = lev.p if kind == "y" else lev.n_etas
    vec_type, cov_type = ("nu", "kappa") if kind == "y" else ("alpha", "gamma")
    blocks = [((c, -1, vec_type), np.ones((lev.n, 1)))]
    if lev.q:
        blocks.append(((c, -1, cov_type), lev.x))
    for p, units in zip(lev.parents, lev.parent_units):
        par = problem.levels[p]
        if par.q and (c, p, cov_type) in problem.matrices:
            blocks.append(((c, p, cov_type), par.x[units]))
    X = np.ascontiguousarray(np.column_stack([b for _, b in blocks]))
    c_index = np.concatenate([slots.cells(key, (r, b.shape[1])) for key, b in blocks], axis=1)
    F = np.zeros((lev.n, r))
    for key, b in blocks:
        cm = problem.matrices.get(key)
        if cm is not None and cm.data.shape[1]:
            for j, (row, col) in enumerate(zip(cm.emap.data_rows, cm.emap.data_cols)):
                F[:, row] += b[:, col] * cm.data[:, j]
    return X, c_index, F


def _term_plan(problem, slots, c, kind):
    lev = problem.levels[c]
    wt = np.ones(lev.n) if lev.weight is None else np.asarray(lev.weight, float)
    log_wt = np.log(wt)
    a_index, a_sign, a_const, a_pos, a_data = _design(problem, slots, c, kind)
    X, c_index, F = _offset(problem, slots, c, kind)
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
    plan = TermPlan(kind, lev.name, a_index, a_sign, a_const, a_pos, a_data, X, c_index,
                    np.ascontiguousarray(d0), d_sign, slots.cells(cov_key, (r, r)),
                    patterns.astype(np.uint8),
                    pat, np.bincount(pat, minlength=len(patterns)).astype(float),
                    np.ascontiguousarray(wt), lev.weight is None, logdet_const,
                    f"{cov_key[2]} at level '{lev.name}'")
    beta_key = (c, -1, "beta")
    if kind == "eta" and beta_key in slots.start:
        plan.beta_cells = slots.cells(beta_key, (r, r))
        got = _data_cells(problem, beta_key, r, 0, -1.0)     # I - B
        if got is not None:
            plan.beta_data_pos, plan.beta_data = got
    return plan


class EvaluationPlan:
    """The MatrixSlots and every level's TermPlans of one problem; grad_cells: the
    cells of all terms' gradient values, level by level, term by term."""

    def __init__(self, problem):
        self.problem, self.slots = problem, MatrixSlots(problem)
        self.levels = {}
        for c, lev in enumerate(problem.levels):
            kinds = (["y"] if lev.p else []) + (["eta"] if lev.n_etas and not lev.flat else [])
            self.levels[c] = [_term_plan(problem, self.slots, c, kind) for kind in kinds]
        cells = [tp.grad_cells for plans in self.levels.values() for tp in plans]
        self.grad_cells = np.concatenate(cells) if cells else np.zeros(0, np.intp)
        self.grad_params = self.slots.cell_param[self.grad_cells]

    def terms(self, theta):
        """(vals, {level: LevelTerms}) at parameters theta."""
        vals = self.slots.fill(np.asarray(theta, float))
        out = {}
        for c, plans in self.levels.items():
            terms, lds = [], {"y": 0.0, "eta": 0.0}
            ld_ib = 0.0
            for tp in plans:
                term, ld, ld_b = tp.build(vals)
                terms.append(term)
                lds[tp.kind] += ld
                ld_ib += ld_b
            out[c] = LevelTerms(terms, lds["y"], lds["eta"], ld_ib)
        return vals, out


def plan_for(problem):
    """The problem's EvaluationPlan, built on first use and kept on the problem."""
    got = getattr(problem, "_plan", None)
    if got is None:
        got = problem._plan = EvaluationPlan(problem)
    return got
