"""The compiled driver over a Form: build its Program, read its posterior.

``build_program`` makes an ``engine._program.Program`` (at compile time, once
per Form) from the Form's EvaluationPlan, its Lowered schedule and its pooled
contrasts. ``Program.evaluate(theta, grad)`` then gives -2 log L and its
gradient in one call and ``Program.posterior(theta)`` the posterior blocks;
``level_posterior`` reads those per level. A Program pickles as its
construction arguments.
"""
import numpy as np

from ..compile.plan import MAX_CONDITION
from . import backend


def build_program(plan, lowered, contrasts, constant, levels=None):
    """A Program over (EvaluationPlan, Lowered, pooled contrasts, the theta-free
    constant), or None when the numpy reference backend is selected. levels: None, or
    the level indices whose factors it evaluates (a crossed shard's own levels: the
    shared levels' factors are counted by one shard only, distributed/crossed.py)."""
    if backend.program is None:
        return None
    terms = [(tp, lowered.scopes[c], MAX_CONDITION) for c, plans in plan.levels.items()
             if levels is None or c in levels for tp in plans]
    return backend.program.Program(plan.slots, terms, list(contrasts), lowered, constant)


def level_posterior(form, theta):
    """{level: (mean (n, m), covariance (n, m, m))} of every level with etas in the
    Form's units, from its Program; None if theta is inadmissible."""
    entries, blocks, cells = _dense_cells(form)
    got = form.program.posterior(np.ascontiguousarray(theta, float), entries)
    return None if got is None else _by_level(form, got, blocks, cells)


def held_posterior(form, program):
    """level_posterior's blocks of the posterior ``program`` (one over the Form's
    layouts) holds now: a crossed shard's after Program.finish."""
    entries, blocks, cells = _dense_cells(form)
    return _by_level(form, program.held(entries), blocks, cells)


def _dense_cells(form):
    """(flat entries of the dense block to copy out, {level: (n, m) rows}, [entries per
    level]): only each dense unit's own block of the dense inverse."""
    sched = form.units.schedule
    n = sched.n_dense
    blocks = {lvl: sched.dense_rows(lvl) for lvl in sched.dense_levels}
    cells = [(rows[:, :, None] * n + rows[:, None, :]).ravel() for rows in blocks.values()]
    entries = np.concatenate(cells).astype(np.intp) if cells else np.zeros(0, np.intp)
    return entries, blocks, cells


def _by_level(form, got, blocks, cells):
    low, sched = form.lowered, form.units.schedule
    sig, mean = got
    out = {}
    for lvl, st in zip(sched.sparse_order, low.steps):
        m = np.arange(st.m)
        out[lvl] = (mean[st.rhs[:, None] + m],
                    sig[st.diag[:, None, None] + m[:, None] * st.m + m[None, :]])
    at = low.dense_base
    for (lvl, rows), cell in zip(blocks.items(), cells):
        out[lvl] = (mean[low.rhs_dense_base + rows],
                    sig[at:at + cell.size].reshape(rows.shape + rows.shape[1:]))
        at += cell.size
    return out
