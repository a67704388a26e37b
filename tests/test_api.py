"""The two APIs over one core: argument forms, labels, the summary's fields."""
import re

import numpy as np
import pandas as pd
import pytest

import reference_models as ref
import xxmpy as xm


def test_xxm_calls_return_the_same_model_and_accept_model_keyword():
    s = pd.read_csv(ref.DATA / "brim_student.csv")
    t = pd.DataFrame({"teacher": sorted(s.teacher.unique())})
    m1 = xm.xxmModel(levels=["student", "teacher"])
    m2 = xm.xxmSubmodel(model=m1, level="student", parents=["teacher"], ys=["y1", "y2"],
                        data=s)
    m3 = xm.xxmSubmodel(m2, "teacher", etas=["e1", "e2"], data=t)
    m4 = xm.xxmWithinMatrix(model=m3, level="student", type="theta",
                            pattern=pd.DataFrame(np.ones((2, 2))),
                            value=[[1.0, 0.5], [0.5, 1.0]],
                            label=[["t11", None], ["", "t22"]])
    m5 = xm.xxmWithinMatrix(m4, "teacher", "psi", np.ones((2, 2)), np.eye(2))
    m6 = xm.xxmWithinMatrix(m5, "teacher", "alpha", [1, 1], [0.0, 0.0])   # 1-d: a column
    m7 = xm.xxmBetweenMatrix(m6, "teacher", "student", "lambda", np.zeros((2, 2)), np.eye(2))
    assert m1 is m2 is m3 is m4 is m5 is m6 is m7
    labels = m1.compile().params.labels
    assert labels[:3] == ["t11", "student_theta_2_1", "t22"]
    assert len(labels) == 8                 # a free off-diagonal pair is one parameter
    assert xm.xxmRun(m1) is m1
    assert xm.xxmFree(m1) is m1


def test_summary_fields():
    m = ref.one_way()
    xm.xxmRun(model=m)
    s = xm.xxmSummary(model=m)
    fit = s["fit"]
    for key in ("deviance", "loglik", "nParameters", "nObservations", "aic", "bic",
                "converged"):
        assert key in fit
    assert fit["loglik"] == pytest.approx(-fit["deviance"] / 2)
    assert fit["aic"] == pytest.approx(fit["deviance"] + 2 * 3)
    assert fit["bic"] == pytest.approx(fit["deviance"] + 3 * np.log(30))
    assert fit["nObservations"] == 30
    est = s["estimates"]
    assert list(est.columns[:8]) == ["label", "child", "parent", "type", "row", "col",
                                     "estimate", "se"]
    assert est.set_index("label").loc["group_var", "parent"] == "Batch_id"
    text = str(m.result)
    assert re.search(r"-2 log L \(deviance\)\s+327\.3271", text) and "group_var" in text


def test_equal_labels_are_one_parameter_across_levels():
    m = ref.pastes()
    m.spec.matrices = [mat for mat in m.spec.matrices
                       if not (mat.type == "psi" and mat.child == "batch_id")]
    m.within("batch_id", "psi", [[1]], [[1.0]], [["sample_var"]])
    result = m.fit()
    assert result.n_parameters == 3
    row = result.estimates.set_index("label").loc["sample_var"]
    assert "sample_id<-sample_id:psi" in row["appears_in"]
    assert "batch_id<-batch_id:psi" in row["appears_in"]
    # one variance for both: the deviance lies between the free fit and a much worse one
    assert result.deviance > 247.9945


def test_objective_is_available_without_fitting_and_fit_does_not_change_spec():
    m = ref.brim()
    before = m.parameters
    dev = m.deviance()
    m.fit()
    assert m.deviance() == pytest.approx(dev)       # still at the start values
    pd.testing.assert_frame_equal(before, m.parameters)


def test_non_convergence_is_reported():
    m = ref.sleepstudy()
    with pytest.warns(xm.ConvergenceWarning, match="did not converge"):
        result = m.fit(max_iter=2, polish_steps=0)
    assert not result.converged
    assert "NOT converged" in str(result)


def test_a_fitted_result_pickles_with_its_compiled_driver():
    """A result (its problem holding the compiled driver Program) survives pickle:
    the copy evaluates -2 log L and its gradient as the original does."""
    import pickle

    from xxmpy.engine import deviance_and_gradient
    from xxmpy.fit.transform import Transform
    result = ref.brim().fit()
    copy = pickle.loads(pickle.dumps(result))
    f, g = deviance_and_gradient(result.problem, result.record.estimate)
    f2, g2 = deviance_and_gradient(copy.problem, copy.record.estimate)
    assert f2 == f and np.array_equal(g2, g)
    assert copy.summary()["fit"]["deviance"] == result.summary()["fit"]["deviance"]
    t = Transform(result.problem, 1e-8)          # its compiled CholeskyMap too
    x = t.from_theta(result.record.estimate)
    assert np.array_equal(pickle.loads(pickle.dumps(t)).to_theta(x), t.to_theta(x))


def test_a_fit_and_its_model_free_their_problem_without_the_cyclic_collector():
    """model.result holds the FitResult, whose .model is a detached twin (the same
    specification and compiled problem, no result): no reference cycle, so once a
    script drops a fit (a refit in a loop) its compiled problem is freed at once.
    With the model itself as fit.model, the two held each other until Python's
    cyclic collection (2 GB on the full-size grade design)."""
    import gc
    import weakref
    sleep = pd.read_csv(ref.DATA / "sleepstudy.csv")
    gc.collect()
    gc.disable()
    try:
        model = ref.penicillin()
        result = model.fit()
        assert model.result is result and result.model.spec is model.spec
        assert result.model.result is None and result.model.name == model.name
        result.summary(), result.factor_scores()
        compiled = weakref.ref(result.problem)
        del model, result
        assert compiled() is None
        fit = xm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        compiled = weakref.ref(fit.fit_result.problem)
        fit.ranef, fit.fixef, fit.fit_result.summary()
        del fit
        assert compiled() is None
    finally:
        gc.enable()
