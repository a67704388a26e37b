"""Design of a linear mixed model: y, X, and per grouping factor its Z blocks.

formulaic builds every design matrix (fixed part and each bar's left-hand
side) and keeps the encoding (``model_spec``) so that ``predict(newdata)``
rebuilds the same columns; a side made only of the intercept and numeric
columns is built directly, with the same columns (plain_columns.py). Rows
with a missing value in any variable the model uses are dropped first (lme4's
na.omit), and the matrices are built on the remaining rows.
"""
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import ProblemCollector, SpecificationError
from ..spec.objects import is_dask_frame
from ..compile.grouping import changes
from ..compile.problem import unique_rows
from ..fit.information import group_moments
from .formula import parse_formula
from .plain_columns import plain_matrices, plain_matrix
from .safety import EVAL_CONTEXT, check_formula

INTERCEPT = "(Intercept)"


def _model_matrix(rhs, data, what, problems):
    import formulaic
    try:
        return formulaic.model_matrix(rhs, data, na_action="ignore", context=EVAL_CONTEXT)
    except Exception as exc:            # formulaic raises many kinds; report them all alike
        problems.add(f"lmer: could not build the {what} from '{rhs}': {exc}")
        return None


def _names(columns):
    return [INTERCEPT if c == "Intercept" else str(c) for c in columns]


@dataclass
class Block:
    """One random-effects term on a factor: its columns (n, k) and their names."""
    names: list
    Z: np.ndarray
    spec: object            # formulaic ModelSpec, to rebuild the columns for new data
    rhs: str
    columns: list           # the block's columns among spec's (formulaic names)

    def columns_for(self, data):
        """(n, k) columns of this block for new rows (NaN where a variable is missing)."""
        mm = self.spec.get_model_matrix(data, na_action="ignore", context=EVAL_CONTEXT)
        return mm[self.columns].to_numpy(dtype=float)


@dataclass
class Factor:
    """A grouping factor: its groups, each row's group, its blocks, the factor it nests in.

    Groups are distinct tuples of the grouping columns' values (an interaction
    ``a:b`` is of values, never of joined strings). values: per column, the
    distinct values seen in the fit (pd.Index); keys: (G, len(columns)) each
    group's position in those; groups: the group labels shown to users (the
    values joined by ':', or the tuples where joining would merge two groups).
    """
    name: str
    columns: tuple
    groups: pd.Index                     # group labels (strings), code k = groups[k]
    codes: np.ndarray                    # (n,) group of each row
    values: list = field(default_factory=list)
    keys: np.ndarray = None
    blocks: list = field(default_factory=list)
    parent: str = None                   # a coarser factor every group lies within
    _moments: np.ndarray = field(default=None, repr=False, compare=False)

    def moments(self):
        """(G, q, q) Z_g'Z_g of every group g (q: its effects), computed once (the start
        values and the first curvature both read them)."""
        if self._moments is None:
            self._moments = group_moments(self.codes, self.Z, len(self.groups))
        return self._moments

    def codes_for(self, data):
        """(n,) group of each row of new ``data`` (-1 for a group the fit has not seen);
        values match by equality (308.0 is group 308), not by their printed form."""
        per = [vals.get_indexer(data[c]) for vals, c in zip(self.values, self.columns)]
        seen = np.all(np.stack(per) >= 0, axis=0)
        sizes = [len(v) for v in self.values]
        fitted = np.ravel_multi_index(tuple(self.keys.T), sizes)
        order = np.argsort(fitted)
        new = np.ravel_multi_index(tuple(np.where(seen, p, 0) for p in per), sizes)
        pos = np.clip(np.searchsorted(fitted[order], new), 0, len(order) - 1)
        hit = seen & (fitted[order][pos] == new)
        return np.where(hit, order[pos], -1)

    @property
    def effect_names(self):
        names = [n for b in self.blocks for n in b.names]
        seen, out = {}, []
        for n in names:                  # '(1|g) + (1|g)': keep the effects apart
            seen[n] = seen.get(n, 0) + 1
            out.append(n if seen[n] == 1 else f"{n}.{seen[n] - 1}")
        return out

    @property
    def Z(self):
        return np.column_stack([b.Z for b in self.blocks])


@dataclass
class MixedDesign:
    formula: str
    response: str
    y: np.ndarray                        # (n,)
    X: np.ndarray                        # (n, p)
    fixed_names: list
    fixed_spec: object                   # formulaic ModelSpec of the fixed part
    factors: list                        # Factor, formula order of first appearance
    rows: pd.Index                       # rows of the user's data that were used
    n_dropped: int
    ols: np.ndarray = None               # (p,) OLS fixed effects (start values), if known

    @property
    def n(self):
        return self.y.shape[0]


def _factorize(column):
    """(codes (n,), sorted distinct values) of a pandas Series, as pd.factorize(sort=True):
    for numbers already in order (data sorted by group, the common case) from where
    they change, without hashing."""
    a = column.to_numpy()
    new = changes(a) if a.dtype.kind in "iuf" else None
    if new is None:
        return pd.factorize(column, sort=True)
    return np.cumsum(new) - 1, a[new]


def group_factor(name, data, columns):
    """The Factor ``name`` of the grouping ``columns`` of ``data``: groups are the
    distinct tuples of values, in sorted order."""
    values, per = [], []
    for c in columns:
        codes, uniques = _factorize(data[c])
        values.append(pd.Index(uniques))
        per.append(codes.astype(np.intp))
    if len(per) == 1:           # a factorisation's codes all occur: they are the groups
        keys, codes = np.arange(len(values[0]))[:, None], per[0]
    else:
        keys, codes = unique_rows(per)
    parts = [np.array([str(v) for v in values[j].tolist()], dtype=object)[keys[:, j]]
             for j in range(len(columns))]
    labels = parts[0].tolist() if len(parts) == 1 else [":".join(t) for t in zip(*parts)]
    if len(set(labels)) < len(labels):      # joined strings would merge distinct groups
        labels = [str(t) for t in zip(*([values[j][k] for k in keys[:, j]]
                                          for j in range(len(columns))))]
    return Factor(name, tuple(columns), pd.Index(labels), codes.astype(np.intp), values,
                  keys.astype(np.intp))


def build_design(formula, data, trusted=False):
    """Parse ``formula`` and build every matrix on the complete rows of ``data``.

    trusted=False (the default) refuses any token of the formula that is not a
    column, number, operator or documented transform before formulaic sees it
    (safety.py); trusted=True lets formulaic evaluate it in full.
    """
    if not isinstance(data, pd.DataFrame):
        kind = f"{type(data).__module__.split('.')[0]}.{type(data).__name__}"
        hint = (" lmer builds its design in memory: compute() the frame, or, for data "
                "beyond one machine, write the model with the xxM API on Dask tables and "
                "fit it with executor= a Client (docs/distributed.md)."
                if is_dask_frame(data) else "")
        raise SpecificationError([f"lmer: data= must be a pandas DataFrame, got "
                                  f"{kind}.{hint}"])
    if not isinstance(formula, str):
        parse_formula(formula)              # its error names the type
    if not trusted:
        check_formula(formula, data.columns)
    parsed = parse_formula(formula)
    problems = ProblemCollector()
    group_cols = sorted({c for t in parsed.random for c in t.group})
    for c in group_cols:
        if c not in data.columns:
            problems.add(f"lmer: grouping factor column '{c}' is not in data=; the columns "
                         f"are {list(data.columns)}.")
    problems.raise_if_any()
    whole, exprs = _matrices(parsed, data, problems)
    problems.raise_if_any()
    # numpy masks (the rows are in data's order): pandas' in-place & re-aligns indexes
    keep = _complete(whole.lhs) & _complete(whole.rhs)
    for mm in exprs.values():
        keep &= _complete(mm)
    for c in group_cols:
        keep &= data[c].notna().to_numpy()
    used = data.loc[keep]
    if len(used) == 0:
        raise SpecificationError([f"lmer: no complete rows: every row of data= has a missing "
                                  f"value in a variable of '{formula}'."])
    if not keep.all():      # rebuild on the complete rows: encodings see only used levels
        whole, exprs = _matrices(parsed, used, problems)
        problems.raise_if_any()
    if whole.lhs.shape[1] != 1:
        problems.add(f"lmer: the response '{parsed.response}' gives {whole.lhs.shape[1]} "
                     f"columns; it must be one numeric variable.")
    X = whole.rhs.to_numpy(dtype=float)
    y = whole.lhs.to_numpy(dtype=float)[:, 0] if whole.lhs.shape[1] == 1 else None
    _check_finite(parsed, y, X, whole.rhs.columns, problems)
    if y is not None and np.all(np.isfinite(y)) and np.ptp(y) == 0:
        problems.add(f"lmer: the response '{parsed.response}' is constant ({y[0]:g} in "
                     f"every used row): there is no variance to split into random effects "
                     f"and residual.")
    ols = None
    if X.shape[1] and y is not None and np.all(np.isfinite(X)) and np.all(np.isfinite(y)):
        rank, ols = _least_squares(X, y)
        if rank < X.shape[1]:
            problems.add(f"lmer: the fixed-effects design of '{parsed.fixed}' is rank "
                         f"deficient ({rank} of {X.shape[1]} columns independent); drop "
                         f"redundant terms.")
    factors = _factors(parsed, used, exprs, problems)
    problems.raise_if_any()
    return MixedDesign(formula, parsed.response, y, X,
                       _names(whole.rhs.columns), whole.rhs.model_spec, factors,
                       data.index[keep], int((~keep).sum()), ols)


def _least_squares(X, y):
    """(rank of X (n, p) by numpy's matrix_rank rule, OLS coefficients (p,) or None when
    rank deficient). The normal equations first: when the eigenvalues of X'X (the
    squared singular values, accurate to ~p eps of the largest) span less than 1e10,
    X's singular values span less than 1e5, far inside the rule's tolerance, and X has
    full rank; only otherwise the singular values of X itself decide."""
    from scipy.linalg import cho_factor, cho_solve
    from scipy.linalg.blas import dsyrk
    n, p = X.shape
    Xc = np.ascontiguousarray(X, dtype=float)
    upper = dsyrk(1.0, Xc.T, trans=0)           # X'X (upper triangle); Xc.T: Fortran order
    gram = np.triu(upper) + np.triu(upper, 1).T
    lam = np.linalg.eigvalsh(gram)
    if lam[0] > 1e-10 * lam[-1] > 0:
        return p, cho_solve(cho_factor(gram), Xc.T @ y)
    rank = int(np.linalg.matrix_rank(Xc))
    beta = np.linalg.lstsq(Xc, y, rcond=None)[0] if rank == p else None
    return rank, beta


def _check_finite(parsed, y, X, names, problems):
    """Infinite values (NaN rows are dropped before) in the response or a fixed effect."""
    if y is not None and not np.all(np.isfinite(y)):
        problems.add(f"lmer: the response '{parsed.response}' holds {int(np.sum(~np.isfinite(y)))}"
                     f" infinite value(s); remove or correct those rows.")
    bad = [str(c) for c, col in zip(names, X.T) if not np.all(np.isfinite(col))]
    if bad:
        problems.add(f"lmer: the fixed-effects column(s) {bad} hold infinite values; remove "
                     f"or correct those rows.")


def _matrices(parsed, data, problems):
    """The fixed-effects ModelMatrices and {expr: random-effects matrix} on ``data``
    (formulaic's, or plain_columns' where a side is plain)."""
    whole = plain_matrices(parsed.response, parsed.fixed, data) or _model_matrix(
        f"{parsed.response} ~ {parsed.fixed}", data, "fixed-effects design", problems)
    terms = {t.expr: t for t in reversed(parsed.random)}    # one matrix per expression
    exprs = {expr: plain_matrix(expr, data) or _model_matrix(
        expr, data, f"random-effects design of '({expr} | {t.factor_name})'", problems)
        for expr, t in terms.items()}
    return whole, exprs


def _complete(mm):
    """(n,) bool: the rows of a model matrix without a missing value."""
    if hasattr(mm, "complete"):
        return mm.complete()
    return mm.notna().all(axis=1).to_numpy()


def _factors(parsed, used, exprs, problems):
    factors = {}
    for term in parsed.random:
        name = term.factor_name
        if name not in factors:
            factors[name] = group_factor(name, used, term.group)
        mm = exprs[term.expr]
        spec, Z = mm.model_spec, mm.to_numpy(dtype=float)
        if term.correlated:
            factors[name].blocks.append(Block(_names(mm.columns), Z, spec, term.expr,
                                              list(mm.columns)))
            continue
        for _, cols in spec.term_slices.items():       # '||': one block per term
            factors[name].blocks.append(Block(_names(mm.columns[cols]), Z[:, cols], spec,
                                              term.expr, list(mm.columns[cols])))
    out = list(factors.values())
    for f in out:
        n_eff = sum(len(b.names) for b in f.blocks)
        if len(f.groups) * n_eff >= len(used):
            problems.add(f"lmer: grouping factor '{f.name}' has {len(f.groups)} groups x "
                         f"{n_eff} random effects for {len(used)} observations; the random "
                         f"effects would be confounded with the residual. Use fewer "
                         f"effects or a coarser factor.")
        if len(f.groups) < 2:
            problems.add(f"lmer: grouping factor '{f.name}' has only {len(f.groups)} group; "
                         f"a variance needs at least 2.")
    _declare_nesting(out)
    return out


def _declare_nesting(factors):
    """Declare as parent of each factor the finest other factor whose groups contain its groups."""
    for f in factors:
        best = None
        for g in factors:
            if g is f or len(g.groups) >= len(f.groups):
                continue
            pairs = pd.DataFrame({"f": f.codes, "g": g.codes}).drop_duplicates()
            if len(pairs) == len(f.groups):        # each f group in exactly one g group
                if best is None or len(g.groups) > len(best.groups):
                    best = g
        f.parent = None if best is None else best.name
