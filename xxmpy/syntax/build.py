"""lavaan syntax (parsed) -> an xxM model of one level, a nested chain, or crossed clusters.

Levels: one block, or ``level:`` blocks (numbered, or named after their cluster
columns) with cluster= the cluster columns, the lowest first. From the data the
clusters are chains of nested clusters (students in classes in schools) crossed
with each other (ratings in raters and in targets; schools in districts crossed
with neighbourhoods; classes and teachers crossed within schools): the bottom of
each chain is a parent of the rows, and a cluster containing several reaches the
rows through the first listed.

Roles, per level block:
  latent   the left-hand side of =~
  y        an observed variable that is an indicator, an outcome of ~, or in ~~ / ~ 1
           (as lavaan: a regressor whose variance or mean is written is modelled)
  x        an observed variable only ever on the right of ~ (conditioned on, fixed.x)
A variable of a lower level (a level-1 y, a latent, or a y of a level between) named
at a level above stands for its part there: a carrier eta of that level (named as the
variable; in a chain also at every level between) that reaches the level below with
weight 1 (the rows' lambda into a y, or a between beta into a carrier or a latent). A
factor of that level loads on the carriers (a beta within the level); regressing a
carrier on that level's latents is a latent regression across levels. ``v ~~ 0*v``
at a level folds the part: no carrier is made, and its loadings and regressions go
straight into the part below (between lambda, beta, kappa or gamma), so lavaan's
``y ~~ 0*y`` at level 2 means the y's between part is the between factors' alone. A
variable named only above level 1 belongs to that level (constant within its units).
A level-1 y not named above has no part there (within only), as in lavaan. A rows' y
with a part just above the rows has its intercept on that part (alpha: lavaan's
level-2 intercept), so regressions among between parts have lavaan's intercepts.

Operators -> matrices of the block's level:
  f =~ y      lambda (f =~ g for latents and carriers: beta g <- f)
  f ~ g       beta            f ~ x      gamma
  y ~ x       kappa           y ~ f      lambda (a free loading)
  y1 ~ y2     kappa on a copy of y2 among the xs (regressor_ys; f ~ y2: a gamma on
              it); recursive paths only. When y2 has parts above, the regression is
              on its within part: minus the label ('-b') from each part into y1
  y1 ~~ y2    theta (above level 1: psi of the carriers)        f ~~ g    psi
  y ~ 1       nu, or the alpha of the y's part (above)          f ~ 1     alpha
  a == 2*b    a's elements 2 times b (a scaled label); a == 0.7 fixes them
Defaults (lavaan's sem): each factor's first loading fixed at 1 (NA* frees it),
residual variances of every y and carrier and variances of every latent free,
covariances among exogenous latents (not regressed, not indicators) free, covariances
among dependent variables (regressed, neither predictors nor indicators: lavaan's
auto.cov.y) free, free intercepts of the ys, latent means 0, xs conditioned on. Free
elements are labelled as lavaan names them (``f=~y2``; ``.l2`` at level 2) unless the
syntax labels them.
"""
import itertools
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..api.model import Model
from ..errors import SpecificationError
from ..spec.objects import BETWEEN_ROLES, SCALED_TYPES, SIGNED_NUMBER, scaled_label

SHAPES = {"lambda": ("y", "eta"), "beta": ("eta", "eta"), "gamma": ("eta", "x"),
          "kappa": ("y", "x"), "theta": ("y", "y"), "psi": ("eta", "eta"),
          "nu": ("y", "1"), "alpha": ("eta", "1")}


@dataclass
class ParRow:
    """One parameter of the syntax model: lavaan's lhs, op, rhs, level (1-based) and
    label (None for a fixed element), with where it lives in the xxM model: key
    (child level, parent level or None, type), row and column. coef: the element is
    coef times the parameter ``label`` (after an equality a == 2*b); shown: the label
    the syntax gave it (a), when that differs."""
    lhs: str
    op: str
    rhs: str
    level: int
    label: str
    free: bool
    value: float
    key: tuple
    row: int
    col: int
    user: bool
    coef: float = 1.0
    shown: str = None


class _Matrix:
    """pattern / value / label of one xxM matrix, filled element by element."""

    def __init__(self, rows, cols, symmetric):
        self.pattern = np.zeros((rows, cols))
        self.value = np.zeros((rows, cols))
        self.label = np.full((rows, cols), None, dtype=object)
        self.symmetric, self.set_by_user = symmetric, set()

    def put(self, r, c, free, value, label):
        for i, j in ((r, c), (c, r)) if self.symmetric else ((r, c),):
            self.pattern[i, j] = 1.0 if free else 0.0
            self.value[i, j] = value
            self.label[i, j] = label if free else None


class _Level:
    """One level of the model being built: its variables and matrices. parts: the
    carriers (etas standing for lower-level variables' parts at this level); folded:
    parts with variance fixed at 0 (no eta: what explains them goes straight to the
    part below); below: the level its carriers reach (the one below, or the rows for
    crossed clusters); down: the between matrices to it (kind -> _Matrix)."""

    def __init__(self, name, number, ys, xs, etas, parts=(), folded=()):
        self.name, self.number = name, number
        self.names = {"y": list(ys), "x": list(xs), "eta": list(etas), "1": ["1"]}
        self.parts, self.folded = list(parts), list(folded)
        self.matrices, self.down, self.below = {}, {}, None
        self.copies, self.paths = {}, []      # regressor y -> its copy among the xs

    def matrix(self, kind):
        if kind not in self.matrices:
            rows, cols = (len(self.names[role]) for role in SHAPES[kind])
            self.matrices[kind] = _Matrix(rows, cols, kind in ("theta", "psi"))
        return self.matrices[kind]

    def between(self, kind):
        """The between matrix of this level's kind to self.below (rows: its variables)."""
        if kind not in self.down:
            child, parent = BETWEEN_ROLES[kind]
            self.down[kind] = _Matrix(len(self.below.names[child]),
                                      len(self.names[parent]), False)
        return self.down[kind]

    def target_kind(self, name):
        """How the part ``name`` reaches the level below: 'beta' into an eta (a carrier,
        or a latent of that level), 'lambda' into one of the rows' ys."""
        return "beta" if name in self.below.names["eta"] else "lambda"


class SyntaxModel:
    """The built xxM Model, its parameter table (ParRow), the start values given by
    start() (label -> value), the defined parameters (Defined) and the values of
    labelled fixed elements (label -> value; := may read them)."""

    def __init__(self, model, rows, starts, levels, defined=(), fixed_labels=None,
                 crossed=False, aliases=None, containers=None):
        self.model, self.rows, self.starts, self.levels = model, rows, starts, levels
        self.defined, self.fixed_labels = list(defined), dict(fixed_labels or {})
        self.crossed = crossed
        self.containers = dict(containers or {})  # cluster -> the cluster it is within
        self.aliases = dict(aliases or {})    # a -> (c, b): a == c*b made a a multiple

    def label_values(self, labels, theta):
        """{label: value} of the free labels (the fit's, at theta), the labelled fixed
        elements and the aliases (a == c*b)."""
        values = dict(self.fixed_labels)
        values.update(zip(labels, np.asarray(theta, float)))
        for name, (c, other) in self.aliases.items():
            values[name] = c * values[other]
        return values

    @property
    def structure(self):
        """The levels as read from the data: 'one level', 'nested: row in a in b',
        'crossed: row in a and in b', or chains crossed with each other ('nested and
        crossed: row in a in b, and in c')."""
        rows, levels = self.levels[0], self.levels[1:]
        if not levels:
            return "one level"
        chains = []
        for bottom in [lev for lev in levels if lev.below is rows]:
            chain = [bottom.name]
            while chain[-1] in self.containers:
                chain.append(self.containers[chain[-1]])
            chains.append(" in ".join(chain))
        if len(chains) == 1:
            return f"nested: {rows.name} in {chains[0]}"
        kind = "crossed" if len(chains) == len(levels) else "nested and crossed"
        return f"{kind}: {rows.name} in " + ", and in ".join(chains) \
            if kind != "crossed" else f"crossed: {rows.name} in " + " and in ".join(chains)


@dataclass
class Defined:
    """A defined parameter (lavaan's :=): name, its expression's text, the compiled
    function of {label: value} and the labels it reads."""
    name: str
    text: str
    function: object
    labels: list
    line: int


def _zero_variance(statements, name):
    """True when the block fixes ``name ~~ 0*name`` (a part with no variance there)."""
    return any(s.op == "~~" and s.lhs == [name] and t.name == name and t.fixed == 0.0
               and not t.free for s in statements for t in s.rhs)


def _cycle(edges, start, through):
    """The cycle [start, through, ..., start] in the graph predictor -> outcome of edges
    (outcome, predictor) when start reaches itself through ``through``, else None."""
    after = {}
    for outcome, predictor in edges:
        after.setdefault(predictor, []).append(outcome)
    trail, seen = {through: None}, [through]
    while seen:
        v = seen.pop()
        for w in after.get(v, []):
            if w == start:
                out = [v]
                while trail[out[-1]] is not None:
                    out.append(trail[out[-1]])
                return [start] + out[::-1] + [start]
            if w not in trail:
                trail[w] = v
                seen.append(w)
    return None


def _roles(statements, latents):
    """(ys, xs) of the observed names of one block, in order of first use: an x is a
    regressor (right of ~) that is never an indicator, an outcome, or named in ~~ or
    ~ 1 (as lavaan: a regressor whose variance or mean is written is modelled); ys are
    all the other observed names."""
    seen, strong, regressors = [], set(), set()
    for s in statements:
        rhs = [t.name for t in s.rhs if t.name != "1"]
        seen += [n for n in dict.fromkeys(list(s.lhs) + rhs)
                 if n not in latents and n not in seen]
        if s.op == "=~":
            strong.update(rhs)
        elif s.op == "~" and rhs:
            strong.update(s.lhs)
            regressors.update(rhs)
        elif s.op in ("~~", "~"):         # a variance, covariance or mean: modelled
            strong.update(list(s.lhs) + rhs)
    xs = [n for n in seen if n in regressors and n not in strong]
    ys = [n for n in seen if n not in xs]
    return ys, xs


class Builder:
    """Builds the model from parsed statements (see the module doc)."""

    def __init__(self, parsed, data, cluster, problems):
        self.problems, self.data = problems, data
        self.model_statements = [s for s in parsed.statements if s.op in ("=~", "~", "~~")]
        self.defined = [s for s in parsed.statements if s.op == ":="]
        self.slopes = [s for s in parsed.statements if s.op == "|"]
        self.equal = [s for s in parsed.statements if s.op == "=="]
        clusters = [] if cluster is None else \
            [cluster] if isinstance(cluster, str) else list(cluster)
        blocks = parsed.levels
        if blocks and len(blocks) != len(clusters) + 1:
            problems.append(f"{len(blocks)} level blocks need cluster= {len(blocks) - 1} "
                            f"cluster column{'s' if len(blocks) > 2 else ''} (the lowest "
                            f"first), got {cluster!r}.")
        if not blocks and clusters:
            problems.append("cluster= is given but the model has no level: blocks.")
        missing = [c for c in clusters if c not in data.columns]
        if missing:
            problems.append(f"cluster={missing[0]!r} is not a column of data.")
        self.clusters = clusters if blocks and not problems else []
        # a block is level k by its position, or by its name (a cluster column)
        order = {name: k + 1 for k, name in enumerate(blocks)}
        for name in blocks[1:]:
            if name in clusters:
                order[name] = clusters.index(name) + 2
        self.by_level = {1: self.model_statements} if not blocks else {}
        for s in self.model_statements if blocks else []:
            if s.level not in order:
                problems.append(f"line {s.line}: a statement before the first level: "
                                f"block (in {s.text!r}).")
                continue
            self.by_level.setdefault(order[s.level], []).append(s)
        self._check_nesting()
        for s in self.slopes:
            if not self.clusters or (blocks and order.get(s.level) != 1) or self.crossed:
                problems.append(f"line {s.line}: a random slope ({s.text!r}) belongs in the "
                                f"level: 1 block of a model with nested clusters: it varies "
                                f"over the units of the first cluster level.")
        self.rows, self.starts, self.fixed_labels = [], {}, {}
        self.row = "row"
        while self.row in data.columns:
            self.row = "_" + self.row

    def _check_nesting(self):
        """The clusters' structure from the data: chains of nested clusters (students in
        classes in schools), crossed with each other (ratings in raters and in targets;
        schools in districts crossed with neighbourhoods; classes and teachers crossed
        within schools). Sets ``below_of`` (level number -> the level number its
        carriers reach: the cluster it directly contains, the first listed when it
        contains several, or 1 for the rows: a part reaches the rows once),
        ``containers`` (cluster -> the cluster it is directly within) and ``crossed``
        (more than one chain)."""
        names = self.clusters
        self.crossed, self.below_of, self.containers = False, {}, {}
        if not names:
            return
        within = {(a, b): bool(self.data.groupby(a)[b].nunique().max() <= 1)
                  for a in names for b in names if a != b}
        number = {name: k + 2 for k, name in enumerate(names)}
        container = {}
        for a in names:
            outer = [b for b in names if b != a and within[(a, b)]]
            same = [b for b in outer if within[(b, a)]]
            if same:
                self.problems.append(f"clusters {a!r} and {same[0]!r} group the rows the "
                                     f"same way; give one of them.")
                return
            for b, d in itertools.combinations(outer, 2):
                if not (within[(b, d)] or within[(d, b)]):
                    self.problems.append(f"cluster {a!r} is within {b!r} and within {d!r}, "
                                         f"which are crossed; a cluster may sit in one chain "
                                         f"of nested clusters only.")
                    return
            late = [b for b in outer if names.index(b) < names.index(a)]
            if late:
                spread = self.data.groupby(late[0])[a].nunique()
                self.problems.append(
                    f"cluster {late[0]!r} is not nested in {a!r} (unit {spread.idxmax()!r} "
                    f"of {late[0]!r} is in {spread.max()} units of {a!r}), but {a!r} is "
                    f"within {late[0]!r}: give cluster= lowest first.")
                return
            if outer:                   # the innermost of them: within all the others
                container[a] = next(b for b in outer
                                    if all(within[(b, d)] for d in outer if d != b))
        children = {}
        for a, b in container.items():
            children.setdefault(b, []).append(a)
        for name in names:          # the route down: the first cluster it contains
            inner = children.get(name)
            self.below_of[number[name]] = number[inner[0]] if inner else 1
        self.containers = dict(container)
        self.crossed = sum(1 for k in self.below_of.values() if k == 1) > 1

    # ----------------------------------------------------------------- roles
    def _check_columns(self, names, statements):
        for name in names:
            if name not in self.data.columns:
                line = next(s.line for s in statements
                            if name in s.lhs or name in [t.name for t in s.rhs])
                self.problems.append(f"line {line}: {name!r} is neither a latent variable "
                                     f"(the left of =~) nor a column of data.")

    def levels(self):
        """[_Level], the rows first. A lower-level variable (a level-1 y, or a latent of
        a level below) named in a block is its part there: a carrier eta at that level
        and, in a chain, at every level between; ``v ~~ 0*v`` makes it a folded part
        (no carrier, see _Level)."""
        s1 = self.by_level.get(1, [])
        lat1 = list(dict.fromkeys(n for s in s1 if s.op == "=~" for n in s.lhs))
        ys1, xs1 = _roles(s1, lat1)
        slope_ys = [s.rhs[0].name for s in self.slopes]
        ys1 += [y for y in dict.fromkeys(slope_ys) if y not in ys1 and y not in xs1]
        self._check_columns(ys1 + xs1 + [s.rhs[1].name for s in self.slopes],
                            s1 + self.slopes)
        for s in self.slopes:
            if s.rhs[1].name in xs1:
                self.problems.append(f"line {s.line}: {s.rhs[1].name!r} has a random slope "
                                     f"and is also a regressor: the slope's mean (s ~ 1 at "
                                     f"level 2) is its fixed effect; drop the regression.")
        origin = {n: 1 for n in ys1 + lat1}       # variable -> the level it belongs to
        covariates = {n: 1 for n in xs1}
        found = [(lat1, ys1, xs1, [], [])]
        for number in range(2, len(self.clusters) + 2):
            statements = self.by_level.get(number, [])
            lat = list(dict.fromkeys(n for s in statements if s.op == "=~" for n in s.lhs))
            if number == 2:              # the random slopes are latents of the first cluster
                lat += [s.lhs[0] for s in self.slopes if s.lhs[0] not in lat]
            for name in lat:
                if name in origin and name not in ys1:
                    self.problems.append(f"latent variable {name!r} is defined at level "
                                         f"{origin[name]} and again at level {number}; give "
                                         f"each level's factor its own name (naming a lower "
                                         f"level's latent in a block, without =~, stands for "
                                         f"its part at that level).")
            lower = [n for n in origin if n not in ys1]
            ys, xs = _roles(statements, set(lat) | set(lower))
            named = list(dict.fromkeys(
                n for s in statements for n in list(s.lhs) + [t.name for t in s.rhs]
                if n in origin and n not in lat))
            for name in [n for n in ys + xs if n in covariates]:
                self.problems.append(
                    f"{name!r} is a covariate at level {covariates[name]} and is named at "
                    f"level {number}: a covariate's parts at several levels are not "
                    f"conditioned on (lavaan fixes their moments at the sample values). "
                    f"Model it instead: write '{name} ~~ {name}' in the level "
                    f"{covariates[name]} block, and its within and between parts become "
                    f"variables of the model with free variances and means.")
            own_ys = [n for n in ys if n not in origin and n not in covariates]
            own_xs = [n for n in xs if n not in origin and n not in covariates]
            self._check_columns(own_ys + own_xs, statements)
            folded = [n for n in named if _zero_variance(statements, n)]
            found.append((lat, own_ys, own_xs, named, folded))
            origin.update({n: number for n in lat + own_ys})
            covariates.update({n: number for n in own_xs})
        for name in sorted(set(lat1).union(*(f[0] for f in found))):
            if name in self.data.columns:
                self.problems.append(f"latent variable {name!r} has the name of a data "
                                     f"column; rename it.")
        self.origin = origin
        levels = self._carriers(found, ys1)
        self.all_levels = levels
        # the rows' ys with a part above (kept or folded): one intercept, on the part
        self.with_parts = {y for level in levels[1:] for y in level.parts + level.folded
                           if y in levels[0].names["y"]}
        for level in levels:
            self._regressor_ys(level)
        return levels

    def _regressor_ys(self, level):
        """The level's observed outcomes and latents regressed on its observed ys: each
        such regressor y gets a copy among the xs (level.copies, y -> x name; a kappa or
        gamma on it). No regressor may depend on what it predicts (the ys minus their
        paths then have a unit Jacobian). A regressor with parts above is regressed on
        by its within part, its value minus those parts (see _within_part)."""
        ys, paths = level.names["y"], []
        latents = [n for n in level.names["eta"] if n not in level.parts]
        statements = self.by_level.get(level.number, [])
        for s in statements:
            if s.op == "~":
                paths += [(lhs, t.name, s) for lhs in s.lhs for t in s.rhs
                          if (lhs in ys or lhs in latents) and t.name in ys]
        taken = set(level.names["x"]) | set(self.data.columns) | \
            {n for names in level.names.values() for n in names}
        for outcome, y, s in paths:
            if y in level.copies:
                continue
            folded = [up.number for up in self.all_levels if y in up.folded]
            if folded:
                self.problems.append(f"line {s.line}: {outcome} ~ {y}: {y!r} has variance 0 "
                                     f"at level {folded[0]} (~~ 0*), so its part there is "
                                     f"the factors' alone, and a regression on its within "
                                     f"part is not supported; free that variance.")
            name = f"{y}.value"
            while name in taken:
                name = "_" + name
            taken.add(name)
            level.copies[y] = name
            level.names["x"].append(name)
        level.paths = [(outcome, y) for outcome, y, _ in paths]
        edges = [(lhs, t.name) for s in statements if s.op == "~" for lhs in s.lhs
                 for t in s.rhs if t.name != "1"] + \
            [(t.name, lhs) for s in statements if s.op == "=~" for lhs in s.lhs
             for t in s.rhs]
        for outcome, y in level.paths:
            cycle = _cycle(edges, start=y, through=outcome)
            if cycle:
                self.problems.append(f"level {level.number}: {outcome} ~ {y}, but {y!r} "
                                     f"depends on {outcome!r} ({' -> '.join(cycle)}): a "
                                     f"regression on an observed variable must be "
                                     f"recursive.")
                break

    def path_down(self, k):
        """The level numbers from level k's below down to the rows (1)."""
        out = []
        while k != 1:
            k = self.below_of.get(k, 1)
            out.append(k)
        return out

    def _carriers(self, found, ys1):
        """The _Levels from found [(latents, own ys, own xs, named parts, folded parts)]:
        each level's carriers are its named parts that are not folded and the parts of
        the levels above it in its chain that come from below it (their path down)."""
        needed = {k: [] for k in range(1, len(found) + 1)}
        carriers_of = {}
        depth = {k: len(self.path_down(k)) for k in range(2, len(found) + 1)}
        for k in sorted(depth, key=lambda k: -depth[k]):     # containers first
            lat, own_ys, own_xs, named, folded = found[k - 1]
            path = self.path_down(k)
            for name in named:
                if self.origin[name] not in path:
                    self.problems.append(f"{name!r} (a variable of level "
                                         f"{self.origin[name]}) is named at level {k}, which "
                                         f"is not above level {self.origin[name]} (the levels "
                                         f"below it are {path}); a variable has parts only "
                                         f"at the levels above its own.")
            clash = [n for n in folded if n in needed[k]]
            for name in clash:
                self.problems.append(f"{name!r} has variance 0 at level {k} (~~ 0*) but a "
                                     f"part at a level above, which reaches the rows through "
                                     f"level {k}; free its variance at level {k}.")
            here = [n for n in named if n not in folded] + needed[k]
            carriers_of[k] = [y for y in ys1 if y in here] + \
                [n for n in dict.fromkeys(here) if n not in ys1]
            below = path[0]
            if below != 1:
                needed[below] = list(dict.fromkeys(
                    needed[below] + [n for n in named + needed[k]
                                     if self.origin[n] != below and self.origin[n] in path]))
        names = [self.row] + self.clusters
        out = []
        for k, (lat, own_ys, own_xs, named, folded) in enumerate(found, start=1):
            parts = carriers_of.get(k, [])
            out.append(_Level(names[k - 1], k, own_ys, own_xs, lat + parts, parts,
                              [n for n in folded if n not in parts]))
        for level in out[1:]:
            level.below = out[self.below_of.get(level.number, 1) - 1]
        return out

    # ------------------------------------------------------------- elements
    def put(self, level, kind, r_name, c_name, term, lhs, op, rhs, user=True, number=None,
            between=False):
        """Set one element from a term (or a default when term is None): of the level's
        own matrix, or (between=True) of its between matrix to level.below (rows: the
        variables below, columns: this level's)."""
        if between:
            matrix, key = level.between(kind), (level.below.name, level.name, kind)
            r = level.below.names[BETWEEN_ROLES[kind][0]].index(r_name)
            c = level.names[BETWEEN_ROLES[kind][1]].index(c_name)
        else:
            matrix, key = level.matrix(kind), (level.name, None, kind)
            r = level.names[SHAPES[kind][0]].index(r_name)
            c = level.names[SHAPES[kind][1]].index(c_name)
        if not user and (r, c) in matrix.set_by_user:
            return
        if user:
            matrix.set_by_user.update({(r, c), (c, r)} if matrix.symmetric else {(r, c)})
        fixed = term is not None and term.fixed is not None and not term.free
        variance = kind in ("theta", "psi") and r == c
        value = term.fixed if fixed else (term.start if term is not None and
                                          term.start is not None else float(variance))
        number = level.number if number is None else number
        suffix = "" if number == 1 else f".l{number}"
        label = (term.label if term is not None and term.label else f"{lhs}{op}{rhs}{suffix}")
        matrix.put(r, c, not fixed, value, label)
        if fixed and term.label:
            self.fixed_labels[term.label] = value
        self.rows.append(ParRow(lhs, op, rhs, number, None if fixed else label,
                                not fixed, value, key, r, c, user))
        if term is not None and term.start is not None and not fixed:
            self.starts[label] = term.start

    def link(self, level):
        """The carriers reach level.below with weight 1: a between beta into a carrier
        or a latent there, a between lambda into one of the rows' ys."""
        for name in level.parts:
            kind = level.target_kind(name)
            level.between(kind).put(level.below.names[BETWEEN_ROLES[kind][0]].index(name),
                                    level.names["eta"].index(name), False, 1.0, None)
        for s in self.slopes if level.number == 2 else []:    # y <- s with the row's x
            matrix = level.between("lambda")
            r = level.below.names["y"].index(s.rhs[0].name)
            c = level.names["eta"].index(s.lhs[0])
            matrix.pattern[r, c], matrix.value[r, c] = 0.0, 0.0
            matrix.label[r, c] = f"data.{s.rhs[1].name}"

    def statements(self, level, rows):
        """Apply one level's statements; rows: the level-1 _Level."""
        ys, xs, etas = level.names["y"], level.names["x"], level.names["eta"]
        latents = [n for n in etas if n not in level.parts]
        first = set()
        for s in self.by_level.get(level.number, []):
            for lhs in s.lhs:
                for k, t in enumerate(s.rhs):
                    self._one(level, rows, s, lhs, t, ys, xs, latents,
                              auto_fix=(s.op == "=~" and k == 0 and lhs not in first))
                if s.op == "=~":
                    first.add(lhs)

    def _one(self, level, rows, s, lhs, t, ys, xs, latents, auto_fix):
        op, rhs, parts = s.op, t.name, level.parts
        where = f"line {s.line}: {lhs} {op} {rhs}"
        if op == "=~" and auto_fix and t.fixed is None and not t.free:
            if t.label:
                self.problems.append(f"{where}: the first indicator's loading is fixed "
                                     f"at 1 (lavaan's default); a label on it would tie "
                                     f"others to 1. Write NA*{t.label}*{rhs} to free it.")
                return
            t = type(t)(rhs, fixed=1.0)
        if level.folded and {lhs, rhs} & set(level.folded):
            self._folded(level, rows, s, lhs, t, xs, latents, where)
        elif op == "=~":
            if rhs in ys:
                self.put(level, "lambda", rhs, lhs, t, lhs, op, rhs)
            elif rhs in latents or rhs in parts:     # a part loads as a carrier eta
                self.put(level, "beta", rhs, lhs, t, lhs, op, rhs)
            else:
                self.problems.append(f"{where}: {rhs!r} cannot be an indicator here.")
        elif op == "~" and rhs == "1":
            if lhs in self.with_parts:
                self._intercept(rows, lhs, t, level.number)   # its one intercept
            elif lhs in ys:
                self.put(level, "nu", lhs, "1", t, lhs, "~1", "")
            else:
                self.put(level, "alpha", lhs, "1", t, lhs, "~1", "")
        elif op == "~":
            lhs_eta = lhs in latents or lhs in parts
            if lhs_eta and (rhs in latents or rhs in parts):
                self.put(level, "beta", lhs, rhs, t, lhs, op, rhs)
            elif lhs_eta and rhs in xs:
                self.put(level, "gamma", lhs, rhs, t, lhs, op, rhs)
            elif lhs in latents and rhs in level.copies:    # a latent on an observed y
                self.put(level, "gamma", lhs, level.copies[rhs], t, lhs, op, rhs)
                self._within_part(level, lhs, rhs)
            elif lhs in ys and rhs in xs:
                self.put(level, "kappa", lhs, rhs, t, lhs, op, rhs)
            elif lhs in ys and rhs in level.copies:     # an observed y on another
                self.put(level, "kappa", lhs, level.copies[rhs], t, lhs, op, rhs)
                self._within_part(level, lhs, rhs)
            elif lhs in ys and (rhs in latents or rhs in parts):
                self.put(level, "lambda", lhs, rhs, t, lhs, op, rhs)
            else:
                self.problems.append(f"{where}: a regression of {lhs!r} on {rhs!r} (an "
                                     f"observed outcome on another, or on a between part) "
                                     f"is not supported yet.")
        else:                             # ~~ (a name written here is never an x)
            if lhs in ys and rhs in ys:
                self.put(level, "theta", lhs, rhs, t, lhs, op, rhs)
            elif (lhs in latents or lhs in parts) and (rhs in latents or rhs in parts):
                self.put(level, "psi", lhs, rhs, t, lhs, op, rhs)
            else:
                self.problems.append(f"{where}: {lhs!r} and {rhs!r} are not both observed "
                                     f"or both latent.")

    def _intercept(self, rows, y, term, number, user=True):
        """The intercept of a rows' y with parts above: on its carrier at the level just
        above the rows when one such level holds it (alpha: lavaan's level-2 intercept,
        the mean of its between part, so that regressions among between parts have
        lavaan's intercepts); otherwise (parts in crossed clusters, a folded part) the
        rows' nu."""
        holders = [lev for lev in self.all_levels[1:] if lev.below is rows and y in lev.parts]
        if len(holders) == 1:
            self.put(holders[0], "alpha", y, "1", term, y, "~1", "", user=user,
                     number=number)
        else:
            self.put(rows, "nu", y, "1", term, y, "~1", "", user=user, number=number)

    def _within_part(self, level, outcome, y):
        """A regression on y's within part when y has parts (carriers) at the levels
        reaching this one: the kappa on y's copy, and minus that coefficient from each
        such carrier into the outcome (a between lambda labelled '-label', or fixed at
        minus the fixed value), so the outcome moves with y minus its parts."""
        role, kind, down = ("y", "kappa", "lambda") if outcome in level.names["y"] else \
            ("eta", "gamma", "beta")
        path = level.matrix(kind)
        r = level.names[role].index(outcome)
        c = level.names["x"].index(level.copies[y])
        free, value, label = path.pattern[r, c], path.value[r, c], path.label[r, c]
        for up in self.all_levels:
            if up.below is level and y in up.parts:
                matrix = up.between(down)
                rr, cc = r, up.names["eta"].index(y)
                matrix.pattern[rr, cc], matrix.value[rr, cc] = free, -value
                matrix.label[rr, cc] = f"-{label}" if free else None

    def _folded(self, level, rows, s, lhs, t, xs, latents, where):
        """A statement naming a folded part (variance 0 at this level): what explains it
        (a factor's loading, a regression on a latent or a covariate of this level) goes
        straight into the part below; ``v ~~ 0*v`` is shown as a row; anything that
        would need the part as a variable of this level is refused."""
        op, rhs, folded = s.op, t.name, level.folded
        outcome, predictor = (rhs, lhs) if op == "=~" else (lhs, rhs)
        if op == "~~" and lhs == rhs:
            self.rows.append(ParRow(lhs, op, rhs, level.number, None, False, 0.0, None,
                                    0, 0, True))
        elif op == "~" and rhs == "1" and lhs in rows.names["y"]:
            self._intercept(rows, lhs, t, level.number)
        elif op in ("=~", "~") and outcome in folded and predictor not in folded and \
                (predictor in latents or predictor in level.parts or predictor in xs):
            into_y = level.target_kind(outcome) == "lambda"
            kind = ("lambda" if into_y else "beta") if predictor not in xs else \
                ("kappa" if into_y else "gamma")
            self.put(level, kind, outcome, predictor, t, lhs, op, rhs, between=True)
        else:
            self.problems.append(f"{where}: {sorted({lhs, rhs} & set(folded))} has variance "
                                 f"0 at level {level.number} (~~ 0*), so it is no variable of "
                                 f"this level: it can only be explained here (a loading, or a "
                                 f"regression on a latent or covariate of this level), not "
                                 f"predict, covary or have a mean.")

    def defaults(self, level):
        """lavaan's defaults for the elements the syntax did not set (a rows' y with a part
        above has its intercept there: lavaan's level-2 one)."""
        ys, etas = level.names["y"], level.names["eta"]
        latents = [n for n in etas if n not in level.parts]
        statements = self.by_level.get(level.number, [])
        regressed = {lhs for s in statements if s.op == "~"
                     and any(t.name != "1" for t in s.rhs) for lhs in s.lhs}
        predictors = {t.name for s in statements if s.op == "~" for t in s.rhs}
        indicators = {t.name for s in statements if s.op == "=~" for t in s.rhs}
        for y in ys:
            self.put(level, "theta", y, y, None, y, "~~", y, user=False)
            if level.number == 1 and y in self.with_parts:
                self._intercept(level, y, None, 2, user=False)
            else:
                self.put(level, "nu", y, "1", None, y, "~1", "", user=False)
        for f in etas:
            self.put(level, "psi", f, f, None, f, "~~", f, user=False)
        exogenous = [f for f in latents if f not in regressed and f not in indicators]
        for j, f in enumerate(exogenous):
            for g in exogenous[:j]:
                self.put(level, "psi", f, g, None, g, "~~", f, user=False)
        # lavaan's auto.cov.y: the dependent variables (regressed, neither predictors nor
        # indicators) covary, latent with latent (psi) and observed with observed (theta)
        dependent = [v for v in etas + ys if v in regressed and v not in predictors
                     and v not in indicators]
        for j, f in enumerate(dependent):
            for g in dependent[:j]:
                kind = "psi" if f in etas and g in etas else \
                    "theta" if f in ys and g in ys else None
                if kind is None:
                    self.problems.append(
                        f"level {level.number}: lavaan frees the covariance of the dependent "
                        f"variables {g!r} and {f!r} by default (auto.cov.y), and a "
                        f"covariance between a latent variable and an observed one's "
                        f"residual is not supported yet; make one of them a predictor or "
                        f"an indicator, or measure the observed one by a latent.")
                else:
                    self.put(level, kind, f, g, None, g, "~~", f, user=False)
        slopes = [s.lhs[0] for s in self.slopes] if level.number == 2 else []
        for s in slopes:                  # as Mplus: a mean, and covarying with the parts
            self.put(level, "alpha", s, "1", None, s, "~1", "", user=False)
            for y in level.parts:
                self.put(level, "psi", s, y, None, y, "~~", s, user=False)


def build(parsed, data, cluster):
    """SyntaxModel of the parsed syntax on ``data`` (the module doc)."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"sem: data= must be a pandas DataFrame, got {type(data).__name__}.")
    problems = []
    b = Builder(parsed, data, cluster, problems)
    if problems:
        raise SpecificationError([f"sem: {p}" for p in problems])
    levels = b.levels()
    if problems:
        raise SpecificationError([f"sem: {p}" for p in problems])
    rows = levels[0]
    for level in levels:
        b.statements(level, rows)
    for k, level in enumerate(levels):
        b.defaults(level)
        if k:
            b.link(level)
    _equalities(b, levels)
    defined = _defined(b)
    if problems:
        raise SpecificationError([f"sem: {p}" for p in problems])
    return SyntaxModel(_model(b, levels), b.rows, b.starts, levels, defined, b.fixed_labels,
                       b.crossed, b.aliases, b.containers)


def _free_labels(b):
    return list(dict.fromkeys(r.label for r in b.rows if r.free))


NAME = r"[A-Za-z_.][A-Za-z0-9_.]*"


def _linear(text):
    """(c, name) of 'name', '-name', 'c*name', 'name*c' or 'name/c'; (v, None) of a
    number v; None for anything else."""
    t = text.replace(" ", "")
    if re.fullmatch(SIGNED_NUMBER, t):
        return float(t), None
    for pattern, coef, name in ((rf"({NAME})", lambda m: 1.0, 1),
                                (rf"-({NAME})", lambda m: -1.0, 1),
                                (rf"({SIGNED_NUMBER})\*({NAME})", lambda m: float(m[1]), 2),
                                (rf"({NAME})\*({SIGNED_NUMBER})", lambda m: float(m[2]), 1),
                                (rf"({NAME})/({SIGNED_NUMBER})", lambda m: 1.0 / float(m[2]), 1)):
        found = re.fullmatch(pattern, t)
        if found:
            return coef(found), found[name]
    return None


def _scaled(coef, name):
    """The label of coef times parameter name ('b', '-b', '0.5*b')."""
    return name if coef == 1.0 else f"-{name}" if coef == -1.0 else f"{coef!r}*{name}"


def _equalities(b, levels):
    """lavaan's == with a label on one side: another label (one parameter), a multiple
    of one (a == 2*b: a's elements become 2 times b, loadings, regressions and
    intercepts only) or a number (a == 0.5: a's elements fixed there). Anything else
    is refused."""
    b.aliases = {}
    for s in b.equal:
        sides = [_linear(s.lhs[0]), _linear(s.rhs[0])]
        labels = _free_labels(b)
        bare = [k for k, side in enumerate(sides) if side is not None and side[0] == 1.0
                and side[1] in labels]
        if not bare or sides[1 - bare[-1]] is None:
            b.problems.append(f"line {s.line}: {s.text!r}: == needs a free label on one "
                              f"side and a free label, a multiple of one (2*b, b/2, -b) "
                              f"or a number on the other; the labels are {labels}.")
            continue
        old = sides[bare[-1]][1]
        coef, new = sides[1 - bare[-1]]
        if new is not None and (new not in labels or new == old):
            b.problems.append(f"line {s.line}: {new!r} in {s.text!r} labels no other free "
                              f"parameter; the labels are {labels}.")
            continue
        _replace_label(b, levels, s, old, coef, new)


def _replace_label(b, levels, s, old, coef, new):
    """Every element labelled old (or a multiple of it) becomes coef times new, or (new
    None) is fixed at coef; the parameter table follows."""
    matrices = [(kind, m) for level in levels for kind, m in
                list(level.matrices.items()) + list(level.down.items())]
    start = next((m.value[r, c] / scaled_label(m.label[r, c])[0] for _, m in matrices
                  for (r, c), lab in np.ndenumerate(m.label)
                  if lab is not None and scaled_label(lab)[1] == new), 0.0)
    for kind, m in matrices:
        for (r, c), lab in np.ndenumerate(m.label):
            c0, name = scaled_label(lab) if lab is not None else (1.0, None)
            if name != old:
                continue
            if new is None:
                m.pattern[r, c], m.value[r, c], m.label[r, c] = 0.0, c0 * coef, None
            elif c0 * coef != 1.0 and kind not in SCALED_TYPES:
                b.problems.append(f"line {s.line}: {s.text!r} would make a variance or "
                                  f"covariance ({old}) a multiple of {new}; only loadings, "
                                  f"regressions and intercepts can be.")
                return
            else:
                m.label[r, c], m.value[r, c] = _scaled(c0 * coef, new), c0 * coef * start
    for row in b.rows:
        if row.label == old:
            if new is None:
                row.free, row.label, row.value = False, None, coef
            else:
                row.shown = row.shown or (old if coef != 1.0 else None)
                row.label, row.coef = new, row.coef * coef
    if new is None:
        b.fixed_labels[old] = coef
    else:
        b.aliases[old] = (coef, new)
    b.starts.pop(old, None)


def _defined(b):
    """The := statements compiled (expression.py), each reading labels of free or
    labelled fixed elements, or names defined before it."""
    from .expression import ExpressionError, compile_expression
    out, known = [], set(_free_labels(b)) | set(b.fixed_labels) | set(b.aliases)
    for s in b.defined:
        name = s.lhs[0].strip()
        try:
            function, labels = compile_expression(s.rhs[0])
        except ExpressionError as exc:
            b.problems.append(f"line {s.line}: {exc} (in {s.text!r}).")
            continue
        if name in known:
            b.problems.append(f"line {s.line}: {name!r} is a label already (in {s.text!r}).")
        unknown = [lab for lab in labels if lab not in known]
        if unknown:
            b.problems.append(f"line {s.line}: {unknown} in {s.text!r} are not labels of the "
                              f"model (labels: {sorted(known)}).")
        out.append(Defined(name, s.rhs[0].strip(), function, labels, s.line))
        known.add(name)
    return out


def _model(b, levels):
    """The xm.Model: one table per level (the rows with their cluster column, each
    cluster level with its parent's column and its own variables)."""
    data, names = b.data, [level.name for level in levels]
    m = Model(names, name="sem")
    for k, level in enumerate(levels):
        parents = [up.name for up in levels[1:] if up.below is level]
        xs = [x for x in level.names["x"] if x not in level.copies.values()]
        if k == 0:                    # with the random slopes' xs (data. columns)
            columns = level.names["y"] + xs + parents + [s.rhs[1].name for s in b.slopes]
            table = data[list(dict.fromkeys(columns))].copy()
            table[level.name] = np.arange(len(table))
        else:
            table = _cluster_table(data, level.name, parents + level.names["y"] + xs,
                                   b.problems)
        table = _with_copies(table, level, b.problems)
        m.level(level.name, parents=parents, ys=level.names["y"], xs=level.names["x"],
                etas=level.names["eta"], data=table,
                regressor_ys={x: y for y, x in level.copies.items()})
        for kind, mat in level.matrices.items():
            if mat.pattern.size:
                m.within(level.name, kind, mat.pattern, mat.value, mat.label)
        for kind, mat in level.down.items():
            m.between(level.name, level.below.name, kind, mat.pattern, mat.value, mat.label)
    return m


def _with_copies(table, level, problems):
    """The table with a column per regressor y holding its values (level.copies); where
    the y is missing, every outcome regressed on it must be too (the copy is then
    unused and set to 0); otherwise the path cannot be written and is refused."""
    for y, x in level.copies.items():
        outcomes = [o for o, p in level.paths if p == y]
        if any(o not in table.columns for o in outcomes):     # a latent outcome
            lost = table[y].isna()
        else:
            lost = table[y].isna() & table[outcomes].notna().any(axis=1)
        if lost.any():
            problems.append(f"{y!r} is missing in {int(lost.sum())} unit(s) of level "
                            f"{level.number} where {outcomes} (regressed on it) are "
                            f"observed: a regression on an observed outcome uses its "
                            f"values; drop those units (first at row {lost.idxmax()!r}).")
        table[x] = table[y].fillna(0.0)
    if problems:
        raise SpecificationError([f"sem: {p}" for p in problems])
    return table


def _cluster_table(data, cluster, columns, problems):
    """One row per cluster with its cluster-level columns (constant within clusters)."""
    grouped = data.groupby(cluster, sort=True)
    for column in columns:
        if (grouped[column].nunique(dropna=True) > 1).any():
            problems.append(f"{column!r} is named only at level 2 but varies within "
                            f"clusters of {cluster!r}; a level-2 variable is one value per "
                            f"cluster.")
    if problems:
        raise SpecificationError([f"sem: {p}" for p in problems])
    table = grouped[columns].first().reset_index() if columns else \
        pd.DataFrame({cluster: np.sort(data[cluster].unique())})
    return table
