"""Small seeded models of every shape, for oracle and invariance tests.

Data are random (the oracle comparison holds for any data); each factory
returns a Model with free parameters in every matrix type it exercises.
"""
import numpy as np
import pandas as pd

import xxmpy as xm


def _ids(n, prefix=None):
    return [f"{prefix}{k}" for k in range(n)] if prefix else list(range(100, 100 + n))


def _sym_free(k, var=1.0, cov=0.2):
    return np.ones((k, k)), np.full((k, k), cov) + np.eye(k) * (var - cov)


def nested_bivariate(seed=0, missing=0.1, n_teachers=12):
    """brim-like: 2 ys per student, 2 teacher etas, string IDs, missing ys, covariate."""
    rng = np.random.default_rng(seed)
    per = rng.integers(1, 5, n_teachers)
    tid = np.repeat(_ids(n_teachers, "t"), per)
    n = len(tid)
    s = pd.DataFrame({"student": _ids(n), "teacher": tid, "x1": rng.normal(size=n),
                      "y1": rng.normal(size=n), "y2": rng.normal(size=n)})
    s.loc[rng.random(n) < missing, "y1"] = np.nan
    s.loc[rng.random(n) < missing, "y2"] = np.nan
    t = pd.DataFrame({"teacher": _ids(n_teachers, "t"), "w": rng.normal(size=n_teachers)})
    m = xm.Model(["student", "teacher"])
    m.level("student", parents=["teacher"], ys=["y1", "y2"], xs=["x1"], data=s)
    m.level("teacher", etas=["e1", "e2"], xs=["w"], data=t)
    m.within("student", "theta", *_sym_free(2))
    m.within("student", "kappa", [[1], [1]], [[0.3], [-0.2]])
    m.within("student", "nu", [[1], [0]], [[0.1], [0.0]])
    m.within("teacher", "psi", *_sym_free(2, 0.8, 0.1))
    m.within("teacher", "alpha", [[0], [1]], [[0.0], [0.2]])
    m.within("teacher", "gamma", [[1], [1]], [[0.2], [0.1]])
    m.between("teacher", "student", "lambda", np.zeros((2, 2)), np.eye(2))
    return m


def three_level(seed=1, missing=0.05):
    """Students (3 ys, a factor), teachers (a factor), schools (a factor, 2 ys).

    Latent regressions school -> teacher -> student, covariates at each level
    with within and between paths, and a student link to the school too.
    """
    rng = np.random.default_rng(seed)
    n_sch, t_per, s_per = 4, 3, 4
    sch = _ids(n_sch, "S")
    tea = pd.DataFrame({"teacher": _ids(n_sch * t_per, "T"), "school": np.repeat(sch, t_per),
                        "tx": rng.normal(size=n_sch * t_per)})
    n = len(tea) * s_per
    stu = pd.DataFrame({"student": np.arange(n)[::-1], "teacher": np.repeat(tea.teacher, s_per),
                        "sx": rng.normal(size=n)})
    stu["school"] = np.repeat(tea.school.to_numpy(), s_per)
    for k in range(3):
        stu[f"y{k}"] = rng.normal(size=n)
    stu.loc[rng.random(n) < missing, "y1"] = np.nan
    school = pd.DataFrame({"school": sch, "z1": rng.normal(size=n_sch),
                           "z2": rng.normal(size=n_sch), "hx": rng.normal(size=n_sch)})
    m = xm.Model(["student", "teacher", "school"])
    m.level("student", parents=["teacher", "school"], ys=["y0", "y1", "y2"], xs=["sx"],
            etas=["fs"], data=stu)
    m.level("teacher", parents=["school"], xs=["tx"], etas=["ft"], data=tea)
    m.level("school", ys=["z1", "z2"], xs=["hx"], etas=["fh"], data=school)
    m.within("student", "lambda", [[0], [1], [1]], [[1], [0.8], [0.7]])
    m.within("student", "theta", np.eye(3), np.eye(3))
    m.within("student", "psi", [[1]], [[0.6]])
    m.within("student", "nu", np.ones((3, 1)), np.zeros((3, 1)))
    m.within("student", "gamma", [[1]], [[0.2]])
    m.within("teacher", "psi", [[1]], [[0.4]])
    m.within("teacher", "gamma", [[1]], [[0.1]])
    m.within("school", "psi", [[1]], [[0.5]])
    m.within("school", "lambda", [[0], [1]], [[1], [0.5]])
    m.within("school", "theta", np.eye(2), np.eye(2) * 0.7)
    m.within("school", "kappa", [[1], [0]], [[0.1], [0.0]])
    m.within("school", "alpha", [[1]], [[0.0]])
    m.between("teacher", "student", "beta", [[1]], [[0.5]])
    m.between("school", "teacher", "beta", [[1]], [[0.3]])
    m.between("school", "student", "lambda", [[0], [0], [1]], [[0.0], [0.0], [0.2]])
    m.between("teacher", "student", "kappa", [[1], [0], [0]], [[0.1], [0], [0]])
    m.between("school", "teacher", "gamma", [[1]], [[0.2]])
    return m


def crossed_bivariate(seed=2, missing=0.08, n_raters=7, n_targets=5):
    """Two ratings per response, responses crossed in raters and targets (2 etas each)."""
    rng = np.random.default_rng(seed)
    pairs = [(r, t) for r in range(n_raters) for t in range(n_targets) if rng.random() < 0.7]
    n = len(pairs)
    resp = pd.DataFrame({"response": np.arange(n), "rater": [p[0] for p in pairs],
                         "target": [p[1] for p in pairs],
                         "r1": rng.normal(size=n), "r2": rng.normal(size=n)})
    resp.loc[rng.random(n) < missing, "r2"] = np.nan
    m = xm.Model(["response", "rater", "target"])
    m.level("response", parents=["rater", "target"], ys=["r1", "r2"], data=resp)
    m.level("rater", etas=["a1", "a2"], data=pd.DataFrame({"rater": range(n_raters)}))
    m.level("target", etas=["b1", "b2"], data=pd.DataFrame({"target": range(n_targets)}))
    m.within("response", "theta", *_sym_free(2))
    m.within("response", "nu", np.ones((2, 1)), np.zeros((2, 1)))
    m.within("rater", "psi", *_sym_free(2, 0.5, 0.1))
    m.within("target", "psi", *_sym_free(2, 0.7, -0.1))
    m.between("rater", "response", "lambda", np.zeros((2, 2)), np.eye(2))
    m.between("target", "response", "lambda", np.zeros((2, 2)), np.eye(2))
    return m


def crossed_with_etas_at_bottom(seed=3):
    """Responses with their own latent factor, crossed raters/targets, targets in groups."""
    rng = np.random.default_rng(seed)
    pairs = [(r, t) for r in range(5) for t in range(6) if rng.random() < 0.6]
    n = len(pairs)
    resp = pd.DataFrame({"response": np.arange(n), "rater": [p[0] for p in pairs],
                         "target": [p[1] for p in pairs]})
    for k in range(3):
        resp[f"y{k}"] = rng.normal(size=n)
    tgt = pd.DataFrame({"target": range(6), "group": [0, 0, 1, 1, 2, 2]})
    m = xm.Model(["response", "rater", "target", "group"])
    m.level("response", parents=["rater", "target"], ys=["y0", "y1", "y2"], etas=["f"],
            data=resp)
    m.level("rater", etas=["a"], data=pd.DataFrame({"rater": range(5)}))
    m.level("target", parents=["group"], etas=["b"], data=tgt)
    m.level("group", etas=["g"], data=pd.DataFrame({"group": range(3)}))
    m.within("response", "lambda", [[0], [1], [1]], [[1], [0.9], [1.1]])
    m.within("response", "theta", np.eye(3), np.eye(3) * 0.5)
    m.within("response", "psi", [[1]], [[0.7]])
    m.within("rater", "psi", [[1]], [[0.3]])
    m.within("target", "psi", [[1]], [[0.4]])
    m.within("group", "psi", [[1]], [[0.2]])
    m.within("group", "alpha", [[1]], [[0.0]])
    m.between("rater", "response", "beta", [[1]], [[0.5]])
    m.between("target", "response", "beta", [[0]], [[1.0]])
    m.between("group", "target", "beta", [[1]], [[0.8]])
    return m


def pastes_like(seed=4):
    """A response linked to its sample and its batch; samples nested in batches."""
    rng = np.random.default_rng(seed)
    nb, ns, nr = 4, 3, 2
    samp = pd.DataFrame({"sample": range(nb * ns), "batch": np.repeat(range(nb), ns)})
    resp = pd.DataFrame({"resp": range(nb * ns * nr), "sample": np.repeat(samp["sample"], nr),
                         "batch": np.repeat(samp.batch, nr), "y": rng.normal(size=nb * ns * nr)})
    m = xm.Model(["resp", "sample", "batch"])
    m.level("resp", parents=["sample", "batch"], ys=["y"], data=resp)
    m.level("sample", parents=["batch"], etas=["s"], data=samp)
    m.level("batch", etas=["b"], data=pd.DataFrame({"batch": range(nb)}))
    m.within("resp", "theta", [[1]], [[1.0]])
    m.within("resp", "nu", [[1]], [[0.0]])
    m.within("sample", "psi", [[1]], [[0.5]])
    m.within("batch", "psi", [[1]], [[0.3]])
    m.between("sample", "resp", "lambda", [[0]], [[1.0]])
    m.between("batch", "resp", "lambda", [[0]], [[1.0]])
    return m


def random_slopes(seed=5, n_groups=8):
    """y_ij = b0_j + b1_j x_ij + e_ij through a between lambda [1, data.x]."""
    rng = np.random.default_rng(seed)
    size = rng.integers(2, 7, n_groups)
    g = np.repeat(range(n_groups), size)
    x = rng.normal(size=len(g))
    obs = pd.DataFrame({"obs": range(len(g)), "group": g, "x": x,
                        "y": 1 + 0.5 * x + rng.normal(size=len(g))})
    m = xm.Model(["obs", "group"])
    m.level("obs", parents=["group"], ys=["y"], data=obs)
    m.level("group", etas=["b0", "b1"], data=pd.DataFrame({"group": range(n_groups)}))
    m.within("obs", "theta", [[1]], [[1.0]])
    m.within("group", "psi", *_sym_free(2, 0.6, 0.1))
    m.within("group", "alpha", [[1], [1]], [[0.0], [0.0]])
    m.between("group", "obs", "lambda", [[0, 0]], [[1.0, 0.0]], [[None, "data.x"]])
    return m


def latent_slope_within(seed=6, n_groups=6):
    """Data-valued elements in within matrices: beta and lambda vary by unit."""
    rng = np.random.default_rng(seed)
    g = np.repeat(range(n_groups), 4)
    n = len(g)
    d = pd.DataFrame({"unit": range(n), "group": g, "w": rng.normal(size=n),
                      "y1": rng.normal(size=n), "y2": rng.normal(size=n),
                      "y3": rng.normal(size=n)})
    m = xm.Model(["unit", "group"])
    m.level("unit", parents=["group"], ys=["y1", "y2", "y3"], etas=["f1", "f2"], data=d)
    m.level("group", etas=["u"], data=pd.DataFrame({"group": range(n_groups)}))
    m.within("unit", "lambda", [[0, 0], [1, 0], [0, 0]], [[1, 0], [0.8, 0], [0, 1]])
    m.within("unit", "beta", [[0, 0], [0, 0]], [[0, 0], [0, 0]], [[None, None], ["data.w", None]])
    m.within("unit", "psi", np.eye(2), np.eye(2))
    m.within("unit", "theta", np.eye(3), np.eye(3) * 0.5)
    m.within("group", "psi", [[1]], [[0.4]])
    m.between("group", "unit", "beta", [[1], [0]], [[0.5], [0.0]], [[None], [None]])
    m.between("group", "unit", "lambda", [[0], [0], [1]], [[0], [0], [0.3]],
              [[None], [None], ["lam_u"]])
    return m


def reciprocal_beta_data(seed=9, n_groups=5):
    """A non-recursive within beta with a data. element: B = [[0, b], [w_i, 0]], so
    log|I - B| = log|1 - b w_i| varies by unit and depends on the free b."""
    rng = np.random.default_rng(seed)
    g = np.repeat(range(n_groups), 4)
    n = len(g)
    d = pd.DataFrame({"unit": range(n), "group": g, "w": 0.6 * rng.normal(size=n),
                      "y1": rng.normal(size=n), "y2": rng.normal(size=n),
                      "y3": rng.normal(size=n)})
    m = xm.Model(["unit", "group"])
    m.level("unit", parents=["group"], ys=["y1", "y2", "y3"], etas=["f1", "f2"], data=d)
    m.level("group", etas=["u"], data=pd.DataFrame({"group": range(n_groups)}))
    m.within("unit", "lambda", [[0, 0], [1, 0], [0, 0]], [[1, 0], [0.8, 0], [0, 1]])
    m.within("unit", "beta", [[0, 1], [0, 0]], [[0, 0.3], [0, 0]], [[None, "b"], ["data.w", None]])
    m.within("unit", "psi", np.eye(2), np.eye(2))
    m.within("unit", "theta", np.eye(3), np.eye(3) * 0.5)
    m.within("group", "psi", [[1]], [[0.4]])
    m.between("group", "unit", "beta", [[1], [0]], [[0.5], [0.0]])
    return m


def three_crossed(seed=7, dept_first=False):
    """InstEval's shape: responses crossed in three factors, one eta each, a covariate
    (``dept_first``: the departments listed before the lecturers)."""
    rng = np.random.default_rng(seed)
    n = 40
    resp = pd.DataFrame({"response": range(n), "s": rng.integers(0, 9, n),
                         "d": rng.integers(0, 6, n), "dept": rng.integers(0, 3, n),
                         "x": rng.normal(size=n), "y": rng.normal(size=n)})
    factors = (("s", 9), ("dept", 3), ("d", 6)) if dept_first else \
        (("s", 9), ("d", 6), ("dept", 3))
    m = xm.Model(["response"] + [lvl for lvl, _ in factors])
    m.level("response", parents=["s", "d", "dept"], ys=["y"], xs=["x"], data=resp)
    for lvl, k in factors:
        m.level(lvl, etas=[f"u_{lvl}"], data=pd.DataFrame({lvl: range(k)}))
        m.within(lvl, "psi", [[1]], [[0.5]])
        m.between(lvl, "response", "lambda", [[0]], [[1.0]])
    m.within("response", "theta", [[1]], [[1.0]])
    m.within("response", "nu", [[1]], [[0.0]])
    m.within("response", "kappa", [[1]], [[0.0]])
    return m


def data_offsets(seed=8, n_groups=7):
    """data. elements in every offset matrix (nu, kappa, between kappa, alpha, gamma)
    next to free ones, a within beta and a between lambda with a data. cell of a parent
    with covariates: each unit's intercepts and slopes carry known per-unit parts."""
    rng = np.random.default_rng(seed)
    g = np.repeat(range(n_groups), rng.integers(2, 5, n_groups))
    n = len(g)
    obs = pd.DataFrame({"obs": range(n), "group": g, "x": rng.normal(size=n),
                        "off": rng.normal(size=n), "z": rng.normal(size=n),
                        "y1": rng.normal(size=n), "y2": rng.normal(size=n)})
    obs.loc[rng.random(n) < 0.15, "y2"] = np.nan
    grp = pd.DataFrame({"group": range(n_groups), "w": rng.normal(size=n_groups),
                        "a0": rng.normal(size=n_groups), "v": rng.normal(size=n_groups)})
    m = xm.Model(["obs", "group"])
    m.level("obs", parents=["group"], ys=["y1", "y2"], xs=["x"], data=obs)
    m.level("group", etas=["u1", "u2"], xs=["w"], data=grp)
    m.within("obs", "theta", *_sym_free(2, 0.9, 0.2))
    m.within("obs", "nu", [[0], [1]], [[0.0], [0.1]], [["data.off"], [None]])
    m.within("obs", "kappa", [[1], [0]], [[0.3], [0.0]], [[None], ["data.z"]])
    m.between("group", "obs", "kappa", [[0], [1]], [[0.0], [0.2]], [["data.z"], [None]])
    m.between("group", "obs", "lambda", [[0, 0], [1, 0]], [[1.0, 0.0], [0.5, 1.0]],
              [[None, "data.x"], [None, None]])
    m.within("group", "psi", *_sym_free(2, 0.7, 0.1))
    m.within("group", "beta", [[0, 1], [0, 0]], [[0.0, 0.3], [0.0, 0.0]])
    m.within("group", "alpha", [[1], [0]], [[0.1], [0.0]], [[None], ["data.a0"]])
    m.within("group", "gamma", [[0], [1]], [[0.0], [0.2]], [["data.v"], [None]])
    return m


ALL = [three_crossed, nested_bivariate, three_level, crossed_bivariate, crossed_with_etas_at_bottom,
       pastes_like, random_slopes, latent_slope_within, data_offsets, reciprocal_beta_data]


def random_theta(problem, rng, scale=0.15):
    """Parameters near the start values with positive definite theta and psi."""
    from xxmpy.engine import deviance
    start = problem.params.start
    for _ in range(100):
        theta = start + scale * rng.normal(size=start.size) * np.maximum(np.abs(start), 0.2)
        theta[problem.params.is_variance] = np.abs(theta[problem.params.is_variance]) + 0.05
        if np.isfinite(deviance(problem, theta)):
            return theta
    raise RuntimeError("no admissible random parameter vector found")


def three_level_frames(seed=12, n_top=500, per_mid=10, per_low=20):
    """The data of three_level_factor: (students, classes, schools) frames."""
    rng = np.random.default_rng(seed)
    n_mid = n_top * per_mid
    n = n_mid * per_low
    lam = np.array([1.0, 0.8, 0.9, 0.7, 1.1, 0.6])
    f3 = rng.normal(0, np.sqrt(0.3), n_top)
    f2 = rng.normal(0, np.sqrt(0.4), n_mid)
    f1 = rng.normal(0, 1.0, n)
    mid_top = np.repeat(np.arange(n_top), per_mid)
    low_mid = np.repeat(np.arange(n_mid), per_low)
    eta = f1 + f2[low_mid] + f3[mid_top[low_mid]]
    y = 2.0 + eta[:, None] * lam + rng.normal(0, np.sqrt(0.5), (n, 6))
    low = pd.DataFrame(y, columns=[f"y{k}" for k in range(6)])
    low.insert(0, "school", mid_top[low_mid])
    low.insert(0, "klass", low_mid)
    low.insert(0, "student", np.arange(n))
    mid = pd.DataFrame({"klass": np.arange(n_mid), "school": mid_top})
    top = pd.DataFrame({"school": np.arange(n_top)})
    return low, mid, top


def three_level_factor(n_top=500):
    """Factor model at three levels, data simulated from it (seeded); 20 parameters.

    n_top schools x 10 classes x 20 students, 6 indicators with loadings
    (1, .8, .9, .7, 1.1, .6) shared by the student, class and school factors
    (variances 1, .4, .3), residual variances .5, intercepts 2.
    """
    low, mid, top = three_level_frames(n_top=n_top)
    ys = [f"y{k}" for k in range(6)]
    m = xm.Model(["student", "klass", "school"])
    m.level("student", parents=["klass", "school"], ys=ys, etas=["f1"], data=low)
    m.level("klass", parents=["school"], etas=["f2"], data=mid)
    m.level("school", etas=["f3"], data=top)
    lam_pat = np.ones((6, 1))
    lam_pat[0] = 0
    lam_val = np.ones((6, 1))
    m.within("student", "lambda", lam_pat, lam_val, [["l0"], ["l1"], ["l2"], ["l3"], ["l4"], ["l5"]])
    m.within("student", "theta", np.eye(6), np.eye(6))
    m.within("student", "nu", np.ones((6, 1)), np.full((6, 1), 2.0))
    m.within("student", "psi", [[1]], [[1.0]])
    m.within("klass", "psi", [[1]], [[0.5]])
    m.within("school", "psi", [[1]], [[0.5]])
    # class and school factors load on the student indicators with the same loadings
    m.between("klass", "student", "lambda", lam_pat, lam_val, [["l0"], ["l1"], ["l2"], ["l3"], ["l4"], ["l5"]])
    m.between("school", "student", "lambda", lam_pat, lam_val, [["l0"], ["l1"], ["l2"], ["l3"], ["l4"], ["l5"]])
    return m
