"""Fits are equivariant under rescaling and shifting the data (issue #18, findings 1-3).

Multiplying every observed y by c and adding s must move -2 log L by exactly
2 N_obs log|c| (the Jacobian), transform each estimate by its power of c (a
variance by c^2, an intercept by c plus the shift, a loading between two
rescaled variables not at all), and raise the same warnings. The start values
are transformed the same way (a user rescaling the data rescales them too; the
lmer front end takes its starts from the data). Tolerance 1e-6, relative to each
number's own scale.
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import reference_models as ref
import xxmpy as xm


def two_level_cfa(seed=20261130, n_teachers=60, per_teacher=8, missing=0.15):
    """A two-level CFA simulated from known values (one factor within, one between,
    four indicators, indicator residuals at both levels), with missing ys."""
    rng = np.random.default_rng(seed)
    lw, lb = np.array([1.0, 0.8, 1.2, 0.9]), np.array([1.0, 0.9, 1.1, 0.7])
    u = lb * rng.normal(0, 0.7, (n_teachers, 1)) + rng.normal(0, 0.6, (n_teachers, 4))
    teacher_of = np.repeat(np.arange(n_teachers), per_teacher)
    n = teacher_of.size
    y = np.array([3.0, 2.5, 3.5, 2.0]) + u[teacher_of] + lw * rng.normal(0, 1, (n, 1)) + \
        rng.normal(0, 0.75, (n, 4))
    y[rng.random((n, 4)) < missing] = np.nan
    ys = ["y1", "y2", "y3", "y4"]
    student = pd.DataFrame(y, columns=ys).assign(student=np.arange(n), teacher=teacher_of)
    m = xm.Model(["student", "teacher"])
    m.level("student", parents=["teacher"], ys=ys, etas=["fw"], data=student)
    m.level("teacher", etas=["fb", "d1", "d2", "d3", "d4"],
            data=pd.DataFrame({"teacher": np.arange(n_teachers)}))
    m.within("student", "nu", np.ones((4, 1)), np.full((4, 1), 2.0))
    m.within("student", "lambda", [[0], [1], [1], [1]], np.ones((4, 1)))
    m.within("student", "theta", np.eye(4), np.eye(4) * 0.5)
    m.within("student", "psi", [[1]], [[1.0]])
    m.within("teacher", "psi", np.eye(5), np.diag([0.5, 0.1, 0.1, 0.1, 0.1]))
    m.between("teacher", "student", "lambda", np.column_stack([[0, 1, 1, 1], np.zeros((4, 4))]),
              np.column_stack([np.ones(4), np.eye(4)]))
    return m

SCALES = [1e-6, 1e-3, 1.0, 1e3, 1e6]
SHIFT = 1e7


def shift_for(c, spread):
    """The shift used with scale c on data of standard deviation ``spread``: 1e7, or
    the largest power of 10 below it for which y * c + shift still holds the data to
    1e-9 of their spread in float64 (beyond that the shifted data are other data:
    1e7's rounding, 2e-9, is 6e-7 of Pastes' spread at c = 1e-3)."""
    fits = 1e-9 * c * spread / np.finfo(float).eps
    return float(min(SHIFT, 10.0 ** np.floor(np.log10(fits)))) if fits >= 1 else 0.0


def _spread(model):
    return min(float(np.nanstd(sub.data[y])) for sub in model.spec.submodels.values()
               for y in sub.ys)

# matrix type -> power of c of its elements; SHIFTED: matrix types whose elements
# carry the ys' location (their start and estimate move by the shift)
XXM_CASES = {
    "nested (brim)": (ref.brim, {"theta": 2, "psi": 2, "alpha": 1}, {"alpha"}),
    "crossed (Penicillin)": (ref.penicillin, {"theta": 2, "psi": 2, "nu": 1}, {"nu"}),
    "random slope (sleepstudy)": (ref.sleepstudy, {"theta": 2, "psi": 2, "alpha": 1},
                                  {"alpha"}),
    "latent, missing ys (two-level CFA)": (two_level_cfa, {"theta": 2, "psi": 2, "nu": 1},
                                           {"nu"}),
}


def _fit(model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = model.fit()
    return fit, sorted({type(w.message).__name__ for w in caught})


def _transformed(make, powers, shifted, c, shift):
    """The model of ``make`` on data y * c + shift, starts transformed alike; and the
    power (k,) and shift mask (k,) of each parameter."""
    model = make()
    for sub in model.spec.submodels.values():
        if sub.ys:
            sub.data = sub.data.copy()
            sub.data[sub.ys] = sub.data[sub.ys] * c + shift
    for m in model.spec.matrices:
        power = powers.get(m.type, 0)
        value = np.asarray(m.value, float) * c ** power
        if m.type in shifted:      # only the ys' intercepts: the first column's rows
            value = value + shift * _intercept_rows(model, m)
        m.value = value
    return model


def _intercept_rows(model, m):
    """1 where an element of a location matrix carries a y's mean (nu: every row; an
    alpha: the etas loaded by a fixed 1 that no other eta shares, here the intercepts)."""
    if m.type == "nu":
        return np.ones(np.shape(m.value))
    out = np.zeros(np.shape(m.value))
    out[0, 0] = 1.0           # the first eta's mean (an intercept or the y's level)
    if m.child == "teacher":  # brim: both etas are the two ys' means
        out[:, 0] = 1.0
    return out


def _labels_by(fit, types):
    table = fit.problem.params.table.drop_duplicates("label").set_index("label")
    return np.array([table.loc[lab, "type"] for lab in fit.labels])


@pytest.mark.parametrize("case", list(XXM_CASES), ids=list(XXM_CASES))
@pytest.mark.parametrize("c", SCALES, ids=[f"c={c:g}" for c in SCALES])
def test_xxm_fits_are_equivariant(case, c):
    """The model fitted to y * c + shift from transformed starts."""
    make, powers, shifted = XXM_CASES[case]
    base, base_warn = _fit(_transformed(make, powers, shifted, 1.0, 0.0))
    fit, warn = _fit(_transformed(make, powers, shifted, c, shift_for(c, _spread(make()))))
    n_obs = base.problem.n_observed
    assert fit.deviance - 2 * n_obs * np.log(c) == pytest.approx(base.deviance, rel=1e-6,
                                                                 abs=1e-6)
    types = _labels_by(base, None)
    power = np.array([powers.get(t, 0) for t in types], float)
    want = base.record.estimate * c ** power
    start_shift = fit.problem.params.start - base.problem.params.start * c ** power
    want = want + start_shift            # the intercepts move by the shift
    # each estimate to 1e-5 of its own unit (a shifted intercept near 1e7 carries
    # 1e7's rounding, 2e-9: 2e-6 of the c = 1e-3 unit)
    unit = base.problem.param_units * c ** power
    np.testing.assert_allclose(fit.record.estimate / unit, want / unit, rtol=0, atol=1e-5)
    assert warn == base_warn and fit.converged == base.converged


LMER_CASES = {
    "nested (Pastes)": ("strength ~ 1 + (1 | sample_id) + (1 | batch_id)", "Pastes.csv",
                        "strength"),
    "crossed (Penicillin)": ("diameter ~ 1 + (1 | plate_id) + (1 | sample_id)",
                             "Penicillin.csv", "diameter"),
    "random slope (sleepstudy)": ("Reaction ~ Days + (Days | Subject)", "sleepstudy.csv",
                                  "Reaction"),
}


@pytest.mark.parametrize("case", list(LMER_CASES), ids=list(LMER_CASES))
@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("c", SCALES, ids=[f"c={c:g}" for c in SCALES])
def test_lmer_fits_are_equivariant(case, reml, c):
    formula, file, y = LMER_CASES[case]
    data = pd.read_csv(ref.DATA / file)
    with warnings.catch_warnings(record=True) as caught0:
        warnings.simplefilter("always")
        base = xm.lmer(formula, data, REML=reml)
    shift = shift_for(c, float(data[y].std()))
    moved = data.assign(**{y: data[y] * c + shift})
    with warnings.catch_warnings(record=True) as caught1:
        warnings.simplefilter("always")
        fit = xm.lmer(formula, moved, REML=reml)
    # the REML criterion integrates p fixed effects out: its Jacobian counts n - p
    n = base.n_observations - (len(base.fixef) if reml else 0)
    assert fit.objective - 2 * n * np.log(c) == pytest.approx(base.objective, rel=1e-6)
    fixef = base.fixef * c
    fixef.iloc[0] += shift
    np.testing.assert_allclose(fit.fixef.to_numpy(), fixef.to_numpy(), rtol=1e-6,
                               atol=1e-6 * c * base.sigma)
    for lab, v in base.variance_parameters.items():
        assert fit.variance_parameters[lab] == pytest.approx(
            v * c ** 2, rel=1e-5, abs=1e-6 * c ** 2 * base.sigma ** 2), lab
    assert fit.is_singular() == base.is_singular()
    assert sorted({type(w.message).__name__ for w in caught1}) == \
        sorted({type(w.message).__name__ for w in caught0})


def test_deviance_at_transformed_parameters_has_no_cancellation():
    """-2 log L at the exactly transformed parameters, with the ys 1e7 from 0: the
    quadratic form is summed from residuals, never as a difference of large numbers
    (before: brim + 1e6 was 0.06 off, + 1e7 was 2.0 off; sleepstudy * 1e6, 273 off)."""
    from xxmpy.engine import deviance
    fit = ref.brim().fit()
    for c, shift in [(1.0, 1e6), (1.0, 1e7), (1e-3, 1e7), (1e6, 0.0)]:
        powers, shifted = XXM_CASES["nested (brim)"][1:]
        moved = _transformed(ref.brim, powers, shifted, c, shift).compile()
        theta = fit.record.estimate * c ** np.array(
            [powers.get(t, 0) for t in _labels_by(fit, None)], float)
        theta = theta + (moved.params.start - fit.problem.params.start * c ** np.array(
            [powers.get(t, 0) for t in _labels_by(fit, None)], float))
        got = deviance(moved, theta) - 2 * fit.problem.n_observed * np.log(c)
        assert got == pytest.approx(fit.deviance, abs=1e-6 * abs(fit.deviance))



@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
def test_lmer_criteria_keep_their_digits_far_from_zero(reml):
    """The flat forms (REML, ML with the fixed effects profiled out) at the fitted
    variance parameters of a crossed design (20,000 rows, 2,000 x 200 levels, y near
    3), with y moved by 0, 1e2 and 1e4: the criteria agree to 2e-13 relative and
    nudging the parameters by 1e-14 moves them by less. Of y itself, their quadratic
    form carries n mean^2 and cancels down (before: 4e-12 apart and 5e-13 of jitter;
    the full-size grade design's -2 log L jittered by 1e-3 and its fit ended
    unconverged): build_model fits the OLS residual instead."""
    from xxmpy.engine import deviance
    from xxmpy.lmm.design import build_design
    from xxmpy.lmm.result import values_for
    from xxmpy.lmm.to_xxm import build_model
    rng = np.random.default_rng(5)
    n, n_s, n_i = 20_000, 2_000, 200
    s, i = rng.integers(0, n_s, n), rng.integers(0, n_i, n)
    y = 3 + rng.normal(0, 0.5, n_s)[s] + rng.normal(0, 0.3, n_i)[i] + rng.normal(0, 0.6, n)
    data = pd.DataFrame({"y": y, "s": s.astype(str), "i": i.astype(str)})
    formula = "y ~ 1 + (1 | s) + (1 | i)"
    base = xm.lmer(formula, data, REML=reml)
    for shift in (0.0, 1e2, 1e4):
        problem = build_model(build_design(formula, data.assign(y=y + shift)),
                              reml).compile()
        theta = values_for(problem, base.variance_parameters)
        values = np.array([deviance(problem, theta * (1 + k * 1e-14)) for k in range(6)])
        assert values == pytest.approx(base.objective, rel=2e-13), shift
        assert np.ptp(values) < 2e-13 * abs(base.objective), shift


def _flat_crossed_model(y, s, i, flat):
    """y with crossed random intercepts s and i and its mean as a flat level (REML:
    flat=True, ML profiled: 'ml'): the xxM API's form of lmer's flat forms."""
    df = pd.DataFrame({"obs": np.arange(len(y)), "s": s, "i": i, "y": y, "fixed": 0})
    m = xm.Model(["obs", "s", "i", "fixed"])
    m.level("obs", parents=["s", "i", "fixed"], ys=["y"], data=df)
    for g in ("s", "i"):
        m.level(g, etas=[f"u_{g}"], data=pd.DataFrame({g: np.unique(df[g])}))
        m.within(g, "psi", [[1]], [[0.2]], [[f"var_{g}"]])
        m.between(g, "obs", "lambda", [[0]], [[1.0]])
    m.level("fixed", etas=["b0"], data=pd.DataFrame({"fixed": [0]}), flat=flat)
    m.between("fixed", "obs", "lambda", [[0]], [[1.0]])
    m.within("obs", "theta", [[1]], [[0.4]], [["residual"]])
    return m


@pytest.mark.parametrize("flat", [True, "ml"], ids=["REML", "ML"])
def test_flat_level_criteria_keep_their_digits_on_many_rows(flat):
    """An xxM model whose mean is a flat level, 100,000 rows near 3 (1e4 x 200 crossed
    units), moved by 0, 10 and 30: -2 log L at the same variances agrees to 1e-13
    relative and nudging them by 1e-14 moves it by less. The kernel forms the
    penalised residual sum of squares as c - b'C^-1 b only while its rounding,
    eps sqrt(rows) c, is below 1e-12 of it; here c is 27 times it and is summed from
    the residuals (before: the rule was c <= 1e4 r2; moved by 30 the value was 7e-10
    off and jittered by 2e-11, and the full-size grade design's by 1e-3)."""
    from xxmpy.engine import deviance
    rng = np.random.default_rng(5)
    n, n_s, n_i = 100_000, 10_000, 200
    s, i = rng.integers(0, n_s, n), rng.integers(0, n_i, n)
    y = 3 + rng.normal(0, 0.5, n_s)[s] + rng.normal(0, 0.3, n_i)[i] + rng.normal(0, 0.6, n)
    at = {"var_s": 0.25, "var_i": 0.09, "residual": 0.36}
    values = []
    for shift in (0.0, 10.0, 30.0):
        problem = _flat_crossed_model(y + shift, s, i, flat).compile()
        theta = np.array([at[lab] for lab in problem.params.labels])
        got = np.array([deviance(problem, theta * (1 + k * 1e-14)) for k in range(6)])
        assert np.ptp(got) < 1e-13 * abs(got[0]), shift
        values.append(float(got[0]))
    np.testing.assert_allclose(values, values[0], rtol=1e-13, atol=0)
