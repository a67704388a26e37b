"""Analytic gradient of -2 log L by Fisher's identity (engine.md, section 3).

The gradient of log p(y) is the posterior expectation of the gradient of the
complete-data log density log p(y, eta). Each level contributes factor terms
d_i = A_i eta_scope + e_i, e_i ~ N(0, W^-1) (see terms.FactorTerm); with the
posterior mean mu_i and covariance S_i of eta over the unit's scope, the
expected residual is ebar_i = d_i - A_i mu_i and

  d(-2 log L)/dA_i     = -2 W (ebar_i mu_i' - A_i S_i)
  d(-2 log L)/dd_i     =  2 W ebar_i
  d(-2 log L)/dW^-1    =  W - W (ebar_i ebar_i' + A_i S_i A_i') W     (summed over units)

plus 2 (I - B)^-T from the -2 log|I - B| term. S_i are blocks of the
selected inverse of C, read with the same targets that assembled C; the
engine (assembly.py) computes the sums over units. Each term's TermPlan maps
these matrix gradients back onto the cells of the flat matrix vector
(terms.gradient_values at TermPlan.grad_cells), and the parameters collect
their cells.
"""
import numpy as np

from .terms import gradient_values


def gradient(plan, terms, moments, extra=()):
    """d(-2 log L)/d theta (k,) from the level terms and their posterior moments.

    plan: compile/plan.EvaluationPlan; terms: {level: terms.LevelTerms} in the
    plan's level order; moments(c, term) -> (gA, gd, wrw) as in assembly.py;
    extra: further (cells, values) pairs (the pooled contrasts, contrasts.py).
    """
    values = [v for c, lt in terms.items() for term in lt.terms
              for v in gradient_values(term.plan, term, *moments(c, term))]
    slots = plan.slots
    params = [plan.grad_params] + [slots.cell_param[cl] for cl, _ in extra]
    values += [vl for _, vl in extra]
    if not values:
        return np.zeros(slots.n_params)
    # each cell's value goes to its parameter; fixed cells to the spare last bin
    return np.bincount(np.concatenate(params), np.concatenate(values),
                       minlength=slots.n_params + 1)[:slots.n_params]
