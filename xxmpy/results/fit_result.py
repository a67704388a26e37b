"""The result of a fit: one object from which every number users see renders.

``FitResult.summary()`` returns a Summary (results/summary.py): the dict
``{"fit": {...}, "estimates": DataFrame}`` that also renders as text and HTML;
``str(result)`` is that text.

The estimates schema (shared with LmerResult.estimates and ProfileCI.estimates):
label, estimate, se, z, p, lower, upper, lower_status, upper_status; where a
parameter lives: child, parent, type, row, col (and appears_in for a label
used in several places); at_bound.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..errors import BoundaryWarning, ConvergenceWarning, HessianWarning, IdentificationWarning
from ..inference.correlation_profile import correlation_ci
from ..inference.profile import ProfileCI, profile_ci
from .summary import Summary

# the unit-diagonal Hessian's smallest eigenvalue, relative to its largest, below which
# the fit counts as not (locally) identified
HESSIAN_RANK_TOL = 1e-10


def _covariance(record, exclude=()):
    """Parameter covariance 2 H^-1 over parameters off their bounds; problems found.

    ``exclude``: parameters left out (those of a flat direction: not identified).
    Positive definiteness is judged on the Hessian scaled to unit diagonal
    (D H D, D = diag(H)^-1/2): invariant to each parameter's unit, so rescaling
    the data can neither raise nor hide the flag.
    """
    k = record.estimate.size
    cov = np.full((k, k), np.nan)
    free = ~record.at_bound
    free[list(exclude)] = False
    H = record.hessian[np.ix_(free, free)]
    if H.size == 0:
        return cov, []
    H = (H + H.T) / 2
    if not np.all(np.isfinite(H)):
        return cov, list(np.flatnonzero(free))
    d = np.diag(H)
    if np.any(d <= 0):
        return cov, list(np.flatnonzero(free)[d <= 0])
    D = 1.0 / np.sqrt(d)
    vals, vecs = np.linalg.eigh(H * np.outer(D, D))
    if vals[0] <= HESSIAN_RANK_TOL * vals[-1]:
        bad = np.flatnonzero(free)[np.abs(vecs[:, 0]) > 0.3]
        return cov, list(bad)
    cov[np.ix_(free, free)] = 2.0 * np.outer(D, D) * np.linalg.inv(H * np.outer(D, D))
    return cov, []


def _ci_flag(lower, upper):
    """'ok' when both limits are, else the statuses (lower/upper)."""
    if not isinstance(lower, str):
        return ""
    return "ok" if lower == upper == "ok" else f"{lower}/{upper}"


class InformationCriteria:
    """log L, AIC and BIC from ``objective`` (-2 log L that the fit minimised),
    ``n_parameters`` and ``n_observations``."""

    @property
    def loglik(self):
        return -0.5 * self.objective

    @property
    def aic(self):
        return self.objective + 2 * self.n_parameters

    @property
    def bic(self):
        return self.objective + self.n_parameters * np.log(self.n_observations)


class FitResult(InformationCriteria):
    """Estimates, fit statistics and the optimisation record of one fit.

    Attributes
    ----------
    model : Model
        The model that was fitted.
    problem : compile.Problem
        The frozen compiled problem the fit ran on.
    record : fit.OptimizationRecord
        What the optimiser did (start, estimate, evaluations, status, Hessian).
    labels : list of str
        Parameter labels, in parameter order.
    vcov : pandas.DataFrame
        Covariance of the estimates, 2 H^-1, labelled by parameter (NaN rows for
        parameters on a bound or when the Hessian is not positive definite).
    profile : ProfileCI or None
        Profile-likelihood CIs once ``profile_ci`` has run.
    """

    def __init__(self, model, problem, record, checked):
        self.model, self.problem, self.record = model, problem, record
        self.checked = checked      # spec.CheckedModel the problem was compiled from
        self.labels = list(problem.params.labels)
        self.not_identified = [[self.labels[k] for k in group]
                               for group in record.not_identified]
        flat = sorted({k for group in record.not_identified for k in group})
        cov, not_pd = _covariance(record, flat)   # none along a flat direction
        self.vcov = pd.DataFrame(cov, index=self.labels, columns=self.labels)
        self.hessian_problem = [self.labels[k] for k in not_pd]
        self.profile = None
        self._references = {}       # the fitted saturated and baseline models, when asked
        self._measures = None
        self._warn()

    def profile_ci(self, level: float = 0.95, parameters=None, n_jobs: int | None = None,
                   progress: bool | None = None, executor=None) -> ProfileCI:
        """Profile-likelihood CIs; kept as ``.profile``.

        Parameters
        ----------
        level : float
            Coverage (0.95: each limit is where -2 log L, re-optimised over the
            other parameters, rises by 3.841459).
        parameters : str or list of str, optional
            Labels (default: all parameters).
        n_jobs : int, optional
            Worker processes (default: the machine's cores, or 1 for a job
            predicted to take under 0.25 s).
        progress : bool, optional
            Draw a progress bar on stderr (default: when stderr is a terminal).
        executor : concurrent.futures.Executor or dask.distributed.Client, optional
            Run the limits there instead (each limit one task; the same
            intervals as in this process; n_jobs is then ignored).

        Returns
        -------
        ProfileCI
            The estimates table and the summary show the intervals from then on.
        """
        self.profile = profile_ci(self, level, parameters, n_jobs, progress, executor)
        return self.profile

    def correlation_ci(self, parameters=None, level: float = 0.95) -> pd.DataFrame:
        """Profile-likelihood CIs of correlations (inference/correlation_profile.py): the
        profile of rho_rc = Sigma_rc / sqrt(Sigma_rr Sigma_cc), every other parameter
        (the two variances included) re-optimised, as lme4 profiles a correlation.

        parameters: covariance labels (default: every off-diagonal element of a free
        theta / psi, each element its own label). Returns one row per label:
        label, estimate (the correlation), lower, upper, lower_status, upper_status
        ('ok', or 'boundary' where the profile stays below the cutoff up to -1 / 1),
        lower_rise, upper_rise, message.
        """
        return correlation_ci(self, parameters, level)

    def saturated(self) -> "FitResult":
        """The saturated (H1) model fitted to the same data (assessment/reference_models.py:
        free means and an unrestricted covariance for each level's component of the
        observed ys); fitted once, then kept. ValueError when it cannot be formed."""
        return self._reference("saturated")

    def baseline(self) -> "FitResult":
        """The baseline (independence) model: the saturated model's components with
        diagonal covariances; fitted once, then kept."""
        return self._reference("baseline")

    def _reference(self, which):
        if which not in self._references:
            from ..assessment.reference_models import baseline_model, saturated_model
            build = saturated_model if which == "saturated" else baseline_model
            with warnings.catch_warnings():
                # an internal fit: only its -2 log L is used (its convergence is checked
                # below), not its standard errors
                warnings.simplefilter("ignore", BoundaryWarning)
                warnings.simplefilter("ignore", HessianWarning)
                fit = build(self.model).fit(start="auto")
            if not fit.converged:
                raise RuntimeError(f"fit_measures: the {which} model did not converge "
                                   f"({fit.record.status}); no fit measure would be right.")
            self._references[which] = fit
        return self._references[which]

    def fit_measures(self) -> pd.Series:
        """chisq, df, CFI, TLI, NFI, RFI, IFI, RNI, RMSEA with its 90% CI and p-value,
        SRMR per level and their sum, log L of the model, the saturated and the
        baseline model, AIC, BIC, BIC2; lavaan's definitions and names ('_' for '.'),
        N = the rows of the observed level (lavaan's ntotal). Computed when first asked
        (it fits the saturated and baseline models), then kept."""
        if self._measures is None:
            from ..assessment.fit_measures import fit_measures
            c = self._structure()[0]
            self._measures = fit_measures(self, self.saturated(), self.baseline(), c)
        return self._measures.copy()

    def _forms(self):
        """{(level, type): form=} of the theta / psi not in covariance form."""
        forms = self.problem.forms
        return {} if forms is None else {(b.key[0], b.key[2]): b.forms[0] if b.form != "mixed"
                                         else b.forms for b in forms.blocks}

    def _structure(self):
        """(c, parents, ys, etas): level index of the lowest level of ys, the indices of
        the levels above it, {level index: y names} of the levels with ys, {level
        index: eta names}; ValueError when the model has another shape
        (assessment/reference_models._components says why)."""
        from ..assessment.reference_models import _components
        c_name, _, parents = _components(self.model)
        names, spec = self.problem.level_names, self.model.spec
        levels = [c_name] + list(parents)
        ys = {names.index(lv): list(spec.submodels[lv].ys) for lv in levels
              if spec.submodels[lv].ys}
        etas = {names.index(lv): list(spec.submodels[lv].etas) for lv in levels}
        return names.index(c_name), [names.index(q) for q in parents], ys, etas

    def standardized(self) -> pd.DataFrame:
        """The standardised solution, lavaan's std.lv and std.all, for every free or
        non-zero fixed element, with delta-method SEs (assessment/standardized.py):
        columns child, parent, type, row, col, label, estimate, se, std_lv, std_lv_se,
        std_all, std_all_se, std_nox, std_nox_se (lavaan's std.nox: covariates in their
        own units) (an equality-labelled parameter once per element)."""
        from ..assessment.standardized import standardized_solution
        c, parents, ys, etas = self._structure()
        return standardized_solution(self, c, parents, ys, etas)

    def network(self, level: str, which: str = "theta") -> pd.DataFrame:
        """The partial-correlation network Omega (zero diagonal) of a theta or psi written
        with form='ggm' (compile/forms.py), at the estimates, as a DataFrame labelled by
        the level's ys (theta) or etas (psi) in the network; an absent edge is an exact 0."""
        forms = self.problem.forms
        blocks = [] if forms is None else [b for b in forms.blocks if "ggm" in b.forms]
        block = next((b for b in blocks if b.key == (level, None, which)), None)
        if block is None:
            have = [f"{b.key[2]} at '{b.key[0]}'" for b in blocks]
            raise ValueError(f"network: the model has no {which} at level {level!r} written "
                             f"with form='ggm'; its networks: {have or 'none'}.")
        g = np.flatnonzero(np.array(block.forms) == "ggm")
        omega = block.raw(self.record.estimate)[np.ix_(g, g)]
        np.fill_diagonal(omega, 0.0)
        sub = self.model.spec.submodels[level]
        names = [(sub.ys if which == "theta" else sub.etas)[j] for j in g]
        return pd.DataFrame(omega, index=names, columns=names)

    def r_squared(self) -> pd.DataFrame:
        """R-squared (level, variable, r2): each observed y in each level's component
        of its variance (1 - its residual share there: its theta at its own level, above
        it an eta loading on that y alone), and each eta explained through beta or
        gamma."""
        from ..assessment.implied import r_squared
        c, parents, ys, etas = self._structure()
        return r_squared(self.problem, self.record.estimate, c, parents, ys, etas)

    def variance_components(self) -> pd.DataFrame:
        """Each observed y's implied variance per level, the total, and each level's
        share (for a parent level: the intra-class correlation)."""
        from ..assessment.implied import variance_components
        c, _, ys, _ = self._structure()
        return variance_components(self.problem, self.record.estimate, c, ys[c])

    def implied(self) -> dict:
        """Model-implied moments of the observed ys, per level, as lavaan's
        ``lavInspect(fit, "implied")``: {level: {'cov': DataFrame, 'mean': Series}}
        over what each level's component holds (the intercepts of the ys below it, its
        own ys); each y's mean on one entry (lavaan's: the between level's)."""
        from ..assessment.implied import implied
        c, parents, ys, _ = self._structure()
        return implied(self.problem, self.record.estimate, c, parents, ys)

    def factor_scores(self, level: str | None = None):
        """Factor scores (assessment/factor_scores.py): one row per unit of ``level``,
        indexed by its ids, with each eta's posterior mean (column <eta>) and SD
        (<eta>_sd) given all the data at the estimates. Without ``level``, a dict
        {level: DataFrame} over the levels with etas."""
        from ..assessment.factor_scores import factor_scores
        spec = self.model.spec
        with_etas = [name for name in self.problem.level_names if spec.submodels[name].etas]
        if level is None:
            return {name: self.factor_scores(name) for name in with_etas}
        if level not in self.problem.level_names:
            raise ValueError(f"FitResult.factor_scores: {level!r} is not a level of the "
                             f"model; its levels: {self.problem.level_names}.")
        if level not in with_etas:
            raise ValueError(f"FitResult.factor_scores: level {level!r} has no etas; levels "
                             f"with etas: {with_etas}.")
        return factor_scores(self.problem, self.record.estimate,
                             list(spec.submodels[level].etas), level)

    def modification_indices(self, minimum: float = 0.0, power: bool = False,
                             delta: float = 0.1, alpha: float = 0.05,
                             high_power: float = 0.75) -> pd.DataFrame:
        """Modification indices (assessment/modification_indices.py): for every
        element of lambda, beta, theta and psi fixed at 0 without a label, the score
        test of freeing it (mi, chi-square on 1 df), the expected parameter change
        (epc) and its standardised forms (sepc_lv, sepc_all, sepc_nox); rows with mi >=
        ``minimum``, largest first, then (only when minimum <= 0) those whose
        freeing would not be identified (mi NaN). lavaan's modindices(fit,
        information = "observed"). power: add delta, ncp, power and decision (the
        Saris-Satorra-van der Veld judgement, lavaan's power = TRUE, with its
        delta, alpha and high.power)."""
        from ..assessment.modification_indices import mi_power, modification_indices
        table = modification_indices(self)
        keep = (table["mi"] >= minimum) | (table["mi"].isna() & (minimum <= 0))
        table = table[keep].reset_index(drop=True)
        if power:
            table = pd.concat([table, mi_power(table["mi"], table["epc"], delta, alpha,
                                               high_power)], axis=1)
        return table

    def report(self, path: str | None = None, title: str | None = None, front=None) -> str:
        """One self-contained HTML page: fit, level graph, matrices, estimates, CIs,
        profile curves. Written to ``path`` when given; the HTML text is returned.
        ``front``: the LmerResult this fit was made for (its statistics are shown)."""
        from ..report import render_report
        html = render_report(self, title, front)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(html)
        return html

    # --------------------------------------------------------------- numbers
    @property
    def deviance(self):
        return self.record.deviance

    objective = deviance

    @property
    def n_parameters(self):
        """The free parameters, with fixed effects profiled out (flat='ml') counted:
        the ML fit maximised over them too."""
        return len(self.labels) + self.problem.n_profiled

    @property
    def n_observations(self):
        return self.problem.n_observed

    @property
    def converged(self):
        return self.record.converged

    @property
    def params(self):
        """Estimates as a Series indexed by label."""
        return pd.Series(self.record.estimate, index=self.labels, name="estimate")

    @property
    def estimates(self):
        """One row per parameter: where it is, estimate, se, z, p, at_bound."""
        table = self.problem.params.table
        first = table.drop_duplicates("label").set_index("label").loc[self.labels]
        places = table.groupby("label", sort=False).apply(
            lambda g: "; ".join(f"{r.child}<-{r.parent}:{r.type}[{r.row},{r.col}]"
                                for r in g.itertuples()), include_groups=False)
        se = np.sqrt(np.diag(self.vcov.to_numpy()))
        est = self.record.estimate
        with np.errstate(invalid="ignore", divide="ignore"):
            z = est / se
        out = pd.DataFrame({
            "label": self.labels, "child": first["child"].to_numpy(),
            "parent": first["parent"].to_numpy(), "type": first["type"].to_numpy(),
            "row": first["row"].to_numpy(), "col": first["col"].to_numpy(),
            "estimate": est, "se": se, "z": z, "p": 2 * norm.sf(np.abs(z)),
            "at_bound": self.record.at_bound,
            "appears_in": places.loc[self.labels].to_numpy()})
        if self.profile is not None:
            ci = self.profile.estimates.set_index("label").reindex(self.labels)
            for col in ("lower", "upper", "lower_status", "upper_status"):
                out[col] = ci[col].to_numpy()
        return out

    def fit_statistics(self) -> dict:
        """-2 log L, log L, parameters, observed values (the N of BIC), AIC, BIC."""
        return {"deviance": self.deviance, "loglik": self.loglik,
                "nParameters": self.n_parameters, "nObservations": self.n_observations,
                "aic": self.aic, "bic": self.bic}

    def convergence(self) -> dict:
        """How the optimiser ended: converged, status, max |projected gradient|,
        evaluations, parameters on a bound, parameters of a non-positive-definite
        Hessian."""
        return {"converged": self.converged, "status": self.record.status,
                "gradient_norm": self.record.gradient_norm,
                "n_evaluations": self.record.n_evaluations,
                "at_bound": [lab for lab, b in zip(self.labels, self.record.at_bound) if b],
                "hessian_not_positive_definite": self.hessian_problem,
                "not_identified": self.not_identified}

    def summary(self, fit_measures: bool = False, standardized: bool = False,
                rsquare: bool = False, modindices: bool = False) -> Summary:
        """The Summary: ``{'fit': fit_statistics() and convergence() in one dict,
        'estimates': DataFrame}``, printed like lavaan's summary.

        As lavaan's ``summary(fit, fit.measures=, standardized=, rsquare=)``:
        ``fit_measures`` adds the model test and fit indices (``fit['fit_measures']``,
        a dict; shown from then on, as they are kept), ``standardized`` the std_lv and
        std_all columns, ``rsquare`` an R-squared block, ``modindices`` the ten
        largest modification indices. A model they cannot be formed for gets a note
        that says why.
        """
        fit = {**self.fit_statistics(), **self.convergence()}
        extra_blocks, extra_notes = [], []
        if fit_measures or self._measures is not None:
            try:
                fit["fit_measures"] = self.fit_measures().to_dict()
            except ValueError as exc:
                extra_notes.append(f"Fit measures not available: {exc}")
        assessment = []
        if standardized or rsquare or modindices:
            try:
                self._structure()
                assessment = [standardized, rsquare, modindices]
            except ValueError as exc:
                extra_notes.append(f"Standardised solution, R-squared and modification "
                                   f"indices not available: {exc}")
        problem = self.problem
        sizes = ", ".join(f"{name} ({n} units)" for name, n in self._level_sizes())
        header = [("Levels", f"{sizes}; {problem.structure}"),
                  ("Estimator", "REML (flat-prior levels integrated out)"
                   if problem.estimator == "REML" else
                   "ML (flat-prior level's fixed effects profiled out)"
                   if problem.n_profiled else "ML"),
                  ("Optimisation", ("converged" if fit["converged"] else
                                    f"NOT converged ({fit['status']})")
                   + f" after {fit['n_evaluations']} evaluations, max |gradient| "
                     f"{fit['gradient_norm']:.1e}"),
                  ("Parameters", str(fit["nParameters"])),
                  ("Observed values (N of BIC)", str(fit["nObservations"])),
                  ("-2 log L (deviance)", f"{fit['deviance']:.4f}"),
                  ("log L", f"{fit['loglik']:.4f}"),
                  ("AIC", f"{fit['aic']:.4f}"),
                  ("BIC", f"{fit['bic']:.4f}")]
        est = self.estimates
        if assessment and assessment[0]:
            std = self.standardized().dropna(subset=["label"]).drop_duplicates("label")
            std = std.set_index("label").reindex(est["label"])
            est = est.assign(std_lv=std["std_lv"].to_numpy(), std_all=std["std_all"].to_numpy())
        if assessment and assessment[1]:
            extra_blocks.append(("R-squared", self.r_squared()))
        if assessment and assessment[2]:
            top = self.modification_indices().dropna(subset=["mi"]).head(10)
            extra_blocks.append(("Modification indices (the ten largest; observed "
                                 "information)", top[["child", "parent", "type", "row", "col",
                                                      "mi", "epc", "sepc_all"]]))
        if "fit_measures" in fit:
            header += _fit_measure_lines(fit["fit_measures"], self)
        notes = list(extra_notes)
        if fit["at_bound"]:
            notes.append("On a bound (variance at 0, no standard error): "
                         + ", ".join(fit["at_bound"]))
        if fit["hessian_not_positive_definite"]:
            notes.append("Hessian not positive definite (not identified?): "
                         + ", ".join(fit["hessian_not_positive_definite"]))
        for group in fit["not_identified"]:
            notes.append("NOT IDENTIFIED: -2 log L is flat along a combination of "
                         + ", ".join(group) + " (their estimates depend on the start "
                         "values; no standard errors)")
        if not fit["converged"]:
            notes.append(f"WARNING: the optimiser did not converge ({fit['status']}).")
        if self.profile is not None:
            notes += ["", self.profile.describe()]
        return Summary(f"xxmpy {_version()} fit of '{self.model.name}'", header,
                       _estimate_blocks(est, self.profile is not None, self._forms())
                       + extra_blocks,
                       notes, fit=fit, estimates=est)

    def _level_sizes(self):
        """[(level name, units)] as the summary states them."""
        return [(lev.name, lev.n) for lev in self.problem.levels]

    def __str__(self) -> str:
        return str(self.summary())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return self.summary().to_html()

    def _warn(self):
        if not self.converged:
            warnings.warn(f"xxmRun: the optimiser did not converge ({self.record.status}; "
                          f"max |projected gradient| {self.record.gradient_norm:.2e}). "
                          f"Try other start values.", ConvergenceWarning, stacklevel=4)
        bound = [lab for lab, b in zip(self.labels, self.record.at_bound) if b]
        if bound:
            warnings.warn(f"xxmRun: estimates on a bound (variance at 0): {', '.join(bound)}; "
                          f"no standard errors for them.", BoundaryWarning, stacklevel=4)
        if self.hessian_problem:
            warnings.warn("xxmRun: the Hessian of -2 log L is not positive definite; the "
                          "model may not be identified. Parameters involved: "
                          + ", ".join(self.hessian_problem), HessianWarning, stacklevel=4)
        for group in self.not_identified:
            warnings.warn("xxmRun: the model is not identified: -2 log L is flat along a "
                          "combination of " + ", ".join(group) + "; their estimates "
                          "depend on the start values. Fix one of them (e.g. a loading or "
                          "a factor variance) or constrain them.", IdentificationWarning,
                          stacklevel=4)


def _version():
    from .. import __version__
    return __version__


def _fit_measure_lines(fm, result):
    """Header lines of the model test and fit indices, as lavaan prints them (with the
    N that RMSEA and BIC use)."""
    level = result.problem.level_names[result._structure()[0]]
    srmr = ", ".join(f"{key[5:]} {fm[key]:.3f}" for key in fm
                     if key.startswith("srmr_"))
    return [("", ""),
            ("Model test (vs saturated)", f"chisq {fm['chisq']:.3f}, df {fm['df']:g}, "
                                          f"p {fm['pvalue']:.3f}"),
            ("Baseline test", f"chisq {fm['baseline_chisq']:.3f}, "
                              f"df {fm['baseline_df']:g}"),
            ("CFI / TLI", f"{fm['cfi']:.3f} / {fm['tli']:.3f}"),
            (f"RMSEA (N = {int(fm['ntotal'])} '{level}' rows)",
             f"{fm['rmsea']:.3f}, 90% CI [{fm['rmsea_ci_lower']:.3f}, "
             f"{fm['rmsea_ci_upper']:.3f}], p(RMSEA <= 0.05) {fm['rmsea_pvalue']:.3f}"),
            ("SRMR", f"{fm['srmr']:.3f} ({srmr})"),
            (f"BIC (N = {int(fm['ntotal'])} rows) / BIC2", f"{fm['bic']:.4f} / "
                                                           f"{fm['bic2']:.4f}")]


FORM_NOTES = {"ggm": "network: partial correlations off the diagonal, scales on it",
              "prec": "precision matrix", "chol": "Cholesky factor, lower triangle"}


def _estimate_blocks(est, with_ci, forms=None):
    """The estimates grouped as lavaan prints them: by level, then by matrix; forms:
    {(level, type): form= of a theta / psi not in covariance form} (its note)."""
    forms = forms or {}
    cols = ["row", "col", "label", "estimate", "se", "z", "p"]
    if "std_all" in est:
        cols += ["std_lv", "std_all"]
    shown = est.assign(z=[f"{v:.3f}" if np.isfinite(v) else "" for v in est["z"]],
                       p=[f"{v:.3f}" if np.isfinite(v) else "" for v in est["p"]])
    if with_ci:
        cols += ["lower", "upper", "ci"]
        shown = shown.assign(ci=[_ci_flag(a, b) for a, b in
                                 zip(est.lower_status, est.upper_status)])
    if est["at_bound"].any():
        shown = shown.assign(flag=np.where(est["at_bound"], "bound", ""))
        cols.append("flag")
    blocks = []
    for (child, parent, type_), part in shown.groupby(["child", "parent", "type"], sort=False):
        where = (f"level '{child}', within {type_}" if child == parent
                 else f"{parent} -> {child}, between {type_}")
        form = forms.get((child, type_)) if child == parent else None
        if form is not None:
            names = [form] if isinstance(form, str) else list(dict.fromkeys(form))
            notes = [f"{name} ({FORM_NOTES.get(name, 'covariances')})" for name in names]
            where += (f" in form {notes[0]}" if len(notes) == 1 else
                      " in forms " + " and ".join(notes) + ", a block each")
        blocks.append((where, part[cols]))
    return blocks
