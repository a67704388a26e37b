"""The saturated (H1) and baseline (independence) models of a fitted model.

For the observed ys of the model (observed at one level, c), each level's
component of their covariance gets free means and an unrestricted covariance:

  the within component   theta at level c, every element free
  each level l above c   a random intercept of every y: etas u_<y> at level l,
  (parents, theirs, ...) psi every element free, loaded by a fixed identity
                         (a between lambda l -> c; a grandparent becomes a
                         direct parent of c, its id read through the parent)
  the means              nu at level c, free

ys observed at a level above c join that level's component: its ys, regressed
freely on the intercepts u of the ys below it (a within lambda) with a free
covariance theta and free means, make the joint covariance of (u, its ys)
unrestricted; they get intercepts at the levels above their own in turn.

For two levels this is lavaan's H1 (the unrestricted within and between
covariance matrices and the between means); for three and more levels, nested
or crossed, every level above c gets its own component, the natural
generalisation: the ys' distribution is then the most general one in which
the units of each level share a random intercept vector with any covariance.
xs holding ys' values (regressor_ys: observed outcomes regressed on other ys) are
not covariates and are left out. Covariates are conditioned on, as lavaan's
fixed.x: the saturated model
regresses the ys freely on the xs of level c (kappa) and on those of each level
above (a between kappa); constant xs (an intercept column) are left out. The
baseline model has the same components with diagonal covariances and no
regressions (lavaan's: the level-1 and level-2 variances and the means).
Parameters, with A levels above c and Q varying xs at c and above (ys at c only):
saturated (A + 1) p(p+1)/2 + p + p Q; baseline (A + 1) p + p.

Both are ordinary xxM models fitted by the same engine to the same data, from
the data's start values, to their exact optimum (no early-stopped EM).
Not formed yet (a clear error says so): ys at levels not on one line of
ancestry, ``data.`` loadings (random slopes), levels not above c.
"""
import numpy as np

from ..api.model import Model
from ..spec.graph import levels_above
from ..spec.objects import DATA_LABEL_PREFIX


def _components(model):
    """(the lowest level of ys, its ys, the levels above it) of the model; ValueError
    when the saturated model cannot be formed (the message says why). ys may sit at
    several levels when all of them are that lowest level's ancestors."""
    spec = model.spec
    y_levels = [name for name in spec.levels if spec.submodels[name].ys]
    why = []
    lowest = [c for c in y_levels
              if set(y_levels) - {c} <= set(_ancestors(spec, c))]
    if not lowest:
        why.append(f"the model has observed ys at levels {y_levels} that are not all "
                   f"above one of them; the saturated model needs one line of levels")
    if any(isinstance(lab, str) and lab.startswith(DATA_LABEL_PREFIX)
           for m in spec.matrices if m.label is not None
           for lab in np.ravel(np.asarray(m.label, dtype=object))):
        why.append("the model has data. elements (random slopes): its unit covariance "
                   "varies with the data, so no one unrestricted covariance matrix exists")
    if not why:
        c = lowest[0]
        ancestors = _ancestors(spec, c)
        flat = [p for p in ancestors if spec.submodels[p].flat]
        if flat:
            why.append(f"level(s) {flat} hold fixed effects with a flat prior (integrated "
                       f"out or profiled out); declare them as a kappa on the level's "
                       f"covariates instead (Model.within(level, 'kappa', ...))")
        others = [name for name in spec.levels if name != c and name not in ancestors]
        if others:
            why.append(f"level(s) {others} are not above '{c}' (the lowest level of ys); "
                       f"their components would not reach the ys")
    if why:
        raise ValueError("fit_measures: the saturated model cannot be formed: "
                         + "; ".join(why) + ".")
    return c, list(spec.submodels[c].ys), ancestors


def _ancestors(spec, c):
    """The levels above c (its parents, theirs, ...), in the model's level order."""
    found = levels_above(c, lambda level: spec.submodels[level].parents)
    return [name for name in spec.levels if name in found]


def _unit_ids(spec, c, ancestors, ys):
    """c's ids, its parents' ids and its ys, with an id column for every level above:
    a grandparent's id read from the parent's table (as the model's levels declare
    it; each unit has one unit at every level above)."""
    known = set(spec.submodels[c].parents)
    table = spec.submodels[c].data[[c] + sorted(known) + list(ys)]
    while not set(ancestors) <= known:
        for level in list(known):
            above = [q for q in spec.submodels[level].parents if q not in known]
            if above:
                ids = spec.submodels[level].data[[level] + above].drop_duplicates(level)
                table = table.merge(ids, on=level, how="left", validate="many_to_one")
                known |= set(above)
    return table


def _reference(model, diagonal, name):
    """The saturated (diagonal=False) or baseline (True) model (module docstring)."""
    c, _, ancestors = _components(model)
    spec = model.spec
    levels = [c] + ancestors
    y_levels = [k for k in levels if spec.submodels[k].ys]
    above = {k: _ancestors(spec, k) for k in levels}
    ref = Model(levels, name=f"{name} of {model.name}", memory_limit_gb=model.memory_limit_gb)

    def cov(n):
        return np.eye(n) if diagonal else np.ones((n, n))
    for level in levels:
        sub = spec.submodels[level]
        ys = list(sub.ys)
        xs = _varying(sub.data, [x for x in sub.xs if x not in sub.regressor_ys])
        below = [k for k in y_levels if level in above[k]]       # ys it holds intercepts of
        etas = [f"u_{k}_{y}" for k in below for y in spec.submodels[k].ys]
        parents = above[level] if ys else []
        if ys:
            data = _unit_ids(spec, level, parents, ys + xs)[[level] + parents + ys + xs]
        else:
            data = sub.data[[level] + xs]
        ref.level(level, parents=parents or None, ys=ys, xs=xs, etas=etas or None,
                  data=data)
        r, d = len(ys), len(etas)
        if r:
            ref.within(level, "nu", np.ones((r, 1)), np.zeros((r, 1)))
            ref.within(level, "theta", cov(r), np.eye(r))
            if xs and not diagonal:     # conditioned on the covariates (lavaan's fixed.x)
                ref.within(level, "kappa", np.ones((r, len(xs))), np.zeros((r, len(xs))))
            if d and not diagonal:      # its ys with the intercepts of the ys below
                ref.within(level, "lambda", np.ones((r, d)), np.zeros((r, d)))
        if d:
            ref.within(level, "psi", cov(d), np.eye(d))
            at = 0
            for k in below:
                pk = len(spec.submodels[k].ys)
                load = np.zeros((pk, d))
                load[:, at:at + pk] = np.eye(pk)
                ref.between(level, k, "lambda", np.zeros((pk, d)), load)
                if xs and not diagonal:
                    ref.between(level, k, "kappa", np.ones((pk, len(xs))),
                                np.zeros((pk, len(xs))))
                at += pk
    return ref


def _varying(table, xs):
    """The xs that vary over the table's units (a constant one, such as an intercept
    column, is the free mean's own direction and is left out)."""
    return [x for x in xs if table[x].nunique(dropna=True) > 1]


def saturated_model(model):
    """The saturated (H1) xxM Model of ``model`` (unfitted; see the module docstring)."""
    return _reference(model, False, "saturated model")


def baseline_model(model):
    """The baseline (independence) xxM Model of ``model`` (unfitted)."""
    return _reference(model, True, "baseline model")
