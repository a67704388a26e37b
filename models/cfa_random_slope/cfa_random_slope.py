"""Two-level CFA with a random slope of the within factor on a covariate.

    student:  y_kij = nu_k + l_k f_ij + e_kij              (k = 1..4, l_1 = 1)
              f_ij  = a_j + s_j x_ij + zeta_ij,            zeta_ij ~ N(0, psi_w)
    teacher:  (a_j, s_j) ~ N((0, mu_s), Psi_b)

The student factor f regresses on the student covariate x with a slope s_j
that varies over teachers; a_j is the teacher part of f. Both are etas of the
teacher level and reach f through a between beta [1, x_ij], whose second
element is each student's own x ("data.x"). Data simulated from the model.
Run: python models/cfa_random_slope/cfa_random_slope.py
"""
import numpy as np
import pandas as pd

import xxmpy as xm

TRUTH = {"nu1": 0.0, "nu2": 0.5, "nu3": -0.5, "nu4": 1.0,
         "l2": 0.8, "l3": 1.2, "l4": 0.9, "e1": 0.4, "e2": 0.5, "e3": 0.4, "e4": 0.6,
         "psi_w": 0.8, "mu_s": 0.5, "var_a": 0.4, "cov_as": 0.1, "var_s": 0.25}
YS = ["y1", "y2", "y3", "y4"]
THETA_LABEL = np.diag(["e1", "e2", "e3", "e4"]).astype(object)
THETA_LABEL[THETA_LABEL == ""] = None


def simulate(seed=20261121, n_teachers=70, per_teacher=8):
    """Student and teacher tables drawn from TRUTH."""
    rng = np.random.default_rng(seed)
    t = TRUTH
    psi_b = [[t["var_a"], t["cov_as"]], [t["cov_as"], t["var_s"]]]
    a, s = rng.multivariate_normal([0.0, t["mu_s"]], psi_b, n_teachers).T
    j = np.repeat(np.arange(n_teachers), per_teacher)
    x = rng.normal(size=j.size)
    f = a[j] + s[j] * x + rng.normal(0, np.sqrt(t["psi_w"]), j.size)
    loading = np.array([1.0, t["l2"], t["l3"], t["l4"]])
    nu = np.array([t[f"nu{k}"] for k in range(1, 5)])
    y = nu + np.outer(f, loading) + rng.normal(0, np.sqrt([t[f"e{k}"] for k in range(1, 5)]),
                                               (j.size, 4))
    student = pd.DataFrame(y, columns=YS)
    student.insert(0, "x", x)
    student.insert(0, "teacher", j)
    student.insert(0, "student", np.arange(j.size))
    return student, pd.DataFrame({"teacher": np.arange(n_teachers)})


student, teacher = simulate()
nu_label = [["nu1"], ["nu2"], ["nu3"], ["nu4"]]
lambda_label = [[None], ["l2"], ["l3"], ["l4"]]
psi_b_label = [["var_a", "cov_as"], ["cov_as", "var_s"]]

# xxM style ------------------------------------------------------------------
m = xm.xxmModel(levels=["student", "teacher"], name="CFA with a random slope")
xm.xxmSubmodel(model=m, level="student", parents=["teacher"], ys=YS, etas=["f"], data=student)
xm.xxmSubmodel(model=m, level="teacher", etas=["a", "s"], data=teacher)
xm.xxmWithinMatrix(model=m, level="student", type="nu", pattern=np.ones((4, 1)),
                   value=np.zeros((4, 1)), label=nu_label)
xm.xxmWithinMatrix(model=m, level="student", type="lambda", pattern=[[0], [1], [1], [1]],
                   value=np.ones((4, 1)), label=lambda_label)
xm.xxmWithinMatrix(model=m, level="student", type="theta", pattern=np.eye(4),
                   value=np.eye(4) * 0.5, label=THETA_LABEL)
xm.xxmWithinMatrix(model=m, level="student", type="psi", pattern=[[1]], value=[[1.0]],
                   label=[["psi_w"]])
xm.xxmWithinMatrix(model=m, level="teacher", type="alpha", pattern=[[0], [1]],
                   value=[[0.0], [0.0]], label=[[None], ["mu_s"]])
xm.xxmWithinMatrix(model=m, level="teacher", type="psi", pattern=np.ones((2, 2)),
                   value=np.eye(2) * 0.5, label=psi_b_label)
xm.xxmBetweenMatrix(model=m, parent="teacher", child="student", type="beta",
                    pattern=[[0, 0]], value=[[1.0, 0.0]], label=[[None, "data.x"]])
xm.xxmRun(model=m)
fit_xxm = m.result
print(fit_xxm)

# Pythonic style --------------------------------------------------------------
fit_py = (xm.Model(["student", "teacher"], name="CFA with a random slope")
          .level("student", parents=["teacher"], ys=YS, etas=["f"], data=student)
          .level("teacher", etas=["a", "s"], data=teacher)
          .within("student", "nu", np.ones((4, 1)), np.zeros((4, 1)), nu_label)
          .within("student", "lambda", [[0], [1], [1], [1]], np.ones((4, 1)), lambda_label)
          .within("student", "theta", np.eye(4), np.eye(4) * 0.5, THETA_LABEL)
          .within("student", "psi", [[1]], [[1.0]], [["psi_w"]])
          .within("teacher", "alpha", [[0], [1]], [[0.0], [0.0]], [[None], ["mu_s"]])
          .within("teacher", "psi", np.ones((2, 2)), np.eye(2) * 0.5, psi_b_label)
          .between("teacher", "student", "beta", [[0, 0]], [[1.0, 0.0]], [[None, "data.x"]])
          .fit())

print(f"\n-2 log L: xxM API {fit_xxm.deviance:.4f}, Pythonic {fit_py.deviance:.4f}")
recovery = pd.DataFrame({"truth": pd.Series(TRUTH)}).join(fit_xxm.estimates.set_index("label")
                                                        [["estimate", "se"]])
print("The fit recovers the parameters the data were drawn from:")
print(recovery.round(4))
