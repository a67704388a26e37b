"""xm.lmer's first curvature for random-intercept models (xxmpy/lmm/curvature.py).

For one factor the closed form is the expected information exactly:
tr(V^-1 dV_i V^-1 dV_j) of V = sigma^2 I + tau^2 Z Z', checked here densely on
unbalanced groups. With several factors it is a preconditioner only: the fit it
starts reaches the optimum of the default start (forward differences), in fewer
evaluations, and a model with random slopes gets no guess.
"""
import numpy as np
import pandas as pd
import pytest

import xxmpy as xm
from xxmpy.lmm.curvature import intercept_curvature
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
    H = intercept_curvature(design, problem)
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
    plain = xm.lmer(formula, df, REML=reml, hessian_guess=lambda problem: None)
    assert guessed.fit_result.converged and plain.fit_result.converged
    assert guessed.deviance == pytest.approx(plain.deviance, rel=1e-10)
    np.testing.assert_allclose(guessed.fit_result.params, plain.fit_result.params,
                               rtol=1e-4)
    assert guessed.fit_result.record.n_evaluations < plain.fit_result.record.n_evaluations


def test_random_slopes_get_no_guess():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"g": np.repeat(np.arange(10), 5), "x": rng.normal(size=50),
                       "y": rng.normal(size=50)})
    design = build_design("y ~ x + (x|g)", df)
    assert intercept_curvature(design, build_model(design, False).compile()) is None
