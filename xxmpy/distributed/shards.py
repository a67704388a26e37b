"""A nested design split into shards: each shard holds whole units of the top level with
every unit below them, so the shards are independent and -2 log L and its gradient
are sums over them.

The top level is the one level without parents; every unit of the other levels
reaches one top unit through each of its parents (a chain or a tree of nested
levels). Crossed designs (parents in different top units) and flat levels (fixed
effects shared by all units) do not split this way and are refused. Top units go to
shards largest first, each to the shard holding the fewest rows so far (ties to the
lower index), so the split depends only on the data and the number of shards, never
on the workers. (Tables held as Dask DataFrames are split on the workers instead:
partitions.py.)
"""
import numpy as np
import pandas as pd

from ..api.model import Model
from ..spec.objects import ModelSpec, SubmodelSpec


def single_top(spec, refusal):
    """The one level without parents; raises ValueError(refusal + the reason) for flat
    levels or several top levels (crossed levels)."""
    levels = list(spec.levels)
    tops = [name for name in levels if not spec.submodels[name].parents]
    flat = [name for name in levels if spec.submodels[name].flat]
    if flat or len(tops) != 1:
        why = f"level(s) {flat} are flat (fixed effects shared by every unit)" if flat \
            else f"the levels without parents are {tops}, not one top level (crossed " \
            f"levels)"
        raise ValueError(f"{refusal}: {why}.")
    return tops[0]


def top_of(spec):
    """(top level, {level: (n,) top unit id of each unit of the level's table}); raises
    ValueError naming what prevents a split. A level may have several parents when they
    are nested (a student linked to its teacher and to its school): all of them must
    lead every unit to the same top unit."""
    top = single_top(spec, "shards: the model cannot be split into independent shards")
    return top, reach(spec, top, list(spec.levels), lambda name: (
        f"shards: the model cannot be split into independent shards: level {name!r} has "
        f"parents {spec.submodels[name].parents} in different units of the top level "
        f"{top!r} (crossed levels)."))


def reach(spec, top, members, refusal):
    """{level: (n,) the unit of level ``top`` each unit of the level's table reaches}
    for ``top`` and the levels of ``members`` below it, through their parents among
    ``members`` (each such level has one); raises ValueError(refusal(level)) for a
    level whose parents lead one of its units to different units of ``top``."""
    ids = {top: spec.submodels[top].data[top].to_numpy()}
    pending = [name for name in members if name != top]
    while pending:
        ready = [name for name in pending if all(
            p in ids for p in spec.submodels[name].parents if p in members)]
        for name in ready:
            table = spec.submodels[name].data
            found = []
            for parent in spec.submodels[name].parents:
                if parent in members:
                    lookup = pd.Series(ids[parent], index=spec.submodels[parent].data[parent])
                    found.append(lookup.reindex(table[parent].to_numpy()).to_numpy())
            if any(not np.array_equal(found[0], other) for other in found[1:]):
                raise ValueError(refusal(name))
            ids[name] = found[0]
            pending.remove(name)
    return ids


def assign(sizes, n_shards):
    """(n_top,) the shard of each top unit: largest first to the least loaded shard."""
    order = np.lexsort((np.arange(len(sizes)), -np.asarray(sizes)))
    load, out = np.zeros(n_shards), np.empty(len(sizes), np.intp)
    for unit in order:
        shard = int(np.argmin(load))
        out[unit] = shard
        load[shard] += sizes[unit]
    return out


def shard_models(model, n_shards):
    """[Model] of at most n_shards shards of ``model`` (module docstring), in shard
    order; each has the model's levels and matrices and its share of every table."""
    spec = model.spec
    top, ids = top_of(spec)
    top_ids = spec.submodels[top].data[top].to_numpy()
    sizes = np.zeros(len(top_ids))
    position = pd.Series(np.arange(len(top_ids)), index=top_ids)
    for name in spec.levels:
        at = position.reindex(ids[name]).to_numpy()
        sizes += np.bincount(at, minlength=len(top_ids))
    n_shards = max(1, min(int(n_shards), len(top_ids)))
    shard_of_top = pd.Series(assign(sizes, n_shards), index=top_ids)
    out = []
    for shard in range(n_shards):
        tables = {name: s.data[shard_of_top.reindex(ids[name]).to_numpy() == shard]
                  .reset_index(drop=True) for name, s in spec.submodels.items()}
        out.append(with_tables(model, tables, f"{model.name} [shard {shard + 1}/{n_shards}]"))
    return out


def with_tables(model, tables, name):
    """A Model with ``model``'s levels and matrices and the tables {level: DataFrame or
    None} (a shard's share, a sample, or none at all for a template)."""
    spec = model.spec
    out = Model(list(spec.levels), name=name, memory_limit_gb=model.memory_limit_gb)
    out.spec = ModelSpec(list(spec.levels), {
        level: SubmodelSpec(s.level, list(s.parents), list(s.ys), list(s.xs), list(s.etas),
                            tables[level], s.flat, dict(s.regressor_ys))
        for level, s in spec.submodels.items()}, list(spec.matrices))
    return out
