"""One profile limit found directly, without a sequence of profile fits.

A limit of parameter j is a point where the profile deviance reaches the
cutoff: -2 log L = D_min + cutoff, with the gradient in every other
coordinate 0 (the other parameters re-optimised). ``search_limit`` solves
these k equations together: each step is a Newton step on zeta (the signed
root of the rise) in theta_j, using the profile value and slope predicted by
a quadratic model, combined with the Newton step of the other coordinates
for the new theta_j. The model's Hessian starts from the fit's and is
updated by (damped) BFGS after every evaluation, so one evaluation of -2 log L
and its gradient makes one step; 4-8 evaluations find most limits.

It works in the optimiser's coordinates with theta_j held as a coordinate
(transform.py; a variance inside a Cholesky block is searched as its root).
Other coordinates on their lower bound with the gradient pushing outwards
stay there (an active set, as in the projected BFGS of optimize.py). At a
limit found with a Cholesky diagonal L_rr near 0 the gradient in L_rr
vanishes whatever the curvature, so the point may be a saddle of the
parameters: there -2 log L falls along Sigma + e u u' (which stays positive
definite) when the gradient matrix G = d(-2 log L)/d Sigma has a negative
eigenvalue with eigenvector u (at a minimum on the cone's edge G is positive
semi-definite: the KKT condition). Such a limit is flagged ``saddle``, and
profile.py re-optimises it with a full profile fit before accepting anything.

The lower side of a variance may end at the boundary: a step that would go
below the boundary probe (``floor``, a small positive value) stops there.
Any point with theta_j at the floor bounds the profile there from above, so
the first one whose rise is below the cutoff proves that the profile stays
below it down to (about) 0: the limit is 0 (status boundary). Until then the
other coordinates are minimised with theta_j held at the floor (Newton steps
with a backtracking line search), and the search moves back up if the
minimised rise exceeds the cutoff.

It gives up (returns a reason, never a limit it has not reached) when a step
leaves the admissible parameters, the profile stops rising outwards, the
model Hessian is unusable, a step goes beyond ``far``, or no limit is reached
within MAX_EVALUATIONS; profile.py then falls back to root finding over full
profile fits.
"""
import math
from dataclasses import dataclass

import numpy as np

from ..engine import backend

try:
    from . import _quasi_newton
except ImportError:      # not built
    _quasi_newton = None
quasi_newton = _quasi_newton if backend.COMPILED else None
from ..fit.optimize import (SMALL_DIAGONAL, Objective, coordinate_scale, hessian_in_coordinates,
                            variance_floor)
from ..fit.transform import Transform

MAX_EVALUATIONS = 30
GTOL = 4e-5            # g' B^-1 g over the other coordinates (twice their predicted drop;
                       # 2e-5 is 5x below the rise tolerance)
MAX_HALVINGS = 5       # an inadmissible trial point halves the step
SADDLE_SLOPE = 1e-2    # a saddle: a move of 1% of a covariance's scale along Sigma + e u u'
                       # lowers -2 log L by more than the rise tolerance (1e-4)


@dataclass
class Found:
    """A limit reached: theta_j = value, -2 log L = minimum + rise, theta all of
    them; status "ok" (rise = cutoff) or "boundary" (value is the floor; rise, an
    upper bound of the profile's rise there, is below the cutoff)."""
    value: float
    rise: float
    theta: np.ndarray
    n_evaluations: int
    status: str = "ok"
    saddle: bool = False     # next to a singular covariance, G fails the KKT test (_saddle)


@dataclass
class GaveUp:
    """No limit found, and why."""
    reason: str
    n_evaluations: int


@dataclass
class _Start:
    """What both sides of parameter j start from: the optimiser's coordinates
    with theta_j a coordinate (transform, scale; lower bounds and the estimate y
    in scaled units), the Hessian model B there and its inverse H, and the gradient g at the
    estimate (from the fit; None if not known everywhere)."""
    transform: Transform
    x0: np.ndarray
    scale: np.ndarray
    free: np.ndarray
    lower: np.ndarray
    y: np.ndarray
    coord: "_Coordinate"
    B: np.ndarray
    H: np.ndarray
    g: np.ndarray


def _start_for(ctx, j):
    """The _Start of parameter j (kept in ctx.starts), or GaveUp."""
    if j not in ctx.starts:
        ctx.starts[j] = _build_start(ctx, j)
    return ctx.starts[j]


def _build_start(ctx, j):
    problem, k = ctx.problem, ctx.problem.params.n
    fixed = np.zeros(k, bool)
    fixed[j] = True
    transform = Transform(problem, variance_floor(problem), fixed)
    free = np.ones(k, bool)
    try:
        x0 = transform.from_theta(ctx.theta)
        scale = coordinate_scale(transform, problem, problem.params.start)
    except np.linalg.LinAlgError:
        return GaveUp("a covariance matrix is not positive definite at the estimate", 0)
    B = hessian_in_coordinates(ctx.hessian, transform, x0, free, scale)
    if not np.all(np.isfinite(B)) or np.linalg.eigvalsh(B)[0] <= 1e-10 * np.abs(B).max():
        return GaveUp("no positive definite Hessian at the estimate", 0)
    g = transform.pullback(x0, ctx.gradient) * scale
    return _Start(transform, x0, scale, free, transform.lower / scale, x0 / scale,
                  _Coordinate(transform, j, scale[j]), B, np.linalg.inv(B),
                  g if np.all(np.isfinite(g)) else None)


class _Coordinate:
    """theta_j as a function of its scaled coordinate t: t * s, or (t * s)^2 for a
    variance searched through its Cholesky factor."""

    def __init__(self, transform, j, scale):
        self.square = any(b.slots[0, 0] == j and not b.covariance_fixed
                          for b in transform.blocks)
        self.s = scale

    def value(self, t):
        return (t * self.s) ** 2 if self.square else t * self.s

    def derivative(self, t):
        return 2.0 * t * self.s ** 2 if self.square else self.s

    def coordinate(self, v):
        """The scaled coordinate of value v (a variance below 0 maps to 0)."""
        return np.sqrt(max(v, 0.0)) / self.s if self.square else v / self.s


def search_limit(ctx, j, side, floor=-np.inf, far=np.inf):
    """The limit of parameter j on ``side`` (-1 lower, +1 upper): Found or GaveUp.

    ctx: profile._Context (problem, theta, dmin, cutoff, tol_rise, hessian,
    is_variance, natural_step); floor: for a variance's lower side, the
    boundary probe (no step goes below it); far: |theta_j - estimate| beyond
    it is left to the unbounded test of the root finding.
    """
    start = _start_for(ctx, j)
    if isinstance(start, GaveUp):
        return start
    fg = Objective(ctx.problem, start.transform, start.x0, start.free, start.scale,
                   evaluate=ctx.evaluate)
    coord, lower = start.coord, start.lower
    B, H = start.B.copy(), start.H.copy()      # updated in place; the start serves both sides
    y, f, g = start.y, ctx.dmin, start.g
    if g is None:                    # the fit's gradient is not known everywhere
        f, g = fg(y)
    bound = lower * (1 + 1e-9) + 1e-300
    est, natural, target = ctx.theta[j], ctx.natural_step(j), np.sqrt(ctx.cutoff)
    bounded = side < 0 and ctx.is_variance[j] and np.isfinite(floor)
    at_floor = False
    while fg.count < MAX_EVALUATIONS:
        model = _model(B, H, y, g, f, j, bound)
        if model is None:
            return GaveUp("the model Hessian is not positive definite", fg.count)
        v, rise = coord.value(y[j]), f - ctx.dmin
        if at_floor and rise < ctx.cutoff:
            # f bounds the profile at the floor from above: it stays below the cutoff
            return Found(v, rise, fg.full(y), fg.count, "boundary")
        if model.decrement < GTOL and abs(rise - ctx.cutoff) < ctx.tol_rise:
            return Found(v, rise, fg.full(y), fg.count,
                         saddle=_saddle(start, y, j, fg.last_gradient))
        zeta = math.sqrt(max(model.predicted - ctx.dmin, 0.0))
        if zeta >= 1e-3:                 # Newton on zeta(v), v = theta_j
            if coord.derivative(y[j]) == 0:
                return GaveUp("the profiled variance's factor reached 0", fg.count)
            dzeta = model.slope / coord.derivative(y[j]) / (2.0 * zeta)
            if side * dzeta <= 0:
                return GaveUp("the profile does not rise outwards here", fg.count)
            reach = 4.0 * max(abs(v - est), natural)
            v_new = v + min(max((target - zeta) / dzeta, -reach), reach)
        else:                            # at the estimate: the quadratic model's limit
            v_new = coord.value(y[j] + _first_step(coord, y[j], model, ctx.cutoff, side,
                                                   ctx.is_variance[j] and not ctx.at_bound[j]))
            if not np.isfinite(v_new):
                return GaveUp("the quadratic model does not rise outwards here", fg.count)
        if abs(v_new - est) > far:
            return GaveUp("a step goes beyond the unbounded test", fg.count)
        at_floor = bounded and v_new <= floor
        dt = coord.coordinate(floor) - y[j] if at_floor else coord.coordinate(v_new) - y[j]
        trial = _trial(fg, y, f, g, dt, model, lower, descent=at_floor and dt == 0)
        if trial is None:
            return GaveUp("no admissible point along the step", fg.count)
        y_new, f_new, g_new = trial
        B, H = _update(B, H, y_new - y, g_new - g)
        y, f, g = y_new, f_new, g_new
    return GaveUp(f"no limit within {MAX_EVALUATIONS} evaluations", fg.count)


def _saddle(start, y, j, gradient):
    """Whether the point is a saddle next to a singular covariance: for each block
    with a Cholesky diagonal other than y[j] near 0 (L_rr^2 < SMALL_DIAGONAL in its
    scaled units, the optimiser's saddle test), the block's gradient matrix G (theta
    units, scaled by the diagonal coordinates' scales) has an eigenvalue below
    -SADDLE_SLOPE. A held element of the block has a free multiplier, so its rows
    are left out (a held variance's row; a held covariance: either of its rows)."""
    for b in start.transform.blocks:
        diag = np.diag(b.slots)
        if not any(slot != j and y[slot] ** 2 < SMALL_DIAGONAL for slot in diag):
            continue
        s = start.scale[diag]
        G = gradient[b.slots] * b.half * np.outer(s, s)
        rows = np.arange(len(diag))
        subsets = ([rows[1:]] if diag[0] == j else
                   [rows[rows != 0], rows[rows != 1]] if b.covariance_fixed else [rows])
        if any(len(r) and np.linalg.eigvalsh(G[np.ix_(r, r)])[0] < -SADDLE_SLOPE
               for r in subsets):
            return True
    return False


def _first_step(coord, t, model, cutoff, side, sd_scale):
    """The move in t from the estimate to where the quadratic model's profile
    (slope, curvature 2 / unit^2) rises by the cutoff; for a variance inside its
    space (``sd_scale``) the move is taken on the SD scale (the profile is closer
    to quadratic there) and never below half the SD (the Newton steps that
    follow go further when needed)."""
    c = 2.0 / model.unit ** 2
    denominator = side * model.slope + np.sqrt(model.slope ** 2 + 2 * c * cutoff)
    if not denominator > 0:              # no curvature and a slope the wrong way
        return np.nan
    dt = side * 2.0 * cutoff / denominator
    if not sd_scale:
        return dt
    sd = np.sqrt(coord.value(t))
    sd_new = np.sqrt(coord.value(t + dt)) if coord.square else \
        sd + dt * coord.derivative(t) / (2.0 * sd)          # d sd = dv / (2 sd)
    if coord.square and t + dt < 0:
        sd_new = -sd_new
    return coord.coordinate(max(sd_new, sd / 2) ** 2) - t


@dataclass
class _Model:
    """The quadratic model's profile at the current t = y[j].

    w, u: (k,) with B_FF^-1 g_F and B_FF^-1 B_Fj on the other coordinates that
    move (F: those not held on a bound), 0 on the held ones, and w_j = 0,
    u_j = -1, so that step(dt) = -(w + u dt) is the move dt in t together with
    the others' Newton step for it. decrement: g_F' w_F (twice the predicted
    drop of -2 log L over them); predicted = f - decrement / 2, the profile
    value at t; slope its derivative in t; unit: the move in t over which the
    model's profile rises by 1 (sqrt(2 / its curvature)).
    """
    w: np.ndarray
    u: np.ndarray
    decrement: float
    predicted: float
    slope: float
    unit: float

    def step(self, dt):
        return -(self.w + self.u * dt)


def _model(B, H, y, g, f, j, bound):
    """The _Model at (y, f, g) from B and H = B^-1; ``bound``: (k,) the lower bounds
    (scaled, slightly raised); None when the model is not convex there (B is kept positive
    definite, so only rounding can make it so)."""
    held = (y <= bound) & (g > 0)
    held[j] = False
    if held.any():
        F = np.flatnonzero(~held)
        F = F[F != j]
        wu = np.linalg.solve(B[F[:, None], F], np.column_stack([g[F], B[F, j]]))
        w, u = np.zeros_like(g), np.zeros_like(g)
        w[F], u[F], u[j] = wu[:, 0], wu[:, 1], -1.0
        curvature = B[j, j] - B[j, F] @ wu[:, 1]
        slope = g[j] - B[j] @ w
        decrement = g[F] @ wu[:, 0]
    elif quasi_newton is not None:
        w, u, decrement, slope, curvature = quasi_newton.profile_model(H, g, j)
    else:
        w, u, decrement, slope, curvature = _profile_model(H, g, j)
    if not (curvature > 0 and decrement >= 0):
        return None
    return _Model(w, u, float(decrement), f - 0.5 * decrement, float(slope),
                  math.sqrt(2.0 / curvature))


def _profile_model(H, g, j):
    """(w, u, decrement, slope, curvature) when no coordinate is held, through H:
    B_FF^-1 = H_FF - H_Fj H_jF / H_jj, B_FF^-1 B_Fj = -H_Fj / H_jj (the numpy twin of
    inference/_quasi_newton.profile_model)."""
    gz = g.copy()
    gz[j] = 0.0
    h, hj = H @ gz, H[:, j]
    w = h - hj * (h[j] / hj[j])            # w_j = 0
    u = hj / -hj[j]                        # u_j = -1
    slope = g[j] + h[j] / hj[j]            # (B w)_j = -h_j / H_jj, since B H = I
    return w, u, gz @ w, slope, 1.0 / hj[j]


def _trial(fg, y, f, g, dt, model, lower, descent):
    """Evaluate y moved by dt in t and the others' Newton step for it, halving the
    move while -2 log L is not finite (or, with ``descent``, while it does not
    fall enough: a plain minimisation over the others with t held)."""
    d = model.step(dt)
    for _ in range(MAX_HALVINGS + 1):
        trial = np.maximum(y + d, lower)
        f_new, g_new = fg(trial)
        if np.isfinite(f_new) and (not descent or f_new <= f + 1e-4 * g @ (trial - y)):
            return trial, f_new, g_new
        d = d / 2
    return None


def _update(B, H, s, r):
    """_damped_bfgs, compiled and in place when the kernels are built."""
    if quasi_newton is None:
        return _damped_bfgs(B, H, s, r)
    quasi_newton.damped_bfgs(B, H, s, r)
    return B, H


def _damped_bfgs(B, H, s, r):
    """BFGS update of the Hessian model B and its inverse H with step s and gradient
    change r, damped (Powell) so that B stays positive definite."""
    Bs = B @ s
    sBs, sr = s @ Bs, s @ r
    if not sBs > 0:
        return B, H
    if sr < 0.2 * sBs:
        phi = 0.8 * sBs / (sBs - sr)
        r = phi * r + (1 - phi) * Bs
        sr = s @ r
    Hr = H @ r
    # rank-2 updates: B - Bs Bs'/sBs + r r'/sr, and its inverse
    # (I - s r'/sr) H (I - r s'/sr) + s s'/sr = H + [s Hr] M [s Hr]'
    U, S = np.array([Bs, r]), np.array([s, Hr])
    c = (1.0 + (r @ Hr) / sr) / sr
    return (B + U.T @ (np.array([[-1.0 / sBs], [1.0 / sr]]) * U),
            H + S.T @ (np.array([[c, -1.0 / sr], [-1.0 / sr, 0.0]]) @ S))
