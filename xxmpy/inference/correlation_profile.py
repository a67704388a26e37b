"""Profile-likelihood CIs of a correlation inside a covariance matrix.

The profile of rho_rc = Sigma_rc / sqrt(Sigma_rr Sigma_cc) is -2 log L minimised with
rho_rc held and everything else free, the two variances included (lme4's
profile of a correlation). The fit holds it as a coordinate of the block's
Cholesky factor (fit/transform.py, correlation=True); the limits are found by
the root finding of profile.py on that derived quantity, with the slope of the
profile (the gradient in that coordinate at the re-optimised point) for Newton
steps. A correlation whose profile stays below the cutoff up to +/-(1 - EDGE)
gets the limit +/-1 with status 'boundary'.
"""
import numpy as np
import pandas as pd
from scipy.special import chdtri

from ..fit.optimize import fit_problem
from ..fit.transform import Transform
from .profile import Profiled, _Context, root_finding

EDGE = 1e-3        # the profile is followed up to |rho| = 1 - EDGE


def _block_of(problem, j):
    """(slots, r, c): the free covariance block holding parameter j off its diagonal,
    with j's row and column in it; None when j is not such an element."""
    for slots in problem.cholesky_blocks.values():
        where = np.argwhere(slots == j)
        if len(where) and where[0][0] != where[0][1]:
            return slots, int(where[0][0]), int(where[0][1])
    return None


def correlation_of(theta, slots, r, c):
    return theta[slots[r, c]] / np.sqrt(theta[slots[r, r]] * theta[slots[c, c]])


def _profiled(ctx, j, slots, r, c):
    problem, theta = ctx.problem, ctx.theta
    vr, vc = slots[r, r], slots[c, c]
    rho = correlation_of(theta, slots, r, c)
    # delta method: d rho / d (Sigma_rc, Sigma_rr, Sigma_cc)
    grad = np.zeros(theta.size)
    grad[j] = 1.0 / np.sqrt(theta[vr] * theta[vc])
    grad[vr], grad[vc] = -rho / (2 * theta[vr]), -rho / (2 * theta[vc])
    var = grad @ np.nan_to_num(ctx.vcov) @ grad
    natural = np.sqrt(var) if np.isfinite(var) and var > 0 else 0.1
    path = ctx.path_slope(j) * np.sqrt(theta[vr] * theta[vc])    # d theta / d rho, roughly
    fixed = np.zeros(theta.size, bool)
    fixed[j] = True
    transform = Transform(problem, ctx.floor, fixed, correlation=True)

    def fit_at(v, warm):
        start = warm.copy()
        start[j] = v * np.sqrt(start[vr] * start[vc])
        try:
            rec = fit_problem(problem, start=start, fixed=fixed, hessian=False, gtol=1e-8,
                              hessian_guess=ctx.guess, correlation=True,
                              evaluate=ctx.evaluate)
        except ValueError:
            return None, None, None, 1
        x = transform.from_theta(rec.estimate)
        slope = transform.pullback(x, rec.gradient)[j]    # d deviance / d rho (envelope)
        return rec.deviance, rec.estimate, slope, rec.n_evaluations

    edges = {-1: (-1.0 + EDGE, -1.0), 1: (1.0 - EDGE, 1.0)}
    return Profiled(rho, natural, 1.0, path, fit_at, edges)


def correlation_limits(result, label, cutoff):
    """(lower Limit, upper Limit, estimate) of the correlation behind covariance
    parameter ``label`` of a FitResult; raises ValueError when ``label`` is not an
    off-diagonal element of a free covariance matrix (each element its own label)."""
    problem = result.problem
    labels = list(problem.params.labels)
    if label not in labels:
        raise ValueError(f"correlation_ci: unknown parameter label {label!r}.")
    j = labels.index(label)
    found = _block_of(problem, j)
    if found is None:
        raise ValueError(f"correlation_ci: {label!r} is not an off-diagonal element of a "
                         f"free covariance matrix (theta or psi with every element free "
                         f"and its own label); its correlation cannot be profiled.")
    ctx = _Context(result, cutoff)
    what = _profiled(ctx, j, *found)
    lower, _ = root_finding(ctx, what, -1, far=np.inf)    # the edges bound it
    upper, _ = root_finding(ctx, what, 1, far=np.inf)
    return lower, upper, what.estimate


def correlation_ci(result, parameters=None, level=0.95):
    """Profile CIs of correlations: one row per covariance label in ``parameters``
    (default: every off-diagonal element of a free covariance matrix) with label,
    estimate (the correlation), lower, upper, lower_status, upper_status, lower_rise,
    upper_rise, message (the columns of ProfileCI.estimates)."""
    if not 0 < level < 1:
        raise ValueError(f"correlation_ci: level must be between 0 and 1, got {level!r}.")
    problem = result.problem
    labels = list(problem.params.labels)
    if parameters is None:
        parameters = [labels[j] for j in range(len(labels)) if _block_of(problem, j)]
    elif isinstance(parameters, str):
        parameters = [parameters]
    cutoff = float(chdtri(1, 1.0 - level))
    rows = []
    for label in parameters:
        lo, hi, est = correlation_limits(result, label, cutoff)
        message = "; ".join(m for m in (lo.message and f"lower: {lo.message}",
                                        hi.message and f"upper: {hi.message}") if m)
        rows.append(dict(label=label, estimate=est, lower=lo.value, upper=hi.value,
                         lower_status=lo.status, upper_status=hi.status,
                         lower_rise=lo.rise if lo.status == "ok" else np.nan,
                         upper_rise=hi.rise if hi.status == "ok" else np.nan,
                         message=message))
    columns = ["label", "estimate", "lower", "upper", "lower_status", "upper_status",
               "lower_rise", "upper_rise", "message"]
    return pd.DataFrame(rows, columns=columns)
