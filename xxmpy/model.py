"""The Pythonic API: build a model, compile it, evaluate or fit it.

    m = Model(["student", "teacher"])
    m.level("student", parents=["teacher"], ys=["y1", "y2"], data=students)
    m.level("teacher", etas=["e1", "e2"], data=teachers)
    m.within("student", "theta", pattern, value)
    m.between("teacher", "student", "lambda", pattern, value)
    result = m.fit()
"""
import numpy as np

from ._core.elimination import NotPositiveDefinite
from .compile import compile_model
from .errors import ProblemCollector
from .likelihood import ModelMatrices, deviance
from .terms import inverse_and_logdet
from .optimize import fit_problem
from .results import FitResult
from .spec import MatrixSpec, ModelSpec, SubmodelSpec
from .validate import validate


def _names(arg, what, func):
    if arg is None:
        return []
    if isinstance(arg, str):
        return [arg]
    try:
        return list(arg)
    except TypeError:
        raise TypeError(f"{func}: {what}= must be a list of names, got {arg!r}") from None


class Model:
    """An n-level SEM: levels, one submodel per level, parameter matrices.

    Building only stores; :meth:`compile` validates everything at once.
    """

    def __init__(self, levels, name="xxmpy model"):
        levels = _names(levels, "levels", "Model")
        if not levels or len(set(levels)) != len(levels) or \
                not all(isinstance(x, str) and x for x in levels):
            raise ValueError(f"xxmModel: levels= must be a non-empty list of unique level "
                             f"names (lowest level first), got {levels!r}.")
        self.name = name
        self.spec = ModelSpec(levels=levels)
        self.result = None
        self._problem = self._checked = None

    # ------------------------------------------------------------------ building
    def level(self, level, parents=None, ys=None, xs=None, etas=None, data=None, flat=False,
              _origin="Model.level"):
        """Add the submodel of ``level``: its parents, variables and data table.

        ``flat=True`` gives the level's etas a flat (improper) prior instead of
        N(alpha, psi): they are fixed effects integrated out of the likelihood,
        which turns -2 log L into the REML criterion; their posterior mean and
        covariance are the GLS estimates and (X'V^-1X)^-1. Such a level holds
        only etas, has no parents and no within matrices.
        """
        sub = SubmodelSpec(level, _names(parents, "parents", _origin), _names(ys, "ys", _origin),
                           _names(xs, "xs", _origin), _names(etas, "etas", _origin), data,
                           bool(flat))
        if level in self.spec.submodels:
            self.spec.duplicate_submodels.append(level)
        self.spec.submodels[level] = sub
        self._changed()
        return self

    def within(self, level, type, pattern, value=None, label=None, _origin="Model.within"):
        """Add a within-level matrix (nu, alpha, lambda, beta, gamma, kappa, theta, psi)."""
        self.spec.matrices.append(MatrixSpec(level, None, type, pattern, value, label, _origin))
        self._changed()
        return self

    def between(self, parent, child, type, pattern, value=None, label=None,
                _origin="Model.between"):
        """Add a between-level matrix (lambda, beta, gamma, kappa); rows are child variables."""
        self.spec.matrices.append(MatrixSpec(child, parent, type, pattern, value, label,
                                             _origin))
        self._changed()
        return self

    def _changed(self):
        self._problem = self._checked = None
        self.result = None

    # ------------------------------------------------------------------ numbers
    def compile(self):
        """Validate (raising every problem together) and compile; cached."""
        if self._problem is None:
            checked = validate(self.spec)
            problem = compile_model(checked)
            _check_start_values(problem)
            self._problem, self._checked = problem, checked
        return self._problem

    @property
    def parameters(self):
        """The parameter table (one row per free element) with start values."""
        return self.compile().params.table.copy()

    def deviance(self, theta=None):
        """-2 log L at ``theta`` (default: the start values), without fitting."""
        problem = self.compile()
        return deviance(problem, problem.params.start if theta is None else np.asarray(theta))

    def fit(self, **options):
        """Maximum likelihood from the start values; returns (and keeps) a FitResult."""
        problem = self.compile()
        record = fit_problem(problem, **options)
        self.result = FitResult(self, problem, record, self._checked)
        return self.result

    def summary(self):
        """Summary of the last fit (see FitResult.summary)."""
        if self.result is None:
            raise RuntimeError("xxmSummary: the model has not been fitted; call xxmRun(model) "
                               "or model.fit() first.")
        return self.result.summary()


def _check_start_values(problem):
    """Start values must give positive definite theta and psi."""
    problems = ProblemCollector()
    mats = ModelMatrices(problem, problem.params.start)
    for c, lev in enumerate(problem.levels):
        for type_, size, role in (("theta", lev.p, "ys"), ("psi", lev.n_etas, "etas")):
            if not size or (type_ == "psi" and lev.flat):
                continue
            try:
                inverse_and_logdet(mats.within(c, type_, (size, size)), type_)
            except NotPositiveDefinite:
                given = (c, -1, type_) in problem.matrices
                problems.add(
                    f"xxmWithinMatrix: {type_} at level '{lev.name}' is not positive definite "
                    f"at the start values" + ("" if given else
                                              f" (it was never given, so it is all zeros)") +
                    f"; every level with {role} needs a {type_} with positive variances on "
                    f"its diagonal and start values that form a positive definite matrix.")
    problems.raise_if_any()
