"""Covariance matrices in network (GGM), precision and Cholesky form (compile/forms.py).

References: the same model with the matrix in covariance form (the saturated forms
reparametrise it: the same -2 log L at the optimum, and the closed forms
Omega = -cov2cor(Sigma^-1) off the diagonal, K = Sigma^-1, L L' = Sigma); an absent
edge (Omega_ij fixed 0) against the precision form with K_ij fixed 0 (the same
constraint, another parametrisation); central differences of -2 log L for the
chain-rule gradient.
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import factories
import xxmpy as xm
from test_gradient import central_differences
from xxmpy.engine import deviance_and_gradient

FORMS = ("ggm", "prec", "chol")


def _data(seed=1, n_g=60, per=8):
    """Three ys in groups: a within network y1 - y2 - y3 (no y1 - y3 edge), group means."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_g), per)
    K = np.array([[1.0, -0.4, 0.0], [-0.4, 1.0, -0.3], [0.0, -0.3, 1.0]])
    y = rng.multivariate_normal(np.zeros(3), np.linalg.inv(K), n_g * per) \
        + rng.normal(0, 0.5, (n_g, 3))[g] + [1.0, 2.0, 3.0]
    df = pd.DataFrame(y, columns=["y1", "y2", "y3"])
    df["obs"], df["g"] = np.arange(len(df)), g
    return df, n_g


def two_level(within="cov", between="cov", within_pattern=None, frame=None,
              between_pattern=None):
    df, n_g = _data() if frame is None else frame
    m = xm.Model(["obs", "g"])
    m.level("obs", parents=["g"], ys=["y1", "y2", "y3"], data=df)
    m.level("g", etas=["b1", "b2", "b3"], data=pd.DataFrame({"g": np.arange(n_g)}))
    pattern = np.ones((3, 3)) if within_pattern is None else within_pattern
    m.within("obs", "theta", pattern, np.eye(3), form=within)
    m.within("obs", "nu", np.ones((3, 1)), np.zeros((3, 1)))
    m.within("g", "psi", np.ones((3, 3)) if between_pattern is None else between_pattern,
             np.eye(3) * (0.3 if between == "cov" else 0.5), form=between)
    m.between("g", "obs", "lambda", np.zeros((3, 3)), np.eye(3))
    return m


def _sigma(fit, key):
    return fit.problem.matrix(fit.record.estimate, key, (3, 3))


def _raw(fit, index=0):
    block = fit.problem.forms.blocks[index]
    return block.raw(fit.record.estimate)


@pytest.mark.parametrize("form", FORMS)
def test_a_saturated_form_is_the_covariance_model_reparametrised(form):
    cov = two_level().fit(start="auto")
    fit = two_level(within=form, between=form).fit(start="auto")
    assert cov.converged and fit.converged
    assert fit.deviance == pytest.approx(cov.deviance, abs=1e-6)
    for key, index in (((0, -1, "theta"), 0), ((1, -1, "psi"), 1)):
        S = _sigma(cov, key)
        np.testing.assert_allclose(_sigma(fit, key), S, rtol=1e-4, atol=1e-6)
        R = _raw(fit, index)
        if form == "ggm":
            P = np.linalg.inv(S)
            partial = -P / np.sqrt(np.outer(np.diag(P), np.diag(P)))
            off = ~np.eye(3, dtype=bool)
            np.testing.assert_allclose(R[off], partial[off], atol=1e-4)
        elif form == "prec":
            np.testing.assert_allclose(R, np.linalg.inv(S), rtol=1e-4, atol=1e-6)
        else:
            np.testing.assert_allclose(R, np.linalg.cholesky(S), rtol=1e-4, atol=1e-6)


def test_an_absent_edge_is_an_exact_zero_of_the_precision_matrix():
    """Omega_13 fixed 0 (a pruned network) and K_13 fixed 0 (the precision form) are
    one constraint: the same -2 log L, and the fitted precision has an exact 0."""
    pattern = np.ones((3, 3))
    pattern[0, 2] = pattern[2, 0] = 0
    ggm = two_level(within="ggm", within_pattern=pattern).fit(start="auto")
    prec = two_level(within="prec", within_pattern=pattern).fit(start="auto")
    full = two_level(within="ggm").fit(start="auto")
    assert ggm.converged and prec.converged
    assert ggm.deviance == pytest.approx(prec.deviance, abs=1e-6)
    assert ggm.deviance >= full.deviance - 1e-8
    K = np.linalg.inv(_sigma(ggm, (0, -1, "theta")))
    assert abs(K[0, 2]) < 1e-12 * np.abs(K).max()
    omega = ggm.network("obs")
    assert list(omega.index) == ["y1", "y2", "y3"] and omega.loc["y1", "y3"] == 0.0
    P = K / np.sqrt(np.outer(np.diag(K), np.diag(K)))
    np.testing.assert_allclose(omega.to_numpy()[~np.eye(3, dtype=bool)],
                               -P[~np.eye(3, dtype=bool)], atol=1e-8)
    with pytest.raises(ValueError, match="no psi at level 'g' written with form='ggm'"):
        ggm.network("g", "psi")
    assert ggm.labels == [lab for lab in full.labels if lab != "obs_theta_3_1"]


@pytest.mark.parametrize("form", FORMS)
def test_the_gradient_of_every_form_is_the_chain_rule(form):
    """Analytic gradient (engine gradient pulled back) vs central differences, at the
    start and at a random admissible point, forms at both levels."""
    problem = two_level(within=form, between=form).compile()
    rng = np.random.default_rng(3)
    for theta in (problem.params.start,
                  problem.params.start + 0.05 * rng.normal(size=problem.params.n)):
        f, g = deviance_and_gradient(problem, theta)
        assert np.isfinite(f)
        fd = central_differences(problem, theta)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6 * max(1.0, np.abs(fd).max()))


def test_an_inadmissible_network_is_refused_not_evaluated():
    """Omega with I - Omega not positive definite gives no covariance: +inf, NaNs."""
    problem = two_level(within="ggm").compile()
    theta = problem.params.start.copy()
    theta[problem.params.labels.index("obs_theta_2_1")] = 1.5
    f, g = deviance_and_gradient(problem, theta)
    assert f == np.inf and np.isnan(g).all()


def test_form_errors_name_the_matrix_and_the_fix():
    m = two_level()
    m.within("g", "alpha", np.ones((3, 1)), np.zeros((3, 1)))
    m.spec.matrices[-1].form = "ggm"
    m.spec.matrices[0].form = "network"
    with pytest.raises(xm.SpecificationError) as err:
        m.compile()
    text = str(err.value)
    assert "form='network' is not one of" in text
    assert "within matrix 'alpha' at level 'g': form='ggm' applies to theta and psi" in text


def test_profile_ci_of_a_partial_correlation_is_verified():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = two_level(within="ggm").fit(start="auto")
    ci = fit.profile_ci(parameters=["obs_theta_2_1"], n_jobs=1, progress=False)
    row = ci.estimates.iloc[0]
    assert (row.lower_status, row.upper_status) == ("ok", "ok")
    assert row.lower < row.estimate < row.upper
    assert ci.verified()


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("factory", [factories.crossed_bivariate, factories.three_level],
                         ids=lambda f: f.__name__)
def test_forms_at_every_level_nested_and_crossed_have_the_chain_rule_gradient(factory, form):
    """Every theta and psi of a cross-classified and a three-level model in the form:
    the gradient against central differences at the start values."""
    m = factory()
    for mat in m.spec.matrices:
        if mat.type in ("theta", "psi") and np.asarray(mat.pattern).shape[0] >= 2:
            mat.form = form
            if form == "prec":       # a precision start: the covariance start's inverse
                mat.value = np.linalg.inv(np.asarray(mat.value, float))
            elif form in ("ggm", "chol"):
                value = np.asarray(mat.value, float)
                mat.value = np.diag(np.sqrt(np.diag(value))) if form == "ggm" \
                    else np.linalg.cholesky(value)
    problem = m.compile()
    assert problem.forms is not None and len(problem.forms.blocks) >= 2
    theta = problem.params.start
    f, g = deviance_and_gradient(problem, theta)
    assert np.isfinite(f)
    fd = central_differences(problem, theta)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6 * max(1.0, np.abs(fd).max()))


def test_the_modification_index_of_an_absent_edge_is_its_score_test():
    """Freeing an absent edge (Omega_13 fixed 0): the modification index is the score
    statistic, close to the likelihood-ratio statistic of the freed model, and the
    expected parameter change close to the freed estimate (what step-up search reads)."""
    pattern = np.ones((3, 3))
    pattern[0, 2] = pattern[2, 0] = 0
    pruned = two_level(within="ggm", within_pattern=pattern).fit(start="auto")
    full = two_level(within="ggm").fit(start="auto")
    mi = pruned.modification_indices().set_index("label").loc["obs_theta_3_1"]
    lr = pruned.deviance - full.deviance
    assert mi["mi"] == pytest.approx(lr, rel=0.01)
    omega_13 = _raw(full)[2, 0]
    assert mi["epc"] == pytest.approx(omega_13, rel=0.05)


def test_prune_removes_the_absent_edge_and_keeps_the_true_ones():
    """The simulated within network has edges y1-y2 and y2-y3 and none y1-y3: prune
    (alpha 0.01, Holm) fixes Omega_13 at 0 and keeps the others; the step records the
    likelihood-ratio test of the removal; the pruned model is the K_13 = 0 fit."""
    full = two_level(within="ggm").fit(start="auto")
    pruned = xm.prune(full, alpha=0.01, adjust="holm", recursive=True)
    assert pruned.fit.converged
    assert list(pruned.steps.changed) == ["", "obs_theta_3_1"]
    omega = pruned.fit.network("obs")
    assert omega.loc["y1", "y3"] == 0.0 and omega.loc["y1", "y2"] > 0.3
    step = pruned.steps.iloc[1]
    assert step.df == 1 and step.chisq == pytest.approx(pruned.fit.deviance - full.deviance)
    pattern = np.ones((3, 3))
    pattern[0, 2] = pattern[2, 0] = 0
    prec = two_level(within="prec", within_pattern=pattern).fit(start="auto")
    assert pruned.fit.deviance == pytest.approx(prec.deviance, abs=1e-6)


def test_p_value_adjustments_match_their_definitions():
    """[R 4.2.2] p.adjust(c(0.01, 0.04, 0.03, 0.2), m) for m in bonferroni, holm, BH
    printed 0.04 0.16 0.12 0.80 / 0.04 0.09 0.09 0.20 / 0.04 0.0533333 0.0533333 0.20."""
    from xxmpy.search.prune import adjusted
    p = [0.01, 0.04, 0.03, 0.2]
    np.testing.assert_allclose(adjusted(p, "bonferroni"), [0.04, 0.16, 0.12, 0.8])
    np.testing.assert_allclose(adjusted(p, "holm"), [0.04, 0.09, 0.09, 0.2])
    np.testing.assert_allclose(adjusted(p, "fdr"), [0.04, 0.0533333333, 0.0533333333, 0.2])
    with pytest.raises(ValueError, match="adjust= must be one of"):
        adjusted(p, "bh")


def test_one_form_per_variable_needs_zero_elements_across_forms():
    """form= as a list: the variables of one form are a block; an element joining two
    forms must be fixed at 0, and the list has one form per variable."""
    m = two_level()
    m.spec.matrices[0].form = ["ggm", "ggm", "cov"]
    with pytest.raises(xm.SpecificationError) as err:
        m.compile()
    assert "y3 (cov) and y1 (ggm) have different forms" in str(err.value)
    m.spec.matrices[0].form = ["ggm", "cov"]
    with pytest.raises(xm.SpecificationError, match="gives 2 forms for 3 variables"):
        m.compile()
    pattern = np.ones((3, 3))
    pattern[2, :2] = pattern[:2, 2] = 0
    blocks = two_level(within_pattern=pattern)
    blocks.spec.matrices[0].form = ["ggm", "ggm", "prec"]
    cov = two_level(within_pattern=pattern).fit(start="auto")
    fit = blocks.fit(start="auto")
    assert fit.deviance == pytest.approx(cov.deviance, abs=1e-6)
    assert list(fit.network("obs").index) == ["y1", "y2"]


def test_stepup_adds_the_true_edges_only_and_modelsearch_prunes_the_false_one():
    """From an empty within network, step-up frees y1-y2 then y2-y3 (each a significant
    likelihood-ratio gain and a better BIC) and stops before the absent y1-y3; from
    the full network, modelsearch prunes y1-y3 and adds nothing back."""
    empty = two_level(within="ggm", within_pattern=np.eye(3)).fit(start="auto")
    up = xm.stepup(empty, alpha=0.01)
    assert list(up.steps.action) == ["start", "stepup", "stepup"]
    assert list(up.steps.changed) == ["", "obs_theta_2_1", "obs_theta_3_2"]
    assert (up.steps.p.iloc[1:] < 0.01).all() and up.steps.bic.is_monotonic_decreasing
    assert up.fit.network("obs").loc["y1", "y3"] == 0.0
    table = up.compare()
    assert list(table.index) == ["step 0", "step 1", "step 2"]
    pattern = np.ones((3, 3))
    pattern[0, 2] = pattern[2, 0] = 0
    reference = two_level(within="ggm", within_pattern=pattern).fit(start="auto")
    assert up.fit.deviance == pytest.approx(reference.deviance, abs=1e-6)
    full = two_level(within="ggm").fit(start="auto")
    search = xm.modelsearch(full, alpha=0.01)
    assert list(search.steps.changed) == ["", "obs_theta_3_1"]
    assert search.fit.deviance == pytest.approx(reference.deviance, abs=1e-6)
    with pytest.raises(ValueError, match="criterion= must be one of"):
        xm.stepup(empty, criterion="ebic")


def test_a_pruned_network_matches_an_independent_dense_maximisation():
    """A tiny case (12 groups of 4, three ys, the y1-y3 edge absent, independent group
    intercepts): xxmpy's fit against scipy's BFGS on the dense oracle's -2 log L (the
    N x N covariance, numerical gradients), started from the data-based start values."""
    from scipy.optimize import minimize

    from dense_oracle import dense_deviance
    from xxmpy.fit.starts import auto_start
    frame = _data(seed=1, n_g=12, per=4)
    pattern = np.ones((3, 3))
    pattern[0, 2] = pattern[2, 0] = 0
    model = two_level(within="ggm", within_pattern=pattern, frame=frame,
                      between_pattern=np.eye(3))
    fit = model.fit(start="auto")
    problem = fit.problem

    def objective(theta):
        value = dense_deviance(problem, theta) if np.isfinite(
            deviance_and_gradient(problem, theta)[0]) else np.inf
        return value if np.isfinite(value) else 1e10
    start = auto_start(problem, model._checked)
    dense = minimize(objective, start, method="BFGS", options={"gtol": 1e-8, "maxiter": 5000})
    assert fit.converged and dense.fun == pytest.approx(fit.deviance, abs=1e-5)
    np.testing.assert_allclose(dense.x, fit.record.estimate, atol=2e-3)


def test_an_equality_constraint_on_two_edges_is_one_parameter():
    """Two edges with one label are one parameter: equal in the fitted network, and
    the fit lies between the free and the absent versions of the second edge."""
    label = np.full((3, 3), None, dtype=object)
    label[1, 0] = label[0, 1] = label[2, 1] = label[1, 2] = "edge"
    pattern = np.ones((3, 3))
    pattern[0, 2] = pattern[2, 0] = 0
    m = two_level(within="ggm", within_pattern=pattern)
    m.spec.matrices[0].label = label
    fit = m.fit(start="auto")
    omega = fit.network("obs")
    assert "edge" in fit.labels and fit.n_parameters == 13
    assert omega.loc["y1", "y2"] == omega.loc["y2", "y3"] != 0
    free = two_level(within="ggm", within_pattern=pattern).fit(start="auto")
    assert fit.deviance > free.deviance
    ci = fit.profile_ci(parameters="edge", n_jobs=1, progress=False)
    assert ci.verified()


@pytest.mark.parametrize("form", FORMS)
def test_a_singular_between_covariance_next_to_a_form_is_a_converged_singular_fit(form):
    """10 groups of 4: the between psi is singular at the optimum. With theta in any
    form (not a Cholesky block of the search) the fit is still judged on the singular
    face and reaches the covariance form's -2 log L (before: 'Hessian not positive
    definite' at the same point)."""
    frame = _data(seed=5, n_g=10, per=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xm.XxmWarning)
        cov = two_level(frame=frame).fit(start="auto")
        fit = two_level(within=form, frame=frame).fit(start="auto")
    assert cov.converged and fit.converged
    assert fit.record.status.startswith("converged (singular fit")
    assert fit.deviance == pytest.approx(cov.deviance, abs=1e-6)
