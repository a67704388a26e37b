"""Every specification problem gets a clear message; several are reported together."""
import numpy as np
import pandas as pd
import pytest

import xxmpy as xm
from xxmpy.errors import SpecificationError


def data():
    s = pd.DataFrame({"student": [1, 2, 3, 4, 5, 6], "teacher": [1, 1, 2, 2, 3, 3],
                      "y1": [0.1, 0.5, -0.3, 1.2, 0.7, -0.4], "x1": [1.0, 2, 3, 4, 5, 6],
                      "w": [0.0, 1, 0, 1, 0, 1]})
    t = pd.DataFrame({"teacher": [1, 2, 3]})
    return s, t


def base(s=None, t=None, theta=True):
    s0, t0 = data()
    s = s0 if s is None else s
    t = t0 if t is None else t
    m = xm.xxmModel(["student", "teacher"])
    xm.xxmSubmodel(m, "student", parents=["teacher"], ys=["y1"], xs=["x1"], data=s)
    xm.xxmSubmodel(m, "teacher", etas=["u"], data=t)
    if theta:
        xm.xxmWithinMatrix(m, "student", "theta", [[1]], [[1.0]])
    xm.xxmWithinMatrix(m, "teacher", "psi", [[1]], [[1.0]])
    xm.xxmBetweenMatrix(m, "teacher", "student", "lambda", [[0]], [[1.0]])
    return m


def problems_of(model):
    with pytest.raises(SpecificationError) as info:
        model.compile()
    return str(info.value)


def test_valid_base_compiles():
    assert base().compile().params.n == 2


def test_unknown_level_and_matrix_type_reported_together():
    m = base()
    xm.xxmWithinMatrix(m, "pupil", "theta", [[1]], [[1.0]])
    xm.xxmWithinMatrix(m, "student", "zeta", [[1]], [[1.0]])
    xm.xxmBetweenMatrix(m, "teacher", "student", "theta", [[1]], [[1.0]])
    msg = problems_of(m)
    assert "3 problems" in msg
    assert "xxmWithinMatrix: unknown level 'pupil'" in msg
    assert "unknown within matrix type 'zeta' at level 'student'" in msg
    assert "unknown between matrix type 'theta' from 'teacher' to 'student'" in msg


def test_matrix_shape_must_fit_the_level():
    m = base()
    xm.xxmWithinMatrix(m, "student", "kappa", [[1, 1]], [[0.0, 0.0]])
    msg = problems_of(m)
    assert "within matrix 'kappa' at level 'student': pattern= has shape (1, 2) but the " \
           "level's variables need (1, 1)" in msg


def test_pattern_value_label_shapes_must_agree():
    m = base()
    xm.xxmWithinMatrix(m, "student", "nu", [[1]], [[0.0], [1.0]], [["a"]])
    assert "value= has shape (2, 1)" in problems_of(m)
    m = base()
    xm.xxmWithinMatrix(m, "student", "nu", [[1]], [[0.0]], [["a", "b"]])
    assert "label= has shape (1, 2)" in problems_of(m)


def test_asymmetric_theta_or_psi():
    s, t = data()
    s["y2"] = s["y1"] * 2 + 1
    m = xm.xxmModel(["student", "teacher"])
    xm.xxmSubmodel(m, "student", parents=["teacher"], ys=["y1", "y2"], data=s)
    xm.xxmSubmodel(m, "teacher", data=t)
    xm.xxmWithinMatrix(m, "student", "theta", [[1, 1], [0, 1]], [[1, 0.2], [0.3, 1]],
                       [["a", "b"], ["c", "d"]])
    msg = problems_of(m)
    assert "within matrix 'theta' at level 'student': pattern= is not symmetric" in msg
    assert "value= is not symmetric" in msg
    assert "label= is not symmetric" in msg


def test_between_matrix_on_undeclared_link():
    m = base()
    xm.xxmBetweenMatrix(m, "student", "teacher", "lambda", [[1]], [[0.5]])
    msg = problems_of(m)
    assert "between matrix 'lambda' from 'student' to 'teacher' is on an undeclared link" in msg


def test_cycle_in_levels():
    s, t = data()
    t["student"] = 1
    m = base(s, t)
    xm.xxmSubmodel(m, "teacher", parents=["student"], etas=["u"], data=t)
    msg = problems_of(m)
    assert "cycle" in msg and "'teacher'" in msg
    assert "level 'teacher' was given a submodel twice" in msg


def test_unknown_parent_and_level_without_submodel():
    s, t = data()
    m = xm.xxmModel(["student", "teacher", "school"])
    xm.xxmSubmodel(m, "student", parents=["teacher", "district"], ys=["y1"], data=s)
    xm.xxmSubmodel(m, "teacher", etas=["u"], data=t)
    msg = problems_of(m)
    assert "level 'school' is declared in xxmModel(levels=...) but never given a submodel" in msg
    assert "level 'student' has unknown parent 'district'" in msg


def test_id_column_missing_or_duplicated():
    s, t = data()
    msg = problems_of(base(s.rename(columns={"student": "id"})))
    assert "data= of level 'student' has no ID column 'student'" in msg
    s.loc[1, "student"] = 1
    assert "ID column 'student' has duplicated IDs (first: 1)" in problems_of(base(s))


def test_child_row_with_unknown_parent():
    s, t = data()
    s.loc[0, "teacher"] = 99
    msg = problems_of(base(s))
    assert "1 row(s) point to 'teacher' IDs that are not in the data of level 'teacher' " \
           "(for example [99])" in msg


def test_missing_ids_and_covariates():
    s, t = data()
    s["teacher"] = s["teacher"].astype(float)
    s.loc[2, "teacher"] = np.nan
    s.loc[3, "x1"] = np.nan
    msg = problems_of(base(s))
    assert "parent ID column 'teacher' has 1 missing value(s)" in msg
    assert "covariate column 'x1' (xs=) has 1 missing value(s)" in msg
    s, t = data()
    s["student"] = s["student"].astype(float)
    s.loc[0, "student"] = np.nan
    assert "ID column 'student' has 1 missing value(s)" in problems_of(base(s))


def test_data_labels_checked():
    s, t = data()
    s.loc[0, "w"] = np.nan
    m = base(s)
    xm.xxmWithinMatrix(m, "student", "kappa", [[1]], [[0.0]], [["data.x1"]])
    xm.xxmBetweenMatrix(m, "teacher", "student", "kappa", [[0]], [[0.0]], [["data.nope"]])
    xm.xxmWithinMatrix(m, "student", "nu", [[0]], [[0.0]], [["data.w"]])
    xm.xxmWithinMatrix(m, "teacher", "alpha", [[1]], [[0.0]])
    msg = problems_of(m)
    assert "is labelled 'data.x1' but is free" in msg
    assert "between matrix 'kappa' from 'teacher' to 'student'" in msg
    # teacher has no xs, so that kappa has the wrong shape before labels are read
    assert "labelled 'data.w' but column 'w' of level 'student' is not numeric or has " \
           "missing values" in msg


def test_data_label_naming_absent_column_and_in_theta():
    m = base(theta=False)
    xm.xxmWithinMatrix(m, "student", "theta", [[0]], [[1.0]], [["data.x1"]])
    xm.xxmWithinMatrix(m, "student", "nu", [[0]], [[0.0]], [["data.nope"]])
    msg = problems_of(m)
    assert "data-valued elements are not allowed in theta or psi" in msg
    assert "labelled 'data.nope' but level 'student' has no data column 'nope'" in msg


def test_non_numeric_ys():
    s, t = data()
    s["y1"] = ["a", "b", "c", "d", "e", "f"]
    msg = problems_of(base(s))
    assert "column 'y1' (ys=) has dtype" in msg and "expected numbers (float or int)" in msg


def test_no_free_parameter():
    m = xm.xxmModel(["student", "teacher"])
    s, t = data()
    xm.xxmSubmodel(m, "student", parents=["teacher"], ys=["y1"], data=s)
    xm.xxmSubmodel(m, "teacher", data=t)
    xm.xxmWithinMatrix(m, "student", "theta", [[0]], [[1.0]])
    assert "the model has no free parameter" in problems_of(m)


def test_start_values_not_positive_definite():
    m = base(theta=False)
    msg = problems_of(m)
    assert "theta at level 'student' is not positive definite at the start values (it was " \
           "never given, so it is all zeros)" in msg
    s, t = data()
    s["y2"] = s["y1"] + 1
    m = xm.xxmModel(["student", "teacher"])
    xm.xxmSubmodel(m, "student", parents=["teacher"], ys=["y1", "y2"], data=s)
    xm.xxmSubmodel(m, "teacher", etas=["u"], data=t)
    xm.xxmWithinMatrix(m, "student", "theta", np.ones((2, 2)), [[1, 2], [2, 1]])
    xm.xxmWithinMatrix(m, "teacher", "psi", [[1]], [[-1.0]])
    msg = problems_of(m)
    assert "theta at level 'student' is not positive definite at the start values;" in msg
    assert "psi at level 'teacher' is not positive definite" in msg


def test_matrix_added_twice_and_bad_pattern_values():
    m = base()
    xm.xxmWithinMatrix(m, "student", "theta", [[1]], [[2.0]])
    xm.xxmWithinMatrix(m, "student", "nu", [[2]], [[0.0]])
    msg = problems_of(m)
    assert "within matrix 'theta' at level 'student' was added twice" in msg
    assert "pattern= must hold only 0 (fixed) and 1 (free)" in msg


def test_beta_diagonal_must_be_zero():
    m = base()
    xm.xxmWithinMatrix(m, "teacher", "beta", [[1]], [[0.0]])
    assert "the diagonal must be fixed at 0" in problems_of(m)


def test_api_type_errors_name_the_function():
    with pytest.raises(TypeError, match="xxmRun: model= must be the object returned by "
                                        "xxmModel"):
        xm.xxmRun("not a model")
    with pytest.raises(ValueError, match="xxmModel: levels= must be a non-empty list of unique"):
        xm.xxmModel(["a", "a"])


def test_summary_before_fit_is_a_clear_error():
    with pytest.raises(RuntimeError, match="xxmSummary: the model has not been fitted"):
        xm.xxmSummary(base())


def test_fast_checks_of_missing_values_and_parent_ids():
    """validate's _has_missing and spec/ids.id_positions (a range check for consecutive
    integer IDs) agree with pandas' isna and isin on integers, floats, nullable and
    string IDs."""
    from xxmpy.spec.ids import id_positions
    from xxmpy.spec.validate import _has_missing
    for values in ([1, 2, 3], [1.0, np.nan], pd.array([1, None], dtype="Int64"),
                   ["a", None], ["a", "b"], [1.5, 2.5]):
        col = pd.Series(values)
        assert _has_missing(col) == bool(col.isna().any())
    for ids, values in ((pd.Index([0, 1, 2]), [0, 2, 3, -1]), (pd.Index([4, 5, 7]), [5, 6]),
                        (pd.Index(["a", "b"]), ["b", "c"]), (pd.Index([0, 1]), [0.0, 1.5])):
        col = pd.Series(values)
        np.testing.assert_array_equal(id_positions(ids, col) < 0, ~pd.Index(col).isin(ids))
