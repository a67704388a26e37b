"""Mplus user's guide example 9.6: two-level CFA with covariates at both levels.

Mplus:    %WITHIN%  fw BY y1-y4;  fw ON x1 x2;
          %BETWEEN% fb BY y1-y4;  fb ON w;

    student:  y_kij = nu_k + lw_k fw_ij + u_kj + e_kij,
              fw_ij = g1 x1_ij + g2 x2_ij + zeta_ij
    cluster:  u_kj  = lb_k fb_j + d_kj,   fb_j = gw w_j + zeta_j

The between part u_kj of each indicator is the cluster factor's loading times
fb plus an indicator residual d_kj (Mplus's between-level residual
variances): the cluster level has etas fb, d1..d4, and the between lambda
from cluster to student is [lb | I]. x1, x2 are student covariates (xs of
the student level, gamma paths to fw), w a cluster covariate (xs of the
cluster level, gamma path to fb). Mplus's ex9.6.dat is not public data, so
the data are simulated from the model (seed and truth below).
Run: python models/mplus_9_6/mplus_9_6.py
"""
import numpy as np
import pandas as pd

import xxmpy as xm

TRUTH = {"nu1": 1.0, "nu2": 1.5, "nu3": 0.5, "nu4": 2.0,
         "lw2": 1.0, "lw3": 0.9, "lw4": 1.1, "g1": 0.5, "g2": 0.7, "psi_w": 1.0,
         "e1": 1.0, "e2": 0.9, "e3": 1.1, "e4": 0.8,
         "lb2": 1.0, "lb3": 0.8, "lb4": 1.2, "gw": 1.0, "psi_b": 0.4,
         "d1": 0.15, "d2": 0.10, "d3": 0.20, "d4": 0.12}
YS = ["y1", "y2", "y3", "y4"]


def _diag_label(names):
    out = np.full((len(names), len(names)), None, dtype=object)
    np.fill_diagonal(out, names)
    return out


def simulate(seed=20261121, n_clusters=80, per_cluster=7):
    """Student and cluster tables drawn from TRUTH."""
    rng = np.random.default_rng(seed)
    t = TRUTH
    w = rng.normal(size=n_clusters)
    fb = t["gw"] * w + rng.normal(0, np.sqrt(t["psi_b"]), n_clusters)
    lb = np.array([1.0, t["lb2"], t["lb3"], t["lb4"]])
    u = np.outer(fb, lb) + rng.normal(0, np.sqrt([t[f"d{k}"] for k in range(1, 5)]),
                                      (n_clusters, 4))
    j = np.repeat(np.arange(n_clusters), per_cluster)
    x = rng.normal(size=(j.size, 2))
    fw = x @ [t["g1"], t["g2"]] + rng.normal(0, np.sqrt(t["psi_w"]), j.size)
    lw = np.array([1.0, t["lw2"], t["lw3"], t["lw4"]])
    y = (np.array([t[f"nu{k}"] for k in range(1, 5)]) + np.outer(fw, lw) + u[j]
         + rng.normal(0, np.sqrt([t[f"e{k}"] for k in range(1, 5)]), (j.size, 4)))
    student = pd.DataFrame(y, columns=YS)
    student[["x1", "x2"]] = x
    student.insert(0, "cluster", j)
    student.insert(0, "student", np.arange(j.size))
    return student, pd.DataFrame({"cluster": np.arange(n_clusters), "w": w})


student, cluster = simulate()
between = dict(pattern=np.column_stack([[0, 1, 1, 1], np.zeros((4, 4))]),
               value=np.column_stack([np.ones(4), np.eye(4)]),
               label=np.column_stack([[None, "lb2", "lb3", "lb4"], np.full((4, 4), None)]))
matrices = [  # (level, type, pattern, value, label): shared by both API styles
    ("student", "nu", np.ones((4, 1)), np.ones((4, 1)), [["nu1"], ["nu2"], ["nu3"], ["nu4"]]),
    ("student", "lambda", [[0], [1], [1], [1]], np.ones((4, 1)), [[None], ["lw2"], ["lw3"],
                                                                  ["lw4"]]),
    ("student", "gamma", [[1, 1]], [[0.0, 0.0]], [["g1", "g2"]]),
    ("student", "theta", np.eye(4), np.eye(4), _diag_label(["e1", "e2", "e3", "e4"])),
    ("student", "psi", [[1]], [[1.0]], [["psi_w"]]),
    ("cluster", "gamma", [[1], [0], [0], [0], [0]], np.zeros((5, 1)),
     [["gw"], [None], [None], [None], [None]]),
    ("cluster", "psi", np.eye(5), np.diag([0.5, 0.1, 0.1, 0.1, 0.1]),
     _diag_label(["psi_b", "d1", "d2", "d3", "d4"])),
]

# xxM style ------------------------------------------------------------------
m = xm.xxmModel(levels=["student", "cluster"], name="Mplus example 9.6")
xm.xxmSubmodel(model=m, level="student", parents=["cluster"], ys=YS, xs=["x1", "x2"],
               etas=["fw"], data=student)
xm.xxmSubmodel(model=m, level="cluster", xs=["w"], etas=["fb", "d1", "d2", "d3", "d4"],
               data=cluster)
for level, type_, pattern, value, label in matrices:
    xm.xxmWithinMatrix(model=m, level=level, type=type_, pattern=pattern, value=value,
                       label=label)
xm.xxmBetweenMatrix(model=m, parent="cluster", child="student", type="lambda", **between)
xm.xxmRun(model=m)
fit_xxm = m.result
print(fit_xxm)

# Pythonic style --------------------------------------------------------------
model = (xm.Model(["student", "cluster"], name="Mplus example 9.6")
         .level("student", parents=["cluster"], ys=YS, xs=["x1", "x2"], etas=["fw"],
                data=student)
         .level("cluster", xs=["w"], etas=["fb", "d1", "d2", "d3", "d4"], data=cluster))
for spec in matrices:
    model.within(*spec)
fit_py = model.between("cluster", "student", "lambda", **between).fit()

print(f"\n-2 log L: xxM API {fit_xxm.deviance:.4f}, Pythonic {fit_py.deviance:.4f}")
recovery = pd.DataFrame({"truth": pd.Series(TRUTH)}).join(fit_xxm.estimates.set_index("label")
                                                        [["estimate", "se"]])
print("The fit recovers the parameters the data were drawn from:")
print(recovery.round(4))
