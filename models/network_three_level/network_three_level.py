"""A three-level network: a symptom network within students and another between classes.

    student:  y_ijk = nu + c_jk + s_k + e_ijk,   cov(e) = D_w (I - Omega_w)^-1 D_w
    class:    c_jk ~ N(0, D_c (I - Omega_c)^-1 D_c)
    school:   s_k  ~ N(0, diag(psi_s))

Four symptoms y1..y4 per student, students in classes in schools. Within
students the residuals form a chain network y1 - y2 - y3 - y4 (partial
correlations, no other edge); the class deviations form a network with one edge
c1 - c2; the school deviations are independent. Both networks are theta / psi
with form="ggm". The data are simulated from the model (seed and truth below);
the script then fits the full within network (all six edges) and prunes it,
recovering the chain.
Run: python models/network_three_level/network_three_level.py
"""
import numpy as np
import pandas as pd

import xxmpy as xm

TRUTH = {"nu1": 2.0, "nu2": 2.5, "nu3": 3.0, "nu4": 1.5,
         "w12": 0.35, "w23": 0.30, "w34": 0.25,
         "dw1": 1.0, "dw2": 0.9, "dw3": 1.1, "dw4": 0.8,
         "c12": 0.40, "dc1": 0.5, "dc2": 0.5, "dc3": 0.4, "dc4": 0.4,
         "s1": 0.15, "s2": 0.10, "s3": 0.12, "s4": 0.08}
YS = ["y1", "y2", "y3", "y4"]
CHAIN = [(1, 0, "w12"), (2, 1, "w23"), (3, 2, "w34")]


def network(edges, scales):
    """(pattern, value, label) of a ggm matrix: edges [(row, col, label)], scales."""
    m = len(scales)
    pattern, value = np.eye(m), np.zeros((m, m))
    label = np.full((m, m), None, dtype=object)
    for j, name in enumerate(scales):
        label[j, j], value[j, j] = name, 1.0
    for r, c, name in edges:
        pattern[r, c] = pattern[c, r] = 1
        label[r, c] = label[c, r] = name
    return pattern, value, label


def covariance(t, edges, scales):
    omega = np.zeros((len(scales), len(scales)))
    for r, c, name in edges:
        omega[r, c] = omega[c, r] = t[name]
    d = np.array([t[s] for s in scales])
    return d[:, None] * np.linalg.inv(np.eye(len(d)) - omega) * d[None, :]


def simulate(seed=20261130, n_schools=20, per_school=4, per_class=10):
    """Student, class and school tables drawn from TRUTH."""
    rng, t = np.random.default_rng(seed), TRUTH
    n_classes = n_schools * per_school
    n = n_classes * per_class
    school_of_class = np.repeat(np.arange(n_schools), per_school)
    class_of = np.repeat(np.arange(n_classes), per_class)
    s = rng.normal(0, np.sqrt([t[f"s{k}"] for k in range(1, 5)]), (n_schools, 4))
    c = rng.multivariate_normal(np.zeros(4), covariance(t, [(1, 0, "c12")],
                                                        ["dc1", "dc2", "dc3", "dc4"]),
                                n_classes)
    e = rng.multivariate_normal(np.zeros(4), covariance(t, CHAIN, ["dw1", "dw2", "dw3", "dw4"]),
                                n)
    nu = np.array([t[f"nu{k}"] for k in range(1, 5)])
    y = nu + s[school_of_class[class_of]] + c[class_of] + e
    student = pd.DataFrame(y, columns=YS)
    student.insert(0, "classroom", class_of)
    student.insert(0, "student", np.arange(n))
    classroom = pd.DataFrame({"classroom": np.arange(n_classes), "school": school_of_class})
    return student, classroom, pd.DataFrame({"school": np.arange(n_schools)})


student, classroom, school = simulate()
within = network(CHAIN, ["dw1", "dw2", "dw3", "dw4"])
between = network([(1, 0, "c12")], ["dc1", "dc2", "dc3", "dc4"])
school_label = np.diag(["s1", "s2", "s3", "s4"]).astype(object)
school_label[school_label == ""] = None
nu_label = [["nu1"], ["nu2"], ["nu3"], ["nu4"]]
CLASS_ETAS, SCHOOL_ETAS = ["c1", "c2", "c3", "c4"], ["s1", "s2", "s3", "s4"]

# xxM style ------------------------------------------------------------------
m = xm.xxmModel(levels=["student", "classroom", "school"], name="three-level network")
xm.xxmSubmodel(model=m, level="student", parents=["classroom"], ys=YS, data=student)
xm.xxmSubmodel(model=m, level="classroom", parents=["school"], etas=CLASS_ETAS, data=classroom)
xm.xxmSubmodel(model=m, level="school", etas=SCHOOL_ETAS, data=school)
xm.xxmWithinMatrix(model=m, level="student", type="nu", pattern=np.ones((4, 1)),
                   value=np.full((4, 1), 2.0), label=nu_label)
xm.xxmWithinMatrix(model=m, level="student", type="theta", pattern=within[0], value=within[1],
                   label=within[2], form="ggm")
xm.xxmWithinMatrix(model=m, level="classroom", type="psi", pattern=between[0],
                   value=between[1] * 0.5, label=between[2], form="ggm")
xm.xxmWithinMatrix(model=m, level="school", type="psi", pattern=np.eye(4),
                   value=np.eye(4) * 0.1, label=school_label)
xm.xxmBetweenMatrix(model=m, parent="classroom", child="student", type="lambda",
                    pattern=np.zeros((4, 4)), value=np.eye(4))
xm.xxmBetweenMatrix(model=m, parent="school", child="classroom", type="beta",
                    pattern=np.zeros((4, 4)), value=np.eye(4))
xm.xxmRun(model=m)
fit_xxm = m.result
print(fit_xxm)


# Pythonic style --------------------------------------------------------------
def model(within_pattern, within_value, within_label):
    return (xm.Model(["student", "classroom", "school"], name="three-level network")
            .level("student", parents=["classroom"], ys=YS, data=student)
            .level("classroom", parents=["school"], etas=CLASS_ETAS, data=classroom)
            .level("school", etas=SCHOOL_ETAS, data=school)
            .within("student", "nu", np.ones((4, 1)), np.full((4, 1), 2.0), nu_label)
            .within("student", "theta", within_pattern, within_value, within_label,
                    form="ggm")
            .within("classroom", "psi", between[0], between[1] * 0.5, between[2], form="ggm")
            .within("school", "psi", np.eye(4), np.eye(4) * 0.1, school_label)
            .between("classroom", "student", "lambda", np.zeros((4, 4)), np.eye(4))
            .between("school", "classroom", "beta", np.zeros((4, 4)), np.eye(4)))


fit_py = model(*within).fit()
print(f"\n-2 log L: xxM API {fit_xxm.deviance:.4f}, Pythonic {fit_py.deviance:.4f}")
recovery = pd.DataFrame({"truth": pd.Series(TRUTH)}).join(fit_xxm.estimates.set_index("label")
                                                        [["estimate", "se"]])
print("The fit recovers the parameters the data were drawn from:")
print(recovery.round(4))

# The full within network (six edges), pruned -------------------------------------
full_pattern = np.ones((4, 4))
full = model(full_pattern, np.eye(4), None).fit(start="auto")
pruned = xm.prune(full, alpha=0.01, adjust="holm", matrices=[("student", "theta")],
                  recursive=True)
print("\nFull within network, then prune (Holm, alpha 0.01):")
print(pruned)
print(pruned.fit.network("student").round(3))
kept = pruned.fit.network("student")
recovered = sorted((a, b) for a in YS for b in YS if a < b and kept.loc[a, b] != 0)
print("edges kept:", recovered, "(truth: y1-y2, y2-y3, y3-y4)")
