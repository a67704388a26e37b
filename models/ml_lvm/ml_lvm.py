"""psychonetrics' ml_lvm: a two-level factor model with one loading matrix for both levels.

    within (rows)       y = nu + Lambda eta_w + e_w,   cov(eta_w) = Psi_w, cov(e_w) = Theta_w
    between (clusters)      + Lambda eta_b + e_b,      cov(eta_b) = Psi_b, cov(e_b) = Theta_b

Six indicators, two factors (y1..y3, y4..y6), the first loading of each fixed at
1, the other four shared by the levels; Theta_w and Theta_b diagonal; free
intercepts. 28 parameters. Fitted three ways: the explicit xxM model (the
between residuals e_b as etas of the cluster level, loading 1 on their y), the
one-call ``xm.ml_lvm`` (psychonetrics' function), and ``xm.ml_lnm`` (both latent
covariance blocks as networks) followed by ``xm.prune``.
Run: python models/ml_lvm/ml_lvm.py
"""
from pathlib import Path

import numpy as np
import pandas as pd

import xxmpy as xm

# [psychonetrics] the ml_lvm documentation example (its data: psychonetrics_ml_lvm.csv,
# generated with the documentation's code, ../shared/data): chisq 15.92 on 20 df, the
# between latent covariance about [[0.89, -0.14], [-0.14, 0.76]] and the within one
# about [[0.95, 0.03], [0.03, 1.00]]. [lavaan] 0.6-14 on the same data and model
# (tests/data/r/psychonetrics_ml_lvm.R): log L -5146.86922686, -2 log L 10293.73845372.
REFERENCE = {"source": "psychonetrics ml_lvm documentation; lavaan 0.6-14",
             "deviance": 10293.73845372,
             "psi_b11": 0.89, "psi_b21": -0.14, "psi_b22": 0.76,
             "psi_w11": 0.95, "psi_w21": 0.03, "psi_w22": 1.00}

data = pd.read_csv(Path(__file__).with_name("psychonetrics_ml_lvm.csv"))
YS = [f"y{k}" for k in range(1, 7)]
rows = data.assign(row=np.arange(len(data)))
clusters = pd.DataFrame({"cluster": np.unique(data.cluster)})
free = np.zeros((6, 2))
free[1:3, 0] = free[4:6, 1] = 1
marker = np.zeros((6, 2))
marker[0, 0] = marker[3, 1] = 1
loading_label = np.full((6, 2), None, dtype=object)
loading_label[1:3, 0], loading_label[4:6, 1] = ["l2", "l3"], ["l5", "l6"]
between_pattern = np.zeros((8, 8))
between_pattern[:2, :2] = 1
between_pattern[2:, 2:] = np.eye(6)
between_label = np.full((8, 8), None, dtype=object)
between_label[0, 0], between_label[1, 0], between_label[0, 1], between_label[1, 1] = \
    "psi_b11", "psi_b21", "psi_b21", "psi_b22"
within_label = [["psi_w11", "psi_w21"], ["psi_w21", "psi_w22"]]
reach = np.column_stack([free, np.zeros((6, 6))])
reach_value = np.column_stack([free + marker, np.eye(6)])
reach_label = np.column_stack([loading_label, np.full((6, 6), None, dtype=object)])

# xxM style: the model written out -------------------------------------------
m = xm.xxmModel(levels=["row", "cluster"], name="ml_lvm")
xm.xxmSubmodel(model=m, level="row", parents=["cluster"], ys=YS, etas=["F1", "F2"],
               data=rows)
xm.xxmSubmodel(model=m, level="cluster", etas=["F1", "F2"] + [f"eps_{y}" for y in YS],
               data=clusters)
xm.xxmWithinMatrix(model=m, level="row", type="lambda", pattern=free, value=free + marker,
                   label=loading_label)           # every loading starts at 1
xm.xxmWithinMatrix(model=m, level="row", type="nu", pattern=np.ones((6, 1)),
                   value=np.zeros((6, 1)))
xm.xxmWithinMatrix(model=m, level="row", type="psi", pattern=np.ones((2, 2)),
                   value=np.eye(2), label=within_label)
xm.xxmWithinMatrix(model=m, level="row", type="theta", pattern=np.eye(6), value=np.eye(6))
xm.xxmWithinMatrix(model=m, level="cluster", type="psi", pattern=between_pattern,
                   value=np.eye(8) * 0.5, label=between_label)
xm.xxmBetweenMatrix(model=m, parent="cluster", child="row", type="lambda", pattern=reach,
                    value=reach_value, label=reach_label)
xm.xxmRun(model=m, start="auto")
fit_xxm = m.result
print(fit_xxm)

# Pythonic style: psychonetrics' one call ---------------------------------------
loads = (free + marker).astype(bool)
fit_py = xm.ml_lvm(data, loads, "cluster", vars=YS)
measures = fit_py.fit_measures()
print(f"\n-2 log L: xxM API {fit_xxm.deviance:.4f}, xm.ml_lvm {fit_py.deviance:.4f}")
print(f"chisq {measures['chisq']:.2f} on {measures['df']:.0f} df, p {measures['pvalue']:.2f}, "
      f"CFI {measures['cfi']:.2f} (psychonetrics: 15.92, 20 df, p 0.72, CFI 1.0)")

# A latent network model, pruned --------------------------------------------------
lnm = xm.ml_lnm(data, loads, "cluster", vars=YS)
print("\nwithin latent network:\n", lnm.network("row", "psi").round(3))
print("between latent network:\n", lnm.network("cluster", "psi").round(3))
pruned = xm.prune(lnm, alpha=0.01, adjust="none", recursive=True)
print("\nprune (alpha 0.01):")
print(pruned)
