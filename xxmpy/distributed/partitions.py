"""Data that need not fit on the client: level tables as Dask DataFrames (read from
Parquet, say), fitted on a dask.distributed Client's workers.

Every level's table is hashed on the top level's ID into ``n_shards`` partitions
(dask's shuffle: one top unit's rows of every level land in the same partition
number), and shard i is built, validated and compiled on a worker from partition i
of every table. The compiled shard stays there; its rows never reach the client.
Validation runs per shard and raises the in-memory messages.

The client holds a skeleton: the model compiled on a sample, the first
SAMPLE_TOP_UNITS top units (by ID) of the first non-empty shard with all their rows.
It gives the parameter table, the parameters' natural units (floors, step scales:
moments of a sample rescale with the data as the full data's do) and start='auto'
values. -2 log L, its gradient, and so the estimates, the Hessian's SEs and profile
CIs come from the shards, and factor scores are computed on them; what needs the
data themselves otherwise (fit measures, the standardised solution, modification
indices) is refused on such a fit (ShardedFitResult), not computed from the sample.
"""
import numpy as np
import pandas as pd

from ..results.fit_result import FitResult
from ..spec.objects import is_dask_frame
from .crossed import CrossedShard, choose_split
from .shards import single_top, with_tables

SAMPLE_TOP_UNITS = 100


def nested_structure(spec):
    """Whether the levels split by the top level's ID: one level without parents and no
    flat level (otherwise the crossed split, crossed.py)."""
    try:
        single_top(spec, "")
    except ValueError:
        return False
    return True


def top_level(spec):
    """The top level, after checking that every level's table has its ID column;
    raises ValueError listing every problem (flat levels, missing columns)."""
    top = single_top(spec, "Model.fit: tables given as Dask DataFrames are split by the "
                           "top level's ID, which needs a nested design")
    check_tables(spec, top, list(spec.levels), "the top level")
    return top


def check_tables(spec, key, levels, role):
    """Raise ValueError listing every level without a table and every table of
    ``levels`` without the column ``key`` (the ID of ``role``, which splits them)."""
    problems = []
    for name in spec.levels:
        data = spec.submodels[name].data
        if not hasattr(data, "columns"):
            problems.append(f"level {name!r}: no table (got {type(data).__name__}); give "
                            f"data= a pandas or Dask DataFrame")
        elif name in levels and key not in data.columns:
            problems.append(f"level {name!r}: its table has no column {key!r} (the ID of "
                            f"{role}); add it (merge {key!r} in through the parent IDs) "
                            f"so that its rows can be split by {key}")
    if problems:
        raise ValueError(f"Model.fit: the tables cannot be split by {role}:\n  "
                         + "\n  ".join(problems))


def shard_tables(spec, top, n_shards, client, levels=None):
    """([{level: Delayed pandas DataFrame}] one dict per shard, [persisted frames]):
    every level's table (a pandas one too; only ``levels`` when given) hashed on
    column ``top`` into n_shards partitions, shuffled once and held on ``client``'s
    workers while the shards are built (release the frames after)."""
    import dask.dataframe as dd
    key_type = spec.submodels[top].data[top].dtype
    shards, frames = [{} for _ in range(n_shards)], []
    for name, sub in spec.submodels.items():
        if levels is not None and name not in levels:
            continue
        frame = sub.data if is_dask_frame(sub.data) else dd.from_pandas(sub.data,
                                                                         npartitions=1)
        if frame[top].dtype != key_type:
            frame = frame.assign(**{top: frame[top].astype(key_type)})
        frame = client.persist(frame.shuffle(on=top, npartitions=n_shards))
        frames.append(frame)
        for i, part in enumerate(frame.to_delayed()):
            shards[i][name] = part
    return shards, frames


def _template(model):
    """The model without its tables (what each shard task receives)."""
    return with_tables(model, {name: None for name in model.spec.levels}, model.name)


def build_shard(template, tables):
    """A worker's task: the shard's compiled Problem (None for an empty shard)."""
    if all(len(t) == 0 for t in tables.values()):
        return None
    frames = {name: t.reset_index(drop=True) for name, t in tables.items()}
    return with_tables(template, frames, template.name).compile()


def shard_counts(problem):
    """A worker's task: (observed values, {level: units}) of one shard."""
    if problem is None:
        return 0, {}
    return int(problem.n_observed), {lev.name: int(lev.n) for lev in problem.levels}


def build_crossed_shard(template, local, shared_tables, shared, first):
    """A worker's task: a crossed design's shard (crossed.CrossedShard) from its share
    of the local levels' tables and the whole shared tables."""
    frames = {name: t.reset_index(drop=True) for name, t in local.items()}
    return CrossedShard(with_tables(template, {**frames, **shared_tables}, template.name),
                        shared, first)


def crossed_counts(shard):
    """A worker's task: (observed values, {level: units}) of a crossed shard's local
    levels (the shared ones are counted once, on the client)."""
    levels = [lev for lev in shard.problem.levels if lev.name not in shard.shared]
    return int(sum(lev.observed.sum() for lev in levels)), {lev.name: int(lev.n)
                                                            for lev in levels}


def table_counts(name, table, ys):
    """(observed values, {name: units}) of level ``name``'s pandas table with value
    columns ``ys``."""
    return int(table[list(ys)].notna().to_numpy().sum()), {name: len(table)}


def sample_tables(tables, top, n_units=SAMPLE_TOP_UNITS):
    """A worker's task: every level's rows of the first n_units top units (by ID) of one
    shard ({level: pandas DataFrame}), or None when the shard is empty."""
    ids = np.sort(pd.unique(tables[top][top].to_numpy()))[:n_units]
    if ids.size == 0:
        return None
    return {name: t[t[top].isin(ids)].reset_index(drop=True) for name, t in tables.items()}


class ShardedFitResult(FitResult):
    """The FitResult of a fit on partitioned data (module docstring): estimates, SEs,
    -2 log L, AIC / BIC, the summary (with the whole data's counts) and profile CIs of
    parameters and correlations as in memory, every evaluation on the shards (the
    limits one after another, each spread over the workers); what needs the data
    themselves raises NotImplementedError, naming the method.

    likelihood: the ShardedLikelihood on the workers (the Client must stay open for
    profile CIs and factor scores); evaluate: its theta -> (-2 log L, gradient), which
    the profile CIs evaluate.
    """

    def __init__(self, model, problem, record, checked, n_observed, level_units,
                 likelihood):
        self._n_observed, self._level_units = n_observed, level_units
        self.likelihood = likelihood
        self.evaluate = likelihood.deviance_and_gradient
        super().__init__(model, problem, record, checked)

    def factor_scores(self, level: str | None = None):
        """FitResult.factor_scores as a Dask DataFrame (a dict of them without
        ``level``), one partition per shard, computed on the workers from the shards at
        the estimates: exact, since in a nested design a unit's posterior given all
        the data is its posterior given its top unit's rows. ``.compute()`` brings one
        to the client; ``.to_parquet(path)`` writes it from the workers."""
        import dask.dataframe as dd

        from ..assessment.factor_scores import factor_scores
        self._need_client("factor_scores")
        spec = self.model.spec
        with_etas = [name for name in self.problem.level_names if spec.submodels[name].etas]
        if level is None:
            return {name: self.factor_scores(name) for name in with_etas}
        if level not in with_etas:
            super().factor_scores(level)            # the in-memory message
        etas, theta = list(spec.submodels[level].etas), self.record.estimate
        meta = factor_scores(self.problem, theta, etas, level).iloc[:0]
        client = self.likelihood.client
        shards = self.likelihood.shards
        if not self.likelihood.crossed:
            parts = [client.submit(_shard_scores, s, theta, etas, level, meta, pure=False)
                     for s in shards]
            return dd.from_delayed(parts, meta=meta)
        # a crossed design: the shards' posteriors given the shared levels' remainder,
        # which a shared level's scores are read from once (the first shard)
        mean, sigma = self.likelihood.remainder_posterior(theta)
        # fresh keys: scattering data whose hashed key an earlier call just released
        # can wait forever (dask/distributed#8576, the test suite under load)
        mean, sigma = client.scatter([mean, sigma], broadcast=True, hash=False)
        if level in self.likelihood.shared:
            shards = shards[:1]
        parts = [client.submit(_crossed_scores, s, theta, mean, sigma, etas, level,
                               pure=False) for s in shards]
        return dd.from_delayed(parts, meta=meta)

    def profile_ci(self, level: float = 0.95, parameters=None, n_jobs=None, progress=None,
                   executor=None):
        """FitResult.profile_ci on the shards: n_jobs and executor are ignored (every
        evaluation already runs on all workers)."""
        self._need_client("profile_ci")
        return super().profile_ci(level, parameters, 1, progress, None)

    def correlation_ci(self, parameters=None, level: float = 0.95):
        self._need_client("correlation_ci")
        return super().correlation_ci(parameters, level)

    def _need_client(self, what):
        client = self.likelihood.client
        if client is None or client.status != "running":
            raise RuntimeError(f"FitResult.{what}: the shards live on the workers of the "
                               f"dask Client the fit ran on, which is closed now; call it "
                               f"while the Client is open (inside its with block).")

    @property
    def n_observations(self):
        return self._n_observed

    def _level_sizes(self):
        return [(lev.name, self._level_units.get(lev.name, 0)) for lev in self.problem.levels]

    def summary(self, fit_measures: bool = False, standardized: bool = False,
                rsquare: bool = False, modindices: bool = False):
        if fit_measures or standardized or rsquare or modindices:
            _refuse("summary(fit_measures=, standardized=, rsquare=, modindices=)")
        return super().summary()


def _shard_scores(problem, theta, etas, level, meta):
    """A worker's task: one shard's factor scores (``meta``, empty, for an empty shard)."""
    from ..assessment.factor_scores import factor_scores
    if problem is None:
        return meta
    return factor_scores(problem, theta, etas, level)


def _crossed_scores(shard, theta, mean, sigma, etas, level):
    """A worker's task: one crossed shard's factor scores of ``level``."""
    from ..assessment.factor_scores import scores_frame
    post_mean, post_cov = shard.posterior(theta, mean, sigma)[level]
    ids = shard.problem.levels[shard.problem.level_names.index(level)].ids
    return scores_frame(ids, level, etas, post_mean, post_cov)


def _refuse(what):
    raise NotImplementedError(
        f"FitResult.{what}: not available for a fit on partitioned data (Dask DataFrames): "
        f"it needs the data themselves, which stay on the workers (issue #22). Fit the "
        f"model on pandas tables for it, or use the estimates, SEs, -2 log L, AIC and BIC.")


def _refusing(name):
    def method(self, *args, **kwargs):
        _refuse(name + "()")
    method.__name__ = name
    method.__doc__ = "Not available on partitioned data (raises NotImplementedError)."
    return method


for _name in ("saturated", "baseline", "fit_measures",
              "standardized", "network", "r_squared", "variance_components", "implied",
              "modification_indices", "report"):
    setattr(ShardedFitResult, _name, _refusing(_name))


class PartitionedModel:
    """A model whose tables are Dask DataFrames, built on ``client``'s workers (module
    docstring).

    likelihood: ShardedLikelihood over the shards compiled on the workers; problem /
    checked: the skeleton compiled here from the sample; n_observed and level_units
    ({level: units}): the whole data's counts.
    """

    def __init__(self, model, client, n_shards):
        from dask import delayed

        from .likelihood import ShardedLikelihood, default_shards
        spec = model.spec
        crossed = not nested_structure(spec)
        if n_shards is None:
            n_shards = default_shards(crossed, client)
        if crossed:
            self._crossed(model, client, n_shards)
            return
        top = top_level(spec)
        tables, frames = shard_tables(spec, top, n_shards, client)
        sample = None
        for t in tables:
            sample = client.compute(delayed(sample_tables)(t, top)).result()
            if sample is not None:
                break
        if sample is None:
            raise ValueError("Model.fit: the Dask DataFrames hold no rows.")
        # the skeleton first: a problem of the specification is reported here, before any
        # worker compiles (and logs) it; problems of other rows come from the workers
        skeleton = with_tables(model, sample, model.name)
        self.problem, self.checked = skeleton.compile(), skeleton._checked
        template = _template(model)
        shards = client.compute([delayed(build_shard)(template, t) for t in tables])
        counts = client.gather([client.submit(shard_counts, s, pure=False) for s in shards])
        del tables, frames      # the shuffled tables: the compiled shards hold the data
        self.likelihood = ShardedLikelihood.on_shards(shards, client,
                                                      list(self.problem.params.labels))
        self._add_counts(counts)

    def _crossed(self, model, client, n_shards):
        """A crossed design or flat levels (crossed.py): the local levels' tables hashed
        on the sharded level's ID, the shared levels' tables brought here (they are the
        remainder this client factors) and sent whole to every shard."""
        from dask import delayed

        from .likelihood import ShardedLikelihood
        spec = model.spec
        check_tables(spec, None, [], "the sharded level")
        units = client.gather([client.compute(s.data.shape[0]) if is_dask_frame(s.data)
                               else len(s.data) for s in spec.submodels.values()])
        top, local, shared = choose_split(spec, dict(zip(spec.submodels, units)))
        check_tables(spec, top, local, f"level {top!r}, whose units the shards split")
        whole = {name: (spec.submodels[name].data.compute()
                        if is_dask_frame(spec.submodels[name].data)
                        else spec.submodels[name].data).reset_index(drop=True)
                 for name in shared}
        tables, frames = shard_tables(spec, top, n_shards, client, local)
        rows = client.gather(client.compute([delayed(len)(t[top]) for t in tables]))
        filled = [i for i, n in enumerate(rows) if n]
        if not filled:
            raise ValueError("Model.fit: the Dask DataFrames hold no rows.")
        sample = client.compute(delayed(sample_tables)(tables[filled[0]], top)).result()
        skeleton = with_tables(model, {**sample, **whole}, model.name)
        self.problem, self.checked = skeleton.compile(), skeleton._checked
        template = _template(model)
        shards = client.compute([delayed(build_crossed_shard)(template, tables[i], whole,
                                                              shared, i == filled[0])
                                 for i in filled])
        counts = client.gather([client.submit(crossed_counts, s, pure=False)
                                for s in shards])
        del tables, frames
        self.likelihood = ShardedLikelihood.on_shards(
            shards, client, list(self.problem.params.labels), crossed=True)
        self._add_counts(counts + [table_counts(name, table, spec.submodels[name].ys)
                                   for name, table in whole.items()])

    def _add_counts(self, counts):
        self.n_observed = sum(n for n, _ in counts)
        self.level_units = {}
        for _, per_level in counts:
            for name, n in per_level.items():
                self.level_units[name] = self.level_units.get(name, 0) + n


def fit_partitioned(model, client, n_shards, **options):
    """Model.fit on level tables given as Dask DataFrames: the fit evaluated on the
    shards of a PartitionedModel (n_shards None: likelihood.default_shards). Returns a
    ShardedFitResult."""
    from ..fit.optimize import fit_problem
    from ..fit.starts import resolve_start
    built = PartitionedModel(model, client, n_shards)
    options = resolve_start(options, built.problem, built.checked)
    record = fit_problem(built.problem, evaluate=built.likelihood.deviance_and_gradient,
                         **options)
    return ShardedFitResult(model._detached(), built.problem, record, built.checked,
                            built.n_observed, built.level_units, built.likelihood)
