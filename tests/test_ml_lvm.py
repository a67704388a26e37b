"""psychonetrics' ml_lvm family (xxmpy/families/ml_lvm.py) on its documentation example.

References: [psychonetrics] the ml_lvm documentation example (data generated with
its code: tests/data/psychonetrics_ml_lvm.csv, 10 per cluster, and _18.csv): chisq
15.92 on 20 df (p 0.72, CFI 1.0), the between latent covariance about
[[0.89, -0.14], [-0.14, 0.76]] and the within one about [[0.95, 0.03], [0.03, 1.00]];
chisq 26.557 with 18 per cluster. [lavaan] 0.6-14 on the same data and model
(tests/data/r/psychonetrics_ml_lvm.R, .out): log L. The explicit xxM model of
test_fit_measures.py (the same model written by hand).
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import reference_models as ref
import xxmpy as xm
from test_fit_measures import ML_LVM, psychonetrics_ml_lvm

LAMBDA = np.zeros((6, 2))
LAMBDA[:3, 0] = LAMBDA[3:, 1] = 1


def data(per_cluster=10):
    name = "psychonetrics_ml_lvm.csv" if per_cluster == 10 else "psychonetrics_ml_lvm_18.csv"
    return pd.read_csv(ref.DATA / name)


@pytest.mark.parametrize("family", [xm.ml_lvm, xm.ml_lnm, xm.ml_rnm, xm.ml_lrnm],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("per_cluster", [10, 18])
def test_every_family_member_reproduces_the_documented_fit(family, per_cluster):
    """The wrappers' networks are saturated (2 x 2 latent) or empty (residuals, as
    psychonetrics starts them), so all four are the same model: the same chi-square."""
    fit = family(data(per_cluster), LAMBDA, "cluster")
    assert fit.converged
    fm = fit.fit_measures()
    expected = ML_LVM[per_cluster]
    assert (fm["npar"], fm["df"]) == (28, 20)
    assert fm["logl"] == pytest.approx(expected["logl"], abs=1e-4)
    assert round(fm["chisq"], 2 if per_cluster == 10 else 3) == \
        {10: 15.92, 18: 26.557}[per_cluster]                         # psychonetrics' print
    for key in ("pvalue", "cfi", "rmsea"):
        assert fm[key] == pytest.approx(expected[key], abs=1e-4), key


def test_latent_covariances_match_the_documentation_and_the_explicit_model():
    fit = xm.ml_lvm(data(), LAMBDA, "cluster")
    theta = fit.record.estimate
    between = fit.problem.matrix(theta, (1, -1, "psi"), (8, 8))[:2, :2]
    within = fit.problem.matrix(theta, (0, -1, "psi"), (2, 2))
    np.testing.assert_allclose(between, [[0.89, -0.14], [-0.14, 0.76]], atol=0.006)
    np.testing.assert_allclose(within, [[0.95, 0.03], [0.03, 1.00]], atol=0.006)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xm.XxmWarning)
        explicit = psychonetrics_ml_lvm(10).fit(start="auto")
    assert fit.deviance == pytest.approx(explicit.deviance, abs=1e-6)


def test_a_latent_network_model_and_its_pruning():
    """ml_lnm: both latent blocks are 2 x 2 networks; their one edge each is the partial
    (here plain) correlation of the factors. prune at 0.01 removes both (p 0.62 and
    0.32) and records the likelihood-ratio test of the step."""
    lnm = xm.ml_lnm(data(), LAMBDA, "cluster")
    within = lnm.network("row", "psi")
    est = lnm.record.estimate
    psi = lnm.problem.matrix(est, (0, -1, "psi"), (2, 2))
    assert within.loc["F1", "F2"] == pytest.approx(psi[0, 1] / np.sqrt(psi[0, 0] * psi[1, 1]),
                                                   abs=1e-8)
    pruned = xm.prune(lnm, alpha=0.01)
    assert pruned.steps.changed.iloc[1] == "row_psi_2_1, cluster_psi_2_1"
    step = pruned.steps.iloc[1]
    assert step.df == 2 and 0 < step.chisq < 5.99
    assert pruned.fit.network("cluster", "psi").loc["F1", "F2"] == 0.0


def test_ml_lvm_input_errors_say_what_to_fix():
    d = data()
    with pytest.raises(ValueError, match="cluster='school' is not a column"):
        xm.ml_lvm(d, LAMBDA, "school")
    with pytest.raises(ValueError, match="one row per variable"):
        xm.ml_lvm(d, LAMBDA[:5], "cluster")
    with pytest.raises(ValueError, match="between_latent='network' is not one of"):
        xm.ml_lvm(d, LAMBDA, "cluster", between_latent="network")
