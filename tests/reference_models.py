"""The reference data sets of tests/data as xxmpy models (xxM API).

Data and reference results: ../shared/data/README.md (lme4 1.1-31 ML,
OpenMx 2.21.1, lavaan 0.6-14 on this project's machine).
"""
from pathlib import Path

import numpy as np
import pandas as pd

import xxmpy as xm

DATA = Path(__file__).parent / "data"


def _read(name):
    df = pd.read_csv(DATA / name)
    df.insert(0, "obs", np.arange(len(df)))
    return df


def _groups(df, col):
    return pd.DataFrame({col: sorted(df[col].unique())})


def one_way(file="Dyestuff.csv", y="Yield", group="Batch_id", start=(1500.0, 1000.0, 1000.0)):
    """y ~ 1 + (1 | group): Dyestuff and Dyestuff2."""
    df = _read(file)
    m = xm.xxmModel(levels=["obs", group])
    xm.xxmSubmodel(model=m, level="obs", parents=[group], ys=[y], data=df)
    xm.xxmSubmodel(model=m, level=group, etas=["u"], data=_groups(df, group))
    xm.xxmWithinMatrix(model=m, level="obs", type="nu", pattern=[[1]], value=[[start[0]]],
                       label=[["mean"]])
    xm.xxmWithinMatrix(model=m, level="obs", type="theta", pattern=[[1]], value=[[start[2]]],
                       label=[["residual"]])
    xm.xxmWithinMatrix(model=m, level=group, type="psi", pattern=[[1]], value=[[start[1]]],
                       label=[["group_var"]])
    xm.xxmBetweenMatrix(model=m, parent=group, child="obs", type="lambda", pattern=[[0]],
                        value=[[1]])
    return m


def pastes():
    """strength ~ 1 + (1 | sample) + (1 | batch), samples nested in batches."""
    df = _read("Pastes.csv")
    samples = df.drop_duplicates("sample_id")[["sample_id", "batch_id"]]
    m = xm.xxmModel(levels=["obs", "sample_id", "batch_id"])
    xm.xxmSubmodel(m, "obs", parents=["sample_id", "batch_id"], ys=["strength"], data=df)
    xm.xxmSubmodel(m, "sample_id", parents=["batch_id"], etas=["s"], data=samples)
    xm.xxmSubmodel(m, "batch_id", etas=["b"], data=_groups(df, "batch_id"))
    xm.xxmWithinMatrix(m, "obs", "nu", [[1]], [[60.0]], [["mean"]])
    xm.xxmWithinMatrix(m, "obs", "theta", [[1]], [[1.0]], [["residual"]])
    xm.xxmWithinMatrix(m, "sample_id", "psi", [[1]], [[1.0]], [["sample_var"]])
    xm.xxmWithinMatrix(m, "batch_id", "psi", [[1]], [[1.0]], [["batch_var"]])
    xm.xxmBetweenMatrix(m, "sample_id", "obs", "lambda", [[0]], [[1.0]])
    xm.xxmBetweenMatrix(m, "batch_id", "obs", "lambda", [[0]], [[1.0]])
    return m


def penicillin():
    """diameter ~ 1 + (1 | plate) + (1 | sample), plates crossed with samples."""
    df = _read("Penicillin.csv")
    m = xm.xxmModel(levels=["obs", "plate_id", "sample_id"])
    xm.xxmSubmodel(m, "obs", parents=["plate_id", "sample_id"], ys=["diameter"], data=df)
    xm.xxmSubmodel(m, "plate_id", etas=["p"], data=_groups(df, "plate_id"))
    xm.xxmSubmodel(m, "sample_id", etas=["s"], data=_groups(df, "sample_id"))
    xm.xxmWithinMatrix(m, "obs", "nu", [[1]], [[20.0]], [["mean"]])
    xm.xxmWithinMatrix(m, "obs", "theta", [[1]], [[1.0]], [["residual"]])
    xm.xxmWithinMatrix(m, "plate_id", "psi", [[1]], [[1.0]], [["plate_var"]])
    xm.xxmWithinMatrix(m, "sample_id", "psi", [[1]], [[1.0]], [["sample_var"]])
    xm.xxmBetweenMatrix(m, "plate_id", "obs", "lambda", [[0]], [[1.0]])
    xm.xxmBetweenMatrix(m, "sample_id", "obs", "lambda", [[0]], [[1.0]])
    return m


def sleepstudy():
    """Reaction ~ Days + (Days | Subject): a random slope through label data.Days."""
    df = _read("sleepstudy.csv")
    m = xm.xxmModel(levels=["obs", "Subject_id"])
    xm.xxmSubmodel(m, "obs", parents=["Subject_id"], ys=["Reaction"], data=df)
    xm.xxmSubmodel(m, "Subject_id", etas=["b0", "b1"], data=_groups(df, "Subject_id"))
    xm.xxmWithinMatrix(m, "obs", "theta", [[1]], [[500.0]], [["residual"]])
    xm.xxmWithinMatrix(m, "Subject_id", "psi", np.ones((2, 2)), [[500.0, 0.0], [0.0, 20.0]],
                       [["var_b0", "cov_b0_b1"], ["cov_b0_b1", "var_b1"]])
    xm.xxmWithinMatrix(m, "Subject_id", "alpha", [[1], [1]], [[250.0], [10.0]],
                       [["intercept"], ["Days"]])
    xm.xxmBetweenMatrix(m, "Subject_id", "obs", "lambda", [[0, 0]], [[1.0, 0.0]],
                        [[None, "data.Days"]])
    return m


def brim():
    """Bivariate random intercepts ("Hello xxM"): 8 parameters."""
    s = pd.read_csv(DATA / "brim_student.csv")
    m = xm.xxmModel(levels=["student", "teacher"])
    xm.xxmSubmodel(m, "student", parents=["teacher"], ys=["y1", "y2"], data=s)
    xm.xxmSubmodel(m, "teacher", etas=["eta1", "eta2"], data=_groups(s, "teacher"))
    xm.xxmWithinMatrix(m, "student", "theta", np.ones((2, 2)), [[1.0, 0.5], [0.5, 1.0]])
    xm.xxmWithinMatrix(m, "teacher", "psi", np.ones((2, 2)), [[1.0, 0.5], [0.5, 1.0]])
    xm.xxmWithinMatrix(m, "teacher", "alpha", np.ones((2, 1)), np.zeros((2, 1)))
    xm.xxmBetweenMatrix(m, "teacher", "student", "lambda", np.zeros((2, 2)), np.eye(2))
    return m
