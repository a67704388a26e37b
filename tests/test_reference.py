"""Fitted models against lme4 / OpenMx (../shared/data/README.md, copied in tests/data).

Tolerances: -2 log L within 1e-2 absolute, estimates within 1e-3 relative.
"""

import pytest

import reference_models as ref
import xxmpy as xm


def fit(model):
    xm.xxmRun(model)
    return xm.xxmSummary(model)


def est(summary, label):
    table = summary["estimates"].set_index("label")
    return table.loc[label, "estimate"], table.loc[label, "se"]


def test_dyestuff_matches_lme4():
    s = fit(ref.one_way())
    assert s["fit"]["deviance"] == pytest.approx(327.3271, abs=1e-2)  # lme4 ML
    assert s["fit"]["converged"]
    assert est(s, "mean")[0] == pytest.approx(1527.5, rel=1e-3)
    assert est(s, "mean")[1] == pytest.approx(17.69, rel=1e-3)         # lme4 SE
    assert est(s, "group_var")[0] == pytest.approx(1388.33, rel=1e-3)
    assert est(s, "residual")[0] == pytest.approx(2451.25, rel=1e-3)


def test_dyestuff2_variance_on_the_boundary():
    with pytest.warns(xm.BoundaryWarning, match="group_var"):
        s = fit(ref.one_way("Dyestuff2.csv", start=(5.0, 1.0, 10.0)))
    assert s["fit"]["deviance"] == pytest.approx(162.8730, abs=1e-2)  # lme4 ML
    assert s["fit"]["at_bound"] == ["group_var"]
    assert est(s, "group_var")[0] < 1e-6                               # lme4: 0
    assert est(s, "residual")[0] == pytest.approx(13.3461, rel=1e-3)
    assert est(s, "mean")[0] == pytest.approx(5.6656, rel=1e-3)
    assert est(s, "mean")[1] == pytest.approx(0.6670, rel=1e-3)        # lme4 SE


def test_pastes_three_levels_matches_lme4():
    s = fit(ref.pastes())
    assert s["fit"]["deviance"] == pytest.approx(247.9945, abs=1e-2)  # lme4 ML
    assert est(s, "mean")[0] == pytest.approx(60.0533, rel=1e-3)
    assert est(s, "mean")[1] == pytest.approx(0.6421, rel=1e-3)
    assert est(s, "sample_var")[0] == pytest.approx(8.4336, rel=1e-3)
    assert est(s, "batch_var")[0] == pytest.approx(1.1992, rel=1e-3)
    assert est(s, "residual")[0] == pytest.approx(0.6780, rel=1e-3)


def test_penicillin_crossed_matches_lme4():
    s = fit(ref.penicillin())
    assert s["fit"]["deviance"] == pytest.approx(332.1883, abs=1e-2)  # lme4 ML
    assert est(s, "mean")[0] == pytest.approx(22.9722, rel=1e-3)
    assert est(s, "mean")[1] == pytest.approx(0.7446, rel=1e-3)
    assert est(s, "plate_var")[0] == pytest.approx(0.71499, rel=1e-3)
    assert est(s, "sample_var")[0] == pytest.approx(3.13519, rel=1e-3)
    assert est(s, "residual")[0] == pytest.approx(0.30243, rel=1e-3)


def test_sleepstudy_random_slope_matches_lme4():
    s = fit(ref.sleepstudy())
    assert s["fit"]["deviance"] == pytest.approx(1751.9393, abs=1e-2)  # lme4 ML
    expected = {"intercept": 251.4051, "Days": 10.4673, "var_b0": 565.477,
                "var_b1": 32.682, "cov_b0_b1": 11.055, "residual": 654.946}
    for label, value in expected.items():
        assert est(s, label)[0] == pytest.approx(value, rel=1e-3), label
    assert est(s, "intercept")[1] == pytest.approx(6.632, rel=1e-3)    # lme4 SE
    assert est(s, "Days")[1] == pytest.approx(1.502, rel=1e-3)


def test_brim_matches_openmx():
    s = fit(ref.brim())
    assert s["fit"]["deviance"] == pytest.approx(445.4331, abs=1e-2)  # OpenMx, lavaan
    assert s["fit"]["nParameters"] == 8
    assert s["fit"]["nObservations"] == 150
    table = s["estimates"].set_index(["type", "row", "col"])["estimate"]
    expected = {("alpha", "eta1", "1"): -0.10728, ("alpha", "eta2", "1"): 0.27815,
                ("theta", "y1", "y1"): 0.96915, ("theta", "y2", "y1"): 0.33813,
                ("theta", "y2", "y2"): 0.89347, ("psi", "eta1", "eta1"): 0.75240,
                ("psi", "eta2", "eta1"): 0.12834, ("psi", "eta2", "eta2"): 0.15924}
    for key, value in expected.items():
        assert table.loc[key] == pytest.approx(value, rel=1e-3), key
