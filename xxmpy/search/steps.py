"""The record of a model search: one row per fitted model."""
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import chi2

from ..assessment.compare import compare

COLUMNS = ["step", "action", "changed", "n_parameters", "deviance", "chisq", "df", "p",
           "aic", "bic", "converged"]


@dataclass
class SearchResult:
    """fit: the final model's FitResult; fits: every model fitted on the way, in order
    (the start first); steps: one row per fit (step, action 'start' | 'prune' |
    'stepup', changed: the labels fixed at 0 or freed, n_parameters, deviance, the
    chi-square test against the previous step (chisq, df, p), aic, bic, converged)."""
    fit: object
    fits: list
    steps: pd.DataFrame

    def __str__(self):
        return self.steps.to_string(index=False)

    def compare(self):
        """xm.compare of every model fitted on the way (fit measures side by side),
        named step 0, step 1, ..."""
        if len(self.fits) < 2:
            raise ValueError("SearchResult.compare: the search fitted no model beyond "
                             "the start; nothing to compare.")
        return compare(*self.fits, names=[f"step {k}" for k in range(len(self.fits))])

    __repr__ = __str__


def step_row(step, action, changed, fit, before):
    """One row of the steps table (COLUMNS); before: the previous FitResult or None."""
    row = {"step": step, "action": action, "changed": ", ".join(changed),
           "n_parameters": fit.n_parameters, "deviance": fit.deviance, "chisq": np.nan,
           "df": np.nan, "p": np.nan, "aic": fit.aic, "bic": fit.bic,
           "converged": fit.converged}
    if before is not None:
        df = abs(before.n_parameters - fit.n_parameters)
        row["chisq"] = abs(fit.deviance - before.deviance)
        row["df"] = df
        row["p"] = float(chi2.sf(row["chisq"], df)) if df else np.nan
    return row


def refit(model, previous, new_starts=None):
    """Fit ``model`` from the previous FitResult's estimates (by label), new labels from
    ``new_starts`` (label -> value) or 0."""
    problem = model.compile()
    known = dict(zip(previous.labels, previous.record.estimate))
    known.update(new_starts or {})
    return model.fit(start=np.array([known.get(lab, 0.0) for lab in problem.params.labels]))
