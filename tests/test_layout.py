"""The package's shape: public API, a frozen compiled problem, one result schema.

Issue #17: a newcomer finds each stage by its folder; ``dir(xxmpy)`` is the
public API; the compiled problem is complete and frozen (a data table changed
in place is compiled anew, never reused stale); every result shares one
estimates schema and one Summary.
"""
import dataclasses
import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import reference_models as ref
import xxmpy as xm
from xxmpy.engine import deviance


def test_dir_lists_the_public_api_only():
    public = dir(xm)
    assert public == sorted(xm.__all__)
    for name in ("Model", "FitResult", "ProfileCI", "AnovaTable", "Summary", "lmer",
                 "xxmSummary", "anova"):
        assert name in public
    for internal in ("spec", "compile", "engine", "fit", "inference", "results", "api",
                     "errors", "lmm", "report"):
        assert internal not in public


def test_the_pipeline_stages_are_subpackages():
    import importlib
    for stage in ("spec", "compile", "engine", "engine.reference", "fit", "inference",
                  "results", "report", "api", "lmm"):
        assert importlib.import_module(f"xxmpy.{stage}").__doc__


def test_the_compiled_problem_is_frozen():
    problem = ref.brim().compile()
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.form = None
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem._plan = None              # no module can attach a derived form later
    with pytest.raises(ValueError):       # its arrays are read-only
        problem.levels[0].y[0, 0] = 1.0
    with pytest.raises(ValueError):
        problem.params.start[0] = 1.0
    assert not hasattr(problem, "__dict__") or not {
        k for k in vars(problem) if k.startswith("_")}


def _brim_parts():
    students = pd.read_csv(ref.DATA / "brim_student.csv")
    teachers = pd.DataFrame({"teacher": students.teacher.unique()})
    return students, teachers


def _brim_on(students, teachers):
    m = xm.Model(["student", "teacher"])
    m.level("student", parents=["teacher"], ys=["y1", "y2"], data=students)
    m.level("teacher", etas=["eta1", "eta2"], data=teachers)
    m.within("student", "theta", np.ones((2, 2)), np.eye(2))
    m.within("teacher", "psi", np.ones((2, 2)), np.eye(2))
    m.within("teacher", "alpha", np.ones((2, 1)), np.zeros((2, 1)))
    m.between("teacher", "student", "lambda", np.zeros((2, 2)), np.eye(2))
    return m


def test_a_table_changed_in_place_between_fits_is_seen():
    students, teachers = _brim_parts()
    m = _brim_on(students, teachers)
    first = m.fit().deviance
    students.loc[students.index[:10], "y1"] += 3.0       # in place, same object
    second = m.fit().deviance
    fresh = _brim_on(students.copy(), teachers).fit().deviance
    assert second != pytest.approx(first, abs=1e-3)
    assert second == pytest.approx(fresh, rel=1e-10)


def test_an_unchanged_table_reuses_the_compiled_problem():
    m = _brim_on(*_brim_parts())
    assert m.compile() is m.compile()


def test_the_problem_keeps_copies_of_the_data():
    students, teachers = _brim_parts()
    m = _brim_on(students, teachers)
    problem = m.compile()
    before = deviance(problem, problem.params.start)
    students["y1"] = 0.0
    assert deviance(problem, problem.params.start) == before


def test_fit_result_vcov_is_labelled_and_estimates_share_one_schema():
    fit = ref.brim().fit()
    assert isinstance(fit.vcov, pd.DataFrame)
    assert list(fit.vcov.index) == list(fit.vcov.columns) == fit.labels
    se = fit.estimates.set_index("label")["se"]
    assert np.sqrt(np.diag(fit.vcov)) == pytest.approx(se.loc[fit.labels].to_numpy())
    ci = fit.profile_ci(parameters=[fit.labels[0]], n_jobs=1, progress=False)
    shared = ["label", "estimate", "lower", "upper", "lower_status", "upper_status"]
    assert set(shared) <= set(ci.estimates.columns) and set(shared) <= set(fit.estimates.columns)
    with pytest.warns(DeprecationWarning, match="ProfileCI.estimates"):
        assert ci.table is ci.estimates
    lmer = xm.lmer("Yield ~ 1 + (1 | Batch)", pd.read_csv(ref.DATA / "Dyestuff.csv"),
                   REML=False)
    assert {"label", "estimate", "se", "z", "p"} <= set(lmer.estimates.columns)
    assert isinstance(lmer.vcov, pd.DataFrame)


def test_one_summary_renders_text_frames_and_html():
    m = ref.brim()
    xm.xxmRun(m)
    s = xm.xxmSummary(m)
    assert isinstance(s, dict) and isinstance(s, xm.Summary)   # the documented dict
    assert set(s) >= {"fit", "estimates"}
    text = repr(s)
    assert "np.float64" not in text and "..." not in text.split("\n")[0]
    assert re.search(r"-2 log L \(deviance\)\s+445\.4331", text)      # OpenMx 445.4331
    for label in m.result.labels:                 # every parameter printed, none cut off
        assert label in text
    assert str(m.result) == text == str(m.result.summary())
    html = s.to_html()
    assert "<table" in html and "445.4331" in html
    pd.testing.assert_frame_equal(s.to_frame(), m.result.estimates)


def test_fit_statistics_and_convergence_are_separate():
    fit = ref.one_way().fit()
    assert set(fit.fit_statistics()) == {"deviance", "loglik", "nParameters",
                                         "nObservations", "aic", "bic"}
    assert {"converged", "status", "gradient_norm", "n_evaluations"} <= set(fit.convergence())


def test_latent_posterior_comes_from_the_driver_for_a_collapsed_level_with_etas():
    """A two-level CFA whose student level (etas of its own) collapses: the student
    factor scores are read from the row-by-row form, and equal the reference path."""
    from test_collapse import two_factor_leaf
    from twin_check import evaluate_both
    problem = two_factor_leaf().compile()
    assert problem.form.collapsed
    theta = problem.params.start
    (_, _, post_c), (_, _, post_t) = evaluate_both(problem, theta)
    leaf = problem.form.contrasts[0].level
    assert post_c[leaf][0].shape[0] == problem.levels[leaf].n      # every unit, not groups
    np.testing.assert_allclose(post_c[leaf][0], post_t[leaf][0], rtol=1e-10, atol=1e-12)


def test_a_fitted_result_pickles():
    fit = ref.brim().fit()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copy = pickle.loads(pickle.dumps(fit))
    assert deviance(copy.problem, copy.record.estimate) == pytest.approx(fit.deviance, rel=1e-12)
