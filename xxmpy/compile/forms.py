"""Covariance matrices written in another form: network (GGM), precision, Cholesky.

A theta or psi given with form= other than 'cov' has parameters that are not
its elements (m x m, R the matrix of its free and fixed elements). form= names
one form, or one per variable: the variables of one form are a group, the
elements across groups are fixed at 0 and Sigma is block diagonal, each group's
block in its form (a latent network next to diagonal residuals in one psi):

  ggm   Sigma = D (I - Omega)^-1 D: R's off-diagonal elements are Omega's (partial
        correlations; a fixed 0 is an absent edge), its diagonal D's (positive)
  prec  Sigma = K^-1: R is the precision matrix K
  chol  Sigma = L L': R's lower triangle is L (its upper triangle is not read)

The engine never sees these parameters. Each such matrix gets its own block of
derived parameters, the lower triangle of Sigma, appended after the model's k
parameters (k_engine = k + sum m(m + 1) / 2); the engine evaluates at
expand(theta) = (theta, every Sigma's lower triangle), and ``pullback`` carries
its gradient back by the chain rule from G = d(-2 log L)/d Sigma (symmetric):

  ggm   d/dOmega = A^-1 D G D A^-1 (A = I - Omega),  d/dD_ii = 2 (A^-1 D G)_ii
  prec  d/dK = -Sigma G Sigma
  chol  d/dL = 2 G L

(entrywise derivatives of R; a parameter on both triangles sums the two).

Scaled labels ('-b', '0.5*b': an element that is a multiple c of parameter b) use
the same seam: each such element is one more engine parameter, c theta_b, and its
gradient returns to b times c (FormMap.scaled_*).
"""
from dataclasses import dataclass, field

import numpy as np

from ..spec.objects import variable_forms
from .scales import VARIANCE_FLOOR
from .params import ElementMap


def _sigma(form, R):
    """Sigma of one group from its R (m_g, m_g) in ``form``; raises LinAlgError."""
    if form == "ggm":
        d = np.diag(R)
        A = np.eye(len(R)) - (R - np.diag(d))
        return d[:, None] * np.linalg.inv(A) * d[None, :]
    if form == "prec":
        return np.linalg.inv(R)
    if form == "chol":
        return R @ R.T
    return R


def _raw_gradient(form, R, G):
    """d(-2 log L)/dR (m_g, m_g) of one group, entrywise, from G = d/dSigma (symmetric)."""
    if form == "ggm":
        d = np.diag(R)
        A_inv = np.linalg.inv(np.eye(len(R)) - (R - np.diag(d)))
        dR = A_inv @ (d[:, None] * G * d[None, :]) @ A_inv
        np.fill_diagonal(dR, 2.0 * np.diag(A_inv @ (d[:, None] * G)))
        return dR
    if form == "prec":
        S = np.linalg.inv(R)
        return -S @ G @ S
    if form == "chol":
        return np.tril(2.0 * G @ R)
    return G


@dataclass(frozen=True)
class FormBlock:
    """One matrix with forms: key (child, parent, type) level names; forms: (m,) the form
    of each variable (variables of one form are a group; elements across groups are
    fixed at 0, so Sigma is block diagonal over the groups); base (m, m) its fixed
    values (0 where free); rows, cols, params: its free cells (both triangles) and
    their parameters; derived: (m(m+1)/2,) the engine parameters of Sigma's lower
    triangle (np.tril_indices order); floors: (m,) the least variance of each variable
    (VARIANCE_FLOOR of its unit; 0 where its diagonal element is fixed): below it
    Sigma is refused, as a covariance-form variance is held above it by its bound
    (a precision's diagonal has no upper bound to do that)."""
    key: tuple
    forms: tuple
    base: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    params: np.ndarray
    derived: np.ndarray
    floors: np.ndarray

    @property
    def groups(self):
        """[(form, (m_g,) variable indices)], in first-seen order."""
        forms = np.array(self.forms)
        return [(f, np.flatnonzero(forms == f)) for f in dict.fromkeys(self.forms)]

    @property
    def form(self):
        """The one form of all its variables, or 'mixed'."""
        return self.forms[0] if len(set(self.forms)) == 1 else "mixed"

    def raw(self, theta):
        """R (m, m) at theta: the forms' own elements (Omega with D on its diagonal, K, L;
        a chol group's upper triangle 0)."""
        R = self.base.copy()
        R[self.rows, self.cols] = theta[self.params]
        for form, g in self.groups:
            if form == "chol":
                R[np.ix_(g, g)] = np.tril(R[np.ix_(g, g)])
        return R

    def sigma(self, R):
        """Sigma (m, m) from R; None where it does not exist (I - Omega or K singular)."""
        S = np.zeros_like(R)
        try:
            for form, g in self.groups:
                S[np.ix_(g, g)] = _sigma(form, R[np.ix_(g, g)])
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.diag(S) >= self.floors):
            return None
        return S

    def raw_gradient(self, R, G):
        """d(-2 log L)/dR (m, m), entrywise, from G = d(-2 log L)/d Sigma (symmetric)."""
        dR = np.zeros_like(R)
        for form, g in self.groups:
            block = np.ix_(g, g)
            dR[block] = _raw_gradient(form, R[block], G[block])
        return dR


@dataclass(frozen=True)
class FormMap:
    """Every form matrix of a problem; k: the model's parameters, n_engine: the
    engine's (k plus the derived blocks); scales: the parameters that are scales (a
    network's D, a Cholesky diagonal), whose square is a variance."""
    blocks: tuple
    k: int
    n_engine: int
    scales: np.ndarray
    # the engine parameter of each scaled element, its parameter and its coefficient
    scaled_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    scaled_param: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    scaled_coef: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def expand(self, theta):
        """(n_engine,) the engine's parameters at theta (k,); None when a form has no
        Sigma there (inadmissible)."""
        theta = np.asarray(theta, float)
        out = np.empty(self.n_engine)
        out[:self.k] = theta
        for b in self.blocks:
            S = b.sigma(b.raw(theta))
            if S is None or not np.all(np.isfinite(S)):
                return None
            out[b.derived] = S[np.tril_indices(len(S))]
        out[self.scaled_index] = self.scaled_coef * theta[self.scaled_param]
        return out

    def pullback(self, theta, g_engine):
        """(k,) the gradient in theta from the engine's (n_engine,)."""
        theta = np.asarray(theta, float)
        g = np.array(g_engine[:self.k], dtype=float)
        for b in self.blocks:
            m = len(b.base)
            G = np.zeros((m, m))
            G[np.tril_indices(m)] = g_engine[b.derived]
            G = (G + G.T) / 2.0           # an off-diagonal parameter sets both triangles
            np.add.at(g, b.params, b.raw_gradient(b.raw(theta), G)[b.rows, b.cols])
        np.add.at(g, self.scaled_param, self.scaled_coef * g_engine[self.scaled_index])
        return g


def _variance_units(forms, rows, cols, params, units, m):
    """(m,) each variable's variance unit from its diagonal parameter's unit in its form
    (0 where the diagonal element is fixed)."""
    out = np.zeros(m)
    for r, c, k in zip(rows, cols, params):
        if r == c:
            unit = units[k]
            out[r] = unit ** 2 if forms[r] in ("ggm", "chol") else \
                1.0 / unit if forms[r] == "prec" else unit
    return out


def build_form_map(matrices, element_maps, k, units):
    """(FormMap or None, {key: derived ElementMap}) for the checked matrices with a form
    other than 'cov'; the derived maps replace theirs for the engine. units: (k,) the
    parameters' natural units (scales.py)."""
    blocks, derived_maps, scales, at = [], {}, set(), k
    for m in matrices:
        size = len(m.pattern)
        forms = variable_forms(getattr(m, "form", "cov"), size)
        if set(forms) == {"cov"}:
            continue
        emap = element_maps[(m.child, m.parent, m.type)]
        lr, lc = np.tril_indices(size)
        derived = np.arange(at, at + len(lr), dtype=np.intp)
        at += len(lr)
        floors = VARIANCE_FLOOR * _variance_units(forms, emap.free_rows, emap.free_cols,
                                                  emap.free_param, units, size)
        blocks.append(FormBlock((m.child, m.parent, m.type), forms, emap.base.copy(),
                                emap.free_rows, emap.free_cols, emap.free_param, derived,
                                floors))
        scales.update(int(p) for r, c, p in zip(emap.free_rows, emap.free_cols,
                                                emap.free_param)
                      if r == c and forms[r] in ("ggm", "chol"))
        index = np.zeros((size, size), np.intp)
        index[lr, lc] = derived
        index[lc, lr] = derived
        rows, cols = np.nonzero(np.ones((size, size), bool))
        empty = np.zeros(0, np.intp)
        derived_maps[(m.child, m.parent, m.type)] = ElementMap(
            np.zeros((size, size)), rows.astype(np.intp), cols.astype(np.intp),
            index[rows, cols], empty, empty, [])
    if not blocks:
        return None, {}
    return FormMap(tuple(blocks), k, at, np.array(sorted(scales), dtype=np.intp)), \
        derived_maps


def add_scaled_elements(form_map, derived_maps, element_maps, k):
    """(FormMap or None, derived maps) with the scaled elements of element_maps (free_coef
    other than 1) made engine parameters after the form blocks' (module docstring)."""
    at = k if form_map is None else form_map.n_engine
    index, param, coef = [], [], []
    derived_maps = dict(derived_maps)
    for key, emap in element_maps.items():
        if not emap.scaled:
            continue
        engine = emap.free_param.copy()
        for i in np.flatnonzero(emap.coefficients != 1.0):
            index.append(at)
            param.append(emap.free_param[i])
            coef.append(emap.coefficients[i])
            engine[i] = at
            at += 1
        derived_maps[key] = ElementMap(emap.base, emap.free_rows, emap.free_cols, engine,
                                       emap.data_rows, emap.data_cols, emap.data_columns)
    if not index:
        return form_map, derived_maps
    blocks, scales = ((), np.zeros(0, np.intp)) if form_map is None else \
        (form_map.blocks, form_map.scales)
    return FormMap(blocks, k, at, scales, np.array(index, np.intp), np.array(param, np.intp),
                   np.array(coef, float)), derived_maps
