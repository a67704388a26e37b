"""Step-up search and the model search that alternates it with pruning.

stepup (psychonetrics' ``stepup``): among the candidates (the absent edges of every
form='ggm' block, or the fixed-at-0 off-diagonal elements of the theta / psi
named), free the one with the largest modification index when it exceeds the
chi-square(1) quantile at alpha; keep it if the likelihood-ratio test of the
freed model is significant at alpha and the criterion (BIC, AIC, or none) does
not get worse; repeat until a step is not kept. modelsearch alternates
``prune(recursive=True)`` and ``stepup`` until neither changes the model (or a
model comes back). Every fit is recorded (steps.py).
"""
import numpy as np
import pandas as pd
from scipy.stats import chi2

from ..spec.objects import SYMMETRIC_TYPES, variable_forms
from .prune import adjusted, prune
from .steps import SearchResult, refit, step_row

CRITERIA = ("bic", "aic", "none")


def _criterion(fit, criterion):
    return {"bic": fit.bic, "aic": fit.aic, "none": 0.0}[criterion]


def _candidates(fit, matrices):
    """The modification-index rows of the candidates, largest first, with the matrix
    spec and its (row, col) indices: [(row Series, spec, r, c)]."""
    mi = fit.modification_indices()
    wanted = None if matrices is None else {tuple(m) for m in matrices}
    specs = {(m.child, m.type): m for m in fit.model.spec.matrices if m.parent is None}
    out = []
    for _, row in mi.iterrows():
        if row["type"] not in SYMMETRIC_TYPES or row["parent"] != row["child"]:
            continue
        spec = specs.get((row["child"], row["type"]))
        if spec is None or (wanted is not None and (row["child"], row["type"]) not in wanted):
            continue
        sub = fit.model.spec.submodels[row["child"]]
        names = sub.ys if row["type"] == "theta" else sub.etas
        r, c = names.index(row["row"]), names.index(row["col"])
        forms = variable_forms(getattr(spec, "form", "cov"), len(names))
        if wanted is None and not forms[r] == forms[c] == "ggm":
            continue
        out.append((row, spec, r, c))
    return out


def _with_freed(fit, spec, r, c):
    """A copy of fit's model with element (r, c) of matrix ``spec`` free (both triangles)."""
    def free(mat):
        if mat is not spec:
            return None
        pattern = np.array(mat.pattern, dtype=float)
        value = np.zeros_like(pattern) if mat.value is None else np.array(mat.value, float)
        pattern[r, c] = pattern[c, r] = 1
        value[r, c] = value[c, r] = 0.0
        return pattern, value, mat.label
    return fit.model.derived(f"stepped {fit.model.name}", free)


def stepup_once(fit, alpha, criterion, matrices):
    """(the freed model's FitResult, its new label) of one kept step, or None."""
    candidates = _candidates(fit, matrices)
    if not candidates:
        return None
    row, spec, r, c = candidates[0]
    if not row["mi"] > chi2.isf(alpha, 1):
        return None
    new = refit(_with_freed(fit, spec, r, c), fit, {row["label"]: row["epc"]})
    gain = fit.deviance - new.deviance
    if not (new.converged and chi2.sf(max(gain, 0.0), 1) < alpha
            and _criterion(new, criterion) <= _criterion(fit, criterion)):
        return None
    return new, row["label"]


def _check(alpha, criterion):
    if not 0 < alpha < 1:
        raise ValueError(f"stepup: alpha must be between 0 and 1, got {alpha!r}.")
    if criterion not in CRITERIA:
        raise ValueError(f"stepup: criterion= must be one of {list(CRITERIA)}, "
                         f"got {criterion!r}.")


def stepup(fit, alpha=0.01, criterion="bic", matrices=None, max_steps=100):
    """Free candidates one at a time by their modification index (module doc); returns
    a SearchResult. matrices: [(level, 'theta' | 'psi'), ...] (default: the absent
    edges of every network); criterion: 'bic', 'aic' or 'none'."""
    _check(alpha, criterion)
    fits, rows = [fit], [step_row(0, "start", [], fit, None)]
    current = fit
    while len(fits) <= max_steps:
        got = stepup_once(current, alpha, criterion, matrices)
        if got is None:
            break
        current, label = got
        fits.append(current)
        rows.append(step_row(len(rows), "stepup", [label], current, fits[-2]))
    return SearchResult(current, fits, pd.DataFrame(rows))


def modelsearch(fit, alpha=0.01, criterion="bic", adjust="none", matrices=None,
                max_cycles=20):
    """Alternate prune (recursive) and stepup until a cycle changes nothing or a model
    comes back; returns a SearchResult with every step of both."""
    _check(alpha, criterion)
    adjusted(np.zeros(0), adjust)
    fits, rows = [fit], [step_row(0, "start", [], fit, None)]
    seen = {frozenset(fit.labels)}
    searches = (lambda f: prune(f, alpha, adjust, matrices, recursive=True),
                lambda f: stepup(f, alpha, criterion, matrices))
    for _ in range(max_cycles):
        before = len(fits)
        for search in searches:
            part = search(fits[-1])
            for step, new in zip(part.steps.itertuples(), part.fits):
                if step.action != "start":
                    fits.append(new)
                    rows.append(step_row(len(rows), step.action, step.changed.split(", "),
                                         new, fits[-2]))
        if len(fits) == before or frozenset(fits[-1].labels) in seen:
            break
        seen.add(frozenset(fits[-1].labels))
    return SearchResult(fits[-1], fits, pd.DataFrame(rows))
