"""Dyestuff: yield of dyestuff in 6 batches, a one-way random-effects model.

    Yield_ij = mu + u_j + e_ij,   u_j ~ N(0, tau^2),   e_ij ~ N(0, sigma^2)

Reference (lme4 1.1-31, OpenMx 2.21.1, lavaan 0.6-14; ML): -2 log L 327.3271,
mu 1527.5 (SE 17.69), tau^2 1388.33, sigma^2 2451.25; lme4 profile 95% CIs
batch SD [12.1985, 84.0630], residual SD [38.2300, 67.6577].
Run: python models/dyestuff/dyestuff.py
"""
from pathlib import Path

import numpy as np
import pandas as pd

import xxmpy as xm

REFERENCE = {"deviance": 327.3271, "mean": 1527.5, "batch_var": 1388.33, "residual": 2451.25,
             "source": "lme4 1.1-31 / OpenMx 2.21.1 / lavaan 0.6-14 (ML), ../shared/data"}

here = Path(__file__).parent
obs = pd.read_csv(here / "Dyestuff.csv")          # Batch, Yield, Batch_id
obs["obs"] = np.arange(len(obs))                 # each level's table has its own ID column
batches = pd.DataFrame({"Batch_id": sorted(obs["Batch_id"].unique())})

# xxM style ------------------------------------------------------------------
m = xm.xxmModel(levels=["obs", "Batch_id"], name="Dyestuff")
xm.xxmSubmodel(model=m, level="obs", parents=["Batch_id"], ys=["Yield"], data=obs)
xm.xxmSubmodel(model=m, level="Batch_id", etas=["u"], data=batches)
xm.xxmWithinMatrix(model=m, level="obs", type="nu", pattern=[[1]], value=[[1500.0]],
                   label=[["mean"]])
xm.xxmWithinMatrix(model=m, level="obs", type="theta", pattern=[[1]], value=[[1000.0]],
                   label=[["residual"]])
xm.xxmWithinMatrix(model=m, level="Batch_id", type="psi", pattern=[[1]], value=[[1000.0]],
                   label=[["batch_var"]])
xm.xxmBetweenMatrix(model=m, parent="Batch_id", child="obs", type="lambda",
                    pattern=[[0]], value=[[1.0]])
xm.xxmRun(model=m)
xm.xxmCI(model=m, n_jobs=1)                       # profile-likelihood 95% CIs
summary = xm.xxmSummary(model=m)
fit_xxm = m.result
print(fit_xxm)

# Pythonic style --------------------------------------------------------------
fit_py = (xm.Model(["obs", "Batch_id"])
          .level("obs", parents=["Batch_id"], ys=["Yield"], data=obs)
          .level("Batch_id", etas=["u"], data=batches)
          .within("obs", "nu", [[1]], [[1500.0]], [["mean"]])
          .within("obs", "theta", [[1]], [[1000.0]], [["residual"]])
          .within("Batch_id", "psi", [[1]], [[1000.0]], [["batch_var"]])
          .between("Batch_id", "obs", "lambda", [[0]], [[1.0]])
          .fit())

# lme4 formula ----------------------------------------------------------------
fit_lmer = xm.lmer("Yield ~ 1 + (1 | Batch)", obs, REML=False)

ci = fit_xxm.estimates.set_index("label")
print(f"\n-2 log L: xxM API {fit_xxm.deviance:.4f}, Pythonic {fit_py.deviance:.4f}, "
      f"lmer {fit_lmer.deviance:.4f}; reference {REFERENCE['deviance']} ({REFERENCE['source']})")
print(f"batch SD 95% CI [{np.sqrt(ci.loc['batch_var', 'lower']):.4f}, "
      f"{np.sqrt(ci.loc['batch_var', 'upper']):.4f}] (lme4 [12.1985, 84.0630]); residual SD "
      f"[{np.sqrt(ci.loc['residual', 'lower']):.4f}, {np.sqrt(ci.loc['residual', 'upper']):.4f}]"
      f" (lme4 [38.2300, 67.6577])")
