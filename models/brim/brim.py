"""Bivariate random intercepts ("Hello xxM"): students (y1, y2) in teachers.

Reference (OpenMx / lavaan, ../shared/data/README.md): -2 log L 445.4331.
Run: python models/brim/brim.py
"""
from pathlib import Path

import numpy as np
import pandas as pd

import xxmpy as xm

here = Path(__file__).parent
student = pd.read_csv(here / "brim_student.csv")
teacher = pd.DataFrame({"teacher": sorted(student["teacher"].unique())})

# xxM style ------------------------------------------------------------------
brim = xm.xxmModel(levels=["student", "teacher"])
brim = xm.xxmSubmodel(model=brim, level="student", parents=["teacher"], ys=["y1", "y2"],
                      xs=[], etas=[], data=student)
brim = xm.xxmSubmodel(model=brim, level="teacher", parents=[], ys=[], xs=[],
                      etas=["eta1", "eta2"], data=teacher)
xm.xxmWithinMatrix(model=brim, level="student", type="theta",
                   pattern=np.ones((2, 2)), value=[[1.0, 0.5], [0.5, 1.0]])
xm.xxmWithinMatrix(model=brim, level="teacher", type="psi",
                   pattern=np.ones((2, 2)), value=[[1.0, 0.5], [0.5, 1.0]])
xm.xxmWithinMatrix(model=brim, level="teacher", type="alpha",
                   pattern=np.ones((2, 1)), value=np.zeros((2, 1)))
xm.xxmBetweenMatrix(model=brim, parent="teacher", child="student", type="lambda",
                    pattern=np.zeros((2, 2)), value=np.eye(2))
xm.xxmRun(model=brim)
summary = xm.xxmSummary(model=brim)
print(brim.result)
xm.xxmFree(model=brim)

# The same model, Pythonic style ----------------------------------------------
result = (xm.Model(["student", "teacher"])
          .level("student", parents=["teacher"], ys=["y1", "y2"], data=student)
          .level("teacher", etas=["eta1", "eta2"], data=teacher)
          .within("student", "theta", np.ones((2, 2)), [[1.0, 0.5], [0.5, 1.0]])
          .within("teacher", "psi", np.ones((2, 2)), [[1.0, 0.5], [0.5, 1.0]])
          .within("teacher", "alpha", np.ones((2, 1)), np.zeros((2, 1)))
          .between("teacher", "student", "lambda", np.zeros((2, 2)), np.eye(2))
          .fit())
print(f"\nPythonic API: -2 log L {result.deviance:.4f} (xxM API: "
      f"{summary['fit']['deviance']:.4f}; OpenMx reference 445.4331)")
