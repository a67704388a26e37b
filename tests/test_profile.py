"""Profile-likelihood CIs against lme4 and the rise criterion.

lme4 1.1-31 profile intervals (confint(method = "profile"), ML fits) are in
../shared/data/README.md; lme4 reports SDs, so a variance interval is the
square of its SD interval. brim has no lme4 equivalent: there every limit
must be where -2 log L, re-optimised over the other parameters, has risen by
chi2(0.95, 1) = 3.841459 within 1e-3 (OpenMx's mxCI misses this: 3.845-3.870).
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import reference_models as ref
import xxmpy as xm
from xxmpy.fit.optimize import fit_problem

CUTOFF = 3.841459


def fitted(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xm.BoundaryWarning)
        return model.fit()


def limits(ci, label):
    row = ci.estimates.set_index("label").loc[label]
    return row.lower, row.upper, row.lower_status, row.upper_status


def assert_interval(ci, label, lower, upper, square=False):
    lo, hi, s_lo, s_hi = limits(ci, label)
    want = (lower ** 2, upper ** 2) if square else (lower, upper)
    assert (s_lo, s_hi) == ("ok", "ok")
    assert lo == pytest.approx(want[0], rel=1e-3)
    assert hi == pytest.approx(want[1], rel=1e-3)


def reoptimised_rise(result, label, value):
    """-2 log L minimised with ``label`` held at ``value``, minus the fit's minimum."""
    j = result.labels.index(label)
    start = result.record.estimate.copy()
    start[j] = value
    fixed = np.zeros(start.size, bool)
    fixed[j] = True
    rec = fit_problem(result.problem, start=start, fixed=fixed, hessian=False, gtol=1e-12)
    return rec.deviance - result.deviance


def reoptimised_correlation_rise(result, label, rho):
    """-2 log L minimised with the correlation behind covariance ``label`` held at rho
    (its variances free), from the fit's estimate, minus the fit's minimum."""
    j = result.labels.index(label)
    slots = next(s for s in result.problem.cholesky_blocks.values() if j in s)
    r, c = np.argwhere(slots == j)[0]
    start = result.record.estimate.copy()
    start[j] = rho * np.sqrt(start[slots[r, r]] * start[slots[c, c]])
    fixed = np.zeros(start.size, bool)
    fixed[j] = True
    rec = fit_problem(result.problem, start=start, fixed=fixed, hessian=False, gtol=1e-12,
                      correlation=True)
    return rec.deviance - result.deviance


def test_correlation_ci_limits_are_verified_by_independent_profile_fits():
    """brim: the student-level correlation has two ok limits, each where -2 log L
    re-optimised with the correlation held (variances free) rises by the cutoff; the
    teacher-level one stays below the cutoff out to +/-0.999 on both sides (the
    limits are -1 and 1). A label that is not a free off-diagonal element is refused."""
    fit = fitted(ref.brim())
    ci = fit.correlation_ci().set_index("label")
    student, teacher = ci.loc["student_theta_2_1"], ci.loc["teacher_psi_2_1"]
    theta = fit.record.estimate
    labels = fit.labels
    rho = theta[labels.index("student_theta_2_1")] / np.sqrt(
        theta[labels.index("student_theta_1_1")] * theta[labels.index("student_theta_2_2")])
    assert student.estimate == pytest.approx(rho, rel=1e-12)
    assert (student.lower_status, student.upper_status) == ("ok", "ok")
    assert student.lower < rho < student.upper
    for side in ("lower", "upper"):
        assert reoptimised_correlation_rise(fit, "student_theta_2_1", student[side]) == \
            pytest.approx(3.841459, abs=1e-3)
    assert (teacher.lower, teacher.upper) == (-1.0, 1.0)
    assert (teacher.lower_status, teacher.upper_status) == ("boundary", "boundary")
    for edge in (-0.999, 0.999):
        assert 0 < reoptimised_correlation_rise(fit, "teacher_psi_2_1", edge) < 3.84
    with pytest.raises(ValueError, match="not an off-diagonal element"):
        fit.correlation_ci("teacher_psi_1_1")


def test_dyestuff_intervals_match_lme4():
    ci = fitted(ref.one_way()).profile_ci(n_jobs=1)
    assert_interval(ci, "mean", 1486.4515, 1568.5485)            # lme4
    assert_interval(ci, "group_var", 12.1985, 84.0630, square=True)
    assert_interval(ci, "residual", 38.2300, 67.6577, square=True)


def test_pastes_intervals_match_lme4_with_batch_variance_on_the_boundary():
    ci = fitted(ref.pastes()).profile_ci(n_jobs=1)
    assert_interval(ci, "mean", 58.6637, 61.4430)                 # lme4
    assert_interval(ci, "sample_var", 2.1579, 4.0536, square=True)
    assert_interval(ci, "residual", 0.6520, 1.0854, square=True)
    lo, hi, s_lo, s_hi = limits(ci, "batch_var")
    assert (lo, s_lo) == (0.0, "boundary")                        # lme4: SD lower limit 0
    assert s_hi == "ok" and hi == pytest.approx(2.9466 ** 2, rel=1e-3)


def test_sleepstudy_intervals_match_lme4():
    ci = fitted(ref.sleepstudy()).profile_ci(n_jobs=1)
    assert_interval(ci, "intercept", 237.6807, 265.1295)          # lme4
    assert_interval(ci, "Days", 7.3587, 13.5759)
    assert_interval(ci, "var_b0", 14.3815, 37.7160, square=True)
    assert_interval(ci, "var_b1", 3.8012, 8.7534, square=True)
    assert_interval(ci, "residual", 22.8983, 28.8580, square=True)
    # lme4 profiles the correlation, we the covariance: no common scale; the
    # covariance limits must still satisfy the rise criterion
    lo, hi, s_lo, s_hi = limits(ci, "cov_b0_b1")
    assert (s_lo, s_hi) == ("ok", "ok") and lo < 11.055 < hi


def test_brim_every_limit_rises_by_the_cutoff():
    result = fitted(ref.brim())
    ci = result.profile_ci(n_jobs=2)
    assert ci.verified()
    for row in ci.estimates.itertuples():
        for side in ("lower", "upper"):
            value, status = getattr(row, side), getattr(row, f"{side}_status")
            if status == "ok":
                assert getattr(row, f"{side}_rise") == pytest.approx(CUTOFF, abs=1e-3)
                # independent check: a fresh re-optimisation at the limit
                assert reoptimised_rise(result, row.label, value) == pytest.approx(CUTOFF,
                                                                                   abs=1e-3)
            else:     # psi22's lower side: the profile stays below the cutoff down to 0
                assert (row.label, side, status) == ("teacher_psi_2_2", "lower", "boundary")
                assert reoptimised_rise(result, row.label, 1e-6) < CUTOFF
    # OpenMx mxCI (approximate; see module doc) for orientation only: within 1%
    openmx = {"student_theta_1_1": (0.6700, 1.4759), "student_theta_2_1": (0.0903, 0.6830),
              "student_theta_2_2": (0.6180, 1.3599), "teacher_alpha_1_1": (-0.5301, 0.3156)}
    for label, (lo, hi) in openmx.items():
        got_lo, got_hi, _, _ = limits(ci, label)
        assert got_lo == pytest.approx(lo, rel=1e-2) and got_hi == pytest.approx(hi, rel=1e-2)


def test_dyestuff2_boundary_estimate_keeps_finite_data_bounded_limits():
    result = fitted(ref.one_way("Dyestuff2.csv", start=(5.0, 1.0, 10.0)))
    ci = result.profile_ci(n_jobs=1)
    lo, hi, s_lo, s_hi = limits(ci, "group_var")
    assert (lo, s_lo) == (0.0, "boundary") and s_hi == "ok" and np.isfinite(hi)
    for label in ("mean", "residual"):
        lo, hi, s_lo, s_hi = limits(ci, label)
        assert (s_lo, s_hi) == ("ok", "ok") and lo < result.params[label] < hi
    assert ci.verified()


def test_results_do_not_depend_on_the_number_of_workers():
    result = fitted(ref.pastes())
    one = result.profile_ci(n_jobs=1).estimates
    two = result.profile_ci(n_jobs=2).estimates
    pd.testing.assert_frame_equal(one, two)


def test_xxmci_adds_limits_to_the_summary_and_text():
    m = ref.one_way()
    xm.xxmRun(m)
    assert "lower" not in xm.xxmSummary(m)["estimates"]
    xm.xxmCI(model=m, level=0.9, parameters=["mean"], n_jobs=1)
    est = xm.xxmSummary(m)["estimates"].set_index("label")
    assert est.loc["mean", "lower_status"] == "ok"
    assert np.isnan(est.loc["residual", "lower"])                 # not requested
    # 90% limits are narrower than lme4's 95% ones
    assert 1486.4515 < est.loc["mean", "lower"] < est.loc["mean", "upper"] < 1568.5485
    text = str(m.result)
    assert "profile 90% CIs" in text and "rises by 2.7055" in text and "verified" in text


def test_bad_requests_are_named():
    result = fitted(ref.one_way())
    with pytest.raises(ValueError, match="unknown parameter label.*nope"):
        result.profile_ci(parameters=["nope"])
    with pytest.raises(ValueError, match="level must be between 0 and 1"):
        result.profile_ci(level=95)
    with pytest.raises(RuntimeError, match="xxmCI: the model has not been fitted"):
        xm.xxmCI(ref.one_way())


def test_progress_bar_on_request(capsys):
    fitted(ref.one_way()).profile_ci(parameters=["mean"], n_jobs=1, progress=True)
    err = capsys.readouterr().err
    assert "xxmCI [" in err and "2/2 limits" in err


def test_profile_traces_and_plot():
    import matplotlib      # the test extra installs it; plotting is optional for users
    matplotlib.use("Agg")
    ci = fitted(ref.one_way()).profile_ci(n_jobs=1)
    trace = ci.traces["mean"]
    assert trace.rise.min() == 0.0 and trace.value.is_monotonic_increasing
    assert trace.rise.max() == pytest.approx(CUTOFF, abs=1e-3)
    assert len(trace) == 3                        # the estimate and the two limits
    fig = ci.plot()                               # adds 3 profile fits inside each side
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 3
    for label, trace in ci.traces.items():
        assert len(trace) == 9 and trace.value.is_monotonic_increasing
        # zeta rises through the interval: -sqrt(cutoff) at the lower limit to +sqrt(cutoff)
        assert np.all(np.diff(trace.zeta) > 0), label
        assert trace.zeta.iloc[0] == pytest.approx(-np.sqrt(CUTOFF), abs=1e-3)
    ci.plot()                                     # once only
    assert len(ci.traces["mean"]) == 9


def test_twenty_parameter_simulated_model_every_limit_rises_by_the_cutoff():
    """Three-level factor model (factories.three_level_factor), data simulated from it."""
    import factories
    result = fitted(factories.three_level_factor(n_top=10))
    assert result.n_parameters == 20 and result.record.converged
    ci = result.profile_ci(n_jobs=2)
    assert ci.verified()
    table = ci.estimates.set_index("label")
    assert (table.lower_status == "ok").all() and (table.upper_status == "ok").all()
    for side in ("lower", "upper"):
        np.testing.assert_allclose(table[f"{side}_rise"], CUTOFF, atol=1e-3)
    assert ((table.lower < table.estimate) & (table.estimate < table.upper)).all()
    # independent re-optimisation at a few limits: a loading, a level variance, an intercept
    for label, side in (("l1", "lower"), ("school_psi_1_1", "upper"),
                        ("klass_psi_1_1", "lower"), ("student_nu_3_1", "upper")):
        rise = reoptimised_rise(result, label, table.loc[label, side])
        assert rise == pytest.approx(CUTOFF, abs=1e-3)


def test_profile_fit_reports_the_profile_slope():
    """A profile fit's gradient entry of the held parameter is d(profile -2 log L)/dv
    (envelope theorem; the CI search takes Newton steps with it): checked against
    central differences of re-optimised fits, for a variance and a covariance."""
    result = fitted(ref.brim())
    problem, theta = result.problem, result.record.estimate
    for label in ("teacher_psi_1_1", "teacher_psi_2_1"):
        j = result.labels.index(label)
        fixed = np.zeros(theta.size, bool)
        fixed[j] = True

        def profile(v):
            start = theta.copy()
            start[j] = v
            return fit_problem(problem, start=start, fixed=fixed, hessian=False, gtol=1e-12)

        v, h = theta[j] * 1.3, 1e-4 * abs(theta[j])
        slope = profile(v).gradient[j]
        fd = (profile(v + h).deviance - profile(v - h).deviance) / (2 * h)
        assert abs(slope) > 1.0
        assert slope == pytest.approx(fd, rel=1e-4)


REFERENCE_FITS = {"Dyestuff": ref.one_way, "Pastes": ref.pastes, "sleepstudy": ref.sleepstudy,
                  "brim": ref.brim,
                  "Dyestuff2": lambda: ref.one_way("Dyestuff2.csv", start=(5.0, 1.0, 10.0))}


@pytest.mark.parametrize("name", list(REFERENCE_FITS))
def test_direct_search_agrees_with_root_finding_over_profile_fits(name):
    """The two limit searches are independent algorithms: the direct search
    (limit_search.py, one evaluation per step) and root finding on zeta over
    full profile fits (its fallback). Every ok limit agrees within 1e-4 of the
    interval's half-width, and the direct search needed no full profile fit here
    (brim's theta22 upper limit, where teacher psi reaches correlation 1, passed
    the saddle test instead: psi's gradient matrix there has no eigenvalue below
    -SADDLE_SLOPE, so no move that keeps psi positive semi-definite lowers -2 log L
    to first order)."""
    from xxmpy.inference import profile
    result = fitted(REFERENCE_FITS[name]())
    ci = result.profile_ci(n_jobs=1)
    assert [key for key, limit in ci.limits.items() if limit.n_fits] == []
    ctx = profile._Context(result, CUTOFF)
    checked = 0
    for (label, side), limit in ci.limits.items():
        if limit.status != "ok":
            continue
        j = result.labels.index(label)
        other, _ = profile._root_finding(ctx, j, side, *profile.search_bounds(ctx, j))
        assert other.status == "ok" and other.n_fits > 0
        assert abs(other.value - limit.value) < 1e-4 * abs(limit.value - ctx.theta[j]), \
            (label, side)
        checked += 1
    assert checked >= 5


def test_limits_fall_back_to_profile_fits_when_the_direct_search_gives_up(monkeypatch):
    """With the direct search allowed a single evaluation, every limit comes from
    root finding over profile fits, with the same results (Pastes: a boundary too)."""
    from xxmpy.inference import limit_search
    result = fitted(ref.pastes())
    direct = result.profile_ci(n_jobs=1)
    monkeypatch.setattr(limit_search, "MAX_EVALUATIONS", 1)
    fallback = result.profile_ci(n_jobs=1)
    assert all(limit.n_fits > 0 for limit in fallback.limits.values())
    a, b = direct.estimates.set_index("label"), fallback.estimates.set_index("label")
    pd.testing.assert_series_equal(a.lower_status, b.lower_status)
    pd.testing.assert_series_equal(a.upper_status, b.upper_status)
    np.testing.assert_allclose(a.lower, b.lower, rtol=1e-4)
    np.testing.assert_allclose(a.upper, b.upper, rtol=1e-4)
    assert "full profile fits where the direct search needed a check or gave up" in \
        fallback.describe()
    assert "direct search, no full profile fit" in direct.describe()


def test_a_limit_at_a_saddle_next_to_a_singular_covariance_is_re_optimised(monkeypatch):
    """nested_bivariate's teacher psi sits at 0 (a noise-only factory): there the
    gradient in a Cholesky diagonal vanishes whatever the curvature, and a direct
    search can stop at a saddle (with start-value scaling it did, at kappa_11's
    upper limit 0.19611, where -2 log L re-optimised from the estimate rises only
    3.812; with the data-unit scaling its path avoids it). Whatever the path, the
    limit reported must pass the independent re-optimisation; and a limit the saddle
    test flags is confirmed by a full profile fit (forced here)."""
    import factories
    from xxmpy.inference import limit_search
    with warnings.catch_warnings():      # the degenerate fit warns; that is the point here
        warnings.simplefilter("ignore", xm.XxmWarning)
        result = factories.nested_bivariate().fit()
    ci = result.profile_ci(parameters=["student_kappa_1_1"], n_jobs=1)
    upper = ci.limits[("student_kappa_1_1", 1)]
    assert upper.status == "ok"
    assert reoptimised_rise(result, "student_kappa_1_1", upper.value) == \
        pytest.approx(CUTOFF, abs=1e-3)
    monkeypatch.setattr(limit_search, "_saddle", lambda *args: True)
    forced = result.profile_ci(parameters=["student_kappa_1_1"], n_jobs=1)
    confirmed = forced.limits[("student_kappa_1_1", 1)]
    assert confirmed.status == "ok" and confirmed.n_fits >= 1
    assert reoptimised_rise(result, "student_kappa_1_1", confirmed.value) == \
        pytest.approx(CUTOFF, abs=1e-3)


def test_compiled_quasi_newton_matches_numpy_twin():
    """inference/_quasi_newton (BFGS update in place, the profile's quadratic model) vs
    limit_search's numpy forms: undamped, damped (s'r < 0.2 s'Bs) and no-op (s'Bs = 0)."""
    from xxmpy.inference import limit_search
    if limit_search.quasi_newton is None:
        pytest.fail("the compiled kernels are not built (or XXMPY_KERNEL=numpy is set)")
    rng = np.random.default_rng(3)
    k = 9
    A = rng.normal(size=(k, k))
    B = A @ A.T + k * np.eye(k)
    H = np.linalg.inv(B)
    s = rng.normal(size=k)
    for r in (B @ s + 0.1 * rng.normal(size=k), -(B @ s), np.zeros(k)):
        for step in (s, np.zeros(k)):
            want = limit_search._damped_bfgs(B, H, step, r)
            got = B.copy(), H.copy()
            limit_search.quasi_newton.damped_bfgs(*got, step, r)
            for a, b in zip(got, want):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(want[1] @ want[0], np.eye(k), atol=1e-10)
    g = rng.normal(size=k)
    for j in (0, 4, k - 1):
        got = limit_search.quasi_newton.profile_model(H, g, j)
        want = limit_search._profile_model(H, g, j)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
