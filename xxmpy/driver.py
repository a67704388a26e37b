"""The compiled per-evaluation driver (_core/_driver.pyx) over a problem's plan.

``build_program`` makes a ``_driver.Program`` (once per problem, through
``likelihood.program_for``) from what the numpy path already computes once:
the (collapsed) problem's
EvaluationPlan (terms.py), its Lowered schedule (lowering.py) and the pooled
within-group contrasts (collapse.py). ``Program.evaluate(theta, grad)`` then
gives -2 log L and its gradient in one call. The numpy path of likelihood.py
is its twin (tests/twin_check.py compares them). A Program pickles as its
construction arguments.
"""
import numpy as np

from ._core import kernels
from .engines import lowered
from .terms import MAX_CONDITION, plan_for

LOG_2PI = np.log(2.0 * np.pi)


def constant_part(problem, red):
    """The part of -2 log L that does not depend on theta: (N - flat rows) log 2 pi and
    the collapse's Jacobian (red: the problem's Collapsed form, or None)."""
    return (problem.n_observed - problem.n_flat) * LOG_2PI + (red.constant if red else 0.0)


def build_program(problem, red):
    """A Program for ``problem`` evaluated through its Collapsed form ``red`` (or None)."""
    work = red.problem if red else problem
    plan, low = plan_for(work), lowered(work)
    terms = [(tp, low.scopes[c], MAX_CONDITION) for c, plans in plan.levels.items()
             for tp in plans]
    contrasts = [(pooled, pooled.cells_in(plan.slots))
                 for pooled in (red.contrasts if red else [])]
    return kernels.driver.Program(plan.slots, terms, contrasts, low, constant_part(problem, red))
