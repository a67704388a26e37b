"""sleepstudy: reaction time over 10 days of sleep deprivation, 18 subjects.

    Reaction_ij = b0_j + b1_j Days_ij + e_ij,
    (b0_j, b1_j) ~ N((beta0, beta1), Psi),   e_ij ~ N(0, sigma^2)

A random intercept and a random slope: the between lambda from the subject's
two etas to its observations is [1, Days_ij], the second element read from
each observation's data (label "data.Days").
Reference (lme4 1.1-31 / nlme / OpenMx, ML): -2 log L 1751.9393; fixed effects
251.4051 (SE 6.632), 10.4673 (SE 1.502); variances 565.477, 32.682,
covariance 11.055, residual 654.946. lme4 profile 95% CIs: intercept
[237.6807, 265.1295], Days [7.3587, 13.5759].
Run: python models/sleepstudy/sleepstudy.py
"""
from pathlib import Path

import numpy as np
import pandas as pd

import xxmpy as xm

REFERENCE = {"deviance": 1751.9393, "intercept": 251.4051, "Days": 10.4673, "var_b0": 565.477,
             "var_b1": 32.682, "cov_b0_b1": 11.055, "residual": 654.946,
             "source": "lme4 1.1-31 / nlme 3.1-162 / OpenMx 2.21.1 (ML), ../shared/data"}

here = Path(__file__).parent
obs = pd.read_csv(here / "sleepstudy.csv")   # Reaction, Days, Subject, Subject_id
obs["obs"] = np.arange(len(obs))
subjects = pd.DataFrame({"Subject_id": sorted(obs["Subject_id"].unique())})
psi_label = [["var_b0", "cov_b0_b1"], ["cov_b0_b1", "var_b1"]]

# xxM style ------------------------------------------------------------------
m = xm.xxmModel(levels=["obs", "Subject_id"], name="sleepstudy")
xm.xxmSubmodel(model=m, level="obs", parents=["Subject_id"], ys=["Reaction"], data=obs)
xm.xxmSubmodel(model=m, level="Subject_id", etas=["b0", "b1"], data=subjects)
xm.xxmWithinMatrix(model=m, level="obs", type="theta", pattern=[[1]], value=[[500.0]],
                   label=[["residual"]])
xm.xxmWithinMatrix(model=m, level="Subject_id", type="psi", pattern=np.ones((2, 2)),
                   value=[[500.0, 0.0], [0.0, 20.0]], label=psi_label)
xm.xxmWithinMatrix(model=m, level="Subject_id", type="alpha", pattern=[[1], [1]],
                   value=[[250.0], [10.0]], label=[["intercept"], ["Days"]])
xm.xxmBetweenMatrix(model=m, parent="Subject_id", child="obs", type="lambda",
                    pattern=[[0, 0]], value=[[1.0, 0.0]], label=[[None, "data.Days"]])
xm.xxmRun(model=m)
xm.xxmCI(model=m, parameters=["intercept", "Days"], n_jobs=1)
fit_xxm = m.result
print(fit_xxm)

# Pythonic style --------------------------------------------------------------
fit_py = (xm.Model(["obs", "Subject_id"], name="sleepstudy")
          .level("obs", parents=["Subject_id"], ys=["Reaction"], data=obs)
          .level("Subject_id", etas=["b0", "b1"], data=subjects)
          .within("obs", "theta", [[1]], [[500.0]], [["residual"]])
          .within("Subject_id", "psi", np.ones((2, 2)), [[500.0, 0.0], [0.0, 20.0]], psi_label)
          .within("Subject_id", "alpha", [[1], [1]], [[250.0], [10.0]],
                  [["intercept"], ["Days"]])
          .between("Subject_id", "obs", "lambda", [[0, 0]], [[1.0, 0.0]],
                   [[None, "data.Days"]])
          .fit())

# lme4 formula ----------------------------------------------------------------
fit_lmer = xm.lmer("Reaction ~ Days + (Days | Subject)", obs, REML=False)

print(f"\n-2 log L: xxM API {fit_xxm.deviance:.4f}, Pythonic {fit_py.deviance:.4f}, "
      f"lmer {fit_lmer.deviance:.4f}; reference {REFERENCE['deviance']} ({REFERENCE['source']})")
print("lme4 profile CIs: intercept [237.6807, 265.1295], Days [7.3587, 13.5759]")
