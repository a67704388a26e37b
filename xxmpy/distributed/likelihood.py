"""-2 log L and its gradient of a nested model as sums over shards (shards.py).

Each shard is compiled once where it is evaluated and kept there: in this process,
or (client= a dask.distributed.Client) on a worker, where the compiled shard stays
in memory as the result of a task and its data never return to the client. An
evaluation sends the parameter vector to every worker (one task for the shards it
holds) and adds the returned (-2 log L, gradient) in shard order, so the sum does not
depend on the number of workers or on where the shards run.
"""
import numpy as np

from ..engine import deviance_and_gradient
from .shards import shard_models

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


class ShardedLikelihood:
    """The model's -2 log L and gradient as a sum over ``n_shards`` shards.

    labels: the parameters, in the order of the model's own parameter table (every
    shard has the same one; checked); deviance_and_gradient(theta) -> (f, (k,) g).
    """

    def __init__(self, model, n_shards=DEFAULT_SHARDS, client=None):
        models = shard_models(model, n_shards)
        self.client = client
        if client is None:
            self.shards = [_compile(m) for m in models]
            labels = [_labels(p) for p in self.shards]
        else:
            self.shards = [client.submit(_compile, m, pure=False) for m in models]
            labels = client.gather([client.submit(_labels, s, pure=False)
                                    for s in self.shards])
        self._check_labels(labels[0], labels)

    @classmethod
    def on_shards(cls, shards, client, labels):
        """Over shards already compiled on ``client``'s workers (futures of Problems, or
        of None for an empty shard; distributed/partitions.py), whose parameter tables
        must all be ``labels``."""
        self = cls.__new__(cls)
        self.client, self.shards = client, list(shards)
        self._check_labels(labels, client.gather([client.submit(_labels, s, pure=False)
                                                  for s in self.shards]))
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
        if self.client is None:
            parts = [_evaluate(p, theta) for p in self.shards]
        else:
            parts = self._on_workers(theta)
        f = 0.0
        g = np.zeros(len(self.labels))
        for fs, gs in parts:
            f += fs
            g += gs
        return f, g

    def _on_workers(self, theta):
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
        tasks = [(idx, client.submit(_evaluate_many, [self.shards[i] for i in idx], theta,
                                     workers=None if worker is None else [worker],
                                     allow_other_workers=True, pure=False))
                 for worker, idx in self._groups.items()]
        parts = [None] * len(self.shards)
        for idx, got in zip([i for i, _ in tasks], client.gather([t for _, t in tasks])):
            for i, part in zip(idx, got):
                parts[i] = part
        return parts

    def deviance(self, theta):
        return self.deviance_and_gradient(theta)[0]
