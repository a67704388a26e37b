"""xm.lmer's first curvature in closed form (xxmpy/lmm/curvature.py).

For one factor the closed form is the expected information exactly:
tr(V^-1 dV_i V^-1 dV_j) of V = sigma^2 I + Z (I_G kron Psi) Z', checked here densely
on unbalanced groups, for a random intercept, correlated random slopes (x | g) and
uncorrelated ones (x || g). With several factors it is a preconditioner only: the
fit it starts reaches the optimum of the default start (forward differences), in
fewer evaluations.
"""
import numpy as np
import pandas as pd
import pytest

import xxmpy as xm
from xxmpy.lmm.curvature import lmer_curvature
from xxmpy.lmm.design import build_design
from xxmpy.lmm.to_xxm import build_model


def _expected_information(Zs, s2, taus):
    """Dense tr(V^-1 dV_i V^-1 dV_j) over (sigma^2, tau_1^2, ...)."""
    n = Zs[0].shape[0]
    dV = [np.eye(n)] + [Z @ Z.T for Z in Zs]
    V = s2 * dV[0] + sum(t * d for t, d in zip(taus, dV[1:]))
    Vi = np.linalg.inv(V)
    return np.array([[np.trace(Vi @ a @ Vi @ b) for b in dV] for a in dV])


def _one_factor(seed=3):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(9), rng.integers(1, 7, 9))
    return pd.DataFrame({"g": g, "y": rng.normal(size=9)[g] + rng.normal(size=len(g))})


@pytest.mark.parametrize("reml", [False, True])
def test_one_factor_guess_is_the_expected_information(reml):
    df = _one_factor()
    design = build_design("y ~ 1 + (1|g)", df)
    problem = build_model(design, reml).compile()
    H = lmer_curvature(design, problem, problem.params.start)
    labels = list(problem.params.labels)
    order = [labels.index("Residual"), labels.index("var[g:(Intercept)]")]
    Z = (df.g.to_numpy()[:, None] == np.arange(9)[None, :]).astype(float)
    start = problem.params.start
    want = _expected_information([Z], start[order[0]], [start[order[1]]])
    np.testing.assert_allclose(H[np.ix_(order, order)], want, rtol=1e-12)


def _crossed_frame(seed=8):
    rng = np.random.default_rng(seed)
    n = 600
    s, d, dept = rng.integers(0, 80, n), rng.integers(0, 30, n), rng.integers(0, 5, n)
    y = (0.8 * rng.normal(size=80)[s] + 0.5 * rng.normal(size=30)[d]
         + 0.6 * rng.normal(size=5)[dept] + rng.normal(size=n))
    return pd.DataFrame({"s": s, "d": d, "dept": dept, "y": y})


@pytest.mark.parametrize("reml", [False, True])
def test_crossed_fit_from_the_guess_reaches_the_default_optimum(reml):
    df = _crossed_frame()
    formula = "y ~ 1 + (1|s) + (1|d) + (1|dept)"
    guessed = xm.lmer(formula, df, REML=reml)
    plain = xm.lmer(formula, df, REML=reml, hessian_guess=None)
    assert guessed.fit_result.converged and plain.fit_result.converged
    assert guessed.deviance == pytest.approx(plain.deviance, rel=1e-10)
    np.testing.assert_allclose(guessed.fit_result.params, plain.fit_result.params,
                               rtol=1e-4)
    assert guessed.fit_result.record.n_evaluations < plain.fit_result.record.n_evaluations


def _slope_frame(seed=4, groups=12):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), rng.integers(1, 8, groups))
    x = rng.normal(size=len(g))
    u = rng.multivariate_normal([0, 0], [[1.0, 0.3], [0.3, 0.5]], groups)
    return pd.DataFrame({"g": g, "x": x, "y": u[g, 0] + u[g, 1] * x + rng.normal(size=len(g))})


@pytest.mark.parametrize("formula", ["y ~ x + (x | g)", "y ~ x + (x || g)"])
def test_random_slopes_guess_is_the_expected_information(formula):
    """At a theta with a correlated Psi (or the diagonal one of ||), each psi parameter's
    dV = Z (E_p kron) Z': the closed form equals the dense traces (groups with one row
    have a singular M_g)."""
    df = _slope_frame()
    design = build_design(formula, df)
    problem = build_model(design, False).compile()
    labels = list(problem.params.labels)
    f = design.factors[0]
    G, q = len(f.groups), f.Z.shape[1]
    values = {"Residual": 0.8, "var[g:(Intercept)]": 1.3, "var[g:x]": 0.6,
              "cov[g:(Intercept),x]": 0.25}
    theta = np.array([values[lab] for lab in labels])
    H = lmer_curvature(design, problem, theta)
    psi = np.array([[1.3, 0.25], [0.25, 0.6]]) if "||" not in formula else np.diag([1.3, 0.6])
    Zfull = np.zeros((len(df), G * q))            # (n, G q): group g's columns
    for k in range(q):
        Zfull[np.arange(len(df)), f.codes * q + k] = f.Z[:, k]
    dV = {"Residual": np.eye(len(df))}
    for lab in labels:
        if lab == "Residual":
            continue
        a, b = (0, 0) if lab == "var[g:(Intercept)]" else (1, 1) if lab == "var[g:x]" \
            else (0, 1)
        E = np.zeros((q, q))
        E[a, b] = E[b, a] = 1.0
        dV[lab] = Zfull @ np.kron(np.eye(G), E) @ Zfull.T
    V = 0.8 * np.eye(len(df)) + Zfull @ np.kron(np.eye(G), psi) @ Zfull.T
    Vi = np.linalg.inv(V)
    want = np.array([[np.trace(Vi @ dV[a] @ Vi @ dV[b]) for b in labels] for a in labels])
    np.testing.assert_allclose(H, want, rtol=1e-10)


def test_random_slopes_fit_from_the_guess_reaches_the_default_optimum():
    df = _slope_frame(seed=9, groups=40)
    for reml in (False, True):
        guessed = xm.lmer("y ~ x + (x | g)", df, REML=reml)
        plain = xm.lmer("y ~ x + (x | g)", df, REML=reml, hessian_guess=None)
        assert guessed.fit_result.converged and plain.fit_result.converged
        assert guessed.deviance == pytest.approx(plain.deviance, rel=1e-10)
        np.testing.assert_allclose(guessed.fit_result.params, plain.fit_result.params,
                                   rtol=1e-4)


def test_no_guess_where_psi_is_not_positive_definite():
    df = _slope_frame()
    design = build_design("y ~ x + (x | g)", df)
    problem = build_model(design, False).compile()
    values = {"Residual": 0.8, "var[g:(Intercept)]": 1.0, "var[g:x]": 1.0,
              "cov[g:(Intercept),x]": 1.5}
    theta = np.array([values[lab] for lab in problem.params.labels])
    assert lmer_curvature(design, problem, theta) is None
