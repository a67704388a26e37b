"""The xxM function names, a thin translation onto :class:`xxmpy.model.Model`.

Every call takes the model positionally or as ``model=`` and returns the
same model object, so R-style reassignment and plain calls both work.
"""
from .model import Model


def _model(model, func):
    if not isinstance(model, Model):
        raise TypeError(f"{func}: model= must be the object returned by xxmModel(), got "
                        f"{type(model).__name__}.")
    return model


def xxmModel(levels, name="xxmpy model"):
    """Create a model with ``levels`` (names, lowest level first)."""
    return Model(levels, name=name)


def xxmSubmodel(model, level, parents=None, ys=None, xs=None, etas=None, data=None,
                flat=False):
    """Declare a level's parents, variables (ys, xs, etas) and its data table.

    flat=True: the level's etas are fixed effects with a flat prior (REML); see
    Model.level.
    """
    return _model(model, "xxmSubmodel").level(level, parents, ys, xs, etas, data, flat,
                                              _origin="xxmSubmodel")


def xxmWithinMatrix(model, level, type, pattern, value=None, label=None):
    """Add a within-level matrix of ``type`` at ``level``."""
    return _model(model, "xxmWithinMatrix").within(level, type, pattern, value, label,
                                                   _origin="xxmWithinMatrix")


def xxmBetweenMatrix(model, parent, child, type, pattern, value=None, label=None):
    """Add a between-level matrix of ``type`` on the link parent -> child."""
    return _model(model, "xxmBetweenMatrix").between(parent, child, type, pattern, value,
                                                     label, _origin="xxmBetweenMatrix")


def xxmRun(model, **options):
    """Fit by maximum likelihood; the result is kept on the model (``model.result``)."""
    _model(model, "xxmRun").fit(**options)
    return model


def xxmSummary(model):
    """{'fit': {...}, 'estimates': DataFrame} of the last fit."""
    return _model(model, "xxmSummary").summary()


def xxmFree(model):
    """Kept for script compatibility: Python frees memory by itself."""
    return _model(model, "xxmFree")


def xxmCI(model, level=0.95, parameters=None, n_jobs=None, progress=None):
    """Profile-likelihood CIs of the last fit; xxmSummary shows them from then on.

    level: coverage (0.95 -> -2 log L rise 3.841459); parameters: labels
    (default all); n_jobs: worker processes (default: the machine's cores, or 1
    for a job predicted to take under 0.25 s).
    """
    m = _model(model, "xxmCI")
    if m.result is None:
        raise RuntimeError("xxmCI: the model has not been fitted; call xxmRun(model) first.")
    m.result.profile_ci(level=level, parameters=parameters, n_jobs=n_jobs, progress=progress)
    return m
