"""Likelihood-ratio comparison of nested models: anova(m1, m2, ...).

Works for lmer fits (REML fits are refitted by ML first, as lme4 does) and
for any xxM fits (FitResult). Models are ordered by their number of
parameters; each is tested against the one before it.
"""
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import chi2


@dataclass
class AnovaTable:
    """The comparison of nested fits.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per model (lme4's columns: npar, AIC, BIC, logLik, deviance,
        Chisq, Df, Pr(>Chisq)).
    notes : list of str
        Boundary notes (a variance tested at 0: the chi-square p is conservative).
    """
    table: pd.DataFrame
    notes: list = field(default_factory=list)

    def __str__(self):
        text = self.table.to_string(na_rep="", float_format=lambda v: f"{v:.6g}")
        return "\n".join([text] + [f"note: {n}" for n in self.notes])

    __repr__ = __str__


def _is_reml(result):
    return getattr(result, "reml", False)


def _parameters(result):
    """(labels, variance labels) of an ML fit: an lmer fit's xxM fit, or a FitResult."""
    params = getattr(result, "fit_result", result).problem.params
    return list(params.labels), [lab for lab, v in zip(params.labels, params.is_variance) if v]


def anova(*results, names=None) -> AnovaTable:
    """Likelihood-ratio tests of nested fits, as lme4's anova.

    Parameters
    ----------
    *results : FitResult or LmerResult
        At least two fits of the same data; REML lmer fits are refitted by ML.
    names : sequence of str, optional
        Row names (default model1, model2, ...).

    Returns
    -------
    AnovaTable
        npar, AIC, BIC, logLik, deviance, Chisq, Df, Pr(>Chisq) per model, each
        tested against the one before it (ordered by npar).
    """
    if len(results) < 2:
        raise ValueError("anova: give at least two fitted models to compare.")
    names = list(names) if names is not None else [f"model{k + 1}" for k in range(len(results))]
    if len(names) != len(results):
        raise ValueError(f"anova: names= has {len(names)} entries for {len(results)} models.")
    notes = []
    if any(_is_reml(r) for r in results):
        notes.append("refitted REML fit(s) with ML (instead of REML): REML criteria of "
                     "models with different fixed effects are not comparable.")
    fits = [r.refit_ml() if _is_reml(r) else r for r in results]
    nobs = {int(f.n_observations) for f in fits}
    if len(nobs) > 1:
        raise ValueError(f"anova: the models were fitted to different numbers of "
                         f"observations {sorted(nobs)}; a likelihood-ratio test needs the "
                         f"same data.")
    order = sorted(range(len(fits)), key=lambda k: (fits[k].n_parameters, k))
    rows, prev, prev_name = [], None, None
    for k in order:
        f = fits[k]
        row = {"model": names[k], "npar": f.n_parameters, "AIC": f.aic, "BIC": f.bic,
               "logLik": -0.5 * f.deviance, "deviance": f.deviance,
               "Chisq": np.nan, "Df": np.nan, "Pr(>Chisq)": np.nan}
        if prev is not None:
            df = f.n_parameters - prev.n_parameters
            stat = prev.deviance - f.deviance
            row.update({"Chisq": max(stat, 0.0), "Df": df,
                        "Pr(>Chisq)": chi2.sf(max(stat, 0.0), df) if df > 0 else np.nan})
            _boundary_note(prev, f, prev_name, names[k], notes)
        rows.append(row)
        prev, prev_name = f, names[k]
    return AnovaTable(pd.DataFrame(rows).set_index("model"), notes)


def _boundary_note(small, big, small_name, big_name, notes):
    """A note when the smaller model is the larger with variances fixed at 0 (its
    parameters, by label, are a subset of the larger's): the null is on the boundary.
    Models parametrised differently (e.g. compound symmetry as two variance terms vs an
    unstructured covariance) are not judged by labels: nothing is claimed for them."""
    small_labels, _ = _parameters(small)
    big_labels, big_var = _parameters(big)
    if not set(small_labels) <= set(big_labels):
        return
    extra = [v for v in big_var if v not in small_labels]
    if extra:
        notes.append(f"{small_name} vs {big_name}: the null hypothesis puts "
                     f"{', '.join(extra)} on the boundary of the parameter space (a variance "
                     f"of 0), so the chi-square p-value is conservative; for one variance "
                     f"the reference is the 50:50 mixture of chi-square(df-1) and "
                     f"chi-square(df) (Self & Liang 1987).")
