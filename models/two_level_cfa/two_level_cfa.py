"""Two-level CFA: one factor within teachers, one between, the same four indicators.

    student:  y_kij = nu_k + lw_k fw_ij + u_kj + e_kij,      fw_ij ~ N(0, psi_w)
    teacher:  u_kj  = lb_k fb_j + d_kj,                      fb_j ~ N(0, psi_b)

Four indicators y1..y4 per student. The within factor fw loads on them with
lw = (1, lw2, lw3, lw4) (first fixed to 1 for scale); each teacher has a
between factor fb and four indicator-specific residuals d1..d4 (etas of the
teacher level, as Mplus's between-level residual variances), all reaching the
students through one between lambda [lb | I] with lb = (1, lb2, lb3, lb4).
Data simulated from the model (seed and truth below).
Run: python models/two_level_cfa/two_level_cfa.py
"""
import numpy as np
import pandas as pd

import xxmpy as xm

TRUTH = {"nu1": 3.0, "nu2": 2.5, "nu3": 3.5, "nu4": 2.0,
         "lw2": 0.8, "lw3": 1.2, "lw4": 0.9, "psi_w": 1.0,
         "e1": 0.5, "e2": 0.6, "e3": 0.4, "e4": 0.7,
         "lb2": 0.9, "lb3": 1.1, "lb4": 0.7, "psi_b": 0.5,
         "d1": 0.10, "d2": 0.15, "d3": 0.08, "d4": 0.12}
YS = ["y1", "y2", "y3", "y4"]
THETA_LABEL = np.diag(["e1", "e2", "e3", "e4"]).astype(object)
THETA_LABEL[THETA_LABEL == ""] = None
PSI_B_LABEL = np.diag(["psi_b", "d1", "d2", "d3", "d4"]).astype(object)
PSI_B_LABEL[PSI_B_LABEL == ""] = None


def simulate(seed=20261121, n_teachers=70, per_teacher=8):
    """Student and teacher tables drawn from TRUTH."""
    rng = np.random.default_rng(seed)
    t = TRUTH
    lw = np.array([1.0, t["lw2"], t["lw3"], t["lw4"]])
    lb = np.array([1.0, t["lb2"], t["lb3"], t["lb4"]])
    nu = np.array([t[f"nu{k}"] for k in range(1, 5)])
    u = (lb * rng.normal(0, np.sqrt(t["psi_b"]), (n_teachers, 1))
         + rng.normal(0, np.sqrt([t[f"d{k}"] for k in range(1, 5)]), (n_teachers, 4)))
    teacher_of = np.repeat(np.arange(n_teachers), per_teacher)
    n = teacher_of.size
    y = (nu + u[teacher_of] + lw * rng.normal(0, np.sqrt(t["psi_w"]), (n, 1))
         + rng.normal(0, np.sqrt([t[f"e{k}"] for k in range(1, 5)]), (n, 4)))
    student = pd.DataFrame(y, columns=YS)
    student.insert(0, "teacher", teacher_of)
    student.insert(0, "student", np.arange(n))
    return student, pd.DataFrame({"teacher": np.arange(n_teachers)})


student, teacher = simulate()
between_pattern = np.column_stack([[0, 1, 1, 1], np.zeros((4, 4))])
between_value = np.column_stack([np.ones(4), np.eye(4)])
between_label = np.column_stack([[None, "lb2", "lb3", "lb4"], np.full((4, 4), None)])
nu_label = [["nu1"], ["nu2"], ["nu3"], ["nu4"]]
lw_label = [[None], ["lw2"], ["lw3"], ["lw4"]]

# xxM style ------------------------------------------------------------------
m = xm.xxmModel(levels=["student", "teacher"], name="two-level CFA")
xm.xxmSubmodel(model=m, level="student", parents=["teacher"], ys=YS, etas=["fw"], data=student)
xm.xxmSubmodel(model=m, level="teacher", etas=["fb", "d1", "d2", "d3", "d4"], data=teacher)
xm.xxmWithinMatrix(model=m, level="student", type="nu", pattern=np.ones((4, 1)),
                   value=np.full((4, 1), 2.0), label=nu_label)
xm.xxmWithinMatrix(model=m, level="student", type="lambda", pattern=[[0], [1], [1], [1]],
                   value=np.ones((4, 1)), label=lw_label)
xm.xxmWithinMatrix(model=m, level="student", type="theta", pattern=np.eye(4),
                   value=np.eye(4) * 0.5, label=THETA_LABEL)
xm.xxmWithinMatrix(model=m, level="student", type="psi", pattern=[[1]], value=[[1.0]],
                   label=[["psi_w"]])
xm.xxmWithinMatrix(model=m, level="teacher", type="psi", pattern=np.eye(5),
                   value=np.diag([0.5, 0.1, 0.1, 0.1, 0.1]), label=PSI_B_LABEL)
xm.xxmBetweenMatrix(model=m, parent="teacher", child="student", type="lambda",
                    pattern=between_pattern, value=between_value, label=between_label)
xm.xxmRun(model=m)
fit_xxm = m.result
print(fit_xxm)

# Pythonic style --------------------------------------------------------------
fit_py = (xm.Model(["student", "teacher"], name="two-level CFA")
          .level("student", parents=["teacher"], ys=YS, etas=["fw"], data=student)
          .level("teacher", etas=["fb", "d1", "d2", "d3", "d4"], data=teacher)
          .within("student", "nu", np.ones((4, 1)), np.full((4, 1), 2.0), nu_label)
          .within("student", "lambda", [[0], [1], [1], [1]], np.ones((4, 1)), lw_label)
          .within("student", "theta", np.eye(4), np.eye(4) * 0.5, THETA_LABEL)
          .within("student", "psi", [[1]], [[1.0]], [["psi_w"]])
          .within("teacher", "psi", np.eye(5), np.diag([0.5, 0.1, 0.1, 0.1, 0.1]), PSI_B_LABEL)
          .between("teacher", "student", "lambda", between_pattern, between_value,
                   between_label)
          .fit())

# lavaan syntax --------------------------------------------------------------------
fit_sem = xm.sem("""
    level: 1
        fw =~ y1 + y2 + y3 + y4
    level: 2
        fb =~ y1 + y2 + y3 + y4
""", student, cluster="teacher")

print(f"\n-2 log L: xxM API {fit_xxm.deviance:.4f}, Pythonic {fit_py.deviance:.4f}, "
      f"lavaan syntax {fit_sem.deviance:.4f}")
recovery = pd.DataFrame({"truth": pd.Series(TRUTH)}).join(fit_xxm.estimates.set_index("label")
                                                        [["estimate", "se"]])
print("The fit recovers the parameters the data were drawn from:")
print(recovery.round(4))
