"""Bivariate random intercepts ("Hello xxM"): students (y1, y2) in teachers.

    y_kij = alpha_k + eta_kj + e_kij,   k = 1, 2
    (eta_1j, eta_2j) ~ N(0, Psi),   (e_1ij, e_2ij) ~ N(0, Theta)

Reference (OpenMx 2.21.1 / lavaan 0.6-14, ML; ../shared/data/README.md):
-2 log L 445.4331; alpha (-0.10728, 0.27815), theta (0.96915, 0.33813,
0.89347), psi (0.75240, 0.12834, 0.15924).
Run: python models/brim/brim.py
"""
from pathlib import Path

import numpy as np
import pandas as pd

import xxmpy as xm

REFERENCE = {"deviance": 445.4331, "alpha1": -0.10728, "alpha2": 0.27815, "theta11": 0.96915,
             "theta21": 0.33813, "theta22": 0.89347, "psi11": 0.75240, "psi21": 0.12834,
             "psi22": 0.15924, "source": "OpenMx 2.21.1 / lavaan 0.6-14 (ML), ../shared/data"}
theta_label = [["theta11", "theta21"], ["theta21", "theta22"]]
psi_label = [["psi11", "psi21"], ["psi21", "psi22"]]
alpha_label = [["alpha1"], ["alpha2"]]

here = Path(__file__).parent
student = pd.read_csv(here / "brim_student.csv")
teacher = pd.DataFrame({"teacher": sorted(student["teacher"].unique())})

# xxM style ------------------------------------------------------------------
brim = xm.xxmModel(levels=["student", "teacher"], name="brim: bivariate random intercepts")
brim = xm.xxmSubmodel(model=brim, level="student", parents=["teacher"], ys=["y1", "y2"],
                      xs=[], etas=[], data=student)
brim = xm.xxmSubmodel(model=brim, level="teacher", parents=[], ys=[], xs=[],
                      etas=["eta1", "eta2"], data=teacher)
xm.xxmWithinMatrix(model=brim, level="student", type="theta",
                   pattern=np.ones((2, 2)), value=[[1.0, 0.5], [0.5, 1.0]], label=theta_label)
xm.xxmWithinMatrix(model=brim, level="teacher", type="psi",
                   pattern=np.ones((2, 2)), value=[[1.0, 0.5], [0.5, 1.0]], label=psi_label)
xm.xxmWithinMatrix(model=brim, level="teacher", type="alpha",
                   pattern=np.ones((2, 1)), value=np.zeros((2, 1)), label=alpha_label)
xm.xxmBetweenMatrix(model=brim, parent="teacher", child="student", type="lambda",
                    pattern=np.zeros((2, 2)), value=np.eye(2))
xm.xxmRun(model=brim)
xm.xxmCI(model=brim, n_jobs=1)              # profile-likelihood 95% CIs
summary = xm.xxmSummary(model=brim)         # {"fit": {...}, "estimates": DataFrame}
fit_xxm = brim.result
print(fit_xxm)
xm.xxmFree(model=brim)

# The same model, Pythonic style ----------------------------------------------
fit_py = (xm.Model(["student", "teacher"])
          .level("student", parents=["teacher"], ys=["y1", "y2"], data=student)
          .level("teacher", etas=["eta1", "eta2"], data=teacher)
          .within("student", "theta", np.ones((2, 2)), [[1.0, 0.5], [0.5, 1.0]], theta_label)
          .within("teacher", "psi", np.ones((2, 2)), [[1.0, 0.5], [0.5, 1.0]], psi_label)
          .within("teacher", "alpha", np.ones((2, 1)), np.zeros((2, 1)), alpha_label)
          .between("teacher", "student", "lambda", np.zeros((2, 2)), np.eye(2))
          .fit())
print(f"\nPythonic API: -2 log L {fit_py.deviance:.4f} (xxM API: "
      f"{summary['fit']['deviance']:.4f}; OpenMx reference 445.4331)")
