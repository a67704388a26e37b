"""lmer front end against lme4 and MixedModels.jl (the lme4 authors' Julia package).

Sources of the reference numbers, written beside each:
  [lme4-REMLdev]  lme4 tests/REMLdev.R (oldvals, from lme4.0)
  [lme4-lmer1]    lme4 tests/lmer-1.R and lmer-1.Rout.save
  [lme4-print]    lme4's printed summary of fm1 (Bates et al. 2015, JSS 67(1); the
                  same print appears in lme4 teaching material), at its printed digits
  [MM-pls]        MixedModels.jl test/pls.jl
  [MM-pls2]       MixedModels.jl test/plstwoscalar.jl (Penicillin ML and REML)
  [shared]        ../shared/data/README.md (lme4 1.1-31 on this machine, ML)
  [mixedlm]       mixedlm 1.3.0 (PyPI lme4 port) on tests/data/three_level_sim.csv,
                  run on this machine
  [dense]         the dense computation in this file (V = ZGZ' + R formed explicitly)
Tolerances (issue #5): criteria 1e-4 absolute, fixed effects and variance
components 1e-4 relative, standard errors 1e-3 relative, conditional modes 1e-4
relative; printed references at the precision they were printed with.
"""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import xxmpy as xm
from xxmpy.errors import SpecificationError
from xxmpy.engine import deviance_and_gradient
from xxmpy.lmm.formula import parse_formula

DATA = Path(__file__).parent / "data"


def load(name):
    return pd.read_csv(DATA / f"{name}.csv")


@pytest.fixture(scope="module")
def sleep_reml():
    return xm.lmer("Reaction ~ Days + (Days | Subject)", load("sleepstudy"))


@pytest.fixture(scope="module")
def sleep_ml():
    return xm.lmer("Reaction ~ Days + (Days | Subject)", load("sleepstudy"), REML=False)


def varcomp(res, group, effect="", with_=""):
    vc = res.varcorr()
    row = vc[(vc.group == group) & (vc.effect == effect) & (vc["with"] == with_)]
    assert len(row) == 1
    return row.iloc[0]


# ---------------------------------------------------------------- sleepstudy
def test_sleepstudy_reml_matches_lme4(sleep_reml):
    r = sleep_reml
    assert r.reml_criterion == pytest.approx(1743.6282722424, abs=1e-4)      # [lme4-REMLdev]
    assert r.fixef.to_numpy() == pytest.approx([251.405104848485, 10.467285959595],
                                               rel=1e-10)                     # [lme4-lmer1]
    v = r.vcov.to_numpy()
    assert v[0, 1] / np.sqrt(v[0, 0] * v[1, 1]) == pytest.approx(-0.13755, abs=1e-4)  # [lme4-lmer1]
    coef = r.coefficients()
    assert coef["Std. Error"].to_numpy() == pytest.approx([6.825, 1.546], abs=6e-4)  # [lme4-print]
    assert coef["t value"].to_numpy() == pytest.approx([36.838, 6.771], abs=6e-4)    # [lme4-print]
    assert varcomp(r, "Subject", "(Intercept)").variance == pytest.approx(612.10, rel=1e-4)
    assert varcomp(r, "Subject", "Days").variance == pytest.approx(35.07, rel=1e-4)
    assert varcomp(r, "Subject", "(Intercept)").sd == pytest.approx(24.741, abs=6e-4)
    assert varcomp(r, "Subject", "Days").sd == pytest.approx(5.922, abs=6e-4)
    assert varcomp(r, "Residual").variance == pytest.approx(654.94, rel=1e-4)   # [lme4-print]
    assert varcomp(r, "Subject", "(Intercept)", "Days")["corr"] == pytest.approx(0.07, abs=6e-3)
    assert r.loglik == pytest.approx(-1743.6282722424 / 2, abs=1e-4)
    assert not r.is_singular()
    assert r.fit_result.converged


def test_sleepstudy_ml_matches_lme4_and_mixedmodels(sleep_ml):
    r = sleep_ml
    assert r.deviance == pytest.approx(1751.9393444647046, abs=1e-4)          # [MM-pls]
    assert r.reml_criterion is None
    assert r.fixef.to_numpy() == pytest.approx([251.40510484848477, 10.4672859595959],
                                               rel=1e-8)                       # [MM-pls]
    assert r.coefficients()["Std. Error"].to_numpy() == pytest.approx(
        [6.632257721914501, 1.5022354739749826], rel=1e-3)                    # [MM-pls]
    assert varcomp(r, "Subject", "(Intercept)").variance == pytest.approx(565.477, rel=1e-4)
    assert varcomp(r, "Subject", "Days").variance == pytest.approx(32.682, rel=1e-4)
    assert varcomp(r, "Subject", "(Intercept)", "Days").variance == pytest.approx(
        11.055, rel=1e-4)                                                     # [shared]
    assert varcomp(r, "Residual").variance == pytest.approx(654.946, rel=1e-4)  # [shared]
    assert r.ranef()["Subject"].loc["308", "(Intercept)"] == pytest.approx(
        2.815819441982976, rel=1e-4)                                          # [MM-pls] b3[1][1,1]
    assert r.aic == pytest.approx(1763.9393444647046, abs=1e-4)               # deviance + 2 * 6


def test_sleepstudy_uncorrelated_slopes():
    df = load("sleepstudy")
    ml = xm.lmer("Reaction ~ Days + (Days || Subject)", df, REML=False)
    assert ml.deviance == pytest.approx(1752.0032551398835, abs=1e-4)       # [MM-pls] zerocorr
    assert ml.coefficients()["Std. Error"].to_numpy() == pytest.approx(
        [6.707710260366577, 1.5193083237479683], rel=1e-3)                  # [MM-pls]
    assert varcomp(ml, "Subject", "(Intercept)").sd == pytest.approx(24.171449463289047, rel=1e-4)
    assert varcomp(ml, "Subject", "Days").sd == pytest.approx(5.799379721123582, rel=1e-4)
    assert ml.sigma == pytest.approx(25.556130034081047, rel=1e-4)           # [MM-pls]
    assert not any(ml.varcorr()["with"] != "")                               # no correlation
    reml = xm.lmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", df)
    assert varcomp(reml, "Subject", "(Intercept)").sd == pytest.approx(25.05, abs=6e-3)
    assert varcomp(reml, "Subject", "Days").sd == pytest.approx(5.99, abs=6e-3)
    assert reml.sigma == pytest.approx(25.57, abs=6e-3)                       # [lme4-lmer1]
    same = xm.lmer("Reaction ~ Days + (Days || Subject)", df)
    assert same.reml_criterion == pytest.approx(reml.reml_criterion, abs=1e-8)
    slope_only = xm.lmer("Reaction ~ Days + (0 + Days | Subject)", df, REML=False)
    assert slope_only.deviance == pytest.approx(1774.080315280528, abs=1e-4)  # [MM-pls] fmrs


def test_anova_refits_reml_by_ml_and_matches_lme4(sleep_reml):
    fm2 = xm.lmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", load("sleepstudy"))
    out = xm.anova(sleep_reml, fm2, names=["fm1", "fm2"])
    t = out.table
    assert list(t.index) == ["fm2", "fm1"]
    assert list(t.npar) == [5, 6]
    # lme4-lmer1 prints AIC 1762 / 1764, Chisq 0.06, p 0.8; the exact statistic is the
    # difference of MixedModels.jl's ML deviances (MM-pls): 1752.0032551 - 1751.9393445
    assert t.loc["fm1", "Chisq"] == pytest.approx(1752.0032551398835 - 1751.9393444647046,
                                                  abs=1e-4)
    assert t.loc["fm1", "Df"] == 1
    assert t.loc["fm1", "Pr(>Chisq)"] == pytest.approx(0.8, abs=0.05)
    assert t.loc["fm2", "AIC"] == pytest.approx(1762.0, abs=0.5)
    assert "refitted" in " ".join(out.notes)
    assert "fm1" in str(out)


def test_anova_notes_a_variance_tested_on_the_boundary():
    df = load("sleepstudy")
    small = xm.lmer("Reaction ~ Days + (1 | Subject)", df, REML=False)
    big = xm.lmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", df, REML=False)
    out = xm.anova(small, big)
    assert any("boundary" in n and "var[Subject:Days]" in n for n in out.notes)
    assert not any("refitted" in n for n in out.notes)


# ---------------------------------------------------------------- classic data sets
def test_dyestuff_reml_and_ml():
    df = load("Dyestuff")
    reml = xm.lmer("Yield ~ 1 + (1 | Batch)", df)
    assert reml.reml_criterion == pytest.approx(319.65427684225216, abs=1e-4)  # [MM-pls]
    ml = xm.lmer("Yield ~ 1 + (1 | Batch)", df, REML=False)
    assert ml.deviance == pytest.approx(327.3270598811428, abs=1e-4)          # [MM-pls]
    assert ml.sigma == pytest.approx(49.510099986291145, rel=1e-4)            # [MM-pls]
    assert ml.coefficients()["Std. Error"].iloc[0] == pytest.approx(17.69455188898009, rel=1e-3)
    assert ml.aic == pytest.approx(333.3270598811394, abs=1e-4)               # [MM-pls]
    assert ml.bic == pytest.approx(337.5306520261259, abs=1e-4)               # [MM-pls]


def test_dyestuff2_is_a_singular_fit():
    df = load("Dyestuff2")
    reml = xm.lmer("Yield ~ 1 + (1 | Batch)", df)
    c = reml.coefficients().iloc[0]
    assert c["Estimate"] == pytest.approx(5.6656, rel=1e-4)
    assert c["Std. Error"] == pytest.approx(0.67838803150, rel=1e-3)          # [lme4-lmer1]
    assert c["t value"] == pytest.approx(8.3515624346, rel=1e-3)              # [lme4-lmer1]
    assert reml.is_singular() and reml.singular_factors() == ["Batch"]
    assert varcomp(reml, "Batch", "(Intercept)").variance == 0.0
    assert "singular" in str(reml)
    ml = xm.lmer("Yield ~ 1 + (1 | Batch)", df, REML=False)
    assert ml.deviance == pytest.approx(162.87303665382575, abs=1e-4)         # [MM-pls]
    assert ml.sigma == pytest.approx(3.653231351374652, rel=1e-4)             # [MM-pls]
    assert ml.coefficients()["Std. Error"].iloc[0] == pytest.approx(0.6669857396443261, rel=1e-3)


def test_penicillin_crossed_reml_and_ml():
    df = load("Penicillin")
    reml = xm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", df)
    assert reml.model.compile().structure == "cross-classified"
    assert reml.reml_criterion == pytest.approx(330.86058899122156, abs=1e-4)  # [MM-pls2]
    assert reml.coefficients()["Std. Error"].iloc[0] == pytest.approx(0.8085723219702367, rel=1e-3)
    assert varcomp(reml, "plate", "(Intercept)").sd == pytest.approx(0.8467056820846379, rel=1e-4)
    assert varcomp(reml, "sample", "(Intercept)").sd == pytest.approx(1.9315555733321477, rel=1e-4)
    assert reml.sigma == pytest.approx(0.5499230109588108, rel=1e-4)           # [MM-pls2]
    ml = xm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", df, REML=False)
    assert ml.deviance == pytest.approx(332.18834867227616, abs=1e-4)          # [MM-pls]
    assert ml.fixef.iloc[0] == pytest.approx(22.97222222222222, rel=1e-8)
    assert ml.coefficients()["Std. Error"].iloc[0] == pytest.approx(0.7445960346851368, rel=1e-3)
    assert varcomp(ml, "plate", "(Intercept)").sd == pytest.approx(0.8455645948223015, rel=1e-4)
    assert varcomp(ml, "sample", "(Intercept)").sd == pytest.approx(1.770647779277388, rel=1e-4)
    assert varcomp(ml, "Residual").variance == pytest.approx(0.3024263987592062, rel=1e-4)


def test_pastes_nested_syntax_equals_explicit_factors():
    df = load("Pastes")
    nested = xm.lmer("strength ~ 1 + (1 | batch/cask)", df, REML=False)
    assert [f.name for f in nested.design.factors] == ["batch", "batch:cask"]
    assert nested.design.factors[1].parent == "batch"          # declared as a nested level
    assert nested.model.compile().structure == "nested"
    assert nested.deviance == pytest.approx(247.99446586289676, abs=1e-4)      # [MM-pls]
    assert nested.coefficients()["Std. Error"].iloc[0] == pytest.approx(0.6421359883527029,
                                                                         rel=1e-3)
    assert varcomp(nested, "batch:cask", "(Intercept)").sd == pytest.approx(2.904069002535747,
                                                                           rel=1e-4)
    assert varcomp(nested, "batch", "(Intercept)").sd == pytest.approx(1.095070371687089,
                                                                      rel=1e-4)
    assert varcomp(nested, "Residual").variance == pytest.approx(0.6780020742644107, rel=1e-4)
    explicit = xm.lmer("strength ~ 1 + (1 | sample) + (1 | batch)", df, REML=False)
    assert explicit.deviance == pytest.approx(nested.deviance, abs=1e-7)
    r1 = xm.lmer("strength ~ 1 + (1 | batch/cask)", df)
    r2 = xm.lmer("strength ~ 1 + (1 | batch) + (1 | batch:cask)", df)
    assert r1.reml_criterion == pytest.approx(r2.reml_criterion, abs=1e-8)


THREE = "y ~ x + (1 | school/class)"


def test_three_level_nested_with_covariate_matches_mixedlm():
    df = load("three_level_sim")
    reml = xm.lmer(THREE, df)
    assert reml.reml_criterion == pytest.approx(1386.6107099079195, abs=1e-4)  # [mixedlm]
    assert reml.fixef.to_numpy() == pytest.approx([2.2311001486241677, 0.5163032875601654],
                                                  rel=1e-4)
    assert reml.coefficients()["Std. Error"].to_numpy() == pytest.approx(
        [0.21016162847662487, 0.06112303701879161], rel=1e-3)
    sigma = 1.1945854563120601                                                  # [mixedlm]
    assert reml.sigma == pytest.approx(sigma, rel=1e-4)
    assert varcomp(reml, "school", "(Intercept)").sd == pytest.approx(0.7014908919672531 * sigma,
                                                                      rel=1e-4)
    assert varcomp(reml, "school:class", "(Intercept)").sd == pytest.approx(
        0.5544940528959589 * sigma, rel=1e-4)
    ml = xm.lmer(THREE, df, REML=False)
    assert ml.deviance == pytest.approx(1381.5493303697924, abs=1e-4)          # [mixedlm]
    assert ml.fixef.to_numpy() == pytest.approx([2.2310880449686117, 0.5159497255396355],
                                                rel=1e-4)
    assert ml.coefficients()["Std. Error"].to_numpy() == pytest.approx(
        [0.2048021286093499, 0.061032060176701285], rel=1e-3)
    assert ml.sigma == pytest.approx(1.1929129758212071, rel=1e-4)


# ---------------------------------------------------------------- dense check
def dense_reml(res):
    """REML criterion, GLS fixef and vcov, with V = Z G Z' + s2 I formed densely."""
    d, vp = res.design, res.variance_parameters
    V = np.eye(d.n) * vp["Residual"]
    for f in d.factors:
        Zfull = np.zeros((d.n, len(f.groups) * len(f.effect_names)))
        m = len(f.effect_names)
        for k in range(m):
            Zfull[np.arange(d.n), f.codes * m + k] = f.Z[:, k]
        G = np.kron(np.eye(len(f.groups)), res.psi(f.name).to_numpy())
        V += Zfull @ G @ Zfull.T
    Vi = np.linalg.inv(V)
    info = d.X.T @ Vi @ d.X
    beta = np.linalg.solve(info, d.X.T @ Vi @ d.y)
    r = d.y - d.X @ beta
    crit = (np.linalg.slogdet(V)[1] + np.linalg.slogdet(info)[1] + r @ Vi @ r
            + (d.n - d.X.shape[1]) * np.log(2 * np.pi))
    return crit, beta, np.linalg.inv(info), V


@pytest.mark.parametrize("formula, name", [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin"),
    (THREE, "three_level_sim"),
    ("Reaction ~ C(Days > 4) * Days + (1 | Subject) + (0 + Days | Subject)", "sleepstudy"),
])
def test_reml_fixef_vcov_and_sparse_v_equal_the_dense_computation(formula, name):
    res = xm.lmer(formula, load(name))
    crit, beta, cov, V = dense_reml(res)
    assert res.reml_criterion == pytest.approx(crit, rel=1e-10)                # [dense]
    assert res.fixef.to_numpy() == pytest.approx(beta, rel=1e-8, abs=1e-10)
    assert res.vcov.to_numpy() == pytest.approx(cov, rel=1e-8, abs=1e-12)
    assert abs(res.marginal_covariance().toarray() - V).max() < 1e-9 * abs(V).max()
    g_beta, g_cov = res.gls()
    assert g_beta.to_numpy() == pytest.approx(res.fixef.to_numpy(), rel=1e-8, abs=1e-10)
    assert g_cov.to_numpy() == pytest.approx(res.vcov.to_numpy(), rel=1e-8, abs=1e-12)


@pytest.mark.parametrize("formula, name", [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin"),
    (THREE, "three_level_sim"),
])
def test_ml_fixef_and_vcov_equal_the_dense_gls_and_the_kappa_form(formula, name):
    """An ML fit profiles the fixed effects out (a flat level with flat="ml"): its fixef
    and vcov, the flat level's posterior, equal the dense GLS at the ML variance
    estimates; and the ML form with the fixed effects as kappa parameters, fitted from
    there, stays at the same optimum: the same -2 log L, fixed effects and variance
    parameters, and the same variance SEs (the profiled Hessian's inverse is the
    variance block of the full inverse Hessian)."""
    res = xm.lmer(formula, load(name), REML=False)
    assert res.model.compile().n_profiled == len(res.design.fixed_names)
    assert set(res.fit_result.labels) == set(res.variance_parameters)
    _, beta, cov, _ = dense_reml(res)                                            # [dense]
    assert res.fixef.to_numpy() == pytest.approx(beta, rel=1e-8, abs=1e-10)
    assert res.vcov.to_numpy() == pytest.approx(cov, rel=1e-8, abs=1e-12)
    kappa = res._kappa_fit()
    assert kappa.deviance == pytest.approx(res.deviance, abs=1e-6)
    est = kappa.estimates.set_index("label")
    assert est.loc[res.design.fixed_names, "estimate"].to_numpy() == \
        pytest.approx(res.fixef.to_numpy(), rel=1e-4, abs=1e-5 * res.sigma)
    ours = res.fit_result.estimates.set_index("label")
    labels = list(res.variance_parameters)
    assert est.loc[labels, "estimate"].to_numpy() == \
        pytest.approx(ours.loc[labels, "estimate"].to_numpy(), rel=1e-4)
    assert est.loc[labels, "se"].to_numpy() == \
        pytest.approx(ours.loc[labels, "se"].to_numpy(), rel=2e-3)


@pytest.mark.parametrize("formula, name", [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin"),
    (THREE, "three_level_sim"),
])
def test_reml_deviance_and_modes_come_from_the_reml_form(formula, name):
    """A REML fit takes its deviance (REML criterion - log|X'V^-1X| + p log 2 pi) and its
    modes (the posterior means of the REML form: Henderson's BLUPs at the GLS fixed
    effects) without the ML form; they equal the ML form evaluated at the REML estimates
    and the GLS fixed effects, whose posterior also gives the conditional variances
    (computed when first asked)."""
    from xxmpy.engine import deviance, latent_posterior
    from xxmpy.lmm.result import values_for
    from xxmpy.lmm.to_xxm import build_model
    res = xm.lmer(formula, load(name))
    assert res._condvar is None
    problem = build_model(res.design, False).compile()
    theta = values_for(problem, {**res.variance_parameters, **res.fixef.to_dict()})
    assert res.deviance == pytest.approx(deviance(problem, theta), rel=1e-11)
    post = latent_posterior(problem, theta)
    for f in res.design.factors:
        mean, cov = post[problem.level_names.index(f.name)]
        assert res.ranef()[f.name].to_numpy() == pytest.approx(mean, rel=1e-8, abs=1e-10)
        assert res.condvar()[f.name] == pytest.approx(cov, rel=1e-10)


def test_reml_gradient_matches_finite_differences_and_the_numpy_twin():
    res = xm.lmer(THREE, load("three_level_sim"))
    problem = res.model.compile()
    theta = problem.params.start * 1.3
    f, g = deviance_and_gradient(problem, theta)
    h = 1e-6 * np.maximum(1.0, np.abs(theta))
    fd = [(deviance_and_gradient(problem, theta + h * e)[0]
           - deviance_and_gradient(problem, theta - h * e)[0]) / (2 * h[k])
          for k, e in enumerate(np.eye(theta.size))]
    assert g == pytest.approx(fd, rel=1e-6, abs=1e-6)
    from twin_check import reference_values
    f2, g2, _ = reference_values(problem, theta)
    assert f2 == pytest.approx(f, rel=1e-10) and g2 == pytest.approx(g, rel=1e-10)


# ---------------------------------------------------------------- predictions
def test_fitted_residuals_and_predict(sleep_reml):
    r, df = sleep_reml, load("sleepstudy")
    fitted = r.fitted()
    assert (fitted + r.residuals()).to_numpy() == pytest.approx(df.Reaction.to_numpy())
    modes = r.ranef()["Subject"]
    by_hand = (r.fixef["(Intercept)"] + modes.loc[df.Subject.astype(str), "(Intercept)"].to_numpy()
               + (r.fixef["Days"] + modes.loc[df.Subject.astype(str), "Days"].to_numpy())
               * df.Days.to_numpy())
    assert fitted.to_numpy() == pytest.approx(by_hand, rel=1e-12)
    assert r.predict(df.iloc[[5, 17]]).to_numpy() == pytest.approx(fitted.iloc[[5, 17]].to_numpy())
    new = pd.DataFrame({"Days": [2.0, 3.0], "Subject": ["308", "not-a-subject"]})
    with pytest.raises(ValueError, match="Subject.*allow_new_levels"):
        r.predict(new)
    p = r.predict(new, allow_new_levels=True)
    assert p.iloc[1] == pytest.approx(r.fixef["(Intercept)"] + 3 * r.fixef["Days"])
    assert r.predict(new, re_form="~0").iloc[0] == pytest.approx(
        r.fixef["(Intercept)"] + 2 * r.fixef["Days"])


def test_ranef_table_and_caterpillar_plot(sleep_reml):
    t = sleep_reml.ranef_table()
    assert len(t) == 36 and set(t.effect) == {"(Intercept)", "Days"}
    assert (t.lower < t["mode"]).all() and (t["mode"] < t.upper).all()
    cv = sleep_reml.condvar()["Subject"]
    assert cv.shape == (18, 2, 2)
    assert np.all(np.linalg.eigvalsh(cv) > 0)
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    fig = sleep_reml.plot_ranef("Subject")
    assert len(fig.axes) == 2


def test_summary_text_and_tables(sleep_reml):
    s = sleep_reml.summary()
    assert s["fit"]["method"] == "REML" and s["fit"]["n_groups"] == {"Subject": 18}
    assert list(s["fixed"].columns) == ["Estimate", "Std. Error", "t value"]
    text = str(sleep_reml)
    assert "REML criterion at convergence: 1743.6283" in text
    assert "Number of obs: 180, groups: Subject, 18" in text
    assert sleep_reml.model.compile().level_names == ["observation", "Subject", "(fixed)"]


def test_missing_values_are_dropped_and_reported():
    df = load("sleepstudy")
    df.loc[[3, 40], "Reaction"] = np.nan
    df.loc[7, "Days"] = np.nan
    r = xm.lmer("Reaction ~ Days + (1 | Subject)", df, REML=False)
    assert r.n_observations == 177
    assert r.fit_statistics()["rows_dropped_for_missing"] == 3
    assert r.fitted().index.equals(df.index.drop([3, 7, 40]))


# ---------------------------------------------------------------- formulas and errors
def test_parse_formula_expands_nesting_and_double_bars():
    p = parse_formula("y ~ x * z + (1 | a/b/c) + (x || g) + (0 + x | a:b)")
    assert p.response == "y" and p.fixed == "x * z"
    assert [t.group for t in p.random] == [("a",), ("a", "b"), ("a", "b", "c"), ("g",),
                                           ("a", "b")]
    assert [t.correlated for t in p.random] == [True, True, True, False, True]
    assert parse_formula("y ~ (1 | g)").fixed == "1"
    assert parse_formula("y ~ 0 + x + (log(x) | g)").random[0].expr == "log(x)"


@pytest.mark.parametrize("formula, match", [
    ("y ~ x", "no random-effects term"),
    ("y x (1 | g)", "needs a response"),
    ("y ~ x + 1 | g", "outside parentheses"),
    ("y ~ x + (1 | )", "grouping factor|one expression"),
])
def test_bad_formulas_are_named(formula, match):
    with pytest.raises(SpecificationError, match=match):
        parse_formula(formula)


def test_bad_data_reports_every_problem_together():
    df = load("sleepstudy")
    df["Days2"] = 2 * df.Days
    with pytest.raises(SpecificationError) as err:
        xm.lmer("Reaction ~ Days + Days2 + (1 | Subject) + (1 | Nope) + (1 | Days)", df)
    text = str(err.value)
    assert "'Nope' is not in data=" in text
    with pytest.raises(SpecificationError, match="rank deficient"):
        xm.lmer("Reaction ~ Days + Days2 + (1 | Subject)", df)
    with pytest.raises(SpecificationError, match="confounded with the residual"):
        xm.lmer("Reaction ~ Days + (1 | Reaction)", df)


def test_flat_level_rules_are_checked():
    m = xm.Model(["obs", "fixed"])
    obs = pd.DataFrame({"obs": range(4), "fixed": 0, "y": [1.0, 2, 3, 5]})
    m.level("obs", parents=["fixed"], ys=["y"], data=obs)
    m.level("fixed", etas=["b"], xs=["y"], data=pd.DataFrame({"fixed": [0], "y": [1.0]}),
            flat=True)
    m.within("obs", "theta", [[1]], [[1.0]])
    m.within("fixed", "psi", [[1]], [[1.0]])
    m.between("fixed", "obs", "lambda", [[0]], [[1.0]])
    with pytest.raises(SpecificationError) as err:
        m.compile()
    assert "flat=True" in str(err.value) and "xs=" in str(err.value)
    assert "psi" in str(err.value) and "not allowed" in str(err.value)


def test_anova_compares_any_two_xxm_models():
    import reference_models as ref
    df = load("Dyestuff")
    with_batch = ref.one_way().fit()
    plain = xm.Model(["obs"])
    plain.level("obs", ys=["Yield"], data=pd.DataFrame({"obs": range(len(df)),
                                                        "Yield": df.Yield}))
    plain.within("obs", "nu", [[1]], [[1500.0]], [["mean"]])
    plain.within("obs", "theta", [[1]], [[3000.0]], [["residual"]])
    plain = plain.fit()
    out = xm.anova(with_batch, plain, names=["batch", "plain"])
    t = out.table
    assert list(t.index) == ["plain", "batch"]
    assert t.loc["batch", "Chisq"] == pytest.approx(plain.deviance - with_batch.deviance)
    n = len(df)                                 # plain model: the ML normal fit, by hand
    s2 = np.mean((df.Yield - df.Yield.mean()) ** 2)
    assert plain.deviance == pytest.approx(n * (np.log(2 * np.pi * s2) + 1), rel=1e-9)
    assert any("group_var" in note and "boundary" in note for note in out.notes)


def test_profile_ci_of_an_ml_fit_matches_lme4():
    ml = xm.lmer("Yield ~ 1 + (1 | Batch)", load("Dyestuff"), REML=False)
    t = ml.profile_ci(n_jobs=1, progress=False).estimates.set_index("label")
    # [shared] lme4 profile 95% CIs: batch SD [12.1985, 84.0630], residual SD
    # [38.2300, 67.6577], mean [1486.4515, 1568.5485]; variances are squared SDs
    assert t.loc["var[Batch:(Intercept)]", ["lower", "upper"]].to_numpy(float) == pytest.approx(
        [12.1985 ** 2, 84.0630 ** 2], rel=1e-3)
    assert t.loc["Residual", ["lower", "upper"]].to_numpy(float) == pytest.approx(
        [38.2300 ** 2, 67.6577 ** 2], rel=1e-3)
    assert t.loc["(Intercept)", ["lower", "upper"]].to_numpy(float) == pytest.approx(
        [1486.4515, 1568.5485], rel=1e-3)
    assert (t[["lower_status", "upper_status"]] == "ok").all().all()


def test_groups_of_sorted_numbers_are_factorised_without_hashing():
    """design._factorize: numbers in order are coded from where they change, as
    pd.factorize(sort=True) codes them; anything else (unsorted, NaN, strings) goes
    to pd.factorize."""
    from xxmpy.lmm.design import _factorize
    for values in ([1, 1, 2, 5, 5, 5, 9], [0.5, 0.5, 2.0, 3.5], [3, 1, 1, 2],
                   [1.0, np.nan, 2.0], ["b", "a", "a"], [7]):
        column = pd.Series(values)
        codes, uniques = _factorize(column)
        want_codes, want_uniques = pd.factorize(column, sort=True)
        np.testing.assert_array_equal(codes, want_codes)
        np.testing.assert_array_equal(np.asarray(uniques), np.asarray(want_uniques))


def _formulaic_design(formula, data):
    """build_design with the plain-column path switched off: formulaic builds every
    matrix."""
    from unittest import mock
    from xxmpy.lmm import design
    with mock.patch.object(design, "plain_matrices", lambda *a: None), \
            mock.patch.object(design, "plain_matrix", lambda *a: None):
        return design.build_design(formula, data)


@pytest.mark.parametrize("formula", [
    "y ~ 1 + (1 | g)", "y ~ x + (x | g)", "y ~ 0 + x + z + (1 | g)", "y ~ x - 1 + (1 | g)",
    "y ~ x + (x || g)", "y ~ k + (0 + x | g) + (1 | h)", "y ~ x + z + (z + x | g)"])
def test_plain_columns_are_formulaics_columns(formula):
    """A side made of the intercept and numeric columns is built without formulaic
    (lmm/plain_columns.py): the same columns, names, values, dropped rows, blocks and
    predictions as formulaic's, integer columns and missing values included."""
    from xxmpy.lmm.design import build_design
    rng = np.random.default_rng(3)
    n = 60
    data = pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n),
                         "z": rng.normal(size=n), "k": rng.integers(0, 5, n),
                         "g": np.repeat(np.arange(6), 10), "h": np.tile(np.arange(4), 15)})
    data.loc[[3, 17], "x"] = np.nan
    data.loc[40, "y"] = np.nan
    plain, reference = build_design(formula, data), _formulaic_design(formula, data)
    assert type(reference.fixed_spec).__module__.startswith("formulaic")
    assert plain.fixed_names == reference.fixed_names
    np.testing.assert_array_equal(plain.X, reference.X)
    np.testing.assert_array_equal(plain.y, reference.y)
    assert list(plain.rows) == list(reference.rows)
    assert plain.n_dropped == reference.n_dropped == (3 if "x" in formula else 1)
    assert [f.name for f in plain.factors] == [f.name for f in reference.factors]
    for f, r in zip(plain.factors, reference.factors):
        assert [b.names for b in f.blocks] == [b.names for b in r.blocks]
        for b, rb in zip(f.blocks, r.blocks):
            np.testing.assert_array_equal(b.Z, rb.Z)
            np.testing.assert_array_equal(b.columns_for(data.head(7)),
                                          rb.columns_for(data.head(7)))
    from xxmpy.lmm.result import _fixed_design
    np.testing.assert_array_equal(_fixed_design(plain.fixed_spec, data).to_numpy(),
                                  _fixed_design(reference.fixed_spec, data).to_numpy())


def test_sides_that_are_not_plain_go_through_formulaic(sleep_reml):
    """Booleans, categories, nullable integers, transforms, interactions and a repeated
    name are left to formulaic; predict names a column newdata lacks or holds as text."""
    from xxmpy.lmm.plain_columns import plain_terms
    data = pd.DataFrame({"y": [1.0, 2.0], "x": [0.5, 1.5], "b": [True, False],
                         "c": ["u", "v"], "n": pd.array([1, None], dtype="Int64")})
    assert plain_terms("x", data) == ["Intercept", "x"]
    assert plain_terms("0 + x", data) == plain_terms("x - 1", data) == ["x"]
    for rhs in ["b", "c", "n", "log(x)", "x:x", "x + x", "C(x)", "w", "x*x", "-x"]:
        assert plain_terms(rhs, data) is None, rhs
    from xxmpy.lmm.plain_columns import PlainMatrix
    odd = pd.DataFrame({"x": [np.inf, -np.inf, 1.0], "z": [1.0, np.nan, 2.0]})
    assert PlainMatrix(["Intercept", "x"], odd).complete().tolist() == [True] * 3
    assert PlainMatrix(["x", "z"], odd).complete().tolist() == [True, False, True]
    sleep = load("sleepstudy")
    with pytest.raises(ValueError, match="no column 'Days'"):
        sleep_reml.predict(sleep.drop(columns="Days"), re_form="~0")
    text = sleep.assign(Days=sleep["Days"].astype(str))
    with pytest.raises(ValueError, match="column 'Days' of newdata is"):
        sleep_reml.predict(text, re_form="~0")
