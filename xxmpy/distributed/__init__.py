"""Past one machine (issue #22): the likelihood of a nested design as a sum over shards
of whole top-level units, each shard compiled and kept where it is evaluated.

shards.py      the split: top-level units (with everything below them) into shards
likelihood.py  -2 log L and its gradient summed over the shards, in this process or
               on a dask.distributed Client's workers
"""
from .likelihood import ShardedLikelihood
from .shards import shard_models

__all__ = ["ShardedLikelihood", "shard_models"]
