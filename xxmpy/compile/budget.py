"""What a plan will cost, checked before anything large is allocated.

A crossed design leaves a dense block over the later crossed level(s): its
factor and its inverse take 2 x 8 n_dense^2 bytes and one evaluation about
n_dense^3 flops (Cholesky and inverse); the fill pairs of the eliminated
levels take about PAIR_BYTES each in index arrays, except a level whose every
neighbour is in the dense block: the kernel walks its units' entries (ENTRY_BYTES
each) and stores no pairs (lowering.LoweredStep.fill). Above the memory limit the
compilation stops with ProblemTooLarge, naming the sizes and the levels,
instead of growing until the operating system kills the process.

The limit: ``Model(..., memory_limit_gb=...)``, else the environment variable
XXMPY_MEMORY_LIMIT_GB, else half of this machine's physical memory.
"""
import os

import numpy as np

from ..errors import ProblemTooLarge

PAIR_BYTES = 80          # index arrays per fill pair: entries, targets, block offsets
ENTRY_BYTES = 56         # index arrays per entry of a level walked unit by unit
FLOPS_PER_SECOND = 5e9   # one core, dense BLAS-3 (order of magnitude, for the message)


def default_limit():
    """Bytes: XXMPY_MEMORY_LIMIT_GB, else half of the physical memory (8 GB if unknown)."""
    given = os.environ.get("XXMPY_MEMORY_LIMIT_GB")
    if given:
        return float(given) * 2 ** 30
    try:
        return 0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8.0 * 2 ** 30


def check_budget(sizes, block, sparse_order, dense_levels, relations, n_dense, limit, names):
    """Raise ProblemTooLarge when the plan needs more than ``limit`` bytes (None: the
    default limit)."""
    limit = default_limit() if limit is None else float(limit)
    pairs = entries = 0
    for a in sparse_order:          # fill pairs of eliminating level a: sum over its units
        keys = [k for k in relations if k[0] == a]
        if keys and all(k[1] in dense_levels for k in keys):
            entries += sum(len(relations[k][0]) for k in keys)
            continue
        counts = sum((np.bincount(relations[k][0], minlength=int(sizes[a])).astype(np.int64)
                      for k in keys), np.zeros(int(sizes[a]), np.int64))
        pairs += int(np.sum(counts * (counts + 1) // 2))
    need = 16.0 * n_dense ** 2 + PAIR_BYTES * pairs + ENTRY_BYTES * entries
    if need <= limit:
        return
    names = names or [str(k) for k in range(len(sizes))]
    dense = ", ".join(f"'{names[l]}' ({sizes[l]} units x {block[l]} etas)" for l in dense_levels)
    seconds = n_dense ** 3 / FLOPS_PER_SECOND
    raise ProblemTooLarge(
        f"compile: this model's elimination plan needs about {need / 2 ** 30:.1f} GB, above "
        f"the limit of {limit / 2 ** 30:.1f} GB: a dense block of {n_dense} x {n_dense} over "
        f"the crossed level(s) {dense or 'none'} and {pairs:,} fill pairs; one evaluation "
        f"of -2 log L would take about {seconds:.3g} s. Fit a subset or a coarser version of "
        f"that level, or, if this machine has the memory, raise the limit: Model(..., memory_limit_gb=...) or the environment "
        f"variable XXMPY_MEMORY_LIMIT_GB.")
