"""Latent growth curve, wide form and long form: the same model, the same -2 log L.

    y_ti = i_i + s_i t + e_ti,   t = 0..4,   (i_i, s_i) ~ N((mu_i, mu_s), Psi),
    e_ti ~ N(0, sigma^2)   (one residual variance for every occasion)

Wide form: one level (subject) with ys y0..y4 and etas i, s; the within
lambda is fixed to [1, t]; the five residual variances share the label
"residual". Long form: occasions nested in subjects; the occasion level has
one y and the between lambda from the subject's (i, s) to its occasions is
[1, week], read from each occasion's data ("data.week"). A value missing in
the wide table is a row absent from the long table; full-information ML
gives the same -2 log L both ways. Data simulated from the model.
Run: python models/growth_curve/growth_curve.py
"""
import numpy as np
import pandas as pd

import xxmpy as xm

TRUTH = {"mu_i": 50.0, "mu_s": 3.0, "var_i": 25.0, "cov_is": 2.0, "var_s": 1.5,
         "residual": 6.0}
WEEKS = np.arange(5)


def simulate(seed=20261121, n_subjects=200, missing=0.05):
    """The wide table (subject, y0..y4; a few values missing) drawn from TRUTH."""
    rng = np.random.default_rng(seed)
    psi = [[TRUTH["var_i"], TRUTH["cov_is"]], [TRUTH["cov_is"], TRUTH["var_s"]]]
    growth = rng.multivariate_normal([TRUTH["mu_i"], TRUTH["mu_s"]], psi, n_subjects)
    y = (growth[:, [0]] + growth[:, [1]] * WEEKS
         + rng.normal(0, np.sqrt(TRUTH["residual"]), (n_subjects, WEEKS.size)))
    y[rng.random(y.shape) < missing] = np.nan
    wide = pd.DataFrame(y, columns=[f"y{t}" for t in WEEKS])
    wide.insert(0, "subject", np.arange(n_subjects))
    return wide


wide = simulate()
long = (wide.melt(id_vars="subject", var_name="wave", value_name="y")
        .dropna().sort_values(["subject", "wave"], ignore_index=True))
long["week"] = long.wave.str[1:].astype(float)
long["occasion"] = np.arange(len(long))
subjects = pd.DataFrame({"subject": wide.subject})

ys = [f"y{t}" for t in WEEKS]
loadings = np.column_stack([np.ones(WEEKS.size), WEEKS])
psi_label = [["var_i", "cov_is"], ["cov_is", "var_s"]]
psi_start = [[10.0, 0.0], [0.0, 1.0]]
alpha = dict(pattern=[[1], [1]], value=[[40.0], [1.0]], label=[["mu_i"], ["mu_s"]])

# Wide form, xxM style ---------------------------------------------------------
w = xm.xxmModel(levels=["subject"], name="growth curve (wide)")
xm.xxmSubmodel(model=w, level="subject", ys=ys, etas=["i", "s"], data=wide)
xm.xxmWithinMatrix(model=w, level="subject", type="lambda", pattern=np.zeros((5, 2)),
                   value=loadings)
xm.xxmWithinMatrix(model=w, level="subject", type="theta", pattern=np.eye(5),
                   value=np.eye(5) * 5.0, label=np.where(np.eye(5) == 1, "residual", None))
xm.xxmWithinMatrix(model=w, level="subject", type="psi", pattern=np.ones((2, 2)),
                   value=psi_start, label=psi_label)
xm.xxmWithinMatrix(model=w, level="subject", type="alpha", **alpha)
xm.xxmRun(model=w)
fit_xxm = w.result
print(fit_xxm)

# Long form, Pythonic style ---------------------------------------------------
fit_long = (xm.Model(["occasion", "subject"], name="growth curve (long)")
            .level("occasion", parents=["subject"], ys=["y"], data=long)
            .level("subject", etas=["i", "s"], data=subjects)
            .within("occasion", "theta", [[1]], [[5.0]], [["residual"]])
            .within("subject", "psi", np.ones((2, 2)), psi_start, psi_label)
            .within("subject", "alpha", **alpha)
            .between("subject", "occasion", "lambda", [[0, 0]], [[1.0, 0.0]],
                     [[None, "data.week"]])
            .fit())
print(fit_long)

# The wide form in the Pythonic style as well (both APIs, one core)
fit_py = (xm.Model(["subject"], name="growth curve (wide)")
          .level("subject", ys=ys, etas=["i", "s"], data=wide)
          .within("subject", "lambda", np.zeros((5, 2)), loadings)
          .within("subject", "theta", np.eye(5), np.eye(5) * 5.0,
                  np.where(np.eye(5) == 1, "residual", None))
          .within("subject", "psi", np.ones((2, 2)), psi_start, psi_label)
          .within("subject", "alpha", **alpha)
          .fit())

print(f"\n-2 log L: wide {fit_xxm.deviance:.6f} (Pythonic {fit_py.deviance:.6f}), "
      f"long {fit_long.deviance:.6f}: the same model")
recovery = pd.DataFrame({"truth": pd.Series(TRUTH), "wide": fit_xxm.params,
                         "long": fit_long.params, "se": fit_long.estimates.set_index("label").se}).loc[list(TRUTH)]
print(recovery.round(4))
