"""The Pythonic API: build a model, then run the pipeline on it.

    m = Model(["student", "teacher"])
    m.level("student", parents=["teacher"], ys=["y1", "y2"], data=students)
    m.level("teacher", etas=["e1", "e2"], data=teachers)
    m.within("student", "theta", pattern, value)
    m.between("teacher", "student", "lambda", pattern, value)
    result = m.fit()

``Model`` is where the stages meet: building stores a specification
(spec/), ``compile`` validates and compiles it (compile/), ``deviance`` asks
the engine (engine/), ``fit`` runs the optimiser (fit/) and returns a
FitResult (results/).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..compile import Problem, compile_problem
from ..engine import deviance as engine_deviance
from ..errors import ProblemCollector
from ..fit.information import random_effects_curvature
from ..fit.optimize import fit_problem
from ..fit.starts import resolve_start
from ..results.fit_result import FitResult
from ..spec import MatrixSpec, ModelSpec, SubmodelSpec, validate
from ..spec.objects import DATA_LABEL_PREFIX, partitioned


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

    Parameters
    ----------
    levels : sequence of str
        Level names, lowest level first.
    name : str
        Shown in summaries and reports.
    memory_limit_gb : float, optional
        What the compiled elimination plan may need; above it compiling stops
        with ProblemTooLarge (default: XXMPY_MEMORY_LIMIT_GB, else half of the
        machine's memory).

    Attributes
    ----------
    spec : spec.ModelSpec
        What was specified, as given.
    result : FitResult or None
        The last fit.
    """

    def __init__(self, levels: Sequence[str], name: str = "xxmpy model",
                 memory_limit_gb: float | None = None):
        levels = _names(levels, "levels", "Model")
        if not levels or len(set(levels)) != len(levels) or \
                not all(isinstance(x, str) and x for x in levels):
            raise ValueError(f"xxmModel: levels= must be a non-empty list of unique level "
                             f"names (lowest level first), got {levels!r}.")
        self.name = name
        self.memory_limit_gb = memory_limit_gb
        self.spec = ModelSpec(levels=levels)
        self.result = None
        self._problem = self._checked = self._fingerprint = None

    # ------------------------------------------------------------------ building
    def level(self, level: str, parents: Sequence[str] | None = None,
              ys: Sequence[str] | None = None, xs: Sequence[str] | None = None,
              etas: Sequence[str] | None = None, data: pd.DataFrame | None = None,
              flat: bool | str = False, regressor_ys: dict | None = None,
              _origin: str = "Model.level") -> Model:
        """Add the submodel of ``level``: its parents, variables and data table
        (see :func:`xxmpy.xxmSubmodel` for the parameters); returns the model.

        ``flat=True`` (or ``"reml"``) gives the level's etas a flat (improper) prior
        instead of N(alpha, psi): they are fixed effects integrated out of the
        likelihood, which turns -2 log L into the REML criterion; their posterior
        mean and covariance are the GLS estimates and (X'V^-1X)^-1. Such a level
        holds only etas, has no parents and no within matrices.
        ``flat="ml"`` makes them fixed effects estimated by maximum likelihood and
        profiled out: -2 log L is the ML deviance at their GLS values (which
        maximise it for given variance parameters), so the optimiser searches the
        variance parameters only. The posterior then gives the GLS estimates with
        (X'V^-1X)^-1 for this level and, for the other levels, the posterior given
        the fixed effects (lme4's condVar). It must be the model's only flat level.

        ``regressor_ys`` {x: y}: xs whose column holds the values of the level's y
        (observed where any y regressed on it is). A kappa on such an x regresses an
        observed outcome on another y; with the paths among ys recursive (no cycle) the
        likelihood is exact (the ys minus their paths have unit Jacobian). They are not
        covariates: the saturated and baseline models and the implied moments leave
        them out (the paths enter the ys' moments through (I - B)^-1).
        """
        sub = SubmodelSpec(level, _names(parents, "parents", _origin), _names(ys, "ys", _origin),
                           _names(xs, "xs", _origin), _names(etas, "etas", _origin), data,
                           flat if isinstance(flat, str) else bool(flat),
                           dict(regressor_ys or {}))
        if level in self.spec.submodels:
            self.spec.duplicate_submodels.append(level)
        self.spec.submodels[level] = sub
        self._changed()
        return self

    def within(self, level: str, type: str, pattern, value=None, label=None,
               form: str = "cov", _origin: str = "Model.within") -> Model:
        """Add a within-level matrix (nu, alpha, lambda, beta, gamma, kappa, theta, psi);
        see :func:`xxmpy.xxmWithinMatrix` (form= too). Returns the model."""
        self.spec.matrices.append(MatrixSpec(level, None, type, pattern, value, label, _origin,
                                             form))
        self._changed()
        return self

    def between(self, parent: str, child: str, type: str, pattern, value=None, label=None,
                _origin: str = "Model.between") -> Model:
        """Add a between-level matrix (lambda, beta, gamma, kappa); rows are child
        variables; see :func:`xxmpy.xxmBetweenMatrix`. Returns the model."""
        self.spec.matrices.append(MatrixSpec(child, parent, type, pattern, value, label,
                                             _origin))
        self._changed()
        return self

    def derived(self, name: str, rewrite) -> Model:
        """A new model on the same levels and data with every matrix copied and
        rewritten: rewrite(MatrixSpec) -> (pattern, value, label), or None to keep it
        (modification indices, pruning)."""
        new = Model(self.spec.levels, name=name, memory_limit_gb=self.memory_limit_gb)
        new.spec.submodels = dict(self.spec.submodels)
        new.spec.duplicate_submodels = list(self.spec.duplicate_submodels)
        for mat in self.spec.matrices:
            copied = copy.copy(mat)
            got = rewrite(mat)
            if got is not None:
                copied.pattern, copied.value, copied.label = got
            new.spec.matrices.append(copied)
        return new

    def _changed(self):
        self._problem = self._checked = self._fingerprint = None
        self.result = None

    # ------------------------------------------------------------------ numbers
    def compile(self) -> Problem:
        """Validate (raising every problem together) and compile.

        Returns the frozen compiled Problem (compile/problem.py). It is kept
        and reused until the specification changes or a data table changes,
        also in place: the data are copied at compile time, and a changed
        table gives a new compiled problem.
        """
        dask_levels = partitioned(self.spec)
        if dask_levels:
            raise TypeError(f"Model.compile: level(s) {dask_levels} hold Dask DataFrames; they "
                            f"are compiled shard by shard on a dask cluster's workers: fit "
                            f"with model.fit(executor=client) (docs/distributed.md).")
        fingerprint = _data_fingerprint(self.spec)
        if self._problem is None or fingerprint != self._fingerprint:
            checked = validate(self.spec)
            problem = compile_problem(checked, memory_limit_gb=self.memory_limit_gb)
            _check_start_values(problem)
            self._problem, self._checked, self._fingerprint = problem, checked, fingerprint
        return self._problem

    @property
    def parameters(self) -> pd.DataFrame:
        """The parameter table (one row per free element) with start values."""
        return self.compile().params.table.copy()

    def deviance(self, theta: Sequence[float] | None = None) -> float:
        """-2 log L at ``theta`` (default: the start values), without fitting.

        Parameters
        ----------
        theta : sequence of float, optional
            One value per parameter, in the order of ``parameters``' labels.

        Returns
        -------
        float
            -2 log L with the 2 pi constant; +inf where a covariance matrix is
            not positive definite.
        """
        problem = self.compile()
        return engine_deviance(problem, problem.params.start if theta is None
                               else np.asarray(theta, float))

    def fit(self, **options) -> FitResult:
        """Maximum likelihood from the start values; returns (and keeps) a FitResult.

        Parameters
        ----------
        start : "auto" or sequence of float, optional
            "auto": start values from the data (fit/starts.py: means, variances
            split across levels, loadings 1, regressions 0 or least squares), the
            written value= of free elements ignored; a vector: one value per
            parameter; default: the written start values.
        executor : dask.distributed.Client, optional
            Evaluate -2 log L and its gradient on the client's workers: the model is
            split into ``shards`` shards of whole top-level units (a nested design;
            for crossed levels or fixed effects, of one level's units with the other
            levels shared), each compiled and kept on a worker
            (docs/distributed.md); the fit is the in-process one to rounding.
        shards : int, optional
            How many shards (default 8 for a nested design; for crossed levels or
            fixed effects, whose shards each send the shared block, one per worker);
            the split depends on it and the data only.
        **options
            Passed to the optimiser (``max_iter``, ``gtol``, ``verbose``;
            ``hessian_guess=None``: the search's first curvature by forward
            differences, not the closed form of random-effects models,
            fit/information.py).

        Returns
        -------
        FitResult
            Also kept as ``model.result``.
        """
        executor, shards = options.pop("executor", None), options.pop("shards", None)
        if partitioned(self.spec):
            self.result = _fit_partitioned(self, executor, shards, **options)
            return self.result
        problem = self.compile()
        options = resolve_start(options, problem, self._checked)
        if executor is not None or shards is not None:
            options["evaluate"] = _sharded(self, executor, shards).deviance_and_gradient
        if "hessian_guess" not in options and "curvature" not in options:
            options["curvature"] = random_effects_curvature(problem)   # None: not that shape
        record = fit_problem(problem, **options)
        self.result = FitResult(self._detached(), problem, record, self._checked)
        return self.result

    def _detached(self):
        """This model for its FitResult to hold: the same specification, compiled
        problem and name, without ``result``. So the model and its result form no
        reference cycle, and a refit in a loop frees the previous problem as soon as
        nothing refers to it (not at Python's next cyclic collection: on the
        full-size grade design, 2 GB)."""
        twin = copy.copy(self)
        twin.result = None
        return twin

    def summary(self, fit_measures: bool = False, standardized: bool = False,
                rsquare: bool = False, modindices: bool = False):
        """The Summary of the last fit (see FitResult.summary for the options)."""
        if self.result is None:
            raise RuntimeError("xxmSummary: the model has not been fitted; call xxmRun(model) "
                               "or model.fit() first.")
        return self.result.summary(fit_measures, standardized, rsquare, modindices)


def _data_fingerprint(spec):
    """A hash of what compilation reads from every level's table (its ID and parent
    ID columns, ys, xs and ``data.`` columns): a table changed in place after a
    compile is compiled anew, never reused stale."""
    data_columns = {lab[len(DATA_LABEL_PREFIX):] for m in spec.matrices
                    for lab in np.ravel(np.asarray(m.label, dtype=object)
                                        if m.label is not None else [])
                    if isinstance(lab, str) and lab.startswith(DATA_LABEL_PREFIX)}
    parts = []
    for level, sub in sorted(spec.submodels.items()):
        data = sub.data
        if not isinstance(data, pd.DataFrame):
            parts.append((level, id(data)))
            continue
        used = [level, *sub.parents, *sub.ys, *sub.xs, *sorted(data_columns)]
        if data.columns.duplicated().any():         # validation reports the table
            parts.append((level, id(data), None))
            continue
        cols = [c for c in dict.fromkeys(used) if c in data.columns]
        parts.append((level, id(data), len(data),
                      tuple(_column_hash(c, data[c]) for c in cols)))
    return tuple(parts)


def _column_hash(name, column):
    """(name, dtype, hash of the values) of one column (a pandas Series)."""
    return name, str(column.dtype), _array_hash(column.to_numpy())


def _array_hash(arr):
    """Hash of one column's values."""
    if arr.ndim != 1:                              # duplicated column names
        return None
    if arr.dtype.kind not in "biufcmM":         # strings, objects, categories
        try:
            arr = pd.util.hash_array(np.asarray(arr, dtype=object))
        except TypeError:                         # unhashable cells: validation says so
            return None
    return hash(np.ascontiguousarray(arr).tobytes())


def _check_start_values(problem):
    """Start values must give positive definite theta and psi."""
    problems = ProblemCollector()
    for c, lev in enumerate(problem.levels):
        for type_, size, role in (("theta", lev.p, "ys"), ("psi", lev.n_etas, "etas")):
            if not size or (type_ == "psi" and lev.flat):
                continue
            mat = problem.matrix(problem.params.start, (c, -1, type_), (size, size))
            if not _positive_definite(mat):
                given = (c, -1, type_) in problem.matrices
                problems.add(
                    f"xxmWithinMatrix: {type_} at level '{lev.name}' is not positive definite "
                    f"at the start values" + ("" if given else
                                              " (it was never given, so it is all zeros)") +
                    f"; every level with {role} needs a {type_} with positive variances on "
                    f"its diagonal and start values that form a positive definite matrix.")
    problems.raise_if_any()


def _positive_definite(mat):
    try:
        np.linalg.cholesky(mat)
    except np.linalg.LinAlgError:
        return False
    return True


def _fit_partitioned(model, executor, shards, **options):
    """Model.fit on Dask DataFrames (distributed/partitions.py)."""
    from ..distributed.partitions import fit_partitioned
    from ..inference.executors import is_dask_client
    if executor is None or not is_dask_client(executor):
        raise TypeError(f"Model.fit: level(s) {partitioned(model.spec)} hold Dask DataFrames: "
                        f"pass executor= a dask.distributed.Client whose workers build and "
                        f"keep the shards (docs/distributed.md); got "
                        f"{type(executor).__name__}.")
    return fit_partitioned(model, executor, shards,
                           **options)


def _sharded(model, executor, shards):
    """The ShardedLikelihood a fit evaluates (Model.fit's executor= and shards=)."""
    from ..distributed import ShardedLikelihood
    from ..inference.executors import is_dask_client
    if executor is not None and not is_dask_client(executor):
        raise TypeError(f"Model.fit: executor= must be a dask.distributed.Client (a fit's "
                        f"shards stay on its workers between evaluations), got "
                        f"{type(executor).__name__}; profile_ci takes any executor.")
    return ShardedLikelihood(model, shards, executor)
