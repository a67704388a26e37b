"""The result of a lavaan-syntax fit: the fitted xxM model with lavaan's names."""
import numpy as np
import pandas as pd
from scipy.stats import norm

from ..spec.objects import BETWEEN_ROLES, WITHIN_ROLES


class SemResult:
    """A fitted lavaan-syntax model. ``fit`` is the FitResult of the compiled xxM model
    (``model``): every FitResult attribute and method (profile_ci, fit_measures,
    modification_indices, report, ...) is reachable from here too."""

    def __init__(self, fit, syntax, source):
        self.fit, self.syntax, self.source = fit, syntax, source
        self.model = fit.model
        self.defined_ci = {}          # name -> (lower Limit, upper Limit), once profiled

    def __getattr__(self, name):
        if name.startswith("__") or name in ("fit", "syntax", "source", "model",
                                             "defined_ci"):
            raise AttributeError(name)
        return getattr(self.fit, name)

    def profile_ci(self, level=0.95, parameters=None, n_jobs=None, progress=None,
                   executor=None):
        """Profile-likelihood CIs (FitResult.profile_ci) of the model's parameters and,
        by constrained fits, of the defined ones (defined_profile.py); parameters:
        labels and defined names (default all); executor: a concurrent.futures.Executor
        or dask.distributed.Client for the parameters' limits. Returns the ProfileCI
        with the defined parameters' rows added; parameter_estimates() shows them."""
        from scipy.special import chdtri

        from .defined_profile import defined_limits
        names = [d.name for d in self.syntax.defined]
        wanted = None if parameters is None else \
            [parameters] if isinstance(parameters, str) else list(parameters)
        unknown = [] if wanted is None else \
            [p for p in wanted if p not in names and p not in self.fit.labels]
        if unknown:
            raise ValueError(f"profile_ci: unknown parameter(s) {unknown}; labels: "
                             f"{self.fit.labels}, defined: {names}.")
        own = None if wanted is None else [p for p in wanted if p not in names]
        defined = names if wanted is None else [p for p in wanted if p in names]
        ci = self.fit.profile_ci(level, own if own != [] else self.fit.labels[:1], n_jobs,
                                 progress, executor)
        cutoff = float(chdtri(1, 1.0 - level))
        rows = []
        for name in defined:
            lo, hi, est = defined_limits(self, name, cutoff)
            self.defined_ci[name] = (lo, hi)
            rows.append(dict(label=name, estimate=est, lower=lo.value, upper=hi.value,
                             lower_status=lo.status, upper_status=hi.status,
                             lower_rise=lo.rise if lo.status == "ok" else np.nan,
                             upper_rise=hi.rise if hi.status == "ok" else np.nan,
                             message="; ".join(m for m in (lo.message, hi.message) if m)))
        if rows:
            ci.estimates = pd.concat([ci.estimates, pd.DataFrame(rows)], ignore_index=True)
        return ci

    def parameter_estimates(self, level=0.95, standardized=True):
        """lavaan's parameterEstimates layout: lhs, op, rhs, level, label, est, se, z,
        pvalue, ci_lower, ci_upper (Wald, or the profile limits once profile_ci has
        run), std_all; one row per parameter of the syntax (fixed ones with se NaN)."""
        fit = self.fit
        problem, theta = fit.problem, fit.record.estimate
        names = problem.level_names
        table = fit.estimates.set_index("label")
        std = None
        if standardized:
            try:
                std = fit.standardized().set_index(["child", "parent", "type", "row", "col"])
            except ValueError:
                std = None
        z_crit = norm.ppf(0.5 + level / 2)
        out = []
        for r in self.syntax.rows:
            if r.key is None:             # a constant of the syntax (a folded part's 0)
                out.append(dict(lhs=r.lhs, op=r.op, rhs=r.rhs, level=r.level, label="",
                                est=r.value, se=np.nan, z=np.nan, pvalue=np.nan,
                                ci_lower=np.nan, ci_upper=np.nan, std_all=np.nan))
                continue
            child, parent, kind = r.key
            key = (names.index(child), -1 if parent is None else names.index(parent), kind)
            shape = problem.slots.shape[key]
            est = float(problem.matrix(theta, key, shape)[r.row, r.col])
            se = abs(r.coef) * float(table.loc[r.label, "se"]) if r.free else np.nan
            z = est / se if r.free and se > 0 else np.nan
            low, high = est - z_crit * se, est + z_crit * se
            if r.free and "lower" in table.columns:     # a == c*b: c times b's limits
                low, high = sorted(r.coef * table.loc[r.label, ["lower", "upper"]])
            std_all = np.nan
            if std is not None:
                names_of = self._variable_names(child, parent, kind, r.row, r.col)
                at = (child, parent or child, kind) + names_of
                if at not in std.index:       # a covariance is kept once, lower triangle
                    at = (child, parent or child, kind) + names_of[::-1]
                if at in std.index:
                    std_all = float(np.atleast_1d(std.loc[at, "std_all"])[0])
            out.append({"lhs": r.lhs, "op": r.op if r.op != "~1" else "~1", "rhs": r.rhs,
                        "level": r.level, "label": r.shown or r.label or "", "est": est,
                        "se": se,
                        "z": z, "pvalue": 2 * norm.sf(abs(z)) if np.isfinite(z) else np.nan,
                        "ci_lower": low, "ci_upper": high, "std_all": std_all})
        out += self._defined_rows(z_crit)
        return pd.DataFrame(out)

    def defined_values(self, theta):
        """{name: value} of the defined parameters (:=) at parameters theta (k,), in
        order (each may read the ones before it)."""
        values = self.syntax.label_values(self.fit.labels, theta)
        out = {}
        for d in self.syntax.defined:
            values[d.name] = out[d.name] = float(d.function(values))
        return out

    def defined_jacobian(self, theta):
        """(n_defined, k) d(defined value)/d theta at theta, by central differences
        with steps relative to each parameter's unit (rows in definition order)."""
        theta = np.asarray(theta, float)
        units = np.asarray(self.fit.problem.param_units, float)
        names = [d.name for d in self.syntax.defined]
        J = np.zeros((len(names), theta.size))
        for j in range(theta.size):
            h = 1e-6 * max(abs(theta[j]), units[j])
            up, down = theta.copy(), theta.copy()
            up[j] += h
            down[j] -= h
            hi, lo = self.defined_values(up), self.defined_values(down)
            J[:, j] = [(hi[n] - lo[n]) / (2 * h) for n in names]
        return J

    def _defined_rows(self, z_crit):
        """Rows of the defined parameters: value at the estimates, delta-method SE."""
        if not self.syntax.defined:
            return []
        fit = self.fit
        theta = np.asarray(fit.record.estimate, float)
        est = self.defined_values(theta)
        J = self.defined_jacobian(theta)
        vcov = fit.vcov.to_numpy()
        rows = []
        for i, d in enumerate(self.syntax.defined):
            used = np.abs(J[i]) > 0
            se = float(np.sqrt(J[i, used] @ vcov[np.ix_(used, used)] @ J[i, used])) \
                if used.any() else 0.0
            value = est[d.name]
            z = value / se if se > 0 else np.nan
            low, high = value - z_crit * se, value + z_crit * se
            if d.name in self.defined_ci:           # the profile limits, once computed
                low, high = (limit.value for limit in self.defined_ci[d.name])
            rows.append({"lhs": d.name, "op": ":=", "rhs": d.text, "level": 0,
                         "label": d.name, "est": value, "se": se, "z": z,
                         "pvalue": 2 * norm.sf(abs(z)) if np.isfinite(z) else np.nan,
                         "ci_lower": low, "ci_upper": high, "std_all": np.nan})
        return rows

    def _variable_names(self, child, parent, kind, r, c):
        spec = self.model.spec.submodels
        roles = WITHIN_ROLES[kind] if parent is None else BETWEEN_ROLES[kind]
        col_level = child if parent is None else parent

        def name(role, level, k):
            return "1" if role == "1" else spec[level].variables(role)[k]
        return name(roles[0], child, r), name(roles[1], col_level, c)

    def summary(self):
        """lavaan-style text: the fit, then the parameters by level and kind."""
        fit = self.fit
        lines = [f"xxmpy {type(self).__name__} (lavaan syntax) -- "
                 f"{'converged' if fit.converged else 'NOT converged'}: {fit.record.status}",
                 f"  Number of model parameters  {fit.n_parameters}",
                 f"  Levels                      {self.syntax.structure}"]
        units = fit.problem.levels
        lines += [f"  Number of observations      {units[0].n}"] + \
            [f"  Number of clusters [{lev.name}]".ljust(30) + f"{units[k].n}"
             for k, lev in enumerate(self.syntax.levels) if k > 0]
        lines += [
                 f"  -2 log L                    {fit.deviance:.4f}",
                 f"  log L                       {-fit.deviance / 2:.4f}"]
        try:
            fm = fit.fit_measures()
            lines += [f"  Model test: chisq {fm['chisq']:.3f}, df {fm['df']:.0f}, "
                      f"p {fm['pvalue']:.3f};  CFI {fm['cfi']:.3f}, TLI {fm['tli']:.3f}, "
                      f"RMSEA {fm['rmsea']:.3f}, SRMR {fm['srmr']:.3f}"]
        except (ValueError, RuntimeError) as exc:
            lines.append(f"  Fit measures not available: {exc}")
        pe = self.parameter_estimates()
        sections = {"=~": "Latent Variables", "~": "Regressions", "~~": "Covariances",
                    "~1": "Intercepts"}
        defined = pe[pe.op == ":="]
        pe = pe[pe.op != ":="]
        for lev in sorted(pe.level.unique()):
            part = pe[pe.level == lev]
            if pe.level.nunique() > 1:
                name = self.syntax.levels[lev - 1].name if 0 < lev <= len(self.syntax.levels) \
                    else ""
                lines += ["", f"Level {lev} [{name}]:"]
            for op, title in sections.items():
                rows = part[part.op == op]
                if op == "~~":
                    rows = rows[rows.lhs != rows.rhs]
                if len(rows):
                    lines += ["", f"{title}:",
                              rows[["lhs", "op", "rhs", "label", "est", "se", "z", "pvalue",
                                    "std_all"]].to_string(index=False, float_format=lambda v:
                                                          f"{v:.3f}")]
            var = part[(part.op == "~~") & (part.lhs == part.rhs)]
            if len(var):
                lines += ["", "Variances:", var[["lhs", "op", "rhs", "label", "est", "se", "z",
                                                 "pvalue", "std_all"]].to_string(
                    index=False, float_format=lambda v: f"{v:.3f}")]
        if len(defined):
            lines += ["", "Defined Parameters:", defined[["lhs", "op", "rhs", "est", "se", "z",
                                                          "pvalue"]].to_string(
                index=False, float_format=lambda v: f"{v:.3f}")]
        return "\n".join(lines)

    def __repr__(self):
        return self.summary()
