"""Pastes: paste strength, two assays per cask sample, 3 samples per batch (3 levels).

    strength_ijk = mu + s_jk + b_k + e_ijk,   s ~ N(0, tau_s^2), b ~ N(0, tau_b^2)

Each assay (obs) has two parents, its sample and its batch; each sample has
the batch as parent: a nested structure of three levels.
Reference (lme4 1.1-31, ML): -2 log L 247.9945, mean 60.0533 (SE 0.6421),
sample variance 8.4336, batch variance 1.1992, residual 0.6780.
Run: python models/pastes/pastes.py
"""
from pathlib import Path

import numpy as np
import pandas as pd

import xxmpy as xm

REFERENCE = {"deviance": 247.9945, "mean": 60.0533, "sample_var": 8.4336, "batch_var": 1.1992,
             "residual": 0.6780, "source": "lme4 1.1-31 (ML), ../shared/data"}

here = Path(__file__).parent
obs = pd.read_csv(here / "Pastes.csv")   # strength, batch, cask, sample, *_id
obs["obs"] = np.arange(len(obs))
samples = obs.drop_duplicates("sample_id")[["sample_id", "batch_id"]]
batches = pd.DataFrame({"batch_id": sorted(obs["batch_id"].unique())})

# xxM style ------------------------------------------------------------------
m = xm.xxmModel(levels=["obs", "sample_id", "batch_id"], name="Pastes")
xm.xxmSubmodel(model=m, level="obs", parents=["sample_id", "batch_id"], ys=["strength"],
               data=obs)
xm.xxmSubmodel(model=m, level="sample_id", parents=["batch_id"], etas=["s"], data=samples)
xm.xxmSubmodel(model=m, level="batch_id", etas=["b"], data=batches)
xm.xxmWithinMatrix(model=m, level="obs", type="nu", pattern=[[1]], value=[[60.0]],
                   label=[["mean"]])
xm.xxmWithinMatrix(model=m, level="obs", type="theta", pattern=[[1]], value=[[1.0]],
                   label=[["residual"]])
xm.xxmWithinMatrix(model=m, level="sample_id", type="psi", pattern=[[1]], value=[[1.0]],
                   label=[["sample_var"]])
xm.xxmWithinMatrix(model=m, level="batch_id", type="psi", pattern=[[1]], value=[[1.0]],
                   label=[["batch_var"]])
xm.xxmBetweenMatrix(model=m, parent="sample_id", child="obs", type="lambda", pattern=[[0]],
                    value=[[1.0]])
xm.xxmBetweenMatrix(model=m, parent="batch_id", child="obs", type="lambda", pattern=[[0]],
                    value=[[1.0]])
xm.xxmRun(model=m)
xm.xxmCI(model=m, n_jobs=1)
fit_xxm = m.result
print(fit_xxm)

# Pythonic style --------------------------------------------------------------
fit_py = (xm.Model(["obs", "sample_id", "batch_id"], name="Pastes")
          .level("obs", parents=["sample_id", "batch_id"], ys=["strength"], data=obs)
          .level("sample_id", parents=["batch_id"], etas=["s"], data=samples)
          .level("batch_id", etas=["b"], data=batches)
          .within("obs", "nu", [[1]], [[60.0]], [["mean"]])
          .within("obs", "theta", [[1]], [[1.0]], [["residual"]])
          .within("sample_id", "psi", [[1]], [[1.0]], [["sample_var"]])
          .within("batch_id", "psi", [[1]], [[1.0]], [["batch_var"]])
          .between("sample_id", "obs", "lambda", [[0]], [[1.0]])
          .between("batch_id", "obs", "lambda", [[0]], [[1.0]])
          .fit())

# lme4 formula ----------------------------------------------------------------
fit_lmer = xm.lmer("strength ~ 1 + (1 | batch/cask)", obs, REML=False)

print(f"\n-2 log L: xxM API {fit_xxm.deviance:.4f}, Pythonic {fit_py.deviance:.4f}, "
      f"lmer {fit_lmer.deviance:.4f}; reference {REFERENCE['deviance']} ({REFERENCE['source']})")
ci = fit_xxm.estimates.set_index("label")
for lab, ref in (("sample_var", "[2.1579, 4.0536]"), ("batch_var", "[0, 2.9466]"),
                 ("residual", "[0.6520, 1.0854]")):
    print(f"{lab} SD 95% CI [{np.sqrt(ci.loc[lab, 'lower']):.4f}, "
          f"{np.sqrt(ci.loc[lab, 'upper']):.4f}] (lme4 {ref})")
