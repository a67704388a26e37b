"""Penicillin: inhibition-zone diameter, 24 plates crossed with 6 penicillin samples.

    diameter_ij = mu + p_i + s_j + e_ij,   p ~ N(0, tau_p^2), s ~ N(0, tau_s^2)

Each measurement has two parents, its plate and its sample, and neither level
is nested in the other: a cross-classified structure.
Reference (lme4 1.1-31, ML): -2 log L 332.1883, mean 22.9722 (SE 0.7446),
plate variance 0.71499, sample variance 3.13519, residual 0.30243.
Run: python models/penicillin/penicillin.py
"""
from pathlib import Path

import numpy as np
import pandas as pd

import xxmpy as xm

REFERENCE = {"deviance": 332.1883, "mean": 22.9722, "plate_var": 0.71499,
             "sample_var": 3.13519, "residual": 0.30243,
             "source": "lme4 1.1-31 (ML), ../shared/data"}

here = Path(__file__).parent
obs = pd.read_csv(here / "Penicillin.csv")   # diameter, plate, sample, plate_id, sample_id
obs["obs"] = np.arange(len(obs))
plates = pd.DataFrame({"plate_id": sorted(obs["plate_id"].unique())})
samples = pd.DataFrame({"sample_id": sorted(obs["sample_id"].unique())})

# xxM style ------------------------------------------------------------------
m = xm.xxmModel(levels=["obs", "plate_id", "sample_id"], name="Penicillin")
xm.xxmSubmodel(model=m, level="obs", parents=["plate_id", "sample_id"], ys=["diameter"],
               data=obs)
xm.xxmSubmodel(model=m, level="plate_id", etas=["p"], data=plates)
xm.xxmSubmodel(model=m, level="sample_id", etas=["s"], data=samples)
xm.xxmWithinMatrix(model=m, level="obs", type="nu", pattern=[[1]], value=[[20.0]],
                   label=[["mean"]])
xm.xxmWithinMatrix(model=m, level="obs", type="theta", pattern=[[1]], value=[[1.0]],
                   label=[["residual"]])
xm.xxmWithinMatrix(model=m, level="plate_id", type="psi", pattern=[[1]], value=[[1.0]],
                   label=[["plate_var"]])
xm.xxmWithinMatrix(model=m, level="sample_id", type="psi", pattern=[[1]], value=[[1.0]],
                   label=[["sample_var"]])
xm.xxmBetweenMatrix(model=m, parent="plate_id", child="obs", type="lambda", pattern=[[0]],
                    value=[[1.0]])
xm.xxmBetweenMatrix(model=m, parent="sample_id", child="obs", type="lambda", pattern=[[0]],
                    value=[[1.0]])
xm.xxmRun(model=m)
fit_xxm = m.result
print(fit_xxm)

# Pythonic style --------------------------------------------------------------
fit_py = (xm.Model(["obs", "plate_id", "sample_id"], name="Penicillin")
          .level("obs", parents=["plate_id", "sample_id"], ys=["diameter"], data=obs)
          .level("plate_id", etas=["p"], data=plates)
          .level("sample_id", etas=["s"], data=samples)
          .within("obs", "nu", [[1]], [[20.0]], [["mean"]])
          .within("obs", "theta", [[1]], [[1.0]], [["residual"]])
          .within("plate_id", "psi", [[1]], [[1.0]], [["plate_var"]])
          .within("sample_id", "psi", [[1]], [[1.0]], [["sample_var"]])
          .between("plate_id", "obs", "lambda", [[0]], [[1.0]])
          .between("sample_id", "obs", "lambda", [[0]], [[1.0]])
          .fit())

# lme4 formula ----------------------------------------------------------------
fit_lmer = xm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", obs, REML=False)

print(f"\n-2 log L: xxM API {fit_xxm.deviance:.4f}, Pythonic {fit_py.deviance:.4f}, "
      f"lmer {fit_lmer.deviance:.4f}; reference {REFERENCE['deviance']} ({REFERENCE['source']})")
