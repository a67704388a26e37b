"""Mplus user's guide example 9.23: three-level growth model, a covariate at each level.

Mplus (TYPE = THREELEVEL; y1-y4 four waves, x student, w classroom, z school):
    %WITHIN%       iw sw | y1@0 y2@1 y3@2 y4@3;  iw sw ON x;
    %BETWEEN class% ib2 sb2 | y1@0 y2@1 y3@2 y4@3;  ib2 sb2 ON w;  y1-y4@0;
    %BETWEEN school% ib3 sb3 | y1@0 y2@1 y3@2 y4@3;  ib3 sb3 ON z;  y1-y4@0;

    y_tijk = (iw + ib2 + ib3) + (sw + sb2 + sb3) t + e_t,       t = 0..3
    (iw, sw)_i  = G1 x_i + zeta_i                 (student)
    (ib2, sb2)_j = G2 w_j + zeta_j                (classroom)
    (ib3, sb3)_k = (mu_i, mu_s) + G3 z_k + zeta_k  (school)

Each level has its own intercept and slope factors; the classroom and school
factors reach the four waves through between lambdas [1, t], the same
loadings as within. Mplus writes the between parts of y1..y4 as
between-level latent ys regressed on the growth factors with zero residual
variances (y1-y4@0); substituting them out gives exactly these between
lambdas. The students link to their classroom and to their school. Mplus's
ex9.23.dat is not public data, so the data are simulated from the model.
Run: python models/mplus_9_23/mplus_9_23.py
"""
import numpy as np
import pandas as pd

import xxmpy as xm

TRUTH = {"e1": 0.5, "e2": 0.5, "e3": 0.5, "e4": 0.5,
         "g_iw_x": 0.6, "g_sw_x": 0.2, "var_iw": 1.0, "cov_w": 0.1, "var_sw": 0.2,
         "g_ib2_w": 0.4, "g_sb2_w": 0.15, "var_ib2": 0.3, "cov_2": 0.02, "var_sb2": 0.05,
         "mu_i": 2.0, "mu_s": 0.5, "g_ib3_z": 0.5, "g_sb3_z": 0.1,
         "var_ib3": 0.2, "cov_3": 0.01, "var_sb3": 0.03}
WAVES = np.arange(4.0)
YS = ["y1", "y2", "y3", "y4"]
LOADINGS = np.column_stack([np.ones(4), WAVES])


def _cov(a, c, b):
    return [[TRUTH[a], TRUTH[c]], [TRUTH[c], TRUTH[b]]]


def _cov_label(a, c, b):
    return [[a, c], [c, b]]


def simulate(seed=20261121, n_schools=30, classes_per=3, students_per=7):
    """Student, classroom and school tables drawn from TRUTH."""
    rng = np.random.default_rng(seed)
    t = TRUTH
    z = rng.normal(size=n_schools)
    g3 = (np.array([t["mu_i"], t["mu_s"]]) + np.outer(z, [t["g_ib3_z"], t["g_sb3_z"]])
          + rng.multivariate_normal([0, 0], _cov("var_ib3", "cov_3", "var_sb3"), n_schools))
    school_of = np.repeat(np.arange(n_schools), classes_per)
    w = rng.normal(size=school_of.size)
    g2 = (np.outer(w, [t["g_ib2_w"], t["g_sb2_w"]])
          + rng.multivariate_normal([0, 0], _cov("var_ib2", "cov_2", "var_sb2"), w.size))
    class_of = np.repeat(np.arange(school_of.size), students_per)
    x = rng.normal(size=class_of.size)
    g1 = (np.outer(x, [t["g_iw_x"], t["g_sw_x"]])
          + rng.multivariate_normal([0, 0], _cov("var_iw", "cov_w", "var_sw"), x.size))
    growth = g1 + g2[class_of] + g3[school_of[class_of]]
    y = (growth @ LOADINGS.T
         + rng.normal(0, np.sqrt([t[f"e{k}"] for k in range(1, 5)]), (x.size, 4)))
    student = pd.DataFrame(y, columns=YS)
    student.insert(0, "x", x)
    student.insert(0, "school", school_of[class_of])
    student.insert(0, "classroom", class_of)
    student.insert(0, "student", np.arange(x.size))
    classroom = pd.DataFrame({"classroom": np.arange(w.size), "school": school_of, "w": w})
    return student, classroom, pd.DataFrame({"school": np.arange(n_schools), "z": z})


student, classroom, school = simulate()
theta_label = np.full((4, 4), None, dtype=object)
np.fill_diagonal(theta_label, ["e1", "e2", "e3", "e4"])
matrices = [  # (level, type, pattern, value, label): shared by both API styles
    ("student", "lambda", np.zeros((4, 2)), LOADINGS, None),
    ("student", "theta", np.eye(4), np.eye(4), theta_label),
    ("student", "gamma", np.ones((2, 1)), np.zeros((2, 1)), [["g_iw_x"], ["g_sw_x"]]),
    ("student", "psi", np.ones((2, 2)), np.eye(2), _cov_label("var_iw", "cov_w", "var_sw")),
    ("classroom", "gamma", np.ones((2, 1)), np.zeros((2, 1)), [["g_ib2_w"], ["g_sb2_w"]]),
    ("classroom", "psi", np.ones((2, 2)), np.eye(2) * 0.2,
     _cov_label("var_ib2", "cov_2", "var_sb2")),
    ("school", "alpha", np.ones((2, 1)), np.zeros((2, 1)), [["mu_i"], ["mu_s"]]),
    ("school", "gamma", np.ones((2, 1)), np.zeros((2, 1)), [["g_ib3_z"], ["g_sb3_z"]]),
    ("school", "psi", np.ones((2, 2)), np.eye(2) * 0.2, _cov_label("var_ib3", "cov_3", "var_sb3")),
]
between = [("classroom", "student", "lambda", np.zeros((4, 2)), LOADINGS),
           ("school", "student", "lambda", np.zeros((4, 2)), LOADINGS)]

# xxM style ------------------------------------------------------------------
m = xm.xxmModel(levels=["student", "classroom", "school"], name="Mplus example 9.23")
xm.xxmSubmodel(model=m, level="student", parents=["classroom", "school"], ys=YS, xs=["x"],
               etas=["iw", "sw"], data=student)
xm.xxmSubmodel(model=m, level="classroom", parents=["school"], xs=["w"], etas=["ib2", "sb2"],
               data=classroom)
xm.xxmSubmodel(model=m, level="school", xs=["z"], etas=["ib3", "sb3"], data=school)
for level, type_, pattern, value, label in matrices:
    xm.xxmWithinMatrix(model=m, level=level, type=type_, pattern=pattern, value=value,
                       label=label)
for parent, child, type_, pattern, value in between:
    xm.xxmBetweenMatrix(model=m, parent=parent, child=child, type=type_, pattern=pattern,
                        value=value)
xm.xxmRun(model=m)
fit_xxm = m.result
print(fit_xxm)

# Pythonic style --------------------------------------------------------------
model = (xm.Model(["student", "classroom", "school"], name="Mplus example 9.23")
         .level("student", parents=["classroom", "school"], ys=YS, xs=["x"],
                etas=["iw", "sw"], data=student)
         .level("classroom", parents=["school"], xs=["w"], etas=["ib2", "sb2"],
                data=classroom)
         .level("school", xs=["z"], etas=["ib3", "sb3"], data=school))
for spec in matrices:
    model.within(*spec)
for spec in between:
    model.between(*spec)
fit_py = model.fit()

print(f"\n-2 log L: xxM API {fit_xxm.deviance:.4f}, Pythonic {fit_py.deviance:.4f}")
recovery = pd.DataFrame({"truth": pd.Series(TRUTH)}).join(fit_xxm.estimates.set_index("label")
                                                        [["estimate", "se"]])
print("The fit recovers the parameters the data were drawn from:")
print(recovery.round(4))
