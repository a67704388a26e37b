"""Where a table's ID values sit in a level's ID index (validation's parent links, the
compiled levels' parent units)."""
import numpy as np


def id_positions(index, column):
    """(n,) the position of each value of ``column`` (a Series) in ``index`` (a unique
    pd.Index; -1 where absent), as index.get_indexer: by subtraction where the index is
    consecutive integers in order and the column integers (IDs 0..G-1, as xm.lmer
    writes them), else by hashing."""
    values = column.to_numpy()
    n = len(index)
    if n and values.dtype.kind in "iu" and index.dtype.kind in "iu" \
            and index.is_monotonic_increasing and index.is_unique \
            and int(index[-1]) - int(index[0]) == n - 1:
        at = values.astype(np.intp) - int(index[0])
        return np.where((at >= 0) & (at < n), at, -1)
    return index.get_indexer(column).astype(np.intp)
