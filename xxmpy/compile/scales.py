"""What the data say before any fit: each variable's scale, each parameter's unit.

Multiplying an observed variable by c multiplies the estimates of the
parameters that carry its unit by the matching power of c (a residual variance
by c^2, an intercept or a loading by c); the optimiser's floors, step scales
and tolerances must follow, or a fit of rescaled data ends elsewhere. Every
variable gets a scale:

  y (observed, dependent)   its standard deviation over the observed values
  x (observed, covariate)   its standard deviation (|mean| when constant, else 1)
  eta (latent)              the square root of the variance its indicators put at
                            its level, each y's part divided by its squared loading
                            (DataMoments.eta_variance): for a latent variable
                            identified by a fixed loading that carries the data's
                            unit; for a fixed psi_mm (a variance fixed for scale)
                            the root of that value; without indicators, of its
                            written start
  the constant 1            1

and a parameter at (row variable r, column variable c) of a matrix has unit
  theta, psi (covariances)          s_r s_c (in another form: _form_unit)
  nu, alpha (intercepts)            s_r
  lambda, beta, gamma, kappa        s_r / s_c
(a label shared by several elements takes its first element's unit). The same
moments give the data-based start values (fit/starts.py).
"""
import numpy as np

# a variance's lower bound, in its natural unit (fit/optimize.py): a variance below it
# would put 1e-6 of noise into -2 log L (the condition of the latent precision)
VARIANCE_FLOOR = 1e-6

from ..spec.objects import BETWEEN_ROLES, DATA_LABEL_PREFIX, WITHIN_ROLES, variable_forms


class DataMoments:
    """Moments of the data, per observed y and per latent variable.

    ys: {(level, y index): (mean, total variance, within part, {parent level:
    between part})}: the between part at a parent is the variance of that parent's
    group means less what the within part explains (one-way ANOVA), at least 5% of
    the total; the within part what is left, at least 10%. mats: {(child, parent,
    type) (level indices, parent -1 within): spec.CheckedMatrix}.
    """

    def __init__(self, checked, levels, level_names):
        names = {name: c for c, name in enumerate(level_names)}
        self.levels = levels
        self.mats = {(names[m.child], -1 if m.parent is None else names[m.parent], m.type): m
                     for m in checked.matrices}
        self.ys = _y_moments(levels)

    def loads(self, c, m):
        """(y level, y index, loading size) of every indicator of eta m of level c (a
        ``data.`` loading counts with its root mean square, a free one with 1)."""
        return [(child, j, size) for child, j, size, _ in self.indicators(c, m)]

    def indicators(self, c, m):
        """loads() with a fourth entry: whether the loading is free."""
        out = []
        for (child, parent, type_), mat in self.mats.items():
            if type_ != "lambda" or (parent if parent >= 0 else child) != c:
                continue
            for j in range(mat.pattern.shape[0]):
                lab = mat.label[j, m]
                if isinstance(lab, str) and lab.startswith(DATA_LABEL_PREFIX):
                    z = self.levels[child].columns.get(lab[len(DATA_LABEL_PREFIX):])
                    size = float(np.sqrt(np.mean(z ** 2))) if z is not None else 1.0
                    out.append((child, j, size if size > 0 else 1.0, False))
                elif mat.pattern[j, m] or mat.value[j, m] != 0:
                    free = bool(mat.pattern[j, m])
                    out.append((child, j, 1.0 if free else float(mat.value[j, m]), free))
        return out

    def indicator_part(self, c, yc, j):
        """The variance y j of level yc has at level c (its within part, halved, when
        c is its own level: an eta of its level shares it with theta); None if unknown."""
        if (yc, j) not in self.ys:
            return None
        _, _, within, between = self.ys[(yc, j)]
        return within / 2 if yc == c else between.get(c)

    def eta_variance(self, c, m):
        """The variance eta m of level c's indicators put at its level, divided by the
        squared loadings and averaged over the indicators with a fixed loading (the
        markers that set its unit), or over all of them (free ones as loading 1)
        when it has none; None when no indicator says."""
        indicators = self.indicators(c, m)
        if any(not free for *_, free in indicators):
            indicators = [ind for ind in indicators if not ind[3]]
        parts = []
        for yc, j, loading, _ in indicators:
            part = self.indicator_part(c, yc, j)
            if part is not None and loading != 0:
                parts.append(part / loading ** 2)
        return float(np.mean(parts)) if parts else None


def _y_moments(levels):
    """DataMoments.ys of the levels' arrays (compile/problem.LevelData)."""
    out = {}
    for c, lev in enumerate(levels):
        for j in range(lev.p):
            seen = lev.observed[:, j]
            y = lev.y[seen, j]
            if y.size == 0:
                continue
            mean, total = float(y.mean()), float(y.var())
            total = total if total > 0 else max(mean ** 2, 1.0)
            between = {}
            for p, units in zip(lev.parents, lev.parent_units):
                if levels[p].flat:
                    continue
                groups = units[seen]
                n_g = np.bincount(groups, minlength=levels[p].n).astype(float)
                has = n_g > 0
                means = np.bincount(groups, weights=y, minlength=n_g.size)[has] / n_g[has]
                spread = float(np.average((means - mean) ** 2, weights=n_g[has]))
                within_guess = total * float(np.mean(1.0 / n_g[has]))
                between[p] = max(spread - within_guess, 0.05 * total)
            within = max(total - sum(between.values()), 0.1 * total)
            out[(c, j)] = (mean, total, within, between)
    return out


def variable_scales(checked, levels):
    """{(level name, role, variable): scale} for every variable of every level."""
    spec = checked.spec
    data = DataMoments(checked, levels, list(spec.levels))
    out = {}
    for c, (lev, name) in enumerate(zip(levels, spec.levels)):
        sub = spec.submodels[name]
        psi = data.mats.get((c, -1, "psi"))
        for j, var in enumerate(sub.ys):
            out[(name, "y", var)] = _spread(lev.y[lev.observed[:, j], j])
        for k, var in enumerate(sub.xs):
            out[(name, "x", var)] = _spread(lev.x[:, k])
        for m, var in enumerate(sub.etas):
            written = abs(float(psi.value[m, m])) if psi is not None else 0.0
            measured = data.eta_variance(c, m) if psi is not None and psi.pattern[m, m] \
                else None
            variance = measured if measured is not None else written
            out[(name, "eta", var)] = np.sqrt(variance) if variance > 0 else 1.0
        out[(name, "1", "1")] = 1.0
    return out


def parameter_units(checked, levels, params):
    """(k,) the unit of every parameter, in parameter order (see the module docstring)."""
    scales = variable_scales(checked, levels)
    units = {}
    for m in checked.matrices:
        rows_role, cols_role = (WITHIN_ROLES if m.parent is None else BETWEEN_ROLES)[m.type]
        col_level = m.child if m.parent is None else m.parent
        emap = params.element_maps[(m.child, m.parent, m.type)]
        for r, c, k, coef in zip(emap.free_rows, emap.free_cols, emap.free_param,
                                 emap.coefficients):
            if k in units:
                continue
            s_r = scales[(m.child, rows_role, m.row_names[r])]
            s_c = scales[(col_level, cols_role, m.col_names[c])]
            if m.type in ("theta", "psi"):
                form = variable_forms(getattr(m, "form", "cov"), len(m.pattern))[r]
                units[k] = _form_unit(form, r == c, s_r, s_c)
            elif cols_role == "1":
                units[k] = s_r / abs(coef)           # a scaled element: coef times k
            else:
                units[k] = s_r / s_c / abs(coef)
    return np.array([units[k] for k in range(params.n)], dtype=float)


def _form_unit(form, diagonal, s_r, s_c):
    """The unit of a theta / psi element in its form (compile/forms.py): a covariance
    s_r s_c; a network's scale D_rr s_r and partial correlation 1; a precision
    1 / (s_r s_c); a Cholesky factor's L_rc s_r."""
    if form == "ggm":
        return s_r if diagonal else 1.0
    if form == "prec":
        return 1.0 / (s_r * s_c)
    if form == "chol":
        return s_r
    return s_r * s_c


def _spread(values):
    """The standard deviation of ``values``; |mean| when they are constant; 1 when empty
    or all zero."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 1.0
    sd = float(np.std(values))
    if sd > 0:
        return sd
    mean = abs(float(np.mean(values)))
    return mean if mean > 0 else 1.0
