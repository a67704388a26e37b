"""Modification indices: the score test of freeing each fixed-to-zero element.

Candidates: every element of the model's lambda (within and between), beta
(off the diagonal) and theta / psi (off the diagonal, lower triangle) that is
fixed at 0 without a label, except an element joining two blocks of different
forms (compile/forms.py: a structural 0); only matrices the model has. The extended model
frees them all at once (a copy of the model's specification, the candidates
free with their automatic labels); at theta_ext = (the estimates, zeros) with
g the gradient and H the Hessian of -2 log L there (central differences of
the analytic gradient, steps relative to each parameter's unit):

  S_j  = H_jj - H_j1 H_11^-1 H_1j                 (1: the fit's free parameters
                                                    off their bounds)
  mi_j = g_j^2 / (2 S_j)                          (the score statistic, chi2_1)
  epc_j = -g_j / S_j                              (the expected parameter change)

This is lavaan's ``modindices(fit, information = "observed")``; lavaan's
default uses the expected information and differs by sampling noise.
sepc_lv / sepc_all / sepc_nox scale epc like std_lv / std_all / std_nox
(standardized.py).

With power (Saris, Satorra & van der Veld 2009; lavaan's ``power = TRUE``): for an
effect of size delta (in the epc's own units) the non-centrality ncp = mi delta^2 /
epc^2, the power of the mi's test at alpha, and lavaan's decision: '(i)' (mi not
significant, power low: inspect), '**(m)**' (significant, low power: misspecified),
'(nm)' (not significant, high power: not misspecified), 'epc:nm' (significant, high
power, |epc| <= delta), '*epc:m*' (significant, high power, |epc| > delta).
"""
import numpy as np
import pandas as pd

from scipy.stats import chi2, ncx2

from ..engine import deviance_and_gradient
from ..spec.objects import SYMMETRIC_TYPES, variable_forms

CANDIDATE_TYPES = ("lambda", "beta", "theta", "psi")


def _extended_model(model):
    """(a copy of ``model`` with every candidate freed, [(matrix key, row, col)])."""
    freed = []

    def free_candidates(mat):
        if mat.type not in CANDIDATE_TYPES:
            return None
        pattern = np.array(mat.pattern, dtype=float)
        value = (np.zeros_like(pattern) if mat.value is None
                 else np.array(mat.value, dtype=float))
        label = (np.full(pattern.shape, None, dtype=object) if mat.label is None
                 else np.array(mat.label, dtype=object))
        symmetric = mat.type in SYMMETRIC_TYPES
        square = symmetric or (mat.type == "beta" and mat.parent is None)
        forms = variable_forms(getattr(mat, "form", "cov"), pattern.shape[0])
        for r in range(pattern.shape[0]):
            for c in range(pattern.shape[1]):
                if (square and c == r) or (symmetric and c > r):
                    continue       # variances, self-loops; upper triangles
                if symmetric and forms[r] != forms[c]:
                    continue       # between two blocks of forms: a structural 0
                if pattern[r, c] == 0 and value[r, c] == 0 and label[r, c] is None:
                    pattern[r, c] = 1
                    if mat.type in SYMMETRIC_TYPES:
                        pattern[c, r] = 1
                    freed.append((mat.key, r, c))
        return pattern, value, mat.label
    return model.derived(f"extended {model.name}", free_candidates), freed


def mi_power(mi, epc, delta=0.1, alpha=0.05, high_power=0.75):
    """DataFrame (delta, ncp, power, decision), one row per (mi, epc) (module doc)."""
    mi, epc = np.asarray(mi, float), np.asarray(epc, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ncp = mi / (epc * epc) * delta * delta
    critical = chi2.isf(alpha, 1)
    power = np.where(np.isinf(ncp), 1.0, ncx2.sf(critical, 1, np.where(np.isinf(ncp), 1.0,
                                                                        ncp)))
    significant = chi2.sf(mi, 1) < alpha
    high = power > high_power
    large = np.abs(epc) > delta
    decision = np.select([~significant & ~high, significant & ~high, ~significant & high,
                          significant & high & ~large, significant & high & large],
                         ["(i)", "**(m)**", "(nm)", "epc:nm", "*epc:m*"], "")
    decision = np.where(np.isnan(mi) | np.isnan(epc), "", decision)
    return pd.DataFrame({"delta": delta, "ncp": ncp, "power": power, "decision": decision})


def score_tests(problem, theta, kept, new, rel_step=1e-4):
    """(mi, epc) (n_new,) of freeing parameters ``new`` of ``problem`` at theta, the
    parameters ``kept`` re-estimated (the others held): H by central differences of
    the analytic gradient (steps rel_step times each parameter's unit), symmetrised.
    NaN where freeing the element would not be identified (S_j <= 1e-10 H_jj)."""
    units = np.asarray(problem.param_units, float)
    cols = list(kept) + list(new)
    H = np.zeros((len(cols), len(cols)))
    for i, k in enumerate(cols):
        h = rel_step * units[k]
        up, down = theta.copy(), theta.copy()
        up[k] += h
        down[k] -= h
        H[:, i] = (deviance_and_gradient(problem, up)[1][cols]
                   - deviance_and_gradient(problem, down)[1][cols]) / (2 * h)
    H = (H + H.T) / 2
    g = deviance_and_gradient(problem, theta)[1][new]
    n = len(kept)
    H11, H1j = H[:n, :n], H[:n, n:]
    Hjj = np.diag(H)[n:]
    S = Hjj - np.einsum("in,in->n", H1j, np.linalg.solve(H11, H1j)) if n else Hjj
    ok = S > 1e-10 * np.abs(Hjj)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, g ** 2 / (2 * S), np.nan), np.where(ok, -g / S, np.nan)


def modification_indices(fit):
    """DataFrame, one row per candidate: child, parent, type, row, col, label (in the
    extended model), mi, epc, sepc_lv, sepc_all, sorted by mi (largest first; NaN,
    where freeing it would not be identified, last)."""
    columns = ["child", "parent", "type", "row", "col", "label", "mi", "epc", "sepc_lv",
               "sepc_all", "sepc_nox"]
    ext, freed = _extended_model(fit.model)
    if not freed:
        return pd.DataFrame(columns=columns)
    problem = ext.compile()
    labels = list(problem.params.labels)
    at = {lab: k for k, lab in enumerate(labels)}
    own = np.array([at[lab] for lab in fit.labels])
    new = np.array(sorted(set(range(len(labels))) - set(own)))
    theta = np.zeros(len(labels))
    theta[own] = fit.record.estimate
    # re-estimated: the fit's free parameters off their bounds and identified
    kept = own[np.isfinite(np.diag(fit.vcov.to_numpy()))]
    mi, epc = score_tests(problem, theta, kept, new)
    out = pd.DataFrame(_describe(problem, fit, theta, new, epc))
    out["mi"], out["epc"] = mi, epc
    return out[columns].sort_values("mi", ascending=False, kind="stable",
                                    na_position="last").reset_index(drop=True)


def _describe(problem, fit, theta, new, epc):
    """Where each candidate is (names as in the estimates table) and its epc
    standardised as standardized.py standardises an element."""
    from .standardized import _standardize
    table = problem.params.table.drop_duplicates("label").set_index("label")
    labels = list(problem.params.labels)
    try:
        c, parents, _, _ = fit._structure()
    except ValueError:           # no one observed level: no standardisation
        c = None
    rows = []
    for k, e in zip(new, epc):
        place = table.loc[labels[k]]
        row = {"child": place["child"], "parent": place["parent"], "type": place["type"],
               "row": place["row"], "col": place["col"], "label": labels[k],
               "sepc_lv": np.nan, "sepc_all": np.nan, "sepc_nox": np.nan}
        element = _element_of(problem, k)
        if c is not None and np.isfinite(e) and element is not None \
                and element[0][0] in [c] + list(parents):
            at = theta.copy()
            at[k] = e
            std = _standardize(problem, at, c, parents, [element])
            row["sepc_lv"], row["sepc_all"], row["sepc_nox"] = std[:, 0]
        rows.append(row)
    return rows


def _element_of(problem, k):
    """(matrix key, row, col) of parameter k's first cell (lower triangle of a
    symmetric matrix)."""
    slots = problem.slots
    for key, shape in slots.shape.items():
        hits = np.argwhere(slots.cell_param[slots.cells(key, shape)] == k)
        if len(hits):
            r, col = (int(v) for v in hits[0])
            if key[2] in SYMMETRIC_TYPES and col > r:
                r, col = col, r
            return (key, r, col)
    return None
