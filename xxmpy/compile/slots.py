"""The one owner of "parameter vector -> model matrices".

All matrices of a problem share one flat vector ``vals``: vals = base,
vals[free_pos] = theta[free_par], and two constant cells, 0 and 1, at the
end. The compiled driver, the numpy reference path, the dense oracle and the
start-value check all read the matrices through this map; nothing else
scatters theta into a matrix.
"""
import numpy as np


class MatrixSlots:
    """Where every matrix of a problem lives in the flat vector ``vals``.

    start / shape: matrix key (child, parent, type) (level indices, parent -1
    within) -> its first cell and (rows, cols). size: cells of all matrices;
    vals has size + 2 cells, the last two the constants 0 (``zero``) and 1.
    free_pos / free_par: (F,) the cell and the parameter of every free element
    (both triangles of a symmetric matrix); cell_param: (size + 2,) the
    parameter of every cell, n_params (a spare bin) where fixed. data_cells:
    key -> (rows, cols) of its ``data.`` elements, set per unit from the data.
    All arrays are read-only.
    """

    def __init__(self, matrices, n_params):
        """matrices: key -> CompiledMatrix (compile/problem.py); n_params: k."""
        self.start, self.shape, self.data_cells = {}, {}, {}
        base, pos, par = [], [], []
        at = 0
        for key, cm in matrices.items():
            rows, cols = cm.emap.base.shape
            self.start[key], self.shape[key] = at, (rows, cols)
            self.data_cells[key] = (cm.emap.data_rows, cm.emap.data_cols)
            base.append(cm.emap.base.ravel())
            pos.append(at + cm.emap.free_rows * cols + cm.emap.free_cols)
            par.append(cm.emap.free_param)
            at += rows * cols
        self.size, self.zero, self.n_params = at, at, n_params
        self.base = _frozen(np.concatenate(base + [[0.0, 1.0]]))
        self.free_pos = _frozen(np.concatenate(pos + [np.zeros(0, np.intp)]).astype(np.intp))
        self.free_par = _frozen(np.concatenate(par + [np.zeros(0, np.intp)]).astype(np.intp))
        cell_param = np.full(self.size + 2, self.n_params, np.intp)
        cell_param[self.free_pos] = self.free_par
        self.cell_param = _frozen(cell_param)

    def fill(self, theta):
        """vals (size + 2,) at parameters theta (k,)."""
        vals = self.base.copy()
        vals[self.free_pos] = np.asarray(theta, float)[self.free_par]
        return vals

    def cells(self, key, shape):
        """(rows, cols) cell indices of matrix ``key`` (all ``zero`` when it is absent)."""
        if key not in self.start:
            return np.full(shape, self.zero, np.intp)
        rows, cols = self.shape[key]
        return self.start[key] + np.arange(rows * cols, dtype=np.intp).reshape(rows, cols)

    def matrix(self, vals, key, shape, data=None):
        """Matrix ``key`` at the filled vector ``vals``: (rows, cols), zeros of ``shape``
        when the model has no such matrix; with ``data`` (n, kd), the values of its
        ``data.`` elements for n units, an (n, rows, cols) stack."""
        if key not in self.start:
            return np.zeros(shape)
        mat = vals[self.cells(key, self.shape[key])]
        rows, cols = self.data_cells[key]
        if data is None or len(rows) == 0:
            return mat
        out = np.repeat(mat[None], data.shape[0], axis=0)
        out[:, rows, cols] = data
        return out


def _frozen(a):
    a.flags.writeable = False
    return a
