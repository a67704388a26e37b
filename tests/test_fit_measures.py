"""Fit measures against the saturated and baseline models (issue #19, first slice).

Reference: lavaan 0.6-14 on its Demo.twolevel data, a two-level CFA (two factors
within: y1..y3, y4..y6; two between, the same indicators), printed by
``Rscript tests/data/r/lavaan_twolevel_cfa.R`` (its output beside it,
lavaan_twolevel_cfa.out). lavaan's H1 comes from an EM that stops at a gain of
1e-4; ours is the exact optimum, 9e-5 higher in log L, so chi-square is compared
to 1e-3 and everything derived from it at lavaan's printed digits.
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import reference_models as ref
import xxmpy as xm

# [lavaan] fitMeasures(fit), tests/data/r/lavaan_twolevel_cfa.out
LAVAAN = {"npar": 32, "logl": -23968.69711, "unrestricted_logl": -23962.38289,
          "chisq": 12.62842786, "df": 16, "pvalue": 0.6997068691,
          "baseline_chisq": 2121.379238, "baseline_df": 30, "cfi": 1.0,
          "tli": 1.003022741, "nfi": 0.9940470673, "rfi": 0.9888382512,
          "ifi": 1.001601408, "rni": 1.001612129, "rmsea": 0.0, "rmsea_ci_lower": 0.0,
          "rmsea_ci_upper": 0.01444930502, "rmsea_pvalue": 1.0,
          "srmr_student": 0.011589148, "srmr_cluster": 0.02429568454,
          "srmr": 0.03588483254, "aic": 48001.39421, "bic": 48187.76369,
          "bic2": 48086.09155, "ntotal": 2500}


def two_level_cfa():
    d = pd.read_csv(ref.DATA / "Demo_twolevel.csv")
    ys = [f"y{k}" for k in range(1, 7)]
    students = d[["cluster"] + ys].assign(student=np.arange(len(d)))
    clusters = pd.DataFrame({"cluster": np.sort(d.cluster.unique())})
    m = xm.Model(["student", "cluster"], name="two-level CFA")
    m.level("student", parents=["cluster"], ys=ys, etas=["fw1", "fw2"], data=students)
    m.level("cluster", etas=["fb1", "fb2"] + [f"d{k}" for k in range(1, 7)], data=clusters)
    free = np.zeros((6, 2))
    free[1:3, 0] = free[4:6, 1] = 1
    marker = np.zeros((6, 2))
    marker[0:3, 0] = marker[3:6, 1] = 1
    m.within("student", "lambda", free, marker)
    m.within("student", "theta", np.eye(6), np.eye(6))
    m.within("student", "psi", np.ones((2, 2)), np.eye(2))
    m.within("student", "nu", np.ones((6, 1)), np.zeros((6, 1)))
    psi = np.eye(8)
    psi[0, 1] = psi[1, 0] = 1
    m.within("cluster", "psi", psi, np.eye(8) * 0.5)
    m.between("cluster", "student", "lambda", np.column_stack([free, np.zeros((6, 6))]),
              np.column_stack([marker, np.eye(6)]))
    return m


@pytest.fixture(scope="module")
def cfa_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xm.XxmWarning)
        return two_level_cfa().fit(start="auto")


def test_two_level_cfa_fit_measures_match_lavaan(cfa_fit):
    fm = cfa_fit.fit_measures()
    assert cfa_fit.n_parameters == LAVAAN["npar"]
    assert fm["logl"] == pytest.approx(LAVAAN["logl"], abs=1e-4)
    # the exact saturated optimum is above lavaan's EM stop, never below it
    assert 0 <= fm["unrestricted_logl"] - LAVAAN["unrestricted_logl"] < 1e-3
    assert fm["chisq"] == pytest.approx(LAVAAN["chisq"], abs=1e-3)
    for key in ("df", "baseline_df", "ntotal", "npar"):
        assert fm[key] == LAVAAN[key], key
    for key in ("pvalue", "cfi", "tli", "nfi", "rfi", "ifi", "rni", "rmsea", "rmsea_ci_lower",
                "rmsea_ci_upper", "rmsea_pvalue", "srmr_student", "srmr_cluster", "srmr"):
        assert fm[key] == pytest.approx(LAVAAN[key], abs=1e-4), key
    assert fm["baseline_chisq"] == pytest.approx(LAVAAN["baseline_chisq"], abs=1e-3)
    for key in ("aic", "bic", "bic2"):
        assert fm[key] == pytest.approx(LAVAAN[key], abs=1e-3), key


def test_reference_models_are_kept_and_have_their_parameter_counts(cfa_fit):
    saturated, baseline = cfa_fit.saturated(), cfa_fit.baseline()
    assert saturated is cfa_fit.saturated()          # fitted once
    p = 6
    assert saturated.n_parameters == 2 * p * (p + 1) // 2 + p       # within, between, means
    assert baseline.n_parameters == 3 * p
    assert saturated.converged and baseline.converged


def test_rmsea_interval_inverts_the_noncentral_chi_square():
    """lavaan's RMSEA interval and p-value for chisq 409.1406093 on 17 df, N 2500 (the
    one-between-factor variant of the same CFA, printed by lavaan 0.6-14: rmsea.ci.lower
    0.0881135724, rmsea.ci.upper 0.1042333257, rmsea.pvalue 1.687538997e-14)."""
    from xxmpy.assessment.fit_measures import _noncentrality
    from scipy import stats
    chisq, df, n = 409.1406093, 17, 2500
    assert np.sqrt(_noncentrality(chisq, df, 0.95) / (n * df)) == pytest.approx(0.0881135724,
                                                                                abs=1e-8)
    assert np.sqrt(_noncentrality(chisq, df, 0.05) / (n * df)) == pytest.approx(0.1042333257,
                                                                                abs=1e-8)
    assert stats.ncx2.sf(chisq, df, n * df * 0.05 ** 2) == pytest.approx(1.687538997e-14,
                                                                        rel=1e-6)


def test_a_model_whose_saturated_model_cannot_be_formed_says_why():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xm.XxmWarning)
        slopes = ref.sleepstudy().fit()                # random slopes through data.
        three = xm.lmer("strength ~ 1 + (1 | sample_id) + (1 | batch_id)",
                        pd.read_csv(ref.DATA / "Pastes.csv"), REML=False).fit_result
    with pytest.raises(ValueError, match="data. elements"):
        slopes.fit_measures()
    with pytest.raises(ValueError, match="cannot be formed"):
        three.fit_measures()
