"""The saturated (H1) and baseline (independence) models of a fitted model.

For the observed ys of the model (observed at one level, c), each level's
component of their covariance gets free means and an unrestricted covariance:

  the within component   theta at level c, every element free
  each level l above c   a random intercept of every y: etas u_<y> at level l,
  (parents, theirs, ...) psi every element free, loaded by a fixed identity
                         (a between lambda l -> c; a grandparent becomes a
                         direct parent of c, its id read through the parent)
  the means              nu at level c, free

For two levels this is lavaan's H1 (the unrestricted within and between
covariance matrices and the between means); for three and more levels, nested
or crossed, every level above c gets its own component, the natural
generalisation: the ys' distribution is then the most general one in which
the units of each level share a random intercept vector with any covariance.
Covariates are conditioned on, as lavaan's fixed.x: the saturated model
regresses the ys freely on the xs of level c (kappa) and on those of each level
above (a between kappa); constant xs (an intercept column) are left out. The
baseline model has the same components with diagonal covariances and no
regressions (lavaan's: the level-1 and level-2 variances and the means).
Parameters, with A levels above c and Q varying xs at c and above: saturated (A + 1) p(p+1)/2
+ p + p Q; baseline (A + 1) p + p.

Both are ordinary xxM models fitted by the same engine to the same data, from
the data's start values, to their exact optimum (no early-stopped EM).
Not formed yet (a clear error says so): ys at more than one level, ``data.``
loadings (random slopes), levels not above c.
"""
import numpy as np

from ..api.model import Model
from ..spec.objects import DATA_LABEL_PREFIX


def _components(model):
    """(y level, its ys, its parents) of the model; ValueError when the saturated
    model cannot be formed (the message says why)."""
    spec = model.spec
    y_levels = [name for name in spec.levels if spec.submodels[name].ys]
    why = []
    if len(y_levels) != 1:
        why.append(f"the model has observed ys at {len(y_levels)} levels {y_levels}; the "
                   f"saturated model is formed for ys observed at one level")
    if any(isinstance(lab, str) and lab.startswith(DATA_LABEL_PREFIX)
           for m in spec.matrices if m.label is not None
           for lab in np.ravel(np.asarray(m.label, dtype=object))):
        why.append("the model has data. elements (random slopes): its unit covariance "
                   "varies with the data, so no one unrestricted covariance matrix exists")
    if not why:
        c = y_levels[0]
        ancestors = _ancestors(spec, c)
        flat = [p for p in ancestors if spec.submodels[p].flat]
        if flat:
            why.append(f"level(s) {flat} hold fixed effects with a flat prior (REML)")
        others = [name for name in spec.levels if name != c and name not in ancestors]
        if others:
            why.append(f"level(s) {others} are not above '{c}' (the level of the ys); "
                       f"their components would not reach the ys")
    if why:
        raise ValueError("fit_measures: the saturated model cannot be formed: "
                         + "; ".join(why) + ".")
    return c, list(spec.submodels[c].ys), ancestors


def _ancestors(spec, c):
    """The levels above c (its parents, theirs, ...), in the model's level order."""
    found, todo = set(), list(spec.submodels[c].parents)
    while todo:
        level = todo.pop()
        if level not in found:
            found.add(level)
            todo += list(spec.submodels[level].parents)
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
    c, ys, parents = _components(model)
    spec = model.spec
    p = len(ys)
    pattern = np.eye(p) if diagonal else np.ones((p, p))
    ref = Model([c] + parents, name=f"{name} of {model.name}",
                memory_limit_gb=model.memory_limit_gb)
    xs = _varying(spec.submodels[c].data, spec.submodels[c].xs)
    data = _unit_ids(spec, c, parents, ys + xs)
    ref.level(c, parents=parents, ys=ys, xs=xs, data=data[[c] + parents + ys + xs])
    ref.within(c, "nu", np.ones((p, 1)), np.zeros((p, 1)))
    ref.within(c, "theta", pattern, np.eye(p))
    if xs and not diagonal:     # conditioned on the covariates (lavaan's fixed.x)
        ref.within(c, "kappa", np.ones((p, len(xs))), np.zeros((p, len(xs))))
    etas = [f"u_{y}" for y in ys]
    for parent in parents:
        above = _varying(spec.submodels[parent].data, spec.submodels[parent].xs)
        ref.level(parent, etas=etas, xs=above,
                  data=spec.submodels[parent].data[[parent] + above])
        ref.within(parent, "psi", pattern, np.eye(p))
        ref.between(parent, c, "lambda", np.zeros((p, p)), np.eye(p))
        if above and not diagonal:
            ref.between(parent, c, "kappa", np.ones((p, len(above))),
                        np.zeros((p, len(above))))
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
