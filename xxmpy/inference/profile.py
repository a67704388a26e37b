"""Profile-likelihood confidence intervals.

For parameter j, the profile deviance D_j(v) is -2 log L minimised over all
other parameters with theta_j = v. A limit is where the rise
D_j(v) - D_min reaches the chi-square(1) quantile (3.841459 at 95%). We find
it first by a direct search (limit_search.py): Newton steps on the signed
root zeta(v) = sqrt(rise), which is close to linear in v, taken together with
the re-optimisation of the other parameters, one evaluation of -2 log L per
step. Where that gives up (a boundary, a profile that stops rising, a step
out of the parameter space), root finding over full profile fits takes over:
warm starts (each profile fit starts from the previous one, moved along the
estimated path), no fixed grid. Each profile fit also gives the profile's
slope (the gradient in theta_j at the re-optimised point, by the envelope
theorem), so it takes Newton steps on zeta too, falling back to secant /
bisection steps when a Newton step is unusable.

Either way a limit is a point where the other parameters are re-optimised
(their gradient is zero to the fit's tolerance) and the rise is the cutoff
within TOL_RISE. The traces hold the profile points found on the way;
``ProfileCI.complete_traces`` adds profile fits inside each interval for
the pictures.

Every limit has a status:
  ok         the rise at the reported value equals the cutoff within TOL_RISE;
  boundary   a variance whose profile stays below the cutoff down to 0
             (the limit is 0);
  unbounded  the profile never reaches the cutoff (the limit is +/-inf);
  failed     with the reason (a profile fit that could not be started or
             converge, a lower -2 log L than the fit's).
"""
import os
import sys
import time
import warnings
from collections.abc import MutableMapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import chdtri

from . import executors, local_pool
from ..engine import deviance_and_gradient
from .limit_search import Found, search_limit
from ..fit.optimize import fit_problem, variance_floor

TOL_RISE = 1e-4       # |rise - cutoff| accepted at an ok limit
MAX_FITS = 40         # profile fits per limit
BOUNDARY_PROBE = 1e-6  # a variance's lower side is tested at this fraction of its size
FAR = 1e4             # |v - estimate| beyond FAR * (its natural scale): unbounded
POOL_WORTH = 0.25     # seconds of serial work below which n_jobs=None does not fork
EVALUATIONS_PER_LIMIT = 8    # the direct search takes 2-9 on the reference models (4.4 on average)


@dataclass
class Limit:
    """One side of one interval."""
    value: float
    status: str
    rise: float
    message: str = ""
    n_fits: int = 0               # full profile fits (a check, or root finding)
    n_evaluations: int = 0        # of -2 log L and its gradient, direct search included
    theta: np.ndarray = None      # all parameters at the limit (ok and boundary limits)


@dataclass
class ProfileCI:
    """Profile intervals of one fit.

    estimates: one row per parameter (label, estimate, lower, upper, lower_status,
    upper_status, lower_rise, upper_rise, message; the column names of
    FitResult.estimates); traces: label -> DataFrame
    of every profile point found (value, deviance, rise, zeta) sorted by value:
    the estimate, the limits and any profile fit on the way;
    ``complete_traces`` adds points inside the intervals.
    """
    level: float
    cutoff: float
    estimates: pd.DataFrame
    traces: dict
    seconds: float
    n_fits: int
    n_jobs: int
    deviance: float = np.nan
    n_evaluations: int = 0
    limits: dict = field(default_factory=dict, repr=False)    # (label, side) -> Limit
    context: object = field(default=None, repr=False)         # _Context, for more points
    completed: bool = False                                   # complete_traces has run

    @property
    def table(self):
        """Deprecated: the same DataFrame as ``estimates`` (the name every result uses)."""
        warnings.warn("ProfileCI.table is deprecated; use ProfileCI.estimates (the same "
                      "DataFrame).", DeprecationWarning, stacklevel=2)
        return self.estimates

    def verified(self):
        """True when every finite ok limit's rise is the cutoff within 1e-3."""
        rises = pd.concat([self.estimates.loc[self.estimates.lower_status == "ok", "lower_rise"],
                           self.estimates.loc[self.estimates.upper_status == "ok", "upper_rise"]])
        return bool(np.all(np.abs(rises - self.cutoff) < 1e-3))

    def describe(self):
        """A few lines: level, cutoff, the verified rises, cost, and any non-ok limit."""
        rises = pd.concat([self.estimates.lower_rise, self.estimates.upper_rise]).dropna()
        lines = [f"profile {100 * self.level:g}% CIs: each limit is where -2 log L, "
                 f"re-optimised over the other parameters, rises by {self.cutoff:.4f}"]
        if len(rises):
            lines.append(f"  rise found at the ok limits: {rises.min():.5f} to {rises.max():.5f}"
                         f" ({'verified' if self.verified() else 'NOT verified'}: within 1e-3)")
        fits = (f"including {self.n_fits} full profile fit{'s' if self.n_fits > 1 else ''} "
                f"where the direct search needed a check or gave up" if self.n_fits
                else "direct search, no full profile fit")
        lines.append(f"  {self.n_evaluations} evaluations of -2 log L in {self.seconds:.2f} s "
                     f"on {self.n_jobs} worker{'s' if self.n_jobs > 1 else ''} ({fits})")
        for row in self.estimates.itertuples():
            if row.message:
                lines.append(f"  {row.label}: {row.message}")
        return "\n".join(lines)

    def __str__(self):
        t = self.estimates[["label", "estimate", "lower", "upper", "lower_status", "upper_status"]]
        return "\n".join([self.describe(), "",
                          t.to_string(index=False, float_format=lambda v: f"{v:.6g}")])

    __repr__ = __str__

    def complete_traces(self, points=3):
        """Add ``points`` profile fits inside each side of each interval (evenly
        spaced between the estimate and the limit) to the traces, once; returns self.
        They are re-optimised points like the others, for pictures of the profile."""
        if self.context is None or self.completed:
            return self
        ctx, labels = self.context, list(self.context.problem.params.labels)
        for (lab, side), limit in self.limits.items():
            j = labels.index(lab)
            if limit.theta is None or not np.isfinite(limit.value):
                continue
            rows = []
            for frac in np.arange(1, points + 1) / (points + 1):
                warm = ctx.theta + frac * (limit.theta - ctx.theta)
                got = _fit_at(ctx, j, warm[j], warm)
                if got[0] is not None:
                    rows.append((warm[j], got[0], got[0] - ctx.dmin))
            known = self.traces[lab][["value", "deviance", "rise"]].to_numpy()
            self.traces[lab] = _trace(np.vstack([known, np.reshape(rows, (-1, 3))]),
                                      ctx.theta[j])
        self.completed = True
        return self

    def plot(self, labels=None, ncols=3):
        """One figure: -2 log L rise against each parameter, cutoff and limits marked
        (``complete_traces`` is run first, so each curve has points inside its interval)."""
        self.complete_traces()
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError("ProfileCI.plot needs matplotlib: pip install matplotlib "
                              "(or pip install 'xxmpy[plot]')") from exc
        labels = list(self.traces) if labels is None else list(labels)
        nrows = -(-len(labels) // ncols)
        fig, axes = plt.subplots(nrows, min(ncols, len(labels)), squeeze=False,
                                 figsize=(3.6 * min(ncols, len(labels)), 2.8 * nrows))
        rows = self.estimates.set_index("label")
        for ax, lab in zip(axes.ravel(), labels):
            tr = self.traces[lab]
            ax.plot(tr.value, tr.rise, "o-", ms=3, lw=1)
            ax.axhline(self.cutoff, color="grey", ls="--", lw=0.8)
            for side in ("lower", "upper"):
                v = rows.loc[lab, side]
                if np.isfinite(v):
                    ax.axvline(v, color="C3", lw=0.8)
            ax.axvline(rows.loc[lab, "estimate"], color="black", lw=0.6, ls=":")
            ax.set_title(lab, fontsize=9)
            ax.set_xlabel("value", fontsize=8)
            ax.set_ylabel("rise in -2 log L", fontsize=8)
        for ax in axes.ravel()[len(labels):]:
            ax.set_visible(False)
        fig.tight_layout()
        return fig


class _Context:
    """What every profile task needs: the problem and the fit."""

    def __init__(self, result, cutoff):
        rec = result.record
        self.problem = result.problem
        # theta -> (-2 log L, gradient): the engine on the problem, or the shards of a
        # fit on partitioned data (distributed/partitions.py)
        self.evaluate = getattr(result, "evaluate", None)
        self.theta = rec.estimate.copy()
        self.dmin = rec.deviance
        self.cutoff = cutoff
        self.is_variance = self.problem.params.is_variance
        self.units = self.problem.param_units
        self.floor = variance_floor(self.problem)
        self.scale = self.units
        self.vcov = result.vcov.to_numpy()
        self.gradient = rec.gradient      # at the estimate, theta units
        # the profile fits' start Hessian: the fit's, or (with parameters on a
        # bound) unit curvature in the optimiser's coordinates, which the root
        # finding's fits near a boundary are the more robust from
        self.guess = (rec.hessian if np.all(np.isfinite(rec.hessian))
                      else np.full_like(rec.hessian, np.nan))
        self.at_bound = rec.at_bound
        self.hessian, self.n_evaluations = _completed_hessian(self.problem, self.theta,
                                                              rec.hessian, rec.gradient,
                                                              self.evaluate)
        self.tol_rise = TOL_RISE
        self.starts = {}                  # limit_search's set-up per parameter

    def natural_step(self, j):
        se = np.sqrt(self.vcov[j, j]) if np.isfinite(self.vcov[j, j]) else np.nan
        if np.isfinite(se) and se > 0:
            return se
        return 0.1 * max(abs(self.theta[j]), self.scale[j])

    def path_slope(self, j):
        """d theta / d theta_j along the profile, predicted from the covariance."""
        slope = np.zeros_like(self.theta)
        col, var = self.vcov[:, j], self.vcov[j, j]
        if np.isfinite(var) and var > 0:
            slope = np.where(np.isfinite(col), col / var, 0.0)
        slope[j] = 1.0
        return slope

def _completed_hessian(problem, theta, hessian, gradient, evaluate=None):
    """(Hessian, evaluations): the fit's Hessian (theta units) with the rows and
    columns it leaves NaN (parameters on their bound) filled by forward
    differences of the gradient into the admissible side, and the number of
    evaluations that took. Unchanged where that is not possible or does not give
    a positive definite matrix (-2 log L can be concave at a bound)."""
    given, hessian, count = hessian, hessian.copy(), 0
    for j in np.flatnonzero(~np.isfinite(np.diag(hessian))):
        h = 1e-5 * max(abs(theta[j]), 1.0)
        up = theta.copy()
        up[j] += h
        f, g = deviance_and_gradient(problem, up) if evaluate is None else evaluate(up)
        count += 1
        if np.isfinite(f) and np.all(np.isfinite(g)):
            col = (g - gradient) / h
            known = np.isfinite(np.diag(hessian))
            hessian[known, j] = hessian[j, known] = col[known]
            hessian[j, j] = col[j]
    known = np.isfinite(np.diag(hessian))
    if count and np.linalg.eigvalsh(hessian[np.ix_(known, known)])[0] <= 0:
        return given, count
    return hessian, count


def _fit_at(ctx, j, v, warm, guess=True):
    """Profile fit with theta_j = v from ``warm``: (deviance, theta, slope, evaluations),
    deviance None if inadmissible. slope: d(profile deviance)/dv, which is the fit's
    gradient in theta_j at the re-optimised point (the envelope theorem).
    guess: start from the fit's Hessian (ctx.guess; else from finite differences)."""
    start = warm.copy()
    start[j] = v
    fixed = np.zeros(start.size, bool)
    fixed[j] = True
    try:
        # gtol: the predicted further drop of -2 log L; 1e-8 is 4 orders below TOL_RISE
        rec = fit_problem(ctx.problem, start=start, fixed=fixed, hessian=False, gtol=1e-8,
                          hessian_guess=ctx.guess if guess else None, evaluate=ctx.evaluate)
    except ValueError:
        return None, None, None, 1
    return rec.deviance, rec.estimate, rec.gradient[j], rec.n_evaluations


def search_bounds(ctx, j):
    """(floor, far) of parameter j's limit searches: floor, for a variance, the
    boundary test point (close to 0, far enough from it that the precision form
    keeps its digits: psi^-1 grows as 1 / variance), else -inf; far, the
    distance from the estimate beyond which a profile counts as unbounded."""
    est = ctx.theta[j]
    floor = -np.inf
    if ctx.is_variance[j]:
        floor = max(ctx.floor[j], BOUNDARY_PROBE * max(est, ctx.natural_step(j)))
    return floor, FAR * max(ctx.natural_step(j), abs(est))


def profile_side(ctx, j, side):
    """Find one limit of parameter j (side -1 lower, +1 upper): (Limit, trace rows).

    The direct search first; root finding over profile fits where it gives up.
    """
    if side < 0 and ctx.is_variance[j] and ctx.theta[j] <= ctx.floor[j] * (1 + 1e-6):
        return Limit(0.0, "boundary", 0.0, "estimate on the bound (variance 0)"), []
    floor, far = search_bounds(ctx, j)
    found = search_limit(ctx, j, side, floor, far)
    if isinstance(found, Found):
        if found.status == "boundary":        # not a trace point: not re-optimised
            return Limit(0.0, "boundary", found.rise,
                         f"rise at most {found.rise:.4f} < {ctx.cutoff:.4f} at "
                         f"{found.value:.3g} (about 0)", 0, found.n_evaluations,
                         found.theta), []
        if not found.saddle:
            return (Limit(found.value, "ok", found.rise, n_evaluations=found.n_evaluations,
                          theta=found.theta), [(found.value, ctx.dmin + found.rise, found.rise)])
        # a saddle (next to a singular covariance, its gradient matrix has a clearly
        # negative eigenvalue, so -2 log L can still fall): a full profile fit from
        # there re-optimises (its Hessian from finite differences: the fit's
        # is a poor guess); its rise decides
        dev, theta, _, used = _fit_at(ctx, j, found.value, found.theta, guess=False)
        found.n_evaluations += used
        if dev is not None and abs(dev - ctx.dmin - ctx.cutoff) < TOL_RISE:
            return (Limit(found.value, "ok", dev - ctx.dmin, "", 1, found.n_evaluations,
                          theta), [(found.value, dev, dev - ctx.dmin)])
    limit, trace = _root_finding(ctx, j, side, floor, far)
    limit.n_evaluations += found.n_evaluations
    return limit, trace


@dataclass
class Profiled:
    """What root finding profiles: a parameter, or a quantity derived from several
    (a correlation). fit_at(v, warm) -> (deviance, theta, slope d deviance / dv,
    evaluations), deviance None if inadmissible; path: (k,) d theta / dv along the
    profile, predicted (warm starts); edges: side -> (the last value tried that way,
    the limit reported when the profile stays below the cutoff up to it), or absent."""
    estimate: float
    natural: float
    unit: float
    path: np.ndarray
    fit_at: object
    edges: dict = field(default_factory=dict)


def parameter_profiled(ctx, j, floor):
    """Parameter j as a Profiled; floor: its lower side's boundary probe (-inf: none)."""
    edges = {-1: (floor, 0.0)} if np.isfinite(floor) else {}
    return Profiled(ctx.theta[j], ctx.natural_step(j), ctx.units[j], ctx.path_slope(j),
                    lambda v, warm: _fit_at(ctx, j, v, warm), edges)


def _root_finding(ctx, j, side, floor, far):
    """One limit of parameter j by root finding on zeta over full profile fits."""
    return root_finding(ctx, parameter_profiled(ctx, j, floor), side, far)


def root_finding(ctx, what, side, far):
    """One limit of a Profiled by root finding on zeta over full profile fits."""
    est = what.estimate
    target = np.sqrt(ctx.cutoff)
    trace = []
    slope = what.path
    points = [(est, 0.0, ctx.theta.copy())]        # (value, zeta, theta) below the cutoff
    above = None                                     # first point found beyond the cutoff
    v = est + side * target * what.natural
    edge = what.edges.get(side)
    n_fits = n_eval = 0

    def limit(value, status, rise, message="", theta=None):
        return Limit(value, status, rise, message, n_fits, n_eval, theta)

    while n_fits < MAX_FITS:
        if edge is not None and side * (v - edge[0]) >= 0:
            v = edge[0]
        base_v, _, base_theta = points[-1]
        warm = base_theta + slope * (v - base_v)
        warm = np.where(ctx.is_variance, np.maximum(warm, ctx.floor), warm)
        dev, theta, slope_v, used = what.fit_at(v, warm)
        n_eval += used
        if dev is None:
            dev, theta, slope_v, used = what.fit_at(v, base_theta)
            n_eval += used
        n_fits += 1
        if dev is None:           # no admissible start at v: step back towards the last point
            if abs(v - base_v) < 1e-10 * max(what.unit, abs(base_v)):
                return limit(np.nan, "failed", np.nan,
                             f"no admissible parameters found beyond {base_v:.6g}"), trace
            v = base_v + (v - base_v) / 4
            continue
        rise = dev - ctx.dmin
        trace.append((v, dev, rise))
        if rise < -1e-6:
            return limit(np.nan, "failed", rise,
                         f"found -2 log L {dev:.6f}, below the fit's {ctx.dmin:.6f}: the fit "
                         f"did not reach the optimum; refit from better start values"), trace
        zeta = np.sqrt(max(rise, 0.0))
        if abs(rise - ctx.cutoff) < TOL_RISE:
            return limit(v, "ok", rise, theta=theta), trace
        if zeta > target:
            above = (v, zeta)
        else:
            if edge is not None and v == edge[0]:
                return limit(edge[1], "boundary", rise,
                             f"rise only {rise:.4f} < {ctx.cutoff:.4f} at {v:.3g} "
                             f"(about {edge[1]:g})", theta=theta), trace
            points.append((v, zeta, theta))
        v = _next_value(points, above, (v, zeta, slope_v), target, side, est, what.natural)
        if not np.isfinite(v) or abs(v - est) > far:
            return limit(side * np.inf, "unbounded", np.nan,
                         f"rise only {points[-1][1] ** 2:.4f} at {points[-1][0]:.6g}"), trace
    return limit(np.nan, "failed", np.nan, f"no limit within {MAX_FITS} profile fits"), trace


def _newton_value(v, zeta, slope_v, target, side):
    """A Newton step on zeta(v) = sqrt(rise) from a fitted point, using the
    profile's slope d rise/dv (zeta' = rise' / (2 zeta)); None when the slope is
    unusable (not finite, zeta ~ 0, or not rising outwards)."""
    if not np.isfinite(slope_v) or zeta < 1e-3:
        return None
    dz = slope_v / (2.0 * zeta)
    return v + (target - zeta) / dz if side * dz > 0 else None


def _next_value(points, above, last, target, side, est, natural):
    """The next trial value. A Newton step from the last fitted point ``last``
    (v, zeta, slope) when usable; once the limit is bracketed it must land inside
    the bracket, else the bracket is interpolated; before that, zeta is
    extrapolated (secant, or doubling) and no step reaches further than 4x the
    distance covered so far."""
    (v1, z1, _), (v0, z0) = points[-1], (points[-2][:2] if len(points) > 1 else (None, None))
    newton = _newton_value(*last, target, side)
    if above is not None:
        va, za = above
        lo, hi = sorted((v1, va))
        if newton is not None and lo < newton < hi:
            return newton
        t = (target - z1) / (za - z1)
        t = min(max(t, 0.05), 0.95)            # keep strictly inside the bracket
        return v1 + t * (va - v1)
    reach = 4.0 * max(abs(v1 - est), natural)
    if newton is not None and side * (newton - v1) > 0:
        return v1 + side * min(abs(newton - v1), reach)
    if v0 is None or z1 <= z0:
        return v1 + side * 2.0 * max(abs(v1 - est), natural)
    proposal = v1 + (target - z1) * (v1 - v0) / (z1 - z0)
    return v1 + side * min(abs(proposal - v1), reach)


def _default_jobs(record, n_limits):
    """The machine's cores, or 1 when the limits are predicted (EVALUATIONS_PER_LIMIT
    at the fit's cost per evaluation) to take less than POOL_WORTH seconds."""
    per_evaluation = record.seconds / max(record.n_evaluations, 1)
    if n_limits * EVALUATIONS_PER_LIMIT * per_evaluation < POOL_WORTH:
        return 1
    return os.cpu_count() or 1


class _Progress:
    def __init__(self, total, enabled):
        self.total, self.done, self.enabled, self.t0 = total, 0, enabled, time.perf_counter()

    def tick(self):
        self.done += 1
        if self.enabled:
            width = 30
            filled = int(width * self.done / self.total)
            sys.stderr.write(f"\rxxmCI [{'#' * filled}{'.' * (width - filled)}] "
                             f"{self.done}/{self.total} limits "
                             f"{time.perf_counter() - self.t0:.1f} s")
            if self.done == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def _profile_task(ctx, task):
    """One limit (an executor's task): profile_side(ctx, j, side)."""
    return profile_side(ctx, *task)


def profile_ci(result, level=0.95, parameters=None, n_jobs=None, progress=None,
               executor=None):
    """Profile-likelihood CIs of a FitResult's parameters; returns a ProfileCI.

    parameters: labels (default all); n_jobs: processes working on the limits
    (local_pool.py; default: the machine's cores, unless the whole job is predicted
    to take less than POOL_WORTH seconds, where forking costs more than it
    saves; 1 runs in this process only); executor: a concurrent.futures.Executor
    or a dask.distributed.Client to run the limits on instead (executors.py; n_jobs
    is then ignored); progress: draw a progress bar on stderr (default: when stderr
    is a terminal). Results do not depend on n_jobs or the executor.
    """
    if not 0 < level < 1:
        raise ValueError(f"xxmCI: level must be between 0 and 1, got {level!r}.")
    labels = list(result.labels)
    if isinstance(parameters, str):        # one label, not its letters
        parameters = [parameters]
    wanted = labels if parameters is None else list(parameters)
    unknown = [p for p in wanted if p not in labels]
    if unknown:
        raise ValueError(f"xxmCI: unknown parameter label(s) {unknown}; the model's labels "
                         f"are {labels}.")
    t0 = time.perf_counter()
    cutoff = float(chdtri(1, 1.0 - level))        # the chi-square(1) quantile
    ctx = _Context(result, cutoff)
    tasks = [(labels.index(lab), side) for lab in wanted for side in (-1, 1)]
    n_jobs = _default_jobs(result.record, len(tasks)) if n_jobs is None else max(1, int(n_jobs))
    n_jobs = min(n_jobs, len(tasks))
    bar = _Progress(len(tasks), sys.stderr.isatty() if progress is None else progress)
    if ctx.evaluate is not None:        # each evaluation already runs on every worker
        n_jobs, executor = 1, None
    if executor is not None:
        found = executors.executor_map(executor, _profile_task, ctx, tasks, bar.tick)
        out = dict(zip(tasks, found))
        n_jobs = executors.workers(executor) or n_jobs
    elif n_jobs > 1 and local_pool.available():
        found = local_pool.local_map(_profile_task, ctx, tasks, n_jobs, bar.tick)
        out = dict(zip(tasks, found))
    else:
        n_jobs, out = 1, {}
        for task in tasks:
            out[task] = profile_side(ctx, *task)
            bar.tick()
    return _assemble(ctx, result, wanted, labels, out, level, cutoff,
                     time.perf_counter() - t0, n_jobs)


def _trace(points, estimate):
    """Profile points (value, deviance, rise) as a trace sorted by value, with zeta."""
    pts = np.asarray(points, float).reshape(-1, 3)
    _, first = np.unique(pts[:, 0], return_index=True)      # sorted, one row per value
    value, dev, rise = pts[first].T
    return pd.DataFrame({"value": value, "deviance": dev, "rise": rise,
                         "zeta": np.sign(value - estimate) * np.sqrt(np.maximum(rise, 0.0))})


class _Traces(MutableMapping):
    """label -> trace DataFrame (``_trace``), each built from its points when first
    read: most CI runs never look at them, and a DataFrame costs ~0.2 ms."""

    def __init__(self, points, estimates):
        self._points, self._estimates, self._built = points, estimates, {}

    def __getitem__(self, label):
        if label not in self._built:
            self._built[label] = _trace(self._points[label], self._estimates[label])
        return self._built[label]

    def __setitem__(self, label, trace):
        self._points.setdefault(label, None)
        self._built[label] = trace

    def __delitem__(self, label):
        del self._points[label]
        self._built.pop(label, None)

    def __iter__(self):
        return iter(self._points)

    def __len__(self):
        return len(self._points)

    def __repr__(self):
        return repr(dict(self))


def _assemble(ctx, result, wanted, labels, out, level, cutoff, seconds, n_jobs):
    rows, traces, limits, n_fits, n_eval = [], {}, {}, 0, ctx.n_evaluations
    for lab in wanted:
        j = labels.index(lab)
        (lo, tr_lo), (hi, tr_hi) = out[(j, -1)], out[(j, 1)]
        limits[(lab, -1)], limits[(lab, 1)] = lo, hi
        n_fits += lo.n_fits + hi.n_fits
        n_eval += lo.n_evaluations + hi.n_evaluations
        rows.append(dict(label=lab, estimate=ctx.theta[j], lower=lo.value, upper=hi.value,
                         lower_status=lo.status, upper_status=hi.status,
                         lower_rise=lo.rise if lo.status == "ok" else np.nan,
                         upper_rise=hi.rise if hi.status == "ok" else np.nan,
                         message="; ".join(m for m in (lo.message and f"lower: {lo.message}",
                                                       hi.message and f"upper: {hi.message}")
                                           if m)))
        traces[lab] = [(ctx.theta[j], ctx.dmin, 0.0)] + tr_lo + tr_hi
    estimates = {lab: ctx.theta[labels.index(lab)] for lab in wanted}
    return ProfileCI(level, cutoff, pd.DataFrame(rows), _Traces(traces, estimates), seconds,
                     n_fits, n_jobs, ctx.dmin, n_eval, limits, ctx)
