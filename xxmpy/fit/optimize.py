"""Maximum likelihood: a projected quasi-Newton search with a Newton polish.

Parameters are scaled by their natural units from the data (phi = theta /
unit, compile/scales.py).
Variances (parameters only on diagonals of theta / psi) have a small positive
lower bound, VARIANCE_FLOOR times that unit: every floor and step scale is
relative to the data's scale, so a fit of rescaled data follows the same path.
Any inadmissible trial point (a matrix not positive definite) makes the line
search step back. Gradients are analytic (gradient.py); the Hessian at the end
is forward differences of the analytic gradient (polish), central ones where a
search restarts. Convergence is judged by the Newton decrement g' H^-1 g (the
predicted further drop of -2 log L).
"""
import functools
import time
from dataclasses import dataclass, field

import numpy as np

from ..compile.scales import VARIANCE_FLOOR
from ..engine import deviance_and_gradient
from .transform import FREE, Transform

SMALL_DIAGONAL = 1e-2  # L_rr^2 below this (in units of its scale^2): a covariance near singular
RESTARTS = 1            # unproductive restarts of a search that ended unconverged (a second
#                         would start from the same point with the same curvature: a repeat)
MAX_RESTARTS = 10       # restarts in all (each productive one lowers -2 log L)
PD_FLOOR = 1e-8         # eigenvalues of a Hessian guess kept above this fraction of the largest
MAX_STEP = 2.0         # the longest move of one coordinate per iteration, in natural units,
CAPPED_ITERATIONS = 5  # over the first iterations (the curvature still a guess)
TO_BOUNDARY = 0.9      # the first step keeps 10% of each coordinate's distance to its bound
ROUNDING = 1e-12       # relative rounding of -2 log L (a sum over units): drops below are noise
UNRESOLVED = 1e-14     # relative changes of -2 log L too small to show in its float at all
DECREMENT_TOL = 1e-6   # predicted further drop of -2 log L that counts as converged
STALE_HESSIAN = 2e-4   # a polished coordinate's move, of its size, that re-measures H
POLISH_TOL = 1e-12     # the Newton polish goes on to here: the estimates to ~1e-6 of their SE
FLAT_CANDIDATE = 1e-5  # unit-diagonal Hessian eigenvalue (relative) worth re-measuring
FLAT_TOL = 1e-11       # ... and, re-measured, below which the direction is flat
FLAT_STEP = 0.05       # the re-measuring step, in standard errors
SAME_POINT = 8 * np.finfo(float).eps  # relative: parameters that are one point's
REFRESHES = 3          # iterations whose quasi-Newton model a closed-form curvature renews
CLEAR_CURVATURE = 1e-3  # unit-diagonal Hessian eigenvalue above which forward differences do


def variance_floor(problem):
    """(k,) the variances' lower bound: VARIANCE_FLOOR natural units of each parameter;
    for a scale (a network's D, a Cholesky factor's diagonal: its square is a variance)
    the root of that (compile/forms.py)."""
    floor = VARIANCE_FLOOR * np.asarray(problem.param_units, float)
    if problem.forms is not None and problem.forms.scales.size:
        scales = problem.forms.scales
        floor[scales] = np.sqrt(VARIANCE_FLOOR) * problem.param_units[scales]
    return floor


def coordinate_scale(transform, problem, theta=None):
    """(k,) optimiser coordinate scales: each coordinate's natural unit from the data
    (a location parameter's magnitude says nothing about the steps it needs: an
    intercept of 1e7 may be known to 1e-5)."""
    return transform.coordinate_units(problem.param_units)


def newton_decrement(H, g):
    """g' H^-1 g (NaN if H is not positive definite)."""
    if g.size == 0:
        return 0.0
    try:
        chol = np.linalg.cholesky((H + H.T) / 2)
    except np.linalg.LinAlgError:
        return np.nan
    z = np.linalg.solve(chol, g)
    return float(z @ z)


@dataclass
class OptimizationRecord:
    """What the optimiser did; all vectors are in parameter order (labels)."""
    start: np.ndarray
    estimate: np.ndarray
    start_deviance: float
    deviance: float
    gradient: np.ndarray         # d(-2 log L)/d theta at the end; for a parameter held
                                 # fixed (profiling), the slope of the profile deviance
                                 # where the search ended (before any Newton polish)
    gradient_norm: float
    hessian: np.ndarray          # of -2 log L in theta units; NaN rows at bounds / fixed
    at_bound: np.ndarray
    n_evaluations: int
    n_iterations: int
    converged: bool
    status: str
    method: str = "projected BFGS + Newton polish (analytic gradient)"
    seconds: float = 0.0
    history: list = field(default_factory=list)
    decrement: float = np.nan
    not_identified: list = field(default_factory=list)   # parameter index arrays, one per
                                                         # flat direction of -2 log L
    restarts: list = field(default_factory=list)     # (reason, -2 log L before, after, kept)


class Objective:
    """-2 log L and its gradient over free, scaled coordinates.

    x = transform.from_theta(theta); the optimiser sees y = x[free] / scale[free].
    memo: a one-element list holding the last (theta, -2 log L, theta-gradient) evaluated,
    shared between objectives of one problem so that a change of coordinates at the
    same point costs no evaluation (count counts only real evaluations). evaluate:
    theta -> (-2 log L, gradient) (default the engine on ``problem``; a
    distributed.ShardedLikelihood's for a fit on workers).
    """

    def __init__(self, problem, transform, x, free, scale, memo=None, evaluate=None):
        self.problem, self.transform = problem, transform
        self.evaluate = evaluate
        self.memo = [None] if memo is None else memo
        self.x = np.asarray(x, float).copy()
        self.free, self.scale = np.asarray(free, bool), np.asarray(scale, float)
        self.free_scale = self.scale[self.free]
        self.all_free = bool(self.free.all())
        self.count = 0
        self.last_gradient = None
        # relative rounding of -2 log L, a sum over the observed values: n eps at worst
        self.noise = float(np.finfo(float).eps) * max(int(problem.n_observed), 1)

    @functools.cached_property
    def linear(self):
        """(F,) the coordinates that are mean parameters (mean_parameters), read only
        when a Hessian is taken."""
        return mean_parameters(self.problem)[self.free]

    @functools.cached_property
    def variance(self):
        """(F,) the coordinates that are variances (or, in Cholesky coordinates, the
        diagonals standing for them), read only when a Hessian is taken."""
        return np.asarray(self.problem.params.is_variance, bool)[self.free]

    def coordinates(self, y):
        if self.all_free:
            return y * self.scale
        out = self.x.copy()
        out[self.free] = y * self.free_scale
        return out

    def full(self, y):
        return self.transform.to_theta(self.coordinates(y))

    def __call__(self, y):
        x = self.coordinates(y)
        factors = self.transform.factors(x)
        theta = self.transform.to_theta(x, factors)
        last = self.memo[0]
        if last is not None and same_point(theta, last[0]):
            f, g = last[1], last[2]
        else:
            self.count += 1
            f, g = deviance_and_gradient(self.problem, theta) if self.evaluate is None \
                else self.evaluate(theta)
            self.memo[0] = (theta, f, g)
        self.last_gradient = g          # (k,) in theta units, fixed parameters included
        if not np.isfinite(f):
            return f, g[self.free]
        gx = self.transform.pullback(x, g, factors)
        return f, (gx if self.all_free else gx[self.free]) * self.free_scale


def same_point(theta, other):
    """theta equals other to the last bits (SAME_POINT eps of each entry): the search's end
    carried to the polish's coordinates and back (a division and a product, a
    Cholesky factor and its square) lands within rounding of the point evaluated."""
    return bool(np.all(np.abs(theta - other) <= SAME_POINT * np.abs(other)))


def mean_parameters(problem):
    """(k,) True for the parameters every element of which is a mean (nu, alpha,
    kappa, gamma): -2 log L is quadratic in them jointly, whatever the others."""
    k = problem.params.n
    mean, seen = np.ones(k, bool), np.zeros(k, bool)
    for (_, _, kind), emap in problem.params.element_maps.items():
        seen[emap.free_param] = True
        if kind not in ("nu", "alpha", "kappa", "gamma"):
            mean[emap.free_param] = False
    return mean & seen


def hessian_of(fg, x, g0, lower, rel=1e-5, central=True, linear=None, relative=None,
               cache=None):
    """Central differences of the gradient (forward next to a bound or when
    ``central`` is False: half the cost), symmetrised.
    linear: (k,) coordinates -2 log L is quadratic in jointly (the means): their
    columns by forward differences, exact for their rows; their other rows are taken
    from the other coordinates' columns (a variance's gradient is quadratic in a
    mean, whose step, relative to its size, may be many standard errors: a shifted
    intercept's), so a central Hessian costs 2 k_other + k_linear evaluations and a
    forward one k. relative: (k,) coordinates whose step is rel |x| when |x| < 1
    (variances: their curvature changes on the scale of the variance itself), not
    rel. cache: a dict of the gradients at the steps taken, kept between calls at
    the same x (a central Hessian after a forward one reuses its steps up)."""
    k = x.size
    linear = np.zeros(k, bool) if linear is None else np.asarray(linear, bool)
    H = hessian_columns(fg, x, g0, lower, np.arange(k), rel, central, linear, relative,
                        cache)
    return _assembled(H, linear)


def _assembled(H, linear):
    """The Hessian from its measured columns H (k, k): the mean columns' other rows
    taken from the other columns (``linear``: hessian_of), then symmetrised."""
    if linear is not None and np.any(linear):
        H[np.ix_(~linear, linear)] = H[np.ix_(linear, ~linear)].T
    return (H + H.T) / 2


def hessian_columns(fg, x, g0, lower, columns, rel=1e-5, central=True, linear=None,
                    relative=None, cache=None):
    """(k, len(columns)) the Hessian's columns ``columns`` by differences of the
    gradient, as hessian_of takes them (its arguments), not symmetrised."""
    k = x.size
    big = np.maximum(np.abs(x), 1.0)
    h = rel * (big if relative is None else
               np.where(np.asarray(relative, bool) & (x > 0), np.minimum(np.abs(x), 1.0), big))
    linear = np.zeros(k, bool) if linear is None else np.asarray(linear, bool)
    cache = {} if cache is None else cache

    def gradient_at(j, step):
        if (j, step) not in cache:
            point = x.copy()
            point[j] += step
            cache[(j, step)] = fg(point)[1]
        return cache[(j, step)]
    out = np.zeros((k, len(columns)))
    for c, j in enumerate(columns):
        g_up = gradient_at(j, h[j])
        down = central and not linear[j] and x[j] - h[j] >= lower[j]
        g_dn = gradient_at(j, -h[j]) if down else None
        if g_dn is not None and np.all(np.isfinite(g_dn)):
            out[:, c] = (g_up - g_dn) / (2 * h[j])
        else:
            out[:, c] = (g_up - g0) / h[j]
    return out


def end_hessian(fg, x, g0, lower, linear=None, variance=None, central=False, cache=None):
    """The Hessian where a search ended: forward differences (k evaluations, each
    variance's step relative to itself), or central ones when ``central`` is asked
    (steps rel max(|x|, 1): a singular face) or when the forward one is not clearly
    positive definite, the smallest eigenvalue of its unit-diagonal form below
    CLEAR_CURVATURE, where its O(h) error (about 1e-5 of H) could decide a Newton
    step, a flat direction or a saddle (then with the same steps, the forward ones
    reused: k - k_linear more). Central ones cost 2 k (8 of the full-size grade
    design's 13 evaluations); at a clear optimum the forward error is the size of
    theirs there and standard errors, the Newton decrement and the Newton steps need
    no more. cache: gradients at steps already taken there (derived_hessian's)."""
    if central:
        return hessian_of(fg, x, g0, lower, central=True, linear=linear)
    cache = {} if cache is None else cache
    H = hessian_of(fg, x, g0, lower, central=False, linear=linear, relative=variance,
                   cache=cache)
    if _clearly_positive(H):
        return H
    return hessian_of(fg, x, g0, lower, central=True, linear=linear, relative=variance,
                      cache=cache)


def _clearly_positive(H):
    d = np.diag(H)
    if H.size == 0:
        return True
    if not (np.all(np.isfinite(H)) and np.all(d > 0)):
        return False
    D = 1.0 / np.sqrt(d)
    return bool(np.linalg.eigvalsh(H * np.outer(D, D))[0] > CLEAR_CURVATURE)


def derived_hessian(fg, x, g0, lower, scaling, variance=None, linear=None, cache=None):
    """end_hessian's forward Hessian with one column derived instead of measured (k - 1
    evaluations), where -2 log L is homogeneous in the variance parameters (V(c theta_v)
    = c V(theta_v), the means held: lmer's models, lmm/curvature.quadratic_gradient;
    the xxM API's of random-effects shape, fit/information.py): then along d = theta_v
    H d = -g - grad q (q: the quadratic part; its gradient 0 in the means), in fg's
    coordinates x = theta / s H d_x = -(g + s grad q). fg: the polish's Objective, every
    coordinate free; scaling(theta, gradient) -> (grad q (k,) in theta units, the
    column r to derive, (k,) bool the scaled parameters) or None. The hook reads the
    posterior where the last evaluation was (x): None, and nothing measured,
    elsewhere, where it has none, or where the result is not clearly positive definite
    (end_hessian then measures, reusing ``cache``). linear: the mean coordinates, whose
    other rows come from the other columns, as hessian_of takes them. The derived
    column's error is the others' weighted by d_j / d_r: below a measured one's where
    r is the best-determined parameter (the residual variance)."""
    last = fg.memo[0]
    if last is None or not same_point(fg.full(x), last[0]):
        return None
    got = scaling(last[0], last[2])
    if got is None:
        return None
    dq, r, scaled = got
    d = np.where(scaled, x, 0.0)
    b = -(g0 + fg.free_scale * dq)
    others = np.delete(np.arange(x.size), r)
    H = np.zeros((x.size, x.size))
    H[:, others] = hessian_columns(fg, x, g0, lower, others, central=False,
                                   linear=linear, relative=variance, cache=cache)
    H[:, r] = (b - H[:, others] @ d[others]) / d[r]
    H = _assembled(H, linear)
    return H if _clearly_positive(H) else None


def hessian_in_coordinates(h_theta, transform, x, free, scale):
    """A theta-unit Hessian carried to scaled coordinates: S J' H J S over free ones.

    Unknown rows (a NaN diagonal: a parameter at its bound) count as unit
    curvature in the scaled coordinates, uncoupled from the others.
    """
    k = x.size
    jt = transform.pullback(x, np.eye(k)).T      # J': column i pulls back unit vector i
    known = np.isfinite(np.diag(h_theta))
    h = h_theta if known.all() else np.where(np.isfinite(h_theta), h_theta, 0.0)
    hy = (jt @ h @ jt.T) * (scale[:, None] * scale)
    if not free.all():
        hy = hy[np.ix_(free, free)]
    if known.all():
        return hy
    unknown = ~(np.abs(jt[:, ~known]).sum(axis=1) == 0)[free]
    hy[unknown, :] = 0.0
    hy[:, unknown] = 0.0
    hy[unknown, unknown] = 1.0
    return hy


def _escape_singular_saddle(fg, y, f, transform, free):
    """Try moving each small Cholesky diagonal (L_rr^2 < SMALL_DIAGONAL) away from 0.

    At L_rr = 0 the gradient in L_rr vanishes whatever the curvature, so a
    singular covariance can look stationary while a larger variance fits
    better. Returns (y, f, g) after the first move that lowers -2 log L, else None.
    """
    index = np.cumsum(free) - 1
    for b in transform.blocks:
        for r, slot in enumerate(np.diag(b.slots)):
            if not free[slot] or (b.covariance_fixed and r == 0):
                continue
            i = index[slot]
            if y[i] ** 2 >= SMALL_DIAGONAL:       # y is L_rr in units of its scale
                continue
            for size in (0.1, 0.01, 0.3):
                trial = y.copy()
                trial[i] = np.sqrt(y[i] ** 2 + size)
                ft, gt = fg(trial)
                if np.isfinite(ft) and ft < f - 1e-10 * abs(f):
                    return trial, ft, gt
    return None


def _inverse_or_diagonal(H):
    """H^-1 if H is positive definite, else the inverse of its usable diagonal: for a
    Hessian measured at an optimum (a profile fit's guess), where a failed Cholesky
    means a direction not to trust at all."""
    try:
        np.linalg.cholesky(H)
        return np.linalg.inv(H)
    except np.linalg.LinAlgError:
        d = np.diag(H)
        return np.diag(np.where(np.isfinite(d) & (d > 0), 1.0 / np.where(d > 0, d, 1.0), 1.0))


def _preconditioner(H):
    """A positive definite inverse of a finite-difference Hessian taken away from the
    optimum (at the start values, at a restart): its eigenvalues in absolute value,
    kept above PD_FLOOR of the largest. Rounding can make such a Hessian pass a
    Cholesky and still give an inverse with a negative diagonal, whose steps go
    uphill or look converged (seen on another CPU's arithmetic: valgrind); the
    identity when H is unusable."""
    H = (H + H.T) / 2
    if H.size == 0 or not np.all(np.isfinite(H)):
        return np.eye(len(H))
    vals, vecs = np.linalg.eigh(H)
    size = np.abs(vals)
    if size.max() == 0:
        return np.eye(len(H))
    size = np.maximum(size, PD_FLOOR * size.max())
    return (vecs / size) @ vecs.T


def _at_bound(x, g, lower):
    """Coordinates on their lower bound with the gradient pushing further out."""
    return (x <= lower * (1 + 1e-6) + 1e-300) & (g >= 0)


def _projected(g, x, lower):
    pg = g.copy()
    pg[(x <= lower * (1 + 1e-9) + 1e-300) & (g > 0)] = 0.0
    return pg


def bfgs(fg, x, f, g, lower, H, max_iter=500, gtol=1e-9, verbose=False, cautious=True,
         refresh=None):
    """Projected BFGS from (x, f, g) with inverse-Hessian guess H.

    cautious: the first CAPPED_ITERATIONS steps are capped at MAX_STEP natural units
    and the first keeps TO_BOUNDARY of each distance to a bound (a search from start
    values; a warm-started profile fit does without). refresh: x -> an inverse-Hessian
    guess there (or None), which replaces the quasi-Newton model at iterations 2 to
    REFRESHES + 1 (a closed-form curvature: the start's goes stale as a variance
    moves by orders of magnitude). Returns (x, f, g, iterations, status, history).
    """
    H0 = H.copy()
    fresh = True                 # H is the guess, not yet updated
    history, status = [f], "iteration limit reached"
    it = 0
    for it in range(1, max_iter + 1):
        if refresh is not None and 1 < it <= REFRESHES + 1:
            renewed = refresh(x)      # the closed-form curvature where the search is now
            if renewed is not None:
                H, H0, fresh = renewed, renewed.copy(), True
        pg = _projected(g, x, lower)
        active = pg == 0
        d = -H @ pg
        d[active] = 0.0
        if pg @ d >= 0:
            H, fresh = H0.copy(), True
            d = -H @ pg
            d[active] = 0.0
        if pg @ d >= 0:                # no descent even so: steepest descent
            d = -pg
        if -pg @ d < max(gtol, ROUNDING * abs(f)):
            status = "converged"
            break
        early = cautious and it <= CAPPED_ITERATIONS
        longest = np.max(np.abs(d), initial=0.0)
        if early and longest > MAX_STEP:
            # a trust radius in natural units while the curvature is still a guess:
            # no leap across the parameter space (into another basin) on it
            d = d * (MAX_STEP / longest)
        new = _line_search(fg, x, f, g, d, lower, to_boundary=cautious and it == 1)
        if new is None and not fresh:
            # the quasi-Newton model has gone stale (a bound became active, the curvature
            # changed): start it again before declaring the line search failed
            H, fresh = H0.copy(), True
            continue
        if new is None:
            status = "converged" if -pg @ d < max(1e3 * gtol, 1e-8) else "line search failed"
            break
        fresh = False
        x_new, f_new, g_new = new
        s, y = x_new - x, g_new - g
        sy = s @ y
        if sy > 1e-12 * np.linalg.norm(s) * np.linalg.norm(y):
            rho = 1.0 / sy
            V = np.eye(x.size) - rho * np.outer(s, y)
            H = V @ H @ V.T + rho * np.outer(s, s)
        x, f, g = x_new, f_new, g_new
        history.append(f)
        if len(history) > 3 and history[-4] - f <= 1e-12 * max(1.0, abs(f)):
            # three iterations without progress: rounding noise, not curvature, is left
            status = "converged" if -pg @ d < 1e-8 else "stalled: no progress in 3 iterations"
            break
        if verbose:
            print(f"iter {it:4d}  -2lnL {f:.8f}  decrement {-pg @ d:.2e}")
    return x, f, g, it, status, history


def _line_search(fg, x, f, g, d, lower, c1=1e-4, to_boundary=False):
    """Backtracking (Armijo). With ``to_boundary`` (the first iteration) the first trial
    keeps every coordinate above its bound by TO_BOUNDARY of its distance:
    a step on a guessed curvature never throws a variance onto its floor (where
    -2 log L is huge and the precision form near its condition cap); later steps may,
    and a variance whose optimum is 0 gets there. The first trial that put a coordinate
    on its bound and came out worse than x is followed by one keeping TO_BOUNDARY of
    the distance, when halving would leave the coordinate on the bound (while the
    others' steps shrink); halving goes on from there. It stops when the change the
    last (projected) step predicts is below the rounding of f, a sum over the
    problem's observed values (Objective.noise, at least UNRESOLVED): a shorter trial
    could not show a decrease."""
    t = 1.0
    toward = (d < 0) & np.isfinite(lower) & (x > lower)
    reach = TO_BOUNDARY * float(np.min((x[toward] - lower[toward]) / -d[toward])) \
        if toward.any() else np.inf
    if to_boundary:
        t = min(1.0, reach)
    jumped = to_boundary
    noise = max(UNRESOLVED, getattr(fg, "noise", 0.0))
    for _ in range(40):
        trial = np.maximum(x + t * d, lower)
        ft, gt = fg(trial)
        if np.isfinite(ft) and ft <= f + c1 * g @ (trial - x):
            return trial, ft, gt
        if not jumped and reach < 0.5 * t and np.isfinite(ft) and ft > f:
            t, jumped = reach, True
        else:
            t *= 0.5
        if np.isfinite(ft) and abs(g @ (trial - x)) < noise * abs(f):
            break       # a shorter step's change would drown in f's rounding
    return None


def _closer_below_rounding(fg, H, f, g, ft, gt):
    """True when a Newton step predicts a drop of -2 log L below its rounding (a sum
    over the observed values: Objective.noise relative; 1.7 million values round it
    by ~1e-3), came out within the two values' rounding of f, and the gradient, which
    rounding does not swamp there, says the trial is closer to the optimum (a smaller
    Newton decrement on the same curvature). Then f cannot judge the step; the
    gradient can."""
    rounding = getattr(fg, "noise", 0.0) * abs(f)
    before = newton_decrement(H, g)
    return bool(before < rounding and ft <= f + 2.0 * rounding
                and newton_decrement(H, gt) < before)


def _moved(H, at, x):
    """(k,) bool: the coordinates the Newton steps moved from ``at`` (where H, the
    Hessian of -2 log L, was measured) to ``x`` by more than STALE_HESSIAN of their
    size (magnitude, or standard error sqrt(2 (H^-1)_ii) when larger, near 0): the
    curvature of a variance changes like 2 dtau2 / tau2, so along the others the
    standard errors from the kept H are off by at most about that fraction. Every
    coordinate that moved when H gives no standard errors."""
    step = np.abs(x - at)
    if not step.size or not np.any(step):
        return np.zeros(step.size, bool)
    try:
        se = np.sqrt(np.maximum(2.0 * np.diag(np.linalg.inv(H)), 0.0))
    except np.linalg.LinAlgError:
        return step > 0
    size = np.maximum(np.abs(at), se)
    if not np.all(np.isfinite(size)):
        return step > 0
    return step > STALE_HESSIAN * size


def _with_columns(H, columns, new):
    """H with its columns (and rows) ``columns`` replaced by ``new`` (k, m), or None
    where they changed by more than 2 STALE_HESSIAN in H's unit-diagonal form (the
    standard errors would be off by more than STALE_HESSIAN) or lost their positive
    diagonal."""
    d = np.diag(H)
    if not (np.all(np.isfinite(new)) and np.all(d > 0) and np.all(new[columns, np.arange(
            columns.size)] > 0)):
        return None
    D = 1.0 / np.sqrt(d)
    change = np.abs(new - H[:, columns]) * np.outer(D, D[columns])
    if np.max(change) > 2.0 * STALE_HESSIAN:
        return None
    out = H.copy()
    out[:, columns] = new
    out[columns, :] = new.T
    out[np.ix_(columns, columns)] = (new[columns] + new[columns].T) / 2
    return out


def polish(fg, x, f, g, lower, steps, central=False, scaling=None):
    """Newton steps on the coordinates off their bounds; returns (x, f, g, H, at_bound).

    H: end_hessian (forward differences at a clear optimum; central ones when
    ``central``, on a singular face, or where the forward ones are in doubt), or
    derived_hessian where ``scaling`` is given and no coordinate is on its bound."""
    at_bound = _at_bound(x, g, lower)
    free = ~at_bound
    sub_lower = lower[free]

    def sub(xf, base):
        full = base.copy()
        full[free] = xf
        ff, gg = fg(full)
        return ff, gg[free]

    H = np.full((x.size, x.size), np.nan)
    linear = getattr(fg, "linear", np.zeros(x.size, bool))[free]
    variance = getattr(fg, "variance", np.zeros(x.size, bool))[free]

    def measure(at, g_at):
        cache = {}
        if scaling is not None and not central and free.all():
            H = derived_hessian(fg, at, g_at, lower, scaling, variance, linear, cache)
            if H is not None:
                return H
        return end_hessian(lambda xf: sub(xf, at), at[free], g_at[free], sub_lower,
                           linear=linear, variance=variance, central=central, cache=cache)

    def remeasured(at, g_at, H_then, moved):
        """H_then at ``at``, its moved coordinates' columns measured there (as
        end_hessian measured them: central on a singular face or where the forward
        Hessian was in doubt); H measured afresh where those changed (_with_columns)
        or a mean moved (its column's other rows come from the other columns)."""
        columns = np.flatnonzero(moved)
        if not linear[columns].any():
            fresh = hessian_columns(
                lambda xf: sub(xf, at), at[free], g_at[free], sub_lower, columns,
                central=central or not _clearly_positive(H_then), linear=linear,
                relative=None if central else variance)
            kept = _with_columns(H_then, columns, fresh)
            if kept is not None:
                return kept
        return measure(at, g_at)
    Hf = measure(x, g)
    at_hessian = x.copy()
    for _ in range(steps):
        if newton_decrement(Hf, g[free]) < POLISH_TOL:
            break
        try:
            step = np.linalg.solve(Hf, g[free])
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)) or np.all(np.linalg.eigvalsh(Hf) <= 0):
            break
        trial = x.copy()
        trial[free] = np.maximum(x[free] - step, sub_lower)
        ft, gt = fg(trial)
        if not (np.isfinite(ft) and (ft <= f + 1e-10 * abs(f) or
                                     _closer_below_rounding(fg, Hf, f, g[free], ft,
                                                            gt[free]))):
            break
        x, f, g = trial, ft, gt
    moved = _moved(Hf, at_hessian[free], x[free])
    if moved.any():
        Hf = remeasured(x, g, Hf, moved)
    H[np.ix_(free, free)] = Hf
    return x, f, g, H, at_bound


def _directional_curvature(fg, y, v, lower, h):
    """d^2(-2 log L)/dt^2 along v at y, by Richardson-extrapolated central differences
    of the analytic gradient (error O(h^4); a cubic in t, the shape of -2 log L along
    a straight line off a curved flat valley, differences to exactly 0); None when a
    point is inadmissible."""
    def slope(t):
        point = y + t * v
        if np.any(point < lower):
            return None
        f, g = fg(point)
        return float(g @ v) if np.isfinite(f) else None
    values = [slope(t) for t in (h, -h, h / 2, -h / 2)]
    if any(v_ is None for v_ in values):
        return None
    wide, narrow = (values[0] - values[1]) / (2 * h), (values[2] - values[3]) / h
    return (4 * narrow - wide) / 3


def flat_directions(fg, y, H, off, lower):
    """Index arrays (into y) of the parameters along whose combination -2 log L is flat:
    the model is not identified there. H: the (finite-difference) Hessian at y in the
    same coordinates; off: coordinates off their bounds. Scale-free: judged in the
    metric where H has unit diagonal. A candidate direction (eigenvalue below
    FLAT_CANDIDATE of the largest: the finite-difference Hessian's own noise is ~1e-7)
    is re-measured by a higher-order difference along it and is flat below FLAT_TOL."""
    idx = np.flatnonzero(off)
    sub = H[np.ix_(idx, idx)]
    d = np.diag(sub)
    if idx.size < 2 or not np.all(np.isfinite(sub)) or np.any(d <= 0):
        return []
    D = 1.0 / np.sqrt(d)
    vals, vecs = np.linalg.eigh(sub * np.outer(D, D))
    out = []
    for lam, u in zip(vals, vecs.T):
        if lam > FLAT_CANDIDATE * vals[-1]:
            break
        v = np.zeros(y.size)
        v[idx] = D * u
        curvature = _directional_curvature(fg, y, v, lower, FLAT_STEP)
        if curvature is not None and abs(curvature) < FLAT_TOL * vals[-1]:
            out.append(idx[np.abs(u) > 0.1])
    return out


def _identified_decrement(H, g):
    """g' H^+ g over the eigen-directions of H above FLAT_CANDIDATE of its largest."""
    vals, vecs = np.linalg.eigh((H + H.T) / 2)
    keep = vals > FLAT_CANDIDATE * vals[-1]
    z = vecs[:, keep].T @ g
    return float(np.sum(z ** 2 / vals[keep]))


def _usable_guess(h_theta, transform, x, free, scale):
    """A theta-unit Hessian guess carried to the search's scaled coordinates at x, or
    None where it is unusable there: not finite, or its smallest eigenvalue not above
    1e-10 of its largest (e.g. a factor diagonal near 0)."""
    hy = hessian_in_coordinates(h_theta, transform, x, free, scale)
    ev = np.linalg.eigvalsh(hy) if hy.size else np.ones(1)
    return hy if np.all(np.isfinite(ev)) and ev[0] > 1e-10 * ev[-1] else None


def _renewed_guess(curvature, fg, transform, free, scale, y):
    """The inverse of ``curvature``'s Hessian guess at the search's point y, in its
    coordinates; None where it has none or it is unusable there (_usable_guess)."""
    theta = fg.full(y)
    h = curvature(theta)
    if h is None:
        return None
    hy = _usable_guess(h, transform, transform.from_theta(theta), free, scale)
    return None if hy is None else np.linalg.inv(hy)


def _search(fg, lower, transform, free, gtol, verbose, cautious, max_iter, y, f, g, H,
            refresh=None):
    """The quasi-Newton search from (y, f, g) with inverse-Hessian guess H (renewed by
    ``refresh`` over its first iterations, bfgs), then away from saddles where a
    Cholesky diagonal sits near 0: (y, f, g, iterations, status, history)."""
    y, f, g, iters, status, history = bfgs(fg, y, f, g, lower, H, max_iter, gtol, verbose,
                                           cautious, refresh)
    for _ in range(3):
        kicked = _escape_singular_saddle(fg, y, f, transform, free)
        if kicked is None:
            break
        y, f, g = kicked
        y, f, g, more, status, extra = bfgs(fg, y, f, g, lower, _inverse_or_diagonal(
            hessian_of(fg, y, g, lower, linear=fg.linear)), max_iter, gtol, verbose)
        iters += more
        history += extra
    return y, f, g, iters, status, history


@dataclass
class _End:
    """Where a search ended, polished and judged (fit_problem's result before the record)."""
    theta: np.ndarray
    f: float
    grad: np.ndarray
    hess: np.ndarray
    at_bound: np.ndarray
    decrement: float
    converged: bool
    status: str
    flat: list
    evaluations: int


def _near_singular(transform, free, y):
    """(free coordinates,) bool: Cholesky diagonals below SMALL_DIAGONAL (scaled units):
    a covariance block close to singular."""
    index = np.cumsum(free) - 1
    near = np.zeros(y.size, bool)
    for b in transform.blocks:
        for slot in np.diag(b.slots):
            if free[slot] and y[index[slot]] ** 2 < SMALL_DIAGONAL:
                near[index[slot]] = True
    return near


PROBE_STEPS = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001)   # natural units, both signs


def _probed_decrement(fg, y, f, H, g, off, lower):
    """On a singular face: (decrement, None), or (nan, (y, f)) after a step that lowers
    -2 log L. Next to the floor, difference quotients of the gradient can be badly off
    (third derivatives grow like 1 / L_rr^3): the eigen-directions of H (unit diagonal)
    below FLAT_CANDIDATE of the largest are probed by steps of PROBE_STEPS along each,
    both signs. Where one lowers -2 log L by more than DECREMENT_TOL (a saddle), the
    step is doubled while it keeps lowering it and that point is returned; otherwise
    no step can lower it there, and the decrement is judged over the other directions."""
    idx = np.flatnonzero(off)
    sub = H[np.ix_(idx, idx)]
    d = np.sqrt(np.abs(np.diag(sub)))
    if idx.size == 0 or not np.all(np.isfinite(sub)) or np.any(d == 0):
        return np.nan, None
    vals, vecs = np.linalg.eigh(sub / np.outer(d, d))
    suspect = vals <= FLAT_CANDIDATE * vals[-1]
    for u in vecs[:, suspect].T:
        v = np.zeros(y.size)
        v[idx] = u / d
        v /= np.max(np.abs(v))
        for size in PROBE_STEPS:
            for sign in (1.0, -1.0):
                trial = np.maximum(y + sign * size * v, lower)
                ft = fg(trial)[0]
                if np.isfinite(ft) and ft < f - DECREMENT_TOL:
                    for _ in range(20):         # downhill: as far as it keeps going down
                        size *= 2.0
                        further = np.maximum(y + sign * size * v, lower)
                        f_further = fg(further)[0]
                        if not (np.isfinite(f_further) and f_further < ft):
                            break
                        trial, ft = further, f_further
                    return np.nan, (trial, ft)
    z = vecs[:, ~suspect].T @ (g[idx] / d)
    return float(np.sum(z ** 2 / vals[~suspect])), None


CONE_NOISE = 10.0      # a singular block's gradient eigenvalue below -CONE_NOISE times its
#                        range part (zero at a stationary point, so its size is noise) is a
#                        descent out of the face
CONE_PROBE = 1e-3      # the first step along S + t vv' (natural units), where its curvature
#                        is read


def _cone_descent(fg, transform, free, scale, y, f, lower, theta, grad, strict=True):
    """Leave a singular face downhill where the Cholesky coordinates hide it: (y, f)
    after the step, or None. At a singular covariance S (null space V, range U) the
    Cholesky factor reaches S + t vv' only to second order (L_rr grows like sqrt(t)),
    so its gradient can vanish where -2 log L still falls: S is a constrained
    optimum only if G, the gradient with respect to S, is positive semidefinite
    (G S = 0, G >= 0 on V). With unit-diagonal scaling by the variances' units, an
    eigenvalue of G below -CONE_NOISE times the largest entry of U'GU (zero at a
    stationary point; ``strict`` False, where the face is not converged: below 0)
    names the direction v. Along S + t vv' the slope is that eigenvalue; the
    curvature is read from the gradient at t = CONE_PROBE; where the gain it
    predicts exceeds DECREMENT_TOL the Newton step in t is taken (halved until it
    lowers -2 log L), then doubled while -2 log L keeps falling. theta, grad: the
    parameters and the gradient of -2 log L with respect to them at y.
    Seen: a saturated three-level model's 4 x 4 school covariance of rank 3 that a
    rank-one addition lowered by 1.25, called converged on one CPU's arithmetic;
    4 of 20 random 3 x 3 faces (tests/test_optimizer.py)."""
    units = np.asarray(fg.problem.param_units, float)
    index = np.cumsum(free) - 1
    for b in _singular_blocks(transform, free, y, lower):
        if b.mode != FREE or not free[b.slots].all():
            continue
        S = theta[b.slots]
        root = np.sqrt(units[np.diag(b.slots)])
        diagonal = index[np.diag(b.slots)]
        rank = int(np.sum(y[diagonal] > lower[diagonal] * (1 + 1e-6)))
        U = np.linalg.eigh(S / np.outer(root, root))[1][:, len(S) - rank:]
        G = grad[b.slots] * b.half * np.outer(root, root)
        noise = np.max(np.abs(U.T @ G @ U), initial=0.0)
        vals, vecs = np.linalg.eigh(G)
        if not vals[0] < -CONE_NOISE * noise * strict:
            continue
        v, slope = vecs[:, 0] * root, vals[0]

        def along(t):
            point = _onto_face(transform, free, scale, lower, theta, b, S, v, t)
            return (point, *fg(point)) if point is not None else (None, np.nan, None)
        point, ft, _ = along(CONE_PROBE)
        if not np.isfinite(ft):
            continue
        curvature = (v @ (fg.last_gradient[b.slots] * b.half) @ v - slope) / CONE_PROBE
        t = CONE_PROBE
        if ft >= f - DECREMENT_TOL:
            if curvature > 0 and slope ** 2 / (2 * curvature) < DECREMENT_TOL:
                continue                      # the most any t gains: nothing that counts
            t = -slope / curvature if curvature > 0 else CONE_PROBE
            for _ in range(30):
                point, ft, _ = along(t)
                if np.isfinite(ft) and ft < f - DECREMENT_TOL:
                    break
                t /= 2.0
            else:
                continue
        for _ in range(20):                   # downhill: as far as it keeps going down
            further, f_further, _ = along(2.0 * t)
            if not (np.isfinite(f_further) and f_further < ft):
                break
            point, ft, t = further, f_further, 2.0 * t
        return point, ft
    return None


def _onto_face(transform, free, scale, lower, theta, b, S, v, t):
    """The search's coordinates of theta with block b at S + t vv' (None where that
    has no Cholesky factor)."""
    trial = theta.copy()
    trial[b.slots] = S + t * np.outer(v, v)
    try:
        return np.maximum(transform.from_theta(trial)[free] / scale[free], lower)
    except np.linalg.LinAlgError:
        return None


def _singular_blocks(transform, free, y, lower):
    """The Cholesky blocks with a free diagonal coordinate on its floor at y."""
    index = np.cumsum(free) - 1
    return [b for b in transform.blocks
            if any(free[slot] and y[index[slot]] <= lower[index[slot]] * (1 + 1e-6)
                   for slot in np.diag(b.slots))]


def _finish_singular(fg, transform, free, scale, lower, polish_steps, y, status):
    """A singular fit judged where it is defined: Newton steps in the search's Cholesky
    coordinates with the floored diagonals held (while -2 log L rises as they leave
    the floor), the decrement on that face. The singular blocks' parameters are
    reported on their bound (no standard errors); the others get the Hessian of
    -2 log L with the free coordinates of those blocks profiled out."""
    k = transform.k
    f, g = fg(y)
    count = fg.count
    y, f, g, Hy, bound = polish(fg, y, f, g, lower, polish_steps, central=True)
    f = fg(y)[0]              # the polish ended on its Hessian's steps: grad belongs to y
    theta, grad = fg.full(y), fg.last_gradient.copy()
    off = ~bound
    pg = _projected(g, y, lower)
    decrement = newton_decrement(Hy[np.ix_(off, off)], pg[off])
    moved = None
    if np.isnan(decrement):
        decrement, moved = _probed_decrement(fg, y, f, Hy, pg, off, lower)
    if moved is None:
        moved = _cone_descent(fg, transform, free, scale, y, f, lower, theta, grad,
                              strict=decrement < DECREMENT_TOL)
        decrement = decrement if moved is None else np.nan
    if moved is not None:     # a saddle on the face: the restart goes on from there
        y, status = moved[0], "saddle point on the singular face: left downhill"
        f = fg(y)[0]          # (the memo's point, so grad belongs to y)
        theta, grad = fg.full(y), fg.last_gradient.copy()
    singular = np.zeros(k, bool)
    for b in _singular_blocks(transform, free, y, lower):
        singular[b.slots.ravel()] = True
    at_bound = np.zeros(k, bool)
    at_bound[free] = bound
    at_bound |= singular & free
    hess = np.full((k, k), np.nan)
    index = np.flatnonzero(free)
    rest = off & ~singular[free] & transform.identity[free]
    other = off & ~rest
    if rest.any():
        H_rr, H_ro, H_oo = (Hy[np.ix_(rest, rest)], Hy[np.ix_(rest, other)],
                            Hy[np.ix_(other, other)])
        try:
            schur = H_rr - H_ro @ np.linalg.solve(H_oo, H_ro.T) if other.any() else H_rr
        except np.linalg.LinAlgError:
            schur = np.full_like(H_rr, np.nan)
        s = scale[index[rest]]
        hess[np.ix_(index[rest], index[rest])] = schur / np.outer(s, s)
    converged = bool(decrement < DECREMENT_TOL)
    if converged:
        status = "converged (singular fit: a covariance matrix is singular at the estimate)"
    elif status == "converged":
        status = ("Hessian not positive definite at the end" if np.isnan(decrement)
                  else f"gradient not small at the end (Newton decrement {decrement:.1e})")
    return _End(theta, f, grad, hess, at_bound, decrement, converged, status, [],
                fg.count - count)


def _finish(problem, plain, pscale, free, hessian, polish_steps, memo, evaluate, theta,
            status, scaling=None):
    """Polish theta by Newton steps on the parameters themselves and judge convergence
    by the Newton decrement there (first and second order); without ``hessian`` (a
    profile fit) only the bounds are read and the search's status stands. scaling:
    derived_hessian's hook (every parameter free only)."""
    k = theta.size
    hess = np.full((k, k), np.nan)
    at_bound = np.zeros(k, bool)
    pf = Objective(problem, plain, theta, free, pscale, memo, evaluate)
    plower = plain.lower[free] / pscale[free]
    pt = theta[free] / pscale[free]
    f, pg0 = pf(pt)
    grad = pf.last_gradient.copy()     # a fixed parameter's entry: the profile's slope there
    if hessian:
        pt, f, pg0, Hx, bound_x = polish(pf, pt, f, pg0, plower, polish_steps,
                                         scaling=scaling if free.all() else None)
        theta = pf.full(pt)
        hess[np.ix_(free, free)] = Hx / np.outer(pscale[free], pscale[free])
        at_bound[free] = bound_x
        pg = _projected(pg0, pt, plower)
        off = ~bound_x
        groups = flat_directions(pf, pt, Hx, off, plower)
        flat = [np.flatnonzero(free)[group] for group in groups]
        # along a flat direction no gradient can be expected to vanish faster: judge
        # the decrement on the identified directions only
        decrement = newton_decrement(Hx[np.ix_(off, off)], pg[off]) if not groups else \
            _identified_decrement(Hx[np.ix_(off, off)], pg[off])
        converged = bool(decrement < DECREMENT_TOL)
        if converged:       # the Newton polish finished what the search left
            status = "converged"
        elif status == "converged":
            status = ("Hessian not positive definite at the end" if np.isnan(decrement)
                      else f"gradient not small at the end (Newton decrement {decrement:.1e})")
    else:
        at_bound[free] = _at_bound(pt, pg0, plower)
        decrement, flat = np.nan, []
        converged = status == "converged"
    grad[free] = pg0 / pscale[free]
    return _End(theta, f, grad, hess, at_bound, decrement, converged, status, flat, pf.count)


def fit_problem(problem, start=None, fixed=None, max_iter=500, gtol=1e-9, polish_steps=3,
                hessian=True, hessian_guess=None, verbose=False, correlation=False,
                evaluate=None, curvature=None):
    """Minimise -2 log L; returns an OptimizationRecord.

    start: (k,) theta to start from (default: the model's start values);
    fixed: (k,) bool, parameters held at their start value (profiling);
    max_iter: quasi-Newton iterations, restarts included; gtol: stop when the predicted drop of
    -2 log L is below it; polish_steps: Newton steps with the numerical
    Hessian; hessian: compute that Hessian at all (False for profile fits,
    which then skip the polish and judge convergence by BFGS); hessian_guess:
    (k, k) Hessian of -2 log L in theta units to start the search from, NaN
    where unknown, or a function of the problem giving one or None (default:
    forward differences at the start); correlation: a held
    covariance is held at the correlation it has in ``start`` (its variances free);
    evaluate: theta -> (-2 log L, gradient) instead of the engine on ``problem`` (the
    shards of a fit on workers; problem still gives the parameters and their units);
    curvature: theta -> (k, k) Hessian guess in closed form (no evaluations, None where
    it has none: fit/information.py), or an object whose bind(problem) gives one
    (lmm/curvature.LmerCurvature: the model need not be compiled before the fit), the
    first curvature when hessian_guess is None and renewed where the search is over
    its first REFRESHES iterations; such an object's scaling(problem), if it has one,
    lets the end Hessian derive a column (derived_hessian).
    The search runs in Cholesky coordinates (transform.py); the polish and
    the Hessian in the parameters themselves.
    """
    t0 = time.perf_counter()
    # the end Hessian's derived column (derived_hessian) reads the posterior in process
    scaling = curvature.scaling(problem) if hasattr(curvature, "scaling") and \
        evaluate is None else None
    if hasattr(curvature, "bind"):
        curvature = curvature.bind(problem)
    params = problem.params
    k = params.n
    start = params.start.copy() if start is None else np.asarray(start, float).copy()
    fixed = np.zeros(k, bool) if fixed is None else np.asarray(fixed, bool)
    free = ~fixed
    floor = variance_floor(problem)
    transform = Transform(problem, floor, fixed, correlation=correlation)
    start = np.where(free & params.is_variance, np.maximum(start, floor), start)
    start = transform.admissible(start, fixed)
    not_finite = ValueError("xxmRun: -2 log L is not finite at the start values; check that "
                            "theta and psi are positive definite and I - beta is invertible.")
    try:
        x0 = transform.from_theta(start)
        scale = coordinate_scale(transform, problem, params.start)
    except np.linalg.LinAlgError:
        raise not_finite from None
    fg = Objective(problem, transform, x0, free, scale, evaluate=evaluate)
    if hasattr(curvature, "share"):           # its evaluations start from the search's
        curvature.share(fg.memo)
    lower = transform.lower[free] / scale[free]
    y = np.maximum(x0[free] / scale[free], lower)
    f0, g = fg(y)
    if not np.isfinite(f0):
        raise not_finite
    if callable(hessian_guess):
        hessian_guess = hessian_guess(problem)
    if hessian_guess is None and curvature is not None:
        hessian_guess = curvature(start)
    if hessian_guess is None:     # only a preconditioner: forward differences suffice
        H = _preconditioner(hessian_of(fg, y, g, lower, central=False))
    else:
        hy = _usable_guess(hessian_guess, transform, x0, free, scale)
        if hy is None:
            hy = hessian_of(fg, y, g, lower, linear=fg.linear)
        H = _inverse_or_diagonal(hy)
    search = functools.partial(_search, fg, lower, transform, free, gtol, verbose,
                               hessian_guess is None)
    refresh = None if curvature is None else functools.partial(
        _renewed_guess, curvature, fg, transform, free, scale)
    y, f, g, iters, status, history = search(max_iter, y, f0, g, H, refresh=refresh)
    plain = Transform(problem, floor, fixed, cholesky=False)
    pscale = coordinate_scale(plain, problem, params.start)
    plain_finish = functools.partial(_finish, problem, plain, pscale, free, hessian,
                                     polish_steps, fg.memo, evaluate, scaling=scaling)

    def finish(theta, status):
        """Judge the end on the parameters themselves, or, when a covariance block is
        singular there (its Cholesky diagonal on the floor: outside it the parameters
        are not admissible, so no difference quotient works), on the search's face."""
        y_end = np.maximum(transform.from_theta(theta)[free] / scale[free], lower)
        if hessian and _singular_blocks(transform, free, y_end, lower):
            return _finish_singular(fg, transform, free, scale, lower, polish_steps, y_end,
                                    status)
        end = plain_finish(theta, status)
        near = _near_singular(transform, free, y_end)
        if not hessian or end.converged or not near.any():
            return end
        # a search creeping towards a singular covariance (the gradient in a Cholesky
        # diagonal vanishes with it): try it on the floor
        snapped = np.where(near, lower, y_end)
        f_snap = fg(snapped)[0]
        if not f_snap <= end.f + DECREMENT_TOL:
            return end
        face = _finish_singular(fg, transform, free, scale, lower, polish_steps, snapped,
                                status)
        face.evaluations += end.evaluations + 1
        return face if face.converged or face.f < end.f else end

    end = finish(fg.full(y), status)
    polish_evaluations = end.evaluations
    restarts = []
    while hessian and not end.converged and iters < max_iter and len(restarts) < MAX_RESTARTS \
            and sum(not kept for *_, kept in restarts) < RESTARTS:
        # restart the search where the best point so far is, with curvature measured
        # afresh there by central differences (the quasi-Newton model had gone stale)
        y = np.maximum(transform.from_theta(end.theta)[free] / scale[free], lower)
        fr, gr = fg(y)
        if not np.isfinite(fr):
            break
        y, fr, gr, more, status, extra = search(
            max_iter - iters, y, fr, gr, _preconditioner(hessian_of(fg, y, gr, lower,
                                                                linear=fg.linear)))
        iters += more
        again = finish(fg.full(y), status)
        polish_evaluations += again.evaluations
        kept = again.converged or again.f < end.f - DECREMENT_TOL
        restarts.append((f"not converged ({end.status}): search restarted from the best "
                         f"point with fresh curvature", end.f, again.f, kept))
        if kept:
            end, history = again, history + extra
    theta, f, grad, hess, at_bound = end.theta, end.f, end.grad, end.hess, end.at_bound
    decrement, converged, status, flat = end.decrement, end.converged, end.status, end.flat
    n_eval = fg.count + polish_evaluations + getattr(curvature, "evaluations", 0)
    pg_full = np.where(at_bound, 0.0, np.nan_to_num(grad))
    return OptimizationRecord(
        start=start, estimate=theta, start_deviance=f0, deviance=f,
        gradient=grad, gradient_norm=float(np.max(np.abs(pg_full), initial=0.0)),
        hessian=hess, at_bound=at_bound, n_evaluations=n_eval, n_iterations=iters,
        converged=converged, status=status, seconds=time.perf_counter() - t0,
        history=history, decrement=decrement, not_identified=flat, restarts=restarts)
