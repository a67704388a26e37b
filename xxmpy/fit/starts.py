"""Start values from the data (``fit(start="auto")``), as lavaan and lme4 take them.

Every observed y gets its mean and its variance split across its level and
its level's parents, and every eta the variance its indicators put at its
level (compile/scales.DataMoments, where the parameters' natural units come
from too). Then, for each free element (the written value= of fixed elements
is kept, and a label shared by several elements takes its first element's
start):

  nu          the y's mean (its intercept with kappa's covariates, see kappa)
  kappa       least squares of the y on the level's own xs
  theta       on the diagonal the y's within part, halved when etas of the y's
              own level load on it; 0 off it
  psi         on the diagonal the variance the eta's indicators put at the
              eta's level (the y's within part for an eta of its own level, the
              between part for an eta of a parent level), divided by the squared
              loading and averaged over the indicators; 0 off it
  alpha       the mean of a y the eta carries (loaded with a fixed value and no
              free intercept of its own) divided by that loading, else 0
  lambda      a free loading: sqrt(the y's part at the eta's level / the eta's
              start variance), signed as the y's covariance with the eta's
              marker (so lambda^2 psi reproduces the part, in any units)
  beta, gamma 0

Built once per call from the compiled problem's level arrays; nothing here
changes the model.
"""
import numpy as np

from ..compile.scales import DataMoments
from ..spec.objects import variable_forms


def resolve_start(options, problem, checked):
    """Model.fit's options with start='auto' replaced by auto_start's values (any other
    string is refused; a vector or no start= passes unchanged)."""
    if isinstance(options.get("start"), str):
        if options["start"] != "auto":
            raise ValueError(f"Model.fit: start= must be 'auto' or one value per "
                             f"parameter, got {options['start']!r}.")
        options = {**options, "start": auto_start(problem, checked)}
    return options


def auto_start(problem, checked):
    """(k,) start values from the data for every parameter (see the module docstring)."""
    data = DataMoments(checked, problem.levels, problem.level_names)
    moments, mats, loads = data.ys, data.mats, data.loads
    values = {}

    def own_etas_load(c, j):
        mat = mats.get((c, -1, "lambda"))
        return mat is not None and bool(np.any(mat.pattern[j] | (mat.value[j] != 0)))

    def free_intercept(c, j):
        mat = mats.get((c, -1, "nu"))
        return mat is not None and bool(mat.pattern[j, 0])

    # kappa last: its least squares also give the intercepts of the ys it covers
    order = sorted(mats.items(), key=lambda item: item[0][2] == "kappa")
    for (c, parent, type_), mat in order:
        out = values.get((c, parent, type_), np.array(mat.value, dtype=float))
        if type_ in ("theta", "psi", "beta", "gamma"):
            out[mat.pattern & ~np.eye(*out.shape, dtype=bool)] = 0.0
        if type_ == "lambda":
            for j, m in zip(*np.nonzero(mat.pattern)):
                out[j, m] = _loading_start(problem, data, mats, c, parent, j, m)
        elif type_ in ("beta", "gamma"):
            out[mat.pattern] = 0.0
        elif type_ == "theta":
            for j in range(out.shape[0]):
                if mat.pattern[j, j] and (c, j) in moments:
                    within = moments[(c, j)][2]
                    out[j, j] = within / 2 if own_etas_load(c, j) else within
        elif type_ == "nu":
            for j in range(out.shape[0]):
                if mat.pattern[j, 0] and (c, j) in moments:
                    out[j, 0] = moments[(c, j)][0]
        elif type_ == "kappa" and parent < 0:
            _least_squares_kappa(problem, c, mat, out, mats.get((c, -1, "nu")), values)
        elif type_ == "psi":
            for m in range(out.shape[0]):
                variance = data.eta_variance(c, m)
                if mat.pattern[m, m] and variance is not None:
                    out[m, m] = variance
        elif type_ == "alpha":
            for m in range(out.shape[0]):
                if not mat.pattern[m, 0]:
                    continue
                carried = [(moments[(yc, j)][0] / loading) for yc, j, loading in loads(c, m)
                           if (yc, j) in moments and not free_intercept(yc, j)
                           and loading != 0]
                out[m, 0] = carried[0] if carried else 0.0
        if type_ in ("theta", "psi"):
            _to_form(mat, out)
        values[(c, parent, type_)] = out
    return _to_parameters(problem, mats, values)


def _loading_start(problem, data, mats, c, parent, j, m):
    """A free loading of y j (level c) on eta m (of level ``parent``, or c): the size
    that gives the y's part at the eta's level, sqrt(part / psi_m) with psi_m the
    eta's start variance (its fixed value, or what its markers say); its sign that
    of the y's covariance with the eta's first marker (or first indicator)."""
    level = c if parent < 0 else parent
    psi = mats.get((level, -1, "psi"))
    if psi is not None and not psi.pattern[m, m]:
        variance = float(psi.value[m, m])
    else:
        variance = data.eta_variance(level, m)
    part = data.indicator_part(level, c, j)
    if not variance or variance <= 0 or part is None or part <= 0:
        return 1.0
    size = float(np.sqrt(part / variance))
    same = [(yj, loading, free) for yc, yj, loading, free in data.indicators(level, m)
            if yc == c]
    markers = [ind for ind in same if not ind[2]] or same
    ref, ref_loading, _ = markers[0]
    if ref == j:
        return size
    lev = problem.levels[c]
    both = lev.observed[:, j] & lev.observed[:, ref]
    if both.sum() < 3:
        return size
    a, b = lev.y[both, j], lev.y[both, ref]
    cov = float(np.mean((a - a.mean()) * (b - b.mean())))
    return -size if cov * ref_loading < 0 else size


def _least_squares_kappa(problem, c, mat, out, nu, values):
    """kappa (and nu, when free) of level c from least squares of each y on [1, xs]."""
    lev = problem.levels[c]
    for j in range(out.shape[0]):
        if not mat.pattern[j].any():
            continue
        seen = lev.observed[:, j]
        if seen.sum() <= lev.q + 1:
            continue
        design = np.column_stack([np.ones(int(seen.sum())), lev.x[seen]])
        coef = np.linalg.lstsq(design, lev.y[seen, j], rcond=None)[0]
        out[j, mat.pattern[j]] = coef[1:][mat.pattern[j]]
        if nu is not None and nu.pattern[j, 0]:
            values[(c, -1, "nu")][j, 0] = coef[0]


def _to_form(mat, out):
    """A theta / psi start (variances on the diagonal, free covariances 0) written in
    the matrix's form (compile/forms.py), in place: a network's scales and a Cholesky
    diagonal the roots of the variances, a precision's diagonal their inverses."""
    forms = np.array(variable_forms(mat.form, len(out)))
    free = np.diag(mat.pattern) & (np.diag(out) > 0)
    d = np.diag(out).copy()
    root = free & np.isin(forms, ("ggm", "chol"))
    d[root] = np.sqrt(d[root])
    inverse = free & (forms == "prec")
    d[inverse] = 1.0 / d[inverse]
    np.fill_diagonal(out, d)


def _to_parameters(problem, mats, values):
    """The parameter vector: each label's first free element's start (build order)."""
    theta = problem.params.start.copy()
    done = np.zeros(theta.size, bool)
    names = problem.level_names
    for (c, parent, type_), mat in mats.items():
        key = (names[c], None if parent < 0 else names[parent], type_)
        emap = problem.params.element_maps[key]
        start = values.get((c, parent, type_), mat.value)
        for r, col, k, coef in zip(emap.free_rows, emap.free_cols, emap.free_param,
                                   emap.coefficients):
            if not done[k]:
                theta[k], done[k] = start[r, col] / coef, True
    return theta
