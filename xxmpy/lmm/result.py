"""The result of an lmer fit, rendered from one object into numbers, tables and text.

Every number is computed from the fitted xxM model(s):

* variance components: the fit's estimates (theta, psi);
* fixed effects and their covariance: GLS, i.e. the posterior mean and
  covariance of the flat fixed-effects level, (X'V^-1X)^-1 X'V^-1 y and
  (X'V^-1X)^-1 at the variance estimates (lme4's fixef and vcov), in both
  forms: the REML form integrates the level out, the ML form profiles it out
  (flat="ml": -2 log L at the GLS fixed effects, which maximise it);
* conditional modes and variances of the random effects: the posterior of
  the etas given y and the fixed effects (lme4's ranef and condVar), which the
  ML form's posterior is; a REML fit takes its modes from the REML form's
  posterior means (Henderson's BLUPs at the GLS fixed effects, the same
  numbers) and computes the conditional variances from the ML form only when
  they are asked for;
* deviance (-2 log L of the ML form) and REML criterion at the estimates; a
  REML fit's deviance is REML criterion - log|X'V^-1X| + p log 2 pi;
* profile CIs of the fixed effects need them as parameters: the ML form with
  the fixed effects as kappa, fitted from the ML estimates (``_kappa_fit``).
"""
import warnings

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.stats import norm

from ..engine import latent_posterior
from ..errors import BoundaryWarning
from ..results.fit_result import InformationCriteria
from ..results.summary import Summary
from .safety import EVAL_CONTEXT
from .to_xxm import RESIDUAL, build_model, psi_label, response_offset

SINGULAR_TOL = 1e-4      # lme4's isSingular: a relative Cholesky diagonal below this


def values_for(problem, values):
    """Parameter vector of ``problem`` from {label: value} (every label must be there)."""
    return np.array([values[lab] for lab in problem.params.labels], dtype=float)


class LmerResult(InformationCriteria):
    """An lmer fit: lme4's accessors on top of the xxM model that was fitted.

    loglik, aic and bic use the objective (the REML criterion for REML fits),
    as lme4's logLik does.

    Attributes: ``model`` (the fitted xxM Model), ``fit_result`` (its FitResult),
    ``design`` (y, X, the grouping factors), ``reml`` (bool).
    """

    def __init__(self, design, model, fit_result, reml):
        self.design, self.model, self.fit_result, self.reml = design, model, fit_result, reml
        self.formula = design.formula
        self.profile = None         # the last profile_ci's intervals
        est = fit_result.params
        fixed = set(design.fixed_names)
        self.variance_parameters = {k: float(v) for k, v in est.items() if k not in fixed}
        self.on_bound = [lab for lab, b in zip(fit_result.labels, fit_result.record.at_bound)
                         if b]
        self._kappa = None
        self._gls()

    # ----------------------------------------------------------------- computing
    def _form(self, reml):
        """The compiled xxM problem of the REML (flat fixed level) or ML (kappa) form."""
        if reml == self.reml:
            return self.model.compile()
        return build_model(self.design, reml).compile()

    def _gls(self):
        """Fixed effects, vcov, criteria (and a REML fit's modes) from the fitted form's
        posterior: its flat level's block is the GLS estimate and (X'V^-1X)^-1."""
        names = self.design.fixed_names
        problem = self.fit_result.problem
        theta = values_for(problem, self.variance_parameters)
        flat = [k for k, lev in enumerate(problem.levels) if lev.flat]
        post = latent_posterior(problem, theta)
        if flat:
            mean, cov = post[flat[0]]
            mean, cov = mean[0] + response_offset(self.design), cov[0]
        else:                   # no fixed effects (y ~ 0 + ...): REML is ML
            mean, cov = np.zeros(0), np.zeros((0, 0))
        self._fixef = pd.Series(mean, index=names, name="Estimate", dtype=float)
        self._vcov = pd.DataFrame(cov, index=names, columns=names)
        value = float(self.fit_result.deviance)        # -2 log L at these estimates
        self._modes = self._modes_from(problem, post)
        self._condvar = None
        if self.reml:
            # the REML form gives the rest without the ML form: the random effects'
            # posterior means are their modes at the GLS fixed effects (Henderson), and
            # -2 log L = REML criterion - log|X'V^-1X| + p log 2 pi
            self.reml_criterion = value
            self.deviance = value + float(np.linalg.slogdet(cov)[1]) + \
                len(names) * np.log(2.0 * np.pi) if len(names) else value
        else:
            # the ML form's posterior is given the fixed effects: lme4's condVar
            self.reml_criterion, self.deviance = None, value
            self._condvars(problem, post)

    def _kappa_fit(self):
        """FitResult of the ML form with the fixed effects as kappa parameters, fitted
        from the ML estimates (a REML fit's ML refit's): the fixed effects' profile CIs
        need them as parameters. Computed once."""
        if self.reml:
            return self.refit_ml()._kappa_fit()
        if self._kappa is None:
            if not self.design.fixed_names:         # nothing profiled: the same model
                self._kappa = self.fit_result
            else:
                model = build_model(self.design, False, profiled=False,
                                    start={**self.variance_parameters,
                                           **self._fixef.to_dict()})
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", BoundaryWarning)
                    self._kappa = model.fit()
        return self._kappa

    def _modes_from(self, problem, post):
        """{factor: DataFrame of the posterior means} from latent_posterior's output."""
        out = {}
        for f in self.design.factors:
            mean = post[problem.level_names.index(f.name)][0]
            out[f.name] = pd.DataFrame(mean, index=f.groups, columns=f.effect_names)
        return out

    def _ml_posterior(self):
        """(problem, theta, latent posterior) of the ML form at the estimates: the random
        effects given y and the GLS fixed effects."""
        problem = self._form(False)
        theta = values_for(problem, self.variance_parameters)
        return problem, theta, latent_posterior(problem, theta)

    def _condvars(self, problem=None, post=None):
        """{factor: (n_groups, m, m)} conditional covariances, from the ML form's
        posterior (given, or computed the first time)."""
        if self._condvar is None:
            if post is None:
                problem, _, post = self._ml_posterior()
            self._condvar = {f.name: post[problem.level_names.index(f.name)][1]
                             for f in self.design.factors}
        return self._condvar

    # ----------------------------------------------------------------- lme4 accessors
    @property
    def fixef(self):
        """Fixed effects (GLS at the variance estimates), a Series."""
        return self._fixef.copy()

    @property
    def vcov(self):
        """Covariance of the fixed effects, (X'V^-1X)^-1 at the estimates, a DataFrame."""
        return self._vcov.copy()

    @property
    def sigma(self):
        return float(np.sqrt(self.variance_parameters[RESIDUAL]))

    @property
    def n_parameters(self):
        """Fixed effects plus variance parameters (lme4's df of logLik)."""
        return len(self.design.fixed_names) + len(self.variance_parameters)

    @property
    def n_observations(self):
        return self.design.n

    @property
    def objective(self):
        """What the fit minimised: the REML criterion or the deviance."""
        return self.reml_criterion if self.reml else self.deviance

    def coefficients(self):
        """Estimate, Std. Error, t value of the fixed effects (lme4's coef(summary(m)))."""
        se = np.sqrt(np.diag(self._vcov.to_numpy()))
        return pd.DataFrame({"Estimate": self._fixef.to_numpy(), "Std. Error": se,
                             "t value": self._fixef.to_numpy() / se},
                            index=self.design.fixed_names)

    def psi(self, factor):
        """Covariance matrix of a factor's random effects, a DataFrame.

        A variance estimated on its bound (the optimiser's floor) reads 0.
        """
        f = self._factor(factor)
        names = f.effect_names
        out = np.zeros((len(names), len(names)))
        for r in range(len(names)):
            for c in range(len(names)):
                lab = psi_label(f.name, names, r, c)
                out[r, c] = 0.0 if lab in self.on_bound else \
                    self.variance_parameters.get(lab, 0.0)
        return pd.DataFrame(out, index=names, columns=names)

    def varcorr(self):
        """Variance components: one row per effect (variance, SD) and per pair (cov, corr)."""
        rows = []
        for f in self.design.factors:
            psi = self.psi(f.name).to_numpy()
            sd = np.sqrt(np.clip(np.diag(psi), 0, None))
            names = f.effect_names
            for r, a in enumerate(names):
                rows.append(dict(group=f.name, effect=a, with_="", variance=psi[r, r],
                                 sd=sd[r], corr=np.nan))
            for r in range(len(names)):
                for c in range(r):
                    if psi_label(f.name, names, r, c) in self.variance_parameters:
                        with np.errstate(invalid="ignore", divide="ignore"):
                            corr = psi[r, c] / (sd[r] * sd[c])
                        rows.append(dict(group=f.name, effect=names[c], with_=names[r],
                                         variance=psi[r, c], sd=np.nan, corr=corr))
        rows.append(dict(group=RESIDUAL, effect="", with_="",
                         variance=self.variance_parameters[RESIDUAL], sd=self.sigma,
                         corr=np.nan))
        return pd.DataFrame(rows).rename(columns={"with_": "with"})

    def is_singular(self, tol=SINGULAR_TOL):
        """True when a random-effects covariance is singular: a variance at 0 or |corr| = 1."""
        return bool(self.singular_factors(tol))

    def singular_factors(self, tol=SINGULAR_TOL):
        """Factors whose covariance, relative to the residual variance, has a Cholesky
        diagonal below ``tol`` (lme4's isSingular criterion on theta)."""
        out = []
        s2 = self.variance_parameters[RESIDUAL]
        for f in self.design.factors:
            psi = self.psi(f.name).to_numpy() / s2
            diag = _cholesky_diagonal(psi)
            if np.any(diag < tol):
                out.append(f.name)
        return out

    # ----------------------------------------------------------------- random effects
    def ranef(self):
        """{factor: DataFrame (groups x effects)} of conditional modes given y and fixef."""
        return {k: v.copy() for k, v in self._modes.items()}

    def condvar(self):
        """{factor: (n_groups, m, m)} conditional covariances of the random effects."""
        return {k: v.copy() for k, v in self._condvars().items()}

    def ranef_table(self, level=0.95):
        """Long table: factor, group, effect, mode, sd, lower, upper (prediction intervals)."""
        z = norm.ppf(0.5 + level / 2)
        parts = []
        for f in self.design.factors:
            modes, cv = self._modes[f.name], self._condvars()[f.name]
            for k, eff in enumerate(modes.columns):
                sd = np.sqrt(cv[:, k, k])
                parts.append(pd.DataFrame({
                    "factor": f.name, "group": modes.index, "effect": eff,
                    "mode": modes[eff].to_numpy(), "sd": sd,
                    "lower": modes[eff].to_numpy() - z * sd,
                    "upper": modes[eff].to_numpy() + z * sd}))
        return pd.concat(parts, ignore_index=True)

    def plot_ranef(self, factor=None, level=0.95):
        """Caterpillar plot: prediction intervals of the conditional modes, ordered by mode.

        One panel per effect of ``factor`` (default: the first factor). Needs matplotlib.
        """
        import matplotlib.pyplot as plt
        f = self._factor(factor or self.design.factors[0].name)
        table = self.ranef_table(level)
        table = table[table.factor == f.name]
        effects = list(dict.fromkeys(table.effect))
        fig, axes = plt.subplots(1, len(effects), figsize=(4 * len(effects),
                                                            max(3, 0.18 * len(f.groups))),
                                 squeeze=False)
        for ax, eff in zip(axes[0], effects):
            t = table[table.effect == eff].sort_values("mode")
            pos = np.arange(len(t))
            ax.errorbar(t["mode"], pos, xerr=[t["mode"] - t["lower"], t["upper"] - t["mode"]],
                        fmt="o", ms=3, color="C0", ecolor="0.5", lw=1)
            ax.axvline(0, color="0.3", lw=0.8, ls="--")
            ax.set_yticks(pos)
            ax.set_yticklabels(t["group"].astype(str), fontsize=7)
            ax.set_title(f"{f.name}: {eff}")
        fig.tight_layout()
        return fig

    # ----------------------------------------------------------------- predictions
    def fitted(self):
        """X fixef + Z modes for the rows used in the fit (indexed like the data)."""
        return pd.Series(self._linear_predictor(self.design.X, [
            (f, f.codes, f.Z) for f in self.design.factors]), index=self.design.rows,
            name="fitted")

    def residuals(self):
        return pd.Series(self.design.y, index=self.design.rows) - self.fitted()

    def predict(self, newdata=None, re_form=None, allow_new_levels=False):
        """Predictions for ``newdata`` (default: the fitted rows).

        re_form=None uses every random effect, re_form="~0" (or "NA") none.
        Groups not seen in the fit raise unless allow_new_levels=True, when
        they get the population mean (random effects 0), as lme4 does.
        """
        if newdata is None:
            return self.fitted() if re_form is None else pd.Series(
                self.design.X @ self._fixef.to_numpy(), index=self.design.rows)
        if not isinstance(newdata, pd.DataFrame):
            raise TypeError(f"predict: newdata= must be a pandas DataFrame, got "
                            f"{type(newdata).__name__}.")
        whole = re_form is None
        needed = [c for f in self.design.factors for c in f.columns] if whole else []
        missing = [c for c in dict.fromkeys(needed) if c not in newdata.columns]
        if missing:
            raise ValueError(f"predict: newdata has no column {missing} (grouping factors of "
                             f"the random effects); add it, or pass re_form='~0' to predict "
                             f"at the population mean.")
        X = _fixed_design(self.design.fixed_spec, newdata).to_numpy(dtype=float)
        parts = []
        if whole:
            for f in self.design.factors:
                codes = f.codes_for(newdata)
                unseen = codes < 0
                if unseen.any() and not allow_new_levels:
                    bad = newdata.loc[unseen, list(f.columns)].drop_duplicates()
                    bad = [tuple(r) if len(r) > 1 else r[0]
                           for r in bad.head(5).itertuples(index=False)]
                    raise ValueError(f"predict: newdata has {int(unseen.sum())} row(s) in "
                                     f"groups of '{f.name}' that the fit has not seen (for "
                                     f"example {bad}); pass allow_new_levels=True to predict "
                                     f"them at the population mean.")
                Z = np.column_stack([b.columns_for(newdata) for b in f.blocks])
                parts.append((f, codes, Z))
        elif str(re_form).replace(" ", "") not in ("~0", "NA", "0"):
            raise ValueError(f"predict: re_form={re_form!r} is not supported; use None (all "
                             f"random effects) or '~0' (none).")
        return pd.Series(self._linear_predictor(X, parts), index=newdata.index,
                         name="predicted")

    def _linear_predictor(self, X, parts):
        out = X @ self._fixef.to_numpy()
        for f, codes, Z in parts:
            modes = self._modes[f.name].to_numpy()
            b = np.where((codes >= 0)[:, None], modes[np.clip(codes, 0, None)], 0.0)
            out = out + np.sum(Z * b, axis=1)
        return out

    # ----------------------------------------------------------------- marginal covariance
    def marginal_covariance(self, factor=None, group=None):
        """V = Z G Z' + sigma^2 I as a sparse matrix (CSR), over all rows used in the fit.

        With ``factor`` and ``group``: the block of the rows in that group (for a
        top-level factor, one independent cluster).
        """
        n = self.design.n
        V = sparse.identity(n, format="csr") * self.variance_parameters[RESIDUAL]
        for f in self.design.factors:
            Z, m = f.Z, len(f.effect_names)
            rows = np.repeat(np.arange(n), m)
            cols = (f.codes[:, None] * m + np.arange(m)[None, :]).ravel()
            Zs = sparse.csr_matrix((Z.ravel(), (rows, cols)), shape=(n, len(f.groups) * m))
            G = sparse.kron(sparse.identity(len(f.groups)), self.psi(f.name).to_numpy(),
                            format="csr")
            V = V + Zs @ G @ Zs.T
        if factor is None:
            return V.tocsr()
        f = self._factor(factor)
        k = f.groups.get_loc(str(group))
        idx = np.flatnonzero(f.codes == k)
        return V.tocsr()[idx][:, idx]

    def gls(self):
        """(fixed effects, covariance) by GLS on the sparse V: (X'V^-1X)^-1 X'V^-1 y."""
        from scipy.sparse.linalg import splu
        lu = splu(self.marginal_covariance().tocsc())
        X, y = self.design.X, self.design.y
        VX, Vy = lu.solve(X), lu.solve(y)
        info = X.T @ VX
        cov = np.linalg.inv(info)
        names = self.design.fixed_names
        return (pd.Series(cov @ (X.T @ Vy), index=names),
                pd.DataFrame(cov, index=names, columns=names))

    # ----------------------------------------------------------------- inference
    def profile_ci(self, level=0.95, parameters=None, n_jobs=None, progress=None,
                   criterion="ml", executor=None):
        """Profile-likelihood CIs of the model's parameters, on the variance scale.

        criterion="ml" (the default; lme4's semantics): the profile of the ML
        deviance, as lme4's ``confint(method = "profile")`` computes it even for a
        REML fit (its profile refits the model by ML first); every variance
        parameter and every fixed effect gets an interval. criterion="reml": the
        profile of the REML criterion of a REML fit (variance parameters only: the
        fixed effects are integrated out). The intervals are kept (``.profile``,
        and shown by ``confint`` and ``estimates``). executor: a
        concurrent.futures.Executor or dask.distributed.Client for the limits.
        """
        if criterion not in ("ml", "reml"):
            raise ValueError(f"profile_ci: criterion= must be 'ml' or 'reml', got "
                             f"{criterion!r}.")
        if criterion == "reml" and not self.reml:
            raise ValueError("profile_ci: criterion='reml' needs a REML fit; this fit is ML.")
        source = self.fit_result if criterion == "reml" else self._kappa_fit()
        self.profile = source.profile_ci(level, parameters, n_jobs, progress, executor)
        return self.profile

    def confint(self, level=0.95, method="profile", n_jobs=None, progress=None):
        """lme4's ``confint(m, method = ...)``: a DataFrame with lme4's rows (sd_<effect>|
        <factor>, cor_<effect>.<effect>|<factor>, sigma, the fixed effects) and columns
        ('2.5 %', '97.5 %').

        method="profile": the profile of the ML deviance (of the ML refit for a REML
        fit, as lme4); a standard deviation's limits are the roots of its variance's
        (the same profile); a correlation's are those of its own profile, the variances
        free (FitResult.correlation_ci; -1 or 1 where the profile stays below the
        cutoff up to there). method="Wald": the fixed effects from their standard
        errors, NaN for the variance parameters (as lme4).
        """
        lo, hi = f"{50 * (1 - level):.3g} %", f"{50 * (1 + level):.3g} %"
        rows = {}
        for f in self.design.factors:
            names = f.effect_names
            for c, a in enumerate(names):       # lme4's order: down each column
                rows[f"sd_{a}|{f.name}"] = ("sd", psi_label(f.name, names, c, c))
                for r in range(c + 1, len(names)):
                    if psi_label(f.name, names, r, c) in self.variance_parameters:
                        rows[f"cor_{names[r]}.{a}|{f.name}"] = ("cor",
                                                                psi_label(f.name, names, r, c))
        rows["sigma"] = ("sd", RESIDUAL)
        rows.update({name: ("fixed", name) for name in self.design.fixed_names})
        out = pd.DataFrame(np.nan, index=list(rows), columns=[lo, hi])
        if method == "Wald":
            z = norm.ppf(0.5 + level / 2)
            se = np.sqrt(np.diag(self._vcov.to_numpy()))
            for name, est, s in zip(self.design.fixed_names, self._fixef.to_numpy(), se):
                out.loc[name] = [est - z * s, est + z * s]
            return out
        if method != "profile":
            raise ValueError(f"confint: method= must be 'profile' or 'Wald', got {method!r}.")
        ml = self.refit_ml()
        prof = ml._kappa_fit().profile_ci(level, None, n_jobs, progress)
        if not self.reml:
            self.profile = prof
        table = prof.estimates.set_index("label")
        cors = [label for kind, label in rows.values() if kind == "cor"]
        cor_table = ml.fit_result.correlation_ci(cors, level).set_index("label") if cors \
            else None
        for row, (kind, label) in rows.items():
            if kind == "cor":
                out.loc[row] = cor_table.loc[label, ["lower", "upper"]].to_numpy(dtype=float)
                continue
            if label not in table.index:
                continue
            limits = table.loc[label, ["lower", "upper"]].to_numpy(dtype=float)
            out.loc[row] = np.sqrt(np.maximum(limits, 0.0)) if kind == "sd" else limits
        return out

    def report(self, path=None, title=None):
        """The HTML report of the xxM model behind this fit (FitResult.report)."""
        title = title or f"lmer({self.formula}, REML={self.reml})"
        return self.fit_result.report(path, title, front=self)

    # ----------------------------------------------------------------- summary
    def refit_ml(self):
        """The same model fitted by maximum likelihood (self when already ML)."""
        if not self.reml:
            return self
        from .fit import fit_design
        return fit_design(self.design, False, start={**self.variance_parameters,
                                                     **self._fixef.to_dict()})

    def fit_statistics(self):
        out = {"method": "REML" if self.reml else "ML",
               "reml_criterion": self.reml_criterion, "deviance": self.deviance,
               "loglik": self.loglik, "aic": self.aic, "bic": self.bic,
               "n_parameters": self.n_parameters, "n_observations": self.n_observations,
               "n_groups": {f.name: len(f.groups) for f in self.design.factors},
               "singular": self.singular_factors(),
               "converged": self.fit_result.converged, "status": self.fit_result.record.status}
        if self.design.n_dropped:
            out["rows_dropped_for_missing"] = self.design.n_dropped
        return out

    @property
    def estimates(self):
        """Every parameter in the estimates schema of FitResult.estimates: label, kind
        ('fixed' or 'variance'), estimate, se, z, p (and the profile CI columns once
        profile_ci has run). Fixed effects: GLS with (X'V^-1X)^-1; variance
        parameters: the fitted xxM model's estimates and Hessian SEs."""
        coef = self.coefficients()
        fixed = pd.DataFrame({"label": coef.index, "kind": "fixed",
                              "estimate": coef["Estimate"].to_numpy(),
                              "se": coef["Std. Error"].to_numpy()})
        fit = self.fit_result.estimates.set_index("label")
        var = fit.loc[list(self.variance_parameters)]
        variance = pd.DataFrame({"label": var.index, "kind": "variance",
                                 "estimate": var["estimate"].to_numpy(),
                                 "se": var["se"].to_numpy()})
        out = pd.concat([fixed, variance], ignore_index=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["z"] = out["estimate"] / out["se"]
        out["p"] = 2 * norm.sf(np.abs(out["z"]))
        if self.profile is not None:
            ci = self.profile.estimates.set_index("label").reindex(out["label"])
            for col in ("lower", "upper", "lower_status", "upper_status"):
                out[col] = ci[col].to_numpy()
        return out

    def summary(self):
        """The Summary: a dict {'fit': statistics, 'fixed': coefficients, 'random':
        variance components, 'estimates': every parameter} printed like lme4's."""
        st = self.fit_statistics()
        head = "REML" if self.reml else "maximum likelihood"
        header = [("", f"Formula: {self.formula}")]
        if self.reml:
            header.append(("", f"REML criterion at convergence: {self.reml_criterion:.4f}"))
        header.append(("", f"     AIC {self.aic:.4f}   BIC {self.bic:.4f}   logLik "
                           f"{self.loglik:.4f}   deviance {self.deviance:.4f}"))
        groups = ", ".join(f"{k}, {v}" for k, v in st["n_groups"].items())
        vc = self.varcorr()
        coef = self.coefficients()
        notes = [f"Number of obs: {self.n_observations}, groups: {groups}"]
        if self.design.n_dropped:
            notes.append(f"({self.design.n_dropped} row(s) with missing values dropped)")
        if st["singular"]:
            notes.append("boundary (singular) fit: the random-effects covariance of "
                         + ", ".join(st["singular"]) + " is singular (a variance at 0 or a "
                         "correlation at +/-1); see is_singular().")
        if not st["converged"]:
            notes.append(f"WARNING: the optimiser did not converge ({st['status']}).")
        blocks = [("Random effects", vc)]
        if len(coef):
            blocks.append(("Fixed effects", coef.reset_index(names="")))
        return Summary(f"Linear mixed model fit by {head} (xxmpy)", header, blocks, notes,
                       fit=st, fixed=coef, random=vc, estimates=self.estimates)

    def __str__(self):
        return str(self.summary())

    __repr__ = __str__

    def _repr_html_(self):
        return self.summary().to_html()

    def _factor(self, name):
        for f in self.design.factors:
            if f.name == name:
                return f
        raise KeyError(f"no grouping factor '{name}'; the factors are "
                       f"{[f.name for f in self.design.factors]}.")


def _fixed_design(spec, newdata):
    """The fixed-effects columns for new rows; a categorical level the fit has not seen,
    or a missing variable, is an error (lme4 stops there too), never a silent 0."""
    from formulaic.errors import FactorEvaluationError
    from formulaic.transforms.contrasts import DataMismatchWarning
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataMismatchWarning)
        try:
            return spec.get_model_matrix(newdata, na_action="ignore", context=EVAL_CONTEXT)
        except DataMismatchWarning as exc:
            raise ValueError(f"predict: newdata has levels of a categorical fixed effect "
                             f"that the fit has not seen ({exc}); predictions for them are "
                             f"not defined. Drop those rows or refit with them.") from None
        except FactorEvaluationError as exc:
            raise ValueError(f"predict: the fixed effects cannot be evaluated on newdata "
                             f"({str(exc).splitlines()[0]}); newdata needs every variable "
                             f"of the fixed part.") from None


def _cholesky_diagonal(mat):
    """Diagonal of the pivot-free Cholesky factor of a PSD matrix (0 where it breaks down)."""
    m = mat.shape[0]
    L = np.zeros_like(mat)
    for j in range(m):
        d = mat[j, j] - L[j, :j] @ L[j, :j]
        if d <= 0:
            L[j, j] = 0.0
            continue
        L[j, j] = np.sqrt(d)
        L[j + 1:, j] = (mat[j + 1:, j] - L[j + 1:, :j] @ L[j, :j]) / L[j, j]
    return np.diag(L)
