"""The result of a fit: one object from which every number users see renders.

``FitResult.summary()`` returns ``{"fit": {...}, "estimates": DataFrame}``;
``str(result)`` renders the same numbers as text.
"""
import warnings

import numpy as np
import pandas as pd
from scipy.stats import norm

from .errors import BoundaryWarning, ConvergenceWarning, HessianWarning
from .profile import profile_ci


def _covariance(record):
    """Parameter covariance 2 H^-1 over parameters off their bounds; problems found."""
    k = record.estimate.size
    cov = np.full((k, k), np.nan)
    free = ~record.at_bound
    H = record.hessian[np.ix_(free, free)]
    if H.size == 0:
        return cov, []
    H = (H + H.T) / 2
    if not np.all(np.isfinite(H)):
        return cov, list(np.flatnonzero(free))
    vals, vecs = np.linalg.eigh(H)
    if vals[0] <= 1e-10 * max(1.0, abs(vals[-1])):
        bad = np.flatnonzero(free)[np.abs(vecs[:, 0]) > 0.3]
        return cov, list(bad)
    cov[np.ix_(free, free)] = 2.0 * np.linalg.inv(H)
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
    """Estimates, fit statistics and the optimisation record of one fit."""

    def __init__(self, model, problem, record, checked):
        self.model, self.problem, self.record = model, problem, record
        self.checked = checked      # validate.CheckedModel the problem was compiled from
        self.labels = list(problem.params.labels)
        self.vcov, not_pd = _covariance(record)
        self.hessian_problem = [self.labels[k] for k in not_pd]
        self.profile = None
        self._warn()

    def profile_ci(self, level=0.95, parameters=None, n_jobs=None, progress=None):
        """Profile-likelihood CIs (see xxmpy.profile.profile_ci); kept as ``.profile``.

        The estimates table and the summary show them from then on.
        """
        self.profile = profile_ci(self, level, parameters, n_jobs, progress)
        return self.profile

    def report(self, path=None, title=None):
        """One self-contained HTML page: fit, level graph, matrices, estimates, CIs,
        profile curves. Written to ``path`` when given; the HTML text is returned."""
        from .report import render_report
        html = render_report(self, title)
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
        return len(self.labels)

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
        se = np.sqrt(np.diag(self.vcov))
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
            ci = self.profile.table.set_index("label").reindex(self.labels)
            for col in ("lower", "upper", "lower_status", "upper_status"):
                out[col] = ci[col].to_numpy()
        return out

    def fit_statistics(self):
        return {"deviance": self.deviance, "loglik": self.loglik,
                "nParameters": self.n_parameters, "nObservations": self.n_observations,
                "aic": self.aic, "bic": self.bic, "converged": self.converged,
                "status": self.record.status, "gradient_norm": self.record.gradient_norm,
                "n_evaluations": self.record.n_evaluations,
                "at_bound": [lab for lab, b in zip(self.labels, self.record.at_bound) if b],
                "hessian_not_positive_definite": self.hessian_problem}

    def summary(self):
        """{'fit': fit statistics, 'estimates': DataFrame}."""
        return {"fit": self.fit_statistics(), "estimates": self.estimates}

    # --------------------------------------------------------------- text
    def __str__(self):
        fit = self.fit_statistics()
        lines = [f"xxmpy fit: {self.model.name}",
                 f"  levels: {', '.join(self.problem.level_names)} ({self.problem.structure})",
                 f"  -2 log L (deviance) {fit['deviance']:.4f}   log L {fit['loglik']:.4f}",
                 f"  parameters {fit['nParameters']}   observed values {fit['nObservations']}",
                 f"  AIC {fit['aic']:.4f}   BIC {fit['bic']:.4f}",
                 f"  converged: {'yes' if fit['converged'] else 'NO'} ({fit['status']}, "
                 f"max |gradient| {fit['gradient_norm']:.1e}, "
                 f"{fit['n_evaluations']} evaluations)"]
        if fit["at_bound"]:
            lines.append(f"  on a bound (variance at 0): {', '.join(fit['at_bound'])}")
        if fit["hessian_not_positive_definite"]:
            lines.append("  Hessian not positive definite (not identified?): "
                         + ", ".join(fit["hessian_not_positive_definite"]))
        est = self.estimates[["label", "child", "parent", "type", "row", "col", "estimate",
                              "se"]].copy()
        if self.profile is not None:
            full = self.estimates
            est["lower"], est["upper"] = full["lower"], full["upper"]
            est["ci"] = [_ci_flag(a, b) for a, b in zip(full.lower_status, full.upper_status)]
        est["flag"] = np.where(self.record.at_bound, "bound", "")
        lines += ["", est.to_string(index=False, float_format=lambda v: f"{v:.6g}")]
        if self.profile is not None:
            lines += ["", self.profile.describe()]
        return "\n".join(lines)

    __repr__ = __str__

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
