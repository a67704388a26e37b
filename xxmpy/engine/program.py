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


def build_program(plan, lowered, contrasts, constant):
    """A Program over (EvaluationPlan, Lowered, pooled contrasts, the theta-free
    constant), or None when the numpy reference backend is selected."""
    if backend.program is None:
        return None
    terms = [(tp, lowered.scopes[c], MAX_CONDITION) for c, plans in plan.levels.items()
             for tp in plans]
    return backend.program.Program(plan.slots, terms, list(contrasts), lowered, constant)


def level_posterior(form, theta):
    """{level: (mean (n, m), covariance (n, m, m))} of every level with etas in the
    Form's units, from its Program; None if theta is inadmissible."""
    got = form.program.posterior(np.ascontiguousarray(theta, float))
    if got is None:
        return None
    sig, mean = got
    low, sched, out = form.lowered, form.units.schedule, {}
    for lvl, st in zip(sched.sparse_order, low.steps):
        m = np.arange(st.m)
        out[lvl] = (mean[st.rhs[:, None] + m],
                    sig[st.diag[:, None, None] + m[:, None] * st.m + m[None, :]])
    n = sched.n_dense
    dense = sig[low.dense_base:low.dense_base + n * n].reshape(n, n)
    for lvl in sched.dense_levels:
        rows = sched.dense_rows(lvl)
        out[lvl] = (mean[low.rhs_dense_base + rows], dense[rows[:, :, None], rows[:, None, :]])
    return out
