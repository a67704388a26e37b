"""Every script in models/ runs as written, and its fit is right.

Each script leaves ``fit_xxm`` (the xxM-API fit) and ``fit_py`` (the same model
through the Pythonic API) and either ``REFERENCE`` (published results of lme4 /
OpenMx / lavaan on real data, source beside them in the script) or ``TRUTH``
(the parameters its simulated data were drawn from). Checks:
  * both API styles reach the same -2 log L, and the fit converged;
  * REFERENCE: -2 log L to 1e-4, every listed estimate to the printed digits;
  * TRUTH: every estimate within 4 standard errors of the truth; a variance
    on its bound (no SE) must have the truth inside its 99.99% profile CI;
    and -2 log L at the estimates equals the dense oracle's (N x N
    covariance of all observed values).
"""
import contextlib
import functools
import io
import runpy
import warnings
from pathlib import Path

import numpy as np
import pytest

from dense_oracle import dense_deviance

MODELS = Path(__file__).resolve().parents[1] / "models"
SCRIPTS = sorted(MODELS.glob("*/*.py"))
REAL = [p for p in SCRIPTS if "\nREFERENCE = " in p.read_text()]
SIMULATED = [p for p in SCRIPTS if "\nTRUTH = " in p.read_text()]


@functools.lru_cache(maxsize=None)
def run_script(path):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        namespace = runpy.run_path(str(path), run_name="__main__")
    return namespace, out.getvalue()


def names(paths):
    return [p.parent.name for p in paths]


def test_every_folder_has_a_script_and_a_readme():
    folders = sorted(p for p in MODELS.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert len(folders) >= 13 and len(REAL) + len(SIMULATED) == len(SCRIPTS) == len(folders)
    for folder in folders:
        assert (folder / f"{folder.name}.py").exists(), folder
        assert (folder / "README.md").exists(), folder


@pytest.mark.parametrize("path", SCRIPTS, ids=names(SCRIPTS))
def test_script_runs_prints_and_both_api_styles_agree(path):
    ns, printed = run_script(path)
    assert "-2 log L" in printed
    fit_xxm, fit_py = ns["fit_xxm"], ns["fit_py"]
    assert fit_xxm.converged and fit_py.converged
    assert fit_py.deviance == pytest.approx(fit_xxm.deviance, abs=1e-6)
    assert (path in REAL) != (path in SIMULATED), "a script states either REFERENCE or TRUTH"
    if "fit_sem" in ns:                # the lavaan-syntax version of the same model
        assert ns["fit_sem"].deviance == pytest.approx(fit_xxm.deviance, abs=1e-6)


@pytest.mark.parametrize("path", REAL, ids=names(REAL))
def test_reference_results(path):
    ns, _ = run_script(path)
    ref = dict(ns["REFERENCE"])
    source = ref.pop("source")
    fit = ns["fit_xxm"]
    assert fit.deviance == pytest.approx(ref.pop("deviance"), abs=1e-4), source
    params = fit.params
    for label, value in ref.items():
        digits = len(str(value).split(".")[1]) if "." in str(value) else 0
        assert abs(params[label] - value) <= 0.6 * 10.0 ** -digits + 1e-4 * abs(value), \
            (label, params[label], value, source)


@pytest.mark.parametrize("path", SIMULATED, ids=names(SIMULATED))
def test_simulated_truth_is_recovered_and_the_dense_oracle_agrees(path):
    ns, _ = run_script(path)
    fit = ns["fit_xxm"]
    est = fit.estimates.set_index("label")
    truth = ns["TRUTH"]
    assert set(truth) == set(est.index), "TRUTH names every free parameter"
    on_bound = []
    for label, value in truth.items():
        row = est.loc[label]
        if row.at_bound:
            on_bound.append(label)
        else:
            assert abs(row.estimate - value) < 4 * row.se, (label, row.estimate, row.se, value)
    if on_bound:
        ci = fit.profile_ci(level=0.9999, parameters=on_bound, n_jobs=1).estimates.set_index("label")
        for label in on_bound:
            assert ci.loc[label, "lower"] <= truth[label] <= ci.loc[label, "upper"], label
    problem = fit.problem
    assert dense_deviance(problem, fit.record.estimate) == pytest.approx(fit.deviance,
                                                                         rel=1e-10)


def test_growth_curve_wide_and_long_give_the_same_likelihood():
    ns, _ = run_script(MODELS / "growth_curve" / "growth_curve.py")
    assert ns["fit_long"].deviance == pytest.approx(ns["fit_xxm"].deviance, abs=1e-6)
    assert np.allclose(ns["fit_long"].params[ns["fit_xxm"].labels], ns["fit_xxm"].params,
                       atol=1e-4)
