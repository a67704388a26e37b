"""Optimiser coordinates: covariance matrices through their Cholesky factors.

A free covariance matrix (theta or psi, m >= 2, every element free, each
element its own label used nowhere else) is searched as Sigma = L L' with the
lower-triangular L in the same parameter slots and L_rr >= sqrt(floor). Its
boundary (a variance at 0 or a correlation at +/-1) is then a simple bound
instead of a curved edge that stalls the line search: the optimiser can
reach singular-fit optima (Dyestuff2-like, or a correlation of 1 on a
profile) exactly. Every other parameter is its own coordinate, variances
bounded below by the floor.

x (coordinates, k) <-> theta (labels, k): ``to_theta``, ``from_theta``,
``pullback`` (gradient in theta -> gradient in x) and ``lower`` (k,).
``to_theta`` and ``pullback`` run in the compiled CholeskyMap (_cholesky_map.pyx)
when it is built; their numpy forms here are its twin. The eligible matrices
are found at compile time (Problem.cholesky_blocks).

For a profile of a parameter inside such a matrix, the block's variables are
reordered so that the profiled element sits in the factor's first column:
a variance Sigma_rr = L_00^2 (coordinate L_00 fixed at sqrt(v)); a covariance
Sigma_rc = L_00 L_10 (coordinate fixed at v itself, L_10 = v / L_00); or, held
as a correlation (``correlation=True``), rho_rc = L_10 / sqrt(L_10^2 + L_11^2)
(coordinate fixed at rho, L_10 = L_11 rho / sqrt(1 - rho^2)).
"""
import functools
from dataclasses import dataclass

import numpy as np

from ..engine import backend

try:
    from ._cholesky_map import CholeskyMap
except ImportError:      # not built
    CholeskyMap = None


# a Cholesky diagonal stays above sqrt(CHOLESKY_FLOOR * variance floor): a covariance
# block on it has condition ~1e6, where the gradient keeps its digits (at ~1e8,
# difference quotients of it fail and a singular fit cannot be judged). The variance
# floor itself is now 1e-6 of the unit (compile/scales.py), for the same reason: a plain
# variance at 1e-8 of its unit left -2 log L noisy by 1e-6 (a three-level model's class
# variance at 0 could not be judged converged)
CHOLESKY_FLOOR = 1.0


@functools.lru_cache(maxsize=None)
def _tril(m):
    """Lower-triangle (rows, cols) of an m x m matrix, computed once per m (read-only)."""
    rows, cols = np.tril_indices(m)
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


FREE, COVARIANCE_HELD, CORRELATION_HELD = 0, 1, 2    # a block's mode: what slot [1, 0] holds


@dataclass
class _Block:
    slots: np.ndarray       # (m, m) symmetric parameter indices, in the block's order
    mode: int = FREE        # COVARIANCE_HELD: slot [1, 0] holds Sigma_10 (a profile of it);
                            # CORRELATION_HELD: it holds rho_10; FREE: L_10

    @property
    def covariance_fixed(self):
        """Slot [1, 0] is held and is not L_10 (a profile of an off-diagonal element)."""
        return self.mode != FREE

    def __post_init__(self):
        m = len(self.slots)
        self.rows, self.cols = _tril(m)
        self.tri = self.slots[self.rows, self.cols]     # parameter of each L element
        self.flat_tri = self.rows * m + self.cols       # their cells in the flat L
        self.half = np.where(np.eye(m, dtype=bool), 1.0, 0.5)
        self.twice_half = 2.0 * self.half               # d tr(G Sigma) / dL = 2 (G * half) L


class Transform:
    """The map between optimiser coordinates and parameters (see module doc)."""

    def __init__(self, problem, floor, fixed=None, cholesky=True, correlation=False):
        """floor: the variances' lower bound, (k,) or one number; fixed: (k,) bool,
        parameters held at their value. A block with one fixed element is reordered
        to keep it a coordinate; with more, it stays elementwise. cholesky=False:
        every parameter is its own coordinate. correlation: a held off-diagonal
        element is held as its correlation (the coordinate is rho, its variances
        stay free)."""
        k = problem.params.n
        self.k = k
        self.blocks = []
        fixed = np.zeros(k, bool) if fixed is None else np.asarray(fixed, bool)
        for slots in (problem.cholesky_blocks.values() if cholesky else []):
            mode = FREE
            held = np.unique(slots[fixed[slots]])
            if len(held) > 1:
                continue
            if len(held) == 1:
                r, c = np.argwhere(slots == held[0])[0]
                first = [r] if r == c else [max(r, c), min(r, c)]
                order = first + [i for i in range(len(slots)) if i not in first]
                slots = slots[np.ix_(order, order)]
                if r != c:
                    mode = CORRELATION_HELD if correlation else COVARIANCE_HELD
            self.blocks.append(_Block(slots, mode))
        in_block = np.zeros(k, bool)
        self.floor = floor = np.broadcast_to(np.asarray(floor, float), (k,))
        self.lower = np.where(problem.params.is_variance, floor, -np.inf)
        for b in self.blocks:
            in_block[b.slots.ravel()] = True
            m = len(b.slots)
            self.lower[b.slots[_tril(m)]] = -np.inf
            self.lower[np.diag(b.slots)] = np.sqrt(CHOLESKY_FLOOR * floor[np.diag(b.slots)])
            if b.covariance_fixed:
                self.lower[b.slots[1, 0]] = -np.inf
        self.identity = ~in_block
        self.compiled = None if not (backend.COMPILED and CholeskyMap) else CholeskyMap(
            [(b.slots, b.mode) for b in self.blocks], k)

    def coordinate_units(self, units):
        """(k,) the natural unit of each coordinate from the parameters' units (k,):
        a parameter's own, or for the Cholesky factor's L_rc the root of Sigma_rr's."""
        out = np.array(units, dtype=float)
        for b in self.blocks:
            root = np.sqrt(units[np.diag(b.slots)])
            rows, cols = _tril(len(b.slots))
            out[b.slots[rows, cols]] = root[rows]
            if b.mode == COVARIANCE_HELD:      # that coordinate is the covariance itself
                out[b.slots[1, 0]] = units[b.slots[1, 0]]
            elif b.mode == CORRELATION_HELD:   # ... or a correlation
                out[b.slots[1, 0]] = 1.0
        return out

    def _factor(self, b, x):
        L = np.zeros(b.slots.shape)
        L.flat[b.flat_tri] = x[b.tri]
        if b.mode == COVARIANCE_HELD:
            L[1, 0] = x[b.slots[1, 0]] / L[0, 0]
        elif b.mode == CORRELATION_HELD:
            rho = x[b.slots[1, 0]]
            L[1, 0] = L[1, 1] * rho / np.sqrt(1.0 - rho * rho)
        return L

    def factors(self, x):
        """Every block's Cholesky factor L at coordinates x (to_theta and pullback
        at the same x can share them); None when the compiled map runs."""
        return None if self.compiled else [self._factor(b, x) for b in self.blocks]

    def to_theta(self, x, factors=None):
        if self.compiled:
            return self.compiled.to_theta(np.ascontiguousarray(x, dtype=float))
        theta = np.array(x, dtype=float)
        for b, L in zip(self.blocks, factors or self.factors(x)):
            theta[b.slots] = L @ L.T
        return theta

    def from_theta(self, theta):
        """Coordinates of theta; raises np.linalg.LinAlgError if a block is not PD."""
        x = np.array(theta, dtype=float)
        for b in self.blocks:
            L = np.linalg.cholesky(theta[b.slots])
            m = len(b.slots)
            rows, cols = _tril(m)
            x[b.slots[rows, cols]] = L[rows, cols]
            if b.mode == COVARIANCE_HELD:
                x[b.slots[1, 0]] = theta[b.slots[1, 0]]
            elif b.mode == CORRELATION_HELD:
                x[b.slots[1, 0]] = L[1, 0] / np.hypot(L[1, 0], L[1, 1])
        return x

    def admissible(self, theta, fixed):
        """theta with each block made positive definite, fixed elements untouched.

        Shrinks a block's free covariances (or, when a covariance is held
        fixed, inflates its free variances) until its Cholesky factor exists (a
        held correlation, |rho| < 1, is kept: its covariance moves with the variances);
        a warm start for a profile point can otherwise leave the cone.
        """
        theta = np.array(theta, dtype=float)
        for b in self.blocks:
            m = len(b.slots)
            off = ~np.eye(m, dtype=bool)
            for _ in range(200):
                try:
                    L = np.linalg.cholesky(theta[b.slots])
                    if (np.diag(L).max() / np.diag(L).min()) ** 2 < 1e6:
                        break
                except np.linalg.LinAlgError:
                    pass
                if b.mode == COVARIANCE_HELD:
                    d = np.diag(b.slots)
                    d = d[~fixed[d]]
                    theta[d] = np.maximum(theta[d], self.floor[d]) * 1.25
                else:
                    o = np.unique(b.slots[off])
                    o = o[~fixed[o]]
                    theta[o] *= 0.8
        return theta

    def pullback(self, x, g, factors=None):
        """Gradient with respect to theta (..., k) -> gradient with respect to x (..., k)
        (several gradients at once as the rows of a 2-d g); factors: ``factors(x)``."""
        if self.compiled:
            return self.compiled.pullback(np.ascontiguousarray(x, dtype=float), g)
        g = np.asarray(g, dtype=float)
        out = g.copy()
        for b, L in zip(self.blocks, factors or self.factors(x)):
            dL = (g[..., b.slots] * b.twice_half) @ L
            out[..., b.tri] = dL.reshape(dL.shape[:-2] + (-1,))[..., b.flat_tri]
            if b.mode == COVARIANCE_HELD:    # L_10 = v / L_00: the coordinate at [1, 0] is v
                out[..., b.slots[0, 0]] -= dL[..., 1, 0] * L[1, 0] / L[0, 0]
                out[..., b.slots[1, 0]] = dL[..., 1, 0] / L[0, 0]
            elif b.mode == CORRELATION_HELD:    # L_10 = L_11 t(rho), t = rho / sqrt(1 - rho^2)
                rho = x[b.slots[1, 0]]
                out[..., b.slots[1, 1]] += dL[..., 1, 0] * L[1, 0] / L[1, 1]
                out[..., b.slots[1, 0]] = dL[..., 1, 0] * L[1, 1] * (1.0 - rho * rho) ** -1.5
        return out
