"""Random slopes (xxM chapter 3): students in schools, slopes as outcomes.

    math_ij = b0_j + b1_j ses_ij + e_ij,               e_ij ~ N(0, sigma^2)
    b0_j    = g00 + g01 w_j + u0_j,   b1_j = g10 + g11 w_j + u1_j,
    (u0_j, u1_j) ~ N(0, Psi)

Students carry the outcome; each school has two etas (its intercept and its
slope) and a covariate w. The between lambda from school to student is
[1, ses_ij]: its second element is each student's own ses ("data.ses").
The data are simulated from this model (seed and truth below).
Run: python models/random_slopes/random_slopes.py
"""
import numpy as np
import pandas as pd

import xxmpy as xm

TRUTH = {"g00": 12.0, "g10": 2.0, "g01": 1.5, "g11": -0.5, "var_u0": 4.0, "cov_u0_u1": 0.6,
         "var_u1": 0.8, "residual": 4.0}


def simulate(seed=20261121, n_schools=60):
    """Student and school tables drawn from the model with TRUTH."""
    rng = np.random.default_rng(seed)
    size = rng.integers(8, 23, n_schools)
    school = pd.DataFrame({"school": np.arange(n_schools), "w": rng.normal(size=n_schools)})
    psi = [[TRUTH["var_u0"], TRUTH["cov_u0_u1"]], [TRUTH["cov_u0_u1"], TRUTH["var_u1"]]]
    u = rng.multivariate_normal([0, 0], psi, n_schools)
    b0 = TRUTH["g00"] + TRUTH["g01"] * school.w + u[:, 0]
    b1 = TRUTH["g10"] + TRUTH["g11"] * school.w + u[:, 1]
    j = np.repeat(school.school, size).to_numpy()
    ses = rng.normal(size=j.size)
    math = b0[j] + b1[j] * ses + rng.normal(0, np.sqrt(TRUTH["residual"]), j.size)
    student = pd.DataFrame({"student": np.arange(j.size), "school": j, "ses": ses, "math": math})
    return student, school


student, school = simulate()
psi_label = [["var_u0", "cov_u0_u1"], ["cov_u0_u1", "var_u1"]]

# xxM style ------------------------------------------------------------------
m = xm.xxmModel(levels=["student", "school"], name="random slopes")
xm.xxmSubmodel(model=m, level="student", parents=["school"], ys=["math"], data=student)
xm.xxmSubmodel(model=m, level="school", xs=["w"], etas=["b0", "b1"], data=school)
xm.xxmWithinMatrix(model=m, level="student", type="theta", pattern=[[1]], value=[[5.0]],
                   label=[["residual"]])
xm.xxmWithinMatrix(model=m, level="school", type="alpha", pattern=[[1], [1]],
                   value=[[10.0], [1.0]], label=[["g00"], ["g10"]])
xm.xxmWithinMatrix(model=m, level="school", type="gamma", pattern=[[1], [1]],
                   value=[[0.0], [0.0]], label=[["g01"], ["g11"]])
xm.xxmWithinMatrix(model=m, level="school", type="psi", pattern=np.ones((2, 2)),
                   value=np.eye(2), label=psi_label)
xm.xxmBetweenMatrix(model=m, parent="school", child="student", type="lambda",
                    pattern=[[0, 0]], value=[[1.0, 0.0]], label=[[None, "data.ses"]])
xm.xxmRun(model=m)
fit_xxm = m.result
print(fit_xxm)

# Pythonic style --------------------------------------------------------------
fit_py = (xm.Model(["student", "school"], name="random slopes")
          .level("student", parents=["school"], ys=["math"], data=student)
          .level("school", xs=["w"], etas=["b0", "b1"], data=school)
          .within("student", "theta", [[1]], [[5.0]], [["residual"]])
          .within("school", "alpha", [[1], [1]], [[10.0], [1.0]], [["g00"], ["g10"]])
          .within("school", "gamma", [[1], [1]], [[0.0], [0.0]], [["g01"], ["g11"]])
          .within("school", "psi", np.ones((2, 2)), np.eye(2), psi_label)
          .between("school", "student", "lambda", [[0, 0]], [[1.0, 0.0]], [[None, "data.ses"]])
          .fit())

print(f"\n-2 log L: xxM API {fit_xxm.deviance:.4f}, Pythonic {fit_py.deviance:.4f}")
recovery = pd.DataFrame({"truth": pd.Series(TRUTH)}).join(fit_xxm.estimates.set_index("label")
                                                        [["estimate", "se"]])
print("The fit recovers the parameters the data were drawn from:")
print(recovery.round(4))
