"""-2 log L and its gradient as sums over shards: of a nested model's top-level units
(shards.py), or of a crossed design's sharded level with the shared levels' remainder
factored here (crossed.py).

Each shard is compiled once where it is evaluated and kept there: in this process,
or (client= a dask.distributed.Client) on a worker, where the compiled shard stays
in memory as the result of a task and its data never return to the client. An
evaluation sends the parameter vector to every worker (one task for the shards it
holds) and adds the returned (-2 log L, gradient) in shard order, so the sum does not
depend on the number of workers or on where the shards run. A crossed evaluation
takes two such rounds (crossed.py).
"""
import numpy as np

from ..engine import deviance_and_gradient
from ..errors import NotPositiveDefinite
from ..spec.validate import validate
from .crossed import CrossedShard, combine, crossed_shard_models
from .shards import shard_models, top_of

DEFAULT_SHARDS = 8


def _compile(model):
    """A worker's task: compile one shard (the Problem stays on the worker)."""
    return model.compile()


def _evaluate(problem, theta):
    """A worker's task: (-2 log L, gradient) of one shard at theta (an empty shard, None,
    adds nothing)."""
    if problem is None:
        return 0.0, np.zeros(len(theta))
    f, g = deviance_and_gradient(problem, theta)
    return float(f), np.asarray(g, float)


def _evaluate_many(problems, theta):
    """A worker's task: [(f, g)] of several shards at theta."""
    return [_evaluate(p, theta) for p in problems]


def _labels(problem):
    return None if problem is None else list(problem.params.labels)


def _describe(shard):
    return shard.describe()


def _to_dense_many(shards, theta):
    """A worker's task: round 1 of a crossed evaluation for several shards."""
    return [s.to_dense(theta) for s in shards]


def _finish_many(shards, theta, mean, sigma):
    """A worker's task: round 2 of a crossed evaluation for several shards."""
    return [s.finish(theta, mean, sigma) for s in shards]


def default_shards(crossed, client):
    """DEFAULT_SHARDS for a nested design; for a crossed one (each shard sends the
    shared block) one per worker of ``client``, or 1 in this process."""
    if not crossed:
        return DEFAULT_SHARDS
    return max(1, len(client.scheduler_info()["workers"])) if client is not None else 1


def _is_nested(spec):
    try:
        top_of(spec)
    except ValueError:
        return False
    return True


class ShardedLikelihood:
    """The model's -2 log L and gradient as a sum over ``n_shards`` shards (None:
    default_shards).

    labels: the parameters, in the order of the model's own parameter table (every
    shard has the same one; checked); crossed: whether the design is evaluated in two
    rounds (crossed.py: crossed levels or flat levels) rather than as independent
    top-level units; deviance_and_gradient(theta) -> (f, (k,) g).
    """

    def __init__(self, model, n_shards=None, client=None):
        # the whole model's problems first, with their in-memory messages: a split of
        # unvalidated tables (a parent ID missing from its table) would fail obscurely
        validate(model.spec)
        self.client = client
        self.crossed = not _is_nested(model.spec)
        n_shards = default_shards(self.crossed, client) if n_shards is None else n_shards
        if self.crossed:
            models, shared = crossed_shard_models(model, n_shards)
            tasks = [(CrossedShard, m, shared, i == 0) for i, m in enumerate(models)]
            probe = _describe
        else:
            tasks = [(_compile, m) for m in shard_models(model, n_shards)]
            probe = _labels
        if client is None:
            self.shards = [fn(*args) for fn, *args in tasks]
            found = [probe(p) for p in self.shards]
        else:
            self.shards = [client.submit(fn, *args, pure=False) for fn, *args in tasks]
            found = client.gather([client.submit(probe, s, pure=False) for s in self.shards])
        self._adopt(found[0], found)

    def _adopt(self, first, found):
        """Check that every shard reports ``first`` (labels; for a crossed design also
        the shared remainder's layout) and keep the labels."""
        if self.crossed:
            if any(f[1:] != first[1:] for f in found):
                raise ValueError("shards: the shards' shared levels differ (their units "
                                 "or etas); every shard must hold the same shared tables.")
            self.profiled_rows = first[2]
            self.shared = [name for name, *_ in first[1]]
            first, found = first[0], [f[0] for f in found]
        self._check_labels(first, found)

    @classmethod
    def on_shards(cls, shards, client, labels, crossed=False):
        """Over shards already compiled on ``client``'s workers (futures of Problems, or
        of None for an empty shard; or, ``crossed``, of crossed.CrossedShard objects:
        distributed/partitions.py), whose parameter tables must all be ``labels``."""
        self = cls.__new__(cls)
        self.client, self.shards, self.crossed = client, list(shards), crossed
        probe = _describe if crossed else _labels
        found = client.gather([client.submit(probe, s, pure=False) for s in self.shards])
        self._adopt((labels,) + tuple(found[0][1:]) if crossed else labels, found)
        return self

    def _check_labels(self, labels, found):
        self.labels = labels
        if any(lab is not None and lab != labels for lab in found):
            raise ValueError("shards: the shards' parameter tables differ; a label is "
                             "missing from some shard's data (a level with no units).")

    @property
    def n_shards(self):
        return len(self.shards)

    def deviance_and_gradient(self, theta):
        """(-2 log L, (k,) gradient) at theta, summed in shard order."""
        theta = np.asarray(theta, float)
        if self.crossed:
            return self._crossed(theta, True)
        parts = self._run(_evaluate_many, theta)
        f = 0.0
        g = np.zeros(len(self.labels))
        for fs, gs in parts:
            f += fs
            g += gs
        return f, g

    def _crossed(self, theta, gradient):
        """(-2 log L, gradient or None) of a crossed design in two rounds (crossed.py);
        (+inf, NaNs) where inadmissible."""
        inadmissible = np.inf, (np.full(len(self.labels), np.nan) if gradient else None)
        parts = self._run(_to_dense_many, theta)
        if any(p is None for p in parts):
            return inadmissible
        got = combine(parts, self.profiled_rows, gradient)
        if got is None:
            return inadmissible
        total, mean, sigma = got
        del parts
        f = total
        g = np.zeros(len(self.labels)) if gradient else None
        for r2, gs in self._run(_finish_many, theta, mean, sigma):
            f += r2
            if gradient:
                g += gs
        return f, g

    def remainder_posterior(self, theta):
        """(mean (n_dense,), covariance packed (its lower triangle by rows)) of a
        crossed design's shared levels at theta (crossed.combine's, the flat block
        filled); raises NotPositiveDefinite where theta is inadmissible."""
        got = None
        parts = self._run(_to_dense_many, np.asarray(theta, float))
        if all(p is not None for p in parts):
            got = combine(parts, self.profiled_rows, True, flat_block=True)
        if got is None:
            raise NotPositiveDefinite("the parameters are inadmissible (the shared levels' "
                                      "precision is not positive definite)")
        return got[1], got[2]

    def _run(self, task, *args):
        """[task's result per shard] in shard order: here, or on the workers."""
        if self.client is None:
            return task(self.shards, *args)
        return self._on_workers(task, *args)

    def _on_workers(self, task, *args):
        """[(f, g)] in shard order: one task per worker with the shards it holds (fewer
        round trips than a task a shard). The placement is read from the scheduler
        when the set of workers changes; a task whose worker is gone may run elsewhere
        (the shards it needs are rebuilt or moved there), so nothing waits on a dead
        worker."""
        client = self.client
        workers = tuple(sorted(client.scheduler_info()["workers"]))
        if getattr(self, "_placed_on", None) != workers:
            held = client.who_has(self.shards)
            self._groups = {}
            for i, s in enumerate(self.shards):
                where = sorted(held.get(s.key, ()))
                self._groups.setdefault(where[0] if where else None, []).append(i)
            self._placed_on = workers
        tasks = [(idx, client.submit(task, [self.shards[i] for i in idx], *args,
                                     workers=None if worker is None else [worker],
                                     allow_other_workers=True, pure=False))
                 for worker, idx in self._groups.items()]
        parts = [None] * len(self.shards)
        for idx, got in zip([i for i, _ in tasks], client.gather([t for _, t in tasks])):
            for i, part in zip(idx, got):
                parts[i] = part
        return parts

    def deviance(self, theta):
        theta = np.asarray(theta, float)
        if self.crossed:
            return self._crossed(theta, False)[0]
        return self.deviance_and_gradient(theta)[0]
