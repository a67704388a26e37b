"""The evaluated form of a problem: what one evaluation of -2 log L walks."""
from dataclasses import dataclass

from ..engine.program import build_program
from .lowering import lower
from .plan import EvaluationPlan


@dataclass(frozen=True)
class Form:
    """What one evaluation of -2 log L walks.

    units: the problem's Units with identical leaf siblings collapsed
    (compile/collapse.py), or the problem's own Units when nothing collapses;
    contrasts: the pooled within-group contrasts of the collapsed levels;
    constant: the part of -2 log L free of theta, (N - flat rows) log 2 pi plus
    the collapse's Jacobian; plan: compile/plan.EvaluationPlan (index arrays of
    every factor family); lowered: compile/lowering.Lowered (flat layouts of the
    elimination); program: the compiled driver's Program over all of it (None
    when the numpy reference backend is selected).
    """
    units: object            # compile/problem.Units
    contrasts: tuple
    constant: float
    plan: object
    lowered: object
    program: object

    @property
    def collapsed(self):
        return bool(self.contrasts)



def build_form(units, contrasts, constant, slots):
    """Form over ``units`` (Units) with pooled ``contrasts``, the theta-free ``constant``
    and the problem's MatrixSlots: the index arrays, the lowered schedule, the Program."""
    plan = EvaluationPlan(units, slots)
    lowered = lower(units)
    program = build_program(plan, lowered, contrasts, constant)
    return Form(units, tuple(contrasts), float(constant), plan, lowered, program)
