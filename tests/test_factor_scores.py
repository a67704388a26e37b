"""Factor scores (issue #19): each unit's posterior mean and SD of its etas, on every
level, nested and crossed, equal to the dense oracle's posterior at the estimates."""
import warnings

import numpy as np
import pytest

import factories
from dense_oracle import dense_posterior
import xxmpy as xm


@pytest.mark.parametrize("factory", [factories.three_level, factories.crossed_bivariate],
                         ids=lambda f: f.__name__)
def test_factor_scores_are_the_dense_posterior(factory):
    model = factory()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xm.XxmWarning)
        fit = model.fit()
    problem = fit.problem
    mean, cov = dense_posterior(problem, fit.record.estimate)
    scores = fit.factor_scores()
    offset = np.cumsum([0] + [lev.n * lev.n_etas for lev in problem.levels])
    assert set(scores) == {lev.name for lev in problem.levels if lev.n_etas}
    for k, lev in enumerate(problem.levels):
        if not lev.n_etas:
            continue
        table = scores[lev.name]
        etas = list(model.spec.submodels[lev.name].etas)
        assert list(table.index) == list(lev.ids) and table.index.name == lev.name
        rows = offset[k] + np.arange(lev.n * lev.n_etas).reshape(lev.n, lev.n_etas)
        np.testing.assert_allclose(table[etas].to_numpy(), mean[rows], rtol=1e-8, atol=1e-10)
        sd = np.sqrt(np.diagonal(cov[rows[:, :, None], rows[:, None, :]], axis1=1, axis2=2))
        np.testing.assert_allclose(table[[f"{e}_sd" for e in etas]].to_numpy(), sd,
                                   rtol=1e-8, atol=1e-10)


def test_factor_scores_of_a_level_without_etas_say_which_levels_have_them():
    model = factories.nested_bivariate()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xm.XxmWarning)
        fit = model.fit()
    without = [lev.name for lev in fit.problem.levels if not lev.n_etas]
    assert without, "the factory is meant to have a level without etas"
    with pytest.raises(ValueError, match="has no etas; levels with etas"):
        fit.factor_scores(without[0])
    with pytest.raises(ValueError, match="is not a level of the model"):
        fit.factor_scores("nowhere")
