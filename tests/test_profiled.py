"""Fixed effects profiled out of ML (a flat level with flat="ml").

-2 log L of the profiled form is the ML deviance at the GLS fixed effects,
min over beta of -2 log L(theta, beta). References: the dense oracle
(tests/dense_oracle.py: the marginal covariance V of the ys and the loadings X of
the flat etas, then beta-hat = (X'V^-1X)^-1 X'V^-1 y by hand), the numpy reference
path (the compiled kernel's twin), the ML form with the fixed effects as kappa
(the envelope theorem: equal values and variance gradients at beta-hat, and a zero
beta gradient there), and central differences of the oracle.
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import factories
import xxmpy as xm
from dense_oracle import dense_system
from reference_models import DATA
from test_gradient import _constant_design_model, central_differences
from twin_check import assert_compiled_matches_twin
from xxmpy.compile.problem import LOG_2PI
from xxmpy.engine import deviance, deviance_and_gradient, latent_posterior
from xxmpy.lmm.design import build_design
from xxmpy.lmm.to_xxm import build_model, response_offset

PENICILLIN = "diameter ~ 1 + (1 | plate) + (1 | sample)"


def _profiled(model):
    """``model`` (built with one flat=True level) with that level's fixed effects
    profiled out instead (flat='ml')."""
    for sub in model.spec.submodels.values():
        if sub.flat:
            sub.flat = "ml"
    model._changed()
    return model


def oracle_profiled_deviance(problem, theta):
    """min over the flat etas of -2 log L, from the dense V of the ys: the flat etas have
    no psi, so V leaves them out and their loadings are the columns X."""
    B, a, Psi, L, nvec, Theta, observed, yvec, eta_off = dense_system(problem, theta)
    flat = np.zeros(len(a), bool)
    for c, lev in enumerate(problem.levels):
        if lev.flat:
            flat[eta_off[c]:eta_off[c + 1]] = True
    inv_ib = np.linalg.inv(np.eye(len(a)) - B)
    o = np.flatnonzero(observed)
    L_all = L @ inv_ib
    V = (L_all @ Psi @ L_all.T + Theta)[np.ix_(o, o)]
    X = L_all[np.ix_(o, np.flatnonzero(flat))]
    r0 = yvec[o] - (nvec + L_all @ a)[o]
    Vi_X, Vi_r = np.linalg.solve(V, X), np.linalg.solve(V, r0)
    beta = np.linalg.solve(X.T @ Vi_X, X.T @ Vi_r)
    r = r0 - X @ beta
    return float(len(o) * LOG_2PI + np.linalg.slogdet(V)[1] + r @ np.linalg.solve(V, r)), beta


def _penicillin(profiled=True):
    """Penicillin's crossed design: plates eliminated block by block, samples and the
    fixed effects in the dense remainder (the flat rows last)."""
    design = build_design(PENICILLIN, pd.read_csv(DATA / "Penicillin.csv"), False)
    return build_model(design, False, profiled=profiled)


PROBLEMS = {
    # nested, two ys with three missing patterns, a data. loading on a fixed effect:
    # the flat level is the last sparse step
    "nested": lambda: _profiled(_constant_design_model(two_flat=False)),
    # one group: the flat level (2 etas) is larger than the group level (1 eta) and
    # still eliminated last
    "one_group": lambda: _profiled(_constant_design_model(groups=1, two_flat=False)),
    # crossed: the flat rows are the dense remainder's last
    "crossed": _penicillin,
}


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_profiled_deviance_and_gradient_equal_the_dense_oracle(name):
    problem = PROBLEMS[name]().compile()
    low = problem.form.lowered
    assert problem.n_profiled > 0 and problem.estimator == "ML"
    assert (low.profiled_step, low.profiled_rows > 0) == \
        ((True, False) if name != "crossed" else (False, True))
    for seed in (1, 2):
        theta = factories.random_theta(problem, np.random.default_rng(seed))
        f, g = deviance_and_gradient(problem, theta)
        want, beta = oracle_profiled_deviance(problem, theta)                    # [dense]
        assert f == pytest.approx(want, rel=1e-11)
        fd = central_differences(problem, theta, value=lambda t: oracle_profiled_deviance(
            problem, t)[0])                                                       # [dense]
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5 * np.abs(fd).max())
        flat = next(k for k, lev in enumerate(problem.levels) if lev.flat)
        post = latent_posterior(problem, theta)
        # to 1e-9 of beta or of its SE (lmer's forms fit the OLS residual: beta ~ 0)
        se = np.sqrt(np.diag(post[flat][1][0]))
        np.testing.assert_allclose(post[flat][0][0], beta, rtol=1e-9,
                                   atol=1e-9 * max(np.abs(beta).max(), se.max()))


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_profiled_kernel_equals_the_numpy_reference(name, monkeypatch):
    """Value, gradient and posterior (conditional covariances given the fixed effects;
    the flat block (X'V^-1X)^-1) of the compiled kernel equal its numpy twin."""
    problem = PROBLEMS[name]().compile()
    for seed in (3, 4):
        theta = factories.random_theta(problem, np.random.default_rng(seed))
        assert_compiled_matches_twin(problem, theta, monkeypatch)


def test_profiled_form_is_the_kappa_form_at_the_gls_fixed_effects():
    """Envelope theorem on Penicillin: the kappa form (fixed effects as parameters) at
    the profiled form's GLS beta has the same -2 log L, the same gradient in the
    variance parameters and a zero gradient in beta; its posterior of the random
    effects (given beta) is the profiled form's; the profiled flat block is the REML
    form's posterior covariance of the fixed effects, (X'V^-1X)^-1."""
    prof, kappa = _penicillin().compile(), _penicillin(profiled=False).compile()
    reml = build_model(build_design(PENICILLIN, pd.read_csv(DATA / "Penicillin.csv"), False),
                       True).compile()
    theta = factories.random_theta(prof, np.random.default_rng(5))
    f, g = deviance_and_gradient(prof, theta)
    post = latent_posterior(prof, theta)
    flat = prof.level_names.index("(fixed)")
    beta, vcov = post[flat][0][0], post[flat][1][0]
    # the profiled form fits the OLS residual (to_xxm.build_model): its flat level's
    # posterior mean is beta minus the OLS estimate
    design = build_design(PENICILLIN, pd.read_csv(DATA / "Penicillin.csv"), False)
    beta = beta + response_offset(design)
    values = dict(zip(prof.params.labels, theta), **{"(Intercept)": beta[0]})
    theta_k = np.array([values[lab] for lab in kappa.params.labels])
    fk, gk = deviance_and_gradient(kappa, theta_k)
    assert fk == pytest.approx(f, rel=1e-11)            # two summation orders
    at = [list(kappa.params.labels).index(lab) for lab in prof.params.labels]
    np.testing.assert_allclose(gk[at], g, rtol=1e-9, atol=1e-9 * np.abs(g).max())
    assert abs(gk[list(kappa.params.labels).index("(Intercept)")]) < 1e-8 * np.abs(g).max()
    post_k = latent_posterior(kappa, theta_k)
    for name in ("plate", "sample"):
        for got, want in zip(post[prof.level_names.index(name)],
                             post_k[kappa.level_names.index(name)]):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    theta_r = np.array([dict(zip(prof.params.labels, theta))[lab]
                        for lab in reml.params.labels])
    np.testing.assert_allclose(vcov, latent_posterior(reml, theta_r)[
        reml.level_names.index("(fixed)")][1][0], rtol=1e-10)
    # the REML criterion is the profiled deviance + log|X'V^-1X| - p log 2 pi
    assert deviance(reml, theta_r) == pytest.approx(
        f + np.linalg.slogdet(np.linalg.inv(vcov))[1] - LOG_2PI, rel=1e-12)


def test_profiled_fit_counts_the_fixed_effects_and_says_ml():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xm.XxmWarning)
        fit = _penicillin().fit()
    assert fit.n_parameters == len(fit.labels) + 1
    assert fit.aic == pytest.approx(fit.deviance + 2 * (len(fit.labels) + 1))
    assert "ML (flat-prior level's fixed effects profiled out)" in str(fit.summary())


def test_flat_values_are_checked():
    """flat= must be False, True, 'reml' or 'ml'; 'ml' needs the model's only flat level."""
    m = _constant_design_model(two_flat=True)
    m.spec.submodels["fa"].flat = "ml"
    m.spec.submodels["fb"].flat = "REML"
    m._changed()
    with pytest.raises(xm.SpecificationError) as err:
        m.compile()
    text = str(err.value)
    assert "flat='REML'; expected False, True or 'reml'" in text
    assert "level 'fa' has flat='ml' but the model has 2 flat levels" in text


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_posterior_after_a_gradient_at_the_same_theta_is_the_fresh_one(name):
    """A fit's last evaluation (its gradient) leaves the selected inverse at the
    estimates; latent_posterior there reuses it and fills only the flat block: the
    same numbers, bit for bit, as computed afresh after an evaluation elsewhere."""
    problem = PROBLEMS[name]().compile()
    rng = np.random.default_rng(8)
    theta, other = factories.random_theta(problem, rng), factories.random_theta(problem, rng)
    deviance_and_gradient(problem, other)
    fresh = latent_posterior(problem, theta)
    deviance_and_gradient(problem, theta)
    reused = latent_posterior(problem, theta)
    again = latent_posterior(problem, theta)        # used once: this one is recomputed
    for got in (reused, again):
        assert got.keys() == fresh.keys()
        for lvl in fresh:
            for a, b in zip(got[lvl], fresh[lvl]):
                np.testing.assert_array_equal(a, b)
