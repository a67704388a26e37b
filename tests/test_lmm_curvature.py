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
from xxmpy.lmm.curvature import LmerCurvature, lmer_curvature
from xxmpy.lmm.design import build_design
from xxmpy.lmm.to_xxm import build_model, psi_label


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


def _slopes_truth(seed=5, groups=300, per=15):
    """y = 1 + 0.5 x + b0_g + b1_g x + e: Psi [[0.8, 0.15], [0.15, 0.2]], sigma^2 1.5,
    groups of ``per`` rows with unequal x spreads."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per)
    x = rng.normal(size=g.size) * rng.uniform(0.5, 2.0, groups)[g] + 0.3
    b = rng.multivariate_normal([0, 0], [[0.8, 0.15], [0.15, 0.2]], groups)
    y = 1 + 0.5 * x + b[g, 0] + b[g, 1] * x + rng.normal(0, np.sqrt(1.5), g.size)
    return pd.DataFrame({"g": g, "x": x, "y": y})


def test_random_slopes_start_from_the_two_stage_moments():
    """A factor with several effects starts from each group's least squares (Psi = their
    covariance less its sampling part; the residual variance pooled within groups), not
    from the intercepts' tau^2 for every variance and 0 covariances: every start within
    10% of the ML estimate's scale, the start -2 log L within 1 of the optimum, and the
    fit takes fewer evaluations than from the old starts."""
    df = _slopes_truth()
    design = build_design("y ~ x + (x | g)", df)
    problem = build_model(design, False).compile()
    fit = xm.lmer("y ~ x + (x | g)", df, REML=False)
    est = fit.fit_result.params
    start = dict(zip(problem.params.labels, problem.params.start))
    scale = {"Residual": est["Residual"], "var[g:(Intercept)]": est["var[g:(Intercept)]"],
             "var[g:x]": est["var[g:x]"],
             "cov[g:(Intercept),x]": np.sqrt(est["var[g:(Intercept)]"] * est["var[g:x]"])}
    for label, unit in scale.items():
        assert abs(start[label] - est[label]) < 0.1 * unit, label
    assert fit.fit_result.record.start_deviance - fit.deviance < 1.0
    old = {"Residual": 1.5 + 0.8, "var[g:(Intercept)]": 0.8, "var[g:x]": 0.8,
           "cov[g:(Intercept),x]": 0.0}             # tau2 everywhere, as before
    from_old = xm.lmer("y ~ x + (x | g)", df, REML=False, start=old)
    assert from_old.deviance == pytest.approx(fit.deviance, rel=1e-10)
    assert fit.fit_result.record.n_evaluations < from_old.fit_result.record.n_evaluations


def test_two_stage_start_needs_groups_with_more_units_than_effects():
    """57 groups of 2 rows and 3 of 3 for 2 effects: fewer than q + 2 group regressions
    are possible, so the variances start from tau^2 as before (covariance 0)."""
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(60), [3] * 3 + [2] * 57)
    x = rng.normal(size=g.size)
    df = pd.DataFrame({"g": g, "x": x, "y": rng.normal(size=60)[g] + x +
                       rng.normal(size=g.size)})
    design = build_design("y ~ x + (x | g)", df)
    from xxmpy.lmm.to_xxm import _two_stage_psi
    f = design.factors[0]
    assert _two_stage_psi(f, f.Z, df["y"].to_numpy(), np.bincount(f.codes), 0.01) is None
    problem = build_model(design, False).compile()
    start = dict(zip(problem.params.labels, problem.params.start))
    assert start["cov[g:(Intercept),x]"] == 0.0


def test_the_conditioning_screen_is_the_eigenvalue_one():
    """_well_conditioned decides as the eigenvalues of the unit-diagonal Z_g'Z_g do
    (solving only for groups between its trace bounds): well, singular, near the
    limit on either side, one row."""
    from xxmpy.lmm.to_xxm import _well_conditioned
    rng = np.random.default_rng(5)
    M = []
    for r in (0.3, 0.999, 1.0 - 1e-7, 1.0 - 1e-9, 1.0, -0.9999999):
        M.append(np.array([[4.0, 2.0 * r], [2.0 * r, 1.0]]))
    z = rng.normal(size=2)
    M.append(np.outer(z, z))                                 # one row: rank one
    Z = rng.normal(size=(5, 3))
    M.append(Z.T @ Z)
    M = np.array(M[:-1])
    d = np.sqrt(np.einsum("gii->gi", M))
    lam = np.linalg.eigvalsh(M / (d[:, :, None] * d[:, None, :]))
    want = lam[:, 0] > lam[:, -1] / 1e8
    assert list(want) == [True, True, True, False, False, True, False]
    np.testing.assert_array_equal(_well_conditioned(M, 1e8), want)
    N = Z.T @ Z                                   # limits either side of its condition:
    d = np.sqrt(np.diag(N))                       # inside the trace bounds, so solved
    lam = np.linalg.eigvalsh(N / np.outer(d, d))
    cond, trace = lam[-1] / lam[0], np.sum(1.0 / lam)
    for limit, want in ((1.01 * cond, True), (0.99 * cond, False)):
        assert trace / 3 < limit < 3 * trace
        assert _well_conditioned(N[None], limit)[0] == want


# ------------------------------------------- the end Hessian's derived residual column
def _designs():
    """Random slopes with their covariance, crossed and nested intercepts."""
    rng = np.random.default_rng(12)
    crossed = _crossed_frame()
    g = np.repeat(np.arange(10), 6)
    nested = pd.DataFrame({"g": g, "h": g * 3 + rng.integers(0, 3, g.size),
                           "y": rng.normal(size=10)[g] + rng.normal(size=g.size)})
    nested["y"] += rng.normal(size=30)[nested["h"]]
    return [("y ~ x + (x | g)", _slope_frame(seed=9, groups=40)),
            ("y ~ 1 + (1|s) + (1|d) + (1|dept)", crossed),
            ("y ~ 1 + (1 | g) + (1 | h)", nested)]


@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("case", range(3))
def test_homogeneity_gives_the_hessian_along_theta(case, reml):
    """V(c theta) = c V(theta), so H theta = -g - grad q (q = r'V^-1 r), grad q from the
    modes (lmm/curvature.quadratic_gradient): against central differences of the
    analytic gradient along theta, away from the optimum."""
    from xxmpy.engine import deviance_and_gradient
    from xxmpy.lmm.curvature import quadratic_gradient
    formula, df = _designs()[case]
    design = build_design(formula, df)
    problem = build_model(design, reml).compile()
    theta = problem.params.start * 1.3
    g = deviance_and_gradient(problem, theta)[1]
    dq, r, scaled = quadratic_gradient(design, reml, problem, theta, g)
    assert scaled.all()
    assert problem.params.labels[r] == "Residual"
    h = 1e-5
    along = (deviance_and_gradient(problem, theta * (1 + h))[1]
             - deviance_and_gradient(problem, theta * (1 - h))[1]) / (2 * h)
    np.testing.assert_allclose(-g - dq, along, atol=1e-7 * np.max(np.abs(along)))
    # q = m - theta.g, which the residual's entry rests on, against q from the rows:
    # |e|^2 / sigma^2 + sum_g u_g' Psi^-1 u_g with e = y - X beta - Z u (Henderson)
    from xxmpy.engine import latent_posterior
    from xxmpy.lmm.to_xxm import response_offset
    post = latent_posterior(problem, theta)
    flat = [c for c, lev in enumerate(problem.levels) if lev.flat][0]
    e = design.y - design.X @ (post[flat][0][0] + response_offset(design))
    labels = list(problem.params.labels)
    penalty = 0.0
    for f in design.factors:
        U = post[problem.level_names.index(f.name)][0]
        e -= np.einsum("nk,nk->n", f.Z, U[f.codes])
        names = f.effect_names
        psi = np.array([[theta[labels.index(psi_label(f.name, names, a, b))]
                         for b in range(len(names))] for a in range(len(names))])
        penalty += float(np.sum(U @ np.linalg.inv(psi) * U))
    s2 = theta[labels.index("Residual")]
    m = len(design.y) - (design.X.shape[1] if reml else 0)
    assert m - theta @ g == pytest.approx(e @ e / s2 + penalty, rel=1e-9)
    assert dq[r] == pytest.approx(-(e @ e) / s2 ** 2, rel=1e-7)


class _MeasuredOnly:
    """xm.lmer's curvature without the derived column (every column measured)."""

    def __init__(self, design):
        self.bind = LmerCurvature(design).bind


@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("case", range(3))
def test_derived_column_hessian_equals_the_measured_one(case, reml):
    """The end Hessian with the residual's column derived (fit/optimize.derived_hessian)
    against every column measured: one evaluation fewer, the same estimates, standard
    errors within 1e-4 (the forward differences' own error is ~1e-5)."""
    formula, df = _designs()[case]
    design = build_design(formula, df)
    derived = xm.lmer(design, None, REML=reml)
    measured = xm.lmer(design, None, REML=reml, curvature=_MeasuredOnly(design))
    a, b = derived.fit_result, measured.fit_result
    assert a.converged and b.converged
    assert a.record.n_evaluations == b.record.n_evaluations - 1
    np.testing.assert_allclose(a.params, b.params, rtol=1e-8)
    se_a, se_b = np.sqrt(np.diag(a.vcov)), np.sqrt(np.diag(b.vcov))
    np.testing.assert_allclose(se_a, se_b, rtol=1e-4)
