"""Maximum likelihood: a projected quasi-Newton search with a Newton polish.

Parameters are scaled by their start values (phi = theta / scale). Variances
(parameters only on diagonals of theta / psi) have a small positive lower
bound; any inadmissible trial point (a matrix not positive definite) makes
the line search step back. Convergence is judged by the projected gradient.
Gradients and the Hessian are central finite differences of -2 log L.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from .likelihood import deviance

VARIANCE_FLOOR = 1e-8
DECREMENT_TOL = 1e-6   # predicted further drop of -2 log L that counts as converged


def newton_decrement(H, g, free):
    """g' H^-1 g over the free coordinates (NaN if H is not positive definite there)."""
    Hf, gf = H[np.ix_(free, free)], g[free]
    if gf.size == 0:
        return 0.0
    try:
        chol = np.linalg.cholesky((Hf + Hf.T) / 2)
    except np.linalg.LinAlgError:
        return np.nan
    z = np.linalg.solve(chol, gf)
    return float(z @ z)


@dataclass
class OptimizationRecord:
    """What the optimiser did; all vectors are in parameter order (labels)."""
    start: np.ndarray
    estimate: np.ndarray
    start_deviance: float
    deviance: float
    gradient: np.ndarray
    gradient_norm: float
    hessian: np.ndarray          # of -2 log L in theta units; NaN rows at bounds
    at_bound: np.ndarray
    n_evaluations: int
    n_iterations: int
    converged: bool
    status: str
    method: str = "projected BFGS + Newton polish (finite differences)"
    seconds: float = 0.0
    history: list = field(default_factory=list)


class _Objective:
    """-2 log L in scaled coordinates, counting evaluations."""

    def __init__(self, problem, scale):
        self.problem, self.scale, self.count = problem, scale, 0

    def __call__(self, phi):
        self.count += 1
        return deviance(self.problem, phi * self.scale)


def _steps(phi, rel):
    return rel * np.maximum(np.abs(phi), 1.0)


def numeric_gradient(f, phi, f0, lower, rel=1e-6):
    """Central differences, one-sided next to a bound or an inadmissible point."""
    g = np.zeros_like(phi)
    for k, h in enumerate(_steps(phi, rel)):
        up, dn = phi.copy(), phi.copy()
        up[k] += h
        dn[k] -= h
        fu = f(up)
        fd = f(dn) if dn[k] >= lower[k] else np.inf
        if np.isfinite(fu) and np.isfinite(fd):
            g[k] = (fu - fd) / (2 * h)
        elif np.isfinite(fu):
            g[k] = (fu - f0) / h
        elif np.isfinite(fd):
            g[k] = (f0 - fd) / h
        else:
            g[k] = np.nan
    return g


def initial_inverse_hessian(f, phi, f0, lower, rel=1e-3):
    """Diagonal inverse-Hessian guess from second differences (1 where unusable)."""
    h = _steps(phi, rel)
    out = np.ones_like(phi)
    for k in range(phi.size):
        if phi[k] - h[k] < lower[k]:
            continue
        up, dn = phi.copy(), phi.copy()
        up[k] += h[k]
        dn[k] -= h[k]
        curv = (f(up) - 2 * f0 + f(dn)) / h[k] ** 2
        if np.isfinite(curv) and curv > 0:
            out[k] = 1.0 / curv
    return np.diag(out)


def numeric_hessian(f, phi, f0, free, rel=1e-4):
    """Second differences of f over the ``free`` coordinates (others NaN)."""
    k = phi.size
    H = np.full((k, k), np.nan)
    h = _steps(phi, rel)
    idx = np.flatnonzero(free)

    def at(*moves):
        x = phi.copy()
        for j, sgn in moves:
            x[j] += sgn * h[j]
        return f(x)

    for a, i in enumerate(idx):
        H[i, i] = (at((i, 1)) - 2 * f0 + at((i, -1))) / h[i] ** 2
        for j in idx[:a]:
            H[i, j] = H[j, i] = (at((i, 1), (j, 1)) - at((i, 1), (j, -1)) - at((i, -1), (j, 1))
                                 + at((i, -1), (j, -1))) / (4 * h[i] * h[j])
    return H


def fit_problem(problem, max_iter=500, gtol=1e-9, polish_steps=3, verbose=False):
    """Minimise -2 log L from the start values; returns an OptimizationRecord.

    max_iter: quasi-Newton iterations; gtol: stop when the predicted drop of
    -2 log L is below it; polish_steps: Newton steps with the numerical Hessian.
    """
    t0 = time.perf_counter()
    start = problem.params.start.copy()
    scale = np.maximum(np.abs(start), 0.1)
    f = _Objective(problem, scale)
    lower = np.where(problem.params.is_variance, VARIANCE_FLOOR / scale, -np.inf)
    phi = np.maximum(start / scale, lower)
    f0 = f(phi)
    if not np.isfinite(f0):
        raise ValueError("xxmRun: -2 log L is not finite at the start values; check that "
                         "theta and psi are positive definite and I - beta is invertible.")
    phi, fval, grad, iters, status, history = _bfgs(f, phi, f0, lower, max_iter, gtol, verbose)
    phi, fval, grad, hess_phi, at_bound = _polish(f, phi, fval, grad, lower, polish_steps)
    pg = _projected(grad, phi, lower)
    gnorm = float(np.max(np.abs(pg / scale))) if pg.size else 0.0
    decrement = newton_decrement(hess_phi, pg, ~at_bound)
    converged = bool(decrement < DECREMENT_TOL)
    if not converged and status == "converged":
        status = ("Hessian not positive definite at the end" if np.isnan(decrement)
                  else f"gradient not small at the end (Newton decrement {decrement:.1e})")
    return OptimizationRecord(
        start=start, estimate=phi * scale, start_deviance=f0, deviance=fval,
        gradient=grad / scale, gradient_norm=gnorm,
        hessian=hess_phi / np.outer(scale, scale), at_bound=at_bound,
        n_evaluations=f.count, n_iterations=iters, converged=converged, status=status,
        seconds=time.perf_counter() - t0, history=history)


def _projected(g, phi, lower):
    pg = g.copy()
    pg[(phi <= lower * (1 + 1e-9) + 1e-300) & (g > 0)] = 0.0
    return pg


def _bfgs(f, phi, fval, lower, max_iter, gtol, verbose):
    grad = numeric_gradient(f, phi, fval, lower)
    H0 = initial_inverse_hessian(f, phi, fval, lower)
    H = H0.copy()
    history, status = [fval], "iteration limit reached"
    it = 0
    for it in range(1, max_iter + 1):
        pg = _projected(grad, phi, lower)
        active = pg == 0
        d = -H @ pg
        d[active] = 0.0
        if pg @ d >= 0:
            H = H0.copy()
            d = -H @ pg
            d[active] = 0.0
        if -pg @ d < gtol:
            status = "converged"
            break
        new = _line_search(f, phi, fval, grad, d, lower)
        if new is None:
            status = "converged" if -pg @ d < 1e3 * gtol else "line search failed"
            break
        phi_new, f_new = new
        g_new = numeric_gradient(f, phi_new, f_new, lower)
        s, y = phi_new - phi, g_new - grad
        sy = s @ y
        if sy > 1e-12 * np.linalg.norm(s) * np.linalg.norm(y):
            rho = 1.0 / sy
            V = np.eye(phi.size) - rho * np.outer(s, y)
            H = V @ H @ V.T + rho * np.outer(s, s)
        phi, fval, grad = phi_new, f_new, g_new
        history.append(fval)
        if verbose:
            print(f"iter {it:4d}  -2lnL {fval:.8f}  decrement {-pg @ d:.2e}")
    return phi, fval, grad, it, status, history


def _line_search(f, phi, fval, grad, d, lower, c1=1e-4):
    t = 1.0
    for _ in range(60):
        trial = np.maximum(phi + t * d, lower)
        ft = f(trial)
        if np.isfinite(ft) and ft <= fval + c1 * grad @ (trial - phi):
            return trial, ft
        t *= 0.5
    return None


def _polish(f, phi, fval, grad, lower, steps):
    """A few Newton steps on the parameters off their bounds; returns the Hessian too."""
    at_bound = (phi <= lower * (1 + 1e-6) + 1e-300) & (grad >= 0)
    free = ~at_bound
    H = numeric_hessian(f, phi, fval, free)
    for _ in range(steps):
        Hf = H[np.ix_(free, free)]
        try:
            step = np.linalg.solve(Hf, grad[free])
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)) or np.all(np.linalg.eigvalsh(Hf) <= 0):
            break
        trial = phi.copy()
        trial[free] -= step
        trial = np.maximum(trial, lower)
        ft = f(trial)
        if not (np.isfinite(ft) and ft <= fval + 1e-10 * abs(fval)):
            break
        moved = np.max(np.abs(trial - phi))
        phi, fval = trial, ft
        grad = numeric_gradient(f, phi, fval, lower)
        H = numeric_hessian(f, phi, fval, free)
        if moved < 1e-10:
            break
    return phi, fval, grad, H, at_bound
