"""Identical leaf siblings collapsed to sufficient statistics == row-by-row evaluation.

The Helmert collapse (xxmpy/collapse.py) is exact, so deviance and gradient
must agree with the uncollapsed engine to rounding (1e-10 relative) at random
parameters; the uncollapsed engine is itself checked against the dense oracle
(test_oracle.py).
"""
import numpy as np
import pandas as pd
import pytest

import factories
import reference_models as ref
import xxmpy as xm
from xxmpy.likelihood import deviance_and_gradient, reduced


def two_factor_leaf(seed=3, missing=0.15):
    """Students (3 ys, 2 etas with f2 <- f1) in classes (1 eta) in schools (1 eta), missing ys."""
    rng = np.random.default_rng(seed)
    n_sch, per_cls, per_stu = 3, 4, 6
    cls = pd.DataFrame({"klass": [f"c{k}" for k in range(n_sch * per_cls)],
                        "school": np.repeat([f"s{k}" for k in range(n_sch)], per_cls)})
    n = len(cls) * per_stu
    stu = pd.DataFrame({"student": np.arange(n), "klass": np.repeat(cls.klass, per_stu),
                        "school": np.repeat(cls.school.to_numpy(), per_stu)})
    for k in range(3):
        stu[f"y{k}"] = rng.normal(size=n)
    stu.loc[rng.random(n) < missing, "y1"] = np.nan
    stu.loc[rng.random(n) < missing, "y2"] = np.nan
    m = xm.Model(["student", "klass", "school"])
    m.level("student", parents=["klass", "school"], ys=["y0", "y1", "y2"], etas=["f1", "f2"],
            data=stu)
    m.level("klass", parents=["school"], etas=["g"], data=cls)
    m.level("school", etas=["h"], data=pd.DataFrame({"school": [f"s{k}" for k in range(n_sch)]}))
    m.within("student", "lambda", [[0, 0], [1, 0], [0, 1]], [[1, 0], [0.8, 0], [0, 1]])
    m.within("student", "beta", [[0, 0], [1, 0]], [[0, 0], [0.3, 0]])
    m.within("student", "theta", np.ones((3, 3)), np.eye(3) + 0.1)
    m.within("student", "psi", np.eye(2), np.eye(2))
    m.within("student", "nu", np.ones((3, 1)), np.zeros((3, 1)))
    m.within("student", "alpha", [[0], [1]], [[0], [0.1]])
    m.within("klass", "psi", [[1]], [[0.5]])
    m.within("school", "psi", [[1]], [[0.4]])
    m.between("klass", "student", "lambda", [[0], [1], [1]], [[1], [0.5], [0.5]])
    m.between("school", "student", "lambda", [[0], [0], [0]], [[1], [1], [1]])
    m.between("school", "klass", "beta", [[1]], [[0.2]])
    return m


COLLAPSIBLE = [two_factor_leaf, ref.one_way, ref.pastes, ref.brim]


@pytest.mark.parametrize("factory", COLLAPSIBLE, ids=lambda f: f.__name__)
def test_collapse_is_exact(factory):
    problem = factory().compile()
    red = reduced(problem)
    assert red is not None
    leaf = red.contrasts[0].level
    assert red.problem.levels[leaf].n < problem.levels[leaf].n
    rows = factory().compile()
    rows._collapsed = False
    rng = np.random.default_rng(17)
    for _ in range(3):
        theta = factories.random_theta(problem, rng)
        f_c, g_c = deviance_and_gradient(problem, theta)
        f_r, g_r = deviance_and_gradient(rows, theta)
        assert np.isfinite(f_c) and f_c == pytest.approx(f_r, rel=1e-10)
        np.testing.assert_allclose(g_c, g_r, rtol=1e-8, atol=1e-10 * np.abs(g_r).max())


def test_groups_split_by_missing_pattern():
    problem = two_factor_leaf().compile()
    red = reduced(problem)
    leaf = problem.levels[0]
    keys = {(k, p, q) for k, p, q in zip(leaf.parent_units[0], leaf.parent_units[1],
                                          leaf.pattern_of)}
    assert red.problem.levels[0].n == len(keys)
    assert red.problem.levels[0].weight.sum() == leaf.n


@pytest.mark.parametrize("factory", [ref.sleepstudy, factories.three_level, ref.penicillin],
                         ids=lambda f: f.__name__)
def test_levels_that_are_not_exchangeable_are_left_alone(factory):
    # sleepstudy: data.Days loading; three_level: student covariates;
    # Penicillin: every (plate, sample) cell holds one row
    assert reduced(factory().compile()) is None
