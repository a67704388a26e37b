"""Fit measures beyond two levels (issue #19): a three-level chain (students in
classes in schools, the school factor reaching the students through the class
factor) and crossed parents. The saturated model gives every level above the ys
its own unrestricted component; its exact optimum is checked against a direct
maximisation of the dense oracle's -2 log L (tests/dense_oracle.py)."""
import warnings

import numpy as np
import pandas as pd
import pytest

from dense_oracle import dense_deviance
import xxmpy as xm


def chain_frames(n_top=20, per_mid=3, per_low=4, seed=3):
    """(student, class, school) tables: one factor per level, loadings (1, .8, .6), the
    school factor carried by the class factor, and residuals of the ys at every level."""
    rng = np.random.default_rng(seed)
    n_mid = n_top * per_mid
    n = n_mid * per_low
    lam = np.array([1.0, 0.8, 0.6])
    mid_top = np.repeat(np.arange(n_top), per_mid)
    low_mid = np.repeat(np.arange(n_mid), per_low)
    f3 = rng.normal(0, np.sqrt(0.3), n_top)
    f2 = f3[mid_top] + rng.normal(0, np.sqrt(0.4), n_mid)
    f1 = rng.normal(0, 1.0, n)
    # residuals at every level keep each level's component of full rank (a saturated
    # optimum inside the positive definite cone)
    u2 = rng.normal(0, np.sqrt(0.2), (n_mid, 3))
    u3 = rng.normal(0, np.sqrt(0.2), (n_top, 3))
    y = 1.0 + (f1 + f2[low_mid])[:, None] * lam + u2[low_mid] + u3[mid_top[low_mid]] \
        + rng.normal(0, np.sqrt(0.5), (n, 3))
    ys = ["y0", "y1", "y2"]
    low = pd.DataFrame(y, columns=ys).assign(student=np.arange(n), klass=low_mid)
    mid = pd.DataFrame({"klass": np.arange(n_mid), "school": mid_top})
    # a class-level y measuring the class factor (observed once per class)
    mid["z"] = 0.5 + 0.7 * f2 + rng.normal(0, np.sqrt(0.3), n_mid)
    top = pd.DataFrame({"school": np.arange(n_top)})
    return low, mid, top


def chain_three_level(n_top=20, per_mid=3, per_low=4, seed=3, class_y=False):
    """One factor per level, loadings (1, .8, .6) shared; school -> class -> student:
    the class factor carries the school factor (a between beta fixed at 1). The data
    (chain_frames) also have residuals of the ys at the class and school levels, which
    this model leaves out (each level's component stays of full rank)."""
    low, mid, top = chain_frames(n_top, per_mid, per_low, seed)
    ys = ["y0", "y1", "y2"]
    m = xm.Model(["student", "klass", "school"], name="three-level chain")
    m.level("student", parents=["klass"], ys=ys, etas=["f1"], data=low)
    m.level("klass", parents=["school"], etas=["f2"], ys=["z"] if class_y else None,
            data=mid)
    m.level("school", etas=["f3"], data=top)
    pattern, labels = [[0], [1], [1]], [[None], ["l1"], ["l2"]]
    m.within("student", "lambda", pattern, [[1], [1], [1]], labels)
    m.within("student", "theta", np.eye(3), np.eye(3))
    m.within("student", "nu", np.ones((3, 1)), np.zeros((3, 1)))
    m.within("student", "psi", [[1]], [[1.0]])
    m.within("klass", "psi", [[1]], [[0.5]])
    m.within("school", "psi", [[1]], [[0.5]])
    m.between("klass", "student", "lambda", pattern, [[1], [1], [1]], labels)
    m.between("school", "klass", "beta", [[0]], [[1.0]])
    if class_y:
        m.within("klass", "lambda", [[1]], [[0.5]])
        m.within("klass", "theta", [[1]], [[0.5]])
        m.within("klass", "nu", [[1]], [[0.0]])
    return m


def _fit(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xm.XxmWarning)
        return model.fit(start="auto")


def _dense_check(fit):
    """The engine's optimum of ``fit`` is the dense oracle's: the same -2 log L there,
    and along every parameter the dense -2 log L curves up with a slope that a Newton
    step could turn into a gain below 1e-6 (central differences, 1e-3 units)."""
    problem, theta = fit.problem, np.asarray(fit.record.estimate, float)
    units = np.asarray(problem.param_units, float)
    f0 = dense_deviance(problem, theta)
    assert f0 == pytest.approx(fit.deviance, abs=1e-8 * abs(fit.deviance))
    for k in range(theta.size):
        h = 1e-3 * units[k]
        up, down = theta.copy(), theta.copy()
        up[k] += h
        down[k] -= h
        f_up, f_down = dense_deviance(problem, up), dense_deviance(problem, down)
        slope, curvature = (f_up - f_down) / (2 * h), (f_up + f_down - 2 * f0) / h ** 2
        assert curvature > 0, problem.params.labels[k]
        # what a Newton step along this parameter would still gain: nothing that counts
        assert slope ** 2 / (2 * curvature) < 1e-6, problem.params.labels[k]


def true_three_level(n_top=30, seed=3):
    """The model chain_frames' data were drawn from: chain_three_level plus the ys'
    residuals at the class (u1..u3) and school (v1..v3) levels, the school ones
    reaching the students through the class ones (a between beta I); 17 parameters,
    df 4."""
    low, mid, top = chain_frames(n_top, seed=seed)
    ys = ["y0", "y1", "y2"]
    m = xm.Model(["student", "klass", "school"], name="three-level chain, true")
    m.level("student", parents=["klass"], ys=ys, etas=["f1"], data=low)
    m.level("klass", parents=["school"], etas=["f2", "u1", "u2", "u3"], data=mid)
    m.level("school", etas=["f3", "v1", "v2", "v3"], data=top)
    pattern, labels = [[0], [1], [1]], [[None], ["l1"], ["l2"]]
    m.within("student", "lambda", pattern, [[1], [1], [1]], labels)
    m.within("student", "theta", np.eye(3), np.eye(3))
    m.within("student", "nu", np.ones((3, 1)), np.zeros((3, 1)))
    m.within("student", "psi", [[1]], [[1.0]])
    m.within("klass", "psi", np.eye(4), np.eye(4) * 0.3)
    m.within("school", "psi", np.eye(4), np.eye(4) * 0.3)
    reach = np.column_stack([pattern, np.zeros((3, 3))])
    m.between("klass", "student", "lambda", reach, np.column_stack([np.ones(3), np.eye(3)]),
              np.column_stack([labels, np.full((3, 3), None, dtype=object)]))
    m.between("school", "klass", "beta", np.zeros((4, 4)), np.eye(4))
    return m


def test_chi_square_of_a_true_three_level_model_is_chi_square_distributed():
    """40 data sets drawn from true_three_level (30 schools, 90 classes, 360 students):
    every saturated model (a component per level, near-singular at the school level in
    some draws) converges, and chisq on 4 df has mean 4 (its standard error over 40
    draws is 0.45) and exceeds 9.488 in about 5% of draws (binomial: 2 of 40 expected,
    8 or more has probability 2e-3). Measured: mean 4.72, 5 of 40 over 9.488 (30
    schools: a small sample for the school level)."""
    chisq = []
    for seed in range(200, 240):
        fm = _fit(true_three_level(seed=seed)).fit_measures()
        assert fm["df"] == 4
        chisq.append(fm["chisq"])
    chisq = np.array(chisq)
    assert abs(chisq.mean() - 4.0) < 3 * np.sqrt(2 * 4 / len(chisq))
    assert (chisq > 9.487729).sum() < 8


def test_saturated_models_with_a_near_singular_component_converge():
    """chain_three_level's data with 30 schools, 20 draws: the saturated model's school
    component is near-singular at its optimum in some draws (3 of them failed before:
    the face's difference-quotient Hessian showed a negative curvature that probing
    steps along it do not confirm, and the restarts ran out)."""
    for seed in range(200, 220):
        fit = _fit(chain_three_level(n_top=30, seed=seed))
        assert fit.saturated().converged, seed
    # seed 219 (the last): an independent optimiser (scipy's BFGS over every covariance
    # block's Cholesky factor) on the same -2 log L gets no lower
    saturated = fit.saturated()
    assert _independent_minimum(saturated) >= saturated.deviance - 1e-6


def _independent_minimum(fit):
    """min -2 log L of ``fit``'s model by scipy's BFGS over the Cholesky factors of its
    covariance blocks (numerical gradients), from the data-based start values."""
    from scipy.optimize import minimize

    from xxmpy.engine import deviance
    from xxmpy.fit.starts import auto_start
    problem = fit.problem
    blocks = list(problem.cholesky_blocks.values())
    rest = np.ones(problem.params.n, bool)
    for b in blocks:
        rest[b.ravel()] = False

    def to_theta(z):
        theta, at = np.zeros(problem.params.n), 0
        for b in blocks:
            m = len(b)
            L = np.zeros((m, m))
            L[np.tril_indices(m)] = z[at:at + m * (m + 1) // 2]
            at += m * (m + 1) // 2
            theta[b] = L @ L.T
        theta[rest] = z[at:]
        return theta
    start = auto_start(problem, fit.model._checked)
    z0 = np.concatenate([np.linalg.cholesky(start[b])[np.tril_indices(len(b))]
                         for b in blocks] + [start[rest]])
    return minimize(lambda z: deviance(problem, to_theta(z)), z0, method="BFGS",
                    options={"gtol": 1e-7, "maxiter": 20000}).fun


def test_three_level_chain_fit_measures():
    fit = _fit(chain_three_level())
    fm = fit.fit_measures()
    p = 3
    saturated = fit.saturated()
    # every level above the ys gets its component: (2 + 1) p(p+1)/2 + p parameters
    assert saturated.n_parameters == 3 * p * (p + 1) // 2 + p
    assert fit.baseline().n_parameters == 3 * p + p
    assert fm["df"] == saturated.n_parameters - fit.n_parameters == 21 - 11
    assert set(k for k in fm.index if k.startswith("srmr_")) == {
        "srmr_student", "srmr_klass", "srmr_school"}
    # the school component reaches the ys through the class factor (beta school->klass)
    implied = fit.implied()
    school = implied["school"]["cov"].to_numpy()
    lam = np.array([1.0, *fit.estimates.set_index("label").loc[["l1", "l2"], "estimate"]])
    psi_school = fit.estimates.set_index("label").loc["school_psi_1_1", "estimate"]
    np.testing.assert_allclose(school, np.outer(lam, lam) * psi_school, rtol=1e-12)
    # the saturated optimum is the dense oracle's
    _dense_check(saturated)


def crossed_ratings(n_raters=20, n_targets=15, seed=4, rater_cov=0.2):
    """Two ratings (r1, r2) per response, responses crossed in raters and targets, each
    with effects on both ratings (the raters' with covariance ``rater_cov``); the model
    makes the rater effects uncorrelated (df 1): true when rater_cov is 0."""
    rng = np.random.default_rng(seed)
    pairs = [(r, t) for r in range(n_raters) for t in range(n_targets) if rng.random() < 0.8]
    rater = rng.multivariate_normal([0, 0], [[0.5, rater_cov], [rater_cov, 0.4]], n_raters)
    target = rng.multivariate_normal([0, 0], [[0.7, -0.3], [-0.3, 0.6]], n_targets)
    r, t = np.array(pairs).T
    y = 1.0 + rater[r] + target[t] + rng.multivariate_normal([0, 0], [[1, 0.3], [0.3, 1]],
                                                             len(pairs))
    resp = pd.DataFrame({"response": np.arange(len(pairs)), "rater": r, "target": t,
                         "r1": y[:, 0], "r2": y[:, 1]})
    m = xm.Model(["response", "rater", "target"], name="crossed ratings")
    m.level("response", parents=["rater", "target"], ys=["r1", "r2"], data=resp)
    m.level("rater", etas=["a1", "a2"], data=pd.DataFrame({"rater": range(n_raters)}))
    m.level("target", etas=["b1", "b2"], data=pd.DataFrame({"target": range(n_targets)}))
    m.within("response", "theta", np.ones((2, 2)), np.eye(2))
    m.within("response", "nu", np.ones((2, 1)), np.zeros((2, 1)))
    m.within("rater", "psi", np.eye(2), np.eye(2) * 0.5)
    m.within("target", "psi", np.ones((2, 2)), np.eye(2) * 0.5)
    m.between("rater", "response", "lambda", np.zeros((2, 2)), np.eye(2))
    m.between("target", "response", "lambda", np.zeros((2, 2)), np.eye(2))
    return m


def test_crossed_parents_fit_measures_and_dense_saturated_optimum():
    fit = _fit(crossed_ratings())
    fm = fit.fit_measures()
    saturated = fit.saturated()
    assert saturated.n_parameters == 3 * 3 + 2 and fm["df"] == 1
    assert set(k for k in fm.index if k.startswith("srmr_")) == {
        "srmr_response", "srmr_rater", "srmr_target"}
    # the model differs from the saturated model only by the rater covariance: its
    # chi-square is the likelihood-ratio test of that covariance
    assert fm["chisq"] == pytest.approx(fit.deviance - saturated.deviance, abs=1e-9)
    _dense_check(saturated)
    _dense_check(fit)


def test_chi_square_of_a_true_crossed_model_is_chi_square_distributed():
    """60 data sets from the crossed model with uncorrelated rater effects (the model
    is true): chisq on 1 df has mean 1 (its standard error over 60 draws is 0.18) and
    exceeds 3.841 in 5% of draws (binomial: 3 of 60 expected, 10 or more has
    probability 4e-4). Measured: mean 0.977, 4 of 60 over 3.841 (seeds 100..159; 5 of
    100 with seeds 100..199)."""
    chisq = []
    for seed in range(100, 160):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", xm.XxmWarning)
            fit = crossed_ratings(seed=seed, rater_cov=0.0).fit(start="auto")
        fm = fit.fit_measures()
        assert fm["df"] == 1
        chisq.append(fm["chisq"])
    chisq = np.array(chisq)
    assert abs(chisq.mean() - 1.0) < 3 * np.sqrt(2 / len(chisq))
    assert (chisq > 3.841459).sum() < 10


def test_two_level_saturated_model_equals_the_balanced_closed_form():
    """Balanced complete two-level data (G clusters of n, p ys): the saturated ML
    estimates have a closed form (the within and between sums of squares and
    products, W and B): Sigma_W = W / (G (n - 1)), Sigma_B = (B / G - Sigma_W) / n
    (when positive definite), mu = the grand mean; -2 log L then equals
    G (n - 1) (log|Sigma_W| + p) + G (log|Sigma_W + n Sigma_B| + p) + N p log 2 pi."""
    rng = np.random.default_rng(11)
    G, n, p = 40, 6, 3
    ys = [f"y{k}" for k in range(p)]
    between = rng.multivariate_normal(np.zeros(p), [[1, .4, .2], [.4, .8, .3], [.2, .3, .6]], G)
    y = np.repeat(between, n, axis=0) + rng.multivariate_normal(
        np.zeros(p), [[1, .3, .1], [.3, 1, .2], [.1, .2, 1]], G * n) + 5.0
    rows = pd.DataFrame(y, columns=ys).assign(row=np.arange(G * n),
                                              cluster=np.repeat(np.arange(G), n))
    m = xm.Model(["row", "cluster"], name="balanced")
    m.level("row", parents=["cluster"], ys=ys, etas=["f"], data=rows)
    m.level("cluster", etas=["g"], data=pd.DataFrame({"cluster": np.arange(G)}))
    m.within("row", "lambda", [[0], [1], [1]], [[1], [1], [1]])
    m.within("row", "theta", np.eye(p), np.eye(p))
    m.within("row", "psi", [[1]], [[1.0]])
    m.within("row", "nu", np.ones((p, 1)), np.zeros((p, 1)))
    m.within("cluster", "psi", [[1]], [[1.0]])
    m.between("cluster", "row", "lambda", [[0], [1], [1]], [[1], [1], [1]])
    fit = _fit(m)
    saturated = fit.saturated()
    means = y.reshape(G, n, p).mean(axis=1)
    dev = y - np.repeat(means, n, axis=0)
    W = dev.T @ dev
    centred = means - y.mean(axis=0)
    B = n * centred.T @ centred
    sigma_w = W / (G * (n - 1))
    sigma_b = (B / G - sigma_w) / n
    assert np.all(np.linalg.eigvalsh(sigma_b) > 0)
    deviance = (G * (n - 1) * (np.linalg.slogdet(sigma_w)[1] + p)
                + G * (np.linalg.slogdet(sigma_w + n * sigma_b)[1] + p)
                + G * n * p * np.log(2 * np.pi))
    assert saturated.deviance == pytest.approx(deviance, abs=1e-6)
    implied = saturated.implied()
    np.testing.assert_allclose(implied["row"]["cov"], sigma_w, atol=1e-5)
    np.testing.assert_allclose(implied["cluster"]["cov"], sigma_b, atol=1e-5)
    np.testing.assert_allclose(implied["cluster"]["mean"], y.mean(axis=0), atol=1e-6)


def test_ys_at_a_middle_level_of_three():
    """A class-level y z beside the students' ys: the class component holds the
    students' intercepts and z (4 x 4, z's mean), the school component the intercepts
    of all four (4 x 4); the saturated optimum is the dense oracle's."""
    fit = _fit(chain_three_level(n_top=30, class_y=True))    # interior saturated optimum
    fm = fit.fit_measures()
    saturated = fit.saturated()
    assert saturated.n_parameters == (6 + 3) + (10 + 1) + 10
    assert fm["df"] == saturated.n_parameters - fit.n_parameters
    assert list(fit.implied()["klass"]["cov"].index) == ["y0", "y1", "y2", "z"]
    assert list(fit.implied()["school"]["cov"].index) == ["y0", "y1", "y2", "z"]
    r2 = fit.r_squared().set_index(["level", "variable"])["r2"]
    assert 0 < r2[("klass", "z")] < 1
    _dense_check(saturated)
