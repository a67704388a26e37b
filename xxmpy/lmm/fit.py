"""lmer: fit a linear mixed model written as an lme4 formula, through the xxM engine."""
from __future__ import annotations

import warnings

import pandas as pd

from ..errors import BoundaryWarning
from .curvature import LmerCurvature
from .design import MixedDesign, build_design
from .result import LmerResult
from .to_xxm import build_model


def lmer(formula: str, data: pd.DataFrame, REML: bool = True, start: dict | None = None,
         trusted: bool = False, **options) -> LmerResult:
    """Fit a linear mixed model written as an lme4 formula, by REML (default) or ML.

    Parameters
    ----------
    formula : str
        lme4 syntax: numeric and categorical fixed effects with interactions
        (any formulaic right-hand side), ``(x | g)``, ``(1 | g)``,
        ``(0 + x | g)``, ``(x || g)`` (uncorrelated), ``(1 | a/b)`` (nested),
        ``(1 | a:b)``, crossed factors and several terms on one factor.
    data : pandas.DataFrame
        Rows with a missing value in a used variable are dropped.
    REML : bool
        REML (default) or maximum likelihood.
    start : dict, optional
        {label: value} start values.
    trusted : bool
        False (default): the formula is parsed, never run; only column names,
        numbers, formula operators and the transforms log, log2, log10, exp,
        sqrt, abs, center, scale, poly, bs, C and I (arithmetic inside) are
        accepted, anything else is refused naming the token. True: formulaic
        evaluates the formula in full (Python inside ``I()`` or ``{}``): only for
        formulas you wrote yourself.
    **options
        Passed to the optimiser (Model.fit).

    Returns
    -------
    LmerResult
        lme4's accessors; ``.model`` is the fitted xxM model.
    """
    design = formula if isinstance(formula, MixedDesign) else build_design(formula, data,
                                                                           trusted)
    return fit_design(design, bool(REML), start, **options)


def fit_design(design, reml, start=None, **options):
    model = build_model(design, reml, start)
    if "hessian_guess" not in options:      # hessian_guess=None: forward differences
        options.setdefault("curvature", LmerCurvature(design, reml))
    with warnings.catch_warnings():
        # a variance on its bound is reported by the singular-fit check instead
        warnings.simplefilter("ignore", BoundaryWarning)
        result = model.fit(**options)
    return LmerResult(design, model, result, reml)
