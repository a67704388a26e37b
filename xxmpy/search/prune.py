"""Pruning: fix to 0 the parameters whose Wald test is not significant, refit.

psychonetrics' ``prune``: the candidates are the edges of every network (the free
off-diagonal elements of a theta / psi with form='ggm'), or the free off-diagonal
elements of the matrices named; each candidate's two-sided Wald p-value (the
estimates table's p) is adjusted over the candidates ('none', 'bonferroni',
'holm', or 'fdr': Benjamini-Hochberg), and every candidate whose adjusted p
exceeds alpha is fixed at 0 (a label shared by several elements fixes them all).
The model is refitted from the previous estimates; with recursive=True this
repeats until nothing is removed. A candidate without a p-value (on a bound, not
identified) is kept. Every step is recorded (steps.py).
"""
import numpy as np
import pandas as pd

from ..spec.objects import SYMMETRIC_TYPES, variable_forms
from .steps import SearchResult, refit, step_row

ADJUSTMENTS = ("none", "bonferroni", "holm", "fdr")


def adjusted(p, method):
    """(n,) p-values adjusted for n tests (NaN stays NaN)."""
    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    n = ok.size
    if method not in ADJUSTMENTS:
        raise ValueError(f"prune: adjust= must be one of {list(ADJUSTMENTS)}, got {method!r}.")
    if n == 0 or method == "none":
        out[ok] = p[ok]
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    ranked = p[order]
    if method == "bonferroni":
        out[ok] = np.minimum(p[ok] * n, 1.0)
    elif method == "holm":
        out[order] = np.minimum(np.maximum.accumulate(ranked * (n - np.arange(n))), 1.0)
    else:
        steps = ranked * n / np.arange(1, n + 1)
        out[order] = np.minimum(np.minimum.accumulate(steps[::-1])[::-1], 1.0)
    return out


def _candidates(fit, matrices):
    """Labels of the candidate parameters (first-seen order)."""
    wanted = None if matrices is None else {tuple(m) for m in matrices}
    params = fit.problem.params
    out = []
    for mat in fit.model.spec.matrices:
        if mat.type not in SYMMETRIC_TYPES or mat.parent is not None:
            continue
        if wanted is not None and (mat.child, mat.type) not in wanted:
            continue
        forms = variable_forms(getattr(mat, "form", "cov"), len(np.asarray(mat.pattern)))
        emap = params.element_maps[(mat.child, mat.parent, mat.type)]
        for r, c, k in zip(emap.free_rows, emap.free_cols, emap.free_param):
            edge = forms[r] == forms[c] == "ggm"
            label = params.labels[k]
            if r > c and (edge or wanted is not None) and label not in out:
                out.append(label)
    return out


def _with_zeros(fit, labels):
    """A copy of fit's model with every element of ``labels`` fixed at 0."""
    params = fit.problem.params
    drop = {params.labels.index(lab) for lab in labels}

    def fixed(mat):
        emap = params.element_maps[(mat.child, mat.parent, mat.type)]
        pattern = np.array(mat.pattern, dtype=float)
        value = np.zeros_like(pattern) if mat.value is None else np.array(mat.value, float)
        label = None if mat.label is None else np.array(mat.label, dtype=object)
        for r, c, k in zip(emap.free_rows, emap.free_cols, emap.free_param):
            if k in drop:
                pattern[r, c], value[r, c] = 0, 0.0
                if label is not None:
                    label[r, c] = None
        return pattern, value, label
    return fit.model.derived(f"pruned {fit.model.name}", fixed)


def prune(fit, alpha=0.01, adjust="none", matrices=None, recursive=False):
    """Fix to 0 the non-significant candidates of a FitResult and refit (module doc).

    alpha: the level of each (adjusted) test; adjust: 'none', 'bonferroni', 'holm' or
    'fdr'; matrices: [(level, 'theta' | 'psi'), ...] whose free off-diagonal elements
    are the candidates (default: the edges of every form='ggm' matrix); recursive:
    repeat until nothing is removed. Returns a SearchResult.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"prune: alpha must be between 0 and 1, got {alpha!r}.")
    adjusted(np.zeros(0), adjust)               # checks the method's name
    fits, rows = [fit], [step_row(0, "start", [], fit, None)]
    current = fit
    while True:
        removed = prune_once(current, alpha, adjust, matrices)
        if not removed:
            break
        current = refit(_with_zeros(current, removed), current)
        fits.append(current)
        rows.append(step_row(len(rows), "prune", removed, current, fits[-2]))
        if not recursive:
            break
    return SearchResult(current, fits, pd.DataFrame(rows))


def prune_once(fit, alpha, adjust, matrices):
    """The labels prune would fix at 0 in one step."""
    labels = _candidates(fit, matrices)
    if not labels:
        return []
    p = fit.estimates.set_index("label").loc[labels, "p"].to_numpy(float)
    p_adj = adjusted(p, adjust)
    return [lab for lab, q in zip(labels, p_adj) if np.isfinite(q) and q > alpha]
