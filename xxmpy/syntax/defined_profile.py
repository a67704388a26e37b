"""Profile-likelihood CIs of defined parameters (lavaan's :=).

The profile of g(theta) is -2 log L minimised with g(theta) = v, every parameter
free: each profile point is a constrained fit (scipy's SLSQP on the engine's -2 log L
and analytic gradient, in the parameters' natural units, variances above their
floor), and the limits come from the root finding of inference/profile.py on zeta
(secant steps: no profile slope is taken from the constrained fit). An ok limit is a
re-optimised point whose rise is the cutoff within TOL_RISE, as for any parameter.
"""
import numpy as np
from scipy.optimize import minimize

from ..engine import deviance_and_gradient
from ..fit.optimize import variance_floor
from ..inference.profile import Profiled, _Context, root_finding


def defined_limits(result, name, cutoff):
    """(lower Limit, upper Limit, estimate) of defined parameter ``name`` of a
    SemResult."""
    fit = result.fit
    problem = fit.problem
    units = np.asarray(problem.param_units, float)
    floor = variance_floor(problem)
    lower = np.where(problem.params.is_variance, floor, -np.inf) / units

    def g(theta):
        return result.defined_values(theta)[name]
    ctx = _Context(fit, cutoff)
    theta_hat = ctx.theta
    grad_g = result.defined_jacobian(theta_hat)[[d.name for d in
                                                 result.syntax.defined].index(name)]
    vcov = np.nan_to_num(ctx.vcov)
    variance = float(grad_g @ vcov @ grad_g)
    natural = np.sqrt(variance) if variance > 0 else 0.1 * max(abs(g(theta_hat)), 1.0)
    path = vcov @ grad_g / variance if variance > 0 else np.zeros_like(theta_hat)

    def fit_at(v, warm):
        def objective(z):
            f, grad = deviance_and_gradient(problem, z * units)
            if not np.isfinite(f):
                return 1e300, np.zeros_like(z)
            return f, grad * units

        def constraint(z):
            return (g(z * units) - v) / natural
        start = np.maximum(warm / units, lower)
        bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
        got = minimize(objective, start, jac=True, method="SLSQP", bounds=bounds,
                       constraints=[{"type": "eq", "fun": constraint}],
                       options={"ftol": 1e-12, "maxiter": 1000})
        theta = got.x * units
        if not (got.success and abs(g(theta) - v) < 1e-6 * natural):
            return None, None, None, got.nfev
        return float(deviance_and_gradient(problem, theta)[0]), theta, np.nan, got.nfev

    what = Profiled(g(theta_hat), natural, natural, path, fit_at)
    lo, _ = root_finding(ctx, what, -1, far=1e4 * natural)
    hi, _ = root_finding(ctx, what, 1, far=1e4 * natural)
    return lo, hi, what.estimate
