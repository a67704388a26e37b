"""Model matrices of plain numeric columns, built without formulaic.

A right-hand side made only of ``1``, ``0``, ``-1`` and names of numeric columns
joined by ``+`` (``Yield ~ 1``, ``Reaction ~ Days``, ``(Days | Subject)``) needs no
encoding: its matrix is the intercept and those columns, in formulaic's order (the
intercept first unless removed, then the columns as written). lme4's small data sets
are all of this kind, and formulaic takes 0.3-0.6 ms per matrix on them. Anything
else (a categorical or boolean column, a transform, an interaction, a repeated
name) returns None and is built by formulaic as before.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

INTERCEPT_COLUMN = "Intercept"          # formulaic's name; design._names shows "(Intercept)"


def plain_terms(rhs: str, data: pd.DataFrame) -> list | None:
    """The columns of ``rhs`` (names of ``data``'s numeric columns, INTERCEPT_COLUMN for
    the intercept), or None when it is not a sum of plain numeric columns."""
    intercept, names = True, []
    for token in "".join(rhs.split()).replace("-1", "+-1").split("+"):
        if token == "1":
            continue
        if token in ("0", "-1"):
            intercept = False
            continue
        if not (token.isidentifier() and token in data.columns and _numeric(data[token])):
            return None
        if token in names or token == INTERCEPT_COLUMN:
            return None
        names.append(token)
    return ([INTERCEPT_COLUMN] if intercept else []) + names


def _numeric(column) -> bool:
    """A numpy integer, unsigned or float column (formulaic encodes booleans, and
    pandas' nullable types hold NA, so those go through formulaic)."""
    return isinstance(column, pd.Series) and isinstance(column.dtype, np.dtype) \
        and column.dtype.kind in "iuf"


class PlainSpec:
    """Rebuilds a plain matrix for new rows (predict): formulaic's ModelSpec
    interface as design.py and result.py use it (get_model_matrix, term_slices)."""

    def __init__(self, columns: list):
        self.columns = list(columns)
        self.term_slices = {c: slice(i, i + 1) for i, c in enumerate(self.columns)}

    def get_model_matrix(self, data, na_action="ignore", context=None) -> pd.DataFrame:
        """(n, k) DataFrame of the columns for ``data``; a variable missing from
        ``data`` or no longer numeric there is a ValueError naming it."""
        out = {}
        for c in self.columns:
            if c == INTERCEPT_COLUMN:
                out[c] = np.ones(len(data))
                continue
            if c not in data.columns:
                raise ValueError(f"predict: newdata has no column '{c}', a variable of the "
                                 f"model's design; add it.")
            if not _numeric(data[c]):
                raise ValueError(f"predict: column '{c}' of newdata is {data[c].dtype}, "
                                 f"the fit's was numeric; pass numbers.")
            out[c] = data[c].to_numpy(dtype=float)
        return pd.DataFrame(out, index=data.index, columns=self.columns)


class PlainMatrix:
    """A plain model matrix: the parts of formulaic's ModelMatrix that design.py reads.

    values: (n, k) float, column-major like formulaic's; columns: k names; model_spec:
    a PlainSpec."""

    def __init__(self, columns: list, data: pd.DataFrame):
        self.columns = pd.Index(columns)
        self.model_spec = PlainSpec(columns)
        n = len(data)
        self.values = np.empty((n, len(columns)), order="F")
        for j, c in enumerate(columns):
            self.values[:, j] = 1.0 if c == INTERCEPT_COLUMN else data[c].to_numpy()

    @property
    def shape(self):
        return self.values.shape

    def to_numpy(self, dtype=float) -> np.ndarray:
        return self.values

    def complete(self) -> np.ndarray:
        """(n,) bool: rows without a missing value (one pass when there is none: a
        sum is NaN where any term is, or where infinities cancel)."""
        with np.errstate(invalid="ignore", over="ignore"):
            total = np.sum(self.values)
        if not np.isnan(total):
            return np.ones(self.values.shape[0], bool)
        return ~np.isnan(self.values).any(axis=1)


class PlainMatrices:
    """``response ~ rhs`` of plain columns: formulaic's ModelMatrices' lhs and rhs."""

    def __init__(self, response: str, columns: list, data: pd.DataFrame):
        self.lhs = PlainMatrix([response], data)
        self.rhs = PlainMatrix(columns, data)


def plain_matrices(response: str, rhs: str, data: pd.DataFrame) -> PlainMatrices | None:
    """``response ~ rhs`` as PlainMatrices, or None when either side is not plain."""
    columns = plain_terms(rhs, data)
    if columns is None or plain_terms(response, data) != [INTERCEPT_COLUMN, response]:
        return None
    return PlainMatrices(response, columns, data)


def plain_matrix(rhs: str, data: pd.DataFrame) -> PlainMatrix | None:
    """``rhs`` as a PlainMatrix, or None when it is not plain."""
    columns = plain_terms(rhs, data)
    return None if columns is None else PlainMatrix(columns, data)
