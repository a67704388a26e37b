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
engines (engines.py) compute the sums over units. Each term's TermPlan maps
these matrix gradients back onto the cells of the flat matrix vector
(TermPlan.gradient_cells), and the parameters collect their cells.
"""
import numpy as np


def gradient(plan, terms, moments, extra=()):
    """d(-2 log L)/d theta (k,) from the level terms and their posterior moments.

    plan: terms.EvaluationPlan; terms: {level: terms.LevelTerms};
    moments(c, term) -> (gA, gd, wrw) as in engines.py; extra: further
    (cells, values) pairs (the pooled contrasts of collapse.py).
    """
    cells, values = [], []
    for c, lt in terms.items():
        for term in lt.terms:
            got = term.plan.gradient_cells(term, *moments(c, term))
            cells += got[0]
            values += got[1]
    for cl, vl in extra:
        cells.append(cl)
        values.append(vl)
    size = plan.slots.size + 2
    gbuf = np.bincount(np.concatenate(cells), np.concatenate(values), minlength=size) \
        if cells else np.zeros(size)
    return plan.slots.to_parameters(gbuf)
