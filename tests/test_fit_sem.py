"""Fits of non-LMM structures on data simulated from the model itself.

The truth is written below; estimates must land within 4 standard errors of
it, and the fitted -2 log L must be a stationary point of the dense oracle.
"""
import numpy as np
import pandas as pd
import pytest

import xxmpy as xm
from dense_oracle import dense_deviance

TRUTH = {"theta": [[0.5, 0.2], [0.2, 0.6]], "rater": [[0.8, 0.3], [0.3, 0.5]],
         "target": [[1.0, -0.2], [-0.2, 0.7]], "nu": [3.0, -1.0]}


def simulate_crossed(seed=2026, n_raters=30, n_targets=12, keep=0.8):
    rng = np.random.default_rng(seed)
    a = rng.multivariate_normal([0, 0], TRUTH["rater"], n_raters)
    b = rng.multivariate_normal([0, 0], TRUTH["target"], n_targets)
    pairs = [(r, t) for r in range(n_raters) for t in range(n_targets) if rng.random() < keep]
    r, t = np.array(pairs).T
    y = (np.array(TRUTH["nu"]) + a[r] + b[t]
         + rng.multivariate_normal([0, 0], TRUTH["theta"], len(r)))
    resp = pd.DataFrame({"response": np.arange(len(r)), "rater": r, "target": t,
                         "r1": y[:, 0], "r2": y[:, 1]})
    resp.loc[rng.random(len(r)) < 0.03, "r2"] = np.nan
    return resp, n_raters, n_targets


def crossed_model(resp, n_raters, n_targets):
    m = xm.xxmModel(["response", "rater", "target"])
    xm.xxmSubmodel(m, "response", parents=["rater", "target"], ys=["r1", "r2"], data=resp)
    xm.xxmSubmodel(m, "rater", etas=["a1", "a2"], data=pd.DataFrame({"rater": range(n_raters)}))
    xm.xxmSubmodel(m, "target", etas=["b1", "b2"],
                   data=pd.DataFrame({"target": range(n_targets)}))
    lab = lambda p: [[f"{p}11", f"{p}21"], [f"{p}21", f"{p}22"]]  # noqa: E731
    xm.xxmWithinMatrix(m, "response", "theta", np.ones((2, 2)), np.eye(2), lab("theta"))
    xm.xxmWithinMatrix(m, "response", "nu", np.ones((2, 1)), np.zeros((2, 1)),
                       [["nu1"], ["nu2"]])
    xm.xxmWithinMatrix(m, "rater", "psi", np.ones((2, 2)), np.eye(2), lab("rater"))
    xm.xxmWithinMatrix(m, "target", "psi", np.ones((2, 2)), np.eye(2), lab("target"))
    xm.xxmBetweenMatrix(m, "rater", "response", "lambda", np.zeros((2, 2)), np.eye(2))
    xm.xxmBetweenMatrix(m, "target", "response", "lambda", np.zeros((2, 2)), np.eye(2))
    return m


def test_bivariate_cross_classified_recovers_truth_and_is_a_stationary_point():
    m = crossed_model(*simulate_crossed())
    xm.xxmRun(m)
    s = xm.xxmSummary(m)
    assert s["fit"]["converged"]
    assert s["fit"]["nParameters"] == 11
    est = s["estimates"].set_index("label")
    truth = {"nu1": 3.0, "nu2": -1.0}
    for name in ("theta", "rater", "target"):
        mat = np.array(TRUTH[name])
        truth.update({f"{name}11": mat[0, 0], f"{name}21": mat[1, 0], f"{name}22": mat[1, 1]})
    for label, value in truth.items():
        assert abs(est.loc[label, "estimate"] - value) < 4 * est.loc[label, "se"], label
    # the dense oracle agrees that no parameter can move downhill
    problem, theta = m.result.problem, m.result.record.estimate
    f0 = dense_deviance(problem, theta)
    assert f0 == pytest.approx(s["fit"]["deviance"], rel=1e-8)
    for k in range(theta.size):
        h = 1e-4 * max(abs(theta[k]), 1.0)
        up, dn = theta.copy(), theta.copy()
        up[k] += h
        dn[k] -= h
        grad = (dense_deviance(problem, up) - dense_deviance(problem, dn)) / (2 * h)
        assert abs(grad) < 1e-3, problem.params.labels[k]
