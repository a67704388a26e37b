"""The xxM function names, a thin translation onto :class:`xxmpy.api.model.Model`.

Every call takes the model positionally or as ``model=`` and returns the
same model object, so R-style reassignment and plain calls both work.
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..results.summary import Summary
from .model import Model


def _model(model, func):
    if not isinstance(model, Model):
        raise TypeError(f"{func}: model= must be the object returned by xxmModel(), got "
                        f"{type(model).__name__}.")
    return model


def xxmModel(levels: Sequence[str], name: str = "xxmpy model") -> Model:
    """Create a model.

    Parameters
    ----------
    levels : sequence of str
        Level names, lowest level first (e.g. ``["student", "teacher"]``).
    name : str
        Shown in summaries and reports.

    Returns
    -------
    Model
    """
    return Model(levels, name=name)


def xxmSubmodel(model: Model, level: str, parents: Sequence[str] | None = None,
                ys: Sequence[str] | None = None, xs: Sequence[str] | None = None,
                etas: Sequence[str] | None = None, data: pd.DataFrame | None = None,
                flat: bool | str = False) -> Model:
    """Declare a level's parents, variables and data table.

    Parameters
    ----------
    model : Model
    level : str
        One of the model's levels.
    parents : sequence of str, optional
        Parent levels; ``data`` has an ID column named as each.
    ys, xs, etas : sequence of str, optional
        Observed dependent variables, observed covariates (columns of ``data``)
        and latent variables of the level.
    data : pandas.DataFrame
        One row per unit; the ID column is named as the level.
    flat : bool or str
        The level's etas are fixed effects with a flat prior: True or "reml"
        integrates them out (REML), "ml" maximises over them (ML, profiled out);
        see ``Model.level``.

    Returns
    -------
    Model
        The same model.
    """
    return _model(model, "xxmSubmodel").level(level, parents, ys, xs, etas, data, flat,
                                              _origin="xxmSubmodel")


def xxmWithinMatrix(model: Model, level: str, type: str, pattern, value=None,
                    label=None, form: str = "cov") -> Model:
    """Add a within-level matrix.

    Parameters
    ----------
    model : Model
    level : str
    type : {'nu', 'alpha', 'lambda', 'beta', 'gamma', 'kappa', 'theta', 'psi'}
    pattern : array_like
        1 where an element is free, 0 where fixed.
    value : array_like, optional
        Start values of free elements, the values of fixed ones.
    label : array_like of str or None, optional
        Equal labels are one parameter; ``data.<column>`` fixes an element to
        each unit's value of that column.
    form : {'cov', 'ggm', 'prec', 'chol'}, optional
        theta and psi only: what the elements are. 'cov' (default) the covariance
        matrix itself; 'ggm' a network, Sigma = D (I - Omega)^-1 D, the
        off-diagonal elements Omega's partial correlations (a fixed 0 is an absent
        edge) and the diagonal D's scales; 'prec' the precision matrix Sigma^-1;
        'chol' a lower-triangular Cholesky factor L, Sigma = L L'.

    Returns
    -------
    Model
        The same model.
    """
    return _model(model, "xxmWithinMatrix").within(level, type, pattern, value, label,
                                                   form, _origin="xxmWithinMatrix")


def xxmBetweenMatrix(model: Model, parent: str, child: str, type: str, pattern, value=None,
                     label=None) -> Model:
    """Add a between-level matrix on the link parent -> child.

    Parameters
    ----------
    model : Model
    parent, child : str
        The link; rows are the child's variables, columns the parent's.
    type : {'lambda', 'beta', 'gamma', 'kappa'}
    pattern, value, label
        As in :func:`xxmWithinMatrix`.

    Returns
    -------
    Model
        The same model.
    """
    return _model(model, "xxmBetweenMatrix").between(parent, child, type, pattern, value,
                                                     label, _origin="xxmBetweenMatrix")


def xxmRun(model: Model, **options) -> Model:
    """Fit by maximum likelihood; the result is kept as ``model.result`` (a FitResult).

    Parameters
    ----------
    model : Model
    **options
        Passed to Model.fit: ``start``, ``executor`` (a dask.distributed.Client: the
        likelihood in shards on its workers), ``shards``, and the optimiser's
        ``max_iter``, ``gtol``, ``verbose``.

    Returns
    -------
    Model
        The same model, fitted.
    """
    _model(model, "xxmRun").fit(**options)
    return model


def xxmSummary(model: Model, fit_measures: bool = False, standardized: bool = False,
               rsquare: bool = False, modindices: bool = False) -> Summary:
    """The summary of the last fit.

    Parameters
    ----------
    model : Model
    fit_measures, standardized, rsquare, modindices : bool
        Add the model test and fit indices (``['fit']['fit_measures']``; shown from
        then on), the std_lv / std_all columns, R-squared, the largest modification
        indices (FitResult.summary).

    Returns
    -------
    Summary
        The dict ``{'fit': {...}, 'estimates': DataFrame}`` (with ``lower`` and
        ``upper`` once ``xxmCI`` has run); ``print`` renders it as text.
    """
    return _model(model, "xxmSummary").summary(fit_measures, standardized, rsquare,
                                                modindices)


def xxmFree(model: Model) -> Model:
    """Kept for script compatibility: Python frees memory by itself."""
    return _model(model, "xxmFree")


def xxmCI(model: Model, level: float = 0.95, parameters: Sequence[str] | None = None,
          n_jobs: int | None = None, progress: bool | None = None,
          executor=None) -> Model:
    """Profile-likelihood CIs of the last fit; xxmSummary shows them from then on.

    Parameters
    ----------
    model : Model
    level : float
        Coverage (0.95: -2 log L rises by 3.841459 at each limit).
    parameters : sequence of str, optional
        Labels (default: all).
    n_jobs : int, optional
        Worker processes (default: the machine's cores, or 1 for a job
        predicted to take under 0.25 s).
    progress : bool, optional
        Draw a progress bar (default: when stderr is a terminal).
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Run the limits there (each limit one task; the same intervals).

    Returns
    -------
    Model
        The same model; the CIs are ``model.result.profile``.
    """
    m = _model(model, "xxmCI")
    if m.result is None:
        raise RuntimeError("xxmCI: the model has not been fitted; call xxmRun(model) first.")
    m.result.profile_ci(level=level, parameters=parameters, n_jobs=n_jobs, progress=progress,
                        executor=executor)
    return m
