"""The closed-form first curvature of xxM models of random-effects shape
(xxmpy/fit/information.py) and its renewal over the search's first iterations.

References: the dense expected information tr(V^-1 dV_i V^-1 dV_j) of
V = sigma^2 I + Z Psi Z' for one factor (random intercept and slope, unbalanced
groups, a missing response), and the exact Hessian of the mean parameters (-2 log L
is quadratic in them: 2 X'V^-1 X); lme4's optima through the reference models.
"""
import numpy as np
import pandas as pd
import pytest

import reference_models as ref
import xxmpy as xm
import xxmpy.engine as engine
import xxmpy.fit.information as information
import xxmpy.fit.optimize as optimize
from xxmpy.fit.information import random_effects_curvature


def _slope_model(seed=4, missing=True, free_loading=False, shared_label=False):
    """y = b0 + b1 x + u0_g + u1_g x + e over 12 groups of 2-9 rows, one y missing: the
    xxM API's random slope (psi 2 x 2, alpha means, data.x loading)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(12), rng.integers(2, 10, 12))
    x = rng.normal(size=g.size)
    u = rng.multivariate_normal([0, 0], [[0.7, 0.2], [0.2, 0.3]], 12)
    y = 1.0 + 0.5 * x + u[g, 0] + u[g, 1] * x + rng.normal(size=g.size)
    if missing:
        y[3] = np.nan
    m = xm.Model(["obs", "g"])
    m.level("obs", parents=["g"], ys=["y"],
            data=pd.DataFrame({"obs": np.arange(g.size), "g": g, "x": x, "y": y}))
    m.level("g", etas=["b0", "b1"], data=pd.DataFrame({"g": np.arange(12)}))
    m.within("obs", "theta", [[1]], [[1.3]], [["residual"]])
    v1 = "v0" if shared_label else "v1"
    m.within("g", "psi", np.ones((2, 2)), [[0.9, 0.1], [0.1, 0.9 if shared_label else 0.4]],
             [["v0", "c01"], ["c01", v1]])
    m.within("g", "alpha", [[1], [1]], [[0.2], [0.1]], [["a0"], ["a1"]])
    m.between("g", "obs", "lambda", [[int(free_loading), 0]], [[1.0, 0.0]],
              [["l0" if free_loading else None, "data.x"]])
    return m, g, x, y


def test_the_curvature_is_the_expected_information_and_the_means_exact_hessian():
    model, g, x, y = _slope_model()
    problem = model.compile()
    theta = problem.params.start
    H = random_effects_curvature(problem)(theta)
    at = {lab: i for i, lab in enumerate(problem.params.labels)}
    seen = ~np.isnan(y)
    Z = np.zeros((g.size, 24))
    Z[np.arange(g.size), 2 * g] = 1.0
    Z[np.arange(g.size), 2 * g + 1] = x
    Z = Z[seen]
    s2, psi = theta[at["residual"]], np.array([[0.9, 0.1], [0.1, 0.4]])
    dV = [np.eye(seen.sum())]
    for r, c in ((0, 0), (0, 1), (1, 1)):
        E = np.zeros((2, 2))
        E[r, c] = E[c, r] = 1.0
        dV.append(Z @ np.kron(np.eye(12), E) @ Z.T)
    V = s2 * np.eye(seen.sum()) + Z @ np.kron(np.eye(12), psi) @ Z.T
    Vi = np.linalg.inv(V)
    want = np.array([[np.trace(Vi @ a @ Vi @ b) for b in dV] for a in dV])
    order = [at[lab] for lab in ("residual", "v0", "c01", "v1")]
    np.testing.assert_allclose(H[np.ix_(order, order)], want, rtol=1e-10)
    X = np.column_stack([np.ones(g.size), x])[seen]          # the alphas' design
    means = [at["a0"], at["a1"]]
    np.testing.assert_allclose(H[np.ix_(means, means)], 2 * X.T @ Vi @ X, rtol=1e-6)
    assert np.all(H[np.ix_(means, order)] == 0.0)             # expected: uncoupled


def test_models_of_other_shapes_have_none():
    """Two ys, a free loading, or a label shared by two psi elements: no closed form."""
    model, *_ = _slope_model(missing=False)
    assert random_effects_curvature(model.compile()) is not None
    free_loading, *_ = _slope_model(missing=False, free_loading=True)
    assert random_effects_curvature(free_loading.compile()) is None
    shared, *_ = _slope_model(missing=False, shared_label=True)
    assert random_effects_curvature(shared.compile()) is None
    two_ys = xm.Model(["obs", "g"])
    rng = np.random.default_rng(1)
    gg = np.repeat(np.arange(10), 5)
    two_ys.level("obs", parents=["g"], ys=["y1", "y2"], data=pd.DataFrame(
        {"obs": np.arange(50), "g": gg, "y1": rng.normal(size=50), "y2": rng.normal(size=50)}))
    two_ys.level("g", etas=["u"], data=pd.DataFrame({"g": np.arange(10)}))
    two_ys.within("obs", "theta", np.eye(2), np.eye(2), [["t1", None], [None, "t2"]])
    two_ys.within("g", "psi", [[1]], [[0.5]], [["p"]])
    two_ys.between("g", "obs", "lambda", [[0], [0]], [[1.0], [1.0]])
    assert random_effects_curvature(two_ys.compile()) is None


@pytest.mark.parametrize("name", ["Dyestuff", "Pastes", "Penicillin", "sleepstudy"])
def test_fits_from_the_closed_form_reach_lme4s_optimum_in_fewer_evaluations(name):
    """The reference models (lme4's -2 log L, test_reference.py) through the xxM API:
    the closed-form curvature, renewed over the first iterations, ends where forward
    differences end (1e-10), in fewer evaluations (every engine call counted: the mean
    block's too)."""
    make = {"Dyestuff": ref.one_way, "Pastes": ref.pastes, "Penicillin": ref.penicillin,
            "sleepstudy": ref.sleepstudy}[name]
    calls = {"n": 0}
    original = engine.deviance_and_gradient

    def counted(problem, theta):
        calls["n"] += 1
        return original(problem, theta)
    for module in (optimize, information):
        setattr(module, "deviance_and_gradient", counted)
    try:
        closed = make().fit()
        assert closed.record.n_evaluations == calls["n"]
    finally:
        for module in (optimize, information):
            setattr(module, "deviance_and_gradient", original)
    plain = make().fit(hessian_guess=None, curvature=None)
    assert closed.converged and plain.converged
    assert closed.deviance == pytest.approx(plain.deviance, rel=1e-10)
    assert closed.record.n_evaluations < plain.record.n_evaluations


def test_renewing_the_curvature_saves_iterations_on_a_crossed_design():
    """Students x lecturers x departments (InstEval's shape, 1,500 ratings) from start
    values far off (every variance 0.1, the department's truth 0.01): renewing the
    closed form over the first REFRESHES iterations against keeping the start's."""
    rng = np.random.default_rng(7)
    n = 1500
    s, d, dept = rng.integers(0, 150, n), rng.integers(0, 60, n), rng.integers(0, 6, n)
    y = 3 + (rng.normal(0, 0.3, 150)[s] + rng.normal(0, 0.5, 60)[d]
             + rng.normal(0, 0.1, 6)[dept] + rng.normal(size=n))

    def model():
        df = pd.DataFrame({"obs": np.arange(n), "s": s, "d": d, "dept": dept, "y": y})
        m = xm.Model(["obs", "s", "d", "dept"])
        m.level("obs", parents=["s", "d", "dept"], ys=["y"], data=df)
        for lvl, size in (("s", 150), ("d", 60), ("dept", 6)):
            m.level(lvl, etas=[f"u_{lvl}"], data=pd.DataFrame({lvl: np.arange(size)}))
            m.within(lvl, "psi", [[1]], [[0.1]], [[f"var_{lvl}"]])
            m.between(lvl, "obs", "lambda", [[0]], [[1.0]])
        m.within("obs", "nu", [[1]], [[2.0]], [["mean"]])
        m.within("obs", "theta", [[1]], [[1.0]], [["residual"]])
        return m
    renewed = model().fit()
    saved = optimize.REFRESHES
    optimize.REFRESHES = 0
    try:
        kept = model().fit()
    finally:
        optimize.REFRESHES = saved
    assert renewed.converged and kept.converged
    assert renewed.deviance == pytest.approx(kept.deviance, rel=1e-10)
    assert renewed.record.n_evaluations < kept.record.n_evaluations      # 16 against 32


def test_stacks_of_small_matrices_match_numpys_batched_algebra():
    """fit/stacks.py (entries first, (q, q, G)) against numpy's batched matmul and inv,
    and a group whose matrix is not positive definite is flagged."""
    from xxmpy.fit import stacks
    rng = np.random.default_rng(2)
    for q in (1, 2, 3):
        Z = rng.normal(size=(7, 5, q))
        P = np.einsum("gni,gnj->gij", Z, Z) + np.eye(q)
        B = rng.normal(size=(7, q, 2))
        inv, ok = stacks.spd_inverse(stacks.entries_first(P))
        assert ok.all()
        np.testing.assert_allclose(np.moveaxis(inv, -1, 0), np.linalg.inv(P), rtol=1e-10)
        np.testing.assert_allclose(
            np.moveaxis(stacks.product(stacks.entries_first(P), stacks.entries_first(B)),
                        -1, 0), P @ B, rtol=1e-12)
    P[3] = -np.eye(q)
    assert list(stacks.spd_inverse(stacks.entries_first(P))[1]) == [True] * 3 + [False] + \
        [True] * 3


def test_the_mean_block_starts_from_the_searchs_gradient():
    """Shared with the search (fit_problem: curvature.share(memo)), the mean block's
    differences start from the gradient the search has at the start values: one
    evaluation per mean, none repeated; the same block as from its own evaluation."""
    from xxmpy.engine import deviance_and_gradient
    model, *_ = _slope_model()
    problem = model.compile()
    theta = problem.params.start
    alone = random_effects_curvature(problem)
    shared = random_effects_curvature(problem)
    shared.share([(theta.copy(), *deviance_and_gradient(problem, theta))])
    np.testing.assert_allclose(shared(theta), alone(theta), rtol=1e-12)
    assert (alone.evaluations, shared.evaluations) == (3, 2)


def _crossed_model(covariate=False):
    """y = mean (+ b x) + u_s + u_d + e on 400 rows: students crossed with lecturers,
    through the xxM API, with its mean (and a covariate's kappa) as parameters."""
    rng = np.random.default_rng(11)
    n = 400
    s, d, x = rng.integers(0, 40, n), rng.integers(0, 15, n), rng.normal(size=n)
    y = 3 + 0.4 * x + rng.normal(0, 0.5, 40)[s] + rng.normal(0, 0.7, 15)[d] + \
        rng.normal(size=n)
    df = pd.DataFrame({"obs": np.arange(n), "s": s, "d": d, "x": x, "y": y})
    m = xm.Model(["obs", "s", "d"])
    m.level("obs", parents=["s", "d"], ys=["y"], xs=["x"] if covariate else [], data=df)
    for lvl, size in (("s", 40), ("d", 15)):
        m.level(lvl, etas=[f"u_{lvl}"], data=pd.DataFrame({lvl: np.arange(size)}))
        m.within(lvl, "psi", [[1]], [[0.3]], [[f"var_{lvl}"]])
        m.between(lvl, "obs", "lambda", [[0]], [[1.0]])
    m.within("obs", "nu", [[1]], [[2.0]], [["mean"]])
    if covariate:
        m.within("obs", "kappa", [[1]], [[0.0]], [["b"]])
    m.within("obs", "theta", [[1]], [[1.0]], [["residual"]])
    return m


@pytest.mark.parametrize("covariate", [False, True])
def test_homogeneity_with_the_means_held(covariate):
    """xxM API, random-effects shape: scaling the variances with the means held,
    H d = -g - grad q (d = theta's variances, 0 at the means; grad q 0 there), grad q
    from the units' posterior means (RandomEffectsCurvature.quadratic_gradient),
    against central differences of the analytic gradient along d, off the optimum."""
    from xxmpy.engine import deviance_and_gradient
    problem = _crossed_model(covariate).compile()
    theta = problem.params.start * 1.2
    hook = random_effects_curvature(problem).scaling(problem)
    g = deviance_and_gradient(problem, theta)[1]
    dq, r, scaled = hook(theta, g)
    labels = list(problem.params.labels)
    assert labels[r] == "residual"
    assert sorted(np.array(labels)[~scaled]) == (["b", "mean"] if covariate else ["mean"])
    d, h = np.where(scaled, theta, 0.0), 1e-5
    along = (deviance_and_gradient(problem, theta + h * d)[1]
             - deviance_and_gradient(problem, theta - h * d)[1]) / (2 * h)
    np.testing.assert_allclose(-g - dq, along, atol=1e-7 * np.max(np.abs(along)))
    model, *_ = _slope_model()          # alpha on the factor's etas: no hook
    assert random_effects_curvature(model.compile()).scaling(None) is None


@pytest.mark.parametrize("covariate", [False, True])
def test_xxm_derived_column_hessian_equals_the_measured_one(covariate):
    """The end Hessian with the residual's column derived against every column
    measured (the curvature's hook removed): one evaluation fewer, the same estimates,
    standard errors within 1e-4."""
    model = _crossed_model(covariate)
    problem = model.compile()
    derived = model.fit()
    curvature = random_effects_curvature(problem)
    curvature.levels = None                                  # scaling() -> None
    measured = model.fit(curvature=curvature)
    assert derived.converged and measured.converged
    assert derived.record.n_evaluations == measured.record.n_evaluations - 1
    np.testing.assert_allclose(derived.record.estimate, measured.record.estimate, rtol=1e-8)
    se = [np.sqrt(np.diag(f.vcov)) for f in (derived, measured)]
    np.testing.assert_allclose(se[0], se[1], rtol=1e-4)
