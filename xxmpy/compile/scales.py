"""Each parameter's natural unit, from the data: what makes floors and steps scale-free.

Multiplying an observed variable by c multiplies the estimates of the
parameters that carry its unit by the matching power of c (a residual variance
by c^2, an intercept or a loading by c); the optimiser's floors, step scales
and tolerances must follow, or a fit of rescaled data ends elsewhere. Every
variable gets a scale:

  y (observed, dependent)   its standard deviation over the observed values
  x (observed, covariate)   its standard deviation (|mean| when constant, else 1)
  eta (latent)              the square root of its start variance psi_mm (for a
                            latent variable identified by a fixed loading its start
                            variance carries the data's unit; by a fixed variance,
                            the unit is 1 as it should be); 1 without a psi
  the constant 1            1

and a parameter at (row variable r, column variable c) of a matrix has unit
  theta, psi (covariances)          s_r s_c
  nu, alpha (intercepts)            s_r
  lambda, beta, gamma, kappa        s_r / s_c
(a label shared by several elements takes its first element's unit).
"""
import numpy as np

from ..spec.objects import BETWEEN_ROLES, WITHIN_ROLES


def variable_scales(checked, levels):
    """{(level name, role, variable): scale} for every variable of every level."""
    spec = checked.spec
    psi = {m.child: m for m in checked.matrices if m.type == "psi" and m.parent is None}
    out = {}
    for lev, name in zip(levels, spec.levels):
        sub = spec.submodels[name]
        for j, var in enumerate(sub.ys):
            out[(name, "y", var)] = _spread(lev.y[lev.observed[:, j], j])
        for k, var in enumerate(sub.xs):
            out[(name, "x", var)] = _spread(lev.x[:, k])
        for m, var in enumerate(sub.etas):
            start = abs(float(psi[name].value[m, m])) if name in psi else 0.0
            out[(name, "eta", var)] = np.sqrt(start) if start > 0 else 1.0
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
        for r, c, k in zip(emap.free_rows, emap.free_cols, emap.free_param):
            if k in units:
                continue
            s_r = scales[(m.child, rows_role, m.row_names[r])]
            s_c = scales[(col_level, cols_role, m.col_names[c])]
            if m.type in ("theta", "psi"):
                units[k] = s_r * s_c
            elif cols_role == "1":
                units[k] = s_r
            else:
                units[k] = s_r / s_c
    return np.array([units[k] for k in range(params.n)], dtype=float)


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
