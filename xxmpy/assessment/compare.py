"""compare(fit1, fit2, ...): fit measures side by side and chi-square differences.

One row per model, ordered by degrees of freedom (most restricted first, as
lavaan's lavTestLRT): npar, df, chisq, pvalue, cfi, tli, rmsea, srmr, aic,
bic, and against the model before it chisq_diff (the difference of -2 log L,
negative set to 0), df_diff and its chi-square p_value. The fits must share
the data: the same N at the observed level and the same saturated log L.
"""
import numpy as np
import pandas as pd
from scipy.stats import chi2

COLUMNS = ["npar", "df", "chisq", "pvalue", "cfi", "tli", "rmsea", "srmr", "aic", "bic"]


def compare(*fits, names=None) -> pd.DataFrame:
    """DataFrame of the fits' measures (module docstring), indexed by ``names``
    (default model1, model2, ...). FitResults of models whose saturated model can
    be formed (FitResult.fit_measures)."""
    if len(fits) < 2:
        raise ValueError("compare: give at least two fitted models.")
    names = list(names) if names is not None else [f"model{k + 1}" for k in range(len(fits))]
    if len(names) != len(fits):
        raise ValueError(f"compare: names= has {len(names)} entries for {len(fits)} models.")
    measures = [fit.fit_measures() for fit in fits]
    ntotal = {int(m["ntotal"]) for m in measures}
    h1 = np.array([m["unrestricted_logl"] for m in measures])
    same_h1 = np.allclose(h1, h1[0], rtol=0, atol=1e-6 * max(1.0, abs(h1[0])))
    if len(ntotal) > 1 or not same_h1:
        raise ValueError(f"compare: the models were not fitted to the same data (N "
                         f"{sorted(ntotal)}, saturated log L {list(np.round(h1, 4))}); "
                         f"chi-square differences need the same data.")
    order = sorted(range(len(fits)), key=lambda k: (-measures[k]["df"], k))
    rows, prev = [], None
    for k in order:
        m = measures[k]
        row = {"model": names[k], **{c: m[c] for c in COLUMNS},
               "chisq_diff": np.nan, "df_diff": np.nan, "p_value": np.nan}
        if prev is not None:
            diff = max(fits[prev].deviance - fits[k].deviance, 0.0)
            df = measures[prev]["df"] - m["df"]
            row.update({"chisq_diff": diff, "df_diff": df,
                        "p_value": chi2.sf(diff, df) if df > 0 else np.nan})
        rows.append(row)
        prev = k
    return pd.DataFrame(rows).set_index("model")
