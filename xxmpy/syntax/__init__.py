"""lavaan model syntax as a front end (parse.py -> build.py -> an xxM model), fitted
and returned as a SemResult with lavaan's names (result.py)."""
import numpy as np

from ..fit.starts import auto_start
from .build import build
from .parse import parse
from .result import SemResult


def sem(model, data, cluster=None, start="auto", **fit_options):
    """lavaan's ``sem``: fit lavaan syntax on a DataFrame; returns a SemResult.

    model: lavaan syntax (one level, or ``level: 1`` / ``level: 2`` blocks with
    cluster= the cluster column); data: one row per observation; start: 'auto' (the
    data's moments, lavaan's habit; start() modifiers override them) or 'written'
    (the syntax's values, 0 where none); fit_options: passed to Model.fit.
    """
    syntax = build(parse(model), data, cluster)
    problem = syntax.model.compile()
    if start == "auto":
        theta = auto_start(problem, syntax.model._checked)
    elif start == "written":
        theta = problem.params.start.copy()
    else:
        raise ValueError(f"sem: start= must be 'auto' or 'written', got {start!r}.")
    labels = list(problem.params.labels)
    for label, value in syntax.starts.items():
        theta[labels.index(label)] = value
    fit = syntax.model.fit(start=np.asarray(theta, float), **fit_options)
    return SemResult(fit, syntax, model)


def cfa(model, data, cluster=None, **options):
    """lavaan's ``cfa``: the same as sem (the defaults are sem's)."""
    return sem(model, data, cluster, **options)


__all__ = ["sem", "cfa", "SemResult", "parse"]
