"""-2 log L and its gradient of a crossed design (or one with flat levels) over shards.

The split. One level, the *sharded* level, is cut into shards of whole units; its
*local* levels are it and every level with a local parent (the rows below it), each
unit of which reaches one unit of the sharded level. Every other level is *shared*:
every shard holds all of its units (InstEval sharded by student: each shard has its
students with their ratings, and every lecturer and department). Flat levels (fixed
effects) are always shared. The sharded level is the one that leaves the fewest
shared etas (the smallest dense remainder), then the one with most units.

Each shard is compiled with its shared levels kept in the dense remainder, laid out
level by level in table order (compile/schedule.py), so the remainders of all shards
add up entry by entry. The shared levels' own factors (their etas' covariance, their
own ys) are counted by shard 0 only; the other shards evaluate their local levels'.

An evaluation at theta, in two rounds:
  1. every shard eliminates its local units and returns its part of the remainder:
     C_s (its lower triangle, packed), b_s, and its scalar parts (Program.to_dense);
  2. the client adds them in shard order, factors C = sum C_s, and gets log|C|, the
     remainder's posterior mean C^-1 b and, for the gradient, its covariance C^-1
     (for ML with profiled fixed effects: log|X'V^-1X| is taken off, and the
     covariance is that of the other shared etas given the fixed effects, as
     in-process); it sends them back; every shard back-substitutes its local means
     and returns its residual sum of squares and gradient terms (Program.finish).
The sums run in shard order, so the result does not depend on the number of workers.
Over the wire per evaluation: theta out; n_dense (n_dense + 1) / 2 + n_dense + 4
numbers per shard back (the block's lower triangle, packed); the mean and the
covariance (packed) to every worker; k + 1 numbers per shard back.
"""
import functools

import numpy as np
import pandas as pd
from scipy.linalg import lapack

from ..compile import compile_problem
from ..compile.problem import normal_constant
from ..engine.program import build_program
from ..spec.validate import validate
from .shards import assign, reach, with_tables


def choose_split(spec, n_units):
    """(sharded level, [local levels], [shared levels]) from the structure and the
    levels' unit counts {level: units} (module docstring)."""
    levels = list(spec.levels)
    subs = spec.submodels

    def local_of(top):
        local, grew = [top], True
        while grew:
            grew = False
            for name in levels:
                if name not in local and any(p in local for p in subs[name].parents):
                    local.append(name)
                    grew = True
        return local

    best = None
    for top in levels:
        if subs[top].flat:
            continue
        local = local_of(top)
        shared = [name for name in levels if name not in local]
        key = (sum(n_units[name] * len(subs[name].etas) for name in shared), -n_units[top],
               levels.index(top))
        if best is None or key < best[0]:
            best = key, top, [name for name in levels if name in local], shared
    return best[1:]


def crossed_split(spec):
    """(sharded level, [local levels], [shared levels], {local level: (n,) unit of the
    sharded level each of its units reaches}) of a model with pandas tables; raises
    ValueError naming the level whose units reach several of the sharded level's
    units."""
    top, local, shared = choose_split(spec, {name: len(s.data)
                                             for name, s in spec.submodels.items()})
    return top, local, shared, reach(spec, top, local, lambda name: (
        f"shards: level {name!r} has parents in different units of level {top!r}, the "
        f"level the shards split; the model cannot be split into shards."))


def crossed_shard_models(model, n_shards):
    """([Model] of at most n_shards shards, [shared level names]): each shard holds
    whole units of the sharded level with every local unit below them, and every
    shared level's whole table."""
    spec = model.spec
    top, local, shared, reach = crossed_split(spec)
    top_ids = spec.submodels[top].data[top].to_numpy()
    position = pd.Series(np.arange(len(top_ids)), index=top_ids)
    sizes = np.zeros(len(top_ids))
    for name in local:
        sizes += np.bincount(position.reindex(reach[name]).to_numpy(), minlength=len(top_ids))
    n_shards = max(1, min(int(n_shards), len(top_ids)))
    shard_of = pd.Series(assign(sizes, n_shards), index=top_ids)
    out = []
    for shard in range(n_shards):
        tables = {name: (s.data[shard_of.reindex(reach[name]).to_numpy() == shard]
                         .reset_index(drop=True) if name in local else s.data)
                  for name, s in spec.submodels.items()}
        out.append(with_tables(model, tables, f"{model.name} [shard {shard + 1}/{n_shards}]"))
    return out, shared


class CrossedShard:
    """One shard, compiled where it is evaluated, with the state between the rounds.

    where: (n_dense,) the place of each of its remainder's rows in the common layout
    (shared non-flat levels in the model's order, then the flat ones; units in table
    order); first: whether it counts the shared levels' own factors.
    """

    def __init__(self, model, shared, first):
        problem = compile_problem(validate(model.spec), memory_limit_gb=model.memory_limit_gb,
                                  shared_levels=tuple(shared))
        form = problem.form
        if form.program is None:
            raise ValueError("shards: a crossed design's shards need the compiled kernel; "
                             "unset XXMPY_KERNEL=numpy.")
        self.problem, self.first, self.shared = problem, first, list(shared)
        names = list(problem.level_names)
        self.program = form.program if first else _local_program(problem, shared, form)
        shared_idx = [names.index(s) for s in shared]
        layout = [c for c in shared_idx if not problem.levels[c].flat] + \
                 [c for c in shared_idx if problem.levels[c].flat]
        self._layout = layout
        sched = form.units.schedule
        self.where = _common_rows(sched, layout)
        self.profiled_rows = int(problem.n_profiled)
        self.layout = [(names[lvl], int(sched.sizes[lvl]), int(sched.block[lvl]),
                        _digest(problem.levels[lvl].ids)) for lvl in layout]
        self._at = None

    def __getstate__(self):
        """A copy (a shard moved or replicated to another worker) has a Program with
        fresh buffers, so it must redo round 1: the theta of the last round 1 is not
        carried over."""
        return {**self.__dict__, "_at": None}

    def describe(self):
        """(parameter labels, the remainder's layout, its profiled rows): the same in
        every shard, or the shards do not add up."""
        return list(self.problem.params.labels), self.layout, self.profiled_rows

    def to_dense(self, theta):
        """Round 1 at theta (k,): None if inadmissible, else (parts (4,), C packed (its
        lower triangle by rows, Program.to_dense), b (n_dense,)) in the common
        layout."""
        self._at = None
        got = _to_dense(self.problem, self.program, self.where, theta)
        if got is not None:
            self._at = np.array(theta, copy=True)
        return got

    def finish(self, theta, mean, sigma):
        """Round 2: (residual sum of squares, (k,) gradient terms or None) given the
        remainder's posterior mean (n_dense,) and covariance (or None; packed as C),
        common layout.
        Round 1 is repeated here when this object did not run it at theta (a shard
        rebuilt or moved to another worker since)."""
        if self._at is None or not np.array_equal(self._at, theta):
            if self.to_dense(theta) is None:
                raise ValueError("shards: round 2 at a theta where this shard is "
                                 "inadmissible")
        if self.where is not None:
            mean = mean[self.where]
            sigma = None if sigma is None else pack(
                unpack(sigma)[np.ix_(self.where, self.where)])
        if sigma is None:
            return float(self.program.finish(np.ascontiguousarray(mean))), None
        grad = np.empty(self.problem.n_engine)
        r2 = self.program.finish(np.ascontiguousarray(mean), sigma, True, grad)
        return float(r2), np.asarray(self.problem.engine_gradient(theta, grad), float)

    def posterior(self, theta, mean, sigma):
        """{level name: (mean (n, m), covariance (n, m, m))} of every level with etas
        (engine.latent_posterior's blocks), given the remainder's posterior mean and
        covariance (its flat block filled) at theta from every shard's sum. The shared
        levels' blocks are the remainder's own; the local ones are exact (they depend
        on the other shards only through the remainder)."""
        from ..engine import posterior_form
        from ..engine.program import held_posterior
        form = posterior_form(self.problem)
        program, where = self.program, self.where
        if form is not self.problem.form:          # a collapsed level with etas
            program = form.program if self.first else _local_program(self.problem,
                                                                     self.shared, form)
            where = _common_rows(form.units.schedule, self._layout)
        if _to_dense(self.problem, program, where, theta) is None:
            raise ValueError("shards: the posterior at a theta where this shard is "
                             "inadmissible")
        n, p = len(mean), self.profiled_rows
        sigma = unpack(sigma)
        flat = sigma[n - p:, n - p:].copy()
        if p:        # the other levels' covariances are given the profiled fixed effects
            sigma[n - p:, n - p:] = 0.0
        if where is not None:
            mean, sigma = mean[where], sigma[np.ix_(where, where)]
        grad = np.empty(self.problem.n_engine)
        program.finish(np.ascontiguousarray(mean), pack(sigma), False, grad)
        self._at = None                 # the row form's program may share no state
        names = self.problem.level_names
        out = {names[lvl]: blocks for lvl, blocks in held_posterior(form, program).items()}
        if p:                           # the profiled level: last, one unit
            level = names[self._layout[-1]]
            out[level] = (out[level][0], flat[None])
        return out


def _to_dense(problem, program, where, theta):
    """Round 1 of ``program`` at theta: CrossedShard.to_dense's result."""
    engine = problem.engine_theta(theta)
    if engine is None:
        return None
    got = program.to_dense(np.ascontiguousarray(engine, float))
    if got is None:
        return None
    parts, packed, rhs = got
    if where is not None:
        common = np.empty((len(rhs), len(rhs)))
        common[np.ix_(where, where)] = unpack(packed)
        packed, rhs = pack(common), _scatter(rhs, where)
    return parts, packed, rhs


@functools.lru_cache(maxsize=4)
def _lower(n):
    """tril_indices(n): the packed order (row by row, j <= i)."""
    return np.tril_indices(n)


def pack(matrix):
    """(n (n + 1) / 2,) the lower triangle of a (n, n) matrix, row by row."""
    return np.ascontiguousarray(matrix[_lower(len(matrix))])


def unpack(packed, lower_only=False):
    """The symmetric (n, n) matrix of a packed lower triangle (only its lower triangle,
    zeros above, when ``lower_only``)."""
    n = int(round((np.sqrt(8 * len(packed) + 1) - 1) / 2))
    out = np.zeros((n, n))
    out[_lower(n)] = packed
    return out if lower_only else out + np.tril(out, -1).T


def _common_rows(sched, layout):
    """(n_dense,) the common layout's row of each row of a schedule's remainder (None
    when they agree): the ``layout`` levels one after another, units in table order."""
    start, at = {}, 0
    for lvl in layout:
        start[lvl] = at
        at += int(sched.sizes[lvl] * sched.block[lvl])
    where = np.empty(sched.n_dense, np.intp)
    for lvl in sched.dense_levels:
        where[sched.dense_rows(lvl).ravel()] = start[lvl] + np.arange(
            sched.sizes[lvl] * sched.block[lvl])
    return None if np.array_equal(where, np.arange(len(where))) else where


def _scatter(values, where):
    out = np.empty_like(values)
    out[where] = values
    return out


def _digest(ids):
    return int(pd.util.hash_pandas_object(pd.Series(np.asarray(ids, dtype=object)),
                                          index=False).sum() % (2 ** 61))


def _local_program(problem, shared, form):
    """The Program over ``form`` (the problem's evaluated or row-by-row Form) of a shard
    other than the first: the local levels' factors only, and the constant without
    the shared levels' observed values."""
    names = list(problem.level_names)
    shared_idx = {names.index(s) for s in shared}
    local = {c for c in range(len(names)) if c not in shared_idx}
    n_shared = int(sum(problem.levels[c].observed.sum() for c in shared_idx))
    flat_rows = problem.n_flat - problem.n_profiled
    constant = form.constant - normal_constant(n_shared, flat_rows)
    if any(pooled.level in shared_idx for pooled in form.contrasts):
        raise AssertionError("a shared level was collapsed")
    return build_program(form.plan, form.lowered, form.contrasts, constant, local)


def combine(parts, profiled_rows, gradient, flat_block=False):
    """The client's step between the rounds. parts: [(parts (4,), C packed, b)] in
    shard order. Returns None if the summed remainder is not positive definite, else
    (the shards' total and log-determinants plus log|C| (less log|X'V^-1X| for
    profiled rows), mean C^-1 b, covariance packed or None). The covariance of the
    other rows is given the profiled ones, whose own block is 0 unless ``flat_block``
    (then (X'V^-1X)^-1, as the posterior reports it)."""
    total = 0.0
    dense, rhs = None, None
    for p, c, b in parts:
        total += p[0] + p[1]
        if dense is None:
            dense, rhs = c.copy(), b.copy()
        else:
            dense += c
            rhs += b
    n = len(rhs)
    if n == 0:
        return total, rhs, (np.zeros(0) if gradient else None)
    dense = unpack(dense, lower_only=True)
    # dense.T is the Fortran-ordered upper triangle: factored in place, C = U'U
    factor, info = lapack.dpotrf(dense.T, lower=0, clean=1, overwrite_a=1)
    if info != 0:
        return None
    diag = np.diag(factor)
    total += 2.0 * np.log(diag).sum() - 2.0 * np.log(diag[n - profiled_rows:]).sum()
    z, _ = lapack.dtrtrs(factor, rhs, lower=0, trans=1)
    mean, _ = lapack.dtrtrs(factor, z, lower=0)
    sigma = None
    if gradient:
        keep = n - profiled_rows
        if keep == n:          # the upper triangle of C^-1, Fortran order: .T is lower, C
            inv, info = lapack.dpotri(factor, lower=0, overwrite_c=1)
            return None if info != 0 else (total, mean, pack(inv.T))
        sigma = np.zeros((n, n))
        blocks = [(0, keep)] + ([(keep, n)] if flat_block else [])
        for lo, hi in blocks:
            if hi > lo:
                inv, info = lapack.dpotri(factor[lo:hi, lo:hi], lower=0)
                if info != 0:
                    return None
                sigma[lo:hi, lo:hi] = np.triu(inv).T
        sigma = pack(sigma)
    return total, mean, sigma
