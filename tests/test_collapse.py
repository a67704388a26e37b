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
from xxmpy.spec import validate
from xxmpy.compile import compile_problem
from xxmpy.engine import deviance_and_gradient
from xxmpy.lmm.design import build_design
from xxmpy.lmm.to_xxm import build_model
from twin_check import assert_compiled_matches_twin


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


def assert_collapsed_equals_rows(factory, seed, grad_rtol, grad_atol):
    """At 3 random parameters, deviance (1e-10) and gradient of the collapsed problem
    equal the row-by-row ones; returns (problem, its reduction)."""
    model = factory()
    problem = model.compile()
    red = problem.form
    assert red.collapsed
    rows = compile_problem(validate(model.spec), collapse_units=False)
    assert not rows.form.collapsed
    rng = np.random.default_rng(seed)
    for _ in range(3):
        theta = factories.random_theta(problem, rng)
        f_c, g_c = deviance_and_gradient(problem, theta)
        f_r, g_r = deviance_and_gradient(rows, theta)
        assert np.isfinite(f_c) and f_c == pytest.approx(f_r, rel=1e-10)
        np.testing.assert_allclose(g_c, g_r, rtol=grad_rtol, atol=grad_atol * np.abs(g_r).max())
    return problem, red


@pytest.mark.parametrize("factory", COLLAPSIBLE, ids=lambda f: f.__name__)
def test_collapse_is_exact(factory):
    problem, red = assert_collapsed_equals_rows(factory, 17, 1e-8, 1e-10)
    leaf = red.contrasts[0].level
    assert red.units.levels[leaf].n < problem.levels[leaf].n


def test_groups_split_by_missing_pattern():
    problem = two_factor_leaf().compile()
    red = problem.form
    leaf = problem.levels[0]
    keys = {(k, p, q) for k, p, q in zip(leaf.parent_units[0], leaf.parent_units[1],
                                          leaf.pattern_of)}
    assert red.units.levels[0].n == len(keys)
    assert red.units.levels[0].weight.sum() == leaf.n


@pytest.mark.parametrize("factory", [factories.three_level, ref.penicillin],
                         ids=lambda f: f.__name__)
def test_levels_that_cannot_gain_are_left_alone(factory):
    # three_level: the students have etas and covariates (neither collapse applies);
    # Penicillin: every (plate, sample) cell holds one row
    assert not factory().compile().form.collapsed


# ----------------------------------------------------------------- moment collapse
def covariates_and_missing(seed=8, missing=0.2):
    """Two ys with own covariates (kappa), a data.-valued slope, missing ys, two parents."""
    rng = np.random.default_rng(seed)
    cls = pd.DataFrame({"klass": range(8), "school": np.repeat(range(4), 2)})
    n = 8 * 12
    stu = pd.DataFrame({"student": range(n), "klass": np.repeat(range(8), 12),
                        "x1": rng.normal(size=n), "x2": rng.normal(size=n),
                        "t": rng.normal(size=n), "y1": rng.normal(size=n),
                        "y2": rng.normal(size=n)})
    stu["school"] = cls.school.to_numpy()[stu.klass]
    stu.loc[rng.random(n) < missing, "y2"] = np.nan
    stu.loc[rng.random(n) < missing / 2, "y1"] = np.nan
    m = xm.Model(["student", "klass", "school"])
    m.level("student", parents=["klass", "school"], ys=["y1", "y2"], xs=["x1", "x2"], data=stu)
    m.level("klass", parents=["school"], etas=["a", "b"], data=cls)
    m.level("school", xs=[], etas=["s"], data=pd.DataFrame({"school": range(4)}))
    m.within("student", "theta", np.ones((2, 2)), [[1.0, 0.2], [0.2, 1.0]])
    m.within("student", "nu", np.ones((2, 1)), np.zeros((2, 1)))
    m.within("student", "kappa", [[1, 0], [1, 1]], [[0.1, 0], [0.2, -0.1]])
    m.within("klass", "psi", np.ones((2, 2)), [[0.5, 0.1], [0.1, 0.3]])
    m.within("school", "psi", [[1]], [[0.4]])
    m.between("klass", "student", "lambda", [[0, 0], [1, 0]], [[1, 0], [0.6, 0]],
              [[None, "data.t"], [None, None]])
    m.between("school", "student", "lambda", [[0], [1]], [[1], [0.5]])
    return m


def lmer_reml_sleepstudy():
    """xm.lmer's REML model: the flat '(fixed)' level loads the observations via data. columns."""
    sleep = pd.read_csv(ref.DATA / "sleepstudy.csv")
    return build_model(build_design("Reaction ~ Days + (Days | Subject)", sleep), reml=True)


def many_covariates_and_missing(seed=9, missing=0.2, levels=12):
    """Two ys on a 12-level factor's dummies and a covariate (kappa), a data. slope and
    missing ys, in classes of 12 and schools: u = [1, t, 13 xs, 2 ys] is wider than
    the groups, so the collapse splits it (the xs projected on [1, t, ys] per group,
    the rest carried by one group per missing pattern)."""
    m = covariates_and_missing(seed, missing)
    stu = m.spec.submodels["student"].data
    rng = np.random.default_rng(seed)
    level_of = rng.integers(0, levels, len(stu))
    dummies = [f"d{k}" for k in range(1, levels)]
    for k, name in enumerate(dummies, start=1):
        stu[name] = (level_of == k).astype(float)
    m.spec.submodels["student"].xs = ["x1", "x2"] + dummies
    m.spec.matrices = [mat for mat in m.spec.matrices if mat.type != "kappa"]
    q = 2 + len(dummies)
    m.within("student", "kappa", np.ones((2, q)), rng.normal(0, 0.1, (2, q)))
    return m


def lmer_many_fixed(reml):
    """xm.lmer's model of y ~ x + C(f) + (x | g) with a 20-level factor: REML's flat level
    or ML's kappa on 21 X columns, groups of 25 rows (the split collapse)."""
    rng = np.random.default_rng(17)
    n, groups = 750, 30
    g, f, x = np.repeat(np.arange(groups), n // groups), rng.integers(0, 20, n), \
        rng.normal(size=n)
    y = 1 + 0.5 * x + rng.normal(0, 0.3, 20)[f] + rng.normal(0, 0.7, groups)[g] + \
        rng.normal(size=n)
    data = pd.DataFrame(dict(y=y, x=x, f=f, g=g))
    return build_model(build_design("y ~ x + C(f) + (x | g)", data), reml=reml)


def lmer_reml_many_fixed():
    return lmer_many_fixed(True)


def lmer_ml_many_fixed():
    return lmer_many_fixed(False)


MOMENT = [ref.sleepstudy, factories.random_slopes, covariates_and_missing, lmer_reml_sleepstudy,
          many_covariates_and_missing, lmer_reml_many_fixed, lmer_ml_many_fixed]


@pytest.mark.parametrize("factory", MOMENT, ids=lambda f: f.__name__)
def test_moment_collapse_is_exact(factory):
    problem, red = assert_collapsed_equals_rows(factory, 23, 1e-7, 1e-9)
    leaf = red.contrasts[0].level
    assert red.units.levels[leaf].n <= 0.75 * problem.levels[leaf].n
    assert red.units.levels[leaf].weight.sum() == pytest.approx(problem.levels[leaf].n)


def test_moment_collapse_keeps_small_groups_and_fits_the_same():
    # sleepstudy: 18 subjects x 10 days, u = (1, Days, Reaction): 3 pseudo-units a subject
    problem = ref.sleepstudy().compile()
    assert problem.form.units.levels[0].n == 18 * 3
    # a group no larger than r stays as its own rows (weight 1)
    m = factories.random_slopes()
    red = m.compile().form.units.levels[0]
    sizes = np.bincount(m.compile().levels[0].parent_units[0])
    assert red.n == 3 * np.sum(sizes > 3) + sizes[sizes <= 3].sum()
    assert np.sum(red.weight == 1.0) >= sizes[sizes <= 3].sum()
    # and the fit is the uncollapsed fit (sleepstudy ML -2LL 1751.9393, lme4)
    fit = ref.sleepstudy().fit()
    assert fit.deviance == pytest.approx(1751.93934, abs=1e-4)


def test_a_level_wider_than_its_groups_is_split():
    """REML's 21 fixed effects share one parent unit: per group of 25 rows u = [1, x, the
    20 X columns that are data (the intercept's loading is a fixed 1), y] (23 wide;
    22 once the X column x, the random slope's loading too, is kept once) would give
    22 pseudo-units, so the X columns are projected on v = [1, x, y] instead: 3 per
    group, and the one carrier group 22 (it holds the projections' remainder); -2 log
    L as row by row (test_moment_collapse_is_exact)."""
    problem = lmer_reml_many_fixed().compile()
    leaf = problem.form.units.levels[0]
    assert leaf.n == 3 * 29 + 22
    assert leaf.weight.sum() == pytest.approx(750)


def _sleepstudy_with_nu(shift):
    """sleepstudy with its intercept in the observations' nu and Reaction shifted."""
    df = pd.read_csv(ref.DATA / "sleepstudy.csv")
    df.insert(0, "obs", np.arange(len(df)))
    df["Reaction"] += shift
    return (xm.Model(["obs", "Subject_id"])
            .level("obs", parents=["Subject_id"], ys=["Reaction"], data=df)
            .level("Subject_id", etas=["b0", "b1"],
                   data=pd.DataFrame({"Subject_id": sorted(df.Subject_id.unique())}))
            .within("obs", "nu", [[1]], [[250.0 + shift]], [["intercept"]])
            .within("obs", "theta", [[1]], [[500.0]], [["residual"]])
            .within("Subject_id", "psi", np.ones((2, 2)), [[500.0, 0.0], [0.0, 20.0]])
            .within("Subject_id", "alpha", [[0], [1]], [[0.0], [10.0]], [[None], ["Days"]])
            .between("Subject_id", "obs", "lambda", [[0, 0]], [[1.0, 0.0]],
                     [[None, "data.Days"]]))


def test_moment_collapse_keeps_its_digits_when_the_data_have_a_large_mean():
    # moments are taken about each group's mean: raw moments of Reaction + 1e6 would
    # lose ~1e12 x eps of the residual sum of squares. With the intercept in nu the
    # row-by-row evaluation subtracts it exactly, and so must the collapse
    # (sleepstudy ML -2LL 1751.9393, lme4)
    fit = _sleepstudy_with_nu(0.0).fit()
    assert fit.deviance == pytest.approx(1751.9393, abs=1e-4)
    problem = _sleepstudy_with_nu(1e6).compile()
    assert problem.form.collapsed
    theta = fit.record.estimate.copy()
    theta[fit.labels.index("intercept")] += 1e6
    assert deviance_and_gradient(problem, theta)[0] == pytest.approx(fit.deviance, abs=1e-7)


def test_shared_design_terms_grouped_by_pattern_match_twin(monkeypatch):
    """The driver forms A' W_k A and the gradient's W_k (E_k + A S_k A') W_k once per
    missing pattern when every unit shares A (engine/_elimination accumulate_shared_c,
    term_gradient_shared_c): checked where units of one pattern carry different
    weights and several patterns interleave."""
    problem = two_factor_leaf().compile()
    shared = [t for terms in problem.form.plan.levels.values() for t in terms
              if t.a_data_pos is None and t.X.shape[0]]
    assert any(len(t.patterns) >= 4 and len(np.unique(t.wt)) >= 4
               and np.any(np.diff(t.pat) < 0) for t in shared)
    for seed in (41, 42, 43):
        theta = factories.random_theta(problem, np.random.default_rng(seed))
        assert_compiled_matches_twin(problem, theta, monkeypatch)


@pytest.mark.parametrize("factory", COLLAPSIBLE + MOMENT, ids=lambda f: f.__name__)
def test_collapsed_problems_compiled_match_twin(factory, monkeypatch):
    """The driver's pooled contrasts (latent ones with a beta and missing ys included)
    and weighted pseudo-units vs the numpy path."""
    problem = factory().compile()
    assert problem.form.collapsed
    theta = factories.random_theta(problem, np.random.default_rng(31))
    assert_compiled_matches_twin(problem, theta, monkeypatch)


def test_moment_square_roots_by_cholesky_or_eigen_reproduce_every_moment():
    """Each group's square root S'S = M: the Cholesky factor where every pivot is clear,
    the eigen-decomposition where a column is constant (exact zeros), duplicated
    (rank deficient: the rounding eigenvalue dropped) or scaled by 1e8 beside a dummy;
    and the projected rows P'P = M in the v rows and M_xv M_vv^+ M_vx in the x block."""
    from xxmpy.compile.collapse import _Roots, _projected_roots, _square_roots
    rng = np.random.default_rng(3)
    U = []
    for kind in ("clear", "constant", "duplicated", "scaled"):
        u = np.column_stack([np.ones(12), rng.normal(size=12), rng.normal(size=12),
                             rng.normal(size=12)])
        if kind == "constant":
            u[:, 1] = 0.0
        if kind == "duplicated":
            u[:, 2] = u[:, 1]
        if kind == "scaled":
            u[:, 3] = 3e7 + 1e8 * u[:, 3]
        U.append(u)
    M = np.stack([u.T @ u for u in U])
    roots = _Roots(M)
    assert roots.clear.tolist() == [True, False, False, True]
    S = _square_roots(M)
    for g in range(4):
        scale = np.sqrt(np.outer(np.diag(M[g]), np.diag(M[g]))) + 1e-300
        np.testing.assert_allclose((S[g].T @ S[g]) / scale, M[g] / scale, atol=1e-12)
    assert np.all(S[1][:, 1] == 0.0)
    shared = np.array([False, False, True, True])       # x: the last two columns
    P = _projected_roots(M[:, :2, :], shared)
    for g in range(4):
        v, x = ~shared, shared
        PP = P[g].T @ P[g]
        Mvv = M[g][np.ix_(v, v)]
        want_xx = M[g][np.ix_(x, v)] @ np.linalg.pinv(Mvv) @ M[g][np.ix_(v, x)]
        np.testing.assert_allclose(PP[np.ix_(v, v)], Mvv, rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(PP[np.ix_(v, x)], M[g][np.ix_(v, x)], rtol=1e-10,
                                   atol=1e-9 * np.abs(M[g]).max())
        np.testing.assert_allclose(PP[np.ix_(x, x)], want_xx, rtol=1e-9,
                                   atol=1e-9 * np.abs(M[g]).max())


def test_group_sums_over_runs_equal_the_bincount_sums():
    """Rows that come group by group are summed by one reduceat over their runs; any
    other order (or a group with no rows) by bincounts: the same sums."""
    from xxmpy.compile.grouping import group_runs, group_sums
    rng = np.random.default_rng(4)
    group = np.repeat(np.arange(6), [3, 1, 4, 2, 5, 1])
    U = rng.normal(size=(group.size, 3))
    runs = group_runs(group, 6)
    assert runs is not None and runs.size == 6
    np.testing.assert_allclose(group_sums(U, group, 6, runs), group_sums(U, group, 6))
    np.testing.assert_allclose(group_sums(U[:, 1], group, 6, runs),
                               np.bincount(group, U[:, 1], minlength=6))
    shuffled = rng.permutation(group)
    assert group_runs(shuffled, 6) is None
    assert group_runs(group, 7) is None                   # group 6 has no rows
    assert group_runs(group[group != 0] - 1, 5) is not None


def test_a_column_equal_to_another_is_collapsed_once():
    """y ~ Days + (Days | Subject) under REML: Days loads the flat fixed effects (shared
    by every group) and the random slopes. Its two copies have the same moments, so u
    = [1, Days, y] and every group of more than 3 rows takes 3 pseudo-units (no
    carrier); the data of both copies are the pseudo-units' Days; -2 log L as row by
    row (test_moment_collapse_is_exact, lmer_reml_sleepstudy)."""
    problem = lmer_reml_sleepstudy().compile()
    leaf = problem.form.units.levels[0]
    sizes = np.bincount(problem.levels[0].parent_units[0])
    assert leaf.n == 3 * np.sum(sizes > 3) + sizes[sizes <= 3].sum()
    loads = [m.data for key, m in problem.form.units.matrices.items()
             if key[0] == 0 and m.data.shape[1]]
    assert len(loads) == 2
    np.testing.assert_array_equal(loads[0], loads[1])


def test_fast_paths_of_unique_rows_and_parent_positions():
    """unique_rows with one varying column holding every code is that column (others
    0), as the general path finds it; spec/ids.id_positions subtracts for consecutive
    integer IDs and hashes otherwise, as get_indexer does (absent IDs -1)."""
    from xxmpy.compile.problem import unique_rows
    from xxmpy.spec.ids import id_positions
    col = np.array([0, 0, 1, 2, 2, 1, 3], dtype=np.intp)
    zero = np.zeros_like(col)
    keys, group = unique_rows([col, zero])
    want_keys, want_group = np.unique(np.column_stack([col, zero]), axis=0,
                                      return_inverse=True)
    np.testing.assert_array_equal(keys, want_keys)
    np.testing.assert_array_equal(group, want_group.ravel())
    gap = np.array([0, 2, 2], dtype=np.intp)                # code 1 absent: general path
    keys, group = unique_rows([gap])
    np.testing.assert_array_equal(keys[:, 0], [0, 2])
    np.testing.assert_array_equal(group, [0, 1, 1])
    for index, values in ((pd.Index([5, 6, 7, 8]), [8, 5, 9, 4, 6]),
                          (pd.Index([5, 7, 8, 9]), [8, 5, 9, 6]),
                          (pd.Index(["a", "b"]), ["b", "c"]),
                          (pd.Index([0, 1, 2]), [0.0, 2.0])):
        column = pd.Series(values)
        np.testing.assert_array_equal(id_positions(index, column),
                                      index.get_indexer(column))


def test_distinct_codes_of_the_elimination_plan_are_np_unique():
    """schedule._distinct (sorted distinct fill-pair codes: from where they change when in
    order, else after a sort) equals np.unique, in order or not, wide or narrow."""
    from xxmpy.compile.schedule import _distinct
    rng = np.random.default_rng(4)
    for codes in (rng.integers(0, 10 ** 9, 5000), rng.integers(0, 30, 5000),
                  np.sort(rng.integers(0, 50, 400)), np.array([7]), np.zeros(0, np.int64)):
        np.testing.assert_array_equal(_distinct(codes), np.unique(codes))
