"""The parameter table: one row per free matrix element, one parameter per label.

Equal labels are one parameter (an equality constraint), across matrices and
levels. A symmetric matrix lists a free off-diagonal pair once (lower
triangle). Estimates, standard errors and CIs are columns joined onto this
table by label.
"""
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import XxmWarning
from ..spec.objects import DATA_LABEL_PREFIX, SYMMETRIC_TYPES, scaled_label


@dataclass(frozen=True)
class ElementMap:
    """Where a matrix's free and data-valued elements are.

    free_rows/free_cols/free_param: positions (both triangles of a symmetric
    matrix) and the parameter index of each; free_coef: each free element is
    free_coef times its parameter (a scaled label, '-b' or '0.5*b'; None: all 1).
    data_rows/data_cols/data_columns: positions fixed to a column of the child
    level's data.
    """
    base: np.ndarray
    free_rows: np.ndarray
    free_cols: np.ndarray
    free_param: np.ndarray
    data_rows: np.ndarray
    data_cols: np.ndarray
    data_columns: list
    free_coef: np.ndarray = None

    @property
    def coefficients(self):
        """(F,) the coefficient of every free element (1 unless a scaled label)."""
        return np.ones(len(self.free_param)) if self.free_coef is None else self.free_coef

    @property
    def scaled(self):
        return self.free_coef is not None and bool(np.any(self.free_coef != 1.0))


@dataclass(frozen=True)
class ParameterTable:
    """labels: (k,) unique labels in parameter order; start: (k,) start values;
    is_variance: (k,) True for parameters only on diagonals of theta / psi;
    element_maps: (child, parent, type) -> ElementMap (level names);
    table: one row per (lower-triangle) free element, with its label."""
    table: pd.DataFrame          # one row per (lower-triangle) free element
    labels: list                 # unique labels, parameter order
    start: np.ndarray            # (k,) start values
    is_variance: np.ndarray      # (k,) bool: only on diagonals of theta / psi
    element_maps: dict           # (child, parent, type) -> ElementMap

    @property
    def n(self):
        return len(self.labels)


def generated_label(m, r, c):
    where = m.child if m.parent is None else f"{m.parent}_{m.child}"
    return f"{where}_{m.type}_{r + 1}_{c + 1}"


def build_parameter_table(matrices):
    """Lower CheckedMatrix objects into a ParameterTable."""
    user_labels = {scaled_label(lab)[1] for m in matrices for lab in m.label.ravel()
                   if lab is not None}
    index, rows, starts, variance = {}, [], [], {}
    maps = {}
    for m in matrices:
        sym = m.type in SYMMETRIC_TYPES
        free_pos, free_par, free_coef, data_pos, data_cols = [], [], [], [], []
        for (r, c), is_free in np.ndenumerate(m.pattern):
            lab = m.label[r, c]
            if not is_free:
                if lab is not None and lab.startswith(DATA_LABEL_PREFIX):
                    data_pos.append((r, c))
                    data_cols.append(lab[len(DATA_LABEL_PREFIX):])
                continue
            if sym and c > r:
                continue
            coef, lab = scaled_label(lab)
            if lab is None:
                lab = generated_label(m, r, c)
                while lab in user_labels:
                    lab = "_" + lab
            if lab not in index:
                index[lab] = len(index)
                starts.append(m.value[r, c] / coef)
                variance[lab] = True
            elif not np.isclose(starts[index[lab]], m.value[r, c] / coef):
                warnings.warn(f"label '{lab}' has start values {starts[index[lab]]} and "
                              f"{m.value[r, c] / coef}; using the first.", XxmWarning,
                              stacklevel=4)
            variance[lab] = variance[lab] and sym and r == c
            k = index[lab]
            free_pos.append((r, c))
            free_par.append(k)
            free_coef.append(coef)
            if sym and r != c:
                free_pos.append((c, r))
                free_par.append(k)
                free_coef.append(coef)
            rows.append(dict(label=lab, child=m.child,
                             parent=m.child if m.parent is None else m.parent,
                             type=m.type, row=m.row_names[r], col=m.col_names[c],
                             start=m.value[r, c]))
        base = np.where(m.pattern, 0.0, m.value)
        for r, c in data_pos:
            base[r, c] = 0.0
        fp = np.array(free_pos, dtype=np.intp).reshape(-1, 2)
        dp = np.array(data_pos, dtype=np.intp).reshape(-1, 2)
        coefs = np.array(free_coef, dtype=float)
        maps[(m.child, m.parent, m.type)] = ElementMap(
            base, fp[:, 0], fp[:, 1], np.array(free_par, dtype=np.intp),
            dp[:, 0], dp[:, 1], data_cols, coefs if np.any(coefs != 1.0) else None)
    labels = list(index)
    return ParameterTable(
        table=pd.DataFrame(rows, columns=["label", "child", "parent", "type", "row", "col",
                                          "start"]),
        labels=labels, start=np.array(starts, dtype=float),
        is_variance=np.array([variance[lab] for lab in labels], dtype=bool),
        element_maps=maps)
